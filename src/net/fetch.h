/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_FETCH_H
#define IMGFORGE_FETCH_H

#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

/*
 * Download a file over http, https or file:// (or copy a plain local path),
 * verified against a known SHA-256 before it appears under its final name.
 * The only module that includes <curl/curl.h>.
 */

/*
 * Progress callback: done and total are bytes of the whole file (total is 0
 * while unknown); done includes bytes resumed from an earlier attempt.
 * Also called every 100 ms while waiting to retry (with total 0). Return
 * non-zero to cancel the download (fetch_file then returns -ECANCELED and
 * keeps the .part file for a later resume): the way to stop on Ctrl-C when
 * the caller handles SIGINT itself.
 */
typedef int (*fetch_progress_fn)(void *userdata, uint64_t done, uint64_t total);

struct fetch_opts {
	/* Further attempts after the first one fails with a transient error. */
	unsigned retries;
	/* Wait before the first retry; doubled before each further retry, capped at 60 s. */
	unsigned retry_delay_ms;
	/* Give up connecting after this many seconds (0: libcurl's default). */
	unsigned connect_timeout_s;
	/* Abort an attempt (then retry it) that receives nothing for this many seconds (0: never).
	 */
	unsigned stall_timeout_s;
	/*
	 * Give up an attempt (then retry it) whose average speed stays below
	 * min_speed_bps bytes per second for min_speed_window_s seconds: a
	 * server that trickles a byte now and then never trips stall_timeout_s.
	 * 0 for either: no such limit.
	 */
	unsigned min_speed_bps;
	unsigned min_speed_window_s;
	/* Give up the whole fetch, all attempts together, after this many seconds (0: never). */
	unsigned total_timeout_s;
	/*
	 * The most bytes the file may have (0: FETCH_MAX_SIZE_DEFAULT). A
	 * response that announces or delivers more is abandoned and its .part
	 * deleted: it cannot be the file, and an endless body must not fill
	 * the disk.
	 */
	uint64_t max_size;
	/* PEM file of CA certificates to trust for https instead of the system's (NULL: system). */
	const char *ca_file;
	fetch_progress_fn progress;
	void *userdata;
};

/* 64 GiB: more than any root filesystem tarball imgforge is meant to ingest. */
#define FETCH_MAX_SIZE_DEFAULT (UINT64_C(64) << 30)

#define FETCH_OPTS_DEFAULT                                                                         \
	{                                                                                          \
		.retries = 4, .retry_delay_ms = 1000, .connect_timeout_s = 30,                     \
		.stall_timeout_s = 60, .min_speed_bps = 1024, .min_speed_window_s = 120,           \
		.total_timeout_s = 4 * 3600                                                        \
	}

/*
 * Fetch url (http://, https://, file:// or a plain path) into dest.
 *
 * The data goes to "<dest>.part" first. An existing .part from an earlier,
 * interrupted run is resumed with a Range request (and restarted from zero
 * when the server cannot resume it). Transient failures (connection refused
 * or dropped, timeouts, HTTP 408, 429 and 5xx) are retried opts->retries
 * times with exponential backoff, each retry resuming where the last one
 * stopped. Other HTTP errors (404, 403, ...) fail at once.
 *
 * Every attempt is bounded: nothing received for stall_timeout_s, or less
 * than min_speed_bps over min_speed_window_s, ends it (and it is retried);
 * total_timeout_s bounds them all. A body larger than max_size fails at
 * once with -EFBIG and the .part is deleted.
 *
 * The SHA-256 is computed while the data streams in. When want_sha256 is
 * not NULL it must match, else the .part is deleted and -EBADMSG returned
 * with a message naming both hashes. (Without want_sha256 nothing can tell
 * a stale .part of a different file from a good one: pass the hash.) Only
 * a complete, verified file is fsync'ed and renamed to dest, so dest never
 * holds a partial download.
 *
 * The .part is locked while in use: a second process fetching to the same
 * dest waits, and then finds dest complete (with want_sha256 given, a dest
 * that already has that hash is not fetched again).
 *
 * opts may be NULL for FETCH_OPTS_DEFAULT. ret_sha256 (may be NULL)
 * receives the hex digest of the file on success. Returns 0 or -errno; on
 * failure one line describing the problem (with the URL) is appended to err.
 */
int fetch_file(const char *url, const char *dest, const char *want_sha256,
	       const struct fetch_opts *opts, char *ret_sha256, struct strbuf *err);

/*
 * Fetch a small file (an archive's InRelease, a Packages index) into memory:
 * at most max_size bytes, with opts' retries and timeouts (NULL: defaults).
 * Returns 0 with *ret_buf (malloc'd, NUL-terminated, the caller's) and
 * *ret_len, or -errno with one line in err: -ENOENT when the server says it
 * has no such file (HTTP 404/410), -EFBIG when larger than max_size, other
 * values when the server cannot be reached.
 */
int fetch_memory(const char *url, uint64_t max_size, const struct fetch_opts *opts,
		 char **ret_buf, size_t *ret_len, struct strbuf *err);

/*
 * A download read as a stream, for what is consumed as it arrives and never
 * stored whole (an update bundle written straight into a partition). The
 * same URLs, retries and timeouts as fetch_file(): a transfer that breaks
 * off with a transient error is resumed where it stopped, with a Range
 * request; a server that then answers with other bytes (no 206, another
 * start) ends the stream with an error, never with bytes of the wrong
 * place. The reader checks what it reads (the bundle's hashes): the stream
 * knows no checksum.
 */
struct fetch_stream;

/* Start fetching url. *ret is the caller's (fetch_stream_close()). */
int fetch_stream_open(const char *url, const struct fetch_opts *opts, struct fetch_stream **ret,
		      struct strbuf *err);
/*
 * Up to len bytes of the body: the count, 0 at its end, or -errno with one
 * line (with the URL) in fetch_stream_error().
 */
ssize_t fetch_stream_read(struct fetch_stream *s, void *buf, size_t len);
const char *fetch_stream_error(const struct fetch_stream *s);
/* Bytes handed to the reader so far. */
uint64_t fetch_stream_offset(const struct fetch_stream *s);
void fetch_stream_close(struct fetch_stream *s);

/*
 * Byte ranges of one URL (http, https), one request each over a reused
 * connection: what a delta update fetches from a static server. Each range
 * must come back as a 206 with the Content-Range asked for; a transfer that
 * breaks off is retried (opts' retries) from where it stopped.
 */
struct fetch_ranges;

/* *ret is the caller's (fetch_ranges_close()). Nothing is fetched yet. */
int fetch_ranges_open(const char *url, const struct fetch_opts *opts, struct fetch_ranges **ret,
		      struct strbuf *err);
/*
 * Exactly len bytes from off into buf: 0, -EOPNOTSUPP when the server
 * ignores Range (answers 200: fall back to the whole file), or another
 * -errno; one line (with the URL) appended to err.
 */
int fetch_ranges_get(struct fetch_ranges *r, uint64_t off, size_t len, void *buf,
		     struct strbuf *err);
/* Body bytes received over all requests, retries and refused answers included. */
uint64_t fetch_ranges_received(const struct fetch_ranges *r);
/* The file's size as the last Content-Range gave it (0: none yet). */
uint64_t fetch_ranges_total(const struct fetch_ranges *r);
void fetch_ranges_close(struct fetch_ranges *r);

#endif
