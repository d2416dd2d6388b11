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

/* Hand a descriptor on: return it and leave -1 behind, so _cleanup_close_ skips it. */
#define TAKE_FD(fd)                                                                                \
	({                                                                                         \
		int _fd = (fd);                                                                    \
		(fd) = -1;                                                                         \
		_fd;                                                                               \
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

/* --- little-endian fields of on-disk formats ------------------------------------ */
static inline void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

void strbuf_add_le16(struct strbuf *sb, uint16_t v);
void strbuf_add_le32(struct strbuf *sb, uint32_t v);

/* Files and paths; clocks and timestamps. */
#include "core/file.h"
#include "core/clock.h"

#endif
