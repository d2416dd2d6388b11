/* SPDX-License-Identifier: MIT */
/*
 * The chunk index (chunkidx.h): written by the bundle writer, read by the
 * bundle reader (which checks it against the payload) and by the device's
 * delta download. Everything in it is checked against the manifest before
 * any field is used: it is never trusted beyond its SHA-256, and even then
 * it only says where to look.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <zstd.h>

#include "core/hash.h"
#include "update/chunkidx.h"

#define HEADER 24

static int fail(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static void put_be(uint8_t *p, uint64_t v, unsigned n)
{
	while (n--) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

void chunkidx_hash_blocks(const uint8_t (*bh)[SHA256_LEN], size_t n,
			  uint8_t out[CHUNKIDX_HASH_LEN])
{
	struct sha256 *h = sha256_new();
	uint8_t d[SHA256_LEN];

	sha256_update(h, bh, n * SHA256_LEN);
	sha256_final(h, d);
	sha256_free(h);
	memcpy(out, d, CHUNKIDX_HASH_LEN);
}

void chunkidx_hash(const void *data, size_t len, uint8_t out[CHUNKIDX_HASH_LEN])
{
	size_t n = (len + CHUNKIDX_BLOCK - 1) / CHUNKIDX_BLOCK, i;
	_cleanup_free_ uint8_t(*bh)[SHA256_LEN] = xcalloc(n ? n : 1, SHA256_LEN);
	struct sha256 *h = sha256_new();

	for (i = 0; i < n; i++) {
		size_t l = len - i * CHUNKIDX_BLOCK < CHUNKIDX_BLOCK ? len - i * CHUNKIDX_BLOCK
								  : CHUNKIDX_BLOCK;

		sha256_update(h, (const uint8_t *)data + i * CHUNKIDX_BLOCK, l);
		sha256_final(h, bh[i]);
	}
	sha256_free(h);
	chunkidx_hash_blocks((const uint8_t(*)[SHA256_LEN])bh, n, out);
}

void chunkidx_add(struct chunkidx *x, uint32_t stored, const uint8_t hash[CHUNKIDX_HASH_LEN])
{
	size_t a = x->alloc;

	GROW(x->stored, a, x->n_frames + 1);
	GROW(x->hash, x->alloc, x->n_frames + 1);
	x->stored[x->n_frames] = stored;
	memcpy(x->hash[x->n_frames], hash, CHUNKIDX_HASH_LEN);
	x->n_frames++;
}

int chunkidx_encode(const struct chunkidx *x, struct strbuf *out, char *err, size_t errlen)
{
	size_t raw_len = HEADER + x->n_frames * (4 + CHUNKIDX_HASH_LEN), bound, zn, i;
	_cleanup_free_ uint8_t *raw = xmalloc(raw_len);
	_cleanup_free_ uint8_t *z = NULL;

	memcpy(raw, CHUNKIDX_MAGIC, 8);
	put_be(raw + 8, x->frame_size, 4);
	put_be(raw + 12, CHUNKIDX_HASH_LEN, 4);
	put_be(raw + 16, x->n_frames, 8);
	for (i = 0; i < x->n_frames; i++) {
		put_be(raw + HEADER + 4 * i, x->stored[i], 4);
		memcpy(raw + HEADER + 4 * x->n_frames + CHUNKIDX_HASH_LEN * i, x->hash[i],
		       CHUNKIDX_HASH_LEN);
	}
	bound = ZSTD_compressBound(raw_len);
	z = xmalloc(bound);
	zn = ZSTD_compress(z, bound, raw, raw_len, CHUNKIDX_LEVEL);
	if (ZSTD_isError(zn)) {
		snprintf(err, errlen, "cannot compress the chunk index: %s", ZSTD_getErrorName(zn));
		return -1;
	}
	if (zn > MANIFEST_MAX_INDEX_SIZE) {
		snprintf(err, errlen, "the chunk index is %zu bytes, more than %u: the image is "
			 "too large", zn, MANIFEST_MAX_INDEX_SIZE);
		return -1;
	}
	strbuf_add(out, z, zn);
	return 0;
}

void chunkidx_free(struct chunkidx *x)
{
	if (!x)
		return;
	free(x->stored);
	free(x->hash);
	free(x->first);
	free(x->stored_off);
	free(x);
}

int chunkidx_decode(const void *data, size_t len, const struct bundle_manifest *m,
		    struct chunkidx **ret, char *err, size_t errlen)
{
	uint64_t want = 0, csize, pos = 0;
	_cleanup_free_ uint8_t *raw = NULL;
	struct chunkidx *x = NULL;
	size_t i, f, raw_len, got;
	int r = -EINVAL;

	if (m->format < 2)
		return fail(err, errlen, "a format-%u bundle has no chunk index", m->format);
	for (i = 0; i < m->n_chunks; i++)
		want += manifest_chunk_frames(m, &m->chunks[i]);
	/* The content's exact length follows from the manifest: nothing else is allocated. */
	raw_len = HEADER + (size_t)want * (4 + CHUNKIDX_HASH_LEN);
	csize = ZSTD_getFrameContentSize(data, len);
	if (ZSTD_findFrameCompressedSize(data, len) != len || csize != raw_len)
		return fail(err, errlen,
			    "invalid chunk index: not one zstd frame of %zu bytes (%" PRIu64
			    " frames)",
			    raw_len, want);
	raw = xmalloc(raw_len);
	got = ZSTD_decompress(raw, raw_len, data, len);
	if (ZSTD_isError(got) || got != raw_len)
		return fail(err, errlen, "invalid chunk index: it does not decompress (%s)",
			    ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
	if (memcmp(raw, CHUNKIDX_MAGIC, 8) || get_be(raw + 8, 4) != m->frame_size ||
	    get_be(raw + 12, 4) != CHUNKIDX_HASH_LEN || get_be(raw + 16, 8) != want)
		return fail(err, errlen,
			    "invalid chunk index: its header does not match the manifest (magic, "
			    "frame size %" PRIu64 ", %d-byte digests, %" PRIu64 " frames)",
			    m->frame_size, CHUNKIDX_HASH_LEN, want);
	x = xcalloc(1, sizeof(*x));
	x->frame_size = m->frame_size;
	x->n_frames = (size_t)want;
	x->alloc = x->n_frames;
	x->stored = xcalloc(x->n_frames + 1, sizeof(*x->stored));
	x->hash = xcalloc(x->n_frames + 1, sizeof(*x->hash));
	x->stored_off = xcalloc(x->n_frames + 1, sizeof(*x->stored_off));
	x->n_chunks = m->n_chunks;
	x->first = xcalloc(m->n_chunks + 1, sizeof(*x->first));
	for (f = 0; f < x->n_frames; f++) {
		x->stored[f] = (uint32_t)get_be(raw + HEADER + 4 * f, 4);
		memcpy(x->hash[f], raw + HEADER + 4 * x->n_frames + CHUNKIDX_HASH_LEN * f,
		       CHUNKIDX_HASH_LEN);
	}
	for (i = 0, f = 0; i < m->n_chunks; i++) {
		const struct bundle_chunk *c = &m->chunks[i];
		uint64_t n = manifest_chunk_frames(m, c), sum = 0, k;

		x->first[i] = f;
		for (k = 0; k < n; k++, f++) {
			if (x->stored[f] == 0 || x->stored[f] > c->stored_size) {
				fail(err, errlen,
				     "invalid chunk index: frame %zu of chunk %zu has a stored size "
				     "of %" PRIu32 " bytes",
				     f, i, x->stored[f]);
				goto out;
			}
			x->stored_off[f] = pos;
			pos += x->stored[f];
			sum += x->stored[f];
		}
		if (sum != c->stored_size) {
			fail(err, errlen,
			     "invalid chunk index: the frames of chunk %zu store %" PRIu64
			     " bytes, the manifest says %" PRIu64,
			     i, sum, c->stored_size);
			goto out;
		}
	}
	x->first[m->n_chunks] = f;
	*ret = x;
	x = NULL;
	r = 0;
out:
	chunkidx_free(x);
	return r;
}
