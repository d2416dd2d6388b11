/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/cache.h"
#include "store/db.h"
#include "core/hash.h"
#include "core/util.h"

/*
 * The cache index schema, in one place. Migration i takes the index from
 * user_version i to i + 1; append, never edit (docs/cache.md).
 *
 * path is relative to the cache directory. use_seq orders entries by use
 * (a counter, since several uses can fall in the same second); ino,
 * ctime_ns and mtime_ns are the file's identity when it was last verified.
 */
static const struct db_migration cache_schema[] = {
	{"CREATE TABLE entries ("
	 "  key TEXT PRIMARY KEY,"
	 "  stage TEXT NOT NULL,"
	 "  path TEXT NOT NULL,"
	 "  sha256 TEXT NOT NULL,"
	 "  size INTEGER NOT NULL,"
	 "  created INTEGER NOT NULL,"
	 "  last_used INTEGER NOT NULL,"
	 "  use_seq INTEGER NOT NULL,"
	 "  ino INTEGER NOT NULL,"
	 "  ctime_ns INTEGER NOT NULL,"
	 "  mtime_ns INTEGER NOT NULL"
	 ");"
	 "CREATE INDEX entries_by_use ON entries (use_seq);"},
};

struct tmpfile {
	char *path;
	int fd; /* holds the flock that marks the file as in use */
};

struct cache {
	char *dir;
	char *objects;
	char *tmp;
	char *downloads;
	struct db *db;
	struct tmpfile *tmps;
	size_t n_tmps, alloc_tmps;
};

/* The identity of a file, to notice it changed without reading it. */
struct ident {
	int64_t size, ino, ctime_ns, mtime_ns;
};

static void ident_of(const struct stat *st, struct ident *id)
{
	id->size = (int64_t)st->st_size;
	id->ino = (int64_t)st->st_ino;
	id->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
	id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

bool cache_key_valid(const char *key)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
			return false;
	return key[64] == '\0';
}

static int check_key(const char *key, struct strbuf *err)
{
	if (key && cache_key_valid(key))
		return 0;
	if (err)
		strbuf_addf(err, "invalid cache key '%s': expected 64 lowercase hex digits",
			    key ? key : "(null)");
	return -EINVAL;
}

int cache_default_dir(char **ret, struct strbuf *err)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");

	/* The XDG spec says relative values are invalid and must be ignored. */
	if (xdg && xdg[0] == '/') {
		*ret = path_join(xdg, "imgforge");
		return 0;
	}
	if (home && home[0] == '/') {
		*ret = xasprintf("%s/.cache/imgforge", home);
		return 0;
	}
	strbuf_addstr(err, "cannot find a cache directory: set XDG_CACHE_HOME or HOME, or pass "
			   "--cache DIR");
	return -ENOENT;
}

const char *cache_dir(const struct cache *c)
{
	return c->dir;
}

/* Cache times are wall-clock times of use, not SOURCE_DATE_EPOCH. */
static int64_t now(void)
{
	return (int64_t)time(NULL);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Temporary files are named "<stage>.<pid>.XXXXXX" (stage names have no
 * dots). True when the process that made this one is still running: its
 * file is kept even when it is not locked, because the stage may have
 * replaced it (a tool writing to a new file and renaming it over the path)
 * or written beside it ("<name>.part"). A reused pid only delays cleanup.
 */
static bool owner_alive(const char *name)
{
	const char *dot = strchr(name, '.'), *p;
	long pid = 0;

	if (!dot)
		return false;
	for (p = dot + 1; *p >= '0' && *p <= '9' && pid < 100000000; p++)
		pid = pid * 10 + (*p - '0');
	if (p == dot + 1 || *p != '.' || pid <= 0)
		return false;
	if (pid == (long)getpid())
		return true;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/*
 * Delete what crashed processes left: files in tmp/ whose process is gone
 * and that nobody holds a lock on, and files in objects/ without a row. Runs
 * inside the index's write transaction, which cache_tmpfile() and
 * cache_store() also hold while they create or publish a file, so a live
 * process's file is never mistaken for an orphan.
 */
static int clean_orphans(struct cache *c, size_t *ret_n, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	char **keys = NULL;
	size_t n_keys = 0, alloc = 0, n = 0, i;
	struct dirent *de;
	DIR *d;
	int r;

	r = db_begin(c->db, err);
	if (r < 0)
		return r;

	d = opendir(c->tmp);
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (owner_alive(de->d_name))
			continue;
		p = path_join(c->tmp, de->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0) {
			if (errno == ELOOP && unlink(p) == 0) /* a symlink: not ours to keep */
				n++;
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && rm_rf(p) == 0)
			n++;
		close(fd);
	}
	if (d)
		closedir(d);

	r = db_prepare(c->db, "SELECT path FROM entries", &s, err);
	if (r < 0)
		goto out;
	while ((r = db_step(s, err)) > 0) {
		GROW(keys, alloc, n_keys + 1);
		keys[n_keys++] = xstrdup(path_basename(db_column_text(s, 0)));
	}
	if (r < 0)
		goto out;
	if (n_keys > 1)
		qsort(keys, n_keys, sizeof(*keys), cmp_str);
	d = opendir(c->objects);
	while (d && (de = readdir(d))) {
		const char *name = de->d_name;

		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (!bsearch(&name, keys, n_keys, sizeof(*keys), cmp_str)) {
			_cleanup_free_ char *p = path_join(c->objects, name);
			if (rm_rf(p) == 0)
				n++;
		}
	}
	if (d)
		closedir(d);
	r = db_commit(c->db, err);
out:
	db_rollback(c->db);
	for (i = 0; i < n_keys; i++)
		free(keys[i]);
	free(keys);
	if (r < 0)
		return r;
	if (ret_n)
		*ret_n = n;
	return 0;
}

int cache_open(const char *dir, struct cache **ret, struct strbuf *err)
{
	_cleanup_free_ char *def = NULL, *index = NULL;
	struct cache *c;
	int r;

	if (!dir) {
		r = cache_default_dir(&def, err);
		if (r < 0)
			return r;
		dir = def;
	}
	c = xcalloc(1, sizeof(*c));
	c->dir = xstrdup(dir);
	c->objects = path_join(dir, "objects");
	c->tmp = path_join(dir, "tmp");
	c->downloads = path_join(dir, "downloads");
	r = mkdir_p(c->objects, 0755);
	if (r == 0)
		r = mkdir_p(c->tmp, 0755);
	if (r == 0)
		r = mkdir_p(c->downloads, 0755);
	if (r < 0) {
		strbuf_addf(err, "cannot create cache directory '%s': %s", dir, strerror(-r));
		goto fail;
	}
	index = path_join(dir, "index.db");
	r = db_open(index, cache_schema, ARRAY_SIZE(cache_schema), &c->db, err);
	if (r < 0)
		goto fail;
	r = clean_orphans(c, NULL, err);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	cache_close(c);
	return r;
}

void cache_close(struct cache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n_tmps; i++) {
		unlink(c->tmps[i].path);
		close(c->tmps[i].fd);
		free(c->tmps[i].path);
	}
	free(c->tmps);
	db_close(c->db);
	free(c->dir);
	free(c->objects);
	free(c->tmp);
	free(c->downloads);
	free(c);
}

void cache_closep(struct cache **c)
{
	cache_close(*c);
}

static bool stage_name_valid(const char *stage)
{
	const char *p;

	if (!stage || !*stage || strlen(stage) > 64)
		return false;
	for (p = stage; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		      *p == '_'))
			return false;
	return true;
}

int cache_tmpfile(struct cache *c, const char *stage, char **ret_path, struct strbuf *err)
{
	_cleanup_free_ char *path = NULL;
	int fd, r;

	if (!stage_name_valid(stage)) {
		strbuf_addf(err, "invalid stage name '%s'", stage ? stage : "(null)");
		return -EINVAL;
	}
	path = xasprintf("%s/%s.%ld.XXXXXX", c->tmp, stage, (long)getpid());
	/* Under the write lock, so that clean_orphans() cannot see it unlocked. */
	r = db_begin(c->db, err);
	if (r < 0)
		return r;
	fd = mkstemp(path);
	if (fd < 0) {
		r = -errno;
		db_rollback(c->db);
		strbuf_addf(err, "cannot create a file in '%s': %s", c->tmp, strerror(errno));
		return r;
	}
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || flock(fd, LOCK_EX) < 0 || fchmod(fd, 0644) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot lock '%s': %s", path, strerror(errno));
		unlink(path);
		close(fd);
		db_rollback(c->db);
		return r;
	}
	db_rollback(c->db);
	GROW(c->tmps, c->alloc_tmps, c->n_tmps + 1);
	c->tmps[c->n_tmps].path = xstrdup(path);
	c->tmps[c->n_tmps].fd = fd;
	c->n_tmps++;
	*ret_path = TAKE_PTR(path);
	return 0;
}

/* Forget a temporary file that has been stored (its lock is no longer needed). */
static void release_tmp(struct cache *c, const char *path)
{
	size_t i;

	for (i = 0; i < c->n_tmps; i++)
		if (!strcmp(c->tmps[i].path, path)) {
			close(c->tmps[i].fd);
			free(c->tmps[i].path);
			c->tmps[i] = c->tmps[--c->n_tmps];
			return;
		}
}

static int sync_and_hash(const char *path, char hex[SHA256_HEX_LEN], struct strbuf *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int r;

	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot open '%s': %s", path, strerror(errno));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		strbuf_addf(err, "cannot store '%s' in the cache: not a regular file", path);
		return -EINVAL;
	}
	if (fsync(fd) < 0 || fchmod(fd, 0444) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot write '%s': %s", path, strerror(errno));
		return r;
	}
	r = sha256_file(path, hex, NULL);
	if (r < 0)
		strbuf_addf(err, "cannot read '%s': %s", path, strerror(-r));
	return r;
}

int cache_store(struct cache *c, const char *key, const char *stage, const char *tmp_path,
		char **ret_path, char *ret_sha256, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	_cleanup_free_ char *rel = NULL, *obj = NULL;
	char hex[SHA256_HEX_LEN];
	struct ident id;
	struct stat st;
	bool renamed = false;
	int64_t t = now();
	int r;

	r = check_key(key, err);
	if (r < 0)
		return r;
	if (!stage_name_valid(stage)) {
		strbuf_addf(err, "invalid stage name '%s'", stage ? stage : "(null)");
		return -EINVAL;
	}
	r = sync_and_hash(tmp_path, hex, err);
	if (r < 0)
		return r;
	rel = path_join("objects", key);
	obj = path_join(c->dir, rel);

	r = db_begin(c->db, err);
	if (r < 0)
		return r;
	if (rename(tmp_path, obj) < 0) {
		r = -errno;
		if (errno == EXDEV)
			strbuf_addf(err,
				    "cannot move '%s' into the cache '%s': not on the same file "
				    "system (write it to a path from the cache's tmp/)",
				    tmp_path, c->dir);
		else
			strbuf_addf(err, "cannot move '%s' to '%s': %s", tmp_path, obj,
				    strerror(errno));
		goto fail;
	}
	renamed = true;
	(void)fsync_dir(c->objects);
	if (stat(obj, &st) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot stat '%s': %s", obj, strerror(errno));
		goto fail;
	}
	ident_of(&st, &id);
	r = db_prepare(c->db,
		       "INSERT OR REPLACE INTO entries (key, stage, path, sha256, size, created, "
		       "last_used, use_seq, ino, ctime_ns, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5, "
		       "?6, ?6, (SELECT coalesce(max(use_seq), 0) + 1 FROM entries), ?7, ?8, ?9)",
		       &s, err);
	if (r < 0)
		goto fail;
	db_bind_text(s, 1, key);
	db_bind_text(s, 2, stage);
	db_bind_text(s, 3, rel);
	db_bind_text(s, 4, hex);
	db_bind_int64(s, 5, id.size);
	db_bind_int64(s, 6, t);
	db_bind_int64(s, 7, id.ino);
	db_bind_int64(s, 8, id.ctime_ns);
	db_bind_int64(s, 9, id.mtime_ns);
	r = db_step_done(s, err);
	if (r < 0)
		goto fail;
	r = db_commit(c->db, err);
	if (r < 0)
		goto fail;
	release_tmp(c, tmp_path);
	if (ret_sha256)
		memcpy(ret_sha256, hex, SHA256_HEX_LEN);
	if (ret_path)
		*ret_path = TAKE_PTR(obj);
	return 0;
fail:
	/* No row refers to the object: delete it rather than leave an orphan. */
	if (renamed)
		unlink(obj);
	db_rollback(c->db);
	return r;
}

int cache_download_path(struct cache *c, const char *name, char **ret_path, struct strbuf *err)
{
	const char *p;

	for (p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			break;
	if (!*name || *p || name[0] == '.' || p - name > 128) {
		strbuf_addf(err, "invalid download name '%s'", name);
		return -EINVAL;
	}
	*ret_path = path_join(c->downloads, name);
	return 0;
}

/* Delete downloads no process holds a lock on (fetch_file() locks its .part). */
static void clean_downloads(struct cache *c, struct cache_gc_stats *st)
{
	struct dirent *de;
	DIR *d = opendir(c->downloads);

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		struct stat sb;
		int fd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		p = path_join(c->downloads, de->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0) {
			if (errno == ELOOP)
				unlink(p);
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &sb) == 0 && rm_rf(p) == 0) {
			st->downloads++;
			st->downloads_size += (uint64_t)sb.st_size;
		}
		close(fd);
	}
	if (d)
		closedir(d);
}

int cache_touch(struct cache *c, const char *key, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int r;

	r = check_key(key, err);
	if (r < 0)
		return r;
	r = db_prepare(
		c->db,
		"UPDATE entries SET last_used = ?2, "
		"use_seq = (SELECT coalesce(max(use_seq), 0) + 1 FROM entries) WHERE key = ?1",
		&s, err);
	if (r < 0)
		return r;
	db_bind_text(s, 1, key);
	db_bind_int64(s, 2, now());
	r = db_step_done(s, err);
	if (r < 0)
		return r;
	if (db_changes(c->db) == 0) {
		strbuf_addf(err, "no cache entry '%s'", key);
		return -ENOENT;
	}
	return 0;
}

/*
 * Remove an entry found broken, unless another process replaced it since we
 * looked (its inode is then different).
 */
static int remove_stale(struct cache *c, const char *key, const char *obj, int64_t ino,
			struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	struct stat st;
	int r;

	r = db_begin(c->db, err);
	if (r < 0)
		return r;
	r = db_prepare(c->db, "DELETE FROM entries WHERE key = ?1 AND ino = ?2", &s, err);
	if (r < 0)
		goto out;
	db_bind_text(s, 1, key);
	db_bind_int64(s, 2, ino);
	r = db_step_done(s, err);
	if (r < 0)
		goto out;
	if (db_changes(c->db) > 0 && stat(obj, &st) == 0 && (int64_t)st.st_ino == ino)
		unlink(obj);
	r = db_commit(c->db, err);
out:
	db_rollback(c->db);
	return r;
}

static int update_ident(struct cache *c, const char *key, const struct ident *id,
			struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int r;

	r = db_prepare(c->db,
		       "UPDATE entries SET ino = ?2, ctime_ns = ?3, mtime_ns = ?4 WHERE key = ?1",
		       &s, err);
	if (r < 0)
		return r;
	db_bind_text(s, 1, key);
	db_bind_int64(s, 2, id->ino);
	db_bind_int64(s, 3, id->ctime_ns);
	db_bind_int64(s, 4, id->mtime_ns);
	return db_step_done(s, err);
}

int cache_lookup(struct cache *c, const char *key, enum cache_verify verify, char **ret_path,
		 struct strbuf *reason)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	_cleanup_free_ char *obj = NULL, *stage = NULL;
	char want[SHA256_HEX_LEN], got[SHA256_HEX_LEN];
	struct ident rec, cur;
	struct stat st;
	int r;

	r = check_key(key, reason);
	if (r < 0)
		return r;
	r = db_prepare(c->db,
		       "SELECT path, sha256, size, ino, ctime_ns, mtime_ns, stage FROM entries "
		       "WHERE key = ?1",
		       &s, reason);
	if (r < 0)
		return r;
	db_bind_text(s, 1, key);
	r = db_step(s, reason);
	if (r <= 0)
		return r;
	obj = path_join(c->dir, db_column_text(s, 0));
	snprintf(want, sizeof(want), "%s", db_column_text(s, 1));
	rec.size = db_column_int64(s, 2);
	rec.ino = db_column_int64(s, 3);
	rec.ctime_ns = db_column_int64(s, 4);
	rec.mtime_ns = db_column_int64(s, 5);
	stage = db_column_strdup(s, 6);
	db_finalize(TAKE_PTR(s));

	if (stat(obj, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (reason)
			strbuf_addf(reason, "cache entry %.12s (%s): '%s' is missing; removed it",
				    key, stage, obj);
		r = remove_stale(c, key, obj, rec.ino, reason);
		return r < 0 ? r : 0;
	}
	ident_of(&st, &cur);
	if (verify == CACHE_VERIFY_HASH || memcmp(&rec, &cur, sizeof(rec))) {
		r = sha256_file(obj, got, NULL);
		if (r < 0 || strcmp(got, want)) {
			if (reason) {
				if (r < 0)
					strbuf_addf(reason,
						    "cache entry %.12s (%s): cannot read '%s': %s; "
						    "removed it",
						    key, stage, obj, strerror(-r));
				else
					strbuf_addf(
						reason,
						"cache entry %.12s (%s): '%s' is corrupt (sha256 "
						"%s, expected %s); removed it",
						key, stage, obj, got, want);
			}
			r = remove_stale(c, key, obj, rec.ino, reason);
			return r < 0 ? r : 0;
		}
		if (memcmp(&rec, &cur, sizeof(rec))) {
			r = update_ident(c, key, &cur, reason);
			if (r < 0)
				return r;
		}
	}
	r = cache_touch(c, key, reason);
	if (r == -ENOENT)
		return 0; /* removed by another process meanwhile */
	if (r < 0)
		return r;
	*ret_path = TAKE_PTR(obj);
	return 1;
}

void cache_entries_free(struct cache_entry *e, size_t n)
{
	size_t i;

	if (!e)
		return;
	for (i = 0; i < n; i++) {
		free(e[i].key);
		free(e[i].stage);
		free(e[i].path);
	}
	free(e);
}

int cache_list(struct cache *c, struct cache_entry **ret, size_t *ret_n, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	struct cache_entry *list = NULL;
	size_t n = 0, alloc = 0;
	int r;

	r = db_prepare(c->db,
		       "SELECT key, stage, path, sha256, size, created, last_used FROM entries "
		       "ORDER BY use_seq",
		       &s, err);
	if (r < 0)
		return r;
	while ((r = db_step(s, err)) > 0) {
		struct cache_entry *e;

		GROW(list, alloc, n + 1);
		e = &list[n++];
		e->key = db_column_strdup(s, 0);
		e->stage = db_column_strdup(s, 1);
		e->path = path_join(c->dir, db_column_text(s, 2));
		snprintf(e->sha256, sizeof(e->sha256), "%s", db_column_text(s, 3));
		e->size = (uint64_t)db_column_int64(s, 4);
		e->created = db_column_int64(s, 5);
		e->last_used = db_column_int64(s, 6);
	}
	if (r < 0) {
		cache_entries_free(list, n);
		return r;
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

int cache_gc(struct cache *c, uint64_t max_size, struct cache_gc_stats *ret, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL, *del = NULL;
	struct cache_gc_stats st = {0};
	char **doomed = NULL;
	size_t n_doomed = 0, alloc = 0, i;
	uint64_t total = 0;
	int r;

	r = clean_orphans(c, &st.orphans, err);
	if (r < 0)
		return r;
	clean_downloads(c, &st);
	r = db_begin(c->db, err);
	if (r < 0)
		return r;
	r = db_prepare(c->db, "SELECT coalesce(sum(size), 0), count(*) FROM entries", &s, err);
	if (r < 0 || (r = db_step(s, err)) < 0)
		goto out;
	total = (uint64_t)db_column_int64(s, 0);
	st.kept = (size_t)db_column_int64(s, 1);
	db_finalize(TAKE_PTR(s));

	r = db_prepare(c->db, "SELECT key, path, size FROM entries ORDER BY use_seq", &s, err);
	if (r < 0)
		goto out;
	r = db_prepare(c->db, "DELETE FROM entries WHERE key = ?1", &del, err);
	if (r < 0)
		goto out;
	while (total > max_size && (r = db_step(s, err)) > 0) {
		uint64_t size = (uint64_t)db_column_int64(s, 2);

		db_bind_text(del, 1, db_column_text(s, 0));
		r = db_step_done(del, err);
		if (r < 0)
			goto out;
		GROW(doomed, alloc, n_doomed + 1);
		doomed[n_doomed++] = path_join(c->dir, db_column_text(s, 1));
		total -= size;
		st.freed += size;
		st.removed++;
		st.kept--;
	}
	if (r < 0)
		goto out;
	db_finalize(TAKE_PTR(s));
	r = db_commit(c->db, err);
	if (r < 0)
		goto out;
	/*
	 * Rows first, files after the commit: a crash in between leaves files
	 * without rows, which the next cleanup deletes, never rows without files.
	 */
	for (i = 0; i < n_doomed; i++)
		unlink(doomed[i]);
	st.kept_size = total;
	if (ret)
		*ret = st;
out:
	db_finalize(TAKE_PTR(s));
	db_rollback(c->db);
	for (i = 0; i < n_doomed; i++)
		free(doomed[i]);
	free(doomed);
	return r < 0 ? r : 0;
}
