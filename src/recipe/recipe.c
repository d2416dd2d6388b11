/* SPDX-License-Identifier: MIT */
/*
 * recipe_load: an image definition with its includes, profile and
 * variables applied, validated; and reading the resolved tree.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "recipe/recipe-internal.h"

/* ------------------------------------------------------------------------ */
/* recipe_load */

static const struct ypos cmdline_pos = { "--set", 0, 0 };

int recipe_load(const char *path, const struct recipe_opts *opts, struct recipe **ret,
		struct diags *d)
{
	struct recipe *r = xcalloc(1, sizeof(*r));
	struct loader l = { .r = r, .d = d };
	struct ynode *root, *vars;
	struct subst s;
	struct vctx v;
	const char *profile = opts && opts->profile ? opts->profile : NULL;
	size_t before = d->nerrors, i;
	ssize_t pi;

	r->path = xstrdup(path);
	if (opts) {
		l.include_dirs = opts->include_dirs;
		l.ninclude_dirs = opts->ninclude_dirs;
	}
	root = load_file(&l, path, NULL);
	r->root = root;
	if (!root || d->nerrors > before)
		goto fail;

	/* The image's identity is required at the top. */
	if (!ynode_map_get(root, "image"))
		diags_add(d, &root->pos, "missing 'image:' (the image name)");
	if (!ynode_map_get(root, "version"))
		diags_add(d, &root->pos, "missing 'version:'");

	/* Profile: a map merged over the file. */
	pi = ynode_map_index(root, "profiles");
	if (profile) {
		const struct ynode *p = pi >= 0 ? ynode_map_get(root->v[pi], profile) : NULL;
		if (!p) {
			struct strbuf sb = STRBUF_INIT;
			size_t k;
			for (k = 0; pi >= 0 && k < root->v[pi]->n; k++)
				strbuf_addf(&sb, "%s%s", k ? ", " : "", root->v[pi]->k[k]);
			diags_add(d, pi >= 0 ? &root->kpos[pi] : &root->pos,
				  "no profile '%s' in %s (%s%s)", profile, path,
				  sb.len ? "profiles: " : "this image defines no profiles",
				  sb.len ? sb.buf : "");
			strbuf_release(&sb);
			goto fail;
		}
		{
			struct ynode *copy = ynode_copy(p);
			load_merge(root, copy, &schema_top);
			ynode_free(copy);
		}
		r->profile = xstrdup(profile);
	} else {
		const struct ynode *p = pi >= 0 ? ynode_map_get(root->v[pi], "default") : NULL;
		if (p) {
			struct ynode *copy = ynode_copy(p);
			load_merge(root, copy, &schema_top);
			ynode_free(copy);
		}
		r->profile = xstrdup("default");
	}
	pi = ynode_map_index(root, "profiles");
	if (pi >= 0)
		ynode_map_remove(root, (size_t)pi);

	/* Variables: built-ins, then the recipe's, then --set. */
	if (ynode_map_index(root, "variables") < 0)
		ynode_map_push(root, "variables", &root->pos, ynode_new(YNODE_MAP, &root->pos));
	vars = root->v[ynode_map_index(root, "variables")];
	{
		static const char *const builtins[] = { "image", "version" };
		for (i = 0; i < ARRAY_SIZE(builtins); i++) {
			const struct ynode *b = ynode_map_get(root, builtins[i]);
			if (b && b->kind == YNODE_SCALAR && ynode_map_index(vars, builtins[i]) < 0)
				ynode_map_push(vars, builtins[i], &b->pos,
					       ynode_scalar(b->str, &b->pos));
		}
		if (ynode_map_index(vars, "profile") < 0)
			ynode_map_push(vars, "profile", &root->pos,
				       ynode_scalar(r->profile, &root->pos));
	}
	/* Defaults from the environment: used only where the recipe sets nothing. */
	for (i = 0; opts && i < opts->ndefaults; i++) {
		const char *eq = strchr(opts->defaults[i], '=');
		_cleanup_free_ char *name = NULL;
		struct ypos pos = { "environment", 0, 0 };

		if (!eq)
			continue;
		name = xstrndup(opts->defaults[i], (size_t)(eq - opts->defaults[i]));
		if (schema_valid_var_name(name) && ynode_map_index(vars, name) < 0)
			ynode_map_push(vars, name, &pos, ynode_scalar(eq + 1, &pos));
	}
	for (i = 0; opts && i < opts->nsets; i++) {
		const char *eq = strchr(opts->sets[i], '=');
		_cleanup_free_ char *name = NULL;
		struct ypos pos = cmdline_pos;
		ssize_t k;

		if (!eq) {
			diags_add(d, &pos, "'--set %s' needs the form name=value", opts->sets[i]);
			continue;
		}
		name = xstrndup(opts->sets[i], (size_t)(eq - opts->sets[i]));
		if (!schema_valid_var_name(name)) {
			diags_add(d, &pos, "'--set %s': invalid variable name '%s'", opts->sets[i],
				  name);
			continue;
		}
		k = ynode_map_index(vars, name);
		if (k >= 0) {
			ynode_free(vars->v[k]);
			vars->v[k] = ynode_scalar(eq + 1, &pos);
		} else {
			ynode_map_push(vars, name, &pos, ynode_scalar(eq + 1, &pos));
		}
	}
	if (d->nerrors > before)
		goto fail;

	/*
	 * Substitute everywhere but in the variables themselves: they are
	 * expanded when used, once each; plan shows the used ones expanded.
	 */
	subst_init(&s, vars, d);
	for (i = 0; i < root->n; i++)
		if (root->v[i] != vars)
			subst_tree(&s, root->v[i]);
	subst_finish(&s);
	for (i = 0; i < vars->n; i++) {
		if (!subst_used(&s, vars->k[i]))
			continue;
		GROW(r->vars_used, r->vars_used_alloc, r->nvars_used + 1);
		r->vars_used[r->nvars_used++] = xstrdup(vars->k[i]);
	}
	subst_release(&s);
	if (d->nerrors > before)
		goto fail;

	/* Values that were only known after substitution. */
	v.d = d;
	v.mode = V_VALUES;
	v.dir = NULL;
	schema_validate(&v, &schema_top, NULL, root);
	subst_late_paths(root, &schema_top);

	checks_run(root, d);
	/* Only for a recipe that is otherwise right: its fix is an include. */
	if (d->nerrors == before)
		checks_boot_support(root, d);
	if (d->nerrors > before)
		goto fail;

	*ret = r;
	return 0;
fail:
	recipe_free(r);
	return -EINVAL;
}

void recipe_free(struct recipe *r)
{
	size_t i;

	if (!r)
		return;
	ynode_free(r->root);
	for (i = 0; i < r->nfiles; i++)
		free(r->files[i]);
	free(r->files);
	for (i = 0; i < r->nvars_used; i++)
		free(r->vars_used[i]);
	free(r->vars_used);
	free(r->path);
	free(r->profile);
	free(r);
}

const struct ynode *recipe_get(const struct recipe *r, const char *dotted)
{
	const struct ynode *n = r->root;
	const char *p = dotted;

	while (n && *p) {
		const char *dot = strchr(p, '.');
		_cleanup_free_ char *key = dot ? xstrndup(p, (size_t)(dot - p)) : xstrdup(p);
		n = ynode_map_get(n, key);
		p = dot ? dot + 1 : p + strlen(p);
	}
	return n;
}

bool recipe_var_used(const struct recipe *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->nvars_used; i++)
		if (!strcmp(r->vars_used[i], name))
			return true;
	return false;
}

const char *recipe_get_str(const struct recipe *r, const char *dotted, const char *def)
{
	const struct ynode *n = recipe_get(r, dotted);
	return n && n->kind == YNODE_SCALAR ? n->str : def;
}

bool recipe_bool(const struct ynode *n, bool def)
{
	bool b;

	if (!n || n->kind != YNODE_SCALAR || !schema_parse_bool(n->str, &b))
		return def;
	return b;
}
