/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CHUNKIDX_H
#define IMGFORGE_CHUNKIDX_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "update/manifest.h"

/*
 * The chunk index of a format-2 bundle (docs/update.md): for every stored
 * frame of the payload, in payload order, its stored (compressed) size and
 * the first CHUNKIDX_HASH_LEN bytes of the SHA-256 of its image bytes. A
 * device looks the frames up in what it already has and fetches only the
 * missing ones by their byte range. The truncated digest only finds
 * candidates: every chunk is checked against its full SHA-256 in the signed
 * manifest before it is written, and the index's own SHA-256 is in the
 * manifest.
 *
 * Stored as one zstd frame whose content is, integers big-endian:
 *
 *   0      8  magic "IMGFIDX1"
 *   8      4  frame size (the manifest's frame_size)
 *   12     4  digest length, 8
 *   16     8  number of frames N
 *   24    4N  the frames' stored sizes
 *   24+4N 8N  the frames' truncated digests (chunkidx_hash())
 *
 * (columns, not rows: the sizes compress, the digests do not).
 */
#define CHUNKIDX_MAGIC	  "IMGFIDX1"
#define CHUNKIDX_HASH_LEN 8
#define CHUNKIDX_LEVEL	  19

struct chunkidx {
	uint64_t frame_size;
	size_t n_frames, alloc;
	uint32_t *stored;		     /* each frame's stored size */
	uint8_t (*hash)[CHUNKIDX_HASH_LEN]; /* each frame's truncated SHA-256 */
	/* After chunkidx_decode(): */
	size_t n_chunks;
	size_t *first;	       /* chunk i's frames are first[i] .. first[i+1]-1 */
	uint64_t *stored_off; /* each frame's offset in the payload */
};

/*
 * A frame's digest is over the SHA-256 of each of its 4 KiB blocks, not its
 * bytes: a device hashes every block of its running slot once and then
 * finds a frame at any 4 KiB boundary (ext4 allocates in 4 KiB blocks, so
 * a file moved by a block is still found) for 512 bytes of hashing per
 * place: the truncated SHA-256 of the blocks' SHA-256s, concatenated.
 */
#define CHUNKIDX_BLOCK 4096
void chunkidx_hash(const void *data, size_t len, uint8_t out[CHUNKIDX_HASH_LEN]);
/* The same from the blocks' SHA-256s (n of them). */
void chunkidx_hash_blocks(const uint8_t (*bh)[32], size_t n, uint8_t out[CHUNKIDX_HASH_LEN]);
/* Host side: append a frame (x zero-initialised, frame_size set). */
void chunkidx_add(struct chunkidx *x, uint32_t stored, const uint8_t hash[CHUNKIDX_HASH_LEN]);
/* Append the stored (compressed) index to out. Returns 0 or -1 with a message. */
int chunkidx_encode(const struct chunkidx *x, struct strbuf *out, char *err, size_t errlen);
/*
 * Read a stored index and check it against the manifest m it belongs to:
 * the frame size, one entry per frame of m's chunks, each chunk's frames
 * filling exactly its stored bytes. Returns 0 with *ret (the caller's:
 * chunkidx_free()), or -EINVAL with one line in err.
 */
int chunkidx_decode(const void *data, size_t len, const struct bundle_manifest *m,
		    struct chunkidx **ret, char *err, size_t errlen);
void chunkidx_free(struct chunkidx *x);

#endif
