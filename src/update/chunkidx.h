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
/*
 * The frames of m's chunks as an index (first[], stored_off[] set): for a
 * format-3 manifest whose pages were read (m->frame_stored, m->frame_hash).
 * The caller's: chunkidx_free().
 */
struct chunkidx *chunkidx_from_manifest(const struct bundle_manifest *m);

/*
 * Format 3: the index in pages, between the signature and the payload, so
 * that a device fetches only the pages of the part of the image it does not
 * hold already, and a stream reader has the chunk list before the payload.
 * Integers big-endian. The directory, not compressed (the manifest signs
 * its SHA-256; its size follows from the manifest):
 *
 *   0      8  magic "IMGFDIR1"
 *   8      4  chunks per page P (the manifest's page_chunks)
 *   12     4  pages N = ceil(image size / (P × chunk size))
 *   16     8  the pages' total size (the index's size less the directory's)
 *   24+80i    page i: 8 payload offset of its first stored chunk,
 *             4 stored chunks C, 4 stored size (0 when C is 0),
 *             32 its SHA-256, 32 its region digest (chunkidx_region())
 *
 * then the pages back to back, each one zstd frame (level 19, content size
 * set) of: magic "IMGFPAG1" (8), page number (4), C (4), each chunk's
 * number within the page (4C), stored size (4C), SHA-256 (32C), then the
 * F frames of those chunks: stored sizes (4F), digests (8F).
 */
#define CHUNKDIR_MAGIC	     "IMGFDIR1"
#define CHUNKPAGE_MAGIC	     "IMGFPAG1"
#define CHUNKIDX_PAGE_CHUNKS 16

struct chunkdir_page {
	uint64_t stored_offset; /* of its first stored chunk, in the payload */
	uint64_t index_offset;	/* where the page starts, from the index's start */
	uint32_t n_chunks, size;
	uint8_t sha256[32];
	uint8_t region[32];
};

struct chunkdir {
	size_t n_pages;
	struct chunkdir_page *pages;
};

/*
 * A page's region digest: the SHA-256 of the SHA-256s of the 4 KiB blocks
 * of its image bytes (P chunks, the last page what is left; the image's
 * last block what is left). A device holding the same bytes at the same
 * place has them already, from the block hashes it computes anyway.
 */
void chunkidx_region(const uint8_t (*bh)[32], size_t n, uint8_t out[32]);
/*
 * Host side: the format-3 index of m (every chunk, in order) with the
 * frames x and each page's region digest, appended to out; sets
 * m->index_size and m->chunk_index_sha256. 0 or -1 with a message.
 */
int chunkidx_encode_pages(struct bundle_manifest *m, const struct chunkidx *x,
			  const uint8_t (*region)[32], struct strbuf *out, char *err,
			  size_t errlen);
/* Read the directory (exactly manifest_dir_size(m) bytes, its SHA-256 checked here). */
int chunkdir_decode(const void *data, size_t len, const struct bundle_manifest *m,
		    struct chunkdir **ret, char *err, size_t errlen);
void chunkdir_free(struct chunkdir *dir);
/*
 * Read page p (its size bytes from the directory, its SHA-256 checked
 * here) and append its chunks and frames to m (after those of the pages
 * before it that were read). 0, or -EINVAL with one line in err.
 */
int chunkpage_decode(const void *data, size_t len, struct bundle_manifest *m,
		     const struct chunkdir *dir, size_t p, char *err, size_t errlen);

#endif
