/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_FILE_H
#define IMGFORGE_FILE_H

#include <stddef.h>
#include <stdint.h>

/*
 * Files, descriptors and paths. Functions return 0 (or a count) on success
 * and -errno on failure.
 */

/*
 * Read a whole file into a NUL-terminated malloc'd buffer. Files larger than
 * max bytes give -EFBIG (nothing is allocated). *ret_buf is the caller's.
 */
int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);
/* The same from an open file descriptor, read to its end (not closed). */
int read_fd(int fd, size_t max, char **ret_buf, size_t *ret_len);
/* Write data to path atomically (temp file in the same directory, fsync, rename). */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* write() / pwrite() all of buf, through short writes and EINTR. */
int write_all(int fd, const void *buf, size_t len);
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/*
 * Copy len bytes from in at in_off to out at out_off: copy_file_range()
 * where the kernel can (same filesystem), read/write where it cannot.
 */
int copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len);
/*
 * The first run of data (not a hole) of fd at or after pos and before size,
 * by SEEK_DATA/SEEK_HOLE: returns 1 with *ret_off and *ret_len set, 0 when
 * only holes are left, or -errno.
 */
int next_data_extent(int fd, uint64_t pos, uint64_t size, uint64_t *ret_off, uint64_t *ret_len);
/*
 * Copy the data runs of in's first size bytes to out, each at out_off plus
 * its offset; holes are skipped, so they stay holes (or whatever out held).
 */
int copy_sparse(int in, uint64_t size, int out, uint64_t out_off);
/* Copy a file, keeping its holes, and fsync the copy; dst is created with mode. */
int copy_file(const char *src, const char *dst, unsigned mode);
/* The same between open files: in's first size bytes to the empty file out. */
int copy_fd_sparse(int in, uint64_t size, int out);
/* fsync a directory (or the one holding path), so that a rename into it is durable. */
int fsync_dir(const char *dir);
int fsync_parent(const char *path);
/* mkdir -p */
int mkdir_p(const char *path, unsigned mode);
/* rm -rf; returns -errno of the first failure. */
int rm_rf(const char *path);

/* Join two paths with one '/', result malloc'd. */
char *path_join(const char *a, const char *b);
/* Directory part of a path ("." when none), malloc'd. */
char *path_dirname(const char *path);
/*
 * Normalise a path in place, lexically: drop "." components and repeated
 * slashes, fold "dir/.." pairs. Leading ".." of a relative path stay.
 * A path that folds to nothing becomes "."; "" stays "".
 */
char *path_normalize(char *path);
/* Base name, pointing into path. */
const char *path_basename(const char *path);

#endif
