/* SPDX-License-Identifier: MIT */
/*
 * Single S3 objects (see s3.h): HEAD, GET into a file or memory, PUT of
 * data or a file. What the shared store (src/remote/) keeps objects with;
 * large files go through s3.c's resumable multipart upload.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloud/s3.h"
#include "core/hash.h"
#include "core/util.h"

#define SINGLE_PUT_MAX (64u << 20)

static void prepare(const struct s3 *s, struct http_request *req, const char *method,
		    const char *url)
{
	req->method = method;
	req->url = url;
	req->timeout_s = 0;
	if (s->retries)
		req->retries = s->retries;
	if (s->retry_delay_ms)
		req->retry_delay_ms = s->retry_delay_ms;
	/* A store that does not answer is said within seconds, not after 30. */
	req->connect_timeout_s = 10;
}

/* "cannot WHAT 's3://bucket/key': Code: Message; what to do". */
static void object_error(struct strbuf *err, const struct s3 *s, const struct http_response *resp,
			 const char *what, const char *bucket, const char *key)
{
	_cleanup_free_ char *code = NULL;

	strbuf_addf(err, "cannot %s 's3://%s/%s': ", what, bucket, key);
	aws_error_text(resp, err, &code);
	if (!code && resp->status == 403)
		code = xstrdup("AccessDenied");
	if (!code && resp->status == 404)
		code = xstrdup("NoSuchBucket");
	s3_add_hint(err, s, code,
		    code && !strcmp(code, "NoSuchBucket")
			    ? "create the bucket, or name one that exists"
			    : NULL);
}

/* A 404 is "no such object" only when S3 says NoSuchKey (or a HEAD, which has no body). */
static bool no_such_key(const struct http_response *resp, bool head)
{
	_cleanup_free_ char *code = NULL;
	struct strbuf sb = STRBUF_INIT;

	if (resp->status != 404)
		return false;
	if (head)
		return true;
	aws_error_text(resp, &sb, &code);
	strbuf_release(&sb);
	return code && !strcmp(code, "NoSuchKey");
}

int s3_head(const struct s3 *s, const char *bucket, const char *key, uint64_t *ret_size,
	    char **ret_sha256, struct strbuf *err)
{
	_cleanup_free_ char *url = s3_object_url(s, bucket, key);
	char empty[SHA256_HEX_LEN];
	struct http_request req = HTTP_REQUEST_INIT;
	struct http_response resp = {0};
	int k;

	sha256_hex("", 0, empty);
	prepare(s, &req, "HEAD", url);
	k = aws_signed_request(s->cfg, "s3", &req, empty, NULL, &resp, err);
	if (k < 0)
		goto out;
	if (resp.status == 200) {
		_cleanup_free_ char *len = http_response_header(&resp, "Content-Length");

		if (ret_size)
			*ret_size = len ? strtoull(len, NULL, 10) : 0;
		if (ret_sha256)
			*ret_sha256 = http_response_header(&resp, "x-amz-meta-imgforge-sha256");
		k = 1;
	} else if (no_such_key(&resp, true)) {
		k = 0;
	} else {
		object_error(err, s, &resp, "look up", bucket, key);
		k = -EACCES;
	}
out:
	http_response_release(&resp);
	return k;
}

/*
 * GET bucket/key: into the file open as fd (fd >= 0, streamed), or into
 * resp->body (at most max bytes). 0 once S3 answered 200; -ENOENT when
 * there is no such object; other -errno with err set.
 */
static int get(const struct s3 *s, const char *bucket, const char *key, int fd, size_t max,
	       struct http_response *resp, struct strbuf *err)
{
	_cleanup_free_ char *url = s3_object_url(s, bucket, key);
	char empty[SHA256_HEX_LEN];
	struct http_request req = HTTP_REQUEST_INIT;
	int k;

	sha256_hex("", 0, empty);
	prepare(s, &req, "GET", url);
	if (fd >= 0) {
		req.body_out = true;
		req.body_out_fd = fd;
	} else {
		req.max_response = max;
	}
	k = aws_signed_request(s->cfg, "s3", &req, empty, NULL, resp, err);
	if (k < 0 || resp->status == 200)
		return k;
	if (no_such_key(resp, false)) {
		strbuf_addf(err, "'s3://%s/%s' does not exist", bucket, key);
		return -ENOENT;
	}
	object_error(err, s, resp, "download", bucket, key);
	return -EACCES;
}

int s3_get_fd(const struct s3 *s, const char *bucket, const char *key, int fd, uint64_t *ret_size,
	      struct strbuf *err)
{
	struct http_response resp = {0};
	struct stat st;
	int k;

	k = get(s, bucket, key, fd, 0, &resp, err);
	if (k == 0 && fstat(fd, &st) < 0) {
		k = -errno;
		strbuf_addf(err, "cannot read back 's3://%s/%s': %s", bucket, key, strerror(errno));
	} else if (k == 0 && ret_size) {
		*ret_size = (uint64_t)st.st_size;
	}
	http_response_release(&resp);
	return k;
}

int s3_get_data(const struct s3 *s, const char *bucket, const char *key, size_t max, char **ret,
		size_t *ret_len, struct strbuf *err)
{
	struct http_response resp = {0};
	int k;

	k = get(s, bucket, key, -1, max, &resp, err);
	if (k == 0) {
		*ret_len = resp.body.len;
		strbuf_addch(&resp.body, '\0'); /* a body of 0 bytes still gets its buffer */
		*ret = strbuf_detach(&resp.body);
	}
	http_response_release(&resp);
	return k;
}

static int put(const struct s3 *s, const char *bucket, const char *key, const void *data, int fd,
	       uint64_t len, const char *sha256, struct strbuf *err)
{
	_cleanup_free_ char *url = s3_object_url(s, bucket, key);
	static const char *const hdr[] = {"Content-Type: application/octet-stream", NULL};
	struct http_request req = HTTP_REQUEST_INIT;
	struct http_response resp = {0};
	int k;

	prepare(s, &req, "PUT", url);
	req.body = data;
	req.body_fd = fd;
	req.body_len = len;
	k = aws_signed_request(s->cfg, "s3", &req, sha256, hdr, &resp, err);
	if (k < 0)
		goto out;
	if (resp.status != 200) {
		object_error(err, s, &resp, "upload", bucket, key);
		k = -EACCES;
	}
out:
	http_response_release(&resp);
	return k;
}

int s3_put_data(const struct s3 *s, const char *bucket, const char *key, const void *data,
		size_t len, struct strbuf *err)
{
	char hash[SHA256_HEX_LEN];

	sha256_hex(data ? data : "", data ? len : 0, hash);
	return put(s, bucket, key, data ? data : "", -1, len, hash, err);
}

int s3_put_file(const struct s3 *s, const char *bucket, const char *key, const char *path,
		const char *state_dir, struct strbuf *err)
{
	_cleanup_close_ int fd = -1;
	char hash[SHA256_HEX_LEN];
	struct stat st;
	int k;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		strbuf_addf(err, "cannot open '%s': %s", path, strerror(errno));
		return -errno;
	}
	if ((uint64_t)st.st_size > SINGLE_PUT_MAX)
		return s3_upload(s, bucket, key, path, state_dir, NULL, NULL, NULL, err);
	k = sha256_fd_range(fd, 0, (uint64_t)st.st_size, hash);
	if (k < 0) {
		strbuf_addf(err, "cannot read '%s': %s", path, strerror(-k));
		return k;
	}
	return put(s, bucket, key, NULL, fd, (uint64_t)st.st_size, hash, err);
}
