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
	char **aliases; /* pairs: path, target (normalised) */
	size_t n_aliases, alloc_aliases;
	bool content_hashed; /* every content digest is set (tree_stream_content()) */
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

static void node_free(struct tree *t, struct tree_node *n)
{
	struct tree_node **pp;

	while (n->first_child)
		node_free(t, n->first_child);
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
	for (i = 0; i < 2 * t->n_aliases; i++)
		free(t->aliases[i]);
	free(t->aliases);
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
			slash = strrchr(sb.buf, '/');
			sb.len = slash ? (size_t)(slash - sb.buf) : 0;
			sb.buf[sb.len] = '\0';
		} else {
			if (len > TREE_NAME_MAX) {
				strbuf_release(&sb);
				return -ENAMETOOLONG;
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

static void origin_add(struct strbuf *err, const struct origin *o)
{
	if (o->kind)
		strbuf_addf(err, "%s '%s': entry '%s'", o->kind, o->source, o->entry);
	else
		strbuf_addf(err, "'%s'", o->entry);
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
	return r;
}

/* The directory an alias for the first len bytes of norm leads to, or NULL. */
static struct tree_node *alias_dir(struct tree *t, const char *norm, size_t len)
{
	size_t i;

	for (i = 0; i < t->n_aliases; i++) {
		const char *a = t->aliases[2 * i];
		struct tree_node *n = t->root;
		const char *p = t->aliases[2 * i + 1];

		if (strlen(a) != len || strncmp(a, norm, len))
			continue;
		/* the target itself is taken literally: directories only */
		while (n && *p) {
			const char *end = strchrnul(p, '/');

			n = child_lookup(t, n, p, (size_t)(end - p));
			if (!n || !S_ISDIR(n->inode->mode))
				return NULL;
			p = *end ? end + 1 : end;
		}
		return n;
	}
	return NULL;
}

int tree_add_alias(struct tree *t, const char *path, const char *target, struct strbuf *err)
{
	char *p = NULL, *q = NULL;

	if (tree_normalize_path(path, &p) < 0 || tree_normalize_path(target, &q) < 0 || !*p ||
	    !strcmp(p, q)) {
		strbuf_addf(err, "alias '%s' -> '%s': give two different paths inside the image", path,
			    target);
		free(p);
		free(q);
		return -EINVAL;
	}
	GROW(t->aliases, t->alloc_aliases, 2 * t->n_aliases + 2);
	t->aliases[2 * t->n_aliases] = p;
	t->aliases[2 * t->n_aliases + 1] = q;
	t->n_aliases++;
	return 0;
}

/*
 * Walk to the directory that holds the last component of norm, creating
 * missing directories (0755, root) when create is set. A symlink or a
 * non-directory in the way is refused: nothing is ever written through a
 * symlink, whether it points inside the image or not, unless the caller
 * declared that path an alias (tree_add_alias()).
 */
static int walk_parent(struct tree *t, const char *norm, bool create, const struct origin *o,
		       struct tree_node **ret_dir, const char **ret_leaf, struct strbuf *err)
{
	struct tree_node *n = t->root;
	const char *p = norm;

	for (;;) {
		const char *end = strchrnul(p, '/');
		struct tree_node *c;

		if (!*end) {
			*ret_dir = n;
			*ret_leaf = p;
			return 0;
		}
		c = child_lookup(t, n, p, (size_t)(end - p));
		if (!c) {
			if (!create)
				return origin_fail(err, o, -ENOENT, "'%.*s' does not exist in the image",
						   (int)(end - norm), norm);
			c = child_add(t, n, p, (size_t)(end - p),
				      inode_new(S_IFDIR | 0755, 0, 0, t->default_mtime));
		} else if (S_ISLNK(c->inode->mode)) {
			struct tree_node *a = alias_dir(t, norm, (size_t)(end - norm));

			if (!a)
				return origin_fail(err, o, -ELOOP,
						   "would be written through the symlink '/%.*s' (-> %s); "
						   "imgforge never follows symlinks inside the image",
						   (int)(end - norm), norm, c->inode->symlink);
			c = a; /* an alias the caller declared: go on in its target */
		} else if (!S_ISDIR(c->inode->mode)) {
			return origin_fail(err, o, -ENOTDIR, "'/%.*s' is not a directory",
					   (int)(end - norm), norm);
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
	uint64_t pos = 0, off = 0, len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0)
		return origin_fail(err, o, -errno, "cannot read '%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return origin_fail(err, o, -EINVAL, "'%s' is not a regular file", path);
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
		strbuf_addf(err, "'%s': a symlink needs a target", path);
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
		strbuf_addf(err, "'%s': no such entry in the image to set '%s' on", path, name);
		return -ENOENT;
	}
	inode_set_xattr(n->inode, name, value, size);
	return 0;
}

int tree_remove(struct tree *t, const char *path, struct strbuf *err)
{
	struct tree_node *n = tree_lookup(t, path);

	if (!n) {
		strbuf_addf(err, "'%s': no such entry in the image to remove", path);
		return -ENOENT;
	}
	if (!n->parent) {
		strbuf_addf(err, "'%s': the image root cannot be removed", path);
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
	int r;

	r = normalize_or_fail(target, &tnorm, o, err);
	if (r < 0)
		return r;
	if (!*tnorm)
		return origin_fail(err, o, -EPERM, "hard link to the image root");
	r = walk_parent(t, tnorm, false, o, &dir, &leaf, err);
	if (r == -ENOENT) {
		strbuf_reset(err);
		r = -ENOENT;
	}
	if (r < 0 && r != -ENOENT)
		return r;
	tn = r < 0 ? NULL : child_lookup(t, dir, leaf, strlen(leaf));
	if (!tn)
		return origin_fail(err, o, -ENOENT,
				   "hard link to '/%s', which does not exist in the image", tnorm);
	if (S_ISDIR(tn->inode->mode))
		return origin_fail(err, o, -EPERM, "hard link to the directory '/%s'", tnorm);
	if (!strcmp(tnorm, norm))
		return 0;
	r = walk_parent(t, norm, true, o, &dir, &leaf, err);
	if (r < 0)
		return r;
	old = child_lookup(t, dir, leaf, strlen(leaf));
	if (old) {
		if (S_ISDIR(old->inode->mode))
			return origin_fail(err, o, -EEXIST, "a hard link would replace the directory '/%s'",
					   norm);
		node_free(t, old);
	}
	child_add(t, dir, leaf, strlen(leaf), tn->inode);
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
	ino = inode_new(type | (e->mode & 07777), e->uid, e->gid, e->mtime);
	for (i = 0; i < e->n_xattrs; i++)
		inode_set_xattr(ino, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].size);
	if (type == S_IFLNK) {
		ino->symlink = xstrdup(e->linkname);
		ino->size = strlen(e->linkname);
		ino->mode = S_IFLNK | 0777;
	} else if (type == S_IFCHR || type == S_IFBLK) {
		ino->rdev_major = e->rdev_major;
		ino->rdev_minor = e->rdev_minor;
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
		strbuf_addf(err, "cannot open archive '%s': %s", path, strerror(-r));
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

	if (len < 0)
		return errno == ENOTSUP ? 0
					: origin_fail(err, o, -errno, "cannot list the extended "
								      "attributes of '%s': %s",
						      path, strerror(errno));
	for (i = 0; i < len; i += (ssize_t)strlen(names + i) + 1) {
		ssize_t vlen = lgetxattr(path, names + i, value, sizeof(value));

		if (vlen < 0)
			return origin_fail(err, o, -errno, "cannot read the attribute '%s' of '%s': %s",
					   names + i, path, strerror(errno));
		inode_set_xattr(ino, names + i, value, (size_t)vlen);
	}
	return 0;
}

/* Hard links on the host stay hard links: files seen with more than one name. */
struct host_link {
	dev_t dev;
	ino_t ino;
	struct tree_inode *inode;
};

struct host_walk {
	uint32_t uid, gid;
	struct host_link *links;
	size_t n_links, alloc_links;
};

static struct tree_inode *host_link_find(const struct host_walk *hw, const struct stat *st)
{
	size_t i;

	for (i = 0; i < hw->n_links; i++)
		if (hw->links[i].dev == st->st_dev && hw->links[i].ino == st->st_ino)
			return hw->links[i].inode;
	return NULL;
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
					   norm);
		node_free(t, old);
	}
	child_add(t, dir, leaf, strlen(leaf), ino);
	return 0;
}

static int add_host_tree(struct tree *t, const char *hostpath, const char *dest,
			 struct host_walk *hw, const struct origin *parent_o, struct strbuf *err)
{
	const uint32_t uid = hw->uid, gid = hw->gid;
	DIR *d;
	struct dirent *de;
	int r = 0;

	d = opendir(hostpath);
	if (!d)
		return origin_fail(err, parent_o, -errno, "cannot open directory: %s",
				   strerror(errno));
	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *hp = NULL, *tp = NULL, *norm = NULL;
		struct origin o = { "directory", parent_o->source, NULL };
		struct tree_inode *ino;
		struct tree_node *n;
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		hp = path_join(hostpath, de->d_name);
		tp = *dest ? xasprintf("%s/%s", dest, de->d_name) : xstrdup(de->d_name);
		o.entry = tp;
		if (lstat(hp, &st) < 0) {
			r = origin_fail(err, &o, -errno, "cannot stat '%s': %s", hp, strerror(errno));
			break;
		}
		r = normalize_or_fail(tp, &norm, &o, err);
		if (r < 0)
			break;
		if (S_ISREG(st.st_mode) && st.st_nlink > 1 && (ino = host_link_find(hw, &st))) {
			r = link_existing(t, norm, ino, &o, err);
			if (r < 0)
				break;
			continue;
		}
		ino = inode_new((uint32_t)(st.st_mode & (S_IFMT | 07777)),
				uid == TREE_OWNER_HOST ? st.st_uid : uid,
				uid == TREE_OWNER_HOST ? st.st_gid : gid, st.st_mtime);
		if (uid == TREE_OWNER_HOST) {
			r = read_host_xattrs(ino, hp, &o, err);
			if (r < 0) {
				ino->nlink = 1;
				inode_unref(ino);
				break;
			}
		}
		if (S_ISREG(st.st_mode)) {
			ino->src = TREE_SRC_HOST;
			ino->host_path = xstrdup(hp);
			r = scan_host_file(ino, hp, &o, err);
			if (r < 0) {
				ino->nlink = 1;
				inode_unref(ino);
				break;
			}
			if (ino->data_bytes == 0)
				ino->src = TREE_SRC_NONE;
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t len = readlink(hp, target, sizeof(target) - 1);

			if (len <= 0) {
				r = origin_fail(err, &o, len < 0 ? -errno : -EINVAL,
						"cannot read the symlink '%s'", hp);
				ino->nlink = 1;
				inode_unref(ino);
				break;
			}
			target[len] = '\0';
			ino->symlink = xstrdup(target);
			ino->size = (uint64_t)len;
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
			r = place(t, norm, ino, &o, &n, err);
			if (r < 0)
				break;
			if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
				GROW(hw->links, hw->alloc_links, hw->n_links + 1);
				hw->links[hw->n_links++] = (struct host_link){ st.st_dev, st.st_ino, ino };
			}
		}
		if (S_ISDIR(st.st_mode)) {
			r = add_host_tree(t, hp, norm, hw, &o, err);
			if (r < 0)
				break;
		}
	}
	if (r == 0 && errno)
		r = origin_fail(err, parent_o, -errno, "cannot read directory: %s", strerror(errno));
	closedir(d);
	return r;
}

int tree_add_dir(struct tree *t, const char *hostdir, const char *dest, uint32_t uid, uint32_t gid,
		 struct strbuf *err)
{
	struct origin o = { "directory", hostdir, dest && *dest ? dest : "/" };
	_cleanup_free_ char *norm = NULL;
	struct stat st;
	int r;

	if (stat(hostdir, &st) < 0) {
		strbuf_addf(err, "cannot open directory '%s': %s", hostdir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		strbuf_addf(err, "'%s' is not a directory", hostdir);
		return -ENOTDIR;
	}
	r = normalize_or_fail(dest ? dest : "", &norm, &o, err);
	if (r < 0)
		return r;
	if (!tree_lookup(t, norm)) {
		r = place(t, norm,
			  inode_new(S_IFDIR | (st.st_mode & 07777),
				    uid == TREE_OWNER_HOST ? st.st_uid : uid,
				    uid == TREE_OWNER_HOST ? st.st_gid : gid, st.st_mtime),
			  &o, NULL, err);
		if (r < 0)
			return r;
	}
	{
		struct host_walk hw = { uid, gid, NULL, 0, 0 };

		r = add_host_tree(t, hostdir, norm, &hw, &o, err);
		free(hw.links);
	}
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
		strbuf_addf(err, "owner '%s': no user given", spec);
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
				    "up '%.*s' in; give a number", spec, (int)ulen, spec);
			return r == -ENOENT ? -ESRCH : r;
		}
		if (!db_find(passwd, spec, ulen, NULL, &uid, &pgid)) {
			strbuf_addf(err, "owner '%s': no user '%.*s' in the image's /etc/passwd",
				    spec, (int)ulen, spec);
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
				    "up '%s' in; give a number", spec, colon + 1);
			return r == -ENOENT ? -ESRCH : r;
		}
		if (!db_find(group, colon + 1, strlen(colon + 1), NULL, &gid, NULL)) {
			strbuf_addf(err, "owner '%s': no group '%s' in the image's /etc/group", spec,
				    colon + 1);
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
		strbuf_addf(err, "cannot open archive '%s' again: %s", l->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	if (st.st_dev != l->st.st_dev || st.st_ino != l->st.st_ino ||
	    st.st_size != l->st.st_size || st.st_mtim.tv_sec != l->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != l->st.st_mtim.tv_nsec) {
		close(fd);
		strbuf_addf(err, "archive '%s' changed while the image was being written; run again",
			    l->path);
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
					    "declares; the archive is corrupt", t->layers[layer].path,
					    e.path);
				r = -EBADMSG;
				break;
			}
			r = ops->data(ctx, ino, off, buf, len, err);
		}
		if (r >= 0 && seen != ino->data_bytes) {
			strbuf_addf(err, "archive '%s': entry '%s': less data than its header "
				    "declares; the archive is truncated or corrupt",
				    t->layers[layer].path, e.path);
			r = -EBADMSG;
		}
		if (r >= 0 && ops->end)
			r = ops->end(ctx, ino, err);
		if (r < 0)
			break;
	}
	if (r >= 0 && k < n_want) {
		strbuf_addf(err, "archive '%s' changed while being read (entries missing)",
			    t->layers[layer].path);
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
	uint64_t next = 0, off = 0, len = 0;
	off_t pos, hole;
	int r = 0;

	fd = open(ino->host_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		strbuf_addf(err, "cannot open '%s': %s", ino->host_path, strerror(errno));
		return -errno;
	}
	while (r >= 0 && next_data_extent(fd, next, ino->size, &off, &len) > 0) {
		hole = (off_t)(off + len);
		next = off + len;
		for (pos = (off_t)off; pos < hole && r >= 0;) {
			size_t want = (size_t)(hole - pos) < sizeof(buf) ? (size_t)(hole - pos)
									 : sizeof(buf);
			ssize_t n = pread(fd, buf, want, pos);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				strbuf_addf(err, "cannot read '%s': %s", ino->host_path,
					    n < 0 ? strerror(errno) : "file shrank while read");
				return n < 0 ? -errno : -ESTALE;
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

/* Depth-first, children sorted: the one order every walk uses. */
static void walk_sorted(struct tree *t, struct tree_node *n,
			void (*fn)(struct tree *t, struct tree_node *n, void *data), void *data)
{
	struct tree_node **c;
	size_t nc, i;

	fn(t, n, data);
	if (!S_ISDIR(n->inode->mode))
		return;
	tree_sorted_children(n, &c, &nc);
	for (i = 0; i < nc; i++)
		walk_sorted(t, c[i], fn, data);
	free(c);
}

static void collect_content(struct tree *t, struct tree_node *n, void *data)
{
	struct collect *c = data;
	struct tree_inode *ino = n->inode;

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

	walk_sorted(t, t->root, collect_content, &c);
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

int tree_read_content(struct tree *t, const char *path, size_t max, char **ret_buf,
		      size_t *ret_len, struct strbuf *err)
{
	static const struct tree_content_ops ops = { .data = gather_data };
	struct tree_node *n = tree_lookup(t, path);
	struct gather g = { STRBUF_INIT, max };
	struct tree_inode *ino;
	int r = 0;

	if (!n) {
		strbuf_addf(err, "'/%s' does not exist in the image", path);
		return -ENOENT;
	}
	ino = n->inode;
	if (!S_ISREG(ino->mode)) {
		strbuf_addf(err, "'/%s' is not a regular file in the image", path);
		return -EINVAL;
	}
	if (ino->size > max) {
		strbuf_addf(err, "'/%s' is too large to read", path);
		return -EFBIG;
	}
	if (ino->src == TREE_SRC_INLINE)
		r = gather_data(&g, ino, 0, ino->inline_data, ino->size, err);
	else if (ino->src == TREE_SRC_HOST)
		r = stream_host(ino, &ops, &g, err);
	else if (ino->src == TREE_SRC_ARCHIVE)
		r = stream_layer(t, ino->layer, &ino, 1, &ops, &g, err);
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

static void stats_node(struct tree *t, struct tree_node *n, void *data)
{
	struct tree_stats *s = data;
	struct tree_inode *ino = n->inode;

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

static void unmark(struct tree *t, struct tree_node *n, void *data)
{
	(void)t;
	(void)data;
	n->inode->writer_data = NULL;
}

void tree_stats(struct tree *t, struct tree_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	walk_sorted(t, t->root, stats_node, ret);
	walk_sorted(t, t->root, unmark, NULL);
}

char *tree_inode_origin(struct tree *t, const struct tree_inode *ino)
{
	switch (ino->src) {
	case TREE_SRC_ARCHIVE:
		return xasprintf("entry %llu of archive '%s'", (unsigned long long)ino->entry,
				 t->layers[ino->layer].path);
	case TREE_SRC_HOST:
		return xasprintf("'%s'", ino->host_path);
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

static void digest_node(struct tree *t, struct tree_node *n, void *data)
{
	struct digest_walk *d = data;
	struct tree_inode *ino = n->inode;
	_cleanup_free_ char *path = tree_node_path(n);
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

	walk_sorted(t, t->root, digest_node, &d);
	walk_sorted(t, t->root, unmark, NULL);
	sha256_final(d.h, ret);
	sha256_free(d.h);
}
