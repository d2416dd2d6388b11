/* SPDX-License-Identifier: MIT */
/*
 * Delta downloads (delta.h). The bundle's frames are independent zstd
 * frames of 64 KiB of image each, listed in the chunk index with their
 * stored size and a truncated SHA-256 of their image bytes: a frame found
 * in the running slot (at any 64 KiB boundary) or already in the target at
 * its own place is copied, the others are fetched by byte range. The
 * truncated digests only choose where to look; the chunk's full SHA-256 in
 * the signed manifest decides what is written.
 *
 * Format 3 keeps the chunk list and the frame digests in pages of 16
 * chunks behind a small directory, which gives each page's region digest
 * (over the SHA-256 of each 4 KiB block): a page whose image bytes the
 * target or the running slot holds at the same place is kept or copied,
 * checked block by block against that digest; only the other pages are
 * fetched. Format 2 has one index for the whole image: a chunk either
 * slot holds whole at its place needs no frame digests, and when the
 * others store fewer bytes than the index, they are fetched whole and the
 * index is not fetched at all.
 *
 * Everything to fetch (up to 64 MiB) is fetched and checked before the
 * first write (delta_check()), kept in memory and in a synced spool file.
 * Resuming: the spool's frames are not fetched again, and a chunk the
 * target already holds whole is neither fetched nor written again, so an
 * install killed at any point loses at most the range it was fetching.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/stoppoint.h"
#include "net/fetch.h"
#include "update/agent/delta.h"
#include "update/bundle.h"
#include "update/chunkidx.h"
#include "update/patch.h"

struct local {
	uint64_t key, off;
};

/*
 * A part of the image with one way to make it: a page of a format-3 index
 * (the whole image in format 2, as one NEED), and for NEED the chunks
 * m->chunks[c0 .. c1) inside it.
 */
enum how { NEED, KEEP, COPY };
struct region {
	uint64_t off, len;
	enum how how;
	size_t c0, c1;
};

struct delta {
	struct fetch_ranges *r;
	const char *url;
	struct bundle_manifest *m;
	struct chunkidx *x;
	uint64_t size;
	int src_fd;
	struct local *map; /* the running slot's frames, sorted by key */
	size_t n_map;
	/* The running slot's 4 KiB blocks' SHA-256 (format 3: COPY is checked against them). */
	uint8_t (*sbh)[SHA256_LEN];
	size_t n_sbh;
	uint8_t src_tail[SHA256_LEN]; /* the image's last block when it is short, in the slot */
	bool has_src_tail;
	struct chunkdir *dir; /* format 3 */
	struct region *reg;
	size_t n_reg, pages_fetched;
	/*
	 * Frames fetched by delta_check(), kept for delta_write() within
	 * DELTA_CACHE_MAX bytes: a small delta is checked whole before anything
	 * is written and downloaded once.
	 */
	uint8_t **cache;
	uint64_t cached;
	bool cache_full;
	bool *kept_chunk; /* delta_check() found the chunk in the target already */
	/*
	 * Chunks the running slot holds whole at their own place. When what
	 * neither slot holds whole is smaller than the chunk index, the index
	 * is not fetched (x stays NULL) and those chunks are fetched whole,
	 * kept in whole[] between delta_check() and delta_write().
	 */
	bool *src_whole;
	uint8_t **whole;
	/* The cache on disk (delta_spool_open()): what a killed install fetched. */
	int spool_fd;
	uint64_t spool_end, spooled;
	/* What came from where, in image bytes (fetched: stored bytes). */
	uint64_t kept, from_target, from_source, fetched_frames, refetched_chunks;
	bool checked_all;
	/*
	 * Format 4: the running slot holds the image the patch starts from
	 * (its SHA-256 over the patch's from size): the patch alone is fetched
	 * (patch_buf, patch_have bytes of it so far) and every chunk made from
	 * it and the running slot.
	 */
	uint8_t src_from_sha256[SHA256_LEN];
	bool has_src_from, use_patch;
	uint8_t *patch_buf;
	uint64_t patch_have, patched;
	struct patch *patch;
};

#define DELTA_CACHE_MAX (64u << 20)

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t key_of(const uint8_t h[CHUNKIDX_HASH_LEN])
{
	uint64_t k = 0;
	int i;

	for (i = 0; i < CHUNKIDX_HASH_LEN; i++)
		k = k << 8 | h[i];
	return k;
}

/* An array of n buffers and the buffers (NULL: nothing). */
static void free_buffers(uint8_t **v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void delta_free(struct delta *d)
{
	if (!d)
		return;
	fetch_ranges_close(d->r);
	free_buffers(d->cache, d->x ? d->x->n_frames : 0);
	free(d->kept_chunk);
	free_buffers(d->whole, d->m ? d->m->n_chunks : 0);
	free(d->src_whole);
	free(d->sbh);
	free(d->reg);
	patch_free(d->patch);
	free(d->patch_buf);
	chunkdir_free(d->dir);
	if (d->spool_fd >= 0)
		close(d->spool_fd);
	chunkidx_free(d->x);
	if (d->src_fd >= 0)
		close(d->src_fd);
	free(d->map);
	free(d);
}

int delta_open(const char *url, const char *keyring, struct delta **ret,
	       struct bundle_manifest **ret_m, struct strbuf *err)
{
	struct delta *d = xcalloc(1, sizeof(*d));
	struct bundle_manifest *m = NULL;
	_cleanup_free_ uint8_t *head = NULL;
	uint8_t hdr[BUNDLE_HEADER_SIZE];
	char berr[1024];
	uint32_t mlen, slen;
	uint64_t want;
	struct bundle_mem mem;
	int r;

	d->src_fd = -1;
	d->spool_fd = -1;
	d->url = url;
	if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
		delta_free(d);
		return 1;
	}
	r = fetch_ranges_open(url, NULL, &d->r, err);
	if (r < 0)
		goto fail;
	r = fetch_ranges_get(d->r, 0, sizeof(hdr), hdr, err);
	if (r == -EOPNOTSUPP) {
		info("'%s': the server does not answer range requests: downloading the whole "
		     "bundle",
		     url);
		strbuf_reset(err);
		delta_free(d);
		return 1;
	}
	if (r < 0)
		goto fail;
	/* Bounded before anything is trusted; bundle_open() checks the rest. */
	mlen = be32(hdr + 12);
	slen = be32(hdr + 16);
	if (memcmp(hdr, BUNDLE_MAGIC, 8) || mlen == 0 || mlen > BUNDLE_MAX_MANIFEST || slen == 0 ||
	    slen > BUNDLE_MAX_SIGNATURE) {
		mem = (struct bundle_mem){hdr, sizeof(hdr), 0};
		if (bundle_open(bundle_read_mem, &mem, keyring, &m, berr, sizeof(berr)) < 0)
			strbuf_addf(err, "'%s': %s", url, berr);
		else
			strbuf_addf(err, "'%s': not a bundle", url);
		bundle_manifest_free(m);
		goto fail;
	}
	head = xmalloc(sizeof(hdr) + mlen + slen);
	memcpy(head, hdr, sizeof(hdr));
	if (fetch_ranges_get(d->r, sizeof(hdr), (size_t)mlen + slen, head + sizeof(hdr), err) < 0)
		goto fail;
	mem = (struct bundle_mem){head, sizeof(hdr) + mlen + slen, 0};
	if (bundle_open_head(bundle_read_mem, &mem, keyring, &m, berr, sizeof(berr)) < 0) {
		strbuf_addf(err, "'%s': %s", url, berr);
		goto fail;
	}
	d->size = fetch_ranges_total(d->r);
	if (m->format < 2) {
		info("'%s' is a format-%u bundle, without a chunk index: downloading it whole", url,
		     m->format);
		bundle_manifest_free(m);
		delta_free(d);
		return 1;
	}
	want = m->payload_offset + m->payload_size + (manifest_index_first(m) ? 0 : m->index_size) +
	       (m->has_patch ? m->patch_size : 0);
	if (d->size != want) {
		strbuf_addf(err,
			    "'%s' is %" PRIu64 " bytes, its signed manifest says %" PRIu64
			    " (cut short or extended); publish it again",
			    url, d->size, want);
		bundle_manifest_free(m);
		goto fail;
	}
	d->m = m;
	*ret = d;
	*ret_m = m;
	return 0;
fail:
	delta_free(d);
	return -1;
}

uint64_t delta_bundle_size(const struct delta *d)
{
	return d->size;
}

uint64_t delta_downloaded(const struct delta *d)
{
	return fetch_ranges_received(d->r);
}

static int cmp_local(const void *a, const void *b)
{
	const struct local *x = a, *y = b;

	return x->key < y->key ? -1 : x->key > y->key ? 1 : x->off < y->off ? -1 : x->off > y->off;
}

static const struct local *lookup(const struct delta *d, uint64_t key)
{
	size_t lo = 0, hi = d->n_map;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (d->map[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < d->n_map && d->map[lo].key == key ? &d->map[lo] : NULL;
}

static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	return 0;
}

static bool chunk_matches(const struct bundle_chunk *c, const uint8_t *data);

static int fetch_index(struct delta *d, struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	_cleanup_free_ uint8_t *idx = xmalloc(m->index_size);
	uint8_t digest[SHA256_LEN];
	struct sha256 *sh;
	char xerr[400];

	if (fetch_ranges_get(d->r, m->payload_offset + m->payload_size, (size_t)m->index_size, idx,
			     err) < 0)
		return -1;
	sh = sha256_new();
	sha256_update(sh, idx, m->index_size);
	sha256_final(sh, digest);
	sha256_free(sh);
	if (memcmp(digest, m->chunk_index_sha256, SHA256_LEN)) {
		strbuf_addf(err,
			    "'%s': the chunk index does not match its SHA-256 in the signed "
			    "manifest (damaged in transit or on the server); try again",
			    d->url);
		return -1;
	}
	if (chunkidx_decode(idx, m->index_size, m, &d->x, xerr, sizeof(xerr)) < 0) {
		strbuf_addf(err, "'%s': %s", d->url, xerr);
		return -1;
	}
	return 0;
}

/*
 * The running slot, read once: each 4 KiB block's SHA-256 (for the frame
 * digests at every block boundary) and whether each chunk is there whole
 * at its own place.
 */
static void hash_source(struct delta *d, const char *source)
{
	const struct bundle_manifest *m = d->m;
	size_t per = (size_t)(m->frame_size / CHUNKIDX_BLOCK), nb, b, ci = 0;
	_cleanup_free_ uint8_t *buf = NULL;
	uint8_t(*bh)[SHA256_LEN];
	uint8_t h[CHUNKIDX_HASH_LEN];
	struct sha256 *bhh, *fh;
	uint64_t size = 0, off;
	const size_t piece = (size_t)m->chunk_size;
	struct stat st;

	d->src_whole = xcalloc(m->n_chunks + 1, sizeof(*d->src_whole));
	/* The running slot: unreadable only costs downloads, never correctness. */
	d->src_fd = source ? open(source, O_RDONLY | O_CLOEXEC) : -1;
	if (d->src_fd < 0 || fstat(d->src_fd, &st) < 0) {
		warning("cannot read the running slot '%s' (%s): downloading what the target "
			"slot lacks",
			source ? source : "(none)", strerror(errno));
		return;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(d->src_fd, BLKGETSIZE64, &size) < 0)
			size = 0;
	} else {
		size = (uint64_t)st.st_size;
	}
	bhh = sha256_new();
	fh = m->has_patch && m->patch_from_size <= size ? sha256_new() : NULL;
	nb = (size_t)(size / CHUNKIDX_BLOCK);
	bh = xcalloc(nb ? nb : 1, SHA256_LEN);
	buf = xmalloc(piece);
	for (off = 0, b = 0; b < nb; off += piece) {
		size_t len = (nb - b) * CHUNKIDX_BLOCK < piece ? (nb - b) * CHUNKIDX_BLOCK : piece, k;

		if (read_at(d->src_fd, buf, len, off) < 0) {
			nb = b;
			break;
		}
		/* Format 4: the image the patch starts from, as the slot holds it. */
		if (fh && off < m->patch_from_size) {
			sha256_update(fh, buf,
				      m->patch_from_size - off < len ? (size_t)(m->patch_from_size - off)
								     : len);
			if (off + len >= m->patch_from_size) {
				sha256_final(fh, d->src_from_sha256);
				d->has_src_from = true;
			}
		}
		for (k = 0; k < len / CHUNKIDX_BLOCK; k++, b++) {
			sha256_update(bhh, buf + k * CHUNKIDX_BLOCK, CHUNKIDX_BLOCK);
			sha256_final(bhh, bh[b]);
		}
		/* Format 2 (format 3 has no chunk list yet: prepare_pages()). */
		while (ci < m->n_chunks && m->chunks[ci].offset < off)
			ci++;
		if (ci < m->n_chunks && m->chunks[ci].offset == off && m->chunks[ci].size <= len)
			d->src_whole[ci] = chunk_matches(&m->chunks[ci], buf);
	}
	sha256_free(bhh);
	if (fh)
		sha256_free(fh);
	if (nb >= per) {
		d->map = xcalloc(nb - per + 1, sizeof(*d->map));
		for (b = 0; b + per <= nb; b++) {
			chunkidx_hash_blocks((const uint8_t(*)[SHA256_LEN])bh + b, per, h);
			d->map[d->n_map].key = key_of(h);
			d->map[d->n_map].off = (uint64_t)b * CHUNKIDX_BLOCK;
			d->n_map++;
		}
	}
	if (manifest_index_first(m) && m->image_size % CHUNKIDX_BLOCK &&
	    m->image_size / CHUNKIDX_BLOCK < nb) {
		/* The image's short last block, as the slot holds it. */
		size_t tl = (size_t)(m->image_size % CHUNKIDX_BLOCK);

		if (read_at(d->src_fd, buf, tl, m->image_size - tl) == 0) {
			bhh = sha256_new();
			sha256_update(bhh, buf, tl);
			sha256_final(bhh, d->src_tail);
			sha256_free(bhh);
			d->has_src_tail = true;
		}
	}
	d->sbh = bh;
	d->n_sbh = nb;
	if (d->n_map)
		qsort(d->map, d->n_map, sizeof(*d->map), cmp_local);
}

/*
 * The running slot's region digest of image bytes [off, off + len) (a
 * page), from its block hashes: false when the slot does not reach that
 * far.
 */
static bool source_region(const struct delta *d, uint64_t off, uint64_t len,
			  uint8_t out[SHA256_LEN])
{
	size_t b0 = (size_t)(off / CHUNKIDX_BLOCK), full = (size_t)(len / CHUNKIDX_BLOCK);
	bool tail = len % CHUNKIDX_BLOCK;
	struct sha256 *h;

	if (b0 + full > d->n_sbh || (tail && !d->has_src_tail))
		return false;
	h = sha256_new();
	sha256_update(h, d->sbh + b0, full * SHA256_LEN);
	if (tail)
		sha256_update(h, d->src_tail, SHA256_LEN);
	sha256_final(h, out);
	sha256_free(h);
	return true;
}

/*
 * The region digest of each page as the target holds it (what an
 * interrupted install wrote), into tr[page]; unreadable: all zeros, which
 * no page has.
 */
static void target_regions(struct delta *d, int target_fd, uint8_t (*tr)[SHA256_LEN])
{
	const struct bundle_manifest *m = d->m;
	uint64_t span = (uint64_t)m->page_chunks * m->chunk_size, off;
	_cleanup_free_ uint8_t *buf = xmalloc(m->chunk_size);
	struct sha256 *bhh = sha256_new(), *rh = sha256_new();
	uint8_t bh[SHA256_LEN];

	for (off = 0; off < m->image_size; off += m->chunk_size) {
		size_t len = (size_t)(m->image_size - off < m->chunk_size ? m->image_size - off
									 : m->chunk_size),
		       b;

		if (read_at(target_fd, buf, len, off) < 0)
			memset(buf, 0xa5, len); /* matches nothing, short of a SHA-256 collision */
		for (b = 0; b * CHUNKIDX_BLOCK < len; b++) {
			sha256_update(bhh, buf + b * CHUNKIDX_BLOCK,
				      len - b * CHUNKIDX_BLOCK < CHUNKIDX_BLOCK ? len - b * CHUNKIDX_BLOCK
										: CHUNKIDX_BLOCK);
			sha256_final(bhh, bh);
			sha256_update(rh, bh, SHA256_LEN);
		}
		if (off + len == m->image_size || (off + len) % span == 0)
			sha256_final(rh, tr[off / span]);
	}
	sha256_free(bhh);
	sha256_free(rh);
}

/*
 * Format 3: the directory, then which pages the target or the running slot
 * holds already, then the other pages (runs of them one range each), whose
 * chunks and frames go into m. The chunks of m are then those of the
 * fetched pages only.
 */
static int prepare_pages(struct delta *d, int target_fd, struct strbuf *err)
{
	struct bundle_manifest *m = d->m;
	uint64_t span = (uint64_t)m->page_chunks * m->chunk_size, at = m->payload_offset -
								       m->index_size;
	size_t dlen = (size_t)manifest_dir_size(m), p, q, i;
	_cleanup_free_ uint8_t *dirbuf = xmalloc(dlen);
	_cleanup_free_ uint8_t(*tr)[SHA256_LEN] = NULL;
	uint8_t sr[SHA256_LEN];
	char xerr[400];

	if (fetch_ranges_get(d->r, at, dlen, dirbuf, err) < 0)
		return -1;
	if (chunkdir_decode(dirbuf, dlen, m, &d->dir, xerr, sizeof(xerr)) < 0) {
		strbuf_addf(err, "'%s': %s", d->url, xerr);
		return -1;
	}
	tr = xcalloc(d->dir->n_pages + 1, SHA256_LEN);
	target_regions(d, target_fd, tr);
	d->n_reg = d->dir->n_pages;
	d->reg = xcalloc(d->n_reg + 1, sizeof(*d->reg));
	for (p = 0; p < d->n_reg; p++) {
		struct region *r = &d->reg[p];

		r->off = p * span;
		r->len = m->image_size - r->off < span ? m->image_size - r->off : span;
		if (!memcmp(tr[p], d->dir->pages[p].region, SHA256_LEN))
			r->how = KEEP;
		else if (source_region(d, r->off, r->len, sr) &&
			 !memcmp(sr, d->dir->pages[p].region, SHA256_LEN))
			r->how = COPY;
		else
			r->how = NEED;
	}
	/* The pages needed, runs of them one range each, read in order. */
	for (p = 0; p < d->n_reg; p = q) {
		uint64_t len = 0;
		_cleanup_free_ uint8_t *buf = NULL;

		for (q = p; q < d->n_reg && d->reg[q].how == NEED; q++)
			len += d->dir->pages[q].size;
		if (q == p) {
			q++;
			continue;
		}
		buf = xmalloc(len + 1);
		if (len && fetch_ranges_get(d->r, at + d->dir->pages[p].index_offset, (size_t)len,
					    buf, err) < 0)
			return -1;
		for (i = p, len = 0; i < q; i++) {
			d->reg[i].c0 = m->n_chunks;
			if (chunkpage_decode(buf + len, d->dir->pages[i].size, m, d->dir, i, xerr,
					     sizeof(xerr)) < 0) {
				strbuf_addf(err, "'%s': %s", d->url, xerr);
				return -1;
			}
			d->reg[i].c1 = m->n_chunks;
			len += d->dir->pages[i].size;
			d->pages_fetched += d->dir->pages[i].n_chunks > 0;
		}
	}
	d->x = chunkidx_from_manifest(m);
	/* Chunks of those pages that the running slot holds whole at their place. */
	free(d->src_whole);
	d->src_whole = xcalloc(m->n_chunks + 1, sizeof(*d->src_whole));
	if (d->src_fd >= 0) {
		_cleanup_free_ uint8_t *cur = xmalloc(m->chunk_size);

		for (i = 0; i < m->n_chunks; i++)
			d->src_whole[i] =
				read_at(d->src_fd, cur, (size_t)m->chunks[i].size,
					m->chunks[i].offset) == 0 &&
				chunk_matches(&m->chunks[i], cur);
	}
	return 0;
}

int delta_prepare(struct delta *d, const char *source, int target_fd, struct strbuf *err)
{
	struct bundle_manifest *m = d->m;
	_cleanup_free_ uint8_t *cur = xmalloc(m->chunk_size);
	uint64_t missing = 0;
	size_t i, n = 0;

	hash_source(d, source);
	if (m->has_patch) {
		if (d->has_src_from &&
		    !memcmp(d->src_from_sha256, m->patch_from_sha256, SHA256_LEN) &&
		    d->n_sbh >= m->patch_from_size / CHUNKIDX_BLOCK) {
			info("the running slot holds the image this bundle's patch starts from: "
			     "fetching the patch (%" PRIu64 " bytes)",
			     m->patch_size);
			d->use_patch = true;
			d->patch_buf = xmalloc(m->patch_size);
			return 0;
		}
		info("the running slot is not the image this bundle's patch starts from: "
		     "fetching what it lacks frame by frame");
	}
	if (manifest_index_first(m))
		return prepare_pages(d, target_fd, err);
	d->n_reg = 1;
	d->reg = xcalloc(1, sizeof(*d->reg));
	d->reg[0] = (struct region){0, m->image_size, NEED, 0, m->n_chunks};
	/* What neither slot holds whole at its place, in stored bytes. */
	for (i = 0; i < m->n_chunks; i++) {
		const struct bundle_chunk *c = &m->chunks[i];

		if (d->src_whole[i] ||
		    (read_at(target_fd, cur, (size_t)c->size, c->offset) == 0 &&
		     chunk_matches(c, cur)))
			continue;
		missing += c->stored_size;
		n++;
	}
	if (missing <= m->index_size) {
		info("%zu chunks to fetch (%" PRIu64 " bytes), no more than the chunk index: "
		     "fetching them whole",
		     n, missing);
		d->whole = xcalloc(m->n_chunks + 1, sizeof(*d->whole));
		return 0;
	}
	return fetch_index(d, err);
}

/* Without the index: chunk i's stored bytes, fetched once and kept. */
static int fetch_whole(struct delta *d, size_t i, uint8_t *out, struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	const struct bundle_chunk *c = &m->chunks[i];
	char zerr[512];

	if (!d->whole[i]) {
		d->whole[i] = xmalloc(c->stored_size);
		if (fetch_ranges_get(d->r, m->payload_offset + c->stored_offset,
				     (size_t)c->stored_size, d->whole[i], err) < 0) {
			free(d->whole[i]);
			d->whole[i] = NULL;
			return -1;
		}
		d->fetched_frames += manifest_chunk_frames(m, c);
	}
	if (bundle_decode_frames(m, c, 0, manifest_chunk_frames(m, c), d->whole[i],
				 (size_t)c->stored_size, out, NULL, zerr, sizeof(zerr)) < 0) {
		strbuf_addf(err, "'%s': chunk %zu: %s", d->url, i, zerr);
		return -EBADMSG;
	}
	return 0;
}

static bool chunk_matches(const struct bundle_chunk *c, const uint8_t *data)
{
	struct sha256 *h = sha256_new();
	uint8_t digest[SHA256_LEN];

	sha256_update(h, data, c->size);
	sha256_final(h, digest);
	sha256_free(h);
	return !memcmp(digest, c->sha256, SHA256_LEN);
}

/*
 * The spool: the fetched frames, appended to a file in the agent's state
 * directory and synced after each range, so that an install killed before
 * it wrote them (delta_check() fetches everything first) does not fetch
 * them again. Layout: magic "IMGFSPL1", the image's and the chunk index's
 * SHA-256 (the bundle it belongs to), then records: the frame's offset in
 * the payload (8 bytes) and its stored size (4 bytes, big-endian), the
 * stored bytes. The offset, not the frame's number among those fetched:
 * a format-3 install run again fetches other pages (those the first run
 * wrote are kept) and numbers its frames otherwise. Nothing in it is
 * trusted: a frame read back is checked with its chunk like any other.
 */
#define SPOOL_MAGIC "IMGFSPL2"
#define SPOOL_REC   12
#define SPOOL_HEAD  (8 + 2 * SHA256_LEN)

static void spool_drop(struct delta *d)
{
	if (d->spool_fd >= 0)
		close(d->spool_fd);
	d->spool_fd = -1;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void spool_add(struct delta *d, size_t f, const uint8_t *data, uint32_t len)
{
	uint8_t rec[SPOOL_REC];

	if (d->spool_fd < 0)
		return;
	put_be32(rec, (uint32_t)(d->x->stored_off[f] >> 32));
	put_be32(rec + 4, (uint32_t)d->x->stored_off[f]);
	put_be32(rec + 8, len);
	if (pwrite_all(d->spool_fd, rec, sizeof(rec), d->spool_end) < 0 ||
	    pwrite_all(d->spool_fd, data, len, d->spool_end + sizeof(rec)) < 0) {
		spool_drop(d); /* a full /data costs a download, nothing else */
		return;
	}
	d->spool_end += sizeof(rec) + len;
}

/* The frame stored at payload offset at among those of the index: its number, or n_frames. */
static size_t frame_at(const struct chunkidx *x, uint64_t at)
{
	size_t lo = 0, hi = x->n_frames;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (x->stored_off[mid] < at)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < x->n_frames && x->stored_off[lo] == at ? lo : x->n_frames;
}

/*
 * Format 4 with the patch: the spool holds the patch's first bytes as
 * fetched (magic "IMGFSPLP", the image's and the patch's SHA-256, then the
 * bytes), synced after each range of at most a chunk: a killed install
 * fetches the rest only. Checked with the whole patch against its SHA-256.
 */
#define SPOOL_PATCH_MAGIC "IMGFSPLP"
static int patch_spool_open(struct delta *d, const char *path)
{
	const struct bundle_manifest *m = d->m;
	uint8_t head[SPOOL_HEAD], want[SPOOL_HEAD];
	struct stat st;
	uint64_t have = 0;

	memcpy(want, SPOOL_PATCH_MAGIC, 8);
	memcpy(want + 8, m->image_sha256, SHA256_LEN);
	memcpy(want + 8 + SHA256_LEN, m->patch_sha256, SHA256_LEN);
	d->spool_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->spool_fd < 0)
		return -errno;
	if (read_at(d->spool_fd, head, sizeof(head), 0) == 0 && !memcmp(head, want, sizeof(head)) &&
	    fstat(d->spool_fd, &st) == 0 && (uint64_t)st.st_size > SPOOL_HEAD) {
		have = (uint64_t)st.st_size - SPOOL_HEAD;
		if (have > m->patch_size)
			have = m->patch_size;
		if (read_at(d->spool_fd, d->patch_buf, (size_t)have, SPOOL_HEAD) < 0)
			have = 0;
	}
	if (ftruncate(d->spool_fd, (off_t)(have ? SPOOL_HEAD + have : 0)) < 0 ||
	    (!have && (pwrite_all(d->spool_fd, want, sizeof(want), 0) < 0 ||
		       fdatasync(d->spool_fd) < 0))) {
		spool_drop(d);
		return -errno;
	}
	d->patch_have = have;
	d->spooled = have;
	return 0;
}

int delta_spool_open(struct delta *d, const char *path)
{
	const struct bundle_manifest *m = d->m;
	uint8_t head[SPOOL_HEAD], want[SPOOL_HEAD], rec[SPOOL_REC];
	uint64_t pos = SPOOL_HEAD;

	if (d->use_patch)
		return patch_spool_open(d, path);
	if (!d->x)
		return 0; /* no index: what is fetched is smaller than it, not spooled */
	memcpy(want, SPOOL_MAGIC, 8);
	memcpy(want + 8, m->image_sha256, SHA256_LEN);
	memcpy(want + 8 + SHA256_LEN, m->chunk_index_sha256, SHA256_LEN);
	if (!d->cache)
		d->cache = xcalloc(d->x->n_frames + 1, sizeof(*d->cache));
	d->spool_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (d->spool_fd < 0)
		return -errno;
	if (read_at(d->spool_fd, head, sizeof(head), 0) == 0 && !memcmp(head, want, sizeof(head))) {
		while (read_at(d->spool_fd, rec, sizeof(rec), pos) == 0) {
			uint64_t at = (uint64_t)be32(rec) << 32 | be32(rec + 4);
			uint32_t len = be32(rec + 8);
			size_t f = frame_at(d->x, at);
			uint8_t *buf;

			if (f >= d->x->n_frames || len != d->x->stored[f] ||
			    d->cached + len > DELTA_CACHE_MAX)
				break;
			buf = xmalloc(len);
			if (read_at(d->spool_fd, buf, len, pos + sizeof(rec)) < 0) {
				free(buf);
				break;
			}
			if (d->cache[f]) {
				free(buf);
			} else {
				d->cache[f] = buf;
				d->cached += len;
				d->spooled += len;
			}
			pos += sizeof(rec) + len;
		}
	} else {
		pos = 0;
	}
	if (ftruncate(d->spool_fd, (off_t)pos) < 0 ||
	    (pos == 0 && (pwrite_all(d->spool_fd, want, sizeof(want), 0) < 0 ||
			  fdatasync(d->spool_fd) < 0))) {
		spool_drop(d);
		return -errno;
	}
	d->spool_end = pos ? pos : SPOOL_HEAD;
	return 0;
}

/*
 * Frames first .. first+n-1 of chunk i, decompressed into out: from the
 * cache when delta_check() kept them all, else fetched (one range) and
 * kept while the cache has room.
 */
static int fetch_frames(struct delta *d, size_t i, uint64_t first, uint64_t n, uint8_t *out,
			uint8_t *zbuf, struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	const struct bundle_chunk *c = &m->chunks[i];
	size_t f0 = d->x->first[i] + (size_t)first, k;
	uint64_t len = 0, pos = 0;
	bool all_cached = true;
	char zerr[512];

	for (k = 0; k < n; k++) {
		len += d->x->stored[f0 + k];
		all_cached = all_cached && d->cache[f0 + k];
	}
	if (all_cached) {
		for (k = 0; k < n; k++) {
			memcpy(zbuf + pos, d->cache[f0 + k], d->x->stored[f0 + k]);
			pos += d->x->stored[f0 + k];
		}
	} else {
		if (fetch_ranges_get(d->r, m->payload_offset + d->x->stored_off[f0], (size_t)len,
				     zbuf, err) < 0)
			return -1;
		d->fetched_frames += n;
		for (k = 0; k < n; k++) {
			uint32_t sz = d->x->stored[f0 + k];

			if (!d->cache[f0 + k] && d->cached + sz <= DELTA_CACHE_MAX) {
				d->cache[f0 + k] = xmalloc(sz);
				memcpy(d->cache[f0 + k], zbuf + pos, sz);
				d->cached += sz;
				spool_add(d, f0 + k, zbuf + pos, sz);
			} else if (!d->cache[f0 + k]) {
				d->cache_full = true;
			}
			pos += sz;
		}
	}
	if (!all_cached && d->spool_fd >= 0 && fdatasync(d->spool_fd) < 0)
		spool_drop(d);
	if (bundle_decode_frames(m, c, first, n, zbuf, (size_t)len, out, NULL, zerr,
				 sizeof(zerr)) < 0) {
		strbuf_addf(err, "'%s': chunk %zu: %s", d->url, i, zerr);
		return -EBADMSG;
	}
	return 0;
}

/* A frame that did not match: not to be taken from the cache again. */
static void uncache_chunk(struct delta *d, size_t i)
{
	size_t f;

	if (!d->x) {
		free(d->whole[i]);
		d->whole[i] = NULL;
		return;
	}
	for (f = d->x->first[i]; f < d->x->first[i + 1]; f++) {
		if (d->cache[f])
			d->cached -= d->x->stored[f];
		free(d->cache[f]);
		d->cache[f] = NULL;
	}
}

/* Chunk i into out: from the target's bytes cur, the source, or the server. */
static int assemble(struct delta *d, size_t i, const uint8_t *cur, uint8_t *out, uint8_t *zbuf,
		    struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	const struct bundle_chunk *c = &m->chunks[i];
	uint64_t nf = manifest_chunk_frames(m, c), k, run = 0;
	bool *missing = xcalloc(nf + 1, sizeof(*missing));
	int r = 0;

	for (k = 0; k < nf; k++) {
		uint64_t fo = k * m->frame_size;
		size_t fl = (size_t)(c->size - fo < m->frame_size ? c->size - fo : m->frame_size);
		const uint8_t *want = d->x->hash[d->x->first[i] + k];
		uint8_t h[CHUNKIDX_HASH_LEN];
		const struct local *l;

		chunkidx_hash(cur + fo, fl, h);
		if (!memcmp(h, want, CHUNKIDX_HASH_LEN)) {
			memcpy(out + fo, cur + fo, fl);
			d->from_target += fl;
			continue;
		}
		l = fl == m->frame_size && d->src_fd >= 0 ? lookup(d, key_of(want)) : NULL;
		if (l && read_at(d->src_fd, out + fo, fl, l->off) == 0) {
			chunkidx_hash(out + fo, fl, h);
			if (!memcmp(h, want, CHUNKIDX_HASH_LEN)) {
				d->from_source += fl;
				continue;
			}
		}
		missing[k] = true;
	}
	/* Runs of missing frames: one range each. */
	for (k = 0; k <= nf && r == 0; k++) {
		if (k < nf && missing[k]) {
			run++;
			continue;
		}
		if (run)
			r = fetch_frames(d, i, k - run, run, out, zbuf, err);
		run = 0;
	}
	free(missing);
	return r;
}

/*
 * Chunk i whole from the server (its stored bytes, or all its frames) into
 * out: 0 when it matches its SHA-256, 1 when not (damaged), -1 with err
 * when the download fails.
 */
static int fetch_chunk(struct delta *d, size_t i, uint8_t *out, uint8_t *zbuf, struct strbuf *err)
{
	const struct bundle_chunk *c = &d->m->chunks[i];
	int r = d->x ? fetch_frames(d, i, 0, manifest_chunk_frames(d->m, c), out, zbuf, err)
		     : fetch_whole(d, i, out, err);

	if (r < 0 && r != -EBADMSG)
		return -1;
	return r == 0 && chunk_matches(c, out) ? 0 : 1;
}

/*
 * Chunk i into out, checked against its SHA-256: 1 when the target holds
 * it already (nothing to write), 0 when out holds it, -1 with err.
 */
static int make_chunk(struct delta *d, size_t i, int target_fd, uint8_t *cur, uint8_t *out,
		      uint8_t *zbuf, struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	const struct bundle_chunk *c = &m->chunks[i];
	int r;

	if (read_at(target_fd, cur, (size_t)c->size, c->offset) < 0)
		memset(cur, 0, (size_t)c->size);
	/* Written by an earlier, interrupted install: nothing to do. */
	if (chunk_matches(c, cur))
		return 1;
	if (d->src_whole[i] && read_at(d->src_fd, out, (size_t)c->size, c->offset) == 0 &&
	    chunk_matches(c, out)) {
		d->from_source += c->size;
		return 0;
	}
	if (d->x) {
		r = assemble(d, i, cur, out, zbuf, err);
		if (r < 0 && r != -EBADMSG)
			return -1;
		if (r == 0 && chunk_matches(c, out))
			return 0;
	} else {
		r = fetch_chunk(d, i, out, zbuf, err);
		if (r <= 0)
			return r;
	}
	/* A false match or damage on the way: the whole chunk once more, then refused. */
	strbuf_reset(err);
	uncache_chunk(d, i);
	d->refetched_chunks++;
	r = fetch_chunk(d, i, out, zbuf, err);
	if (r <= 0)
		return r;
	strbuf_reset(err);
	strbuf_addf(err,
		    "damaged bundle: chunk %zu (image bytes %" PRIu64 "..%" PRIu64
		    ") from '%s' does not match its SHA-256 in the signed manifest; "
		    "it was not written; try again",
		    i, c->offset, c->offset + c->size, d->url);
	return -1;
}

/*
 * The patch: the rest of it fetched (a chunk's worth a range, each synced to
 * the spool), checked against its SHA-256 in the signed manifest, decoded.
 */
static int fetch_patch(struct delta *d, struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	uint8_t digest[SHA256_LEN];
	struct sha256 *h;
	char perr[400];

	while (d->patch_have < m->patch_size) {
		uint64_t n = m->patch_size - d->patch_have;

		if (n > m->chunk_size)
			n = m->chunk_size;
		if (fetch_ranges_get(d->r, m->payload_offset + m->payload_size + d->patch_have,
				     (size_t)n, d->patch_buf + d->patch_have, err) < 0)
			return -1;
		if (d->spool_fd >= 0 &&
		    (pwrite_all(d->spool_fd, d->patch_buf + d->patch_have, (size_t)n,
				SPOOL_HEAD + d->patch_have) < 0 ||
		     fdatasync(d->spool_fd) < 0))
			spool_drop(d); /* a full /data costs a download, nothing else */
		d->patch_have += n;
		/* A stop point after each range of the patch is kept (power-cut tests). */
		stop_point("patch");
	}
	h = sha256_new();
	sha256_update(h, d->patch_buf, m->patch_size);
	sha256_final(h, digest);
	sha256_free(h);
	if (memcmp(digest, m->patch_sha256, SHA256_LEN)) {
		/* Not kept: the next run fetches it all again. */
		if (d->spool_fd >= 0 && ftruncate(d->spool_fd, 0) == 0)
			spool_drop(d);
		d->patch_have = 0;
		strbuf_addf(err,
			    "'%s': the patch does not match its SHA-256 in the signed manifest "
			    "(damaged in transit or on the server); try again",
			    d->url);
		return -1;
	}
	if (patch_decode(d->patch_buf, (size_t)m->patch_size, m->image_size, m->chunk_size,
			 m->patch_from_size, &d->patch, perr, sizeof(perr)) < 0) {
		strbuf_addf(err, "'%s': %s", d->url, perr);
		return -1;
	}
	return 0;
}

/*
 * With the patch: every chunk made and checked (its SHA-256 from the patch,
 * the running slot's blocks against their hashes) before anything is
 * written; the ones the target holds already are kept.
 */
static int patch_check(struct delta *d, int target_fd, struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	_cleanup_free_ uint8_t *cur = xmalloc(m->chunk_size), *out = xmalloc(m->chunk_size),
			       *ref = xmalloc(m->chunk_size);
	char perr[400];
	size_t i;

	if (fetch_patch(d, err) < 0)
		return -1;
	d->kept_chunk = xcalloc(d->patch->n_chunks + 1, sizeof(*d->kept_chunk));
	for (i = 0; i < d->patch->n_chunks; i++) {
		ssize_t len = patch_chunk(d->patch, i, d->src_fd, (const uint8_t(*)[32])d->sbh, ref,
					  out, perr, sizeof(perr));

		if (len < 0) {
			strbuf_addf(err, "%s", perr);
			return -1;
		}
		d->kept_chunk[i] = read_at(target_fd, cur, (size_t)len,
					   (uint64_t)i * m->chunk_size) == 0 &&
				   !memcmp(cur, out, (size_t)len);
	}
	d->checked_all = true;
	return 0;
}

static int patch_write(struct delta *d, int target_fd,
		       int (*emit)(void *ectx, uint64_t off, const void *data, size_t len),
		       int (*emit_zero)(void *ectx, uint64_t off, uint64_t len), void *ectx,
		       struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	_cleanup_free_ uint8_t *cur = xmalloc(m->chunk_size), *out = xmalloc(m->chunk_size),
			       *ref = xmalloc(m->chunk_size);
	char perr[400];
	size_t i;

	for (i = 0; i < d->patch->n_chunks; i++) {
		uint64_t off = (uint64_t)i * m->chunk_size;
		ssize_t len = patch_chunk(d->patch, i, d->src_fd, (const uint8_t(*)[32])d->sbh, ref,
					  out, perr, sizeof(perr));

		if (len < 0) {
			strbuf_addf(err, "%s", perr);
			return -1;
		}
		if (read_at(target_fd, cur, (size_t)len, off) == 0 && !memcmp(cur, out, (size_t)len)) {
			d->kept += (uint64_t)len;
			continue;
		}
		if (out[0] == 0 && !memcmp(out, out + 1, (size_t)len - 1)
			    ? emit_zero(ectx, off, (uint64_t)len) < 0
			    : emit(ectx, off, out, (size_t)len) < 0) {
			strbuf_addf(err, "cannot write the image at byte %" PRIu64, off);
			return -1;
		}
		if (d->patch->changed[i])
			d->patched += (uint64_t)len;
		else
			d->from_source += (uint64_t)len;
	}
	return 0;
}

int delta_check(struct delta *d, int target_fd, struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	_cleanup_free_ uint8_t *cur = xmalloc(m->chunk_size), *out = xmalloc(m->chunk_size);
	_cleanup_free_ uint8_t *zbuf = xmalloc(manifest_max_stored(m));
	size_t i;
	int r;

	if (d->use_patch)
		return patch_check(d, target_fd, err);
	if (!d->cache && d->x)
		d->cache = xcalloc(d->x->n_frames + 1, sizeof(*d->cache));
	d->kept_chunk = xcalloc(m->n_chunks + 1, sizeof(*d->kept_chunk));
	for (i = 0; i < m->n_chunks && !d->cache_full; i++) {
		r = make_chunk(d, i, target_fd, cur, out, zbuf, err);
		if (r < 0)
			return -1;
		d->kept_chunk[i] = r == 1;
	}
	d->checked_all = !d->cache_full;
	/* The counts are delta_write()'s to make. */
	d->from_target = d->from_source = 0;
	return 0;
}

bool delta_checked_all(const struct delta *d)
{
	return d->checked_all;
}

/*
 * A page the running slot holds (COPY): read again and checked block by
 * block against the hashes whose region digest matched the signed one,
 * then written; all-zero chunks as zeros.
 */
static int copy_region(struct delta *d, const struct region *r, uint8_t *buf,
		       int (*emit)(void *ectx, uint64_t off, const void *data, size_t len),
		       int (*emit_zero)(void *ectx, uint64_t off, uint64_t len), void *ectx,
		       struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	struct sha256 *h = sha256_new();
	uint64_t off;
	int ret = -1;

	for (off = r->off; off < r->off + r->len; off += m->chunk_size) {
		size_t len = (size_t)(r->off + r->len - off < m->chunk_size ? r->off + r->len - off
									    : m->chunk_size),
		       b;
		uint8_t bh[SHA256_LEN];

		if (read_at(d->src_fd, buf, len, off) < 0) {
			strbuf_addf(err, "cannot read the running slot at byte %" PRIu64 ": %s",
				    off, strerror(errno));
			goto out;
		}
		for (b = 0; b * CHUNKIDX_BLOCK < len; b++) {
			size_t bl = len - b * CHUNKIDX_BLOCK < CHUNKIDX_BLOCK ? len - b * CHUNKIDX_BLOCK
									      : CHUNKIDX_BLOCK;
			size_t gb = (size_t)(off / CHUNKIDX_BLOCK) + b;

			sha256_update(h, buf + b * CHUNKIDX_BLOCK, bl);
			sha256_final(h, bh);
			if (memcmp(bh, bl < CHUNKIDX_BLOCK ? d->src_tail : d->sbh[gb], SHA256_LEN)) {
				strbuf_addf(err,
					    "the running slot changed during the install (image byte "
					    "%" PRIu64 "); it was not written; try again",
					    off + b * CHUNKIDX_BLOCK);
				goto out;
			}
		}
		if (buf[0] == 0 && !memcmp(buf, buf + 1, len - 1) ? emit_zero(ectx, off, len) < 0
								  : emit(ectx, off, buf, len) < 0) {
			strbuf_addf(err, "cannot write the image at byte %" PRIu64, off);
			goto out;
		}
		d->from_source += len;
	}
	ret = 0;
out:
	sha256_free(h);
	return ret;
}

int delta_write(struct delta *d, int target_fd,
		int (*emit)(void *ectx, uint64_t off, const void *data, size_t len),
		int (*emit_zero)(void *ectx, uint64_t off, uint64_t len), void *ectx,
		struct strbuf *err)
{
	const struct bundle_manifest *m = d->m;
	_cleanup_free_ uint8_t *cur = xmalloc(m->chunk_size), *out = xmalloc(m->chunk_size);
	_cleanup_free_ uint8_t *zbuf = xmalloc(manifest_max_stored(m));
	size_t i, g;
	int r;

	if (d->use_patch)
		return patch_write(d, target_fd, emit, emit_zero, ectx, err);
	if (!d->cache && d->x)
		d->cache = xcalloc(d->x->n_frames + 1, sizeof(*d->cache));
	for (g = 0; g < d->n_reg; g++) {
		const struct region *rg = &d->reg[g];
		uint64_t pos = rg->off, end = rg->off + rg->len;

		if (rg->how == KEEP) {
			d->kept += rg->len;
			continue;
		}
		if (rg->how == COPY) {
			if (copy_region(d, rg, out, emit, emit_zero, ectx, err) < 0)
				return -1;
			continue;
		}
		for (i = rg->c0; i < rg->c1; i++) {
			const struct bundle_chunk *c = &m->chunks[i];

			if (c->offset > pos && emit_zero(ectx, pos, c->offset - pos) < 0) {
				strbuf_addf(err, "cannot write the image at byte %" PRIu64, pos);
				return -1;
			}
			pos = c->offset + c->size;
			r = make_chunk(d, i, target_fd, cur, out, zbuf, err);
			if (r < 0)
				return -1;
			uncache_chunk(d, i);
			if (r == 1) {
				d->kept += c->size;
				continue;
			}
			if (emit(ectx, c->offset, out, (size_t)c->size) < 0) {
				strbuf_addf(err, "cannot write the image at byte %" PRIu64,
					    c->offset);
				return -1;
			}
		}
		if (pos < end && emit_zero(ectx, pos, end - pos) < 0) {
			strbuf_addf(err, "cannot write the image at byte %" PRIu64, pos);
			return -1;
		}
	}
	return 0;
}

void delta_summary(const struct delta *d, struct strbuf *out)
{
	uint64_t dl = delta_downloaded(d);

	if (d->use_patch) {
		strbuf_addf(out,
			    "downloaded %" PRIu64 " of the bundle's %" PRIu64 " bytes (%.2f%%): "
			    "the patch from the running image (%" PRIu64 " bytes), %" PRIu64
			    " bytes kept in the target slot, %" PRIu64 " made with the patch and %" PRIu64
			    " copied from the running slot",
			    dl, d->size, d->size ? 100.0 * (double)dl / (double)d->size : 0.0,
			    d->m->patch_size, d->kept, d->patched, d->from_source);
		if (d->spooled)
			strbuf_addf(out,
				    "; %" PRIu64 " bytes fetched by an interrupted install before",
				    d->spooled);
		return;
	}
	strbuf_addf(out,
		    "downloaded %" PRIu64 " of the bundle's %" PRIu64 " bytes (%.2f%%): %" PRIu64
		    " frames fetched, %" PRIu64 " bytes kept in the target slot, %" PRIu64
		    " reused from it and %" PRIu64 " from the running slot",
		    dl, d->size, d->size ? 100.0 * (double)dl / (double)d->size : 0.0,
		    d->fetched_frames, d->kept, d->from_target, d->from_source);
	if (d->dir)
		strbuf_addf(out, "; %zu of %zu chunk index pages fetched", d->pages_fetched,
			    d->dir->n_pages);
	if (d->spooled)
		strbuf_addf(out, "; %" PRIu64 " bytes fetched by an interrupted install before",
			    d->spooled);
	if (d->refetched_chunks)
		strbuf_addf(out, "; %" PRIu64 " chunks fetched whole again", d->refetched_chunks);
}
