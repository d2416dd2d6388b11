/* SPDX-License-Identifier: MIT */
/* imgforge build: run the stages of an image definition, cached, registered. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "build/pipeline.h"
#include "recipe/recipe.h"
#include "core/util.h"

static const char build_usage[] =
	"usage: imgforge build IMAGE.yaml [--profile P] [--set NAME=VALUE]... [--mirror URL]\n"
	"                      [-o OUTDIR] [--cache DIR] [--registry PATH] [--verify]\n"
	"\n"
	"Build the image: the base (mmdebstrap, or a fetched tarball), then the root\n"
	"filesystem with overlays, files and services, written as ext4. Each stage is\n"
	"cached under the key `imgforge plan` prints and is not run again while its\n"
	"inputs are unchanged. Writes root.ext4 (and disk.raw), manifest.json and\n"
	"build.log into OUTDIR (default out/<image>-<version>-<profile>) as one set,\n"
	"replacing the previous set only when the build succeeds, and records the\n"
	"build in the registry (see imgforge ls, show, diff). One build at a time\n"
	"writes into an OUTDIR: a second one fails at once.\n"
	"\n"
	"   --profile P        apply profile P from the file's profiles: map\n"
	"   --set NAME=VALUE   set a variable (wins over the recipe's variables:)\n"
	"   --mirror URL       shorthand for --set mirror=URL ($IMGFORGE_MIRROR by default)\n"
	"   -o, --output DIR   where to write the outputs\n"
	"   --cache DIR        cache directory (default $XDG_CACHE_HOME/imgforge)\n"
	"   --registry PATH    build registry (default <cache>/registry.db)\n"
	"   --verify           re-hash cached files instead of trusting their metadata\n"
	"\n"
	"SOURCE_DATE_EPOCH sets the time every timestamp is clamped to; with it, the\n"
	"same inputs give the same root.ext4, byte for byte.\n";

/* build's own options: -o/--output, --cache, --registry (each with a value), --verify. */
static int build_option(void *userdata, int argc, char **argv, int *i)
{
	struct build_opts *o = userdata;
	const char *arg = argv[*i];
	const char **slot = NULL;

	if (!strcmp(arg, "--verify")) {
		o->verify = true;
		return 1;
	}
	if (!strcmp(arg, "-o") || !strcmp(arg, "--output"))
		slot = &o->outdir;
	else if (!strcmp(arg, "--cache"))
		slot = &o->cache;
	else if (!strcmp(arg, "--registry"))
		slot = &o->registry;
	if (!slot)
		return 0;
	if (*i + 1 >= argc) {
		error("build: option '%s' needs a value", arg);
		return -1;
	}
	*slot = argv[++*i];
	return 1;
}

int cmd_build(int argc, char **argv)
{
	struct recipe_args a = { 0 };
	struct build_opts o = { 0 };
	struct build_result res = { 0 };
	struct recipe *r = NULL;
	struct stage_keys keys;
	struct diags d = { 0 };
	int ret = 0;

	if (recipe_cmd_parse("build", build_usage, argc, argv, &a, build_option, &o, &ret) < 0)
		goto out;
	if (recipe_args_load(&a, &r) < 0) {
		ret = 1;
		goto out;
	}
	if (recipe_stage_keys(r, &keys, &d) < 0) {
		diags_print(&d);
		ret = 1;
		goto out;
	}
	if (pipeline_build(r, &keys, &o, &res) < 0) {
		ret = 1;
		goto out;
	}
	if (a.json)
		printf("{\"build_id\": \"%s\", \"outdir\": \"%s\"}\n", res.id, res.outdir);
	else if (log_get_level() == LOG_QUIET)
		printf("%s\n", res.id);
out:
	build_result_release(&res);
	diags_release(&d);
	recipe_free(r);
	recipe_args_release(&a);
	return ret;
}
