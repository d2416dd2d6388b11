/* SPDX-License-Identifier: MIT */
/* Tests for src/gpt.c and src/fat.c, checked with sgdisk, sfdisk, fsck.fat and mtools. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fs/fat.h"
#include "fs/gpt.h"
#include "tap.h"
#include "core/util.h"

#define MIB (1ULL << 20)

static int sh(const char *cmd)
{
	int r = system(cmd);
	if (r != 0)
		printf("#   command failed (%d): %s\n", r, cmd);
	return r;
}

static void add(struct gpt *g, const char *type, const char *name, uint64_t start, uint64_t size)
{
	struct gpt_part *p = &g->parts[g->nparts++];

	gpt_guid_parse(type, p->type);
	gpt_guid_derive("seed", name, p->uuid);
	p->start = start;
	p->size = size;
	snprintf(p->name, sizeof(p->name), "%s", name);
}

TEST(test_guid_roundtrip)
{
	uint8_t g[16], h[16];
	char s[37];

	CHECK(gpt_guid_parse(GPT_TYPE_ESP, g) == 0);
	CHECK(g[0] == 0x28 && g[3] == 0xC1 && g[8] == 0xBA);
	gpt_guid_format(g, s);
	CHECK_STR(s, GPT_TYPE_ESP);
	CHECK(gpt_guid_parse("not-a-guid", g) < 0);
	gpt_guid_derive("a", "root-a", g);
	gpt_guid_derive("a", "root-a", h);
	CHECK(!memcmp(g, h, 16));
	gpt_guid_derive("b", "root-a", h);
	CHECK(memcmp(g, h, 16));
	CHECK((g[7] & 0xf0) == 0x40);
}

TEST(test_gpt_verified_by_sgdisk_and_sfdisk)
{
	struct gpt *g = xcalloc(1, sizeof(*g));
	struct strbuf err = STRBUF_INIT;
	int fd = open("disk.raw", O_RDWR | O_CREAT | O_TRUNC, 0644);

	g->disk_size = 64 * MIB;
	gpt_guid_derive("seed", "disk", g->disk_uuid);
	add(g, GPT_TYPE_BIOS, "bios", 1 * MIB, 1 * MIB);
	add(g, GPT_TYPE_ESP, "esp", 2 * MIB, 8 * MIB);
	add(g, GPT_TYPE_ROOT_X86_64, "root-a", 10 * MIB, 16 * MIB);
	add(g, GPT_TYPE_ROOT_X86_64, "root-b", 26 * MIB, 16 * MIB);
	add(g, GPT_TYPE_LINUX_DATA, "data", 42 * MIB, 21 * MIB);
	CHECK(ftruncate(fd, (off_t)g->disk_size) == 0);
	CHECK(gpt_write(fd, g, &err) == 0);
	close(fd);
	CHECK(sh("sgdisk -v disk.raw | grep -q 'No problems found'") == 0);
	CHECK(sh("sfdisk --verify disk.raw >/dev/null") == 0);
	CHECK(sh("sfdisk --dump disk.raw > dump && grep -q 'name=\"root-b\"' dump && "
		 "grep -q 'type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709' dump && "
		 "grep -q 'disk.raw5 : start=       86016, size=       43008' dump") == 0);
	free(g);
	strbuf_release(&err);
}

TEST(test_gpt_rejects_overlap_and_overflow)
{
	struct gpt *g = xcalloc(1, sizeof(*g));
	struct strbuf err = STRBUF_INIT;
	int fd = open("d.raw", O_RDWR | O_CREAT | O_TRUNC, 0644);

	g->disk_size = 16 * MIB;
	add(g, GPT_TYPE_ESP, "esp", 1 * MIB, 8 * MIB);
	add(g, GPT_TYPE_LINUX_DATA, "data", 8 * MIB, 4 * MIB);
	CHECK(gpt_write(fd, g, &err) == -EINVAL);
	CHECK(strstr(err.buf, "overlap") != NULL);
	strbuf_reset(&err);
	g->nparts = 1;
	add(g, GPT_TYPE_LINUX_DATA, "data", 9 * MIB, 8 * MIB);
	CHECK(gpt_write(fd, g, &err) == -ENOSPC);
	close(fd);
	free(g);
	strbuf_release(&err);
}

TEST(test_fat_verified_by_fsck_and_mtools)
{
	struct strbuf err = STRBUF_INIT;
	struct fat_opts o = {
		.size = 64 * MIB, .volume_id = 0x1234ABCD, .label = "ESP", .mtime = 1700000000};
	char *big = xmalloc(3 * MIB + 17);
	struct fat_file files[] = {
		{"EFI/BOOT/BOOTX64.EFI", big, 3 * MIB + 17},
		{"EFI/BOOT/grub.cfg", "set timeout=0\n", 14},
		{"EFI/BOOT/grubenv", "# GRUB Environment Block\n", 25},
		{"EFI/BOOT/empty", "", 0},
	};
	int fd = open("esp.img", O_RDWR | O_CREAT | O_TRUNC, 0644);
	size_t i;

	for (i = 0; i < 3 * MIB + 17; i++)
		big[i] = (char)(i * 7 + i / 511);
	CHECK(ftruncate(fd, (off_t)o.size) == 0);
	CHECK(fat_write(fd, 0, &o, files, ARRAY_SIZE(files), &err) == 0);
	close(fd);
	CHECK(write_file_atomic("big", big, 3 * MIB + 17, 0644) == 0);
	CHECK(sh("fsck.fat -n esp.img >fsck.out 2>&1 || { cat fsck.out; exit 1; }") == 0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mdir -b -i esp.img ::/EFI/BOOT | sort | tr '\\n' ' ' | grep "
		 "-qix '::/EFI/BOOT/BOOTX64.EFI ::/EFI/BOOT/empty ::/EFI/BOOT/grub.cfg "
		 "::/EFI/BOOT/grubenv '") == 0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mdir -i esp.img ::/EFI/BOOT | grep -qi 'bootx64  efi'") == 0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mtype -i esp.img ::/EFI/BOOT/grub.cfg | grep -qx "
		 "'set timeout=0'") == 0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mcopy -i esp.img ::/EFI/BOOT/BOOTX64.EFI out && cmp out "
		 "big") == 0);
	CHECK(sh("blkid -o value -s UUID esp.img | grep -qx 1234-ABCD") == 0);
	CHECK(sh("blkid -o value -s LABEL esp.img | grep -qx ESP") == 0);
	free(big);
	strbuf_release(&err);
}

TEST(test_fat_refuses_long_names_and_small_sizes)
{
	struct strbuf err = STRBUF_INIT;
	struct fat_opts o = {.size = 64 * MIB, .volume_id = 1, .mtime = 0};
	struct fat_file f1[] = {{"EFI/BOOT/a-very-long-name.cfg", "x", 1}};
	struct fat_file f2[] = {{"MiXed.cfg", "x", 1}};
	int fd = open("e.img", O_RDWR | O_CREAT | O_TRUNC, 0644);

	CHECK(ftruncate(fd, (off_t)o.size) == 0);
	CHECK(fat_write(fd, 0, &o, f1, 1, &err) == -EINVAL);
	CHECK(strstr(err.buf, "8.3") != NULL);
	CHECK(fat_write(fd, 0, &o, f2, 1, &err) == -EINVAL);
	o.size = 16 * MIB;
	CHECK(fat_write(fd, 0, &o, f2, 0, &err) == -EINVAL);
	close(fd);
	strbuf_release(&err);
}

TEST(test_fat_long_names_verified_by_fsck_and_mtools)
{
	struct strbuf err = STRBUF_INIT;
	struct fat_opts o = {.size = 34 * MIB,
			     .volume_id = 0x0C1DA7A0,
			     .label = "cidata",
			     .mtime = 1700000000,
			     .long_names = true};
	static const char long26[] = "a-name-of-exactly-26-chars";
	struct fat_file files[] = {
		{"user-data", "#cloud-config\nhostname: a\n", 27},
		{"meta-data", "instance-id: i-1\n", 17},
		{"network-config", "version: 2\n", 11},
		{"USER-D~1", "taken\n", 6},
		{"MiXed.Cfg", "x\n", 2},
		{"dir with spaces/a-much-longer-name-than-thirteen-characters.json", "{}\n", 3},
		{long26, "26\n", 3},
	};
	int fd = open("seed.img", O_RDWR | O_CREAT | O_TRUNC, 0644);

	CHECK(ftruncate(fd, (off_t)o.size) == 0);
	CHECK(fat_write(fd, 0, &o, files, ARRAY_SIZE(files), &err) == 0);
	close(fd);
	CHECK(sh("fsck.fat -n seed.img >fsck.out 2>&1 || { cat fsck.out; exit 1; }") == 0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mdir -b -i seed.img :: | sort | tr '\\n' ' ' | grep -qx "
		 "'::/MiXed.Cfg ::/USER-D~1 ::/a-name-of-exactly-26-chars ::/dir with spaces/ "
		 "::/meta-data ::/network-config ::/user-data '") == 0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mtype -i seed.img ::/user-data | grep -qx 'hostname: a'") ==
	      0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mtype -i seed.img ::/USER-D~1 | grep -qx taken") == 0);
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mtype -i seed.img "
		 "'::/dir with spaces/a-much-longer-name-than-thirteen-characters.json' | grep -qx "
		 "'{}'") == 0);
	/* The alias of user-data is not the 8.3 file USER-D~1 that is there. */
	CHECK(sh("MTOOLS_SKIP_CHECK=1 mdir -i seed.img :: | grep -q '^USER-D~2 *27 .* "
		 "user-data$'") == 0);
	CHECK(sh("blkid -o value -s LABEL seed.img | grep -qx CIDATA") == 0);

	/* Refused: a name FAT cannot hold, two names that are one in FAT. */
	fd = open("seed.img", O_RDWR);
	files[0].path = "a:b";
	CHECK(fat_write(fd, 0, &o, files, 1, &err) == -EINVAL);
	CHECK(strstr(err.buf, "'a:b' cannot be a FAT name") != NULL);
	strbuf_reset(&err);
	files[0].path = "Meta-Data";
	CHECK(fat_write(fd, 0, &o, files, 2, &err) == -EINVAL);
	CHECK(strstr(err.buf, "are the same name in FAT") != NULL);
	close(fd);
	strbuf_release(&err);
}

int main(void)
{
	RUN(test_guid_roundtrip);
	RUN(test_gpt_verified_by_sgdisk_and_sfdisk);
	RUN(test_gpt_rejects_overlap_and_overflow);
	RUN(test_fat_verified_by_fsck_and_mtools);
	RUN(test_fat_refuses_long_names_and_small_sizes);
	RUN(test_fat_long_names_verified_by_fsck_and_mtools);
	return tap_done();
}
