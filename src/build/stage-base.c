/* SPDX-License-Identifier: MIT */
/* The base stage: a root file system tarball from mmdebstrap, or fetched. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/archive.h"
#include "build/stage.h"
#include "core/hash.h"
#include "core/spawn.h"
#include "net/fetch.h"
#include "store/cache.h"

/*
 * The most telling error line of mmdebstrap's output in the log: the first
 * "E: " line that is not mmdebstrap's own summary of a failed step (those
 * repeat the command line), else the last "E: " line.
 */
static char *last_error_line(const char *log_path, off_t from)
{
	_cleanup_free_ char *buf = NULL;
	char *first = NULL, *last = NULL, *line, *save = NULL;
	size_t len;

	if (read_file(log_path, 64 << 20, &buf, &len) < 0)
		return xstrdup("(no output)");
	if ((size_t)from > len)
		from = 0;
	for (line = strtok_r(buf + from, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!str_startswith(line, "E: "))
			continue;
		last = line;
		if (!first && !str_startswith(line, "E: setup failed") &&
		    !str_startswith(line, "E: mmdebstrap failed") && !strstr(line, " failed: E: "))
			first = line;
	}
	return xstrdup(first ? first : last ? last : "(see the log)");
}

static const char *const minimize_excludes[] = {
	"path-exclude=/usr/share/man/*",    "path-exclude=/usr/share/doc/*",
	"path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/info/*",
	"path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
	"path-exclude=/usr/share/lintian/*", "path-exclude=/usr/share/linda/*",
};

/*
 * mmdebstrap's output goes to the build log (spawn_run copies it there); on
 * a terminal one live line shows the elapsed time and its latest message
 * (it does not scroll), and --verbose echoes every line.
 */
struct follow {
	int64_t t0;
	bool live;
};

static void follow_line(const char *line, void *userdata)
{
	struct follow *f = userdata;

	/* Package scripts print what they like: control bytes reach no terminal. */
	line = quote_path(line);
	if (log_get_level() >= LOG_VERBOSE)
		fprintf(stderr, "%s\n", line);
	if (f->live && *line) {
		double e = seconds_since(f->t0);
		fprintf(stderr, "\r\033[Kbase: mmdebstrap %d:%02d %.60s", (int)e / 60, (int)e % 60,
			line);
		fflush(stderr);
	}
}

/*
 * The .deb files of earlier builds from the same archive, suite and
 * architecture: <cache>/debs/<id>/. mmdebstrap copies them into the chroot's
 * /var/cache/apt/archives before it downloads (apt checks each against the
 * archive's hashes and fetches only what is missing or different), and the
 * files of this build are copied out after it, into a private directory that
 * is then moved in file by file: two builds at once never write one file.
 * mmdebstrap's own cleanup empties the archives before the tarball is made,
 * so nothing of this ends up in the image and the base is the same bytes.
 */
struct deb_cache {
	char *dir; /* shared, read by sync-in */
	char *out; /* this build's, written by sync-out; flock'ed while in use */
	int out_fd;
};

/* Remove what interrupted builds left in <root>/.new-*: what no running build holds locked. */
static void deb_cache_clean(const char *root)
{
	struct dirent *de;
	DIR *d = opendir(root);

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		_cleanup_close_ int fd = -1;

		if (!str_startswith(de->d_name, ".new-"))
			continue;
		p = path_join(root, de->d_name);
		fd = open(p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
			rm_rf(p);
	}
	if (d)
		closedir(d);
}

/* mmdebstrap splits a special hook's arguments at spaces: only plain paths. */
static bool hook_safe_path(const char *p)
{
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("/._-+", *p)))
			return false;
	return true;
}

static void deb_cache_open(struct build_ctx *c, const char *mirror, struct deb_cache *ret)
{
	struct sha256 *h = sha256_new();
	char id[SHA256_HEX_LEN];
	_cleanup_free_ char *root = path_join(cache_dir(c->cache), "debs");

	memset(ret, 0, sizeof(*ret));
	ret->out_fd = -1;
	sha256_update_str(h, mirror ? mirror : "");
	sha256_update_str(h, "\n");
	sha256_update_str(h, recipe_get_str(c->r, "base.suite", "bookworm"));
	sha256_update_str(h, "\n");
	sha256_update_str(h, recipe_get_str(c->r, "base.architecture", "amd64"));
	sha256_final_hex(h, id);
	sha256_free(h);
	id[16] = '\0';
	ret->dir = path_join(root, id);
	ret->out = path_join(root, ".new-XXXXXX");
	if (hook_safe_path(ret->dir) && mkdir_p(ret->dir, 0755) == 0) {
		deb_cache_clean(root);
		if (mkdtemp(ret->out))
			ret->out_fd = open(ret->out, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (ret->out_fd < 0 || flock(ret->out_fd, LOCK_EX) < 0) {
		build_step(c, "base: no shared .deb cache under '%s'; every package is downloaded",
			   root);
		if (ret->out_fd >= 0) {
			close(ret->out_fd);
			rm_rf(ret->out);
		}
		free(ret->dir);
		free(ret->out);
		memset(ret, 0, sizeof(*ret));
		ret->out_fd = -1;
	}
}

/* Move this build's new .deb files into the shared directory; drop the rest. */
static void deb_cache_close(struct build_ctx *c, struct deb_cache *d, bool keep)
{
	unsigned added = 0;
	struct dirent *de;
	DIR *dir;

	if (!d->out)
		return;
	dir = keep ? opendir(d->out) : NULL;
	while (dir && (de = readdir(dir))) {
		_cleanup_free_ char *from = NULL, *to = NULL;

		if (!str_endswith(de->d_name, ".deb") || de->d_name[0] == '.')
			continue;
		from = path_join(d->out, de->d_name);
		to = path_join(d->dir, de->d_name);
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
			added++;
	}
	if (dir)
		closedir(dir);
	if (added) {
		(void)fsync_dir(d->dir);
		build_step(c, "base: %u new .deb files kept for later builds", added);
	}
	rm_rf(d->out);
	close(d->out_fd);
	free(d->dir);
	free(d->out);
	memset(d, 0, sizeof(*d));
	d->out_fd = -1;
}

static int run_mmdebstrap(struct build_ctx *c, const char *out_tar)
{
	const struct ynode *base = recipe_get(c->r, "base");
	const struct ynode *pkgs = recipe_get(c->r, "packages");
	const struct ynode *bpkgs = ynode_map_get(base, "packages");
	const struct ynode *comps = ynode_map_get(base, "components");
	const struct ynode *excl = ynode_map_get(base, "exclude");
	const struct ynode *keyring = ynode_map_get(base, "keyring");
	const struct archive *a = c->archive;
	const char *mirror = a && a->n ? a->v[0].uri : NULL;
	const char *minimize = recipe_get_str(c->r, "base.minimize", "true");
	char **argv = NULL;
	size_t n = 0, alloc = 0, i;
	struct strbuf inc = STRBUF_INIT, cs = STRBUF_INIT;
	struct spawn_opts so = { 0 };
	struct spawn_status st;
	struct follow f;
	struct deb_cache debs;
	off_t log_start;
	int r = 0;

	deb_cache_open(c, mirror, &debs);
#define ARG(s) (GROW(argv, alloc, n + 2), argv[n++] = (s))
	ARG(xstrdup("mmdebstrap"));
	ARG(xasprintf("--mode=%s", geteuid() == 0 ? "root" : "unshare"));
	ARG(xstrdup("--format=tar"));
	ARG(xasprintf("--variant=%s", recipe_get_str(c->r, "base.variant", "minbase")));
	ARG(xasprintf("--architectures=%s", recipe_get_str(c->r, "base.architecture", "amd64")));
	/* With sources given as "deb" lines, their components are in the lines. */
	for (i = 0; !a && comps && i < comps->n; i++)
		strbuf_addf(&cs, "%s%s", i ? "," : "", comps->v[i]->str);
	if (cs.len)
		ARG(xasprintf("--components=%s", cs.buf));
	/* A snapshot's Release files are past their Valid-Until by design. */
	if (a && a->snapshot)
		ARG(xstrdup("--aptopt=Acquire::Check-Valid-Until \"false\""));
	for (i = 0; bpkgs && i < bpkgs->n; i++)
		strbuf_addf(&inc, "%s%s", inc.len ? "," : "", bpkgs->v[i]->str);
	for (i = 0; pkgs && i < pkgs->n; i++)
		strbuf_addf(&inc, "%s%s", inc.len ? "," : "", pkgs->v[i]->str);
	if (inc.len)
		ARG(xasprintf("--include=%s", inc.buf));
	if (keyring && keyring->abspath)
		ARG(xasprintf("--keyring=%s", keyring->abspath));
	if (strcmp(minimize, "false") && strcmp(minimize, "no") && strcmp(minimize, "off"))
		for (i = 0; i < ARRAY_SIZE(minimize_excludes); i++)
			ARG(xasprintf("--dpkgopt=%s", minimize_excludes[i]));
	for (i = 0; excl && i < excl->n; i++)
		ARG(xasprintf("--dpkgopt=path-exclude=%s", excl->v[i]->str));
	if (debs.dir) {
		ARG(xstrdup("--skip=essential/unlink"));
		ARG(xstrdup("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/"));
		ARG(xasprintf("--setup-hook=sync-in %s /var/cache/apt/archives/", debs.dir));
		ARG(xasprintf("--customize-hook=sync-out /var/cache/apt/archives %s", debs.out));
	}
	/*
	 * An extra source's keyring is a host path: apt reads it there while
	 * mmdebstrap builds, and the image gets its own copy in /etc/apt/keyrings
	 * with its sources.list pointing there, never at the host's path.
	 */
	for (i = 0; a && i < a->n; i++) {
		const char *k = a->v[i].signed_by;
		size_t j;
		bool seen = false;

		if (!k)
			continue;
		for (j = 0; j < i; j++)
			seen |= a->v[j].signed_by && !strcmp(a->v[j].signed_by, k);
		if (seen)
			continue;
		if (!hook_safe_path(k)) {
			r = build_fail(c, -EINVAL,
				       "base.sources: the keyring path '%s' has characters mmdebstrap "
				       "hooks cannot take: use letters, digits and '/._-+'",
				       quote_path(k));
			goto out;
		}
		ARG(xstrdup("--customize-hook=mkdir -p \"$1/etc/apt/keyrings\""));
		ARG(xasprintf("--customize-hook=upload %s /etc/apt/keyrings/%s", k,
			      path_basename(k)));
		ARG(xasprintf("--customize-hook=sed -i 's|signed-by=%s|signed-by=/etc/apt/keyrings/%s|' "
			      "\"$1/etc/apt/sources.list\"",
			      k, path_basename(k)));
	}
	/* What follows are operands: a suite or mirror can never be read as an option. */
	ARG(xstrdup("--"));
	/* Reproducible: mmdebstrap clamps to SOURCE_DATE_EPOCH itself when set. */
	ARG(xstrdup(recipe_get_str(c->r, "base.suite", "bookworm")));
	ARG(xstrdup(out_tar));
	for (i = 0; a && i < a->n; i++)
		ARG(archive_source_line(&a->v[i]));
	argv[n] = NULL;
#undef ARG

	{
		struct strbuf line = STRBUF_INIT;
		for (i = 0; i < n; i++)
			strbuf_addf(&line, "%s%s", i ? " " : "", argv[i]);
		build_step(c, "base: running %s", line.buf);
		strbuf_release(&line);
	}
	log_start = lseek(c->log_fd, 0, SEEK_END);
	f.t0 = monotonic_ms();
	f.live = isatty(2) && log_get_level() == LOG_NORMAL;
	so.log_fd = c->log_fd;
	so.on_line = follow_line;
	so.userdata = &f;
	r = spawn_run(argv, &so, &st);
	if (f.live)
		fputs("\r\033[K", stderr);
	if (r == -ENOENT) {
		r = build_fail(c, r, "mmdebstrap is not installed: install the Debian package "
			       "'mmdebstrap' (make deps does)");
	} else if (r < 0) {
		r = build_fail(c, r, "cannot run mmdebstrap: %s", strerror(-r));
	} else if (!spawn_status_ok(&st)) {
		_cleanup_free_ char *why = last_error_line(c->log_path, log_start);
		char how[64];

		r = build_fail(c, -EIO, "mmdebstrap failed: %s (it %s; full log: %s)", why,
			 spawn_status_describe(&st, how, sizeof(how)), c->log_name);
	} else {
		build_step(c, "base: mmdebstrap done in %.0f s", seconds_since(f.t0));
	}
out:
	strbuf_release(&inc);
	strbuf_release(&cs);
	deb_cache_close(c, &debs, r == 0);
	for (i = 0; i < n; i++)
		free(argv[i]);
	free(argv);
	return r;
}

static int fetch_progress(void *userdata, uint64_t done, uint64_t total)
{
	(void)userdata;
	if (isatty(2) && log_get_level() >= LOG_NORMAL) {
		char a[32], b[32];
		fprintf(stderr, "\rbase: downloading %s of %s   ", format_size(done, a, sizeof(a)),
			total ? format_size(total, b, sizeof(b)) : "?");
	}
	return 0;
}

int stage_base_run(struct build_ctx *c, const char *input, char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL;
	const struct ynode *tarball = recipe_get(c->r, "base.tarball");
	char sha[SHA256_HEX_LEN];
	int r;

	(void)input; /* the first stage */
	r = build_lookup(c, "base", c->keys->base, ret_path);
	if (r > 0)
		build_step(c, "base: cached (%.12s)", c->keys->base);
	if (r != 0)
		return r;

	if (tarball) {
		struct fetch_opts fo = FETCH_OPTS_DEFAULT;
		const char *src = tarball->abspath ? tarball->abspath : tarball->str;
		const char *want = recipe_get_str(c->r, "base.sha256", "");

		/* A stable download name: an interrupted download resumes next time. */
		r = cache_download_path(c->cache, want, &tmp, &err);
		if (r < 0)
			goto cache_error;
		fo.progress = fetch_progress;
		build_step(c, "base: fetching %s", tarball->str);
		r = fetch_file(src, tmp, want, &fo, sha, &err);
		if (isatty(2) && log_get_level() >= LOG_NORMAL)
			fputs("\r\033[K", stderr);
		if (r < 0) {
			r = build_fail(c, r, "base: %s", err.buf);
			goto out;
		}
	} else {
		r = cache_tmpfile(c->cache, "base", &tmp, &err);
		if (r < 0)
			goto cache_error;
		r = run_mmdebstrap(c, tmp);
		if (r < 0)
			goto out;
	}
	r = build_store(c, "base", c->keys->base, tmp, ret_path);
	if (r > 0)
		r = 0;
	goto out;
cache_error:
	r = build_fail(c, r, "cache: %s", err.buf);
out:
	strbuf_release(&err);
	return r;
}
