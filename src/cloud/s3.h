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
};

/* The error of an answer: "Code: Message" from an S3 or EC2 error document, or the status. */
void aws_error_text(const struct http_response *resp, struct strbuf *sb, char **ret_code);
/* What to do about an error code of S3 or EC2 (a sentence), or NULL. */
const char *aws_error_hint(const char *code);

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

#endif
