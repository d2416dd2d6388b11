/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/db.h"
#include "store/db-pg.h"
#include "core/util.h"

/* How long a writer waits for another imgforge process holding the lock. */
#define BUSY_TIMEOUT_MS 10000

/* One of h and pg is set: an SQLite database or a PostgreSQL connection (db-pg.c). */
struct db {
	sqlite3 *h;
	char *path;
	struct pg *pg;
};

struct db_stmt {
	sqlite3_stmt *st;
	struct db *db;
	struct pg_stmt *pst;
};

bool db_is_url(const char *path_or_url)
{
	return str_startswith(path_or_url, "postgresql://") ||
	       str_startswith(path_or_url, "postgres://");
}

/* Map an SQLite result code to -errno; the message comes from sqlite3_errmsg(). */
static int sqlite_to_errno(sqlite3 *h, int rc)
{
	int sys;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_INTERRUPT:
		return -EINTR;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		sys = h ? sqlite3_system_errno(h) : 0;
		return sys > 0 ? -sys : -EIO;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
	case SQLITE_MISUSE:
	case SQLITE_ERROR:
		return -EINVAL;
	case SQLITE_IOERR:
		sys = h ? sqlite3_system_errno(h) : 0;
		return sys > 0 ? -sys : -EIO;
	default:
		return -EIO;
	}
}

static int fail(struct db *db, int rc, struct strbuf *err)
{
	int r = sqlite_to_errno(db->h, rc);

	if (r == 0)
		r = -EIO;
	if (err) {
		int sys = db->h ? sqlite3_system_errno(db->h) : 0;

		strbuf_addf(err, "database '%s': %s", db->path,
			    db->h ? sqlite3_errmsg(db->h) : sqlite3_errstr(rc));
		/* "disk I/O error" alone does not say a disk is full. */
		if (sys > 0 && ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL ||
				(rc & 0xff) == SQLITE_CANTOPEN))
			strbuf_addf(err, " (%s)", strerror(sys));
	}
	return r;
}

const char *db_path(const struct db *db)
{
	return db->pg ? pg_name(db->pg) : db->path;
}

int db_exec(struct db *db, const char *sql, struct strbuf *err)
{
	int rc;

	if (db->pg)
		return pg_exec(db->pg, sql, err);
	rc = sqlite3_exec(db->h, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : fail(db, rc, err);
}

int db_begin(struct db *db, struct strbuf *err)
{
	if (db->pg)
		return pg_begin(db->pg, false, err);
	return db_exec(db, "BEGIN IMMEDIATE", err);
}

int db_begin_read(struct db *db, struct strbuf *err)
{
	if (db->pg)
		return pg_begin(db->pg, true, err);
	return db_exec(db, "BEGIN", err);
}

int db_commit(struct db *db, struct strbuf *err)
{
	int r = db->pg ? pg_commit(db->pg, err) : db_exec(db, "COMMIT", err);

	if (r < 0)
		db_rollback(db);
	return r;
}

void db_rollback(struct db *db)
{
	if (db->pg)
		pg_rollback(db->pg);
	else if (!sqlite3_get_autocommit(db->h))
		sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

int db_prepare(struct db *db, const char *sql, struct db_stmt **ret, struct strbuf *err)
{
	sqlite3_stmt *st = NULL;
	struct pg_stmt *pst = NULL;
	struct db_stmt *s;
	int rc;

	if (db->pg) {
		rc = pg_prepare(db->pg, sql, &pst, err);
		if (rc < 0)
			return rc;
		s = xcalloc(1, sizeof(*s));
		s->pst = pst;
		s->db = db;
		*ret = s;
		return 0;
	}
	rc = sqlite3_prepare_v2(db->h, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return fail(db, rc, err);
	s = xcalloc(1, sizeof(*s));
	s->st = st;
	s->db = db;
	*ret = s;
	return 0;
}

void db_finalize(struct db_stmt *s)
{
	if (!s)
		return;
	if (s->pst)
		pg_finalize(s->pst);
	else
		sqlite3_finalize(s->st);
	free(s);
}

void db_finalizep(struct db_stmt **s)
{
	db_finalize(*s);
}

int db_bind_text(struct db_stmt *s, int idx, const char *v)
{
	int rc;

	if (s->pst)
		return pg_bind_text(s->pst, idx, v);
	rc = v ? sqlite3_bind_text(s->st, idx, v, -1, SQLITE_TRANSIENT)
	       : sqlite3_bind_null(s->st, idx);
	return rc == SQLITE_OK ? 0 : sqlite_to_errno(s->db->h, rc);
}

int db_bind_int64(struct db_stmt *s, int idx, int64_t v)
{
	int rc;

	if (s->pst)
		return pg_bind_int64(s->pst, idx, v);
	rc = sqlite3_bind_int64(s->st, idx, v);
	return rc == SQLITE_OK ? 0 : sqlite_to_errno(s->db->h, rc);
}

int db_step(struct db_stmt *s, struct strbuf *err)
{
	int rc;

	if (s->pst)
		return pg_step(s->pst, err);
	rc = sqlite3_step(s->st);

	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return fail(s->db, rc, err);
}

int db_step_done(struct db_stmt *s, struct strbuf *err)
{
	int r;

	if (s->pst)
		return pg_step_done(s->pst, err);
	r = db_step(s, err);
	db_reset(s);
	if (r > 0) {
		if (err)
			strbuf_addf(err, "database '%s': statement returned rows", db_path(s->db));
		return -EINVAL;
	}
	return r;
}

int db_reset(struct db_stmt *s)
{
	if (s->pst) {
		pg_reset(s->pst);
		return 0;
	}
	sqlite3_reset(s->st);
	sqlite3_clear_bindings(s->st);
	return 0;
}

const char *db_column_text(struct db_stmt *s, int col)
{
	if (s->pst)
		return pg_column_text(s->pst, col);
	return (const char *)sqlite3_column_text(s->st, col);
}

char *db_column_strdup(struct db_stmt *s, int col)
{
	const char *t = db_column_text(s, col);
	return t ? xstrdup(t) : NULL;
}

int64_t db_column_int64(struct db_stmt *s, int col)
{
	if (s->pst)
		return pg_column_int64(s->pst, col);
	return sqlite3_column_int64(s->st, col);
}

bool db_column_is_null(struct db_stmt *s, int col)
{
	if (s->pst)
		return pg_column_is_null(s->pst, col);
	return sqlite3_column_type(s->st, col) == SQLITE_NULL;
}

int64_t db_changes(struct db *db)
{
	if (db->pg)
		return pg_changes(db->pg);
	return sqlite3_changes64(db->h);
}

static int pragma_int(struct db *db, const char *sql, int64_t *ret, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int r;

	r = db_prepare(db, sql, &s, err);
	if (r < 0)
		return r;
	r = db_step(s, err);
	if (r < 0)
		return r;
	*ret = r > 0 ? db_column_int64(s, 0) : 0;
	return 0;
}

int db_user_version(struct db *db, int *ret, struct strbuf *err)
{
	int64_t v = 0;
	int r;

	if (db->pg)
		return pg_user_version(db->pg, ret, err);
	r = pragma_int(db, "PRAGMA user_version", &v, err);

	if (r < 0)
		return r;
	*ret = (int)v;
	return 0;
}

/*
 * Apply the migrations the database has not seen, in one IMMEDIATE
 * transaction: two processes opening a fresh database at once cannot both
 * migrate it, and a crash midway leaves the old version intact. A non-zero
 * app_id is written into the header in the same transaction (files written
 * before imgforge set it get it on their next migration).
 */
static int migrate(struct db *db, const struct db_migration *m, size_t n, uint32_t app_id,
		   struct strbuf *err)
{
	int64_t app = 0;
	int version, r;
	size_t i;

	r = db_user_version(db, &version, err);
	if (r == 0 && app_id)
		r = pragma_int(db, "PRAGMA application_id", &app, err);
	if (r < 0)
		return r;
	if (version >= 0 && (size_t)version == n && (uint32_t)app == app_id)
		return 0;
	r = db_begin(db, err);
	if (r < 0)
		return r;
	/* Read again under the lock: another process may have migrated meanwhile. */
	r = db_user_version(db, &version, err);
	if (r < 0)
		goto out;
	if (version < 0 || (size_t)version > n) {
		if (err)
			strbuf_addf(err,
				    "database '%s' has schema version %d, newer than this imgforge "
				    "knows (%zu); use a newer imgforge",
				    db->path, version, n);
		r = -EPROTONOSUPPORT;
		goto out;
	}
	for (i = (size_t)version; i < n; i++) {
		_cleanup_free_ char *set = xasprintf("PRAGMA user_version = %zu", i + 1);

		r = db_exec(db, m[i].sql, err);
		if (r < 0) {
			if (err)
				strbuf_addf(err, " (while migrating to schema version %zu)", i + 1);
			goto out;
		}
		r = db_exec(db, set, err);
		if (r < 0)
			goto out;
	}
	if (app_id) {
		_cleanup_free_ char *set = xasprintf("PRAGMA application_id = %ld", (long)app_id);

		r = db_exec(db, set, err);
		if (r < 0)
			goto out;
	}
	r = db_commit(db, err);
out:
	if (r < 0)
		db_rollback(db);
	return r;
}

static int open_handle(const char *path, int flags, struct db **ret, struct strbuf *err)
{
	struct db *db = xcalloc(1, sizeof(*db));
	int rc, r;

	db->path = xstrdup(path);
	rc = sqlite3_open_v2(path, &db->h, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		r = fail(db, rc, err);
		db_close(db);
		return r;
	}
	sqlite3_extended_result_codes(db->h, 1);
	sqlite3_busy_timeout(db->h, BUSY_TIMEOUT_MS);
	*ret = db;
	return 0;
}

/*
 * WAL: readers (imgforge ls) never block a build that is registering.
 * synchronous=FULL: a COMMIT that returned is on disk, so a build reported
 * as registered survives a power cut.
 */
static int set_write_pragmas(struct db *db, struct strbuf *err)
{
	return db_exec(db,
		       "PRAGMA journal_mode = WAL;"
		       "PRAGMA synchronous = FULL;"
		       "PRAGMA foreign_keys = ON;",
		       err);
}

static int open_pg(const char *url, const struct db_schema *schema, enum db_mode mode,
		   struct db **ret, struct strbuf *err)
{
	struct pg *pg = NULL;
	struct db *db;
	int r;

	r = pg_open(url, schema, mode, &pg, err);
	if (r < 0)
		return r;
	db = xcalloc(1, sizeof(*db));
	db->pg = pg;
	*ret = db;
	return 0;
}

int db_open(const char *path, const struct db_migration *migrations, size_t n_migrations,
	    struct db **ret, struct strbuf *err)
{
	struct db *db = NULL;
	int r;

	if (db_is_url(path)) {
		struct db_schema schema = {.what = "database",
					   .table = "imgforge_schema",
					   .migrations = migrations,
					   .n_migrations = n_migrations};

		return open_pg(path, migrations ? &schema : NULL, DB_READWRITE, ret, err);
	}
	r = open_handle(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db, err);
	if (r < 0)
		return r;
	r = set_write_pragmas(db, err);
	if (r == 0 && migrations)
		r = migrate(db, migrations, n_migrations, 0, err);
	if (r < 0) {
		db_close(db);
		return r;
	}
	*ret = db;
	return 0;
}

/*
 * Create the database under a temporary name with its whole schema, then
 * link it into place: whoever opens path finds either nothing or a complete
 * imgforge database, so an empty file there is never one being created but
 * one that lost its content. When another process links first, use theirs.
 */
static int create_db(const char *path, const struct db_schema *schema, struct strbuf *err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.new-%ld", path, (long)getpid());
	_cleanup_free_ char *wal = xasprintf("%s-wal", tmp), *shm = xasprintf("%s-shm", tmp);
	struct db *db = NULL;
	int r;

	unlink(tmp);
	unlink(wal);
	unlink(shm);
	r = open_handle(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &db, err);
	if (r < 0)
		return r;
	r = set_write_pragmas(db, err);
	if (r == 0)
		r = migrate(db, schema->migrations, schema->n_migrations, schema->application_id,
			    err);
	db_close(db);
	if (r == 0 && link(tmp, path) < 0 && errno != EEXIST) {
		r = -errno;
		strbuf_addf(err, "cannot create '%s': %s", path, strerror(errno));
	}
	unlink(tmp);
	unlink(wal);
	unlink(shm);
	return r;
}

/* Is this file an imgforge database of the kind schema describes? */
static int check_identity(struct db *db, const struct db_schema *schema, struct strbuf *err)
{
	struct strbuf why = STRBUF_INIT;
	int64_t app = 0;
	int r;

	r = pragma_int(db, "PRAGMA application_id", &app, &why);
	if (r == -EBADMSG) {
		strbuf_addf(err,
			    "'%s' is not an SQLite database, so not an imgforge %s: move it away "
			    "or give the path of the right file",
			    db->path, schema->what);
		goto out;
	}
	if (r < 0) {
		strbuf_addstr(err, strbuf_str(&why));
		goto out;
	}
	if ((uint32_t)app == schema->application_id)
		goto out;
	if (app != 0) {
		strbuf_addf(err,
			    "'%s' is an SQLite database of another application (application_id "
			    "0x%08lx), not an imgforge %s: give the path of the right file",
			    db->path, (unsigned long)(uint32_t)app, schema->what);
		r = -EBADMSG;
		goto out;
	}
	r = db_has_table(db, schema->table, err);
	if (r == 0) {
		strbuf_addf(err,
			    "'%s' is an SQLite database but not an imgforge %s (it has no '%s' "
			    "table): move it away or give the path of the right file",
			    db->path, schema->what, schema->table);
		r = -EBADMSG;
	}
out:
	strbuf_release(&why);
	return r < 0 ? r : 0;
}

int db_open_schema(const char *path, const struct db_schema *schema, enum db_mode mode,
		   struct db **ret, struct strbuf *err)
{
	struct db *db = NULL;
	struct stat st;
	int version, r;

	if (db_is_url(path))
		return open_pg(path, schema, mode, ret, err);
	if (stat(path, &st) < 0) {
		if (errno != ENOENT || mode == DB_READONLY) {
			r = -errno;
			if (errno != ENOENT)
				strbuf_addf(err, "cannot open '%s': %s", path, strerror(errno));
			return r;
		}
		r = create_db(path, schema, err);
		if (r < 0)
			return r;
	} else if (!S_ISREG(st.st_mode)) {
		strbuf_addf(err, "'%s' is not a file, so not an imgforge %s", path, schema->what);
		return -EINVAL;
	} else if (st.st_size == 0) {
		strbuf_addf(err,
			    "'%s' is an empty file, not an imgforge %s: delete it to start a new "
			    "one, or give the path of the right file",
			    path, schema->what);
		return -EBADMSG;
	}
	r = open_handle(path, mode == DB_READONLY ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE,
			&db, err);
	if (r < 0)
		return r;
	r = check_identity(db, schema, err);
	if (r < 0)
		goto fail;
	if (mode == DB_READWRITE) {
		r = set_write_pragmas(db, err);
		if (r == 0)
			r = migrate(db, schema->migrations, schema->n_migrations,
				    schema->application_id, err);
		if (r < 0)
			goto fail;
	} else {
		r = db_user_version(db, &version, err);
		if (r < 0)
			goto fail;
		if (version < 0 || (size_t)version > schema->n_migrations) {
			strbuf_addf(err,
				    "database '%s' has schema version %d, newer than this imgforge "
				    "knows (%zu); use a newer imgforge",
				    path, version, schema->n_migrations);
			r = -EPROTONOSUPPORT;
			goto fail;
		}
	}
	*ret = db;
	return 0;
fail:
	db_close(db);
	return r;
}

int db_has_table(struct db *db, const char *name, struct strbuf *err)
{
	_cleanup_stmt_ struct db_stmt *s = NULL;
	int r;

	if (db->pg)
		return pg_has_table(db->pg, name, err);
	r = db_prepare(db,
		       "SELECT 1 FROM sqlite_master WHERE name = ?1 AND type IN ('table', 'view')",
		       &s, err);
	if (r < 0)
		return r;
	db_bind_text(s, 1, name);
	return db_step(s, err);
}

void db_close(struct db *db)
{
	if (!db)
		return;
	if (db->h)
		sqlite3_close_v2(db->h);
	pg_close(db->pg);
	free(db->path);
	free(db);
}

void db_closep(struct db **db)
{
	db_close(*db);
}
