/* SPDX-License-Identifier: MIT */
/*
 * The PostgreSQL back end of db.h, the only file that includes <libpq-fe.h>.
 * db.c hands a "postgresql://" database to the functions here, so that the
 * modules above keep one set of queries: SQLite's ?N parameters are
 * rewritten to $N, the schema's migrations are run with PostgreSQL's types
 * (pg_translate()), and libpq's results and SQLSTATEs become -errno plus one
 * line naming the database by its URL, its password masked.
 *
 * Statements are sent with PQexecParams(), parameters typed (text or
 * int8) so that the server never has to guess, results in text form.
 * Inside a transaction, statements that return no rows (db_step_done(): the
 * INSERTs of a build's outputs, packages and files) are pipelined: sent
 * without waiting for each answer, the answers read at the next statement
 * that needs one, at COMMIT, or every PIPELINE_MAX statements. A build of
 * 20000 files is then a few round trips to a distant server, not 20000;
 * an error among them still fails the transaction, reported at that point.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/db-pg.h"
#include "core/util.h"

/* Type OIDs of the parameters we bind (pg_type.h, stable across versions). */
#define OID_INT8 20
#define OID_TEXT 25

/* Seconds to wait for a server that does not answer, unless the URL says. */
#define CONNECT_TIMEOUT "10"

/*
 * Statements sent before their answers are read; bounded so that the
 * server's answers (some 40 bytes each) fit in the socket buffers while we
 * are still sending: neither side ever waits for the other.
 */
#define PIPELINE_MAX 256

/* The table that holds each imgforge schema's version, as SQLite's user_version does. */
#define SCHEMA_TABLE "imgforge_schema"

struct pg {
	PGconn *conn;
	char *name; /* the URL, password masked */
	const char *what;
	int version;
	int64_t changes;
	bool pipeline; /* in pipeline mode, with queued statements' answers to read */
	int queued;
};

struct pg_stmt {
	struct pg *pg;
	char *sql;
	int n_params;
	char **values;
	Oid *types;
	PGresult *res;
	int row, n_rows; /* row: 1-based index of the current row */
};

/* --- pure helpers --- */

char *pg_mask_url(const char *url)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = strstr(url, "://"), *auth, *end, *at = NULL, *colon = NULL, *q;

	if (!p)
		return xstrdup(url);
	auth = p + 3;
	end = auth + strcspn(auth, "/?");
	for (q = auth; q < end; q++)
		if (*q == '@')
			at = q;
	if (at)
		for (q = auth; q < at; q++)
			if (*q == ':') {
				colon = q;
				break;
			}
	if (colon) {
		strbuf_add(&sb, url, (size_t)(colon + 1 - url));
		strbuf_addstr(&sb, "***");
		q = at;
	} else {
		q = url;
	}
	/* Query parameters: password= and sslpassword= (the client key's passphrase) are masked. */
	p = strchr(q, '?');
	if (p) {
		strbuf_add(&sb, q, (size_t)(p + 1 - q));
		q = p + 1;
		while (*q) {
			size_t n = strcspn(q, "&");

			if (!strncmp(q, "password=", 9))
				strbuf_addstr(&sb, "password=***");
			else if (!strncmp(q, "sslpassword=", 12))
				strbuf_addstr(&sb, "sslpassword=***");
			else
				strbuf_add(&sb, q, n);
			q += n;
			if (*q == '&')
				strbuf_addch(&sb, *q++);
		}
	}
	strbuf_addstr(&sb, q);
	return strbuf_detach(&sb);
}

static bool word_is(const char *w, size_t n, const char *name)
{
	return strlen(name) == n && !strncasecmp(w, name, n);
}

static char *translate(const char *sql, bool ddl, int *ret_max)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = sql;
	int max = 0;

	while (*p) {
		if (*p == '\'' || *p == '"') {
			const char *e = strchr(p + 1, *p);

			e = e ? e + 1 : p + strlen(p);
			strbuf_add(&sb, p, (size_t)(e - p));
			p = e;
		} else if (p[0] == '-' && p[1] == '-') {
			size_t n = strcspn(p, "\n");

			strbuf_add(&sb, p, n);
			p += n;
		} else if (*p == '?' && isdigit((unsigned char)p[1])) {
			char *e;
			long v = strtol(p + 1, &e, 10);

			if (v > max && v < 10000)
				max = (int)v;
			strbuf_addch(&sb, '$');
			strbuf_add(&sb, p + 1, (size_t)(e - (p + 1)));
			p = e;
		} else if (isalpha((unsigned char)*p) || *p == '_') {
			size_t n = 0;

			while (isalnum((unsigned char)p[n]) || p[n] == '_')
				n++;
			if (ddl && word_is(p, n, "INTEGER")) {
				strbuf_addstr(&sb, "BIGINT");
			} else if (ddl && word_is(p, n, "TEXT")) {
				strbuf_addstr(&sb, "TEXT COLLATE \"C\"");
			} else if (ddl && word_is(p, n, "WITHOUT")) {
				const char *r = p + n;

				while (isspace((unsigned char)*r))
					r++;
				if (!strncasecmp(r, "ROWID", 5) && !isalnum((unsigned char)r[5]) &&
				    r[5] != '_')
					n = (size_t)(r + 5 - p);
				else
					strbuf_add(&sb, p, n);
			} else {
				strbuf_add(&sb, p, n);
			}
			p += n;
		} else {
			strbuf_addch(&sb, *p++);
		}
	}
	if (ret_max)
		*ret_max = max;
	return strbuf_detach(&sb);
}

char *pg_translate(const char *sql, bool ddl)
{
	return translate(sql, ddl, NULL);
}

/* libpq's message, first line only (the rest are hints of its own), trimmed. */
static void add_first_line(struct strbuf *err, const char *msg)
{
	size_t n;

	if (!msg || !*msg)
		msg = "unknown error";
	n = strcspn(msg, "\n");
	while (n && isspace((unsigned char)msg[n - 1]))
		n--;
	strbuf_add(err, msg, n);
}

/* --- errors --- */

static int fail(struct pg *pg, const PGresult *res, struct strbuf *err)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	bool lost = PQstatus(pg->conn) != CONNECTION_OK;
	int r;

	if (!msg)
		msg = PQerrorMessage(pg->conn);
	if (!state)
		state = "";
	if (lost || !strncmp(state, "08", 2) || !strncmp(state, "57P", 3)) {
		if (err) {
			strbuf_addf(err, "%s '%s': lost the connection to the server (", pg->what,
				    pg->name);
			add_first_line(err, msg);
			strbuf_addstr(err, "); nothing of the unfinished transaction was written: "
					   "run again once the server is back");
		}
		return -ECONNRESET;
	}
	if (!strcmp(state, "42501"))
		r = -EACCES;
	else if (!strncmp(state, "23", 2))
		r = -EEXIST;
	else if (!strcmp(state, "40001") || !strcmp(state, "40P01"))
		r = -EAGAIN;
	else if (!strcmp(state, "25006"))
		r = -EROFS;
	else if (!strcmp(state, "53100"))
		r = -ENOSPC;
	else if (!strncmp(state, "53", 2))
		r = -ENOMEM;
	else if (!strncmp(state, "42", 2) || !strncmp(state, "22", 2))
		r = -EINVAL;
	else
		r = -EIO;
	if (err) {
		strbuf_addf(err, "%s '%s': ", pg->what, pg->name);
		add_first_line(err, msg);
		if (r == -EACCES)
			strbuf_addstr(err, ": the database role lacks a right the registry needs "
					   "(see docs/registry.md: SELECT to read; INSERT too to "
					   "register builds; CREATE on the schema to create or "
					   "migrate it)");
		else if (r == -ENOSPC)
			strbuf_addstr(err, ": the database server's disk is full");
	}
	return r;
}

static void quiet_notices(void *arg, const char *message)
{
	(void)arg, (void)message;
}

/* --- statements --- */

/*
 * Read the answers of the pipelined statements and leave pipeline mode. The
 * first error among them is the result (the server skips the statements
 * after it, and the transaction can then only roll back).
 */
static int drain(struct pg *pg, struct strbuf *err)
{
	int r = 0;

	if (!pg->pipeline)
		return 0;
	if (PQpipelineSync(pg->conn) != 1) {
		r = fail(pg, NULL, err);
		goto out;
	}
	for (;;) {
		PGresult *res = PQgetResult(pg->conn);
		ExecStatusType st;

		if (!res) {
			if (PQstatus(pg->conn) != CONNECTION_OK) {
				if (r == 0)
					r = fail(pg, NULL, err);
				break;
			}
			continue;
		}
		st = PQresultStatus(res);
		if (st == PGRES_FATAL_ERROR && r == 0)
			r = fail(pg, res, err);
		PQclear(res);
		if (st == PGRES_PIPELINE_SYNC)
			break;
	}
out:
	PQexitPipelineMode(pg->conn);
	pg->pipeline = false;
	pg->queued = 0;
	return r;
}

int pg_exec(struct pg *pg, const char *sql, struct strbuf *err)
{
	PGresult *res;
	ExecStatusType st;
	int r = drain(pg, err);

	if (r < 0)
		return r;
	res = PQexec(pg->conn, sql);
	st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
		r = fail(pg, res, err);
	else
		pg->changes = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return r;
}

int pg_begin(struct pg *pg, bool read, struct strbuf *err)
{
	return pg_exec(pg, read ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN", err);
}

/* A COMMIT of a transaction that failed answers "ROLLBACK": that is no success. */
int pg_commit(struct pg *pg, struct strbuf *err)
{
	PGresult *res;
	int r = drain(pg, err);

	if (r < 0)
		return r;
	res = PQexec(pg->conn, "COMMIT");

	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		r = fail(pg, res, err);
	} else if (strcmp(PQcmdStatus(res), "COMMIT")) {
		if (err)
			strbuf_addf(err, "%s '%s': the transaction was rolled back", pg->what,
				    pg->name);
		r = -EIO;
	}
	PQclear(res);
	return r;
}

void pg_rollback(struct pg *pg)
{
	PGTransactionStatusType t;

	drain(pg, NULL);
	t = PQtransactionStatus(pg->conn);
	if (t == PQTRANS_INTRANS || t == PQTRANS_INERROR)
		PQclear(PQexec(pg->conn, "ROLLBACK"));
}

int pg_prepare(struct pg *pg, const char *sql, struct pg_stmt **ret, struct strbuf *err)
{
	struct pg_stmt *s = xcalloc(1, sizeof(*s));

	(void)err;
	s->pg = pg;
	s->sql = translate(sql, false, &s->n_params);
	if (s->n_params) {
		s->values = xcalloc((size_t)s->n_params, sizeof(*s->values));
		s->types = xcalloc((size_t)s->n_params, sizeof(*s->types));
	}
	*ret = s;
	return 0;
}

void pg_reset(struct pg_stmt *s)
{
	int i;

	PQclear(s->res);
	s->res = NULL;
	s->row = s->n_rows = 0;
	for (i = 0; i < s->n_params; i++) {
		free(s->values[i]);
		s->values[i] = NULL;
		s->types[i] = 0;
	}
}

void pg_finalize(struct pg_stmt *s)
{
	if (!s)
		return;
	pg_reset(s);
	free(s->values);
	free(s->types);
	free(s->sql);
	free(s);
}

static int bind(struct pg_stmt *s, int idx, char *v, Oid type)
{
	if (idx < 1 || idx > s->n_params) {
		free(v);
		return -ERANGE;
	}
	free(s->values[idx - 1]);
	s->values[idx - 1] = v;
	s->types[idx - 1] = type;
	return 0;
}

int pg_bind_text(struct pg_stmt *s, int idx, const char *v)
{
	return bind(s, idx, v ? xstrdup(v) : NULL, OID_TEXT);
}

int pg_bind_int64(struct pg_stmt *s, int idx, int64_t v)
{
	return bind(s, idx, xasprintf("%" PRId64, v), OID_INT8);
}

int pg_step(struct pg_stmt *s, struct strbuf *err)
{
	if (!s->res) {
		PGresult *res;
		ExecStatusType st;
		int r = drain(s->pg, err);

		if (r < 0)
			return r;
		res = PQexecParams(s->pg->conn, s->sql, s->n_params, s->types,
				   (const char *const *)s->values, NULL, NULL, 0);
		st = PQresultStatus(res);

		if (st == PGRES_COMMAND_OK) {
			s->pg->changes = strtoll(PQcmdTuples(res), NULL, 10);
			s->n_rows = 0;
		} else if (st == PGRES_TUPLES_OK) {
			s->n_rows = PQntuples(res);
		} else {
			r = fail(s->pg, res, err);
			PQclear(res);
			return r;
		}
		s->res = res;
		s->row = 0;
	}
	if (s->row < s->n_rows) {
		s->row++;
		return 1;
	}
	return 0;
}

int pg_step_done(struct pg_stmt *s, struct strbuf *err)
{
	struct pg *pg = s->pg;
	int r;

	if (!pg->pipeline && PQtransactionStatus(pg->conn) != PQTRANS_INTRANS) {
		r = pg_step(s, err);
		pg_reset(s);
		if (r > 0) {
			if (err)
				strbuf_addf(err, "database '%s': statement returned rows",
					    pg->name);
			return -EINVAL;
		}
		return r;
	}
	if (!pg->pipeline) {
		if (PQenterPipelineMode(pg->conn) != 1)
			return fail(pg, NULL, err);
		pg->pipeline = true;
	}
	r = PQsendQueryParams(pg->conn, s->sql, s->n_params, s->types,
			      (const char *const *)s->values, NULL, NULL, 0) == 1
		    ? 0
		    : fail(pg, NULL, err);
	pg_reset(s);
	if (r == 0 && ++pg->queued >= PIPELINE_MAX)
		r = drain(pg, err);
	return r;
}

const char *pg_column_text(struct pg_stmt *s, int col)
{
	if (!s->res || s->row < 1 || col >= PQnfields(s->res) ||
	    PQgetisnull(s->res, s->row - 1, col))
		return NULL;
	return PQgetvalue(s->res, s->row - 1, col);
}

int64_t pg_column_int64(struct pg_stmt *s, int col)
{
	const char *t = pg_column_text(s, col);

	return t ? strtoll(t, NULL, 10) : 0;
}

bool pg_column_is_null(struct pg_stmt *s, int col)
{
	return !pg_column_text(s, col);
}

int64_t pg_changes(struct pg *pg)
{
	return pg->changes;
}

const char *pg_name(const struct pg *pg)
{
	return pg->name;
}

int pg_user_version(struct pg *pg, int *ret, struct strbuf *err)
{
	(void)err;
	*ret = pg->version;
	return 0;
}

/* One text value of a one-row query with at most one text parameter; NULL for no row. */
static int query_value(struct pg *pg, const char *sql, const char *param, char **ret,
		       struct strbuf *err)
{
	struct pg_stmt *s = NULL;
	int r;

	pg_prepare(pg, sql, &s, err);
	if (param)
		pg_bind_text(s, 1, param);
	r = pg_step(s, err);
	if (r >= 0) {
		const char *v = r > 0 ? pg_column_text(s, 0) : NULL;

		*ret = v ? xstrdup(v) : NULL;
		r = 0;
	}
	pg_finalize(s);
	return r;
}

/*
 * A table or view of that name on the search path. Asked of pg_class with an
 * ordinary query rather than to_regclass(): that one answers from the
 * session's catalog cache, which inside a transaction that waited on the
 * migration lock still says "no such table" after the process that held
 * the lock has created it.
 */
int pg_has_table(struct pg *pg, const char *name, struct strbuf *err)
{
	_cleanup_free_ char *v = NULL;
	int r = query_value(
		pg,
		"SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.relname = ?1"
		" AND c.relkind IN ('r', 'v', 'p') AND pg_catalog.pg_table_is_visible(c.oid))",
		name, &v, err);

	return r < 0 ? r : (v && !strcmp(v, "t"));
}

/* The schema's version, or -1 when the database has none (no imgforge schema there). */
static int read_version(struct pg *pg, const char *what, int *ret, struct strbuf *err)
{
	_cleanup_free_ char *v = NULL;
	int r;

	r = pg_has_table(pg, SCHEMA_TABLE, err);
	if (r <= 0) {
		*ret = -1;
		return r;
	}
	r = query_value(pg, "SELECT version FROM " SCHEMA_TABLE " WHERE name = ?1", what, &v, err);
	if (r < 0)
		return r;
	*ret = v ? atoi(v) : -1;
	return 0;
}

static int refuse_newer(struct pg *pg, int version, size_t n, struct strbuf *err)
{
	strbuf_addf(err,
		    "database '%s' has schema version %d, newer than this imgforge knows (%zu); "
		    "use a newer imgforge",
		    pg->name, version, n);
	return -EPROTONOSUPPORT;
}

static int refuse_foreign(struct pg *pg, const struct db_schema *schema, struct strbuf *err)
{
	strbuf_addf(err,
		    "'%s' has a '%s' table but no imgforge schema version (table '" SCHEMA_TABLE
		    "'), so it is not an imgforge %s: give the URL of another database, or "
		    "another schema with options=-csearch_path=NAME",
		    pg->name, schema->table, schema->what);
	return -EBADMSG;
}

/*
 * Apply the migrations the database has not seen, in one transaction under
 * an advisory lock that every imgforge process takes: two processes opening
 * a new database at once cannot both create it, and a failure midway (a
 * right missing, the server gone) leaves the old version as it was.
 */
static int migrate(struct pg *pg, const struct db_schema *schema, struct strbuf *err)
{
	_cleanup_free_ char *lock =
		xasprintf("SELECT pg_advisory_xact_lock(%" PRIu32 ")", schema->application_id);
	struct pg_stmt *s = NULL;
	int version, r;
	size_t i;

	r = pg_begin(pg, false, err);
	if (r < 0)
		return r;
	r = pg_exec(pg, lock, err);
	if (r == 0)
		r = read_version(pg, schema->what, &version, err);
	if (r < 0)
		goto out;
	if (version < 0) {
		r = pg_has_table(pg, schema->table, err);
		if (r > 0)
			r = refuse_foreign(pg, schema, err);
		if (r == 0)
			r = pg_exec(pg,
				    "CREATE TABLE IF NOT EXISTS " SCHEMA_TABLE " ("
				    " name TEXT COLLATE \"C\" PRIMARY KEY,"
				    " version INTEGER NOT NULL)",
				    err);
		if (r < 0)
			goto out;
		version = 0;
		pg_prepare(pg, "INSERT INTO " SCHEMA_TABLE " (name, version) VALUES (?1, 0)", &s,
			   err);
		pg_bind_text(s, 1, schema->what);
		r = pg_step(s, err);
		pg_finalize(TAKE_PTR(s));
		if (r < 0)
			goto out;
	}
	if ((size_t)version > schema->n_migrations) {
		r = refuse_newer(pg, version, schema->n_migrations, err);
		goto out;
	}
	for (i = (size_t)version; i < schema->n_migrations; i++) {
		const char *own = i < schema->n_pg_sql ? schema->pg_sql[i] : NULL;
		_cleanup_free_ char *sql =
			own ? xstrdup(own) : translate(schema->migrations[i].sql, true, NULL);

		r = pg_exec(pg, sql, err);
		if (r < 0) {
			strbuf_addf(err, " (while migrating to schema version %zu)", i + 1);
			goto out;
		}
	}
	pg_prepare(pg, "UPDATE " SCHEMA_TABLE " SET version = ?2 WHERE name = ?1", &s, err);
	pg_bind_text(s, 1, schema->what);
	pg_bind_int64(s, 2, (int64_t)schema->n_migrations);
	r = pg_step(s, err);
	pg_finalize(TAKE_PTR(s));
	if (r == 0)
		r = pg_commit(pg, err);
	if (r == 0)
		pg->version = (int)schema->n_migrations;
out:
	if (r < 0)
		pg_rollback(pg);
	return r;
}

/*
 * A role that may read but not write finds out before a build, not after
 * it, when its record is refused.
 */
static int check_insert(struct pg *pg, const struct db_schema *schema, struct strbuf *err)
{
	_cleanup_free_ char *v = NULL;
	int r = query_value(pg, "SELECT has_table_privilege(?1, 'INSERT')", schema->table, &v, err);

	if (r < 0 || (v && !strcmp(v, "t")))
		return r;
	strbuf_addf(err,
		    "%s '%s': the database role may not INSERT into '%s': grant it SELECT and "
		    "INSERT on the %s's tables, or use a role that has them (see "
		    "docs/registry.md)",
		    schema->what, pg->name, schema->table, schema->what);
	return -EACCES;
}

/*
 * Connect. The URL is libpq's: postgresql://[user[:password]@][host][:port]/
 * dbname[?param=value&...], host= a socket directory for Unix sockets; the
 * PG* environment variables and ~/.pgpass apply as for psql. A URL's own
 * connect_timeout wins over ours (expand_dbname: later values win).
 */
static int connect_url(const char *url, const char *what, struct pg **ret, struct strbuf *err)
{
	static const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *vals[] = {CONNECT_TIMEOUT, "imgforge", url, NULL};
	struct pg *pg = xcalloc(1, sizeof(*pg));
	const char *msg;

	pg->name = pg_mask_url(url);
	pg->what = what;
	pg->conn = PQconnectdbParams(keys, vals, 1);
	if (!pg->conn) {
		pg_close(pg);
		return -ENOMEM;
	}
	if (PQstatus(pg->conn) == CONNECTION_OK) {
		PQsetNoticeProcessor(pg->conn, quiet_notices, NULL);
		*ret = pg;
		return 0;
	}
	msg = PQerrorMessage(pg->conn);
	strbuf_addf(err, "cannot connect to %s '%s': ", what, pg->name);
	/* "connection to server ... failed: " says nothing the URL does not. */
	if (strstr(msg, "failed: ") && strcspn(msg, "\n") > (size_t)(strstr(msg, "failed: ") - msg))
		msg = strstr(msg, "failed: ") + 8;
	if (!strncmp(msg, "FATAL:", 6))
		msg += 6;
	while (isspace((unsigned char)*msg))
		msg++;
	add_first_line(err, msg);
	if (PQconnectionNeedsPassword(pg->conn) || strstr(msg, "authentication failed")) {
		strbuf_addstr(err, ": check the user name and password (in ~/.pgpass, "
				   "PGPASSWORD or the URL)");
		pg_close(pg);
		return -EACCES;
	}
	if (strstr(msg, "does not exist") || strstr(msg, "permission denied")) {
		strbuf_addstr(err, ": create the database and role, or give their names in the URL "
				   "(see docs/registry.md)");
		pg_close(pg);
		return -EACCES;
	}
	strbuf_addstr(err, ": check that the server is running and the URL's host, port and "
			   "database");
	pg_close(pg);
	return -ECONNREFUSED;
}

int pg_open(const char *url, const struct db_schema *schema, enum db_mode mode, struct pg **ret,
	    struct strbuf *err)
{
	struct pg *pg = NULL;
	int version, r;

	r = connect_url(url, schema ? schema->what : "database", &pg, err);
	if (r < 0)
		return r;
	if (mode == DB_READONLY) {
		/* ls, show, diff: a read-only session, which the server enforces. */
		r = pg_exec(pg,
			    "SET default_transaction_read_only = on;"
			    "SET default_transaction_isolation = 'repeatable read'",
			    err);
		if (r < 0)
			goto fail;
	}
	if (!schema)
		goto done;
	r = read_version(pg, schema->what, &version, err);
	if (r < 0)
		goto fail;
	if (version < 0 && mode == DB_READONLY) {
		r = pg_has_table(pg, schema->table, err);
		if (r > 0)
			r = refuse_foreign(pg, schema, err);
		if (r == 0) {
			strbuf_addf(err,
				    "no %s in '%s' yet; builds are registered by 'imgforge "
				    "build'",
				    schema->what, pg->name);
			r = -ENOENT;
		}
		goto fail;
	}
	if (version > (int)schema->n_migrations) {
		r = refuse_newer(pg, version, schema->n_migrations, err);
		goto fail;
	}
	pg->version = version;
	if (mode == DB_READWRITE && version != (int)schema->n_migrations) {
		r = migrate(pg, schema, err);
		if (r < 0)
			goto fail;
	}
	if (mode == DB_READWRITE) {
		r = check_insert(pg, schema, err);
		if (r < 0)
			goto fail;
	}
done:
	*ret = pg;
	return 0;
fail:
	pg_close(pg);
	return r;
}

void pg_close(struct pg *pg)
{
	if (!pg)
		return;
	if (pg->conn)
		PQfinish(pg->conn);
	free(pg->name);
	free(pg);
}
