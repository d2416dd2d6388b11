/* SPDX-License-Identifier: MIT */
/*
 * The patch section of a format-4 bundle (patch.h): written by the host
 * from two images, read by the device against its running slot.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "core/file.h"
#include "core/hash.h"
#include "core/util.h"
#include "update/patch.h"

#define HEAD_FIXED 36
#define OP_SIZE	   13
#define CHG_SIZE   40
/* Data frames: the earlier chunk (1 MiB) as prefix, then up to a chunk of data. */
#define DATA_LEVEL     19
#define DATA_WINDOWLOG 22

static int fail(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* --- host side ---------------------------------------------------------------- */

struct blockkey {
	uint64_t key, blk;
};

static int cmp_key(const void *a, const void *b)
{
	const struct blockkey *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key ? 1 : x->blk < y->blk ? -1 : x->blk > y->blk;
}

static uint64_t block_key(const uint8_t *blk)
{
	uint8_t h[SHA256_LEN];
	struct sha256 *s = sha256_new();
	uint64_t k = 0;
	int i;

	sha256_update(s, blk, PATCH_BLOCK);
	sha256_final(s, h);
	sha256_free(s);
	for (i = 0; i < 8; i++)
		k = k << 8 | h[i];
	return k;
}

struct image {
	int fd;
	const uint8_t *p;
	uint64_t size;
};

static int map_image(const char *path, struct image *im, char *err, size_t errlen)
{
	struct stat st;

	im->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (im->fd < 0 || fstat(im->fd, &st) < 0)
		return fail(err, errlen, "cannot open '%s': %s", quote_path(path),
			    strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size % PATCH_BLOCK)
		return fail(err, errlen,
			    "'%s' is not an image of whole 4 KiB blocks; give the earlier "
			    "build's root.ext4",
			    quote_path(path));
	im->size = (uint64_t)st.st_size;
	im->p = mmap(NULL, im->size, PROT_READ, MAP_PRIVATE, im->fd, 0);
	if (im->p == MAP_FAILED) {
		im->p = NULL;
		return fail(err, errlen, "cannot map '%s': %s", quote_path(path),
			    strerror(errno));
	}
	return 0;
}

static void unmap_image(struct image *im)
{
	if (im->p)
		munmap((void *)im->p, im->size);
	if (im->fd >= 0)
		close(im->fd);
}

static void add_op(struct strbuf *ops, size_t *n, uint8_t *last_type, uint64_t *last_end,
		   uint8_t type, uint64_t arg)
{
	uint8_t *o;

	/* The same kind as the last op and continuing it: one block more. */
	if (*n && *last_type == type && (type != PATCH_COPY || *last_end == arg)) {
		o = (uint8_t *)ops->buf + ops->len - OP_SIZE;
		if (be32(o + 1) < UINT32_MAX) {
			put_be32(o + 1, be32(o + 1) + 1);
			(*last_end)++;
			return;
		}
	}
	{
		uint8_t rec[OP_SIZE];

		rec[0] = type;
		put_be32(rec + 1, 1);
		put_be64(rec + 5, type == PATCH_COPY ? arg : 0);
		strbuf_add(ops, rec, sizeof(rec));
	}
	(*n)++;
	*last_type = type;
	*last_end = arg + 1;
}

int patch_create(const char *src_path, const char *tgt_path, uint64_t chunk_size, int out_fd,
		 uint64_t *ret_src_size, uint8_t src_sha256[32], uint64_t *ret_size,
		 uint8_t ret_sha256[32], char *err, size_t errlen)
{
	struct image src = {-1, NULL, 0}, tgt = {-1, NULL, 0};
	struct strbuf ops = STRBUF_INIT, chg = STRBUF_INIT, data = STRBUF_INIT, head = STRBUF_INIT;
	struct blockkey *map = NULL;
	size_t n_map = 0, n_ops = 0, n_chg = 0;
	uint64_t sblocks, b, c, last_end = 0, cpb = chunk_size / PATCH_BLOCK;
	uint8_t last_type = 0, *dbuf = NULL, *zhead = NULL, *zdata = NULL, hdr[12];
	size_t zbound = ZSTD_compressBound(chunk_size), zn;
	ZSTD_CCtx *cctx = NULL;
	struct sha256 *h = sha256_new();
	int r = -1;

	if (map_image(src_path, &src, err, errlen) < 0 || map_image(tgt_path, &tgt, err, errlen) < 0)
		goto out;
	sblocks = src.size / PATCH_BLOCK;
	sha256_update(h, src.p, src.size);
	sha256_final(h, src_sha256);
	*ret_src_size = src.size;
	/* The earlier image's non-zero blocks, by the first 8 bytes of their SHA-256. */
	map = xcalloc(sblocks, sizeof(*map));
	for (b = 0; b < sblocks; b++)
		if (!all_zero(src.p + b * PATCH_BLOCK, PATCH_BLOCK))
			map[n_map++] = (struct blockkey){block_key(src.p + b * PATCH_BLOCK), b};
	qsort(map, n_map, sizeof(*map), cmp_key);

	cctx = ZSTD_createCCtx();
	dbuf = xmalloc(chunk_size);
	zdata = xmalloc(zbound);
	for (c = 0; c * chunk_size < tgt.size; c++) {
		uint64_t b0 = c * cpb, b1 = b0 + cpb, nd = 0;
		bool changed = false;

		if (b1 > tgt.size / PATCH_BLOCK)
			b1 = tgt.size / PATCH_BLOCK;
		for (b = b0; b < b1; b++) {
			const uint8_t *t = tgt.p + b * PATCH_BLOCK;
			uint64_t k, lo = 0, hi = n_map, s;
			bool found = false;

			if (b < sblocks && !memcmp(t, src.p + b * PATCH_BLOCK, PATCH_BLOCK)) {
				add_op(&ops, &n_ops, &last_type, &last_end, PATCH_SAME, b);
				continue;
			}
			changed = true;
			if (all_zero(t, PATCH_BLOCK)) {
				add_op(&ops, &n_ops, &last_type, &last_end, PATCH_ZERO, b);
				continue;
			}
			/* The block after the last one copied first: runs stay one op. */
			if (n_ops && last_type == PATCH_COPY && last_end < sblocks &&
			    !memcmp(t, src.p + last_end * PATCH_BLOCK, PATCH_BLOCK)) {
				add_op(&ops, &n_ops, &last_type, &last_end, PATCH_COPY, last_end);
				continue;
			}
			k = block_key(t);
			while (lo < hi) {
				uint64_t mid = lo + (hi - lo) / 2;

				if (map[mid].key < k)
					lo = mid + 1;
				else
					hi = mid;
			}
			for (s = lo; s < n_map && map[s].key == k; s++)
				if (!memcmp(t, src.p + map[s].blk * PATCH_BLOCK, PATCH_BLOCK)) {
					add_op(&ops, &n_ops, &last_type, &last_end, PATCH_COPY,
					       map[s].blk);
					found = true;
					break;
				}
			if (found)
				continue;
			add_op(&ops, &n_ops, &last_type, &last_end, PATCH_DATA, b);
			memcpy(dbuf + nd * PATCH_BLOCK, t, PATCH_BLOCK);
			nd++;
		}
		if (!changed)
			continue;
		{
			uint8_t rec[CHG_SIZE];

			put_be32(rec, (uint32_t)c);
			put_be32(rec + 4, 0);
			sha256_update(h, tgt.p + b0 * PATCH_BLOCK, (b1 - b0) * PATCH_BLOCK);
			sha256_final(h, rec + 8);
			if (nd) {
				/* The earlier image at this chunk's place, as far as this image's
				 * chunk goes (what the device has as the prefix). */
				uint64_t roff = c * chunk_size, rend = b1 * PATCH_BLOCK;
				size_t rlen = roff < src.size
						      ? (size_t)((src.size < rend ? src.size : rend) - roff)
						      : 0;

				ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
				ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, DATA_LEVEL);
				ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, DATA_WINDOWLOG);
				ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
				if (rlen)
					ZSTD_CCtx_refPrefix(cctx, src.p + roff, rlen);
				zn = ZSTD_compress2(cctx, zdata, zbound, dbuf, nd * PATCH_BLOCK);
				if (ZSTD_isError(zn)) {
					fail(err, errlen, "cannot compress the patch: %s",
					     ZSTD_getErrorName(zn));
					goto out;
				}
				put_be32(rec + 4, (uint32_t)zn);
				strbuf_add(&data, zdata, zn);
			}
			strbuf_add(&chg, rec, sizeof(rec));
			n_chg++;
		}
		if (data.len + chg.len + ops.len > PATCH_MAX_SIZE * 4ULL) {
			r = 1; /* far too large already: not worth finishing */
			goto out;
		}
	}
	if (n_ops > UINT32_MAX || n_chg > UINT32_MAX) {
		r = 1;
		goto out;
	}
	{
		uint8_t fixed[HEAD_FIXED];
		size_t hb;

		memcpy(fixed, PATCH_HEAD_MAGIC, 8);
		put_be64(fixed + 8, tgt.size);
		put_be64(fixed + 16, src.size);
		put_be32(fixed + 24, (uint32_t)chunk_size);
		put_be32(fixed + 28, (uint32_t)n_ops);
		put_be32(fixed + 32, (uint32_t)n_chg);
		strbuf_add(&head, fixed, sizeof(fixed));
		strbuf_add(&head, ops.buf, ops.len);
		strbuf_add(&head, chg.buf, chg.len);
		hb = ZSTD_compressBound(head.len);
		zhead = xmalloc(hb);
		zn = ZSTD_compress(zhead, hb, head.buf, head.len, DATA_LEVEL);
		if (ZSTD_isError(zn)) {
			fail(err, errlen, "cannot compress the patch: %s", ZSTD_getErrorName(zn));
			goto out;
		}
	}
	*ret_size = sizeof(hdr) + zn + data.len;
	if (*ret_size > PATCH_MAX_SIZE) {
		r = 1;
		goto out;
	}
	memcpy(hdr, PATCH_MAGIC, 8);
	put_be32(hdr + 8, (uint32_t)zn);
	sha256_update(h, hdr, sizeof(hdr));
	sha256_update(h, zhead, zn);
	sha256_update(h, data.buf, data.len);
	sha256_final(h, ret_sha256);
	if (write_all(out_fd, hdr, sizeof(hdr)) < 0 || write_all(out_fd, zhead, zn) < 0 ||
	    write_all(out_fd, data.buf, data.len) < 0) {
		fail(err, errlen, "cannot write the patch: %s", strerror(errno));
		goto out;
	}
	r = 0;
out:
	ZSTD_freeCCtx(cctx);
	sha256_free(h);
	unmap_image(&src);
	unmap_image(&tgt);
	free(map);
	free(dbuf);
	free(zdata);
	free(zhead);
	strbuf_release(&ops);
	strbuf_release(&chg);
	strbuf_release(&data);
	strbuf_release(&head);
	return r;
}

/* --- device side ---------------------------------------------------------------- */

void patch_free(struct patch *p)
{
	if (!p)
		return;
	free(p->ops);
	free(p->changed);
	free(p->sha256);
	free(p->data_off);
	free(p->data_len);
	free(p->data_blocks);
	ZSTD_freeDCtx(p->dctx);
	free(p);
}

int patch_decode(const uint8_t *buf, size_t len, uint64_t image_size, uint64_t chunk_size,
		 uint64_t source_size, struct patch **ret, char *err, size_t errlen)
{
	struct patch *p = NULL;
	uint8_t *head = NULL;
	unsigned long long hsize;
	uint64_t nblocks, sblocks, cpb, blk, n_ops, n_chg, i, prev = 0, doff;
	const uint8_t *o;
	bool *touched = NULL;
	size_t hlen, zn;
	int r = -1;

	if (len < 12 || memcmp(buf, PATCH_MAGIC, 8))
		return fail(err, errlen, "invalid patch: no patch magic");
	if (image_size % PATCH_BLOCK || source_size % PATCH_BLOCK || chunk_size % PATCH_BLOCK ||
	    !chunk_size || chunk_size > UINT32_MAX)
		return fail(err, errlen,
			    "invalid patch: the images are not whole 4 KiB blocks");
	nblocks = image_size / PATCH_BLOCK;
	sblocks = source_size / PATCH_BLOCK;
	cpb = chunk_size / PATCH_BLOCK;
	hlen = be32(buf + 8);
	if (hlen > len - 12)
		return fail(err, errlen, "invalid patch: its head is cut short");
	zn = ZSTD_findFrameCompressedSize(buf + 12, hlen);
	hsize = zn == hlen ? ZSTD_getFrameContentSize(buf + 12, hlen) : ZSTD_CONTENTSIZE_ERROR;
	if (hsize == ZSTD_CONTENTSIZE_ERROR || hsize == ZSTD_CONTENTSIZE_UNKNOWN ||
	    hsize < HEAD_FIXED ||
	    hsize > HEAD_FIXED + OP_SIZE * nblocks + CHG_SIZE * ((nblocks + cpb - 1) / cpb))
		return fail(err, errlen, "invalid patch: its head is not one zstd frame");
	head = xmalloc((size_t)hsize);
	if (ZSTD_decompress(head, (size_t)hsize, buf + 12, hlen) != hsize) {
		fail(err, errlen, "invalid patch: its head does not decompress");
		goto out;
	}
	n_ops = be32(head + 28);
	n_chg = be32(head + 32);
	if (memcmp(head, PATCH_HEAD_MAGIC, 8) || be64(head + 8) != image_size ||
	    be64(head + 16) != source_size || be32(head + 24) != chunk_size ||
	    hsize != HEAD_FIXED + OP_SIZE * n_ops + CHG_SIZE * n_chg || n_ops > nblocks) {
		fail(err, errlen, "invalid patch: its head does not fit the signed manifest");
		goto out;
	}
	p = xcalloc(1, sizeof(*p));
	p->image_size = image_size;
	p->source_size = source_size;
	p->chunk_size = chunk_size;
	p->n_chunks = (size_t)((image_size + chunk_size - 1) / chunk_size);
	p->ops = xcalloc(n_ops + 1, sizeof(*p->ops));
	p->changed = xcalloc(p->n_chunks + 1, sizeof(*p->changed));
	p->sha256 = xcalloc(p->n_chunks + 1, sizeof(*p->sha256));
	p->data_off = xcalloc(p->n_chunks + 1, sizeof(*p->data_off));
	p->data_len = xcalloc(p->n_chunks + 1, sizeof(*p->data_len));
	p->data_blocks = xcalloc(p->n_chunks + 1, sizeof(*p->data_blocks));
	touched = xcalloc(p->n_chunks + 1, sizeof(bool));
	for (i = 0, blk = 0, o = head + HEAD_FIXED; i < n_ops; i++, o += OP_SIZE) {
		struct patch_op *op = &p->ops[i];
		uint64_t b;

		op->type = o[0];
		op->count = be32(o + 1);
		op->arg = be64(o + 5);
		op->first = blk;
		if (op->type > PATCH_DATA || !op->count || op->count > nblocks - blk ||
		    (op->type == PATCH_SAME && blk + op->count > sblocks) ||
		    (op->type == PATCH_COPY && (op->arg > sblocks || op->count > sblocks - op->arg)) ||
		    (op->type != PATCH_COPY && op->arg)) {
			fail(err, errlen, "invalid patch: operation %" PRIu64 " is out of bounds", i);
			goto out;
		}
		if (op->type != PATCH_SAME)
			for (b = blk / cpb; b <= (blk + op->count - 1) / cpb; b++)
				touched[b] = true;
		if (op->type == PATCH_DATA)
			for (b = blk; b < blk + op->count;) {
				uint64_t cend = (b / cpb + 1) * cpb, n;

				n = (cend < blk + op->count ? cend : blk + op->count) - b;
				p->data_blocks[b / cpb] += (uint32_t)n;
				b += n;
			}
		blk += op->count;
	}
	if (blk != nblocks) {
		fail(err, errlen, "invalid patch: its operations do not cover the image");
		goto out;
	}
	p->n_ops = (size_t)n_ops;
	doff = 12 + hlen;
	for (i = 0, o = head + HEAD_FIXED + OP_SIZE * n_ops; i < n_chg; i++, o += CHG_SIZE) {
		uint64_t c = be32(o);
		uint32_t dl = be32(o + 4);

		if (c >= p->n_chunks || (i && c <= prev) || !touched[c] ||
		    (dl == 0) != (p->data_blocks[c] == 0) || dl > len - doff) {
			fail(err, errlen, "invalid patch: changed chunk %" PRIu64 " is not valid", i);
			goto out;
		}
		p->changed[c] = true;
		memcpy(p->sha256[c], o + 8, 32);
		p->data_off[c] = doff;
		p->data_len[c] = dl;
		doff += dl;
		prev = c;
	}
	for (i = 0; i < p->n_chunks; i++)
		if (touched[i] && !p->changed[i]) {
			fail(err, errlen, "invalid patch: chunk %" PRIu64 " changes but is not listed",
			     i);
			goto out;
		}
	if (doff != len) {
		fail(err, errlen, "invalid patch: its data frames do not end the section");
		goto out;
	}
	p->dctx = ZSTD_createDCtx();
	p->buf = buf;
	p->len = len;
	*ret = p;
	p = NULL;
	r = 0;
out:
	free(touched);
	free(head);
	patch_free(p);
	return r;
}

static int read_src(int fd, uint8_t *buf, uint64_t blk, uint64_t n,
		    const uint8_t (*bsha)[32], char *err, size_t errlen)
{
	size_t len = (size_t)(n * PATCH_BLOCK), got = 0;
	uint64_t k;

	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, (off_t)(blk * PATCH_BLOCK + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return fail(err, errlen, "cannot read the running slot at byte %" PRIu64 ": %s",
				    blk * PATCH_BLOCK + got, r < 0 ? strerror(errno) : "end of slot");
		got += (size_t)r;
	}
	if (bsha) {
		struct sha256 *h = sha256_new();
		uint8_t d[SHA256_LEN];

		for (k = 0; k < n; k++) {
			sha256_update(h, buf + k * PATCH_BLOCK, PATCH_BLOCK);
			sha256_final(h, d);
			if (memcmp(d, bsha[blk + k], SHA256_LEN)) {
				sha256_free(h);
				return fail(err, errlen,
					    "the running slot changed during the install (image byte "
					    "%" PRIu64 "); it was not written; try again",
					    (blk + k) * PATCH_BLOCK);
			}
		}
		sha256_free(h);
	}
	return 0;
}

ssize_t patch_chunk(struct patch *p, size_t i, int src_fd, const uint8_t (*block_sha256)[32],
		    uint8_t *ref, uint8_t *out, char *err, size_t errlen)
{
	uint64_t cpb = p->chunk_size / PATCH_BLOCK, b0 = i * cpb, b1 = b0 + cpb, sb = 0,
		 sblocks = p->source_size / PATCH_BLOCK, b;
	size_t lo = 0, hi = p->n_ops, k;
	const uint8_t *data = NULL;
	uint8_t *dbuf = NULL;
	ssize_t r = -1;

	if (b1 > p->image_size / PATCH_BLOCK)
		b1 = p->image_size / PATCH_BLOCK;
	/* The earlier image at this place: what stays, and the data's prefix. */
	if (b0 < sblocks) {
		sb = (b1 < sblocks ? b1 : sblocks) - b0;
		if (read_src(src_fd, ref, b0, sb, block_sha256, err, errlen) < 0)
			return -1;
	}
	if (!p->changed[i]) {
		memcpy(out, ref, (size_t)((b1 - b0) * PATCH_BLOCK));
		return (ssize_t)((b1 - b0) * PATCH_BLOCK);
	}
	if (p->data_blocks[i]) {
		size_t want = (size_t)p->data_blocks[i] * PATCH_BLOCK, got;
		unsigned long long cs = ZSTD_getFrameContentSize(p->buf + p->data_off[i],
								 p->data_len[i]);

		if (ZSTD_findFrameCompressedSize(p->buf + p->data_off[i], p->data_len[i]) !=
			    p->data_len[i] ||
		    cs != want) {
			fail(err, errlen, "invalid patch: the data of chunk %zu is not one zstd "
					  "frame of its blocks", i);
			return -1;
		}
		dbuf = xmalloc(want);
		ZSTD_DCtx_reset(p->dctx, ZSTD_reset_session_and_parameters);
		if (sb)
			ZSTD_DCtx_refPrefix(p->dctx, ref, (size_t)(sb * PATCH_BLOCK));
		got = ZSTD_decompressDCtx(p->dctx, dbuf, want, p->buf + p->data_off[i],
					  p->data_len[i]);
		if (ZSTD_isError(got) || got != want) {
			fail(err, errlen, "damaged patch: the data of chunk %zu does not decompress (%s)",
			     i, ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
			goto out;
		}
		data = dbuf;
	}
	/* The op holding block b0, then each op up to b1. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->ops[mid].first + p->ops[mid].count <= b0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (k = lo, b = b0; b < b1 && k < p->n_ops; k++) {
		const struct patch_op *op = &p->ops[k];
		uint64_t end = op->first + op->count < b1 ? op->first + op->count : b1, n = end - b;
		uint8_t *dst = out + (b - b0) * PATCH_BLOCK;

		switch (op->type) {
		case PATCH_SAME:
			memcpy(dst, ref + (b - b0) * PATCH_BLOCK, (size_t)(n * PATCH_BLOCK));
			break;
		case PATCH_ZERO:
			memset(dst, 0, (size_t)(n * PATCH_BLOCK));
			break;
		case PATCH_COPY:
			if (read_src(src_fd, dst, op->arg + (b - op->first), n, block_sha256, err,
				     errlen) < 0)
				goto out;
			break;
		default:
			memcpy(dst, data, (size_t)(n * PATCH_BLOCK));
			data += n * PATCH_BLOCK;
			break;
		}
		b = end;
	}
	{
		struct sha256 *h = sha256_new();
		uint8_t d[SHA256_LEN];

		sha256_update(h, out, (size_t)((b1 - b0) * PATCH_BLOCK));
		sha256_final(h, d);
		sha256_free(h);
		if (memcmp(d, p->sha256[i], SHA256_LEN)) {
			fail(err, errlen,
			     "chunk %zu made from the patch does not match its SHA-256 in the "
			     "patch; it was not written",
			     i);
			goto out;
		}
	}
	r = (ssize_t)((b1 - b0) * PATCH_BLOCK);
out:
	free(dbuf);
	return r;
}
