/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

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

TEST(test_hex_decode)
{
	uint8_t b[3];
	char back[7];

	CHECK(hex_decode("00ff7a", b, 3) == 0);
	CHECK(b[0] == 0 && b[1] == 0xff && b[2] == 0x7a);
	hex_encode(b, 3, back);
	CHECK_STR(back, "00ff7a");
	CHECK(hex_decode("00FF7a", b, 3) == -EINVAL);	/* one spelling: lowercase */
	CHECK(hex_decode("00ff7", b, 3) == -EINVAL);	/* short */
	CHECK(hex_decode("00ff7a0", b, 3) == -EINVAL);	/* long */
	CHECK(hex_decode("00fg7a", b, 3) == -EINVAL);
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

/*
 * Bytes that are not UTF-8 (tar names from another locale) become \udcXX,
 * Python's surrogateescape convention: the output is valid JSON, and two
 * names that differ only in such bytes stay different.
 */
TEST(test_json_invalid_utf8)
{
	static const char *const in[] = {
		"caf\xc3\xa9",	       /* valid two-byte sequence: kept as is */
		"caf\xe9",	       /* Latin-1 byte */
		"\xff\xfe",	       /* never valid */
		"\xc0\xaf",	       /* overlong "/" */
		"\xed\xa0\x80",	       /* a UTF-16 surrogate encoded in UTF-8 */
		"\xf4\x90\x80\x80",    /* above U+10FFFF */
		"\xe2\x82",	       /* cut short */
		"\xf0\x9f\x98\x80 ok", /* valid four-byte sequence */
	};
	static const char *const want[] = {
		"\"caf\xc3\xa9\"",
		"\"caf\\udce9\"",
		"\"\\udcff\\udcfe\"",
		"\"\\udcc0\\udcaf\"",
		"\"\\udced\\udca0\\udc80\"",
		"\"\\udcf4\\udc90\\udc80\\udc80\"",
		"\"\\udce2\\udc82\"",
		"\"\xf0\x9f\x98\x80 ok\"",
	};
	struct strbuf sb = STRBUF_INIT, all = STRBUF_INIT;
	struct json j;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(in); i++) {
		strbuf_reset(&sb);
		json_quote(&sb, in[i]);
		CHECK_STR(sb.buf, want[i]);
	}
	json_init(&j, &all, true);
	json_begin_array(&j);
	for (i = 0; i < ARRAY_SIZE(in); i++)
		json_string(&j, in[i]);
	json_end_array(&j);
	strbuf_addch(&all, '\n');
	CHECK(write_file_atomic("out.json", all.buf, all.len, 0644) == 0);
	/* A real JSON parser must take it. */
	CHECK_INT(system("python3 -m json.tool out.json >/dev/null"), 0);
	strbuf_release(&sb);
	strbuf_release(&all);
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

TEST(test_le_fields)
{
	uint8_t b[8];
	struct strbuf sb = STRBUF_INIT;

	put_le16(b, 0x1234);
	CHECK(b[0] == 0x34 && b[1] == 0x12);
	put_le32(b, 0x12345678);
	CHECK(b[0] == 0x78 && b[1] == 0x56 && b[2] == 0x34 && b[3] == 0x12);
	put_le64(b, 0x0102030405060708ULL);
	CHECK(b[0] == 8 && b[3] == 5 && b[4] == 4 && b[7] == 1);
	strbuf_add_le16(&sb, 0xabcd);
	strbuf_add_le32(&sb, 2);
	CHECK_INT(sb.len, 6);
	CHECK(!memcmp(sb.buf, "\xcd\xab\x02\x00\x00\x00", 6));
	strbuf_release(&sb);
}

TEST(test_write_all)
{
	_cleanup_close_ int fd = open("f", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	_cleanup_free_ char *buf = NULL;
	size_t len;

	CHECK(fd >= 0);
	CHECK_INT(write_all(fd, "hello ", 6), 0);
	CHECK_INT(write_all(fd, "world", 5), 0);
	CHECK_INT(pwrite_all(fd, "W", 1, 6), 0);
	CHECK_INT(pwrite_all(fd, "!", 1, 11), 0);
	CHECK_INT(read_file("f", 100, &buf, &len), 0);
	CHECK_STR(buf, "hello World!");
	CHECK_INT(write_all(-1, "x", 1), -EBADF);
	CHECK_INT(pwrite_all(-1, "x", 1, 0), -EBADF);
}

/* A file with data at 0 and at 1 MiB + 5, holes around, 3 MiB long. */
static void make_sparse(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	CHECK(fd >= 0);
	CHECK_INT(pwrite_all(fd, "head", 4, 0), 0);
	CHECK_INT(pwrite_all(fd, "middle", 6, (1 << 20) + 5), 0);
	CHECK(ftruncate(fd, 3 << 20) == 0);
}

TEST(test_data_extents_and_sparse_copy)
{
	_cleanup_close_ int fd = -1, out = -1;
	uint64_t pos = 0, off = 0, len = 0, data = 0;
	_cleanup_free_ char *a = NULL, *b = NULL;
	size_t la, lb;
	struct stat st;
	int n = 0, r;

	make_sparse("sparse");
	fd = open("sparse", O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	while ((r = next_data_extent(fd, pos, 3 << 20, &off, &len)) > 0) {
		CHECK(off <= (1 << 20) + 5 && off + len >= 4);
		data += len;
		pos = off + len;
		n++;
	}
	CHECK_INT(r, 0);
	/* Two runs of a block or so each, unless the filesystem has no holes. */
	CHECK(n >= 1 && n <= 2);
	CHECK(n == 1 || data < (1 << 20));
	CHECK_INT(next_data_extent(fd, 3 << 20, 3 << 20, &off, &len), 0);
	/* A size shorter than the file stops the walk there. */
	CHECK_INT(next_data_extent(fd, 0, 2, &off, &len), 1);
	CHECK_INT(off, 0);
	CHECK_INT(len, 2);

	CHECK_INT(copy_file("sparse", "copy", 0600), 0);
	CHECK_INT(read_file("sparse", 4 << 20, &a, &la), 0);
	CHECK_INT(read_file("copy", 4 << 20, &b, &lb), 0);
	CHECK_INT(lb, 3 << 20);
	CHECK(la == lb && !memcmp(a, b, la));
	CHECK(stat("copy", &st) == 0);
	CHECK_INT(st.st_mode & 07777, 0600);
	if (n == 2)
		CHECK((uint64_t)st.st_blocks * 512 < (1 << 20)); /* the holes stayed holes */
	CHECK_INT(copy_file("nonexistent", "copy2", 0600), -ENOENT);

	/* Into the middle of another file: data runs land at out_off + offset. */
	out = open("disk", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(out >= 0);
	CHECK(ftruncate(out, 8 << 20) == 0);
	CHECK_INT(copy_sparse(fd, 3 << 20, out, 4096), 0);
	free(b);
	b = NULL;
	CHECK_INT(read_file("disk", 16 << 20, &b, &lb), 0);
	CHECK(!memcmp(b + 4096, "head", 4));
	CHECK(!memcmp(b + 4096 + (1 << 20) + 5, "middle", 6));
}

TEST(test_fsync_dir)
{
	CHECK_INT(mkdir("d", 0755), 0);
	CHECK_INT(fsync_dir("d"), 0);
	CHECK_INT(fsync_parent("d/file"), 0);
	CHECK_INT(fsync_dir("missing"), -ENOENT);
}

TEST(test_clocks_and_times)
{
	char buf[64];
	int64_t t0 = monotonic_ms();

	CHECK(t0 > 0);
	CHECK(monotonic_ms() >= t0);
	CHECK(seconds_since(t0) >= 0.0 && seconds_since(t0) < 60.0);
	CHECK_STR(format_time(1700000000, false, buf, sizeof(buf)), "2023-11-14 22:13:20");
	CHECK_STR(format_time(1700000000, true, buf, sizeof(buf)), "2023-11-14 22:13:20 UTC");
	CHECK_STR(format_time(0, false, buf, sizeof(buf)), "1970-01-01 00:00:00");
}

TEST(test_take)
{
	int fd;
	char *p;

	{
		_cleanup_close_ int owned = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		_cleanup_free_ char *s = xstrdup("kept");

		CHECK(owned >= 0);
		fd = TAKE_FD(owned);
		CHECK_INT(owned, -1);
		p = TAKE_PTR(s);
		CHECK(s == NULL);
	}
	/* Neither was released when its variable left scope. */
	CHECK(fcntl(fd, F_GETFD) >= 0);
	CHECK_STR(p, "kept");
	close(fd);
	free(p);
}

int main(void)
{
	RUN(test_parse_size);
	RUN(test_strbuf);
	RUN(test_distance);
	RUN(test_sha256);
	RUN(test_hex_decode);
	RUN(test_json);
	RUN(test_json_invalid_utf8);
	RUN(test_files);
	RUN(test_paths);
	RUN(test_quote_path);
	RUN(test_le_fields);
	RUN(test_write_all);
	RUN(test_data_extents_and_sparse_copy);
	RUN(test_fsync_dir);
	RUN(test_clocks_and_times);
	RUN(test_take);
	return tap_done();
}
