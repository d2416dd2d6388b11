/* SPDX-License-Identifier: MIT */
/*
 * The output directory, written as a set. A build holds an exclusive lock
 * on the directory (flock on the directory itself: no lock file) and writes
 * every output into a private staging directory inside it (mkdtemp, files
 * created O_EXCL|O_NOFOLLOW): nothing under a final name is touched until
 * the whole set is complete. The commit then removes manifest.json, renames
 * each output in and renames the new manifest.json in last, syncing files
 * and directories on the way: whenever manifest.json exists, the outputs
 * beside it are the ones it lists. A rename replaces a symbolic link
 * planted under an output's name; it never writes through it.
 *
 * SIGINT, SIGTERM and SIGHUP remove the staging directory before imgforge
 * ends; a build killed with SIGKILL leaves it, and the next build into the
 * directory removes it. The commit holds those signals back until it ends:
 * a build told to stop while it renames its outputs in finishes the set
 * (renames and syncs, no new work) and then stops, so only SIGKILL or a
 * crash can leave the directory without its manifest.json.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/outputs.h"
#include "core/hash.h"

#define STAGING_PREFIX ".staging-"
#define MAX_FILES      8

struct build_outputs {
	char *dir;     /* the output directory, as given */
	int dir_fd;    /* open and locked */
	char *staging; /* name of the staging directory inside dir */
	int staging_fd;
	const char *names[MAX_FILES]; /* files in the staging directory, in order */
	size_t n;
	bool committed;
	struct sigaction old[3];
};

static const int cleanup_signals[3] = {SIGINT, SIGTERM, SIGHUP};

/*
 * The one set being written, for the signal handler: it only unlinks the
 * names it knows and removes the directory, which is async-signal-safe.
 */
static struct build_outputs *volatile active;

static void remove_staging(struct build_outputs *o)
{
	size_t i;

	for (i = 0; i < o->n; i++)
		unlinkat(o->staging_fd, o->names[i], 0);
	unlinkat(o->dir_fd, o->staging, AT_REMOVEDIR);
}

static void on_signal(int sig)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};

	if (active)
		remove_staging(active);
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	raise(sig);
}

/* Remove what builds killed with SIGKILL left: staging directories, older temporary files. */
static void clean_outdir(struct build_outputs *o)
{
	int fd = openat(o->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		_cleanup_free_ char *p = NULL;

		if (de->d_name[0] != '.')
			continue;
		if (str_startswith(de->d_name, STAGING_PREFIX) || strstr(de->d_name, ".tmp-")) {
			p = path_join(o->dir, de->d_name);
			rm_rf(p);
		}
	}
	closedir(d);
}

int outputs_open(const char *dir, struct build_outputs **ret, struct strbuf *err)
{
	struct build_outputs *o = xcalloc(1, sizeof(*o));
	struct sigaction sa = {.sa_handler = on_signal};
	char tmpl[] = STAGING_PREFIX "XXXXXX";
	_cleanup_free_ char *path = NULL;
	size_t i;
	int r;

	o->dir = xstrdup(dir);
	o->dir_fd = o->staging_fd = -1;
	r = mkdir_p(dir, 0755);
	if (r < 0) {
		strbuf_addf(err, "cannot create the output directory '%s': %s", dir, strerror(-r));
		goto fail;
	}
	o->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (o->dir_fd < 0) {
		r = -errno;
		strbuf_addf(err, "cannot open the output directory '%s': %s", dir, strerror(-r));
		goto fail;
	}
	if (flock(o->dir_fd, LOCK_EX | LOCK_NB) < 0) {
		r = -errno;
		if (r == -EWOULDBLOCK)
			strbuf_addf(err,
				    "another build is writing into '%s': wait for it to finish, or "
				    "choose another directory with -o",
				    dir);
		else
			strbuf_addf(err, "cannot lock the output directory '%s': %s", dir,
				    strerror(-r));
		goto fail;
	}
	clean_outdir(o);
	path = path_join(dir, tmpl);
	if (!mkdtemp(path)) {
		r = -errno;
		strbuf_addf(err, "cannot create a directory in '%s': %s", dir, strerror(-r));
		goto fail;
	}
	o->staging = xstrdup(path_basename(path));
	o->staging_fd =
		openat(o->dir_fd, o->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (o->staging_fd < 0) {
		r = -errno;
		strbuf_addf(err, "cannot open '%s': %s", path, strerror(-r));
		unlinkat(o->dir_fd, o->staging, AT_REMOVEDIR);
		goto fail;
	}
	active = o;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < ARRAY_SIZE(cleanup_signals); i++) {
		sigaction(cleanup_signals[i], &sa, &o->old[i]);
		/* An ignored signal stays ignored (nohup imgforge build ...). */
		if (!(o->old[i].sa_flags & SA_SIGINFO) && o->old[i].sa_handler == SIG_IGN)
			sigaction(cleanup_signals[i], &o->old[i], NULL);
	}
	*ret = o;
	return 0;
fail:
	free(o->staging);
	if (o->dir_fd >= 0)
		close(o->dir_fd);
	free(o->dir);
	free(o);
	return r;
}

const char *outputs_dir(const struct build_outputs *o)
{
	return o->dir;
}

char *outputs_staged_path(const struct build_outputs *o, const char *name)
{
	_cleanup_free_ char *s = path_join(o->dir, o->staging);

	return path_join(s, name);
}

/* A new file in the staging directory; name must be a string literal (static storage). */
int outputs_create(struct build_outputs *o, const char *name)
{
	int fd;

	if (o->n == MAX_FILES)
		return -ENOSPC;
	/* Known before it exists: the signal handler never misses a file. */
	o->names[o->n++] = name;
	fd = openat(o->staging_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    0644);
	if (fd < 0) {
		fd = -errno;
		o->n--;
	}
	return fd;
}

int outputs_add_file(struct build_outputs *o, const char *name, const char *src, bool *ret_cloned,
		     struct strbuf *err)
{
	_cleanup_close_ int in = -1;
	_cleanup_free_ char *dst = path_join(o->dir, name);
	bool cloned = false;
	struct stat st;
	int out, r = 0;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot read '%s': %s", src, strerror(-r));
		return r;
	}
	out = outputs_create(o, name);
	if (out < 0) {
		strbuf_addf(err, "cannot write '%s': %s", dst, strerror(-out));
		return out;
	}
	/* A copy-on-write clone shares the cache's blocks: no data is copied. */
	if (ioctl(out, FICLONE, in) == 0) {
		cloned = true;
		if (fsync(out) < 0)
			r = -errno;
	} else {
		r = copy_fd_sparse(in, (uint64_t)st.st_size, out);
	}
	if (close(out) < 0 && r == 0)
		r = -errno;
	if (r < 0) {
		strbuf_addf(err, "cannot write '%s': %s", dst, strerror(-r));
		return r;
	}
	if (ret_cloned)
		*ret_cloned = cloned;
	return 0;
}

int outputs_add_data(struct build_outputs *o, const char *name, const void *data, size_t len,
		     struct strbuf *err)
{
	_cleanup_free_ char *dst = path_join(o->dir, name);
	int fd = outputs_create(o, name), r = 0;
	FILE *f;

	if (fd < 0) {
		strbuf_addf(err, "cannot write '%s': %s", dst, strerror(-fd));
		return fd;
	}
	f = fdopen(fd, "w");
	if (!f) {
		r = -errno;
		close(fd);
	} else {
		errno = 0;
		if (fwrite(data, 1, len, f) != len || fflush(f) != 0 || fsync(fd) < 0)
			r = errno ? -errno : -EIO;
		if (fclose(f) != 0 && r == 0)
			r = -errno;
	}
	if (r < 0)
		strbuf_addf(err, "cannot write '%s': %s", dst, strerror(-r));
	return r;
}

static int move_in(struct build_outputs *o, const char *name, struct strbuf *err)
{
	if (renameat(o->staging_fd, name, o->dir_fd, name) < 0) {
		int r = -errno;
		_cleanup_free_ char *dst = path_join(o->dir, name);
		strbuf_addf(err, "cannot rename the new '%s' into place: %s", dst, strerror(-r));
		return r;
	}
	return 0;
}

static int commit(struct build_outputs *o, const char *last, struct strbuf *err)
{
	size_t i;
	int r;

	if (fsync(o->staging_fd) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot sync '%s': %s", o->dir, strerror(-r));
		return r;
	}
	/* From here until the new one is in, there is no manifest: the set is incomplete. */
	if (unlinkat(o->dir_fd, last, 0) < 0 && errno != ENOENT) {
		r = -errno;
		strbuf_addf(err, "cannot replace '%s/%s': %s", o->dir, last, strerror(-r));
		return r;
	}
	if (fsync(o->dir_fd) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot sync '%s': %s", o->dir, strerror(-r));
		return r;
	}
	for (i = 0; i < o->n; i++) {
		if (!strcmp(o->names[i], last))
			continue;
		r = move_in(o, o->names[i], err);
		if (r < 0)
			return r;
	}
	r = move_in(o, last, err);
	if (r < 0)
		return r;
	o->committed = true;
	if (fsync(o->dir_fd) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot sync '%s': %s", o->dir, strerror(-r));
		return r;
	}
	return 0;
}

int outputs_commit(struct build_outputs *o, const char *last, struct strbuf *err)
{
	sigset_t stop, old;
	size_t i;
	int r;

	sigemptyset(&stop);
	for (i = 0; i < ARRAY_SIZE(cleanup_signals); i++)
		sigaddset(&stop, cleanup_signals[i]);
	pthread_sigmask(SIG_BLOCK, &stop, &old);
	r = commit(o, last, err);
	/* A signal that came meanwhile is handled here, with the set complete. */
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

void outputs_free(struct build_outputs *o, const char *keep)
{
	size_t i;

	if (!o)
		return;
	/* After a failure, the log of the failed build replaces the last one. */
	if (!o->committed && keep)
		for (i = 0; i < o->n; i++)
			if (!strcmp(o->names[i], keep) &&
			    renameat(o->staging_fd, keep, o->dir_fd, keep) == 0)
				o->names[i] = "";
	remove_staging(o);
	for (i = 0; i < ARRAY_SIZE(cleanup_signals); i++)
		sigaction(cleanup_signals[i], &o->old[i], NULL);
	active = NULL;
	close(o->staging_fd);
	/* Closing the directory releases the lock. */
	close(o->dir_fd);
	free(o->staging);
	free(o->dir);
	free(o);
}
