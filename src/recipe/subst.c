/* SPDX-License-Identifier: MIT */
/* ${var} substitution over the resolved tree. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "recipe/recipe-internal.h"

/* ------------------------------------------------------------------------ */
/* variables */

static int expand_var(struct subst *s, const char *name, const char *def, const struct ypos *pos,
		      struct strbuf *out)
{
	const struct ynode *val = ynode_map_get(s->vars, name);
	int i, r;

	if (!schema_valid_var_name(name)) {
		diags_add(s->d, pos, "invalid variable reference '${%s}'", name);
		return -EINVAL;
	}
	if (!val) {
		if (def)
			return subst_expand(s, def, pos, out);
		diags_add(s->d, pos,
			  "undefined variable '%s': define it under variables:, give a default "
			  "with ${%s:-value}, or pass --set %s=VALUE",
			  name, name, name);
		return -EINVAL;
	}
	for (i = 0; i < s->depth; i++) {
		if (!strcmp(s->stack[i], name)) {
			struct strbuf sb = STRBUF_INIT;
			int j;
			for (j = i; j < s->depth; j++)
				strbuf_addf(&sb, "%s -> ", s->stack[j]);
			strbuf_addstr(&sb, name);
			diags_add(s->d, pos, "variable cycle: %s", sb.buf);
			strbuf_release(&sb);
			return -ELOOP;
		}
	}
	if (s->depth >= (int)ARRAY_SIZE(s->stack)) {
		diags_add(s->d, pos, "variables nested more than %d deep", (int)ARRAY_SIZE(s->stack));
		return -ELOOP;
	}
	s->stack[s->depth++] = name;
	r = subst_expand(s, val->str, pos, out);
	s->depth--;
	return r;
}

/* Expand ${name}, ${name:-default} and $$ in a string. */
int subst_expand(struct subst *s, const char *in, const struct ypos *pos, struct strbuf *out)
{
	const char *p = in;

	while (*p) {
		const char *end, *colon;
		int level;
		_cleanup_free_ char *name = NULL, *def = NULL;
		int r;

		if (p[0] != '$' || (p[1] != '{' && p[1] != '$')) {
			strbuf_addch(out, *p++);
			continue;
		}
		if (p[1] == '$') {
			strbuf_addch(out, '$');
			p += 2;
			continue;
		}
		/* Find the matching brace, allowing ${a:-${b}} in defaults. */
		level = 0;
		for (end = p + 2; *end; end++) {
			if (end[0] == '$' && end[1] == '{')
				level++, end++;
			else if (*end == '}' && level-- == 0)
				break;
		}
		if (!*end) {
			diags_add(s->d, pos, "unterminated '${' in '%s'", in);
			return -EINVAL;
		}
		colon = memchr(p + 2, ':', (size_t)(end - p - 2));
		if (colon && colon[1] == '-') {
			name = xstrndup(p + 2, (size_t)(colon - p - 2));
			def = xstrndup(colon + 2, (size_t)(end - colon - 2));
		} else {
			name = xstrndup(p + 2, (size_t)(end - p - 2));
		}
		r = expand_var(s, name, def, pos, out);
		if (r < 0)
			return r;
		p = end + 1;
	}
	return 0;
}

void subst_tree(struct subst *s, struct ynode *n)
{
	size_t i;

	if (n->kind == YNODE_SCALAR) {
		struct strbuf out = STRBUF_INIT;
		if (!strchr(n->str, '$'))
			return;
		if (subst_expand(s, n->str, &n->pos, &out) == 0) {
			free(n->str);
			n->str = strbuf_detach(&out);
		}
		strbuf_release(&out);
		return;
	}
	for (i = 0; i < n->n; i++)
		subst_tree(s, n->v[i]);
}

/* Resolve host paths of values that were only known after substitution. */
void subst_late_paths(struct ynode *n, const struct field *f)
{
	size_t i;

	if (!f)
		return;
	if (n->kind == YNODE_SCALAR) {
		if ((f->type == T_HOSTPATH || f->type == T_OVERLAY ||
		     (f->type == T_SOURCE && !strstr(n->str, "://"))) &&
		    n->had_var && !n->abspath && n->pos.file) {
			_cleanup_free_ char *real = realpath(n->pos.file, NULL);
			_cleanup_free_ char *dir = path_dirname(real ? real : n->pos.file);
			n->abspath = n->str[0] == '/' ? xstrdup(n->str) : path_join(dir, n->str);
		}
		return;
	}
	if (n->kind == YNODE_SEQ && f->type == T_LIST) {
		for (i = 0; i < n->n; i++)
			subst_late_paths(n->v[i], &f->sub[0]);
	} else if (n->kind == YNODE_MAP && (f->type == T_MAP || f->type == T_OVERLAY)) {
		for (i = 0; i < n->n; i++)
			subst_late_paths(n->v[i], schema_field_find(f->sub, n->k[i]));
	}
}
