/* SPDX-License-Identifier: MIT */
/* Tests for src/update/jsonr.c, manifest.c's checks and channel.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "core/util.h"
#include "tap.h"
#include "update/channel.h"
#include "update/jsonr.h"
#include "update/manifest.h"

static int parse(const char *s, struct jsonr **ret, char *err)
{
	return jsonr_parse(s, strlen(s), ret, err, 256);
}

TEST(test_values)
{
	struct jsonr *d = NULL;
	const struct jsonr_value *v;
	char err[256];

	CHECK(parse(" {\"a\":[1,true,false,null,\"x\\n\\u0041\\/\"],\"b\":{},\"c\":[],"
		    "\"d\":18446744073709551615,\"e\":\"\xc3\xa9\"} ",
		    &d, err) == 0);
	if (!d)
		return;
	CHECK_INT(d->root.type, JSONR_OBJECT);
	CHECK_INT(d->root.n, 5);
	v = jsonr_get(&d->root, "a");
	CHECK(v && v->type == JSONR_ARRAY && v->n == 5);
	if (v && v->n == 5) {
		CHECK_INT(v->items[0].u, 1);
		CHECK_INT(v->items[1].type, JSONR_TRUE);
		CHECK_INT(v->items[2].type, JSONR_FALSE);
		CHECK_INT(v->items[3].type, JSONR_NULL);
		CHECK_STR(v->items[4].s, "x\nA/");
		CHECK_INT(v->items[4].n, 4);
	}
	v = jsonr_get(&d->root, "d");
	CHECK(v && v->u == UINT64_MAX);
	CHECK_STR(jsonr_get(&d->root, "e")->s, "\xc3\xa9");
	CHECK(jsonr_get(&d->root, "zz") == NULL);
	CHECK(jsonr_get(v, "a") == NULL);
	jsonr_free(d);
}

TEST(test_refusals)
{
	static const char *const bad[] = {
		"",
		" ",
		"{",
		"[1,]",
		"{\"a\":1,}",
		"{\"a\" 1}",
		"{a:1}",
		"[1 2]",
		"01",
		"-1",
		"1.5",
		"1e3",
		"18446744073709551616",
		"\"\\u0000\"",
		"\"\\u00e9\"",
		"\"\\ud800\"",
		"\"\\x\"",
		"\"a\nb\"",
		"\"\x7f\"",
		"\"\xc3\"",
		"\"\xc0\xaf\"",
		"\"\xed\xa0\x80\"",
		"{\"a\":1,\"a\":2}",
		"nul",
		"truex",
		"[] []",
		"\"abc",
		"[\"\\u12\"]",
		"'a'",
		"[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]",
	};
	struct jsonr *d = NULL;
	char err[256];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		if (parse(bad[i], &d, err) == 0) {
			printf("#   accepted: %s\n", bad[i]);
			jsonr_free(d);
			CHECK(0);
			continue;
		}
		CHECK(str_startswith(err, "invalid JSON"));
		CHECK(!strchr(err, '\n'));
	}
	/* 16 levels are fine, 17 are not (above). */
	CHECK(parse("[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]", &d, err) == 0);
	jsonr_free(d);
	/* An embedded NUL is a control character. */
	CHECK(jsonr_parse("\"a\0b\"", 5, &d, err, sizeof(err)) < 0);
	CHECK(parse("{\"a\":1,\"b\":2,\"a\":3}", &d, err) < 0);
	CHECK(strstr(err, "repeated") != NULL);
}

TEST(test_limits)
{
	size_t n = JSONR_MAX_SIZE + 1;
	char *big = xmalloc(n), err[256];
	struct jsonr *d = NULL;
	size_t i;

	memset(big, ' ', n);
	big[0] = '1';
	CHECK(jsonr_parse(big, n, &d, err, sizeof(err)) == -EFBIG);
	/* More values than allowed, within the size. */
	n = 2 * (JSONR_MAX_VALUES + 1) + 1;
	CHECK(n <= JSONR_MAX_SIZE);
	big[0] = '[';
	for (i = 1; i + 1 < n; i += 2) {
		big[i] = '0';
		big[i + 1] = ',';
	}
	big[n - 2] = '0';
	big[n - 1] = ']';
	CHECK(jsonr_parse(big, n, &d, err, sizeof(err)) < 0);
	CHECK(strstr(err, "values") != NULL);
	free(big);
}

/* A valid manifest with one chunk; edits below break one thing each. */
static const char good[] =
	"{\"format\":1,\"compatible\":\"board\",\"version\":\"1.0\",\"build_id\":\"\","
	"\"created\":1,\"image\":{\"size\":8192,\"sha256\":\"%s\"},\"compression\":\"zstd\","
	"\"chunk_size\":4096,\"payload\":{\"offset\":100,\"size\":%s,\"sha256\":\"%s\"},"
	"\"chunk_index\":%s,\"chunks\":[{\"offset\":%s,\"size\":4096,\"stored_offset\":0,"
	"\"stored_size\":10,\"sha256\":\"%s\"}]%s}";
#define H "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int try_manifest(const char *psize, const char *index, const char *off, const char *hash,
			const char *extra, char *err)
{
	char buf[2048];
	struct bundle_manifest *m = NULL;
	int r;

	snprintf(buf, sizeof(buf), good, H, psize, H, index, off, hash, extra);
	r = manifest_parse(buf, strlen(buf), &m, err, 512);
	if (r == 0) {
		struct strbuf sb = STRBUF_INIT;

		/* What is read is written back the same. */
		manifest_write(m, &sb);
		CHECK_STR(sb.buf, buf);
		strbuf_release(&sb);
	}
	bundle_manifest_free(m);
	return r;
}

TEST(test_manifest)
{
	char err[512];

	CHECK(try_manifest("10", "null", "4096", H, "", err) == 0);
	CHECK(try_manifest("10", "\"" H "\"", "0", H, "", err) == 0);
	CHECK(try_manifest("11", "null", "0", H, "", err) < 0);
	CHECK(strstr(err, "payload has 11") != NULL);
	CHECK(try_manifest("10", "null", "100", H, "", err) < 0);
	CHECK(try_manifest("10", "null", "8192", H, "", err) < 0);
	CHECK(try_manifest("10", "1", "0", H, "", err) < 0);
	CHECK(try_manifest("10", "null", "0", "0123", "", err) < 0);
	CHECK(try_manifest("10", "null", "0", H, ",\"extra\":1", err) < 0);
	CHECK(strstr(err, "unknown key \"extra\"") != NULL);
	CHECK(!strchr(err, '\n'));
}

TEST(test_channel)
{
	struct channel_entry e = {(char *)"board",
				  (char *)"1.2",
				  (char *)"http://h/b.bundle",
				  {0},
				  42},
			     got;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;
	char err[512];

	e.sha256[0] = 0xab;
	CHECK(channel_update(NULL, 0, "stable", &e, &a, err, sizeof(err)) == 0);
	e.version = (char *)"1.3";
	CHECK(channel_update(a.buf, a.len, "testing", &e, &b, err, sizeof(err)) == 0);
	CHECK(channel_parse(b.buf, b.len, "stable", &got, err, sizeof(err)) == 0);
	CHECK_STR(got.version, "1.2");
	CHECK_STR(got.url, "http://h/b.bundle");
	CHECK_INT(got.size, 42);
	CHECK_INT(got.sha256[0], 0xab);
	channel_entry_release(&got);
	CHECK(channel_parse(b.buf, b.len, "testing", &got, err, sizeof(err)) == 0);
	CHECK_STR(got.version, "1.3");
	channel_entry_release(&got);
	CHECK(channel_parse(b.buf, b.len, "beta", &got, err, sizeof(err)) == -ENOENT);
	CHECK(channel_parse("{\"format\":2,\"channels\":{}}", 26, "x", &got, err, sizeof(err)) ==
	      -EINVAL);
	CHECK(strstr(err, "format 2") != NULL);
	CHECK(channel_update(NULL, 0, "../x", &e, &a, err, sizeof(err)) < 0);
	strbuf_release(&a);
	strbuf_release(&b);
}

/* Cloud API answers: any number, while jsonr_parse() still refuses them. */
TEST(test_api_numbers)
{
	static const char doc[] = "{\"a\": 1.5e9, \"b\": -3, \"c\": 7, \"d\": 0.25, "
				  "\"e\": 18446744073709551616, \"s\": \"x\"}";
	static const char *const bad[] = { "-", "1.", "1e", "-01", ".5", "1e+", "--1" };
	struct jsonr *d = NULL;
	char err[128];
	size_t i;

	CHECK_INT(jsonr_parse(doc, strlen(doc), &d, err, sizeof(err)), -EINVAL);
	CHECK_INT(jsonr_parse_api(doc, strlen(doc), &d, err, sizeof(err)), 0);
	if (!d)
		return;
	CHECK_INT(jsonr_get(&d->root, "a")->type, JSONR_NUMBER);
	CHECK_INT(jsonr_get(&d->root, "b")->type, JSONR_NUMBER);
	CHECK_INT(jsonr_get(&d->root, "c")->type, JSONR_UINT);
	CHECK_INT(jsonr_get(&d->root, "c")->u, 7);
	CHECK_INT(jsonr_get(&d->root, "d")->type, JSONR_NUMBER);
	CHECK_INT(jsonr_get(&d->root, "e")->type, JSONR_NUMBER);
	CHECK_STR(jsonr_get(&d->root, "s")->s, "x");
	jsonr_free(d);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		d = NULL;
		CHECK_INT(jsonr_parse_api(bad[i], strlen(bad[i]), &d, err, sizeof(err)), -EINVAL);
		jsonr_free(d);
	}
}

int main(void)
{
	RUN(test_api_numbers);
	RUN(test_values);
	RUN(test_refusals);
	RUN(test_limits);
	RUN(test_manifest);
	RUN(test_channel);
	return tap_done();
}
