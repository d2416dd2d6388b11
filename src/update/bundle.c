/* SPDX-License-Identifier: MIT */
/*
 * Update bundles (bundle.h, docs/update.md): written on the build host,
 * read front to back from a file or an HTTP stream on the device. Reading
 * trusts nothing before the signature over the header and the manifest is
 * checked; the payload is then checked chunk by chunk against the
 * manifest's digests before any of its bytes are handed on. With
 * chunkidx.c and patch.c, the only files that include libzstd's header.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "core/hash.h"
#include "core/util.h"
#include "update/bundle.h"
#include "update/chunkidx.h"
#include "update/patch.h"
#include "update/sign.h"

static int fail(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

ssize_t bundle_read_fd(void *ctx, void *buf, size_t len)
{
	ssize_t n;

	do
		n = read(*(int *)ctx, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

ssize_t bundle_read_mem(void *ctx, void *buf, size_t len)
{
	struct bundle_mem *m = ctx;
	size_t n = m->len - m->pos < len ? m->len - m->pos : len;

	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

/* Read until len bytes or the end: the count read, or < 0. */
static ssize_t read_full(bundle_read_fn rd, void *ctx, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = rd(ctx, (uint8_t *)buf + got, len - got);
		if (n < 0)
			return n;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

static int read_exact(bundle_read_fn rd, void *ctx, void *buf, size_t len, uint64_t at,
		      const char *what, char *err, size_t errlen)
{
	ssize_t n = read_full(rd, ctx, buf, len);

	if (n < 0)
		return fail(err, errlen, "cannot read the bundle at byte %" PRIu64 ": %s", at,
			    strerror((int)-n));
	if ((size_t)n < len)
		return fail(err, errlen,
			    "truncated bundle: it ends at byte %" PRIu64 ", in %s; fetch it again",
			    at + (uint64_t)n, what);
	return 0;
}

/*
 * Format 3: the index between the signature and the payload, read and
 * checked against the signed manifest (the directory) and the directory
 * (each page), its chunks and frames put into m.
 */
static int read_pages(bundle_read_fn rd, void *ctx, struct bundle_manifest *m, uint64_t at,
		      char *err, size_t errlen)
{
	size_t dlen = (size_t)manifest_dir_size(m), p;
	_cleanup_free_ uint8_t *buf = xmalloc(m->index_size);
	struct chunkdir *dir = NULL;
	int r = -1;

	if (read_exact(rd, ctx, buf, m->index_size, at, "its chunk index", err, errlen) < 0)
		return -1;
	if (chunkdir_decode(buf, dlen, m, &dir, err, errlen) < 0)
		return -1;
	for (p = 0; p < dir->n_pages; p++)
		if (chunkpage_decode(buf + dir->pages[p].index_offset, dir->pages[p].size, m, dir, p,
				     err, errlen) < 0)
			goto out;
	r = 0;
out:
	chunkdir_free(dir);
	return r;
}

static int open_common(bundle_read_fn rd, void *ctx, const char *keyring, bool index,
		       struct bundle_manifest **ret, uint8_t **ret_sig, size_t *ret_siglen,
		       char *err, size_t errlen)
{
	uint8_t hdr[BUNDLE_HEADER_SIZE];
	_cleanup_free_ uint8_t *buf = NULL;
	struct bundle_manifest *m = NULL;
	uint32_t version, mlen, slen, reserved;
	char merr[400];
	ssize_t n;

	n = read_full(rd, ctx, hdr, sizeof(hdr));
	if (n < 0)
		return fail(err, errlen, "cannot read the bundle: %s", strerror((int)-n));
	if (n == 0)
		return fail(err, errlen, "the bundle is empty; fetch it again");
	if (memcmp(hdr, BUNDLE_MAGIC, (size_t)n < 8 ? (size_t)n : 8))
		return fail(err, errlen, "not an imgforge bundle: it does not start with '%s'",
			    BUNDLE_MAGIC);
	if (n < (ssize_t)sizeof(hdr))
		return fail(err, errlen,
			    "truncated bundle: it ends at byte %zd, in its %d-byte "
			    "header; fetch it again",
			    n, BUNDLE_HEADER_SIZE);
	version = get_be32(hdr + 8);
	mlen = get_be32(hdr + 12);
	slen = get_be32(hdr + 16);
	reserved = get_be32(hdr + 20);
	if (version < BUNDLE_FORMAT_MIN || version > BUNDLE_FORMAT_MAX)
		return fail(err, errlen,
			    "bundle format %" PRIu32 " is not supported (this "
			    "imgforge reads formats %d to %d); update imgforge",
			    version, BUNDLE_FORMAT_MIN, BUNDLE_FORMAT_MAX);
	if (mlen == 0 || mlen > BUNDLE_MAX_MANIFEST)
		return fail(err, errlen,
			    "invalid bundle header: manifest length %" PRIu32
			    " is not 1 to %u bytes",
			    mlen, BUNDLE_MAX_MANIFEST);
	if (slen == 0 || slen > BUNDLE_MAX_SIGNATURE)
		return fail(err, errlen,
			    "invalid bundle header: signature length %" PRIu32
			    " is not 1 to %u bytes",
			    slen, BUNDLE_MAX_SIGNATURE);
	if (reserved)
		return fail(err, errlen,
			    "invalid bundle header: the reserved field at byte 20 is "
			    "not 0");
	buf = xmalloc(sizeof(hdr) + mlen + slen);
	memcpy(buf, hdr, sizeof(hdr));
	if (read_exact(rd, ctx, buf + sizeof(hdr), mlen, sizeof(hdr), "its manifest", err, errlen) <
		    0 ||
	    read_exact(rd, ctx, buf + sizeof(hdr) + mlen, slen, sizeof(hdr) + (uint64_t)mlen,
		       "its signature", err, errlen) < 0)
		return -1;
	/* The signature first: nothing of the manifest is read before it is trusted. */
	if (keyring && sig_verify_detached(buf, sizeof(hdr) + mlen, buf + sizeof(hdr) + mlen, slen,
					   keyring, err, errlen) < 0)
		return -1;
	if (manifest_parse((const char *)buf + sizeof(hdr), mlen, &m, merr, sizeof(merr)) < 0)
		return fail(err, errlen, "%s", merr);
	if (m->format != version) {
		fail(err, errlen,
		     "invalid bundle: the header says format %" PRIu32 ", the manifest %u",
		     version, m->format);
		bundle_manifest_free(m);
		return -1;
	}
	if (m->payload_offset != sizeof(hdr) + (uint64_t)mlen + slen +
					 (manifest_index_first(m) ? m->index_size : 0)) {
		fail(err, errlen,
		     "invalid manifest: the payload offset %" PRIu64
		     " is not the end of the signature%s (%" PRIu64 ")",
		     m->payload_offset, manifest_index_first(m) ? " and the chunk index" : "",
		     sizeof(hdr) + (uint64_t)mlen + slen +
			     (manifest_index_first(m) ? m->index_size : 0));
		bundle_manifest_free(m);
		return -1;
	}
	if (index && manifest_index_first(m) &&
	    read_pages(rd, ctx, m, sizeof(hdr) + (uint64_t)mlen + slen, err, errlen) < 0) {
		bundle_manifest_free(m);
		return -1;
	}
	if (ret_sig) {
		*ret_sig = xmalloc(slen);
		memcpy(*ret_sig, buf + sizeof(hdr) + mlen, slen);
		*ret_siglen = slen;
	}
	*ret = m;
	return 0;
}

int bundle_open(bundle_read_fn rd, void *ctx, const char *keyring, struct bundle_manifest **ret,
		char *err, size_t errlen)
{
	if (!keyring || !*keyring)
		return fail(err, errlen, "no keyring given to check the bundle's signature with");
	return open_common(rd, ctx, keyring, true, ret, NULL, NULL, err, errlen);
}

int bundle_open_head(bundle_read_fn rd, void *ctx, const char *keyring,
		     struct bundle_manifest **ret, char *err, size_t errlen)
{
	if (!keyring || !*keyring)
		return fail(err, errlen, "no keyring given to check the bundle's signature with");
	return open_common(rd, ctx, keyring, false, ret, NULL, NULL, err, errlen);
}

int bundle_open_unverified(bundle_read_fn rd, void *ctx, struct bundle_manifest **ret,
			   uint8_t **ret_sig, size_t *ret_siglen, char *err, size_t errlen)
{
	return open_common(rd, ctx, NULL, true, ret, ret_sig, ret_siglen, err, errlen);
}

static const uint8_t zeros[64 << 10];

/* Hand on len zero bytes at off, hashing them into the image's digest. */
static int emit_zeros(struct sha256 *ih, uint64_t off, uint64_t len,
		      int (*emit)(void *, uint64_t, const void *, size_t),
		      int (*emit_zero)(void *, uint64_t, uint64_t), void *ectx)
{
	uint64_t done;

	if (emit_zero && emit_zero(ectx, off, len) < 0)
		return -1;
	for (done = 0; done < len;) {
		size_t n = len - done < sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);
		sha256_update(ih, zeros, n);
		if (!emit_zero && emit && emit(ectx, off + done, zeros, n) < 0)
			return -1;
		done += n;
	}
	return 0;
}

static int write_failed(char *err, size_t errlen, uint64_t off)
{
	if (err[0])
		return -1;
	return fail(err, errlen, "cannot write the image at byte %" PRIu64, off);
}

/* bundle_decode_frames() with the reason alone in err ("frame 3 is not ..."). */
static int decode_frames(const struct bundle_manifest *m, const struct bundle_chunk *c,
			 uint64_t first, uint64_t n, const uint8_t *in, size_t in_len, uint8_t *out,
			 uint32_t *ret_stored, char *err, size_t errlen)
{
	size_t pos = 0;
	uint64_t k;

	for (k = first; k < first + n; k++) {
		uint64_t off = k * m->frame_size;
		uint64_t size = c->size - off < m->frame_size ? c->size - off : m->frame_size;
		size_t zn = pos < in_len ? ZSTD_findFrameCompressedSize(in + pos, in_len - pos) : 0;
		unsigned long long fsize =
			zn && !ZSTD_isError(zn) ? ZSTD_getFrameContentSize(in + pos, zn) : 0;
		size_t got;

		if (off >= c->size || !zn || ZSTD_isError(zn) || fsize != size ||
		    (first + n == k + 1 && pos + zn != in_len)) {
			if (m->format == 1)
				fail(err, errlen, "it is not one zstd frame of %" PRIu64 " bytes",
				     size);
			else
				fail(err, errlen,
				     "its frame %" PRIu64 " is not one zstd frame of %" PRIu64
				     " bytes",
				     k, size);
			return -1;
		}
		got = ZSTD_decompress(out + off, size, in + pos, zn);
		if (ZSTD_isError(got) || got != size) {
			fail(err, errlen, "its frame %" PRIu64 " does not decompress (%s)", k,
			     ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
			return -1;
		}
		if (ret_stored)
			ret_stored[k - first] = (uint32_t)zn;
		pos += zn;
	}
	return 0;
}

int bundle_decode_frames(const struct bundle_manifest *m, const struct bundle_chunk *c,
			 uint64_t first, uint64_t n, const uint8_t *in, size_t in_len, uint8_t *out,
			 uint32_t *ret_stored, char *err, size_t errlen)
{
	char why[256];

	if (decode_frames(m, c, first, n, in, in_len, out, ret_stored, why, sizeof(why)) < 0)
		return fail(err, errlen,
			    "damaged bundle: the chunk at image bytes %" PRIu64 "..%" PRIu64
			    ": %s; fetch it again",
			    c->offset, c->offset + c->size, why);
	return 0;
}

/*
 * After a format-2 payload: the chunk index, checked against its digest in
 * the manifest, decoded against the manifest, and compared with the frames
 * the payload really holds (stored, hashes: what the stream recorded).
 */
static int check_index(bundle_read_fn rd, void *ctx, const struct bundle_manifest *m, uint64_t at,
		       const struct chunkidx *seen, char *err, size_t errlen)
{
	_cleanup_free_ uint8_t *buf = xmalloc(m->index_size);
	struct chunkidx *x = NULL;
	uint8_t digest[SHA256_LEN];
	struct sha256 *h;
	char xerr[300];
	int r = -1;

	if (read_exact(rd, ctx, buf, m->index_size, at, "its chunk index", err, errlen) < 0)
		return -1;
	h = sha256_new();
	sha256_update(h, buf, m->index_size);
	sha256_final(h, digest);
	sha256_free(h);
	if (memcmp(digest, m->chunk_index_sha256, SHA256_LEN))
		return fail(err, errlen,
			    "damaged bundle: the chunk index does not match its SHA-256 in the "
			    "manifest; fetch it again");
	if (chunkidx_decode(buf, m->index_size, m, &x, xerr, sizeof(xerr)) < 0)
		return fail(err, errlen, "%s", xerr);
	if (x->n_frames != seen->n_frames ||
	    memcmp(x->stored, seen->stored, x->n_frames * sizeof(*x->stored)) ||
	    memcmp(x->hash, seen->hash, x->n_frames * sizeof(*x->hash)))
		fail(err, errlen,
		     "invalid bundle: the chunk index does not describe the payload's frames");
	else
		r = 0;
	chunkidx_free(x);
	return r;
}

int bundle_stream_payload(bundle_read_fn rd, void *ctx, const struct bundle_manifest *m,
			  int (*emit)(void *ectx, uint64_t off, const void *data, size_t len),
			  int (*emit_zero)(void *ectx, uint64_t off, uint64_t len), void *ectx,
			  char *err, size_t errlen)
{
	struct sha256 *ph = sha256_new(), *ih = sha256_new(), *ch = sha256_new();
	size_t max_stored = manifest_max_stored(m);
	uint64_t max_frames = (m->chunk_size + m->frame_size - 1) / m->frame_size;
	uint8_t *in = xmalloc(max_stored), *out = xmalloc(m->chunk_size);
	uint32_t *fstored = xcalloc(max_frames, sizeof(*fstored));
	struct chunkidx seen = {.frame_size = m->frame_size};
	uint8_t digest[SHA256_LEN], extra;
	uint64_t pos = 0, at = m->payload_offset;
	size_t i;
	ssize_t n;
	int r = -1;

	if (errlen)
		err[0] = '\0';
	for (i = 0; i < m->n_chunks; i++) {
		const struct bundle_chunk *c = &m->chunks[i];
		uint64_t nf = manifest_chunk_frames(m, c), k;
		char what[64], why[256];

		if (c->offset > pos &&
		    emit_zeros(ih, pos, c->offset - pos, emit, emit_zero, ectx) < 0) {
			write_failed(err, errlen, pos);
			goto out;
		}
		pos = c->offset;
		/* Checked by manifest_parse(); a caller's own manifest is checked here too. */
		if (c->stored_size > max_stored || c->size > m->chunk_size) {
			fail(err, errlen,
			     "invalid manifest: chunk %zu is larger than the chunk size", i);
			goto out;
		}
		snprintf(what, sizeof(what), "chunk %zu of the payload", i);
		if (read_exact(rd, ctx, in, c->stored_size, at, what, err, errlen) < 0)
			goto out;
		at += c->stored_size;
		sha256_update(ph, in, c->stored_size);
		if (decode_frames(m, c, 0, nf, in, c->stored_size, out, fstored, why,
				  sizeof(why)) < 0) {
			fail(err, errlen,
			     "damaged bundle: chunk %zu (image bytes %" PRIu64 "..%" PRIu64
			     "): %s; fetch it again",
			     i, c->offset, c->offset + c->size, why);
			goto out;
		}
		sha256_update(ch, out, c->size);
		sha256_final(ch, digest);
		if (memcmp(digest, c->sha256, SHA256_LEN)) {
			fail(err, errlen,
			     "damaged bundle: chunk %zu (image bytes %" PRIu64 "..%" PRIu64
			     ") does not match its SHA-256 in the manifest; fetch it again",
			     i, c->offset, c->offset + c->size);
			goto out;
		}
		if (m->format >= 2)
			for (k = 0; k < nf; k++) {
				uint64_t fo = k * m->frame_size;
				uint8_t fh[CHUNKIDX_HASH_LEN];

				chunkidx_hash(out + fo,
					      c->size - fo < m->frame_size ? c->size - fo
									   : m->frame_size,
					      fh);
				chunkidx_add(&seen, fstored[k], fh);
			}
		sha256_update(ih, out, c->size);
		if (emit && emit(ectx, c->offset, out, c->size) < 0) {
			write_failed(err, errlen, c->offset);
			goto out;
		}
		pos = c->offset + c->size;
	}
	if (pos < m->image_size &&
	    emit_zeros(ih, pos, m->image_size - pos, emit, emit_zero, ectx) < 0) {
		write_failed(err, errlen, pos);
		goto out;
	}
	sha256_final(ph, digest);
	if (memcmp(digest, m->payload_sha256, SHA256_LEN)) {
		fail(err, errlen,
		     "damaged bundle: the payload does not match its SHA-256 in the "
		     "manifest; fetch it again");
		goto out;
	}
	sha256_final(ih, digest);
	if (memcmp(digest, m->image_sha256, SHA256_LEN)) {
		fail(err, errlen,
		     "damaged bundle: the image does not match its SHA-256 in the "
		     "manifest; fetch it again");
		goto out;
	}
	if (manifest_index_first(m)) {
		/* Read before the payload: it must name the frames the payload holds. */
		if (seen.n_frames != m->n_frames ||
		    (seen.n_frames &&
		     (memcmp(seen.stored, m->frame_stored, seen.n_frames * sizeof(*seen.stored)) ||
		      memcmp(seen.hash, m->frame_hash, seen.n_frames * sizeof(*seen.hash))))) {
			fail(err, errlen,
			     "invalid bundle: the chunk index does not describe the payload's "
			     "frames");
			goto out;
		}
	} else if (m->format >= 2) {
		if (check_index(rd, ctx, m, at, &seen, err, errlen) < 0)
			goto out;
		at += m->index_size;
	}
	if (m->has_patch) {
		/* Format 4: the patch, checked against its SHA-256 (agents running its earlier image
		 * decode it). */
		uint64_t left = m->patch_size;
		struct sha256 *xh = sha256_new();

		while (left > 0) {
			size_t want = left < m->chunk_size ? (size_t)left : (size_t)m->chunk_size;

			if (read_exact(rd, ctx, out, want, at, "the patch", err, errlen) < 0) {
				sha256_free(xh);
				goto out;
			}
			sha256_update(xh, out, want);
			at += want;
			left -= want;
		}
		sha256_final(xh, digest);
		sha256_free(xh);
		if (memcmp(digest, m->patch_sha256, SHA256_LEN)) {
			fail(err, errlen,
			     "damaged bundle: the patch does not match its SHA-256 in the "
			     "manifest; fetch it again");
			goto out;
		}
	}
	n = read_full(rd, ctx, &extra, 1);
	if (n != 0) {
		if (n < 0)
			fail(err, errlen, "cannot read the bundle at byte %" PRIu64 ": read error",
			     at);
		else
			fail(err, errlen, "invalid bundle: data after the %s at byte %" PRIu64,
			     m->format == 2   ? "payload and its chunk index"
			     : m->has_patch ? "patch's end"
					    : "payload's end",
			     at);
		goto out;
	}
	r = 0;
out:
	sha256_free(ph);
	sha256_free(ih);
	sha256_free(ch);
	free(in);
	free(out);
	free(fstored);
	free(seen.stored);
	free(seen.hash);
	return r;
}

int bundle_check_target(const struct bundle_manifest *m, const char *compatible,
			const char *running_version, bool allow_downgrade, bool force, char *err,
			size_t errlen)
{
	int c;

	if (compatible && strcmp(m->compatible, compatible))
		return fail(err, errlen,
			    "the bundle is for '%s', this system is '%s'; install a "
			    "bundle built for '%s'",
			    m->compatible, quote_path(compatible), quote_path(compatible));
	if (!running_version)
		return 0;
	c = strverscmp(m->version, running_version);
	if (c < 0 && !allow_downgrade)
		return fail(err, errlen,
			    "the bundle's version %s is older than the running %s; "
			    "give --allow-downgrade to install it anyway",
			    m->version, quote_path(running_version));
	if (c == 0 && !force)
		return fail(err, errlen,
			    "version %s is already running; give --force to install "
			    "it again",
			    m->version);
	return 0;
}

/* --- host side ------------------------------------------------------------- */

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/* An unnamed temporary file in dir (O_TMPFILE where the filesystem has it). */
static int tmpfile_in(const char *dir)
{
	_cleanup_free_ char *tmpl = NULL;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd < 0 ? -errno : fd;
	tmpl = path_join(dir, ".imgforge-bundle-XXXXXX");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmpl);
	return fd;
}

/*
 * Compress the image's chunks into the payload file pfd, filling m's image
 * and chunk fields and the payload's size and digest. Each chunk is
 * frame_size-byte zstd frames compressed independently (one frame in
 * format 1); format 2 appends the chunk index of those frames to pfd after
 * the payload.
 */
static int make_payload(int in, const char *image, int pfd, struct bundle_manifest *m,
			struct strbuf *index, char *err, size_t errlen)
{
	struct sha256 *ih = sha256_new(), *ph = sha256_new(), *ch = sha256_new();
	size_t bound = ZSTD_compressBound(m->frame_size), alloc = 0;
	uint8_t *buf = xmalloc(m->chunk_size), *z = xmalloc(bound);
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	struct chunkidx x = {.frame_size = m->frame_size};
	struct strbuf xs = STRBUF_INIT;
	uint64_t off, stored = 0, span = (uint64_t)m->page_chunks * m->chunk_size;
	/* Format 3: each 4 KiB block's SHA-256, for the frames' and the pages' digests. */
	size_t nbh = (size_t)(m->chunk_size / CHUNKIDX_BLOCK);
	uint8_t(*bh)[SHA256_LEN] = xcalloc(nbh, SHA256_LEN);
	uint8_t(*region)[SHA256_LEN] = NULL;
	struct sha256 *rh = sha256_new();
	int r = -1;

	if (m->format >= 3)
		region = xcalloc(manifest_pages(m) + 1, SHA256_LEN);

	if (!cctx) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	for (off = 0; off < m->image_size; off += m->chunk_size) {
		size_t len = m->image_size - off < m->chunk_size ? (size_t)(m->image_size - off)
								 : m->chunk_size;
		struct bundle_chunk *c;
		size_t got = 0, fo, cstored = 0;

		while (got < len) {
			ssize_t n = pread(in, buf + got, len - got, (off_t)(off + got));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				fail(err, errlen, "cannot read '%s' at byte %" PRIu64 ": %s",
				     quote_path(image), off + got,
				     n < 0 ? strerror(errno) : "the file shrank");
				goto out;
			}
			got += (size_t)n;
		}
		sha256_update(ih, buf, len);
		if (region) {
			size_t b;

			for (b = 0; b * CHUNKIDX_BLOCK < len; b++) {
				size_t bl = len - b * CHUNKIDX_BLOCK < CHUNKIDX_BLOCK
						    ? len - b * CHUNKIDX_BLOCK
						    : CHUNKIDX_BLOCK;

				sha256_update(ch, buf + b * CHUNKIDX_BLOCK, bl);
				sha256_final(ch, bh[b]);
			}
			sha256_update(rh, bh, b * SHA256_LEN);
			if (off + len == m->image_size || (off + len) % span == 0) {
				sha256_final(rh, region[off / span]);
			}
		}
		if (all_zero(buf, len))
			continue;
		if (m->n_chunks >= MANIFEST_MAX_CHUNKS) {
			fail(err, errlen, "'%s' is too large for one bundle", quote_path(image));
			goto out;
		}
		for (fo = 0; fo < len; fo += m->frame_size) {
			size_t fl = len - fo < m->frame_size ? len - fo : m->frame_size;
			size_t zn = ZSTD_compressCCtx(cctx, z, bound, buf + fo, fl,
						      BUNDLE_ZSTD_LEVEL);
			uint8_t fh[CHUNKIDX_HASH_LEN];

			if (ZSTD_isError(zn)) {
				fail(err, errlen, "cannot compress '%s': %s", quote_path(image),
				     ZSTD_getErrorName(zn));
				goto out;
			}
			if (write_all(pfd, z, zn) < 0) {
				fail(err, errlen, "cannot write the payload: %s", strerror(errno));
				goto out;
			}
			sha256_update(ph, z, zn);
			if (region)
				chunkidx_hash_blocks((const uint8_t(*)[SHA256_LEN])bh +
							     fo / CHUNKIDX_BLOCK,
						     (fl + CHUNKIDX_BLOCK - 1) / CHUNKIDX_BLOCK, fh);
			else
				chunkidx_hash(buf + fo, fl, fh);
			chunkidx_add(&x, (uint32_t)zn, fh);
			cstored += zn;
		}
		GROW(m->chunks, alloc, m->n_chunks + 1);
		c = &m->chunks[m->n_chunks++];
		c->offset = off;
		c->size = len;
		c->stored_offset = stored;
		c->stored_size = cstored;
		sha256_update(ch, buf, len);
		sha256_final(ch, c->sha256);
		stored += cstored;
	}
	sha256_final(ih, m->image_sha256);
	sha256_final(ph, m->payload_sha256);
	m->payload_size = stored;
	if (region) {
		if (chunkidx_encode_pages(m, &x, (const uint8_t(*)[SHA256_LEN])region, index, err,
					  errlen) < 0)
			goto out;
	} else if (m->format >= 2) {
		if (chunkidx_encode(&x, &xs, err, errlen) < 0)
			goto out;
		if (write_all(pfd, xs.buf, xs.len) < 0) {
			fail(err, errlen, "cannot write the chunk index: %s", strerror(errno));
			goto out;
		}
		m->has_chunk_index = true;
		m->index_size = xs.len;
		sha256_update(ch, xs.buf, xs.len);
		sha256_final(ch, m->chunk_index_sha256);
	}
	r = 0;
out:
	ZSTD_freeCCtx(cctx);
	sha256_free(ih);
	sha256_free(ph);
	sha256_free(ch);
	strbuf_release(&xs);
	sha256_free(rh);
	free(bh);
	free(region);
	free(x.stored);
	free(x.hash);
	free(buf);
	free(z);
	return r;
}

/*
 * The manifest names the payload's offset, which follows the manifest and
 * the signature, whose lengths depend on it (and an ECDSA signature's DER
 * length varies by a byte or two): sign until the offset written is the
 * offset that results.
 */
static int sign_manifest(struct bundle_manifest *m, const char *key, const char *cert,
			 struct strbuf *ret_signed, uint8_t **ret_sig, size_t *ret_siglen,
			 char *err, size_t errlen)
{
	size_t guess_sig = 1024;
	int tries;

	for (tries = 0; tries < 64; tries++) {
		struct strbuf sb = STRBUF_INIT;
		uint8_t hdr[BUNDLE_HEADER_SIZE] = {0}, *sig = NULL;
		size_t siglen = 0, mlen;

		strbuf_add(&sb, hdr, sizeof(hdr)); /* filled in below */
		m->payload_offset = 0;
		manifest_write(m, &sb);
		mlen = sb.len - sizeof(hdr);
		/* Digits of the offset itself: grow until the length is stable. */
		for (;;) {
			uint64_t off = sizeof(hdr) + mlen + guess_sig +
				       (manifest_index_first(m) ? m->index_size : 0);
			strbuf_reset(&sb);
			strbuf_add(&sb, hdr, sizeof(hdr));
			m->payload_offset = off;
			manifest_write(m, &sb);
			if (sb.len - sizeof(hdr) == mlen)
				break;
			mlen = sb.len - sizeof(hdr);
		}
		if (mlen > BUNDLE_MAX_MANIFEST) {
			strbuf_release(&sb);
			return fail(err, errlen,
				    "the manifest is %zu bytes, more than the %u a bundle "
				    "may have: the image is too large",
				    mlen, BUNDLE_MAX_MANIFEST);
		}
		memcpy(sb.buf, BUNDLE_MAGIC, 8);
		put_be32((uint8_t *)sb.buf + 8, m->format);
		put_be32((uint8_t *)sb.buf + 12, (uint32_t)mlen);
		put_be32((uint8_t *)sb.buf + 16, (uint32_t)guess_sig);
		if (sig_sign_detached(sb.buf, sb.len, key, cert, &sig, &siglen, err, errlen) < 0) {
			strbuf_release(&sb);
			return -1;
		}
		if (siglen == guess_sig) {
			*ret_signed = sb;
			*ret_sig = sig;
			*ret_siglen = siglen;
			return 0;
		}
		if (siglen > BUNDLE_MAX_SIGNATURE) {
			free(sig);
			strbuf_release(&sb);
			return fail(err, errlen,
				    "the signature is %zu bytes, more than the %u a "
				    "bundle may have; use a key made by imgforge keygen",
				    siglen, BUNDLE_MAX_SIGNATURE);
		}
		guess_sig = siglen;
		free(sig);
		strbuf_release(&sb);
	}
	return fail(err, errlen,
		    "cannot sign the manifest: the signature's length does not settle");
}

int bundle_create(const char *image_path, const char *out_path, const char *key_pem,
		  const char *cert_pem, const char *compatible, const char *version,
		  const char *build_id, int64_t created, char *err, size_t errlen)
{
	return bundle_create_format(image_path, out_path, key_pem, cert_pem, compatible, version,
				    build_id, created, BUNDLE_FORMAT, 0, err, errlen);
}

int bundle_create_format(const char *image_path, const char *out_path, const char *key_pem,
			 const char *cert_pem, const char *compatible, const char *version,
			 const char *build_id, int64_t created, unsigned format,
			 uint64_t frame_size, char *err, size_t errlen)
{
	return bundle_create_patch(image_path, out_path, key_pem, cert_pem, compatible, version,
				   build_id, created, format, frame_size, NULL, NULL, err, errlen);
}

int bundle_create_patch(const char *image_path, const char *out_path, const char *key_pem,
			const char *cert_pem, const char *compatible, const char *version,
			const char *build_id, int64_t created, unsigned format, uint64_t frame_size,
			const char *patch_from, int *ret_patched, char *err, size_t errlen)
{
	_cleanup_close_ int in = -1, pfd = -1, out = -1, xfd = -1;
	_cleanup_free_ char *dir = NULL, *tmp = NULL;
	_cleanup_free_ uint8_t *sig = NULL;
	struct strbuf head = STRBUF_INIT, index = STRBUF_INIT;
	struct bundle_manifest m = {0};
	uint8_t magic[2];
	size_t siglen = 0;
	struct stat st;
	int r = -1;

	if (format < BUNDLE_FORMAT_MIN || format > BUNDLE_FORMAT)
		return fail(err, errlen, "bundle format %u is not one of %d to %d", format,
			    BUNDLE_FORMAT_MIN, BUNDLE_FORMAT);
	if (patch_from && format < 3)
		return fail(err, errlen,
			    "a patch from an earlier image needs format 4 (format 3 and the "
			    "patch); drop --format or the earlier image");
	if (frame_size && format < 2)
		return fail(err, errlen,
			    "a bundle of format 1 has one frame per chunk; give a frame size "
			    "with format 2 or 3 only");
	if (frame_size && !bundle_frame_size_valid(frame_size))
		return fail(err, errlen,
			    "frame size %" PRIu64 " is not a power of two from %u KiB to %u KiB",
			    frame_size, BUNDLE_FRAME_SIZE_MIN >> 10, BUNDLE_FRAME_SIZE_MAX >> 10);
	if (!compatible || !manifest_name_valid(compatible))
		return fail(err, errlen,
			    "invalid compatible name '%s': give 1 to %d characters of "
			    "A-Z a-z 0-9 . _ + ~ -",
			    compatible ? quote_path(compatible) : "", MANIFEST_MAX_STRING);
	if (!version || !manifest_name_valid(version))
		return fail(err, errlen,
			    "invalid version '%s': give 1 to %d characters of "
			    "A-Z a-z 0-9 . _ + ~ -",
			    version ? quote_path(version) : "", MANIFEST_MAX_STRING);
	if (build_id && *build_id && !manifest_name_valid(build_id))
		return fail(err, errlen, "invalid build id '%s'", quote_path(build_id));
	in = open(image_path, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0)
		return fail(err, errlen, "cannot open '%s': %s", quote_path(image_path),
			    strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size < 2048)
		return fail(err, errlen,
			    "'%s' is not an ext4 image file; give the build's root.ext4",
			    quote_path(image_path));
	/* The ext4 superblock's magic (0xEF53) at byte 1024 + 56: a disk image or a tarball is not
	 * one. */
	if (pread(in, magic, 2, 1024 + 56) != 2 || magic[0] != 0x53 || magic[1] != 0xef)
		return fail(err, errlen,
			    "'%s' is not an ext4 image (no superblock magic at byte "
			    "1080); give the build's root.ext4, not the disk image",
			    quote_path(image_path));
	m.format = format;
	m.compatible = (char *)compatible;
	m.version = (char *)version;
	m.build_id = (char *)(build_id ? build_id : "");
	m.created = created;
	m.image_size = (uint64_t)st.st_size;
	m.chunk_size = BUNDLE_CHUNK_SIZE;
	m.frame_size = format < 2 ? BUNDLE_CHUNK_SIZE : frame_size ? frame_size : BUNDLE_FRAME_SIZE;
	m.page_chunks = format >= 3 ? CHUNKIDX_PAGE_CHUNKS : 0;
	dir = path_dirname(out_path);
	pfd = tmpfile_in(dir);
	if (pfd < 0) {
		fail(err, errlen, "cannot create a temporary file in '%s': %s", quote_path(dir),
		     strerror(-pfd));
		goto out;
	}
	if (make_payload(in, image_path, pfd, &m, &index, err, errlen) < 0)
		goto out;
	if (ret_patched)
		*ret_patched = 0;
	if (patch_from) {
		int pr;

		xfd = tmpfile_in(dir);
		if (xfd < 0) {
			fail(err, errlen, "cannot create a temporary file in '%s': %s",
			     quote_path(dir), strerror(-xfd));
			goto out;
		}
		pr = patch_create(patch_from, image_path, m.chunk_size, xfd, &m.patch_from_size,
				  m.patch_from_sha256, &m.patch_size, m.patch_sha256, err, errlen);
		if (pr < 0)
			goto out;
		if (pr == 0) {
			m.format = 4;
			m.has_patch = true;
		}
		if (ret_patched)
			*ret_patched = pr == 0 ? 1 : -1;
	}
	if (sign_manifest(&m, key_pem, cert_pem, &head, &sig, &siglen, err, errlen) < 0)
		goto out;
	tmp = xasprintf("%s.tmp", out_path);
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (out < 0) {
		fail(err, errlen, "cannot create '%s': %s", quote_path(tmp), strerror(errno));
		goto out;
	}
	/* Format 3: the index before the payload; format 2: after it, from pfd. */
	if (write_all(out, head.buf, head.len) < 0 || write_all(out, sig, siglen) < 0 ||
	    write_all(out, index.buf, index.len) < 0 ||
	    copy_range(pfd, 0, out, head.len + siglen + index.len,
		       m.payload_size + (manifest_index_first(&m) ? 0 : m.index_size)) < 0 ||
	    (m.has_patch && copy_range(xfd, 0, out, m.payload_offset + m.payload_size,
				       m.patch_size) < 0) ||
	    fsync(out) < 0) {
		fail(err, errlen, "cannot write '%s': %s", quote_path(tmp), strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, out_path) < 0) {
		fail(err, errlen, "cannot rename '%s' to '%s': %s", quote_path(tmp),
		     quote_path(out_path), strerror(errno));
		unlink(tmp);
		goto out;
	}
	if (fsync_parent(out_path) < 0) {
		fail(err, errlen, "cannot sync the directory of '%s': %s", quote_path(out_path),
		     strerror(errno));
		goto out;
	}
	r = 0;
out:
	free(m.chunks);
	strbuf_release(&head);
	strbuf_release(&index);
	return r;
}
