/* SPDX-License-Identifier: MIT */
/*
 * Tests for src/update/chunkidx.c: an index written for a manifest's chunks
 * reads back the same; one that does not fit its manifest (frame size,
 * frame count, stored sizes, damage) is refused with one line; and the
 * size an index takes per frame stays what docs/update.md promises.
 */
#include <errno.h>
#include <string.h>

#include "core/hash.h"
#include "core/util.h"
#include "tap.h"
#include "update/chunkidx.h"

#define FRAME (64u << 10)

/* A manifest of n full 1 MiB chunks and a short one, each frame stored in 1000 + k bytes. */
static struct bundle_manifest *manifest(size_t n)
{
	struct bundle_manifest *m = xcalloc(1, sizeof(*m));
	uint64_t stored = 0;
	size_t i;

	m->format = 2;
	m->chunk_size = 1u << 20;
	m->frame_size = FRAME;
	m->n_chunks = n + 1;
	m->chunks = xcalloc(n + 1, sizeof(*m->chunks));
	for (i = 0; i <= n; i++) {
		struct bundle_chunk *c = &m->chunks[i];
		uint64_t k;

		c->offset = (uint64_t)i * 2 * m->chunk_size; /* zero chunks between */
		c->size = i < n ? m->chunk_size : 70000;
		c->stored_offset = stored;
		for (k = 0; k < manifest_chunk_frames(m, c); k++)
			c->stored_size += 1000 + k;
		stored += c->stored_size;
	}
	m->image_size = m->chunks[n].offset + 70000;
	m->payload_size = stored;
	return m;
}

static void build(const struct bundle_manifest *m, struct chunkidx *x)
{
	size_t i;
	uint64_t k;

	memset(x, 0, sizeof(*x));
	x->frame_size = m->frame_size;
	for (i = 0; i < m->n_chunks; i++)
		for (k = 0; k < manifest_chunk_frames(m, &m->chunks[i]); k++) {
			uint8_t h[CHUNKIDX_HASH_LEN];
			uint64_t v = i * 100 + k;

			chunkidx_hash(&v, sizeof(v), h);
			chunkidx_add(x, (uint32_t)(1000 + k), h);
		}
}

static int one_line(const char *err)
{
	return err[0] && !strchr(err, '\n');
}

TEST(test_roundtrip)
{
	struct bundle_manifest *m = manifest(40);
	struct chunkidx x, *y = NULL;
	struct strbuf sb = STRBUF_INIT;
	char err[512] = "";
	size_t i;

	build(m, &x);
	CHECK_INT(x.n_frames, 40 * 16 + 2);
	CHECK(chunkidx_encode(&x, &sb, err, sizeof(err)) == 0);
	/* Digests do not compress; the sizes do: under 10 bytes a frame here. */
	CHECK(sb.len < 24 + 10 * x.n_frames);
	CHECK(chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err)) == 0);
	if (!y)
		return;
	CHECK_INT(y->n_frames, x.n_frames);
	CHECK_INT(y->n_chunks, 41);
	CHECK_INT(y->first[1], 16);
	CHECK_INT(y->first[40], 640);
	CHECK_INT(y->first[41], 642);
	CHECK_INT(y->stored_off[17], m->chunks[1].stored_offset + 1000);
	for (i = 0; i < x.n_frames; i++) {
		CHECK_INT(y->stored[i], x.stored[i]);
		CHECK(!memcmp(y->hash[i], x.hash[i], CHUNKIDX_HASH_LEN));
	}
	chunkidx_free(y);
	free(x.stored);
	free(x.hash);
	strbuf_release(&sb);
	bundle_manifest_free(m);
}

/* Each index is refused by a manifest it does not describe, with one line. */
TEST(test_refusals)
{
	struct bundle_manifest *m = manifest(3);
	struct chunkidx x, *y = NULL;
	struct strbuf sb = STRBUF_INIT;
	char err[512];
	size_t i;

	build(m, &x);
	CHECK(chunkidx_encode(&x, &sb, err, sizeof(err)) == 0);
	/* Another frame size. */
	m->frame_size = 2 * FRAME;
	CHECK(chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err)) == -EINVAL);
	CHECK(one_line(err));
	m->frame_size = FRAME;
	/* One chunk stores a byte more than its frames. */
	m->chunks[1].stored_size++;
	CHECK(chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "frames of chunk 1") != NULL);
	m->chunks[1].stored_size--;
	/* A chunk fewer: the frame count differs. */
	m->n_chunks--;
	CHECK(chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err)) == -EINVAL);
	CHECK(one_line(err));
	m->n_chunks++;
	/* Truncated, extended, every byte flipped: refused or (a digest byte) read as such. */
	CHECK(chunkidx_decode(sb.buf, sb.len - 1, m, &y, err, sizeof(err)) == -EINVAL);
	strbuf_addch(&sb, 0);
	CHECK(chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err)) == -EINVAL);
	sb.len--;
	for (i = 0; i < sb.len; i++) {
		int r;

		sb.buf[i] ^= 0x10;
		err[0] = '\0';
		r = chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err));
		CHECK(r == 0 || (r == -EINVAL && one_line(err)));
		if (r == 0)
			chunkidx_free(y);
		y = NULL;
		sb.buf[i] ^= 0x10;
	}
	/* A zero stored size. */
	x.stored[2] = 0;
	strbuf_reset(&sb);
	CHECK(chunkidx_encode(&x, &sb, err, sizeof(err)) == 0);
	CHECK(chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "stored size of 0") != NULL);
	/* A format-1 manifest has none. */
	m->format = 1;
	CHECK(chunkidx_decode(sb.buf, sb.len, m, &y, err, sizeof(err)) == -EINVAL);
	free(x.stored);
	free(x.hash);
	strbuf_release(&sb);
	bundle_manifest_free(m);
}


/*
 * Format 3: the index of 41 chunks (with zero chunks between) in pages of
 * 16 chunks reads back the same whole and page by page (only some pages,
 * as a delta download reads them); a page read out of order, damaged,
 * or named by a damaged directory is refused with one line.
 */
TEST(test_pages)
{
	struct bundle_manifest *m = manifest(40), *r3 = NULL;
	struct chunkidx x, *y = NULL;
	struct strbuf sb = STRBUF_INIT;
	struct chunkdir *dir = NULL;
	uint8_t(*region)[SHA256_LEN] = NULL;
	char err[512] = "";
	size_t p, i, dlen;

	m->format = 3;
	m->page_chunks = 16;
	build(m, &x);
	region = xcalloc(manifest_pages(m), SHA256_LEN);
	for (p = 0; p < manifest_pages(m); p++)
		region[p][0] = (uint8_t)p;
	CHECK(chunkidx_encode_pages(m, &x, (const uint8_t(*)[SHA256_LEN])region, &sb, err,
				    sizeof(err)) == 0);
	/* 81 chunks' room (every other one stored): 6 pages, a 504-byte directory. */
	CHECK_INT(manifest_pages(m), 6);
	dlen = (size_t)manifest_dir_size(m);
	CHECK_INT(dlen, 24 + 6 * 80);
	CHECK_INT(m->index_size, sb.len);
	CHECK(chunkdir_decode(sb.buf, dlen, m, &dir, err, sizeof(err)) == 0);
	if (!dir)
		return;
	CHECK_INT(dir->pages[0].n_chunks, 8);
	CHECK_INT(dir->pages[5].n_chunks, 1);
	CHECK(!memcmp(dir->pages[3].region, region[3], SHA256_LEN));
	/* Every page: the same chunks and frames as the manifest's. */
	r3 = xcalloc(1, sizeof(*r3));
	*r3 = *m;
	r3->chunks = NULL;
	r3->n_chunks = 0;
	for (p = 0; p < dir->n_pages; p++)
		CHECK(chunkpage_decode(sb.buf + dir->pages[p].index_offset, dir->pages[p].size, r3,
				       dir, p, err, sizeof(err)) == 0);
	CHECK_INT(r3->n_chunks, 41);
	CHECK_INT(r3->n_frames, x.n_frames);
	for (i = 0; i < r3->n_chunks && i < 41; i++) {
		CHECK_INT(r3->chunks[i].offset, m->chunks[i].offset);
		CHECK_INT(r3->chunks[i].size, m->chunks[i].size);
		CHECK_INT(r3->chunks[i].stored_offset, m->chunks[i].stored_offset);
		CHECK_INT(r3->chunks[i].stored_size, m->chunks[i].stored_size);
	}
	y = chunkidx_from_manifest(r3);
	CHECK_INT(y->first[41], 642);
	CHECK_INT(y->stored_off[17], m->chunks[1].stored_offset + 1000);
	for (i = 0; i < x.n_frames; i++)
		CHECK(y->stored[i] == x.stored[i] && !memcmp(y->hash[i], x.hash[i], 8));
	chunkidx_free(y);
	/* Pages 1 and 4 only, in order; then page 2 after 4 is refused. */
	free(r3->chunks);
	free(r3->frame_stored);
	free(r3->frame_hash);
	r3->chunks = NULL, r3->frame_stored = NULL, r3->frame_hash = NULL;
	r3->n_chunks = r3->n_frames = 0;
	CHECK(chunkpage_decode(sb.buf + dir->pages[1].index_offset, dir->pages[1].size, r3, dir, 1,
			       err, sizeof(err)) == 0);
	CHECK(chunkpage_decode(sb.buf + dir->pages[4].index_offset, dir->pages[4].size, r3, dir, 4,
			       err, sizeof(err)) == 0);
	CHECK_INT(r3->n_chunks, 16);
	CHECK_INT(r3->chunks[0].offset, 16u << 20);
	CHECK(chunkpage_decode(sb.buf + dir->pages[2].index_offset, dir->pages[2].size, r3, dir, 2,
			       err, sizeof(err)) == -EINVAL);
	CHECK(strstr(err, "out of order") != NULL);
	/* A page given as another: its digest is not that page's. */
	CHECK(chunkpage_decode(sb.buf + dir->pages[5].index_offset, dir->pages[5].size, r3, dir, 3,
			       err, sizeof(err)) == -EINVAL);
	CHECK(one_line(err));
	CHECK_INT(r3->n_chunks, 16);
	/* Every byte of the index flipped: the directory or the page is refused. */
	for (i = 0; i < sb.len; i++) {
		struct chunkdir *d2 = NULL;
		int r;

		sb.buf[i] ^= 0x04;
		err[0] = '\0';
		r = chunkdir_decode(sb.buf, dlen, m, &d2, err, sizeof(err));
		if (i < dlen) {
			CHECK(r == -EINVAL && one_line(err));
		} else {
			CHECK(r == 0);
			for (p = 0; d2 && p < d2->n_pages; p++)
				if (i >= d2->pages[p].index_offset &&
				    i < d2->pages[p].index_offset + d2->pages[p].size) {
					r = chunkpage_decode(sb.buf + d2->pages[p].index_offset,
							     d2->pages[p].size, r3, d2, p, err,
							     sizeof(err));
					CHECK(r == -EINVAL && one_line(err));
				}
		}
		chunkdir_free(d2);
		sb.buf[i] ^= 0x04;
	}
	chunkdir_free(dir);
	bundle_manifest_free(r3);
	free(region);
	free(x.stored);
	free(x.hash);
	strbuf_release(&sb);
	bundle_manifest_free(m);
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_refusals);
	RUN(test_pages);
	return tap_done();
}
