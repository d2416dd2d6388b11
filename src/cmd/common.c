/* SPDX-License-Identifier: MIT */
/* Helpers shared by the commands that read an image definition. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "recipe/recipe.h"
#include "core/util.h"

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
	if (!strchr(arg, '=')) {
		strbuf_addf(err, "'--set %s' needs the form name=value", arg);
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

/* Returns -1 to go on, else the exit status. */
static int recipe_cmd_parse(const struct opt_cmd *cmd, int argc, char **argv,
			    struct recipe_args *a)
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

static int recipe_args_load(struct recipe_args *a, struct recipe **ret)
{
	struct recipe_opts opts = { 0 };
	struct diags d = { 0 };
	_cleanup_free_ char *env_default = NULL;
	const char *defaults[1];
	const char *mirror = getenv("IMGFORGE_MIRROR");
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
	r = recipe_load(a->image, &opts, ret, &d);
	diags_print(&d);
	if (r < 0 && d.n > 1)
		fprintf(stderr, "%s: %zu errors\n", a->image, d.n);
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
	if (ret_keys && recipe_stage_keys(rec, ret_keys, &d) < 0) {
		diags_print(&d);
		diags_release(&d);
		recipe_free(rec);
		return 1;
	}
	*ret = rec;
	return -1;
}
