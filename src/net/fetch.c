/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "net/fetch.h"
#include "net/fetch-internal.h"
#include "core/hash.h"
#include "core/util.h"

/* State of one fetch_file() call, shared by its attempts. */
struct xfer {
	CURL *curl;
	const struct fetch_opts *opts;
	const char *part;
	int fd;
	struct sha256 *h;
	bool is_http;
	uint64_t offset;     /* bytes in .part (and hashed) before this attempt */
	uint64_t written;    /* bytes appended by this attempt */
	int64_t range_start; /* start of the last Content-Range header, -1 if none */
	bool first_write_done;
	bool bad_resume;	/* the server answered a Range request with other data */
	int write_errno;	/* errno of a failed write to .part, 0 if none */
	uint64_t last_bytes;	/* bytes of this attempt at the last change */
	int64_t last_change_ms; /* when they last changed (monotonic), 0 at start */
	bool stalled;		/* aborted by progress_cb: nothing received for too long */
	uint64_t max_size;	/* the most bytes the whole file may have */
	bool too_big;		/* the response announced or delivered more than max_size */
	int64_t deadline_ms;	/* monotonic end of the whole fetch, 0 if none */
	bool out_of_time;	/* aborted by progress_cb: total_timeout_s passed */
};

static bool curl_ready;

int fetch_curl_init(struct strbuf *err)
{
	CURLcode c;

	if (curl_ready)
		return 0;
	c = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (c != CURLE_OK) {
		strbuf_addf(err, "cannot initialise libcurl: %s", curl_easy_strerror(c));
		return -ENOMEM;
	}
	curl_ready = true;
	return 0;
}

/* Remember where the body of the current response starts, to check resumes. */
static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	_cleanup_free_ char *line = xstrndup(data, n);

	if (!strncmp(line, "HTTP/", 5)) {
		x->range_start = -1;
	} else if (!strncasecmp(line, "content-range:", 14)) {
		const char *p = line + 14;
		char *end;
		unsigned long long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (!strncasecmp(p, "bytes ", 6)) {
			p += 6;
			errno = 0;
			v = strtoull(p, &end, 10);
			if (!errno && end != p && *end == '-' && v <= INT64_MAX)
				x->range_start = (int64_t)v;
		}
	}
	return n;
}

/*
 * Append received data to .part and to the running hash. libcurl itself
 * refuses an HTTP resume the server does not honour, but the first write
 * checks again that a resumed response really starts where .part ends:
 * appending anything else would corrupt the file silently until the hash.
 */
static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	int r;

	if (!x->first_write_done) {
		x->first_write_done = true;
		if (x->is_http && x->offset > 0) {
			long code = 0;

			curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
			if (code != 206 || x->range_start != (int64_t)x->offset) {
				x->bad_resume = true;
				return 0;
			}
		}
	}
	if (n > x->max_size || x->offset + x->written > x->max_size - n) {
		x->too_big = true;
		return 0;
	}
	r = write_all(x->fd, data, n);
	if (r < 0) {
		x->write_errno = -r;
		return 0;
	}
	sha256_update(x->h, data, n);
	x->written += n;
	return n;
}

/*
 * Called by libcurl at least once a second. Detects stalls here rather than
 * with CURLOPT_LOW_SPEED_*, whose speed is averaged over several seconds, so
 * that a connection that went silent after a burst is given up on after
 * stall_timeout_s, not seconds later.
 */
static int progress_cb(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = userdata;
	uint64_t total = dltotal > 0 ? x->offset + (uint64_t)dltotal : 0;
	uint64_t now = (uint64_t)(dlnow > 0 ? dlnow : 0);
	int64_t t = monotonic_ms();

	(void)ultotal;
	(void)ulnow;
	/* Refuse an announced length that cannot fit before receiving any of it. */
	if (total > x->max_size || (dltotal > 0 && (uint64_t)dltotal > x->max_size)) {
		x->too_big = true;
		return 1;
	}
	if (x->deadline_ms && t > x->deadline_ms) {
		x->out_of_time = true;
		return 1;
	}
	if (now != x->last_bytes || !x->last_change_ms) {
		x->last_bytes = now;
		x->last_change_ms = t;
	} else if (x->opts->stall_timeout_s &&
		   t - x->last_change_ms > (int64_t)x->opts->stall_timeout_s * 1000) {
		x->stalled = true;
		return 1;
	}
	if (!x->opts->progress)
		return 0;
	return x->opts->progress(x->opts->userdata, x->offset + now, total);
}

bool fetch_http_transient(long code)
{
	return code == 408 || code == 429 || code >= 500;
}

bool fetch_curl_transient(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return true;
	default:
		return false;
	}
}

int fetch_curl_errno(CURLcode c, long http_code)
{
	switch (c) {
	case CURLE_OK:
		return 0;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_BAD_FUNCTION_ARGUMENT:
		return -EINVAL;
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_PARTIAL_FILE:
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
		return -ECONNRESET;
	case CURLE_FILE_COULDNT_READ_FILE:
	case CURLE_REMOTE_FILE_NOT_FOUND:
		return -ENOENT;
	case CURLE_REMOTE_ACCESS_DENIED:
	case CURLE_LOGIN_DENIED:
		return -EACCES;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_TOO_MANY_REDIRECTS:
		return -ELOOP;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
		return -EPROTO;
	case CURLE_HTTP_RETURNED_ERROR:
		if (http_code == 404 || http_code == 410)
			return -ENOENT;
		if (http_code == 401 || http_code == 403)
			return -EACCES;
		return -EIO;
	default:
		return -EIO;
	}
}

void fetch_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Wait before a retry in short steps, so that the progress callback can still cancel. */
static bool wait_retry(const struct xfer *x, unsigned ms)
{
	while (ms > 0) {
		unsigned step = ms < 100 ? ms : 100;

		fetch_sleep_ms(step);
		ms -= step;
		if (x->opts->progress && x->opts->progress(x->opts->userdata, x->offset, 0))
			return false;
	}
	return true;
}

/*
 * A plain path becomes a file:// URL with its characters percent-encoded, so
 * names with spaces or '#' work. Relative paths are made absolute first.
 */
int fetch_make_url(const char *src, char **ret, struct strbuf *err)
{
	_cleanup_free_ char *abs = NULL;
	CURLU *u;
	char *s = NULL;
	int r = 0;

	if (strstr(src, "://")) {
		*ret = xstrdup(src);
		return 0;
	}
	if (src[0] == '/') {
		abs = xstrdup(src);
	} else {
		char cwd[4096];

		if (!getcwd(cwd, sizeof(cwd))) {
			strbuf_addf(err, "cannot resolve '%s': %s", src, strerror(errno));
			return -errno;
		}
		abs = path_join(cwd, src);
	}
	u = curl_url();
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_SCHEME, "file", 0) != CURLUE_OK ||
	    curl_url_set(u, CURLUPART_PATH, abs, CURLU_URLENCODE) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK) {
		strbuf_addf(err, "cannot turn '%s' into a file:// URL", src);
		r = -EINVAL;
	} else {
		*ret = xstrdup(s);
	}
	curl_free(s);
	curl_url_cleanup(u);
	return r;
}

/* Hash what an earlier run left in .part; its bytes are the resume point. */
static int hash_existing(struct xfer *x)
{
	char buf[65536];
	uint64_t total = 0;

	if (lseek(x->fd, 0, SEEK_SET) < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(x->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		sha256_update(x->h, buf, (size_t)n);
		total += (uint64_t)n;
	}
	x->offset = total;
	return 0;
}

static int restart_from_zero(struct xfer *x)
{
	if (ftruncate(x->fd, 0) < 0 || lseek(x->fd, 0, SEEK_SET) < 0)
		return -errno;
	{
		uint8_t discard[SHA256_LEN];
		sha256_final(x->h, discard); /* resets the context */
	}
	x->offset = 0;
	return 0;
}

/* What every request imgforge makes sets: protocols, redirects, errors, agent. */
void fetch_setup_common(CURL *c, const char *url, char *errbuf)
{
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "imgforge/" IMGFORGE_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

static void setup_attempt(struct xfer *x, const char *url, char *errbuf)
{
	CURL *c = x->curl;

	fetch_setup_common(c, url, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)x->offset);
	if (x->opts->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, x->opts->ca_file);
	if (x->opts->connect_timeout_s)
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)x->opts->connect_timeout_s);
	if (x->opts->min_speed_bps && x->opts->min_speed_window_s) {
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)x->opts->min_speed_bps);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)x->opts->min_speed_window_s);
	}
	/* progress_cb also enforces max_size and the overall deadline: always on. */
	{
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, x);
	}
	x->last_bytes = 0;
	x->last_change_ms = 0;
	x->stalled = false;
	x->too_big = false;
	x->written = 0;
	x->range_start = -1;
	x->first_write_done = false;
	x->bad_resume = false;
	x->write_errno = 0;
}

void fetch_describe_failure(struct strbuf *err, const char *url, CURLcode c, long http_code,
			     const char *errbuf, unsigned attempts)
{
	if (c == CURLE_HTTP_RETURNED_ERROR && http_code > 0)
		strbuf_addf(err, "cannot fetch '%s': the server answered HTTP %ld", url, http_code);
	else
		strbuf_addf(err, "cannot fetch '%s': %s", url,
			    errbuf[0] ? errbuf : curl_easy_strerror(c));
	if (attempts > 1)
		strbuf_addf(err, " (gave up after %u attempts)", attempts);
}

static int finish(struct xfer *x, const char *url, const char *dest, const char *want,
		  char *ret_sha256, struct strbuf *err)
{
	char got[SHA256_HEX_LEN];

	sha256_final_hex(x->h, got);
	if (want && strcasecmp(got, want)) {
		unlink(x->part);
		strbuf_addf(err,
			    "sha256 mismatch for '%s': expected %s, got %s; the download was "
			    "deleted (check the URL and the sha256 in the recipe)",
			    url, want, got);
		return -EBADMSG;
	}
	if (fsync(x->fd) < 0) {
		int r = -errno;
		strbuf_addf(err, "cannot write '%s': %s", x->part, strerror(errno));
		return r;
	}
	if (rename(x->part, dest) < 0) {
		int r = -errno;
		strbuf_addf(err, "cannot rename '%s' to '%s': %s", x->part, dest, strerror(errno));
		return r;
	}
	(void)fsync_parent(dest);
	if (ret_sha256)
		memcpy(ret_sha256, got, SHA256_HEX_LEN);
	return 0;
}

/*
 * Open and lock <dest>.part. Two processes fetching the same file (two builds
 * of images with the same base) must not append to one .part at once: the
 * second waits for the lock. When it gets the lock, the first may have
 * renamed the .part away already; then open the path again.
 */
static int open_part_locked(const char *part, int *ret_fd, struct strbuf *err)
{
	int i, r;

	for (i = 0; i < 100; i++) {
		struct stat a, b;
		int fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0) {
			r = -errno;
			strbuf_addf(err, "cannot create '%s': %s", part, strerror(errno));
			return r;
		}
		while ((r = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
			;
		if (r < 0) {
			r = -errno;
			strbuf_addf(err, "cannot lock '%s': %s", part, strerror(errno));
			close(fd);
			return r;
		}
		if (fstat(fd, &a) == 0 && stat(part, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			*ret_fd = fd;
			return 0;
		}
		close(fd);
	}
	strbuf_addf(err, "cannot lock '%s': it keeps being replaced", part);
	return -EBUSY;
}

static bool already_there(const char *dest, const char *want, char *ret_sha256)
{
	char hex[SHA256_HEX_LEN];

	if (sha256_file(dest, hex, NULL) < 0 || strcasecmp(hex, want))
		return false;
	if (ret_sha256)
		memcpy(ret_sha256, hex, SHA256_HEX_LEN);
	return true;
}

int fetch_file(const char *src, const char *dest, const char *want_sha256,
	       const struct fetch_opts *opts, char *ret_sha256, struct strbuf *err)
{
	static const struct fetch_opts defaults = FETCH_OPTS_DEFAULT;
	_cleanup_free_ char *url = NULL, *part = NULL;
	_cleanup_close_ int fd = -1;
	char errbuf[CURL_ERROR_SIZE];
	struct xfer x = {.fd = -1};
	bool restarted = false;
	unsigned attempt = 0, delay;
	CURLcode c = CURLE_OK;
	long http_code = 0;
	int r;

	if (!opts)
		opts = &defaults;
	if (want_sha256 && !is_sha256_hex(want_sha256)) {
		strbuf_addf(err, "invalid sha256 '%s' for '%s': expected 64 hex digits",
			    want_sha256, src);
		return -EINVAL;
	}
	r = fetch_curl_init(err);
	if (r < 0)
		return r;
	r = fetch_make_url(src, &url, err);
	if (r < 0)
		return r;

	part = xasprintf("%s.part", dest);
	r = open_part_locked(part, &fd, err);
	if (r < 0)
		return r;
	/* Another process may have fetched the same file while we waited. */
	if (want_sha256 && already_there(dest, want_sha256, ret_sha256)) {
		struct stat st;

		if (fstat(fd, &st) == 0 && st.st_size == 0)
			unlink(part);
		return 0;
	}
	x.fd = fd;
	x.part = part;
	x.opts = opts;
	x.max_size = opts->max_size ? opts->max_size : FETCH_MAX_SIZE_DEFAULT;
	if (opts->total_timeout_s)
		x.deadline_ms = monotonic_ms() + (int64_t)opts->total_timeout_s * 1000;
	x.h = sha256_new();
	x.is_http = !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
	r = hash_existing(&x);
	if (r < 0) {
		strbuf_addf(err, "cannot read '%s': %s", part, strerror(-r));
		goto out;
	}
	if (x.offset > x.max_size) {
		/* Left by an older run without the limit: it cannot be the file. */
		r = restart_from_zero(&x);
		if (r < 0) {
			strbuf_addf(err, "cannot truncate '%s': %s", part, strerror(-r));
			goto out;
		}
	}
	if (x.offset > 0 && want_sha256) {
		/*
		 * An earlier run may have stopped after the last byte but before
		 * the rename. The running context must stay open for a resume, so
		 * the probe hashes the file a second time.
		 */
		char hex[SHA256_HEX_LEN];

		if (sha256_file(part, hex, NULL) == 0 && !strcasecmp(hex, want_sha256)) {
			r = finish(&x, url, dest, want_sha256, ret_sha256, err);
			goto out;
		}
	}

	x.curl = curl_easy_init();
	if (!x.curl) {
		strbuf_addstr(err, "cannot initialise libcurl");
		r = -ENOMEM;
		goto out;
	}
	delay = opts->retry_delay_ms;
	for (;;) {
		errbuf[0] = '\0';
		setup_attempt(&x, url, errbuf);
		if (lseek(fd, 0, SEEK_END) < 0) {
			r = -errno;
			strbuf_addf(err, "cannot seek in '%s': %s", part, strerror(errno));
			goto out;
		}
		c = curl_easy_perform(x.curl);
		http_code = 0;
		curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, &http_code);
		attempt++;
		x.offset += x.written;
		if (c == CURLE_OK)
			break;
		if (x.too_big) {
			unlink(part);
			strbuf_addf(err,
				    "cannot fetch '%s': the file is larger than %" PRIu64
				    " bytes, the most a download may have; the partial download was "
				    "deleted (check the URL)",
				    url, x.max_size);
			r = -EFBIG;
			goto out;
		}
		if (x.out_of_time) {
			strbuf_addf(err,
				    "cannot fetch '%s': not complete after %u s; the partial download "
				    "is kept and the next build resumes it",
				    url, opts->total_timeout_s);
			r = -ETIMEDOUT;
			goto out;
		}
		if (x.write_errno) {
			r = -x.write_errno;
			strbuf_addf(err, "cannot write '%s': %s", part, strerror(x.write_errno));
			goto out;
		}
		/*
		 * The server cannot continue the .part we have (it ignored the
		 * Range, or the .part is longer than the file now is): start over
		 * once, at once.
		 */
		if (x.bad_resume || c == CURLE_RANGE_ERROR || c == CURLE_BAD_DOWNLOAD_RESUME ||
		    (c == CURLE_HTTP_RETURNED_ERROR && http_code == 416)) {
			if (restarted || x.offset == 0) {
				strbuf_addf(err,
					    "cannot fetch '%s': the server does not honour the "
					    "range requests needed to resume",
					    url);
				r = -EPROTO;
				goto out;
			}
			restarted = true;
			r = restart_from_zero(&x);
			if (r < 0) {
				strbuf_addf(err, "cannot truncate '%s': %s", part, strerror(-r));
				goto out;
			}
			continue;
		}
		if (x.stalled && c == CURLE_ABORTED_BY_CALLBACK) {
			c = CURLE_OPERATION_TIMEDOUT;
			snprintf(errbuf, sizeof(errbuf), "no data received for %u s",
				 opts->stall_timeout_s);
		}
		if (attempt > opts->retries ||
		    !(fetch_curl_transient(c) ||
		      (c == CURLE_HTTP_RETURNED_ERROR && fetch_http_transient(http_code)))) {
			r = fetch_curl_errno(c, http_code);
			fetch_describe_failure(err, url, c, http_code, errbuf, attempt);
			goto out;
		}
		if (x.deadline_ms && monotonic_ms() + delay > x.deadline_ms) {
			r = -ETIMEDOUT;
			fetch_describe_failure(err, url, c, http_code, errbuf, attempt);
			strbuf_addf(err, "; no time left to retry within %u s", opts->total_timeout_s);
			goto out;
		}
		if (!wait_retry(&x, delay)) {
			r = -ECANCELED;
			strbuf_addf(err,
				    "cannot fetch '%s': cancelled while waiting to retry after: %s",
				    url, errbuf[0] ? errbuf : curl_easy_strerror(c));
			goto out;
		}
		delay = delay > MAX_RETRY_DELAY_MS / 2 ? MAX_RETRY_DELAY_MS : delay * 2;
	}
	r = finish(&x, url, dest, want_sha256, ret_sha256, err);
out:
	if (x.curl)
		curl_easy_cleanup(x.curl);
	sha256_free(x.h);
	return r;
}

struct membuf {
	struct strbuf sb;
	uint64_t max;
	bool too_big;
};

static size_t mem_write_cb(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct membuf *m = userdata;
	size_t n = size * nmemb;

	if (m->sb.len + n > m->max) {
		m->too_big = true;
		return 0;
	}
	strbuf_add(&m->sb, data, n);
	return n;
}

int fetch_memory(const char *src, uint64_t max_size, const struct fetch_opts *opts,
		 char **ret_buf, size_t *ret_len, struct strbuf *err)
{
	static const struct fetch_opts defaults = FETCH_OPTS_DEFAULT;
	_cleanup_free_ char *url = NULL;
	char errbuf[CURL_ERROR_SIZE];
	struct membuf m = { STRBUF_INIT, max_size, false };
	unsigned attempt = 0, delay;
	CURL *c = NULL;
	CURLcode cc = CURLE_OK;
	long http_code = 0;
	int r;

	if (!opts)
		opts = &defaults;
	r = fetch_curl_init(err);
	if (r < 0)
		return r;
	r = fetch_make_url(src, &url, err);
	if (r < 0)
		return r;
	c = curl_easy_init();
	if (!c) {
		strbuf_addstr(err, "cannot initialise libcurl");
		return -ENOMEM;
	}
	delay = opts->retry_delay_ms;
	for (;;) {
		errbuf[0] = '\0';
		strbuf_reset(&m.sb);
		m.too_big = false;
		fetch_setup_common(c, url, errbuf);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, mem_write_cb);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &m);
		if (opts->ca_file)
			curl_easy_setopt(c, CURLOPT_CAINFO, opts->ca_file);
		if (opts->connect_timeout_s)
			curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)opts->connect_timeout_s);
		if (opts->total_timeout_s)
			curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)opts->total_timeout_s);
		if (opts->min_speed_bps && opts->min_speed_window_s) {
			curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)opts->min_speed_bps);
			curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)opts->min_speed_window_s);
		}
		cc = curl_easy_perform(c);
		http_code = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http_code);
		attempt++;
		if (cc == CURLE_OK)
			break;
		if (m.too_big) {
			strbuf_addf(err, "cannot fetch '%s': larger than %" PRIu64 " bytes", url,
				    max_size);
			r = -EFBIG;
			goto out;
		}
		if (attempt > opts->retries ||
		    !(fetch_curl_transient(cc) ||
		      (cc == CURLE_HTTP_RETURNED_ERROR && fetch_http_transient(http_code)))) {
			r = fetch_curl_errno(cc, http_code);
			fetch_describe_failure(err, url, cc, http_code, errbuf, attempt);
			goto out;
		}
		fetch_sleep_ms(delay);
		delay = delay > MAX_RETRY_DELAY_MS / 2 ? MAX_RETRY_DELAY_MS : delay * 2;
	}
	*ret_len = m.sb.len;
	*ret_buf = strbuf_detach(&m.sb);
	r = 0;
out:
	strbuf_release(&m.sb);
	curl_easy_cleanup(c);
	return r;
}
