/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_DB_PG_H
#define IMGFORGE_DB_PG_H

/*
 * The PostgreSQL half of db.h, internal to src/store/db.c (which dispatches
 * to it for a "postgresql://" database) and src/store/db-pg.c (the only
 * file that includes <libpq-fe.h>). Nothing else includes this header but
 * the unit tests of the pure functions at the end.
 */

#include <stdbool.h>
#include <stdint.h>

#include "store/db.h"
#include "core/util.h"

struct pg;
struct pg_stmt;

int pg_open(const char *url, const struct db_schema *schema, enum db_mode mode, struct pg **ret,
	    struct strbuf *err);
void pg_close(struct pg *pg);
/* The URL with its password masked: what messages name. */
const char *pg_name(const struct pg *pg);
int pg_exec(struct pg *pg, const char *sql, struct strbuf *err);
int pg_begin(struct pg *pg, bool read, struct strbuf *err);
int pg_commit(struct pg *pg, struct strbuf *err);
void pg_rollback(struct pg *pg);
int pg_prepare(struct pg *pg, const char *sql, struct pg_stmt **ret, struct strbuf *err);
void pg_finalize(struct pg_stmt *s);
int pg_bind_text(struct pg_stmt *s, int idx, const char *v);
int pg_bind_int64(struct pg_stmt *s, int idx, int64_t v);
int pg_step(struct pg_stmt *s, struct strbuf *err);
/* A statement without rows; inside a transaction, pipelined (its error comes later). */
int pg_step_done(struct pg_stmt *s, struct strbuf *err);
void pg_reset(struct pg_stmt *s);
const char *pg_column_text(struct pg_stmt *s, int col);
int64_t pg_column_int64(struct pg_stmt *s, int col);
bool pg_column_is_null(struct pg_stmt *s, int col);
int64_t pg_changes(struct pg *pg);
int pg_user_version(struct pg *pg, int *ret, struct strbuf *err);
int pg_has_table(struct pg *pg, const char *name, struct strbuf *err);

/* --- pure helpers, exposed for tests/unit/test-db-pg.c --- */

/* url with the password (in the user part or a password= parameter) replaced by "***". */
char *pg_mask_url(const char *url);
/*
 * SQLite's SQL as PostgreSQL runs it: ?N parameters become $N. With ddl,
 * also the schema's types: INTEGER becomes BIGINT (PostgreSQL's is 32
 * bits; sizes and times need 64), TEXT becomes TEXT COLLATE "C" (so that
 * ORDER BY compares bytes as SQLite does, whatever the database's locale),
 * and WITHOUT ROWID is dropped. String literals and quoted names are left
 * alone.
 */
char *pg_translate(const char *sql, bool ddl);

#endif
