/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: an update bundle, as a device reads it from the network.
 * The input goes through bundle_open() with a fixed keyring (the committed
 * seeds are signed by its key, so mutations of them reach the signature
 * check and the manifest), then through bundle_open_unverified() and, when
 * the manifest holds, bundle_stream_payload(): what the parser does with a
 * manifest it has not yet trusted is exercised too, and with it the zstd
 * frames and every digest. The same bytes go to the JSON reader, the
 * manifest and channel index checks, the signature's description, and the
 * chunk index readers (format 2, and format 3's directory and pages, against
 * a fixed manifest of three chunks), and the patch of format 4 against a
 * fixed geometry and earlier image (patch-64k.bin is a valid one).
 * Every refusal must be one line; a bundle accepted with the keyring must
 * stream. Run from the source tree (the keyring is found by its path there).
 */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/util.h"
#include "update/bundle.h"
#include "update/channel.h"
#include "update/chunkidx.h"
#include "update/jsonr.h"
#include "update/patch.h"
#include "update/sign.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEYRING "tests/fuzz/bundle-keyring.pem"

static void check(int cond)
{
	if (!cond)
		abort();
}

/* Odd-sized reads, as a network delivers them. */
static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	const struct bundle_mem *m = ctx;
	size_t cap = 1000 + m->pos % 7;

	return bundle_read_mem(ctx, buf, len < cap ? len : cap);
}

static int one_line(const char *err)
{
	return err[0] && !strchr(err, '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bundle_manifest *m = NULL;
	struct bundle_mem mem = {data, size, 0};
	struct jsonr *doc = NULL;
	struct channel_entry e;
	uint8_t *sig = NULL;
	size_t siglen = 0;
	char err[1024], *desc = NULL;
	int r;

	err[0] = '\0';
	r = bundle_open(mem_read, &mem, KEYRING, &m, err, sizeof(err));
	if (r == 0) {
		r = bundle_stream_payload(mem_read, &mem, m, NULL, NULL, NULL, err, sizeof(err));
		bundle_manifest_free(m);
		m = NULL;
	}
	check(r == 0 || one_line(err));

	mem.pos = 0;
	err[0] = '\0';
	r = bundle_open_unverified(mem_read, &mem, &m, &sig, &siglen, err, sizeof(err));
	check(r == 0 || one_line(err));
	if (r == 0) {
		err[0] = '\0';
		r = bundle_stream_payload(mem_read, &mem, m, NULL, NULL, NULL, err, sizeof(err));
		check(r == 0 || one_line(err));
		if (sig_describe_der_signer(sig, siglen, &desc, err, sizeof(err)) == 0)
			check(!strchr(desc, '\n'));
		free(desc);
		free(sig);
		bundle_manifest_free(m);
	}

	/* The bytes as a JSON document, a manifest and a channel index. */
	if (jsonr_parse((const char *)data, size, &doc, err, sizeof(err)) == 0)
		jsonr_free(doc);
	else
		check(one_line(err));
	m = NULL;
	if (manifest_parse((const char *)data, size, &m, err, sizeof(err)) == 0) {
		struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
		struct bundle_manifest *again = NULL;

		/* What is accepted is written back in a form read back the same. */
		manifest_write(m, &a);
		check(manifest_parse(a.buf, a.len, &again, err, sizeof(err)) == 0);
		manifest_write(again, &b);
		check(a.len == b.len && !memcmp(a.buf, b.buf, a.len));
		strbuf_release(&a);
		strbuf_release(&b);
		bundle_manifest_free(again);
		bundle_manifest_free(m);
	}
	/* The bytes as a chunk index: 16 + 16 + 2 frames of 64 KiB, 40 stored bytes each. */
	{
		struct bundle_chunk ch[3] = {
			{.offset = 0, .size = 1u << 20, .stored_offset = 0, .stored_size = 640},
			{.offset = 2u << 20, .size = 1u << 20, .stored_offset = 640, .stored_size = 640},
			{.offset = 3u << 20, .size = 70000, .stored_offset = 1280, .stored_size = 80},
		};
		struct bundle_manifest fm = {.format = 2, .chunk_size = 1u << 20,
					     .frame_size = 64u << 10, .image_size = (3u << 20) + 70000,
					     .payload_size = 1360, .chunks = ch, .n_chunks = 3};
		struct chunkidx *x = NULL;

		if (chunkidx_decode(data, size, &fm, &x, err, sizeof(err)) == 0) {
			check(x->n_frames == 34 && x->first[3] == 34 && x->stored_off[33] == 1320);
			chunkidx_free(x);
		} else {
			check(one_line(err));
		}
	}
	/*
	 * The bytes as a format-3 index (a directory of 184 bytes, then pages)
	 * for a fixed manifest of the same three chunks in pages of 2 chunks.
	 * The digests are set to the input's own, so that what they guard is
	 * reached: the manifest's for the directory, the directory's for each page.
	 */
	if (size >= 184) {
		struct bundle_manifest *fm = xcalloc(1, sizeof(*fm));
		struct chunkdir *dir = NULL;
		struct sha256 *h = sha256_new();
		size_t p;

		*fm = (struct bundle_manifest){.format = 3, .chunk_size = 1u << 20,
					       .frame_size = 64u << 10,
					       .image_size = (3u << 20) + 70000, .payload_size = 1360,
					       .page_chunks = 2, .index_size = size};
		sha256_update(h, data, 184);
		sha256_final(h, fm->chunk_index_sha256);
		if (chunkdir_decode(data, 184, fm, &dir, err, sizeof(err)) == 0) {
			check(dir->n_pages == 2);
			for (p = 0; p < dir->n_pages; p++) {
				const struct chunkdir_page *pg = &dir->pages[p];

				check(pg->index_offset + pg->size <= size);
				sha256_update(h, data + pg->index_offset, pg->size);
				sha256_final(h, dir->pages[p].sha256);
				if (chunkpage_decode(data + pg->index_offset, pg->size, fm, dir, p, err,
						     sizeof(err)) < 0) {
					check(one_line(err));
					break;
				}
			}
			if (p == dir->n_pages) {
				struct chunkidx *x = chunkidx_from_manifest(fm);

				/* Every stored byte of the payload, in order, exactly once. */
				check(fm->n_chunks <= 4 && x->first[fm->n_chunks] == fm->n_frames);
				check(!fm->n_chunks ||
				      fm->chunks[fm->n_chunks - 1].stored_offset +
						      fm->chunks[fm->n_chunks - 1].stored_size ==
					      1360);
				chunkidx_free(x);
			}
			chunkdir_free(dir);
		} else {
			check(one_line(err));
		}
		sha256_free(h);
		bundle_manifest_free(fm);
	}
	/*
	 * The bytes as a format-4 patch: an image of 16 blocks in chunks of 4,
	 * from an earlier image of 8 blocks, block b all bytes b + 1. Every
	 * chunk of an accepted patch is made, or refused in one line.
	 */
	{
		struct patch *p = NULL;
		int fd = memfd_create("fuzz-patch-source", 0);

		if (fd >= 0) {
			uint8_t blk[PATCH_BLOCK], ref[16384], out[16384];
			size_t i;

			for (i = 0; i < 8; i++) {
				memset(blk, (int)i + 1, sizeof(blk));
				check(write(fd, blk, sizeof(blk)) == (ssize_t)sizeof(blk));
			}
			if (patch_decode(data, size, 65536, 16384, 32768, &p, err, sizeof(err)) == 0) {
				for (i = 0; i < p->n_chunks; i++) {
					err[0] = '\0';
					if (patch_chunk(p, i, fd, NULL, ref, out, err, sizeof(err)) < 0)
						check(one_line(err));
				}
				patch_free(p);
			} else {
				check(one_line(err));
			}
			close(fd);
		}
	}
	if (channel_parse((const char *)data, size, "stable", &e, err, sizeof(err)) == 0)
		channel_entry_release(&e);
	else
		check(one_line(err));
	return 0;
}
