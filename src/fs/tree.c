/* SPDX-License-Identifier: MIT */
/*
 * The root filesystem tree: inodes and names, paths, symlinks met on the
 * way, placing entries, the API for single entries, the sorted walk. See
 * tree.h and docs/mkfs.md for the policy on hostile input.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/tree-internal.h"

/* --- inodes and nodes ------------------------------------------------------ */

struct tree_inode *tree_inode_new(uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime)
{
	struct tree_inode *ino = xcalloc(1, sizeof(*ino));

	ino->mode = mode;
	ino->uid = uid;
	ino->gid = gid;
	ino->mtime = mtime;
	return ino;
}

static void inode_clear_xattrs(struct tree_inode *ino)
{
	size_t i;

	for (i = 0; i < ino->n_xattrs; i++) {
		free(ino->xattrs[i].name);
		free(ino->xattrs[i].value);
	}
	free(ino->xattrs);
	ino->xattrs = NULL;
	ino->n_xattrs = 0;
}

void tree_inode_unref(struct tree_inode *ino)
{
	if (!ino || --ino->nlink > 0)
		return;
	inode_clear_xattrs(ino);
	free(ino->symlink);
	free(ino->inline_data);
	free(ino->host_path);
	free(ino);
}

static int xattr_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tree_xattr *)a)->name, ((const struct tree_xattr *)b)->name);
}

void tree_inode_set_xattr(struct tree_inode *ino, const char *name, const void *value,
			    size_t size)
{
	size_t i;

	for (i = 0; i < ino->n_xattrs; i++)
		if (!strcmp(ino->xattrs[i].name, name)) {
			free(ino->xattrs[i].value);
			break;
		}
	if (i == ino->n_xattrs) {
		ino->xattrs = xrealloc(ino->xattrs, (ino->n_xattrs + 1) * sizeof(*ino->xattrs));
		ino->xattrs[i].name = xstrdup(name);
		ino->n_xattrs++;
	}
	ino->xattrs[i].value = xmalloc(size ? size : 1);
	if (size)
		memcpy(ino->xattrs[i].value, value, size);
	ino->xattrs[i].size = size;
	qsort(ino->xattrs, ino->n_xattrs, sizeof(*ino->xattrs), xattr_cmp);
}

static size_t bucket_of(const struct tree *t, const struct tree_node *parent, const char *name,
			size_t len)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)(uintptr_t)parent;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= (unsigned char)name[i];
		h *= 1099511628211ULL;
	}
	h ^= h >> 29;
	return (size_t)(h & (t->n_buckets - 1));
}

static void hash_grow(struct tree *t)
{
	struct tree_node **old = t->buckets;
	size_t n_old = t->n_buckets, i;

	t->n_buckets = n_old ? n_old * 2 : 1024;
	t->buckets = xcalloc(t->n_buckets, sizeof(*t->buckets));
	for (i = 0; i < n_old; i++) {
		struct tree_node *n = old[i], *next;

		for (; n; n = next) {
			size_t b = bucket_of(t, n->parent, n->name, strlen(n->name));

			next = n->hash_next;
			n->hash_next = t->buckets[b];
			t->buckets[b] = n;
		}
	}
	free(old);
}

struct tree_node *tree_child_lookup(const struct tree *t, const struct tree_node *dir,
				      const char *name, size_t len)
{
	struct tree_node *n;

	for (n = t->buckets[bucket_of(t, dir, name, len)]; n; n = n->hash_next)
		if (n->parent == dir && !strncmp(n->name, name, len) && !n->name[len])
			return n;
	return NULL;
}

struct tree_node *tree_child_add(struct tree *t, struct tree_node *dir, const char *name,
				   size_t len, struct tree_inode *ino)
{
	struct tree_node *n = xcalloc(1, sizeof(*n));
	size_t b;

	if (t->n_nodes + 1 > t->n_buckets)
		hash_grow(t);
	n->name = xstrndup(name, len);
	n->parent = dir;
	n->depth = dir->depth + 1;
	n->inode = ino;
	ino->nlink++;
	b = bucket_of(t, dir, name, len);
	n->hash_next = t->buckets[b];
	t->buckets[b] = n;
	n->prev = dir->last_child;
	if (dir->last_child)
		dir->last_child->next = n;
	else
		dir->first_child = n;
	dir->last_child = n;
	dir->n_children++;
	t->n_nodes++;
	return n;
}

/* Unlink n from its parent and the hash table, and free it (it has no children). */
static void node_free_one(struct tree *t, struct tree_node *n)
{
	struct tree_node **pp;

	if (n->parent) {
		for (pp = &t->buckets[bucket_of(t, n->parent, n->name, strlen(n->name))]; *pp;
		     pp = &(*pp)->hash_next)
			if (*pp == n) {
				*pp = n->hash_next;
				break;
			}
		if (n->prev)
			n->prev->next = n->next;
		else
			n->parent->first_child = n->next;
		if (n->next)
			n->next->prev = n->prev;
		else
			n->parent->last_child = n->prev;
		n->parent->n_children--;
		t->n_nodes--;
	}
	tree_inode_unref(n->inode);
	free(n->name);
	free(n);
}

/* Free n and everything below it, deepest first, without recursion. */
void tree_node_free(struct tree *t, struct tree_node *n)
{
	struct tree_node *c = n;

	for (;;) {
		struct tree_node *parent;

		while (c->first_child)
			c = c->first_child;
		if (c == n)
			break;
		parent = c->parent;
		node_free_one(t, c);
		c = parent;
	}
	node_free_one(t, n);
}

struct tree *tree_new(void)
{
	struct tree *t = xcalloc(1, sizeof(*t));

	hash_grow(t);
	t->root = xcalloc(1, sizeof(*t->root));
	t->root->name = xstrdup("");
	t->root->inode = tree_inode_new(S_IFDIR | 0755, 0, 0, 0);
	t->root->inode->nlink = 1;
	t->n_nodes = 1;
	return t;
}

void tree_free(struct tree *t)
{
	size_t i;

	if (!t)
		return;
	tree_node_free(t, t->root);
	for (i = 0; i < t->n_layers; i++)
		free(t->layers[i].path);
	for (i = 0; i < t->n_cache; i++)
		free(t->cache[i].buf);
	free(t->cache);
	free(t->layers);
	free(t->buckets);
	free(t);
}

void tree_set_default_mtime(struct tree *t, int64_t mtime)
{
	t->default_mtime = mtime;
	t->root->inode->mtime = mtime;
}

struct tree_node *tree_root(struct tree *t)
{
	return t->root;
}

/* --- paths ----------------------------------------------------------------- */

int tree_normalize_path(const char *path, char **ret)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = path, *end;
	size_t depth = 0;

	strbuf_addstr(&sb, "");
	while (*p) {
		size_t len;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (len == 0)
			break;
		if (len == 1 && p[0] == '.') {
			/* nothing */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			char *slash;

			if (sb.len == 0) {
				strbuf_release(&sb);
				return -EPERM;
			}
			slash = memrchr(sb.buf, '/', sb.len);
			sb.len = slash ? (size_t)(slash - sb.buf) : 0;
			sb.buf[sb.len] = '\0';
			depth--;
		} else {
			if (len > TREE_NAME_MAX) {
				strbuf_release(&sb);
				return -ENAMETOOLONG;
			}
			if (++depth > TREE_DEPTH_MAX) {
				strbuf_release(&sb);
				return -E2BIG;
			}
			if (sb.len)
				strbuf_addch(&sb, '/');
			strbuf_add(&sb, p, len);
		}
		p = end;
	}
	*ret = strbuf_detach(&sb);
	return 0;
}

char *tree_node_path(const struct tree_node *n)
{
	const struct tree_node *m;
	size_t len = 0, pos;
	char *s;

	if (!n->parent)
		return xstrdup("/");
	for (m = n; m->parent; m = m->parent)
		len += strlen(m->name) + 1;
	s = xmalloc(len + 1);
	s[len] = '\0';
	pos = len;
	for (m = n; m->parent; m = m->parent) {
		size_t l = strlen(m->name);

		pos -= l;
		memcpy(s + pos, m->name, l);
		s[--pos] = '/';
	}
	return s;
}

struct tree_node *tree_lookup(struct tree *t, const char *path)
{
	_cleanup_free_ char *norm = NULL;
	struct tree_node *n = t->root;
	const char *p;

	if (tree_normalize_path(path, &norm) < 0)
		return NULL;
	p = norm;
	while (*p && n) {
		const char *end = strchrnul(p, '/');

		if (!S_ISDIR(n->inode->mode))
			return NULL;
		n = tree_child_lookup(t, n, p, (size_t)(end - p));
		p = *end ? end + 1 : end;
	}
	return n;
}


/* Names longer than this are cut in messages (a hostile one may have megabytes). */
#define ORIGIN_NAME_MAX 512

static void origin_add(struct strbuf *err, const struct origin *o)
{
	size_t len = strlen(o->entry);
	_cleanup_free_ char *cut = NULL;

	if (len > ORIGIN_NAME_MAX)
		cut = xasprintf("%.*s...(%zu bytes)", ORIGIN_NAME_MAX / 2, o->entry, len);
	if (o->kind)
		strbuf_addf(err, "%s '%s': entry '%s'", o->kind, quote_path(o->source),
			    quote_path(cut ? cut : o->entry));
	else
		strbuf_addf(err, "'%s'", quote_path(cut ? cut : o->entry));
}

int tree_origin_fail(struct strbuf *err, const struct origin *o, int r, const char *fmt, ...)
	_printf_(4, 5);
int tree_origin_fail(struct strbuf *err, const struct origin *o, int r, const char *fmt, ...)
{
	va_list ap;

	origin_add(err, o);
	strbuf_addstr(err, ": ");
	va_start(ap, fmt);
	strbuf_vaddf(err, fmt, ap);
	va_end(ap);
	return r;
}

static int too_deep(struct strbuf *err, const struct origin *o)
{
	return tree_origin_fail(err, o, -E2BIG,
			   "more than %d levels of directories, the limit of imgforge's trees",
			   TREE_DEPTH_MAX);
}

int tree_normalize_or_fail(const char *path, char **ret, const struct origin *o,
			     struct strbuf *err)
{
	int r = tree_normalize_path(path, ret);

	if (r == -EPERM)
		return tree_origin_fail(err, o, r,
				   "path leaves the image root through '..'; refusing the archive");
	if (r == -ENAMETOOLONG)
		return tree_origin_fail(err, o, r, "a file name is longer than %d bytes, the ext4 limit",
				   TREE_NAME_MAX);
	if (r == -E2BIG)
		return too_deep(err, o);
	return r;
}

/*
 * The directory the symlink link leads to, resolved inside the image as
 * the kernel would in a chroot: an absolute target from the image root, a
 * relative one from the link's directory, ".." physically, symlinks on the
 * way followed. A target that leaves the image through "..", leads to
 * anything but a directory of the image, or passes too many symlinks is
 * refused. *budget counts the symlinks passed.
 */
static int follow(struct tree *t, struct tree_node *link, const struct origin *o, int *budget,
		  struct tree_node **ret, struct strbuf *err)
{
	const char *p = link->inode->symlink;
	struct tree_node *dir = p[0] == '/' ? t->root : link->parent;
	_cleanup_free_ char *lpath = NULL;

	if (--*budget < 0) {
		lpath = tree_node_path(link);
		return tree_origin_fail(err, o, -ELOOP, "too many levels of symlinks at '%s'",
				   quote_path(lpath));
	}
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);
		struct tree_node *c;
		int r;

		if (len == 0 || (len == 1 && p[0] == '.')) {
			/* nothing */
		} else if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (!dir->parent)
				goto outside;
			dir = dir->parent;
		} else {
			c = tree_child_lookup(t, dir, p, len);
			if (c && S_ISLNK(c->inode->mode)) {
				r = follow(t, c, o, budget, &c, err);
				if (r < 0)
					return r;
			}
			if (!c || !S_ISDIR(c->inode->mode))
				goto not_dir;
			dir = c;
		}
		p = *end ? end + 1 : end;
	}
	*ret = dir;
	return 0;
outside:
	lpath = tree_node_path(link);
	return tree_origin_fail(err, o, -EXDEV, "the symlink '%s' (-> %s) leads out of the image",
			   quote_path(lpath), quote_path(link->inode->symlink));
not_dir:
	lpath = tree_node_path(link);
	return tree_origin_fail(err, o, -ENOTDIR,
			   "the symlink '%s' (-> %s) does not lead to a directory of the image",
			   quote_path(lpath), quote_path(link->inode->symlink));
}

/*
 * Walk to the directory that holds the last component of norm, creating
 * missing directories (0755, root) when create is set. A symlink on the way
 * is followed if it leads to a directory inside the image (a layer over a
 * merged-/usr root where bin -> usr/bin writes /bin/x into /usr/bin, as
 * dpkg and tar --keep-directory-symlink do); any other symlink, and a
 * non-directory, in the way is refused. When create is set, the directory
 * returned has room for one more level (TREE_DEPTH_MAX).
 */
int tree_walk_parent(struct tree *t, const char *norm, bool create, const struct origin *o,
		       struct tree_node **ret_dir, const char **ret_leaf, struct strbuf *err)
{
	struct tree_node *n = t->root;
	const char *p = norm;
	int budget = TREE_SYMLINKS_MAX, r;

	for (;;) {
		const char *end = strchrnul(p, '/');
		struct tree_node *c;

		if (!*end) {
			if (create && n->depth >= TREE_DEPTH_MAX)
				return too_deep(err, o);
			*ret_dir = n;
			*ret_leaf = p;
			return 0;
		}
		c = tree_child_lookup(t, n, p, (size_t)(end - p));
		if (!c) {
			if (!create) {
				_cleanup_free_ char *d = xstrndup(norm, (size_t)(end - norm));

				return tree_origin_fail(err, o, -ENOENT, "'/%s' does not exist in the image",
						   quote_path(d));
			}
			if (n->depth >= TREE_DEPTH_MAX)
				return too_deep(err, o);
			c = tree_child_add(t, n, p, (size_t)(end - p),
				      tree_inode_new(S_IFDIR | 0755, 0, 0, t->default_mtime));
		} else if (S_ISLNK(c->inode->mode)) {
			r = follow(t, c, o, &budget, &c, err);
			if (r < 0)
				return r;
		} else if (!S_ISDIR(c->inode->mode)) {
			_cleanup_free_ char *d = xstrndup(norm, (size_t)(end - norm));

			return tree_origin_fail(err, o, -ENOTDIR, "'/%s' is not a directory", quote_path(d));
		}
		n = c;
		p = end + 1;
	}
}

/*
 * Put inode at norm. An existing directory meeting a new directory keeps its
 * children and takes the new metadata; anything else is replaced, later
 * layers winning. Takes ownership of ino.
 */
int tree_place(struct tree *t, const char *norm, struct tree_inode *ino, const struct origin *o,
		 struct tree_node **ret, struct strbuf *err)
{
	struct tree_node *dir, *old;
	const char *leaf;
	int r;

	if (!*norm) {
		if (!S_ISDIR(ino->mode)) {
			ino->nlink = 1;
			tree_inode_unref(ino);
			return tree_origin_fail(err, o, -EISDIR,
					   "a non-directory cannot replace the image root");
		}
		t->root->inode->mode = ino->mode;
		t->root->inode->uid = ino->uid;
		t->root->inode->gid = ino->gid;
		t->root->inode->mtime = ino->mtime;
		if (ino->n_xattrs) {
			inode_clear_xattrs(t->root->inode);
			t->root->inode->xattrs = TAKE_PTR(ino->xattrs);
			t->root->inode->n_xattrs = ino->n_xattrs;
			ino->n_xattrs = 0;
		}
		ino->nlink = 1;
		tree_inode_unref(ino);
		if (ret)
			*ret = t->root;
		return 0;
	}
	r = tree_walk_parent(t, norm, true, o, &dir, &leaf, err);
	if (r < 0) {
		ino->nlink = 1;
		tree_inode_unref(ino);
		return r;
	}
	old = tree_child_lookup(t, dir, leaf, strlen(leaf));
	if (old && S_ISLNK(old->inode->mode) && S_ISDIR(ino->mode)) {
		/*
		 * A directory meeting a symlink to a directory of the image: the
		 * symlink stays and the directory it leads to keeps its metadata,
		 * as dpkg and tar --keep-directory-symlink do.
		 */
		int budget = TREE_SYMLINKS_MAX;

		ino->nlink = 1;
		tree_inode_unref(ino);
		r = follow(t, old, o, &budget, &old, err);
		if (r < 0)
			return r;
		if (ret)
			*ret = old;
		return 0;
	}
	if (old && S_ISDIR(old->inode->mode) && S_ISDIR(ino->mode)) {
		struct tree_inode *d = old->inode;

		d->mode = ino->mode;
		d->uid = ino->uid;
		d->gid = ino->gid;
		d->mtime = ino->mtime;
		inode_clear_xattrs(d);
		d->xattrs = TAKE_PTR(ino->xattrs);
		d->n_xattrs = ino->n_xattrs;
		ino->n_xattrs = 0;
		ino->nlink = 1;
		tree_inode_unref(ino);
		if (ret)
			*ret = old;
		return 0;
	}
	if (old)
		tree_node_free(t, old);
	old = tree_child_add(t, dir, leaf, strlen(leaf), ino);
	if (ret)
		*ret = old;
	return 0;
}

/* --- adding entries through the API ---------------------------------------- */

static int api_place(struct tree *t, const char *path, struct tree_inode *ino,
		     struct tree_node **ret, struct strbuf *err)
{
	struct origin o = { NULL, NULL, path };
	_cleanup_free_ char *norm = NULL;
	int r;

	r = tree_normalize_or_fail(path, &norm, &o, err);
	if (r < 0) {
		ino->nlink = 1;
		tree_inode_unref(ino);
		return r;
	}
	return tree_place(t, norm, ino, &o, ret, err);
}

/*
 * Measure a host file: size, and its data runs (holes skipped) from
 * SEEK_DATA/SEEK_HOLE, without reading it. Content is read when streamed.
 */
int tree_scan_host_file(struct tree_inode *ino, const char *path, const struct origin *o,
			  struct strbuf *err)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	uint64_t pos = 0, off = 0, len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;

		return tree_origin_fail(err, o, -e, "cannot read '%s': %s", quote_path(path), strerror(e));
	}
	if (!S_ISREG(st.st_mode))
		return tree_origin_fail(err, o, -EINVAL, "'%s' is not a regular file", quote_path(path));
	ino->size = (uint64_t)st.st_size;
	ino->data_bytes = 0;
	ino->data_runs = 0;
	while (next_data_extent(fd, pos, ino->size, &off, &len) > 0) {
		ino->data_runs++;
		ino->data_bytes += len;
		pos = off + len;
	}
	return 0;
}

int tree_add_file(struct tree *t, const char *path, const void *data, size_t len,
		  const char *host_path, uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime,
		  struct strbuf *err)
{
	struct tree_inode *ino = tree_inode_new(S_IFREG | (mode & 07777), uid, gid, mtime);
	struct origin o = { NULL, NULL, path };
	int r;

	if (data) {
		ino->src = len ? TREE_SRC_INLINE : TREE_SRC_NONE;
		ino->inline_data = xmalloc(len ? len : 1);
		memcpy(ino->inline_data, data, len);
		ino->size = ino->data_bytes = len;
		ino->data_runs = len ? 1 : 0;
	} else {
		ino->src = TREE_SRC_HOST;
		ino->host_path = xstrdup(host_path);
		r = tree_scan_host_file(ino, host_path, &o, err);
		if (r < 0) {
			ino->nlink = 1;
			tree_inode_unref(ino);
			return r;
		}
	}
	return api_place(t, path, ino, NULL, err);
}

int tree_add_directory(struct tree *t, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
		       int64_t mtime, struct strbuf *err)
{
	return api_place(t, path, tree_inode_new(S_IFDIR | (mode & 07777), uid, gid, mtime), NULL, err);
}

int tree_add_symlink(struct tree *t, const char *path, const char *target, uint32_t uid,
		     uint32_t gid, int64_t mtime, struct strbuf *err)
{
	struct tree_inode *ino = tree_inode_new(S_IFLNK | 0777, uid, gid, mtime);

	if (!*target) {
		strbuf_addf(err, "'%s': a symlink needs a target", quote_path(path));
		ino->nlink = 1;
		tree_inode_unref(ino);
		return -EINVAL;
	}
	ino->symlink = xstrdup(target);
	ino->size = strlen(target);
	return api_place(t, path, ino, NULL, err);
}

int tree_set_xattr(struct tree *t, const char *path, const char *name, const void *value,
		   size_t size, struct strbuf *err)
{
	struct tree_node *n = tree_lookup(t, path);

	if (!n) {
		strbuf_addf(err, "'%s': no such entry in the image to set '%s' on", quote_path(path),
			    quote_path(name));
		return -ENOENT;
	}
	tree_inode_set_xattr(n->inode, name, value, size);
	return 0;
}

int tree_remove(struct tree *t, const char *path, struct strbuf *err)
{
	struct tree_node *n = tree_lookup(t, path);

	if (!n) {
		strbuf_addf(err, "'%s': no such entry in the image to remove", quote_path(path));
		return -ENOENT;
	}
	if (!n->parent) {
		strbuf_addf(err, "'%s': the image root cannot be removed", quote_path(path));
		return -EINVAL;
	}
	tree_node_free(t, n);
	return 0;
}

static int check_owner(const char *what, int64_t id, const struct origin *o, struct strbuf *err)
{
	if (id < 0 || id > (int64_t)UINT32_MAX - 1)
		return tree_origin_fail(err, o, -ERANGE, "the %s %lld is out of range (0 to %u)", what,
				   (long long)id, UINT32_MAX - 1);
	return 0;
}

int tree_check_fields(int64_t uid, int64_t gid, bool dev, uint64_t major, uint64_t minor,
			int64_t mtime, const struct origin *o, struct strbuf *err)
{
	int r = check_owner("owner", uid, o, err);

	if (r == 0)
		r = check_owner("group", gid, o, err);
	if (r < 0)
		return r;
	if (dev && (major > TREE_MAJOR_MAX || minor > TREE_MINOR_MAX))
		return tree_origin_fail(err, o, -ERANGE,
				   "the device number %llu:%llu is beyond what Linux has (%u:%u)",
				   (unsigned long long)major, (unsigned long long)minor,
				   TREE_MAJOR_MAX, TREE_MINOR_MAX);
	if (mtime < TREE_MTIME_MIN || mtime > TREE_MTIME_MAX)
		return tree_origin_fail(err, o, -ERANGE,
				   "the modification time %lld is outside what ext4 stores "
				   "(%lld to %lld, 1901 to 2446)",
				   (long long)mtime, (long long)TREE_MTIME_MIN,
				   (long long)TREE_MTIME_MAX);
	return 0;
}

/* --- walking ------------------------------------------------------------------- */

/* One directory on the way down: its sorted children and the next one to visit. */
struct walk_frame {
	struct tree_node **c;
	size_t n, next;
	size_t path_len; /* length of the directory's path, without a trailing '/' */
};

/*
 * Depth-first, children sorted: the one order every walk uses. fn gets
 * each node with its full path ("/" for the root, "/a/b" below), built
 * on the way down so that the walk stays linear in the depth. Iterative:
 * one frame per level, on the heap.
 */
void tree_walk_sorted(struct tree *t, walk_fn *fn, void *data)
{
	struct walk_frame *st = NULL;
	size_t depth = 0, alloc = 0;
	struct strbuf path = STRBUF_INIT;

	strbuf_addch(&path, '/');
	fn(t, t->root, path.buf, data);
	GROW(st, alloc, 1);
	st[depth] = (struct walk_frame){ NULL, 0, 0, 0 };
	tree_sorted_children(t->root, &st[depth].c, &st[depth].n);
	depth++;
	while (depth) {
		struct walk_frame *f = &st[depth - 1];
		struct tree_node *n;

		if (f->next == f->n) {
			free(f->c);
			depth--;
			continue;
		}
		n = f->c[f->next++];
		path.len = f->path_len;
		strbuf_addch(&path, '/');
		strbuf_addstr(&path, n->name);
		fn(t, n, path.buf, data);
		if (S_ISDIR(n->inode->mode)) {
			GROW(st, alloc, depth + 1);
			st[depth] = (struct walk_frame){ NULL, 0, 0, path.len };
			tree_sorted_children(n, &st[depth].c, &st[depth].n);
			depth++;
		}
	}
	free(st);
	strbuf_release(&path);
}


static int node_cmp(const void *a, const void *b)
{
	return strcmp((*(struct tree_node *const *)a)->name, (*(struct tree_node *const *)b)->name);
}

void tree_sorted_children(const struct tree_node *dir, struct tree_node ***ret, size_t *ret_n)
{
	struct tree_node **v = xmalloc((dir->n_children ? dir->n_children : 1) * sizeof(*v));
	struct tree_node *c;
	size_t n = 0;

	for (c = dir->first_child; c; c = c->next)
		v[n++] = c;
	qsort(v, n, sizeof(*v), node_cmp);
	*ret = v;
	*ret_n = n;
}
