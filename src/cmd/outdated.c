/* SPDX-License-Identifier: MIT */
/* imgforge outdated: the packages of a build an archive now has newer versions of. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "build/archive.h"
#include "build/outdated.h"
#include "cmd/cmd.h"
#include "core/json.h"
#include "recipe/recipe.h"
#include "store/cache.h"
#include "store/registry.h"

static const char outdated_usage[] =
	"usage: imgforge outdated IMAGE.yaml [--profile P] [--set NAME=VALUE]... [--mirror URL]\n"
	"                         [--build ID] [--cache DIR] [--registry PATH] [--json]\n"
	"\n"
	"List the packages of a registered build of IMAGE that the image's apt\n"
	"archives now have newer versions of (security fixes, point releases), one\n"
	"line each: PACKAGE INSTALLED -> AVAILABLE (SUITE). The archives are those a\n"
	"build of IMAGE would use now; their Packages indexes are fetched. The build\n"
	"is the latest registered one of IMAGE and its profile, or --build ID.\n";

static const char outdated_footer[] =
	"Exit status: 0 nothing newer, 3 newer packages (rebuild the image),\n"
	"1 error, 2 usage error.\n";

#define EXIT_OUTDATED 3

/* The id of the newest registered build of image and profile, or NULL. */
static char *latest_build(struct registry *reg, const char *image, const char *profile,
			  struct strbuf *err)
{
	struct registry_summary *s = NULL;
	size_t n = 0, i;
	char *id = NULL;
	int64_t best = INT64_MIN;

	if (registry_list(reg, &s, &n, err) < 0)
		return NULL;
	for (i = 0; i < n; i++)
		if (!strcmp(s[i].image, image) && !strcmp(s[i].profile ? s[i].profile : "", profile) &&
		    s[i].created >= best) {
			best = s[i].created;
			free(id);
			id = xstrdup(s[i].id);
		}
	registry_summaries_free(s, n);
	return id;
}

int cmd_outdated(int argc, char **argv)
{
	struct recipe_args a = { 0 };
	struct recipe *r = NULL;
	const char *build_id = NULL, *cache = NULL, *regpath = NULL;
	const struct opt opts[] = {
		RECIPE_OPTIONS(&a),
		OPT_STRING(0, "build", &build_id, "ID", "the build to check (default: the latest)"),
		OPT_STRING(0, "cache", &cache, "DIR",
			   "cache directory (default $XDG_CACHE_HOME/imgforge)"),
		OPT_STRING(0, "registry", &regpath, "PATH",
			   "build registry (default <cache>/registry.db)"),
		OPT_FLAG(0, "json", &a.json, "print JSON"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "outdated",
		.usage = outdated_usage,
		.opts = opts,
		.footer = outdated_footer,
	};
	struct strbuf err = STRBUF_INIT, out = STRBUF_INIT;
	_cleanup_free_ char *dir = NULL, *path = NULL, *id = NULL;
	_cleanup_registry_ struct registry *reg = NULL;
	_cleanup_build_ struct registry_build *b = NULL;
	struct archive arch = { 0 };
	struct outdated_pkg *res = NULL;
	size_t n = 0, i;
	int ret;

	ret = recipe_cmd_load(&cmd, argc, argv, &a, &r, NULL);
	if (ret >= 0)
		goto out;
	ret = 1;
	if (recipe_get(r, "base.tarball")) {
		error("outdated: '%s' has a tarball base: there is no apt archive to compare with",
		      a.image);
		goto out;
	}
	regpath = registry_location(regpath);
	if (regpath) {
		path = xstrdup(regpath);
	} else {
		if (cache)
			dir = xstrdup(cache);
		else if (cache_default_dir(&dir, &err) < 0) {
			error("outdated: %s", err.buf);
			goto out;
		}
		path = path_join(dir, "registry.db");
	}
	{
		struct stat st;
		if (stat(path, &st) < 0) {
			error("outdated: no registry at '%s'; builds are registered by 'imgforge "
			      "build'",
			      path);
			goto out;
		}
	}
	if (registry_open_readonly(path, &reg, &err) < 0) {
		error("outdated: %s", err.buf);
		goto out;
	}
	if (!build_id) {
		id = latest_build(reg, recipe_get_str(r, "image", ""), r->profile, &err);
		if (!id) {
			if (err.len)
				error("outdated: %s", err.buf);
			else
				error("outdated: no build of '%s' (profile %s) is registered in "
				      "'%s'; build it, or give --build ID",
				      recipe_get_str(r, "image", ""), r->profile, path);
			goto out;
		}
		build_id = id;
	}
	if (registry_get(reg, build_id, &b, &err) < 0) {
		error("outdated: %s; run 'imgforge ls' to list the builds", err.buf);
		goto out;
	}
	if (archive_resolve(r, &arch, &err) < 0) {
		error("outdated: %s", err.buf);
		goto out;
	}
	if (outdated_check(&arch, recipe_get_str(r, "base.architecture", "amd64"), b->packages,
			   b->n_packages, &res, &n, &err) < 0) {
		error("outdated: %s", err.buf);
		goto out;
	}
	if (a.json) {
		struct json j;

		json_init(&j, &out, true);
		json_begin_object(&j);
		json_kv_string(&j, "build_id", b->id);
		json_key(&j, "packages");
		json_begin_array(&j);
		for (i = 0; i < n; i++) {
			json_begin_object(&j);
			json_kv_string(&j, "name", res[i].name);
			json_kv_string(&j, "architecture", res[i].arch);
			json_kv_string(&j, "installed", res[i].installed);
			json_kv_string(&j, "available", res[i].available);
			json_kv_string(&j, "suite", res[i].suite);
			json_end_object(&j);
		}
		json_end_array(&j);
		json_end_object(&j);
		strbuf_addch(&out, '\n');
	} else {
		for (i = 0; i < n; i++)
			strbuf_addf(&out, "%s %s -> %s (%s)\n", res[i].name, res[i].installed,
				    res[i].available, res[i].suite);
	}
	fwrite(out.buf ? out.buf : "", 1, out.len, stdout);
	if (!n)
		info("outdated: build %s is up to date with %zu suites", b->id, arch.n);
	ret = n ? EXIT_OUTDATED : 0;
out:
	outdated_free(res, n);
	archive_release(&arch);
	strbuf_release(&err);
	strbuf_release(&out);
	recipe_free(r);
	recipe_args_release(&a);
	return ret;
}
