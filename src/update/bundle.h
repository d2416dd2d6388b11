/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_BUNDLE_H
#define IMGFORGE_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "update/manifest.h"

/*
 * Update bundles (docs/update.md): one file, read front to back, so it can
 * be streamed over HTTP. All integers big-endian:
 *
 *   0      8  magic "IMGFBND1"
 *   8      4  format version = 1
 *   12     4  manifest length M (<= 4 MiB)
 *   16     4  signature length S (<= 64 KiB)
 *   20     4  reserved = 0
 *   24     M  manifest (compact JSON)
 *   24+M   S  signature: DER CMS SignedData, detached, over bytes [0, 24+M)
 *   (format 3)   the chunk index (chunkidx.h): directory and pages
 *   then         payload: the stored chunks back to back, in order
 *   (format 2)   the chunk index (chunkidx.h), chunk_index.size bytes
 *
 * Formats 2 and 3 store each chunk as independent zstd frames of
 * frame_size image bytes; format 1 as one frame. Format 3 keeps the chunk
 * list out of the manifest, in the index's pages.
 *
 * Every function returns 0 or -1 with one message (what, where, what to
 * do) in err.
 */
#define BUNDLE_MAGIC	     "IMGFBND1"
#define BUNDLE_HEADER_SIZE   24
#define BUNDLE_FORMAT	     3 /* written; 1 and 2 are still read (and written on request) */
#define BUNDLE_FORMAT_MIN    1
#define BUNDLE_FORMAT_MAX    4 /* read; written with a patch (--delta-from) */
#define BUNDLE_MAX_MANIFEST  (4u << 20)
#define BUNDLE_MAX_SIGNATURE (64u << 10)
#define BUNDLE_CHUNK_SIZE    (1u << 20)
#define BUNDLE_ZSTD_LEVEL    10
/*
 * Formats 2 and 3: the unit a delta download fetches, by default
 * (docs/performance.md for why 64 KiB). The manifest records each bundle's
 * frame_size, so a bundle may be written with another power of two from
 * BUNDLE_FRAME_SIZE_MIN to BUNDLE_FRAME_SIZE_MAX (`--frame-size`) and the
 * agent reads it all the same.
 */
#define BUNDLE_FRAME_SIZE     (64u << 10)
#define BUNDLE_FRAME_SIZE_MIN (4u << 10)
#define BUNDLE_FRAME_SIZE_MAX BUNDLE_CHUNK_SIZE

/* Read up to len bytes: the count read, 0 at the end of the stream, < 0 on error. */
typedef ssize_t (*bundle_read_fn)(void *ctx, void *buf, size_t len);

/* A bundle_read_fn over a file descriptor: ctx points to the int. */
ssize_t bundle_read_fd(void *ctx, void *buf, size_t len);

/* A bundle_read_fn over memory: ctx points to a struct bundle_mem. */
struct bundle_mem {
	const uint8_t *p;
	size_t len, pos;
};
ssize_t bundle_read_mem(void *ctx, void *buf, size_t len);

/*
 * Read header, manifest and signature from the stream, verify the
 * signature against the keyring (sign.h), parse the manifest. The stream is
 * then at the payload. *ret is the caller's (bundle_manifest_free()).
 */
int bundle_open(bundle_read_fn rd, void *ctx, const char *keyring, struct bundle_manifest **ret,
		char *err, size_t errlen);

/*
 * bundle_open() up to the signature and the manifest only: for a format-3
 * bundle the chunk index is not read (m has no chunks): the delta download
 * fetches the parts of it it needs.
 */
int bundle_open_head(bundle_read_fn rd, void *ctx, const char *keyring,
		     struct bundle_manifest **ret, char *err, size_t errlen);

/*
 * The same without a keyring: the signature is read but NOT checked. For
 * `imgforge bundle info` only; never install from what this returns.
 * ret_sig/ret_siglen (may be NULL) get the signature (the caller's).
 */
int bundle_open_unverified(bundle_read_fn rd, void *ctx, struct bundle_manifest **ret,
			   uint8_t **ret_sig, size_t *ret_siglen, char *err, size_t errlen);

/*
 * Stream the payload (after bundle_open on the same stream): for each image
 * range in order, emit(ectx, offset, data, len) with verified uncompressed
 * bytes; omitted zero chunks as emit_zero(ectx, offset, len). Checks every
 * chunk's SHA-256, the payload's, the image's, and that the stream ends with
 * the payload, before returning 0. A callback returning < 0 stops the
 * stream; its message is then "cannot write ..." unless err already holds
 * one (a callback may write into err).
 */
int bundle_stream_payload(bundle_read_fn rd, void *ctx, const struct bundle_manifest *m,
			  int (*emit)(void *ectx, uint64_t off, const void *data, size_t len),
			  int (*emit_zero)(void *ectx, uint64_t off, uint64_t len), void *ectx,
			  char *err, size_t errlen);

/*
 * Decompress frames first .. first+n-1 of chunk c (frame numbers within the
 * chunk) from exactly in_len stored bytes into out, the chunk's buffer (frame
 * k at out + k * frame_size). Each must be one zstd frame of its size.
 * ret_stored (may be NULL) gets each frame's stored size. The caller checks
 * the chunk's SHA-256.
 */
int bundle_decode_frames(const struct bundle_manifest *m, const struct bundle_chunk *c,
			 uint64_t first, uint64_t n, const uint8_t *in, size_t in_len, uint8_t *out,
			 uint32_t *ret_stored, char *err, size_t errlen);

/*
 * Whether a device running (compatible, running_version) may install m:
 * the compatible names must be equal; a lower version (strverscmp(3)) is
 * refused unless allow_downgrade, the same version unless force.
 * running_version NULL skips the version rule.
 */
int bundle_check_target(const struct bundle_manifest *m, const char *compatible,
			const char *running_version, bool allow_downgrade, bool force, char *err,
			size_t errlen);

/*
 * Host side: write a bundle of the ext4 image image_path to out_path
 * (through out_path.tmp, fsync, rename, directory fsync), signed with the
 * private key and certificate in the PEM files key_pem and cert_pem.
 * build_id may be NULL or "".
 */
int bundle_create(const char *image_path, const char *out_path, const char *key_pem,
		  const char *cert_pem, const char *compatible, const char *version,
		  const char *build_id, int64_t created, char *err, size_t errlen);
/*
 * The same in format 1 or 2 (for devices whose agent reads no newer) or 3
 * (bundle_create()), with frames of frame_size image bytes (formats 2 and
 * 3; 0 for BUNDLE_FRAME_SIZE; bundle_frame_size_valid()).
 */
int bundle_create_format(const char *image_path, const char *out_path, const char *key_pem,
			 const char *cert_pem, const char *compatible, const char *version,
			 const char *build_id, int64_t created, unsigned format,
			 uint64_t frame_size, char *err, size_t errlen);

/*
 * The same with a patch from the earlier image patch_from (update/patch.h;
 * NULL: none): the bundle is then format 4, unless the patch would be
 * larger than PATCH_MAX_SIZE (format 3, *ret_patched -1). *ret_patched (may
 * be NULL): 1 with a patch, 0 without one asked.
 */
int bundle_create_patch(const char *image_path, const char *out_path, const char *key_pem,
			const char *cert_pem, const char *compatible, const char *version,
			const char *build_id, int64_t created, unsigned format, uint64_t frame_size,
			const char *patch_from, int *ret_patched, char *err, size_t errlen);

/* Whether a bundle may be written with frames of n image bytes. */
static inline bool bundle_frame_size_valid(uint64_t n)
{
	return n >= BUNDLE_FRAME_SIZE_MIN && n <= BUNDLE_FRAME_SIZE_MAX && !(n & (n - 1));
}

#endif
