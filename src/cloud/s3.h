/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_S3_H
#define IMGFORGE_S3_H

#include <stdbool.h>
#include <stdint.h>

#include "cloud/aws-auth.h"
#include "cloud/cloud.h"
#include "net/http.h"

/*
 * S3 (AWS, Scaleway Object Storage, any S3 with SigV4): a file uploaded as
 * a multipart upload, resumable across runs.
 */
struct s3 {
	const struct aws_config *cfg; /* credentials and region (the signing region) */
	const char *endpoint;	      /* "https://s3.eu-west-3.amazonaws.com", no trailing '/' */
	bool path_style;	      /* endpoint/bucket/key rather than bucket.endpoint/key */
	const char *creds_hint;	      /* where the credentials come from, for messages */
	/* s3-object.c's requests: transient failures retried, first delay (0: http's defaults). */
	unsigned retries, retry_delay_ms;
};

/* The error of an answer: "Code: Message" from an S3 or EC2 error document, or the status. */
void aws_error_text(const struct http_response *resp, struct strbuf *sb, char **ret_code);
/* What to do about an error code of S3 or EC2 (a sentence), or NULL. */
const char *aws_error_hint(const char *code);
/*
 * After an error line: "; HINT" (hint, or aws_error_hint(code) when NULL),
 * then where the credentials come from when code says they are wrong.
 */
void s3_add_hint(struct strbuf *err, const struct s3 *s, const char *code, const char *hint);

/*
 * Upload the file path to bucket/key as a multipart upload of 8 MiB parts
 * (more when the file would need more than 10000), each part's SHA-256
 * signed (S3 refuses a part that arrives different).
 *
 * Resumable: state_dir/upload.json holds the upload id and the parts sent
 * with their ETags, rewritten durably after each part. A later call with
 * the same file, bucket and key asks S3 which parts it has (ListParts) and
 * sends only the others. A refusal (an answer other than a transient
 * error) aborts the upload (AbortMultipartUpload) and removes the state;
 * a lost connection keeps both, to resume. On success the state is
 * removed and *ret_etag (may be NULL) is the object's ETag.
 */
int s3_upload(const struct s3 *s, const char *bucket, const char *key, const char *path,
	      const char *state_dir, cloud_progress_fn progress, void *userdata, char **ret_etag,
	      struct strbuf *err);

/* The URL of bucket/key (key percent-encoded here). Malloc'd. */
char *s3_object_url(const struct s3 *s, const char *bucket, const char *key);

/*
 * One signed request to an AWS-style API: body (may be NULL) of body_len,
 * extra headers (NULL-terminated, may be NULL). resp is the caller's. 0 when an answer
 * came (any status), -errno with err set when none did.
 */
int aws_request(const struct aws_config *cfg, const char *service, const char *method,
		const char *url, const char *const *headers, const void *body, size_t body_len,
		struct http_response *resp, struct strbuf *err);

/*
 * req (method, URL, body) signed with cfg for service before every attempt
 * (SigV4 over the time of the attempt); payload_sha256 the hex SHA-256 of
 * the body or "UNSIGNED-PAYLOAD"; headers the request's own, signed too.
 * As http_request(): 0 when an answer came, whatever its status.
 */
int aws_signed_request(const struct aws_config *cfg, const char *service, struct http_request *req,
		       const char *payload_sha256, const char *const *headers,
		       struct http_response *resp, struct strbuf *err);

/*
 * Single objects (s3-object.c). Each returns -errno with one line in err
 * naming 's3://bucket/key', S3's error code and what to do; a server that
 * does not answer is the line of http_request() (the URL, curl's reason).
 */

/*
 * HEAD: 1 when bucket/key exists (*ret_size its size, *ret_sha256 the
 * SHA-256 an s3_upload() recorded in its metadata or NULL; either may be
 * NULL), 0 when S3 says it does not.
 */
int s3_head(const struct s3 *s, const char *bucket, const char *key, uint64_t *ret_size,
	    char **ret_sha256, struct strbuf *err);

/*
 * GET bucket/key into the file open as fd (truncated, written from offset
 * 0, streamed: any size), *ret_size (may be NULL) the bytes written.
 * -ENOENT when there is no such object. The caller checks what it got.
 */
int s3_get_fd(const struct s3 *s, const char *bucket, const char *key, int fd, uint64_t *ret_size,
	      struct strbuf *err);

/* GET a small object into memory (at most max bytes, NUL-terminated); -ENOENT when absent. */
int s3_get_data(const struct s3 *s, const char *bucket, const char *key, size_t max, char **ret,
		size_t *ret_len, struct strbuf *err);

/* PUT len bytes of data as bucket/key (its SHA-256 signed). */
int s3_put_data(const struct s3 *s, const char *bucket, const char *key, const void *data,
		size_t len, struct strbuf *err);

/*
 * PUT the file path as bucket/key: one signed request up to 64 MiB, an
 * s3_upload() (resumable, its state in state_dir) beyond.
 */
int s3_put_file(const struct s3 *s, const char *bucket, const char *key, const char *path,
		const char *state_dir, struct strbuf *err);

#endif
