/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_FAT_H
#define IMGFORGE_FAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/*
 * A FAT32 filesystem for the EFI system partition, written in-process:
 * deterministic (every timestamp is mtime, the volume id is given) and
 * without root or mtools. 8.3 names whose base and extension are each all
 * upper or all lower case are stored with the NT case flags, as Windows and
 * Linux read them; other names only with long_names (the ESP has none). Files are
 * contiguous, directories and files laid out in sorted path order.
 */
struct fat_file {
	const char *path; /* "EFI/BOOT/BOOTX64.EFI"; parent directories are implied */
	const void *data;
	size_t len;
};

struct fat_opts {
	uint64_t size;		 /* bytes, at least 33 MiB (FAT32's minimum cluster count) */
	uint32_t volume_id;	 /* the "XXXX-XXXX" id GRUB and blkid show as the UUID */
	const char *label;	 /* up to 11 characters */
	int64_t mtime;		 /* every timestamp */
	uint32_t hidden_sectors; /* sectors before the partition on the disk */
	bool long_names;	 /* names that are not 8.3 get long name (VFAT) entries
				    and a "NAME~N" alias; false: refused */
};

/*
 * Write the filesystem into fd at byte offset (the region is assumed to read
 * as zeros: only non-zero sectors are written). Returns 0 or -errno with a
 * message in err.
 */
int fat_write(int fd, uint64_t offset, const struct fat_opts *o, const struct fat_file *files,
	      size_t n, struct strbuf *err);

#endif
