/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_TREE_INTERNAL_H
#define IMGFORGE_TREE_INTERNAL_H

/*
 * What the files of the tree module share and nothing else may use:
 * tree.c (the model: nodes, paths, symlinks, placing entries, the API),
 * tree-archive.c (archive layers), tree-host.c (host directories),
 * tree-content.c (streaming and reading content), tree-owner.c (owner
 * names through the image's passwd and group files) and tree-digest.c
 * (statistics and the digest).
 */
#include <stdarg.h>
#include <sys/stat.h>

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

/*
 * Where an entry comes from, for messages: "archive 'x': entry 'y'" or
 * "'y'" when added through the API.
 */
struct origin {
	const char *kind; /* "archive", "directory", or NULL */
	const char *source;
	const char *entry;
};

/* How many symlinks one lookup may pass, as Linux allows (MAXSYMLINKS). */
#define TREE_SYMLINKS_MAX 40

struct tree_inode *tree_inode_new(uint32_t mode, uint32_t uid, uint32_t gid, int64_t mtime);
/* Drop one name of ino; frees it with the last. */
void tree_inode_unref(struct tree_inode *ino);
void tree_inode_set_xattr(struct tree_inode *ino, const char *name, const void *value,
			  size_t size);
struct tree_node *tree_child_lookup(const struct tree *t, const struct tree_node *dir,
				    const char *name, size_t len);
struct tree_node *tree_child_add(struct tree *t, struct tree_node *dir, const char *name,
				 size_t len, struct tree_inode *ino);
/* Free n and everything below it. */
void tree_node_free(struct tree *t, struct tree_node *n);

/* Append "where: why" to err and return r. */
int tree_origin_fail(struct strbuf *err, const struct origin *o, int r, const char *fmt, ...)
	_printf_(4, 5);
/* tree_normalize_path() with its errors said. */
int tree_normalize_or_fail(const char *path, char **ret, const struct origin *o,
			   struct strbuf *err);
int tree_walk_parent(struct tree *t, const char *norm, bool create, const struct origin *o,
		     struct tree_node **ret_dir, const char **ret_leaf, struct strbuf *err);
/* Put ino (taken over, freed on failure) at the normalised path norm. */
int tree_place(struct tree *t, const char *norm, struct tree_inode *ino, const struct origin *o,
	       struct tree_node **ret, struct strbuf *err);
/* Refuse owners, device numbers and times that Linux and ext4 cannot hold. */
int tree_check_fields(int64_t uid, int64_t gid, bool dev, uint64_t major, uint64_t minor,
		      int64_t mtime, const struct origin *o, struct strbuf *err);
/* Size and data runs of a host file. */
int tree_scan_host_file(struct tree_inode *ino, const char *path, const struct origin *o,
			struct strbuf *err);

/* Stream the inodes in want (sorted by entry) from archive layer `layer`. */
int tree_stream_layer(struct tree *t, uint32_t layer, struct tree_inode **want, size_t n_want,
		      const struct tree_content_ops *ops, void *ctx, struct strbuf *err);
int tree_stream_host(struct tree_inode *ino, const struct tree_content_ops *ops, void *ctx,
		     struct strbuf *err);

typedef void walk_fn(struct tree *t, struct tree_node *n, const char *path, void *data);
/* Every node, depth first with children sorted, with its full path. */
void tree_walk_sorted(struct tree *t, walk_fn *fn, void *data);

#endif
