/* SPDX-License-Identifier: MIT */
/*
 * Archive layers of the tree: entries placed from tarball.c's reader, and
 * their content streamed again from the archive when the image is written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/tarball.h"
#include "fs/tree-internal.h"

static int add_hardlink(struct tree *t, const char *norm, const char *target,
			const struct origin *o, struct strbuf *err)
{
	_cleanup_free_ char *tnorm = NULL;
	struct tree_node *dir, *tn, *old;
	const char *leaf;
	size_t mark = err->len;
	int r;

	r = tree_normalize_or_fail(target, &tnorm, o, err);
	if (r < 0)
		return r;
	if (!*tnorm)
		return tree_origin_fail(err, o, -EPERM, "hard link to the image root");
	r = tree_walk_parent(t, tnorm, false, o, &dir, &leaf, err);
	if (r == -ENOENT) {
		/* said below, the same way for a missing directory or file */
		err->len = mark;
		if (err->buf)
			err->buf[mark] = '\0';
	}
	if (r < 0 && r != -ENOENT)
		return r;
	tn = r < 0 ? NULL : tree_child_lookup(t, dir, leaf, strlen(leaf));
	if (!tn)
		return tree_origin_fail(err, o, -ENOENT,
				   "hard link to '/%s', which does not exist in the image",
				   quote_path(tnorm));
	if (S_ISDIR(tn->inode->mode))
		return tree_origin_fail(err, o, -EPERM, "hard link to the directory '/%s'",
				   quote_path(tnorm));
	r = tree_walk_parent(t, norm, true, o, &dir, &leaf, err);
	if (r < 0)
		return r;
	old = tree_child_lookup(t, dir, leaf, strlen(leaf));
	if (old == tn)
		return 0; /* a link to itself, maybe through a directory symlink */
	if (old) {
		if (S_ISDIR(old->inode->mode))
			return tree_origin_fail(err, o, -EEXIST, "a hard link would replace the directory '/%s'",
					   quote_path(norm));
		tree_node_free(t, old);
	}
	tree_child_add(t, dir, leaf, strlen(leaf), tn->inode);
	return 0;
}

/*
 * Owners, device numbers and times that ext4 and Linux cannot hold are
 * refused rather than truncated: GNU tar refuses such owners too, and a
 * truncated owner of a setuid file could be root.
 */
static int add_archive_entry(struct tree *t, uint32_t layer,
			     const struct tarball_entry *e, const struct origin *o,
			     struct strbuf *err)
{
	_cleanup_free_ char *norm = NULL;
	struct tree_inode *ino;
	uint32_t type = 0;
	size_t i;
	int r;

	r = tree_normalize_or_fail(e->path, &norm, o, err);
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
	r = tree_check_fields(e->uid, e->gid, type == S_IFCHR || type == S_IFBLK, e->rdev_major,
			 e->rdev_minor, e->mtime, o, err);
	if (r < 0)
		return r;
	ino = tree_inode_new(type | (e->mode & 07777), (uint32_t)e->uid, (uint32_t)e->gid, e->mtime);
	for (i = 0; i < e->n_xattrs; i++)
		tree_inode_set_xattr(ino, e->xattrs[i].name, e->xattrs[i].value, e->xattrs[i].size);
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
	return tree_place(t, norm, ino, o, NULL, err);
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

/* --- reading content again ----------------------------------------------------- */

/* Stream one archive layer: every inode in want (sorted by entry) gets its data. */
int tree_stream_layer(struct tree *t, uint32_t layer, struct tree_inode **want, size_t n_want,
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
