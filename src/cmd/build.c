/* SPDX-License-Identifier: MIT */
/* imgforge build: run the stages of an image definition, cached, registered. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/json.h"
#include "build/pipeline.h"
#include "recipe/recipe.h"
#include "core/util.h"

static const char build_usage[] =
	"usage: imgforge build IMAGE.yaml [--profile P] [--set NAME=VALUE]... [--mirror URL]\n"
	"                      [-I DIR]... [-o OUTDIR] [--cache DIR] [--registry PATH|URL]\n"
	"                      [--store s3://BUCKET/PREFIX] [--verify] [--refresh]\n"
	"\n"
	"Build the image: the base (mmdebstrap, or a fetched tarball), then the root\n"
	"filesystem with overlays, files and services, written as ext4. Each stage is\n"
	"cached under a key of its inputs and is not run again while they are\n"
	"unchanged; a package base's inputs include the state of its apt archives\n"
	"(their InRelease files), so a new upload to a suite builds a new base.\n"
	"Writes root.ext4 (and disk.raw), manifest.json and build.log into OUTDIR\n"
	"(default out/<image>-<version>-<profile>) as one set, replacing the\n"
	"previous set only when the build succeeds, and records the build in the\n"
	"registry (see imgforge ls, show, diff). One build at a time writes into an\n"
	"OUTDIR: a second one fails at once.\n";

static const char build_footer[] =
	"SOURCE_DATE_EPOCH sets the time every timestamp is clamped to; with it, the\n"
	"same inputs give the same root.ext4, byte for byte.\n"
	"Without --mirror or $IMGFORGE_MIRROR, a package base is built from this\n"
	"machine's own apt sources for its suites ($IMGFORGE_SECURITY_MIRROR or\n"
	"--set security_mirror=URL for the -security suites).\n";

int cmd_build(int argc, char **argv)
{
	struct recipe_args a = { 0 };
	struct build_opts o = { 0 };
	struct build_result res = { 0 };
	struct recipe *r = NULL;
	struct stage_keys keys;
	const struct opt opts[] = {
		RECIPE_OPTIONS(&a),
		OPT_STRING('o', "output", &o.outdir, "DIR", "where to write the outputs"),
		OPT_STRING(0, "cache", &o.cache, "DIR",
			   "cache directory (default $XDG_CACHE_HOME/imgforge)"),
		OPT_STRING(0, "registry", &o.registry, "PATH|URL",
			   "build registry: an SQLite file or a postgresql:// URL\n"
			   "(default $IMGFORGE_REGISTRY, else <cache>/registry.db)"),
		OPT_STRING(0, "store", &o.store, "s3://BUCKET/PREFIX",
			   "share stages and outputs through this S3 store\n"
			   "(default $IMGFORGE_STORE; see docs/registry.md)"),
		OPT_FLAG(0, "verify", &o.verify,
			 "re-hash cached files instead of trusting their metadata"),
		OPT_FLAG(0, "refresh", &o.refresh,
			 "check the apt archives now, even when checked within the hour"),
		OPT_FLAG(0, "json", &a.json, "print the result as JSON"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "build",
		.usage = build_usage,
		.opts = opts,
		.footer = build_footer,
	};
	int ret;

	ret = recipe_cmd_load(&cmd, argc, argv, &a, &r, &keys);
	if (ret >= 0)
		goto out;
	if (o.outdir && !*o.outdir) {
		error("build: the output directory name is empty (-o OUTDIR); see 'imgforge build "
		      "--help'");
		ret = EXIT_USAGE;
		goto out;
	}
	ret = 0;
	if (pipeline_build(r, &keys, &o, &res) < 0) {
		ret = 1;
		goto out;
	}
	if (a.json) {
		/* The output directory is a user's path: any bytes, escaped by the writer. */
		struct strbuf out = STRBUF_INIT;
		struct json j;

		json_init(&j, &out, false);
		json_begin_object(&j);
		json_kv_string(&j, "build_id", res.id);
		json_kv_string(&j, "outdir", res.outdir);
		json_end_object(&j);
		printf("%s\n", out.buf);
		strbuf_release(&out);
	} else if (log_get_level() == LOG_QUIET)
		printf("%s\n", res.id);
out:
	build_result_release(&res);
	recipe_free(r);
	recipe_args_release(&a);
	return ret;
}
