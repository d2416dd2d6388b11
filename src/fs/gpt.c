/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <zlib.h>

#include "fs/gpt.h"
#include "core/hash.h"

#define MIB	      (1ULL << 20)
#define ENTRY_SIZE    128
#define ENTRIES_BYTES (GPT_MAX_PARTS * ENTRY_SIZE) /* 16 KiB = 32 sectors */
#define ENTRY_SECTORS (ENTRIES_BYTES / GPT_SECTOR)

uint32_t gpt_crc32(const void *buf, size_t len)
{
	return (uint32_t)crc32(0L, buf, (uInt)len);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int gpt_guid_parse(const char *s, uint8_t ret[16])
{
	uint8_t b[16];
	int i, j = 0;

	if (strlen(s) != 36)
		return -EINVAL;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			continue;
		}
		if (hexval(s[i]) < 0 || hexval(s[i + 1]) < 0)
			return -EINVAL;
		b[j++] = (uint8_t)(hexval(s[i]) * 16 + hexval(s[i + 1]));
		i++;
	}
	/* The first three fields are stored little-endian. */
	ret[0] = b[3], ret[1] = b[2], ret[2] = b[1], ret[3] = b[0];
	ret[4] = b[5], ret[5] = b[4];
	ret[6] = b[7], ret[7] = b[6];
	memcpy(ret + 8, b + 8, 8);
	return 0;
}

void gpt_guid_format(const uint8_t g[16], char out[37])
{
	snprintf(out, 37, "%02X%02X%02X%02X-%02X%02X-%02X%02X-%02X%02X-%02X%02X%02X%02X%02X%02X",
		 g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11], g[12],
		 g[13], g[14], g[15]);
}

void gpt_guid_derive(const char *seed, const char *name, uint8_t ret[16])
{
	struct sha256 *h = sha256_new();
	uint8_t d[SHA256_LEN];

	sha256_update_str(h, "imgforge-guid");
	sha256_update_str(h, seed);
	sha256_update_str(h, name);
	sha256_final(h, d);
	sha256_free(h);
	memcpy(ret, d, 16);
	/* Version 4 and the RFC 4122 variant, in on-disk byte order. */
	ret[7] = (uint8_t)((ret[7] & 0x0f) | 0x40);
	ret[8] = (uint8_t)((ret[8] & 0x3f) | 0x80);
}

static void header(uint8_t *h, const struct gpt *g, uint64_t my_lba, uint64_t alt_lba,
		   uint64_t entries_lba, uint32_t entries_crc)
{
	uint64_t last = g->disk_size / GPT_SECTOR - 1;

	memset(h, 0, GPT_SECTOR);
	memcpy(h, "EFI PART", 8);
	put_le32(h + 8, 0x00010000);
	put_le32(h + 12, 92);
	put_le64(h + 24, my_lba);
	put_le64(h + 32, alt_lba);
	put_le64(h + 40, 2 + ENTRY_SECTORS);	  /* first usable */
	put_le64(h + 48, last - ENTRY_SECTORS - 1); /* last usable */
	memcpy(h + 56, g->disk_uuid, 16);
	put_le64(h + 72, entries_lba);
	put_le32(h + 80, GPT_MAX_PARTS);
	put_le32(h + 84, ENTRY_SIZE);
	put_le32(h + 88, entries_crc);
	put_le32(h + 16, gpt_crc32(h, 92));
}

int gpt_write(int fd, const struct gpt *g, struct strbuf *err)
{
	_cleanup_free_ uint8_t *entries = xcalloc(1, ENTRIES_BYTES);
	uint8_t mbr[GPT_SECTOR], hdr[GPT_SECTOR];
	uint64_t last_lba, first_usable, last_usable;
	uint32_t ecrc;
	unsigned i, j;
	int r;

	if (g->disk_size % GPT_SECTOR || g->disk_size < 4 * MIB) {
		strbuf_addf(err, "disk size %llu is not a multiple of 512 or below 4 MiB",
			    (unsigned long long)g->disk_size);
		return -EINVAL;
	}
	last_lba = g->disk_size / GPT_SECTOR - 1;
	first_usable = 2 + ENTRY_SECTORS;
	last_usable = last_lba - ENTRY_SECTORS - 1;
	for (i = 0; i < g->nparts; i++) {
		const struct gpt_part *p = &g->parts[i];
		uint8_t *e = entries + i * ENTRY_SIZE;
		uint64_t first, lastp;

		if (p->start % MIB || p->size % MIB || !p->size) {
			strbuf_addf(err, "partition %u '%s' is not 1 MiB aligned", i + 1,
				    quote_path(p->name));
			return -EINVAL;
		}
		/* start + size must not wrap round to a small number that "fits". */
		if (p->size > g->disk_size || p->start > g->disk_size - p->size) {
			strbuf_addf(err, "partition %u '%s' does not fit on a %llu MiB disk", i + 1,
				    quote_path(p->name), (unsigned long long)(g->disk_size / MIB));
			return -ENOSPC;
		}
		first = p->start / GPT_SECTOR;
		lastp = (p->start + p->size) / GPT_SECTOR - 1;
		if (first < first_usable || lastp > last_usable) {
			strbuf_addf(err, "partition %u '%s' does not fit on a %llu MiB disk", i + 1,
				    quote_path(p->name), (unsigned long long)(g->disk_size / MIB));
			return -ENOSPC;
		}
		for (j = 0; j < i; j++) {
			const struct gpt_part *q = &g->parts[j];
			if (p->start < q->start + q->size && q->start < p->start + p->size) {
				strbuf_addf(err, "partitions '%s' and '%s' overlap",
					    quote_path(q->name), quote_path(p->name));
				return -EINVAL;
			}
		}
		memcpy(e, p->type, 16);
		memcpy(e + 16, p->uuid, 16);
		put_le64(e + 32, first);
		put_le64(e + 40, lastp);
		put_le64(e + 48, p->attrs);
		for (j = 0; j < 36 && p->name[j]; j++)
			put_le16(e + 56 + 2 * j, (uint8_t)p->name[j]);
	}
	ecrc = gpt_crc32(entries, ENTRIES_BYTES);

	/* Protective MBR: one partition of type 0xEE over the whole disk. */
	memset(mbr, 0, sizeof(mbr));
	memcpy(mbr, g->boot_code, sizeof(g->boot_code));
	mbr[446 + 0] = 0x00;
	mbr[446 + 1] = 0x00, mbr[446 + 2] = 0x02, mbr[446 + 3] = 0x00; /* CHS 0/0/2 */
	mbr[446 + 4] = 0xEE;
	mbr[446 + 5] = 0xFF, mbr[446 + 6] = 0xFF, mbr[446 + 7] = 0xFF;
	put_le32(mbr + 446 + 8, 1);
	put_le32(mbr + 446 + 12, last_lba > 0xFFFFFFFFULL ? 0xFFFFFFFFU : (uint32_t)last_lba);
	mbr[510] = 0x55;
	mbr[511] = 0xAA;

	r = pwrite_all(fd, mbr, sizeof(mbr), 0);
	header(hdr, g, 1, last_lba, 2, ecrc);
	if (r == 0)
		r = pwrite_all(fd, hdr, sizeof(hdr), GPT_SECTOR);
	if (r == 0)
		r = pwrite_all(fd, entries, ENTRIES_BYTES, 2 * GPT_SECTOR);
	header(hdr, g, last_lba, 1, last_lba - ENTRY_SECTORS, ecrc);
	if (r == 0)
		r = pwrite_all(fd, entries, ENTRIES_BYTES, (last_lba - ENTRY_SECTORS) * GPT_SECTOR);
	if (r == 0)
		r = pwrite_all(fd, hdr, sizeof(hdr), last_lba * GPT_SECTOR);
	if (r < 0)
		strbuf_addf(err, "cannot write the partition table: %s", strerror(-r));
	return r;
}
