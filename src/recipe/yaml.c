/* SPDX-License-Identifier: MIT */
/*
 * YAML text into position-carrying nodes with libyaml, the node helpers
 * every file of the recipe module uses, and the diagnostics list.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "core/json.h"
#include "recipe/recipe-internal.h"

/* ------------------------------------------------------------------------ */
/* diagnostics */

static void diags_vadd(struct diags *d, const struct ypos *pos, bool warning, const char *fmt,
		       va_list ap)
{
	struct strbuf sb = STRBUF_INIT;
	struct diag *e;

	strbuf_vaddf(&sb, fmt, ap);
	GROW(d->v, d->alloc, d->n + 1);
	e = &d->v[d->n++];
	e->file = xstrdup(pos && pos->file ? pos->file : "imgforge");
	e->line = pos ? pos->line : 0;
	e->col = pos ? pos->col : 0;
	e->warning = warning;
	e->msg = strbuf_detach(&sb);
	if (!warning)
		d->nerrors++;
}

void diags_add(struct diags *d, const struct ypos *pos, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diags_vadd(d, pos, false, fmt, ap);
	va_end(ap);
}

void diags_warn(struct diags *d, const struct ypos *pos, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diags_vadd(d, pos, true, fmt, ap);
	va_end(ap);
}

void diags_print(const struct diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		const char *sev = d->v[i].warning ? "warning" : "error";
		if (d->v[i].line > 0)
			fprintf(stderr, "%s:%d:%d: %s: %s\n", d->v[i].file, d->v[i].line,
				d->v[i].col, sev, d->v[i].msg);
		else
			fprintf(stderr, "%s: %s: %s\n", d->v[i].file, sev, d->v[i].msg);
	}
}

void diags_json(const struct diags *d, struct strbuf *out)
{
	struct json j;
	size_t i;

	json_init(&j, out, true);
	json_begin_array(&j);
	for (i = 0; i < d->n; i++) {
		json_begin_object(&j);
		json_kv_string(&j, "file", d->v[i].file);
		json_key(&j, "line");
		json_int(&j, d->v[i].line);
		json_key(&j, "column");
		json_int(&j, d->v[i].col);
		json_kv_string(&j, "severity", d->v[i].warning ? "warning" : "error");
		json_kv_string(&j, "message", d->v[i].msg);
		json_end_object(&j);
	}
	json_end_array(&j);
}

const char *recipe_excerpt(const char *s, char buf[RECIPE_EXCERPT_SIZE])
{
	size_t i, n = 0;

	for (i = 0; s[i] && i < 40; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\')
			n += (size_t)snprintf(buf + n, RECIPE_EXCERPT_SIZE - n, "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			n += (size_t)snprintf(buf + n, RECIPE_EXCERPT_SIZE - n, "\\x%02x", c);
		else
			buf[n++] = (char)c;
	}
	if (s[i])
		n += (size_t)snprintf(buf + n, RECIPE_EXCERPT_SIZE - n, "...");
	buf[n] = '\0';
	return buf;
}

void diags_release(struct diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	memset(d, 0, sizeof(*d));
}

/* ------------------------------------------------------------------------ */
/* nodes */

struct ynode *ynode_new(enum ynode_kind kind, const struct ypos *pos)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	if (pos)
		n->pos = *pos;
	return n;
}

struct ynode *ynode_scalar(const char *s, const struct ypos *pos)
{
	struct ynode *n = ynode_new(YNODE_SCALAR, pos);

	n->str = xstrdup(s);
	n->plain = false;
	return n;
}

void ynode_free(struct ynode *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->n; i++) {
		ynode_free(n->v[i]);
		if (n->k)
			free(n->k[i]);
	}
	free(n->v);
	free(n->k);
	free(n->kpos);
	free(n->str);
	free(n->abspath);
	free(n);
}

void ynode_seq_push(struct ynode *seq, struct ynode *item)
{
	GROW(seq->v, seq->alloc, seq->n + 1);
	seq->v[seq->n++] = item;
}

void ynode_map_push(struct ynode *map, const char *key, const struct ypos *kpos,
			   struct ynode *val)
{
	size_t alloc = map->alloc;

	GROW(map->v, map->alloc, map->n + 1);
	if (map->alloc != alloc || !map->k) {
		map->k = xrealloc(map->k, map->alloc * sizeof(*map->k));
		map->kpos = xrealloc(map->kpos, map->alloc * sizeof(*map->kpos));
	}
	map->k[map->n] = xstrdup(key);
	map->kpos[map->n] = *kpos;
	map->v[map->n] = val;
	map->n++;
}

ssize_t ynode_map_index(const struct ynode *map, const char *key)
{
	size_t i;

	if (!map || map->kind != YNODE_MAP)
		return -1;
	for (i = 0; i < map->n; i++)
		if (!strcmp(map->k[i], key))
			return (ssize_t)i;
	return -1;
}

const struct ynode *ynode_map_get(const struct ynode *map, const char *key)
{
	ssize_t i = ynode_map_index(map, key);
	return i < 0 ? NULL : map->v[i];
}

void ynode_map_remove(struct ynode *map, size_t i)
{
	ynode_free(map->v[i]);
	free(map->k[i]);
	memmove(map->v + i, map->v + i + 1, (map->n - i - 1) * sizeof(*map->v));
	memmove(map->k + i, map->k + i + 1, (map->n - i - 1) * sizeof(*map->k));
	memmove(map->kpos + i, map->kpos + i + 1, (map->n - i - 1) * sizeof(*map->kpos));
	map->n--;
}

struct ynode *ynode_copy(const struct ynode *src)
{
	struct ynode *n = ynode_new(src->kind, &src->pos);
	size_t i;

	n->plain = src->plain;
	n->had_var = src->had_var;
	if (src->str)
		n->str = xstrdup(src->str);
	if (src->abspath)
		n->abspath = xstrdup(src->abspath);
	for (i = 0; i < src->n; i++) {
		if (src->kind == YNODE_MAP)
			ynode_map_push(n, src->k[i], &src->kpos[i], ynode_copy(src->v[i]));
		else
			ynode_seq_push(n, ynode_copy(src->v[i]));
	}
	return n;
}

/* A plain empty scalar, "~" or "null": an unset value. */
bool ynode_is_null(const struct ynode *n)
{
	return n->kind == YNODE_SCALAR && n->plain &&
	       (!n->str[0] || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
		!strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

const char *ynode_kind_name(const struct ynode *n)
{
	if (n->kind == YNODE_MAP)
		return "a map";
	if (n->kind == YNODE_SEQ)
		return "a list";
	return "a scalar";
}

/* ------------------------------------------------------------------------ */
/* parsing: libyaml events into nodes, iteratively, with a depth limit */

struct frame {
	struct ynode *node;
	char *key; /* pending key of a map frame */
	struct ypos kpos;
};

static struct ypos mark_pos(const char *file, yaml_mark_t m)
{
	struct ypos p = { file, (int)m.line + 1, (int)m.column + 1 };
	return p;
}

/* Turn libyaml's parser error into one line a user can act on. */
static void syntax_error(const char *file, const char *buf, size_t len, yaml_parser_t *p,
			 struct diags *d)
{
	struct ypos pos = mark_pos(file, p->problem_mark);
	const char *problem = p->problem ? p->problem : "syntax error";
	size_t off = p->problem_mark.index;

	if (p->error == YAML_READER_ERROR) {
		/* The reader reports byte offsets; find the line and column. */
		size_t i;
		int line = 1, col = 1;

		off = p->problem_offset;
		for (i = 0; i < off && i < len; i++) {
			if (buf[i] == '\n')
				line++, col = 1;
			else
				col++;
		}
		pos.line = line;
		pos.col = col;
		diags_add(d, &pos, "%s: a recipe must be UTF-8 text", problem);
		return;
	}
	if (off < len && buf[off] == '\t') {
		diags_add(d, &pos, "tab character in indentation: YAML indents with spaces");
		return;
	}
	if (p->context)
		diags_add(d, &pos, "%s %s (line %d)", problem, p->context,
			  (int)p->context_mark.line + 1);
	else
		diags_add(d, &pos, "%s", problem);
}

int ynode_parse(const char *file, const char *buf, size_t len, struct ynode **ret,
		struct diags *d)
{
	struct frame stack[RECIPE_MAX_DEPTH + 1];
	struct ynode *root = NULL;
	yaml_parser_t parser;
	int depth = 0, docs = 0, r = 0;
	bool done = false;
	const char *nul;

	/* Editors on some systems start UTF-8 files with a byte-order mark: skip it. */
	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3)) {
		buf += 3;
		len -= 3;
	}
	nul = memchr(buf, '\0', len);
	if (nul) {
		struct ypos pos = { file, 1, 1 };
		const char *s;
		for (s = buf; s < nul; s++) {
			if (*s == '\n')
				pos.line++, pos.col = 1;
			else
				pos.col++;
		}
		diags_add(d, &pos, "binary data (NUL byte): a recipe must be UTF-8 text");
		return -EINVAL;
	}

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);

	while (!done) {
		yaml_event_t ev;
		char ex[RECIPE_EXCERPT_SIZE];
		struct ynode *node = NULL;
		struct ypos pos;

		if (!yaml_parser_parse(&parser, &ev)) {
			syntax_error(file, buf, len, &parser, d);
			r = -EINVAL;
			break;
		}
		pos = mark_pos(file, ev.start_mark);

		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				diags_add(d, &pos,
					  "more than one YAML document: a recipe is one document");
				r = -EINVAL;
			}
			break;
		case YAML_ALIAS_EVENT:
			diags_add(d, &pos,
				  "aliases (*%s) are not supported: use include: or variables",
				  recipe_excerpt((const char *)ev.data.alias.anchor, ex));
			r = -EINVAL;
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
						  : ev.type == YAML_SEQUENCE_START_EVENT
							  ? ev.data.sequence_start.anchor
							  : ev.data.mapping_start.anchor;
			struct frame *top = depth > 0 ? &stack[depth - 1] : NULL;

			if (anchor) {
				diags_add(d, &pos,
					  "anchors (&%s) are not supported: use include: or variables",
					  recipe_excerpt((const char *)anchor, ex));
				r = -EINVAL;
				break;
			}
			/* A scalar in key position of a map becomes the pending key. */
			if (top && top->node->kind == YNODE_MAP && !top->key) {
				if (ev.type != YAML_SCALAR_EVENT) {
					diags_add(d, &pos, "map keys must be plain strings, not %s",
						  ev.type == YAML_MAPPING_START_EVENT ? "maps" : "lists");
					r = -EINVAL;
					break;
				}
				if (ynode_map_index(top->node, (const char *)ev.data.scalar.value) >=
				    0) {
					ssize_t i = ynode_map_index(top->node,
								    (const char *)ev.data.scalar.value);
					diags_add(d, &pos,
						  "duplicate key '%s' (first defined at line %d)",
						  recipe_excerpt((const char *)ev.data.scalar.value,
								 ex),
						  top->node->kpos[i].line);
					r = -EINVAL;
					break;
				}
				top->key = xstrdup((const char *)ev.data.scalar.value);
				top->kpos = pos;
				break;
			}
			if (ev.type == YAML_SCALAR_EVENT) {
				node = ynode_new(YNODE_SCALAR, &pos);
				node->str = xstrndup((const char *)ev.data.scalar.value,
						     ev.data.scalar.length);
				node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
				if (strlen(node->str) != ev.data.scalar.length) {
					diags_add(d, &pos, "NUL character in a value");
					ynode_free(node);
					r = -EINVAL;
					break;
				}
			} else {
				node = ynode_new(ev.type == YAML_SEQUENCE_START_EVENT ? YNODE_SEQ
										      : YNODE_MAP,
						 &pos);
			}
			/* Attach to the parent (or make it the root). */
			if (!top) {
				root = node;
			} else if (top->node->kind == YNODE_SEQ) {
				ynode_seq_push(top->node, node);
			} else {
				ynode_map_push(top->node, top->key, &top->kpos, node);
				free(top->key);
				top->key = NULL;
			}
			if (node->kind != YNODE_SCALAR) {
				if (depth >= RECIPE_MAX_DEPTH) {
					diags_add(d, &pos,
						  "nesting deeper than %d levels: a recipe does not "
						  "need that many",
						  RECIPE_MAX_DEPTH);
					r = -EINVAL;
					break;
				}
				stack[depth].node = node;
				stack[depth].key = NULL;
				depth++;
			}
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (depth > 0) {
				depth--;
				free(stack[depth].key);
				stack[depth].key = NULL;
			}
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (r < 0)
			break;
	}
	while (depth > 0) {
		depth--;
		free(stack[depth].key);
	}
	yaml_parser_delete(&parser);
	if (r < 0) {
		ynode_free(root);
		return r;
	}
	if (!root || ynode_is_null(root)) {
		struct ypos pos = { file, 1, 1 };
		diags_add(d, &pos, "empty recipe: expected a map of keys such as 'image:'");
		ynode_free(root);
		return -EINVAL;
	}
	*ret = root;
	return 0;
}
