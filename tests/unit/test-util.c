/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>

#include "core/hash.h"
#include "core/json.h"
#include "tap.h"
#include "core/util.h"

TEST(test_parse_size)
{
	uint64_t v = 0;

	CHECK_INT(parse_size("4096", &v), 0);
	CHECK_INT(v, 4096);
	CHECK_INT(parse_size("1536M", &v), 0);
	CHECK_INT(v, 1536ULL << 20);
	CHECK_INT(parse_size("4G", &v), 0);
	CHECK_INT(v, 4ULL << 30);
	CHECK_INT(parse_size("512MiB", &v), 0);
	CHECK_INT(v, 512ULL << 20);
	CHECK_INT(parse_size("2K", &v), 0);
	CHECK_INT(v, 2048);
	CHECK_INT(parse_size("lots", &v), -EINVAL);
	CHECK_INT(parse_size("", &v), -EINVAL);
	CHECK_INT(parse_size("12X", &v), -EINVAL);
	CHECK_INT(parse_size("-1", &v), -EINVAL);
	CHECK_INT(parse_size("99999999999999999999", &v), -ERANGE);
	CHECK_INT(parse_size("99999999999T", &v), -ERANGE);
}

TEST(test_strbuf)
{
	struct strbuf sb = STRBUF_INIT;
	char *s;
	int i;

	CHECK_STR(strbuf_str(&sb), "");
	for (i = 0; i < 1000; i++)
		strbuf_addf(&sb, "%d,", i);
	CHECK(str_startswith(sb.buf, "0,1,2,"));
	CHECK(str_endswith(sb.buf, "998,999,"));
	s = strbuf_detach(&sb);
	CHECK(sb.buf == NULL);
	free(s);
}

TEST(test_distance)
{
	CHECK_INT(str_distance("packages", "pakages"), 1);
	CHECK_INT(str_distance("overlays", "overlay"), 1);
	CHECK_INT(str_distance("abc", "abc"), 0);
	CHECK(str_distance("image", "services") > 3);
}

TEST(test_sha256)
{
	char hex[SHA256_HEX_LEN];

	sha256_hex("abc", 3, hex);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(write_file_atomic("f", "abc", 3, 0644) == 0);
	CHECK(sha256_file("f", hex, NULL) == 0);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	CHECK(is_sha256_hex(hex));
	CHECK(!is_sha256_hex("abc"));
}

TEST(test_json)
{
	struct strbuf sb = STRBUF_INIT;
	struct json j;

	json_init(&j, &sb, false);
	json_begin_object(&j);
	json_kv_string(&j, "a", "x\"y\n");
	json_key(&j, "b");
	json_begin_array(&j);
	json_int(&j, -1);
	json_bool(&j, true);
	json_end_array(&j);
	json_key(&j, "c");
	json_begin_object(&j);
	json_end_object(&j);
	json_end_object(&j);
	CHECK_STR(sb.buf, "{\"a\":\"x\\\"y\\n\",\"b\":[-1,true],\"c\":{}}");
	strbuf_release(&sb);
}

TEST(test_files)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;

	CHECK(mkdir_p("a/b/c", 0755) == 0);
	CHECK(write_file_atomic("a/b/c/f", "hello", 5, 0600) == 0);
	CHECK(read_file("a/b/c/f", 100, &buf, &len) == 0);
	CHECK_INT(len, 5);
	CHECK_STR(buf, "hello");
	free(buf);
	CHECK_INT(read_file("a/b/c/f", 4, &buf, &len), -EFBIG);
	CHECK_INT(read_file("nope", 4, &buf, &len), -ENOENT);
	CHECK(rm_rf("a") == 0);
	CHECK(stat("a", &st) < 0);
}

TEST(test_paths)
{
	char *s;

	s = path_join("images", "../recipes/x.yaml");
	CHECK_STR(s, "images/../recipes/x.yaml");
	free(s);
	s = path_dirname("images/x.yaml");
	CHECK_STR(s, "images");
	free(s);
	s = path_dirname("x.yaml");
	CHECK_STR(s, ".");
	free(s);
	CHECK_STR(path_basename("a/b/c"), "c");
	/* an empty path has no room for "." (ASan sees a write past the end) */
	s = xstrdup("");
	CHECK_STR(path_normalize(s), "");
	free(s);
	s = xstrdup("a/..");
	CHECK_STR(path_normalize(s), ".");
	free(s);
}

TEST(test_quote_path)
{
	const char *plain = "usr/share/doc/README";
	struct strbuf sb = STRBUF_INIT;

	CHECK(quote_path(plain) == plain);
	CHECK_STR(quote_path("a\nerror: b"), "a\\nerror: b");
	CHECK_STR(quote_path("\x1b]0;x\x07\x1b[31m\t\r"), "\\x1b]0;x\\x07\\x1b[31m\\t\\r");
	CHECK_STR(quote_path("back\\slash\x7f"), "back\\\\slash\\x7f");
	/* valid UTF-8 stays, C1 controls, overlong forms and stray bytes do not */
	CHECK_STR(quote_path("ünïcödé/файл-😀"), "ünïcödé/файл-😀");
	CHECK_STR(quote_path("csi\xc2\x9b" "2J"), "csi\\xc2\\x9b2J");
	CHECK_STR(quote_path("\xc0\xaf\xff\xed\xa0\x80"), "\\xc0\\xaf\\xff\\xed\\xa0\\x80");
	CHECK_STR(quote_path("cut\xe2\x82"), "cut\\xe2\\x82");
	strbuf_add_quoted(&sb, "x\ny");
	CHECK_STR(sb.buf, "x\\ny");
	strbuf_release(&sb);
}

int main(void)
{
	RUN(test_parse_size);
	RUN(test_strbuf);
	RUN(test_distance);
	RUN(test_sha256);
	RUN(test_json);
	RUN(test_files);
	RUN(test_paths);
	RUN(test_quote_path);
	return tap_done();
}
