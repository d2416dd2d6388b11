/* SPDX-License-Identifier: MIT */
/*
 * SigV4 (cloud/aws-auth.c) against AWS's documented examples (the
 * Signature Version 4 test suite and the S3 examples, their values written
 * here from the documentation), against python3-botocore signing the same
 * requests, and the credentials read from the environment and ~/.aws.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/aws-auth.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/util.h"
#include "tap.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const char *find(char **h, const char *prefix)
{
	size_t i;

	for (i = 0; h && h[i]; i++)
		if (str_startswith(h[i], prefix))
			return h[i] + strlen(prefix);
	return "";
}

/* 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite. */
#define SUITE_TIME 1440938160
/* 2013-05-24T00:00:00Z, the time of the S3 examples. */
#define S3_TIME 1369353600

TEST(test_suite_get_vanilla)
{
	const struct sigv4 s = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
				NULL,	       "us-east-1",
				"service",     SUITE_TIME};
	struct strbuf err = STRBUF_INIT;
	char **h = NULL;

	CHECK_INT(sigv4_sign(&s, "GET", "https://example.amazonaws.com/", NULL, EMPTY_SHA256, &h,
			     &err),
		  0);
	CHECK_STR(
		find(h, "Authorization: "),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
		"SignedHeaders=host;x-amz-date, "
		"Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
	CHECK_STR(find(h, "X-Amz-Date: "), "20150830T123600Z");
	CHECK_STR(find(h, "Host: "), "example.amazonaws.com");
	strv_free(h);
}

TEST(test_suite_query_order)
{
	const struct sigv4 s = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
				NULL,	       "us-east-1",
				"service",     SUITE_TIME};
	struct strbuf err = STRBUF_INIT;
	char **h = NULL;

	/* get-vanilla-query-order-key-case: parameters signed sorted, whatever the order sent. */
	CHECK_INT(sigv4_sign(&s, "GET",
			     "https://example.amazonaws.com/?Param2=value2&Param1=value1", NULL,
			     EMPTY_SHA256, &h, &err),
		  0);
	CHECK_STR(
		find(h, "Authorization: "),
		"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
		"SignedHeaders=host;x-amz-date, "
		"Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
	strv_free(h);
}

TEST(test_s3_get_object_example)
{
	/* The S3 documentation's "GET Object" example: a range of examplebucket/test.txt. */
	const struct sigv4 s = {"AKIAIOSFODNN7EXAMPLE",
				"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
				NULL,
				"us-east-1",
				"s3",
				S3_TIME};
	const char *const hdr[] = {"Range: bytes=0-9", NULL};
	struct strbuf err = STRBUF_INIT;
	char **h = NULL;

	CHECK_INT(sigv4_sign(&s, "GET", "https://examplebucket.s3.amazonaws.com/test.txt", hdr,
			     EMPTY_SHA256, &h, &err),
		  0);
	CHECK_STR(find(h, "Authorization: "),
		  "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
		  "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
		  "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
	CHECK_STR(find(h, "X-Amz-Content-Sha256: "), EMPTY_SHA256);
	CHECK_STR(find(h, "Range: "), "bytes=0-9");
	strv_free(h);
}

/* What botocore's signer says for the same request: its Authorization header. */
static char *botocore_sign(const char *service, const char *method, const char *url,
			   const char *body, const char *token, const char *hdr_name,
			   const char *hdr_value)
{
	struct strbuf cmd = STRBUF_INIT;
	char line[1024] = "";
	FILE *p;

	strbuf_addf(&cmd,
		    "python3 - <<'EOF'\n"
		    "import datetime\n"
		    "from unittest import mock\n"
		    "from botocore.auth import SigV4Auth, S3SigV4Auth\n"
		    "from botocore.awsrequest import AWSRequest\n"
		    "from botocore.credentials import Credentials\n"
		    "r = AWSRequest(method='%s', url='%s', data=b'%s', headers={'%s': '%s'})\n"
		    "c = Credentials('AKIDTEST', 'secret/with+chars', %s)\n"
		    "a = (S3SigV4Auth if '%s' == 's3' else SigV4Auth)(c, '%s', 'eu-west-3')\n"
		    "import botocore.auth as ba\n"
		    "t = datetime.datetime(2026, 1, 2, 3, 4, 5)\n"
		    "if hasattr(ba, 'get_current_datetime'):\n"
		    "    ba.get_current_datetime = lambda *a, **k: t\n"
		    "    a.add_auth(r)\n"
		    "else:\n"
		    "    with mock.patch('botocore.auth.datetime') as d:\n"
		    "        d.datetime.utcnow.return_value = t\n"
		    "        a.add_auth(r)\n"
		    "print(r.headers['Authorization'])\n"
		    "EOF\n",
		    method, url, body, hdr_name, hdr_value, token ? "'tok'" : "None", service,
		    service);
	p = popen(cmd.buf, "r");
	strbuf_release(&cmd);
	if (!p)
		return NULL;
	if (!fgets(line, sizeof(line), p))
		line[0] = 0;
	pclose(p);
	line[strcspn(line, "\n")] = 0;
	return xstrdup(line);
}

TEST(test_botocore_agrees)
{
	static const struct {
		const char *service, *method, *url, *body, *hname, *hvalue;
		bool token;
	} cases[] = {
		{"s3", "PUT",
		 "http://127.0.0.1:4568/bucket/a%20b/disk.vmdk?partNumber=3&uploadId=x~y", "part",
		 "Content-Type", "application/octet-stream", false},
		{"s3", "POST", "https://s3.eu-west-3.amazonaws.com/bucket/k?uploads", "",
		 "X-Amz-Meta-B", "  two   spaces ", true},
		{"ec2", "POST", "https://ec2.eu-west-3.amazonaws.com/",
		 "Action=DescribeImages&Version=2016-11-15", "Content-Type",
		 "application/x-www-form-urlencoded; charset=utf-8", false},
		{"ebs", "PUT", "http://127.0.0.1:9/snapshots/snap-1/blocks/7", "blk",
		 "x-amz-Data-Length", "3", true},
	};
	size_t i;

	if (system("python3 -c 'import botocore' 2>/dev/null")) {
		fprintf(stderr, "missing python3 module botocore: install the Debian package "
				"python3-botocore (make deps does)\n");
		CHECK(0);
		return;
	}
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct sigv4 s = {
			"AKIDTEST",  "secret/with+chars", cases[i].token ? "tok" : NULL,
			"eu-west-3", cases[i].service,	  1767323045};
		const char *const hdr[] = {NULL, NULL};
		_cleanup_free_ char *h0 = xasprintf("%s: %s", cases[i].hname, cases[i].hvalue);
		_cleanup_free_ char *want = NULL;
		char hash[SHA256_HEX_LEN];
		struct strbuf err = STRBUF_INIT;
		char **h = NULL;

		((const char **)hdr)[0] = h0;
		sha256_hex(cases[i].body, strlen(cases[i].body), hash);
		want = botocore_sign(cases[i].service, cases[i].method, cases[i].url, cases[i].body,
				     cases[i].token ? "tok" : NULL, cases[i].hname,
				     cases[i].hvalue);
		CHECK(want && str_startswith(want, "AWS4-HMAC-SHA256 "));
		CHECK_INT(sigv4_sign(&s, cases[i].method, cases[i].url, hdr, hash, &h, &err), 0);
		CHECK_STR(find(h, "Authorization: "), want ? want : "");
		strv_free(h);
	}
}

TEST(test_credentials)
{
	struct aws_config c = {0};
	struct strbuf err = STRBUF_INIT;

	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_DEFAULT_PROFILE");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");
	unsetenv("AWS_CONFIG_FILE");
	setenv("HOME", ".", 1);
	CHECK_INT(aws_config_load(NULL, &c, &err), -ENOKEY);
	CHECK(strstr(strbuf_str(&err), "profile 'default' of './.aws/credentials'") != NULL);

	CHECK_INT(mkdir_p(".aws", 0700), 0);
	CHECK_INT(write_file_atomic(
			  ".aws/credentials",
			  "[default]\naws_access_key_id = AKD\naws_secret_access_key=SD\n"
			  "[work]\n aws_access_key_id = AKW \naws_secret_access_key = SW\n"
			  "aws_session_token = TW\n",
			  strlen("[default]\naws_access_key_id = AKD\naws_secret_access_key=SD\n"
				 "[work]\n aws_access_key_id = AKW \naws_secret_access_key = SW\n"
				 "aws_session_token = TW\n"),
			  0600),
		  0);
	CHECK_INT(write_file_atomic(
			  ".aws/config",
			  "[default]\nregion = eu-west-1\n[profile work]\nregion=ap-south-1\n",
			  strlen("[default]\nregion = eu-west-1\n[profile "
				 "work]\nregion=ap-south-1\n"),
			  0600),
		  0);
	strbuf_reset(&err);
	CHECK_INT(aws_config_load(NULL, &c, &err), 0);
	CHECK_STR(c.access_key_id, "AKD");
	CHECK_STR(c.secret_access_key, "SD");
	CHECK(c.session_token == NULL);
	CHECK_STR(c.region, "eu-west-1");
	aws_config_release(&c);

	setenv("AWS_PROFILE", "work", 1);
	CHECK_INT(aws_config_load(NULL, &c, &err), 0);
	CHECK_STR(c.access_key_id, "AKW");
	CHECK_STR(c.session_token, "TW");
	CHECK_STR(c.region, "ap-south-1");
	aws_config_release(&c);

	/* The environment wins over the files, --region over both. */
	setenv("AWS_ACCESS_KEY_ID", "AKE", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SE", 1);
	setenv("AWS_REGION", "us-west-2", 1);
	CHECK_INT(aws_config_load(NULL, &c, &err), 0);
	CHECK_STR(c.access_key_id, "AKE");
	CHECK(c.session_token == NULL);
	CHECK_STR(c.region, "us-west-2");
	aws_config_release(&c);
	CHECK_INT(aws_config_load("eu-central-1", &c, &err), 0);
	CHECK_STR(c.region, "eu-central-1");
	aws_config_release(&c);
	strbuf_release(&err);
}

TEST(test_endpoints)
{
	bool custom = true;
	char *u;

	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_S3");
	u = aws_endpoint("ec2", "eu-west-3", &custom);
	CHECK_STR(u, "https://ec2.eu-west-3.amazonaws.com");
	CHECK(!custom);
	free(u);
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1/", 1);
	setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:2", 1);
	u = aws_endpoint("s3", "eu-west-3", &custom);
	CHECK_STR(u, "http://127.0.0.1:2");
	CHECK(custom);
	free(u);
	u = aws_endpoint("ebs", "eu-west-3", &custom);
	CHECK_STR(u, "http://127.0.0.1:1");
	free(u);
}

int main(void)
{
	RUN(test_suite_get_vanilla);
	RUN(test_suite_query_order);
	RUN(test_s3_get_object_example);
	RUN(test_botocore_agrees);
	RUN(test_credentials);
	RUN(test_endpoints);
	return tap_done();
}
