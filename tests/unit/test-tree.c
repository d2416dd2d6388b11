/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "tap.h"
#include "fs/tree.h"
#include "core/util.h"

/* A minimal ustar writer, so that tests feed real archives without tools. */
struct tar_ent {
	const char *name;
	char type; /* '0' file, '1' hard link, '2' symlink, '5' directory */
	const char *data_or_link;
	unsigned mode, uid, gid;
};

static void write_tar(const char *path, const struct tar_ent *e, size_t n)
{
	FILE *f = fopen(path, "wb");
	char zero[1024] = { 0 };
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char h[512];
		size_t len = e[i].type == '0' ? strlen(e[i].data_or_link) : 0;
		unsigned sum = 0, k;

		memset(h, 0, sizeof(h));
		snprintf((char *)h, 100, "%s", e[i].name);
		snprintf((char *)h + 100, 8, "%07o", e[i].mode);
		snprintf((char *)h + 108, 8, "%07o", e[i].uid);
		snprintf((char *)h + 116, 8, "%07o", e[i].gid);
		snprintf((char *)h + 124, 12, "%011o", (unsigned)len);
		snprintf((char *)h + 136, 12, "%011o", 1600000000u);
		memset(h + 148, ' ', 8);
		h[156] = (unsigned char)e[i].type;
		if (e[i].type == '1' || e[i].type == '2')
			snprintf((char *)h + 157, 100, "%s", e[i].data_or_link);
		memcpy(h + 257, "ustar\0" "00", 8);
		for (k = 0; k < 512; k++)
			sum += h[k];
		snprintf((char *)h + 148, 8, "%06o", sum);
		fwrite(h, 1, 512, f);
		if (len) {
			fwrite(e[i].data_or_link, 1, len, f);
			fwrite(zero, 1, (512 - len % 512) % 512, f);
		}
	}
	fwrite(zero, 1, sizeof(zero), f);
	fclose(f);
}

static int norm(const char *in, const char *want)
{
	char *out = NULL;
	int r = tree_normalize_path(in, &out);

	if (r == 0 && want && strcmp(out, want)) {
		printf("#   normalize '%s' gave '%s', expected '%s'\n", in, out, want);
		r = -1000;
	}
	free(out);
	return r;
}

TEST(test_normalize)
{
	char name[300];

	CHECK_INT(norm("./a//b/./c", "a/b/c"), 0);
	CHECK_INT(norm("/etc/", "etc"), 0);
	CHECK_INT(norm("a/../b", "b"), 0);
	CHECK_INT(norm("", ""), 0);
	CHECK_INT(norm(".", ""), 0);
	CHECK_INT(norm("./", ""), 0);
	CHECK_INT(norm("..", NULL), -EPERM);
	CHECK_INT(norm("../x", NULL), -EPERM);
	CHECK_INT(norm("a/../../x", NULL), -EPERM);
	CHECK_INT(norm("/../etc/shadow", NULL), -EPERM);
	memset(name, 'n', 255);
	name[255] = '\0';
	CHECK_INT(norm(name, name), 0);
	name[255] = 'n';
	name[256] = '\0';
	CHECK_INT(norm(name, NULL), -ENAMETOOLONG);
}

TEST(test_layering)
{
	struct tree *t = tree_new();
	struct strbuf err = STRBUF_INIT;
	struct tree_node *n;

	CHECK_INT(tree_add_file(t, "a/b/c", "x", 1, NULL, 0644, 0, 0, 5, &err), 0);
	n = tree_lookup(t, "a/b");
	CHECK(n && S_ISDIR(n->inode->mode) && (n->inode->mode & 07777) == 0755);
	/* an existing directory takes new metadata and keeps its children */
	CHECK_INT(tree_add_directory(t, "a/b", 0700, 1, 2, 7, &err), 0);
	n = tree_lookup(t, "a/b");
	CHECK(n && (n->inode->mode & 07777) == 0700 && n->inode->uid == 1 && n->n_children == 1);
	/* a file replaces a directory and everything below it */
	CHECK_INT(tree_add_file(t, "a/b", "yy", 2, NULL, 0600, 0, 0, 9, &err), 0);
	n = tree_lookup(t, "a/b");
	CHECK(n && S_ISREG(n->inode->mode) && n->inode->size == 2);
	CHECK(tree_lookup(t, "a/b/c") == NULL);
	CHECK_INT(tree_remove(t, "a", &err), 0);
	CHECK(tree_lookup(t, "a") == NULL && tree_lookup(t, "a/b") == NULL);
	CHECK_INT(tree_remove(t, "a", &err), -ENOENT);
	CHECK_INT(tree_remove(t, "/", &err), -EINVAL);
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_directory_symlinks)
{
	struct tree *t = tree_new();
	struct strbuf err = STRBUF_INIT;
	struct tree_node *n;

	CHECK_INT(tree_add_directory(t, "usr/bin", 0755, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "usr/bin/sh", "sh", 2, NULL, 0755, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_symlink(t, "bin", "usr/bin", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_symlink(t, "sbin", "/usr/./bin/", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_symlink(t, "usr/lib", "../usr/bin/../bin", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_symlink(t, "lib", "usr/lib", 0, 0, 0, &err), 0);
	/* entries below a symlink to a directory of the image land in that directory */
	CHECK_INT(tree_add_file(t, "bin/ls", "ls", 2, NULL, 0755, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "sbin/init", "i", 1, NULL, 0755, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "lib/x.so", "x", 1, NULL, 0644, 0, 0, 0, &err), 0);
	CHECK(tree_lookup(t, "usr/bin/ls") && tree_lookup(t, "usr/bin/init") &&
	      tree_lookup(t, "usr/bin/x.so") && tree_lookup(t, "usr/bin/sh"));
	/* a directory meeting one keeps the symlink and the target's metadata */
	CHECK_INT(tree_add_directory(t, "bin", 0700, 5, 5, 9, &err), 0);
	n = tree_lookup(t, "bin");
	CHECK(n && S_ISLNK(n->inode->mode));
	n = tree_lookup(t, "usr/bin");
	CHECK(n && (n->inode->mode & 07777) == 0755 && n->inode->uid == 0);

	/* leaving the image, a non-directory, a dangling target, a loop: refused */
	CHECK_INT(tree_add_symlink(t, "up", "../../etc", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "up/passwd", "x", 1, NULL, 0644, 0, 0, 0, &err), -EXDEV);
	CHECK_STR(err.buf, "'up/passwd': the symlink '/up' (-> ../../etc) leads out of the image");
	strbuf_reset(&err);
	CHECK_INT(tree_add_directory(t, "up", 0755, 0, 0, 0, &err), -EXDEV);
	strbuf_reset(&err);
	CHECK_INT(tree_add_symlink(t, "f", "usr/bin/sh", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "f/x", "x", 1, NULL, 0644, 0, 0, 0, &err), -ENOTDIR);
	CHECK_STR(err.buf, "'f/x': the symlink '/f' (-> usr/bin/sh) does not lead to a directory "
			   "of the image");
	strbuf_reset(&err);
	CHECK_INT(tree_add_symlink(t, "l", "/etc", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "l/passwd", "x", 1, NULL, 0644, 0, 0, 0, &err), -ENOTDIR);
	CHECK(tree_lookup(t, "etc") == NULL);
	strbuf_reset(&err);
	CHECK_INT(tree_add_symlink(t, "a", "b", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_symlink(t, "b", "a", 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "a/x", "x", 1, NULL, 0644, 0, 0, 0, &err), -ELOOP);
	CHECK_STR(err.buf, "'a/x': too many levels of symlinks at '/a'");
	strbuf_reset(&err);
	CHECK_INT(tree_add_file(t, "g", "x", 1, NULL, 0644, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, "g/h", "x", 1, NULL, 0644, 0, 0, 0, &err), -ENOTDIR);
	CHECK_STR(err.buf, "'g/h': '/g' is not a directory");
	tree_free(t);
	strbuf_release(&err);
}

static char *deep_path(size_t levels, const char *leaf)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	for (i = 0; i < levels; i++)
		strbuf_addstr(&sb, "d/");
	strbuf_addstr(&sb, leaf);
	return strbuf_detach(&sb);
}

static int no_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf,
		   size_t len, struct strbuf *err)
{
	(void)ctx, (void)ino, (void)offset, (void)buf, (void)len, (void)err;
	return 0;
}

TEST(test_depth_limit)
{
	static const struct tree_content_ops ops = { .data = no_data };
	_cleanup_free_ char *ok = deep_path(TREE_DEPTH_MAX - 1, "f");
	_cleanup_free_ char *over = deep_path(TREE_DEPTH_MAX, "f");
	_cleanup_free_ char *half = deep_path(TREE_DEPTH_MAX / 2, "x");
	_cleanup_free_ char *via = deep_path(TREE_DEPTH_MAX / 2, "g");
	_cleanup_free_ char *huge = deep_path(200000, "f");
	struct tree *t = tree_new();
	struct strbuf err = STRBUF_INIT;
	struct tree_stats st;
	uint8_t d[SHA256_LEN];
	char *out = NULL;

	CHECK_INT(tree_normalize_path(over, &out), -E2BIG);
	CHECK_INT(tree_normalize_path(huge, &out), -E2BIG);
	/* ".." folds before the count */
	CHECK_INT(norm("d/../d/../d/../x", "x"), 0);
	CHECK_INT(tree_add_file(t, ok, "x", 1, NULL, 0644, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, over, "x", 1, NULL, 0644, 0, 0, 0, &err), -E2BIG);
	CHECK(strstr(err.buf, "more than 1024 levels of directories"));
	strbuf_reset(&err);
	/* depth counts where an entry lands, through symlinks */
	CHECK_INT(tree_add_directory(t, half, 0755, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_symlink(t, "s", half, 0, 0, 0, &err), 0);
	CHECK_INT(tree_add_file(t, via, "x", 1, NULL, 0644, 0, 0, 0, &err), 0);
	{
		_cleanup_free_ char *p = xasprintf("s/%s", via);

		CHECK_INT(tree_add_file(t, p, "x", 1, NULL, 0644, 0, 0, 0, &err), -E2BIG);
	}
	/* every walk copes with the deepest tree allowed */
	tree_stats(t, &st);
	CHECK(st.dirs > TREE_DEPTH_MAX); /* the root, 1023 d, x and what the refusal left */
	CHECK_INT(tree_stream_content(t, &ops, NULL, &err), 0);
	tree_digest(t, 0, true, d);
	CHECK_INT(tree_remove(t, "d", &err), 0);
	CHECK(tree_lookup(t, "d") == NULL);
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_host_hardlinks_and_depth)
{
	struct tree *t = tree_new();
	struct strbuf err = STRBUF_INIT;
	struct tree_node *a, *b;
	char name[64], name2[64];
	int i;

	CHECK(mkdir_p("h/x", 0755) == 0 && mkdir_p("h/y", 0755) == 0);
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "h/x/f%d", i);
		snprintf(name2, sizeof(name2), "h/y/f%d", i);
		FILE *f = fopen(name, "w");

		CHECK(f && fputs(name, f) >= 0 && fclose(f) == 0);
		CHECK(link(name, name2) == 0);
	}
	CHECK_INT(tree_add_dir(t, "h", "", 0, 0, &err), 0);
	for (i = 0; i < 1000; i += 7) {
		snprintf(name, sizeof(name), "x/f%d", i);
		snprintf(name2, sizeof(name2), "y/f%d", i);
		a = tree_lookup(t, name);
		b = tree_lookup(t, name2);
		CHECK(a && b && a->inode == b->inode && a->inode->nlink == 2);
	}
	tree_free(t);

	/* a host tree deeper than the limit is refused, with no descriptor left open */
	CHECK(mkdir_p("deep", 0755) == 0 && chdir("deep") == 0);
	for (i = 0; i < TREE_DEPTH_MAX + 5; i++)
		CHECK(mkdir("d", 0755) == 0 && chdir("d") == 0);
	for (i = 0; i < TREE_DEPTH_MAX + 6; i++)
		CHECK(chdir("..") == 0);
	t = tree_new();
	CHECK_INT(tree_add_dir(t, "deep", "", 0, 0, &err), -E2BIG);
	CHECK(strstr(err.buf, "directory 'deep': entry 'd/d/d/") &&
	      strstr(err.buf, ": more than 1024 levels of directories"));
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_archive_layers_and_hardlinks)
{
	static const struct tar_ent l1[] = {
		{ "./", '5', NULL, 0755, 0, 0 },
		{ "etc/", '5', NULL, 0755, 0, 0 },
		{ "etc/passwd", '0', "root:x:0:0::/root:/bin/sh\nalice:x:1001:1002::/home:/bin/sh\n",
		  0644, 0, 0 },
		{ "etc/group", '0', "root:x:0:\nstaff:x:1002:\nwheel:x:10:alice\n", 0644, 0, 0 },
		{ "etc/motd", '0', "hello\n", 0644, 0, 0 },
		{ "bin/a", '0', "binary", 04755, 0, 0 },
		{ "bin/b", '1', "bin/a", 0, 0, 0 },
		{ "bin/sh", '2', "a", 0777, 0, 0 },
	};
	static const struct tar_ent l2[] = {
		{ "bin/b", '1', "bin/a", 0, 0, 0 }, /* again: still two names */
		{ "bin/c", '1', "./bin//a", 0, 0, 0 },
	};
	static const struct tar_ent bad[] = {
		{ "x", '1', "nope", 0, 0, 0 },
	};
	struct tree *t = tree_new();
	struct strbuf err = STRBUF_INIT;
	struct tree_node *a;
	char *buf = NULL;
	size_t len = 0;
	uint32_t uid = 0, gid = 0;

	write_tar("l1.tar", l1, ARRAY_SIZE(l1));
	write_tar("l2.tar", l2, ARRAY_SIZE(l2));
	write_tar("bad.tar", bad, ARRAY_SIZE(bad));
	CHECK_INT(tree_add_archive(t, "l1.tar", &err), 0);
	CHECK_INT(tree_add_archive(t, "l2.tar", &err), 0);
	a = tree_lookup(t, "bin/a");
	CHECK(a && a->inode->nlink == 3 && (a->inode->mode & 07777) == 04755);
	CHECK(tree_lookup(t, "bin/c") && tree_lookup(t, "bin/c")->inode == a->inode);
	CHECK_INT(tree_read_content(t, "bin/c", 100, &buf, &len, &err), 0);
	CHECK(len == 6 && !memcmp(buf, "binary", 6));
	free(buf);

	/* owners resolve through the image's own files, read back from the archive */
	CHECK_INT(tree_resolve_owner(t, "alice", &uid, &gid, &err), 0);
	CHECK(uid == 1001 && gid == 1002);
	CHECK_INT(tree_resolve_owner(t, "alice:wheel", &uid, &gid, &err), 0);
	CHECK(uid == 1001 && gid == 10);
	CHECK_INT(tree_resolve_owner(t, "0:staff", &uid, &gid, &err), 0);
	CHECK(uid == 0 && gid == 1002);
	CHECK_INT(tree_resolve_owner(t, "1001", &uid, &gid, &err), 0);
	CHECK(uid == 1001 && gid == 1002);
	CHECK_INT(tree_resolve_owner(t, "4242:4343", &uid, &gid, &err), 0);
	CHECK(uid == 4242 && gid == 4343);
	strbuf_reset(&err);
	CHECK_INT(tree_resolve_owner(t, "bob", &uid, &gid, &err), -ESRCH);
	CHECK(strstr(err.buf, "no user 'bob' in the image's /etc/passwd"));
	strbuf_reset(&err);
	CHECK_INT(tree_resolve_owner(t, "alice:nogroup", &uid, &gid, &err), -ESRCH);
	CHECK(strstr(err.buf, "no group 'nogroup'"));

	strbuf_reset(&err);
	CHECK_INT(tree_add_archive(t, "bad.tar", &err), -ENOENT);
	CHECK_STR(err.buf, "archive 'bad.tar': entry 'x': hard link to '/nope', which does not "
			   "exist in the image");
	/* an archive changed before its content is read again is refused */
	{
		struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };

		CHECK(utimensat(AT_FDCWD, "l1.tar", ts, 0) == 0);
		strbuf_reset(&err);
		buf = NULL;
		CHECK_INT(tree_read_content(t, "etc/motd", 100, &buf, &len, &err), -ESTALE);
		CHECK(strstr(err.buf, "archive 'l1.tar' changed while the image was being written"));
		free(buf);
		/* ... but what was read once is not read (decompressed) again */
		strbuf_reset(&err);
		CHECK_INT(tree_resolve_owner(t, "alice:wheel", &uid, &gid, &err), 0);
		CHECK(uid == 1001 && gid == 10);
		CHECK_INT(tree_read_content(t, "bin/a", 100, &buf, &len, &err), 0);
		CHECK(len == 6 && !memcmp(buf, "binary", 6));
		free(buf);
	}
	/* a host /etc/passwd is never consulted */
	tree_free(t);
	t = tree_new();
	strbuf_reset(&err);
	CHECK_INT(tree_resolve_owner(t, "root", &uid, &gid, &err), -ESRCH);
	tree_free(t);
	strbuf_release(&err);
}

static int count_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf,
		      size_t len, struct strbuf *err)
{
	(void)ctx, (void)ino, (void)offset, (void)buf, (void)len, (void)err;
	return 0;
}

TEST(test_host_dir_and_digest)
{
	static const struct tree_content_ops ops = { .data = count_data };
	struct tree *t = tree_new(), *t2 = tree_new();
	struct strbuf err = STRBUF_INIT;
	uint8_t d1[SHA256_LEN], d2[SHA256_LEN], d3[SHA256_LEN];
	struct timespec ts[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
	struct tree_node *n;

	CHECK(mkdir_p("over/etc", 0755) == 0);
	CHECK(write_file_atomic("over/etc/motd", "hi\n", 3, 0640) == 0);
	CHECK(utimensat(AT_FDCWD, "over/etc/motd", ts, 0) == 0);
	CHECK(symlink("motd", "over/etc/link") == 0);
	CHECK(utimensat(AT_FDCWD, "over/etc", ts, 0) == 0);
	CHECK_INT(tree_add_dir(t, "over", "", 0, 0, &err), 0);
	n = tree_lookup(t, "etc/motd");
	CHECK(n && n->inode->src == TREE_SRC_HOST && (n->inode->mode & 07777) == 0640 &&
	      n->inode->uid == 0 && n->inode->size == 3);
	n = tree_lookup(t, "etc/link");
	CHECK(n && S_ISLNK(n->inode->mode) && !strcmp(n->inode->symlink, "motd"));

	CHECK_INT(tree_add_dir(t2, "over", "/", 0, 0, &err), 0);
	CHECK_INT(tree_stream_content(t, &ops, NULL, &err), 0);
	CHECK_INT(tree_stream_content(t2, &ops, NULL, &err), 0);
	tree_digest(t, 2000000000, true, d1);
	tree_digest(t2, 2000000000, true, d2);
	CHECK(!memcmp(d1, d2, SHA256_LEN));
	/* a same-size edit: the metadata digest stays, the full one changes */
	CHECK(write_file_atomic("over/etc/motd", "ho\n", 3, 0640) == 0);
	/* the same times as before, even if a second has passed */
	CHECK(utimensat(AT_FDCWD, "over/etc/motd", ts, 0) == 0 &&
	      utimensat(AT_FDCWD, "over/etc", ts, 0) == 0);
	tree_free(t2);
	t2 = tree_new();
	CHECK_INT(tree_add_dir(t2, "over", "", 0, 0, &err), 0);
	tree_digest(t2, 2000000000, false, d3);
	tree_digest(t, 2000000000, false, d2);
	CHECK(!memcmp(d2, d3, SHA256_LEN));
	CHECK_INT(tree_stream_content(t2, &ops, NULL, &err), 0);
	tree_digest(t2, 2000000000, true, d3);
	CHECK(memcmp(d1, d3, SHA256_LEN) != 0);
	tree_free(t);
	tree_free(t2);
	strbuf_release(&err);
}

/*
 * The content digest must not depend on how content arrives: the same files
 * inline (one piece each) and on the host (read in large pieces), many
 * small ones and a large one, so that the hasher's buffers fill up at every
 * kind of record.
 */
TEST(test_digest_independent_of_pieces)
{
	static const struct tree_content_ops ops = { .data = count_data };
	struct tree *a = tree_new(), *b = tree_new();
	struct strbuf err = STRBUF_INIT;
	uint8_t da[SHA256_LEN], db[SHA256_LEN];
	struct timespec ts[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
	size_t big = 3 << 20, i;
	char *data = xmalloc(big);

	for (i = 0; i < big; i++)
		data[i] = (char)(i * 7 + i / 4096);
	CHECK(mkdir_p("host/d", 0755) == 0);
	tree_set_default_mtime(a, 1600000000);
	tree_set_default_mtime(b, 1600000000);
	for (i = 0; i < 3000; i++) {
		char name[64];
		_cleanup_free_ char *hp = NULL;

		snprintf(name, sizeof(name), "d/f%04zu", i);
		hp = path_join("host", name);
		CHECK(write_file_atomic(hp, data + i, 700 + i % 5, 0644) == 0);
		CHECK(chmod(hp, 0644) == 0 && utimensat(AT_FDCWD, hp, ts, 0) == 0);
		CHECK_INT(tree_add_file(a, name, data + i, 700 + i % 5, NULL, 0644, 0, 0, 1600000000,
					&err),
			  0);
	}
	CHECK(write_file_atomic("host/d/big", data, big, 0644) == 0);
	CHECK(chmod("host/d/big", 0644) == 0 && utimensat(AT_FDCWD, "host/d/big", ts, 0) == 0);
	CHECK_INT(tree_add_file(a, "d/big", data, big, NULL, 0644, 0, 0, 1600000000, &err), 0);
	CHECK(chmod("host", 0755) == 0 && chmod("host/d", 0755) == 0);
	CHECK(utimensat(AT_FDCWD, "host/d", ts, 0) == 0 && utimensat(AT_FDCWD, "host", ts, 0) == 0);
	CHECK_INT(tree_add_dir(b, "host", "", 0, 0, &err), 0);

	CHECK_INT(tree_stream_content(a, &ops, NULL, &err), 0);
	CHECK_INT(tree_stream_content(b, &ops, NULL, &err), 0);
	tree_digest(a, 2000000000, true, da);
	tree_digest(b, 2000000000, true, db);
	CHECK(!memcmp(da, db, SHA256_LEN));
	/* every file's digest is the one it has when streamed alone */
	for (i = 0; i < 3001; i++) {
		struct tree *one = tree_new();
		char name[64];
		size_t len = i < 3000 ? 700 + i % 5 : big;
		struct tree_node *n;

		snprintf(name, sizeof(name), i < 3000 ? "d/f%04zu" : "d/big", i);
		CHECK_INT(tree_add_file(one, name, data + (i < 3000 ? i : 0), len, NULL, 0644, 0, 0,
					1600000000, &err),
			  0);
		CHECK_INT(tree_stream_content(one, &ops, NULL, &err), 0);
		n = tree_lookup(a, name);
		if (!n || memcmp(n->inode->digest, tree_lookup(one, name)->inode->digest, SHA256_LEN)) {
			printf("#   digest of %s differs\n", name);
			tap_child_failures++;
			tree_free(one);
			break;
		}
		tree_free(one);
	}
	/* and one changed byte in the large file changes it */
	data[big / 2] ^= 1;
	CHECK(write_file_atomic("host/d/big", data, big, 0644) == 0);
	CHECK(chmod("host/d/big", 0644) == 0 && utimensat(AT_FDCWD, "host/d/big", ts, 0) == 0);
	tree_free(b);
	b = tree_new();
	tree_set_default_mtime(b, 1600000000);
	CHECK_INT(tree_add_dir(b, "host", "", 0, 0, &err), 0);
	CHECK_INT(tree_stream_content(b, &ops, NULL, &err), 0);
	tree_digest(b, 2000000000, true, db);
	CHECK(memcmp(da, db, SHA256_LEN) != 0);
	free(data);
	tree_free(a);
	tree_free(b);
	strbuf_release(&err);
}

/*
 * Files whose data ends exactly where one of the hasher's buffers does: the
 * record that ends the file must still reach the hasher.
 */
TEST(test_digest_at_buffer_edges)
{
	static const struct tree_content_ops ops = { .data = count_data };
	struct strbuf err = STRBUF_INIT;
	size_t n, size = 1 << 20;
	char *data = xcalloc(1, size);

	memset(data, 'x', size);
	for (n = size - 160; n <= size; n++) {
		struct tree *x = tree_new(), *y = tree_new();

		CHECK_INT(tree_add_file(x, "f", data, n, NULL, 0644, 0, 0, 0, &err), 0);
		CHECK_INT(tree_add_file(y, "a", "1", 1, NULL, 0644, 0, 0, 0, &err), 0);
		CHECK_INT(tree_add_file(y, "f", data, n, NULL, 0644, 0, 0, 0, &err), 0);
		CHECK_INT(tree_stream_content(x, &ops, NULL, &err), 0);
		CHECK_INT(tree_stream_content(y, &ops, NULL, &err), 0);
		if (memcmp(tree_lookup(x, "f")->inode->digest, tree_lookup(y, "f")->inode->digest,
			   SHA256_LEN)) {
			printf("#   digest of a %zu-byte file depends on what came before\n", n);
			tap_child_failures++;
			n = size;
		}
		tree_free(x);
		tree_free(y);
	}
	free(data);
	strbuf_release(&err);
}

int main(void)
{
	RUN(test_normalize);
	RUN(test_layering);
	RUN(test_directory_symlinks);
	RUN(test_depth_limit);
	RUN(test_host_hardlinks_and_depth);
	RUN(test_archive_layers_and_hardlinks);
	RUN(test_host_dir_and_digest);
	RUN(test_digest_independent_of_pieces);
	RUN(test_digest_at_buffer_edges);
	return tap_done();
}
