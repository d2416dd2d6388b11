/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_AGENT_DELTA_H
#define IMGFORGE_AGENT_DELTA_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"
#include "update/manifest.h"

/*
 * The delta download of a format-2 bundle over http(s) (docs/update.md,
 * "Delta downloads"): the header, manifest and signature, then the chunk
 * index, then only the frames that neither the target slot (what an
 * interrupted install left) nor the running slot already holds, each by its
 * byte range of the same URL. Every chunk is checked against its SHA-256
 * in the signed manifest before it is written.
 */
struct delta;

/*
 * Fetch and verify the bundle's signed head. Returns 0 with *ret and *ret_m
 * (the caller's: delta_free(), bundle_manifest_free()); 1 when the server
 * ignores Range or the bundle has no chunk index (download the whole bundle
 * instead; nothing to free); -1 with one line in err.
 */
int delta_open(const char *url, const char *keyring, struct delta **ret,
	       struct bundle_manifest **ret_m, struct strbuf *err);
/* The bundle's size as the server gives it. */
uint64_t delta_bundle_size(const struct delta *d);
/* Bytes downloaded so far (retries included). */
uint64_t delta_downloaded(const struct delta *d);
/*
 * Before anything is written: hash what the running slot's device source
 * holds (4 KiB blocks, whole chunks at their place), look at what the
 * target (target_fd, read only) holds whole already, then fetch and check
 * the chunk index, unless the chunks neither holds are smaller together
 * than the index: they are then fetched whole.
 */
int delta_prepare(struct delta *d, const char *source, int target_fd, struct strbuf *err);
/*
 * Before anything is written: assemble and check every chunk the target
 * lacks (target_fd read only), keeping the fetched frames in memory, up to
 * 64 MiB of them: a damaged bundle is refused with the target untouched,
 * and delta_write() fetches nothing again. Past 64 MiB the check stops
 * (delta_checked_all() false) and delta_write() checks the rest chunk by
 * chunk as it writes.
 */
int delta_check(struct delta *d, int target_fd, struct strbuf *err);
/*
 * Keep what is fetched in the file path too (synced after each range) and
 * take back what an interrupted install of the same bundle left there:
 * killed while checking, the install loses at most the range in flight.
 * 0, or -errno (then without a spool). The caller removes the file once
 * the slot is written.
 */
int delta_spool_open(struct delta *d, const char *path);
bool delta_checked_all(const struct delta *d);
/*
 * Write the image into target_fd: chunks the target already holds are
 * kept, the others assembled from the target, the source and fetched
 * frames, checked, then handed to emit (zeros to emit_zero). A chunk whose
 * assembly does not match is fetched whole once more; a fetched chunk that
 * does not match is refused before it is written.
 */
int delta_write(struct delta *d, int target_fd,
		int (*emit)(void *ectx, uint64_t off, const void *data, size_t len),
		int (*emit_zero)(void *ectx, uint64_t off, uint64_t len), void *ectx,
		struct strbuf *err);
/* One line: what came from where. */
void delta_summary(const struct delta *d, struct strbuf *out);
void delta_free(struct delta *d);

#endif
