/* SPDX-License-Identifier: MIT */
/* This machine's apt sources, one-line and deb822: which URI serves which suite. */
#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/file.h"
#include "net/apt-sources.h"

static void add(struct apt_sources *s, const char *file, const char *uri, size_t ulen,
		const char *suite, size_t slen)
{
	struct apt_source *a;

	while (ulen > 1 && uri[ulen - 1] == '/')
		ulen--;
	GROW(s->v, s->alloc, s->n + 1);
	a = &s->v[s->n++];
	a->uri = xstrndup(uri, ulen);
	a->suite = xstrndup(suite, slen);
	a->file = xstrdup(file);
}

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static size_t word_len(const char *p)
{
	size_t n = 0;

	while (p[n] && !isspace((unsigned char)p[n]))
		n++;
	return n;
}

/* "deb [options] URI SUITE [COMPONENT...]" */
static void parse_line(struct apt_sources *s, const char *file, const char *line)
{
	const char *p = skip_ws(line), *uri;
	size_t n, ulen;

	if (strncmp(p, "deb", 3) || (p[3] != ' ' && p[3] != '\t'))
		return;
	p = skip_ws(p + 3);
	if (*p == '[') {
		const char *end = strchr(p, ']');
		if (!end)
			return;
		p = skip_ws(end + 1);
	}
	uri = p;
	ulen = word_len(p);
	if (!ulen || !strstr(uri, "://"))
		return;
	p = skip_ws(p + ulen);
	n = word_len(p);
	if (n)
		add(s, file, uri, ulen, p, n);
}

/* One deb822 stanza's fields, folded: Types, URIs, Suites, Enabled. */
struct stanza {
	struct strbuf types, uris, suites, enabled;
	struct strbuf *cur;
};

static void stanza_flush(struct apt_sources *s, const char *file, struct stanza *st)
{
	const char *u, *t;
	bool deb = false;

	for (t = skip_ws(strbuf_str(&st->types)); *t; t = skip_ws(t + word_len(t)))
		deb |= word_len(t) == 3 && !strncmp(t, "deb", 3);
	if (deb && strcasecmp(skip_ws(strbuf_str(&st->enabled)), "no") != 0) {
		for (u = skip_ws(strbuf_str(&st->uris)); *u; u = skip_ws(u + word_len(u))) {
			const char *su;

			if (!strstr(u, "://") || strstr(u, "://") > u + word_len(u))
				continue;
			for (su = skip_ws(strbuf_str(&st->suites)); *su;
			     su = skip_ws(su + word_len(su)))
				add(s, file, u, word_len(u), su, word_len(su));
		}
	}
	strbuf_reset(&st->types);
	strbuf_reset(&st->uris);
	strbuf_reset(&st->suites);
	strbuf_reset(&st->enabled);
	st->cur = NULL;
}

/* Field names are case-insensitive in deb822. */
static bool field_is(const char *line, const char *colon, const char *name)
{
	return (size_t)(colon - line) == strlen(name) && !strncasecmp(line, name, strlen(name));
}

static void parse_deb822(struct apt_sources *s, const char *file, char *text)
{
	struct stanza st = { STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, STRBUF_INIT, NULL };
	char *line, *save = NULL;

	/* strtok_r skips empty lines: find the stanza breaks by hand. */
	for (line = text; line; line = save) {
		char *nl = strchr(line, '\n');
		const char *colon;

		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		if (!*skip_ws(line)) {
			stanza_flush(s, file, &st);
			continue;
		}
		if (line[0] == '#')
			continue;
		if (line[0] == ' ' || line[0] == '\t') {
			if (st.cur)
				strbuf_addf(st.cur, " %s", line);
			continue;
		}
		colon = strchr(line, ':');
		st.cur = NULL;
		if (!colon)
			continue;
		if (field_is(line, colon, "Types"))
			st.cur = &st.types;
		else if (field_is(line, colon, "URIs"))
			st.cur = &st.uris;
		else if (field_is(line, colon, "Suites"))
			st.cur = &st.suites;
		else if (field_is(line, colon, "Enabled"))
			st.cur = &st.enabled;
		if (st.cur)
			strbuf_addf(st.cur, " %s", colon + 1);
	}
	stanza_flush(s, file, &st);
	strbuf_release(&st.types);
	strbuf_release(&st.uris);
	strbuf_release(&st.suites);
	strbuf_release(&st.enabled);
}

void apt_sources_parse(struct apt_sources *s, const char *file, const char *text)
{
	_cleanup_free_ char *copy = xstrdup(text);
	char *line, *save = NULL;

	if (str_endswith(file, ".sources")) {
		parse_deb822(s, file, copy);
		return;
	}
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		parse_line(s, file, line);
	}
}

static void read_one(struct apt_sources *s, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;

	if (read_file(path, 1 << 20, &buf, &len) == 0)
		apt_sources_parse(s, path, buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int apt_sources_read(const char *etc_dir, struct apt_sources *ret)
{
	struct apt_sources s = { 0 };
	_cleanup_free_ char *list = NULL, *dir = NULL;
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	struct dirent *de;
	DIR *d;

	if (!etc_dir)
		etc_dir = getenv("IMGFORGE_APT_ETC");
	if (!etc_dir || !*etc_dir)
		etc_dir = "/etc/apt";
	list = path_join(etc_dir, "sources.list");
	read_one(&s, list);
	dir = path_join(etc_dir, "sources.list.d");
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		/* apt's own rule: other names (.disabled, .save, editor backups) are ignored */
		if (de->d_name[0] == '.' ||
		    (!str_endswith(de->d_name, ".list") && !str_endswith(de->d_name, ".sources")))
			continue;
		GROW(names, alloc, n + 1);
		names[n++] = xstrdup(de->d_name);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		_cleanup_free_ char *p = path_join(dir, names[i]);
		read_one(&s, p);
		free(names[i]);
	}
	free(names);
	*ret = s;
	return 0;
}

const char *apt_sources_uri_for(const struct apt_sources *s, const char *suite)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].suite, suite))
			return s->v[i].uri;
	return NULL;
}

void apt_sources_release(struct apt_sources *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->v[i].uri);
		free(s->v[i].suite);
		free(s->v[i].file);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}
