/* SPDX-License-Identifier: MIT */
/*
 * fetch_ranges: byte ranges of one URL, one blocking request each, over one
 * libcurl handle so that its connection is reused. What a delta update
 * needs from a plain static server: a 206 with the Content-Range asked for,
 * or the knowledge that the server ignores Range (a 200), to fall back.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "net/fetch.h"
#include "net/fetch-internal.h"
#include "core/util.h"

struct fetch_ranges {
	CURL *easy;
	char *url;
	struct fetch_opts opts;
	uint64_t received; /* body bytes over all requests */
	uint64_t total;	   /* the file's size from Content-Range; 0 unknown */
	/* The request running: */
	uint8_t *buf;
	uint64_t want_start;
	size_t want_len, got;
	int64_t cr_start, cr_end; /* Content-Range of this response, -1 none */
	uint64_t cr_total;
	bool checked, no_range, bad_range;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct fetch_ranges *r = userdata;
	size_t n = size * nmemb;
	char line[256];
	unsigned long long a, b, t;

	if (n >= sizeof(line))
		return n;
	memcpy(line, data, n);
	line[n] = '\0';
	if (!strncasecmp(line, "HTTP/", 5))
		r->cr_start = r->cr_end = -1; /* a new response (after a redirect) */
	else if (sscanf(line, "%*[Cc]ontent-%*[Rr]ange: bytes %llu-%llu/%llu", &a, &b, &t) == 3) {
		r->cr_start = (int64_t)a;
		r->cr_end = (int64_t)b;
		r->cr_total = t;
	}
	return n;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct fetch_ranges *r = userdata;
	size_t n = size * nmemb;

	if (!r->checked) {
		long code = 0;

		r->checked = true;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		if (code != 206) {
			r->no_range = true;
			return 0;
		}
		if (r->cr_start != (int64_t)(r->want_start + r->got) ||
		    r->cr_end != (int64_t)(r->want_start + r->want_len - 1)) {
			r->bad_range = true;
			return 0;
		}
		r->total = r->cr_total;
	}
	r->received += n;
	if (n > r->want_len - r->got) {
		r->bad_range = true;
		return 0;
	}
	memcpy(r->buf + r->got, data, n);
	r->got += n;
	return n;
}

int fetch_ranges_open(const char *url, const struct fetch_opts *opts, struct fetch_ranges **ret,
		      struct strbuf *err)
{
	static const struct fetch_opts defaults = FETCH_OPTS_DEFAULT;
	struct fetch_ranges *r;
	int e;

	e = fetch_curl_init(err);
	if (e < 0)
		return e;
	r = xcalloc(1, sizeof(*r));
	r->opts = opts ? *opts : defaults;
	e = fetch_make_url(url, &r->url, err);
	if (e < 0)
		goto fail;
	r->easy = curl_easy_init();
	if (!r->easy) {
		strbuf_addstr(err, "cannot initialise libcurl");
		e = -ENOMEM;
		goto fail;
	}
	*ret = r;
	return 0;
fail:
	fetch_ranges_close(r);
	return e;
}

int fetch_ranges_get(struct fetch_ranges *r, uint64_t off, size_t len, void *buf,
		     struct strbuf *err)
{
	unsigned attempts = 0, delay = r->opts.retry_delay_ms;

	r->buf = buf;
	r->want_start = off;
	r->want_len = len;
	r->got = 0;
	if (len == 0)
		return 0;
	for (;;) {
		CURL *c = r->easy;
		char range[64];
		long code = 0;
		CURLcode cc;

		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, off + r->got, off + len - 1);
		r->errbuf[0] = '\0';
		fetch_setup_common(c, r->url, r->errbuf);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
		if (r->opts.ca_file)
			curl_easy_setopt(c, CURLOPT_CAINFO, r->opts.ca_file);
		if (r->opts.connect_timeout_s)
			curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)r->opts.connect_timeout_s);
		if (r->opts.stall_timeout_s) {
			curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
			curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)r->opts.stall_timeout_s);
		}
		r->checked = r->no_range = r->bad_range = false;
		r->cr_start = r->cr_end = -1;
		attempts++;
		cc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (cc == CURLE_OK && r->got == len)
			return 0;
		if (r->no_range) {
			strbuf_addf(err,
				    "'%s': the server does not answer range requests (HTTP %ld to "
				    "one)",
				    r->url, code);
			return -EOPNOTSUPP;
		}
		if (r->bad_range) {
			strbuf_addf(err,
				    "cannot fetch '%s': asked for bytes %s, the server sent others; "
				    "try again",
				    r->url, range);
			return -EPROTO;
		}
		if (cc == CURLE_OK) /* a response shorter than its range */
			cc = CURLE_PARTIAL_FILE;
		if (attempts > r->opts.retries ||
		    !(fetch_curl_transient(cc) ||
		      (cc == CURLE_HTTP_RETURNED_ERROR && fetch_http_transient(code)))) {
			fetch_describe_failure(err, r->url, cc, code, r->errbuf, attempts);
			strbuf_addf(err, " (bytes %s)", range);
			return fetch_curl_errno(cc, code);
		}
		fetch_sleep_ms(delay);
		delay = delay > MAX_RETRY_DELAY_MS / 2 ? MAX_RETRY_DELAY_MS : delay * 2;
	}
}

uint64_t fetch_ranges_received(const struct fetch_ranges *r)
{
	return r->received;
}

uint64_t fetch_ranges_total(const struct fetch_ranges *r)
{
	return r->total;
}

void fetch_ranges_close(struct fetch_ranges *r)
{
	if (!r)
		return;
	if (r->easy)
		curl_easy_cleanup(r->easy);
	free(r->url);
	free(r);
}
