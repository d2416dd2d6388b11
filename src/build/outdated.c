/* SPDX-License-Identifier: MIT */
/* Installed packages against the archive's Packages indexes now (build/outdated.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "build/outdated.h"
#include "fs/tarball.h"
#include "net/fetch.h"

/* A Packages index of a large suite is tens of MiB uncompressed. */
#define PACKAGES_MAX (512u << 20)

static int cmp_name(const void *key, const void *elem)
{
	return strcmp(key, ((const struct dpkg_package *)elem)->name);
}

/* The installed package of that name and architecture ("all" matches any). */
static const struct dpkg_package *find(const struct dpkg_package *pkgs, size_t n,
				       const char *name, const char *arch)
{
	const struct dpkg_package *p = bsearch(name, pkgs, n, sizeof(*pkgs), cmp_name);

	if (!p)
		return NULL;
	while (p > pkgs && !strcmp(p[-1].name, name))
		p--;
	for (; p < pkgs + n && !strcmp(p->name, name); p++)
		if (!strcmp(p->arch, arch) || !strcmp(arch, "all") || !strcmp(p->arch, "all"))
			return p;
	return NULL;
}

static void consider(const char *suite, const struct dpkg_package *inst, const char *version,
		     struct outdated_pkg **res, size_t *res_n, size_t *res_alloc)
{
	size_t i;

	if (dpkg_version_compare(version, inst->version) <= 0)
		return;
	for (i = 0; i < *res_n; i++) {
		struct outdated_pkg *o = &(*res)[i];
		if (strcmp(o->name, inst->name) || strcmp(o->arch, inst->arch))
			continue;
		if (dpkg_version_compare(version, o->available) > 0) {
			free(o->available);
			free(o->suite);
			o->available = xstrdup(version);
			o->suite = xstrdup(suite);
		}
		return;
	}
	GROW(*res, *res_alloc, *res_n + 1);
	(*res)[*res_n] = (struct outdated_pkg){ xstrdup(inst->name), xstrdup(inst->arch),
						xstrdup(inst->version), xstrdup(version),
						xstrdup(suite) };
	(*res_n)++;
}

/* The value of a "Field: value" line, trimmed, malloc'd. */
static char *field(const char *line, size_t len, const char *name)
{
	size_t nl = strlen(name);
	const char *v;

	if (len <= nl || strncmp(line, name, nl) || line[nl] != ':')
		return NULL;
	v = line + nl + 1;
	while (v < line + len && (*v == ' ' || *v == '\t'))
		v++;
	return xstrndup(v, (size_t)(line + len - v));
}

/* One Packages stanza being read, and where what it finds goes. */
struct stanza {
	const char *suite, *arch;
	const struct dpkg_package *pkgs;
	size_t n;
	struct outdated_pkg **res;
	size_t *res_n, *res_alloc;
	char *name, *version, *parch;
};

/* A stanza ended: compare it with what is installed, and forget it. */
static void end_stanza(struct stanza *st)
{
	if (st->name && st->version && st->parch &&
	    (!strcmp(st->parch, st->arch) || !strcmp(st->parch, "all"))) {
		const struct dpkg_package *inst = find(st->pkgs, st->n, st->name, st->parch);
		if (inst)
			consider(st->suite, inst, st->version, st->res, st->res_n, st->res_alloc);
	}
	free(st->name);
	free(st->version);
	free(st->parch);
	st->name = st->version = st->parch = NULL;
}

void outdated_scan(const char *suite, const char *text, const char *arch,
		   const struct dpkg_package *pkgs, size_t n, struct outdated_pkg **res,
		   size_t *res_n, size_t *res_alloc)
{
	struct stanza st = { suite, arch, pkgs, n, res, res_n, res_alloc, NULL, NULL, NULL };
	const char *p = text;

	for (;;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char *v;

		if (len == 0) {
			/* the end of a stanza */
			end_stanza(&st);
		} else if ((v = field(p, len, "Package"))) {
			free(st.name);
			st.name = v;
		} else if ((v = field(p, len, "Version"))) {
			free(st.version);
			st.version = v;
		} else if ((v = field(p, len, "Architecture"))) {
			free(st.parch);
			st.parch = v;
		}
		if (!end)
			break;
		p = end + 1;
	}
	end_stanza(&st);
}

/* dists/SUITE/COMP/binary-ARCH/Packages{.xz,.gz,}: 0 with the text, or -errno. */
static int fetch_packages(const struct archive_source *s, const char *comp, const char *arch,
			  char **ret, size_t *ret_len, struct strbuf *err)
{
	static const char *const exts[] = { ".xz", ".gz", "" };
	struct fetch_opts fo = FETCH_OPTS_DEFAULT;
	size_t i;
	int r = -ENOENT;

	fo.retries = 1;
	fo.connect_timeout_s = 10;
	fo.total_timeout_s = 600;
	for (i = 0; i < ARRAY_SIZE(exts); i++) {
		_cleanup_free_ char *url = xasprintf("%s/dists/%s/%s/binary-%s/Packages%s", s->uri,
						     s->suite, comp, arch, exts[i]);
		_cleanup_free_ char *raw = NULL;
		size_t len;

		strbuf_reset(err);
		r = fetch_memory(url, PACKAGES_MAX, &fo, &raw, &len, err);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		return tarball_decompress(url, raw, len, PACKAGES_MAX, ret, ret_len, err);
	}
	strbuf_reset(err);
	strbuf_addf(err, "no Packages index for %s %s/%s at '%s'", s->suite, comp, arch, s->uri);
	return r;
}

static int cmp_outdated(const void *a, const void *b)
{
	const struct outdated_pkg *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->arch, y->arch);
}

int outdated_check(const struct archive *a, const char *arch, const struct dpkg_package *pkgs,
		   size_t n, struct outdated_pkg **ret, size_t *ret_n, struct strbuf *err)
{
	struct outdated_pkg *res = NULL;
	size_t res_n = 0, res_alloc = 0, i;

	for (i = 0; i < a->n; i++) {
		_cleanup_free_ char *comps = xstrdup(a->v[i].components);
		char *comp, *save = NULL;

		for (comp = strtok_r(comps, " ", &save); comp; comp = strtok_r(NULL, " ", &save)) {
			_cleanup_free_ char *text = NULL;
			size_t len;
			int r = fetch_packages(&a->v[i], comp, arch, &text, &len, err);

			if (r < 0) {
				outdated_free(res, res_n);
				return r;
			}
			outdated_scan(a->v[i].suite, text, arch, pkgs, n, &res, &res_n, &res_alloc);
		}
	}
	if (res_n)
		qsort(res, res_n, sizeof(*res), cmp_outdated);
	*ret = res;
	*ret_n = res_n;
	return 0;
}

void outdated_free(struct outdated_pkg *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].arch);
		free(p[i].installed);
		free(p[i].available);
		free(p[i].suite);
	}
	free(p);
}
