/* SPDX-License-Identifier: MIT */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fs/dpkg.h"
#include "core/util.h"

/* The fields of one stanza that matter here, pointing into the input. */
struct stanza {
	const char *name, *version, *arch, *status;
	size_t name_len, version_len, arch_len, status_len;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static void trim(const char **s, size_t *n)
{
	while (*n && is_blank(**s))
		(*s)++, (*n)--;
	while (*n && is_blank((*s)[*n - 1]))
		(*n)--;
}

static bool field_is(const char *line, size_t name_len, const char *field)
{
	size_t i;

	if (name_len != strlen(field))
		return false;
	for (i = 0; i < name_len; i++) {
		char a = line[i], b = field[i];
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (b >= 'A' && b <= 'Z')
			b = (char)(b - 'A' + 'a');
		if (a != b)
			return false;
	}
	return true;
}

/* Is this a single word of printable, non-space bytes without NULs? */
static bool is_word(const char *s, size_t n)
{
	size_t i;

	if (!n)
		return false;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

/* "want flag status": installed, with flag "ok". */
static bool status_installed(const char *s, size_t n)
{
	const char *w[3];
	size_t wl[3], k = 0, i = 0;

	while (i < n && k < 3) {
		while (i < n && is_blank(s[i]))
			i++;
		if (i >= n)
			break;
		w[k] = s + i;
		while (i < n && !is_blank(s[i]))
			i++;
		wl[k] = (size_t)(s + i - w[k]);
		k++;
	}
	while (i < n && is_blank(s[i]))
		i++;
	if (k != 3 || i != n)
		return false;
	return wl[1] == 2 && !memcmp(w[1], "ok", 2) && wl[2] == 9 && !memcmp(w[2], "installed", 9);
}

int dpkg_package_compare(const struct dpkg_package *a, const struct dpkg_package *b)
{
	int c = strcmp(a->name, b->name);
	return c ? c : strcmp(a->arch, b->arch);
}

static int cmp_sort(const void *x, const void *y)
{
	const struct dpkg_package *a = x, *b = y;
	int c = dpkg_package_compare(a, b);

	/* Tie-break duplicates so the one kept does not depend on qsort. */
	if (!c)
		c = dpkg_version_compare(b->version, a->version);
	if (!c)
		c = strcmp(a->version, b->version);
	return c;
}

int dpkg_parse_status(const char *buf, size_t len, struct dpkg_package **ret, size_t *ret_n)
{
	struct dpkg_package *pkgs = NULL;
	size_t n = 0, alloc = 0, i, j, pos = 0;
	struct stanza st = {0};
	bool in_stanza = false;
	int skipped = 0;

	for (;;) {
		const char *line = buf + pos, *nl, *colon;
		size_t ll;
		bool end = pos >= len;

		if (!end) {
			nl = memchr(line, '\n', len - pos);
			ll = nl ? (size_t)(nl - line) : len - pos;
			pos += ll + (nl ? 1 : 0);
		} else {
			ll = 0;
		}
		/* A blank line (or the end) closes the stanza. */
		if (end || ll == 0 || (ll == 1 && line[0] == '\r')) {
			if (in_stanza) {
				if (st.status && status_installed(st.status, st.status_len) &&
				    is_word(st.name, st.name_len) &&
				    is_word(st.version, st.version_len) &&
				    is_word(st.arch, st.arch_len)) {
					GROW(pkgs, alloc, n + 1);
					pkgs[n].name = xstrndup(st.name, st.name_len);
					pkgs[n].version = xstrndup(st.version, st.version_len);
					pkgs[n].arch = xstrndup(st.arch, st.arch_len);
					n++;
				} else if (st.name || st.status) {
					skipped++;
				}
			}
			memset(&st, 0, sizeof(st));
			in_stanza = false;
			if (end)
				break;
			continue;
		}
		in_stanza = true;
		if (is_blank(line[0]))
			continue; /* continuation of a multi-line field */
		colon = memchr(line, ':', ll);
		if (!colon)
			continue; /* not a field: ignore the line */
		{
			size_t name_len = (size_t)(colon - line);
			const char *v = colon + 1;
			size_t vl = ll - name_len - 1;

			trim(&v, &vl);
			if (field_is(line, name_len, "package"))
				st.name = v, st.name_len = vl;
			else if (field_is(line, name_len, "version"))
				st.version = v, st.version_len = vl;
			else if (field_is(line, name_len, "architecture"))
				st.arch = v, st.arch_len = vl;
			else if (field_is(line, name_len, "status"))
				st.status = v, st.status_len = vl;
		}
	}

	if (n > 1)
		qsort(pkgs, n, sizeof(*pkgs), cmp_sort);
	/* Drop repeated name+arch entries; keep the first (highest version). */
	for (i = 0, j = 0; i < n; i++) {
		if (j > 0 && !dpkg_package_compare(&pkgs[j - 1], &pkgs[i])) {
			free(pkgs[i].name);
			free(pkgs[i].version);
			free(pkgs[i].arch);
			skipped++;
			continue;
		}
		pkgs[j++] = pkgs[i];
	}
	*ret = pkgs;
	*ret_n = j;
	return skipped;
}

void dpkg_packages_free(struct dpkg_package *p, size_t n)
{
	size_t i;

	if (!p)
		return;
	for (i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].version);
		free(p[i].arch);
	}
	free(p);
}

/* --- version comparison (Debian Policy 5.6.12) --- */

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Weight of a character in the non-digit parts: '~' < end < letters < others. */
static int order(char c)
{
	if (is_digit(c))
		return 0;
	if (is_alpha(c))
		return (unsigned char)c;
	if (c == '~')
		return -1;
	if (c)
		return (unsigned char)c + 256;
	return 0;
}

/*
 * Compare two runs of digits as numbers of any length: skip leading zeros,
 * then the longer run is larger, else the first differing digit decides.
 */
static int cmp_digits(const char **pa, const char *ea, const char **pb, const char *eb)
{
	const char *a = *pa, *b = *pb, *sa, *sb;
	int first = 0;

	while (a < ea && *a == '0')
		a++;
	while (b < eb && *b == '0')
		b++;
	sa = a;
	sb = b;
	while (a < ea && is_digit(*a) && b < eb && is_digit(*b)) {
		if (!first)
			first = *a - *b;
		a++, b++;
	}
	while (a < ea && is_digit(*a))
		a++;
	while (b < eb && is_digit(*b))
		b++;
	*pa = a;
	*pb = b;
	if (a - sa != b - sb)
		return a - sa > b - sb ? 1 : -1;
	return first;
}

/* Compare two version parts [a, ea) and [b, eb) with dpkg's algorithm. */
static int verrevcmp(const char *a, const char *ea, const char *b, const char *eb)
{
	while (a < ea || b < eb) {
		int c;

		while ((a < ea && !is_digit(*a)) || (b < eb && !is_digit(*b))) {
			int ac = a < ea ? order(*a) : 0;
			int bc = b < eb ? order(*b) : 0;

			if (ac != bc)
				return ac - bc;
			if (a < ea)
				a++;
			if (b < eb)
				b++;
		}
		c = cmp_digits(&a, ea, &b, eb);
		if (c)
			return c;
	}
	return 0;
}

struct version {
	const char *epoch, *epoch_end, *up, *up_end, *rev, *rev_end;
};

static void split_version(const char *s, struct version *v)
{
	const char *colon = strchr(s, ':'), *end = s + strlen(s), *p, *dash;
	static const char zero[] = "0";
	bool digits = colon && colon > s;

	for (p = s; digits && p < colon; p++)
		if (!is_digit(*p))
			digits = false;
	if (digits) {
		v->epoch = s;
		v->epoch_end = colon;
		s = colon + 1;
	} else {
		v->epoch = zero;
		v->epoch_end = zero + 1;
	}
	dash = NULL;
	for (p = s; p < end; p++)
		if (*p == '-')
			dash = p;
	v->up = s;
	if (dash) {
		v->up_end = dash;
		v->rev = dash + 1;
		v->rev_end = end;
	} else {
		v->up_end = end;
		v->rev = v->rev_end = end;
	}
}

int dpkg_version_compare(const char *a, const char *b)
{
	struct version va, vb;
	int c;

	split_version(a, &va);
	split_version(b, &vb);
	c = verrevcmp(va.epoch, va.epoch_end, vb.epoch, vb.epoch_end);
	if (!c)
		c = verrevcmp(va.up, va.up_end, vb.up, vb.up_end);
	if (!c)
		c = verrevcmp(va.rev, va.rev_end, vb.rev, vb.rev_end);
	return c < 0 ? -1 : c > 0 ? 1 : 0;
}
