/* SPDX-License-Identifier: MIT */
/*
 * The root filesystem tree. See tree.h and docs/mkfs.md for the policy on
 * hostile input.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/tarball.h"
#include "fs/tree.h"

/*
 * An archive layer. Its content is read again when streamed; the identity
 * recorded here (device, inode, size, mtime) makes sure it is the same
 * file, without keeping a descriptor open per layer (builds may have
 * hundreds of packages).
 */
struct layer {
	char *path;
	struct stat st;
};

struct tree {
	struct tree_node *root;
	struct tree_node **buckets;
	size_t n_buckets, n_nodes;
	struct layer *layers;
	size_t n_layers, alloc_layers;
	int64_t default_mtime;
	bool content_hashed; /* every content digest is set (tree_stream_content()) */
	struct content_cache *cache; /* archive files read by tree_read_content() */
	size_t n_cache, alloc_cache;
};

/* Content read once from an archive layer, by (layer, entry): neither is ever reused. */
struct content_cache {
	uint32_t layer;
	uint64_t entry;
	char *buf;
	size_t len;
};

/* --- inodes and nodes ------------------------------------------------------ */

static struct tree_inode *inode_new(uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime)
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

static void inode_unref(struct tree_inode *ino)
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

static void inode_set_xattr(struct tree_inode *ino, const char *name, const void *value,
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

static struct tree_node *child_lookup(const struct tree *t, const struct tree_node *dir,
				      const char *name, size_t len)
{
	struct tree_node *n;

	for (n = t->buckets[bucket_of(t, dir, name, len)]; n; n = n->hash_next)
		if (n->parent == dir && !strncmp(n->name, name, len) && !n->name[len])
			return n;
	return NULL;
}

static struct tree_node *child_add(struct tree *t, struct tree_node *dir, const char *name,
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
	inode_unref(n->inode);
	free(n->name);
	free(n);
}

/* Free n and everything below it, deepest first, without recursion. */
static void node_free(struct tree *t, struct tree_node *n)
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
	t->root->inode = inode_new(S_IFDIR | 0755, 0, 0, 0);
	t->root->inode->nlink = 1;
	t->n_nodes = 1;
	return t;
}

void tree_free(struct tree *t)
{
	size_t i;

	if (!t)
		return;
	node_free(t, t->root);
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
		n = child_lookup(t, n, p, (size_t)(end - p));
		p = *end ? end + 1 : end;
	}
	return n;
}

/*
 * Where an entry comes from, for messages: "archive 'x': entry 'y'" or
 * "'y'" when added through the API.
 */
struct origin {
	const char *kind; /* "archive", "directory", or NULL */
	const char *source;
	const char *entry;
};

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

static int origin_fail(struct strbuf *err, const struct origin *o, int r, const char *fmt, ...)
	_printf_(4, 5);
static int origin_fail(struct strbuf *err, const struct origin *o, int r, const char *fmt, ...)
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
	return origin_fail(err, o, -E2BIG,
			   "more than %d levels of directories, the limit of imgforge's trees",
			   TREE_DEPTH_MAX);
}

static int normalize_or_fail(const char *path, char **ret, const struct origin *o,
			     struct strbuf *err)
{
	int r = tree_normalize_path(path, ret);

	if (r == -EPERM)
		return origin_fail(err, o, r,
				   "path leaves the image root through '..'; refusing the archive");
	if (r == -ENAMETOOLONG)
		return origin_fail(err, o, r, "a file name is longer than %d bytes, the ext4 limit",
				   TREE_NAME_MAX);
	if (r == -E2BIG)
		return too_deep(err, o);
	return r;
}

/* How many symlinks one lookup may pass, as Linux allows (MAXSYMLINKS). */
#define TREE_SYMLINKS_MAX 40

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
		return origin_fail(err, o, -ELOOP, "too many levels of symlinks at '%s'",
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
			c = child_lookup(t, dir, p, len);
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
	return origin_fail(err, o, -EXDEV, "the symlink '%s' (-> %s) leads out of the image",
			   quote_path(lpath), quote_path(link->inode->symlink));
not_dir:
	lpath = tree_node_path(link);
	return origin_fail(err, o, -ENOTDIR,
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
static int walk_parent(struct tree *t, const char *norm, bool create, const struct origin *o,
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
		c = child_lookup(t, n, p, (size_t)(end - p));
		if (!c) {
			if (!create) {
				_cleanup_free_ char *d = xstrndup(norm, (size_t)(end - norm));

				return origin_fail(err, o, -ENOENT, "'/%s' does not exist in the image",
						   quote_path(d));
			}
			if (n->depth >= TREE_DEPTH_MAX)
				return too_deep(err, o);
			c = child_add(t, n, p, (size_t)(end - p),
				      inode_new(S_IFDIR | 0755, 0, 0, t->default_mtime));
		} else if (S_ISLNK(c->inode->mode)) {
			r = follow(t, c, o, &budget, &c, err);
			if (r < 0)
				return r;
		} else if (!S_ISDIR(c->inode->mode)) {
			_cleanup_free_ char *d = xstrndup(norm, (size_t)(end - norm));

			return origin_fail(err, o, -ENOTDIR, "'/%s' is not a directory", quote_path(d));
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
static int place(struct tree *t, const char *norm, struct tree_inode *ino, const struct origin *o,
		 struct tree_node **ret, struct strbuf *err)
{
	struct tree_node *dir, *old;
	const char *leaf;
	int r;

	if (!*norm) {
		if (!S_ISDIR(ino->mode)) {
			ino->nlink = 1;
			inode_unref(ino);
			return origin_fail(err, o, -EISDIR,
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
		inode_unref(ino);
		if (ret)
			*ret = t->root;
		return 0;
	}
	r = walk_parent(t, norm, true, o, &dir, &leaf, err);
	if (r < 0) {
		ino->nlink = 1;
		inode_unref(ino);
		return r;
	}
	old = child_lookup(t, dir, leaf, strlen(leaf));
	if (old && S_ISLNK(old->inode->mode) && S_ISDIR(ino->mode)) {
		/*
		 * A directory meeting a symlink to a directory of the image: the
		 * symlink stays and the directory it leads to keeps its metadata,
		 * as dpkg and tar --keep-directory-symlink do.
		 */
		int budget = TREE_SYMLINKS_MAX;

		ino->nlink = 1;
		inode_unref(ino);
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
		inode_unref(ino);
		if (ret)
			*ret = old;
		return 0;
	}
	if (old)
		node_free(t, old);
	old = child_add(t, dir, leaf, strlen(leaf), ino);
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

	r = normalize_or_fail(path, &norm, &o, err);
	if (r < 0) {
		ino->nlink = 1;
		inode_unref(ino);
		return r;
	}
	return place(t, norm, ino, &o, ret, err);
}

/*
 * Measure a host file: size, and its data runs (holes skipped) from
 * SEEK_DATA/SEEK_HOLE, without reading it. Content is read when streamed.
 */
static int scan_host_file(struct tree_inode *ino, const char *path, const struct origin *o,
			  struct strbuf *err)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	off_t pos = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;

		return origin_fail(err, o, -e, "cannot read '%s': %s", quote_path(path), strerror(e));
	}
	if (!S_ISREG(st.st_mode))
		return origin_fail(err, o, -EINVAL, "'%s' is not a regular file", quote_path(path));
	ino->size = (uint64_t)st.st_size;
	ino->data_bytes = 0;
	ino->data_runs = 0;
	while (pos < st.st_size) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 || data >= st.st_size)
			break; /* ENXIO: only a hole is left */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > st.st_size)
			hole = st.st_size;
		ino->data_runs++;
		ino->data_bytes += (uint64_t)(hole - data);
		pos = hole;
	}
	return 0;
}

int tree_add_file(struct tree *t, const char *path, const void *data, size_t len,
		  const char *host_path, uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime,
		  struct strbuf *err)
{
	struct tree_inode *ino = inode_new(S_IFREG | (mode & 07777), uid, gid, mtime);
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
		r = scan_host_file(ino, host_path, &o, err);
		if (r < 0) {
			ino->nlink = 1;
			inode_unref(ino);
			return r;
		}
	}
	return api_place(t, path, ino, NULL, err);
}

int tree_add_directory(struct tree *t, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
		       int64_t mtime, struct strbuf *err)
{
	return api_place(t, path, inode_new(S_IFDIR | (mode & 07777), uid, gid, mtime), NULL, err);
}

int tree_add_symlink(struct tree *t, const char *path, const char *target, uint32_t uid,
		     uint32_t gid, int64_t mtime, struct strbuf *err)
{
	struct tree_inode *ino = inode_new(S_IFLNK | 0777, uid, gid, mtime);

	if (!*target) {
		strbuf_addf(err, "'%s': a symlink needs a target", quote_path(path));
		ino->nlink = 1;
		inode_unref(ino);
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
	inode_set_xattr(n->inode, name, value, size);
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
	node_free(t, n);
	return 0;
}

/* --- archives -------------------------------------------------------------- */

static int add_hardlink(struct tree *t, const char *norm, const char *target,
			const struct origin *o, struct strbuf *err)
{
	_cleanup_free_ char *tnorm = NULL;
	struct tree_node *dir, *tn, *old;
	const char *leaf;
	size_t mark = err->len;
	int r;

	r = normalize_or_fail(target, &tnorm, o, err);
	if (r < 0)
		return r;
	if (!*tnorm)
		return origin_fail(err, o, -EPERM, "hard link to the image root");
	r = walk_parent(t, tnorm, false, o, &dir, &leaf, err);
	if (r == -ENOENT) {
		/* said below, the same way for a missing directory or file */
		err->len = mark;
		if (err->buf)
			err->buf[mark] = '\0';
	}
	if (r < 0 && r != -ENOENT)
		return r;
	tn = r < 0 ? NULL : child_lookup(t, dir, leaf, strlen(leaf));
	if (!tn)
		return origin_fail(err, o, -ENOENT,
				   "hard link to '/%s', which does not exist in the image",
				   quote_path(tnorm));
	if (S_ISDIR(tn->inode->mode))
		return origin_fail(err, o, -EPERM, "hard link to the directory '/%s'",
				   quote_path(tnorm));
	r = walk_parent(t, norm, true, o, &dir, &leaf, err);
	if (r < 0)
		return r;
	old = child_lookup(t, dir, leaf, strlen(leaf));
	if (old == tn)
		return 0; /* a link to itself, maybe through a directory symlink */
	if (old) {
		if (S_ISDIR(old->inode->mode))
			return origin_fail(err, o, -EEXIST, "a hard link would replace the directory '/%s'",
					   quote_path(norm));
		node_free(t, old);
	}
	child_add(t, dir, leaf, strlen(leaf), tn->inode);
	return 0;
}

/*
 * Owners, device numbers and times that ext4 and Linux cannot hold are
 * refused rather than truncated: GNU tar refuses such owners too, and a
 * truncated owner of a setuid file could be root.
 */
static int check_owner(const char *what, int64_t id, const struct origin *o, struct strbuf *err)
{
	if (id < 0 || id > (int64_t)UINT32_MAX - 1)
		return origin_fail(err, o, -ERANGE, "the %s %lld is out of range (0 to %u)", what,
				   (long long)id, UINT32_MAX - 1);
	return 0;
}

static int check_fields(int64_t uid, int64_t gid, bool dev, uint64_t major, uint64_t minor,
			int64_t mtime, const struct origin *o, struct strbuf *err)
{
	int r = check_owner("owner", uid, o, err);

	if (r == 0)
		r = check_owner("group", gid, o, err);
	if (r < 0)
		return r;
	if (dev && (major > TREE_MAJOR_MAX || minor > TREE_MINOR_MAX))
		return origin_fail(err, o, -ERANGE,
				   "the device number %llu:%llu is beyond what Linux has (%u:%u)",
				   (unsigned long long)major, (unsigned long long)minor,
				   TREE_MAJOR_MAX, TREE_MINOR_MAX);
	if (mtime < TREE_MTIME_MIN || mtime > TREE_MTIME_MAX)
		return origin_fail(err, o, -ERANGE,
				   "the modification time %lld is outside what ext4 stores "
				   "(%lld to %lld, 1901 to 2446)",
				   (long long)mtime, (long long)TREE_MTIME_MIN,
				   (long long)TREE_MTIME_MAX);
	return 0;
}

static int add_archive_entry(struct tree *t, uint32_t layer,
			     const struct tarball_entry *e, const struct origin *o,
			     struct strbuf *err)
{
	_cleanup_free_ char *norm = NULL;
	struct tree_inode *ino;
	uint32_t type = 0;
	size_t i;
	int r;

	r = normalize_or_fail(e->path, &norm, o, err);
	if (r < 0)
		return r;
	switch (e->type) {
	case TARBALL_HARDLINK:
		return add_hardlink(t, norm, e->linkname, o, err);
	case TARBALL_REG:
		type = S_IFREG;
		break;
	case TARBALL_DIR:
		type = S_IFDIR;
		break;
	case TARBALL_SYMLINK:
		type = S_IFLNK;
		break;
	case TARBALL_CHR:
		type = S_IFCHR;
		break;
	case TARBALL_BLK:
		type = S_IFBLK;
		break;
	case TARBALL_FIFO:
		type = S_IFIFO;
		break;
	case TARBALL_SOCK:
		type = S_IFSOCK;
		break;
	}
	r = check_fields(e->uid, e->gid, type == S_IFCHR || type == S_IFBLK, e->rdev_major,
			 e->rdev_minor, e->mtime, o, err);
	if (r < 0)
		return r;
	ino = inode_new(type | (e->mode & 07777), (uint32_t)e->uid, (uint32_t)e->gid, e->mtime);
	for (i = 0; i < e->n_xattrs; i++)
		inode_set_xattr(ino, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].size);
	if (type == S_IFLNK) {
		ino->symlink = xstrdup(e->linkname);
		ino->size = strlen(e->linkname);
		ino->mode = S_IFLNK | 0777;
	} else if (type == S_IFCHR || type == S_IFBLK) {
		ino->rdev_major = (uint32_t)e->rdev_major;
		ino->rdev_minor = (uint32_t)e->rdev_minor;
	} else if (type == S_IFREG) {
		/*
		 * The data is not read now: sizes and runs come from the header
		 * (and the sparse map), and the content is checked against them
		 * when it is streamed into the image.
		 */
		ino->size = e->size;
		ino->src = TREE_SRC_ARCHIVE;
		ino->layer = layer;
		ino->entry = e->index;
		ino->data_bytes = e->data_bytes;
		ino->data_runs = e->data_runs;
		if (ino->data_bytes == 0)
			ino->src = TREE_SRC_NONE;
	}
	return place(t, norm, ino, o, NULL, err);
}

int tree_add_archive(struct tree *t, const char *path, struct strbuf *err)
{
	struct tarball *tb = NULL;
	struct tarball_entry e;
	struct origin o = { "archive", path, NULL };
	uint32_t layer = (uint32_t)t->n_layers;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot open archive '%s': %s", quote_path(path), strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	GROW(t->layers, t->alloc_layers, t->n_layers + 1);
	t->layers[t->n_layers++] = (struct layer){ xstrdup(path), st };

	r = tarball_open(path, fd, &tb, err);
	close(fd);
	if (r < 0)
		return r;
	while ((r = tarball_next(tb, &e, err)) > 0) {
		o.entry = e.path;
		r = add_archive_entry(t, layer, &e, &o, err);
		if (r < 0)
			break;
	}
	tarball_free(tb);
	return r;
}

/* --- host directories -------------------------------------------------------- */

static int read_host_xattrs(struct tree_inode *ino, const char *path, const struct origin *o,
			    struct strbuf *err)
{
	char names[65536], value[65536];
	ssize_t len = llistxattr(path, names, sizeof(names)), i;
	int e;

	if (len < 0) {
		e = errno;
		if (e == ENOTSUP)
			return 0;
		return origin_fail(err, o, -e, "cannot list the extended attributes of '%s': %s",
				   quote_path(path), strerror(e));
	}
	for (i = 0; i < len; i += (ssize_t)strlen(names + i) + 1) {
		ssize_t vlen = lgetxattr(path, names + i, value, sizeof(value));

		if (vlen < 0) {
			e = errno;
			return origin_fail(err, o, -e, "cannot read the attribute '%s' of '%s': %s",
					   quote_path(names + i), quote_path(path), strerror(e));
		}
		inode_set_xattr(ino, names + i, value, (size_t)vlen);
	}
	return 0;
}

/*
 * Hard links on the host stay hard links: files seen with more than one
 * name, found again by device and inode number in an open-addressing table.
 */
struct host_link {
	dev_t dev;
	ino_t ino;
	struct tree_inode *inode; /* NULL: free slot */
};

/* A directory still to be read: its host path, its path in the tree and its depth. */
struct host_dir {
	char *hostpath, *norm;
};

struct host_walk {
	uint32_t uid, gid;
	const char *source; /* the host directory given, for messages */
	struct host_link *links;
	size_t n_links, cap_links; /* cap_links: a power of two, or 0 */
	struct host_dir *todo;
	size_t n_todo, alloc_todo;
};

static size_t host_link_slot(const struct host_walk *hw, dev_t dev, ino_t ino)
{
	uint64_t h = ((uint64_t)dev * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)ino * 0xc2b2ae3d27d4eb4fULL);
	size_t i = (size_t)(h ^ (h >> 31)) & (hw->cap_links - 1);

	while (hw->links[i].inode && (hw->links[i].dev != dev || hw->links[i].ino != ino))
		i = (i + 1) & (hw->cap_links - 1);
	return i;
}

static struct tree_inode *host_link_find(const struct host_walk *hw, const struct stat *st)
{
	if (!hw->n_links)
		return NULL;
	return hw->links[host_link_slot(hw, st->st_dev, st->st_ino)].inode;
}

static void host_link_add(struct host_walk *hw, const struct stat *st, struct tree_inode *ino)
{
	size_t i;

	if (2 * (hw->n_links + 1) > hw->cap_links) {
		struct host_link *old = hw->links;
		size_t n_old = hw->cap_links;

		hw->cap_links = n_old ? 2 * n_old : 64;
		hw->links = xcalloc(hw->cap_links, sizeof(*hw->links));
		for (i = 0; i < n_old; i++)
			if (old[i].inode)
				hw->links[host_link_slot(hw, old[i].dev, old[i].ino)] = old[i];
		free(old);
	}
	i = host_link_slot(hw, st->st_dev, st->st_ino);
	if (!hw->links[i].inode)
		hw->n_links++;
	hw->links[i] = (struct host_link){ st->st_dev, st->st_ino, ino };
}

/* Give an inode already in the tree one more name, norm. */
static int link_existing(struct tree *t, const char *norm, struct tree_inode *ino,
			 const struct origin *o, struct strbuf *err)
{
	struct tree_node *dir, *old;
	const char *leaf;
	int r;

	r = walk_parent(t, norm, true, o, &dir, &leaf, err);
	if (r < 0)
		return r;
	old = child_lookup(t, dir, leaf, strlen(leaf));
	if (old) {
		if (old->inode == ino)
			return 0;
		if (S_ISDIR(old->inode->mode))
			return origin_fail(err, o, -EEXIST, "a hard link would replace the directory '/%s'",
					   quote_path(norm));
		node_free(t, old);
	}
	child_add(t, dir, leaf, strlen(leaf), ino);
	return 0;
}

/* A host symlink's target, whatever its length. */
static int read_host_symlink(const char *path, const struct stat *st, char **ret)
{
	size_t size = st->st_size > 0 ? (size_t)st->st_size + 1 : 256;

	for (;;) {
		char *buf = xmalloc(size);
		ssize_t len = readlink(path, buf, size);

		if (len < 0) {
			int e = errno;

			free(buf);
			return -e;
		}
		if ((size_t)len < size) {
			buf[len] = '\0';
			*ret = buf;
			return (int)len;
		}
		/* filled the buffer: maybe cut short, read again with more room */
		free(buf);
		if (size > (1 << 20))
			return -ENAMETOOLONG;
		size *= 2;
	}
}

/* One entry of a host directory: put it in the tree; directories go on the to-do list. */
static int add_host_entry(struct tree *t, struct host_walk *hw, const char *hp, const char *tp,
			  struct strbuf *err)
{
	const uint32_t uid = hw->uid, gid = hw->gid;
	struct origin o = { "directory", hw->source, tp };
	_cleanup_free_ char *norm = NULL;
	struct tree_inode *ino;
	struct stat st;
	int r, e;

	if (lstat(hp, &st) < 0) {
		e = errno;
		return origin_fail(err, &o, -e, "cannot stat '%s': %s", quote_path(hp), strerror(e));
	}
	r = normalize_or_fail(tp, &norm, &o, err);
	if (r < 0)
		return r;
	if (S_ISREG(st.st_mode) && st.st_nlink > 1 && (ino = host_link_find(hw, &st)))
		return link_existing(t, norm, ino, &o, err);
	r = check_fields(uid == TREE_OWNER_HOST ? st.st_uid : uid,
			 uid == TREE_OWNER_HOST ? st.st_gid : gid,
			 S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode), major(st.st_rdev),
			 minor(st.st_rdev), st.st_mtime, &o, err);
	if (r < 0)
		return r;
	ino = inode_new((uint32_t)(st.st_mode & (S_IFMT | 07777)),
			uid == TREE_OWNER_HOST ? st.st_uid : uid,
			uid == TREE_OWNER_HOST ? st.st_gid : gid, st.st_mtime);
	if (uid == TREE_OWNER_HOST) {
		r = read_host_xattrs(ino, hp, &o, err);
		if (r < 0)
			goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		ino->src = TREE_SRC_HOST;
		ino->host_path = xstrdup(hp);
		r = scan_host_file(ino, hp, &o, err);
		if (r < 0)
			goto fail;
		if (ino->data_bytes == 0)
			ino->src = TREE_SRC_NONE;
	} else if (S_ISLNK(st.st_mode)) {
		r = read_host_symlink(hp, &st, &ino->symlink);
		if (r <= 0) {
			r = origin_fail(err, &o, r < 0 ? r : -EINVAL, "cannot read the symlink '%s': %s",
					quote_path(hp), r < 0 ? strerror(-r) : "empty target");
			goto fail;
		}
		ino->size = (uint64_t)r;
	} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		ino->rdev_major = major(st.st_rdev);
		ino->rdev_minor = minor(st.st_rdev);
	} else if (S_ISDIR(st.st_mode)) {
		struct tree_node *old = tree_lookup(t, norm);

		/* Existing directories keep their metadata (docs/mkfs.md). */
		if (old && S_ISDIR(old->inode->mode)) {
			ino->nlink = 1;
			inode_unref(ino);
			ino = NULL;
		}
	}
	if (ino) {
		r = place(t, norm, ino, &o, NULL, err);
		if (r < 0)
			return r;
		if (S_ISREG(st.st_mode) && st.st_nlink > 1)
			host_link_add(hw, &st, ino);
	}
	if (S_ISDIR(st.st_mode)) {
		GROW(hw->todo, hw->alloc_todo, hw->n_todo + 1);
		hw->todo[hw->n_todo++] = (struct host_dir){ xstrdup(hp), TAKE_PTR(norm) };
	}
	return 0;
fail:
	ino->nlink = 1;
	inode_unref(ino);
	return r;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Read one host directory: its names are read and the directory closed
 * before any entry is added, so that no descriptor stays open per level,
 * and they are added in name order, so that the result does not depend on
 * the order the host filesystem lists them in.
 */
static int add_host_dir(struct tree *t, struct host_walk *hw, const struct host_dir *hd,
			struct strbuf *err)
{
	struct origin o = { "directory", hw->source, *hd->norm ? hd->norm : "/" };
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	struct dirent *de;
	int r = 0, e;
	DIR *d;

	d = opendir(hd->hostpath);
	if (!d) {
		e = errno;
		return origin_fail(err, &o, -e, "cannot open the directory '%s': %s",
				   quote_path(hd->hostpath), strerror(e));
	}
	while ((errno = 0, de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		GROW(names, alloc, n + 1);
		names[n++] = xstrdup(de->d_name);
	}
	e = errno;
	closedir(d);
	if (e)
		r = origin_fail(err, &o, -e, "cannot read the directory '%s': %s",
				quote_path(hd->hostpath), strerror(e));
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n && r == 0; i++) {
		_cleanup_free_ char *hp = path_join(hd->hostpath, names[i]);
		_cleanup_free_ char *tp = *hd->norm ? xasprintf("%s/%s", hd->norm, names[i])
						     : xstrdup(names[i]);

		r = add_host_entry(t, hw, hp, tp, err);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int tree_add_dir(struct tree *t, const char *hostdir, const char *dest, uint32_t uid, uint32_t gid,
		 struct strbuf *err)
{
	struct origin o = { "directory", hostdir, dest && *dest ? dest : "/" };
	struct host_walk hw = { .uid = uid, .gid = gid, .source = hostdir };
	_cleanup_free_ char *norm = NULL;
	struct stat st;
	int r, e;

	if (stat(hostdir, &st) < 0) {
		e = errno;
		strbuf_addf(err, "cannot open directory '%s': %s", quote_path(hostdir), strerror(e));
		return -e;
	}
	if (!S_ISDIR(st.st_mode)) {
		strbuf_addf(err, "'%s' is not a directory", quote_path(hostdir));
		return -ENOTDIR;
	}
	r = normalize_or_fail(dest ? dest : "", &norm, &o, err);
	if (r < 0)
		return r;
	if (!tree_lookup(t, norm)) {
		r = check_fields(uid == TREE_OWNER_HOST ? st.st_uid : uid,
				 uid == TREE_OWNER_HOST ? st.st_gid : gid, false, 0, 0, st.st_mtime,
				 &o, err);
		if (r < 0)
			return r;
		r = place(t, norm,
			  inode_new(S_IFDIR | (st.st_mode & 07777),
				    uid == TREE_OWNER_HOST ? st.st_uid : uid,
				    uid == TREE_OWNER_HOST ? st.st_gid : gid, st.st_mtime),
			  &o, NULL, err);
		if (r < 0)
			return r;
	}
	/* Depth first without recursion: the to-do list is a stack of directories. */
	GROW(hw.todo, hw.alloc_todo, 1);
	hw.todo[hw.n_todo++] = (struct host_dir){ xstrdup(hostdir), TAKE_PTR(norm) };
	while (hw.n_todo) {
		struct host_dir hd = hw.todo[--hw.n_todo];

		if (r == 0)
			r = add_host_dir(t, &hw, &hd, err);
		free(hd.hostpath);
		free(hd.norm);
	}
	free(hw.todo);
	free(hw.links);
	return r;
}

/* --- owners ------------------------------------------------------------------ */

static bool parse_u32(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 10)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX - 1) /* (uint32_t)-1 means "no owner" */
		return false;
	*ret = (uint32_t)v;
	return true;
}

/*
 * Find a line in a passwd(5)/group(5) file by field 0 (name) or field 2
 * (number); return fields 2 and 3 of it.
 */
static bool db_find(const char *db, const char *name, size_t name_len, const uint32_t *num,
		    uint32_t *ret_id, uint32_t *ret_group)
{
	const char *line = db;

	while (line && *line) {
		const char *eol = strchrnul(line, '\n');
		const char *f[5] = { line };
		size_t nf = 1;
		const char *p;

		for (p = line; p < eol && nf < 5; p++)
			if (*p == ':')
				f[nf++] = p + 1;
		if (nf >= 3) {
			size_t l0 = (size_t)(f[1] - 1 - f[0]);
			size_t l2 = (size_t)((nf > 3 ? f[3] - 1 : eol) - f[2]);
			size_t l3 = nf > 4 ? (size_t)(f[4] - 1 - f[3]) : nf > 3 ? (size_t)(eol - f[3]) : 0;
			uint32_t id, grp = 0;

			if (parse_u32(f[2], l2, &id) &&
			    ((name && l0 == name_len && !strncmp(f[0], name, name_len)) ||
			     (num && id == *num))) {
				if (nf > 3 && !parse_u32(f[3], l3, &grp))
					grp = id;
				*ret_id = id;
				if (ret_group)
					*ret_group = grp;
				return true;
			}
		}
		line = *eol ? eol + 1 : NULL;
	}
	return false;
}

int tree_resolve_owner(struct tree *t, const char *spec, uint32_t *ret_uid, uint32_t *ret_gid,
		       struct strbuf *err)
{
	_cleanup_free_ char *passwd = NULL, *group = NULL;
	const char *colon = strchr(spec, ':');
	size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
	size_t len;
	_cleanup_(strbuf_release) struct strbuf ignored = STRBUF_INIT;
	uint32_t uid, gid, pgid;
	bool have_pgid = false;
	int r;

	if (ulen == 0) {
		strbuf_addf(err, "owner '%s': no user given", quote_path(spec));
		return -EINVAL;
	}
	if (parse_u32(spec, ulen, &uid)) {
		/* only for the primary group: no /etc/passwd is no error */
		r = tree_read_content(t, "etc/passwd", 16 << 20, &passwd, &len, &ignored);
		if (r == 0)
			have_pgid = db_find(passwd, NULL, 0, &uid, &uid, &pgid);
	} else {
		r = tree_read_content(t, "etc/passwd", 16 << 20, &passwd, &len, &ignored);
		if (r < 0) {
			strbuf_addf(err, "owner '%s': the image has no readable /etc/passwd to look "
				    "up '%.*s' in; give a number", quote_path(spec), (int)ulen, spec);
			return r == -ENOENT ? -ESRCH : r;
		}
		if (!db_find(passwd, spec, ulen, NULL, &uid, &pgid)) {
			strbuf_addf(err, "owner '%s': no user '%.*s' in the image's /etc/passwd",
				    quote_path(spec), (int)ulen, spec);
			return -ESRCH;
		}
		have_pgid = true;
	}
	if (!colon || !colon[1]) {
		gid = have_pgid ? pgid : uid;
	} else if (!parse_u32(colon + 1, strlen(colon + 1), &gid)) {
		r = tree_read_content(t, "etc/group", 16 << 20, &group, &len, &ignored);
		if (r < 0) {
			strbuf_addf(err, "owner '%s': the image has no readable /etc/group to look "
				    "up '%s' in; give a number", quote_path(spec), quote_path(colon + 1));
			return r == -ENOENT ? -ESRCH : r;
		}
		if (!db_find(group, colon + 1, strlen(colon + 1), NULL, &gid, NULL)) {
			strbuf_addf(err, "owner '%s': no group '%s' in the image's /etc/group",
				    quote_path(spec), quote_path(colon + 1));
			return -ESRCH;
		}
	}
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}

/* --- reading content ----------------------------------------------------------- */

/* Stream one archive layer: every inode in want (sorted by entry) gets its data. */
static int stream_layer(struct tree *t, uint32_t layer, struct tree_inode **want, size_t n_want,
			const struct tree_content_ops *ops, void *ctx, struct strbuf *err)
{
	const struct layer *l = &t->layers[layer];
	struct tarball *tb = NULL;
	struct tarball_entry e;
	struct stat st;
	size_t k = 0;
	int fd, r;

	fd = open(l->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int en = errno;

		if (fd >= 0)
			close(fd);
		strbuf_addf(err, "cannot open archive '%s' again: %s", quote_path(l->path),
			    strerror(en));
		return -en;
	}
	if (st.st_dev != l->st.st_dev || st.st_ino != l->st.st_ino ||
	    st.st_size != l->st.st_size || st.st_mtim.tv_sec != l->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != l->st.st_mtim.tv_nsec) {
		close(fd);
		strbuf_addf(err, "archive '%s' changed while the image was being written; run again",
			    quote_path(l->path));
		return -ESTALE;
	}
	r = tarball_open(l->path, fd, &tb, err);
	close(fd);
	if (r < 0)
		return r;
	while (k < n_want && (r = tarball_next(tb, &e, err)) > 0) {
		struct tree_inode *ino;
		uint64_t seen = 0;
		const void *buf;
		size_t len;
		uint64_t off;

		if (e.index != want[k]->entry)
			continue;
		ino = want[k++];
		r = ops->begin ? ops->begin(ctx, ino, err) : 0;
		while (r >= 0 && (r = tarball_read(tb, &buf, &len, &off, err)) > 0) {
			if (len == 0)
				continue;
			seen += len;
			if (off + len > ino->size || seen > ino->data_bytes) {
				strbuf_addf(err, "archive '%s': entry '%s': more data than its header "
					    "declares; the archive is corrupt",
					    quote_path(t->layers[layer].path), quote_path(e.path));
				r = -EBADMSG;
				break;
			}
			r = ops->data(ctx, ino, off, buf, len, err);
		}
		if (r >= 0 && seen != ino->data_bytes) {
			strbuf_addf(err, "archive '%s': entry '%s': less data than its header "
				    "declares; the archive is truncated or corrupt",
				    quote_path(t->layers[layer].path), quote_path(e.path));
			r = -EBADMSG;
		}
		if (r >= 0 && ops->end)
			r = ops->end(ctx, ino, err);
		if (r < 0)
			break;
	}
	if (r >= 0 && k < n_want) {
		strbuf_addf(err, "archive '%s' changed while being read (entries missing)",
			    quote_path(t->layers[layer].path));
		r = -ESTALE;
	}
	tarball_free(tb);
	return r < 0 ? r : 0;
}

static int stream_host(struct tree_inode *ino, const struct tree_content_ops *ops, void *ctx,
		       struct strbuf *err)
{
	_cleanup_close_ int fd = -1;
	static char buf[1 << 20];
	off_t pos = 0, size = (off_t)ino->size;
	int r = 0;

	fd = open(ino->host_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;

		strbuf_addf(err, "cannot open '%s': %s", quote_path(ino->host_path), strerror(e));
		return -e;
	}
	while (pos < size && r >= 0) {
		off_t data = lseek(fd, pos, SEEK_DATA), hole;

		if (data < 0 || data >= size)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || hole > size)
			hole = size;
		for (pos = data; pos < hole && r >= 0;) {
			size_t want = (size_t)(hole - pos) < sizeof(buf) ? (size_t)(hole - pos)
									 : sizeof(buf);
			ssize_t n = pread(fd, buf, want, pos);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				int e = n < 0 ? errno : ESTALE;

				strbuf_addf(err, "cannot read '%s': %s", quote_path(ino->host_path),
					    n < 0 ? strerror(e) : "file shrank while read");
				return -e;
			}
			r = ops->data(ctx, ino, (uint64_t)pos, buf, (size_t)n, err);
			pos += n;
		}
	}
	return r;
}

struct collect {
	struct tree_inode **inodes;
	size_t n, alloc;
};

typedef void walk_fn(struct tree *t, struct tree_node *n, const char *path, void *data);

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
static void walk_sorted(struct tree *t, walk_fn *fn, void *data)
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

static void collect_content(struct tree *t, struct tree_node *n, const char *path, void *data)
{
	struct collect *c = data;
	struct tree_inode *ino = n->inode;

	(void)path;
	if (!S_ISREG(ino->mode) || ino->src == TREE_SRC_NONE || ino->writer_data == (void *)t)
		return;
	ino->writer_data = t; /* mark: collect each inode once */
	GROW(c->inodes, c->alloc, c->n + 1);
	c->inodes[c->n++] = ino;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct tree_inode *x = *(struct tree_inode *const *)a;
	const struct tree_inode *y = *(struct tree_inode *const *)b;

	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/*
 * Content digests are computed while content is streamed, on a second
 * thread, so that hashing overlaps with writing the image. The streaming
 * thread appends records (begin a file, a piece of data, end a file) to a
 * 1 MiB buffer and hands the buffer over when it is full: a handful of
 * buffers bound the memory, and the threads meet once per MiB whatever the
 * file sizes. The hasher feeds SHA-256 the run starts (offsets where data
 * resumes after a hole), the data and, at the end, the size, so that the
 * digest does not depend on how the input happened to be cut into pieces.
 */
#define HQ_SLOTS     4
#define HQ_SLOT_SIZE (1024 * 1024)

enum hq_kind { HQ_BEGIN, HQ_DATA, HQ_END, HQ_QUIT };

struct hq_rec {
	uint32_t kind;
	uint32_t len; /* bytes of data following the record */
	uint64_t off;
	struct tree_inode *ino;
};

struct hq_slot {
	char *buf;
	size_t used;
};

struct hasher {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	struct hq_slot slots[HQ_SLOTS];
	size_t head, count; /* published slots, oldest first (under mu) */
	size_t tail;        /* the slot being filled: the producer's alone */
	bool started;
};

static void *hasher_main(void *arg)
{
	struct hasher *hq = arg;
	struct sha256 *h = sha256_new();
	uint64_t end = 0;
	bool first = true, quit = false;

	while (!quit) {
		struct hq_slot *sl;
		size_t pos = 0;

		pthread_mutex_lock(&hq->mu);
		while (hq->count == 0)
			pthread_cond_wait(&hq->not_empty, &hq->mu);
		sl = &hq->slots[hq->head];
		pthread_mutex_unlock(&hq->mu);

		while (pos < sl->used) {
			struct hq_rec rec;

			memcpy(&rec, sl->buf + pos, sizeof(rec));
			pos += sizeof(rec);
			switch (rec.kind) {
			case HQ_BEGIN:
				end = 0;
				first = true;
				break;
			case HQ_DATA:
				if (first || rec.off != end)
					sha256_update_u64(h, rec.off);
				sha256_update(h, sl->buf + pos, rec.len);
				end = rec.off + rec.len;
				first = false;
				break;
			case HQ_END:
				sha256_update_u64(h, rec.ino->size);
				sha256_final(h, rec.ino->digest);
				break;
			default:
				quit = true;
				break;
			}
			pos += rec.len;
		}

		pthread_mutex_lock(&hq->mu);
		sl->used = 0;
		hq->head = (hq->head + 1) % HQ_SLOTS;
		if (hq->count-- == HQ_SLOTS)
			pthread_cond_signal(&hq->not_full);
		pthread_mutex_unlock(&hq->mu);
	}
	sha256_free(h);
	return NULL;
}

/* The slot being filled, just after the published ones. */
static struct hq_slot *hq_current(struct hasher *hq)
{
	return &hq->slots[hq->tail];
}

/* Hand the current slot to the hasher and wait until the next one is free. */
static void hq_publish(struct hasher *hq)
{
	pthread_mutex_lock(&hq->mu);
	if (hq->count++ == 0)
		pthread_cond_signal(&hq->not_empty);
	hq->tail = (hq->tail + 1) % HQ_SLOTS;
	while (hq->count == HQ_SLOTS)
		pthread_cond_wait(&hq->not_full, &hq->mu);
	pthread_mutex_unlock(&hq->mu);
}

static void hq_append(struct hasher *hq, enum hq_kind kind, struct tree_inode *ino, uint64_t off,
		      const void *buf, size_t len)
{
	struct hq_slot *sl = hq_current(hq);
	struct hq_rec rec = { kind, (uint32_t)len, off, ino };

	memcpy(sl->buf + sl->used, &rec, sizeof(rec));
	if (len)
		memcpy(sl->buf + sl->used + sizeof(rec), buf, len);
	sl->used += sizeof(rec) + len;
}

static void hq_push(struct hasher *hq, enum hq_kind kind, struct tree_inode *ino, uint64_t off,
		    const void *buf, size_t len)
{
	const char *p = buf;

	for (;;) {
		struct hq_slot *sl = hq_current(hq);
		size_t room = HQ_SLOT_SIZE - sl->used, n;

		/* leave a slot rather than split data into crumbs */
		if (room < sizeof(struct hq_rec) + (len ? 4096 : 0) &&
		    room < sizeof(struct hq_rec) + len) {
			hq_publish(hq);
			continue;
		}
		n = len < room - sizeof(struct hq_rec) ? len : room - sizeof(struct hq_rec);
		hq_append(hq, kind, ino, off, p, n);
		if (len == n)
			return;
		p += n;
		off += n;
		len -= n;
	}
}

static void hq_init(struct hasher *hq)
{
	size_t i;

	memset(hq, 0, sizeof(*hq));
	pthread_mutex_init(&hq->mu, NULL);
	pthread_cond_init(&hq->not_empty, NULL);
	pthread_cond_init(&hq->not_full, NULL);
	for (i = 0; i < HQ_SLOTS; i++)
		hq->slots[i].buf = xmalloc(HQ_SLOT_SIZE);
	hq->started = pthread_create(&hq->thread, NULL, hasher_main, hq) == 0;
}

/* Wait for every digest, then stop the thread. */
static void hq_finish(struct hasher *hq)
{
	size_t i;

	if (hq->started) {
		hq_push(hq, HQ_QUIT, NULL, 0, NULL, 0);
		hq_publish(hq);
		pthread_join(hq->thread, NULL);
	}
	for (i = 0; i < HQ_SLOTS; i++)
		free(hq->slots[i].buf);
	pthread_cond_destroy(&hq->not_full);
	pthread_cond_destroy(&hq->not_empty);
	pthread_mutex_destroy(&hq->mu);
}

/* The caller's callbacks, with every piece also handed to the hasher. */
struct tee {
	const struct tree_content_ops *ops;
	void *ctx;
	struct hasher *hq;
	struct sha256 *h; /* hashing inline when no thread could be started */
	uint64_t end;
};

static int tee_begin(void *ctx, struct tree_inode *ino, struct strbuf *err)
{
	struct tee *te = ctx;

	if (te->hq->started)
		hq_push(te->hq, HQ_BEGIN, ino, 0, NULL, 0);
	te->end = UINT64_MAX;
	return te->ops->begin ? te->ops->begin(te->ctx, ino, err) : 0;
}

static int tee_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf, size_t len,
		    struct strbuf *err)
{
	struct tee *te = ctx;

	if (te->hq->started && len)
		hq_push(te->hq, HQ_DATA, ino, offset, buf, len);
	if (!te->hq->started && len) {
		if (offset != te->end)
			sha256_update_u64(te->h, offset);
		sha256_update(te->h, buf, len);
		te->end = offset + len;
	}
	return te->ops->data(te->ctx, ino, offset, buf, len, err);
}

static int tee_end(void *ctx, struct tree_inode *ino, struct strbuf *err)
{
	struct tee *te = ctx;

	if (te->hq->started) {
		hq_push(te->hq, HQ_END, ino, 0, NULL, 0);
	} else {
		sha256_update_u64(te->h, ino->size);
		sha256_final(te->h, ino->digest);
	}
	return te->ops->end ? te->ops->end(te->ctx, ino, err) : 0;
}

int tree_stream_content(struct tree *t, const struct tree_content_ops *user_ops, void *user_ctx,
			struct strbuf *err)
{
	static const struct tree_content_ops tee_ops = { tee_begin, tee_data, tee_end };
	const struct tree_content_ops *ops = &tee_ops;
	struct collect c = { NULL, 0, 0 };
	struct hasher hq;
	struct tee te = { user_ops, user_ctx, &hq, NULL, 0 };
	void *ctx = &te;
	size_t i, start;
	int r = 0;

	hq_init(&hq);
	te.h = sha256_new();

	walk_sorted(t, collect_content, &c);
	for (i = 0; i < c.n; i++)
		c.inodes[i]->writer_data = NULL;
	for (i = 0; i < c.n && r >= 0; i++) {
		struct tree_inode *ino = c.inodes[i];

		if (ino->src == TREE_SRC_ARCHIVE)
			continue;
		r = ops->begin ? ops->begin(ctx, ino, err) : 0;
		if (r >= 0 && ino->src == TREE_SRC_INLINE)
			r = ops->data(ctx, ino, 0, ino->inline_data, ino->size, err);
		else if (r >= 0)
			r = stream_host(ino, ops, ctx, err);
		if (r >= 0 && ops->end)
			r = ops->end(ctx, ino, err);
	}
	/* Archive content: one pass over each layer, in archive order. */
	start = 0;
	for (i = 0; i < c.n; i++)
		if (c.inodes[i]->src == TREE_SRC_ARCHIVE)
			c.inodes[start++] = c.inodes[i];
	if (start > 1)
		qsort(c.inodes, start, sizeof(*c.inodes), entry_cmp);
	for (i = 0; i < start && r >= 0;) {
		size_t j = i;

		while (j < start && c.inodes[j]->layer == c.inodes[i]->layer)
			j++;
		r = stream_layer(t, c.inodes[i]->layer, c.inodes + i, j - i, ops, ctx, err);
		i = j;
	}
	hq_finish(&hq);
	sha256_free(te.h);
	free(c.inodes);
	t->content_hashed = r >= 0;
	return r < 0 ? r : 0;
}

struct gather {
	struct strbuf sb;
	size_t max;
};

static int gather_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf,
		       size_t len, struct strbuf *err)
{
	struct gather *g = ctx;

	(void)ino;
	(void)err;
	if (offset + len > g->max)
		return -EFBIG;
	while (g->sb.len < offset)
		strbuf_addch(&g->sb, '\0');
	strbuf_add(&g->sb, buf, len);
	return 0;
}

/*
 * An archive file's content, read once per layer and entry: the owner
 * lookups of a recipe read /etc/passwd and /etc/group again and again, and
 * each read of an archive entry decompresses its layer up to it.
 */
static int read_archive_content(struct tree *t, struct tree_inode *ino, struct gather *g,
				struct strbuf *err)
{
	static const struct tree_content_ops ops = { .data = gather_data };
	struct content_cache *c;
	size_t i;
	int r;

	for (i = 0; i < t->n_cache; i++) {
		c = &t->cache[i];
		if (c->layer == ino->layer && c->entry == ino->entry) {
			if (c->len > g->max)
				return -EFBIG;
			strbuf_add(&g->sb, c->buf, c->len);
			return 0;
		}
	}
	r = stream_layer(t, ino->layer, &ino, 1, &ops, g, err);
	if (r < 0)
		return r;
	GROW(t->cache, t->alloc_cache, t->n_cache + 1);
	c = &t->cache[t->n_cache++];
	*c = (struct content_cache){ ino->layer, ino->entry, xmalloc(g->sb.len + 1), g->sb.len };
	memcpy(c->buf, g->sb.buf ? g->sb.buf : "", g->sb.len);
	return 0;
}

int tree_read_content(struct tree *t, const char *path, size_t max, char **ret_buf,
		      size_t *ret_len, struct strbuf *err)
{
	static const struct tree_content_ops ops = { .data = gather_data };
	struct tree_node *n = tree_lookup(t, path);
	struct gather g = { STRBUF_INIT, max };
	struct tree_inode *ino;
	int r = 0;

	if (!n) {
		strbuf_addf(err, "'/%s' does not exist in the image", quote_path(path));
		return -ENOENT;
	}
	ino = n->inode;
	if (!S_ISREG(ino->mode)) {
		strbuf_addf(err, "'/%s' is not a regular file in the image", quote_path(path));
		return -EINVAL;
	}
	if (ino->size > max) {
		strbuf_addf(err, "'/%s' is too large to read", quote_path(path));
		return -EFBIG;
	}
	if (ino->src == TREE_SRC_INLINE)
		r = gather_data(&g, ino, 0, ino->inline_data, ino->size, err);
	else if (ino->src == TREE_SRC_HOST)
		r = stream_host(ino, &ops, &g, err);
	else if (ino->src == TREE_SRC_ARCHIVE)
		r = read_archive_content(t, ino, &g, err);
	if (r < 0) {
		strbuf_release(&g.sb);
		return r;
	}
	while (g.sb.len < ino->size)
		strbuf_addch(&g.sb, '\0');
	*ret_len = g.sb.len;
	*ret_buf = strbuf_detach(&g.sb);
	return 0;
}

/* --- walking, statistics, digest ------------------------------------------------ */

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

static void stats_node(struct tree *t, struct tree_node *n, const char *path, void *data)
{
	struct tree_stats *s = data;
	struct tree_inode *ino = n->inode;

	(void)path;
	s->nodes++;
	if (ino->writer_data == (void *)t)
		return;
	ino->writer_data = t;
	s->inodes++;
	if (S_ISDIR(ino->mode))
		s->dirs++;
	s->data_bytes += ino->data_bytes;
	s->data_runs += ino->data_runs;
	if (ino->data_bytes > s->largest_data || !s->largest) {
		s->largest_data = ino->data_bytes;
		s->largest = ino;
	}
}

static void unmark(struct tree *t, struct tree_node *n, const char *path, void *data)
{
	(void)t;
	(void)path;
	(void)data;
	n->inode->writer_data = NULL;
}

void tree_stats(struct tree *t, struct tree_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	walk_sorted(t, stats_node, ret);
	walk_sorted(t, unmark, NULL);
}

char *tree_inode_origin(struct tree *t, const struct tree_inode *ino)
{
	switch (ino->src) {
	case TREE_SRC_ARCHIVE:
		return xasprintf("entry %llu of archive '%s'", (unsigned long long)ino->entry,
				 quote_path(t->layers[ino->layer].path));
	case TREE_SRC_HOST:
		return xasprintf("'%s'", quote_path(ino->host_path));
	default:
		return xstrdup("inline content");
	}
}

struct digest_walk {
	struct sha256 *h;
	uint64_t next;
	int64_t clamp;
	bool content;
};

static void digest_node(struct tree *t, struct tree_node *n, const char *path, void *data)
{
	struct digest_walk *d = data;
	struct tree_inode *ino = n->inode;
	size_t i;

	(void)t;
	sha256_update_str(d->h, path);
	if (ino->writer_data) {
		/* a further name of an inode already hashed */
		sha256_update_u64(d->h, (uint64_t)(uintptr_t)ino->writer_data);
		return;
	}
	ino->writer_data = (void *)(uintptr_t)++d->next;
	sha256_update_u64(d->h, ino->mode);
	sha256_update_u64(d->h, ino->uid);
	sha256_update_u64(d->h, ino->gid);
	sha256_update_u64(d->h, (uint64_t)(ino->mtime > d->clamp ? d->clamp : ino->mtime));
	sha256_update_u64(d->h, ino->rdev_major);
	sha256_update_u64(d->h, ino->rdev_minor);
	sha256_update_u64(d->h, ino->size);
	sha256_update_str(d->h, ino->symlink ? ino->symlink : "");
	sha256_update_u64(d->h, ino->n_xattrs);
	for (i = 0; i < ino->n_xattrs; i++) {
		sha256_update_str(d->h, ino->xattrs[i].name);
		sha256_update_u64(d->h, ino->xattrs[i].size);
		sha256_update(d->h, ino->xattrs[i].value, ino->xattrs[i].size);
	}
	if (S_ISREG(ino->mode) && d->content && ino->src != TREE_SRC_NONE)
		sha256_update(d->h, ino->digest, SHA256_LEN);
}

void tree_digest(struct tree *t, int64_t clamp_mtime, bool content, uint8_t ret[SHA256_LEN])
{
	struct digest_walk d = { sha256_new(), 0, clamp_mtime, content };

	assert(!content || t->content_hashed);

	walk_sorted(t, digest_node, &d);
	walk_sorted(t, unmark, NULL);
	sha256_final(d.h, ret);
	sha256_free(d.h);
}
