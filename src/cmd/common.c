/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the commands: those that read an image definition, and
 * those that take a registered build where they take a file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/keys.h"
#include "cmd/cmd.h"
#include "recipe/recipe.h"
#include "core/hash.h"
#include "core/util.h"
#include "store/cache.h"
#include "store/registry.h"
#include "update/jsonr.h"

/* The installed data directory: the Makefile sets it from PREFIX. */
#ifndef IMGFORGE_DATADIR
#define IMGFORGE_DATADIR "/usr/local/share/imgforge"
#endif

int recipe_opt_profile(const struct opt *o, const char *arg, struct strbuf *err)
{
	struct recipe_args *a = o->value;

	if (!*arg) {
		strbuf_addstr(err, "--profile needs a profile name");
		return -EINVAL;
	}
	a->profile = arg;
	return 0;
}

static void add_set(struct recipe_args *a, const char *set)
{
	a->sets = xrealloc(a->sets, (a->nsets + 1) * sizeof(*a->sets));
	a->sets[a->nsets++] = set;
}

int recipe_opt_set(const struct opt *o, const char *arg, struct strbuf *err)
{
	_cleanup_free_ char *name = NULL;
	const char *eq = strchr(arg, '=');

	if (!eq || eq == arg) {
		strbuf_addf(err, "'--set %s': expected NAME=VALUE", arg);
		return -EINVAL;
	}
	name = xstrndup(arg, (size_t)(eq - arg));
	if (!recipe_var_name_valid(name)) {
		strbuf_addf(err, "'--set %s': invalid variable name '%s': use letters, digits and '_'",
			    arg, name);
		return -EINVAL;
	}
	add_set(o->value, arg);
	return 0;
}

int recipe_opt_mirror(const struct opt *o, const char *arg, struct strbuf *err)
{
	struct recipe_args *a = o->value;

	(void)err;
	a->owned = xrealloc(a->owned, (a->nowned + 1) * sizeof(*a->owned));
	a->owned[a->nowned] = xasprintf("mirror=%s", arg);
	add_set(a, a->owned[a->nowned++]);
	return 0;
}

int recipe_opt_include_dir(const struct opt *o, const char *arg, struct strbuf *err)
{
	struct recipe_args *a = o->value;

	if (!*arg) {
		strbuf_addstr(err, "-I needs a directory");
		return -EINVAL;
	}
	a->include_dirs = xrealloc(a->include_dirs, (a->ninclude_dirs + 1) * sizeof(char *));
	a->include_dirs[a->ninclude_dirs++] = arg;
	return 0;
}

/*
 * The include search path, in order: -I, then each directory of
 * $IMGFORGE_PATH (colon-separated, empty entries skipped), then the recipes
 * `make install` put under the data directory (docs/recipes.md). The
 * strings point into a, the environment, or are in *owned (freed by the caller).
 */
static const char **search_path(const struct recipe_args *a, char **owned, size_t *ret_n)
{
	const char *env = getenv("IMGFORGE_PATH");
	const char **v;
	size_t n = 0, i, max = a->ninclude_dirs + 2;
	char *save = NULL, *tok;
	const char *p;

	for (p = env; p && *p; p++)
		max += *p == ':';
	v = xcalloc(max, sizeof(*v));
	for (i = 0; i < a->ninclude_dirs; i++)
		v[n++] = a->include_dirs[i];
	*owned = env ? xstrdup(env) : NULL;
	for (tok = *owned ? strtok_r(*owned, ":", &save) : NULL; tok;
	     tok = strtok_r(NULL, ":", &save))
		v[n++] = tok;
	v[n++] = IMGFORGE_DATADIR "/recipes";
	*ret_n = n;
	return v;
}

void recipe_args_release(struct recipe_args *a)
{
	size_t i;

	for (i = 0; i < a->nowned; i++)
		free(a->owned[i]);
	free(a->owned);
	a->owned = NULL;
	a->nowned = 0;
	free(a->sets);
	a->sets = NULL;
	a->nsets = 0;
	free(a->include_dirs);
	a->include_dirs = NULL;
	a->ninclude_dirs = 0;
}

int recipe_cmd_parse(const struct opt_cmd *cmd, int argc, char **argv, struct recipe_args *a)
{
	int n = parse_options(cmd, argc, argv);

	if (n < 0)
		return opt_exit_status(n);
	if (n == 0) {
		opt_print_help(cmd, stderr);
		return EXIT_USAGE;
	}
	if (n > 1) {
		error("%s: more than one image given ('%s' and '%s')", cmd->name, argv[0], argv[1]);
		return EXIT_USAGE;
	}
	a->image = argv[0];
	return -1;
}

/*
 * The built-in variable imgforge_agent: the imgforge-update binary that
 * images carry (recipes/ab-boot-files.yaml). $IMGFORGE_AGENT, else the one
 * next to the running imgforge (a build tree, or a bin/ with both), else the
 * installed one, so that a build uses the agent of its own source tree.
 */
static char *agent_path(void)
{
	const char *env = getenv("IMGFORGE_AGENT");
	char exe[4096];
	ssize_t n;

	if (env && *env)
		return xstrdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		_cleanup_free_ char *dir = NULL, *path = NULL;

		exe[n] = '\0';
		dir = path_dirname(exe);
		path = path_join(dir, "imgforge-update");
		if (access(path, X_OK) == 0)
			return TAKE_PTR(path);
	}
	return xstrdup(IMGFORGE_AGENTDIR "/imgforge-update");
}

int recipe_args_load_diags(struct recipe_args *a, struct recipe **ret, struct diags *d)
{
	struct recipe_opts opts = { 0 };
	_cleanup_free_ char *env_default = NULL, *env_security = NULL, *env_path = NULL;
	_cleanup_free_ char *agent = agent_path(), *agent_default = NULL;
	_cleanup_free_ const char **dirs = NULL;
	const char *defaults[3];
	const char *mirror = getenv("IMGFORGE_MIRROR");
	const char *security = getenv("IMGFORGE_SECURITY_MIRROR");
	size_t i, j;
	int r;

	opts.profile = a->profile;
	opts.sets = a->sets;
	opts.nsets = a->nsets;
	opts.defaults = defaults;
	if (mirror && *mirror) {
		env_default = xasprintf("mirror=%s", mirror);
		defaults[opts.ndefaults++] = env_default;
	}
	if (security && *security) {
		env_security = xasprintf("security_mirror=%s", security);
		defaults[opts.ndefaults++] = env_security;
	}
	agent_default = xasprintf("imgforge_agent=%s", agent);
	defaults[opts.ndefaults++] = agent_default;
	dirs = search_path(a, &env_path, &opts.ninclude_dirs);
	opts.include_dirs = dirs;
	r = recipe_load(a->image, &opts, ret, d);
	if (r < 0)
		return r;
	/* A --set nothing uses is most likely a misspelt name (--mirror is for every image). */
	for (i = 0; i < a->nsets; i++) {
		const char *eq = strchr(a->sets[i], '=');
		_cleanup_free_ char *name = xstrndup(a->sets[i], (size_t)(eq - a->sets[i]));
		struct ypos pos = { "--set", 0, 0 };
		bool from_mirror = false;

		for (j = 0; j < a->nowned; j++)
			from_mirror |= a->owned[j] == a->sets[i];
		if (!from_mirror && !recipe_var_used(*ret, name))
			diags_warn(d, &pos, "'--set %s': no recipe uses the variable '%s'",
				   a->sets[i], name);
	}
	return 0;
}

int recipe_args_load(struct recipe_args *a, struct recipe **ret)
{
	struct diags d = { 0 };
	int r;

	r = recipe_args_load_diags(a, ret, &d);
	diags_print(&d);
	if (r < 0 && d.nerrors > 1)
		fprintf(stderr, "%s: %zu errors\n", a->image, d.nerrors);
	diags_release(&d);
	return r;
}

int recipe_cmd_load(const struct opt_cmd *cmd, int argc, char **argv, struct recipe_args *a,
		    struct recipe **ret, struct stage_keys *ret_keys)
{
	struct diags d = { 0 };
	struct recipe *rec = NULL;
	int r = recipe_cmd_parse(cmd, argc, argv, a);

	if (r >= 0)
		return r;
	if (recipe_args_load(a, &rec) < 0)
		return 1;
	if (ret_keys && keys_compute(rec, ret_keys, &d) < 0) {
		diags_print(&d);
		diags_release(&d);
		recipe_free(rec);
		return 1;
	}
	*ret = rec;
	return -1;
}

/* --- a registered build's output --- */

/* Whether the manifest.json in dir names build id: the outputs there are still that build's. */
static bool manifest_names(const char *dir, const char *id)
{
	_cleanup_free_ char *mpath = path_join(dir, "manifest.json"), *text = NULL;
	struct jsonr *doc = NULL;
	const struct jsonr_value *v;
	char jerr[256];
	size_t len;
	bool ok;

	if (read_file(mpath, 64u << 20, &text, &len) < 0 ||
	    jsonr_parse(text, len, &doc, jerr, sizeof(jerr)) < 0)
		return false;
	v = jsonr_get(&doc->root, "build_id");
	ok = v && v->type == JSONR_STRING && !strcmp(v->s, id);
	jsonr_free(doc);
	return ok;
}

int build_fetched_dir(const char *cache, const char *id, char **ret, struct strbuf *err)
{
	_cleanup_free_ char *dir = NULL;
	int r;

	if (cache)
		dir = xstrdup(cache);
	else if ((r = cache_default_dir(&dir, err)) < 0)
		return r;
	*ret = xasprintf("%s/builds/%s", dir, id);
	return 0;
}

/* Whether dir holds output o of build b as the query checks it. */
static bool holds_output(const struct build_output_query *q, const struct registry_build *b,
			 const struct registry_output *o, const char *dir)
{
	_cleanup_free_ char *file = path_join(dir, q->output);
	char hex[SHA256_HEX_LEN];
	struct stat st;

	if (q->check_sha256)
		return sha256_file(file, hex, NULL) >= 0 && !strcmp(hex, o->sha256);
	return manifest_names(dir, b->id) && stat(file, &st) == 0;
}

int build_output_resolve(const struct build_output_query *q, const char *id,
			 struct registry_build **ret_build, char **ret_path)
{
	_cleanup_free_ char *dir = NULL, *path = NULL, *file = NULL, *fetched = NULL;
	struct strbuf err = STRBUF_INIT;
	struct registry *reg = NULL;
	struct registry_build *b = NULL;
	const struct registry_output *o = NULL;
	struct stat st;
	size_t i;
	int r = -1;

	if (registry_location(q->registry)) {
		path = xstrdup(registry_location(q->registry));
	} else {
		if (q->cache)
			dir = xstrdup(q->cache);
		else if (cache_default_dir(&dir, &err) < 0) {
			error("%s: %s", q->cmd, strbuf_str(&err));
			goto out;
		}
		path = path_join(dir, "registry.db");
	}
	if (!str_startswith(path, "postgres") && stat(path, &st) < 0) {
		if (q->takes_file)
			error("%s: '%s' is neither a file nor a registered build (no registry at "
			      "'%s'); %s",
			      q->cmd, id, path, q->give);
		else
			error("%s: '%s' is not a registered build (no registry at '%s'); %s",
			      q->cmd, id, path, q->give);
		goto out;
	}
	if (registry_open_readonly(path, &reg, &err) < 0 || registry_get(reg, id, &b, &err) < 0) {
		if (q->takes_file)
			error("%s: '%s' is not a file, and %s; %s", q->cmd, id, strbuf_str(&err),
			      q->give);
		else
			error("%s: %s; %s", q->cmd, strbuf_str(&err), q->give);
		goto out;
	}
	for (i = 0; i < b->n_outputs; i++)
		if (!strcmp(b->outputs[i].name, q->output))
			o = &b->outputs[i];
	if (!o) {
		error("%s: build %s has no %s on record; %s", q->cmd, b->id, q->output,
		      q->no_output);
		goto out;
	}
	/*
	 * Where the build wrote its outputs, else where 'imgforge fetch' put
	 * them on this machine (a build made on another one).
	 */
	if (build_fetched_dir(q->cache, b->id, &fetched, &err) < 0)
		strbuf_reset(&err);
	if (b->outdir && holds_output(q, b, o, b->outdir)) {
		file = path_join(b->outdir, q->output);
	} else if (fetched && holds_output(q, b, o, fetched)) {
		file = path_join(fetched, q->output);
	} else if (!b->outdir) {
		error("%s: build %s has no %s on record; %s (or 'imgforge fetch %s' from the "
		      "shared store)",
		      q->cmd, b->id, q->output, q->no_output, b->id);
		goto out;
	} else if (q->check_sha256) {
		error("%s: '%s/%s' is not the %s build %s wrote (missing, or replaced by a "
		      "later build); %s, or 'imgforge fetch %s' from the shared store",
		      q->cmd, b->outdir, q->output, q->output, b->id, q->stale, b->id);
		goto out;
	} else {
		error("%s: '%s' no longer holds the outputs of build %s (removed, or written by a "
		      "later build); %s, or 'imgforge fetch %s' from the shared store",
		      q->cmd, b->outdir, b->id, q->stale, b->id);
		goto out;
	}
	if (ret_build)
		*ret_build = TAKE_PTR(b);
	*ret_path = TAKE_PTR(file);
	r = 0;
out:
	registry_build_free(b);
	registry_close(reg);
	strbuf_release(&err);
	return r;
}
