/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_PATCH_H
#define IMGFORGE_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The patch of a format-4 bundle (docs/update.md, "The patch"): how to make
 * the bundle's image from one named earlier image (its size and SHA-256 in
 * the signed manifest), 4 KiB block by block: the same block at the same
 * place, zeros, a run of blocks from elsewhere in the earlier image, or new
 * data. The new data of each 1 MiB chunk is one zstd frame compressed with
 * the earlier image's bytes at the same place as its prefix (zstd's
 * "patch-from"), so a block that changed by a few bytes (an inode table
 * block, a directory block) costs a few bytes. A device running exactly
 * that earlier image fetches the section (one range per MiB), checks its
 * SHA-256 against the manifest and makes every chunk from it and its own
 * slot; any other device ignores it and fetches frames as in format 3.
 *
 * Layout, integers big-endian:
 *
 *   0      8  magic "IMGFPAT1"
 *   8      4  H: the head's stored size
 *   12     H  the head: one zstd frame (with its content size) of
 *                0   8  magic "IMGFPAH1"
 *                8   8  the image size (a multiple of 4096)
 *                16  8  the earlier image's size (a multiple of 4096)
 *                24  4  the chunk size
 *                28  4  operations N
 *                32  4  changed chunks C
 *                36  13N each operation: type (1: 0 same, 1 zero, 2 copy,
 *                        3 data), blocks (4), first source block (8, copy
 *                        only, else 0), covering the image in order
 *                ..  40C each changed chunk, increasing: its number (4), its
 *                        data frame's stored size (4, 0: none), its SHA-256
 *   12+H   the data frames of the changed chunks, in order
 *
 * A chunk is changed when any of its blocks is not "same"; the others are
 * the earlier image's bytes at their place.
 */
#define PATCH_MAGIC	 "IMGFPAT1"
#define PATCH_HEAD_MAGIC "IMGFPAH1"
#define PATCH_BLOCK	 4096
/* The largest patch written and taken: a device holds it in memory. */
#define PATCH_MAX_SIZE (64u << 20)

enum patch_op_type { PATCH_SAME, PATCH_ZERO, PATCH_COPY, PATCH_DATA };

struct patch_op {
	uint8_t type;
	uint32_t count;
	uint64_t arg;  /* PATCH_COPY: the first source block */
	uint64_t first; /* the op's first image block (decoded) */
};

struct patch {
	uint64_t image_size, source_size, chunk_size;
	struct patch_op *ops;
	size_t n_ops, n_chunks;
	/* per chunk of the image */
	bool *changed;
	uint8_t (*sha256)[32];
	uint64_t *data_off; /* in the section */
	uint32_t *data_len;
	uint32_t *data_blocks;
	const uint8_t *buf; /* the section (the caller's) */
	size_t len;
	void *dctx;
};

/*
 * Host side: the patch that makes the image tgt_path from src_path, written
 * to out_fd (from its current position); *ret_size and ret_sha256 get the
 * section's size and SHA-256, src_sha256 the earlier image's. Returns 0, 1
 * when the patch would be larger than PATCH_MAX_SIZE (nothing useful was
 * written), -1 with one message in err.
 */
int patch_create(const char *src_path, const char *tgt_path, uint64_t chunk_size, int out_fd,
		 uint64_t *ret_src_size, uint8_t src_sha256[32], uint64_t *ret_size,
		 uint8_t ret_sha256[32], char *err, size_t errlen);

/*
 * Check a section (buf, len: its SHA-256 already checked against the signed
 * manifest) for an image of image_size bytes in chunks of chunk_size made
 * from an earlier image of source_size bytes. 0 with *ret (patch_free()), or
 * -1 with one message.
 */
int patch_decode(const uint8_t *buf, size_t len, uint64_t image_size, uint64_t chunk_size,
		 uint64_t source_size, struct patch **ret, char *err, size_t errlen);

/*
 * Chunk i of the image into out (chunk_size bytes), from the earlier image
 * (src_fd) and the patch; ref is a scratch buffer of chunk_size bytes.
 * block_sha256 (may be NULL): the SHA-256 of each 4 KiB block of the
 * earlier image as first read: each block read is checked against it (the
 * running slot changed during the install: -1). Returns the chunk's length,
 * or -1 with one message.
 */
ssize_t patch_chunk(struct patch *p, size_t i, int src_fd, const uint8_t (*block_sha256)[32],
		    uint8_t *ref, uint8_t *out, char *err, size_t errlen);

void patch_free(struct patch *p);

#endif
