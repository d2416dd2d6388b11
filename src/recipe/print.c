/* SPDX-License-Identifier: MIT */
/* The resolved recipe printed back: canonical YAML (libyaml's emitter) and JSON. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "core/json.h"
#include "recipe/recipe-internal.h"

/* ------------------------------------------------------------------------ */
/* canonical output */

/* Keys in schema order, then (for free-form maps) sorted by name. */
static size_t *ordered_keys(const struct ynode *map, const struct field *fields, size_t *ret_n)
{
	size_t *idx = xcalloc(map->n ? map->n : 1, sizeof(*idx));
	size_t n = 0, i, j;
	const struct field *f;

	if (fields) {
		for (f = fields; f->key; f++) {
			ssize_t k = ynode_map_index(map, f->key);
			if (k >= 0)
				idx[n++] = (size_t)k;
		}
		*ret_n = n;
		return idx;
	}
	for (i = 0; i < map->n; i++)
		idx[n++] = i;
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && strcmp(map->k[idx[j - 1]], map->k[idx[j]]) > 0; j--) {
			size_t t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	*ret_n = n;
	return idx;
}

static const struct field *map_fields(const struct field *f)
{
	if (!f)
		return NULL;
	if (f->type == T_MAP || f->type == T_OVERLAY)
		return f->sub;
	return NULL;
}

static void json_node(struct json *j, const struct ynode *n, const struct field *f)
{
	size_t i;

	if (n->kind == YNODE_SCALAR) {
		long l;
		bool b;
		if (f && f->type == T_INT && schema_parse_long(n->str, &l))
			json_int(j, l);
		else if (f && f->type == T_BOOL && schema_parse_bool(n->str, &b))
			json_bool(j, b);
		else
			json_string(j, n->str);
		return;
	}
	if (n->kind == YNODE_SEQ) {
		json_begin_array(j);
		for (i = 0; i < n->n; i++)
			json_node(j, n->v[i], f && f->type == T_LIST ? &f->sub[0] : NULL);
		json_end_array(j);
		return;
	}
	{
		const struct field *fields = map_fields(f);
		size_t cnt;
		_cleanup_free_ size_t *idx = ordered_keys(n, fields, &cnt);
		json_begin_object(j);
		for (i = 0; i < cnt; i++) {
			json_key(j, n->k[idx[i]]);
			json_node(j, n->v[idx[i]],
				  fields ? schema_field_find(fields, n->k[idx[i]]) : NULL);
		}
		json_end_object(j);
	}
}

void recipe_print_json(const struct recipe *r, const struct recipe_stage *stages, size_t nstages,
		       struct strbuf *out, bool pretty)
{
	struct json j;
	size_t i;
	size_t cnt;
	_cleanup_free_ size_t *idx = ordered_keys(r->root, schema_top_fields, &cnt);
	json_init(&j, out, pretty);
	json_begin_object(&j);
	json_kv_string(&j, "profile", r->profile);
	json_key(&j, "recipe");
	json_begin_object(&j);
	for (i = 0; i < cnt; i++) {
		json_key(&j, r->root->k[idx[i]]);
		json_node(&j, r->root->v[idx[i]],
			  schema_field_find(schema_top_fields, r->root->k[idx[i]]));
	}
	json_end_object(&j);
	if (nstages) {
		json_key(&j, "stages");
		json_begin_object(&j);
		for (i = 0; i < nstages; i++)
			json_kv_string(&j, stages[i].name, stages[i].key);
		json_end_object(&j);
	}
	json_end_object(&j);
}

void recipe_value_json(const char *dotted, const struct ynode *n, struct strbuf *out)
{
	const struct field *f = &schema_top;
	const char *p = dotted;
	struct json j;

	/* Walk the schema down the dotted key: "base.keyring" is keyring in base. */
	while (f && *p) {
		const char *dot = strchr(p, '.');
		_cleanup_free_ char *key = dot ? xstrndup(p, (size_t)(dot - p)) : xstrdup(p);
		f = schema_field_find(map_fields(f), key);
		p = dot ? dot + 1 : p + strlen(p);
	}
	json_init(&j, out, false);
	if (n)
		json_node(&j, n, f);
	else
		json_null(&j);
}

/* YAML output through libyaml's emitter. */
static int emit_write(void *data, unsigned char *buffer, size_t size)
{
	strbuf_add(data, buffer, size);
	return 1;
}

static int emit_scalar(yaml_emitter_t *e, const char *s, bool plain_ok)
{
	yaml_event_t ev;

	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
				     plain_ok ? YAML_ANY_SCALAR_STYLE
					      : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
	return yaml_emitter_emit(e, &ev);
}

/* Quote values that a YAML reader would otherwise take for another type. */
static bool needs_quotes(const char *s)
{
	bool b;
	long l;

	return !*s || schema_parse_bool(s, &b) || schema_parse_long(s, &l) || !strcmp(s, "null") ||
	       !strcmp(s, "~") || strchr(s, '\n') || s[0] == '0';
}

static int emit_node(yaml_emitter_t *e, const struct ynode *n, const struct field *f)
{
	yaml_event_t ev;
	size_t i;

	if (n->kind == YNODE_SCALAR) {
		bool keep = f && (f->type == T_INT || f->type == T_BOOL);
		return emit_scalar(e, n->str, keep || !needs_quotes(n->str));
	}
	if (n->kind == YNODE_SEQ) {
		bool flow = true;
		for (i = 0; i < n->n; i++)
			flow &= n->v[i]->kind == YNODE_SCALAR;
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
						     flow && n->n ? YAML_FLOW_SEQUENCE_STYLE
							      : YAML_BLOCK_SEQUENCE_STYLE);
		if (!yaml_emitter_emit(e, &ev))
			return 0;
		for (i = 0; i < n->n; i++)
			if (!emit_node(e, n->v[i], f && f->type == T_LIST ? &f->sub[0] : NULL))
				return 0;
		yaml_sequence_end_event_initialize(&ev);
		return yaml_emitter_emit(e, &ev);
	}
	{
		const struct field *fields = map_fields(f);
		size_t cnt;
		_cleanup_free_ size_t *idx = ordered_keys(n, fields, &cnt);
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (!yaml_emitter_emit(e, &ev))
			return 0;
		for (i = 0; i < cnt; i++) {
			if (!emit_scalar(e, n->k[idx[i]], true))
				return 0;
			if (!emit_node(e, n->v[idx[i]],
				       fields ? schema_field_find(fields, n->k[idx[i]]) : NULL))
				return 0;
		}
		yaml_mapping_end_event_initialize(&ev);
		return yaml_emitter_emit(e, &ev);
	}
}

int recipe_print_yaml(const struct recipe *r, const struct recipe_stage *stages, size_t nstages,
		      struct strbuf *out)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	int ok;
	size_t i;
	struct ynode *doc = ynode_new(YNODE_MAP, NULL);
	/* The stages print in the order given, not sorted: a field per stage keeps it. */
	_cleanup_free_ struct field *stage_fields = xcalloc(nstages + 1, sizeof(*stage_fields));
	const struct field out_fields[] = {
		{ "profile", T_STR, NULL, NULL, 0, 0, NULL, NULL },
		{ "recipe", T_MAP, schema_top_fields, NULL, 0, 0, NULL, NULL },
		{ "stages", T_MAP, stage_fields, NULL, 0, 0, NULL, NULL },
		{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
	};
	const struct field out_field = { NULL, T_MAP, out_fields, NULL, 0, 0, NULL, NULL };

	ynode_map_push(doc, "profile", &doc->pos, ynode_scalar(r->profile, NULL));
	ynode_map_push(doc, "recipe", &doc->pos, ynode_copy(r->root));
	if (nstages) {
		struct ynode *st = ynode_new(YNODE_MAP, NULL);
		for (i = 0; i < nstages; i++) {
			stage_fields[i].key = stages[i].name;
			stage_fields[i].type = T_STR;
			ynode_map_push(st, stages[i].name, &doc->pos,
				       ynode_scalar(stages[i].key, NULL));
		}
		ynode_map_push(doc, "stages", &doc->pos, st);
	}

	if (!yaml_emitter_initialize(&e)) {
		ynode_free(doc);
		return -ENOMEM;
	}
	yaml_emitter_set_output(&e, emit_write, out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, 100);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	ok = yaml_emitter_emit(&e, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	ok = ok && yaml_emitter_emit(&e, &ev);
	ok = ok && emit_node(&e, doc, &out_field);
	yaml_document_end_event_initialize(&ev, 1);
	ok = ok && yaml_emitter_emit(&e, &ev);
	yaml_stream_end_event_initialize(&ev);
	ok = ok && yaml_emitter_emit(&e, &ev);
	yaml_emitter_delete(&e);
	ynode_free(doc);
	if (ok && out->len && out->buf[out->len - 1] != '\n')
		strbuf_addch(out, '\n');
	return ok ? 0 : -EIO;
}
