/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_AWS_AUTH_H
#define IMGFORGE_AWS_AUTH_H

#include <stdbool.h>
#include <time.h>

#include "core/util.h"

/*
 * What every AWS-compatible API call needs (AWS itself, and Scaleway's S3):
 * credentials and region from the standard places, the endpoint of a
 * service, and Signature Version 4. The secret never leaves this struct:
 * nothing here prints, logs or writes it.
 */
struct aws_config {
	char *access_key_id;
	char *secret_access_key;
	char *session_token; /* NULL unless temporary credentials */
	char *region;	     /* NULL when none is configured */
	char *profile;	     /* the profile read, for messages */
};

/*
 * Load the credentials and region as the AWS CLI and SDKs do:
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, else the
 * profile AWS_PROFILE (default "default") of ~/.aws/credentials
 * (AWS_SHARED_CREDENTIALS_FILE) and ~/.aws/config (AWS_CONFIG_FILE); the
 * region from region (when not NULL), AWS_REGION, AWS_DEFAULT_REGION, then
 * the profile's region. -ENOKEY with one line saying where to put them.
 */
int aws_config_load(const char *region, struct aws_config *ret, struct strbuf *err);
void aws_config_release(struct aws_config *c);

/*
 * The base URL of service ("s3", "ec2", "ebs") in region: the
 * AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL override (*ret_custom set:
 * S3 then uses path-style addressing), else https://<service>.<region>.
 * amazonaws.com. Malloc'd, without a trailing '/'.
 */
char *aws_endpoint(const char *service, const char *region, bool *ret_custom);

/* One request to sign. */
struct sigv4 {
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token; /* NULL: none */
	const char *region;
	const char *service; /* the signing name: "s3", "ec2", "ebs" */
	time_t now;	     /* 0: the current time */
};

/*
 * Sign a request with AWS Signature Version 4. url holds the path and query
 * as they are sent (already percent-encoded); headers are the request's own
 * "Name: value" lines (NULL-terminated, may be NULL), all signed;
 * payload_sha256 is the hex SHA-256 of the body or "UNSIGNED-PAYLOAD".
 * *ret is a new NULL-terminated list of the headers to send: the given
 * ones, then Host, X-Amz-Date, X-Amz-Content-Sha256 (S3), X-Amz-Security-
 * Token (when a session token is set) and Authorization; free it with
 * strv_free(). -EINVAL for a URL it cannot read.
 */
int sigv4_sign(const struct sigv4 *s, const char *method, const char *url,
	       const char *const *headers, const char *payload_sha256, char ***ret,
	       struct strbuf *err);

void strv_free(char **v);

#endif
