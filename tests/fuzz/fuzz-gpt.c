/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: gpt_write() with any partition layout (starts and sizes over
 * the whole 64-bit range, names of any bytes) on a disk of up to 256 MiB.
 * It must refuse what does not fit; what it accepts is read back the way a
 * firmware or sgdisk would: protective MBR, both headers with their CRCs,
 * both entry arrays with theirs, every partition inside the usable area and
 * none overlapping another.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fs/gpt.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ENTRIES 128
#define ENTRY_SIZE 128
#define ENTRY_SECTORS (ENTRIES * ENTRY_SIZE / GPT_SECTOR)

static void check(int cond)
{
	if (!cond)
		abort();
}

static uint64_t take(const uint8_t **p, size_t *n, size_t bytes)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < bytes && *n; i++, (*p)++, (*n)--)
		v |= (uint64_t)**p << (8 * i);
	return v;
}

static uint32_t le32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t le64(const uint8_t *b)
{
	return (uint64_t)le32(b) | (uint64_t)le32(b + 4) << 32;
}

/* A header at lba: its own CRC, where it says it and its entries are, and the entries' CRC. */
static void check_header(int fd, uint64_t lba, uint64_t other, uint64_t entries_lba,
			 uint64_t last_lba, uint8_t entries[ENTRIES * ENTRY_SIZE])
{
	uint8_t h[GPT_SECTOR];
	uint32_t crc, hsize;

	check(pread(fd, h, sizeof(h), (off_t)(lba * GPT_SECTOR)) == (ssize_t)sizeof(h));
	check(!memcmp(h, "EFI PART", 8));
	hsize = le32(h + 12);
	check(hsize >= 92 && hsize <= GPT_SECTOR);
	crc = le32(h + 16);
	memset(h + 16, 0, 4);
	check(gpt_crc32(h, hsize) == crc);
	check(le64(h + 24) == lba && le64(h + 32) == other);
	check(le64(h + 40) == 2 + ENTRY_SECTORS && le64(h + 48) == last_lba - ENTRY_SECTORS - 1);
	check(le64(h + 72) == entries_lba);
	check(le32(h + 80) == ENTRIES && le32(h + 84) == ENTRY_SIZE);
	check(pread(fd, entries, ENTRIES * ENTRY_SIZE, (off_t)(entries_lba * GPT_SECTOR)) ==
	      ENTRIES * ENTRY_SIZE);
	check(gpt_crc32(entries, ENTRIES * ENTRY_SIZE) == le32(h + 88));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t primary[ENTRIES * ENTRY_SIZE], backup[ENTRIES * ENTRY_SIZE];
	struct strbuf err = STRBUF_INIT;
	struct gpt *g = xcalloc(1, sizeof(*g));
	uint8_t mbr[GPT_SECTOR];
	uint64_t last_lba;
	unsigned i, j;
	int fd, r;

	/* 4 to 256 MiB, sometimes not a whole number of sectors. */
	g->disk_size = (4 + take(&data, &size, 1)) * (1ULL << 20) + take(&data, &size, 1) * 512 +
		       (take(&data, &size, 1) == 7 ? 1 : 0);
	g->nparts = (unsigned)(take(&data, &size, 1) % 9);
	for (i = 0; i < g->nparts; i++) {
		struct gpt_part *p = &g->parts[i];
		uint64_t mode = take(&data, &size, 1);

		/* Mostly MiB-aligned layouts that may fit; sometimes any 64-bit value. */
		if (mode & 1) {
			p->start = take(&data, &size, 8);
			p->size = take(&data, &size, 8);
		} else {
			p->start = take(&data, &size, 1) << 20;
			p->size = take(&data, &size, 1) << 20;
		}
		p->type[0] = (uint8_t)take(&data, &size, 1);
		p->uuid[0] = (uint8_t)take(&data, &size, 1);
		p->attrs = take(&data, &size, 8);
		for (j = 0; j < 36; j++)
			p->name[j] = (char)take(&data, &size, 1);
		p->name[36] = '\0';
	}

	fd = memfd_create("gpt", MFD_CLOEXEC);
	check(fd >= 0);
	check(ftruncate(fd, (off_t)g->disk_size) == 0);
	r = gpt_write(fd, g, &err);
	if (r < 0) {
		check(err.len > 0 && !strchr(strbuf_str(&err), '\n'));
		goto out;
	}
	check(g->disk_size % GPT_SECTOR == 0);
	last_lba = g->disk_size / GPT_SECTOR - 1;

	check(pread(fd, mbr, sizeof(mbr), 0) == (ssize_t)sizeof(mbr));
	check(mbr[510] == 0x55 && mbr[511] == 0xaa && mbr[446 + 4] == 0xee);
	check_header(fd, 1, last_lba, 2, last_lba, primary);
	check_header(fd, last_lba, 1, last_lba - ENTRY_SECTORS, last_lba, backup);
	check(!memcmp(primary, backup, sizeof(primary)));

	for (i = 0; i < g->nparts; i++) {
		const uint8_t *e = primary + i * ENTRY_SIZE;
		uint64_t first = le64(e + 32), last = le64(e + 40);

		check(first >= 2 + ENTRY_SECTORS && first <= last);
		check(last <= last_lba - ENTRY_SECTORS - 1);
		check(first * GPT_SECTOR == g->parts[i].start);
		check((last + 1 - first) * GPT_SECTOR == g->parts[i].size);
		for (j = 0; j < i; j++) {
			const uint8_t *f = primary + j * ENTRY_SIZE;

			check(last < le64(f + 32) || le64(f + 40) < first);
		}
	}
	for (i = g->nparts; i < ENTRIES; i++) {
		static const uint8_t zero[ENTRY_SIZE];

		check(!memcmp(primary + i * ENTRY_SIZE, zero, ENTRY_SIZE));
	}
out:
	close(fd);
	free(g);
	strbuf_release(&err);
	return 0;
}
