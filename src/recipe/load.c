/* SPDX-License-Identifier: MIT */
/* Reading recipe files with their includes, and merging them in order. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recipe/recipe-internal.h"

/* ------------------------------------------------------------------------ */
/* loading files and includes */

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

const char *load_kind_name(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	if (S_ISLNK(mode))
		return "a symbolic link";
	return "not a file";
}

/*
 * Read a recipe file of at most max bytes. Only regular files: a device
 * (/dev/zero) never ends and a FIFO blocks before the first byte, so the
 * file is opened without blocking and checked with fstat before any read.
 * Returns -EINVAL with *ret_mode set for the other kinds.
 */
static int read_regular(const char *path, size_t max, char **ret_buf, size_t *ret_len,
			mode_t *ret_mode)
{
	_cleanup_close_ int fd = -1;
	struct stat st;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		*ret_mode = st.st_mode;
		return -EINVAL;
	}
	return read_fd(fd, max, ret_buf, ret_len);
}

/*
 * Where an include is read from, as a C compiler finds #include "x": next
 * to the file that names it first, then in each directory of the search
 * path in order (-I, $IMGFORGE_PATH, the installed recipes). An absolute
 * path is taken as it is. The first candidate that exists wins, readable
 * or not (load_file() reports why it cannot be read). None: one error
 * naming every place looked in, and NULL.
 */
static char *find_include(struct loader *l, const char *fdir, const struct ynode *item)
{
	struct strbuf looked = STRBUF_INIT;
	char ex[RECIPE_EXCERPT_SIZE];
	struct stat st;
	char *p;
	size_t i;

	if (item->str[0] == '/')
		return path_normalize(xstrdup(item->str));
	p = path_normalize(path_join(fdir, item->str));
	if (l->ninclude_dirs == 0 || lstat(p, &st) == 0 || errno != ENOENT)
		return p;
	strbuf_addf(&looked, "'%s'", p);
	free(p);
	for (i = 0; i < l->ninclude_dirs; i++) {
		p = path_normalize(path_join(l->include_dirs[i], item->str));
		if (lstat(p, &st) == 0 || errno != ENOENT) {
			strbuf_release(&looked);
			return p;
		}
		strbuf_addf(&looked, ", '%s'", p);
		free(p);
	}
	diags_add(l->d, &item->pos,
		  "cannot find include '%s': looked in %s (add its directory with -I DIR or "
		  "$IMGFORGE_PATH)",
		  recipe_excerpt(item->str, ex), looked.buf);
	strbuf_release(&looked);
	return NULL;
}

/*
 * Load one file and everything it includes; return the merged tree of the
 * file (its includes first, the file itself last), without include:.
 */
struct ynode *load_file(struct loader *l, const char *path, const struct ypos *from)
{
	_cleanup_free_ char *buf = NULL, *real = NULL, *dir = NULL;
	struct ynode *root = NULL, *merged = NULL;
	const char *file;
	size_t len = 0, i, before;
	mode_t mode = 0;
	struct vctx v;
	ssize_t inc;
	int r;

	if (l->too_many)
		return NULL;
	if (l->depth >= RECIPE_MAX_INCLUDES || ++l->loaded > RECIPE_MAX_INCLUDES) {
		/* Once: every further include would say the same. */
		diags_add(l->d, from, "more than %d included files", RECIPE_MAX_INCLUDES);
		l->too_many = true;
		return NULL;
	}
	file = intern_file(l->r, path);
	r = read_regular(path, RECIPE_MAX_FILE_SIZE, &buf, &len, &mode);
	if (r < 0) {
		struct ypos top = { file, 1, 1 };
		_cleanup_free_ char *why = r == -EINVAL ? xasprintf("not a regular file (%s)",
								     load_kind_name(mode))
							: xstrdup(strerror(-r));
		if (r == -EFBIG)
			diags_add(l->d, &top, "file is larger than the %d KiB recipe limit",
				  RECIPE_MAX_FILE_SIZE / 1024);
		else if (from)
			diags_add(l->d, from, "cannot read include '%s': %s", path, why);
		else
			diags_add(l->d, NULL, "cannot read '%s': %s", path, why);
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
	before = l->d->nerrors;
	r = ynode_parse(file, buf, len, &root, l->d);
	if (r < 0)
		return NULL;
	/*
	 * A file that is not a recipe at all (a password file, a key someone
	 * named by mistake) is one error that does not show its content.
	 */
	if (root->kind != YNODE_MAP || !schema_looks_like_recipe(root)) {
		struct ypos top = { file, 1, 1 };
		char ex[RECIPE_EXCERPT_SIZE];
		diags_add(l->d, &top, "'%s' is not a recipe (%s)", recipe_excerpt(path, ex),
			  root->kind != YNODE_MAP ? "expected a YAML mapping"
						  : "none of its keys is a recipe key");
		ynode_free(root);
		return NULL;
	}
	dir = path_dirname(real);
	v.d = l->d;
	v.mode = V_STRUCTURE;
	v.dir = dir;
	schema_validate(&v, &schema_top, NULL, root);
	if (l->d->nerrors > before) {
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
			ipath = find_include(l, fdir, item);
			if (!ipath)
				continue;
			sub = load_file(l, ipath, &item->pos);
			if (sub) {
				load_merge(merged, sub, &schema_top);
				ynode_free(sub);
			}
		}
		ynode_map_remove(root, (size_t)inc);
	}
	load_merge(merged, root, &schema_top);
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
void load_merge(struct ynode *dst, const struct ynode *src, const struct field *f)
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
			sub = schema_field_find(f->sub, src->k[i]);
		else if (f->type == T_PROFILES)
			sub = &(const struct field){ NULL, T_MAP, f->sub, NULL, 0, 0, NULL, NULL };
		if (k < 0) {
			ynode_map_push(dst, src->k[i], &src->kpos[i], ynode_copy(src->v[i]));
			continue;
		}
		if (sub && (sub->type == T_MAP || sub->type == T_VARS ||
			    sub->type == T_PROFILES || sub->type == T_LIST) &&
		    dst->v[k]->kind == src->v[i]->kind && src->v[i]->kind != YNODE_SCALAR) {
			load_merge(dst->v[k], src->v[i], sub);
			dst->kpos[k] = src->kpos[i];
			continue;
		}
		ynode_free(dst->v[k]);
		dst->v[k] = ynode_copy(src->v[i]);
		dst->kpos[k] = src->kpos[i];
	}
}
