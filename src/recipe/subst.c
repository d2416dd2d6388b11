/* SPDX-License-Identifier: MIT */
/* ${var} substitution over the resolved tree. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "recipe/recipe-internal.h"

/*
 * Each variable is expanded at most once, when something uses it, and the
 * result kept: a chain of variables that each double the one before costs
 * its final size, not two to the power of its length. A value may grow to
 * RECIPE_MAX_VALUE and all expansions together to RECIPE_MAX_EXPANDED; past
 * either, substitution stops with one error (-E2BIG).
 */

static int add_bytes(struct subst *s, struct strbuf *out, const char *p, size_t n)
{
	if (out->len + n > RECIPE_MAX_VALUE)
		return -E2BIG;
	if (s->total + n > RECIPE_MAX_EXPANDED) {
		s->total_exceeded = true;
		return -E2BIG;
	}
	s->total += n;
	strbuf_add(out, p, n);
	return 0;
}

static int expand_var(struct subst *s, const char *name, const char *def, const struct ypos *pos,
		      struct strbuf *out)
{
	ssize_t k = ynode_map_index(s->vars, name);
	char ex[RECIPE_EXCERPT_SIZE];
	struct strbuf val = STRBUF_INIT;
	int i, r;

	if (!schema_valid_var_name(name)) {
		diags_add(s->d, pos, "invalid variable reference '${%s}'", recipe_excerpt(name, ex));
		return -EINVAL;
	}
	if (k < 0) {
		if (def)
			return subst_expand(s, def, pos, out);
		diags_add(s->d, pos,
			  "undefined variable '%s': define it under variables:, give a default "
			  "with ${%s:-value}, or pass --set %s=VALUE",
			  name, name, name);
		return -EINVAL;
	}
	switch (s->state[k]) {
	case SUBST_DONE:
		return add_bytes(s, out, s->value[k], strlen(s->value[k]));
	case SUBST_FAILED:
		return -EINVAL; /* reported where it failed first */
	case SUBST_TOO_BIG:
		return -E2BIG;
	case SUBST_ACTIVE: {
		struct strbuf sb = STRBUF_INIT;
		for (i = 0; i < s->depth && strcmp(s->stack[i], name); i++)
			;
		for (; i < s->depth; i++)
			strbuf_addf(&sb, "%s -> ", s->stack[i]);
		strbuf_addstr(&sb, name);
		diags_add(s->d, pos, "variable cycle: %s", sb.buf);
		strbuf_release(&sb);
		return -ELOOP;
	}
	default:
		break;
	}
	if (s->depth >= (int)ARRAY_SIZE(s->stack)) {
		diags_add(s->d, pos, "variables nested more than %d deep", (int)ARRAY_SIZE(s->stack));
		return -ELOOP;
	}
	s->state[k] = SUBST_ACTIVE;
	s->stack[s->depth++] = name;
	r = subst_expand(s, s->vars->v[k]->str, pos, &val);
	s->depth--;
	if (r == -E2BIG) {
		s->state[k] = SUBST_TOO_BIG;
		/* Name the variable the user wrote, not the one deep inside it. */
		if (s->depth == 0 && !s->too_big)
			s->too_big = xstrdup(name);
	} else if (r < 0) {
		s->state[k] = SUBST_FAILED;
	} else {
		s->state[k] = SUBST_DONE;
		s->value[k] = strbuf_detach(&val);
		r = add_bytes(s, out, s->value[k], strlen(s->value[k]));
		if (r == -E2BIG && s->depth == 0 && !s->too_big && !s->total_exceeded)
			s->too_big = xstrdup(name);
	}
	strbuf_release(&val);
	return r;
}

/* Expand ${name}, ${name:-default} and $$ in a string. */
int subst_expand(struct subst *s, const char *in, const struct ypos *pos, struct strbuf *out)
{
	const char *p = in;
	char ex[RECIPE_EXCERPT_SIZE];
	int r;

	while (*p) {
		const char *end, *colon;
		int level;
		_cleanup_free_ char *name = NULL, *def = NULL;

		if (p[0] != '$' || (p[1] != '{' && p[1] != '$')) {
			size_t n = strcspn(p + 1, "$") + 1;
			r = add_bytes(s, out, p, n);
			if (r < 0)
				return r;
			p += n;
			continue;
		}
		if (p[1] == '$') {
			r = add_bytes(s, out, "$", 1);
			if (r < 0)
				return r;
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
			diags_add(s->d, pos, "unterminated '${' in '%s'", recipe_excerpt(in, ex));
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

void subst_init(struct subst *s, struct ynode *vars, struct diags *d)
{
	memset(s, 0, sizeof(*s));
	s->vars = vars;
	s->d = d;
	s->state = xcalloc(vars->n ? vars->n : 1, sizeof(*s->state));
	s->value = xcalloc(vars->n ? vars->n : 1, sizeof(*s->value));
}

void subst_finish(struct subst *s)
{
	size_t i;

	for (i = 0; i < s->vars->n; i++) {
		if (s->state[i] == SUBST_DONE) {
			free(s->vars->v[i]->str);
			s->vars->v[i]->str = TAKE_PTR(s->value[i]);
		}
	}
}

bool subst_used(const struct subst *s, const char *name)
{
	ssize_t k = ynode_map_index(s->vars, name);
	return k >= 0 && s->state[k] != SUBST_UNUSED;
}

void subst_release(struct subst *s)
{
	size_t i;

	for (i = 0; s->value && i < s->vars->n; i++)
		free(s->value[i]);
	free(s->value);
	free(s->state);
	free(s->too_big);
	s->too_big = NULL;
	s->value = NULL;
	s->state = NULL;
}

void subst_tree(struct subst *s, struct ynode *n)
{
	size_t i;

	if (s->stopped)
		return;
	if (n->kind == YNODE_SCALAR) {
		struct strbuf out = STRBUF_INIT;
		int r;

		if (!strchr(n->str, '$'))
			return;
		free(s->too_big);
		s->too_big = NULL;
		r = subst_expand(s, n->str, &n->pos, &out);
		if (r == 0) {
			free(n->str);
			n->str = strbuf_detach(&out);
		} else if (r == -E2BIG) {
			/* One error: every later use of the same value would repeat it. */
			if (s->total_exceeded)
				diags_add(s->d, &n->pos,
					  "variables expand to more than %d MiB in all: a recipe "
					  "does not need that much text",
					  RECIPE_MAX_EXPANDED >> 20);
			else if (s->too_big)
				diags_add(s->d, &n->pos,
					  "variable '%s' expands to more than %d MiB: a value may "
					  "be at most that long",
					  s->too_big, RECIPE_MAX_VALUE >> 20);
			else
				diags_add(s->d, &n->pos,
					  "this value expands to more than %d MiB: a value may be "
					  "at most that long",
					  RECIPE_MAX_VALUE >> 20);
			s->stopped = true;
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
