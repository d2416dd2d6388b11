/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_IMGOUT_H
#define IMGFORGE_IMGOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

/*
 * Disk image writers: a raw disk written as a raw, qcow2, VHD or VMDK file,
 * genimage-style (one file per format: qcow2.c, vhd.c, vmdk.c, with the raw
 * copy and what they share in imgout.c). Only the data runs of the source
 * are read (SEEK_DATA/SEEK_HOLE), and clusters of zeros are not stored.
 * Compression runs on a pool of threads and the results are written in disk
 * order, so the output depends only on the source and the options: the same
 * disk gives the same bytes with 1 thread or 64. See docs/export.md.
 */

enum imgout_format {
	IMGOUT_RAW,
	IMGOUT_QCOW2,
	IMGOUT_VHD,
	IMGOUT_VMDK,
};

/* qcow2 compression types; the value is the header's compression_type. */
enum imgout_ctype {
	IMGOUT_ZLIB = 0,
	IMGOUT_ZSTD = 1,
};

struct imgout_opts {
	enum imgout_format format;
	bool compress;		 /* qcow2: compressed clusters (VMDK grains always are) */
	enum imgout_ctype ctype; /* qcow2 only */
	bool vhd_dynamic;	 /* VHD: dynamic instead of fixed */
	unsigned threads;	 /* compressing threads; 0: one per online CPU */
	const char *extent_name; /* VMDK: the file name its descriptor names */
};

struct imgout_stats {
	uint64_t read;	 /* bytes of the source read */
	uint64_t stored; /* clusters (grains, blocks) written */
	uint64_t zero;	 /* clusters read and found to hold only zeros */
};

/* "raw", "qcow2", "vhd", "vmdk"; the format's name. */
const char *imgout_format_name(enum imgout_format f);
int imgout_format_parse(const char *name, enum imgout_format *ret);

/*
 * Write the first size bytes of the raw disk in_fd to out_fd, an empty file
 * open for writing, in o->format. Returns 0, or -errno with a message in err
 * (a size the format cannot hold, an I/O error, no space). out_fd is not
 * synced: the caller syncs and renames it into place. ret_stats may be NULL.
 */
int imgout_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
		 struct imgout_stats *ret_stats, struct strbuf *err);

/*
 * What a file looks like when it is not a raw disk: "qcow2", "VMDK", "VHD",
 * or NULL when its first bytes name no image format imgforge knows.
 */
const char *imgout_sniff(int fd, uint64_t size);

#endif
