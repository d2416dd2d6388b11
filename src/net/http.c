/* SPDX-License-Identifier: MIT */
/*
 * One API request over libcurl (see http.h): the body read from memory or
 * a file range as curl asks for it, the answer kept whatever its status.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "core/file.h"
#include "net/fetch-internal.h"
#include "net/http.h"

#define HTTP_MAX_RESPONSE_DEFAULT (16u << 20)

struct call {
	const struct http_request *req;
	struct http_response *resp;
	CURL *curl;
	uint64_t sent;
	uint64_t out_off; /* bytes of the answer written to body_out_fd */
	int read_errno;
	int write_errno;
	bool too_big;
};

static size_t read_cb(char *buf, size_t size, size_t nmemb, void *userdata)
{
	struct call *c = userdata;
	const struct http_request *req = c->req;
	size_t want = size * nmemb;
	uint64_t left = req->body_len - c->sent;

	if (want > left)
		want = (size_t)left;
	if (!want)
		return 0;
	if (req->body) {
		memcpy(buf, (const char *)req->body + c->sent, want);
	} else {
		ssize_t n = pread(req->body_fd, buf, want, req->body_offset + (off_t)c->sent);
		if (n < 0) {
			c->read_errno = errno;
			return CURL_READFUNC_ABORT;
		}
		if (n == 0) {
			c->read_errno = EIO; /* the file got shorter under us */
			return CURL_READFUNC_ABORT;
		}
		want = (size_t)n;
	}
	c->sent += want;
	if (req->progress)
		req->progress(req->progress_userdata, c->sent, req->body_len);
	return want;
}

/*
 * Write n bytes at *off, leaving each whole aligned block of zeros a hole:
 * a downloaded disk image stays as sparse as the one written here.
 */
static int write_sparse(int fd, uint64_t *off, const char *p, size_t n)
{
	static const char zeros[4096];

	while (n) {
		size_t blk = sizeof(zeros) - (size_t)(*off % sizeof(zeros));
		int k;

		if (blk > n)
			blk = n;
		if (blk < sizeof(zeros) || memcmp(p, zeros, blk)) {
			k = pwrite_all(fd, p, blk, *off);
			if (k < 0)
				return k;
		}
		*off += blk;
		p += blk;
		n -= blk;
	}
	return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct call *c = userdata;
	size_t n = size * nmemb;
	size_t max = c->req->max_response ? c->req->max_response : HTTP_MAX_RESPONSE_DEFAULT;
	long status = 0;

	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (c->req->body_out && status >= 200 && status < 300) {
		int k = write_sparse(c->req->body_out_fd, &c->out_off, data, n);

		if (k < 0) {
			c->write_errno = -k;
			return 0;
		}
		return n;
	}
	if (c->resp->body.len + n > max) {
		c->too_big = true;
		return 0;
	}
	strbuf_add(&c->resp->body, data, n);
	return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct call *c = userdata;
	size_t n = size * nmemb;

	/* A new status line (after a 100 Continue or a redirect): keep only the last block. */
	if (n >= 5 && !strncmp(data, "HTTP/", 5))
		strbuf_reset(&c->resp->headers);
	strbuf_add(&c->resp->headers, data, n);
	return n;
}

/* With CURLOPT_SEEKFUNCTION curl can rewind the body itself (auth, a redirect). */
static int seek_cb(void *userdata, curl_off_t offset, int origin)
{
	struct call *c = userdata;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > c->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	c->sent = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Failures where the request never reached the server: any method may be sent again. */
static bool not_sent(CURLcode cc)
{
	return cc == CURLE_COULDNT_RESOLVE_PROXY || cc == CURLE_COULDNT_RESOLVE_HOST ||
	       cc == CURLE_COULDNT_CONNECT || cc == CURLE_SSL_CONNECT_ERROR;
}

static void describe(struct strbuf *err, const struct http_request *req, CURLcode cc,
		     const char *errbuf, unsigned attempts)
{
	strbuf_addf(err, "%s '%s' failed: %s", req->method, req->url,
		    errbuf[0] ? errbuf : curl_easy_strerror(cc));
	if (attempts > 1)
		strbuf_addf(err, " (gave up after %u attempts)", attempts);
}

int http_request(const struct http_request *req, struct http_response *resp, struct strbuf *err)
{
	CURL *curl;
	unsigned delay = req->retry_delay_ms ? req->retry_delay_ms : 1000;
	bool has_body = req->body || req->body_fd >= 0;
	bool safe = req->idempotent || (strcmp(req->method, "POST") && strcmp(req->method, "PATCH"));
	int r;

	r = fetch_curl_init(err);
	if (r < 0)
		return r;
	curl = curl_easy_init();
	if (!curl) {
		strbuf_addstr(err, "cannot start a libcurl handle");
		return -ENOMEM;
	}
	for (unsigned attempt = 1;; attempt++) {
		char errbuf[CURL_ERROR_SIZE] = "";
		struct call c = { .req = req, .resp = resp, .curl = curl };
		struct curl_slist *hdrs = NULL;
		const char *const *h = req->headers;
		CURLcode cc;
		bool transient;

		strbuf_reset(&resp->headers);
		strbuf_reset(&resp->body);
		resp->status = 0;
		resp->attempts = attempt;
		if (req->body_out && (ftruncate(req->body_out_fd, 0) < 0 ||
				      lseek(req->body_out_fd, 0, SEEK_SET) < 0)) {
			r = -errno;
			strbuf_addf(err, "%s '%s' failed: cannot write the answer: %s", req->method,
				    req->url, strerror(errno));
			goto out;
		}
		if (req->sign) {
			r = req->sign(req->sign_userdata, &h, err);
			if (r < 0)
				goto out;
		}
		for (; h && *h; h++) {
			struct curl_slist *n = curl_slist_append(hdrs, *h);
			if (!n) {
				curl_slist_free_all(hdrs);
				r = -ENOMEM;
				strbuf_addstr(err, "out of memory building request headers");
				goto out;
			}
			hdrs = n;
		}
		/* No "Expect: 100-continue" round trip: most APIs answer at once. */
		hdrs = curl_slist_append(hdrs, "Expect:");

		fetch_setup_common(curl, req->url, errbuf);
		curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(curl, CURLOPT_FAILONERROR, 0L);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, &c);
		curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
		curl_easy_setopt(curl, CURLOPT_HEADERDATA, &c);
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT,
				 (long)(req->connect_timeout_s ? req->connect_timeout_s : 30));
		if (req->timeout_s)
			curl_easy_setopt(curl, CURLOPT_TIMEOUT, (long)req->timeout_s);
		/* A stalled connection fails the attempt (then it is retried). */
		curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 120L);
		if (req->ca_file)
			curl_easy_setopt(curl, CURLOPT_CAINFO, req->ca_file);
		if (!strcmp(req->method, "HEAD"))
			curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
		else if (!strcmp(req->method, "GET"))
			curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
		else
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
		if (has_body) {
			curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
			curl_easy_setopt(curl, CURLOPT_READFUNCTION, read_cb);
			curl_easy_setopt(curl, CURLOPT_READDATA, &c);
			curl_easy_setopt(curl, CURLOPT_SEEKFUNCTION, seek_cb);
			curl_easy_setopt(curl, CURLOPT_SEEKDATA, &c);
			/* CURLOPT_UPLOAD makes a PUT: keep the caller's method. */
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, req->method);
		} else if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
			/* A POST or DELETE without a body still sends Content-Length: 0. */
			curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
			curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
		}

		cc = curl_easy_perform(curl);
		curl_slist_free_all(hdrs);
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);

		if (c.read_errno) {
			r = -c.read_errno;
			strbuf_addf(err, "%s '%s' failed: cannot read the body: %s", req->method,
				    req->url, strerror(c.read_errno));
			goto out;
		}
		if (c.write_errno) {
			r = -c.write_errno;
			strbuf_addf(err, "%s '%s' failed: cannot write the answer: %s", req->method,
				    req->url, strerror(c.write_errno));
			goto out;
		}
		/* The holes at the end: the file's size is the answer's. */
		if (req->body_out && c.out_off && ftruncate(req->body_out_fd, (off_t)c.out_off) < 0) {
			r = -errno;
			strbuf_addf(err, "%s '%s' failed: cannot write the answer: %s", req->method,
				    req->url, strerror(errno));
			goto out;
		}
		if (c.too_big) {
			r = -EFBIG;
			strbuf_addf(err, "%s '%s' failed: the answer is larger than %zu bytes",
				    req->method, req->url,
				    req->max_response ? req->max_response : HTTP_MAX_RESPONSE_DEFAULT);
			goto out;
		}
		if (cc == CURLE_OK) {
			transient = fetch_http_transient(resp->status) &&
				    (safe || resp->status == 429 || resp->status == 503 ||
				     resp->status == 408);
			if (!transient || attempt > req->retries) {
				r = 0;
				goto out;
			}
		} else {
			transient = fetch_curl_transient(cc) && (safe || not_sent(cc));
			if (!transient || attempt > req->retries) {
				r = fetch_curl_errno(cc, resp->status);
				describe(err, req, cc, errbuf, attempt);
				goto out;
			}
		}
		verbose("%s %s: %s; retrying in %u ms", req->method, req->url,
			cc == CURLE_OK ? "the server is busy" : curl_easy_strerror(cc), delay);
		fetch_sleep_ms(delay);
		delay = delay * 2 > MAX_RETRY_DELAY_MS ? MAX_RETRY_DELAY_MS : delay * 2;
	}
out:
	curl_easy_cleanup(curl);
	return r;
}

char *http_response_header(const struct http_response *resp, const char *name)
{
	size_t nlen = strlen(name);
	const char *p = resp->headers.buf;

	if (!p)
		return NULL;
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > nlen && p[nlen] == ':' && !strncasecmp(p, name, nlen)) {
			const char *v = p + nlen + 1, *e = p + len;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			while (e > v && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
				e--;
			return xstrndup(v, (size_t)(e - v));
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	return NULL;
}

void http_response_release(struct http_response *resp)
{
	strbuf_release(&resp->headers);
	strbuf_release(&resp->body);
}

void http_uri_encode(struct strbuf *sb, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		    ch == '-' || ch == '_' || ch == '.' || ch == '~' || (keep_slash && ch == '/')) {
			strbuf_addch(sb, (char)ch);
		} else {
			strbuf_addch(sb, '%');
			strbuf_addch(sb, hex[ch >> 4]);
			strbuf_addch(sb, hex[ch & 15]);
		}
	}
}
