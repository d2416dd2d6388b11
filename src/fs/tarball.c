/* SPDX-License-Identifier: MIT */
/*
 * Archive reading on libarchive. See tarball.h.
 */
#define _GNU_SOURCE
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fs/tarball.h"

#define TARBALL_BLOCK (1024 * 1024)

/*
 * One byte stream as a format reader sees it: the archive file, or a
 * .deb's data.tar member, with its compression undone. gzip is undone here
 * with zlib because libarchive does not check the gzip CRC; bzip2, xz,
 * lzma and zstd by a libarchive reader in "raw" format (their libraries
 * check their own checksums) whose output feeds the format reader.
 * Uncompressed files are read by the format reader directly, so that it
 * can seek over file data.
 */
struct stream {
	struct tarball *t;
	int fd;                  /* the source: this file (not ours), or */
	struct archive *member;  /* ... the current member of this archive */
	const char *codec;       /* "gzip", "bzip2", ...; NULL if not compressed */
	const struct magic *magic; /* the compressor the first bytes look like, if any */
	const unsigned char *in; /* source bytes read but not consumed yet */
	size_t in_len;
	unsigned char *buf;      /* read buffer of an fd source; gzip output */
	unsigned char *zout;
	z_stream z;
	bool z_init, z_member;   /* inflate set up; inside a gzip member */
	bool src_eof;
	struct archive *dec;     /* libarchive decompressor, or NULL */
	struct archive *fmt;     /* tar (or ar) reader on the decoded bytes */
	bool failed;             /* reading or decoding failed: msg says why */
	struct strbuf msg;
};

struct magic;

struct tarball {
	char *path;
	int fd;                  /* ours, closed by tarball_free() */
	struct stream outer;     /* the file as opened */
	struct stream inner;     /* the data.tar of a .deb, if inner.fmt */
	struct stream *s;        /* the one entries come from */
	struct archive *a;       /* s->fmt */
	char *member;            /* name of the .deb member read, for messages */
	const char *entry_path;  /* current entry, for messages */
	struct strbuf prev_path; /* the entry before, for errors between entries */
	uint64_t next_index;
	struct tarball_xattr *xattrs;
	size_t n_xattrs, alloc_xattrs;
	struct strbuf acl[2]; /* system.posix_acl_{access,default} values */
};

#define ACCEPTED                                                                                   \
	"imgforge reads tar archives (plain, or compressed with gzip, bzip2, xz, lzma or zstd) "  \
	"and Debian packages"
#define NOT_AN_ARCHIVE                                                                             \
	"not a tar archive (plain, or compressed with gzip, bzip2, xz, lzma or zstd) or a Debian " \
	"package"

/*
 * libarchive converts names from UTF-8 (pax) to the locale's character set
 * and warns when it cannot: in the C locale, for every non-ASCII name.
 * Warnings are errors here, so its calls run in C.UTF-8, where names pass
 * unchanged (the thread's locale is restored on return).
 */
static locale_t utf8_locale(void)
{
	static locale_t loc;
	static bool tried;

	if (!tried) {
		tried = true;
		loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	}
	return loc;
}

static locale_t enter_utf8(void)
{
	locale_t loc = utf8_locale();

	return loc ? uselocale(loc) : (locale_t)0;
}

static void leave_utf8(locale_t old)
{
	if (old)
		uselocale(old);
}

static int archive_to_errno(struct archive *a)
{
	int e = archive_errno(a);

	/* libarchive uses -1 and EILSEQ-like codes for format errors. */
	if (e <= 0 || e == EILSEQ)
		return -EBADMSG;
	return -e;
}

static void add_where(struct tarball *t, struct strbuf *err)
{
	if (t->member)
		strbuf_addf(err, " (member '%s')", quote_path(t->member));
	if (t->entry_path)
		strbuf_addf(err, " at entry '%s'", quote_path(t->entry_path));
	else if (t->prev_path.len)
		strbuf_addf(err, " after entry '%s'", quote_path(t->prev_path.buf));
}

static int stream_drain(struct stream *s);

/*
 * "cannot read 'x' at entry 'y': why", why from the stream or from
 * libarchive. Corrupt compressed data often shows first as a damaged tar
 * header (bzip2 checks a block's CRC only after handing out its data): the
 * rest of the stream is read to name the cause.
 */
static int fail(struct tarball *t, struct archive *a, struct strbuf *err)
{
	const char *msg;

	if (!t->s->failed)
		stream_drain(t->s);
	msg = archive_error_string(a);

	strbuf_addf(err, "cannot read '%s'", quote_path(t->path));
	add_where(t, err);
	strbuf_addstr(err, ": ");
	if (t->s->failed) {
		strbuf_add(err, t->s->msg.buf, t->s->msg.len);
		return -EBADMSG;
	}
	strbuf_add_quoted(err, msg ? msg : "unknown error");
	return archive_to_errno(a);
}

static void stream_fail(struct stream *s, const char *fmt, ...) _printf_(2, 3);
static void stream_fail(struct stream *s, const char *fmt, ...)
{
	va_list ap;

	if (s->failed)
		return;
	s->failed = true;
	va_start(ap, fmt);
	strbuf_vaddf(&s->msg, fmt, ap);
	va_end(ap);
}

/* Next bytes of the source: > 0, 0 at its end, -1 on error (s->msg says why). */
static ssize_t source_read(struct stream *s, const void **ret)
{
	ssize_t n;

	if (s->in_len) {
		*ret = s->in;
		n = (ssize_t)s->in_len;
		s->in_len = 0;
		return n;
	}
	if (s->src_eof)
		return 0;
	if (s->member) {
		la_int64_t off;
		size_t len;
		int r = archive_read_data_block(s->member, ret, &len, &off);

		if (r == ARCHIVE_EOF) {
			s->src_eof = true;
			return 0;
		}
		if (r != ARCHIVE_OK) {
			const char *m = archive_error_string(s->member);

			stream_fail(s, "the package is damaged: ");
			strbuf_add_quoted(&s->msg, m ? m : "unknown error");
			return -1;
		}
		return (ssize_t)len;
	}
	do
		n = read(s->fd, s->buf, TARBALL_BLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		stream_fail(s, "%s", strerror(errno));
		return -1;
	}
	if (n == 0)
		s->src_eof = true;
	*ret = s->buf;
	return n;
}

/*
 * gzip with zlib, which checks every member's CRC and length. Members may
 * follow each other (as gzip writes them); zeros after the last one are
 * padding, as gzip and GNU tar accept.
 */
static ssize_t gzip_read(struct stream *s, const void **ret)
{
	for (;;) {
		size_t produced;
		int r;

		if (!s->z.avail_in) {
			const void *p;
			ssize_t n = source_read(s, &p);

			if (n < 0)
				return -1;
			if (n == 0) {
				if (!s->z_member)
					return 0;
				stream_fail(s, "the gzip data is truncated");
				return -1;
			}
			s->z.next_in = (unsigned char *)p;
			s->z.avail_in = (uInt)n;
		}
		if (!s->z_member) {
			while (s->z.avail_in && !*s->z.next_in)
				s->z.next_in++, s->z.avail_in--;
			if (!s->z.avail_in)
				continue;
			if (inflateReset(&s->z) != Z_OK) {
				stream_fail(s, "the gzip data is corrupt");
				return -1;
			}
			s->z_member = true;
		}
		s->z.next_out = s->zout;
		s->z.avail_out = TARBALL_BLOCK;
		r = inflate(&s->z, Z_NO_FLUSH);
		produced = TARBALL_BLOCK - s->z.avail_out;
		if (r == Z_STREAM_END)
			s->z_member = false;
		else if (r != Z_OK && !(r == Z_BUF_ERROR && !s->z.avail_in)) {
			stream_fail(s, "the gzip data is corrupt (%s)",
				    s->z.msg ? s->z.msg : "inflate failed");
			return -1;
		}
		if (produced) {
			*ret = s->zout;
			return (ssize_t)produced;
		}
	}
}

static ssize_t dec_next(struct stream *s, const void **ret)
{
	la_int64_t off;
	size_t len;
	int r = archive_read_data_block(s->dec, ret, &len, &off);

	if (r == ARCHIVE_EOF)
		return 0;
	if (r != ARCHIVE_OK) {
		const char *m = archive_error_string(s->dec);

		if (!s->failed) {
			stream_fail(s, "the %s data is corrupt: ", s->codec ? s->codec : "compressed");
			strbuf_add_quoted(&s->msg, m ? m : "unknown error");
		}
		return -1;
	}
	return (ssize_t)len;
}

/* Decoded bytes for the format reader. */
static ssize_t decoded_read(struct stream *s, const void **ret)
{
	if (s->dec)
		return dec_next(s, ret);
	if (s->z_init)
		return gzip_read(s, ret);
	return source_read(s, ret);
}

/* A read callback's result for libarchive: the stream's reason goes with a failure. */
static la_ssize_t cb_result(struct archive *a, struct stream *s, ssize_t n)
{
	if (n < 0)
		archive_set_error(a, EBADMSG, "%s", s->msg.buf);
	return n;
}

/* The format reader reads decoded bytes; the decompressor reads the source. */
static la_ssize_t fmt_read_cb(struct archive *a, void *data, const void **buf)
{
	return cb_result(a, data, decoded_read(data, buf));
}

static la_ssize_t dec_read_cb(struct archive *a, void *data, const void **buf)
{
	return cb_result(a, data, source_read(data, buf));
}

/*
 * The decompressors libarchive may use: those built into it only. Where
 * libarchive would run an external program (it says so with ARCHIVE_WARN),
 * the filter is left out: an archive never makes imgforge run a program.
 */
static struct archive *new_decoder(void)
{
	static int (*const filters[])(struct archive *) = {
		archive_read_support_filter_bzip2, archive_read_support_filter_xz,
		archive_read_support_filter_lzma, archive_read_support_filter_zstd,
	};
	static unsigned builtin = ~0U;
	struct archive *a = archive_read_new();
	unsigned mask = 0;
	size_t i;

	if (!a)
		return NULL;
	for (i = 0; i < ARRAY_SIZE(filters); i++)
		if ((builtin & (1U << i)) && filters[i](a) == ARCHIVE_OK)
			mask |= 1U << i;
	if (mask != builtin) {
		builtin = mask;
		archive_read_free(a);
		return new_decoder();
	}
	archive_read_support_format_raw(a);
	return a;
}

static const char *filter_name(int code)
{
	switch (code) {
	case ARCHIVE_FILTER_BZIP2:
		return "bzip2";
	case ARCHIVE_FILTER_XZ:
		return "xz";
	case ARCHIVE_FILTER_LZMA:
		return "lzma";
	case ARCHIVE_FILTER_ZSTD:
		return "zstd";
	}
	return NULL;
}

/* Compressors recognised by their magic bytes, whether imgforge reads them or not. */
static const struct magic {
	const char *name;
	const char *bytes;
	size_t len;
	bool read;
} magics[] = {
	{ "gzip", "\x1f\x8b", 2, true },
	{ "bzip2", "BZh", 3, true },
	{ "xz", "\xfd" "7zXZ\0", 6, true },
	{ "zstd", "\x28\xb5\x2f\xfd", 4, true },
	{ "lz4", "\x04\x22\x4d\x18", 4, false },
	{ "lzop", "\x89LZO\0", 5, false },
	{ "lrzip", "LRZI", 4, false },
	{ "grzip", "GRZipII", 7, false },
	{ "lzip", "LZIP", 4, false },
	{ "compress (.Z)", "\x1f\x9d", 2, false },
};

static const struct magic *find_magic(const unsigned char *b, size_t n)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(magics); i++)
		if (n >= magics[i].len && !memcmp(b, magics[i].bytes, magics[i].len))
			return &magics[i];
	return NULL;
}

/*
 * What a file the format reader does not recognise (or finds empty) is: a
 * compressor's data whose header libarchive rejected or that imgforge does
 * not read, or no archive at all. The magic bytes are only looked at then,
 * so that a tar whose first name happens to start like one still reads.
 */
static int not_an_archive(struct tarball *t, struct stream *s, bool empty, struct strbuf *err)
{
	strbuf_addf(err, "cannot read '%s'", quote_path(t->path));
	add_where(t, err);
	if (s->magic && !s->magic->read)
		strbuf_addf(err, ": compressed with %s, which imgforge does not read; %s",
			    s->magic->name, ACCEPTED);
	else if (s->magic && !s->codec)
		strbuf_addf(err, ": the %s data is corrupt (its header is invalid)", s->magic->name);
	else
		strbuf_addf(err, ": %s%s", NOT_AN_ARCHIVE, empty ? ", or an empty one" : "");
	return -EBADMSG;
}

/*
 * Set up the decoding of s from its first bytes and open its format
 * reader: tar, and ar too for the outer file (a .deb).
 */
static int stream_open(struct stream *s, bool outer, struct strbuf *err)
{
	struct tarball *t = s->t;
	unsigned char head[8];
	const struct magic *m;
	size_t n_head = 0;
	int r;

	if (s->member) {
		const void *p;
		ssize_t n = source_read(s, &p);

		if (n < 0)
			goto failed;
		s->in = p;
		s->in_len = (size_t)n;
		n_head = s->in_len < sizeof(head) ? s->in_len : sizeof(head);
		memcpy(head, p, n_head);
	} else {
		ssize_t n = pread(s->fd, head, sizeof(head), 0);

		n_head = n > 0 ? (size_t)n : 0;
		s->buf = xmalloc(TARBALL_BLOCK);
	}
	m = s->magic = find_magic(head, n_head);
	if (m && !strcmp(m->name, "gzip")) {
		s->codec = "gzip";
		s->zout = xmalloc(TARBALL_BLOCK);
		if (inflateInit2(&s->z, 16 + MAX_WBITS) != Z_OK)
			return -ENOMEM;
		s->z_init = s->z_member = true;
	} else if (n_head) {
		struct archive_entry *e;

		s->dec = new_decoder();
		if (!s->dec)
			return -ENOMEM;
		if (archive_read_open(s->dec, s, NULL, dec_read_cb, NULL) != ARCHIVE_OK ||
		    archive_read_next_header(s->dec, &e) != ARCHIVE_OK) {
			const char *msg = archive_error_string(s->dec);

			s->codec = filter_name(archive_filter_code(s->dec, 0));
			if (!s->codec)
				s->codec = m ? m->name : "compressed";
			stream_fail(s, "the %s data is corrupt: ", s->codec);
			strbuf_add_quoted(&s->msg, msg ? msg : "unknown error");
			goto failed;
		}
		s->codec = filter_name(archive_filter_code(s->dec, 0));
		if (!s->codec && !s->member && lseek(s->fd, 0, SEEK_SET) == 0) {
			archive_read_free(s->dec);
			s->dec = NULL;
			s->src_eof = false;
		}
	}

	s->fmt = archive_read_new();
	if (!s->fmt)
		return -ENOMEM;
	archive_read_support_format_tar(s->fmt);
	archive_read_support_format_gnutar(s->fmt);
	if (outer)
		archive_read_support_format_ar(s->fmt);
	if (!s->codec && !s->dec && !s->member)
		r = archive_read_open_fd(s->fmt, s->fd, TARBALL_BLOCK);
	else
		r = archive_read_open(s->fmt, s, NULL, fmt_read_cb, NULL);
	if (r != ARCHIVE_OK) {
		if (!s->failed)
			stream_drain(s);
		return s->failed ? fail(t, s->fmt, err) : not_an_archive(t, s, false, err);
	}
	return 0;
failed:
	strbuf_addf(err, "cannot read '%s'", quote_path(t->path));
	add_where(t, err);
	strbuf_addf(err, ": %s", s->msg.buf);
	return -EBADMSG;
}

/*
 * Read a compressed stream to its end once the archive in it has ended, so
 * that the decompressor checks what follows (the gzip CRC and length, the
 * xz index and check, the zstd checksum, the bzip2 stream CRC).
 */
static int stream_drain(struct stream *s)
{
	const void *p;
	ssize_t n;

	if (!s->codec)
		return 0;
	while ((n = decoded_read(s, &p)) > 0)
		;
	return n < 0 ? -EBADMSG : 0;
}

static void stream_release(struct stream *s)
{
	if (s->fmt)
		archive_read_free(s->fmt);
	if (s->dec)
		archive_read_free(s->dec);
	if (s->z_init)
		inflateEnd(&s->z);
	free(s->buf);
	free(s->zout);
	strbuf_release(&s->msg);
}

/*
 * A .deb is an ar archive: "debian-binary", "control.tar.*", "data.tar.*".
 * The root filesystem contribution is data.tar.*, read through a second
 * stream fed from the first.
 */
static int open_deb(struct tarball *t, struct archive_entry *first, struct strbuf *err)
{
	struct archive_entry *e = first;
	int r;

	for (;;) {
		const char *name = archive_entry_pathname(e);

		if (name && str_startswith(name, "data.tar"))
			break;
		r = archive_read_next_header(t->outer.fmt, &e);
		if (r == ARCHIVE_EOF) {
			strbuf_addf(err, "cannot read '%s': an ar archive without a data.tar member "
				    "(not a Debian package?)", quote_path(t->path));
			return -EBADMSG;
		}
		if (r != ARCHIVE_OK)
			return fail(t, t->outer.fmt, err);
	}
	t->member = xstrdup(archive_entry_pathname(e));
	t->inner.t = t;
	t->inner.fd = -1;
	t->inner.member = t->outer.fmt;
	t->s = &t->inner;
	r = stream_open(&t->inner, false, err);
	if (r < 0)
		return r;
	t->a = t->inner.fmt;
	return 0;
}

int tarball_open(const char *path, int fd, struct tarball **ret, struct strbuf *err)
{
	struct tarball *t = xcalloc(1, sizeof(*t));
	locale_t old = enter_utf8();
	int r;

	t->path = xstrdup(path);
	if (fd >= 0) {
		t->fd = dup(fd);
		if (t->fd >= 0 && lseek(t->fd, 0, SEEK_SET) < 0) {
			close(t->fd);
			t->fd = -1;
		}
	} else {
		t->fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	if (t->fd < 0) {
		r = -errno;
		strbuf_addf(err, "cannot open '%s': %s", quote_path(path), strerror(-r));
		goto out;
	}
	t->outer.t = t;
	t->outer.fd = t->fd;
	t->s = &t->outer;
	r = stream_open(&t->outer, true, err);
	if (r < 0)
		goto out;
	t->a = t->outer.fmt;
	*ret = t;
	leave_utf8(old);
	return 0;
out:
	tarball_free(t);
	leave_utf8(old);
	return r;
}

static enum tarball_type entry_type(struct archive_entry *e, bool *ok)
{
	*ok = true;
	if (archive_entry_hardlink(e))
		return TARBALL_HARDLINK;
	switch (archive_entry_filetype(e)) {
	case AE_IFREG:
		return TARBALL_REG;
	case AE_IFDIR:
		return TARBALL_DIR;
	case AE_IFLNK:
		return TARBALL_SYMLINK;
	case AE_IFCHR:
		return TARBALL_CHR;
	case AE_IFBLK:
		return TARBALL_BLK;
	case AE_IFIFO:
		return TARBALL_FIFO;
	case AE_IFSOCK:
		return TARBALL_SOCK;
	}
	*ok = false;
	return TARBALL_REG;
}

/* Prefer the UTF-8 form (pax stores names as UTF-8), else the raw bytes. */
static const char *entry_path(struct archive_entry *e)
{
	const char *p = archive_entry_pathname_utf8(e);

	return p ? p : archive_entry_pathname(e);
}

static const char *entry_linkname(struct archive_entry *e)
{
	const char *p;

	if (archive_entry_hardlink(e)) {
		p = archive_entry_hardlink_utf8(e);
		return p ? p : archive_entry_hardlink(e);
	}
	p = archive_entry_symlink_utf8(e);
	return p ? p : archive_entry_symlink(e);
}

/* An ACL entry in the Linux xattr format (struct posix_acl_xattr_entry), for sorting. */
struct acl_ent {
	uint16_t tag, perm;
	uint32_t id;
};

static int acl_ent_cmp(const void *a, const void *b)
{
	const struct acl_ent *x = a, *y = b;

	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * POSIX.1e ACLs of an entry (pax SCHILY.acl.*, libarchive's ACL interface)
 * as the value of system.posix_acl_access or _default in the Linux xattr
 * format: version 2, then (tag, perm, id) sorted by tag and id. libext2fs
 * turns that into ext4's on-disk form. Returns false without ACLs of type.
 */
static bool acl_xattr(struct archive_entry *e, int type, struct strbuf *out)
{
	struct acl_ent *v;
	int n = archive_entry_acl_reset(e, type), i = 0, atype, perm, tag, qual;
	const char *name;

	strbuf_reset(out);
	if (n <= 0)
		return false;
	v = xcalloc((size_t)n, sizeof(*v));
	while (i < n && archive_entry_acl_next(e, type, &atype, &perm, &tag, &qual, &name) ==
				ARCHIVE_OK) {
		static const struct {
			int la;
			uint16_t lx;
		} tags[] = {
			{ ARCHIVE_ENTRY_ACL_USER_OBJ, 0x01 }, { ARCHIVE_ENTRY_ACL_USER, 0x02 },
			{ ARCHIVE_ENTRY_ACL_GROUP_OBJ, 0x04 }, { ARCHIVE_ENTRY_ACL_GROUP, 0x08 },
			{ ARCHIVE_ENTRY_ACL_MASK, 0x10 },     { ARCHIVE_ENTRY_ACL_OTHER, 0x20 },
		};
		size_t k;

		for (k = 0; k < ARRAY_SIZE(tags); k++)
			if (tags[k].la == tag)
				break;
		if (k == ARRAY_SIZE(tags))
			continue;
		v[i].tag = tags[k].lx;
		v[i].perm = (uint16_t)(perm & (ARCHIVE_ENTRY_ACL_READ | ARCHIVE_ENTRY_ACL_WRITE |
					       ARCHIVE_ENTRY_ACL_EXECUTE));
		v[i].id = (tag == ARCHIVE_ENTRY_ACL_USER || tag == ARCHIVE_ENTRY_ACL_GROUP)
				  ? (uint32_t)qual
				  : 0xffffffffU;
		i++;
	}
	qsort(v, (size_t)i, sizeof(*v), acl_ent_cmp);
	strbuf_add_le32(out, 2);
	for (n = 0; n < i; n++) {
		strbuf_add_le16(out, v[n].tag);
		strbuf_add_le16(out, v[n].perm);
		strbuf_add_le32(out, v[n].id);
	}
	free(v);
	return i > 0;
}

static int next_header(struct tarball *t, struct tarball_entry *ret, struct strbuf *err)
{
	struct archive_entry *e;
	const char *name;
	const void *value;
	size_t size;
	bool ok;
	int r;

	if (t->entry_path) {
		strbuf_reset(&t->prev_path);
		strbuf_addstr(&t->prev_path, t->entry_path);
	}
	t->entry_path = NULL;
	/*
	 * Anything but ARCHIVE_OK is an error. ARCHIVE_RETRY means a damaged
	 * header that libarchive would skip; ARCHIVE_WARN a header it read only
	 * in part (an oversized or malformed pax record ignored, so that the
	 * name of the ustar header wins where GNU tar takes the pax one).
	 */
	r = archive_read_next_header(t->a, &e);
	if (r == ARCHIVE_EOF) {
		if (t->s == &t->outer && t->next_index == 0) {
			/* A file of zeros reads as an empty tar: no archive for an image. */
			if (stream_drain(t->s) < 0)
				return fail(t, t->a, err);
			return not_an_archive(t, t->s, true, err);
		}
		if (stream_drain(t->s) < 0)
			return fail(t, t->a, err);
		return 0;
	}
	if (r != ARCHIVE_OK) {
		if (t->next_index == 0 && !t->s->failed && archive_format(t->a) == 0) {
			if (stream_drain(t->s) < 0)
				return fail(t, t->a, err);
			return not_an_archive(t, t->s, false, err);
		}
		return fail(t, t->a, err);
	}
	if (t->s == &t->outer && t->next_index == 0 &&
	    (archive_format(t->a) & ARCHIVE_FORMAT_BASE_MASK) == ARCHIVE_FORMAT_AR) {
		r = open_deb(t, e, err);
		if (r < 0)
			return r;
		return next_header(t, ret, err);
	}

	memset(ret, 0, sizeof(*ret));
	ret->path = entry_path(e);
	if (!ret->path) {
		strbuf_addf(err, "cannot read '%s': entry %llu has no name", quote_path(t->path),
			    (unsigned long long)t->next_index);
		return -EBADMSG;
	}
	t->entry_path = ret->path;
	ret->type = entry_type(e, &ok);
	if (!ok) {
		strbuf_addf(err, "cannot read '%s': entry '%s' has an unknown file type (mode %o)",
			    quote_path(t->path), quote_path(ret->path), (unsigned)archive_entry_mode(e));
		return -EBADMSG;
	}
	ret->linkname = entry_linkname(e);
	if ((ret->type == TARBALL_SYMLINK || ret->type == TARBALL_HARDLINK) &&
	    (!ret->linkname || !ret->linkname[0])) {
		strbuf_addf(err, "cannot read '%s': link '%s' has no target", quote_path(t->path),
			    quote_path(ret->path));
		return -EBADMSG;
	}
	ret->mode = archive_entry_perm(e) & 07777;
	ret->uid = (int64_t)archive_entry_uid(e);
	ret->gid = (int64_t)archive_entry_gid(e);
	ret->mtime = archive_entry_mtime_is_set(e) ? (int64_t)archive_entry_mtime(e) : 0;
	ret->rdev_major = (uint64_t)archive_entry_rdevmajor(e);
	ret->rdev_minor = (uint64_t)archive_entry_rdevminor(e);
	ret->size = archive_entry_size(e) > 0 ? (uint64_t)archive_entry_size(e) : 0;
	if (ret->type == TARBALL_REG && archive_entry_sparse_reset(e) > 0) {
		la_int64_t off, len, end = 0;

		while (archive_entry_sparse_next(e, &off, &len) == ARCHIVE_OK) {
			if (off < end || len < 0 || (uint64_t)off + (uint64_t)len > ret->size) {
				strbuf_addf(err, "cannot read '%s': entry '%s' has a sparse map beyond "
					    "its size; the archive is corrupt", quote_path(t->path),
					    quote_path(ret->path));
				return -EBADMSG;
			}
			if (len > 0) {
				ret->data_runs++;
				ret->data_bytes += (uint64_t)len;
			}
			end = off + len;
		}
	} else if (ret->type == TARBALL_REG) {
		ret->data_bytes = ret->size;
		ret->data_runs = ret->size ? 1 : 0;
	}

	t->n_xattrs = 0;
	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		GROW(t->xattrs, t->alloc_xattrs, t->n_xattrs + 1);
		t->xattrs[t->n_xattrs++] = (struct tarball_xattr){ name, value, size };
	}
	if (acl_xattr(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, &t->acl[0])) {
		GROW(t->xattrs, t->alloc_xattrs, t->n_xattrs + 1);
		t->xattrs[t->n_xattrs++] = (struct tarball_xattr){ "system.posix_acl_access",
								   t->acl[0].buf, t->acl[0].len };
	}
	if (acl_xattr(e, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT, &t->acl[1])) {
		GROW(t->xattrs, t->alloc_xattrs, t->n_xattrs + 1);
		t->xattrs[t->n_xattrs++] = (struct tarball_xattr){ "system.posix_acl_default",
								   t->acl[1].buf, t->acl[1].len };
	}
	ret->xattrs = t->xattrs;
	ret->n_xattrs = t->n_xattrs;
	ret->index = t->next_index++;
	return 1;
}

int tarball_next(struct tarball *t, struct tarball_entry *ret, struct strbuf *err)
{
	locale_t old = enter_utf8();
	int r = next_header(t, ret, err);

	leave_utf8(old);
	return r;
}

int tarball_read(struct tarball *t, const void **ret_buf, size_t *ret_len, uint64_t *ret_offset,
		 struct strbuf *err)
{
	locale_t old = enter_utf8();
	la_int64_t off;
	size_t len;
	int r;

	r = archive_read_data_block(t->a, ret_buf, &len, &off);
	if (r == ARCHIVE_EOF) {
		r = 0;
		goto out;
	}
	if (r != ARCHIVE_OK) {
		r = fail(t, t->a, err);
		goto out;
	}
	if (off < 0) {
		strbuf_addf(err, "cannot read '%s': entry '%s' has data at a negative offset",
			    quote_path(t->path), quote_path(t->entry_path ? t->entry_path : "?"));
		r = -EBADMSG;
		goto out;
	}
	*ret_len = len;
	*ret_offset = (uint64_t)off;
	r = 1;
out:
	leave_utf8(old);
	return r;
}

void tarball_free(struct tarball *t)
{
	locale_t old;

	if (!t)
		return;
	old = enter_utf8();
	stream_release(&t->inner);
	stream_release(&t->outer);
	leave_utf8(old);
	if (t->fd >= 0)
		close(t->fd);
	free(t->xattrs);
	strbuf_release(&t->prev_path);
	strbuf_release(&t->acl[0]);
	strbuf_release(&t->acl[1]);
	free(t->member);
	free(t->path);
	free(t);
}

int tarball_decompress(const char *what, const void *buf, size_t len, size_t max, char **ret_buf,
		       size_t *ret_len, struct strbuf *err)
{
	struct archive *a = new_decoder();
	struct archive_entry *e;
	struct strbuf out = STRBUF_INIT;
	char chunk[65536];
	la_ssize_t n;
	int r = 0;

	if (!a)
		return -ENOMEM;
	/* libarchive's gzip reader (no CRC check) is enough here: an index only feeds a report. */
	(void)archive_read_support_filter_gzip(a);
	if (archive_read_open_memory(a, buf, len) != ARCHIVE_OK ||
	    archive_read_next_header(a, &e) != ARCHIVE_OK) {
		strbuf_addf(err, "cannot decompress '%s': %s", what, archive_error_string(a));
		r = -EBADMSG;
		goto out;
	}
	while ((n = archive_read_data(a, chunk, sizeof(chunk))) > 0) {
		if (out.len + (size_t)n > max) {
			strbuf_addf(err, "cannot decompress '%s': larger than %zu bytes", what, max);
			r = -EFBIG;
			goto out;
		}
		strbuf_add(&out, chunk, (size_t)n);
	}
	if (n < 0) {
		strbuf_addf(err, "cannot decompress '%s': %s", what, archive_error_string(a));
		r = -EBADMSG;
		goto out;
	}
	*ret_len = out.len;
	*ret_buf = strbuf_detach(&out);
out:
	strbuf_release(&out);
	archive_read_free(a);
	return r;
}
