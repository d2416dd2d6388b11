/* SPDX-License-Identifier: MIT */
/* Helpers shared by the commands that read an image definition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "recipe/recipe.h"
#include "core/util.h"

int usage_print(const char *text, bool to_stdout)
{
	fputs(text, to_stdout ? stdout : stderr);
	return to_stdout ? 0 : EXIT_USAGE;
}

int cmd_opt_value(const char *cmd, const char *name, int argc, char **argv, int *i,
		  const char **ret_val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (strncmp(a, name, n))
		return 0;
	if (a[n] == '=') {
		*ret_val = a + n + 1;
		return 1;
	}
	if (a[n])
		return 0;
	if (*i + 1 >= argc) {
		if (cmd)
			error("%s: option '%s' needs a value", cmd, name);
		else
			error("option '%s' needs a value", name);
		return -1;
	}
	*ret_val = argv[++*i];
	return 1;
}

int recipe_args_parse(struct recipe_args *a, int argc, char **argv, int *i)
{
	_cleanup_free_ char *name = NULL;
	const char *val, *eq;
	int r;

	if ((r = cmd_opt_value(NULL, "--profile", argc, argv, i, &val)) != 0) {
		if (r < 0)
			return -1;
		if (!*val) {
			error("--profile needs a profile name");
			return -1;
		}
		a->profile = val;
		return 1;
	}
	if ((r = cmd_opt_value(NULL, "--set", argc, argv, i, &val)) != 0) {
		if (r < 0)
			return -1;
		eq = strchr(val, '=');
		if (!eq || eq == val) {
			error("'--set %s': expected NAME=VALUE", val);
			return -1;
		}
		name = xstrndup(val, (size_t)(eq - val));
		if (!recipe_var_name_valid(name)) {
			error("'--set %s': invalid variable name '%s': use letters, digits and '_'",
			      val, name);
			return -1;
		}
		a->sets = xrealloc(a->sets, (a->nsets + 1) * sizeof(*a->sets));
		a->sets[a->nsets++] = val;
		return 1;
	}
	if ((r = cmd_opt_value(NULL, "--mirror", argc, argv, i, &val)) != 0) {
		if (r < 0)
			return -1;
		a->owned = xrealloc(a->owned, (a->nowned + 1) * sizeof(*a->owned));
		a->owned[a->nowned] = xasprintf("mirror=%s", val);
		a->sets = xrealloc(a->sets, (a->nsets + 1) * sizeof(*a->sets));
		a->sets[a->nsets++] = a->owned[a->nowned++];
		return 1;
	}
	if (!strcmp(argv[*i], "--json")) {
		a->json = true;
		return 1;
	}
	return 0;
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
}

int recipe_cmd_parse(const char *name, const char *usage, int argc, char **argv,
		     struct recipe_args *a, recipe_extra_fn extra, void *userdata, int *ret_exit)
{
	int i, k;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			*ret_exit = usage_print(usage, true);
			return -1;
		}
		k = recipe_args_parse(a, argc, argv, &i);
		if (k == 0 && extra)
			k = extra(userdata, argc, argv, &i);
		if (k < 0) {
			*ret_exit = EXIT_USAGE;
			return -1;
		}
		if (k > 0)
			continue;
		if (argv[i][0] == '-' && argv[i][1]) {
			error("%s: unknown option '%s'; see 'imgforge %s --help'", name, argv[i], name);
			*ret_exit = EXIT_USAGE;
			return -1;
		}
		if (a->image) {
			error("%s: more than one image given ('%s' and '%s')", name, a->image,
			      argv[i]);
			*ret_exit = EXIT_USAGE;
			return -1;
		}
		a->image = argv[i];
	}
	if (!a->image) {
		*ret_exit = usage_print(usage, false);
		return -1;
	}
	return 0;
}

int recipe_args_load_diags(struct recipe_args *a, struct recipe **ret, struct diags *d)
{
	struct recipe_opts opts = { 0 };
	_cleanup_free_ char *env_default = NULL;
	const char *defaults[1];
	const char *mirror = getenv("IMGFORGE_MIRROR");
	size_t i, j;
	int r;

	opts.profile = a->profile;
	opts.sets = a->sets;
	opts.nsets = a->nsets;
	if (mirror && *mirror) {
		env_default = xasprintf("mirror=%s", mirror);
		defaults[0] = env_default;
		opts.defaults = defaults;
		opts.ndefaults = 1;
	}
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
