/* SPDX-License-Identifier: MIT */
/*
 * The ext4 writer on libext2fs. See ext4.h and docs/mkfs.md.
 *
 * Order of work, all of it deterministic:
 *  1. walk the tree depth-first with children sorted by name, numbering
 *     inodes in that order (root 2, lost+found 11, the rest from 12) and
 *     counting the blocks every inode needs (directories laid out with the
 *     hash seed derived from the lineage, or else from the tree's metadata);
 *  2. size the filesystem and create it with the features of Debian's
 *     mke2fs.conf for ext4 and a provisional UUID;
 *  3. write every inode, directory, symlink and xattr in walk order;
 *  4. stream file content from the inputs (one more pass over each
 *     archive) straight into freshly allocated extents, placed in regions
 *     (place_region()), leaving all-zero blocks as holes, while tree.c
 *     hashes it on another thread;
 *  5. without a lineage, set the UUID derived from everything, content
 *     included, rewriting every metadata checksum (with a lineage the UUID
 *     is known from the start); clamp the remaining timestamps and close.
 *
 * The image file is created empty (all zeros), so the inode tables and the
 * journal need no explicit zeroing, and no byte of the image is left
 * uninitialised.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_fs.h>
#include <ext2fs/ext2fs.h>
#include <ext2fs/ext3_extents.h>

#include "fs/ext4.h"

#define BLOCK_SIZE	 4096
#define INODE_SIZE	 256
#define STAGE_BLOCKS	 256 /* 1 MiB staged per write */
#define INLINE_XATTR_MAX 92  /* in-inode EA space of a 256-byte inode, minus the header */
#define MIN_BLOCKS	 4096 /* 16 MiB */
#define LOST_FOUND_BLOCKS 4
/*
 * Content regions (see place_region()): each starts on a multiple of
 * REGION_ALIGN blocks (4 MiB) at least REGION_SLACK blocks (1 MiB) past what
 * comes before it.
 */
#define REGION_ALIGN	 1024
#define REGION_SLACK	 256
/* The kernel's s_maxbytes for extent-mapped files: 2^32 - 1 blocks (32-bit logical blocks). */
#define FILE_SIZE_MAX	 (((1ULL << 32) - 1) * BLOCK_SIZE)

struct writer {
	ext2_filsys fs;
	struct tree *t;
	const struct ext4_opts *o;
	struct strbuf *err;
	struct tree_node **order; /* nodes whose inode is written, in walk order */
	size_t n_order, alloc_order;
	uint32_t next_ino;
	uint64_t need_blocks; /* content, xattr and directory blocks */
	uint64_t need_inodes;
	struct tree_node *lost_found;
	__u32 hash_seed[4]; /* the directory hash seed, as the superblock holds it */
	const char *out_path;
	int fd;		/* the image file */
	int host_errno; /* why writing the image file failed, once it has */
	blk64_t goal;	/* where the next file's content goes; 0: libext2fs's choice */
	bool added;	/* the stream has reached the inline and host files */

	/* the file whose content is being streamed */
	struct tree_inode *cur;
	struct ext2_inode_large cur_inode;
	char *stage;
	uint64_t stage_lblk; /* logical block of stage[0] */
	size_t stage_len;    /* bytes used */
	char zero[BLOCK_SIZE];
};

/* errcode_t to -errno: libext2fs passes system errors through as errno values. */
static int ext_errno(errcode_t e)
{
	if (e > 0 && e < 4096)
		return -(int)e;
	switch (e) {
	case EXT2_ET_NO_MEMORY:
		return -ENOMEM;
	case EXT2_ET_BLOCK_ALLOC_FAIL:
	case EXT2_ET_INODE_ALLOC_FAIL:
	case EXT2_ET_DIR_NO_SPACE:
	case EXT2_ET_EA_NO_SPACE:
		return -ENOSPC;
	default:
		return -EIO;
	}
}

/* A node's path for a message: names come from archives, control bytes quoted. */
static char *msg_path(const struct tree_node *n)
{
	_cleanup_free_ char *p = tree_node_path(n);

	return xstrdup(quote_path(p));
}

/* The first path of an inode, in walk order, for a message. */
static char *node_path_of(struct writer *w, const struct tree_inode *ino)
{
	size_t i;

	for (i = 0; i < w->n_order; i++)
		if (w->order[i]->inode == ino)
			return msg_path(w->order[i]);
	return xstrdup("?");
}

/* The image file could not be written (the disk is full): that is all the user needs to know. */
static int host_fail(struct writer *w)
{
	strbuf_addf(w->err, "cannot write '%s': %s", w->out_path, strerror(w->host_errno));
	return -w->host_errno;
}

static int ext_fail(struct writer *w, errcode_t e, const struct tree_node *n, const char *what)
{
	if (w->host_errno)
		return host_fail(w);
	if (n) {
		_cleanup_free_ char *p = msg_path(n);

		strbuf_addf(w->err, "cannot write '%s' into the image: %s: %s", p, what,
			    error_message(e));
	} else {
		strbuf_addf(w->err, "cannot write the image: %s: %s", what, error_message(e));
	}
	return ext_errno(e);
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return (a + b - 1) / b;
}

/*
 * libext2fs reports a write to the image file that wrote less than asked
 * as a "short write", which on a regular file means the disk is full (or a
 * quota or file size limit is reached). Writing the rest once more gets the
 * system's reason. Either way it is kept for the message.
 */
static errcode_t io_write_error(io_channel ch, unsigned long block, int count, const void *data,
				size_t size, int actual, errcode_t error)
{
	struct writer *w = ch->app_data;

	(void)count;
	if (error == EXT2_ET_SHORT_WRITE && actual >= 0 && (size_t)actual < size) {
		off_t off = (off_t)block * ch->block_size + actual;
		ssize_t n = pwrite(w->fd, (const char *)data + actual, size - (size_t)actual, off);

		if (n == (ssize_t)(size - (size_t)actual))
			return 0;
		error = n < 0 ? (errcode_t)errno : ENOSPC;
	}
	if (error > 0 && error < 4096 && !w->host_errno)
		w->host_errno = (int)error;
	return error;
}

/* --- 1. numbering and counting -------------------------------------------- */

static unsigned dirent_len(size_t name_len)
{
	return (unsigned)((8 + name_len + 3) & ~(size_t)3);
}

static unsigned csum_tail(void)
{
	return sizeof(struct ext2_dir_entry_tail);
}

static uint8_t file_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return EXT2_FT_REG_FILE;
	case S_IFDIR:
		return EXT2_FT_DIR;
	case S_IFLNK:
		return EXT2_FT_SYMLINK;
	case S_IFCHR:
		return EXT2_FT_CHRDEV;
	case S_IFBLK:
		return EXT2_FT_BLKDEV;
	case S_IFIFO:
		return EXT2_FT_FIFO;
	case S_IFSOCK:
		return EXT2_FT_SOCK;
	}
	return EXT2_FT_UNKNOWN;
}

static void put_dirent(struct writer *w, char *p, uint32_t ino, const char *name, size_t len,
		       uint8_t type, unsigned rec_len)
{
	struct ext2_dir_entry *de = (struct ext2_dir_entry *)p;

	de->inode = ino;
	if (w->fs)
		ext2fs_set_rec_len(w->fs, rec_len, de);
	else
		de->rec_len = (__u16)rec_len;
	ext2fs_dirent_set_name_len(de, (int)len);
	ext2fs_dirent_set_file_type(de, type);
	memcpy(de->name, name, len);
}

/* One directory entry to lay out. */
struct dent {
	const char *name;
	size_t len;
	uint32_t ino;
	uint8_t type;
	uint32_t hash, minor;
};

/*
 * Pack entries into blocks in the given order, each block ending with the
 * checksum tail; with dots, the first block starts with "." and "..". With
 * buf NULL only count. starts (if not NULL) gets the hash of the first entry
 * of each block, with the low bit set when a hash continues from the
 * previous block (the htree collision mark).
 */
static uint64_t pack(struct writer *w, const struct dent *d, size_t n, bool dots, uint32_t self,
		     uint32_t parent, char *buf, uint32_t *starts)
{
	const unsigned usable = BLOCK_SIZE - csum_tail();
	uint64_t block = 0, b;
	unsigned off = 0, last = 0;
	size_t i;

#define BLK(x) (buf + (x) * BLOCK_SIZE)
	if (dots) {
		if (buf) {
			put_dirent(w, BLK(0), self, ".", 1, EXT2_FT_DIR, 12);
			put_dirent(w, BLK(0) + 12, parent, "..", 2, EXT2_FT_DIR, usable - 12);
		}
		last = 12;
		off = 24;
	}
	for (i = 0; i < n; i++) {
		unsigned rec = dirent_len(d[i].len);

		if (off + rec > usable) {
			/* the last entry of the block already stretches to the tail */
			block++;
			off = 0;
		}
		if (off == 0 && starts)
			starts[block] = d[i].hash | (i > 0 && d[i].hash == d[i - 1].hash ? 1 : 0);
		if (buf) {
			if (off) /* the previous entry ends where this one starts */
				ext2fs_set_rec_len(w->fs, off - last,
						   (struct ext2_dir_entry *)(BLK(block) + last));
			put_dirent(w, BLK(block) + off, d[i].ino, d[i].name, d[i].len, d[i].type,
				   usable - off);
		}
		last = off;
		off += rec;
	}
	if (buf)
		for (b = 0; b <= block; b++)
			ext2fs_initialize_dirent_tail(
				w->fs, (struct ext2_dir_entry_tail *)(BLK(b) + usable));
#undef BLK
	return block + 1;
}

static int dent_hash_cmp(const void *a, const void *b)
{
	const struct dent *x = a, *y = b;
	int c;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	if (x->minor != y->minor)
		return x->minor < y->minor ? -1 : 1;
	c = memcmp(x->name, y->name, x->len < y->len ? x->len : y->len);
	return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

/* dx entries in the root block: (block size - dots - root info - tail) / 8 */
#define DX_ROOT_LIMIT ((BLOCK_SIZE - 32 - sizeof(struct ext2_dx_tail)) / sizeof(struct ext2_dx_entry))
/* dx entries in an index node: (block size - empty dirent - tail) / 8 */
#define DX_NODE_LIMIT ((BLOCK_SIZE - 8 - sizeof(struct ext2_dx_tail)) / sizeof(struct ext2_dx_entry))

/* The htree root block: "." and "..", the root info, then count dx entries. */
static struct ext2_dx_entry *dx_root(struct writer *w, char *blk, uint32_t self, uint32_t parent,
				     unsigned levels, unsigned count)
{
	struct ext2_dx_root_info *info = (void *)(blk + 24);
	struct ext2_dx_countlimit *cl = (void *)(blk + 32);

	put_dirent(w, blk, self, ".", 1, EXT2_FT_DIR, 12);
	put_dirent(w, blk + 12, parent, "..", 2, EXT2_FT_DIR, BLOCK_SIZE - 12);
	info->reserved_zero = 0;
	info->hash_version = EXT2_HASH_HALF_MD4;
	info->info_length = sizeof(*info);
	info->indirect_levels = (__u8)levels;
	info->unused_flags = 0;
	cl->limit = ext2fs_cpu_to_le16(DX_ROOT_LIMIT);
	cl->count = ext2fs_cpu_to_le16(count);
	return (struct ext2_dx_entry *)(blk + 32);
}

/* An htree index node: an empty dirent spanning the block, then count dx entries. */
static struct ext2_dx_entry *dx_node(struct writer *w, char *blk, unsigned count)
{
	struct ext2_dir_entry *de = (struct ext2_dir_entry *)blk;
	struct ext2_dx_countlimit *cl = (void *)(blk + 8);

	de->inode = 0;
	ext2fs_set_rec_len(w->fs, BLOCK_SIZE, de);
	cl->limit = ext2fs_cpu_to_le16(DX_NODE_LIMIT);
	cl->count = ext2fs_cpu_to_le16(count);
	return (struct ext2_dx_entry *)(blk + 8);
}

/*
 * Fill count dx entries mapping hash ranges to blocks: entry 0 (whose hash
 * field holds the count and limit) to first_block, entry k to first_block + k
 * from hash starts[k].
 */
static void dx_fill(struct ext2_dx_entry *e, const uint32_t *starts, uint64_t count,
		    uint64_t first_block)
{
	uint64_t k;

	e[0].block = ext2fs_cpu_to_le32((uint32_t)first_block);
	for (k = 1; k < count; k++) {
		e[k].hash = ext2fs_cpu_to_le32(starts[k]);
		e[k].block = ext2fs_cpu_to_le32((uint32_t)(first_block + k));
	}
}

/*
 * Lay a directory out: ".", "..", then the children. A directory that fits
 * in one block is linear, in name order. A larger one is hash-indexed
 * (dir_index, as the kernel builds them): a root block mapping hash ranges
 * to leaf blocks holding the entries in hash order, through one level of
 * index nodes beyond 507 leaves. Beyond two levels (about 258,000 leaves,
 * millions of entries) it stays linear. With buf NULL only count.
 * *ret_indexed tells whether the htree was used.
 */
static uint64_t dir_layout(struct writer *w, const struct tree_node *dir, struct tree_node **c,
			   size_t nc, char *buf, bool *ret_indexed)
{
	uint64_t min_blocks = dir == w->lost_found ? LOST_FOUND_BLOCKS : 1;
	uint32_t self = dir->inode->ino;
	uint32_t parent = dir->parent ? dir->parent->inode->ino : self;
	struct dent *d = xcalloc(nc ? nc : 1, sizeof(*d));
	uint32_t *starts = NULL;
	uint64_t nblocks, leaves, b;
	size_t i;

	for (i = 0; i < nc; i++) {
		d[i].name = c[i]->name;
		d[i].len = strlen(c[i]->name);
		d[i].ino = c[i]->inode->ino;
		d[i].type = file_type(c[i]->inode->mode);
	}
	*ret_indexed = false;
	nblocks = pack(w, d, nc, true, self, parent, NULL, NULL);
	if (nblocks > 1 && dir != w->lost_found) {
		for (i = 0; i < nc; i++)
			ext2fs_dirhash(EXT2_HASH_HALF_MD4, d[i].name, (int)d[i].len, w->hash_seed,
				       &d[i].hash, &d[i].minor);
		qsort(d, nc, sizeof(*d), dent_hash_cmp);
		starts = xcalloc(nc, sizeof(*starts));
		leaves = pack(w, d, nc, false, 0, 0, NULL, starts);
		if (leaves <= DX_ROOT_LIMIT) {
			/* one level: root -> leaves (blocks 1..) */
			*ret_indexed = true;
			nblocks = 1 + leaves;
			if (buf) {
				dx_fill(dx_root(w, buf, self, parent, 0, (unsigned)leaves), starts,
					leaves, 1);
				pack(w, d, nc, false, 0, 0, buf + BLOCK_SIZE, NULL);
			}
			free(starts);
			free(d);
			return nblocks;
		}
		if (leaves <= DX_ROOT_LIMIT * DX_NODE_LIMIT) {
			/* two levels: root -> index nodes (blocks 1..) -> leaves (after them) */
			uint64_t nodes = div_up(leaves, DX_NODE_LIMIT), k;

			*ret_indexed = true;
			nblocks = 1 + nodes + leaves;
			if (buf) {
				uint32_t *node_starts = xcalloc(nodes, sizeof(*node_starts));

				for (k = 0; k < nodes; k++) {
					uint64_t first = k * DX_NODE_LIMIT;
					uint64_t n = leaves - first < DX_NODE_LIMIT ? leaves - first
										    : DX_NODE_LIMIT;

					node_starts[k] = starts[first];
					dx_fill(dx_node(w, buf + (1 + k) * BLOCK_SIZE, (unsigned)n),
						starts + first, n, 1 + nodes + first);
				}
				dx_fill(dx_root(w, buf, self, parent, 1, (unsigned)nodes), node_starts,
					nodes, 1);
				pack(w, d, nc, false, 0, 0, buf + (1 + nodes) * BLOCK_SIZE, NULL);
				free(node_starts);
			}
			free(starts);
			free(d);
			return nblocks;
		}
		/* too large for two levels: linear, in name order again */
		free(starts);
		for (i = 0; i < nc; i++) {
			d[i].name = c[i]->name;
			d[i].len = strlen(c[i]->name);
			d[i].ino = c[i]->inode->ino;
			d[i].type = file_type(c[i]->inode->mode);
		}
	}
	if (buf) {
		pack(w, d, nc, true, self, parent, buf, NULL);
		for (b = nblocks; b < min_blocks; b++) {
			struct ext2_dir_entry *de = (struct ext2_dir_entry *)(buf + b * BLOCK_SIZE);
			const unsigned usable = BLOCK_SIZE - csum_tail();

			de->inode = 0;
			ext2fs_set_rec_len(w->fs, usable, de);
			ext2fs_initialize_dirent_tail(
				w->fs, (struct ext2_dir_entry_tail *)(buf + b * BLOCK_SIZE + usable));
		}
	}
	free(d);
	return nblocks > min_blocks ? nblocks : min_blocks;
}

static uint64_t xattr_bytes(const struct tree_inode *ino)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < ino->n_xattrs; i++)
		n += 16 + ((strlen(ino->xattrs[i].name) + 3) & ~3ULL) +
		     ((ino->xattrs[i].size + 3) & ~3ULL);
	return n;
}

/* The Linux xattr form of a POSIX ACL (struct posix_acl_xattr_header and _entry). */
#define ACL_XATTR_VERSION 2
#define ACL_HEADER_SIZE	  4
#define ACL_ENTRY_SIZE	  8

/*
 * Whether an ACL xattr value is one libext2fs can store: its version, whole
 * entries, at least one, each of a known tag (USER_OBJ, USER, GROUP_OBJ,
 * GROUP, MASK, OTHER). libext2fs checks the same, but answers "Cannot
 * allocate memory" or "Invalid argument".
 */
static bool acl_valid(const uint8_t *v, size_t size)
{
	size_t i;

	if (size < ACL_HEADER_SIZE + ACL_ENTRY_SIZE || (size - ACL_HEADER_SIZE) % ACL_ENTRY_SIZE ||
	    (v[0] | v[1] << 8 | v[2] << 16 | (uint32_t)v[3] << 24) != ACL_XATTR_VERSION)
		return false;
	for (i = ACL_HEADER_SIZE; i < size; i += ACL_ENTRY_SIZE) {
		unsigned tag = v[i] | v[i + 1] << 8;

		if (tag != 0x01 && tag != 0x02 && tag != 0x04 && tag != 0x08 && tag != 0x10 &&
		    tag != 0x20)
			return false;
	}
	return true;
}

/* ext4's limits on one inode, checked before anything is written. */
static int check_limits(struct writer *w, const struct tree_node *n)
{
	const struct tree_inode *ino = n->inode;
	const struct tree_xattr *acl = NULL;
	_cleanup_free_ char *p = NULL, *origin = NULL;
	size_t i;

	for (i = 0; i < ino->n_xattrs && !acl; i++)
		if ((!strcmp(ino->xattrs[i].name, "system.posix_acl_access") ||
		     !strcmp(ino->xattrs[i].name, "system.posix_acl_default")) &&
		    !acl_valid(ino->xattrs[i].value, ino->xattrs[i].size))
			acl = &ino->xattrs[i];
	if (!acl && (S_ISDIR(ino->mode) || ino->nlink <= EXT2_LINK_MAX) &&
	    (!S_ISREG(ino->mode) || ino->size <= FILE_SIZE_MAX))
		return 0;
	p = msg_path(n);
	origin = tree_inode_origin(w->t, ino);
	if (acl) {
		strbuf_addf(w->err, "'%s' (%s): malformed POSIX ACL in %s (%zu bytes)", p, origin,
			    acl->name, acl->size);
		return -EINVAL;
	}
	if (!S_ISDIR(ino->mode) && ino->nlink > EXT2_LINK_MAX) {
		strbuf_addf(w->err, "'%s' (%s) has %u hard links; ext4 allows at most %u per file",
			    p, origin, ino->nlink, EXT2_LINK_MAX);
		return -EMLINK;
	}
	strbuf_addf(w->err, "'%s' (%s): file size %llu exceeds ext4's maximum file size of %llu "
		    "bytes", p, origin, (unsigned long long)ino->size,
		    (unsigned long long)FILE_SIZE_MAX);
	return -EFBIG;
}

static int number(struct writer *w, struct tree_node *n)
{
	struct tree_inode *ino = n->inode;
	struct tree_node **c;
	size_t nc, i;
	bool indexed;
	int r = 0;

	if (ino->ino == 0) {
		uint64_t xb;

		r = check_limits(w, n);
		if (r < 0)
			return r;
		if (!n->parent)
			ino->ino = EXT2_ROOT_INO;
		else if (n == w->lost_found)
			ino->ino = EXT2_GOOD_OLD_FIRST_INO;
		else
			ino->ino = w->next_ino++;
		GROW(w->order, w->alloc_order, w->n_order + 1);
		w->order[w->n_order++] = n;
		w->need_inodes++;
		if (S_ISREG(ino->mode)) {
			uint64_t extents = ino->data_runs + (ino->data_bytes >> 27);

			/* each run after the first may start inside a block */
			w->need_blocks += div_up(ino->data_bytes, BLOCK_SIZE) +
					  (ino->data_runs > 1 ? ino->data_runs : 0);
			if (extents > 4)
				w->need_blocks += div_up(extents, 340) + 1;
		} else if (S_ISLNK(ino->mode)) {
			if (ino->size >= BLOCK_SIZE) {
				_cleanup_free_ char *p = msg_path(n);

				strbuf_addf(w->err, "'%s': a symlink target of %llu bytes is longer "
					    "than ext4 allows (%d)", p, (unsigned long long)ino->size,
					    BLOCK_SIZE - 1);
				return -ENAMETOOLONG;
			}
			if (ino->size >= sizeof(((struct ext2_inode *)0)->i_block))
				w->need_blocks++;
		}
		xb = xattr_bytes(ino);
		if (xb > BLOCK_SIZE - 32 - 4) {
			_cleanup_free_ char *p = msg_path(n);

			strbuf_addf(w->err, "'%s': its extended attributes (%llu bytes) do not fit "
				    "in one ext4 block", p, (unsigned long long)xb);
			return -E2BIG;
		}
		if (xb > INLINE_XATTR_MAX)
			w->need_blocks++;
	}
	if (!S_ISDIR(ino->mode))
		return 0;
	tree_sorted_children(n, &c, &nc);
	for (i = 0; i < nc && r == 0; i++)
		r = number(w, c[i]);
	/* Counting only: inode numbers of children are not needed yet. */
	w->need_blocks += dir_layout(w, n, c, nc, NULL, &indexed);
	free(c);
	return r;
}

/* --- 2. creating the filesystem ---------------------------------------------- */

int ext4_parse_uuid(const char *s, uint8_t ret[16])
{
	uint8_t u[16];
	size_t i, k = 0;

	for (i = 0; s[i] && k < 32; i++) {
		int v;

		if (s[i] == '-' && (i == 8 || i == 13 || i == 18 || i == 23))
			continue;
		if (s[i] >= '0' && s[i] <= '9')
			v = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			v = s[i] - 'a' + 10;
		else if (s[i] >= 'A' && s[i] <= 'F')
			v = s[i] - 'A' + 10;
		else
			return -EINVAL;
		if (k % 2 == 0)
			u[k / 2] = (uint8_t)(v << 4);
		else
			u[k / 2] |= (uint8_t)v;
		k++;
	}
	if (k != 32 || s[i] || strlen(s) != 36)
		return -EINVAL;
	memcpy(ret, u, 16);
	return 0;
}

static void set_sb_time(__u32 *lo, __u8 *hi, int64_t t)
{
	*lo = (__u32)t;
	*hi = (__u8)((uint64_t)t >> 32);
}

/*
 * Create the filesystem structure in the file fd refers to (path names it
 * for libext2fs) with total blocks and inodes. EXT2_ET_TOO_MANY_INODES when
 * the inode tables do not fit in that many blocks.
 */
static errcode_t fs_init(struct writer *w, const char *path, uint64_t blocks, uint64_t inodes,
			 const uint8_t uuid[16], const uint8_t hash_seed[16], const uint32_t *csum_seed,
			 ext2_filsys *ret)
{
	struct ext2_super_block param;
	ext2_filsys fs = NULL;
	errcode_t e;

	memset(&param, 0, sizeof(param));
	param.s_rev_level = EXT2_DYNAMIC_REV;
	param.s_log_block_size = 2; /* 1024 << 2 */
	ext2fs_blocks_count_set(&param, blocks);
	param.s_inodes_count = (__u32)(inodes > 0xfffffff0U ? 0xfffffff0U : inodes);
	param.s_inode_size = INODE_SIZE;
	param.s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
	param.s_log_groups_per_flex = 4;
	param.s_min_extra_isize = param.s_want_extra_isize =
		sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
	param.s_feature_compat = EXT2_FEATURE_COMPAT_DIR_INDEX | EXT2_FEATURE_COMPAT_EXT_ATTR |
				 EXT2_FEATURE_COMPAT_RESIZE_INODE;
	param.s_feature_incompat = EXT2_FEATURE_INCOMPAT_FILETYPE | EXT3_FEATURE_INCOMPAT_EXTENTS |
				   EXT4_FEATURE_INCOMPAT_64BIT | EXT4_FEATURE_INCOMPAT_FLEX_BG;
	param.s_feature_ro_compat = EXT2_FEATURE_RO_COMPAT_SPARSE_SUPER |
				    EXT2_FEATURE_RO_COMPAT_LARGE_FILE |
				    EXT4_FEATURE_RO_COMPAT_HUGE_FILE | EXT4_FEATURE_RO_COMPAT_DIR_NLINK |
				    EXT4_FEATURE_RO_COMPAT_EXTRA_ISIZE |
				    EXT4_FEATURE_RO_COMPAT_METADATA_CSUM;
	/* metadata_csum_seed: checksums seeded from s_checksum_seed, not from the UUID. */
	if (csum_seed)
		param.s_feature_incompat |= EXT4_FEATURE_INCOMPAT_CSUM_SEED;

	e = ext2fs_initialize(path, EXT2_FLAG_64BITS, &param, unix_io_manager, &fs);
	if (e)
		return e;
	fs->now = w->o->epoch;
	fs->super->s_checksum_type = EXT2_CRC32C_CHKSUM;
	memcpy(fs->super->s_uuid, uuid, 16);
	if (csum_seed)
		fs->super->s_checksum_seed = *csum_seed;
	ext2fs_init_csum_seed(fs);
	memcpy(fs->super->s_hash_seed, hash_seed, 16);
	fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
	/* The same on every host: directory hashes are computed signed (HALF_MD4). */
	fs->super->s_flags |= EXT2_FLAGS_SIGNED_HASH;
	fs->super->s_max_mnt_count = (__u16)-1;
	fs->super->s_checkinterval = 0;
	fs->super->s_kbytes_written = 0;
	if (w->o->label)
		strncpy((char *)fs->super->s_volume_name, w->o->label,
			sizeof(fs->super->s_volume_name));
	*ret = fs;
	return 0;
}

static int fs_create(struct writer *w, const char *path, uint64_t blocks, uint64_t inodes,
		     const uint8_t uuid[16], const uint8_t hash_seed[16], const uint32_t *csum_seed,
		     ext2_filsys *ret)
{
	errcode_t e = fs_init(w, path, blocks, inodes, uuid, hash_seed, csum_seed, ret);

	return e ? ext_fail(w, e, NULL, "creating the filesystem") : 0;
}

/* --- 3. inodes -------------------------------------------------------------- */

static void set_times(struct ext2_inode_large *in, int64_t t)
{
	__u32 lo = (__u32)t;
	/* The two "extra" epoch bits extend the 32-bit seconds past 2038. */
	__u32 extra = (__u32)(((t - (int64_t)(int32_t)lo) >> 32) & 3);

	in->i_atime = in->i_ctime = in->i_mtime = in->i_crtime = lo;
	in->i_atime_extra = in->i_ctime_extra = in->i_mtime_extra = in->i_crtime_extra = extra;
}

static int64_t clamp_time(const struct writer *w, int64_t t)
{
	return t > w->o->epoch ? w->o->epoch : t;
}

static void fill_inode(struct writer *w, const struct tree_inode *ino, struct ext2_inode_large *in)
{
	memset(in, 0, sizeof(*in));
	in->i_mode = (__u16)ino->mode;
	in->i_uid = (__u16)ino->uid;
	ext2fs_set_i_uid_high(*in, (__u16)(ino->uid >> 16));
	in->i_gid = (__u16)ino->gid;
	ext2fs_set_i_gid_high(*in, (__u16)(ino->gid >> 16));
	in->i_extra_isize = sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE;
	set_times(in, clamp_time(w, ino->mtime));
	in->i_links_count = (__u16)(ino->nlink > EXT2_LINK_MAX ? EXT2_LINK_MAX : ino->nlink);
}

/* An extent-mapped inode without extents yet: the header alone, as the kernel writes it. */
static void empty_extent_tree(struct ext2_inode_large *in)
{
	struct ext3_extent_header *eh = (struct ext3_extent_header *)in->i_block;

	in->i_flags |= EXT4_EXTENTS_FL;
	eh->eh_magic = ext2fs_cpu_to_le16(EXT3_EXT_MAGIC);
	eh->eh_entries = 0;
	eh->eh_depth = 0;
	eh->eh_max = ext2fs_cpu_to_le16((sizeof(in->i_block) - sizeof(*eh)) /
					sizeof(struct ext3_extent));
}

static errcode_t put_inode(struct writer *w, uint32_t ino, struct ext2_inode_large *in)
{
	return ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)in, sizeof(*in));
}

static errcode_t get_inode(struct writer *w, uint32_t ino, struct ext2_inode_large *in)
{
	return ext2fs_read_inode_full(w->fs, ino, (struct ext2_inode *)in, sizeof(*in));
}

/*
 * Allocate and write nblocks of buf at logical block lblk of an
 * extent-mapped inode. The mapping is read back one extent at a time, so a
 * contiguous run is one lookup and one write.
 */
static errcode_t write_blocks(struct writer *w, uint32_t ino, struct ext2_inode_large *in,
			      uint64_t lblk, uint64_t nblocks, const char *buf, bool dir)
{
	ext2_extent_handle_t h = NULL;
	struct ext2fs_extent ex;
	uint64_t i = 0, k, n;
	errcode_t e;

	/* A file's first blocks go to the goal, the rest after its last extent. */
	e = ext2fs_fallocate(w->fs, EXT2_FALLOCATE_FORCE_INIT, ino, (struct ext2_inode *)in,
			     w->goal && !dir && !in->i_blocks ? w->goal : ~0ULL, lblk, nblocks);
	if (!e)
		e = ext2fs_extent_open2(w->fs, ino, (struct ext2_inode *)in, &h);
	while (!e && i < nblocks) {
		e = ext2fs_extent_goto(h, lblk + i);
		if (!e)
			e = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &ex);
		if (e)
			break;
		if (ex.e_lblk > lblk + i || ex.e_lblk + ex.e_len <= lblk + i ||
		    (ex.e_flags & EXT2_EXTENT_FLAGS_UNINIT)) {
			e = EXT2_ET_BLOCK_ALLOC_FAIL;
			break;
		}
		n = ex.e_lblk + ex.e_len - (lblk + i);
		if (n > nblocks - i)
			n = nblocks - i;
		if (dir) {
			for (k = 0; !e && k < n; k++)
				e = ext2fs_write_dir_block4(w->fs, ex.e_pblk + (lblk + i + k - ex.e_lblk),
							    (void *)(buf + (i + k) * BLOCK_SIZE), 0,
							    ino);
		} else {
			e = io_channel_write_blk64(w->fs->io, ex.e_pblk + (lblk + i - ex.e_lblk),
						   (int)n, buf + i * BLOCK_SIZE);
		}
		i += n;
		if (!dir && w->goal)
			w->goal = ex.e_pblk + ex.e_len;
	}
	if (h)
		ext2fs_extent_free(h);
	return e;
}

static int write_xattrs(struct writer *w, const struct tree_node *n)
{
	const struct tree_inode *ino = n->inode;
	struct ext2_xattr_handle *h = NULL;
	errcode_t e;
	size_t i;

	if (!ino->n_xattrs)
		return 0;
	e = ext2fs_xattrs_open(w->fs, ino->ino, &h);
	if (!e)
		e = ext2fs_xattrs_read(h);
	for (i = 0; !e && i < ino->n_xattrs; i++)
		e = ext2fs_xattr_set(h, ino->xattrs[i].name, ino->xattrs[i].value,
				     ino->xattrs[i].size);
	if (h) {
		errcode_t e2 = ext2fs_xattrs_close(&h);

		if (!e)
			e = e2;
	}
	if (e)
		return ext_fail(w, e, n, ino->n_xattrs > 1 ? "extended attributes"
							  : ino->xattrs[0].name);
	return 0;
}

static int write_dir(struct writer *w, struct tree_node *n, struct ext2_inode_large *in)
{
	struct tree_node **c;
	size_t nc, i;
	uint64_t nblocks;
	char *buf;
	uint32_t subdirs = 0;
	bool indexed;
	errcode_t e;

	tree_sorted_children(n, &c, &nc);
	for (i = 0; i < nc; i++)
		if (S_ISDIR(c[i]->inode->mode))
			subdirs++;
	nblocks = dir_layout(w, n, c, nc, NULL, &indexed);
	buf = xcalloc(nblocks, BLOCK_SIZE);
	dir_layout(w, n, c, nc, buf, &indexed);
	free(c);
	if (indexed)
		in->i_flags |= EXT2_INDEX_FL;
	/* dir_nlink: a directory with too many subdirectories counts 1. */
	in->i_links_count = subdirs + 2 > EXT2_LINK_MAX ? 1 : (__u16)(subdirs + 2);
	in->i_flags |= EXT4_EXTENTS_FL;
	e = put_inode(w, n->inode->ino, in);
	if (!e)
		e = write_blocks(w, n->inode->ino, in, 0, nblocks, buf, true);
	if (!e)
		e = ext2fs_inode_size_set(w->fs, (struct ext2_inode *)in, nblocks * BLOCK_SIZE);
	if (!e)
		e = put_inode(w, n->inode->ino, in);
	free(buf);
	return e ? ext_fail(w, e, n, "directory") : 0;
}

static int write_node(struct writer *w, struct tree_node *n)
{
	struct tree_inode *ino = n->inode;
	struct ext2_inode_large in;
	errcode_t e = 0;
	int r;

	fill_inode(w, ino, &in);
	ext2fs_inode_alloc_stats2(w->fs, ino->ino, +1, S_ISDIR(ino->mode) ? 1 : 0);
	switch (ino->mode & S_IFMT) {
	case S_IFDIR:
		r = write_dir(w, n, &in);
		if (r < 0)
			return r;
		break;
	case S_IFREG:
		empty_extent_tree(&in);
		e = ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&in, ino->size);
		if (!e)
			e = put_inode(w, ino->ino, &in);
		/* Extents are added when the content is streamed. */
		break;
	case S_IFLNK:
		if (ino->size < sizeof(in.i_block)) {
			memcpy(in.i_block, ino->symlink, ino->size);
			in.i_size = (__u32)ino->size;
			e = put_inode(w, ino->ino, &in);
		} else {
			char buf[BLOCK_SIZE];

			memset(buf, 0, sizeof(buf));
			memcpy(buf, ino->symlink, ino->size);
			in.i_flags |= EXT4_EXTENTS_FL;
			in.i_size = (__u32)ino->size;
			e = put_inode(w, ino->ino, &in);
			if (!e)
				e = write_blocks(w, ino->ino, &in, 0, 1, buf, false);
			if (!e)
				e = put_inode(w, ino->ino, &in);
		}
		break;
	case S_IFCHR:
	case S_IFBLK:
		/* The old encoding where it fits, else the new one (as the kernel does). */
		if (ino->rdev_major < 256 && ino->rdev_minor < 256) {
			in.i_block[0] = ino->rdev_major * 256 + ino->rdev_minor;
		} else {
			in.i_block[1] = (ino->rdev_minor & 0xff) | (ino->rdev_major << 8) |
					((ino->rdev_minor & ~0xffU) << 12);
		}
		e = put_inode(w, ino->ino, &in);
		break;
	default: /* FIFO, socket */
		e = put_inode(w, ino->ino, &in);
		break;
	}
	if (e)
		return ext_fail(w, e, n, "inode");
	return write_xattrs(w, n);
}

/* --- 4. content ---------------------------------------------------------------- */

static int stage_flush(struct writer *w, struct strbuf *err)
{
	uint64_t nblocks = div_up(w->stage_len, BLOCK_SIZE), i = 0;
	errcode_t e;

	(void)err;
	if (!w->stage_len)
		return 0;
	memset(w->stage + w->stage_len, 0, nblocks * BLOCK_SIZE - w->stage_len);
	while (i < nblocks) {
		uint64_t j;

		/* All-zero blocks stay holes: sparse files remain sparse. */
		if (!memcmp(w->stage + i * BLOCK_SIZE, w->zero, BLOCK_SIZE)) {
			i++;
			continue;
		}
		for (j = i + 1; j < nblocks; j++)
			if (!memcmp(w->stage + j * BLOCK_SIZE, w->zero, BLOCK_SIZE))
				break;
		e = write_blocks(w, w->cur->ino, &w->cur_inode, w->stage_lblk + i, j - i,
				 w->stage + i * BLOCK_SIZE, false);
		if (e && w->host_errno)
			return host_fail(w);
		if (e && ext_errno(e) == -ENOSPC) {
			_cleanup_free_ char *p = node_path_of(w, w->cur);

			strbuf_addf(w->err, "the image is full while writing '%s'; use a larger "
				    "--size or --size auto", p);
			return -ENOSPC;
		}
		if (e) {
			_cleanup_free_ char *origin = tree_inode_origin(w->t, w->cur);

			strbuf_addf(w->err, "cannot write the content of %s: %s", origin,
				    error_message(e));
			return ext_errno(e);
		}
		i = j;
	}
	w->stage_len = 0;
	return 0;
}

/*
 * Content is placed in stream order, in regions: the directories first, then
 * the archives' files, then the files a recipe adds (host and inline). Each
 * region starts on a REGION_ALIGN boundary with at least REGION_SLACK blocks
 * between it and the end of the one before, so that a region growing by less
 * than the gap moves nothing after it: a file of the application that grows
 * moves only the application's files after it, not the whole base system.
 * Returns the first block of the region that follows `end`.
 */
static blk64_t place_region(struct writer *w, blk64_t end)
{
	blk64_t first = w->fs->super->s_first_data_block;
	blk64_t b = first + div_up(end - first + REGION_SLACK, REGION_ALIGN) * REGION_ALIGN;

	/* Past the end: back to the start, where the allocator looks for the next free block. */
	return b < ext2fs_blocks_count(w->fs->super) ? b : first;
}

static int content_begin(void *ctx, struct tree_inode *ino, struct strbuf *err)
{
	struct writer *w = ctx;
	errcode_t e;

	(void)err;
	if (ino->src != TREE_SRC_ARCHIVE && !w->added) {
		/* The recipe's own files, after the archives' (tree_stream_content()). */
		w->added = true;
		w->goal = place_region(w, w->goal);
	}
	w->cur = ino;
	w->stage_len = 0;
	w->stage_lblk = 0;
	e = get_inode(w, ino->ino, &w->cur_inode);
	if (e)
		return ext_fail(w, e, NULL, "reading back an inode");
	return 0;
}

static int content_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf,
			size_t len, struct strbuf *err)
{
	struct writer *w = ctx;
	const char *p = buf;
	int r;

	(void)ino;
	while (len > 0) {
		uint64_t stage_start = w->stage_lblk * BLOCK_SIZE;
		uint64_t stage_end = stage_start + div_up(w->stage_len, BLOCK_SIZE) * BLOCK_SIZE;
		size_t n;

		if (w->stage_len && (offset > stage_end || offset < stage_start + w->stage_len ||
				     offset - stage_start >= STAGE_BLOCKS * BLOCK_SIZE)) {
			r = stage_flush(w, err);
			if (r < 0)
				return r;
		}
		if (!w->stage_len) {
			w->stage_lblk = offset / BLOCK_SIZE;
			stage_start = w->stage_lblk * BLOCK_SIZE;
		}
		/* zero any gap inside the staged block */
		if (offset - stage_start > w->stage_len)
			memset(w->stage + w->stage_len, 0, offset - stage_start - w->stage_len);
		w->stage_len = offset - stage_start;
		n = STAGE_BLOCKS * BLOCK_SIZE - w->stage_len;
		if (n > len)
			n = len;
		memcpy(w->stage + w->stage_len, p, n);
		w->stage_len += n;
		p += n;
		len -= n;
		offset += n;
	}
	return 0;
}

static int content_end(void *ctx, struct tree_inode *ino, struct strbuf *err)
{
	struct writer *w = ctx;
	errcode_t e;
	int r;

	r = stage_flush(w, err);
	if (r < 0)
		return r;
	e = ext2fs_inode_size_set(w->fs, (struct ext2_inode *)&w->cur_inode, ino->size);
	if (!e)
		e = put_inode(w, ino->ino, &w->cur_inode);
	if (e)
		return ext_fail(w, e, NULL, "file size");
	w->cur = NULL;
	return 0;
}

/* --- 5. the whole ------------------------------------------------------------------ */

static int fix_reserved_times(struct writer *w)
{
	static const uint32_t inos[] = { EXT2_BAD_INO, EXT2_RESIZE_INO, EXT2_JOURNAL_INO };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(inos); i++) {
		struct ext2_inode_large in;
		errcode_t e = get_inode(w, inos[i], &in);

		if (!e) {
			in.i_extra_isize = sizeof(in) - EXT2_GOOD_OLD_INODE_SIZE;
			set_times(&in, w->o->epoch);
			e = put_inode(w, inos[i], &in);
		}
		if (e)
			return ext_fail(w, e, NULL, "reserved inode");
	}
	return 0;
}

/* --- setting the UUID last ------------------------------------------------ */

/* Where the jbd2 superblock keeps the filesystem UUID (journal_superblock_t.s_uuid). */
#define JSB_UUID_OFFSET 48

static errcode_t rewrite_extent_blocks(struct writer *w, uint32_t ino)
{
	ext2_extent_handle_t h = NULL;
	struct ext2fs_extent ex;
	errcode_t e;

	e = ext2fs_extent_open(w->fs, ino, &h);
	if (e)
		return e;
	e = ext2fs_extent_get(h, EXT2_EXTENT_ROOT, &ex);
	while (!e) {
		if (!(ex.e_flags & EXT2_EXTENT_FLAGS_SECOND_VISIT)) {
			/* one write per node: go to its last entry, rewrite it in place */
			if (ex.e_flags & EXT2_EXTENT_FLAGS_LEAF)
				e = ext2fs_extent_get(h, EXT2_EXTENT_LAST_SIB, &ex);
			if (!e)
				e = ext2fs_extent_replace(h, 0, &ex);
		}
		if (!e)
			e = ext2fs_extent_get(h, EXT2_EXTENT_NEXT, &ex);
	}
	ext2fs_extent_free(h);
	return e == EXT2_ET_EXTENT_NO_NEXT ? 0 : e;
}

static errcode_t rewrite_dir_blocks(struct writer *w, uint32_t ino, struct ext2_inode *in,
				    char *buf)
{
	uint64_t n = EXT2_I_SIZE(in) / BLOCK_SIZE, l;
	errcode_t e = 0;
	blk64_t p;

	for (l = 0; !e && l < n; l++) {
		e = ext2fs_bmap2(w->fs, ino, in, NULL, 0, l, NULL, &p);
		if (!e && p) {
			e = ext2fs_read_dir_block4(w->fs, p, buf, 0, ino);
			if (!e)
				e = ext2fs_write_dir_block4(w->fs, p, buf, 0, ino);
		}
	}
	return e;
}

/*
 * The journal's superblock as the kernel sets it when it mounts the
 * filesystem, read-only included: the 64-bit and checksum v3 features, the
 * CRC32C checksum type and the superblock's checksum (jbd2's, CRC32C seeded
 * with ~0 over its 1024 bytes with the checksum field zero). libext2fs
 * leaves them unset; the kernel then changes the block in memory, and a
 * mounted slot read through its block device no longer has the image's
 * bytes (an update's patch from that image would not apply: update/patch.h).
 * Big-endian fields of journal_superblock_t.
 */
#define JSB_INCOMPAT	      0x28
#define JSB_CSUM_TYPE	      0x50
#define JSB_CHECKSUM	      0xfc
#define JSB_SIZE	      1024
#define JBD2_INCOMPAT_64BIT   0x2
#define JBD2_INCOMPAT_CSUM_V3 0x10
#define JBD2_CRC32C_CHKSUM    4

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* The journal superblock's checksum (checksum v3), after any change to it. */
static void journal_sb_csum(ext2_filsys fs, unsigned char *blk)
{
	if (!ext2fs_has_feature_metadata_csum(fs->super))
		return;
	put_be32(blk + JSB_CHECKSUM, 0);
	put_be32(blk + JSB_CHECKSUM, ext2fs_crc32c_le(~0U, blk, JSB_SIZE));
}

/*
 * Give the filesystem its final UUID. Every metadata checksum is seeded
 * from the UUID, so every checksummed structure in use is written again:
 * inodes, directory blocks (leaves and htree nodes), extent tree blocks and
 * xattr blocks and every group descriptor here; bitmaps and the superblock
 * when the filesystem is closed. The journal superblock records the UUID too.
 */
static int set_final_uuid(struct writer *w, const uint8_t uuid[16])
{
	ext2_filsys fs = w->fs;
	char inode_buf[INODE_SIZE], *blk = xmalloc(BLOCK_SIZE);
	struct ext2_inode *in = (struct ext2_inode *)inode_buf;
	uint32_t ino;
	dgrp_t g;
	blk64_t p;
	errcode_t e = 0;

	fs->flags |= EXT2_FLAG_IGNORE_CSUM_ERRORS;
	memcpy(fs->super->s_uuid, uuid, 16);
	ext2fs_init_csum_seed(fs);
	for (ino = 1; !e && ino <= fs->super->s_inodes_count; ino++) {
		g = (ino - 1) / fs->super->s_inodes_per_group;
		if (ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_UNINIT)) {
			ino = (g + 1) * fs->super->s_inodes_per_group;
			continue;
		}
		if (!ext2fs_test_inode_bitmap2(fs->inode_map, ino))
			continue;
		e = ext2fs_read_inode_full(fs, ino, in, sizeof(inode_buf));
		if (!e)
			e = ext2fs_write_inode_full(fs, ino, in, sizeof(inode_buf));
		if (!e && (in->i_flags & EXT4_EXTENTS_FL) &&
		    ((struct ext3_extent_header *)in->i_block)->eh_depth)
			e = rewrite_extent_blocks(w, ino);
		if (!e && LINUX_S_ISDIR(in->i_mode))
			e = rewrite_dir_blocks(w, ino, in, blk);
		if (!e && ext2fs_file_acl_block(fs, in)) {
			e = ext2fs_read_ext_attr3(fs, ext2fs_file_acl_block(fs, in), blk, ino);
			if (!e)
				e = ext2fs_write_ext_attr3(fs, ext2fs_file_acl_block(fs, in), blk, ino);
		}
	}
	if (!e && ext2fs_has_feature_journal(fs->super)) {
		e = ext2fs_read_inode_full(fs, EXT2_JOURNAL_INO, in, sizeof(inode_buf));
		if (!e)
			e = ext2fs_bmap2(fs, EXT2_JOURNAL_INO, in, NULL, 0, 0, NULL, &p);
		if (!e)
			e = io_channel_read_blk64(fs->io, p, 1, blk);
		if (!e) {
			memcpy(blk + JSB_UUID_OFFSET, uuid, 16);
			journal_sb_csum(fs, (unsigned char *)blk);
			e = io_channel_write_blk64(fs->io, p, 1, blk);
		}
	}
	/*
	 * Closing writes the bitmaps of initialised groups and sets their
	 * descriptors' checksums; those of groups left BLOCK_UNINIT or
	 * INODE_UNINIT would keep the provisional UUID's.
	 */
	for (g = 0; g < fs->group_desc_count; g++)
		ext2fs_group_desc_csum_set(fs, g);
	fs->flags &= ~EXT2_FLAG_IGNORE_CSUM_ERRORS;
	ext2fs_mark_ib_dirty(fs);
	ext2fs_mark_bb_dirty(fs);
	ext2fs_mark_super_dirty(fs);
	free(blk);
	return e ? ext_fail(w, e, NULL, "setting the UUID") : 0;
}

/*
 * Free blocks the content may use in a filesystem of `blocks` blocks: 0 if
 * their inode tables cannot hold that many inodes.
 */
static int usable_blocks(struct writer *w, const char *path, uint64_t blocks, uint64_t inodes,
			 uint64_t *ret)
{
	static const uint8_t zero[16];
	ext2_filsys fs;
	errcode_t e;
	int jblocks;

	e = fs_init(w, path, blocks, inodes, zero, zero, NULL, &fs);
	if (e == EXT2_ET_TOO_MANY_INODES) {
		*ret = 0;
		return 0;
	}
	if (e)
		return ext_fail(w, e, NULL, "creating the filesystem");
	e = ext2fs_allocate_tables(fs);
	if (e) {
		ext2fs_free(fs);
		return ext_fail(w, e, NULL, "laying out the filesystem");
	}
	jblocks = ext2fs_default_journal_size(ext2fs_blocks_count(fs->super));
	*ret = ext2fs_free_blocks_count(fs->super);
	if (jblocks > 0)
		*ret = *ret > (uint64_t)jblocks + 64 ? *ret - (uint64_t)jblocks - 64 : 0;
	/* the resize inode's reserved GDT blocks are taken when it is created */
	*ret = *ret > fs->super->s_reserved_gdt_blocks * fs->group_desc_count
		       ? *ret - fs->super->s_reserved_gdt_blocks * fs->group_desc_count
		       : 0;
	ext2fs_free(fs);
	return 0;
}

/*
 * Inodes: what the tree needs plus the headroom. A fixed size given by the
 * user also gets at least mke2fs's one inode per 16 KiB, since the space is
 * there to be used.
 */
static uint64_t inodes_for(const struct writer *w, uint64_t blocks, unsigned headroom, bool fixed)
{
	uint64_t n = (w->need_inodes + EXT2_GOOD_OLD_FIRST_INO) * (100 + headroom) / 100 + 64;
	uint64_t ratio = blocks * BLOCK_SIZE / 16384;

	return fixed && ratio > n ? ratio : n;
}

/*
 * The smallest block count holding need_blocks plus headroom, and inode
 * tables for the inodes: with many entries and little data (empty files,
 * symlinks, devices) the inode tables are what sizes the image.
 */
static int size_auto(struct writer *w, const char *path, unsigned headroom, uint64_t *ret)
{
	uint64_t target = w->need_blocks * (100 + headroom) / 100 + 16;
	uint64_t inodes = inodes_for(w, 0, headroom, false);
	uint64_t itable = div_up(inodes * INODE_SIZE, BLOCK_SIZE);
	uint64_t blocks = target + target / 16 + 1024, usable = 0;
	int i, r;

	if (blocks < itable + itable / 16 + 1024)
		blocks = itable + itable / 16 + 1024;
	if (blocks < MIN_BLOCKS)
		blocks = MIN_BLOCKS;
	for (i = 0; i < 64; i++) {
		r = usable_blocks(w, path, blocks, inodes, &usable);
		if (r < 0)
			return r;
		if (usable >= target)
			break;
		/* no usable space at all: the inode tables do not fit yet */
		blocks += usable ? target - usable + 256 : blocks / 8 + 256;
	}
	if (usable < target) {
		strbuf_addf(w->err, "cannot find an image size for %llu blocks of content and %llu "
			    "inodes", (unsigned long long)target, (unsigned long long)inodes);
		return -EFBIG;
	}
	/* round up to a whole MiB */
	blocks = div_up(blocks, 256) * 256;
	*ret = blocks;
	return 0;
}

static void derive_uuid(const uint8_t digest[SHA256_LEN], const struct ext4_opts *o,
			uint64_t blocks, uint8_t uuid[16]);

static errcode_t journal_features(struct writer *w)
{
	unsigned char *blk;
	uint32_t incompat;
	blk64_t pblk = 0;
	errcode_t e;

	if (!ext2fs_has_feature_metadata_csum(w->fs->super))
		return 0;
	e = ext2fs_bmap2(w->fs, EXT2_JOURNAL_INO, NULL, NULL, 0, 0, NULL, &pblk);
	if (e || !pblk)
		return e ? e : EXT2_ET_BAD_BLOCK_NUM;
	blk = xmalloc(BLOCK_SIZE);
	e = io_channel_read_blk64(w->fs->io, pblk, 1, blk);
	if (!e) {
		incompat = (uint32_t)blk[JSB_INCOMPAT] << 24 | (uint32_t)blk[JSB_INCOMPAT + 1] << 16 |
			   (uint32_t)blk[JSB_INCOMPAT + 2] << 8 | blk[JSB_INCOMPAT + 3];
		incompat |= JBD2_INCOMPAT_CSUM_V3;
		if (ext2fs_has_feature_64bit(w->fs->super))
			incompat |= JBD2_INCOMPAT_64BIT;
		put_be32(blk + JSB_INCOMPAT, incompat);
		blk[JSB_CSUM_TYPE] = JBD2_CRC32C_CHKSUM;
		journal_sb_csum(w->fs, blk);
		e = io_channel_write_blk64(w->fs->io, pblk, 1, blk);
	}
	free(blk);
	return e;
}

static int build(struct writer *w, const char *tmp, uint64_t blocks, uint64_t inodes,
		 const uint8_t uuid[16], const uint8_t seed[16], const uint32_t *csum_seed)
{
	uint8_t digest[SHA256_LEN], final_uuid[16];
	static const struct tree_content_ops ops = { content_begin, content_data, content_end };
	struct ext2_inode_large in;
	blk64_t meta_start;
	uint64_t free_before;
	errcode_t e;
	uint32_t i;
	size_t k;
	int r, jblocks;

	r = fs_create(w, tmp, blocks, inodes, uuid, seed, csum_seed, &w->fs);
	if (r < 0)
		return r;
	w->fs->io->app_data = w;
	w->fs->io->write_error = io_write_error;
	e = ext2fs_allocate_tables(w->fs);
	if (e)
		return ext_fail(w, e, NULL, "laying out the filesystem");
	/* The image file started as zeros: inode tables need no clearing. */
	for (i = 0; i < w->fs->group_desc_count; i++) {
		ext2fs_bg_flags_set(w->fs, i, EXT2_BG_INODE_ZEROED);
		ext2fs_group_desc_csum_set(w->fs, i);
	}
	/* Reserved inodes (1..10), as mke2fs marks them; root and lost+found come from the tree. */
	for (i = 1; i < EXT2_FIRST_INODE(w->fs->super); i++)
		if (i != EXT2_ROOT_INO)
			ext2fs_inode_alloc_stats2(w->fs, i, +1, 0);
	memset(&in, 0, sizeof(in));
	in.i_extra_isize = sizeof(in) - EXT2_GOOD_OLD_INODE_SIZE;
	set_times(&in, w->o->epoch);
	e = put_inode(w, EXT2_BAD_INO, &in);
	if (!e)
		e = ext2fs_create_resize_inode(w->fs);
	if (e)
		return ext_fail(w, e, NULL, "reserved inodes");
	jblocks = ext2fs_default_journal_size(ext2fs_blocks_count(w->fs->super));
	if (jblocks > 0) {
		e = ext2fs_add_journal_inode(w->fs, (blk_t)jblocks,
					     EXT2_MKJOURNAL_LAZYINIT | EXT2_MKJOURNAL_NO_MNT_CHECK);
		if (!e)
			e = journal_features(w);
		if (e)
			return ext_fail(w, e, NULL, "journal");
	}

	/* Directories (and long symlinks, xattr blocks) from the first free block on. */
	e = ext2fs_new_block2(w->fs, 0, NULL, &meta_start);
	if (e)
		return ext_fail(w, e, NULL, "laying out the filesystem");
	free_before = ext2fs_free_blocks_count(w->fs->super);
	for (k = 0; k < w->n_order; k++) {
		r = write_node(w, w->order[k]);
		if (r < 0)
			return r;
	}
	w->goal = place_region(w, meta_start + free_before - ext2fs_free_blocks_count(w->fs->super));
	w->stage = xmalloc(STAGE_BLOCKS * BLOCK_SIZE);
	r = tree_stream_content(w->t, &ops, w, w->err);
	if (r < 0)
		return r;
	r = fix_reserved_times(w);
	if (r < 0)
		return r;
	if (!w->o->uuid && !w->o->lineage) {
		/* Now that every content digest is known: the UUID of this content. */
		tree_digest(w->t, w->o->epoch, true, digest);
		derive_uuid(digest, w->o, blocks, final_uuid);
		r = set_final_uuid(w, final_uuid);
		if (r < 0)
			return r;
	}
	set_sb_time(&w->fs->super->s_mkfs_time, &w->fs->super->s_mkfs_time_hi, w->o->epoch);
	set_sb_time(&w->fs->super->s_lastcheck, &w->fs->super->s_lastcheck_hi, w->o->epoch);
	set_sb_time(&w->fs->super->s_wtime, &w->fs->super->s_wtime_hi, w->o->epoch);
	w->fs->super->s_mtime = 0;
	w->fs->super->s_kbytes_written = 0;
	ext2fs_mark_super_dirty(w->fs);
	e = ext2fs_close_free(&w->fs);
	if (e)
		return ext_fail(w, e, NULL, "closing");
	return 0;
}

/*
 * Without a lineage, the directory hash seed comes from the metadata digest
 * of the tree (directory layout depends on it, and the size on the layout);
 * the UUID from the full digest, content included, the size and the label.
 * The checksums are seeded from the UUID, as mke2fs does.
 */
static void derive_seed(const uint8_t digest[SHA256_LEN], uint8_t seed[16])
{
	uint8_t out[SHA256_LEN];
	struct sha256 *h = sha256_new();

	sha256_update_str(h, "imgforge ext4 hash seed v1");
	sha256_update(h, digest, SHA256_LEN);
	sha256_final(h, out);
	sha256_free(h);
	memcpy(seed, out, 16);
}

static void derive_uuid(const uint8_t digest[SHA256_LEN], const struct ext4_opts *o,
			uint64_t blocks, uint8_t uuid[16])
{
	uint8_t out[SHA256_LEN];
	struct sha256 *h = sha256_new();

	sha256_update_str(h, "imgforge ext4 uuid v1");
	sha256_update(h, digest, SHA256_LEN);
	sha256_update_u64(h, blocks);
	sha256_update_str(h, o->label ? o->label : "");
	sha256_final(h, out);
	sha256_free(h);
	memcpy(uuid, out, 16);
	/* Shaped like a random (version 4) UUID. */
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
}

/*
 * With a lineage, all three come from the lineage and the label alone (one
 * image holds several filesystems of one lineage: the label tells them
 * apart), so that two versions of an image share them and differ only in the
 * blocks their content touches: with seeds from the content, one changed byte
 * changed every checksummed block and every hashed directory. Each value has
 * its own domain string, so no one of them tells another.
 */
static void derive_identity(const char *what, const struct ext4_opts *o, uint8_t ret[16])
{
	uint8_t out[SHA256_LEN];
	struct sha256 *h = sha256_new();

	sha256_update_str(h, "imgforge ext4 lineage v1");
	sha256_update_str(h, what);
	sha256_update_str(h, o->lineage);
	sha256_update_str(h, o->label ? o->label : "");
	sha256_final(h, out);
	sha256_free(h);
	memcpy(ret, out, 16);
}

bool ext4_valid_lineage(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return false;
	return i > 0 && i <= 64;
}

int ext4_write(struct tree *t, const char *out_path, const struct ext4_opts *o,
	       uint64_t *ret_size, struct strbuf *err)
{
	struct writer w = { .t = t, .o = o, .err = err, .next_ino = EXT2_GOOD_OLD_FIRST_INO + 1,
			    .out_path = out_path, .fd = -1 };
	_cleanup_free_ char *tmp = NULL, *dev = NULL, *dir = path_dirname(out_path);
	struct tree_node *lf;
	bool anon = false;
	uint64_t blocks, min_blocks;
	uint8_t uuid[16], seed[16], digest[SHA256_LEN], cseed[16];
	uint32_t csum_seed = 0;
	char a[32], b[32];
	int fd = -1, r;

	initialize_ext2_error_table();
	if (o->label && strlen(o->label) > 16) {
		strbuf_addf(err, "label '%s' is longer than 16 bytes", o->label);
		return -EINVAL;
	}
	if (o->uuid && ext4_parse_uuid(o->uuid, uuid) < 0) {
		strbuf_addf(err, "'%s' is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", o->uuid);
		return -EINVAL;
	}
	if (o->lineage && !ext4_valid_lineage(o->lineage)) {
		strbuf_addf(err, "invalid lineage '%s': use letters, digits, '.', '_' and '-' "
			    "(at most 64)", quote_path(o->lineage));
		return -EINVAL;
	}
	lf = tree_lookup(t, "lost+found");
	if (!lf) {
		r = tree_add_directory(t, "lost+found", 0700, 0, 0, o->epoch, err);
		if (r < 0)
			return r;
		lf = tree_lookup(t, "lost+found");
	} else if (!S_ISDIR(lf->inode->mode)) {
		strbuf_addf(err, "'/lost+found' in the image is not a directory; ext4 needs one there");
		return -EEXIST;
	}
	w.lost_found = lf;
	tree_digest(t, o->epoch, false, digest);
	if (o->lineage) {
		derive_identity("hash seed", o, seed);
		derive_identity("checksum seed", o, cseed);
		csum_seed = (uint32_t)cseed[0] | (uint32_t)cseed[1] << 8 | (uint32_t)cseed[2] << 16 |
			    (uint32_t)cseed[3] << 24;
		if (!o->uuid) {
			derive_identity("uuid", o, uuid);
			/* Shaped like a random (version 4) UUID. */
			uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);
			uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);
		}
	} else {
		derive_seed(digest, seed);
	}
	memcpy(w.hash_seed, seed, sizeof(seed));
	r = number(&w, tree_root(t));
	if (r < 0)
		goto out_numbers;

	/*
	 * The image is written to an unnamed file in the output's directory
	 * (O_TMPFILE), which vanishes by itself whatever happens, and is given
	 * its name only when complete. libext2fs opens it by its /proc path.
	 * Where that is not possible, a named temporary file is used instead.
	 */
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
	if (fd >= 0) {
		dev = xasprintf("/proc/self/fd/%d", fd);
		if (access(dev, R_OK | W_OK) == 0) {
			anon = true;
		} else {
			close(fd);
			fd = -1;
			free(TAKE_PTR(dev));
		}
	}
	if (!anon) {
		mode_t mask = umask(0);

		umask(mask);
		tmp = xasprintf("%s.tmp-XXXXXX", out_path);
		fd = mkstemp(tmp);
		if (fd < 0) {
			r = -errno;
			strbuf_addf(err, "cannot create '%s': %s", tmp, strerror(errno));
			free(TAKE_PTR(tmp));
			goto out_numbers;
		}
		if (fchmod(fd, 0666 & ~mask) < 0) {
			r = -errno;
			strbuf_addf(err, "cannot create '%s': %s", tmp, strerror(-r));
			goto out;
		}
		dev = xstrdup(tmp);
	}

	if (o->size) {
		struct tree_stats st;

		blocks = o->size / BLOCK_SIZE;
		tree_stats(t, &st);
		if (st.largest && st.largest_data > o->size) {
			_cleanup_free_ char *p = node_path_of(&w, st.largest);
			_cleanup_free_ char *origin = tree_inode_origin(t, st.largest);

			strbuf_addf(err, "'%s' (%s) holds %s of data, more than the whole image (%s)",
				    p, origin, format_size(st.largest_data, a, sizeof(a)),
				    format_size(o->size, b, sizeof(b)));
			r = -EFBIG;
			goto out;
		}
		r = size_auto(&w, dev, 0, &min_blocks);
		if (r < 0)
			goto out;
		if (blocks < min_blocks) {
			strbuf_addf(err, "an image of %s is too small for this content, which needs at "
				    "least %s; use --size %lluM or --size auto",
				    format_size(o->size, a, sizeof(a)),
				    format_size(min_blocks * BLOCK_SIZE, b, sizeof(b)),
				    (unsigned long long)div_up(min_blocks * BLOCK_SIZE, 1 << 20));
			r = -ENOSPC;
			goto out;
		}
	} else {
		r = size_auto(&w, dev, o->headroom_percent, &blocks);
		if (r < 0)
			goto out;
	}
	if (ftruncate(fd, (off_t)(blocks * BLOCK_SIZE)) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot size the image for '%s': %s", out_path, strerror(errno));
		goto out;
	}
	/* Without --uuid or a lineage, a provisional one from the metadata; the final one comes last. */
	if (!o->uuid && !o->lineage)
		derive_uuid(digest, o, blocks, uuid);
	w.fd = fd;
	r = build(&w, dev, blocks, inodes_for(&w, blocks, o->size ? 0 : o->headroom_percent, !!o->size),
		  uuid, seed, o->lineage ? &csum_seed : NULL);
	if (r < 0)
		goto out;
	if (anon) {
		/* a name next to the output first, then the atomic rename over it */
		tmp = xasprintf("%s.tmp-%ld", out_path, (long)getpid());
		unlink(tmp);
		if (linkat(AT_FDCWD, dev, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) < 0) {
			r = -errno;
			strbuf_addf(err, "cannot create '%s': %s", tmp, strerror(errno));
			free(TAKE_PTR(tmp));
			goto out;
		}
	}
	if (rename(tmp, out_path) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot rename '%s' to '%s': %s", tmp, out_path, strerror(errno));
		goto out;
	}
	if (ret_size)
		*ret_size = blocks * BLOCK_SIZE;
	r = 0;
out:
	if (w.fs)
		ext2fs_free(w.fs);
	if (r < 0 && tmp)
		unlink(tmp);
	if (fd >= 0)
		close(fd);
out_numbers:
	for (size_t k = 0; k < w.n_order; k++)
		w.order[k]->inode->ino = 0;
	free(w.order);
	free(w.stage);
	return r;
}
