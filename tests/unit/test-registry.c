/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/db.h"
#include "fs/dpkg.h"
#include "store/registry.h"
#include "tap.h"
#include "core/util.h"

#define H1 "1111111111111111111111111111111111111111111111111111111111111111"
#define H2 "2222222222222222222222222222222222222222222222222222222222222222"
#define H3 "3333333333333333333333333333333333333333333333333333333333333333"

static struct registry_build *sample_build(const char *version, int64_t created)
{
	struct registry_build *b = registry_build_new();

	b->image = xstrdup("appliance");
	b->version = xstrdup(version);
	b->profile = xstrdup("prod");
	b->created = created;
	b->key_base = xstrdup(H1);
	b->key_rootfs = xstrdup(H2);
	b->inputs = xstrdup("{\"suite\":\"stable\"}");
	registry_build_add_output(b, "disk.img", H3, 1 << 20);
	registry_build_add_output(b, "manifest.json", H1, 512);
	registry_build_add_package(b, "bash", "5.2.15-2+b2", "amd64");
	registry_build_add_package(b, "adduser", "3.134", "all");
	registry_build_add_file(b, "/etc/hostname", H1, 0100644, 0, 0, 9);
	registry_build_add_file(b, "/bin", "", 040755, 0, 0, 0);
	return b;
}

static int count_rows(const char *path, const char *table)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *sql = xasprintf("SELECT count(*) FROM %s", table);
	struct db_stmt *s = NULL;
	struct db *db = NULL;
	int n = -1;

	if (db_open(path, NULL, 0, &db, &err) == 0 && db_prepare(db, sql, &s, &err) == 0 &&
	    db_step(s, &err) == 1)
		n = (int)db_column_int64(s, 0);
	if (n < 0)
		printf("# %s\n", strbuf_str(&err));
	db_finalize(s);
	db_close(db);
	strbuf_release(&err);
	return n;
}

TEST(test_add_list_get)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	_cleanup_build_ struct registry_build *a = sample_build("1.0", 1700000000);
	_cleanup_build_ struct registry_build *b = sample_build("1.1", 1700000100);
	_cleanup_build_ struct registry_build *got = NULL;
	_cleanup_free_ char *id_a = NULL, *id_b = NULL;
	struct registry_summary *list = NULL;
	size_t n = 0;
	char prefix[32];

	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(registry_add(r, a, &id_a, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(registry_add(r, b, &id_b, &err), 0);
	CHECK(id_a && id_b && strcmp(id_a, id_b));
	CHECK(id_a && str_startswith(id_a, "20231114-221320-"));
	CHECK_INT(strlen(id_a ? id_a : ""), REGISTRY_ID_LEN - 1);

	CHECK_INT(registry_list(r, &list, &n, &err), 0);
	CHECK_INT(n, 2);
	if (n == 2) {
		CHECK_STR(list[0].id, id_a);
		CHECK_STR(list[0].version, "1.0");
		CHECK_STR(list[1].id, id_b);
		CHECK_INT(list[1].n_packages, 2);
		CHECK_INT(list[1].n_files, 2);
		CHECK_INT(list[1].n_outputs, 2);
		CHECK_STR(list[1].profile, "prod");
	}
	registry_summaries_free(list, n);

	/* Full id, then a unique prefix (the ids differ after the date). */
	CHECK_INT(registry_get(r, id_b, &got, &err), 0);
	if (got) {
		CHECK_STR(got->image, "appliance");
		CHECK_STR(got->version, "1.1");
		CHECK_INT(got->created, 1700000100);
		CHECK_STR(got->key_base, H1);
		CHECK_STR(got->key_rootfs, H2);
		CHECK(got->key_disk == NULL);
		CHECK_STR(got->inputs, "{\"suite\":\"stable\"}");
		CHECK_INT(got->n_outputs, 2);
		CHECK_INT(got->n_packages, 2);
		CHECK_INT(got->n_files, 2);
		if (got->n_packages == 2 && got->n_files == 2 && got->n_outputs == 2) {
			CHECK_STR(got->packages[0].name, "adduser");
			CHECK_STR(got->packages[1].version, "5.2.15-2+b2");
			CHECK_STR(got->files[0].path, "/bin");
			CHECK_INT(got->files[0].mode, 040755);
			CHECK_STR(got->files[1].sha256, H1);
			CHECK_INT(got->files[1].size, 9);
			CHECK_STR(got->outputs[0].name, "disk.img");
			CHECK_INT(got->outputs[0].size, 1 << 20);
		}
	}
	registry_build_free(TAKE_PTR(got));
	snprintf(prefix, sizeof(prefix), "%.19s", id_b ? id_b : "");
	CHECK_INT(registry_get(r, prefix, &got, &err), 0);
	CHECK(got && !strcmp(got->id, id_b));
	registry_build_free(TAKE_PTR(got));

	/* Both ids start with the date: ambiguous. */
	strbuf_reset(&err);
	CHECK_INT(registry_get(r, "2023", &got, &err), -ENOTUNIQ);
	CHECK(strstr(strbuf_str(&err), "ambiguous") != NULL);
	CHECK(strstr(strbuf_str(&err), id_a) != NULL);
	strbuf_reset(&err);
	CHECK_INT(registry_get(r, "1999", &got, &err), -ENOENT);
	CHECK(strstr(strbuf_str(&err), "'1999'") != NULL);
	CHECK_INT(registry_get(r, "", &got, &err), -EINVAL);
	CHECK(got == NULL);
	strbuf_release(&err);
}

TEST(test_add_refuses_bad_records)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	_cleanup_build_ struct registry_build *a = sample_build("1.0", 1700000000);
	_cleanup_build_ struct registry_build *noname = registry_build_new();
	_cleanup_build_ struct registry_build *dup = sample_build("1.0", 1700000000);
	_cleanup_build_ struct registry_build *badhash = sample_build("1.0", 1700000000);

	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	a->id = xstrdup("20231114-221320-00000001");
	CHECK_INT(registry_add(r, a, NULL, &err), 0);
	/* The same id again. */
	dup->id = xstrdup(a->id);
	CHECK_INT(registry_add(r, dup, NULL, &err), -EEXIST);
	CHECK(strstr(strbuf_str(&err), "already registered") != NULL);
	strbuf_reset(&err);
	noname->version = xstrdup("1");
	CHECK_INT(registry_add(r, noname, NULL, &err), -EINVAL);
	CHECK(noname->id == NULL);
	strbuf_reset(&err);
	registry_build_add_output(badhash, "x.img", "nothex", 1);
	CHECK_INT(registry_add(r, badhash, NULL, &err), -EINVAL);
	CHECK(strstr(strbuf_str(&err), "x.img") != NULL);
	CHECK_INT(count_rows("registry.db", "builds"), 1);

	strbuf_reset(&err);
	CHECK_INT(registry_open("postgresql://db.example/imgforge", &r, &err), -EOPNOTSUPP);
	CHECK(strstr(strbuf_str(&err), "PostgreSQL") != NULL);
	strbuf_release(&err);
}

static const char status_old[] =
	"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2\n\n"
	"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
	"Version: 3.0.11-1~deb12u1\n\n"
	"Package: vim-tiny\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2:9.0\n\n"
	"Package: pinned\nStatus: install ok installed\nArchitecture: all\nVersion: 2.0\n\n"
	"Package: same\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n";
static const char status_new[] =
	"Package: bash\nStatus: install ok installed\nArchitecture: amd64\nVersion: 5.2.15-2+b2\n\n"
	"Package: libssl3\nStatus: install ok installed\nArchitecture: amd64\n"
	"Version: 3.0.11-1~deb12u2\n\n"
	"Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10\n\n"
	"Package: pinned\nStatus: install ok installed\nArchitecture: all\nVersion: 2.0~rc1\n\n"
	"Package: same\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n"
	"Package: vim-tiny\nStatus: deinstall ok config-files\nArchitecture: amd64\n"
	"Version: 2:9.0\n\n";

static struct registry_build *build_from_status(const char *status, const char *version)
{
	struct registry_build *b = registry_build_new();
	struct dpkg_package *p = NULL;
	size_t n = 0;

	b->image = xstrdup("appliance");
	b->version = xstrdup(version);
	dpkg_parse_status(status, strlen(status), &p, &n);
	registry_build_take_packages(b, &p, n);
	return b;
}

TEST(test_diff)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	_cleanup_build_ struct registry_build *a = build_from_status(status_old, "1");
	_cleanup_build_ struct registry_build *b = build_from_status(status_new, "2");
	_cleanup_build_ struct registry_build *ga = NULL, *gb = NULL;
	_cleanup_free_ char *ia = NULL, *ib = NULL;
	struct registry_diff *d;

	registry_build_add_file(a, "/etc/motd", H1, 0100644, 0, 0, 10);
	registry_build_add_file(a, "/etc/old", H1, 0100644, 0, 0, 10);
	registry_build_add_file(a, "/usr/bin/tool", H2, 0100755, 0, 0, 20);
	registry_build_add_file(a, "/srv", "", 040755, 0, 0, 0);
	registry_build_add_file(b, "/srv", "", 040750, 0, 1000, 0);
	registry_build_add_file(b, "/usr/bin/tool", H2, 0100755, 0, 0, 20);
	registry_build_add_file(b, "/etc/new", H3, 0100644, 0, 0, 1);
	registry_build_add_file(b, "/etc/motd", H3, 0100644, 0, 0, 12);

	/* Through the database, so the diff is of what was stored. */
	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	CHECK_INT(registry_add(r, a, &ia, &err), 0);
	CHECK_INT(registry_add(r, b, &ib, &err), 0);
	CHECK_INT(registry_get(r, ia ? ia : "", &ga, &err), 0);
	CHECK_INT(registry_get(r, ib ? ib : "", &gb, &err), 0);
	if (!ga || !gb)
		return;
	d = registry_diff(ga, gb);
	CHECK_INT(d->n_packages, 5);
	if (d->n_packages == 5) {
		CHECK_STR(d->packages[0].new->name, "bash");
		CHECK_INT(d->packages[0].change, REGISTRY_UPGRADED);
		CHECK_STR(d->packages[0].old->version, "5.2.15-2");
		CHECK_STR(d->packages[0].new->version, "5.2.15-2+b2");
		CHECK_STR(d->packages[1].new->name, "curl");
		CHECK_INT(d->packages[1].change, REGISTRY_ADDED);
		CHECK(d->packages[1].old == NULL);
		CHECK_STR(d->packages[2].new->name, "libssl3");
		CHECK_INT(d->packages[2].change, REGISTRY_UPGRADED);
		CHECK_STR(d->packages[3].old->name, "pinned");
		CHECK_INT(d->packages[3].change, REGISTRY_DOWNGRADED);
		CHECK_STR(d->packages[4].old->name, "vim-tiny");
		CHECK_INT(d->packages[4].change, REGISTRY_REMOVED);
		CHECK(d->packages[4].new == NULL);
	}
	CHECK_INT(d->n_files, 4);
	if (d->n_files == 4) {
		CHECK_STR(d->files[0].new->path, "/etc/motd");
		CHECK_INT(d->files[0].change, REGISTRY_CHANGED);
		CHECK_INT(d->files[0].what, REGISTRY_FILE_CONTENT | REGISTRY_FILE_SIZE);
		CHECK_STR(d->files[1].new->path, "/etc/new");
		CHECK_INT(d->files[1].change, REGISTRY_ADDED);
		CHECK_STR(d->files[2].old->path, "/etc/old");
		CHECK_INT(d->files[2].change, REGISTRY_REMOVED);
		CHECK_STR(d->files[3].new->path, "/srv");
		CHECK_INT(d->files[3].what, REGISTRY_FILE_MODE | REGISTRY_FILE_OWNER);
	}
	registry_diff_free(d);
	/* A build compared with itself has no changes. */
	d = registry_diff(gb, gb);
	CHECK_INT(d->n_packages + d->n_files, 0);
	registry_diff_free(d);
	CHECK_STR(registry_change_name(REGISTRY_DOWNGRADED), "downgraded");
	strbuf_release(&err);
}

TEST(test_failure_before_commit_registers_nothing)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	_cleanup_build_ struct registry_build *a = sample_build("1.0", 1700000000);
	struct registry_summary *list = NULL;
	struct db *db = NULL;
	size_t n = 7;

	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	/* Make the last table written in registry_add() fail, as a full disk would. */
	CHECK_INT(db_open("registry.db", NULL, 0, &db, &err), 0);
	CHECK_INT(db_exec(db,
			  "CREATE TRIGGER fail_files BEFORE INSERT ON files "
			  "BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
			  &err),
		  0);
	CHECK_INT(registry_add(r, a, NULL, &err), -EEXIST); /* SQLITE_CONSTRAINT */
	CHECK(strstr(strbuf_str(&err), "injected failure") != NULL);
	CHECK(a->id == NULL);
	CHECK_INT(registry_list(r, &list, &n, &err), 0);
	CHECK_INT(n, 0);
	CHECK_INT(count_rows("registry.db", "builds"), 0);
	CHECK_INT(count_rows("registry.db", "packages"), 0);
	CHECK_INT(count_rows("registry.db", "outputs"), 0);
	/* The registry is usable afterwards: no transaction was left open. */
	CHECK_INT(db_exec(db, "DROP TRIGGER fail_files", &err), 0);
	strbuf_reset(&err);
	CHECK_INT(registry_add(r, a, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(count_rows("registry.db", "files"), 2);
	db_close(db);
	strbuf_release(&err);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/*
 * SIGKILL a process in the middle of registry_add(), at several points:
 * afterwards every build is either there with all its files or not there.
 */
TEST(test_sigkill_during_add)
{
	static const long delays_ms[] = {1, 10, 30, 60, 120, 250};
	struct strbuf err = STRBUF_INIT;
	size_t i, k;
	int complete = 0;

	for (k = 0; k < ARRAY_SIZE(delays_ms); k++) {
		pid_t pid = fork();

		if (pid == 0) {
			struct registry *r = NULL;
			struct registry_build *b = sample_build("big", 1700000000 + (int64_t)k);

			for (i = 0; i < 40000; i++) {
				char path[64];
				snprintf(path, sizeof(path), "/usr/share/f%06zu", i);
				registry_build_add_file(b, path, H1, 0100644, 0, 0, i);
			}
			if (registry_open("registry.db", &r, &err) < 0 ||
			    registry_add(r, b, NULL, &err) < 0)
				_exit(1);
			_exit(0);
		}
		sleep_ms(delays_ms[k]);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	{
		_cleanup_registry_ struct registry *r = NULL;
		struct registry_summary *list = NULL;
		size_t n = 0;

		CHECK_INT(registry_open("registry.db", &r, &err), 0);
		CHECK_INT(registry_list(r, &list, &n, &err), 0);
		for (i = 0; i < n; i++) {
			CHECK_INT(list[i].n_files, 40002);
			CHECK_INT(list[i].n_packages, 2);
			complete++;
		}
		CHECK_INT(count_rows("registry.db", "files"), 40002 * complete);
		registry_summaries_free(list, n);
	}
	printf("# %d of %zu killed builds had committed\n", complete, ARRAY_SIZE(delays_ms));
	strbuf_release(&err);
}

/*
 * A full disk while registering: a file size limit makes the database's
 * writes fail part way through the transaction. One clear error, nothing of
 * the build registered, and the registry works once there is room again.
 */
TEST(test_disk_full_registers_nothing)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	_cleanup_build_ struct registry_build *small = sample_build("1.0", 1700000000);
	_cleanup_build_ struct registry_build *big = sample_build("2.0", 1700000001);
	struct registry_summary *list = NULL;
	struct rlimit old, lim;
	size_t i, n = 0;
	int k;

	for (i = 0; i < 20000; i++) {
		char path[64];
		snprintf(path, sizeof(path), "/usr/lib/file-%06zu", i);
		registry_build_add_file(big, path, H2, 0100644, 0, 0, i);
	}
	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	CHECK_INT(registry_add(r, small, NULL, &err), 0);
	signal(SIGXFSZ, SIG_IGN);
	CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
	lim = old;
	lim.rlim_cur = 256 * 1024;
	CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
	k = registry_add(r, big, NULL, &err);
	CHECK(setrlimit(RLIMIT_FSIZE, &old) == 0);
	CHECK(k < 0);
	CHECK(strstr(strbuf_str(&err), "registry.db") != NULL);
	CHECK(strstr(strbuf_str(&err), "File too large") != NULL);
	printf("# %s\n", strbuf_str(&err));
	CHECK(big->id == NULL);
	registry_close(TAKE_PTR(r));

	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	CHECK_INT(registry_list(r, &list, &n, &err), 0);
	CHECK_INT(n, 1);
	registry_summaries_free(list, n);
	CHECK_INT(count_rows("registry.db", "files"), 2);
	strbuf_reset(&err);
	CHECK_INT(registry_add(r, big, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(count_rows("registry.db", "files"), 2 + 20002);
	strbuf_release(&err);
}

/* A build registering while another process writes waits for it instead of failing. */
TEST(test_concurrent_writer_waits)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	_cleanup_build_ struct registry_build *b = sample_build("1.0", 1700000000);
	struct timespec t0, t1;
	int ready[2], status = 0;
	char ch;
	pid_t pid;
	long ms;

	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	CHECK(pipe(ready) == 0);
	pid = fork();
	if (pid == 0) {
		struct db *db = NULL;

		close(ready[0]);
		if (db_open("registry.db", NULL, 0, &db, &err) < 0 || db_begin(db, &err) < 0)
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(1);
		sleep_ms(600);
		_exit(db_commit(db, &err) < 0 ? 1 : 0);
	}
	close(ready[1]);
	CHECK(read(ready[0], &ch, 1) == 1);
	close(ready[0]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_INT(registry_add(r, b, NULL, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(ms >= 300); /* it did wait for the other writer */
	CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK_INT(count_rows("registry.db", "builds"), 1);
	strbuf_release(&err);
}

/* What a registry written by schema version 1 looks like (no file lists). */
static const char schema_v1[] =
	"CREATE TABLE builds (id TEXT PRIMARY KEY, image TEXT NOT NULL, version TEXT NOT NULL,"
	" profile TEXT, created INTEGER NOT NULL, key_base TEXT, key_rootfs TEXT, key_disk TEXT,"
	" inputs TEXT);"
	"CREATE TABLE outputs (build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,"
	" PRIMARY KEY (build_id, name)) WITHOUT ROWID;"
	"CREATE TABLE packages (build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,"
	" name TEXT NOT NULL, version TEXT NOT NULL, arch TEXT NOT NULL,"
	" PRIMARY KEY (build_id, name, arch)) WITHOUT ROWID;"
	"INSERT INTO builds VALUES ('20230101-000000-0000abcd', 'old', '0.9', NULL, 1672531200,"
	" NULL, NULL, NULL, NULL);"
	"INSERT INTO packages VALUES ('20230101-000000-0000abcd', 'bash', '5.1-2', 'amd64');"
	"PRAGMA user_version = 1;";

TEST(test_migration_from_v1)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	_cleanup_build_ struct registry_build *got = NULL;
	_cleanup_build_ struct registry_build *b = sample_build("1.0", 1700000000);
	struct db *db = NULL;
	int version = -1;

	CHECK_INT(db_open("registry.db", NULL, 0, &db, &err), 0);
	CHECK_INT(db_exec(db, schema_v1, &err), 0);
	db_close(db);
	db = NULL;

	/* Read as it is, without migrating (ls, show, diff). */
	{
		struct registry_summary *list = NULL;
		size_t n = 0;

		CHECK_INT(registry_open_readonly("registry.db", &r, &err), 0);
		CHECK_STR(strbuf_str(&err), "");
		CHECK_INT(registry_list(r, &list, &n, &err), 0);
		CHECK_INT(n, 1);
		if (n == 1)
			CHECK_INT(list[0].n_files, 0);
		registry_summaries_free(list, n);
		CHECK_INT(registry_get(r, "20230101", &got, &err), 0);
		CHECK_INT(registry_add(r, b, NULL, &err), -EROFS);
		registry_close(TAKE_PTR(r));
		registry_build_free(TAKE_PTR(got));
		CHECK_INT(db_open("registry.db", NULL, 0, &db, &err), 0);
		CHECK_INT(db_user_version(db, &version, &err), 0);
		CHECK_INT(version, 1);
		db_close(TAKE_PTR(db));
	}

	strbuf_reset(&err);
	CHECK_INT(registry_open("registry.db", &r, &err), 0);
	CHECK_STR(strbuf_str(&err), "");
	CHECK_INT(registry_get(r, "20230101", &got, &err), 0);
	if (got) {
		CHECK_STR(got->image, "old");
		CHECK_INT(got->n_packages, 1);
		CHECK_INT(got->n_files, 0);
	}
	CHECK_INT(registry_add(r, b, NULL, &err), 0);
	CHECK_INT(count_rows("registry.db", "files"), 2);
	CHECK_INT(db_open("registry.db", NULL, 0, &db, &err), 0);
	CHECK_INT(db_user_version(db, &version, &err), 0);
	CHECK_INT(version, 4);
	db_close(db);
	strbuf_release(&err);
}

TEST(test_newer_schema_refused)
{
	struct strbuf err = STRBUF_INIT;
	struct registry *r = NULL;
	struct db *db = NULL;

	CHECK_INT(db_open("registry.db", NULL, 0, &db, &err), 0);
	CHECK_INT(db_exec(db, "CREATE TABLE builds (id); PRAGMA user_version = 99", &err), 0);
	db_close(db);
	CHECK_INT(registry_open("registry.db", &r, &err), -EPROTONOSUPPORT);
	CHECK(r == NULL);
	CHECK(strstr(strbuf_str(&err), "registry.db") != NULL);
	CHECK(strstr(strbuf_str(&err), "newer") != NULL);

	/* Not a database at all. */
	CHECK(write_file_atomic("junk.db", "this is not sqlite, just some text ......", 40, 0644) ==
	      0);
	strbuf_reset(&err);
	CHECK_INT(registry_open("junk.db", &r, &err), -EBADMSG);
	CHECK(strstr(strbuf_str(&err), "junk.db") != NULL);
	strbuf_release(&err);
}

/*
 * Files that are not a registry are refused, naming the file, instead of
 * becoming an empty history: an empty file, another application's
 * database, an SQLite file without our tables. A read-only open creates
 * nothing.
 */
static int make_db(const char *path, const char *sql)
{
	struct db *db = NULL;
	int r = db_open(path, NULL, 0, &db, NULL);

	if (r == 0)
		r = db_exec(db, sql, NULL);
	db_close(db);
	return r;
}

TEST(test_not_a_registry)
{
	struct strbuf err = STRBUF_INIT;
	struct registry *r = NULL;

	CHECK(write_file_atomic("empty.db", "", 0, 0644) == 0);
	CHECK_INT(registry_open("empty.db", &r, &err), -EBADMSG);
	CHECK(strstr(strbuf_str(&err), "'empty.db' is an empty file, not an imgforge registry") !=
	      NULL);
	CHECK_INT(count_rows("empty.db", "builds"), -1);
	strbuf_reset(&err);
	CHECK_INT(registry_open_readonly("empty.db", &r, &err), -EBADMSG);

	CHECK_INT(make_db("other.db", "CREATE TABLE t (x)"), 0);
	CHECK_INT(registry_open("other.db", &r, &err), -EBADMSG);
	CHECK(strstr(strbuf_str(&err), "no 'builds' table") != NULL);

	CHECK_INT(make_db("app.db", "PRAGMA application_id = 7; CREATE TABLE builds (x)"), 0);
	strbuf_reset(&err);
	CHECK_INT(registry_open_readonly("app.db", &r, &err), -EBADMSG);
	CHECK(strstr(strbuf_str(&err), "another application") != NULL);

	strbuf_reset(&err);
	CHECK_INT(registry_open_readonly("missing.db", &r, &err), -ENOENT);
	CHECK(access("missing.db", F_OK) < 0);
	CHECK(r == NULL);
	strbuf_release(&err);
}

/*
 * Several processes create and write one new registry at once: each opens
 * it (the first creates it), and every build each registers is there.
 */
TEST(test_concurrent_writers_lose_nothing)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_registry_ struct registry *r = NULL;
	struct registry_summary *list = NULL;
	pid_t pids[4];
	size_t i, n = 0;
	int status;

	for (i = 0; i < ARRAY_SIZE(pids); i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct registry *w = NULL;
			int k;

			if (registry_open("registry.db", &w, &err) < 0) {
				printf("# writer: %s\n", strbuf_str(&err));
				_exit(1);
			}
			for (k = 0; k < 5; k++) {
				struct registry_build *b = sample_build("1.0", 1700000000 + k);

				if (registry_add(w, b, NULL, &err) < 0) {
					printf("# writer: %s\n", strbuf_str(&err));
					_exit(1);
				}
				registry_build_free(b);
			}
			registry_close(w);
			_exit(0);
		}
	}
	for (i = 0; i < ARRAY_SIZE(pids); i++) {
		CHECK(waitpid(pids[i], &status, 0) == pids[i]);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	CHECK_INT(registry_open_readonly("registry.db", &r, &err), 0);
	CHECK_INT(registry_list(r, &list, &n, &err), 0);
	CHECK_INT(n, 20);
	registry_summaries_free(list, n);
	strbuf_release(&err);
}

TEST(test_new_id_sorts_by_time)
{
	char a[REGISTRY_ID_LEN], b[REGISTRY_ID_LEN], c[REGISTRY_ID_LEN];

	registry_new_id(0, a);
	registry_new_id(1700000000, b);
	registry_new_id(1700000001, c);
	CHECK(str_startswith(a, "19700101-000000-"));
	CHECK(str_startswith(b, "20231114-221320-"));
	CHECK_INT(strlen(c), REGISTRY_ID_LEN - 1);
	CHECK(strcmp(a, b) < 0 && strcmp(b, c) < 0);
}

int main(void)
{
	RUN(test_add_list_get);
	RUN(test_add_refuses_bad_records);
	RUN(test_diff);
	RUN(test_failure_before_commit_registers_nothing);
	RUN(test_sigkill_during_add);
	RUN(test_disk_full_registers_nothing);
	RUN(test_concurrent_writer_waits);
	RUN(test_migration_from_v1);
	RUN(test_newer_schema_refused);
	RUN(test_not_a_registry);
	RUN(test_concurrent_writers_lose_nothing);
	RUN(test_new_id_sorts_by_time);
	return tap_done();
}
