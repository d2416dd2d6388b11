/* SPDX-License-Identifier: MIT */
/*
 * Streaming the content of the tree into a writer, hashing it on a second
 * thread, and reading small files back (passwd, group).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/tree-internal.h"

int tree_stream_host(struct tree_inode *ino, const struct tree_content_ops *ops, void *ctx,
		       struct strbuf *err)
{
	_cleanup_close_ int fd = -1;
	static char buf[1 << 20];
	uint64_t next = 0, off = 0, len = 0;
	off_t pos, hole;
	int r = 0;

	fd = open(ino->host_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = errno;

		strbuf_addf(err, "cannot open '%s': %s", quote_path(ino->host_path), strerror(e));
		return -e;
	}
	while (r >= 0 && next_data_extent(fd, next, ino->size, &off, &len) > 0) {
		hole = (off_t)(off + len);
		next = off + len;
		for (pos = (off_t)off; pos < hole && r >= 0;) {
			size_t want = (size_t)(hole - pos) < sizeof(buf) ? (size_t)(hole - pos)
									 : sizeof(buf);
			ssize_t n = pread(fd, buf, want, pos);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				int e = n < 0 ? errno : ESTALE;

				strbuf_addf(err, "cannot read '%s': %s", quote_path(ino->host_path),
					    n < 0 ? strerror(e) : "file shrank while read");
				return -e;
			}
			r = ops->data(ctx, ino, (uint64_t)pos, buf, (size_t)n, err);
			pos += n;
		}
	}
	return r;
}

struct collect {
	struct tree_inode **inodes;
	size_t n, alloc;
};

static void collect_content(struct tree *t, struct tree_node *n, const char *path, void *data)
{
	struct collect *c = data;
	struct tree_inode *ino = n->inode;

	(void)path;
	if (!S_ISREG(ino->mode) || ino->src == TREE_SRC_NONE || ino->writer_data == (void *)t)
		return;
	ino->writer_data = t; /* mark: collect each inode once */
	GROW(c->inodes, c->alloc, c->n + 1);
	c->inodes[c->n++] = ino;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct tree_inode *x = *(struct tree_inode *const *)a;
	const struct tree_inode *y = *(struct tree_inode *const *)b;

	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return x->entry < y->entry ? -1 : x->entry > y->entry;
}

/*
 * Content digests are computed while content is streamed, on a second
 * thread, so that hashing overlaps with writing the image. The streaming
 * thread appends records (begin a file, a piece of data, end a file) to a
 * 1 MiB buffer and hands the buffer over when it is full: a handful of
 * buffers bound the memory, and the threads meet once per MiB whatever the
 * file sizes. The hasher feeds SHA-256 the run starts (offsets where data
 * resumes after a hole), the data and, at the end, the size, so that the
 * digest does not depend on how the input happened to be cut into pieces.
 */
#define HQ_SLOTS     4
#define HQ_SLOT_SIZE (1024 * 1024)

enum hq_kind { HQ_BEGIN, HQ_DATA, HQ_END, HQ_QUIT };

struct hq_rec {
	uint32_t kind;
	uint32_t len; /* bytes of data following the record */
	uint64_t off;
	struct tree_inode *ino;
};

struct hq_slot {
	char *buf;
	size_t used;
};

struct hasher {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	struct hq_slot slots[HQ_SLOTS];
	size_t head, count; /* published slots, oldest first (under mu) */
	size_t tail;        /* the slot being filled: the producer's alone */
	bool started;
};

static void *hasher_main(void *arg)
{
	struct hasher *hq = arg;
	struct sha256 *h = sha256_new();
	uint64_t end = 0;
	bool first = true, quit = false;

	while (!quit) {
		struct hq_slot *sl;
		size_t pos = 0;

		pthread_mutex_lock(&hq->mu);
		while (hq->count == 0)
			pthread_cond_wait(&hq->not_empty, &hq->mu);
		sl = &hq->slots[hq->head];
		pthread_mutex_unlock(&hq->mu);

		while (pos < sl->used) {
			struct hq_rec rec;

			memcpy(&rec, sl->buf + pos, sizeof(rec));
			pos += sizeof(rec);
			switch (rec.kind) {
			case HQ_BEGIN:
				end = 0;
				first = true;
				break;
			case HQ_DATA:
				if (first || rec.off != end)
					sha256_update_u64(h, rec.off);
				sha256_update(h, sl->buf + pos, rec.len);
				end = rec.off + rec.len;
				first = false;
				break;
			case HQ_END:
				sha256_update_u64(h, rec.ino->size);
				sha256_final(h, rec.ino->digest);
				break;
			default:
				quit = true;
				break;
			}
			pos += rec.len;
		}

		pthread_mutex_lock(&hq->mu);
		sl->used = 0;
		hq->head = (hq->head + 1) % HQ_SLOTS;
		if (hq->count-- == HQ_SLOTS)
			pthread_cond_signal(&hq->not_full);
		pthread_mutex_unlock(&hq->mu);
	}
	sha256_free(h);
	return NULL;
}

/* The slot being filled, just after the published ones. */
static struct hq_slot *hq_current(struct hasher *hq)
{
	return &hq->slots[hq->tail];
}

/* Hand the current slot to the hasher and wait until the next one is free. */
static void hq_publish(struct hasher *hq)
{
	pthread_mutex_lock(&hq->mu);
	if (hq->count++ == 0)
		pthread_cond_signal(&hq->not_empty);
	hq->tail = (hq->tail + 1) % HQ_SLOTS;
	while (hq->count == HQ_SLOTS)
		pthread_cond_wait(&hq->not_full, &hq->mu);
	pthread_mutex_unlock(&hq->mu);
}

static void hq_append(struct hasher *hq, enum hq_kind kind, struct tree_inode *ino, uint64_t off,
		      const void *buf, size_t len)
{
	struct hq_slot *sl = hq_current(hq);
	struct hq_rec rec = { kind, (uint32_t)len, off, ino };

	memcpy(sl->buf + sl->used, &rec, sizeof(rec));
	if (len)
		memcpy(sl->buf + sl->used + sizeof(rec), buf, len);
	sl->used += sizeof(rec) + len;
}

static void hq_push(struct hasher *hq, enum hq_kind kind, struct tree_inode *ino, uint64_t off,
		    const void *buf, size_t len)
{
	const char *p = buf;

	for (;;) {
		struct hq_slot *sl = hq_current(hq);
		size_t room = HQ_SLOT_SIZE - sl->used, n;

		/* leave a slot rather than split data into crumbs */
		if (room < sizeof(struct hq_rec) + (len ? 4096 : 0) &&
		    room < sizeof(struct hq_rec) + len) {
			hq_publish(hq);
			continue;
		}
		n = len < room - sizeof(struct hq_rec) ? len : room - sizeof(struct hq_rec);
		hq_append(hq, kind, ino, off, p, n);
		if (len == n)
			return;
		p += n;
		off += n;
		len -= n;
	}
}

static void hq_init(struct hasher *hq)
{
	size_t i;

	memset(hq, 0, sizeof(*hq));
	pthread_mutex_init(&hq->mu, NULL);
	pthread_cond_init(&hq->not_empty, NULL);
	pthread_cond_init(&hq->not_full, NULL);
	for (i = 0; i < HQ_SLOTS; i++)
		hq->slots[i].buf = xmalloc(HQ_SLOT_SIZE);
	hq->started = pthread_create(&hq->thread, NULL, hasher_main, hq) == 0;
}

/* Wait for every digest, then stop the thread. */
static void hq_finish(struct hasher *hq)
{
	size_t i;

	if (hq->started) {
		hq_push(hq, HQ_QUIT, NULL, 0, NULL, 0);
		hq_publish(hq);
		pthread_join(hq->thread, NULL);
	}
	for (i = 0; i < HQ_SLOTS; i++)
		free(hq->slots[i].buf);
	pthread_cond_destroy(&hq->not_full);
	pthread_cond_destroy(&hq->not_empty);
	pthread_mutex_destroy(&hq->mu);
}

/* The caller's callbacks, with every piece also handed to the hasher. */
struct tee {
	const struct tree_content_ops *ops;
	void *ctx;
	struct hasher *hq;
	struct sha256 *h; /* hashing inline when no thread could be started */
	uint64_t end;
};

static int tee_begin(void *ctx, struct tree_inode *ino, struct strbuf *err)
{
	struct tee *te = ctx;

	if (te->hq->started)
		hq_push(te->hq, HQ_BEGIN, ino, 0, NULL, 0);
	te->end = UINT64_MAX;
	return te->ops->begin ? te->ops->begin(te->ctx, ino, err) : 0;
}

static int tee_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf, size_t len,
		    struct strbuf *err)
{
	struct tee *te = ctx;

	if (te->hq->started && len)
		hq_push(te->hq, HQ_DATA, ino, offset, buf, len);
	if (!te->hq->started && len) {
		if (offset != te->end)
			sha256_update_u64(te->h, offset);
		sha256_update(te->h, buf, len);
		te->end = offset + len;
	}
	return te->ops->data(te->ctx, ino, offset, buf, len, err);
}

static int tee_end(void *ctx, struct tree_inode *ino, struct strbuf *err)
{
	struct tee *te = ctx;

	if (te->hq->started) {
		hq_push(te->hq, HQ_END, ino, 0, NULL, 0);
	} else {
		sha256_update_u64(te->h, ino->size);
		sha256_final(te->h, ino->digest);
	}
	return te->ops->end ? te->ops->end(te->ctx, ino, err) : 0;
}

int tree_stream_content(struct tree *t, const struct tree_content_ops *user_ops, void *user_ctx,
			struct strbuf *err)
{
	static const struct tree_content_ops tee_ops = { tee_begin, tee_data, tee_end };
	const struct tree_content_ops *ops = &tee_ops;
	struct collect c = { NULL, 0, 0 };
	struct hasher hq;
	struct tee te = { user_ops, user_ctx, &hq, NULL, 0 };
	void *ctx = &te;
	struct tree_inode **arch;
	size_t i, start = 0;
	int r = 0;

	hq_init(&hq);
	te.h = sha256_new();

	tree_walk_sorted(t, collect_content, &c);
	for (i = 0; i < c.n; i++)
		c.inodes[i]->writer_data = NULL;
	/* Archive content first: one pass over each layer, in archive order. */
	arch = xcalloc(c.n ? c.n : 1, sizeof(*arch));
	for (i = 0; i < c.n; i++)
		if (c.inodes[i]->src == TREE_SRC_ARCHIVE)
			arch[start++] = c.inodes[i];
	if (start > 1)
		qsort(arch, start, sizeof(*arch), entry_cmp);
	for (i = 0; i < start && r >= 0;) {
		size_t j = i;

		while (j < start && arch[j]->layer == arch[i]->layer)
			j++;
		r = tree_stream_layer(t, arch[i]->layer, arch + i, j - i, ops, ctx, err);
		i = j;
	}
	free(arch);
	/* Then inline and host files (what a recipe adds), in tree order. */
	for (i = 0; i < c.n && r >= 0; i++) {
		struct tree_inode *ino = c.inodes[i];

		if (ino->src == TREE_SRC_ARCHIVE)
			continue;
		r = ops->begin ? ops->begin(ctx, ino, err) : 0;
		if (r >= 0 && ino->src == TREE_SRC_INLINE)
			r = ops->data(ctx, ino, 0, ino->inline_data, ino->size, err);
		else if (r >= 0)
			r = tree_stream_host(ino, ops, ctx, err);
		if (r >= 0 && ops->end)
			r = ops->end(ctx, ino, err);
	}
	hq_finish(&hq);
	sha256_free(te.h);
	free(c.inodes);
	t->content_hashed = r >= 0;
	return r < 0 ? r : 0;
}

struct gather {
	struct strbuf sb;
	size_t max;
};

static int gather_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf,
		       size_t len, struct strbuf *err)
{
	struct gather *g = ctx;

	(void)ino;
	(void)err;
	if (offset + len > g->max)
		return -EFBIG;
	while (g->sb.len < offset)
		strbuf_addch(&g->sb, '\0');
	strbuf_add(&g->sb, buf, len);
	return 0;
}

/*
 * An archive file's content, read once per layer and entry: the owner
 * lookups of a recipe read /etc/passwd and /etc/group again and again, and
 * each read of an archive entry decompresses its layer up to it.
 */
static int read_archive_content(struct tree *t, struct tree_inode *ino, struct gather *g,
				struct strbuf *err)
{
	static const struct tree_content_ops ops = { .data = gather_data };
	struct content_cache *c;
	size_t i;
	int r;

	for (i = 0; i < t->n_cache; i++) {
		c = &t->cache[i];
		if (c->layer == ino->layer && c->entry == ino->entry) {
			if (c->len > g->max)
				return -EFBIG;
			strbuf_add(&g->sb, c->buf, c->len);
			return 0;
		}
	}
	r = tree_stream_layer(t, ino->layer, &ino, 1, &ops, g, err);
	if (r < 0)
		return r;
	GROW(t->cache, t->alloc_cache, t->n_cache + 1);
	c = &t->cache[t->n_cache++];
	*c = (struct content_cache){ ino->layer, ino->entry, xmalloc(g->sb.len + 1), g->sb.len };
	memcpy(c->buf, g->sb.buf ? g->sb.buf : "", g->sb.len);
	return 0;
}

int tree_read_content(struct tree *t, const char *path, size_t max, char **ret_buf,
		      size_t *ret_len, struct strbuf *err)
{
	static const struct tree_content_ops ops = { .data = gather_data };
	struct tree_node *n = tree_lookup(t, path);
	struct gather g = { STRBUF_INIT, max };
	struct tree_inode *ino;
	int r = 0;

	if (!n) {
		strbuf_addf(err, "'/%s' does not exist in the image", quote_path(path));
		return -ENOENT;
	}
	ino = n->inode;
	if (!S_ISREG(ino->mode)) {
		strbuf_addf(err, "'/%s' is not a regular file in the image", quote_path(path));
		return -EINVAL;
	}
	if (ino->size > max) {
		strbuf_addf(err, "'/%s' is too large to read", quote_path(path));
		return -EFBIG;
	}
	if (ino->src == TREE_SRC_INLINE)
		r = gather_data(&g, ino, 0, ino->inline_data, ino->size, err);
	else if (ino->src == TREE_SRC_HOST)
		r = tree_stream_host(ino, &ops, &g, err);
	else if (ino->src == TREE_SRC_ARCHIVE)
		r = read_archive_content(t, ino, &g, err);
	if (r < 0) {
		strbuf_release(&g.sb);
		return r;
	}
	while (g.sb.len < ino->size)
		strbuf_addch(&g.sb, '\0');
	*ret_len = g.sb.len;
	*ret_buf = strbuf_detach(&g.sb);
	return 0;
}
