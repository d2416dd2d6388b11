/* SPDX-License-Identifier: MIT */
/*
 * fetch_file() against a real HTTP server on 127.0.0.1 (tests/helpers/httpd.py,
 * which honours Range requests and injects faults on request) and against
 * file:// URLs and plain paths.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/fetch.h"
#include "core/hash.h"
#include "tap.h"
#include "core/util.h"

#define FILE_SIZE 200000

static pid_t server_pid = -1;
static int server_port;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Start httpd.py serving ./www, logging to ./requests.log; 0 or -1. */
static int server_start_tls(bool tls)
{
	/* tap_srcpath() returns a static buffer: copy each path. */
	_cleanup_free_ char *script = xstrdup(tap_srcpath("tests/helpers/httpd.py"));
	_cleanup_free_ char *cert = xstrdup(tap_srcpath("tests/helpers/tls/cert.pem"));
	_cleanup_free_ char *key = xstrdup(tap_srcpath("tests/helpers/tls/key.pem"));
	int i;

	mkdir("www", 0755);
	unlink("port");
	server_pid = fork();
	if (server_pid == 0) {
		if (tls)
			execlp("python3", "python3", script, "--root", "www", "--port-file", "port",
			       "--log", "requests.log", "--tls", cert, key, (char *)NULL);
		else
			execlp("python3", "python3", script, "--root", "www", "--port-file", "port",
			       "--log", "requests.log", (char *)NULL);
		fprintf(stderr, "cannot run python3 (install the python3 package): %s\n",
			strerror(errno));
		_exit(127);
	}
	if (server_pid < 0)
		return -1;
	for (i = 0; i < 1000; i++) { /* up to 10 s */
		_cleanup_free_ char *buf = NULL;
		size_t len;
		int status;

		if (read_file("port", 64, &buf, &len) == 0 && len > 0) {
			server_port = atoi(buf);
			return server_port > 0 ? 0 : -1;
		}
		if (waitpid(server_pid, &status, WNOHANG) == server_pid) {
			printf("# test server exited before listening\n");
			server_pid = -1;
			return -1;
		}
		sleep_ms(10);
	}
	printf("# test server did not start within 10 s\n");
	return -1;
}

static int server_start(void)
{
	return server_start_tls(false);
}

static void server_stop(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
}

static char *url(const char *path)
{
	return xasprintf("http://127.0.0.1:%d/%s", server_port, path);
}

/* Write www/<name> with FILE_SIZE pseudo-random bytes; its sha256 into hex. */
static void make_file(const char *name, size_t size, char hex[SHA256_HEX_LEN])
{
	_cleanup_free_ char *path = path_join("www", name);
	char *data = xmalloc(size);
	uint32_t s = 12345;
	size_t i;

	mkdir("www", 0755);
	for (i = 0; i < size; i++) {
		s = s * 1103515245u + 12345u;
		data[i] = (char)(s >> 16);
	}
	CHECK(write_file_atomic(path, data, size, 0644) == 0);
	sha256_hex(data, size, hex);
	free(data);
}

static int count_lines(const char *path, const char *needle)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int n = 0;
	char *p, *save = NULL;

	if (read_file(path, 1 << 20, &buf, &len) < 0)
		return 0;
	for (p = strtok_r(buf, "\n", &save); p; p = strtok_r(NULL, "\n", &save))
		if (strstr(p, needle))
			n++;
	return n;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static const struct fetch_opts fast_opts = {
	.retries = 3,
	.retry_delay_ms = 10,
	.connect_timeout_s = 5,
	.stall_timeout_s = 10,
};

static uint64_t last_done, last_total;
static int progress_calls;

static int on_progress(void *userdata, uint64_t done, uint64_t total)
{
	(void)userdata;
	progress_calls++;
	last_done = done;
	last_total = total;
	return 0;
}

TEST(test_http_plain)
{
	struct fetch_opts o = fast_opts;
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], got[SHA256_HEX_LEN], ondisk[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	uint64_t size = 0;

	make_file("base.tar", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("base.tar");
	o.progress = on_progress;
	CHECK_INT(fetch_file(u, "out.tar", want, &o, got, &err), 0);
	CHECK_STR(err.buf ? err.buf : "", "");
	CHECK_STR(got, want);
	CHECK(sha256_file("out.tar", ondisk, &size) == 0);
	CHECK_STR(ondisk, want);
	CHECK_INT(size, FILE_SIZE);
	CHECK(!exists("out.tar.part"));
	CHECK(progress_calls > 0);
	CHECK_INT(last_done, FILE_SIZE);
	CHECK_INT(last_total, FILE_SIZE);
	CHECK_INT(count_lines("requests.log", "GET /base.tar range=- status=200"), 1);
	server_stop();
	strbuf_release(&err);
}

TEST(test_http_hash_mismatch)
{
	struct strbuf err = STRBUF_INIT;
	char real[SHA256_HEX_LEN];
	const char *wrong = "0000000000000000000000000000000000000000000000000000000000000001";
	_cleanup_free_ char *u = NULL;

	make_file("base.tar", FILE_SIZE, real);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("base.tar");
	CHECK_INT(fetch_file(u, "out.tar", wrong, &fast_opts, NULL, &err), -EBADMSG);
	CHECK(strstr(strbuf_str(&err), wrong) != NULL);
	CHECK(strstr(strbuf_str(&err), real) != NULL);
	CHECK(strstr(strbuf_str(&err), u) != NULL);
	CHECK(!exists("out.tar"));
	CHECK(!exists("out.tar.part"));
	server_stop();
	strbuf_release(&err);
}

TEST(test_http_dropped_then_resumed)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], ondisk[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;

	make_file("base.tar", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	/* The first two responses break after 70000 bytes each. */
	u = url("base.tar?drop=70000&times=2");
	CHECK_INT(fetch_file(u, "out.tar", want, &fast_opts, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK(sha256_file("out.tar", ondisk, NULL) == 0);
	CHECK_STR(ondisk, want);
	/* The retries asked only for what was missing. */
	CHECK_INT(count_lines("requests.log", "range=- status=200"), 1);
	CHECK_INT(count_lines("requests.log", "range=bytes=70000- status=206"), 1);
	CHECK_INT(count_lines("requests.log", "range=bytes=140000- status=206"), 1);
	CHECK_INT(count_lines("requests.log", "GET "), 3);
	server_stop();
	strbuf_release(&err);
}

TEST(test_http_resume_existing_part)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], ondisk[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL, *data = NULL;
	size_t len;

	make_file("base.tar", FILE_SIZE, want);
	/* An earlier run was killed after 5000 bytes. */
	CHECK(read_file("www/base.tar", FILE_SIZE, &data, &len) == 0);
	CHECK(write_file_atomic("out.tar.part", data, 5000, 0644) == 0);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("base.tar");
	CHECK_INT(fetch_file(u, "out.tar", want, &fast_opts, NULL, &err), 0);
	CHECK(sha256_file("out.tar", ondisk, NULL) == 0);
	CHECK_STR(ondisk, want);
	CHECK_INT(count_lines("requests.log", "range=bytes=5000- status=206"), 1);
	CHECK_INT(count_lines("requests.log", "GET "), 1);

	/* A complete .part left before the rename needs no request at all. */
	CHECK(rename("out.tar", "again.tar.part") == 0);
	CHECK_INT(fetch_file(u, "again.tar", want, &fast_opts, NULL, &err), 0);
	CHECK(exists("again.tar") && !exists("again.tar.part"));
	CHECK_INT(count_lines("requests.log", "GET "), 1);
	server_stop();
	strbuf_release(&err);
}

TEST(test_http_resume_refused_restarts)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], ondisk[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL, *big = NULL;

	make_file("base.tar", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	/* A server that ignores Range: the stale .part is thrown away. */
	CHECK(write_file_atomic("a.tar.part", "garbage", 7, 0644) == 0);
	u = url("base.tar?norange=1");
	CHECK_INT(fetch_file(u, "a.tar", want, &fast_opts, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK(sha256_file("a.tar", ondisk, NULL) == 0);
	CHECK_STR(ondisk, want);

	/* A .part longer than the file: 416 from the server, then a fresh start. */
	big = xcalloc(1, FILE_SIZE + 10);
	CHECK(write_file_atomic("b.tar.part", big, FILE_SIZE + 10, 0644) == 0);
	free(u);
	u = url("base.tar");
	CHECK_INT(fetch_file(u, "b.tar", want, &fast_opts, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK(sha256_file("b.tar", ondisk, NULL) == 0);
	CHECK_STR(ondisk, want);
	CHECK_INT(count_lines("requests.log", "range=bytes=200010- status=416"), 1);
	server_stop();
	strbuf_release(&err);
}

TEST(test_http_500_retried_then_error)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL, *u2 = NULL;
	struct fetch_opts o = fast_opts;

	make_file("base.tar", 1000, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	o.retries = 2;
	u = url("base.tar?status=500&times=1000");
	CHECK_INT(fetch_file(u, "out.tar", want, &o, NULL, &err), -EIO);
	CHECK(strstr(strbuf_str(&err), u) != NULL);
	CHECK(strstr(strbuf_str(&err), "HTTP 500") != NULL);
	CHECK(strstr(strbuf_str(&err), "3 attempts") != NULL);
	CHECK_INT(count_lines("requests.log", " status=500"), 3);
	CHECK(!exists("out.tar"));

	/* Two failures, then the server recovers. */
	strbuf_reset(&err);
	u2 = url("base.tar?status=503&times=2");
	CHECK_INT(fetch_file(u2, "out.tar", want, &o, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(count_lines("requests.log", " status=503"), 2);
	CHECK_INT(count_lines("requests.log", "?status=503&times=2 range=- status=200"), 1);
	CHECK(exists("out.tar"));
	server_stop();
	strbuf_release(&err);
}

TEST(test_http_404_not_retried)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *u = NULL;

	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("missing.tar");
	CHECK_INT(fetch_file(u, "out.tar", NULL, &fast_opts, NULL, &err), -ENOENT);
	CHECK(strstr(strbuf_str(&err), u) != NULL);
	CHECK(strstr(strbuf_str(&err), "HTTP 404") != NULL);
	CHECK_INT(count_lines("requests.log", "GET /missing.tar"), 1);
	CHECK(!exists("out.tar"));
	server_stop();
	strbuf_release(&err);
}

TEST(test_connection_refused)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *u = NULL;
	struct fetch_opts o = fast_opts;

	/* Learn a free port, then stop the server so nothing listens there. */
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	server_stop();
	u = url("base.tar");
	o.retries = 1;
	CHECK_INT(fetch_file(u, "out.tar", NULL, &o, NULL, &err), -ECONNREFUSED);
	CHECK(strstr(strbuf_str(&err), u) != NULL);
	CHECK(strstr(strbuf_str(&err), "2 attempts") != NULL);
	CHECK(!exists("out.tar"));
	strbuf_release(&err);
}

/* A full disk (here: a file size limit) is reported at once, not retried. */
TEST(test_write_error_not_retried)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	struct rlimit old, lim;
	int k;

	make_file("base.tar", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("base.tar");
	signal(SIGXFSZ, SIG_IGN);
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	lim = old;
	lim.rlim_cur = 50000;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	k = fetch_file(u, "out.tar", want, &fast_opts, NULL, &err);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	CHECK_INT(k, -EFBIG);
	CHECK(strstr(strbuf_str(&err), "cannot write 'out.tar.part'") != NULL);
	CHECK(strstr(strbuf_str(&err), "File too large") != NULL);
	CHECK_INT(count_lines("requests.log", "GET "), 1);
	CHECK(!exists("out.tar"));

	/* With room again, the download resumes from what was written. */
	strbuf_reset(&err);
	CHECK_INT(fetch_file(u, "out.tar", want, &fast_opts, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(count_lines("requests.log", "range=bytes=50000- status=206"), 1);
	server_stop();
	strbuf_release(&err);
}

/* Two processes fetching the same file: one downloads, the other waits and uses it. */
TEST(test_concurrent_fetch_same_dest)
{
	char want[SHA256_HEX_LEN], ondisk[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	pid_t pids[2];
	int i, status;

	make_file("base.tar", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("base.tar?delay=500");
	for (i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct strbuf err = STRBUF_INIT;
			int k = fetch_file(u, "out.tar", want, &fast_opts, NULL, &err);

			if (k < 0)
				printf("# child %d: %s\n", i, strbuf_str(&err));
			fflush(stdout);
			_exit(k < 0 ? 1 : 0);
		}
		sleep_ms(100);
	}
	for (i = 0; i < 2; i++) {
		CHECK(waitpid(pids[i], &status, 0) == pids[i]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK(sha256_file("out.tar", ondisk, NULL) == 0);
	CHECK_STR(ondisk, want);
	CHECK(!exists("out.tar.part"));
	CHECK_INT(count_lines("requests.log", "GET "), 1);
	server_stop();
}

TEST(test_redirects)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], cwd[4096];
	_cleanup_free_ char *target = NULL, *u = NULL, *evil = NULL;

	make_file("base.tar", 5000, want);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	/* http -> http is followed. */
	target = url("base.tar");
	u = xasprintf("http://127.0.0.1:%d/redirect?to=%s", server_port, target);
	CHECK_INT(fetch_file(u, "out.tar", want, &fast_opts, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(count_lines("requests.log", "GET /redirect?to="), 1);
	CHECK_INT(count_lines("requests.log", "GET /base.tar range=- status=200"), 1);
	/* A server must not redirect a download to a local file. */
	evil = xasprintf("http://127.0.0.1:%d/redirect?to=file://%s/www/base.tar", server_port,
			 cwd);
	CHECK(fetch_file(evil, "evil.tar", NULL, &fast_opts, NULL, &err) < 0);
	CHECK(strstr(strbuf_str(&err), "/redirect") != NULL);
	CHECK(!exists("evil.tar"));
	server_stop();
	strbuf_release(&err);
}

/* A server that stops sending mid-way: the attempt times out and is resumed. */
TEST(test_stall_times_out_and_resumes)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], ondisk[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	struct fetch_opts o = fast_opts;

	make_file("base.tar", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	o.stall_timeout_s = 1;
	u = url("base.tar?stall=4000&times=1");
	CHECK_INT(fetch_file(u, "out.tar", want, &o, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK(sha256_file("out.tar", ondisk, NULL) == 0);
	CHECK_STR(ondisk, want);
	CHECK_INT(count_lines("requests.log", "range=bytes=100000- status=206"), 1);

	/* Stalling every time: retried, then one clear error. */
	free(u);
	u = url("base.tar?stall=4000&times=100");
	o.retries = 1;
	CHECK_INT(fetch_file(u, "again.tar", want, &o, NULL, &err), -ETIMEDOUT);
	CHECK(strstr(strbuf_str(&err), "no data received for 1 s") != NULL);
	CHECK(strstr(strbuf_str(&err), "2 attempts") != NULL);
	CHECK(!exists("again.tar"));
	server_stop();
	strbuf_release(&err);
}

/* An endless body is cut off at max_size, not written until the disk is full. */
TEST(test_endless_body_refused)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *u = NULL;
	struct fetch_opts o = fast_opts;
	int64_t t0;

	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	o.max_size = 4 << 20;
	u = url("endless?endless=1");
	t0 = monotonic_ms();
	CHECK_INT(fetch_file(u, "out.tar", NULL, &o, NULL, &err), -EFBIG);
	CHECK(seconds_since(t0) < 30);
	CHECK(strstr(strbuf_str(&err), "larger than 4194304 bytes") != NULL);
	CHECK(!exists("out.tar"));
	CHECK(!exists("out.tar.part"));
	/* Not retried: a body too large is not a transient failure. */
	CHECK_INT(count_lines("requests.log", "endless=1"), 1);
	server_stop();
	strbuf_release(&err);
}

/* An announced length beyond max_size is refused before any of it is received. */
TEST(test_announced_length_refused)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	struct fetch_opts o = fast_opts;

	make_file("base.tar", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	o.max_size = 1000;
	u = url("base.tar?delay=3000");
	CHECK_INT(fetch_file(u, "out.tar", want, &o, NULL, &err), -EFBIG);
	CHECK(strstr(strbuf_str(&err), "larger than 1000 bytes") != NULL);
	CHECK(!exists("out.tar.part"));
	CHECK(!exists("out.tar"));
	server_stop();
	strbuf_release(&err);
}

/* A byte now and then resets no stall timer: the speed limit ends the attempt. */
TEST(test_trickle_times_out)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	struct fetch_opts o = fast_opts;
	int64_t t0;

	make_file("small.tar", 40, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	/* 40 bytes at one per 250 ms would complete after 10 s without the limit. */
	o.retries = 1;
	o.min_speed_bps = 100;
	o.min_speed_window_s = 1;
	u = url("small.tar?trickle=250");
	t0 = monotonic_ms();
	CHECK_INT(fetch_file(u, "out.tar", want, &o, NULL, &err), -ETIMEDOUT);
	CHECK(seconds_since(t0) < 8);
	CHECK(strstr(strbuf_str(&err), "2 attempts") != NULL);
	CHECK(!exists("out.tar"));

	/* The overall timeout bounds a fetch even with no speed limit. */
	strbuf_reset(&err);
	o.min_speed_bps = 0;
	o.retries = 5;
	o.total_timeout_s = 2;
	t0 = monotonic_ms();
	CHECK_INT(fetch_file(u, "again.tar", want, &o, NULL, &err), -ETIMEDOUT);
	CHECK(seconds_since(t0) < 6);
	CHECK(strstr(strbuf_str(&err), "not complete after 2 s") != NULL);
	CHECK(!exists("again.tar"));
	server_stop();
	strbuf_release(&err);
}

/* https: verified against the given CA; an unknown certificate is refused, not retried. */
TEST(test_https)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL, *ca = xstrdup(tap_srcpath("tests/helpers/tls/cert.pem"));
	struct fetch_opts o = fast_opts;

	make_file("base.tar", 5000, want);
	if (server_start_tls(true) < 0) {
		CHECK(!"server started");
		return;
	}
	u = xasprintf("https://127.0.0.1:%d/base.tar", server_port);
	o.ca_file = ca;
	CHECK_INT(fetch_file(u, "out.tar", want, &o, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(count_lines("requests.log", "GET /base.tar range=- status=200"), 1);

	/* The system's CAs do not know this certificate. */
	o.ca_file = NULL;
	CHECK_INT(fetch_file(u, "other.tar", want, &o, NULL, &err), -EPROTO);
	CHECK(strstr(strbuf_str(&err), u) != NULL);
	CHECK(strstr(strbuf_str(&err), "certificate") != NULL);
	CHECK(strstr(strbuf_str(&err), "attempts") == NULL);
	printf("# %s\n", strbuf_str(&err));
	CHECK(!exists("other.tar"));
	CHECK_INT(count_lines("requests.log", "GET "), 1);
	server_stop();
	strbuf_release(&err);
}

static int cancel_early(void *userdata, uint64_t done, uint64_t total)
{
	(void)userdata;
	(void)total;
	return done > 0;
}

static struct timespec cancel_start;

static int cancel_after_300ms(void *userdata, uint64_t done, uint64_t total)
{
	struct timespec now;

	(void)userdata;
	(void)done;
	(void)total;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - cancel_start.tv_sec) * 1000 +
		       (now.tv_nsec - cancel_start.tv_nsec) / 1000000 >
	       300;
}

/* Cancelling also works between attempts, while fetch_file waits to retry. */
TEST(test_cancel_during_backoff)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *u = NULL;
	struct fetch_opts o = fast_opts;
	struct timespec end;
	long ms;

	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("base.tar?status=503&times=1000");
	o.retries = 5;
	o.retry_delay_ms = 200; /* 200 + 400 + 800 + ... = 6.2 s without cancelling */
	o.progress = cancel_after_300ms;
	clock_gettime(CLOCK_MONOTONIC, &cancel_start);
	CHECK_INT(fetch_file(u, "out.tar", NULL, &o, NULL, &err), -ECANCELED);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ms = (end.tv_sec - cancel_start.tv_sec) * 1000 +
	     (end.tv_nsec - cancel_start.tv_nsec) / 1000000;
	CHECK(ms < 2000);
	CHECK(strstr(strbuf_str(&err), "cancelled while waiting to retry") != NULL);
	CHECK(strstr(strbuf_str(&err), "503") != NULL);
	server_stop();
	strbuf_release(&err);
}

TEST(test_cancel_keeps_part)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	struct fetch_opts o = fast_opts;

	make_file("base.tar", 4 * FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("base.tar");
	o.progress = cancel_early;
	CHECK_INT(fetch_file(u, "out.tar", want, &o, NULL, &err), -ECANCELED);
	CHECK(!exists("out.tar"));
	CHECK(exists("out.tar.part"));
	server_stop();
	strbuf_release(&err);
}

TEST(test_file_url_and_path)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], got[SHA256_HEX_LEN], cwd[4096];
	_cleanup_free_ char *u = NULL;

	make_file("my base.tar", 3000, want);
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
	u = xasprintf("file://%s/www/my%%20base.tar", cwd);
	CHECK_INT(fetch_file(u, "a.tar", want, &fast_opts, got, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_STR(got, want);
	/* A plain relative path with a space in it. */
	CHECK_INT(fetch_file("www/my base.tar", "b.tar", want, &fast_opts, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK(sha256_file("b.tar", got, NULL) == 0);
	CHECK_STR(got, want);
	/* A missing file is an error at once, with its name. */
	CHECK_INT(fetch_file("www/nope.tar", "c.tar", NULL, &fast_opts, NULL, &err), -ENOENT);
	CHECK(strstr(strbuf_str(&err), "nope.tar") != NULL);
	CHECK(!exists("c.tar"));
	/* A bad sha256 in the request is refused before anything is fetched. */
	strbuf_reset(&err);
	CHECK_INT(fetch_file("www/my base.tar", "d.tar", "abc", &fast_opts, NULL, &err), -EINVAL);
	CHECK(strstr(strbuf_str(&err), "abc") != NULL);
	/* Unsupported scheme. */
	strbuf_reset(&err);
	CHECK_INT(fetch_file("gopher://127.0.0.1/x", "e.tar", NULL, &fast_opts, NULL, &err),
		  -EINVAL);
	CHECK(strstr(strbuf_str(&err), "gopher://") != NULL);
	strbuf_release(&err);
}

/* Read a whole stream in small, odd-sized pieces; its sha256 into hex. */
static int stream_all(const char *u, char hex[SHA256_HEX_LEN], uint64_t *ret_n, struct strbuf *err)
{
	struct fetch_stream *s = NULL;
	struct sha256 *h;
	char buf[7777];
	ssize_t n;
	int r;

	r = fetch_stream_open(u, &fast_opts, &s, err);
	if (r < 0)
		return r;
	h = sha256_new();
	*ret_n = 0;
	while ((n = fetch_stream_read(s, buf, sizeof(buf))) > 0) {
		sha256_update(h, buf, (size_t)n);
		*ret_n += (uint64_t)n;
	}
	sha256_final_hex(h, hex);
	sha256_free(h);
	if (n < 0)
		strbuf_addstr(err, fetch_stream_error(s));
	CHECK_INT(fetch_stream_offset(s), *ret_n);
	fetch_stream_close(s);
	return n < 0 ? (int)n : 0;
}

/* A stream: every byte once, in order; a dropped connection resumed with a Range request. */
TEST(test_stream_plain_and_resumed)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], got[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL, *u2 = NULL, *u3 = NULL;
	uint64_t n = 0;

	make_file("b.bin", FILE_SIZE, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("b.bin");
	CHECK_INT(stream_all(u, got, &n, &err), 0);
	CHECK_STR(got, want);
	CHECK_INT(n, FILE_SIZE);
	u2 = url("b.bin?drop=70000");
	CHECK_INT(stream_all(u2, got, &n, &err), 0);
	CHECK_STR(err.buf ? err.buf : "", "");
	CHECK_STR(got, want);
	CHECK_INT(n, FILE_SIZE);
	CHECK_INT(count_lines("requests.log", "range=bytes=70000- status=206"), 1);
	/* Every connection cut and no range support: an error, never wrong bytes. */
	u3 = url("b.bin?drop=70000&times=100&norange=1");
	CHECK(stream_all(u3, got, &n, &err) < 0);
	CHECK(strstr(strbuf_str(&err), "b.bin") != NULL);
	CHECK(n <= 70000);
	server_stop();
	strbuf_release(&err);
}

/* A 404 fails at the first read with the URL; a file:// stream and a plain path work. */
TEST(test_stream_errors_and_files)
{
	struct strbuf err = STRBUF_INIT;
	char want[SHA256_HEX_LEN], got[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL;
	uint64_t n = 0;

	make_file("c.bin", FILE_SIZE, want);
	CHECK_INT(stream_all("www/c.bin", got, &n, &err), 0);
	CHECK_STR(got, want);
	if (server_start() < 0) {
		CHECK(!"server started");
		return;
	}
	u = url("missing.bin");
	CHECK_INT(stream_all(u, got, &n, &err), -ENOENT);
	CHECK(strstr(strbuf_str(&err), "HTTP 404") != NULL);
	CHECK_INT(n, 0);
	server_stop();
	strbuf_release(&err);
}

/*
 * fetch_ranges: ranges come back byte for byte over one connection; a range
 * cut off is fetched again from where it stopped; a server that ignores
 * Range is told apart (-EOPNOTSUPP); a range past the end is an error.
 */
TEST(test_ranges)
{
	struct fetch_opts o = fast_opts;
	struct strbuf err = STRBUF_INIT;
	struct fetch_ranges *r = NULL;
	char want[SHA256_HEX_LEN];
	_cleanup_free_ char *u = NULL, *u2 = NULL, *u3 = NULL, *all = NULL;
	uint8_t buf[70000];
	size_t len = 0;

	make_file("r.bin", FILE_SIZE, want);
	CHECK(read_file("www/r.bin", FILE_SIZE + 1, &all, &len) == 0);
	if (server_start() < 0 || !all) {
		CHECK(!"server started");
		return;
	}
	u = url("r.bin");
	CHECK_INT(fetch_ranges_open(u, &o, &r, &err), 0);
	CHECK_INT(fetch_ranges_get(r, 0, 24, buf, &err), 0);
	CHECK(!memcmp(buf, all, 24));
	CHECK_INT(fetch_ranges_get(r, 1000, sizeof(buf), buf, &err), 0);
	CHECK(!memcmp(buf, all + 1000, sizeof(buf)));
	CHECK_INT(fetch_ranges_get(r, FILE_SIZE - 5, 5, buf, &err), 0);
	CHECK(!memcmp(buf, all + FILE_SIZE - 5, 5));
	CHECK_INT(fetch_ranges_total(r), FILE_SIZE);
	CHECK_INT(fetch_ranges_received(r), 24 + sizeof(buf) + 5);
	CHECK_INT(count_lines("requests.log", "range=bytes=1000-70999 status=206"), 1);
	/* Past the end: the server's 416 is an error, not bytes. */
	CHECK(fetch_ranges_get(r, FILE_SIZE, 10, buf, &err) < 0);
	CHECK(strstr(strbuf_str(&err), "r.bin") != NULL);
	fetch_ranges_close(r);
	r = NULL;
	/* Cut off after 1000 bytes once: the rest is asked for and arrives. */
	strbuf_reset(&err);
	u2 = url("r.bin?drop=1000");
	CHECK_INT(fetch_ranges_open(u2, &o, &r, &err), 0);
	CHECK_INT(fetch_ranges_get(r, 500, sizeof(buf), buf, &err), 0);
	CHECK(!memcmp(buf, all + 500, sizeof(buf)));
	CHECK_INT(count_lines("requests.log", "range=bytes=1500-70499 status=206"), 1);
	fetch_ranges_close(r);
	r = NULL;
	/* No Range support. */
	u3 = url("r.bin?norange=1");
	CHECK_INT(fetch_ranges_open(u3, &o, &r, &err), 0);
	CHECK_INT(fetch_ranges_get(r, 0, 24, buf, &err), -EOPNOTSUPP);
	CHECK(strstr(strbuf_str(&err), "does not answer range requests") != NULL);
	fetch_ranges_close(r);
	server_stop();
	strbuf_release(&err);
}

int main(void)
{
	/* Tests talk to 127.0.0.1 only; a proxy from the environment must not interfere. */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	RUN(test_http_plain);
	RUN(test_http_hash_mismatch);
	RUN(test_http_dropped_then_resumed);
	RUN(test_http_resume_existing_part);
	RUN(test_http_resume_refused_restarts);
	RUN(test_http_500_retried_then_error);
	RUN(test_http_404_not_retried);
	RUN(test_connection_refused);
	RUN(test_write_error_not_retried);
	RUN(test_concurrent_fetch_same_dest);
	RUN(test_redirects);
	RUN(test_stall_times_out_and_resumes);
	RUN(test_endless_body_refused);
	RUN(test_announced_length_refused);
	RUN(test_trickle_times_out);
	RUN(test_https);
	RUN(test_cancel_keeps_part);
	RUN(test_cancel_during_backoff);
	RUN(test_file_url_and_path);
	RUN(test_stream_plain_and_resumed);
	RUN(test_stream_errors_and_files);
	RUN(test_ranges);
	return tap_done();
}
