/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* renameat2() */
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

static const struct db_schema cache_db = {
	.what = "cache index",
	.application_id = 0x69666763, /* "ifgc" */
	.table = "entries",
	.migrations = cache_schema,
	.n_migrations = ARRAY_SIZE(cache_schema),
};

/*
 * A file this handle holds open with a flock on it: a temporary file it
 * writes (exclusive), the lock of a key it builds or of a download it fetches
 * (exclusive), or an object it uses (shared: a pin). name is the path for a
 * temporary file, the key or "download-<name>" for a lock, the key for a pin.
 */
struct held {
	char *name;
	int fd;
	char sha256[SHA256_HEX_LEN]; /* pins: the object's recorded hash */
};

struct held_list {
	struct held *v;
	size_t n, alloc;
};

struct cache {
	char *dir;
	char *objects;
	char *tmp;
	char *downloads;
	char *locks;
	struct db *db; /* NULL: a read-only handle on a cache without an index */
	bool readonly;
	struct held_list tmps, key_locks, pins;
};

static struct held *held_add(struct held_list *l, const char *name, int fd)
{
	GROW(l->v, l->alloc, l->n + 1);
	memset(&l->v[l->n], 0, sizeof(l->v[l->n]));
	l->v[l->n].name = xstrdup(name);
	l->v[l->n].fd = fd;
	return &l->v[l->n++];
}

static struct held *held_find(struct held_list *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return &l->v[i];
	return NULL;
}

/* Close (and so unlock) one held file; true when it was held. */
static bool held_drop(struct held_list *l, const char *name)
{
	struct held *h = held_find(l, name);

	if (!h)
		return false;
	close(h->fd);
	free(h->name);
	*h = l->v[--l->n];
	return true;
}

static void held_release(struct held_list *l, bool unlink_them)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		if (unlink_them)
			unlink(l->v[i].name);
		close(l->v[i].fd);
		free(l->v[i].name);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/*
 * Open path (creating it when create) and flock it with op. Lock files are
 * deleted by gc while it holds them exclusively, so the file locked may no
 * longer be the one at path: then try again with the new one. -EWOULDBLOCK
 * when op has LOCK_NB and another holder has it.
 */
static int lock_path(const char *path, int op, bool create, int *ret_fd)
{
	int tries;

	for (tries = 0; tries < 1000; tries++) {
		struct stat a, b;
		int fd = open(path, (create ? O_RDWR | O_CREAT : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW,
			      0644);
		int r;

		if (fd < 0)
			return -errno;
		while ((r = flock(fd, op)) < 0 && errno == EINTR)
			;
		if (r < 0) {
			r = -errno;
			close(fd);
			return r;
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			*ret_fd = fd;
			return 0;
		}
		close(fd);
		if (!create)
			return -ENOENT;
	}
	return -EAGAIN;
}

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
 * Delete the files crashed processes left in tmp/: those whose process is
 * gone and that nobody holds a lock on. Runs inside the index's write
 * transaction, which cache_tmpfile() also holds while it creates a file, so
 * a live process's file is never mistaken for a leftover.
 */
static int clean_tmp(struct cache *c, size_t *ret_n, struct strbuf *err)
{
	size_t n = 0;
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
	r = db_commit(c->db, err);
	if (r < 0)
		return r;
	if (ret_n)
		*ret_n = n;
	return 0;
}

static void free_keys(char **keys, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

/* The keys of all entries, sorted (for bsearch); *ret is NULL when there are none. */
static int entry_keys(struct cache *c, char ***ret, size_t *ret_n, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	char **keys = NULL;
	size_t n = 0, alloc = 0;
	int r;

	r = db_prepare(c->db, "SELECT key FROM entries ORDER BY key", &s, err);
	if (r < 0)
		return r;
	while ((r = db_step(s, err)) > 0) {
		GROW(keys, alloc, n + 1);
		keys[n++] = db_column_strdup(s, 0);
	}
	if (r < 0) {
		free_keys(keys, n);
		return r;
	}
	*ret = keys;
	*ret_n = n;
	return 0;
}

static bool key_listed(char **keys, size_t n, const char *name)
{
	return n > 0 && bsearch(&name, keys, n, sizeof(*keys), cmp_str) != NULL;
}

/* A handle on dir (NULL: the default directory), not opened yet. */
static int cache_new(const char *dir, struct cache **ret, struct strbuf *err)
{
	_cleanup_free_ char *def = NULL;
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
	c->locks = path_join(dir, "locks");
	*ret = c;
	return 0;
}

/* Where the cache directory comes from, for messages that ask for another one. */
#define CACHE_DIR_HINT "pass --cache DIR or set XDG_CACHE_HOME to use another cache directory"

int cache_open(const char *dir, struct cache **ret, struct strbuf *err)
{
	_cleanup_free_ char *index = NULL;
	const char *sub[4];
	struct cache *c;
	size_t i;
	int r;

	r = cache_new(dir, &c, err);
	if (r < 0)
		return r;
	dir = c->dir;
	sub[0] = c->objects;
	sub[1] = c->tmp;
	sub[2] = c->downloads;
	sub[3] = c->locks;
	for (i = 0, r = 0; i < ARRAY_SIZE(sub) && r == 0; i++)
		r = mkdir_p(sub[i], 0755);
	if (r == 0 && access(dir, W_OK) < 0)
		r = -errno;
	if (r == -EACCES || r == -EROFS || r == -EPERM) {
		strbuf_addf(err, "the cache directory '%s' is not writable (%s): " CACHE_DIR_HINT,
			    dir, strerror(-r));
		goto fail;
	}
	if (r < 0) {
		strbuf_addf(err, "cannot create cache directory '%s': %s", dir, strerror(-r));
		goto fail;
	}
	index = path_join(dir, "index.db");
	r = db_open_schema(index, &cache_db, DB_READWRITE, &c->db, err);
	if (r < 0)
		goto fail;
	r = clean_tmp(c, NULL, err);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	cache_close(c);
	return r;
}

int cache_open_readonly(const char *dir, struct cache **ret, struct strbuf *err)
{
	_cleanup_free_ char *index = NULL;
	struct cache *c;
	int r;

	r = cache_new(dir, &c, err);
	if (r < 0)
		return r;
	c->readonly = true;
	index = path_join(c->dir, "index.db");
	r = db_open_schema(index, &cache_db, DB_READONLY, &c->db, err);
	if (r < 0 && r != -ENOENT) {
		cache_close(c);
		return r;
	}
	*ret = c;
	return 0;
}

void cache_close(struct cache *c)
{
	if (!c)
		return;
	held_release(&c->tmps, true);
	held_release(&c->pins, false);
	held_release(&c->key_locks, false);
	db_close(c->db);
	free(c->dir);
	free(c->objects);
	free(c->tmp);
	free(c->downloads);
	free(c->locks);
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

static bool readonly(struct cache *c, struct strbuf *err)
{
	if (!c->readonly)
		return false;
	strbuf_addf(err, "the cache '%s' was opened read-only", c->dir);
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
	if (readonly(c, err))
		return -EROFS;
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
	held_add(&c->tmps, path, fd);
	*ret_path = TAKE_PTR(path);
	return 0;
}

/* Forget a temporary file that has been stored (its lock is no longer needed). */
static void release_tmp(struct cache *c, const char *path)
{
	held_drop(&c->tmps, path);
}

/*
 * Pin the object of key: hold it open with a shared flock until
 * cache_close(), so that gc (which needs it exclusively) leaves it alone
 * while this build uses it. -ENOENT when the file at obj is gone or is no
 * longer the one opened (deleted meanwhile).
 */
static int pin(struct cache *c, const char *key, const char *obj, const char *sha256)
{
	struct held *h = held_find(&c->pins, key);
	struct stat a, b;
	int fd, r;

	if (h && fstat(h->fd, &a) == 0 && stat(obj, &b) == 0 && a.st_ino == b.st_ino) {
		snprintf(h->sha256, sizeof(h->sha256), "%s", sha256);
		return 0;
	}
	if (h)
		held_drop(&c->pins, key);
	r = lock_path(obj, LOCK_SH, false, &fd);
	if (r < 0)
		return r;
	h = held_add(&c->pins, key, fd);
	snprintf(h->sha256, sizeof(h->sha256), "%s", sha256);
	return 0;
}

int cache_pinned_sha256(struct cache *c, const char *path, char ret[SHA256_HEX_LEN],
			uint64_t *ret_size)
{
	const char *base = path_basename(path);
	struct held *h;
	struct stat a, b;

	if (!cache_key_valid(base) || !(h = held_find(&c->pins, base)) || !h->sha256[0])
		return -ENOENT;
	/* The same file, not merely the same name: path may be anywhere. */
	if (fstat(h->fd, &a) < 0 || stat(path, &b) < 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev)
		return -ENOENT;
	memcpy(ret, h->sha256, SHA256_HEX_LEN);
	if (ret_size)
		*ret_size = (uint64_t)a.st_size;
	return 0;
}

static char *lock_file(struct cache *c, const char *name)
{
	_cleanup_free_ char *base = xasprintf("%s.lock", name);

	return path_join(c->locks, base);
}

/* Take the lock name (a key, or "download-<name>") for this handle. */
static int take_lock(struct cache *c, const char *name, bool wait, struct strbuf *err)
{
	_cleanup_free_ char *path = NULL;
	int fd, r;

	if (held_find(&c->key_locks, name))
		return 0;
	path = lock_file(c, name);
	r = lock_path(path, wait ? LOCK_EX : LOCK_EX | LOCK_NB, true, &fd);
	if (r == -EWOULDBLOCK)
		return -EAGAIN;
	if (r < 0) {
		strbuf_addf(err, "cannot lock '%s': %s", path, strerror(-r));
		return r;
	}
	held_add(&c->key_locks, name, fd);
	return 0;
}

int cache_lock(struct cache *c, const char *key, bool wait, struct strbuf *err)
{
	int r = check_key(key, err);

	if (r < 0)
		return r;
	if (readonly(c, err))
		return -EROFS;
	return take_lock(c, key, wait, err);
}

void cache_unlock(struct cache *c, const char *key)
{
	held_drop(&c->key_locks, key);
}

/* Is an entry with this sha256 the file at path's? Then the row is the caller's to reuse. */
static int entry_of(struct cache *c, const char *key, char **ret_rel, char ret_sha[SHA256_HEX_LEN],
		    struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int r;

	r = db_prepare(c->db, "SELECT path, sha256 FROM entries WHERE key = ?1", &s, err);
	if (r < 0)
		return r;
	db_bind_text(s, 1, key);
	r = db_step(s, err);
	if (r <= 0)
		return r;
	*ret_rel = db_column_strdup(s, 0);
	snprintf(ret_sha, SHA256_HEX_LEN, "%s", db_column_text(s, 1));
	return 1;
}

/*
 * Move tmp_path to obj, never over an existing file. -EEXIST when obj
 * exists. Falls back to link() and unlink() on file systems without
 * RENAME_NOREPLACE.
 */
static int move_noreplace(const char *from, const char *to)
{
	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	if (link(from, to) < 0)
		return -errno;
	unlink(from);
	return 0;
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
	_cleanup_free_ char *rel = NULL, *obj = NULL, *theirs = NULL;
	char hex[SHA256_HEX_LEN];
	struct ident id;
	struct stat st;
	bool moved = false;
	int64_t t = now();
	int r;

	r = check_key(key, err);
	if (r < 0)
		return r;
	if (!stage_name_valid(stage)) {
		strbuf_addf(err, "invalid stage name '%s'", stage ? stage : "(null)");
		return -EINVAL;
	}
	if (readonly(c, err))
		return -EROFS;
	r = sync_and_hash(tmp_path, hex, err);
	if (r < 0)
		return r;
	rel = path_join("objects", key);
	obj = path_join(c->dir, rel);

	r = db_begin(c->db, err);
	if (r < 0)
		return r;
	r = move_noreplace(tmp_path, obj);
	if (r == -EEXIST) {
		/*
		 * Another process stored this key first (it did not take the
		 * key's lock): use theirs. A file without a row is a leftover
		 * (a crash between the move and the commit, or a lost index):
		 * replace it.
		 */
		r = entry_of(c, key, &theirs, hex, err);
		if (r < 0)
			goto fail;
		if (r > 0) {
			db_rollback(c->db);
			unlink(tmp_path);
			release_tmp(c, tmp_path);
			free(obj);
			obj = path_join(c->dir, theirs);
			goto done;
		}
		unlink(obj);
		r = move_noreplace(tmp_path, obj);
	}
	if (r < 0) {
		if (r == -EXDEV)
			strbuf_addf(err,
				    "cannot move '%s' into the cache '%s': not on the same file "
				    "system (write it to a path from the cache's tmp/)",
				    tmp_path, c->dir);
		else
			strbuf_addf(err, "cannot move '%s' to '%s': %s", tmp_path, obj,
				    strerror(-r));
		goto fail;
	}
	moved = true;
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
done:
	if (str_startswith(tmp_path, c->downloads) && tmp_path[strlen(c->downloads)] == '/') {
		_cleanup_free_ char *name = xasprintf("download-%s", path_basename(tmp_path));
		cache_unlock(c, name);
	}
	/* Under the key's lock nobody deletes it meanwhile; without, it may be gone. */
	r = pin(c, key, obj, hex);
	if (r < 0) {
		strbuf_addf(err, "cache entry %.12s (%s) was deleted while being stored: %s", key,
			    stage, strerror(-r));
		return r;
	}
	if (ret_sha256)
		memcpy(ret_sha256, hex, SHA256_HEX_LEN);
	if (ret_path)
		*ret_path = TAKE_PTR(obj);
	return 0;
fail:
	/* No row refers to the object: delete it rather than leave an orphan. */
	if (moved)
		unlink(obj);
	db_rollback(c->db);
	return r;
}

int cache_download_path(struct cache *c, const char *name, char **ret_path, struct strbuf *err)
{
	_cleanup_free_ char *lock = NULL;
	const char *p;
	int r;

	for (p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
			break;
	if (!*name || *p || name[0] == '.' || p - name > 128) {
		strbuf_addf(err, "invalid download name '%s'", name);
		return -EINVAL;
	}
	if (readonly(c, err))
		return -EROFS;
	lock = xasprintf("download-%s", name);
	r = take_lock(c, lock, true, err);
	if (r < 0)
		return r;
	*ret_path = path_join(c->downloads, name);
	return 0;
}

/*
 * Delete downloads no process is using: a build holds the download's lock
 * from cache_download_path() until cache_store() has moved it into
 * objects/, and fetch_file() locks its .part.
 */
static void clean_downloads(struct cache *c, struct cache_gc_stats *st)
{
	struct dirent *de;
	DIR *d = opendir(c->downloads);

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL, *name = NULL, *lock = NULL;
		struct stat sb;
		int fd, lfd;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		name = xstrdup(de->d_name);
		if (str_endswith(name, ".part"))
			name[strlen(name) - 5] = '\0';
		lock = xasprintf("download-%s", name);
		free(name);
		name = lock_file(c, lock);
		if (lock_path(name, LOCK_EX | LOCK_NB, true, &lfd) < 0)
			continue;
		p = path_join(c->downloads, de->d_name);
		fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0) {
			if (errno == ELOOP)
				unlink(p);
			close(lfd);
			continue;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &sb) == 0 && rm_rf(p) == 0) {
			st->downloads++;
			st->downloads_size += (uint64_t)sb.st_size;
		}
		close(fd);
		close(lfd);
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
	if (readonly(c, err))
		return -EROFS;
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
	if (readonly(c, reason))
		return -EROFS;
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
	if (pin(c, key, obj, want) < 0)
		return 0; /* deleted by another process meanwhile */
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

	if (!c->db) { /* a cache that has no index yet has no entries */
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
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

/* An entry or file gc may delete: its key's lock and the object, both held exclusively. */
struct claim {
	char *obj;
	char *lock;
	int lock_fd, obj_fd;
};

/*
 * Claim key's object for deletion: false when a build holds the key's lock
 * (it is building or checking the entry) or pins the object (it uses it).
 */
static bool claim(struct cache *c, const char *key, const char *obj, struct claim *ret)
{
	_cleanup_free_ char *lock = lock_file(c, key);
	int lfd, ofd;

	if (lock_path(lock, LOCK_EX | LOCK_NB, true, &lfd) < 0)
		return false;
	ofd = open(obj, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (ofd >= 0 && flock(ofd, LOCK_EX | LOCK_NB) < 0) {
		close(ofd);
		close(lfd);
		return false;
	}
	ret->obj = xstrdup(obj);
	ret->lock = TAKE_PTR(lock);
	ret->lock_fd = lfd;
	ret->obj_fd = ofd;
	return true;
}

/* Delete what was claimed (after the rows are gone), then let go. */
static void claims_finish(struct claim *v, size_t n, bool delete)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (delete) {
			struct stat a, b;

			/*
			 * Only the file that was claimed: a store that ran between the
			 * commit and here may have moved a new object under the name.
			 */
			if (v[i].obj_fd >= 0 && fstat(v[i].obj_fd, &a) == 0 &&
			    lstat(v[i].obj, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
				unlink(v[i].obj);
			unlink(v[i].lock);
		}
		if (v[i].obj_fd >= 0)
			close(v[i].obj_fd);
		close(v[i].lock_fd);
		free(v[i].obj);
		free(v[i].lock);
	}
	free(v);
}

/*
 * Delete the files in objects/ that have no entry: leftovers of a process
 * killed between moving its file in and committing the row. Within a write
 * transaction, so that a store in progress is never seen half-way.
 */
static int clean_unindexed(struct cache *c, struct cache_gc_stats *st, struct strbuf *err)
{
	struct claim *doomed = NULL;
	size_t n_doomed = 0, alloc = 0, n_keys = 0;
	char **keys = NULL;
	struct dirent *de;
	DIR *d;
	int r;

	r = db_begin(c->db, err);
	if (r < 0)
		return r;
	r = entry_keys(c, &keys, &n_keys, err);
	if (r < 0)
		goto out;
	d = opendir(c->objects);
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		struct stat sb;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    key_listed(keys, n_keys, de->d_name))
			continue;
		p = path_join(c->objects, de->d_name);
		if (!cache_key_valid(de->d_name)) {
			/* Not a name cache_store() gives: not ours, leave it. */
			continue;
		}
		GROW(doomed, alloc, n_doomed + 1);
		if (!claim(c, de->d_name, p, &doomed[n_doomed]))
			continue;
		if (fstat(doomed[n_doomed].obj_fd, &sb) == 0)
			st->unindexed_size += (uint64_t)sb.st_size;
		n_doomed++;
	}
	if (d)
		closedir(d);
	claims_finish(doomed, n_doomed, true);
	st->unindexed += n_doomed;
	r = db_commit(c->db, err);
out:
	db_rollback(c->db);
	free_keys(keys, n_keys);
	return r;
}

int cache_unindexed(struct cache *c, size_t *ret_n, uint64_t *ret_size, struct strbuf *err)
{
	size_t n = 0, n_keys = 0;
	uint64_t size = 0;
	char **keys = NULL;
	struct dirent *de;
	DIR *d;
	int r;

	if (c->db) {
		r = entry_keys(c, &keys, &n_keys, err);
		if (r < 0)
			return r;
	}
	d = opendir(c->objects);
	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		struct stat sb;

		if (!cache_key_valid(de->d_name) || key_listed(keys, n_keys, de->d_name))
			continue;
		p = path_join(c->objects, de->d_name);
		if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
			n++;
			size += (uint64_t)sb.st_size;
		}
	}
	if (d)
		closedir(d);
	free_keys(keys, n_keys);
	*ret_n = n;
	*ret_size = size;
	return 0;
}

/* Delete lock files nobody holds (lockers notice and take the new one). */
static void clean_locks(struct cache *c)
{
	struct dirent *de;
	DIR *d = opendir(c->locks);

	while (d && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL;
		int fd;

		if (!str_endswith(de->d_name, ".lock"))
			continue;
		p = path_join(c->locks, de->d_name);
		if (lock_path(p, LOCK_EX | LOCK_NB, false, &fd) < 0)
			continue;
		unlink(p);
		close(fd);
	}
	if (d)
		closedir(d);
}

int cache_gc(struct cache *c, uint64_t max_size, struct cache_gc_stats *ret, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL, *del = NULL;
	struct cache_gc_stats st = {0};
	struct claim *doomed = NULL;
	size_t n_doomed = 0, alloc = 0;
	uint64_t total = 0;
	int r;

	if (readonly(c, err))
		return -EROFS;
	r = clean_tmp(c, &st.orphans, err);
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
		_cleanup_free_ char *obj = path_join(c->dir, db_column_text(s, 1));
		uint64_t size = (uint64_t)db_column_int64(s, 2);

		GROW(doomed, alloc, n_doomed + 1);
		if (!claim(c, db_column_text(s, 0), obj, &doomed[n_doomed])) {
			st.busy++;
			continue;
		}
		n_doomed++;
		db_bind_text(del, 1, db_column_text(s, 0));
		r = db_step_done(del, err);
		if (r < 0)
			goto out;
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
	 * without rows, which the next gc deletes, never rows without files.
	 */
	claims_finish(TAKE_PTR(doomed), n_doomed, true);
	n_doomed = 0;
	r = clean_unindexed(c, &st, err);
	if (r < 0)
		goto out;
	clean_locks(c);
	st.kept_size = total;
	if (ret)
		*ret = st;
out:
	db_finalize(TAKE_PTR(s));
	db_rollback(c->db);
	claims_finish(doomed, n_doomed, false);
	return r < 0 ? r : 0;
}
