/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_DB_H
#define IMGFORGE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/*
 * A thin layer over SQLite (db.c, the only file that includes <sqlite3.h>)
 * and PostgreSQL (db-pg.c, the only one with <libpq-fe.h>): the same
 * functions and the same SQL for both, so that the modules above keep one
 * set of queries. A "postgresql://" or "postgres://" URL opens PostgreSQL,
 * anything else is an SQLite file. It opens a database with the settings
 * every imgforge database uses (SQLite: WAL, busy timeout, foreign keys,
 * full sync), brings its schema up to date from an ordered list of
 * migrations, and turns SQLITE_* codes and SQLSTATEs into -errno plus a
 * message naming the database file, or its URL with the password masked.
 *
 * SQL is written as SQLite takes it, with ?N parameters (rewritten to $N for
 * PostgreSQL); keep to what both understand.
 *
 * Errors: functions taking a struct strbuf *err append one line to it on
 * failure (err may be NULL when the caller does not want it).
 */

struct db;
struct db_stmt;

/*
 * One step of a schema. Migrations are listed in order; migration i brings
 * a database from user_version i to i + 1. A database's schema is the list
 * of its migrations, in one place, in the module that owns the database.
 * Never edit a released migration: append a new one.
 */
struct db_migration {
	const char *sql; /* one or more statements */
};

/* A PostgreSQL URL ("postgresql://..." or "postgres://..."), not an SQLite path. */
bool db_is_url(const char *path_or_url);

/*
 * Open (creating if needed) the database at path (an SQLite file, or a
 * PostgreSQL URL, where nothing is created) and apply the
 * migrations it has not seen yet, all in one transaction. A database whose
 * user_version is newer than n_migrations is refused with -EPROTONOSUPPORT
 * (it was written by a newer imgforge). With migrations NULL the schema is
 * left as it is (for inspecting a database, and for tests that build old
 * versions). *ret is the caller's; free it with db_close().
 */
int db_open(const char *path, const struct db_migration *migrations, size_t n_migrations,
	    struct db **ret, struct strbuf *err);
/* Close the database (NULL is fine). Unfinished statements are the caller's bug. */
void db_close(struct db *db);
void db_closep(struct db **db);
#define _cleanup_db_ _cleanup_(db_closep)

/*
 * What an imgforge database is, for db_open_schema(): what to call it in
 * messages, the PRAGMA application_id that marks it as ours, a table every
 * version of it has (files written before application_id was set are
 * recognised by it), and its migrations.
 */
struct db_schema {
	const char *what; /* "registry", "cache index" */
	uint32_t application_id;
	const char *table;
	const struct db_migration *migrations;
	size_t n_migrations;
	/*
	 * PostgreSQL runs each migration's SQL translated mechanically:
	 * INTEGER read as BIGINT (PostgreSQL's is 32 bits; sizes and times
	 * need 64), TEXT as TEXT COLLATE "C" (byte order, as SQLite sorts),
	 * WITHOUT ROWID dropped (pg_translate() in db-pg.h). Where that does
	 * not do, pg_sql[i] (when pg_sql and pg_sql[i] are not NULL) replaces
	 * migration i there. Kept apart from migrations so that a migration
	 * both back ends take as it is stays one string.
	 */
	const char *const *pg_sql;
	size_t n_pg_sql;
};

enum db_mode {
	/*
	 * Create the file when it does not exist (under a temporary name,
	 * renamed into place once its schema is complete, so that no process
	 * ever sees a half-created database), and migrate it.
	 */
	DB_READWRITE,
	/*
	 * Open an existing file with SQLITE_OPEN_READONLY (PostgreSQL: a
	 * session with default_transaction_read_only): never create,
	 * migrate or write anything. An older schema is opened as it is (the
	 * caller asks db_user_version() and reads what that version has); a
	 * newer one is refused.
	 */
	DB_READONLY,
};

/*
 * Open the imgforge database at path, an SQLite file or a PostgreSQL URL
 * (there, the schema's version is kept in a table imgforge_schema and its
 * migrations applied under an advisory lock). Refused, with one line naming the
 * file and what to do: an empty (0-byte) file, a file that is not SQLite,
 * an SQLite database that is not this kind of imgforge database (another
 * application_id, or none and no schema->table), a schema newer than this
 * imgforge knows. -ENOENT (and no message) when mode is DB_READONLY and the
 * file does not exist. *ret is the caller's; free it with db_close().
 */
int db_open_schema(const char *path, const struct db_schema *schema, enum db_mode mode,
		   struct db **ret, struct strbuf *err);

/* The file, or the URL with its password masked: what messages name. */
const char *db_path(const struct db *db);
/* The schema version (PRAGMA user_version; PostgreSQL: imgforge_schema). */
int db_user_version(struct db *db, int *ret, struct strbuf *err);

/* Run SQL without results (may hold several statements). */
int db_exec(struct db *db, const char *sql, struct strbuf *err);

/*
 * Transactions. db_begin() takes the write lock at once (BEGIN IMMEDIATE),
 * so that a busy database is detected before any work is done, not at
 * COMMIT (PostgreSQL: BEGIN; writers of different rows do not wait for
 * each other). db_begin_read() reads one snapshot (PostgreSQL: REPEATABLE
 * READ, READ ONLY). db_rollback() is safe to call when no transaction is
 * open, and when the connection is gone.
 */
int db_begin(struct db *db, struct strbuf *err);
int db_begin_read(struct db *db, struct strbuf *err);
int db_commit(struct db *db, struct strbuf *err);
void db_rollback(struct db *db);

/* Statements: prepare, bind (1-based), step, read columns (0-based), finalize. */
int db_prepare(struct db *db, const char *sql, struct db_stmt **ret, struct strbuf *err);
void db_finalize(struct db_stmt *s);
void db_finalizep(struct db_stmt **s);
#define _cleanup_stmt_ _cleanup_(db_finalizep)

int db_bind_text(struct db_stmt *s, int idx, const char *v); /* NULL binds NULL */
int db_bind_int64(struct db_stmt *s, int idx, int64_t v);
/* Returns 1 when a row is ready, 0 when done, -errno on failure. */
int db_step(struct db_stmt *s, struct strbuf *err);
/*
 * Step a statement that returns no rows, then reset it for reuse. On
 * PostgreSQL, inside a transaction, it is only queued (pipelined): its
 * error, if any, comes from a later db_step(), db_exec() or db_commit() of
 * the same transaction, which fails then.
 */
int db_step_done(struct db_stmt *s, struct strbuf *err);
int db_reset(struct db_stmt *s);
/* Text of a column, NULL for SQL NULL; valid until the next step/reset. */
const char *db_column_text(struct db_stmt *s, int col);
/* Same, malloc'd (NULL for SQL NULL). */
char *db_column_strdup(struct db_stmt *s, int col);
int64_t db_column_int64(struct db_stmt *s, int col);
bool db_column_is_null(struct db_stmt *s, int col);

/* 1 when the database has a table (or view) of that name, 0 when not. */
int db_has_table(struct db *db, const char *name, struct strbuf *err);

/* Rows changed by the last INSERT/UPDATE/DELETE. */
int64_t db_changes(struct db *db);

#endif
