/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_TARBALL_H
#define IMGFORGE_TARBALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/*
 * Reading archives: tar in every dialect libarchive knows (ustar, pax, GNU,
 * with sparse files and xattrs), uncompressed or compressed with gzip,
 * bzip2, xz, lzma or zstd, and Debian packages (.deb), whose data.tar
 * member is read transparently. Nothing else: no other archive format, and
 * no decompressor that would run an external program.
 *
 * Strict where libarchive is lenient: a header libarchive only warns about
 * (an oversized or malformed pax record it ignored) is an error, a
 * compressed stream is read to its end so that its checksums are checked
 * (the gzip CRC with zlib, which libarchive does not check), and a file
 * with no entries is no archive.
 *
 * This is the only module that includes <archive.h>; it also uses zlib's
 * inflate for gzip. It is called "tarball" and not "archive" because a
 * src/archive.h would shadow libarchive's own <archive.h> under -Isrc.
 *
 * Errors: functions return -errno and append one line to err naming the
 * archive (and the entry when there is one); names are quoted with
 * quote_path().
 */

enum tarball_type {
	TARBALL_REG,
	TARBALL_DIR,
	TARBALL_SYMLINK,
	TARBALL_HARDLINK,
	TARBALL_CHR,
	TARBALL_BLK,
	TARBALL_FIFO,
	TARBALL_SOCK,
};

struct tarball_xattr {
	const char *name;
	const void *value;
	size_t size;
};

/* One entry. Every pointer is owned by the reader and valid until the next call. */
struct tarball_entry {
	enum tarball_type type;
	const char *path;     /* as stored: not normalised */
	const char *linkname; /* symlink target or hard link target, else NULL */
	uint32_t mode;        /* permission bits incl. setuid/setgid/sticky */
	int64_t uid, gid;     /* as stored: the caller checks the range */
	int64_t mtime;
	uint64_t rdev_major, rdev_minor;
	uint64_t size;        /* logical size of a regular file */
	uint64_t data_bytes;  /* bytes stored: size, or the sum of a sparse file's runs */
	uint32_t data_runs;   /* contiguous runs of data: 1, or a sparse file's map */
	size_t n_xattrs;
	const struct tarball_xattr *xattrs;
	uint64_t index;       /* ordinal of the entry in the archive, from 0 */
};

struct tarball;

/*
 * Open the archive at path for reading. If fd >= 0 the archive is read
 * from that descriptor (from its start) instead, and path names it in messages.
 * The caller owns *ret and frees it with tarball_free().
 */
int tarball_open(const char *path, int fd, struct tarball **ret, struct strbuf *err);
/* Next entry: 1 and *ret filled, 0 at the end, -errno on error. */
int tarball_next(struct tarball *t, struct tarball_entry *ret, struct strbuf *err);
/*
 * Next piece of the current entry's data: 1 with the buffer, its length and
 * its offset within the file (holes of sparse files are skipped), 0 at its end.
 */
int tarball_read(struct tarball *t, const void **ret_buf, size_t *ret_len, uint64_t *ret_offset,
		 struct strbuf *err);
void tarball_free(struct tarball *t);

/*
 * Decompress one compressed file held in memory (gzip, xz, bzip2, zstd, or
 * none) with libarchive's raw format: an archive's Packages index. At most
 * max bytes of output. Returns 0 with *ret_buf (malloc'd, NUL-terminated,
 * the caller's) and *ret_len, or -errno with one line in err naming what.
 */
int tarball_decompress(const char *what, const void *buf, size_t len, size_t max, char **ret_buf,
		       size_t *ret_len, struct strbuf *err);

#endif
