/* SPDX-License-Identifier: MIT */
/*
 * The shared store's URLs (remote/remote.c): s3://BUCKET[/PREFIX] read into
 * a bucket and a prefix, the objects' names under it, and what is refused.
 * Talking to S3 is tests/e2e/t3510-store-s3.sh's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "remote/remote.h"
#include "core/util.h"
#include "tap.h"

#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void creds(void)
{
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
	setenv("AWS_CONFIG_FILE", "/dev/null", 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null", 1);
	unsetenv("AWS_PROFILE");
}

static void check_url(const char *url, const char *canon, const char *object)
{
	struct strbuf err = STRBUF_INIT;
	struct remote *r = NULL;
	char *o;

	CHECK_INT(remote_open(url, &r, &err), 0);
	if (!r)
		return;
	CHECK_STR(remote_url(r), canon);
	o = remote_object_url(r, SHA);
	CHECK_STR(o, object);
	free(o);
	remote_close(r);
	strbuf_release(&err);
}

TEST(test_urls)
{
	creds();
	check_url("s3://bucket", "s3://bucket", "s3://bucket/objects/sha256/" SHA);
	check_url("s3://bucket/", "s3://bucket", "s3://bucket/objects/sha256/" SHA);
	check_url("s3://my.bucket-1/team/a//", "s3://my.bucket-1/team/a",
		  "s3://my.bucket-1/team/a/objects/sha256/" SHA);
}

static void check_refused(const char *url, int want, const char *msg)
{
	struct strbuf err = STRBUF_INIT;
	struct remote *r = NULL;

	CHECK_INT(remote_open(url, &r, &err), want);
	CHECK(r == NULL);
	CHECK(strstr(strbuf_str(&err), msg) != NULL);
	CHECK(strchr(strbuf_str(&err), '\n') == NULL);
	strbuf_release(&err);
}

TEST(test_refused)
{
	creds();
	check_refused("http://bucket/x", -EINVAL, "not an s3:// URL");
	check_refused("s3://", -EINVAL, "is not a bucket name");
	check_refused("s3://ab", -EINVAL, "is not a bucket name");
	check_refused("s3://Bucket", -EINVAL, "is not a bucket name");
	check_refused("s3://-bucket/x", -EINVAL, "is not a bucket name");
	check_refused("s3://bucket_x", -EINVAL, "is not a bucket name");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	check_refused("s3://bucket/p", -ENOKEY, "(for the store 's3://bucket/p')");
}

TEST(test_location)
{
	unsetenv("IMGFORGE_STORE");
	CHECK(remote_location(NULL) == NULL);
	setenv("IMGFORGE_STORE", "", 1);
	CHECK(remote_location(NULL) == NULL);
	setenv("IMGFORGE_STORE", "s3://env", 1);
	CHECK_STR(remote_location(NULL), "s3://env");
	CHECK_STR(remote_location("s3://opt"), "s3://opt");
}

int main(void)
{
	RUN(test_urls);
	RUN(test_refused);
	RUN(test_location);
	return tap_done();
}
