/* SPDX-License-Identifier: MIT */
/*
 * Statistics for sizing an image, and the digest that defines a tree.
 */
#include <assert.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/tree-internal.h"

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
	tree_walk_sorted(t, stats_node, ret);
	tree_walk_sorted(t, unmark, NULL);
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

	tree_walk_sorted(t, digest_node, &d);
	tree_walk_sorted(t, unmark, NULL);
	sha256_final(d.h, ret);
	sha256_free(d.h);
}
