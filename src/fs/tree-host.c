/* SPDX-License-Identifier: MIT */
/*
 * Host directories laid into the tree: walked without recursion and
 * without a descriptor per level, hard links kept.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/tree-internal.h"

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
		return tree_origin_fail(err, o, -e, "cannot list the extended attributes of '%s': %s",
				   quote_path(path), strerror(e));
	}
	for (i = 0; i < len; i += (ssize_t)strlen(names + i) + 1) {
		ssize_t vlen = lgetxattr(path, names + i, value, sizeof(value));

		if (vlen < 0) {
			e = errno;
			return tree_origin_fail(err, o, -e, "cannot read the attribute '%s' of '%s': %s",
					   quote_path(names + i), quote_path(path), strerror(e));
		}
		tree_inode_set_xattr(ino, names + i, value, (size_t)vlen);
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

	r = tree_walk_parent(t, norm, true, o, &dir, &leaf, err);
	if (r < 0)
		return r;
	old = tree_child_lookup(t, dir, leaf, strlen(leaf));
	if (old) {
		if (old->inode == ino)
			return 0;
		if (S_ISDIR(old->inode->mode))
			return tree_origin_fail(err, o, -EEXIST, "a hard link would replace the directory '/%s'",
					   quote_path(norm));
		tree_node_free(t, old);
	}
	tree_child_add(t, dir, leaf, strlen(leaf), ino);
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
		return tree_origin_fail(err, &o, -e, "cannot stat '%s': %s", quote_path(hp), strerror(e));
	}
	r = tree_normalize_or_fail(tp, &norm, &o, err);
	if (r < 0)
		return r;
	if (S_ISREG(st.st_mode) && st.st_nlink > 1 && (ino = host_link_find(hw, &st)))
		return link_existing(t, norm, ino, &o, err);
	r = tree_check_fields(uid == TREE_OWNER_HOST ? st.st_uid : uid,
			 uid == TREE_OWNER_HOST ? st.st_gid : gid,
			 S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode), major(st.st_rdev),
			 minor(st.st_rdev), st.st_mtime, &o, err);
	if (r < 0)
		return r;
	ino = tree_inode_new((uint32_t)(st.st_mode & (S_IFMT | 07777)),
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
		r = tree_scan_host_file(ino, hp, &o, err);
		if (r < 0)
			goto fail;
		if (ino->data_bytes == 0)
			ino->src = TREE_SRC_NONE;
	} else if (S_ISLNK(st.st_mode)) {
		r = read_host_symlink(hp, &st, &ino->symlink);
		if (r <= 0) {
			r = tree_origin_fail(err, &o, r < 0 ? r : -EINVAL, "cannot read the symlink '%s': %s",
					quote_path(hp), r < 0 ? strerror(-r) : "empty target");
			goto fail;
		}
		ino->size = (uint64_t)r;
	} else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
		ino->rdev_major = major(st.st_rdev);
		ino->rdev_minor = minor(st.st_rdev);
	} else if (S_ISDIR(st.st_mode)) {
		struct tree_node *dir, *old = NULL;
		const char *leaf;
		size_t mark = err->len;

		/* Existing directories keep their metadata (docs/mkfs.md), through symlinks too. */
		if (tree_walk_parent(t, norm, false, &o, &dir, &leaf, err) == 0)
			old = tree_child_lookup(t, dir, leaf, strlen(leaf));
		err->len = mark;
		if (err->buf)
			err->buf[mark] = '\0';
		if (old && S_ISDIR(old->inode->mode)) {
			ino->nlink = 1;
			tree_inode_unref(ino);
			ino = NULL;
		}
	}
	if (ino) {
		r = tree_place(t, norm, ino, &o, NULL, err);
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
	tree_inode_unref(ino);
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
		return tree_origin_fail(err, &o, -e, "cannot open the directory '%s': %s",
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
		r = tree_origin_fail(err, &o, -e, "cannot read the directory '%s': %s",
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
	r = tree_normalize_or_fail(dest ? dest : "", &norm, &o, err);
	if (r < 0)
		return r;
	if (!tree_lookup(t, norm)) {
		r = tree_check_fields(uid == TREE_OWNER_HOST ? st.st_uid : uid,
				 uid == TREE_OWNER_HOST ? st.st_gid : gid, false, 0, 0, st.st_mtime,
				 &o, err);
		if (r < 0)
			return r;
		r = tree_place(t, norm,
			  tree_inode_new(S_IFDIR | (st.st_mode & 07777),
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
