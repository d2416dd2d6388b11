/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_GPT_H
#define IMGFORGE_GPT_H

#include <stdint.h>

#include "core/util.h"

/*
 * A GUID partition table written by imgforge: protective MBR, primary and
 * backup headers and entry arrays, CRC32s from zlib. 512-byte sectors,
 * 128 entries of 128 bytes. Partitions are given in bytes and must be
 * 1 MiB aligned. zlib gives the CRC-32s.
 */
#define GPT_SECTOR  512ULL
#define GPT_MAX_PARTS 128

struct gpt_part {
	uint8_t type[16]; /* on-disk (mixed-endian) form */
	uint8_t uuid[16];
	uint64_t start;	  /* bytes, 1 MiB aligned */
	uint64_t size;	  /* bytes */
	uint64_t attrs;
	char name[37];	  /* ASCII; stored as UTF-16LE */
};

struct gpt {
	uint64_t disk_size; /* bytes, a multiple of 512 */
	uint8_t disk_uuid[16];
	struct gpt_part parts[GPT_MAX_PARTS];
	unsigned nparts;
	uint8_t boot_code[440]; /* MBR boot code (GRUB's boot.img); zeros if none */
};

/* Parse "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" into on-disk GUID bytes. */
int gpt_guid_parse(const char *s, uint8_t ret[16]);
/* Format on-disk GUID bytes as the usual uppercase string (37 bytes). */
void gpt_guid_format(const uint8_t g[16], char out[37]);
/* A version-4-shaped GUID from a hash: the same seed and name give the same GUID. */
void gpt_guid_derive(const char *seed, const char *name, uint8_t ret[16]);

/*
 * Write the protective MBR, both headers and both entry arrays into fd
 * (which must already be disk_size bytes long). Returns 0 or -errno with a
 * message in err (overlapping or misaligned partitions, a disk too small).
 */
int gpt_write(int fd, const struct gpt *g, struct strbuf *err);

/* zlib's crc32 over a buffer (also used for GRUB environment checks in tests). */
uint32_t gpt_crc32(const void *buf, size_t len);

/* Type GUIDs (Discoverable Partitions Specification and UEFI). */
#define GPT_TYPE_ESP	   "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_TYPE_BIOS	   "21686148-6449-6E6F-744E-656564454649"
#define GPT_TYPE_ROOT_X86_64 "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
#define GPT_TYPE_LINUX_DATA "0FC63DAF-8483-4772-8E79-3D69D8477DE4"

#endif
