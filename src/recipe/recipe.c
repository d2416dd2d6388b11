/* SPDX-License-Identifier: MIT */
/*
 * The recipe language on libyaml: parsing into position-carrying nodes,
 * includes, merging, profiles, ${var} substitution and typed validation.
 * This is the only file that includes <yaml.h>. docs/recipes.md is the
 * user-facing description of every rule implemented here.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "core/hash.h"
#include "core/json.h"
#include "recipe/recipe.h"

/*
 * Bump when the meaning of a stage's inputs or the bytes of its output change for the
 * same inputs (docs/cache.md): old cache entries then miss. tests/e2e/t3050-stage-format.sh
 * fails when the output changes without a bump.
 */
#define STAGE_FORMAT_VERSION "2"

/* ------------------------------------------------------------------------ */
/* diagnostics */

void diags_add(struct diags *d, const struct ypos *pos, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	struct diag *e;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	GROW(d->v, d->alloc, d->n + 1);
	e = &d->v[d->n++];
	e->file = xstrdup(pos && pos->file ? pos->file : "imgforge");
	e->line = pos ? pos->line : 0;
	e->col = pos ? pos->col : 0;
	e->msg = strbuf_detach(&sb);
}

void diags_print(const struct diags *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		if (d->v[i].line > 0)
			fprintf(stderr, "%s:%d:%d: error: %s\n", d->v[i].file, d->v[i].line,
				d->v[i].col, d->v[i].msg);
		else
			fprintf(stderr, "%s: error: %s\n", d->v[i].file, d->v[i].msg);
	}
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

static struct ynode *ynode_new(enum ynode_kind kind, const struct ypos *pos)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	if (pos)
		n->pos = *pos;
	return n;
}

static struct ynode *ynode_scalar(const char *s, const struct ypos *pos)
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

static void ynode_seq_push(struct ynode *seq, struct ynode *item)
{
	GROW(seq->v, seq->alloc, seq->n + 1);
	seq->v[seq->n++] = item;
}

static void ynode_map_push(struct ynode *map, const char *key, const struct ypos *kpos,
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

static ssize_t ynode_map_index(const struct ynode *map, const char *key)
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

static void ynode_map_remove(struct ynode *map, size_t i)
{
	ynode_free(map->v[i]);
	free(map->k[i]);
	memmove(map->v + i, map->v + i + 1, (map->n - i - 1) * sizeof(*map->v));
	memmove(map->k + i, map->k + i + 1, (map->n - i - 1) * sizeof(*map->k));
	memmove(map->kpos + i, map->kpos + i + 1, (map->n - i - 1) * sizeof(*map->kpos));
	map->n--;
}

static struct ynode *ynode_copy(const struct ynode *src)
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
static bool ynode_is_null(const struct ynode *n)
{
	return n->kind == YNODE_SCALAR && n->plain &&
	       (!n->str[0] || !strcmp(n->str, "~") || !strcmp(n->str, "null") ||
		!strcmp(n->str, "Null") || !strcmp(n->str, "NULL"));
}

static const char *kind_name(const struct ynode *n)
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
				  ev.data.alias.anchor);
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
					  anchor);
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
						  ev.data.scalar.value, top->node->kpos[i].line);
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

/* ------------------------------------------------------------------------ */
/* schema */

enum vtype {
	T_STR,	   /* any string */
	T_NAME,	   /* image or profile name */
	T_VERSION, /* version string */
	T_INT,	   /* integer in [min, max] */
	T_BOOL,
	T_SIZE,	     /* "1536M" */
	T_SIZE_AUTO, /* size or "auto" */
	T_MODE,	     /* octal permission bits */
	T_OWNER,     /* user[:group], names or numbers */
	T_ABSPATH,   /* absolute path inside the image */
	T_HOSTPATH,  /* path on the host, relative to the file that names it */
	T_SOURCE,    /* URL or host path */
	T_PKG,	     /* Debian package name */
	T_UNIT,	     /* systemd unit name */
	T_ENUM,
	T_SHA256,
	T_LIST,	    /* items described by .sub[0] */
	T_MAP,	    /* keys described by .sub (NULL-terminated by key) */
	T_VARS,	    /* map of variable name -> scalar */
	T_PROFILES, /* map of profile name -> profile map */
	T_OVERLAY,  /* host path string, or map described by .sub */
};

struct field {
	const char *key;
	enum vtype type;
	const struct field *sub;
	const char *const *choices;
	long min, max;
	const char *idkey; /* T_LIST of maps: items with the same value of this key replace */
	const char *help;  /* what the value should look like, for messages */
};

static const char *const distro_choices[] = { "debian", "ubuntu", NULL };
static const char *const variant_choices[] = { "extract", "custom", "essential", "apt",
					       "required", "minbase", "buildd", "important",
					       "standard", NULL };
static const char *const arch_choices[] = { "amd64", NULL };
static const char *const filetype_choices[] = { "file", "directory", "symlink", NULL };

static const struct field str_item[] = { { NULL, T_STR, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field pkg_item[] = { { NULL, T_PKG, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field unit_item[] = { { NULL, T_UNIT, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field abspath_item[] = { { NULL, T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field hostpath_item[] = { { NULL, T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL } };

static const struct field base_fields[] = {
	{ "distro", T_ENUM, NULL, distro_choices, 0, 0, NULL, NULL },
	{ "suite", T_NAME, NULL, NULL, 0, 0, NULL, NULL },
	{ "mirror", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "components", T_LIST, str_item, NULL, 0, 0, NULL, NULL },
	{ "keyring", T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "variant", T_ENUM, NULL, variant_choices, 0, 0, NULL, NULL },
	{ "architecture", T_ENUM, NULL, arch_choices, 0, 0, NULL, NULL },
	{ "packages", T_LIST, pkg_item, NULL, 0, 0, NULL, NULL },
	{ "minimize", T_BOOL, NULL, NULL, 0, 0, NULL, NULL },
	{ "exclude", T_LIST, abspath_item, NULL, 0, 0, NULL, NULL },
	{ "tarball", T_SOURCE, NULL, NULL, 0, 0, NULL, NULL },
	{ "sha256", T_SHA256, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field overlay_fields[] = {
	{ "source", T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "target", T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "owner", T_OWNER, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};
static const struct field overlay_item[] = {
	{ NULL, T_OVERLAY, overlay_fields, NULL, 0, 0, NULL, NULL }
};

static const struct field file_fields[] = {
	{ "path", T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "type", T_ENUM, NULL, filetype_choices, 0, 0, NULL, NULL },
	{ "mode", T_MODE, NULL, NULL, 0, 0, NULL, NULL },
	{ "owner", T_OWNER, NULL, NULL, 0, 0, NULL, NULL },
	{ "content", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "source", T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "target", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};
static const struct field file_item[] = { { NULL, T_MAP, file_fields, NULL, 0, 0, "path", NULL } };

static const struct field services_fields[] = {
	{ "enable", T_LIST, unit_item, NULL, 0, 0, NULL, NULL },
	{ "disable", T_LIST, unit_item, NULL, 0, 0, NULL, NULL },
	{ "mask", T_LIST, unit_item, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field rootfs_fields[] = {
	{ "size", T_SIZE_AUTO, NULL, NULL, 0, 0, NULL, NULL },
	{ "headroom", T_INT, NULL, NULL, 0, 1000, NULL, "a percentage from 0 to 1000" },
	{ "label", T_STR, NULL, NULL, 0, 16, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field disk_fields[] = {
	{ "size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ "root_size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ "data_size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ "esp_size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field boot_fields[] = {
	{ "cmdline", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "tries", T_INT, NULL, NULL, 1, 100, NULL, "a number of tries from 1 to 100" },
	{ "timeout", T_INT, NULL, NULL, 0, 600, NULL, "seconds from 0 to 600" },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

/* Keys a profile may set: everything but the image's identity and structure. */
#define BODY_FIELDS                                                                                \
	{ "description", T_STR, NULL, NULL, 0, 0, NULL, NULL },                                    \
		{ "variables", T_VARS, NULL, NULL, 0, 0, NULL, NULL },                             \
		{ "base", T_MAP, base_fields, NULL, 0, 0, NULL, NULL },                            \
		{ "packages", T_LIST, pkg_item, NULL, 0, 0, NULL, NULL },                          \
		{ "overlays", T_LIST, overlay_item, NULL, 0, 0, NULL, NULL },                      \
		{ "files", T_LIST, file_item, NULL, 0, 0, NULL, NULL },                            \
		{ "remove", T_LIST, abspath_item, NULL, 0, 0, NULL, NULL },                        \
		{ "services", T_MAP, services_fields, NULL, 0, 0, NULL, NULL },                    \
		{ "rootfs", T_MAP, rootfs_fields, NULL, 0, 0, NULL, NULL },                        \
		{ "disk", T_MAP, disk_fields, NULL, 0, 0, NULL, NULL },                            \
		{ "boot", T_MAP, boot_fields, NULL, 0, 0, NULL, NULL }

static const struct field profile_fields[] = {
	BODY_FIELDS,
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field top_fields[] = {
	{ "image", T_NAME, NULL, NULL, 0, 0, NULL, NULL },
	{ "version", T_VERSION, NULL, NULL, 0, 0, NULL, NULL },
	{ "include", T_LIST, hostpath_item, NULL, 0, 0, NULL, NULL },
	BODY_FIELDS,
	{ "profiles", T_PROFILES, profile_fields, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field top_field = { NULL, T_MAP, top_fields, NULL, 0, 0, NULL, NULL };

static const struct field *field_find(const struct field *fields, const char *key)
{
	for (; fields && fields->key; fields++)
		if (!strcmp(fields->key, key))
			return fields;
	return NULL;
}

static const char *field_suggest(const struct field *fields, const char *key)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	for (; fields && fields->key; fields++) {
		size_t dist = str_distance(key, fields->key);
		if (dist < best_d) {
			best_d = dist;
			best = fields->key;
		}
	}
	if (best && (best_d <= 2 || (best_d <= 3 && strlen(key) >= 8)))
		return best;
	return NULL;
}

static const char *type_name(const struct field *f)
{
	switch (f->type) {
	case T_LIST: return "a list";
	case T_MAP: case T_VARS: case T_PROFILES: return "a map";
	case T_OVERLAY: return "a path or a map";
	case T_INT: return "a number";
	case T_BOOL: return "true or false";
	default: return "a scalar";
	}
}

/* ------------------------------------------------------------------------ */
/* value checks */

static bool valid_name(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (!n || n > max || !isalnum((unsigned char)s[0]))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

static bool valid_pkg(const char *s)
{
	size_t i, n = strlen(s);

	/* name[:arch][=version], as apt takes them */
	if (n < 2 || n > 200 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!islower(c) && !isdigit(c) && !strchr("+-.:=~", c))
			return false;
	}
	return true;
}

static bool valid_version(const char *s)
{
	size_t n = strlen(s);

	return n && n <= 64 && isalnum((unsigned char)s[0]) &&
	       strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+~_-") == n;
}

static bool valid_user(const char *s, size_t n)
{
	size_t i;

	if (!n || n > 32)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && !strchr("_-.", c) && !(c == '$' && i == n - 1))
			return false;
	}
	return true;
}

static bool parse_mode(const char *s, unsigned *ret)
{
	size_t i, n = strlen(s);
	unsigned v = 0;

	if (n < 3 || n > 5)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return false;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	if (v > 07777)
		return false;
	*ret = v;
	return true;
}

static bool parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "True", "Yes", "On", "TRUE" };
	static const char *const no[] = { "false", "no", "off", "False", "No", "Off", "FALSE" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcmp(s, yes[i])) {
			*ret = true;
			return true;
		}
		if (!strcmp(s, no[i])) {
			*ret = false;
			return true;
		}
	}
	return false;
}

static bool parse_long(const char *s, long *ret)
{
	char *end;
	long v;

	if (!*s || isspace((unsigned char)*s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return false;
	*ret = v;
	return true;
}

/* Check a scalar's value against its type. Adds a diagnostic and returns false if bad. */
static bool check_value(const struct field *f, const char *name, const struct ynode *n,
			struct diags *d)
{
	const char *s = n->str;
	uint64_t size;
	unsigned mode;
	long l;
	bool b;
	const char *const *c;

	switch (f->type) {
	case T_STR:
		if (f->max && strlen(s) > (size_t)f->max) {
			diags_add(d, &n->pos, "'%s' is longer than %ld characters", name, f->max);
			return false;
		}
		return true;
	case T_NAME:
		if (valid_name(s, 64))
			return true;
		diags_add(d, &n->pos,
			  "invalid %s '%s': use letters, digits, '.', '_' and '-' (at most 64)", name,
			  s);
		return false;
	case T_VERSION:
		if (valid_version(s))
			return true;
		diags_add(d, &n->pos, "invalid version '%s': use letters, digits and '.+~_-'", s);
		return false;
	case T_INT:
		if (!parse_long(s, &l) || l < f->min || l > f->max) {
			diags_add(d, &n->pos, "invalid %s '%s': expected %s", name, s,
				  f->help ? f->help : "a number");
			return false;
		}
		return true;
	case T_BOOL:
		if (parse_bool(s, &b))
			return true;
		diags_add(d, &n->pos, "invalid %s '%s': expected true or false", name, s);
		return false;
	case T_SIZE_AUTO:
		if (!strcmp(s, "auto"))
			return true;
		/* fall through */
	case T_SIZE:
		if (parse_size(s, &size) == 0 && size > 0)
			return true;
		diags_add(d, &n->pos, "invalid size '%s' for %s: use a number with K, M, G or T%s",
			  s, name, f->type == T_SIZE_AUTO ? ", or auto" : " (like 512M or 4G)");
		return false;
	case T_MODE:
		if (parse_mode(s, &mode))
			return true;
		diags_add(d, &n->pos, "invalid mode '%s': expected octal permission bits like 0644",
			  s);
		return false;
	case T_OWNER: {
		const char *colon = strchr(s, ':');
		size_t ul = colon ? (size_t)(colon - s) : strlen(s);
		if (valid_user(s, ul) && (!colon || valid_user(colon + 1, strlen(colon + 1))))
			return true;
		diags_add(d, &n->pos, "invalid owner '%s': expected user:group (names or numbers)",
			  s);
		return false;
	}
	case T_ABSPATH:
		if (s[0] == '/' && !strstr(s, "/../") && !str_endswith(s, "/..") &&
		    strlen(s) < 4096)
			return true;
		diags_add(d, &n->pos,
			  "invalid path '%s' for %s: expected an absolute path inside the image, "
			  "without '..'",
			  s, name);
		return false;
	case T_HOSTPATH:
	case T_SOURCE:
		if (*s && strlen(s) < 4096)
			return true;
		diags_add(d, &n->pos, "empty path for %s", name);
		return false;
	case T_PKG:
		if (valid_pkg(s))
			return true;
		diags_add(d, &n->pos,
			  "invalid package name '%s': Debian package names use lowercase letters, "
			  "digits and '+-.'",
			  s);
		return false;
	case T_UNIT:
		if (valid_name(s, 255) || (strchr(s, '@') && strlen(s) < 256))
			return true;
		diags_add(d, &n->pos, "invalid unit name '%s'", s);
		return false;
	case T_ENUM:
		for (c = f->choices; *c; c++)
			if (!strcmp(*c, s))
				return true;
		{
			struct strbuf sb = STRBUF_INIT;
			for (c = f->choices; *c; c++)
				strbuf_addf(&sb, "%s%s", c == f->choices ? "" : ", ", *c);
			diags_add(d, &n->pos, "invalid %s '%s': expected one of %s", name, s,
				  sb.buf);
			strbuf_release(&sb);
		}
		return false;
	case T_SHA256:
		if (is_sha256_hex(s))
			return true;
		diags_add(d, &n->pos, "invalid sha256 '%s': expected 64 hex digits", s);
		return false;
	default:
		return true;
	}
}

/* ------------------------------------------------------------------------ */
/* validation: structure (per file) and values */

enum vmode {
	V_STRUCTURE, /* kinds and keys; values without ${...} */
	V_VALUES,    /* values that had ${...}, after substitution */
};

struct vctx {
	struct diags *d;
	enum vmode mode;
	const char *dir; /* directory of the file being loaded, for host paths */
};

static bool valid_var_name(const char *s)
{
	size_t i;

	if (!s[0] || (!isalpha((unsigned char)s[0]) && s[0] != '_'))
		return false;
	for (i = 0; s[i]; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return i <= 64;
}

static void validate(struct vctx *v, const struct field *f, const char *name, struct ynode *n);

static void validate_map(struct vctx *v, const struct field *fields, const char *name,
			 struct ynode *n)
{
	size_t i;

	for (i = 0; i < n->n; i++) {
		const struct field *sub = field_find(fields, n->k[i]);
		if (!sub) {
			const char *hint = field_suggest(fields, n->k[i]);
			if (v->mode == V_VALUES)
				continue;
			if (hint)
				diags_add(v->d, &n->kpos[i],
					  "unknown key '%s'%s%s (did you mean '%s'?)", n->k[i],
					  name ? " in " : "", name ? name : "", hint);
			else
				diags_add(v->d, &n->kpos[i], "unknown key '%s'%s%s", n->k[i],
					  name ? " in " : "", name ? name : "");
			continue;
		}
		validate(v, sub, sub->key, n->v[i]);
	}
}

static void set_abspath(struct vctx *v, struct ynode *n)
{
	if (!v->dir || n->had_var)
		return;
	free(n->abspath);
	if (n->str[0] == '/')
		n->abspath = xstrdup(n->str);
	else
		n->abspath = path_join(v->dir, n->str);
}

static void validate(struct vctx *v, const struct field *f, const char *name, struct ynode *n)
{
	size_t i;

	/* An empty value (`key:` with nothing) means an empty list or map. */
	if (ynode_is_null(n) && (f->type == T_LIST || f->type == T_MAP || f->type == T_VARS ||
				 f->type == T_PROFILES)) {
		free(n->str);
		n->str = NULL;
		n->kind = f->type == T_LIST ? YNODE_SEQ : YNODE_MAP;
		return;
	}

	switch (f->type) {
	case T_LIST:
		if (n->kind != YNODE_SEQ) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'%s' must be a list, not %s", name,
					  kind_name(n));
			return;
		}
		for (i = 0; i < n->n; i++)
			validate(v, &f->sub[0], name, n->v[i]);
		return;
	case T_MAP:
		if (n->kind != YNODE_MAP) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'%s' must be a map, not %s",
					  name ? name : "a recipe", kind_name(n));
			return;
		}
		validate_map(v, f->sub, name, n);
		return;
	case T_VARS:
		if (n->kind != YNODE_MAP) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'variables' must be a map, not %s",
					  kind_name(n));
			return;
		}
		if (v->mode != V_STRUCTURE)
			return;
		for (i = 0; i < n->n; i++) {
			if (!valid_var_name(n->k[i]))
				diags_add(v->d, &n->kpos[i],
					  "invalid variable name '%s': use letters, digits and '_'",
					  n->k[i]);
			if (n->v[i]->kind != YNODE_SCALAR)
				diags_add(v->d, &n->v[i]->pos,
					  "variable '%s' must be a scalar, not %s", n->k[i],
					  kind_name(n->v[i]));
		}
		return;
	case T_PROFILES:
		if (n->kind != YNODE_MAP) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'profiles' must be a map, not %s",
					  kind_name(n));
			return;
		}
		for (i = 0; i < n->n; i++) {
			if (v->mode == V_STRUCTURE && !valid_name(n->k[i], 64))
				diags_add(v->d, &n->kpos[i], "invalid profile name '%s'", n->k[i]);
			if (ynode_is_null(n->v[i])) {
				free(n->v[i]->str);
				n->v[i]->str = NULL;
				n->v[i]->kind = YNODE_MAP;
			}
			if (n->v[i]->kind != YNODE_MAP) {
				if (v->mode == V_STRUCTURE)
					diags_add(v->d, &n->v[i]->pos,
						  "profile '%s' must be a map, not %s", n->k[i],
						  kind_name(n->v[i]));
				continue;
			}
			validate_map(v, f->sub, "a profile", n->v[i]);
		}
		return;
	case T_OVERLAY:
		if (n->kind == YNODE_MAP) {
			validate_map(v, f->sub, "an overlay", n);
			if (v->mode == V_STRUCTURE && !ynode_map_get(n, "source"))
				diags_add(v->d, &n->pos, "overlay needs 'source:' (a directory)");
			return;
		}
		if (n->kind != YNODE_SCALAR) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos,
					  "an overlay is a directory path or a map, not %s",
					  kind_name(n));
			return;
		}
		{
			static const struct field hp = { NULL, T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL };
			validate(v, &hp, "overlay", n);
		}
		return;
	default:
		break;
	}

	/* Scalars. */
	if (n->kind != YNODE_SCALAR) {
		if (v->mode == V_STRUCTURE)
			diags_add(v->d, &n->pos, "'%s' must be %s, not %s", name ? name : "value",
				  type_name(f), kind_name(n));
		return;
	}
	if (v->mode == V_STRUCTURE) {
		if (strstr(n->str, "${")) {
			n->had_var = true;
			return; /* checked after substitution */
		}
		check_value(f, name ? name : "value", n, v->d);
		if (f->type == T_HOSTPATH || (f->type == T_SOURCE && !strstr(n->str, "://")))
			set_abspath(v, n);
	} else if (n->had_var) {
		check_value(f, name ? name : "value", n, v->d);
	}
}

/* ------------------------------------------------------------------------ */
/* loading files and includes */

struct loader {
	struct recipe *r;
	struct diags *d;
	char *chain[RECIPE_MAX_INCLUDES]; /* realpaths of the files being loaded */
	const char *chain_shown[RECIPE_MAX_INCLUDES];
	int depth;
	int loaded;
};

static const char *intern_file(struct recipe *r, const char *path)
{
	size_t i;

	for (i = 0; i < r->nfiles; i++)
		if (!strcmp(r->files[i], path))
			return r->files[i];
	GROW(r->files, r->files_alloc, r->nfiles + 1);
	r->files[r->nfiles] = xstrdup(path);
	return r->files[r->nfiles++];
}

static void merge(struct ynode *dst, const struct ynode *src, const struct field *f);

/*
 * Load one file and everything it includes; return the merged tree of the
 * file (its includes first, the file itself last), without include:.
 */
static struct ynode *load_file(struct loader *l, const char *path, const struct ypos *from)
{
	_cleanup_free_ char *buf = NULL, *real = NULL, *dir = NULL;
	struct ynode *root = NULL, *merged = NULL;
	const char *file;
	size_t len = 0, i, before;
	struct vctx v;
	ssize_t inc;
	int r;

	file = intern_file(l->r, path);
	r = read_file(path, RECIPE_MAX_FILE_SIZE, &buf, &len);
	if (r < 0) {
		struct ypos top = { file, 1, 1 };
		if (r == -EFBIG)
			diags_add(l->d, &top, "file is larger than the %d KiB recipe limit",
				  RECIPE_MAX_FILE_SIZE / 1024);
		else if (from)
			diags_add(l->d, from, "cannot read include '%s': %s", path, strerror(-r));
		else
			diags_add(l->d, NULL, "cannot read '%s': %s", path, strerror(-r));
		return NULL;
	}
	real = realpath(path, NULL);
	if (!real)
		real = xstrdup(path);
	for (i = 0; i < (size_t)l->depth; i++) {
		if (!strcmp(l->chain[i], real)) {
			struct strbuf sb = STRBUF_INIT;
			size_t j;
			for (j = i; j < (size_t)l->depth; j++)
				strbuf_addf(&sb, "%s -> ", l->chain_shown[j]);
			strbuf_addstr(&sb, path);
			diags_add(l->d, from, "include cycle: %s", sb.buf);
			strbuf_release(&sb);
			return NULL;
		}
	}
	if (l->depth >= RECIPE_MAX_INCLUDES || ++l->loaded > RECIPE_MAX_INCLUDES) {
		diags_add(l->d, from, "more than %d included files", RECIPE_MAX_INCLUDES);
		return NULL;
	}

	before = l->d->n;
	r = ynode_parse(file, buf, len, &root, l->d);
	if (r < 0)
		return NULL;
	if (root->kind != YNODE_MAP) {
		diags_add(l->d, &root->pos, "a recipe must be a map of keys, not %s",
			  kind_name(root));
		ynode_free(root);
		return NULL;
	}
	dir = path_dirname(real);
	v.d = l->d;
	v.mode = V_STRUCTURE;
	v.dir = dir;
	validate(&v, &top_field, NULL, root);
	if (l->d->n > before) {
		ynode_free(root);
		return NULL;
	}

	l->chain[l->depth] = TAKE_PTR(real);
	l->chain_shown[l->depth] = file;
	l->depth++;

	merged = ynode_new(YNODE_MAP, &root->pos);
	inc = ynode_map_index(root, "include");
	if (inc >= 0) {
		struct ynode *list = root->v[inc];
		for (i = 0; i < list->n; i++) {
			struct ynode *item = list->v[i];
			_cleanup_free_ char *ipath = NULL;
			_cleanup_free_ char *fdir = path_dirname(path);
			struct ynode *sub;

			if (item->had_var) {
				diags_add(l->d, &item->pos,
					  "include paths cannot use variables: includes are read "
					  "before variables are known");
				continue;
			}
			ipath = item->str[0] == '/' ? xstrdup(item->str)
						    : path_join(fdir, item->str);
			path_normalize(ipath);
			sub = load_file(l, ipath, &item->pos);
			if (sub) {
				merge(merged, sub, &top_field);
				ynode_free(sub);
			}
		}
		ynode_map_remove(root, (size_t)inc);
	}
	merge(merged, root, &top_field);
	ynode_free(root);

	l->depth--;
	free(l->chain[l->depth]);
	l->chain[l->depth] = NULL;
	return merged;
}

/* ------------------------------------------------------------------------ */
/* merging */

static bool ynode_equal(const struct ynode *a, const struct ynode *b)
{
	size_t i;

	if (a->kind != b->kind || a->n != b->n)
		return false;
	if (a->kind == YNODE_SCALAR) {
		if (a->abspath && b->abspath)
			return !strcmp(a->abspath, b->abspath);
		return !strcmp(a->str, b->str);
	}
	for (i = 0; i < a->n; i++) {
		if (a->kind == YNODE_MAP && strcmp(a->k[i], b->k[i]))
			return false;
		if (!ynode_equal(a->v[i], b->v[i]))
			return false;
	}
	return true;
}

static const char *item_id(const struct ynode *item, const char *idkey)
{
	const struct ynode *id;

	if (!idkey || item->kind != YNODE_MAP)
		return NULL;
	id = ynode_map_get(item, idkey);
	return id && id->kind == YNODE_SCALAR ? id->str : NULL;
}

/*
 * Merge src into dst (both described by f): maps merge key by key, lists
 * append and drop duplicates (list items with an identity key such as a
 * file's path replace the earlier item), scalars: src wins.
 */
static void merge(struct ynode *dst, const struct ynode *src, const struct field *f)
{
	size_t i, j;

	if (f->type == T_LIST) {
		for (i = 0; i < src->n; i++) {
			const struct ynode *item = src->v[i];
			const char *id = item_id(item, f->sub[0].idkey);
			bool dup = false;

			for (j = 0; j < dst->n; j++) {
				const char *did = item_id(dst->v[j], f->sub[0].idkey);
				if (id && did && !strcmp(id, did)) {
					ynode_free(dst->v[j]);
					dst->v[j] = ynode_copy(item);
					dup = true;
					break;
				}
				if (ynode_equal(dst->v[j], item)) {
					dup = true;
					break;
				}
			}
			if (!dup)
				ynode_seq_push(dst, ynode_copy(item));
		}
		return;
	}
	/* Maps (T_MAP, T_VARS, T_PROFILES). */
	for (i = 0; i < src->n; i++) {
		const struct field *sub = NULL;
		ssize_t k = ynode_map_index(dst, src->k[i]);

		if (f->type == T_MAP)
			sub = field_find(f->sub, src->k[i]);
		else if (f->type == T_PROFILES)
			sub = &(const struct field){ NULL, T_MAP, f->sub, NULL, 0, 0, NULL, NULL };
		if (k < 0) {
			ynode_map_push(dst, src->k[i], &src->kpos[i], ynode_copy(src->v[i]));
			continue;
		}
		if (sub && (sub->type == T_MAP || sub->type == T_VARS ||
			    sub->type == T_PROFILES || sub->type == T_LIST) &&
		    dst->v[k]->kind == src->v[i]->kind && src->v[i]->kind != YNODE_SCALAR) {
			merge(dst->v[k], src->v[i], sub);
			dst->kpos[k] = src->kpos[i];
			continue;
		}
		ynode_free(dst->v[k]);
		dst->v[k] = ynode_copy(src->v[i]);
		dst->kpos[k] = src->kpos[i];
	}
}

/* ------------------------------------------------------------------------ */
/* variables */

struct subst {
	const struct ynode *vars;
	struct diags *d;
	const char *stack[16];
	int depth;
};

static int expand(struct subst *s, const char *in, const struct ypos *pos, struct strbuf *out);

static int expand_var(struct subst *s, const char *name, const char *def, const struct ypos *pos,
		      struct strbuf *out)
{
	const struct ynode *val = ynode_map_get(s->vars, name);
	int i, r;

	if (!valid_var_name(name)) {
		diags_add(s->d, pos, "invalid variable reference '${%s}'", name);
		return -EINVAL;
	}
	if (!val) {
		if (def)
			return expand(s, def, pos, out);
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
	r = expand(s, val->str, pos, out);
	s->depth--;
	return r;
}

/* Expand ${name}, ${name:-default} and $$ in a string. */
static int expand(struct subst *s, const char *in, const struct ypos *pos, struct strbuf *out)
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

static void substitute_tree(struct subst *s, struct ynode *n)
{
	size_t i;

	if (n->kind == YNODE_SCALAR) {
		struct strbuf out = STRBUF_INIT;
		if (!strchr(n->str, '$'))
			return;
		if (expand(s, n->str, &n->pos, &out) == 0) {
			free(n->str);
			n->str = strbuf_detach(&out);
		}
		strbuf_release(&out);
		return;
	}
	for (i = 0; i < n->n; i++)
		substitute_tree(s, n->v[i]);
}

/* Resolve host paths of values that were only known after substitution. */
static void resolve_late_paths(struct ynode *n, const struct field *f)
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
			resolve_late_paths(n->v[i], &f->sub[0]);
	} else if (n->kind == YNODE_MAP && (f->type == T_MAP || f->type == T_OVERLAY)) {
		for (i = 0; i < n->n; i++)
			resolve_late_paths(n->v[i], field_find(f->sub, n->k[i]));
	}
}

/* ------------------------------------------------------------------------ */
/* whole-recipe checks after resolution */

static const struct ypos *key_pos(const struct ynode *map, const char *key)
{
	ssize_t i = ynode_map_index(map, key);
	return i < 0 ? &map->pos : &map->kpos[i];
}

static uint64_t size_or(const struct ynode *map, const char *key, uint64_t def)
{
	const struct ynode *n = ynode_map_get(map, key);
	uint64_t v;

	if (!n || n->kind != YNODE_SCALAR || parse_size(n->str, &v) < 0)
		return def;
	return v;
}

static void check_disk(const struct ynode *root, struct diags *d)
{
	const struct ynode *disk = ynode_map_get(root, "disk");
	const struct ynode *rootfs = ynode_map_get(root, "rootfs");
	uint64_t size, root_size, data, esp, need, fs;
	char a[32], b[32];

	/* A fixed root filesystem size must fit its slot. */
	if (disk && disk->kind == YNODE_MAP && rootfs && rootfs->kind == YNODE_MAP &&
	    (fs = size_or(rootfs, "size", 0)) && (root_size = size_or(disk, "root_size", 0)) &&
	    fs > root_size)
		diags_add(d, &ynode_map_get(rootfs, "size")->pos,
			  "rootfs.size %s is larger than its slot (disk.root_size %s): raise "
			  "root_size to at least %s",
			  ynode_map_get(rootfs, "size")->str, ynode_map_get(disk, "root_size")->str,
			  format_size(fs, a, sizeof(a)));

	if (!disk || disk->kind != YNODE_MAP || !ynode_map_get(disk, "size"))
		return;
	size = size_or(disk, "size", 0);
	root_size = size_or(disk, "root_size", 0);
	data = size_or(disk, "data_size", 0);
	esp = size_or(disk, "esp_size", 128ULL << 20);
	if (!size)
		return;
	/* 1 MiB before the first partition, BIOS boot 1 MiB, backup GPT 1 MiB. */
	need = (3ULL << 20) + esp + 2 * root_size + data;
	if (need > size)
		diags_add(d, &ynode_map_get(disk, "size")->pos,
			  "disk size %s is too small: the partitions need %s (1 MiB BIOS boot + "
			  "%s ESP + 2 x %s root slots + %s data + 2 MiB for the partition tables)",
			  ynode_map_get(disk, "size")->str, format_size(need, a, sizeof(a)),
			  ynode_map_get(disk, "esp_size") ? ynode_map_get(disk, "esp_size")->str
							  : "128M",
			  ynode_map_get(disk, "root_size") ? ynode_map_get(disk, "root_size")->str
							   : "0",
			  ynode_map_get(disk, "data_size") ? ynode_map_get(disk, "data_size")->str
							   : "0");
	(void)b;
}

static void check_files(const struct ynode *root, struct diags *d)
{
	const struct ynode *files = ynode_map_get(root, "files");
	size_t i;

	if (!files || files->kind != YNODE_SEQ)
		return;
	for (i = 0; i < files->n; i++) {
		const struct ynode *f = files->v[i];
		const struct ynode *type, *content, *source, *target;
		const char *t;

		if (f->kind != YNODE_MAP)
			continue;
		if (!ynode_map_get(f, "path")) {
			diags_add(d, &f->pos, "file entry needs 'path:'");
			continue;
		}
		type = ynode_map_get(f, "type");
		t = type ? type->str : "file";
		content = ynode_map_get(f, "content");
		source = ynode_map_get(f, "source");
		target = ynode_map_get(f, "target");
		if (!strcmp(t, "file") && !!content == !!source)
			diags_add(d, &f->pos, "file '%s' needs exactly one of 'content:' or 'source:'",
				  ynode_map_get(f, "path")->str);
		if (!strcmp(t, "symlink") && !target)
			diags_add(d, &f->pos, "symlink '%s' needs 'target:'",
				  ynode_map_get(f, "path")->str);
		if (strcmp(t, "symlink") && target)
			diags_add(d, key_pos(f, "target"), "'target:' is only for type: symlink");
		if (strcmp(t, "file") && (content || source))
			diags_add(d, key_pos(f, content ? "content" : "source"),
				  "'%s:' is only for type: file", content ? "content" : "source");
		if (source && source->abspath && access(source->abspath, R_OK) < 0)
			diags_add(d, &source->pos, "cannot read source '%s': %s", source->str,
				  strerror(errno));
	}
}

static void check_base(const struct ynode *root, struct diags *d)
{
	const struct ynode *base = ynode_map_get(root, "base");
	const struct ynode *tarball, *pkgs, *bpkgs;

	if (!base || base->kind != YNODE_MAP) {
		diags_add(d, &root->pos,
			  "no 'base:': give a package base (distro, suite) or a tarball (tarball, "
			  "sha256)");
		return;
	}
	tarball = ynode_map_get(base, "tarball");
	pkgs = ynode_map_get(root, "packages");
	bpkgs = ynode_map_get(base, "packages");
	if (tarball) {
		static const char *const pkg_only[] = { "distro", "suite", "mirror", "components",
							"keyring", "variant" };
		size_t i;
		if (!ynode_map_get(base, "sha256"))
			diags_add(d, key_pos(base, "tarball"),
				  "a tarball base needs 'sha256:' so that the download can be "
				  "verified");
		if (pkgs && pkgs->n)
			diags_add(d, key_pos(root, "packages"),
				  "'packages' needs a package base: a tarball base is used as it "
				  "is; add files with overlays, or build a new tarball");
		if (bpkgs && bpkgs->n)
			diags_add(d, key_pos(base, "packages"),
				  "'base.packages' needs a package base (distro, suite), not a "
				  "tarball");
		for (i = 0; i < ARRAY_SIZE(pkg_only); i++)
			if (ynode_map_get(base, pkg_only[i]))
				diags_add(d, key_pos(base, pkg_only[i]),
					  "'%s' is for package bases; this base is a tarball",
					  pkg_only[i]);
		return;
	}
	if (!ynode_map_get(base, "distro"))
		diags_add(d, &base->pos, "base needs 'distro:' (debian or ubuntu) or 'tarball:'");
	if (!ynode_map_get(base, "suite"))
		diags_add(d, &base->pos, "base needs 'suite:' (like bookworm or noble)");
	if (ynode_map_get(base, "sha256"))
		diags_add(d, key_pos(base, "sha256"), "'sha256' is for tarball bases");
}

static void check_overlays(const struct ynode *root, struct diags *d)
{
	const struct ynode *ov = ynode_map_get(root, "overlays");
	size_t i;

	if (!ov || ov->kind != YNODE_SEQ)
		return;
	for (i = 0; i < ov->n; i++) {
		const struct ynode *src = ov->v[i];
		struct stat st;

		if (src->kind == YNODE_MAP)
			src = ynode_map_get(src, "source");
		if (!src || !src->abspath)
			continue;
		if (stat(src->abspath, &st) < 0)
			diags_add(d, &src->pos, "overlay '%s': %s", src->str, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			diags_add(d, &src->pos, "overlay '%s' is not a directory", src->str);
	}
}

/* ------------------------------------------------------------------------ */
/* recipe_load */

static const struct ypos cmdline_pos = { "--set", 0, 0 };

int recipe_load(const char *path, const struct recipe_opts *opts, struct recipe **ret,
		struct diags *d)
{
	struct recipe *r = xcalloc(1, sizeof(*r));
	struct loader l = { .r = r, .d = d };
	struct ynode *root, *vars;
	struct subst s = { .d = d };
	struct vctx v;
	const char *profile = opts && opts->profile ? opts->profile : NULL;
	size_t before = d->n, i;
	ssize_t pi;

	r->path = xstrdup(path);
	root = load_file(&l, path, NULL);
	r->root = root;
	if (!root || d->n > before)
		goto fail;

	/* The image's identity is required at the top. */
	if (!ynode_map_get(root, "image"))
		diags_add(d, &root->pos, "missing 'image:' (the image name)");
	if (!ynode_map_get(root, "version"))
		diags_add(d, &root->pos, "missing 'version:'");

	/* Profile: a map merged over the file. */
	pi = ynode_map_index(root, "profiles");
	if (profile) {
		const struct ynode *p = pi >= 0 ? ynode_map_get(root->v[pi], profile) : NULL;
		if (!p) {
			struct strbuf sb = STRBUF_INIT;
			size_t k;
			for (k = 0; pi >= 0 && k < root->v[pi]->n; k++)
				strbuf_addf(&sb, "%s%s", k ? ", " : "", root->v[pi]->k[k]);
			diags_add(d, pi >= 0 ? &root->kpos[pi] : &root->pos,
				  "no profile '%s' in %s (%s%s)", profile, path,
				  sb.len ? "profiles: " : "this image defines no profiles",
				  sb.len ? sb.buf : "");
			strbuf_release(&sb);
			goto fail;
		}
		{
			struct ynode *copy = ynode_copy(p);
			merge(root, copy, &top_field);
			ynode_free(copy);
		}
		r->profile = xstrdup(profile);
	} else {
		const struct ynode *p = pi >= 0 ? ynode_map_get(root->v[pi], "default") : NULL;
		if (p) {
			struct ynode *copy = ynode_copy(p);
			merge(root, copy, &top_field);
			ynode_free(copy);
		}
		r->profile = xstrdup("default");
	}
	pi = ynode_map_index(root, "profiles");
	if (pi >= 0)
		ynode_map_remove(root, (size_t)pi);

	/* Variables: built-ins, then the recipe's, then --set. */
	if (ynode_map_index(root, "variables") < 0)
		ynode_map_push(root, "variables", &root->pos, ynode_new(YNODE_MAP, &root->pos));
	vars = root->v[ynode_map_index(root, "variables")];
	{
		static const char *const builtins[] = { "image", "version" };
		for (i = 0; i < ARRAY_SIZE(builtins); i++) {
			const struct ynode *b = ynode_map_get(root, builtins[i]);
			if (b && b->kind == YNODE_SCALAR && ynode_map_index(vars, builtins[i]) < 0)
				ynode_map_push(vars, builtins[i], &b->pos,
					       ynode_scalar(b->str, &b->pos));
		}
		if (ynode_map_index(vars, "profile") < 0)
			ynode_map_push(vars, "profile", &root->pos,
				       ynode_scalar(r->profile, &root->pos));
	}
	/* Defaults from the environment: used only where the recipe sets nothing. */
	for (i = 0; opts && i < opts->ndefaults; i++) {
		const char *eq = strchr(opts->defaults[i], '=');
		_cleanup_free_ char *name = NULL;
		struct ypos pos = { "environment", 0, 0 };

		if (!eq)
			continue;
		name = xstrndup(opts->defaults[i], (size_t)(eq - opts->defaults[i]));
		if (valid_var_name(name) && ynode_map_index(vars, name) < 0)
			ynode_map_push(vars, name, &pos, ynode_scalar(eq + 1, &pos));
	}
	for (i = 0; opts && i < opts->nsets; i++) {
		const char *eq = strchr(opts->sets[i], '=');
		_cleanup_free_ char *name = NULL;
		struct ypos pos = cmdline_pos;
		ssize_t k;

		if (!eq) {
			diags_add(d, &pos, "'--set %s' needs the form name=value", opts->sets[i]);
			continue;
		}
		name = xstrndup(opts->sets[i], (size_t)(eq - opts->sets[i]));
		if (!valid_var_name(name)) {
			diags_add(d, &pos, "'--set %s': invalid variable name '%s'", opts->sets[i],
				  name);
			continue;
		}
		k = ynode_map_index(vars, name);
		if (k >= 0) {
			ynode_free(vars->v[k]);
			vars->v[k] = ynode_scalar(eq + 1, &pos);
		} else {
			ynode_map_push(vars, name, &pos, ynode_scalar(eq + 1, &pos));
		}
	}
	if (d->n > before)
		goto fail;

	/* Substitute everywhere but in the variables themselves (expanded on use). */
	s.vars = vars;
	for (i = 0; i < root->n; i++)
		if (root->v[i] != vars)
			substitute_tree(&s, root->v[i]);
	/* Then the variables, so that plan shows their final values. */
	for (i = 0; i < vars->n; i++) {
		struct strbuf out = STRBUF_INIT;
		s.depth = 0;
		s.stack[s.depth++] = vars->k[i];
		if (expand(&s, vars->v[i]->str, &vars->v[i]->pos, &out) == 0) {
			free(vars->v[i]->str);
			vars->v[i]->str = strbuf_detach(&out);
		}
		strbuf_release(&out);
	}
	s.depth = 0;
	if (d->n > before)
		goto fail;

	/* Values that were only known after substitution. */
	v.d = d;
	v.mode = V_VALUES;
	v.dir = NULL;
	validate(&v, &top_field, NULL, root);
	resolve_late_paths(root, &top_field);

	check_base(root, d);
	check_files(root, d);
	check_overlays(root, d);
	check_disk(root, d);
	if (d->n > before)
		goto fail;

	*ret = r;
	return 0;
fail:
	recipe_free(r);
	return -EINVAL;
}

void recipe_free(struct recipe *r)
{
	size_t i;

	if (!r)
		return;
	ynode_free(r->root);
	for (i = 0; i < r->nfiles; i++)
		free(r->files[i]);
	free(r->files);
	free(r->path);
	free(r->profile);
	free(r);
}

const struct ynode *recipe_get(const struct recipe *r, const char *dotted)
{
	const struct ynode *n = r->root;
	const char *p = dotted;

	while (n && *p) {
		const char *dot = strchr(p, '.');
		_cleanup_free_ char *key = dot ? xstrndup(p, (size_t)(dot - p)) : xstrdup(p);
		n = ynode_map_get(n, key);
		p = dot ? dot + 1 : p + strlen(p);
	}
	return n;
}

const char *recipe_get_str(const struct recipe *r, const char *dotted, const char *def)
{
	const struct ynode *n = recipe_get(r, dotted);
	return n && n->kind == YNODE_SCALAR ? n->str : def;
}

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
		if (f && f->type == T_INT && parse_long(n->str, &l))
			json_int(j, l);
		else if (f && f->type == T_BOOL && parse_bool(n->str, &b))
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
			json_node(j, n->v[idx[i]], fields ? field_find(fields, n->k[idx[i]]) : NULL);
		}
		json_end_object(j);
	}
}

void recipe_print_json(const struct recipe *r, const struct stage_keys *keys, struct strbuf *out,
		       bool pretty)
{
	struct json j;
	size_t i;
	size_t cnt;
	_cleanup_free_ size_t *idx = ordered_keys(r->root, top_fields, &cnt);
	json_init(&j, out, pretty);
	json_begin_object(&j);
	json_kv_string(&j, "profile", r->profile);
	json_key(&j, "recipe");
	json_begin_object(&j);
	for (i = 0; i < cnt; i++) {
		json_key(&j, r->root->k[idx[i]]);
		json_node(&j, r->root->v[idx[i]], field_find(top_fields, r->root->k[idx[i]]));
	}
	json_end_object(&j);
	if (keys) {
		json_key(&j, "stages");
		json_begin_object(&j);
		json_kv_string(&j, "base", keys->base);
		json_kv_string(&j, "rootfs", keys->rootfs);
		json_kv_string(&j, "disk", keys->disk);
		json_end_object(&j);
	}
	json_end_object(&j);
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

	return !*s || parse_bool(s, &b) || parse_long(s, &l) || !strcmp(s, "null") ||
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
				       fields ? field_find(fields, n->k[idx[i]]) : NULL))
				return 0;
		}
		yaml_mapping_end_event_initialize(&ev);
		return yaml_emitter_emit(e, &ev);
	}
}

static const struct field stage_fields[] = {
	{ "base", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "rootfs", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "disk", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

int recipe_print_yaml(const struct recipe *r, const struct stage_keys *keys, struct strbuf *out)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	int ok;
	struct ynode *doc = ynode_new(YNODE_MAP, NULL);
	static const struct field out_fields[] = {
		{ "profile", T_STR, NULL, NULL, 0, 0, NULL, NULL },
		{ "recipe", T_MAP, top_fields, NULL, 0, 0, NULL, NULL },
		{ "stages", T_MAP, stage_fields, NULL, 0, 0, NULL, NULL },
		{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
	};
	static const struct field out_field = { NULL, T_MAP, out_fields, NULL, 0, 0, NULL, NULL };

	ynode_map_push(doc, "profile", &doc->pos, ynode_scalar(r->profile, NULL));
	ynode_map_push(doc, "recipe", &doc->pos, ynode_copy(r->root));
	if (keys) {
		struct ynode *st = ynode_new(YNODE_MAP, NULL);
		ynode_map_push(st, "base", &doc->pos, ynode_scalar(keys->base, NULL));
		ynode_map_push(st, "rootfs", &doc->pos, ynode_scalar(keys->rootfs, NULL));
		ynode_map_push(st, "disk", &doc->pos, ynode_scalar(keys->disk, NULL));
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

/* ------------------------------------------------------------------------ */
/* stage keys */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Hash a host directory tree by content: every entry's relative path, type,
 * permission bits, size, symlink target and file content, in byte order.
 * mtimes are left out: overlays come from git checkouts, whose mtimes say
 * nothing about content (imgforge clamps them at build time anyway).
 */
static int hash_tree(struct sha256 *h, const char *root, const char *rel, int depth)
{
	_cleanup_free_ char *path = rel[0] ? path_join(root, rel) : xstrdup(root);
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	struct dirent *de;
	DIR *dir;
	int r = 0;

	if (depth > 256)
		return -ELOOP;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		GROW(names, alloc, n + 1);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n && r == 0; i++) {
		_cleanup_free_ char *sub = rel[0] ? path_join(rel, names[i]) : xstrdup(names[i]);
		_cleanup_free_ char *full = path_join(root, sub);
		struct stat st;

		if (lstat(full, &st) < 0) {
			r = -errno;
			break;
		}
		sha256_update_str(h, sub);
		sha256_update_u64(h, st.st_mode);
		if (S_ISREG(st.st_mode)) {
			char hex[SHA256_HEX_LEN];
			r = sha256_file(full, hex, NULL);
			sha256_update_str(h, hex);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t len = readlink(full, target, sizeof(target) - 1);
			if (len < 0) {
				r = -errno;
				break;
			}
			target[len] = '\0';
			sha256_update_str(h, target);
		} else if (S_ISDIR(st.st_mode)) {
			r = hash_tree(h, root, sub, depth + 1);
		} else {
			sha256_update_u64(h, st.st_rdev);
		}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/*
 * The tools a stage runs are inputs too: their bytes are hashed (a version
 * string can stay the same across rebuilds of a package; the bytes cannot).
 * A missing tool hashes as missing; the stage itself reports it.
 */
static void hash_tool(struct sha256 *h, const char *path)
{
	char hex[SHA256_HEX_LEN];

	sha256_update_str(h, path);
	if (sha256_file(path, hex, NULL) < 0)
		sha256_update_str(h, "missing");
	else
		sha256_update_str(h, hex);
}

static void hash_json(struct sha256 *h, const struct ynode *n, const struct field *f)
{
	struct strbuf sb = STRBUF_INIT;
	struct json j;

	json_init(&j, &sb, false);
	if (n)
		json_node(&j, n, f);
	else
		json_null(&j);
	sha256_update_str(h, strbuf_str(&sb));
	strbuf_release(&sb);
}

static void hash_key(struct sha256 *h, const struct recipe *r, const char *key)
{
	const struct ynode *n = ynode_map_get(r->root, key);

	sha256_update_str(h, key);
	hash_json(h, n, field_find(top_fields, key));
}

/* Hash the contents behind every host path in a subtree. */
static int hash_paths(struct sha256 *h, const struct ynode *n, struct diags *d)
{
	size_t i;
	int r;

	if (n->kind == YNODE_SCALAR) {
		struct stat st;
		char hex[SHA256_HEX_LEN];

		if (!n->abspath)
			return 0;
		if (stat(n->abspath, &st) < 0) {
			r = -errno;
			diags_add(d, &n->pos, "cannot read '%s': %s", n->str, strerror(errno));
			return r;
		}
		if (S_ISDIR(st.st_mode)) {
			r = hash_tree(h, n->abspath, "", 0);
		} else {
			r = sha256_file(n->abspath, hex, NULL);
			if (r == 0)
				sha256_update_str(h, hex);
		}
		if (r < 0)
			diags_add(d, &n->pos, "cannot hash '%s': %s", n->str, strerror(-r));
		return r;
	}
	for (i = 0; i < n->n; i++) {
		r = hash_paths(h, n->v[i], d);
		if (r < 0)
			return r;
	}
	return 0;
}

int recipe_stage_keys(const struct recipe *r, struct stage_keys *ret, struct diags *d)
{
	struct sha256 *h = sha256_new();
	const struct ynode *base = ynode_map_get(r->root, "base");
	const struct ynode *pkgs = ynode_map_get(r->root, "packages");
	struct stage_keys k;
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	int rr = 0;

	/* base: the base description, the union of package lists (order does not
	 * matter to the package manager), the tool that builds it. */
	sha256_update_str(h, "imgforge-stage-base-" STAGE_FORMAT_VERSION);
	if (base) {
		const struct ynode *bp = ynode_map_get(base, "packages");
		for (i = 0; i < base->n; i++) {
			/* Where packages come from is not what they are: a mirror
			 * change alone does not invalidate the cache. */
			if (!strcmp(base->k[i], "packages") || !strcmp(base->k[i], "mirror"))
				continue;
			sha256_update_str(h, base->k[i]);
			hash_json(h, base->v[i], field_find(base_fields, base->k[i]));
		}
		for (i = 0; bp && i < bp->n; i++) {
			GROW(names, alloc, n + 1);
			names[n++] = bp->v[i]->str;
		}
		if (base->n && ynode_map_get(base, "keyring"))
			rr = hash_paths(h, ynode_map_get(base, "keyring"), d);
		if (!ynode_map_get(base, "tarball"))
			hash_tool(h, "/usr/bin/mmdebstrap");
	}
	for (i = 0; pkgs && i < pkgs->n; i++) {
		GROW(names, alloc, n + 1);
		names[n++] = pkgs->v[i]->str;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++)
		if (i == 0 || strcmp(names[i], names[i - 1]))
			sha256_update_str(h, names[i]);
	free(names);
	sha256_final_hex(h, k.base);

	/* rootfs: base + everything imgforge adds on top, by content. */
	sha256_update_str(h, "imgforge-stage-rootfs-" STAGE_FORMAT_VERSION);
	sha256_update_str(h, k.base);
	hash_key(h, r, "overlays");
	hash_key(h, r, "files");
	hash_key(h, r, "remove");
	hash_key(h, r, "services");
	hash_key(h, r, "rootfs");
	/* A bootable image's root filesystem gets /boot/vmlinuz and /boot/initrd.img
	 * links (and must have a kernel): it differs from the same tree without a disk. */
	sha256_update_str(h, ynode_map_get(r->root, "disk") ? "bootable" : "not bootable");
	if (rr == 0 && ynode_map_get(r->root, "overlays"))
		rr = hash_paths(h, ynode_map_get(r->root, "overlays"), d);
	if (rr == 0 && ynode_map_get(r->root, "files"))
		rr = hash_paths(h, ynode_map_get(r->root, "files"), d);
	sha256_final_hex(h, k.rootfs);

	/* disk: rootfs + layout and boot settings. */
	sha256_update_str(h, "imgforge-stage-disk-" STAGE_FORMAT_VERSION);
	sha256_update_str(h, k.rootfs);
	hash_key(h, r, "disk");
	hash_key(h, r, "boot");
	hash_tool(h, "/usr/bin/grub-mkimage");
	hash_tool(h, "/usr/lib/grub/x86_64-efi/kernel.img");
	hash_tool(h, "/usr/lib/grub/i386-pc/kernel.img");
	hash_tool(h, "/usr/lib/grub/i386-pc/boot.img");
	sha256_final_hex(h, k.disk);
	sha256_free(h);

	if (rr < 0)
		return rr;
	*ret = k;
	return 0;
}
