/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <sys/stat.h>

#include "fs/ext4.h"
#include "tap.h"
#include "fs/tree.h"
#include "core/util.h"

#define EPOCH 1700000000

static struct tree *small_tree(const char *content)
{
	struct tree *t = tree_new();
	struct strbuf err = STRBUF_INIT;
	static const char cap[20] = { 1, 0, 0, 2, 0, 0x20 };

	tree_set_default_mtime(t, EPOCH);
	CHECK_INT(tree_add_file(t, "etc/hello", content, strlen(content), NULL, 0644, 1000, 1000,
				EPOCH - 10, &err),
		  0);
	CHECK_INT(tree_add_file(t, "usr/bin/ping", "elf", 3, NULL, 04755, 0, 0, EPOCH + 99, &err),
		  0);
	CHECK_INT(tree_set_xattr(t, "usr/bin/ping", "security.capability", cap, sizeof(cap), &err),
		  0);
	CHECK_INT(tree_add_symlink(t, "bin", "usr/bin", 0, 0, EPOCH, &err), 0);
	CHECK_INT(tree_add_directory(t, "var/empty", 0700, 0, 0, EPOCH, &err), 0);
	strbuf_release(&err);
	return t;
}

/* Run a shell command; its exit status. */
static int sh(const char *cmd)
{
	int s = system(cmd);

	return WIFEXITED(s) ? WEXITSTATUS(s) : 128;
}

static bool files_equal(const char *a, const char *b)
{
	char *x = NULL, *y = NULL;
	size_t lx = 0, ly = 0;
	bool eq;

	if (read_file(a, 1 << 30, &x, &lx) < 0 || read_file(b, 1 << 30, &y, &ly) < 0)
		return false;
	eq = lx == ly && !memcmp(x, y, lx);
	free(x);
	free(y);
	return eq;
}

TEST(test_write_and_check)
{
	struct tree *t = small_tree("hello, world\n");
	struct ext4_opts o = EXT4_OPTS_INIT;
	struct strbuf err = STRBUF_INIT;
	uint64_t size = 0;
	struct stat st;

	o.epoch = EPOCH;
	o.label = "root";
	CHECK_INT(ext4_write(t, "a.ext4", &o, &size, &err), 0);
	CHECK(stat("a.ext4", &st) == 0 && (uint64_t)st.st_size == size && size % (1 << 20) == 0);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin e2fsck -fn a.ext4 >fsck.out 2>&1"), 0);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin debugfs -R 'cat /etc/hello' a.ext4 2>/dev/null | "
		     "grep -qx 'hello, world'"),
		  0);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin debugfs -R 'stat /usr/bin/ping' a.ext4 2>/dev/null "
		     "| grep -q 'mtime: 0x6553f100:00000000'"),
		  0);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin debugfs -R 'ea_list /usr/bin/ping' a.ext4 "
		     "2>/dev/null | grep -q 'security.capability (20) = 01 00 00 02 00 20'"),
		  0);
	/* lost+found was added for e2fsck */
	CHECK(tree_lookup(t, "lost+found") != NULL);

	/* the same tree again: the same bytes */
	CHECK_INT(ext4_write(t, "b.ext4", &o, NULL, &err), 0);
	CHECK(files_equal("a.ext4", "b.ext4"));
	tree_free(t);

	/* other content: another image */
	t = small_tree("hello, there\n");
	CHECK_INT(ext4_write(t, "c.ext4", &o, NULL, &err), 0);
	CHECK(!files_equal("a.ext4", "c.ext4"));
	tree_free(t);
	strbuf_release(&err);
}

/*
 * Without --uuid the UUID is set last: groups never written (BLOCK_UNINIT,
 * INODE_UNINIT) must have their descriptor checksums recomputed too.
 */
TEST(test_checksums_across_groups)
{
	struct tree *t = small_tree("hello, world\n");
	struct ext4_opts o = EXT4_OPTS_INIT;
	struct strbuf err = STRBUF_INIT;

	o.epoch = EPOCH;
	o.size = 512 << 20;
	CHECK_INT(ext4_write(t, "g.ext4", &o, NULL, &err), 0);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin dumpe2fs g.ext4 2>/dev/null | "
		     "grep -q BLOCK_UNINIT"),
		  0);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin e2fsck -fn g.ext4 >fsck.out 2>&1"), 0);
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_refusals_leave_nothing)
{
	struct tree *t = tree_new();
	struct ext4_opts o = EXT4_OPTS_INIT;
	struct strbuf err = STRBUF_INIT;
	char *big = xcalloc(1, 3 << 20);
	size_t i;

	memset(big, 'x', 3 << 20);
	for (i = 0; i < 4; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%zu", i);
		CHECK_INT(tree_add_file(t, name, big, 3 << 20, NULL, 0644, 0, 0, 0, &err), 0);
	}
	o.epoch = EPOCH;
	o.size = 8 << 20;
	CHECK_INT(ext4_write(t, "small.ext4", &o, NULL, &err), -ENOSPC);
	CHECK(strstr(err.buf, "too small for this content"));
	CHECK(access("small.ext4", F_OK) < 0);
	CHECK_INT(sh("ls small.ext4.tmp-* >/dev/null 2>&1"), 2);

	strbuf_reset(&err);
	o.size = 2 << 20;
	CHECK_INT(ext4_write(t, "small.ext4", &o, NULL, &err), -EFBIG);
	CHECK(strstr(err.buf, "'/f0' (inline content) holds 3.0 MiB of data, more than the whole "
			      "image (2.0 MiB)"));

	strbuf_reset(&err);
	o.size = 0;
	o.label = "a label that is far too long";
	CHECK_INT(ext4_write(t, "small.ext4", &o, NULL, &err), -EINVAL);
	o.label = NULL;
	o.uuid = "not-a-uuid";
	CHECK_INT(ext4_write(t, "small.ext4", &o, NULL, &err), -EINVAL);
	CHECK(access("small.ext4", F_OK) < 0);
	free(big);
	tree_free(t);
	strbuf_release(&err);
}

/*
 * The image fills up while content is written (a host file that was a hole
 * when the tree was made has data when it is written): the message names
 * the file, and what the caller had in its error buffer stays there.
 */
TEST(test_image_full_keeps_callers_message)
{
	struct tree *t = tree_new();
	struct ext4_opts o = EXT4_OPTS_INIT;
	struct strbuf err = STRBUF_INIT;
	char *junk = xmalloc(1 << 20);
	FILE *f;
	int i;

	CHECK_INT(sh("truncate -s 64M grown"), 0);
	CHECK_INT(tree_add_file(t, "grown", NULL, 0, "grown", 0644, 0, 0, EPOCH, &err), 0);
	f = fopen("grown", "r+");
	CHECK(f != NULL);
	memset(junk, 'x', 1 << 20);
	for (i = 0; f && i < 64; i++)
		CHECK(fwrite(junk, 1, 1 << 20, f) == 1 << 20);
	if (f)
		fclose(f);
	o.epoch = EPOCH;
	strbuf_addstr(&err, "while writing the root filesystem: ");
	CHECK_INT(ext4_write(t, "full.ext4", &o, NULL, &err), -ENOSPC);
	CHECK_STR(err.buf, "while writing the root filesystem: the image is full while writing "
			   "'/grown'; use a larger --size or --size auto");
	CHECK(access("full.ext4", F_OK) < 0);
	free(junk);
	tree_free(t);
	strbuf_release(&err);
}

/*
 * Content is placed in regions with gaps between them (place_region()): an
 * image sized with no headroom still takes all of it, the gaps included.
 */
TEST(test_no_headroom_fills_the_gaps)
{
	struct tree *t = tree_new();
	struct ext4_opts o = EXT4_OPTS_INIT;
	struct strbuf err = STRBUF_INIT;
	char *data = xmalloc(300 << 10);
	uint64_t size = 0;
	size_t i;

	for (i = 0; i < (300 << 10); i++)
		data[i] = (char)(i * 7 + i / 4096);
	for (i = 0; i < 60; i++) {
		char name[32];

		snprintf(name, sizeof(name), "opt/app/f%03zu", i);
		data[0] = (char)i;
		CHECK_INT(tree_add_file(t, name, data, 300 << 10, NULL, 0644, 0, 0, EPOCH, &err), 0);
	}
	o.epoch = EPOCH;
	o.headroom_percent = 0;
	o.lineage = "unit";
	CHECK_INT(ext4_write(t, "tight.ext4", &o, &size, &err), 0);
	CHECK(size <= 24 << 20);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin e2fsck -fn tight.ext4 >fsck.out 2>&1"), 0);
	CHECK_INT(sh("PATH=$PATH:/sbin:/usr/sbin debugfs -R 'dump /opt/app/f059 f059' tight.ext4 "
		     "2>/dev/null && test $(stat -c %s f059) = 307200"),
		  0);
	free(data);
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_lineage_names)
{
	CHECK(ext4_valid_lineage("atarys-appliance_1.0"));
	CHECK(!ext4_valid_lineage(""));
	CHECK(!ext4_valid_lineage("a b"));
	CHECK(!ext4_valid_lineage("a/b"));
	CHECK(ext4_valid_lineage("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
	CHECK(!ext4_valid_lineage("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
}

TEST(test_parse_uuid)
{
	uint8_t u[16];

	CHECK_INT(ext4_parse_uuid("01234567-89ab-CDEF-0123-456789abcdef", u), 0);
	CHECK(u[0] == 0x01 && u[7] == 0xef && u[15] == 0xef);
	CHECK_INT(ext4_parse_uuid("0123456789abcdef0123456789abcdef", u), -EINVAL);
	CHECK_INT(ext4_parse_uuid("01234567-89ab-cdef-0123-456789abcde", u), -EINVAL);
	CHECK_INT(ext4_parse_uuid("01234567-89ab-cdef-0123-456789abcdeg", u), -EINVAL);
}

int main(void)
{
	RUN(test_write_and_check);
	RUN(test_checksums_across_groups);
	RUN(test_refusals_leave_nothing);
	RUN(test_image_full_keeps_callers_message);
	RUN(test_parse_uuid);
	RUN(test_no_headroom_fills_the_gaps);
	RUN(test_lineage_names);
	return tap_done();
}
