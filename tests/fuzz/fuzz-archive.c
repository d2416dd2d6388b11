/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: archive reading (tarball.c through tree_add_archive, with the
 * hostile-input policy of tree.c) and, for archives accepted, the tree's
 * walks (statistics, content stream, digest) and the ext4 writer, whose
 * image must then pass `e2fsck -fn`: an archive imgforge accepts must give
 * a valid filesystem, whatever its shape (deep, wide, many hard links).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fs/ext4.h"
#include "fs/tree.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern char **environ;

/*
 * Bounds on what is written, for the fuzzer's speed and the disk: a small
 * compressed input can expand to gigabytes. The corpus stays far below.
 */
#define FUZZ_MAX_DATA  (64ULL << 20)
#define FUZZ_MAX_NODES 1000000

static const char *e2fsck_path(void)
{
	static const char *const cand[] = { "/sbin/e2fsck", "/usr/sbin/e2fsck" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cand); i++)
		if (access(cand[i], X_OK) == 0)
			return cand[i];
	return NULL;
}

/* Run e2fsck -fn on img; its exit status (0: clean), or -1 if it could not run. */
static int run_e2fsck(const char *fsck, const char *img, bool quiet)
{
	char *argv[] = { (char *)"e2fsck", (char *)"-fn", (char *)img, NULL };
	posix_spawn_file_actions_t fa;
	int status = 0;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	if (quiet) {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	} else {
		posix_spawn_file_actions_adddup2(&fa, 2, 1);
	}
	if (posix_spawn(&pid, fsck, &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	while (waitpid(pid, &status, 0) < 0)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The image of an accepted archive must be a clean filesystem: else a finding (abort). */
static void check_image(const char *img)
{
	const char *fsck = e2fsck_path();
	int r;

	if (!fsck) {
		static bool said;

		if (!said)
			fprintf(stderr, "fuzz-archive: no e2fsck (install e2fsprogs): images "
					"are written but not checked\n");
		said = true;
		return;
	}
	r = run_e2fsck(fsck, img, true);
	if (r > 0) {
		run_e2fsck(fsck, img, false);
		fprintf(stderr, "fuzz-archive: e2fsck -fn found errors (status %d) in the image of "
				"an accepted archive\n", r);
		abort();
	}
}

static int no_data(void *ctx, struct tree_inode *ino, uint64_t offset, const void *buf, size_t len,
		   struct strbuf *err)
{
	(void)ctx, (void)ino, (void)offset, (void)buf, (void)len, (void)err;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct tree_content_ops ops = { .data = no_data };
	const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	_cleanup_free_ char *path = xasprintf("%s/imgforge-fuzz-XXXXXX", dir);
	struct strbuf err = STRBUF_INIT;
	struct tree *t = NULL;
	int fd;

	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size)
		goto out;
	t = tree_new();
	if (tree_add_archive(t, path, &err) == 0) {
		struct ext4_opts o = EXT4_OPTS_INIT;
		struct tree_stats st;
		uint8_t digest[SHA256_LEN];
		_cleanup_free_ char *img = xasprintf("%s.ext4", path);

		tree_stats(t, &st);
		tree_digest(t, 1700000000, false, digest);
		if (st.data_bytes <= FUZZ_MAX_DATA && st.nodes <= FUZZ_MAX_NODES) {
			o.epoch = 1700000000;
			if (ext4_write(t, img, &o, NULL, &err) == 0) {
				check_image(img);
				unlink(img);
			}
		} else if (tree_stream_content(t, &ops, NULL, &err) == 0) {
			tree_digest(t, 1700000000, true, digest);
		}
	}
out:
	tree_free(t);
	strbuf_release(&err);
	close(fd);
	unlink(path);
	return 0;
}
