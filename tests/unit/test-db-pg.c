/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of the PostgreSQL back end (src/store/db-pg.c): the URL as
 * messages show it, and SQLite's SQL as PostgreSQL runs it. The back end
 * against a real server is tests/e2e/t3500-registry-pg.sh.
 */
#include <errno.h>
#include <string.h>

#include "store/db-pg.h"
#include "store/db.h"
#include "tap.h"
#include "core/util.h"

static void check_mask(const char *url, const char *want)
{
	_cleanup_free_ char *got = pg_mask_url(url);

	CHECK_STR(got, want);
}

TEST(test_mask_url)
{
	check_mask("postgresql://ci:s3cret@db.example/reg", "postgresql://ci:***@db.example/reg");
	check_mask("postgres://ci@db:5433/reg?sslmode=require",
		   "postgres://ci@db:5433/reg?sslmode=require");
	check_mask("postgresql:///reg?host=/run/pg&password=s3cret&user=ci",
		   "postgresql:///reg?host=/run/pg&password=***&user=ci");
	check_mask("postgresql://ci:a:b@h/reg?password=x",
		   "postgresql://ci:***@h/reg?password=***");
	/* An '@' after the host is not a user part. */
	check_mask("postgresql://h/reg?application_name=a@b",
		   "postgresql://h/reg?application_name=a@b");
	check_mask("postgresql://ci@h/reg?sslkey=/k.pem&sslpassword=s3cret",
		   "postgresql://ci@h/reg?sslkey=/k.pem&sslpassword=***");
	check_mask("postgresql://", "postgresql://");
}

static void check_sql(const char *sql, bool ddl, const char *want)
{
	_cleanup_free_ char *got = pg_translate(sql, ddl);

	CHECK_STR(got, want);
}

TEST(test_translate)
{
	check_sql("SELECT id FROM builds WHERE id = ?1 AND substr(id, 1, length(?12)) = ?1", false,
		  "SELECT id FROM builds WHERE id = $1 AND substr(id, 1, length($12)) = $1");
	/* Literals, quoted names and comments are left as they are. */
	check_sql("SELECT '?1', \"a?2\" -- ?3 INTEGER\n, ?4", true,
		  "SELECT '?1', \"a?2\" -- ?3 INTEGER\n, $4");
	check_sql("CREATE TABLE t (id TEXT PRIMARY KEY, size INTEGER NOT NULL, "
		  "textual integers) WITHOUT  ROWID;",
		  true,
		  "CREATE TABLE t (id TEXT COLLATE \"C\" PRIMARY KEY, size BIGINT NOT NULL, "
		  "textual integers) ;");
	check_sql("ALTER TABLE builds ADD COLUMN outdir text;", true,
		  "ALTER TABLE builds ADD COLUMN outdir TEXT COLLATE \"C\";");
	/* Queries are not DDL: their words stay. */
	check_sql("SELECT CAST(x AS INTEGER) WITHOUT", false, "SELECT CAST(x AS INTEGER) WITHOUT");
	check_sql("CREATE TABLE w (without_rowid INTEGER)", true,
		  "CREATE TABLE w (without_rowid BIGINT)");
}

TEST(test_is_url)
{
	CHECK(db_is_url("postgresql://h/reg"));
	CHECK(db_is_url("postgres:///reg"));
	CHECK(!db_is_url("postgres.db"));
	CHECK(!db_is_url("./postgresql://x"));
}

TEST(test_connect_refused)
{
	struct strbuf err = STRBUF_INIT;
	struct db *db = NULL;
	int r;

	/* A socket directory with no server: one line, no password, -ECONNREFUSED. */
	r = db_open("postgresql://u:s3cret@/reg?host=/nonexistent-imgforge-dir&connect_timeout=2",
		    NULL, 0, &db, &err);
	CHECK_INT(r, -ECONNREFUSED);
	CHECK(!strstr(strbuf_str(&err), "s3cret"));
	CHECK(!strchr(strbuf_str(&err), '\n'));
	CHECK(str_startswith(strbuf_str(&err),
			     "cannot connect to database 'postgresql://u:***@/reg?host="));
	strbuf_release(&err);
}

int main(void)
{
	RUN(test_mask_url);
	RUN(test_translate);
	RUN(test_is_url);
	RUN(test_connect_refused);
	return tap_done();
}
