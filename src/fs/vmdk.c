/* SPDX-License-Identifier: MIT */
/*
 * VMDK, monolithic and streamOptimized (VMware Virtual Disk Format 5.0):
 * what VMware's OVF packages carry and AWS VM Import takes. One pass, front
 * to back: the header (the grain directory "at the end"), the embedded
 * descriptor, then each grain of 64 KiB that holds data, zlib-compressed
 * after its marker, then every grain table, the grain directory, a footer
 * (the header with the directory's place) and the end-of-stream marker.
 *
 * The descriptor's CID is derived from the disk and it names the file as
 * it is finally called, so the same disk exported to the same name gives the
 * same bytes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/imgout-internal.h"

#define SECTOR		512
#define GRAIN_SECTORS	128 /* 64 KiB */
#define GRAIN		(GRAIN_SECTORS * SECTOR)
#define GT_ENTRIES	512
#define GT_SECTORS	(GT_ENTRIES * 4 / SECTOR)
#define DESC_OFFSET	1
#define DESC_SECTORS	20
#define OVERHEAD	GRAIN_SECTORS /* header and descriptor, rounded up to a grain */
#define GD_AT_END	UINT64_MAX
#define FLAGS		(1u | (1u << 16) | (1u << 17)) /* newline check, compressed, markers */
#define MARKER_EOS	0
#define MARKER_GT	1
#define MARKER_GD	2
#define MARKER_FOOTER	3

static void make_header(uint8_t *h, uint64_t capacity, uint64_t gd_offset)
{
	memset(h, 0, SECTOR);
	memcpy(h, "KDMV", 4);
	put_le32(h + 4, 3);
	put_le32(h + 8, FLAGS);
	put_le64(h + 12, capacity);
	put_le64(h + 20, GRAIN_SECTORS);
	put_le64(h + 28, DESC_OFFSET);
	put_le64(h + 36, DESC_SECTORS);
	put_le32(h + 44, GT_ENTRIES);
	put_le64(h + 48, 0); /* no redundant grain directory */
	put_le64(h + 56, gd_offset);
	put_le64(h + 64, OVERHEAD);
	h[72] = 0; /* clean */
	h[73] = '\n', h[74] = ' ', h[75] = '\r', h[76] = '\n';
	put_le16(h + 77, 1); /* deflate */
}

static void make_marker(uint8_t *m, uint64_t val, uint32_t type)
{
	memset(m, 0, SECTOR);
	put_le64(m, val);
	put_le32(m + 12, type);
}

/* The descriptor, padded with zeros to DESC_SECTORS. */
static int make_descriptor(uint8_t *d, uint64_t capacity, const uint8_t id[16],
			   const char *name)
{
	uint64_t cyl = capacity / (16 * 63);
	int n;

	if (cyl > 16383)
		cyl = 16383;
	memset(d, 0, DESC_SECTORS * SECTOR);
	n = snprintf((char *)d, DESC_SECTORS * SECTOR,
		     "# Disk DescriptorFile\n"
		     "version=1\n"
		     "CID=%02x%02x%02x%02x\n"
		     "parentCID=ffffffff\n"
		     "createType=\"streamOptimized\"\n"
		     "\n"
		     "# Extent description\n"
		     "RW %" PRIu64 " SPARSE \"%s\"\n"
		     "\n"
		     "# The Disk Data Base\n"
		     "#DDB\n"
		     "\n"
		     "ddb.virtualHWVersion = \"4\"\n"
		     "ddb.geometry.cylinders = \"%" PRIu64 "\"\n"
		     "ddb.geometry.heads = \"16\"\n"
		     "ddb.geometry.sectors = \"63\"\n"
		     "ddb.adapterType = \"ide\"\n",
		     id[0], id[1], id[2], id[3], capacity, name, cyl);
	return n > 0 && n < DESC_SECTORS * SECTOR ? 0 : -ENAMETOOLONG;
}

int vmdk_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
	       struct imgout_stats *ret_stats, struct strbuf *err)
{
	uint64_t capacity = size / SECTOR, grains = div_round_up(capacity, GRAIN_SECTORS);
	uint64_t ngt = div_round_up(grains, GT_ENTRIES), i, gd_off, gd_sectors;
	_cleanup_free_ uint32_t *gt = NULL, *gt_off = NULL;
	_cleanup_free_ uint8_t *buf = xcalloc(1, DESC_SECTORS * SECTOR > GT_SECTORS * SECTOR
							 ? DESC_SECTORS * SECTOR
							 : GT_SECTORS * SECTOR);
	const char *name = o->extent_name && *o->extent_name ? o->extent_name : "disk.vmdk";
	uint8_t id[16], sec[SECTOR];
	struct units *u = NULL;
	struct outbuf ob;
	struct unit un;
	int r;

	if (size > (2040ULL << 30)) {
		/* sector offsets in grain tables and the directory are 32-bit */
		strbuf_addstr(err, "the disk is larger than a streamOptimized VMDK holds (2 TiB); "
				   "export it as qcow2");
		return -EFBIG;
	}
	if (strchr(name, '"') || strchr(name, '\n')) {
		strbuf_addf(err, "the file name '%s' cannot be written into a VMDK descriptor",
			    name);
		return -EINVAL;
	}
	r = imgout_disk_id(in_fd, size, "vmdk", id);
	if (r < 0) {
		strbuf_addf(err, "cannot read the disk: %s", strerror(-r));
		return r;
	}
	if (make_descriptor(buf, capacity, id, name) < 0) {
		strbuf_addf(err, "the file name '%s' is too long for a VMDK descriptor", name);
		return -ENAMETOOLONG;
	}
	gt = xcalloc(ngt * GT_ENTRIES, sizeof(*gt));
	gt_off = xcalloc(ngt, sizeof(*gt_off));

	r = units_open(in_fd, size, GRAIN, UNITS_ZLIB, o->threads, &u);
	if (r < 0) {
		strbuf_addf(err, "cannot set up the compressors: %s", strerror(-r));
		return r;
	}
	outbuf_init(&ob, out_fd, 0);
	make_header(sec, capacity, GD_AT_END);
	r = outbuf_write(&ob, sec, SECTOR);
	if (r >= 0)
		r = outbuf_write(&ob, buf, DESC_SECTORS * SECTOR);
	if (r >= 0)
		r = outbuf_zero_to(&ob, OVERHEAD * SECTOR);
	if (r < 0)
		goto wfail;
	while ((r = units_next(u, &un)) > 0) {
		uint8_t m[12];

		if (un.zlen > UINT32_MAX) {
			r = -EIO;
			goto wfail;
		}
		gt[un.index] = (uint32_t)(ob.off / SECTOR);
		put_le64(m, un.index * GRAIN_SECTORS);
		put_le32(m + 8, (uint32_t)un.zlen);
		r = outbuf_write(&ob, m, sizeof(m));
		if (r >= 0)
			r = outbuf_write(&ob, un.z, un.zlen);
		if (r >= 0)
			r = outbuf_zero_to(&ob, align_up(ob.off, SECTOR));
		if (r < 0)
			goto wfail;
	}
	if (r < 0) {
		strbuf_addf(err, "cannot read the disk: %s", strerror(-r));
		goto out;
	}
	/* Every grain table, even one with no grain: readers that expect them all find them. */
	for (i = 0; i < ngt && r >= 0; i++) {
		uint64_t j;

		make_marker(sec, GT_SECTORS, MARKER_GT);
		r = outbuf_write(&ob, sec, SECTOR);
		gt_off[i] = (uint32_t)(ob.off / SECTOR);
		for (j = 0; j < GT_ENTRIES; j++)
			put_le32(buf + 4 * j, gt[i * GT_ENTRIES + j]);
		if (r >= 0)
			r = outbuf_write(&ob, buf, GT_SECTORS * SECTOR);
	}
	if (r < 0)
		goto wfail;
	gd_sectors = div_round_up(ngt * 4, SECTOR);
	make_marker(sec, gd_sectors, MARKER_GD);
	r = outbuf_write(&ob, sec, SECTOR);
	gd_off = ob.off / SECTOR;
	for (i = 0; i < ngt && r >= 0; i++) {
		uint8_t e[4];

		put_le32(e, gt_off[i]);
		r = outbuf_write(&ob, e, 4);
	}
	if (r >= 0)
		r = outbuf_zero_to(&ob, align_up(ob.off, SECTOR));
	make_marker(sec, 1, MARKER_FOOTER);
	if (r >= 0)
		r = outbuf_write(&ob, sec, SECTOR);
	make_header(sec, capacity, gd_off);
	if (r >= 0)
		r = outbuf_write(&ob, sec, SECTOR);
	make_marker(sec, 0, MARKER_EOS);
	if (r >= 0)
		r = outbuf_write(&ob, sec, SECTOR);
	if (r >= 0)
		r = outbuf_flush(&ob);
wfail:
	if (r < 0)
		imgout_write_error(r, err, "VMDK");
out:
	if (ret_stats)
		units_stats(u, ret_stats);
	outbuf_release(&ob);
	units_free(u);
	return r < 0 ? r : 0;
}
