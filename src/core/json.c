/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <string.h>

#include "core/json.h"

void json_init(struct json *j, struct strbuf *out, bool pretty)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->pretty = pretty;
}

static void newline(struct json *j)
{
	int i;

	if (!j->pretty)
		return;
	strbuf_addch(j->out, '\n');
	for (i = 0; i < j->depth; i++)
		strbuf_addstr(j->out, "  ");
}

/* Called before every value or key: separators and indentation. */
static void before_value(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->need_comma)
		strbuf_addch(j->out, ',');
	if (j->depth > 0)
		newline(j);
}

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 if there is none.
 */
static size_t utf8_len(const unsigned char *p)
{
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		unsigned char lo = p[0] == 0xe0 ? 0xa0 : 0x80, hi = p[0] == 0xed ? 0x9f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		unsigned char lo = p[0] == 0xf0 ? 0x90 : 0x80, hi = p[0] == 0xf4 ? 0x8f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
				       (p[3] & 0xc0) == 0x80
			       ? 4
			       : 0;
	}
	return 0;
}

/*
 * JSON strings are Unicode; file names and tar entries are bytes. A byte
 * that is not part of well-formed UTF-8 is written as \udcXX (XX its
 * value), as Python's surrogateescape does: the output stays valid JSON,
 * names that differ only in such bytes stay distinct, and Python's
 * os.fsencode() turns the string back into the original bytes.
 */
void json_quote(struct strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	strbuf_addch(sb, '"');
	while (*p) {
		size_t n;

		switch (*p) {
		case '"': strbuf_addstr(sb, "\\\""); p++; continue;
		case '\\': strbuf_addstr(sb, "\\\\"); p++; continue;
		case '\n': strbuf_addstr(sb, "\\n"); p++; continue;
		case '\t': strbuf_addstr(sb, "\\t"); p++; continue;
		case '\r': strbuf_addstr(sb, "\\r"); p++; continue;
		case '\b': strbuf_addstr(sb, "\\b"); p++; continue;
		case '\f': strbuf_addstr(sb, "\\f"); p++; continue;
		default: break;
		}
		if (*p < 0x20 || *p == 0x7f) {
			strbuf_addf(sb, "\\u%04x", *p++);
			continue;
		}
		n = utf8_len(p);
		if (!n) {
			strbuf_addf(sb, "\\udc%02x", *p++);
			continue;
		}
		strbuf_add(sb, p, n);
		p += n;
	}
	strbuf_addch(sb, '"');
}

static void open_container(struct json *j, char c)
{
	before_value(j);
	strbuf_addch(j->out, c);
	j->depth++;
	j->need_comma = false;
}

static void close_container(struct json *j, char c)
{
	bool empty = !j->need_comma;

	j->depth--;
	if (!empty)
		newline(j);
	strbuf_addch(j->out, c);
	j->need_comma = true;
	if (j->depth == 0 && j->pretty)
		strbuf_addch(j->out, '\n');
}

void json_begin_object(struct json *j)
{
	open_container(j, '{');
}

void json_end_object(struct json *j)
{
	close_container(j, '}');
}

void json_begin_array(struct json *j)
{
	open_container(j, '[');
}

void json_end_array(struct json *j)
{
	close_container(j, ']');
}

void json_key(struct json *j, const char *key)
{
	before_value(j);
	json_quote(j->out, key);
	strbuf_addstr(j->out, j->pretty ? ": " : ":");
	j->after_key = true;
	j->need_comma = false;
}

static void scalar_done(struct json *j)
{
	j->need_comma = true;
}

void json_string(struct json *j, const char *s)
{
	before_value(j);
	json_quote(j->out, s ? s : "");
	scalar_done(j);
}

void json_int(struct json *j, int64_t v)
{
	before_value(j);
	strbuf_addf(j->out, "%" PRId64, v);
	scalar_done(j);
}

void json_uint(struct json *j, uint64_t v)
{
	before_value(j);
	strbuf_addf(j->out, "%" PRIu64, v);
	scalar_done(j);
}

void json_bool(struct json *j, bool v)
{
	before_value(j);
	strbuf_addstr(j->out, v ? "true" : "false");
	scalar_done(j);
}

void json_null(struct json *j)
{
	before_value(j);
	strbuf_addstr(j->out, "null");
	scalar_done(j);
}

void json_raw(struct json *j, const char *raw)
{
	before_value(j);
	strbuf_addstr(j->out, raw);
	scalar_done(j);
}

void json_kv_string(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_string(j, s);
}

void json_kv_int(struct json *j, const char *key, int64_t v)
{
	json_key(j, key);
	json_int(j, v);
}

void json_kv_uint(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_uint(j, v);
}

void json_kv_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_bool(j, v);
}
