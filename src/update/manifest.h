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
#define MANIFEST_FORMAT		1
#define MANIFEST_MAX_CHUNKS	1048576
#define MANIFEST_MAX_STRING	256
#define MANIFEST_MIN_CHUNK_SIZE 4096
#define MANIFEST_MAX_CHUNK_SIZE (64u << 20)

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
	/* Added after the first contract: the digest of the chunk index (delta updates). */
	bool has_chunk_index;
	uint8_t chunk_index_sha256[32];
};

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
