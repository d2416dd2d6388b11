/* SPDX-License-Identifier: MIT */
/*
 * qcow2 version 3 (compat 1.1), 64 KiB clusters, 16-bit refcounts, written
 * in one pass: the header's cluster first, then the data clusters in disk
 * order, then the metadata (L2 tables, L1 table, refcount blocks and table)
 * once it is known where everything went; the header last.
 *
 * Compressed clusters are packed byte after byte, as QEMU packs them: a
 * cluster may hold the ends of several, and one may run on into the next
 * host cluster when that is the next one written. A cluster that does not
 * shrink is stored as it is, at a cluster boundary. Refcounts count the
 * compressed clusters that touch each host cluster, as qemu-img check does.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "fs/imgout-internal.h"

#define CLUSTER_BITS 16
#define CS	     (1ULL << CLUSTER_BITS)
#define L2_ENTRIES   (CS / 8)
#define RC_ENTRIES   (CS / 2) /* refcount_order 4: 16-bit refcounts */
#define HEADER_LEN   112      /* with the compression_type field, padded */

#define OFLAG_COPIED	 (1ULL << 63)
#define OFLAG_COMPRESSED (1ULL << 62)
#define CSIZE_SHIFT	 (62 - (CLUSTER_BITS - 8))
#define INCOMPAT_COMPRESSION (1ULL << 3)

struct qcow2 {
	uint64_t **l2; /* per L1 entry: L2_ENTRIES entries, or NULL */
	uint64_t l1_size;
	uint16_t *rc; /* per host cluster */
	size_t rc_n, rc_alloc;
	uint64_t end;	    /* next free host cluster's offset */
	uint64_t cpos, cend; /* the compressed stream: its next byte, its cluster's end */
};

static int rc_add(struct qcow2 *q, uint64_t cluster)
{
	if (cluster >= q->rc_n) {
		size_t n = (size_t)cluster + 1;

		q->rc = grow_array(q->rc, &q->rc_alloc, n, sizeof(*q->rc));
		memset(q->rc + q->rc_n, 0, (n - q->rc_n) * sizeof(*q->rc));
		q->rc_n = n;
	}
	if (q->rc[cluster] == UINT16_MAX)
		return -EOVERFLOW;
	q->rc[cluster]++;
	return 0;
}

static void set_l2(struct qcow2 *q, uint64_t guest_cluster, uint64_t entry)
{
	uint64_t i = guest_cluster / L2_ENTRIES;

	if (!q->l2[i])
		q->l2[i] = xcalloc(L2_ENTRIES, sizeof(uint64_t));
	q->l2[i][guest_cluster % L2_ENTRIES] = entry;
}

/* Where a compressed cluster of len bytes goes; see the comment at the top. */
static uint64_t place_compressed(struct qcow2 *q, size_t len)
{
	uint64_t at;

	if (q->cpos && q->cpos + len <= q->cend) {
		at = q->cpos;
	} else if (q->cpos && q->cend == q->end) {
		at = q->cpos;
		q->end = align_up(at + len, CS);
	} else {
		at = q->end;
		q->end = align_up(at + len, CS);
	}
	q->cpos = at + len;
	q->cend = align_up(q->cpos, CS);
	return at;
}

static int write_data(struct qcow2 *q, int in_fd, uint64_t size, int out_fd,
		      const struct imgout_opts *o, struct imgout_stats *ret_stats,
		      struct strbuf *err)
{
	enum units_z z = !o->compress		 ? UNITS_RAW
			 : o->ctype == IMGOUT_ZSTD ? UNITS_ZSTD
						   : UNITS_DEFLATE_12;
	struct units *u = NULL;
	struct outbuf ob;
	struct unit un;
	int r;

	r = units_open(in_fd, size, CS, z, o->threads, &u);
	if (r < 0) {
		strbuf_addf(err, "cannot set up the compressors: %s", strerror(-r));
		return r;
	}
	outbuf_init(&ob, out_fd, q->end);
	while ((r = units_next(u, &un)) > 0) {
		uint64_t at, entry, c, last;

		if (un.z && un.zlen < CS) {
			at = place_compressed(q, un.zlen);
			/* The descriptor counts 512-byte sectors; the refcounts cover them. */
			last = (at + un.zlen - 1) / 512;
			entry = OFLAG_COMPRESSED | ((last - at / 512) << CSIZE_SHIFT) | at;
			for (c = at / CS; c <= (last * 512 + 511) / CS; c++)
				if ((r = rc_add(q, c)) < 0)
					goto out;
			if (at < ob.off) {
				/* into the tail of a cluster written before the last raw one */
				r = outbuf_flush(&ob);
				if (r >= 0)
					r = pwrite_all(out_fd, un.z, un.zlen, at);
			} else {
				r = outbuf_zero_to(&ob, at);
				if (r >= 0)
					r = outbuf_write(&ob, un.z, un.zlen);
			}
		} else {
			at = q->end;
			q->end += CS;
			entry = at | OFLAG_COPIED;
			r = rc_add(q, at / CS);
			if (r >= 0)
				r = outbuf_zero_to(&ob, at);
			if (r >= 0)
				r = outbuf_write(&ob, un.data, CS);
		}
		if (r < 0)
			goto out;
		set_l2(q, un.index, entry);
	}
	if (r < 0) {
		strbuf_addf(err, "cannot read the disk: %s", strerror(-r));
		goto done;
	}
	r = outbuf_zero_to(&ob, q->end);
	if (r >= 0)
		r = outbuf_flush(&ob);
out:
	if (r == -EOVERFLOW) {
		strbuf_addstr(err, "a host cluster holds more compressed clusters than a 16-bit "
				   "refcount counts");
	} else if (r < 0) {
		imgout_write_error(r, err, "qcow2 image");
	}
done:
	if (ret_stats)
		units_stats(u, ret_stats);
	outbuf_release(&ob);
	units_free(u);
	return r < 0 ? r : 0;
}

static void make_header(uint8_t *h, uint64_t size, uint64_t l1_size, uint64_t l1_off,
			uint64_t rt_off, uint64_t rt_clusters, enum imgout_ctype ctype,
			bool compress)
{
	memset(h, 0, CS);
	memcpy(h, "QFI\xfb", 4);
	put_be32(h + 4, 3);
	put_be32(h + 20, CLUSTER_BITS);
	put_be64(h + 24, size);
	put_be32(h + 36, (uint32_t)l1_size);
	put_be64(h + 40, l1_off);
	put_be64(h + 48, rt_off);
	put_be32(h + 56, (uint32_t)rt_clusters);
	if (compress && ctype == IMGOUT_ZSTD)
		put_be64(h + 72, INCOMPAT_COMPRESSION);
	put_be32(h + 96, 4); /* refcount_order */
	put_be32(h + 100, HEADER_LEN);
	h[104] = compress ? (uint8_t)ctype : 0;
	/* h[112..119]: the end of the header extensions, zeros */
}

int qcow2_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
		struct imgout_stats *ret_stats, struct strbuf *err)
{
	struct qcow2 q = { 0 };
	_cleanup_free_ uint8_t *buf = NULL;
	_cleanup_free_ uint64_t *l2_off = NULL;
	uint64_t i, data_end, l1_off, l1_clusters, rb_off, rb, rt_off, rt, total;
	struct outbuf ob;
	int r;

	q.l1_size = div_round_up(div_round_up(size, CS), L2_ENTRIES);
	if (q.l1_size > (32u << 20) / 8) {
		/* QEMU's limit on the L1 table: 32 MiB of entries, 256 TiB of disk */
		strbuf_addstr(err, "the disk is larger than qcow2 images QEMU opens (256 TiB)");
		return -EFBIG;
	}
	q.l2 = xcalloc(q.l1_size, sizeof(*q.l2));
	l2_off = xcalloc(q.l1_size, sizeof(*l2_off));
	q.end = CS; /* the header's cluster */
	r = rc_add(&q, 0);
	if (r >= 0)
		r = write_data(&q, in_fd, size, out_fd, o, ret_stats, err);
	if (r < 0)
		goto out;

	/* The metadata after the data: L2 tables, the L1 table, refcount blocks and table. */
	data_end = q.end;
	for (i = 0; i < q.l1_size; i++)
		if (q.l2[i]) {
			l2_off[i] = q.end;
			q.end += CS;
		}
	l1_off = q.end;
	l1_clusters = div_round_up(q.l1_size * 8, CS);
	q.end += l1_clusters * CS;
	/* The refcount blocks and table count themselves too. */
	rb = rt = 0;
	for (;;) {
		uint64_t nrb, nrt;

		total = q.end / CS + rb + rt;
		nrb = div_round_up(total, RC_ENTRIES);
		nrt = div_round_up(nrb * 8, CS);
		if (nrb == rb && nrt == rt)
			break;
		rb = nrb, rt = nrt;
	}
	rb_off = q.end;
	rt_off = rb_off + rb * CS;
	/* Every data cluster was counted as it was placed; the metadata's are one each. */
	for (i = data_end / CS; i < total; i++)
		if ((r = rc_add(&q, i)) < 0)
			goto out;

	outbuf_init(&ob, out_fd, data_end);
	buf = xmalloc(CS);
	for (i = 0; i < q.l1_size && r >= 0; i++) {
		uint64_t j;

		if (!q.l2[i])
			continue;
		for (j = 0; j < L2_ENTRIES; j++)
			put_be64(buf + j * 8, q.l2[i][j]);
		r = outbuf_write(&ob, buf, CS);
	}
	for (i = 0; i < l1_clusters * L2_ENTRIES && r >= 0; i++) {
		uint8_t e[8];

		put_be64(e, i < q.l1_size && q.l2[i] ? l2_off[i] | OFLAG_COPIED : 0);
		r = outbuf_write(&ob, e, 8);
	}
	for (i = 0; i < rb * RC_ENTRIES && r >= 0; i++) {
		uint8_t e[2];

		put_be16(e, i < q.rc_n ? q.rc[i] : 0);
		r = outbuf_write(&ob, e, 2);
	}
	/* The file ends after the table's last sector, as QEMU's do: the rest reads as zeros. */
	for (i = 0; i < rb && r >= 0; i++) {
		uint8_t e[8];

		put_be64(e, rb_off + i * CS);
		r = outbuf_write(&ob, e, 8);
	}
	if (r >= 0)
		r = outbuf_zero_to(&ob, align_up(ob.off, 512));
	if (r >= 0)
		r = outbuf_flush(&ob);
	if (r >= 0) {
		make_header(buf, size, q.l1_size, l1_off, rt_off, rt, o->ctype, o->compress);
		r = pwrite_all(out_fd, buf, CS, 0);
	}
	outbuf_release(&ob);
	if (r < 0)
		imgout_write_error(r, err, "qcow2 image");
out:
	for (i = 0; i < q.l1_size; i++)
		free(q.l2[i]);
	free(q.l2);
	free(q.rc);
	return r;
}
