/* SPDX-License-Identifier: MIT */
/*
 * VHD (Virtual Hard Disk, Microsoft's specification 1.0): fixed, the disk
 * as it is with a 512-byte footer after it (what Azure takes, and AWS
 * imports), or dynamic: a copy of the footer, the dynamic header, the block
 * allocation table, the 2 MiB blocks that hold data, each after its sector
 * bitmap, and the footer.
 *
 * The footer's time stamp is 0 (2000-01-01) and its id is derived from the
 * disk, so the same disk gives the same file. The geometry is the
 * specification's, when it spans the disk exactly; otherwise the largest
 * geometry, which QEMU and Hyper-V take to mean "use the current size": a
 * smaller one would make QEMU see a disk cut short at the geometry's end.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "fs/imgout-internal.h"

#define FOOTER_LEN	512
#define DYN_HEADER_LEN	1024
#define BLOCK_SIZE	(2u << 20)
#define CHUNK		(64u << 10) /* the granularity of holes inside a block */
#define BITMAP_LEN	512 /* BLOCK_SIZE / 512 sectors, one bit each, padded to a sector */
#define CHS_MAX_SECTORS (65535ULL * 16 * 255)
#define VHD_MAX_SIZE	(2040ULL << 30) /* the specification's limit */
#define DISK_FIXED	2
#define DISK_DYNAMIC	3
#define CREATOR_VERSION 0x00000001 /* imgforge 0.1 */

static uint32_t checksum(const uint8_t *p, size_t n)
{
	uint32_t sum = 0;
	size_t i;

	for (i = 0; i < n; i++)
		sum += p[i];
	return ~sum;
}

/* The CHS geometry of the VHD specification's appendix, or 0 when it does not span the disk. */
static void geometry(uint64_t size, uint16_t *cyl, uint8_t *heads, uint8_t *spt)
{
	uint64_t ts = size / 512, cth;
	uint32_t h, s;

	if (ts > CHS_MAX_SECTORS)
		ts = CHS_MAX_SECTORS;
	if (ts >= 65535ULL * 16 * 63) {
		s = 255, h = 16;
		cth = ts / s;
	} else {
		s = 17;
		cth = ts / s;
		h = (uint32_t)((cth + 1023) / 1024);
		if (h < 4)
			h = 4;
		if (cth >= h * 1024ULL || h > 16) {
			s = 31, h = 16;
			cth = ts / s;
		}
		if (cth >= h * 1024ULL) {
			s = 63, h = 16;
			cth = ts / s;
		}
	}
	if ((cth / h) * h * s * 512 != size) {
		*cyl = 65535, *heads = 16, *spt = 255;
		return;
	}
	*cyl = (uint16_t)(cth / h), *heads = (uint8_t)h, *spt = (uint8_t)s;
}

static void make_footer(uint8_t *f, uint64_t size, bool dynamic, const uint8_t id[16])
{
	uint16_t cyl;
	uint8_t heads, spt;

	memset(f, 0, FOOTER_LEN);
	memcpy(f, "conectix", 8);
	put_be32(f + 8, 2); /* features: reserved bit, always set */
	put_be32(f + 12, 0x00010000);
	put_be64(f + 16, dynamic ? FOOTER_LEN : UINT64_MAX);
	put_be32(f + 24, 0); /* time stamp: none, for the same bytes from the same disk */
	memcpy(f + 28, "imgf", 4);
	put_be32(f + 32, CREATOR_VERSION);
	memcpy(f + 36, "Wi2k", 4); /* the specification knows Windows and Macintosh only */
	put_be64(f + 40, size);
	put_be64(f + 48, size);
	geometry(size, &cyl, &heads, &spt);
	put_be16(f + 56, cyl);
	f[58] = heads;
	f[59] = spt;
	put_be32(f + 60, dynamic ? DISK_DYNAMIC : DISK_FIXED);
	memcpy(f + 68, id, 16);
	put_be32(f + 64, checksum(f, FOOTER_LEN));
}

/*
 * What both layouts do after their units: r < 0 is a read error of the
 * disk, or a write error when write_failed; then the statistics and the
 * cleanup. Returns r.
 */
static int vhd_end(int r, bool write_failed, struct units *u, struct outbuf *ob,
		   struct imgout_stats *ret_stats, struct strbuf *err)
{
	if (r < 0 && write_failed)
		imgout_write_error(r, err, "VHD");
	else if (r < 0)
		strbuf_addf(err, "cannot read the disk: %s", strerror(-r));
	if (ret_stats)
		units_stats(u, ret_stats);
	outbuf_release(ob);
	units_free(u);
	return r;
}

static int write_fixed(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
		       struct imgout_stats *ret_stats, struct strbuf *err, const uint8_t *footer)
{
	struct units *u = NULL;
	struct outbuf ob;
	struct unit un;
	bool wfailed = false;
	int r;

	r = units_open(in_fd, size, 64 << 10, UNITS_RAW, o->threads, &u);
	if (r < 0)
		return imgout_write_error(r, err, "VHD");
	outbuf_init(&ob, out_fd, 0);
	while ((r = units_next(u, &un)) > 0) {
		uint64_t at = un.index * (64 << 10);
		size_t n = size - at < (64 << 10) ? (size_t)(size - at) : (64 << 10);

		r = outbuf_skip_to(&ob, at);
		if (r >= 0)
			r = outbuf_write(&ob, un.data, n);
		if (r < 0) {
			wfailed = true;
			break;
		}
	}
	if (r == 0) {
		r = outbuf_skip_to(&ob, size);
		if (r >= 0)
			r = outbuf_write(&ob, footer, FOOTER_LEN);
		if (r >= 0)
			r = outbuf_flush(&ob);
		wfailed = r < 0;
	}
	return vhd_end(r, wfailed, u, &ob, ret_stats, err);
}

static int write_dynamic(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
			 struct imgout_stats *ret_stats, struct strbuf *err, const uint8_t *footer)
{
	uint32_t nblocks = (uint32_t)div_round_up(size, BLOCK_SIZE);
	uint64_t bat_len = align_up((uint64_t)nblocks * 4, 512);
	uint64_t data_off = FOOTER_LEN + DYN_HEADER_LEN + bat_len;
	_cleanup_free_ uint8_t *head = xcalloc(1, data_off);
	uint8_t bitmap[BITMAP_LEN], *dh = head + FOOTER_LEN, *bat = dh + DYN_HEADER_LEN;
	struct units *u = NULL;
	struct outbuf ob;
	struct unit un;
	bool wfailed = false;
	uint32_t i;
	int r;

	memcpy(head, footer, FOOTER_LEN);
	memcpy(dh, "cxsparse", 8);
	put_be64(dh + 8, UINT64_MAX);
	put_be64(dh + 16, FOOTER_LEN + DYN_HEADER_LEN);
	put_be32(dh + 24, 0x00010000);
	put_be32(dh + 28, nblocks);
	put_be32(dh + 32, BLOCK_SIZE);
	put_be32(dh + 36, checksum(dh, DYN_HEADER_LEN));
	for (i = 0; i < nblocks; i++)
		put_be32(bat + 4 * (uint64_t)i, UINT32_MAX);
	memset(bat + (uint64_t)nblocks * 4, 0, bat_len - (uint64_t)nblocks * 4);
	memset(bitmap, 0xff, sizeof(bitmap));

	r = units_open(in_fd, size, BLOCK_SIZE, UNITS_RAW, o->threads, &u);
	if (r < 0)
		return imgout_write_error(r, err, "VHD");
	outbuf_init(&ob, out_fd, data_off);
	while ((r = units_next(u, &un)) > 0) {
		put_be32(bat + 4 * un.index, (uint32_t)(ob.off / 512));
		uint64_t block = ob.off + sizeof(bitmap);
		size_t k;

		r = outbuf_write(&ob, bitmap, sizeof(bitmap));
		/* The block's runs of zeros are left as holes: they read as zeros all the same. */
		for (k = 0; k < BLOCK_SIZE && r >= 0; k += CHUNK) {
			if (imgout_all_zero(un.data + k, CHUNK))
				continue;
			r = outbuf_skip_to(&ob, block + k);
			if (r >= 0)
				r = outbuf_write(&ob, un.data + k, CHUNK);
		}
		if (r >= 0)
			r = outbuf_skip_to(&ob, block + BLOCK_SIZE);
		if (r < 0) {
			wfailed = true;
			break;
		}
	}
	if (r == 0) {
		r = outbuf_write(&ob, footer, FOOTER_LEN);
		if (r >= 0)
			r = outbuf_flush(&ob);
		if (r >= 0)
			r = pwrite_all(out_fd, head, data_off, 0);
		wfailed = r < 0;
	}
	return vhd_end(r, wfailed, u, &ob, ret_stats, err);
}

int vhd_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
	      struct imgout_stats *ret_stats, struct strbuf *err)
{
	uint8_t footer[FOOTER_LEN], id[16];
	int r;

	if (size > VHD_MAX_SIZE) {
		strbuf_addstr(err, "the disk is larger than a VHD holds (2040 GiB); export it as "
				   "qcow2 or vmdk");
		return -EFBIG;
	}
	r = imgout_disk_id(in_fd, size, o->vhd_dynamic ? "vhd-dynamic" : "vhd", id);
	if (r < 0) {
		strbuf_addf(err, "cannot read the disk: %s", strerror(-r));
		return r;
	}
	make_footer(footer, size, o->vhd_dynamic, id);
	if (o->vhd_dynamic)
		return write_dynamic(in_fd, size, out_fd, o, ret_stats, err, footer);
	return write_fixed(in_fd, size, out_fd, o, ret_stats, err, footer);
}
