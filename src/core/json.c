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

void json_quote(struct strbuf *sb, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	strbuf_addch(sb, '"');
	for (; *p; p++) {
		switch (*p) {
		case '"': strbuf_addstr(sb, "\\\""); break;
		case '\\': strbuf_addstr(sb, "\\\\"); break;
		case '\n': strbuf_addstr(sb, "\\n"); break;
		case '\t': strbuf_addstr(sb, "\\t"); break;
		case '\r': strbuf_addstr(sb, "\\r"); break;
		case '\b': strbuf_addstr(sb, "\\b"); break;
		case '\f': strbuf_addstr(sb, "\\f"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				strbuf_addf(sb, "\\u%04x", *p);
			else
				strbuf_addch(sb, (char)*p);
		}
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
