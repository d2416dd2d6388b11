/* SPDX-License-Identifier: MIT */
/*
 * Tests for src/fs/imgout.c (the unit reader, the format sniffing) and the
 * VHD footer of src/fs/vhd.c. The formats as a whole are checked with
 * qemu-img in tests/e2e/t2100-export.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "fs/imgout-internal.h"
#include "tap.h"

#define U (64u << 10)

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/*
 * A sparse disk of 10 units and 512 bytes: data across the end of unit 0
 * into unit 1, written zeros in unit 3, data in unit 6, 3 bytes at the very end.
 */
static int make_disk(const char *path, uint64_t *ret_size)
{
	uint64_t size = 10ULL * U + 512;
	uint8_t buf[U];
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return -1;
	memset(buf, 'a', sizeof(buf));
	if (pwrite(fd, buf, 4096, U - 2048) != 4096)
		return -1;
	memset(buf, 0, sizeof(buf));
	if (pwrite(fd, buf, U, 3ULL * U) != U)
		return -1;
	memset(buf, 'b', sizeof(buf));
	if (pwrite(fd, buf, 100, 6ULL * U + 7) != 100)
		return -1;
	if (pwrite(fd, "END", 3, size - 3) != 3)
		return -1;
	*ret_size = size;
	return fd;
}

TEST(units_skip_holes_and_zeros_and_pad_the_end)
{
	struct units *u = NULL;
	struct imgout_stats st;
	struct unit un;
	uint64_t size = 0, want[] = { 0, 1, 6, 10 };
	size_t n = 0;
	int fd = make_disk("d.raw", &size), r;

	CHECK(fd >= 0);
	CHECK_INT(units_open(fd, size, U, UNITS_RAW, 2, &u), 0);
	while ((r = units_next(u, &un)) > 0) {
		CHECK(n < ARRAY_SIZE(want));
		if (n >= ARRAY_SIZE(want))
			break;
		CHECK(un.index == want[n]);
		CHECK(un.z == NULL);
		if (un.index == 10) {
			/* 512 bytes of disk, the rest of the unit zeros */
			CHECK(!memcmp(un.data + 509, "END", 3));
			CHECK(un.data[512] == 0 && un.data[U - 1] == 0);
		}
		if (un.index == 6)
			CHECK(un.data[7] == 'b' && un.data[106] == 'b' && un.data[107] == 0);
		n++;
	}
	CHECK_INT(r, 0);
	CHECK(n == ARRAY_SIZE(want));
	units_stats(u, &st);
	CHECK(st.stored == 4);
	CHECK(st.zero >= 1); /* unit 3: written zeros (more where the file system keeps blocks) */
	units_free(u);
	close(fd);
}

/* Compressed units are the same bytes with 1 thread and with 4, and inflate to the unit. */
TEST(units_compress_the_same_whatever_the_threads)
{
	uint8_t *a[2][16] = { { 0 } }, *out = xmalloc(U);
	size_t alen[2][16] = { { 0 } }, n[2] = { 0, 0 };
	uint64_t size = 0;
	int fd = make_disk("d.raw", &size);
	unsigned t;

	CHECK(fd >= 0);
	for (t = 0; t < 2; t++) {
		struct units *u = NULL;
		struct unit un;

		CHECK_INT(units_open(fd, size, U, UNITS_ZLIB, t ? 4 : 1, &u), 0);
		while (units_next(u, &un) > 0 && n[t] < 16) {
			uLongf len = U;

			CHECK(un.z != NULL && un.zlen > 0 && un.zlen < U);
			CHECK(uncompress(out, &len, un.z, un.zlen) == Z_OK);
			CHECK(len == U && !memcmp(out, un.data, U));
			a[t][n[t]] = xmalloc(un.zlen);
			memcpy(a[t][n[t]], un.z, un.zlen);
			alen[t][n[t]++] = un.zlen;
		}
		units_free(u);
	}
	CHECK(n[0] == 4 && n[1] == 4);
	for (t = 0; t < n[0]; t++) {
		CHECK(alen[0][t] == alen[1][t]);
		CHECK(!memcmp(a[0][t], a[1][t], alen[0][t]));
		free(a[0][t]);
		free(a[1][t]);
	}
	free(out);
	close(fd);
}

TEST(units_of_a_disk_of_holes_are_none)
{
	struct units *u = NULL;
	struct unit un;
	int fd = open("h.raw", O_RDWR | O_CREAT | O_TRUNC, 0644);

	CHECK(fd >= 0 && ftruncate(fd, 1 << 30) == 0);
	CHECK_INT(units_open(fd, 1 << 30, U, UNITS_DEFLATE_12, 3, &u), 0);
	CHECK_INT(units_next(u, &un), 0);
	CHECK_INT(units_next(u, &un), 0);
	units_free(u);
	close(fd);
}

TEST(sniff_names_image_formats)
{
	static const struct {
		const char *head;
		size_t len;
		const char *want;
	} cases[] = {
		{ "QFI\xfb\0\0\0\3", 8, "qcow2" },
		{ "KDMV\3\0\0\0", 8, "VMDK" },
		{ "# Disk DescriptorFile\n", 22, "VMDK" },
		{ "vhdxfile", 8, "VHDX" },
		{ "conectix", 8, "VHD" },
		{ "\xeb\x63\x90GRUB", 8, NULL },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		int fd = open("s.img", O_RDWR | O_CREAT | O_TRUNC, 0644);
		const char *got;

		CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
		CHECK(pwrite(fd, cases[i].head, cases[i].len, 0) == (ssize_t)cases[i].len);
		got = imgout_sniff(fd, 4096);
		if (cases[i].want)
			CHECK_STR(got, cases[i].want);
		else
			CHECK(got == NULL);
		close(fd);
	}
}

/* A fixed VHD's footer: the specification's geometry when it spans the disk exactly, else the
 * largest; the checksum; the size; the same id for the same disk. */
TEST(vhd_footer_geometry_and_checksum)
{
	static const struct {
		uint64_t sectors;
		unsigned cyl, heads, spt;
	} cases[] = {
		{ 17 * 4 * 100, 100, 4, 17 }, /* exact */
		{ 2048, 65535, 16, 255 },     /* 1 MiB: not exact */
	};
	struct imgout_opts o = { .format = IMGOUT_VHD };
	uint8_t f[512], f2[512];
	size_t i, j;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf err = STRBUF_INIT;
		uint64_t size = cases[i].sectors * 512;
		int in = open("in.raw", O_RDWR | O_CREAT | O_TRUNC, 0644);
		int out = open("out.vhd", O_RDWR | O_CREAT | O_TRUNC, 0644);
		uint32_t sum = 0;

		CHECK(in >= 0 && out >= 0 && ftruncate(in, (off_t)size) == 0);
		CHECK(pwrite(in, "data", 4, 4096) == 4);
		CHECK_INT(imgout_write(in, size, out, &o, NULL, &err), 0);
		CHECK(pread(out, f, 512, (off_t)size) == 512);
		CHECK(!memcmp(f, "conectix", 8));
		CHECK(be32(f + 52) == (uint32_t)size && be32(f + 48) == (uint32_t)(size >> 32));
		CHECK(((unsigned)f[56] << 8 | f[57]) == cases[i].cyl);
		CHECK(f[58] == cases[i].heads && f[59] == cases[i].spt);
		CHECK(be32(f + 60) == 2);
		for (j = 0; j < 512; j++)
			if (j < 64 || j >= 68)
				sum += f[j];
		CHECK(be32(f + 64) == ~sum);
		/* again: the same footer */
		CHECK(ftruncate(out, 0) == 0);
		CHECK_INT(imgout_write(in, size, out, &o, NULL, &err), 0);
		CHECK(pread(out, f2, 512, (off_t)size) == 512);
		CHECK(!memcmp(f, f2, 512));
		strbuf_release(&err);
		close(in);
		close(out);
	}
}

TEST(write_refuses_a_size_that_is_not_whole_sectors)
{
	struct imgout_opts o = { .format = IMGOUT_QCOW2 };
	struct strbuf err = STRBUF_INIT;

	CHECK_INT(imgout_write(0, 1000, 1, &o, NULL, &err), -EINVAL);
	CHECK(strstr(strbuf_str(&err), "512-byte sectors") != NULL);
	strbuf_release(&err);
}

int main(void)
{
	RUN(units_skip_holes_and_zeros_and_pad_the_end);
	RUN(units_compress_the_same_whatever_the_threads);
	RUN(units_of_a_disk_of_holes_are_none);
	RUN(sniff_names_image_formats);
	RUN(vhd_footer_geometry_and_checksum);
	RUN(write_refuses_a_size_that_is_not_whole_sectors);
	return tap_done();
}
