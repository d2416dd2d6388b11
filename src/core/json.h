/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_JSON_H
#define IMGFORGE_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

/*
 * A small streaming JSON writer into a strbuf. It only writes; imgforge
 * never parses JSON. Pretty output indents by two spaces; compact output is
 * the canonical form hashed for cache keys.
 */
struct json {
	struct strbuf *out;
	bool pretty;
	int depth;
	bool need_comma;
	bool after_key;
};

void json_init(struct json *j, struct strbuf *out, bool pretty);
void json_begin_object(struct json *j);
void json_end_object(struct json *j);
void json_begin_array(struct json *j);
void json_end_array(struct json *j);
void json_key(struct json *j, const char *key);
void json_string(struct json *j, const char *s);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* Insert pre-rendered JSON as one value. */
void json_raw(struct json *j, const char *raw);
/* Shorthands for "key": value */
void json_kv_string(struct json *j, const char *key, const char *s);
void json_kv_int(struct json *j, const char *key, int64_t v);
void json_kv_uint(struct json *j, const char *key, uint64_t v);
void json_kv_bool(struct json *j, const char *key, bool v);
/* Append s as a JSON string literal (with quotes) to sb. */
void json_quote(struct strbuf *sb, const char *s);

#endif
