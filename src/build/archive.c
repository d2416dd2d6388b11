/* SPDX-License-Identifier: MIT */
/*
 * The apt archives of a package base and their state (build/archive.h).
 * Where a suite comes from: the recipe, else this machine's own apt sources.
 * Its state: the hash of its InRelease, checked over libcurl and recorded in
 * the cache, so that a build without network still knows the last one.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build/archive.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/hash.h"
#include "net/apt-sources.h"
#include "net/fetch.h"

/* InRelease files are a few hundred KiB; anything this large is not one. */
#define INRELEASE_MAX (64u << 20)

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

/* snapshot: the date a snapshot service's URL ends in, or NULL. */
static void add_source(struct archive *a, const char *uri, const char *snapshot,
		       const char *suite, const char *components, const char *signed_by,
		       const char *from)
{
	struct archive_source *s;

	GROW(a->v, a->alloc, a->n + 1);
	s = &a->v[a->n++];
	memset(s, 0, sizeof(*s));
	s->uri = snapshot ? xasprintf("%s/%s", uri, snapshot) : xstrdup(uri);
	s->suite = xstrdup(suite);
	s->components = xstrdup(components);
	s->signed_by = signed_by ? xstrdup(signed_by) : NULL;
	s->from = xstrdup(from);
}

/* Strip trailing slashes from a malloc'd URI. */
static char *trim_uri(char *u)
{
	size_t n = strlen(u);

	while (n > 1 && u[n - 1] == '/')
		u[--n] = '\0';
	return u;
}

/*
 * The security archive next to a mirror: Debian mirrors carry it as a
 * sibling directory (".../debian" and ".../debian-security"); Ubuntu
 * archives carry the -security suites themselves.
 */
static char *derive_security(const char *distro, const char *mirror)
{
	if (!strcmp(distro, "debian")) {
		if (str_endswith(mirror, "/debian"))
			return xasprintf("%s-security", mirror);
		return NULL;
	}
	return xstrdup(mirror);
}

static void join_list(const struct ynode *list, struct strbuf *out, const char *def)
{
	size_t i;

	for (i = 0; list && list->kind == YNODE_SEQ && i < list->n; i++)
		strbuf_addf(out, "%s%s", i ? " " : "", list->v[i]->str);
	if (!out->len)
		strbuf_addstr(out, def);
}

static bool has_updates_and_security(const char *suite)
{
	static const char *const rolling[] = { "sid", "unstable", "experimental", "rc-buggy",
					       "devel" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(rolling); i++)
		if (!strcmp(suite, rolling[i]))
			return false;
	return true;
}

int archive_resolve(const struct recipe *r, struct archive *ret, struct strbuf *err)
{
	const struct ynode *base = recipe_get(r, "base");
	const struct ynode *suites = ynode_map_get(base, "suites");
	const struct ynode *srcs = ynode_map_get(base, "sources");
	const char *distro = recipe_get_str(r, "base.distro", "debian");
	const char *suite = recipe_get_str(r, "base.suite", "bookworm");
	const char *mirror = nonempty(recipe_get_str(r, "base.mirror", NULL));
	const char *security = nonempty(recipe_get_str(r, "base.security_mirror", NULL));
	_cleanup_free_ char *sec_suite = xasprintf("%s-security", suite);
	_cleanup_free_ char *main_uri = NULL, *sec_uri = NULL;
	const char *main_from = "base.mirror", *sec_from = "base.security_mirror";
	struct strbuf comps = STRBUF_INIT;
	struct apt_sources host = { 0 };
	struct archive a = { 0 };
	char **list = NULL;
	size_t nlist = 0, alloc = 0, i;
	bool need_security = false;
	int rr = 0;

	a.snapshot = nonempty(recipe_get_str(r, "base.snapshot", NULL));
	if (suites && suites->kind == YNODE_SEQ) {
		for (i = 0; i < suites->n; i++) {
			GROW(list, alloc, nlist + 1);
			list[nlist++] = xstrdup(suites->v[i]->str);
		}
	} else {
		GROW(list, alloc, nlist + 3);
		list[nlist++] = xstrdup(suite);
		if (has_updates_and_security(suite)) {
			list[nlist++] = xasprintf("%s-updates", suite);
			list[nlist++] = xasprintf("%s-security", suite);
		}
	}
	for (i = 0; i < nlist; i++)
		need_security |= str_endswith(list[i], "-security");

	if (a.snapshot && !mirror) {
		strbuf_addf(err,
			    "base.snapshot '%s' needs the snapshot service's archive URL: pass "
			    "--mirror URL (like http://HOST/archive/%s, without the date) or set "
			    "IMGFORGE_MIRROR",
			    a.snapshot, distro);
		rr = -EINVAL;
		goto out;
	}
	apt_sources_read(NULL, &host);
	if (mirror) {
		main_uri = trim_uri(xstrdup(mirror));
	} else {
		const char *h = apt_sources_uri_for(&host, suite);
		if (!h) {
			strbuf_addf(err,
				    "no archive for '%s': this machine's apt sources name none; "
				    "pass --mirror URL (or set IMGFORGE_MIRROR) to the %s archive "
				    "to build from",
				    suite, distro);
			rr = -EINVAL;
			goto out;
		}
		main_uri = xstrdup(h);
		main_from = "this machine's apt sources";
	}
	if (need_security) {
		if (security) {
			sec_uri = trim_uri(xstrdup(security));
		} else if (!mirror && apt_sources_uri_for(&host, sec_suite)) {
			sec_uri = xstrdup(apt_sources_uri_for(&host, sec_suite));
			sec_from = "this machine's apt sources";
		} else if ((sec_uri = derive_security(distro, main_uri))) {
			sec_from = "next to base.mirror";
		} else {
			strbuf_addf(err,
				    "no archive for '%s': it cannot be derived from the mirror "
				    "'%s'; pass --set security_mirror=URL (or set "
				    "IMGFORGE_SECURITY_MIRROR), or leave '%s' out of base.suites",
				    sec_suite, main_uri, sec_suite);
			rr = -EINVAL;
			goto out;
		}
	}
	join_list(ynode_map_get(base, "components"), &comps, "main");
	for (i = 0; i < nlist; i++) {
		bool sec = str_endswith(list[i], "-security");
		add_source(&a, sec ? sec_uri : main_uri, a.snapshot, list[i], comps.buf, NULL,
			   sec ? sec_from : main_from);
	}
	for (i = 0; srcs && srcs->kind == YNODE_SEQ && i < srcs->n; i++) {
		const struct ynode *s = srcs->v[i];
		const struct ynode *ss = ynode_map_get(s, "suites");
		const struct ynode *kr = ynode_map_get(s, "signed_by");
		struct strbuf c = STRBUF_INIT;
		_cleanup_free_ char *uri = trim_uri(xstrdup(ynode_map_get(s, "uri")->str));
		size_t j;

		/* Extra sources are used as written: the snapshot date is the distro's. */
		join_list(ynode_map_get(s, "components"), &c, "main");
		for (j = 0; ss && j < ss->n; j++)
			add_source(&a, uri, NULL, ss->v[j]->str, c.buf, kr ? kr->abspath : NULL,
				   "base.sources");
		strbuf_release(&c);
	}
	*ret = a;
	memset(&a, 0, sizeof(a));
out:
	archive_release(&a);
	apt_sources_release(&host);
	strbuf_release(&comps);
	for (i = 0; i < nlist; i++)
		free(list[i]);
	free(list);
	return rr;
}

char *archive_source_line(const struct archive_source *s)
{
	if (s->signed_by)
		return xasprintf("deb [signed-by=%s] %s %s %s", s->signed_by, s->uri, s->suite,
				 s->components);
	return xasprintf("deb %s %s %s", s->uri, s->suite, s->components);
}

/* ------------------------------------------------------------------------ */
/* state */

static char *state_path(const char *dir, const struct archive_source *s)
{
	struct sha256 *h = sha256_new();
	char hex[SHA256_HEX_LEN];

	sha256_update_str(h, s->uri);
	sha256_update_str(h, "\n");
	sha256_update_str(h, s->suite);
	sha256_final_hex(h, hex);
	sha256_free(h);
	hex[24] = '\0';
	return path_join(dir, hex);
}

/* "sha256 HEX\nchecked EPOCH\n...": the last state seen, or false. */
static bool state_load(const char *path, const struct archive_source *s, char ret[65],
		       int64_t *ret_checked)
{
	_cleanup_free_ char *buf = NULL, *want_uri = NULL, *want_suite = NULL;
	char hex[65];
	long long t;
	size_t len;
	const char *p;

	if (read_file(path, 65536, &buf, &len) < 0)
		return false;
	want_uri = xasprintf("\nuri %s\n", s->uri);
	want_suite = xasprintf("\nsuite %s\n", s->suite);
	if (!str_startswith(buf, "imgforge-archive-state 1\n") || !strstr(buf, want_uri) ||
	    !strstr(buf, want_suite))
		return false;
	p = strstr(buf, "\nsha256 ");
	if (!p || sscanf(p, "\nsha256 %64s", hex) != 1 || !is_sha256_hex(hex))
		return false;
	p = strstr(buf, "\nchecked ");
	if (!p || sscanf(p, "\nchecked %lld", &t) != 1)
		return false;
	memcpy(ret, hex, 65);
	*ret_checked = t;
	return true;
}

static int state_save(const char *path, const struct archive_source *s, const char *file)
{
	_cleanup_free_ char *text = xasprintf("imgforge-archive-state 1\nuri %s\nsuite %s\n"
					      "file %s\nsha256 %s\nchecked %" PRId64 "\n",
					      s->uri, s->suite, file, s->state, s->checked);
	int r = write_file_atomic(path, text, strlen(text), 0644);

	if (r == 0)
		r = fsync_parent(path);
	return r;
}

/* Fetch dists/SUITE/InRelease, else Release: 0 with s->state set, or -errno with err. */
static int fetch_state(struct archive_source *s, const char **ret_file, struct strbuf *err)
{
	static const char *const files[] = { "InRelease", "Release" };
	struct fetch_opts fo = FETCH_OPTS_DEFAULT;
	size_t i;
	int r = -ENOENT;

	/* A check must not hold a build up for long: a few seconds, one retry. */
	fo.retries = 1;
	fo.retry_delay_ms = 500;
	fo.connect_timeout_s = 10;
	fo.total_timeout_s = 120;
	for (i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *url = xasprintf("%s/dists/%s/%s", s->uri, s->suite, files[i]);
		_cleanup_free_ char *buf = NULL;
		size_t len;

		strbuf_reset(err);
		r = fetch_memory(url, INRELEASE_MAX, &fo, &buf, &len, err);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		sha256_hex(buf, len, s->state);
		s->checked = (int64_t)time(NULL);
		*ret_file = files[i];
		return 0;
	}
	strbuf_reset(err);
	strbuf_addf(err,
		    "no suite '%s' at '%s' (neither dists/%s/InRelease nor Release; from %s): "
		    "check base.suites and the mirror",
		    s->suite, s->uri, s->suite, s->from);
	return r;
}

static void note(const struct archive_check_opts *o, bool warn, const char *fmt, ...)
	_printf_(3, 4);
static void note(const struct archive_check_opts *o, bool warn, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	if (o->note)
		o->note(o->userdata, warn, sb.buf);
	strbuf_release(&sb);
}

int archive_check(struct archive *a, const struct archive_check_opts *o, char ret_digest[65],
		  struct strbuf *err)
{
	struct sha256 *h = NULL;
	size_t i;
	int r;

	r = mkdir_p(o->state_dir, 0755);
	if (r < 0) {
		strbuf_addf(err, "cannot create '%s': %s", o->state_dir, strerror(-r));
		return r;
	}
	for (i = 0; i < a->n; i++) {
		struct archive_source *s = &a->v[i];
		_cleanup_free_ char *path = state_path(o->state_dir, s);
		struct strbuf ferr = STRBUF_INIT;
		char old[65] = "";
		int64_t old_checked = 0, now = (int64_t)time(NULL);
		bool have_old = state_load(path, s, old, &old_checked);
		const char *file = NULL;
		char when[64];

		if (have_old && !o->refresh && now >= old_checked &&
		    now - old_checked < (int64_t)o->max_age_s) {
			memcpy(s->state, old, 65);
			s->checked = old_checked;
			continue;
		}
		r = fetch_state(s, &file, &ferr);
		if (r == 0) {
			if (have_old && strcmp(old, s->state))
				note(o, false, "base: %s %s changed since %s", s->uri, s->suite,
				     format_time(old_checked, true, when, sizeof(when)));
			r = state_save(path, s, file);
			if (r < 0)
				note(o, true, "base: cannot record the archive state in '%s': %s", path,
				     strerror(-r));
		} else if (r != -ENOENT && r != -EINVAL && have_old) {
			memcpy(s->state, old, 65);
			s->checked = old_checked;
			note(o, true, "base: %s; using the archive state from %s", ferr.buf,
			     format_time(old_checked, true, when, sizeof(when)));
		} else {
			if (r != -ENOENT && r != -EINVAL)
				strbuf_addf(err,
					    "%s; no earlier state of %s %s is known: check the "
					    "network and the mirror (from %s)",
					    ferr.buf, s->uri, s->suite, s->from);
			else
				strbuf_addstr(err, ferr.buf);
			strbuf_release(&ferr);
			return r;
		}
		strbuf_release(&ferr);
	}
	h = sha256_new();
	sha256_update_str(h, "imgforge-archive-state-1");
	for (i = 0; i < a->n; i++) {
		/* The suite and its state, not the URI: two mirrors of one archive are one state. */
		sha256_update_str(h, a->v[i].suite);
		sha256_update_str(h, a->v[i].state);
	}
	sha256_final_hex(h, ret_digest);
	sha256_free(h);
	memcpy(a->digest, ret_digest, 65);
	return 0;
}

void archive_release(struct archive *a)
{
	size_t i;

	for (i = 0; i < a->n; i++) {
		free(a->v[i].uri);
		free(a->v[i].suite);
		free(a->v[i].components);
		free(a->v[i].signed_by);
		free(a->v[i].from);
	}
	free(a->v);
	memset(a, 0, sizeof(*a));
}
