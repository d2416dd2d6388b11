/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_TREE_H
#define IMGFORGE_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/hash.h"
#include "core/util.h"

/*
 * The root filesystem as a tree of metadata, assembled from layers in order,
 * later layers winning: archives, host directories, single files, removals.
 * Regular-file content is never held in memory (except small inline files):
 * the tree records where it comes from (archive entry, host file) and
 * streams it on demand with tree_stream_content().
 *
 * Paths are always resolved inside the tree, never on the host. The policy
 * for hostile input (docs/mkfs.md) lives here: ".." escaping the root,
 * symlinks on a path that lead out of the image or to a non-directory,
 * dangling hard links, names longer than 255 bytes, paths deeper than
 * TREE_DEPTH_MAX, and owners, device numbers and times ext4 cannot hold
 * are refused with one line naming the layer and the entry (names quoted
 * with quote_path()). A symlink to a directory of the image on a path is
 * followed, as dpkg and tar --keep-directory-symlink do.
 *
 * Errors: functions return -errno and append one line to err.
 */

#define TREE_NAME_MAX 255
/*
 * Levels of directories below the root an entry may have. Every walk of a
 * tree is iterative or bounded by it; the deepest path of a Debian system
 * has about 20. Paths this deep already pass PATH_MAX with 3-byte names.
 */
#define TREE_DEPTH_MAX 1024
/* Modification times ext4 stores (32-bit seconds and two epoch bits): 1901 to 2446. */
#define TREE_MTIME_MIN (-(INT64_C(1) << 31))
#define TREE_MTIME_MAX ((INT64_C(1) << 34) - (INT64_C(1) << 31) - 1)
/* Device numbers Linux has: 12-bit major, 20-bit minor. */
#define TREE_MAJOR_MAX 4095
#define TREE_MINOR_MAX 1048575

enum tree_source {
	TREE_SRC_NONE,    /* empty regular file, or not a regular file */
	TREE_SRC_INLINE,  /* bytes owned by the inode */
	TREE_SRC_HOST,    /* a file on the host, read when streamed */
	TREE_SRC_ARCHIVE, /* entry `entry` of archive layer `layer` */
};

struct tree_xattr {
	char *name;
	void *value;
	size_t size;
};

/* One inode; several nodes share it when hard-linked. */
struct tree_inode {
	uint32_t mode; /* S_IF* | 07777 */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t rdev_major, rdev_minor;
	uint64_t size;       /* regular: logical size; symlink: target length */
	uint64_t data_bytes; /* regular: bytes stored (holes excluded) */
	uint32_t data_runs;  /* regular: number of contiguous data runs */
	char *symlink;
	struct tree_xattr *xattrs; /* sorted by name */
	size_t n_xattrs;
	enum tree_source src;
	void *inline_data;
	char *host_path;
	uint32_t layer;
	uint64_t entry;
	uint8_t digest[SHA256_LEN]; /* of the content, set by tree_stream_content() */
	uint32_t nlink;             /* names pointing here (directories: see ext4.c) */
	uint32_t ino;               /* set by the writer */
	void *writer_data;          /* for the writer's use */
};

struct tree_node {
	char *name; /* "" for the root */
	struct tree_node *parent;
	struct tree_node *first_child, *last_child, *prev, *next; /* unsorted */
	size_t n_children;
	uint32_t depth; /* levels below the root: 0 for the root */
	struct tree_node *hash_next;
	struct tree_inode *inode;
};

struct tree;

/* A new tree holding only the root directory (0755 root:root). Free with tree_free(). */
struct tree *tree_new(void);
void tree_free(struct tree *t);

/* Modification time of directories created implicitly (missing parents); default 0. */
void tree_set_default_mtime(struct tree *t, int64_t mtime);

/*
 * Add every entry of an archive (tar of any compression, or a .deb's
 * data.tar) as the next layer. Owners are taken numerically. The archive
 * must stay in place until the tree is written: its content is read again
 * then (a replaced or modified file is detected and refused).
 */
int tree_add_archive(struct tree *t, const char *path, struct strbuf *err);
/*
 * Add the contents of a host directory under dest ("" or "/" for the root):
 * mode, mtime and content from the host, owner uid:gid for every entry.
 * With uid TREE_OWNER_HOST, owners and extended attributes come from the
 * host too (a root filesystem unpacked on the host). The directory itself
 * gives the metadata of dest only if dest is new; directories that already
 * exist in the tree keep theirs.
 */
#define TREE_OWNER_HOST ((uint32_t)-1)
int tree_add_dir(struct tree *t, const char *hostdir, const char *dest, uint32_t uid, uint32_t gid,
		 struct strbuf *err);
/*
 * Add or replace a regular file. Content is data/len (copied) if data is not
 * NULL, else the host file host_path (read when streamed). mode is 07777 bits.
 */
int tree_add_file(struct tree *t, const char *path, const void *data, size_t len,
		  const char *host_path, uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime,
		  struct strbuf *err);
/* Add a directory, or update the metadata of an existing one. */
int tree_add_directory(struct tree *t, const char *path, uint32_t mode, uint32_t uid, uint32_t gid,
		       int64_t mtime, struct strbuf *err);
int tree_add_symlink(struct tree *t, const char *path, const char *target, uint32_t uid,
		     uint32_t gid, int64_t mtime, struct strbuf *err);
/* Set an extended attribute (replacing one of the same name) on an existing entry. */
int tree_set_xattr(struct tree *t, const char *path, const char *name, const void *value,
		   size_t size, struct strbuf *err);
/* Remove an entry and everything below it. -ENOENT if it does not exist. */
int tree_remove(struct tree *t, const char *path, struct strbuf *err);

/*
 * Resolve "user", "user:group", "uid:gid" (numbers or names) through the
 * tree's own /etc/passwd and /etc/group. A user alone takes its primary group.
 */
int tree_resolve_owner(struct tree *t, const char *spec, uint32_t *ret_uid, uint32_t *ret_gid,
		       struct strbuf *err);

/*
 * Normalise a path lexically: strip leading "/" and "./", fold "//" and
 * "/./", apply "..". Result is "" for the root. -EPERM if ".." would leave
 * the root, -ENAMETOOLONG if a component is longer than 255 bytes, -E2BIG
 * if the result has more than TREE_DEPTH_MAX components.
 * *ret is malloc'd and the caller's.
 */
int tree_normalize_path(const char *path, char **ret);

/* Look an entry up by path (no symlink is followed). NULL if absent. */
struct tree_node *tree_lookup(struct tree *t, const char *path);
struct tree_node *tree_root(struct tree *t);
/* Children sorted by name (bytewise); *ret is malloc'd, the caller's. */
void tree_sorted_children(const struct tree_node *dir, struct tree_node ***ret, size_t *ret_n);
/* Full path of a node ("/" for the root), malloc'd. */
char *tree_node_path(const struct tree_node *n);

/* Statistics for sizing an image. */
struct tree_stats {
	uint64_t nodes;       /* names, the root included */
	uint64_t inodes;      /* distinct inodes */
	uint64_t dirs;
	uint64_t data_bytes;  /* content stored, holes excluded */
	uint64_t data_runs;
	uint64_t largest_data; /* largest data_bytes of one file */
	const struct tree_inode *largest;
};
void tree_stats(struct tree *t, struct tree_stats *ret);
/* Where an inode's content comes from, for messages: "archive 'x' entry 'y'" (malloc'd). */
char *tree_inode_origin(struct tree *t, const struct tree_inode *ino);

/*
 * SHA-256 over everything that defines the tree: paths, metadata, xattrs,
 * link targets and, if content is set, the content digests, in sorted
 * order. Content digests are known once tree_stream_content() has run
 * (content must be false before). Modification times are hashed as the
 * image will hold them: clamped to clamp_mtime.
 */
void tree_digest(struct tree *t, int64_t clamp_mtime, bool content, uint8_t ret[SHA256_LEN]);

/*
 * Stream the content of every regular file with content: begin(inode),
 * then data(inode, offset, buf, len) for each piece in increasing offset
 * order (holes skipped), then end(inode). Archive layers come first in
 * their order, each in archive order, then inline and host files in tree
 * order (what a recipe adds, which changes most from one version to the
 * next, last: an image writer placing content in stream order keeps it from
 * moving the rest). A callback returning < 0 stops the stream with that value.
 * Computes every inode's content digest on the way (on a second thread).
 */
struct tree_content_ops {
	int (*begin)(void *ctx, struct tree_inode *ino, struct strbuf *err);
	int (*data)(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf,
		    size_t len, struct strbuf *err);
	int (*end)(void *ctx, struct tree_inode *ino, struct strbuf *err);
};
int tree_stream_content(struct tree *t, const struct tree_content_ops *ops, void *ctx,
			struct strbuf *err);

/* Read a (small) regular file's content from wherever it lives. -EFBIG above max. */
int tree_read_content(struct tree *t, const char *path, size_t max, char **ret_buf,
		      size_t *ret_len, struct strbuf *err);

#endif
