/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_UTIL_H
#define IMGFORGE_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/*
 * Small helpers shared by every module: logging, allocation, a growable
 * string buffer, and file helpers. Functions return 0 or a positive count
 * on success and -errno on failure (systemd style) unless said otherwise.
 */

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Cleanup attributes: run a destructor when a variable leaves scope. */
#define _cleanup_(f)	  __attribute__((cleanup(f)))
#define _cleanup_free_	  _cleanup_(freep)
#define _cleanup_fclose_  _cleanup_(fclosep)
#define _cleanup_close_	  _cleanup_(closep)
#define _printf_(a, b)	  __attribute__((format(printf, a, b)))
#define _unused_	  __attribute__((unused))
#define _noreturn_	  __attribute__((noreturn))

/* Hand ownership on: return the pointer and clear the variable. */
#define TAKE_PTR(p)                                                                                \
	({                                                                                         \
		__typeof__(p) _p = (p);                                                            \
		(p) = NULL;                                                                        \
		_p;                                                                                \
	})

void freep(void *p);
void fclosep(void *p);
void closep(const int *fd);

/* --- logging ---------------------------------------------------------------
 * Commands log; library modules return -errno and leave a message for the
 * caller through their own error structs or log once at the boundary.
 */
enum log_level { LOG_QUIET = 0, LOG_NORMAL = 1, LOG_VERBOSE = 2, LOG_DEBUG = 3 };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Print "error: ..." on stderr and return -1 (git style). */
int error(const char *fmt, ...) _printf_(1, 2);
/* Print "error: ..." on stderr and return r (a -errno). */
int error_errno(int r, const char *fmt, ...) _printf_(2, 3);
void warning(const char *fmt, ...) _printf_(1, 2);
/* Progress and notes on stderr: hidden with --quiet. */
void info(const char *fmt, ...) _printf_(1, 2);
/* Only with --verbose. */
void verbose(const char *fmt, ...) _printf_(1, 2);

/* --- allocation: these never return NULL (out of memory exits 70) -------- */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);

/* Grow *array (of *alloc elements of size elem) to hold at least n. */
void *grow_array(void *array, size_t *alloc, size_t n, size_t elem);
#define GROW(a, alloc, n) ((a) = grow_array((a), &(alloc), (n), sizeof(*(a))))

/* --- strbuf: growable NUL-terminated buffer -------------------------------- */
struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};
#define STRBUF_INIT { NULL, 0, 0 }

void strbuf_add(struct strbuf *sb, const void *data, size_t n);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_addch(struct strbuf *sb, char c);
void strbuf_addf(struct strbuf *sb, const char *fmt, ...) _printf_(2, 3);
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap) _printf_(2, 0);
void strbuf_reset(struct strbuf *sb);
/* Return the buffer (never NULL, caller frees) and reset sb. */
char *strbuf_detach(struct strbuf *sb);
/* Return the contents as a C string (never NULL; owned by sb). */
const char *strbuf_str(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);

/* --- strings ----------------------------------------------------------------- */
bool str_startswith(const char *s, const char *prefix);
bool str_endswith(const char *s, const char *suffix);
/*
 * A name from an archive, a host directory or a recipe, made safe for a
 * one-line message: control characters (C0, DEL and C1), bytes that are not
 * valid UTF-8, and the backslash are escaped as \n, \t, \r, \\ or \xHH;
 * valid UTF-8 is kept as it is. quote_path() returns s itself when nothing
 * needs escaping, else a buffer of its own that stays valid for the next
 * three calls (for several names in one message; not thread-safe).
 */
void strbuf_add_quoted(struct strbuf *sb, const char *s);
const char *quote_path(const char *s);
/* Levenshtein distance, capped: used for "did you mean". */
size_t str_distance(const char *a, const char *b);

/*
 * Parse a size: "4096", "512K", "1536M", "4G", "1T", with optional "iB"/"B"
 * suffix; units are binary (1K = 1024). Returns -EINVAL on junk and
 * -ERANGE on overflow; sets *ret only on success.
 */
int parse_size(const char *s, uint64_t *ret);
/* Format a byte count for people: "1.5 GiB". Writes into buf. */
const char *format_size(uint64_t n, char *buf, size_t len);

/* --- files --------------------------------------------------------------------- */
/*
 * Read a whole file into a NUL-terminated malloc'd buffer. Files larger than
 * max bytes give -EFBIG (nothing is allocated). *ret_buf is the caller's.
 */
int read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);
/* Write data to path atomically (temp file in the same directory, fsync, rename). */
int write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);
/*
 * Copy len bytes from in at in_off to out at out_off: copy_file_range()
 * where the kernel can (same filesystem), read/write where it cannot.
 */
int copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len);
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

/* SOURCE_DATE_EPOCH if set and valid, else fallback. */
int64_t source_date_epoch(int64_t fallback);

#endif
