/* SPDX-License-Identifier: MIT */
/*
 * Tests for src/update/patch.c and format 4 in manifest.c: a patch made
 * from two images makes the second from the first, chunk by chunk, with
 * every kind of block (same, zero, copied from elsewhere, new); a source
 * that changed after it was hashed, a damaged data frame and manifests
 * whose "patch" does not hold are refused with one line.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/util.h"
#include "tap.h"
#include "update/manifest.h"
#include "update/patch.h"

#define CHUNK (64u << 10) /* 16 blocks a chunk: several chunks from small images */
#define BLK   PATCH_BLOCK
#define HEX64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static uint64_t rng = 88172645463325252ULL;

static uint8_t rnd8(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint8_t)rng;
}

static void spit(const char *path, const uint8_t *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	CHECK(fd >= 0 && write(fd, p, len) == (ssize_t)len);
	close(fd);
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	uint8_t *p;

	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	p = xmalloc((size_t)st.st_size + 1);
	CHECK(read(fd, p, (size_t)st.st_size) == st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

/*
 * old: 40 blocks of noise. new (44 blocks): blocks 0-9 the same, 10-13
 * zeros, 14-21 old blocks 30-37 (moved), 22-23 one byte changed each (as
 * an inode table block), 24-39 the same as old at their place but for 30-31
 * (new noise), 40-43 past the old image's end (new noise and one old block).
 */
static void make_images(uint8_t **ret_old, uint8_t **ret_new)
{
	uint8_t *o = xmalloc(40 * BLK), *n = xmalloc(44 * BLK);
	size_t i;

	for (i = 0; i < 40 * BLK; i++)
		o[i] = rnd8();
	memcpy(n, o, 40 * BLK);
	memset(n + 10 * BLK, 0, 4 * BLK);
	memcpy(n + 14 * BLK, o + 30 * BLK, 8 * BLK);
	n[22 * BLK + 100] ^= 0x55;
	n[23 * BLK + 4000] ^= 0x55;
	for (i = 30 * BLK; i < 32 * BLK; i++)
		n[i] = rnd8();
	for (i = 40 * BLK; i < 43 * BLK; i++)
		n[i] = rnd8();
	memcpy(n + 43 * BLK, o + 5 * BLK, BLK);
	*ret_old = o;
	*ret_new = n;
}

static struct patch *make_patch(uint8_t **ret_sec, size_t *ret_len)
{
	uint8_t *o, *n, ssha[32], psha[32], dsha[32];
	uint64_t ssize = 0, psize = 0;
	struct patch *p = NULL;
	char err[512] = "";
	int fd;

	make_images(&o, &n);
	spit("old.img", o, 40 * BLK);
	spit("new.img", n, 44 * BLK);
	fd = open("patch", O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0);
	CHECK(patch_create("old.img", "new.img", CHUNK, fd, &ssize, ssha, &psize, psha, err,
			   sizeof(err)) == 0);
	close(fd);
	CHECK_INT(ssize, 40 * BLK);
	{
		struct sha256 *h = sha256_new();

		sha256_update(h, o, 40 * BLK);
		sha256_final(h, dsha);
		sha256_free(h);
		CHECK(!memcmp(dsha, ssha, 32));
	}
	*ret_sec = slurp("patch", ret_len);
	CHECK_INT(*ret_len, psize);
	CHECK(patch_decode(*ret_sec, *ret_len, 44 * BLK, CHUNK, 40 * BLK, &p, err, sizeof(err)) == 0);
	free(o);
	free(n);
	return p;
}

TEST(test_roundtrip)
{
	uint8_t *sec, *o, *n, ref[CHUNK], out[CHUNK], (*bsha)[32];
	struct patch *p;
	char err[512] = "";
	size_t len, i, kinds[4] = {0};
	int fd;

	p = make_patch(&sec, &len);
	rng = 88172645463325252ULL;
	make_images(&o, &n);
	CHECK_INT(p->n_chunks, 3);
	for (i = 0; i < p->n_ops; i++)
		kinds[p->ops[i].type] += p->ops[i].count;
	/* Every kind of block is there; the new data is the changed blocks only. */
	CHECK(kinds[PATCH_SAME] >= 20 && kinds[PATCH_ZERO] == 4 && kinds[PATCH_COPY] >= 9);
	CHECK(kinds[PATCH_DATA] >= 2 && kinds[PATCH_DATA] <= 7);
	/* The changed blocks cost far less than their 4 KiB each. */
	CHECK(len < 6 * BLK);
	bsha = xcalloc(40, 32);
	for (i = 0; i < 40; i++) {
		struct sha256 *h = sha256_new();

		sha256_update(h, o + i * BLK, BLK);
		sha256_final(h, bsha[i]);
		sha256_free(h);
	}
	fd = open("old.img", O_RDONLY);
	for (i = 0; i < p->n_chunks; i++) {
		ssize_t got = patch_chunk(p, i, fd, (const uint8_t(*)[32])bsha, ref, out, err,
					  sizeof(err));
		size_t want = i == 2 ? 12 * BLK : CHUNK;

		CHECK_INT(got, want);
		CHECK(!memcmp(out, n + i * CHUNK, want));
	}
	/* The running slot changed after it was hashed: refused, one line. */
	bsha[31][0] ^= 1;
	CHECK(patch_chunk(p, 0, fd, (const uint8_t(*)[32])bsha, ref, out, err, sizeof(err)) < 0);
	CHECK(strstr(err, "the running slot changed during the install") && !strchr(err, '\n'));
	close(fd);
	patch_free(p);
	free(sec);
	free(o);
	free(n);
	free(bsha);
}

TEST(test_damage_refused)
{
	uint8_t *sec, ref[CHUNK], out[CHUNK];
	struct patch *p, *q = NULL;
	char err[512] = "";
	size_t len, i;
	int fd, refused = 0;

	p = make_patch(&sec, &len);
	fd = open("old.img", O_RDONLY);
	/* A byte of the last data frame changed: that chunk is refused, never wrong. */
	sec[len - 3] ^= 0x20;
	for (i = 0; i < p->n_chunks; i++) {
		err[0] = '\0';
		if (patch_chunk(p, i, fd, NULL, ref, out, err, sizeof(err)) < 0) {
			CHECK(err[0] && !strchr(err, '\n'));
			refused++;
		}
	}
	CHECK(refused >= 1);
	sec[len - 3] ^= 0x20;
	/* Another geometry than the signed manifest's, a cut section, trailing bytes. */
	CHECK(patch_decode(sec, len, 48 * BLK, CHUNK, 40 * BLK, &q, err, sizeof(err)) < 0 &&
	      !strchr(err, '\n'));
	CHECK(patch_decode(sec, len, 44 * BLK, CHUNK, 36 * BLK, &q, err, sizeof(err)) < 0);
	CHECK(patch_decode(sec, len - 1, 44 * BLK, CHUNK, 40 * BLK, &q, err, sizeof(err)) < 0);
	CHECK(patch_decode(sec, 11, 44 * BLK, CHUNK, 40 * BLK, &q, err, sizeof(err)) < 0);
	{
		uint8_t *more = xmalloc(len + 1);

		memcpy(more, sec, len);
		more[len] = 0;
		CHECK(patch_decode(more, len + 1, 44 * BLK, CHUNK, 40 * BLK, &q, err,
				   sizeof(err)) < 0);
		CHECK(strstr(err, "do not end the section") != NULL);
		free(more);
	}
	CHECK(q == NULL);
	close(fd);
	patch_free(p);
	free(sec);
}

static int parse(const char *json, char *err, size_t errlen)
{
	struct bundle_manifest *m = NULL;
	int r = manifest_parse(json, strlen(json), &m, err, errlen);

	bundle_manifest_free(m);
	return r;
}

TEST(test_manifest_format4)
{
	static const char head[] =
		"{\"format\":%u,\"compatible\":\"b\",\"version\":\"1\",\"build_id\":\"\","
		"\"created\":1,\"image\":{\"size\":1048576,\"sha256\":\"%064d\"},"
		"\"compression\":\"zstd\",\"chunk_size\":1048576,\"frame_size\":65536,"
		"\"payload\":{\"offset\":2000,\"size\":5000,\"sha256\":\"%064d\"},"
		"\"chunk_index\":{\"page_chunks\":16,\"size\":300,\"sha256\":\"%064d\"}%s}";
	struct {
		unsigned format;
		const char *patch, *want;
	} cases[] = {
		{4, ",\"patch\":{\"from\":{\"size\":8192,\"sha256\":\"" HEX64
		    "\"},\"offset\":7000,\"size\":100,\"sha256\":\"" HEX64 "\"}", NULL},
		{4, ",\"patch\":{\"from\":{\"size\":8192,\"sha256\":\"" HEX64
		    "\"},\"offset\":7001,\"size\":100,\"sha256\":\"" HEX64 "\"}",
		 "the patch must follow the payload"},
		{4, ",\"patch\":{\"from\":{\"size\":8192,\"sha256\":\"" HEX64
		    "\"},\"offset\":7000,\"size\":5,\"sha256\":\"" HEX64 "\"}",
		 "cannot be smaller than its header"},
		{4, ",\"patch\":{\"from\":{\"size\":8192,\"sha256\":\"" HEX64
		    "\"},\"offset\":7000,\"size\":67108865,\"sha256\":\"" HEX64 "\"}",
		 "size"},
		{4, ",\"patch\":{\"from\":{\"size\":8193,\"sha256\":\"" HEX64
		    "\"},\"offset\":7000,\"size\":100,\"sha256\":\"" HEX64 "\"}",
		 "whole 4 KiB blocks"},
		{4, ",\"patch\":null", "patch"},
		{4, "", "patch"},
		{3, ",\"patch\":{\"from\":{\"size\":8192,\"sha256\":\"" HEX64
		    "\"},\"offset\":7000,\"size\":100,\"sha256\":\"" HEX64 "\"}",
		 "patch"},
		{5, "", "format 5 is not supported"},
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		char json[2048], err[512] = "";
		int r;

		snprintf(json, sizeof(json), head, cases[i].format, 0, 0, 0, cases[i].patch);
		r = parse(json, err, sizeof(err));
		if (!cases[i].want) {
			struct bundle_manifest *m = NULL;
			struct strbuf sb = STRBUF_INIT;

			CHECK(r == 0);
			CHECK(manifest_parse(json, strlen(json), &m, err, sizeof(err)) == 0);
			CHECK(m->has_patch && m->patch_from_size == 8192 && m->patch_size == 100 &&
			      m->patch_offset == 7000);
			manifest_write(m, &sb);
			CHECK_STR(strbuf_str(&sb), json);
			strbuf_release(&sb);
			bundle_manifest_free(m);
			continue;
		}
		if (r == 0 || !strstr(err, cases[i].want) || strchr(err, '\n'))
			printf("#   case %zu: %s\n", i, err);
		CHECK(r < 0 && strstr(err, cases[i].want) && !strchr(err, '\n'));
	}
}

/*
 * An image shorter than the earlier one, changed in its last, short chunk:
 * the data's prefix is the earlier image only as far as that chunk goes.
 */
TEST(test_shorter_image)
{
	uint8_t *o = xmalloc(44 * BLK), *n, *sec, ref[CHUNK], out[CHUNK], ssha[32], psha[32];
	uint64_t ssize, psize;
	struct patch *p = NULL;
	char err[512] = "";
	size_t i, len;
	int fd;

	for (i = 0; i < 44 * BLK; i++)
		o[i] = rnd8();
	n = xmalloc(40 * BLK);
	memcpy(n, o, 40 * BLK);
	n[35 * BLK + 7] ^= 1;
	spit("old.img", o, 44 * BLK);
	spit("new.img", n, 40 * BLK);
	fd = open("patch", O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(patch_create("old.img", "new.img", CHUNK, fd, &ssize, ssha, &psize, psha, err,
			   sizeof(err)) == 0);
	close(fd);
	sec = slurp("patch", &len);
	/* one block changed by a bit: far less than the block itself */
	CHECK(len < BLK / 2);
	CHECK(patch_decode(sec, len, 40 * BLK, CHUNK, 44 * BLK, &p, err, sizeof(err)) == 0);
	fd = open("old.img", O_RDONLY);
	for (i = 0; i < p->n_chunks; i++) {
		ssize_t got = patch_chunk(p, i, fd, NULL, ref, out, err, sizeof(err));

		if (got < 0)
			printf("#   chunk %zu: %s\n", i, err);
		CHECK_INT(got, i == 2 ? 8 * BLK : CHUNK);
		CHECK(got > 0 && !memcmp(out, n + i * CHUNK, (size_t)got));
	}
	close(fd);
	patch_free(p);
	free(sec);
	free(o);
	free(n);
}

int main(void)
{
	RUN(test_roundtrip);
	RUN(test_shorter_image);
	RUN(test_damage_refused);
	RUN(test_manifest_format4);
	return tap_done();
}
