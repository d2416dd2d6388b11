/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_HTTP_H
#define IMGFORGE_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/util.h"

/*
 * One HTTP request to an API (S3, EC2, Keystone, Glance, Scaleway): any
 * method, request headers the caller chose (a signature among them), a body
 * from memory or from a byte range of a file, and the whole answer (status,
 * headers, body) handed back whatever its status, so the caller can read a
 * cloud's error document. Downloads of files go through fetch.h instead.
 *
 * Transient failures (no connection, a dropped transfer, HTTP 429 and 5xx)
 * are retried opts.retries times with the same backoff as fetch_file(),
 * the body sent again from its start: only for requests safe to repeat (a
 * PUT of a part, a GET, a signed POST the service treats as idempotent).
 * A request that must be signed again for each attempt (its date in the
 * signature) passes sign(): called before every attempt to give the headers.
 */

/* Upload progress: bytes of the body sent so far and its length. */
typedef void (*http_progress_fn)(void *userdata, uint64_t sent, uint64_t total);

/*
 * Headers for one attempt, built by the caller (a signature over the time
 * of this attempt): a NULL-terminated array of "Name: value" strings owned
 * by the caller until the next call or http_request() returns.
 */
typedef int (*http_sign_fn)(void *userdata, const char *const **ret_headers, struct strbuf *err);

struct http_request {
	const char *method; /* "GET", "PUT", "POST", "HEAD", "DELETE", "PATCH" */
	const char *url;
	/* NULL-terminated "Name: value" strings; NULL for none. Ignored when sign is set. */
	const char *const *headers;
	http_sign_fn sign;
	void *sign_userdata;
	/* The body: from memory (body, body_len), or body_len bytes of body_fd from body_offset. */
	const void *body;
	int body_fd; /* -1 for none: set it, 0 is a file descriptor */
	off_t body_offset;
	uint64_t body_len;
	/* Most bytes of answer body kept (0: 16 MiB); a longer answer fails with -EFBIG. */
	size_t max_response;
	/*
	 * A download: with body_out set, the body of a 2xx answer is written to
	 * body_out_fd (from offset 0, the file truncated before each attempt)
	 * instead of kept, whatever its size (aligned 4 KiB blocks of zeros
	 * left as holes); another answer's body (an error document) is kept
	 * in resp->body as usual.
	 */
	bool body_out;
	int body_out_fd;
	/*
	 * Safe to send twice. GET, HEAD, PUT and DELETE are; a POST or PATCH
	 * is only when the service makes it so (a client token, a read-only
	 * query): set this then. Otherwise a POST is retried only when the
	 * server cannot have acted on it (429, 503, 408, or no connection
	 * made), never after a 5xx or a connection lost with the answer.
	 */
	bool idempotent;
	unsigned retries;	    /* further attempts after a transient failure */
	unsigned retry_delay_ms;    /* before the first retry, doubled after each, capped at 60 s */
	unsigned connect_timeout_s; /* 0: 30 s */
	unsigned timeout_s;	    /* a whole attempt; 0: none (a large upload) */
	const char *ca_file;	    /* PEM bundle to trust instead of the system's */
	http_progress_fn progress;
	void *progress_userdata;
};

#define HTTP_REQUEST_INIT                                                                          \
	{                                                                                          \
		.body_fd = -1, .retries = 4, .retry_delay_ms = 1000                                \
	}

struct http_response {
	long status;	      /* HTTP status of the last attempt */
	struct strbuf headers; /* the raw header block of the final answer */
	struct strbuf body;
	unsigned attempts;
};

/*
 * Send req. Returns 0 once an answer arrived, whatever its status (look at
 * resp->status), or -errno with one line in err when no answer came after
 * every attempt (with the URL; never the request's headers, which may hold
 * credentials). resp is the caller's: http_response_release().
 */
int http_request(const struct http_request *req, struct http_response *resp, struct strbuf *err);

/*
 * The value of header name (case-insensitive) in resp, trimmed, malloc'd;
 * NULL when absent.
 */
char *http_response_header(const struct http_response *resp, const char *name);

void http_response_release(struct http_response *resp);

/* Percent-encode s as RFC 3986 unreserved characters; '/' kept when keep_slash. */
void http_uri_encode(struct strbuf *sb, const char *s, bool keep_slash);

#endif
