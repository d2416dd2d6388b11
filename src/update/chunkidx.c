/* SPDX-License-Identifier: MIT */
/*
 * The chunk index (chunkidx.h): written by the bundle writer, read by the
 * bundle reader (which checks it against the payload) and by the device's
 * delta download. Everything in it is checked against the manifest before
 * any field is used: it is never trusted beyond its SHA-256, and even then
 * it only says where to look.
 */
#include <assert.h>
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

/*
 * Frames x->stored[] are those of the n chunks c, in order: each frame
 * stores 1 byte or more, a chunk's frames exactly its stored bytes. Sets
 * first[] and stored_off[] (from each chunk's stored offset).
 */
static int link_frames(struct chunkidx *x, const struct bundle_manifest *m,
		       const struct bundle_chunk *c, size_t n, char *err, size_t errlen)
{
	size_t i, f = 0;

	x->n_chunks = n;
	x->first = xcalloc(n + 1, sizeof(*x->first));
	x->stored_off = xcalloc(x->n_frames + 1, sizeof(*x->stored_off));
	for (i = 0; i < n; i++) {
		uint64_t nf = manifest_chunk_frames(m, &c[i]), pos = c[i].stored_offset, k;

		x->first[i] = f;
		if (nf > x->n_frames - f)
			return fail(err, errlen, "invalid chunk index: too few frames for chunk %zu",
				    i);
		for (k = 0; k < nf; k++, f++) {
			if (x->stored[f] == 0 || x->stored[f] > c[i].stored_size)
				return fail(err, errlen,
					    "invalid chunk index: frame %zu of chunk %zu has a stored "
					    "size of %" PRIu32 " bytes",
					    f, i, x->stored[f]);
			x->stored_off[f] = pos;
			pos += x->stored[f];
		}
		if (pos - c[i].stored_offset != c[i].stored_size)
			return fail(err, errlen,
				    "invalid chunk index: the frames of chunk %zu store %" PRIu64
				    " bytes, the manifest says %" PRIu64,
				    i, pos - c[i].stored_offset, c[i].stored_size);
	}
	x->first[n] = f;
	return 0;
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
	uint64_t want = 0, csize;
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
	for (f = 0; f < x->n_frames; f++) {
		x->stored[f] = (uint32_t)get_be(raw + HEADER + 4 * f, 4);
		memcpy(x->hash[f], raw + HEADER + 4 * x->n_frames + CHUNKIDX_HASH_LEN * f,
		       CHUNKIDX_HASH_LEN);
	}
	if (link_frames(x, m, m->chunks, m->n_chunks, err, errlen) < 0)
		goto out;
	*ret = x;
	x = NULL;
	r = 0;
out:
	chunkidx_free(x);
	return r;
}

struct chunkidx *chunkidx_from_manifest(const struct bundle_manifest *m)
{
	struct chunkidx *x = xcalloc(1, sizeof(*x));
	char err[8];

	x->frame_size = m->frame_size;
	x->n_frames = x->alloc = m->n_frames;
	x->stored = xcalloc(x->n_frames + 1, sizeof(*x->stored));
	x->hash = xcalloc(x->n_frames + 1, sizeof(*x->hash));
	if (m->n_frames) {
		memcpy(x->stored, m->frame_stored, m->n_frames * sizeof(*x->stored));
		memcpy(x->hash, m->frame_hash, m->n_frames * sizeof(*x->hash));
	}
	/* chunkpage_decode() checked the frames against the chunks already. */
	if (link_frames(x, m, m->chunks, m->n_chunks, err, sizeof(err)) < 0)
		assert(!"frames checked by chunkpage_decode()");
	return x;
}

/* --- format 3: the paged index ------------------------------------------- */

#define PAGE_HEADER 16

void chunkidx_region(const uint8_t (*bh)[SHA256_LEN], size_t n, uint8_t out[SHA256_LEN])
{
	struct sha256 *h = sha256_new();

	sha256_update(h, bh, n * SHA256_LEN);
	sha256_final(h, out);
	sha256_free(h);
}

static bool sha256_is(const void *data, size_t len, const uint8_t want[SHA256_LEN])
{
	struct sha256 *h = sha256_new();
	uint8_t d[SHA256_LEN];

	sha256_update(h, data, len);
	sha256_final(h, d);
	sha256_free(h);
	return !memcmp(d, want, SHA256_LEN);
}

/* Page p's chunks among m's (sorted): [*ret_a, *ret_b). */
static void page_chunks(const struct bundle_manifest *m, size_t p, size_t from, size_t *ret_a,
			size_t *ret_b)
{
	uint64_t span = (uint64_t)m->page_chunks * m->chunk_size;
	size_t b = from;

	while (b < m->n_chunks && m->chunks[b].offset < (p + 1) * span)
		b++;
	*ret_a = from;
	*ret_b = b;
}

int chunkidx_encode_pages(struct bundle_manifest *m, const struct chunkidx *x,
			  const uint8_t (*region)[SHA256_LEN], struct strbuf *out, char *err,
			  size_t errlen)
{
	uint64_t n_pages = manifest_pages(m), p;
	size_t dir_len = (size_t)manifest_dir_size(m), c = 0, f = 0, base = out->len;
	struct strbuf pages = STRBUF_INIT;
	_cleanup_free_ uint8_t *dir = xcalloc(1, dir_len);
	struct sha256 *h;
	int r = -1;

	memcpy(dir, CHUNKDIR_MAGIC, 8);
	put_be(dir + 8, m->page_chunks, 4);
	put_be(dir + 12, n_pages, 4);
	for (p = 0; p < n_pages; p++) {
		uint8_t *e = dir + CHUNKDIR_HEADER + CHUNKDIR_ENTRY * p;
		size_t a, b, i, nf = 0, k, fa = f, raw_len, bound, zn;
		_cleanup_free_ uint8_t *raw = NULL, *z = NULL;
		uint8_t *q;

		page_chunks(m, (size_t)p, c, &a, &b);
		for (i = a; i < b; i++)
			nf += (size_t)manifest_chunk_frames(m, &m->chunks[i]);
		put_be(e, a < m->n_chunks ? m->chunks[a].stored_offset : m->payload_size, 8);
		put_be(e + 8, b - a, 4);
		memcpy(e + 48, region[p], SHA256_LEN);
		c = b;
		f += nf;
		if (a == b)
			continue;
		raw_len = PAGE_HEADER + 40 * (b - a) + (4 + CHUNKIDX_HASH_LEN) * nf;
		raw = xmalloc(raw_len);
		memcpy(raw, CHUNKPAGE_MAGIC, 8);
		put_be(raw + 8, p, 4);
		put_be(raw + 12, b - a, 4);
		q = raw + PAGE_HEADER;
		for (i = a; i < b; i++, q += 4)
			put_be(q, m->chunks[i].offset / m->chunk_size - p * m->page_chunks, 4);
		for (i = a; i < b; i++, q += 4)
			put_be(q, m->chunks[i].stored_size, 4);
		for (i = a; i < b; i++, q += SHA256_LEN)
			memcpy(q, m->chunks[i].sha256, SHA256_LEN);
		for (k = fa; k < f; k++, q += 4)
			put_be(q, x->stored[k], 4);
		for (k = fa; k < f; k++, q += CHUNKIDX_HASH_LEN)
			memcpy(q, x->hash[k], CHUNKIDX_HASH_LEN);
		bound = ZSTD_compressBound(raw_len);
		z = xmalloc(bound);
		zn = ZSTD_compress(z, bound, raw, raw_len, CHUNKIDX_LEVEL);
		if (ZSTD_isError(zn)) {
			fail(err, errlen, "cannot compress the chunk index: %s",
			     ZSTD_getErrorName(zn));
			goto out;
		}
		put_be(e + 12, zn, 4);
		h = sha256_new();
		sha256_update(h, z, zn);
		sha256_final(h, e + 16);
		sha256_free(h);
		strbuf_add(&pages, z, zn);
	}
	if (f != x->n_frames || c != m->n_chunks) {
		fail(err, errlen, "the chunk index does not match the payload's frames");
		goto out;
	}
	put_be(dir + 16, pages.len, 8);
	if (dir_len + pages.len > MANIFEST_MAX_INDEX_SIZE) {
		fail(err, errlen, "the chunk index is %zu bytes, more than %u: the image is too large",
		     dir_len + pages.len, MANIFEST_MAX_INDEX_SIZE);
		goto out;
	}
	strbuf_add(out, dir, dir_len);
	strbuf_add(out, pages.buf, pages.len);
	m->index_size = out->len - base;
	h = sha256_new();
	sha256_update(h, dir, dir_len);
	sha256_final(h, m->chunk_index_sha256);
	sha256_free(h);
	m->has_chunk_index = true;
	r = 0;
out:
	strbuf_release(&pages);
	return r;
}

void chunkdir_free(struct chunkdir *dir)
{
	if (!dir)
		return;
	free(dir->pages);
	free(dir);
}

int chunkdir_decode(const void *data, size_t len, const struct bundle_manifest *m,
		    struct chunkdir **ret, char *err, size_t errlen)
{
	const uint8_t *d = data;
	uint64_t n_pages, pages_size, at, sum = 0;
	struct chunkdir *dir;
	size_t p;

	if (m->format < 3 || !m->page_chunks)
		return fail(err, errlen, "a format-%u bundle has no chunk index directory",
			    m->format);
	n_pages = manifest_pages(m);
	if (len != manifest_dir_size(m) || !sha256_is(data, len, m->chunk_index_sha256))
		return fail(err, errlen,
			    "damaged bundle: the chunk index's directory does not match its "
			    "SHA-256 in the signed manifest; fetch it again");
	pages_size = m->index_size - len;
	if (memcmp(d, CHUNKDIR_MAGIC, 8) || get_be(d + 8, 4) != m->page_chunks ||
	    get_be(d + 12, 4) != n_pages || get_be(d + 16, 8) != pages_size)
		return fail(err, errlen,
			    "invalid chunk index: its directory's header does not match the "
			    "manifest (magic, %" PRIu32 " chunks a page, %" PRIu64 " pages, %" PRIu64
			    " bytes of pages)",
			    m->page_chunks, n_pages, pages_size);
	dir = xcalloc(1, sizeof(*dir));
	dir->n_pages = (size_t)n_pages;
	dir->pages = xcalloc(dir->n_pages + 1, sizeof(*dir->pages));
	at = len;
	for (p = 0; p < dir->n_pages; p++) {
		const uint8_t *e = d + CHUNKDIR_HEADER + CHUNKDIR_ENTRY * p;
		struct chunkdir_page *pg = &dir->pages[p];
		uint64_t first = p * (uint64_t)m->page_chunks, in_image, next;

		pg->stored_offset = get_be(e, 8);
		pg->n_chunks = (uint32_t)get_be(e + 8, 4);
		pg->size = (uint32_t)get_be(e + 12, 4);
		memcpy(pg->sha256, e + 16, SHA256_LEN);
		memcpy(pg->region, e + 48, SHA256_LEN);
		pg->index_offset = at;
		/* Chunks of this page inside the image. */
		in_image = (m->image_size - first * m->chunk_size + m->chunk_size - 1) / m->chunk_size;
		if (in_image > m->page_chunks)
			in_image = m->page_chunks;
		next = p + 1 < dir->n_pages ? get_be(e + CHUNKDIR_ENTRY, 8) : m->payload_size;
		if (pg->n_chunks > in_image || (pg->n_chunks == 0) != (pg->size == 0) ||
		    pg->size > pages_size - sum || (p == 0 && pg->stored_offset != 0) ||
		    next < pg->stored_offset || next > m->payload_size ||
		    (pg->n_chunks == 0) != (next == pg->stored_offset) ||
		    next - pg->stored_offset > pg->n_chunks * manifest_max_stored(m)) {
			chunkdir_free(dir);
			return fail(err, errlen,
				    "invalid chunk index: page %zu of its directory (%" PRIu32
				    " chunks, %" PRIu32 " bytes, payload bytes %" PRIu64 "..%" PRIu64
				    ") does not fit the manifest",
				    p, pg->n_chunks, pg->size, pg->stored_offset, next);
		}
		sum += pg->size;
		at += pg->size;
	}
	if (sum != pages_size) {
		chunkdir_free(dir);
		return fail(err, errlen,
			    "invalid chunk index: its pages store %" PRIu64 " bytes, its directory "
			    "says %" PRIu64,
			    sum, pages_size);
	}
	*ret = dir;
	return 0;
}

int chunkpage_decode(const void *data, size_t len, struct bundle_manifest *m,
		     const struct chunkdir *dir, size_t p, char *err, size_t errlen)
{
	const struct chunkdir_page *pg;
	uint64_t per = (m->chunk_size + m->frame_size - 1) / m->frame_size, bound, csize,
		 pos, next, prev = 0;
	_cleanup_free_ uint8_t *raw = NULL;
	size_t c, i, nf = 0, k, f, got, raw_len;
	const uint8_t *q, *fs, *fh;
	struct bundle_chunk *ch;

	if (p >= dir->n_pages)
		return fail(err, errlen, "invalid chunk index: no page %zu", p);
	pg = &dir->pages[p];
	c = pg->n_chunks;
	if (c == 0)
		return 0;
	if (len != pg->size || !sha256_is(data, len, pg->sha256))
		return fail(err, errlen,
			    "damaged bundle: page %zu of the chunk index does not match its "
			    "SHA-256 in the signed directory; fetch it again",
			    p);
	bound = PAGE_HEADER + 40 * (uint64_t)c + (4 + CHUNKIDX_HASH_LEN) * per * c;
	csize = ZSTD_getFrameContentSize(data, len);
	if (ZSTD_findFrameCompressedSize(data, len) != len || csize > bound ||
	    csize < PAGE_HEADER + 40 * (uint64_t)c)
		return fail(err, errlen, "invalid chunk index: page %zu is not one zstd frame "
			    "of at most %" PRIu64 " bytes", p, bound);
	raw_len = (size_t)csize;
	raw = xmalloc(raw_len);
	got = ZSTD_decompress(raw, raw_len, data, len);
	if (ZSTD_isError(got) || got != raw_len)
		return fail(err, errlen, "invalid chunk index: page %zu does not decompress (%s)",
			    p, ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
	if (memcmp(raw, CHUNKPAGE_MAGIC, 8) || get_be(raw + 8, 4) != p ||
	    get_be(raw + 12, 4) != c)
		return fail(err, errlen,
			    "invalid chunk index: page %zu's header does not match its directory", p);
	/* The chunks: numbers increasing inside the page and the image. */
	q = raw + PAGE_HEADER;
	for (i = 0; i < c; i++) {
		uint64_t n = get_be(q + 4 * i, 4), off;

		off = ((uint64_t)p * m->page_chunks + n) * m->chunk_size;
		if (n >= m->page_chunks || (i && n <= prev) || off >= m->image_size)
			return fail(err, errlen,
				    "invalid chunk index: page %zu, chunk %zu: number %" PRIu64
				    " is not after the previous one inside the page and the image",
				    p, i, n);
		prev = n;
		nf += (size_t)((m->image_size - off < m->chunk_size ? m->image_size - off
								   : m->chunk_size) +
			       m->frame_size - 1) / m->frame_size;
	}
	if (raw_len != PAGE_HEADER + 40 * c + (4 + CHUNKIDX_HASH_LEN) * nf)
		return fail(err, errlen,
			    "invalid chunk index: page %zu holds %zu bytes, not the %zu its chunks "
			    "need",
			    p, raw_len, PAGE_HEADER + 40 * c + (4 + CHUNKIDX_HASH_LEN) * nf);
	next = p + 1 < dir->n_pages ? dir->pages[p + 1].stored_offset : m->payload_size;
	pos = pg->stored_offset;
	if (m->n_chunks && m->chunks[m->n_chunks - 1].offset >=
				   (uint64_t)p * m->page_chunks * m->chunk_size)
		return fail(err, errlen, "invalid chunk index: page %zu read out of order", p);
	m->chunks = xrealloc(m->chunks, (m->n_chunks + c) * sizeof(*m->chunks));
	m->frame_stored = xrealloc(m->frame_stored, (m->n_frames + nf + 1) * sizeof(uint32_t));
	m->frame_hash = xrealloc(m->frame_hash, (m->n_frames + nf + 1) * sizeof(*m->frame_hash));
	fs = q + 40 * c;
	fh = fs + 4 * nf;
	for (i = 0, f = 0; i < c; i++) {
		uint64_t sum = 0;

		ch = &m->chunks[m->n_chunks + i];
		ch->offset = ((uint64_t)p * m->page_chunks + get_be(q + 4 * i, 4)) * m->chunk_size;
		ch->size = m->image_size - ch->offset < m->chunk_size ? m->image_size - ch->offset
								     : m->chunk_size;
		ch->stored_offset = pos;
		ch->stored_size = get_be(q + 4 * c + 4 * i, 4);
		memcpy(ch->sha256, q + 8 * c + SHA256_LEN * i, SHA256_LEN);
		if (ch->stored_size == 0 || ch->stored_size > manifest_max_stored(m) ||
		    ch->stored_size > next - pos)
			return fail(err, errlen,
				    "invalid chunk index: page %zu, chunk %zu stores %" PRIu64
				    " bytes, more than its page's payload bytes",
				    p, i, ch->stored_size);
		for (k = 0; k < manifest_chunk_frames(m, ch); k++, f++) {
			uint32_t st = (uint32_t)get_be(fs + 4 * f, 4);

			if (st == 0 || st > ch->stored_size - sum)
				return fail(err, errlen,
					    "invalid chunk index: page %zu, chunk %zu: frame %zu "
					    "stores %" PRIu32 " bytes",
					    p, i, k, st);
			sum += st;
			m->frame_stored[m->n_frames + f] = st;
			memcpy(m->frame_hash[m->n_frames + f], fh + CHUNKIDX_HASH_LEN * f,
			       CHUNKIDX_HASH_LEN);
		}
		if (sum != ch->stored_size)
			return fail(err, errlen,
				    "invalid chunk index: page %zu, chunk %zu: its frames store %" PRIu64
				    " bytes, not %" PRIu64,
				    p, i, sum, ch->stored_size);
		pos += ch->stored_size;
	}
	if (pos != next)
		return fail(err, errlen,
			    "invalid chunk index: page %zu's chunks store %" PRIu64
			    " bytes, its directory says %" PRIu64,
			    p, pos - pg->stored_offset, next - pg->stored_offset);
	/* Only now: a refused page leaves m as it was. */
	m->n_chunks += c;
	m->n_frames += nf;
	return 0;
}
