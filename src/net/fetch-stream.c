/* SPDX-License-Identifier: MIT */
/*
 * fetch_stream: libcurl pushes bytes through a write callback; the readers
 * of a stream (bundle_open() and bundle_stream_payload() take a read
 * function) pull them. A multi handle bridges the two: a read runs the
 * transfer only until the write callback has delivered something, and keeps
 * what did not fit the caller's buffer for the next read. Memory stays at
 * what one run of the transfer delivers, a socket buffer or so.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <curl/curl.h>

#include "net/fetch.h"
#include "net/fetch-internal.h"
#include "core/util.h"

struct fetch_stream {
	CURLM *multi;
	CURL *easy;
	char *url;
	struct fetch_opts opts;
	struct strbuf pending; /* received, not yet read */
	size_t pending_pos;
	uint64_t received;	 /* body bytes received over all attempts */
	uint64_t delivered;	 /* bytes handed to the reader */
	uint64_t attempt_start;	 /* received when this attempt started */
	bool attempt_checked;	 /* the resume of this attempt was checked */
	bool bad_resume;
	bool too_big;
	bool done;
	int error; /* -errno once failed */
	unsigned attempts;
	unsigned delay_ms;
	struct strbuf err;
	char errbuf[CURL_ERROR_SIZE];
};

static bool resume_ok(struct fetch_stream *s)
{
	long code = 0;

	if (s->attempt_start == 0)
		return true;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	if (!strncmp(s->url, "file:", 5))
		return true; /* file:// seeks; there is no response to check */
	/* libcurl itself checks that Content-Range starts at the offset asked for. */
	return code == 206;
}

static size_t stream_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct fetch_stream *s = userdata;
	size_t n = size * nmemb;

	if (!s->attempt_checked) {
		s->attempt_checked = true;
		if (!resume_ok(s)) {
			s->bad_resume = true;
			return 0;
		}
	}
	if (s->received + n > s->opts.max_size) {
		s->too_big = true;
		return 0;
	}
	strbuf_add(&s->pending, data, n);
	s->received += n;
	return n;
}

static int start_attempt(struct fetch_stream *s)
{
	CURL *c = s->easy;

	s->errbuf[0] = '\0';
	fetch_setup_common(c, s->url, s->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, stream_write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)s->received);
	if (s->opts.ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, s->opts.ca_file);
	if (s->opts.connect_timeout_s)
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)s->opts.connect_timeout_s);
	if (s->opts.total_timeout_s)
		curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)s->opts.total_timeout_s);
	if (s->opts.stall_timeout_s) {
		/* Less than a byte a second for stall_timeout_s: nothing arrives. */
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)s->opts.stall_timeout_s);
	}
	if (s->opts.min_speed_bps && s->opts.min_speed_window_s) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)s->opts.min_speed_bps);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)s->opts.min_speed_window_s);
	}
	s->attempt_start = s->received;
	s->attempt_checked = false;
	s->attempts++;
	if (curl_multi_add_handle(s->multi, c) != CURLM_OK) {
		strbuf_addf(&s->err, "cannot fetch '%s': cannot start the transfer", s->url);
		return -ENOMEM;
	}
	return 0;
}

static int fail(struct fetch_stream *s, int r)
{
	s->error = r;
	return r;
}

/* One transfer ended with c: done, retried from where it stopped, or failed. */
static int attempt_ended(struct fetch_stream *s, CURLcode c)
{
	long code = 0;

	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
	curl_multi_remove_handle(s->multi, s->easy);
	if (c == CURLE_OK) {
		s->done = true;
		return 0;
	}
	if (s->too_big) {
		strbuf_addf(&s->err, "cannot fetch '%s': larger than %" PRIu64 " bytes", s->url,
			    s->opts.max_size);
		return fail(s, -EFBIG);
	}
	if (s->bad_resume) {
		strbuf_addf(&s->err,
			    "cannot fetch '%s': the connection broke after %" PRIu64
			    " bytes and the server cannot resume it (HTTP %ld to a Range request); "
			    "try again",
			    s->url, s->received, code);
		return fail(s, -ECONNRESET);
	}
	if (s->attempts > s->opts.retries ||
	    !(fetch_curl_transient(c) ||
	      (c == CURLE_HTTP_RETURNED_ERROR && fetch_http_transient(code)))) {
		fetch_describe_failure(&s->err, s->url, c, code, s->errbuf, s->attempts);
		if (s->received)
			strbuf_addf(&s->err, " after %" PRIu64 " bytes", s->received);
		return fail(s, fetch_curl_errno(c, code));
	}
	fetch_sleep_ms(s->delay_ms);
	s->delay_ms = s->delay_ms > MAX_RETRY_DELAY_MS / 2 ? MAX_RETRY_DELAY_MS : s->delay_ms * 2;
	return start_attempt(s) < 0 ? fail(s, -ENOMEM) : 0;
}

int fetch_stream_open(const char *url, const struct fetch_opts *opts, struct fetch_stream **ret,
		      struct strbuf *err)
{
	static const struct fetch_opts defaults = FETCH_OPTS_DEFAULT;
	struct fetch_stream *s;
	int r;

	r = fetch_curl_init(err);
	if (r < 0)
		return r;
	s = xcalloc(1, sizeof(*s));
	s->opts = opts ? *opts : defaults;
	if (!s->opts.max_size)
		s->opts.max_size = FETCH_MAX_SIZE_DEFAULT;
	s->delay_ms = s->opts.retry_delay_ms;
	r = fetch_make_url(url, &s->url, err);
	if (r < 0)
		goto fail;
	s->multi = curl_multi_init();
	s->easy = curl_easy_init();
	if (!s->multi || !s->easy) {
		strbuf_addstr(err, "cannot initialise libcurl");
		r = -ENOMEM;
		goto fail;
	}
	r = start_attempt(s);
	if (r < 0) {
		strbuf_addstr(err, s->err.buf);
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	fetch_stream_close(s);
	return r;
}

ssize_t fetch_stream_read(struct fetch_stream *s, void *buf, size_t len)
{
	while (s->pending_pos >= s->pending.len) {
		int running = 0;
		CURLMsg *msg;
		int left;

		strbuf_reset(&s->pending);
		s->pending_pos = 0;
		if (s->error)
			return s->error;
		if (s->done)
			return 0;
		if (curl_multi_perform(s->multi, &running) != CURLM_OK) {
			strbuf_addf(&s->err, "cannot fetch '%s': libcurl failed", s->url);
			return fail(s, -EIO);
		}
		while ((msg = curl_multi_info_read(s->multi, &left)))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == s->easy)
				attempt_ended(s, msg->data.result);
		if (s->pending.len || s->done || s->error)
			continue;
		if (curl_multi_poll(s->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
			strbuf_addf(&s->err, "cannot fetch '%s': libcurl failed", s->url);
			return fail(s, -EIO);
		}
	}
	if (len > s->pending.len - s->pending_pos)
		len = s->pending.len - s->pending_pos;
	memcpy(buf, s->pending.buf + s->pending_pos, len);
	s->pending_pos += len;
	s->delivered += len;
	return (ssize_t)len;
}

const char *fetch_stream_error(const struct fetch_stream *s)
{
	return s->err.len ? s->err.buf : "no error";
}

uint64_t fetch_stream_offset(const struct fetch_stream *s)
{
	return s->delivered;
}

void fetch_stream_close(struct fetch_stream *s)
{
	if (!s)
		return;
	if (s->multi && s->easy)
		curl_multi_remove_handle(s->multi, s->easy);
	if (s->easy)
		curl_easy_cleanup(s->easy);
	if (s->multi)
		curl_multi_cleanup(s->multi);
	free(s->url);
	strbuf_release(&s->pending);
	strbuf_release(&s->err);
	free(s);
}
