/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_MANIFEST_H
#define IMGFORGE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/*
 * The manifest of an update bundle (docs/update.md): compact JSON, written
 * here with core/json.c and read back with update/jsonr.c, every key and
 * limit checked. The structures are those of update/bundle.h.
 */
/*
 * Format 4 is format 3 with a patch from one earlier image (update/patch.h).
 * Format 3 (written by default) moves the chunk list out of the manifest into a paged
 * chunk index before the payload; 2 cuts each chunk into frames and carries
 * the index whole after the payload; 1 has neither. All three are read.
 */
#define MANIFEST_FORMAT		4
#define MANIFEST_FORMAT_MIN	1
#define MANIFEST_MAX_CHUNKS	1048576
#define MANIFEST_MAX_STRING	256
#define MANIFEST_MIN_CHUNK_SIZE 4096
#define MANIFEST_MAX_CHUNK_SIZE (64u << 20)
/* The chunk index (update/chunkidx.h), stored compressed: at most 64 MiB. */
#define MANIFEST_MAX_INDEX_SIZE (64u << 20)
/* Format 3: chunks per page of the index (16 as written). */
#define MANIFEST_MAX_PAGE_CHUNKS 4096

struct bundle_chunk {
	uint64_t offset, size, stored_offset, stored_size;
	uint8_t sha256[32];
};

struct bundle_manifest {
	unsigned format;
	char *compatible, *version, *build_id;
	int64_t created;
	uint64_t image_size;
	uint8_t image_sha256[32];
	uint64_t chunk_size, payload_offset, payload_size;
	uint8_t payload_sha256[32];
	struct bundle_chunk *chunks;
	size_t n_chunks;
	/*
	 * Format 2: each stored chunk is ceil(size / frame_size) zstd frames
	 * back to back, each of frame_size image bytes (the last one what is
	 * left), so that a delta download can fetch one frame by its byte
	 * range. Format 1: frame_size == chunk_size, one frame per chunk.
	 */
	uint64_t frame_size;
	/*
	 * The chunk index (delta downloads): format 2 stores it right after the
	 * payload, index_size bytes with the SHA-256 chunk_index_sha256. In
	 * format 1 the field was reserved: null or a digest, nothing stored.
	 */
	bool has_chunk_index;
	uint8_t chunk_index_sha256[32];
	uint64_t index_size;
	/*
	 * Format 3: the index is a directory (chunk_index_sha256 is its digest)
	 * and pages of page_chunks chunks each, between the signature and the
	 * payload (update/chunkidx.h); the manifest holds no chunk list. chunks
	 * and the frames below are filled from the pages by bundle_open(), and
	 * only from the pages fetched by a delta download.
	 */
	uint32_t page_chunks;
	/*
	 * Format 4: format 3 and a patch (update/patch.h) after the payload,
	 * patch_size bytes at patch_offset with patch_sha256, that makes the
	 * image from the earlier image of patch_from_size bytes with
	 * patch_from_sha256.
	 */
	bool has_patch;
	uint64_t patch_from_size, patch_offset, patch_size;
	uint8_t patch_from_sha256[32], patch_sha256[32];
	size_t n_frames;
	uint32_t *frame_stored;
	uint8_t (*frame_hash)[8];
};

/* Where the payload starts for a format-3 bundle: after the index. */
static inline bool manifest_index_first(const struct bundle_manifest *m)
{
	return m->format >= 3;
}

/* The most stored bytes a chunk of m may have (its frames' compression bounds). */
uint64_t manifest_max_stored(const struct bundle_manifest *m);
/* How many frames the chunk c of m is stored as. */
static inline uint64_t manifest_chunk_frames(const struct bundle_manifest *m,
					     const struct bundle_chunk *c)
{
	return (c->size + m->frame_size - 1) / m->frame_size;
}

/* Format 3: the number of pages of the index, and the size of its directory. */
static inline uint64_t manifest_pages(const struct bundle_manifest *m)
{
	uint64_t span = (uint64_t)m->page_chunks * m->chunk_size;

	return (m->image_size + span - 1) / span;
}
#define CHUNKDIR_HEADER 24
#define CHUNKDIR_ENTRY	80
static inline uint64_t manifest_dir_size(const struct bundle_manifest *m)
{
	return CHUNKDIR_HEADER + CHUNKDIR_ENTRY * manifest_pages(m);
}

/* Append m as compact JSON, keys in the documented order, to out. */
void manifest_write(const struct bundle_manifest *m, struct strbuf *out);
/*
 * Parse and check a manifest. Returns 0 with *ret (the caller's:
 * bundle_manifest_free()) or -EINVAL with one message in err.
 */
int manifest_parse(const char *json, size_t len, struct bundle_manifest **ret, char *err,
		   size_t errlen);
void bundle_manifest_free(struct bundle_manifest *m);
/* compatible and version: 1..256 bytes of [A-Za-z0-9._+~-]. */
bool manifest_name_valid(const char *s);

#endif
