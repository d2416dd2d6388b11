/* SPDX-License-Identifier: MIT */
/*
 * Tests for src/update/bundle.c, manifest.c and sign.c: a bundle made from
 * an image file round-trips byte for byte; every kind of damage is refused
 * with one line; and a mutation harness runs seeded random mutations of a
 * valid bundle through bundle_open() and bundle_stream_payload(): every
 * one must be refused, none may crash (this file also runs under ASan+UBSan
 * in make check). IMGFORGE_BUNDLE_MUTATIONS=N runs N instead of the default;
 * IMGFORGE_BUNDLE_SEED=S picks another seed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/util.h"
#include "tap.h"
#include "update/bundle.h"
#include "update/chunkidx.h"
#include "update/sign.h"

#define MIB (1u << 20)

static void write_text(const char *path, const char *s)
{
	CHECK(write_file_atomic(path, s, strlen(s), 0600) == 0);
}

/* A key pair in dir/signing.{key,crt}, valid from not_before for days. */
static void make_key(const char *dir, int64_t not_before, unsigned days)
{
	char *key = NULL, *cert = NULL, err[512] = "";
	_cleanup_free_ char *k = path_join(dir, "signing.key"), *c = path_join(dir, "signing.crt");

	CHECK(mkdir_p(dir, 0700) == 0);
	if (sig_keygen("test key", not_before, days, &key, &cert, err, sizeof(err)) < 0) {
		printf("#   sig_keygen: %s\n", err);
		CHECK(0);
		return;
	}
	write_text(k, key);
	write_text(c, cert);
	free(key);
	free(cert);
}

/*
 * An "ext4 image" of size bytes: bundle_create() only checks the superblock
 * magic. Mixed content: incompressible, compressible, zero runs, and a
 * short last chunk when size is not a multiple of the chunk size.
 */
static void make_image(const char *path, size_t size)
{
	uint8_t *img = xcalloc(1, size);
	uint32_t x = 12345;
	size_t i;

	for (i = 0; i < size; i++) {
		size_t chunk = i / MIB;
		if (chunk % 3 == 0) {
			x = x * 1103515245 + 12345;
			img[i] = (uint8_t)(x >> 16);
		} else if (chunk % 3 == 1 && i % 4096 < 100) {
			img[i] = (uint8_t)('a' + i % 26);
		}
	}
	img[1080] = 0x53;
	img[1081] = 0xef;
	if (size > 3 * MIB)
		img[size - 1] = 1; /* a non-zero short last chunk */
	CHECK(write_file_atomic(path, img, size, 0644) == 0);
	free(img);
}

struct mem {
	const uint8_t *p;
	size_t len, pos;
	size_t max_read; /* 0: any; else the most one read returns (a slow network) */
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem *m = ctx;
	size_t n = m->len - m->pos;

	if (n > len)
		n = len;
	if (m->max_read && n > m->max_read)
		n = m->max_read;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

struct sink {
	uint8_t *img;
	uint64_t size;
	int calls;
};

static int sink_emit(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct sink *s = ctx;

	if (off + len > s->size)
		return -1;
	memcpy(s->img + off, data, len);
	s->calls++;
	return 0;
}

static int sink_zero(void *ctx, uint64_t off, uint64_t len)
{
	struct sink *s = ctx;

	if (off + len > s->size)
		return -1;
	memset(s->img + off, 0, len);
	return 0;
}

/* Open and stream a whole bundle from memory: 0, or -1 with the message in err. */
static int check_bundle(const uint8_t *p, size_t len, const char *keyring, struct sink *sink,
			char *err, size_t errlen)
{
	struct mem m = {p, len, 0, 0};
	struct bundle_manifest *man = NULL;
	int r;

	err[0] = '\0';
	r = bundle_open(mem_read, &m, keyring, &man, err, errlen);
	if (r == 0) {
		r = bundle_stream_payload(mem_read, &m, man, sink ? sink_emit : NULL,
					  sink ? sink_zero : NULL, sink, err, errlen);
		bundle_manifest_free(man);
	}
	return r;
}

/* One line, not empty: what every refusal must print. */
static int one_line(const char *err)
{
	return err[0] && !strchr(err, '\n');
}

static void make_bundle_frames(const char *img, size_t size, const char *out, unsigned format,
			       uint64_t frame_size)
{
	char err[1024] = "";

	make_key("keys", time(NULL) - 60, 30);
	make_image(img, size);
	if (bundle_create_format(img, out, "keys/signing.key", "keys/signing.crt", "test-board",
				 "1.2.3", "b1", 1700000000, format, frame_size, err,
				 sizeof(err)) < 0) {
		printf("#   bundle_create: %s\n", err);
		CHECK(0);
	}
}

static void make_bundle_format(const char *img, size_t size, const char *out, unsigned format)
{
	make_bundle_frames(img, size, out, format, 0);
}

static void make_bundle(const char *img, size_t size, const char *out)
{
	make_bundle_format(img, size, out, BUNDLE_FORMAT);
}

/*
 * Every format: 3 as written by default, 2 and 1 as older devices read them;
 * formats 2 and 3 with frames of frame image bytes (0: the default).
 */
static void roundtrip(unsigned format, uint64_t frame)
{
	const uint64_t fs = format == 1 ? MIB : frame ? frame : BUNDLE_FRAME_SIZE;
	const size_t per = (size_t)(MIB / fs), last = (size_t)((12345 + fs - 1) / fs);
	char *bundle = NULL, *image = NULL, err[1024];
	size_t blen = 0, ilen = 0, i;
	struct sink s = {0};
	struct mem m;
	struct bundle_manifest *man = NULL;
	struct chunkidx *x = NULL;
	struct stat st;
	uint8_t hdr[12] = "IMGFBND1\0\0\0";

	hdr[11] = (uint8_t)format;
	unlink("b.bundle");
	make_bundle_frames("root.ext4", 5 * MIB + 12345, "b.bundle", format, frame);
	CHECK(stat("b.bundle.tmp", &st) < 0 && errno == ENOENT);
	CHECK(read_file("b.bundle", 64 * MIB, &bundle, &blen) == 0);
	CHECK(read_file("root.ext4", 64 * MIB, &image, &ilen) == 0);
	CHECK(blen > 0 && blen < ilen);
	CHECK(!memcmp(bundle, hdr, 12));

	/* Read 7 bytes at a time, as a slow stream would deliver them. */
	m = (struct mem){(const uint8_t *)bundle, blen, 0, 7};
	CHECK(bundle_open(mem_read, &m, "keys/signing.crt", &man, err, sizeof(err)) == 0);
	if (!man)
		return;
	CHECK_INT(man->format, format);
	CHECK_STR(man->compatible, "test-board");
	CHECK_STR(man->version, "1.2.3");
	CHECK_STR(man->build_id, "b1");
	CHECK_INT(man->created, 1700000000);
	CHECK_INT(man->image_size, ilen);
	CHECK_INT(man->chunk_size, MIB);
	CHECK_INT(man->frame_size, fs);
	/* Chunks 0, 1, 3, 4 and the short last one hold data; 2 and 5 are zeros. */
	CHECK_INT(man->n_chunks, 5);
	CHECK_INT(man->chunks[2].offset, 3 * MIB);
	CHECK_INT(man->chunks[4].size, 12345);
	CHECK_INT(man->payload_offset + man->payload_size +
			  (format == 3 ? 0 : man->index_size),
		  blen);
	CHECK_INT(man->has_chunk_index, format >= 2);
	if (format == 3) {
		/* The pages, read by bundle_open(): one page, a 104-byte directory before it. */
		CHECK_INT(man->page_chunks, CHUNKIDX_PAGE_CHUNKS);
		CHECK_INT(man->n_frames, 4 * per + last);
		CHECK_INT(manifest_dir_size(man), 24 + 80);
		CHECK(man->payload_offset > man->index_size + manifest_dir_size(man));
		x = chunkidx_from_manifest(man);
	} else if (format == 2) {
		CHECK(chunkidx_decode(bundle + man->payload_offset + man->payload_size,
				      man->index_size, man, &x, err, sizeof(err)) == 0);
		/* The index is small next to the image: 12 bytes a frame, at most. */
		CHECK(!x || man->index_size < 24 + 12 * x->n_frames);
	}
	if (x) {
		/* The index: MIB / fs frames per full chunk, then the short last one's. */
		CHECK_INT(x->n_frames, 4 * per + last);
		CHECK_INT(x->first[4], 4 * per);
		CHECK_INT(x->stored_off[4 * per], man->chunks[4].stored_offset);
		for (i = 0; i < x->n_frames; i++) {
			uint8_t h[CHUNKIDX_HASH_LEN];
			size_t c = i < 4 * per ? i / per : 4, k = i - c * per;
			uint64_t off = man->chunks[c].offset + k * fs;

			chunkidx_hash(image + off,
				      c == 4 && 12345 - k * fs < fs ? 12345 - k * fs : fs, h);
			CHECK(!memcmp(h, x->hash[i], sizeof(h)));
		}
		chunkidx_free(x);
	}
	s.size = ilen;
	s.img = xmalloc(ilen);
	memset(s.img, 0xaa, ilen);
	CHECK(bundle_stream_payload(mem_read, &m, man, sink_emit, sink_zero, &s, err,
				    sizeof(err)) == 0);
	CHECK(!memcmp(s.img, image, ilen));
	CHECK_INT(s.calls, 5);
	bundle_manifest_free(man);
	free(s.img);
	free(bundle);
	free(image);
}

TEST(test_roundtrip)
{
	roundtrip(3, 0);
	roundtrip(2, 0);
	roundtrip(1, 0);
	/* Other frame sizes, recorded in the signed manifest and read back. */
	roundtrip(3, 32 << 10);
	roundtrip(3, 4 << 10);
	roundtrip(2, 16 << 10);
	roundtrip(3, MIB);
}

TEST(test_keyring_and_rotation)
{
	char *bundle = NULL, err[1024];
	_cleanup_free_ char *a = NULL, *b = NULL, *ring = NULL;
	size_t blen = 0, n;

	make_bundle("root.ext4", 2 * MIB, "b.bundle");
	CHECK(read_file("b.bundle", 64 * MIB, &bundle, &blen) == 0);
	/* Another key: not trusted. */
	CHECK(rename("keys", "old") == 0);
	make_key("new", time(NULL) - 60, 30);
	CHECK(check_bundle((uint8_t *)bundle, blen, "new/signing.crt", NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "does not trust") != NULL);
	CHECK(one_line(err));
	/* A keyring of both (one file): trusted. So is a directory of both. */
	CHECK(read_file("old/signing.crt", 65536, &a, &n) == 0);
	CHECK(read_file("new/signing.crt", 65536, &b, &n) == 0);
	ring = xasprintf("%s%s", b, a);
	write_text("ring.pem", ring);
	CHECK(check_bundle((uint8_t *)bundle, blen, "ring.pem", NULL, err, sizeof(err)) == 0);
	CHECK(mkdir("ring.d", 0755) == 0);
	write_text("ring.d/new.crt", b);
	write_text("ring.d/old.pem", a);
	write_text("ring.d/notes.txt", "not a certificate");
	CHECK(check_bundle((uint8_t *)bundle, blen, "ring.d", NULL, err, sizeof(err)) == 0);
	/* The old certificate dropped: refused. */
	CHECK(unlink("ring.d/old.pem") == 0);
	CHECK(check_bundle((uint8_t *)bundle, blen, "ring.d", NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "does not trust") != NULL);
	/* Keyrings that are not one. */
	CHECK(check_bundle((uint8_t *)bundle, blen, "missing.pem", NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "cannot read keyring") != NULL);
	write_text("empty.pem", "");
	CHECK(check_bundle((uint8_t *)bundle, blen, "empty.pem", NULL, err, sizeof(err)) < 0);
	CHECK(strstr(err, "holds no certificate") != NULL);
	CHECK(check_bundle((uint8_t *)bundle, blen, "old/signing.key", NULL, err, sizeof(err)) < 0);
	CHECK(one_line(err));
	free(bundle);
}

TEST(test_expired_and_future_certificates)
{
	char *bundle = NULL, err[1024];
	size_t blen = 0;

	/* Valid when signed, expired now: a key that signed then expired. */
	make_key("keys", time(NULL) - 10 * 86400, 1);
	make_image("root.ext4", 2 * MIB);
	CHECK(bundle_create("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt", "x",
			    "1", "", 1, err, sizeof(err)) == 0);
	CHECK(read_file("b.bundle", 64 * MIB, &bundle, &blen) == 0);
	CHECK(check_bundle((uint8_t *)bundle, blen, "keys/signing.crt", NULL, err, sizeof(err)) <
	      0);
	CHECK(strstr(err, "expired") != NULL);
	CHECK(one_line(err));
	free(bundle);
	bundle = NULL;
	rm_rf("keys");
	/* Not valid yet (a device clock behind). */
	make_key("keys", time(NULL) + 10 * 86400, 10);
	CHECK(bundle_create("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt", "x",
			    "1", "", 1, err, sizeof(err)) == 0);
	CHECK(read_file("b.bundle", 64 * MIB, &bundle, &blen) == 0);
	CHECK(check_bundle((uint8_t *)bundle, blen, "keys/signing.crt", NULL, err, sizeof(err)) <
	      0);
	CHECK(strstr(err, "not valid before") != NULL);
	free(bundle);
}

TEST(test_create_refusals)
{
	char err[1024];
	struct stat st;

	make_key("keys", time(NULL) - 60, 30);
	make_image("root.ext4", 2 * MIB);
	write_text("disk.img", "not an ext4 image, far too short");
	CHECK(bundle_create("disk.img", "b.bundle", "keys/signing.key", "keys/signing.crt", "x",
			    "1", NULL, 1, err, sizeof(err)) < 0);
	CHECK(strstr(err, "not an ext4 image") != NULL);
	CHECK(bundle_create("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt",
			    "bad name", "1", NULL, 1, err, sizeof(err)) < 0);
	CHECK(strstr(err, "invalid compatible name") != NULL);
	CHECK(bundle_create("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt", "x",
			    "1/2", NULL, 1, err, sizeof(err)) < 0);
	CHECK(bundle_create("root.ext4", "b.bundle", "keys/signing.crt", "keys/signing.crt", "x",
			    "1", NULL, 1, err, sizeof(err)) < 0);
	CHECK(strstr(err, "cannot read key") != NULL);
	make_key("other", time(NULL) - 60, 30);
	CHECK(bundle_create("root.ext4", "b.bundle", "other/signing.key", "keys/signing.crt", "x",
			    "1", NULL, 1, err, sizeof(err)) < 0);
	CHECK(strstr(err, "does not belong") != NULL);
	CHECK(one_line(err));
	/* Frame sizes: a power of two from 4 KiB to the chunk size, formats 2 and 3 only. */
	CHECK(bundle_create_format("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt",
				   "x", "1", NULL, 1, 3, 48 << 10, err, sizeof(err)) < 0);
	CHECK(strstr(err, "frame size 49152 is not a power of two from 4 KiB to 1024 KiB") != NULL);
	CHECK(bundle_create_format("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt",
				   "x", "1", NULL, 1, 3, 2 << 10, err, sizeof(err)) < 0);
	CHECK(bundle_create_format("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt",
				   "x", "1", NULL, 1, 2, 2 * MIB, err, sizeof(err)) < 0);
	CHECK(bundle_create_format("root.ext4", "b.bundle", "keys/signing.key", "keys/signing.crt",
				   "x", "1", NULL, 1, 1, 32 << 10, err, sizeof(err)) < 0);
	CHECK(strstr(err, "format 1 has one frame per chunk") != NULL);
	CHECK(one_line(err));
	/* Nothing left behind by the refusals. */
	CHECK(stat("b.bundle", &st) < 0 && stat("b.bundle.tmp", &st) < 0);
}

TEST(test_check_target)
{
	struct bundle_manifest m = {.compatible = (char *)"board", .version = (char *)"1.10"};
	char err[512];

	CHECK(bundle_check_target(&m, "board", "1.9", false, false, err, sizeof(err)) == 0);
	CHECK(bundle_check_target(&m, "other", "1.9", false, false, err, sizeof(err)) < 0);
	CHECK(strstr(err, "is for 'board'") != NULL);
	/* strverscmp: 1.10 is newer than 1.9, older than 1.11. */
	CHECK(bundle_check_target(&m, "board", "1.11", false, false, err, sizeof(err)) < 0);
	CHECK(strstr(err, "older") != NULL);
	CHECK(bundle_check_target(&m, "board", "1.11", true, false, err, sizeof(err)) == 0);
	CHECK(bundle_check_target(&m, "board", "1.10", false, false, err, sizeof(err)) < 0);
	CHECK(strstr(err, "already running") != NULL);
	CHECK(bundle_check_target(&m, "board", "1.10", false, true, err, sizeof(err)) == 0);
}

/* --- the mutation harness ------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: seeded, the same sequence on every machine. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Mutate a copy of the bundle (len bytes, the signed part is the first
 * signed bytes): returns the new length. Positions are drawn mostly from
 * the header, manifest and signature, where a parser could go wrong, the
 * rest from the payload.
 */
static size_t mutate(uint8_t *b, size_t len, size_t cap, size_t head, const char **what)
{
	size_t pos = rnd_below(4) ? rnd_below(head) : rnd_below(len), n, i;

	switch (rnd_below(9)) {
	case 0:
		*what = "bit flip";
		b[pos] ^= (uint8_t)(1u << rnd_below(8));
		return len;
	case 1:
		*what = "byte set";
		{
			uint8_t v = (uint8_t)rnd();
			b[pos] = v == b[pos] ? (uint8_t)~v : v;
		}
		return len;
	case 2:
		*what = "truncation";
		return rnd_below(len);
	case 3:
		*what = "bytes inserted";
		n = 1 + rnd_below(16);
		if (len + n > cap)
			return len - 1;
		memmove(b + pos + n, b + pos, len - pos);
		for (i = 0; i < n; i++)
			b[pos + i] = (uint8_t)rnd();
		return len + n;
	case 4:
		*what = "bytes removed";
		n = 1 + rnd_below(16);
		if (pos + n > len)
			n = len - pos;
		if (n == 0)
			return len - 1;
		memmove(b + pos, b + pos + n, len - pos - n);
		return len - n;
	case 5:
		*what = "header length";
		put32(b + 12 + 4 * rnd_below(2),
		      (uint32_t)rnd_below(3) == 0 ? 0xffffffffu : (uint32_t)rnd_below(head + 64));
		return len;
	case 6:
		*what = "bytes appended";
		if (len + 1 > cap)
			return len - 1;
		b[len] = (uint8_t)rnd();
		return len + 1;
	case 7:
		*what = "range copied";
		{
			size_t from = rnd_below(len);
			n = 1 + rnd_below(64);
			if (from + n > len)
				n = len - from;
			if (pos + n > len)
				n = len - pos;
			if (n == 0 || !memcmp(b + pos, b + from, n)) {
				b[pos] ^= 0x80;
				return len;
			}
			memmove(b + pos, b + from, n);
		}
		return len;
	default:
		*what = "several bit flips";
		n = 2 + rnd_below(6);
		for (i = 0; i < n; i++)
			b[rnd_below(len)] ^= (uint8_t)(1u << rnd_below(8));
		/* Two flips of the same bit undo each other: make sure something changed. */
		b[pos] ^= 0x01;
		b[pos] ^= 0x01;
		return len;
	}
}

/*
 * runs seeded mutations of a bundle of the given format, then (formats 2
 * and 3) index_runs bit flips inside its chunk index: every one refused,
 * with one line.
 */
static void mutations(unsigned format, size_t runs, size_t index_runs)
{
	char *orig = NULL, err[1024];
	size_t len = 0, head, i, refused = 0, index_at = 0, index_end = 0;
	struct sink s = {0};
	uint8_t *b;

	/* Small enough to run a thousand times under ASan; every kind of chunk is in it. */
	unlink("b.bundle");
	make_bundle_format("root.ext4", 3 * MIB + 777, "b.bundle", format);
	CHECK(read_file("b.bundle", 64 * MIB, &orig, &len) == 0);
	if (!orig)
		return;
	s.size = 3 * MIB + 777;
	s.img = xmalloc(s.size);
	CHECK(check_bundle((uint8_t *)orig, len, "keys/signing.crt", &s, err, sizeof(err)) == 0);
	head = BUNDLE_HEADER_SIZE +
	       ((size_t)(uint8_t)orig[12] << 24 | (size_t)(uint8_t)orig[13] << 16 |
		(size_t)(uint8_t)orig[14] << 8 | (uint8_t)orig[15]) +
	       ((size_t)(uint8_t)orig[18] << 8 | (uint8_t)orig[19]);
	if (format >= 2) {
		struct mem m = {(const uint8_t *)orig, len, 0, 0};
		struct bundle_manifest *man = NULL;

		CHECK(bundle_open(mem_read, &m, "keys/signing.crt", &man, err, sizeof(err)) == 0);
		if (man && format == 3) {
			index_at = head;
			index_end = (size_t)(head + man->index_size);
		} else if (man) {
			index_at = (size_t)(man->payload_offset + man->payload_size);
			index_end = len;
		}
		bundle_manifest_free(man);
		CHECK(index_at >= head && index_at < index_end && index_end <= len);
	}
	b = xmalloc(len + 64);
	for (i = 0; i < runs + index_runs; i++) {
		const char *what = "";
		size_t n;

		memcpy(b, orig, len);
		if (i < runs) {
			n = mutate(b, len, len + 64, head, &what);
		} else {
			what = "chunk index bit flip";
			n = len;
			b[index_at + rnd_below(index_end - index_at)] ^= (uint8_t)(1u << rnd_below(8));
		}
		if (n == len && !memcmp(b, orig, len))
			b[rnd_below(len)] ^= 0x10; /* never the original */
		if (check_bundle(b, n, "keys/signing.crt", &s, err, sizeof(err)) == 0) {
			printf("#   format %u mutation %zu (%s, seed %" PRIu64 ") was accepted\n",
			       format, i, what, rng_state);
			CHECK(0);
			continue;
		}
		if (!one_line(err)) {
			printf("#   format %u mutation %zu (%s): not one line: '%s'\n", format, i,
			       what, err);
			CHECK(0);
		}
		refused++;
	}
	printf("# format %u: %zu of %zu mutations refused\n", format, refused, runs + index_runs);
	CHECK_INT(refused, runs + index_runs);
	free(b);
	free(s.img);
	free(orig);
}

TEST(test_mutations_refused)
{
	const char *env = getenv("IMGFORGE_BUNDLE_MUTATIONS"),
		   *seed = getenv("IMGFORGE_BUNDLE_SEED");
	size_t runs = env ? strtoul(env, NULL, 10) : 1200;

	rng_state = seed ? strtoull(seed, NULL, 10) : 20261203;
	if (!rng_state)
		rng_state = 1;
	/* Format 3 as written, its chunk index on its own, and formats 2 and 1 as still read. */
	mutations(3, runs, runs / 12);
	mutations(2, runs / 4, runs / 24);
	mutations(1, runs / 4, 0);
}

/*
 * Every single-bit flip of the header, the manifest and the signature: the
 * parts a reader interprets before it trusts anything.
 */
TEST(test_every_bit_of_the_signed_part)
{
	char *orig = NULL, err[1024];
	size_t len = 0, head, pos, bad = 0;
	const char *env = getenv("IMGFORGE_BUNDLE_EVERY_BIT");
	size_t step = env ? strtoul(env, NULL, 10) : 7;
	uint8_t *b;
	int bit;

	if (!step)
		step = 1;
	make_bundle("root.ext4", 2 * MIB, "b.bundle");
	CHECK(read_file("b.bundle", 64 * MIB, &orig, &len) == 0);
	if (!orig)
		return;
	head = BUNDLE_HEADER_SIZE +
	       ((size_t)(uint8_t)orig[12] << 24 | (size_t)(uint8_t)orig[13] << 16 |
		(size_t)(uint8_t)orig[14] << 8 | (uint8_t)orig[15]) +
	       ((size_t)(uint8_t)orig[18] << 8 | (uint8_t)orig[19]);
	b = xmalloc(len);
	/* By default every 7th byte (all 8 bits of each); IMGFORGE_BUNDLE_EVERY_BIT=1 for all. */
	for (pos = 0; pos < head; pos += step)
		for (bit = 0; bit < 8; bit++) {
			memcpy(b, orig, len);
			b[pos] ^= (uint8_t)(1u << bit);
			if (check_bundle(b, len, "keys/signing.crt", NULL, err, sizeof(err)) == 0) {
				printf("#   flip of bit %d of byte %zu accepted\n", bit, pos);
				bad++;
			}
		}
	CHECK_INT(bad, 0);
	free(b);
	free(orig);
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_keyring_and_rotation);
	RUN(test_expired_and_future_certificates);
	RUN(test_create_refusals);
	RUN(test_check_target);
	RUN(test_mutations_refused);
	RUN(test_every_bit_of_the_signed_part);
	return tap_done();
}
