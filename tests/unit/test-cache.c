/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/cache.h"
#include "core/hash.h"
#include "tap.h"
#include "core/util.h"

#define KA "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KB "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define KC "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static size_t count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

/* Write into an existing file in place (same inode), as a stage or a bit flip would. */
static int write_into(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t k;

	if (fd < 0)
		return -errno;
	k = write(fd, data, len);
	close(fd);
	return k == (ssize_t)len ? 0 : -EIO;
}

static bool read_file_ok(const char *path)
{
	_cleanup_free_ char *data = NULL;
	size_t len;

	return read_file(path, 1 << 20, &data, &len) == 0;
}

/* Write size bytes of c into a new cache temp file and store it under key. */
static int store(struct cache *c, const char *key, const char *stage, char ch, size_t size,
		 char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL;
	char *data = xmalloc(size ? size : 1);
	int r;

	memset(data, ch, size);
	r = cache_tmpfile(c, stage, &tmp, &err);
	if (r == 0)
		r = write_into(tmp, data, size);
	free(data);
	if (r == 0)
		r = cache_store(c, key, stage, tmp, ret_path, NULL, &err);
	if (r < 0)
		printf("# store: %s\n", strbuf_str(&err));
	strbuf_release(&err);
	return r;
}

TEST(test_store_and_lookup)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_cache_ struct cache *c = NULL;
	_cleanup_free_ char *tmp = NULL, *stored = NULL, *found = NULL, *data = NULL;
	char hex[SHA256_HEX_LEN], want[SHA256_HEX_LEN];
	struct stat st;
	size_t len;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK(exists("c/index.db") && exists("c/objects") && exists("c/tmp"));
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_HASH, &found, &err), 0);
	CHECK(found == NULL);

	CHECK_INT(cache_tmpfile(c, "base", &tmp, &err), 0);
	{
		_cleanup_free_ char *prefix = xasprintf("c/tmp/base.%ld.", (long)getpid());
		CHECK(tmp && str_startswith(tmp, prefix));
	}
	/* The stage writes through its own file handle, into the given path. */
	{
		FILE *f = fopen(tmp, "w");
		CHECK(f != NULL);
		if (f) {
			fputs("a base tarball", f);
			fclose(f);
		}
	}
	sha256_hex("a base tarball", 14, want);
	CHECK_INT(cache_store(c, KA, "base", tmp, &stored, hex, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_STR(hex, want);
	CHECK_STR(stored, "c/objects/" KA);
	CHECK(!exists(tmp));
	CHECK(stat(stored, &st) == 0 && (st.st_mode & 0777) == 0444);

	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_METADATA, &found, &err), 1);
	CHECK_STR(found, stored);
	/* Its hash comes from the index; a copy elsewhere is not the pinned object. */
	{
		char pinned[SHA256_HEX_LEN] = "";
		uint64_t size = 0;

		CHECK_INT(cache_pinned_sha256(c, found, pinned, &size), 0);
		CHECK_STR(pinned, want);
		CHECK_INT(size, 14);
		CHECK(write_file_atomic(KA, "a base tarball", 14, 0644) == 0);
		CHECK_INT(cache_pinned_sha256(c, KA, pinned, &size), -ENOENT);
	}
	CHECK(read_file(found, 100, &data, &len) == 0);
	CHECK_STR(data, "a base tarball");
	free(found);
	found = NULL;
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_HASH, &found, &err), 1);
	CHECK_STR(strbuf_str(&err), "");

	/* Bad keys are refused, never turned into paths. */
	CHECK_INT(cache_lookup(c, "../../etc/passwd", CACHE_VERIFY_HASH, &found, &err), -EINVAL);
	CHECK_INT(cache_store(c, "ABC", "base", "x", NULL, NULL, &err), -EINVAL);
	CHECK_INT(cache_touch(c, KB, &err), -ENOENT);
	strbuf_release(&err);
}

TEST(test_corrupt_file_is_a_miss)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_cache_ struct cache *c = NULL;
	_cleanup_free_ char *path = NULL, *found = NULL;
	struct cache_entry *list = NULL;
	size_t n = 9;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(store(c, KA, "rootfs", 'x', 4096, &path), 0);
	/* Same size, different bytes: found by its changed ctime and the hash. */
	CHECK(chmod(path, 0644) == 0);
	CHECK(write_into(path, "y", 1) == 0);
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_METADATA, &found, &err), 0);
	CHECK(found == NULL);
	CHECK(strstr(strbuf_str(&err), "corrupt") != NULL);
	CHECK(strstr(strbuf_str(&err), "rootfs") != NULL);
	CHECK(!exists(path));
	CHECK_INT(cache_list(c, &list, &n, &err), 0);
	CHECK_INT(n, 0);

	/* Rebuilt: stored again, then a hit. */
	strbuf_reset(&err);
	CHECK_INT(store(c, KA, "rootfs", 'x', 4096, NULL), 0);
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_METADATA, &found, &err), 1);
	CHECK_STR(strbuf_str(&err), "");
	strbuf_release(&err);
}

TEST(test_missing_file_is_a_miss)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_cache_ struct cache *c = NULL;
	_cleanup_free_ char *path = NULL, *found = NULL;
	struct cache_entry *list = NULL;
	size_t n = 9;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(store(c, KB, "disk", 'd', 100, &path), 0);
	CHECK(unlink(path) == 0);
	CHECK_INT(cache_lookup(c, KB, CACHE_VERIFY_HASH, &found, &err), 0);
	CHECK(strstr(strbuf_str(&err), "missing") != NULL);
	CHECK_INT(cache_list(c, &list, &n, &err), 0);
	CHECK_INT(n, 0);
	/* A second lookup is a plain miss, without a reason. */
	strbuf_reset(&err);
	CHECK_INT(cache_lookup(c, KB, CACHE_VERIFY_HASH, &found, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	strbuf_release(&err);
}

TEST(test_gc_lru)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_cache_ struct cache *c = NULL;
	_cleanup_free_ char *pa = NULL, *pb = NULL, *pc = NULL, *found = NULL;
	struct cache_gc_stats st = {0};
	struct cache_entry *list = NULL;
	size_t n = 0;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(store(c, KA, "base", 'a', 100, &pa), 0);
	CHECK_INT(store(c, KB, "base", 'b', 200, &pb), 0);
	CHECK_INT(store(c, KC, "base", 'c', 300, &pc), 0);
	/* Using A makes it the most recently used: B, C, A. */
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_METADATA, &found, &err), 1);
	CHECK_INT(cache_list(c, &list, &n, &err), 0);
	CHECK_INT(n, 3);
	if (n == 3) {
		CHECK_STR(list[0].key, KB);
		CHECK_STR(list[1].key, KC);
		CHECK_STR(list[2].key, KA);
		CHECK_INT(list[2].size, 100);
		CHECK_STR(list[1].stage, "base");
		CHECK(list[0].created > 0 && list[0].last_used >= list[0].created);
	}
	cache_entries_free(list, n);

	/* This handle pins what it stored and looked up: gc keeps all of it. */
	CHECK_INT(cache_gc(c, 0, &st, &err), 0);
	CHECK_INT(st.removed, 0);
	CHECK_INT(st.busy, 3);
	cache_close(TAKE_PTR(c));
	CHECK_INT(cache_open("c", &c, &err), 0);

	/* 600 bytes, at most 350 allowed: B then C go. */
	CHECK_INT(cache_gc(c, 350, &st, &err), 0);
	CHECK_INT(st.removed, 2);
	CHECK_INT(st.freed, 500);
	CHECK_INT(st.kept, 1);
	CHECK_INT(st.kept_size, 100);
	CHECK(exists(pa) && !exists(pb) && !exists(pc));
	CHECK_INT(count_dir("c/objects"), 1);

	/* Within the limit: nothing to do. */
	CHECK_INT(cache_gc(c, 100, &st, &err), 0);
	CHECK_INT(st.removed, 0);
	CHECK_INT(cache_gc(c, 0, &st, &err), 0);
	CHECK_INT(st.removed, 1);
	CHECK_INT(count_dir("c/objects"), 0);
	strbuf_release(&err);
}

/*
 * What SIGKILL leaves behind: a half-written temp file, and an object renamed
 * into objects/ whose row was never committed. Neither is ever used, and the
 * next open deletes both — but not the temp file of a process still running.
 */
TEST(test_sigkill_leftovers_cleaned)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *c = NULL;
	_cleanup_free_ char *found = NULL;
	int ready[2];
	char buf[512] = "";
	pid_t pid;
	ssize_t k;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(store(c, KA, "base", 'a', 10, NULL), 0);
	cache_close(c);
	c = NULL;

	CHECK(pipe(ready) == 0);
	pid = fork();
	if (pid == 0) {
		struct cache *cc = NULL;
		char *tmp = NULL;

		close(ready[0]);
		if (cache_open("c", &cc, &err) < 0 || cache_tmpfile(cc, "rootfs", &tmp, &err) < 0)
			_exit(1);
		/* Replaced, not written into (no lock on it now), and a file beside it. */
		if (write_file_atomic(tmp, "half", 4, 0644) < 0)
			_exit(1);
		{
			_cleanup_free_ char *part = xasprintf("%s.part", tmp);
			if (write_file_atomic(part, "part", 4, 0644) < 0)
				_exit(1);
		}
		if (write(ready[1], tmp, strlen(tmp)) < 0)
			_exit(1);
		close(ready[1]);
		for (;;)
			pause();
	}
	close(ready[1]);
	k = read(ready[0], buf, sizeof(buf) - 1);
	close(ready[0]);
	CHECK(k > 0);
	buf[k > 0 ? k : 0] = '\0';
	CHECK(exists(buf));

	/* A crash between the rename into objects/ and the commit. */
	CHECK(write_file_atomic("c/objects/" KB, "orphan", 6, 0444) == 0);

	/*
	 * While the writer lives, its temp files stay. The object without a row
	 * is never used; opening leaves it (a lost index must not empty the
	 * cache behind the user's back), gc deletes it.
	 */
	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK(exists(buf));
	CHECK_INT(count_dir("c/tmp"), 2);
	CHECK(exists("c/objects/" KB));
	CHECK(exists("c/objects/" KA));
	CHECK_INT(cache_lookup(c, KB, CACHE_VERIFY_HASH, &found, &err), 0);
	{
		struct cache_gc_stats st = {0};

		CHECK_INT(cache_gc(c, UINT64_MAX, &st, &err), 0);
		CHECK_INT(st.unindexed, 1);
		CHECK_INT(st.unindexed_size, 6);
	}
	CHECK(!exists("c/objects/" KB));
	CHECK(exists("c/objects/" KA));
	cache_close(c);
	c = NULL;

	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK(!exists(buf));
	CHECK_INT(count_dir("c/tmp"), 0);
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_HASH, &found, &err), 1);
	cache_close(c);
	strbuf_release(&err);
}

static const char *const stress_keys[] = {KA, KB, KC};

/* Expected content of a key's object: derived from the key, so any process stores the same. */
static char stress_byte(const char *key)
{
	return key[0];
}

static int stress_worker(unsigned seed)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *c = NULL;
	int i;

	if (cache_open("c", &c, &err) < 0) {
		printf("# worker: %s\n", strbuf_str(&err));
		return 1;
	}
	for (i = 0; i < 40; i++) {
		const char *key;
		char *found = NULL;
		int op, r;

		seed = seed * 1103515245u + 12345u;
		key = stress_keys[(seed >> 8) % ARRAY_SIZE(stress_keys)];
		op = (int)((seed >> 16) % 4);
		strbuf_reset(&err);
		if (op == 0 || op == 1) {
			r = store(c, key, "rootfs", stress_byte(key), 1000 + (size_t)(key[0] - 'a'),
				  NULL);
		} else if (op == 2) {
			r = cache_lookup(c, key, CACHE_VERIFY_HASH, &found, &err);
			if (r > 0) {
				_cleanup_free_ char *data = NULL;
				size_t len;

				/* Another process's gc may unlink it meanwhile: that is fine. */
				if (read_file(found, 1 << 20, &data, &len) == 0 &&
				    (len != 1000 + (size_t)(key[0] - 'a') || data[0] != key[0]))
					r = -EBADMSG;
			}
			free(found);
		} else {
			r = cache_gc(c, 2100, NULL, &err);
		}
		if (r < 0) {
			printf("# worker op %d: %d %s\n", op, r, strbuf_str(&err));
			cache_close(c);
			return 1;
		}
	}
	cache_close(c);
	strbuf_release(&err);
	return 0;
}

/*
 * Several processes storing, looking up and collecting at once: every entry
 * left points at a complete file with the recorded hash, and nothing is left
 * over in tmp/ or objects/.
 */
TEST(test_concurrent_processes)
{
	struct strbuf err = STRBUF_INIT;
	struct cache_entry *list = NULL;
	struct cache *c = NULL;
	pid_t pids[3];
	size_t i, n = 0;
	int status;

	CHECK_INT(cache_open("c", &c, &err), 0);
	cache_close(TAKE_PTR(c));
	for (i = 0; i < ARRAY_SIZE(pids); i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			fflush(stdout);
			_exit(stress_worker(7 + (unsigned)i * 1000));
		}
	}
	for (i = 0; i < ARRAY_SIZE(pids); i++) {
		CHECK(waitpid(pids[i], &status, 0) == pids[i]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(cache_list(c, &list, &n, &err), 0);
	for (i = 0; i < n; i++) {
		char hex[SHA256_HEX_LEN];
		uint64_t size = 0;

		CHECK(sha256_file(list[i].path, hex, &size) == 0);
		CHECK_STR(hex, list[i].sha256);
		CHECK_INT(size, list[i].size);
	}
	CHECK_INT(count_dir("c/objects"), n);
	CHECK_INT(count_dir("c/tmp"), 0);
	cache_entries_free(list, n);
	cache_close(c);
	strbuf_release(&err);
}

TEST(test_downloads)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_cache_ struct cache *c = NULL;
	_cleanup_free_ char *dl = NULL, *found = NULL, *x = NULL;
	struct cache_gc_stats st = {0};
	int busy;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(cache_download_path(c, KA, &dl, &err), 0);
	CHECK_STR(dl, "c/downloads/" KA);
	CHECK_INT(cache_download_path(c, "../x", &x, &err), -EINVAL);
	CHECK_INT(cache_download_path(c, ".hidden", &x, &err), -EINVAL);

	/* An interrupted download survives open (to be resumed) ... */
	CHECK(write_file_atomic("c/downloads/" KA ".part", "half", 4, 0644) == 0);
	CHECK(write_file_atomic("c/downloads/" KB ".part", "busy", 4, 0644) == 0);
	cache_close(TAKE_PTR(c));
	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK(exists("c/downloads/" KA ".part"));
	/* ... and gc deletes it, but not one that a fetch holds locked. */
	busy = open("c/downloads/" KB ".part", O_RDONLY);
	CHECK(busy >= 0 && flock(busy, LOCK_EX) == 0);
	CHECK_INT(cache_gc(c, UINT64_MAX, &st, &err), 0);
	CHECK_INT(st.downloads, 1);
	CHECK_INT(st.downloads_size, 4);
	CHECK(!exists("c/downloads/" KA ".part"));
	CHECK(exists("c/downloads/" KB ".part"));
	close(busy);

	/* A finished download is stored like any stage output. */
	CHECK(write_file_atomic(dl, "base", 4, 0644) == 0);
	CHECK_INT(cache_store(c, KA, "base", dl, NULL, NULL, &err), 0);
	CHECK(!exists(dl));
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_HASH, &found, &err), 1);
	strbuf_release(&err);
}

/*
 * The index is lost (deleted, or replaced by an empty one) while objects/
 * still holds files: opening the cache, as every build does, must not
 * delete them (it used to, after handing bsearch() a NULL array), and
 * storing a key whose file is there without a row replaces that file.
 */
TEST(test_lost_index_keeps_objects)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *c = NULL;
	_cleanup_free_ char *found = NULL;
	struct cache_entry *list = NULL;
	size_t n = 9;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(store(c, KA, "base", 'a', 10, NULL), 0);
	CHECK_INT(store(c, KB, "rootfs", 'b', 20, NULL), 0);
	cache_close(TAKE_PTR(c));
	CHECK(unlink("c/index.db") == 0);
	unlink("c/index.db-wal");
	unlink("c/index.db-shm");

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(count_dir("c/objects"), 2);
	CHECK_INT(cache_list(c, &list, &n, &err), 0);
	CHECK_INT(n, 0);
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_HASH, &found, &err), 0);
	/* Built again: stored over the file without a row. */
	CHECK_INT(store(c, KA, "base", 'A', 11, NULL), 0);
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_HASH, &found, &err), 1);
	CHECK_INT(count_dir("c/objects"), 2);
	cache_close(c);
	strbuf_release(&err);
}

/* Two processes store the same key: the second keeps the first's object. */
TEST(test_store_never_replaces)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *c1 = NULL, *c2 = NULL;
	_cleanup_free_ char *t1 = NULL, *t2 = NULL, *p1 = NULL, *p2 = NULL;
	char h1[SHA256_HEX_LEN], h2[SHA256_HEX_LEN];
	struct stat a, b;

	CHECK_INT(cache_open("c", &c1, &err), 0);
	CHECK_INT(cache_open("c", &c2, &err), 0);
	CHECK_INT(cache_tmpfile(c1, "base", &t1, &err), 0);
	CHECK_INT(cache_tmpfile(c2, "base", &t2, &err), 0);
	CHECK(write_into(t1, "first", 5) == 0 && write_into(t2, "second", 6) == 0);
	CHECK_INT(cache_store(c1, KA, "base", t1, &p1, h1, &err), 0);
	CHECK(stat(p1, &a) == 0);
	CHECK_INT(cache_store(c2, KA, "base", t2, &p2, h2, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_STR(p2, p1);
	CHECK_STR(h2, h1);
	CHECK(stat(p2, &b) == 0 && a.st_ino == b.st_ino);
	CHECK(!exists(t2));
	CHECK_INT(count_dir("c/tmp"), 0);
	cache_close(c1);
	cache_close(c2);
	strbuf_release(&err);
}

/*
 * A key's lock is held by one handle at a time; gc leaves alone what a
 * build has locked or pinned, and deletes it once the build is done.
 */
TEST(test_locks_and_pins_stop_gc)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *b1 = NULL, *b2 = NULL, *gc = NULL;
	_cleanup_free_ char *found = NULL;
	struct cache_gc_stats st = {0};

	CHECK_INT(cache_open("c", &b1, &err), 0);
	CHECK_INT(cache_open("c", &b2, &err), 0);
	CHECK_INT(cache_open("c", &gc, &err), 0);
	CHECK_INT(cache_lock(b1, KA, false, &err), 0);
	CHECK_INT(cache_lock(b1, KA, false, &err), 0); /* held already: fine */
	CHECK_INT(cache_lock(b2, KA, false, &err), -EAGAIN);
	CHECK_INT(cache_lock(b1, "nope", false, &err), -EINVAL);
	CHECK_INT(store(b1, KA, "base", 'a', 100, NULL), 0);
	CHECK_INT(store(gc, KB, "base", 'b', 100, NULL), 0);
	cache_close(TAKE_PTR(gc));
	CHECK_INT(cache_open("c", &gc, &err), 0);

	/* b1 holds A's lock and pins it; B is nobody's. */
	CHECK_INT(cache_gc(gc, 0, &st, &err), 0);
	CHECK_INT(st.removed, 1);
	CHECK_INT(st.busy, 1);
	CHECK(exists("c/objects/" KA) && !exists("c/objects/" KB));

	/* Unlocked, still pinned by b1; b2 takes the lock and hits the cache. */
	cache_unlock(b1, KA);
	CHECK_INT(cache_lock(b2, KA, false, &err), 0);
	CHECK_INT(cache_lookup(b2, KA, CACHE_VERIFY_METADATA, &found, &err), 1);
	cache_unlock(b2, KA);
	cache_close(TAKE_PTR(b1));
	CHECK_INT(cache_gc(gc, 0, &st, &err), 0);
	CHECK_INT(st.removed, 0);
	CHECK_INT(st.busy, 1);
	CHECK(read_file_ok(found));

	/* Nobody uses it any more: gc deletes it, and the lock files. */
	cache_close(TAKE_PTR(b2));
	CHECK_INT(cache_gc(gc, 0, &st, &err), 0);
	CHECK_INT(st.removed, 1);
	CHECK(!exists("c/objects/" KA));
	CHECK_INT(count_dir("c/locks"), 0);
	cache_close(gc);
	strbuf_release(&err);
}

/*
 * Two builds fetching the same file for different keys: the second waits
 * for the first's download lock, and gc does not delete a finished download
 * before the build that fetched it has stored it.
 */
TEST(test_download_lock)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *b1 = NULL, *gc = NULL;
	_cleanup_free_ char *dl = NULL;
	struct cache_gc_stats st = {0};
	int go[2], status = 0;
	char ch = 0;
	pid_t pid;

	/* Forked first: a child must not inherit (and so keep holding) b1's lock. */
	CHECK(pipe(go) == 0);
	pid = fork();
	if (pid == 0) {
		struct cache *b2 = NULL;
		char *p = NULL;

		close(go[1]);
		if (read(go[0], &ch, 1) != 1 || cache_open("c", &b2, &err) < 0)
			_exit(1);
		/* Blocks until b1 has stored the file (the download is then gone). */
		if (cache_download_path(b2, KC, &p, &err) < 0 || exists(p))
			_exit(2);
		_exit(0);
	}
	close(go[0]);
	CHECK_INT(cache_open("c", &b1, &err), 0);
	CHECK_INT(cache_open("c", &gc, &err), 0);
	CHECK_INT(cache_download_path(b1, KC, &dl, &err), 0);
	CHECK(write_file_atomic(dl, "tarball", 7, 0644) == 0);
	CHECK_INT(cache_gc(gc, UINT64_MAX, &st, &err), 0);
	CHECK_INT(st.downloads, 0);
	CHECK(exists(dl));

	CHECK(write(go[1], "s", 1) == 1);
	close(go[1]);
	usleep(300 * 1000);
	CHECK(waitpid(pid, &status, WNOHANG) == 0); /* still waiting */
	CHECK_INT(cache_store(b1, KA, "base", dl, NULL, NULL, &err), 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cache_close(b1);
	cache_close(gc);
	strbuf_release(&err);
}

/* cache ls's handle: writes nothing, works without an index, refuses to change anything. */
TEST(test_open_readonly)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *c = NULL;
	_cleanup_free_ char *found = NULL, *tmp = NULL;
	struct cache_entry *list = NULL;
	struct cache_gc_stats st;
	size_t n = 9;

	CHECK_INT(cache_open_readonly("none", &c, &err), 0);
	CHECK_INT(cache_list(c, &list, &n, &err), 0);
	CHECK_INT(n, 0);
	CHECK(!exists("none"));
	cache_close(TAKE_PTR(c));

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(store(c, KA, "base", 'a', 10, NULL), 0);
	cache_close(TAKE_PTR(c));
	CHECK(write_file_atomic("c/objects/" KB, "no row", 6, 0444) == 0);
	CHECK_INT(cache_open_readonly("c", &c, &err), 0);
	CHECK_INT(cache_list(c, &list, &n, &err), 0);
	CHECK_INT(n, 1);
	cache_entries_free(list, n);
	CHECK(exists("c/objects/" KB));
	CHECK_INT(cache_lookup(c, KA, CACHE_VERIFY_HASH, &found, &err), -EROFS);
	CHECK_INT(cache_tmpfile(c, "base", &tmp, &err), -EROFS);
	CHECK_INT(cache_gc(c, 0, &st, &err), -EROFS);
	CHECK_INT(cache_lock(c, KA, true, &err), -EROFS);
	cache_close(c);

	/* An empty index is not a cache without entries: it lost them. */
	CHECK(write_file_atomic("c/index.db", "", 0, 0644) == 0);
	strbuf_reset(&err);
	CHECK_INT(cache_open("c", &c, &err), -EBADMSG);
	CHECK(strstr(strbuf_str(&err), "c/index.db' is an empty file") != NULL);
	strbuf_release(&err);
}

TEST(test_close_removes_unstored_tmp)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *c = NULL;
	_cleanup_free_ char *tmp = NULL;

	CHECK_INT(cache_open("c", &c, &err), 0);
	CHECK_INT(cache_tmpfile(c, "disk", &tmp, &err), 0);
	CHECK(exists(tmp));
	CHECK_INT(cache_tmpfile(c, "../evil", &tmp, &err), -EINVAL);
	cache_close(c);
	CHECK(!exists(tmp));
	strbuf_release(&err);
}

TEST(test_default_dir)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *a = NULL, *b = NULL;
	char *c = NULL;

	setenv("XDG_CACHE_HOME", "/var/cache/x", 1);
	CHECK_INT(cache_default_dir(&a, &err), 0);
	CHECK_STR(a, "/var/cache/x/imgforge");
	setenv("XDG_CACHE_HOME", "relative", 1);
	setenv("HOME", "/home/u", 1);
	CHECK_INT(cache_default_dir(&b, &err), 0);
	CHECK_STR(b, "/home/u/.cache/imgforge");
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	CHECK_INT(cache_default_dir(&c, &err), -ENOENT);
	CHECK(strstr(strbuf_str(&err), "--cache") != NULL);
	strbuf_release(&err);
}

int main(void)
{
	RUN(test_store_and_lookup);
	RUN(test_corrupt_file_is_a_miss);
	RUN(test_missing_file_is_a_miss);
	RUN(test_gc_lru);
	RUN(test_sigkill_leftovers_cleaned);
	RUN(test_concurrent_processes);
	RUN(test_downloads);
	RUN(test_lost_index_keeps_objects);
	RUN(test_store_never_replaces);
	RUN(test_locks_and_pins_stop_gc);
	RUN(test_download_lock);
	RUN(test_open_readonly);
	RUN(test_close_removes_unstored_tmp);
	RUN(test_default_dir);
	return tap_done();
}
