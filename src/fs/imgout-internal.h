/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_IMGOUT_INTERNAL_H
#define IMGFORGE_IMGOUT_INTERNAL_H

/* What the writers in imgout.c, qcow2.c, vhd.c and vmdk.c share. */

#include <stddef.h>
#include <stdint.h>

#include "fs/imgout.h"

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
}

static inline uint64_t div_round_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

static inline uint64_t align_up(uint64_t a, uint64_t b)
{
	return div_round_up(a, b) * b;
}

/* How a unit is compressed, if it is. */
enum units_z {
	UNITS_RAW,	  /* not compressed */
	UNITS_DEFLATE_12, /* raw deflate, 4 KiB window (qcow2's zlib) */
	UNITS_ZSTD,	  /* one zstd frame (qcow2's zstd) */
	UNITS_ZLIB,	  /* zlib stream, 32 KiB window (VMDK grains) */
};

/*
 * The non-zero units (clusters, grains, blocks) of a raw disk, in disk
 * order: the data runs are read a batch at a time, units that hold only
 * zeros are dropped, and the rest are compressed by a pool of threads.
 * A unit past the end of the disk is padded with zeros to full size.
 */
struct units;
struct unit {
	uint64_t index;	     /* the unit's number: it starts at index * unit_size */
	const uint8_t *data; /* unit_size bytes */
	const uint8_t *z;    /* compressed, or NULL (UNITS_RAW) */
	size_t zlen;
};

int units_open(int fd, uint64_t size, size_t unit_size, enum units_z z, unsigned threads,
	       struct units **ret);
/* The next unit: 1 with *ret set (valid until the next call), 0 at the end, or -errno. */
int units_next(struct units *u, struct unit *ret);
void units_stats(const struct units *u, struct imgout_stats *ret);
void units_free(struct units *u);

/*
 * A sequential writer: appends at the end, through a buffer. Runs of zeros
 * it is asked to skip become holes. The offset is the file's, so formats
 * can note where each piece goes.
 */
struct outbuf {
	int fd;
	uint64_t off; /* the offset the next byte goes to */
	uint8_t *buf;
	size_t len, cap;
};

void outbuf_init(struct outbuf *o, int fd, uint64_t off);
int outbuf_write(struct outbuf *o, const void *data, size_t len);
/* Move to off (>= the current offset), leaving a hole (zeros) in between. */
int outbuf_skip_to(struct outbuf *o, uint64_t off);
/* Write zeros up to off; for gaps that must be stored (none is left as a hole). */
int outbuf_zero_to(struct outbuf *o, uint64_t off);
int outbuf_flush(struct outbuf *o);
void outbuf_release(struct outbuf *o);

/*
 * An identifier for the exported disk that is the same for the same disk:
 * SHA-256 of the format's name, the size and the disk's first MiB (its
 * partition table, with the disk's and partitions' GUIDs), shaped as an
 * RFC 4122 version-5-style UUID.
 */
int imgout_disk_id(int fd, uint64_t size, const char *format, uint8_t ret[16]);

/* Whether n bytes at p are all zeros. */
bool imgout_all_zero(const uint8_t *p, size_t n);

/* Message for a failed write: "no space left on device" spelled out. */
int imgout_write_error(int r, struct strbuf *err, const char *what);

int qcow2_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
		struct imgout_stats *ret_stats, struct strbuf *err);
int vhd_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
	      struct imgout_stats *ret_stats, struct strbuf *err);
int vmdk_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
	       struct imgout_stats *ret_stats, struct strbuf *err);

#endif
