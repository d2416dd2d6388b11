/* SPDX-License-Identifier: MIT */
/*
 * Disk image writers, the shared part: the reader that hands out the
 * non-zero units of a raw disk in order, compressed by a pool of threads;
 * the sequential output buffer; the raw copy; and the table of formats.
 * The only file of the writers with zlib's and libzstd's headers: the
 * formats get compressed units, never call a compressor.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "core/hash.h"
#include "fs/imgout-internal.h"

/*
 * Units per batch. Two batches are in flight: while the caller writes one,
 * the threads read, check and compress the next.
 */
#define BATCH_RAW_BYTES	       (2u << 20)
#define BATCH_BYTES_PER_THREAD (4u << 20)
#define BATCH_MAX	       1024u
#define JOB_RAW_BYTES	       (1u << 20)
#define ZSTD_LEVEL	       3 /* libzstd's default, as QEMU writes qcow2's zstd clusters */

struct zctx {
	z_stream zs;
	bool zs_init;
	ZSTD_CCtx *zstd;
};

struct batch {
	uint8_t *in, *out;
	uint64_t *idx; /* the units, in disk order */
	size_t *zlen;
	bool *zero;
	size_t n;		     /* units planned */
	size_t job_next, job_done; /* under the lock */
	uint64_t read;		     /* bytes read, under the lock */
	int err;
};

struct units {
	int fd;
	uint64_t size;
	size_t usz;
	enum units_z z;

	/* planning: which units the next batch reads */
	uint64_t cur, ext_end; /* the next unit to plan, the end of the data run it is in */
	bool no_seek_data;     /* the source cannot tell holes: read it all */
	bool eof, started;

	size_t cap, zcap;
	size_t job_units; /* units per job: one to compress, a run of them to copy */
	struct batch b[2];
	struct batch *out;     /* the batch handed out */
	struct batch *pending; /* the batch being prepared, or NULL */
	size_t next;	       /* next unit of *out to hand out */

	struct zctx *ctx; /* one per thread, ctx[0] the caller's */
	unsigned nctx;
	unsigned nthreads; /* besides the caller */
	pthread_t *tids;
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct batch *active; /* the batch the threads take jobs from */
	bool quit;

	struct imgout_stats stats;
};

bool imgout_all_zero(const uint8_t *p, size_t n)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	/* Most clusters that are not zero differ in their first bytes. */
	for (i = 0; i < 8 && i < n / 8; i++)
		if (w[i])
			return false;
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

static int zctx_init(struct zctx *c, enum units_z z)
{
	memset(c, 0, sizeof(*c));
	switch (z) {
	case UNITS_RAW:
		return 0;
	case UNITS_DEFLATE_12:
	case UNITS_ZLIB:
		/* QEMU's own choices: level 6, a 4 KiB raw window for qcow2, zlib's defaults for
		 * VMDK (which QEMU and VMware read with a 32 KiB window). */
		if (deflateInit2(&c->zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
				 z == UNITS_DEFLATE_12 ? -12 : 15, 9, Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		c->zs_init = true;
		return 0;
	case UNITS_ZSTD:
		c->zstd = ZSTD_createCCtx();
		if (!c->zstd)
			return -ENOMEM;
		if (ZSTD_isError(ZSTD_CCtx_setParameter(c->zstd, ZSTD_c_compressionLevel,
							ZSTD_LEVEL)))
			return -EINVAL;
		return 0;
	}
	return -EINVAL;
}

static void zctx_release(struct zctx *c)
{
	if (c->zs_init)
		deflateEnd(&c->zs);
	ZSTD_freeCCtx(c->zstd);
}

static int compress_one(struct units *u, struct zctx *c, const uint8_t *src, uint8_t *dst,
			size_t *ret_len)
{
	size_t r;

	if (u->z == UNITS_ZSTD) {
		r = ZSTD_compress2(c->zstd, dst, u->zcap, src, u->usz);
		if (ZSTD_isError(r))
			return -EIO;
		*ret_len = r;
		return 0;
	}
	if (deflateReset(&c->zs) != Z_OK)
		return -EIO;
	c->zs.next_in = (Bytef *)src;
	c->zs.avail_in = (uInt)u->usz;
	c->zs.next_out = dst;
	c->zs.avail_out = (uInt)u->zcap;
	if (deflate(&c->zs, Z_FINISH) != Z_STREAM_END)
		return -EIO;
	*ret_len = u->zcap - c->zs.avail_out;
	return 0;
}

/*
 * Read units i .. i + k - 1 of batch b, consecutive on the disk and in the
 * batch, with one pread (zeros past the end of the source); returns the
 * bytes read or -errno.
 */
static int64_t read_units(struct units *u, struct batch *b, size_t i, size_t k)
{
	uint64_t off = b->idx[i] * u->usz;
	uint8_t *buf = b->in + i * u->usz;
	size_t len = k * u->usz, got = 0;
	size_t want = off + len <= u->size ? len : (size_t)(u->size - off);

	while (got < want) {
		ssize_t n = pread(u->fd, buf + got, want - got, (off_t)(off + got));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break; /* the source shrank: what is gone reads as zeros */
		got += (size_t)n;
	}
	memset(buf + got, 0, len - got);
	return (int64_t)got;
}

/*
 * One job: units i .. i + k - 1 of the batch read (one pread per run of
 * consecutive units), each checked for zeros and compressed.
 */
static int do_job(struct units *u, struct zctx *c, struct batch *b, size_t i, size_t k,
		  uint64_t *read)
{
	size_t j, run;
	int r;

	*read = 0;
	for (j = i; j < i + k; j += run) {
		int64_t n;

		for (run = 1; j + run < i + k && b->idx[j + run] == b->idx[j] + run; run++)
			;
		n = read_units(u, b, j, run);
		if (n < 0)
			return (int)n;
		*read += (uint64_t)n;
	}
	for (j = i; j < i + k; j++) {
		b->zero[j] = imgout_all_zero(b->in + j * u->usz, u->usz);
		if (b->zero[j] || u->z == UNITS_RAW)
			continue;
		r = compress_one(u, c, b->in + j * u->usz, b->out + j * u->zcap, &b->zlen[j]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Take jobs of the active batch until none is left; called and returns with u->lock held. */
static void run_jobs(struct units *u, struct zctx *c)
{
	struct batch *b;

	while ((b = u->active) && b->job_next < b->n) {
		size_t i = b->job_next, k = b->n - i < u->job_units ? b->n - i : u->job_units;
		uint64_t read = 0;
		int r;

		b->job_next += k;
		pthread_mutex_unlock(&u->lock);
		r = do_job(u, c, b, i, k, &read);
		pthread_mutex_lock(&u->lock);
		b->read += read;
		if (r < 0 && !b->err)
			b->err = r;
		b->job_done += k;
		if (b->job_done == b->n)
			pthread_cond_broadcast(&u->done);
	}
}

struct worker_arg {
	struct units *u;
	unsigned k;
};

static void *worker(void *arg)
{
	struct units *u = ((struct worker_arg *)arg)->u;
	struct zctx *c = &u->ctx[((struct worker_arg *)arg)->k];

	free(arg);
	pthread_mutex_lock(&u->lock);
	for (;;) {
		while (!u->quit && !(u->active && u->active->job_next < u->active->n))
			pthread_cond_wait(&u->work, &u->lock);
		if (u->quit)
			break;
		run_jobs(u, c);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* Plan batch b: the next units of the source's data runs, in order. Nothing is read yet. */
static int plan_batch(struct units *u, struct batch *b)
{
	uint64_t end = align_up(u->size, u->usz);
	int r;

	b->n = 0;
	b->err = 0;
	b->read = 0;
	while (b->n < u->cap && !u->eof) {
		if (u->cur >= u->ext_end) {
			uint64_t off = 0, len = 0;

			if (u->no_seek_data) {
				off = u->cur, len = u->size - u->cur;
				r = u->cur < u->size;
			} else {
				r = next_data_extent(u->fd, u->cur, u->size, &off, &len);
				if (r == -EINVAL && u->cur == 0) {
					u->no_seek_data = true;
					continue;
				}
			}
			if (r < 0)
				return r;
			if (r == 0) {
				u->eof = true;
				break;
			}
			/* A run that ends inside a unit was read with it: go on after it. */
			if (off / u->usz * u->usz > u->cur)
				u->cur = off / u->usz * u->usz;
			u->ext_end = align_up(off + len, u->usz);
			if (u->ext_end > end)
				u->ext_end = end;
			continue;
		}
		b->idx[b->n++] = u->cur / u->usz;
		u->cur += u->usz;
	}
	return 0;
}

/* Hand batch b to the threads. */
static void launch(struct units *u, struct batch *b)
{
	pthread_mutex_lock(&u->lock);
	b->job_next = b->job_done = 0;
	u->active = b;
	pthread_cond_broadcast(&u->work);
	pthread_mutex_unlock(&u->lock);
}

/* Wait for batch b, helping with it. */
static int finish(struct units *u, struct batch *b)
{
	pthread_mutex_lock(&u->lock);
	run_jobs(u, &u->ctx[0]);
	while (b->job_done < b->n)
		pthread_cond_wait(&u->done, &u->lock);
	if (u->active == b)
		u->active = NULL;
	u->stats.read += b->read;
	pthread_mutex_unlock(&u->lock);
	return b->err;
}

/* Plan the next batch into b and launch it; *ret_pending is b, or NULL at the end. */
static int prepare(struct units *u, struct batch *b)
{
	int r = plan_batch(u, b);

	u->pending = NULL;
	if (r < 0)
		return r;
	if (b->n) {
		launch(u, b);
		u->pending = b;
	}
	return 0;
}

static void batch_alloc(struct units *u, struct batch *b)
{
	b->in = xmalloc(u->cap * u->usz);
	b->out = u->zcap ? xmalloc(u->cap * u->zcap) : NULL;
	b->idx = xcalloc(u->cap, sizeof(*b->idx));
	b->zlen = xcalloc(u->cap, sizeof(*b->zlen));
	b->zero = xcalloc(u->cap, sizeof(*b->zero));
}

static void batch_free(struct batch *b)
{
	free(b->in);
	free(b->out);
	free(b->idx);
	free(b->zlen);
	free(b->zero);
}

int units_open(int fd, uint64_t size, size_t unit_size, enum units_z z, unsigned threads,
	       struct units **ret)
{
	struct units *u = xcalloc(1, sizeof(*u));
	unsigned k;
	int r;

	if (!threads) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		threads = n > 0 ? (unsigned)n : 1;
	}
	u->fd = fd;
	u->size = size;
	u->usz = unit_size;
	u->z = z;
	/*
	 * Uncompressed units go from the read to the write while still in the
	 * CPU's caches: small batches. Compressed ones keep every thread busy.
	 */
	u->cap = (z == UNITS_RAW ? BATCH_RAW_BYTES : BATCH_BYTES_PER_THREAD * threads) / unit_size;
	if (u->cap > BATCH_MAX)
		u->cap = BATCH_MAX;
	if (u->cap < 1)
		u->cap = 1;
	u->job_units = z == UNITS_RAW ? (JOB_RAW_BYTES + unit_size - 1) / unit_size : 1;
	u->zcap = z == UNITS_RAW ? 0 : unit_size + unit_size / 8 + 1024;
	if (z == UNITS_ZSTD && u->zcap < ZSTD_compressBound(unit_size))
		u->zcap = ZSTD_compressBound(unit_size);
	batch_alloc(u, &u->b[0]);
	batch_alloc(u, &u->b[1]);
	pthread_mutex_init(&u->lock, NULL);
	pthread_cond_init(&u->work, NULL);
	pthread_cond_init(&u->done, NULL);
	u->ctx = xcalloc(threads, sizeof(*u->ctx));
	u->tids = xcalloc(threads, sizeof(*u->tids));
	u->nctx = threads;
	for (k = 0; k < threads; k++) {
		r = zctx_init(&u->ctx[k], z);
		if (r < 0)
			goto fail;
	}
	for (k = 1; k < threads; k++) {
		struct worker_arg *a = xmalloc(sizeof(*a));

		a->u = u;
		a->k = k;
		r = -pthread_create(&u->tids[u->nthreads], NULL, worker, a);
		if (r < 0) {
			free(a);
			break; /* fewer threads: slower, the same bytes */
		}
		u->nthreads++;
	}
	*ret = u;
	return 0;
fail:
	units_free(u);
	return r;
}

int units_next(struct units *u, struct unit *ret)
{
	struct batch *b;
	int r;

	for (;;) {
		b = u->out;
		while (b && u->next < b->n) {
			size_t i = u->next++;

			if (b->zero[i]) {
				u->stats.zero++;
				continue;
			}
			u->stats.stored++;
			ret->index = b->idx[i];
			ret->data = b->in + i * u->usz;
			ret->z = u->zcap ? b->out + i * u->zcap : NULL;
			ret->zlen = u->zcap ? b->zlen[i] : 0;
			return 1;
		}
		/* This batch is written: take the next, and start the one after it. */
		if (!u->started) {
			u->started = true;
			r = prepare(u, &u->b[0]);
			if (r < 0)
				return r;
		}
		b = u->pending;
		if (!b)
			return 0;
		r = finish(u, b);
		if (r < 0)
			return r;
		u->out = b;
		u->next = 0;
		r = prepare(u, b == &u->b[0] ? &u->b[1] : &u->b[0]);
		if (r < 0)
			return r;
	}
}

void units_stats(const struct units *u, struct imgout_stats *ret)
{
	*ret = u->stats;
}

void units_free(struct units *u)
{
	unsigned k;

	if (!u)
		return;
	/* A batch still being prepared is finished first: its threads use its buffers. */
	if (u->pending)
		finish(u, u->pending);
	pthread_mutex_lock(&u->lock);
	u->quit = true;
	pthread_cond_broadcast(&u->work);
	pthread_mutex_unlock(&u->lock);
	for (k = 0; k < u->nthreads; k++)
		pthread_join(u->tids[k], NULL);
	for (k = 0; k < u->nctx; k++)
		zctx_release(&u->ctx[k]);
	pthread_mutex_destroy(&u->lock);
	pthread_cond_destroy(&u->work);
	pthread_cond_destroy(&u->done);
	free(u->ctx);
	free(u->tids);
	batch_free(&u->b[0]);
	batch_free(&u->b[1]);
	free(u);
}

/* --- the output buffer ------------------------------------------------------ */

#define OUTBUF_CAP    (1u << 20)
#define OUTBUF_DIRECT (64u << 10)

void outbuf_init(struct outbuf *o, int fd, uint64_t off)
{
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->off = off;
}

int outbuf_flush(struct outbuf *o)
{
	int r;

	if (!o->len)
		return 0;
	r = pwrite_all(o->fd, o->buf, o->len, o->off - o->len);
	o->len = 0;
	return r;
}

int outbuf_write(struct outbuf *o, const void *data, size_t len)
{
	int r;

	if (o->len + len > OUTBUF_CAP) {
		r = outbuf_flush(o);
		if (r < 0)
			return r;
	}
	/* Clusters go straight from the batch: copying them into the buffer costs more. */
	if (len >= OUTBUF_DIRECT) {
		r = outbuf_flush(o);
		if (r < 0)
			return r;
		r = pwrite_all(o->fd, data, len, o->off);
		if (r < 0)
			return r;
		o->off += len;
		return 0;
	}
	if (!o->buf)
		o->buf = xmalloc(OUTBUF_CAP);
	memcpy(o->buf + o->len, data, len);
	o->len += len;
	o->off += len;
	return 0;
}

int outbuf_skip_to(struct outbuf *o, uint64_t off)
{
	int r;

	if (off < o->off)
		return -EINVAL;
	if (off == o->off)
		return 0;
	r = outbuf_flush(o);
	o->off = off;
	return r;
}

int outbuf_zero_to(struct outbuf *o, uint64_t off)
{
	static const uint8_t zeros[4096];
	int r;

	if (off < o->off)
		return -EINVAL;
	while (o->off < off) {
		size_t n = off - o->off < sizeof(zeros) ? (size_t)(off - o->off) : sizeof(zeros);

		r = outbuf_write(o, zeros, n);
		if (r < 0)
			return r;
	}
	return 0;
}

void outbuf_release(struct outbuf *o)
{
	free(o->buf);
	o->buf = NULL;
}

/* --- shared helpers --------------------------------------------------------- */

int imgout_disk_id(int fd, uint64_t size, const char *format, uint8_t ret[16])
{
	size_t want = size < (1u << 20) ? (size_t)size : (1u << 20), got = 0;
	_cleanup_free_ uint8_t *buf = xmalloc(want ? want : 1);
	struct sha256 *h;
	uint8_t d[SHA256_LEN];

	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	h = sha256_new();
	sha256_update_str(h, "imgforge export disk id");
	sha256_update_str(h, format);
	sha256_update_u64(h, size);
	sha256_update(h, buf, got);
	sha256_final(h, d);
	sha256_free(h);
	memcpy(ret, d, 16);
	ret[6] = (uint8_t)((ret[6] & 0x0f) | 0x50); /* version 5: name-based, SHA */
	ret[8] = (uint8_t)((ret[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	return 0;
}

int imgout_write_error(int r, struct strbuf *err, const char *what)
{
	if (r == -ENOSPC || r == -EDQUOT)
		strbuf_addf(err, "no space left on the device writing the %s; free some, or "
				 "write elsewhere with -o",
			    what);
	else if (r == -EFBIG)
		strbuf_addf(err, "the %s is larger than the filesystem takes for one file", what);
	else
		strbuf_addf(err, "cannot write the %s: %s", what, strerror(-r));
	return r;
}

/* --- raw ------------------------------------------------------------------------- */

/* The data runs copied (the kernel may share or copy them), the holes kept. */
static int raw_write(int in_fd, uint64_t size, int out_fd, struct imgout_stats *ret_stats,
		     struct strbuf *err)
{
	uint64_t pos = 0, off = 0, len = 0;
	struct imgout_stats st = { 0 };
	int r;

	while ((r = next_data_extent(in_fd, pos, size, &off, &len)) > 0) {
		r = copy_range(in_fd, off, out_fd, off, len);
		if (r < 0)
			return imgout_write_error(r, err, "raw disk");
		st.read += len;
		st.stored++;
		pos = off + len;
	}
	if (r == -EINVAL && pos == 0) /* no SEEK_DATA here: all of it */
		r = copy_range(in_fd, 0, out_fd, 0, size), st.read = size;
	if (r < 0) {
		strbuf_addf(err, "cannot read the disk: %s", strerror(-r));
		return r;
	}
	if (ftruncate(out_fd, (off_t)size) < 0)
		return imgout_write_error(-errno, err, "raw disk");
	if (ret_stats)
		*ret_stats = st;
	return 0;
}

static const char *const format_names[] = {
	[IMGOUT_RAW] = "raw",
	[IMGOUT_QCOW2] = "qcow2",
	[IMGOUT_VHD] = "vhd",
	[IMGOUT_VMDK] = "vmdk",
};

const char *imgout_format_name(enum imgout_format f)
{
	return (size_t)f < ARRAY_SIZE(format_names) ? format_names[f] : "?";
}

int imgout_format_parse(const char *name, enum imgout_format *ret)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(format_names); i++)
		if (!strcmp(name, format_names[i])) {
			*ret = (enum imgout_format)i;
			return 0;
		}
	return -EINVAL;
}

int imgout_write(int in_fd, uint64_t size, int out_fd, const struct imgout_opts *o,
		 struct imgout_stats *ret_stats, struct strbuf *err)
{
	if (!size || size % 512) {
		strbuf_addf(err, "a disk is a whole number of 512-byte sectors, not %" PRIu64
				 " bytes",
			    size);
		return -EINVAL;
	}
	switch (o->format) {
	case IMGOUT_RAW:
		return raw_write(in_fd, size, out_fd, ret_stats, err);
	case IMGOUT_QCOW2:
		return qcow2_write(in_fd, size, out_fd, o, ret_stats, err);
	case IMGOUT_VHD:
		return vhd_write(in_fd, size, out_fd, o, ret_stats, err);
	case IMGOUT_VMDK:
		return vmdk_write(in_fd, size, out_fd, o, ret_stats, err);
	}
	strbuf_addstr(err, "unknown format");
	return -EINVAL;
}

const char *imgout_sniff(int fd, uint64_t size)
{
	uint8_t head[64] = { 0 }, tail[8] = { 0 };

	if (pread(fd, head, sizeof(head), 0) < 8)
		return NULL;
	if (!memcmp(head, "QFI\xfb", 4))
		return "qcow2";
	if (!memcmp(head, "KDMV", 4) || !memcmp(head, "# Disk DescriptorFile", 21))
		return "VMDK";
	if (!memcmp(head, "vhdxfile", 8))
		return "VHDX";
	if (!memcmp(head, "conectix", 8))
		return "VHD";
	if (size >= 512 && pread(fd, tail, sizeof(tail), (off_t)(size - 512)) == 8 &&
	    !memcmp(tail, "conectix", 8))
		return "VHD";
	return NULL;
}
