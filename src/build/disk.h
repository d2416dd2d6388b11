/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_DISK_H
#define IMGFORGE_DISK_H

#include <stdint.h>

#include "core/util.h"

/*
 * The bootable A/B disk: GPT with bios (1 MiB), esp (FAT32 with GRUB),
 * root-a (the root filesystem), root-b (empty, same size), data (ext4
 * labelled "data", last so that it can grow). See docs/boot.md.
 */
struct disk_opts {
	const char *seed;      /* stage key: GUIDs, volume ids derive from it */
	const char *root_path; /* root.ext4 */
	uint64_t size;	       /* 0: the sum of the partitions */
	uint64_t root_size;    /* 0: from the root filesystem's size */
	uint64_t data_size;    /* 0: 256 MiB */
	uint64_t esp_size;     /* 0: 128 MiB */
	unsigned tries;	       /* boot tries per slot (default 3) */
	unsigned timeout;      /* GRUB menu timeout */
	const char *cmdline;   /* extra kernel arguments ("console=ttyS0" by default) */
	int64_t epoch;
	const char *tmpdir;    /* for GRUB images and the data filesystem */
};

struct disk_layout {
	uint64_t size;
	uint64_t start[5], len[5]; /* bios, esp, root-a, root-b, data */
	char partuuid[5][37];	   /* lowercase */
	char esp_uuid[10];
};

/* Compute the layout (sizes, GUIDs) without writing: for checks and plan. */
int disk_layout(const struct disk_opts *o, uint64_t root_fs_size, struct disk_layout *ret,
		struct strbuf *err);

/*
 * Write the disk image to out_path (a new sparse file). Returns 0 or -errno
 * with one line in err; *ret (may be NULL) gets the layout.
 */
int disk_write(const struct disk_opts *o, const char *out_path, struct disk_layout *ret,
	       struct strbuf *err);

#endif
