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

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_refusals);
	return tap_done();
}
