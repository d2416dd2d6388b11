/* SPDX-License-Identifier: MIT */
/*
 * A strict recursive-descent JSON reader (jsonr.h). The document is copied
 * once; strings are decoded in place in that copy (an escape is never
 * shorter than what it decodes to, so the decoded string always fits where
 * its literal was) and NUL-terminated where their closing quote was. Each
 * array and object gets one array of its children. The depth is bounded,
 * so the recursion is too.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/util.h"
#include "update/jsonr.h"

struct parser {
	char *p;      /* the copy being parsed */
	size_t len;   /* its length */
	size_t pos;   /* the next byte */
	size_t count; /* values so far */
	char *err;
	size_t errlen;
	bool any_number; /* jsonr_parse_api(): any JSON number, not only unsigned integers */
};

static int fail(struct parser *ps, size_t at, const char *fmt, ...) _printf_(3, 4);

static int fail(struct parser *ps, size_t at, const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(ps->err, ps->errlen, "invalid JSON at byte %zu: %s", at, what);
	return -EINVAL;
}

const char *jsonr_type_name(enum jsonr_type t)
{
	switch (t) {
	case JSONR_NULL:
		return "null";
	case JSONR_FALSE:
	case JSONR_TRUE:
		return "a boolean";
	case JSONR_UINT:
		return "a number";
	case JSONR_STRING:
		return "a string";
	case JSONR_ARRAY:
		return "an array";
	case JSONR_OBJECT:
		return "an object";
	case JSONR_NUMBER:
		return "a number";
	}
	return "a value";
}

static void skip_blanks(struct parser *ps)
{
	while (ps->pos < ps->len) {
		char c = ps->p[ps->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		ps->pos++;
	}
}

static int peek(struct parser *ps)
{
	return ps->pos < ps->len ? (unsigned char)ps->p[ps->pos] : -1;
}

/* The length of the well-formed UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		unsigned char lo = s[0] == 0xe0 ? 0xa0 : 0x80, hi = s[0] == 0xed ? 0x9f : 0xbf;
		return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		unsigned char lo = s[0] == 0xf0 ? 0x90 : 0x80, hi = s[0] == 0xf4 ? 0x8f : 0xbf;
		return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 &&
				       (s[3] & 0xc0) == 0x80
			       ? 4
			       : 0;
	}
	return 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* At the opening quote: decode the string in place; *ret_s and *ret_n get it. */
static int parse_string(struct parser *ps, const char **ret_s, uint32_t *ret_n)
{
	size_t start = ps->pos, out = ps->pos + 1;
	unsigned char *u = (unsigned char *)ps->p;

	ps->pos++;
	for (;;) {
		unsigned char c;

		if (ps->pos >= ps->len)
			return fail(ps, start, "unterminated string");
		c = u[ps->pos];
		if (c == '"')
			break;
		if (c < 0x20 || c == 0x7f)
			return fail(ps, ps->pos, "control character in a string (escape it)");
		if (c == '\\') {
			int e;

			if (ps->pos + 1 >= ps->len)
				return fail(ps, start, "unterminated string");
			e = u[ps->pos + 1];
			switch (e) {
			case '"':
				c = '"';
				break;
			case '\\':
				c = '\\';
				break;
			case '/':
				c = '/';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'n':
				c = '\n';
				break;
			case 'r':
				c = '\r';
				break;
			case 't':
				c = '\t';
				break;
			case 'u': {
				int v = 0, i;

				if (ps->len - ps->pos < 6)
					return fail(ps, ps->pos, "truncated \\u escape");
				for (i = 2; i < 6; i++) {
					int h = hexval(u[ps->pos + i]);
					if (h < 0)
						return fail(ps, ps->pos, "bad \\u escape");
					v = v * 16 + h;
				}
				if (v == 0 || v > 0x7f)
					return fail(ps, ps->pos,
						    "\\u%04x: only U+0001..U+007F may be escaped "
						    "(write other characters as UTF-8)",
						    (unsigned)v);
				u[out++] = (unsigned char)v;
				ps->pos += 6;
				continue;
			}
			default:
				return fail(ps, ps->pos, "unknown escape '\\%c'",
					    e >= 0x20 && e < 0x7f ? e : '?');
			}
			u[out++] = c;
			ps->pos += 2;
			continue;
		}
		{
			size_t n = utf8_seq(u + ps->pos, ps->len - ps->pos);
			if (!n)
				return fail(ps, ps->pos, "invalid UTF-8 in a string");
			memmove(u + out, u + ps->pos, n);
			out += n;
			ps->pos += n;
		}
	}
	if (out - (start + 1) > UINT32_MAX)
		return fail(ps, start, "string too long");
	u[out] = '\0'; /* out <= ps->pos: at most the closing quote */
	*ret_s = ps->p + start + 1;
	*ret_n = (uint32_t)(out - (start + 1));
	ps->pos++;
	return 0;
}

static int parse_uint(struct parser *ps, uint64_t *ret)
{
	size_t start = ps->pos;
	uint64_t v = 0;

	if (ps->p[ps->pos] == '0' && ps->pos + 1 < ps->len && ps->p[ps->pos + 1] >= '0' &&
	    ps->p[ps->pos + 1] <= '9')
		return fail(ps, start, "number with a leading zero");
	while (ps->pos < ps->len && ps->p[ps->pos] >= '0' && ps->p[ps->pos] <= '9') {
		unsigned d = (unsigned)(ps->p[ps->pos] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return fail(ps, start, "number too large");
		v = v * 10 + d;
		ps->pos++;
	}
	if (ps->pos < ps->len && strchr(".eE", ps->p[ps->pos]) && ps->p[ps->pos])
		return fail(ps, start, "only unsigned integers are allowed");
	*ret = v;
	return 0;
}

/*
 * Any number of RFC 8259 (a sign, a fraction, an exponent), for the answers
 * of cloud APIs: an unsigned integer that fits stays JSONR_UINT, anything
 * else is JSONR_NUMBER, checked but not converted.
 */
static int parse_any_number(struct parser *ps, struct jsonr_value *v)
{
	size_t start = ps->pos, i = ps->pos;
	const char *p = ps->p;
	bool plain = true;

#define DIGIT(k) ((k) < ps->len && p[k] >= '0' && p[k] <= '9')
	if (i < ps->len && p[i] == '-') {
		plain = false;
		i++;
	}
	if (!DIGIT(i))
		return fail(ps, start, "a number without digits");
	if (p[i] == '0' && DIGIT(i + 1))
		return fail(ps, start, "number with a leading zero");
	while (DIGIT(i))
		i++;
	if (i < ps->len && p[i] == '.') {
		plain = false;
		if (!DIGIT(++i))
			return fail(ps, start, "a fraction without digits");
		while (DIGIT(i))
			i++;
	}
	if (i < ps->len && (p[i] == 'e' || p[i] == 'E')) {
		plain = false;
		i++;
		if (i < ps->len && (p[i] == '+' || p[i] == '-'))
			i++;
		if (!DIGIT(i))
			return fail(ps, start, "an exponent without digits");
		while (DIGIT(i))
			i++;
	}
#undef DIGIT
	if (plain) {
		v->type = JSONR_UINT;
		if (parse_uint(ps, &v->u) == 0)
			return 0;
		/* Too large for 64 bits: still a number. */
	}
	v->type = JSONR_NUMBER;
	v->u = 0;
	ps->pos = i;
	return 0;
}

static int parse_value(struct parser *ps, struct jsonr_value *v, int depth);

static void value_release(struct jsonr_value *v)
{
	uint32_t i;

	if (v->type == JSONR_ARRAY) {
		for (i = 0; i < v->n; i++)
			value_release(&v->items[i]);
		free(v->items);
	} else if (v->type == JSONR_OBJECT) {
		for (i = 0; i < v->n; i++)
			value_release(&v->members[i].value);
		free(v->members);
	}
	v->type = JSONR_NULL;
	v->n = 0;
}

static int cmp_key(const void *a, const void *b)
{
	const struct jsonr_member *const *x = a, *const *y = b;

	return strcmp((*x)->key, (*y)->key);
}

/* Sorted once per object: a repeated key is found in n log n, whatever n is. */
static int check_duplicates(struct parser *ps, struct jsonr_value *v)
{
	_cleanup_free_ const struct jsonr_member **sorted = NULL;
	uint32_t i;

	if (v->n < 2)
		return 0;
	sorted = xcalloc(v->n, sizeof(*sorted));
	for (i = 0; i < v->n; i++)
		sorted[i] = &v->members[i];
	qsort(sorted, v->n, sizeof(*sorted), cmp_key);
	for (i = 1; i < v->n; i++)
		if (!strcmp(sorted[i - 1]->key, sorted[i]->key)) {
			const struct jsonr_member *second =
				sorted[i - 1]->value.pos > sorted[i]->value.pos ? sorted[i - 1]
										: sorted[i];
			return fail(ps, second->value.pos, "key \"%.64s\" repeated", second->key);
		}
	return 0;
}

static int parse_container(struct parser *ps, struct jsonr_value *v, int depth, bool object)
{
	size_t alloc = 0;
	char close = object ? '}' : ']';
	int r;

	if (depth >= JSONR_MAX_DEPTH)
		return fail(ps, ps->pos, "nested deeper than %d levels", JSONR_MAX_DEPTH);
	v->type = object ? JSONR_OBJECT : JSONR_ARRAY;
	v->n = 0;
	v->items = NULL;
	ps->pos++;
	skip_blanks(ps);
	if (peek(ps) == close) {
		ps->pos++;
		return 0;
	}
	for (;;) {
		struct jsonr_value *child;

		skip_blanks(ps);
		if (object) {
			struct jsonr_member *m;
			uint32_t klen;

			GROW(v->members, alloc, (size_t)v->n + 1);
			m = &v->members[v->n];
			memset(m, 0, sizeof(*m));
			if (peek(ps) != '"')
				return fail(ps, ps->pos,
					    peek(ps) < 0 ? "unexpected end, a key expected"
							 : "a key (a string) expected");
			r = parse_string(ps, &m->key, &klen);
			if (r < 0)
				return r;
			skip_blanks(ps);
			if (peek(ps) != ':')
				return fail(ps, ps->pos, "':' expected after a key");
			ps->pos++;
			skip_blanks(ps);
			child = &m->value;
		} else {
			GROW(v->items, alloc, (size_t)v->n + 1);
			child = &v->items[v->n];
			memset(child, 0, sizeof(*child));
		}
		/* Counted before parsing, so that a failed child is released too. */
		v->n++;
		r = parse_value(ps, child, depth + 1);
		if (r < 0)
			return r;
		skip_blanks(ps);
		if (peek(ps) == ',') {
			ps->pos++;
			continue;
		}
		if (peek(ps) == close) {
			ps->pos++;
			break;
		}
		return fail(ps, ps->pos,
			    peek(ps) < 0 ? "unexpected end, '%c' or ',' expected"
					 : "'%c' or ',' expected",
			    close);
	}
	return object ? check_duplicates(ps, v) : 0;
}

static int parse_value(struct parser *ps, struct jsonr_value *v, int depth)
{
	int c = peek(ps);

	v->pos = (uint32_t)ps->pos;
	if (++ps->count > JSONR_MAX_VALUES)
		return fail(ps, ps->pos, "more than %u values", JSONR_MAX_VALUES);
	switch (c) {
	case -1:
		return fail(ps, ps->pos, "unexpected end, a value expected");
	case '{':
		return parse_container(ps, v, depth, true);
	case '[':
		return parse_container(ps, v, depth, false);
	case '"':
		v->type = JSONR_STRING;
		return parse_string(ps, &v->s, &v->n);
	case 'n':
	case 't':
	case 'f': {
		static const struct {
			const char *word;
			enum jsonr_type type;
		} words[] = {{"null", JSONR_NULL}, {"true", JSONR_TRUE}, {"false", JSONR_FALSE}};
		size_t i;

		for (i = 0; i < ARRAY_SIZE(words); i++) {
			size_t n = strlen(words[i].word);
			if (ps->len - ps->pos >= n && !memcmp(ps->p + ps->pos, words[i].word, n)) {
				v->type = words[i].type;
				ps->pos += n;
				return 0;
			}
		}
		return fail(ps, ps->pos, "unknown word");
	}
	default:
		if (ps->any_number && ((c >= '0' && c <= '9') || c == '-'))
			return parse_any_number(ps, v);
		if (c >= '0' && c <= '9') {
			v->type = JSONR_UINT;
			return parse_uint(ps, &v->u);
		}
		if (c == '-')
			return fail(ps, ps->pos, "only unsigned integers are allowed");
		return fail(ps, ps->pos, "unexpected character 0x%02x", (unsigned)c);
	}
}

static int parse_doc(const char *text, size_t len, bool any_number, struct jsonr **ret, char *err,
		     size_t errlen)
{
	struct jsonr *doc;
	struct parser ps = {.len = len, .err = err, .errlen = errlen, .any_number = any_number};
	int r;

	if (len > JSONR_MAX_SIZE) {
		snprintf(err, errlen, "invalid JSON: %zu bytes, more than the %u allowed", len,
			 JSONR_MAX_SIZE);
		return -EFBIG;
	}
	doc = xcalloc(1, sizeof(*doc));
	doc->text = xmalloc(len + 1);
	memcpy(doc->text, text, len);
	doc->text[len] = '\0';
	ps.p = doc->text;
	skip_blanks(&ps);
	r = parse_value(&ps, &doc->root, 0);
	if (r == 0) {
		skip_blanks(&ps);
		if (ps.pos < len)
			r = fail(&ps, ps.pos, "unexpected data after the value");
	}
	if (r < 0) {
		jsonr_free(doc);
		return r;
	}
	*ret = doc;
	return 0;
}

int jsonr_parse(const char *text, size_t len, struct jsonr **ret, char *err, size_t errlen)
{
	return parse_doc(text, len, false, ret, err, errlen);
}

int jsonr_parse_api(const char *text, size_t len, struct jsonr **ret, char *err, size_t errlen)
{
	return parse_doc(text, len, true, ret, err, errlen);
}

void jsonr_free(struct jsonr *doc)
{
	if (!doc)
		return;
	value_release(&doc->root);
	free(doc->text);
	free(doc);
}

const struct jsonr_value *jsonr_get(const struct jsonr_value *v, const char *key)
{
	uint32_t i;

	if (!v || v->type != JSONR_OBJECT)
		return NULL;
	for (i = 0; i < v->n; i++)
		if (!strcmp(v->members[i].key, key))
			return &v->members[i].value;
	return NULL;
}
