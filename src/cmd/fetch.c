/* SPDX-License-Identifier: MIT */
/*
 * imgforge fetch: a build registered by another machine, its outputs
 * downloaded from the shared store into <cache>/builds/<id>, each checked
 * against the SHA-256 the registry holds, the directory renamed into place
 * only when all of them are there. export, bundle and publish then find
 * the build there by its id (cmd/common.c).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/util.h"
#include "remote/remote.h"
#include "store/cache.h"
#include "store/registry.h"

static const char usage[] =
	"usage: imgforge fetch <build> [--store s3://BUCKET/PREFIX] [--registry PATH|URL]\n"
	"                      [--cache DIR]\n"
	"\n"
	"Download the outputs of a registered build (an id or a unique prefix, see\n"
	"'imgforge ls'), built on another machine into the shared registry, from the\n"
	"shared store into <cache>/builds/<id>. Each file is checked against the\n"
	"SHA-256 the registry holds; one that is not that file is refused and\n"
	"nothing is kept. 'imgforge export', 'bundle' and 'publish' then take the\n"
	"build id as on the machine that built it.\n";

static const char footer[] =
	"The store and the registry are those the build used: --store or\n"
	"$IMGFORGE_STORE, --registry or $IMGFORGE_REGISTRY. S3 credentials and endpoint\n"
	"as for 'imgforge publish --to aws' (AWS_*, ~/.aws). See docs/registry.md.\n";

/* An output's name from a shared registry: a plain file name, nothing that leaves the directory. */
static bool name_safe(const char *n)
{
	return *n && !strchr(n, '/') && strcmp(n, ".") && strcmp(n, "..");
}

/* Whether dir already holds every output at its size (a fetch done before). */
static bool fetched_already(const char *dir, const struct registry_build *b)
{
	struct stat st;
	size_t i;

	for (i = 0; i < b->n_outputs; i++) {
		_cleanup_free_ char *p = path_join(dir, b->outputs[i].name);

		if (stat(p, &st) < 0 || (uint64_t)st.st_size != b->outputs[i].size)
			return false;
	}
	return true;
}

/*
 * The directories of fetches of this build that were stopped (Ctrl-C, a
 * crash): <dest>.tmp-<pid> whose process is gone.
 */
static void remove_stopped(const char *dest)
{
	_cleanup_free_ char *parent = xstrdup(dest);
	char *slash = strrchr(parent, '/');
	const char *base;
	struct dirent *e;
	DIR *d;

	if (!slash)
		return;
	*slash = '\0';
	base = slash + 1;
	d = opendir(parent);
	if (!d)
		return;
	while ((e = readdir(d))) {
		size_t n = strlen(base);
		char *end = NULL;
		long pid;

		if (strncmp(e->d_name, base, n) || strncmp(e->d_name + n, ".tmp-", 5))
			continue;
		pid = strtol(e->d_name + n + 5, &end, 10);
		if (pid > 0 && end && !*end && kill((pid_t)pid, 0) < 0 && errno == ESRCH) {
			_cleanup_free_ char *p = path_join(parent, e->d_name);

			rm_rf(p);
		}
	}
	closedir(d);
}

int cmd_fetch(int argc, char **argv)
{
	const char *store = NULL, *registry = NULL, *cache = NULL;
	const struct opt opts[] = {
		OPT_STRING(0, "store", &store, "s3://BUCKET/PREFIX",
			   "the shared store (default $IMGFORGE_STORE)"),
		OPT_STRING(
			0, "registry", &registry, "PATH|URL",
			"build registry (default $IMGFORGE_REGISTRY, else\n<cache>/registry.db)"),
		OPT_STRING(0, "cache", &cache, "DIR",
			   "cache directory (default $XDG_CACHE_HOME/imgforge)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "fetch", .usage = usage, .opts = opts, .footer = footer};
	_cleanup_free_ char *regpath = NULL, *dir = NULL, *dest = NULL, *tmp = NULL;
	_cleanup_remote_ struct remote *rem = NULL;
	struct strbuf err = STRBUF_INIT;
	struct registry *reg = NULL;
	struct registry_build *b = NULL;
	uint64_t total = 0;
	int64_t ts;
	size_t i;
	int n, ret = 1, k;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1) {
		error("fetch: give one build id; see 'imgforge fetch --help'");
		return EXIT_USAGE;
	}
	if (!remote_location(store)) {
		error("fetch: no shared store: give --store s3://BUCKET/PREFIX or set "
		      "IMGFORGE_STORE");
		return EXIT_USAGE;
	}
	if (remote_open(remote_location(store), &rem, &err) < 0) {
		error("fetch: %s", err.buf);
		goto out;
	}
	if (registry_location(registry)) {
		regpath = xstrdup(registry_location(registry));
	} else {
		if (cache)
			dir = xstrdup(cache);
		else if (cache_default_dir(&dir, &err) < 0) {
			error("fetch: %s", err.buf);
			goto out;
		}
		regpath = path_join(dir, "registry.db");
	}
	if (registry_open_readonly(regpath, &reg, &err) < 0 ||
	    registry_get(reg, argv[0], &b, &err) < 0) {
		error("fetch: %s; give a build id from 'imgforge ls' (with the registry the build "
		      "used)",
		      err.buf);
		goto out;
	}
	for (i = 0; i < b->n_outputs; i++)
		if (!name_safe(b->outputs[i].name)) {
			error("fetch: build %s has an output named '%s' in the registry, which is "
			      "not a file name; refused",
			      b->id, b->outputs[i].name);
			goto out;
		}
	if (build_fetched_dir(cache, b->id, &dest, &err) < 0) {
		error("fetch: %s", err.buf);
		goto out;
	}
	if (fetched_already(dest, b)) {
		info("build %s is already here: %s", b->id, dest);
		printf("%s\n", dest);
		ret = 0;
		goto out;
	}
	remove_stopped(dest);
	tmp = xasprintf("%s.tmp-%ld", dest, (long)getpid());
	rm_rf(tmp);
	k = mkdir_p(tmp, 0755);
	if (k < 0) {
		error("fetch: cannot create '%s': %s", tmp, strerror(-k));
		goto out;
	}
	ts = monotonic_ms();
	for (i = 0; i < b->n_outputs; i++) {
		const struct registry_output *o = &b->outputs[i];
		_cleanup_free_ char *p = path_join(tmp, o->name);
		uint64_t size = 0;

		verbose("fetch: %s (%.12s)", o->name, o->sha256);
		k = remote_get_object(rem, o->sha256, p, &size, &err);
		if (k == -ENOENT) {
			error("fetch: %s of build %s is not in the store '%s' (%s); build it again "
			      "with --store, or fetch from the store it was built with",
			      o->name, b->id, remote_url(rem), err.buf);
			goto out;
		}
		if (k < 0) {
			error("fetch: %s of build %s: %s", o->name, b->id, err.buf);
			goto out;
		}
		total += size;
	}
	k = fsync_parent(tmp);
	if (k >= 0 && rename(tmp, dest) < 0) {
		k = -errno;
		/* A fetch of the same build that finished first: its copy is as good. */
		if (k == -ENOTEMPTY || k == -EEXIST) {
			if (fetched_already(dest, b))
				k = 0;
			else if (rm_rf(dest) >= 0)
				k = rename(tmp, dest) < 0 ? -errno : 0;
		}
	}
	if (k >= 0)
		k = fsync_parent(dest);
	if (k < 0) {
		error("fetch: cannot move '%s' to '%s': %s", tmp, dest, strerror(-k));
		goto out;
	}
	{
		char a[32];

		info("fetched build %s: %zu outputs, %s from '%s' in %.1f s", b->id, b->n_outputs,
		     format_size(total, a, sizeof(a)), remote_url(rem), seconds_since(ts));
	}
	printf("%s\n", dest);
	ret = 0;
out:
	if (tmp)
		rm_rf(tmp);
	registry_build_free(b);
	registry_close(reg);
	strbuf_release(&err);
	return ret;
}
