/* SPDX-License-Identifier: MIT */
/* Files, descriptors and paths. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

/* write() (at_offset false) or pwrite() at off all of buf, through short writes and EINTR. */
static int write_loop(int fd, const void *buf, size_t len, bool at_offset, uint64_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = at_offset ? pwrite(fd, p, len, (off_t)off) : write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int write_all(int fd, const void *buf, size_t len)
{
	return write_loop(fd, buf, len, false, 0);
}

int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	return write_loop(fd, buf, len, true, off);
}

int read_fd(int fd, size_t max, char **ret_buf, size_t *ret_len)
{
	struct strbuf sb = STRBUF_INIT;
	struct stat st;
	char chunk[65536];

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max)
		return -EFBIG;
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			strbuf_release(&sb);
			return -errno;
		}
		if (n == 0)
			break;
		if (sb.len + (size_t)n > max) {
			strbuf_release(&sb);
			return -EFBIG;
		}
		strbuf_add(&sb, chunk, (size_t)n);
	}
	*ret_len = sb.len;
	*ret_buf = strbuf_detach(&sb);
	return 0;
}

int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return read_fd(fd, max, ret_buf, ret_len);
}

int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	int fd, r;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len)
{
	static char buf[1 << 20];
	bool fallback = false;

	while (len > 0) {
		ssize_t n;

		if (!fallback) {
			loff_t oi = (loff_t)in_off, oo = (loff_t)out_off;
			n = copy_file_range(in, &oi, out, &oo, len, 0);
			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP)) {
				fallback = true;
				continue;
			}
		} else {
			size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
			n = pread(in, buf, want, (off_t)in_off);
			if (n > 0) {
				int r = pwrite_all(out, buf, (size_t)n, out_off);

				if (r < 0)
					return r;
			}
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* the source is shorter than it said */
		in_off += (uint64_t)n;
		out_off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

int mkdir_p(const char *path, unsigned mode)
{
	_cleanup_free_ char *p = xstrdup(path);
	char *s;

	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int rm_rf(const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 ? -errno : 0;
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		_cleanup_free_ char *sub = NULL;
		int k;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		sub = path_join(path, de->d_name);
		k = rm_rf(sub);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	if (rmdir(path) < 0 && r == 0)
		r = -errno;
	return r;
}

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a);

	if (!la)
		return xstrdup(b);
	while (*b == '/')
		b++;
	if (a[la - 1] == '/')
		return xasprintf("%s%s", a, b);
	return xasprintf("%s/%s", a, b);
}

char *path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

char *path_normalize(char *path)
{
	bool abs = path[0] == '/';
	char **parts = NULL;
	size_t n = 0, alloc = 0, i;
	char *copy = xstrdup(path), *tok, *save = NULL;
	struct strbuf sb = STRBUF_INIT;

	for (tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (!strcmp(tok, "."))
			continue;
		if (!strcmp(tok, "..") && n > 0 && strcmp(parts[n - 1], "..")) {
			n--;
			continue;
		}
		if (!strcmp(tok, "..") && abs)
			continue;
		GROW(parts, alloc, n + 1);
		parts[n++] = tok;
	}
	if (abs)
		strbuf_addch(&sb, '/');
	for (i = 0; i < n; i++)
		strbuf_addf(&sb, "%s%s", i ? "/" : "", parts[i]);
	/* The result is never longer than the input, except "" that becomes ".". */
	if (!sb.len && *path)
		strbuf_addch(&sb, '.');
	memcpy(path, strbuf_str(&sb), sb.len + 1);
	strbuf_release(&sb);
	free(parts);
	free(copy);
	return path;
}

const char *path_basename(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

int next_data_extent(int fd, uint64_t pos, uint64_t size, uint64_t *ret_off, uint64_t *ret_len)
{
	off_t data, hole;

	if (pos >= size)
		return 0;
	data = lseek(fd, (off_t)pos, SEEK_DATA);
	if (data < 0)
		return errno == ENXIO ? 0 : -errno; /* ENXIO: only a hole is left */
	if ((uint64_t)data >= size)
		return 0;
	hole = lseek(fd, data, SEEK_HOLE);
	if (hole < 0)
		return -errno;
	if ((uint64_t)hole > size)
		hole = (off_t)size; /* the file grew since its size was taken */
	*ret_off = (uint64_t)data;
	*ret_len = (uint64_t)(hole - data);
	return 1;
}

int copy_sparse(int in, uint64_t size, int out, uint64_t out_off)
{
	uint64_t pos = 0, off = 0, len = 0;
	int r;

	while ((r = next_data_extent(in, pos, size, &off, &len)) > 0) {
		r = copy_range(in, off, out, out_off + off, len);
		if (r < 0)
			return r;
		pos = off + len;
	}
	return r;
}

int copy_file(const char *src, const char *dst, unsigned mode)
{
	_cleanup_close_ int in = -1;
	struct stat st;
	int out, r;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	if (fstat(in, &st) < 0)
		return -errno;
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (out < 0)
		return -errno;
	r = copy_fd_sparse(in, (uint64_t)st.st_size, out);
	if (close(out) < 0 && r == 0)
		r = -errno;
	return r;
}

int copy_fd_sparse(int in, uint64_t size, int out)
{
	int r = copy_sparse(in, size, out, 0);

	/* The holes at the end are no extent: the size sets them. */
	if (r == 0 && ftruncate(out, (off_t)size) < 0)
		r = -errno;
	if (r == 0 && fsync(out) < 0)
		r = -errno;
	return r;
}

int fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

int fsync_parent(const char *path)
{
	_cleanup_free_ char *dir = path_dirname(path);

	return fsync_dir(dir);
}
