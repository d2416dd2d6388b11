#!/bin/bash
# The registry on PostgreSQL: a server of the test's own (initdb in the
# scratch directory, a Unix socket only, no TCP, no system service), its
# database sorting with ICU's en-US rules so that byte order has to be asked
# for. Builds, ls/show/diff the same as on SQLite, registry migrate, eight
# writers at once, the server stopped in the middle of a write, and the
# errors a user meets (bad password, no server, missing rights).
# imgforge-test: timeout 300
. "$SRCDIR/tests/e2e/lib.sh"

H1=1111111111111111111111111111111111111111111111111111111111111111
H2=2222222222222222222222222222222222222222222222222222222222222222

# The server's programs: Debian keeps them out of PATH, one directory per version.
PGBIN=
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) "$(pg_config --bindir 2>/dev/null)"; do
	[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { PGBIN=$d; break; }
done
[ -n "$PGBIN" ] || { [ -x "$(command -v initdb)" ] && PGBIN=$(dirname "$(command -v initdb)"); }

PGDIR=$TEST_DIR/pg
SOCK=$PGDIR/sock
# PostgreSQL refuses to run as root: the server runs as nobody then.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
pg_start() { as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 \
	-o "-c listen_addresses='' -k $SOCK -c fsync=off" start >/dev/null; }
pg_stop() { as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -w -m "${1:-fast}" stop >/dev/null 2>&1; }
trap '[ -f "$PGDIR/data/postmaster.pid" ] && pg_stop immediate; cd /; rm -rf "$TEST_DIR"' EXIT
sql() { # database statement: one value per line
	psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK" -U imgforge -d "$1" -c "$2"
}
url() { echo "postgresql://${2:-imgforge}@/$1?host=$SOCK"; }
U=$(url reg)

# A registry as imgforge writes it (schema version 3), with builds numbered
# 1..N under an id prefix: names and paths in mixed case and with
# punctuation, sorting differently by bytes and by en-US rules; sizes past
# 32 bits.
gen_registry() { # file id-prefix builds files-per-build
	sqlite3 "$1" <<-EOF
	PRAGMA application_id = 1768318834;
	CREATE TABLE builds (id TEXT PRIMARY KEY, image TEXT NOT NULL, version TEXT NOT NULL,
	  profile TEXT, created INTEGER NOT NULL, key_base TEXT, key_rootfs TEXT, key_disk TEXT,
	  inputs TEXT, outdir TEXT);
	CREATE TABLE outputs (build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	  name TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
	  PRIMARY KEY (build_id, name)) WITHOUT ROWID;
	CREATE TABLE packages (build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	  name TEXT NOT NULL, version TEXT NOT NULL, arch TEXT NOT NULL,
	  PRIMARY KEY (build_id, name, arch)) WITHOUT ROWID;
	CREATE TABLE files (build_id TEXT NOT NULL REFERENCES builds(id) ON DELETE CASCADE,
	  path TEXT NOT NULL, sha256 TEXT NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL,
	  gid INTEGER NOT NULL, size INTEGER NOT NULL, PRIMARY KEY (build_id, path)) WITHOUT ROWID;
	CREATE INDEX builds_by_created ON builds (created, id);
	PRAGMA user_version = 3;
	BEGIN;
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3)
	INSERT INTO builds SELECT printf('$2-%06d-%08x', i, i * 7919), 'kiosk', '1.' || i,
	  CASE WHEN i % 2 THEN 'prod' END, 1700000000 + i % 50, '$H1',
	  CASE WHEN i % 3 THEN '$H2' END, NULL, '{"n":' || i || '}', NULL FROM n;
	INSERT INTO outputs SELECT id, 'disk.img', '$H1', 5000000000 + created % 50 FROM builds;
	INSERT INTO outputs SELECT id, 'Manifest.json', '$H2', 512 FROM builds;
	INSERT INTO packages SELECT id, 'bash', '5.2.' || (created % 7), 'amd64' FROM builds;
	INSERT INTO packages SELECT id, 'Zlib', '1:1.2', 'amd64' FROM builds WHERE created % 2 = 0;
	INSERT INTO packages SELECT id, 'apt', '2.6~' || (created % 3), 'all' FROM builds;
	INSERT INTO packages SELECT id, '_été', '1.0', 'all' FROM builds;
	WITH RECURSIVE f(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM f WHERE j < $4)
	INSERT INTO files SELECT id, CASE j % 3 WHEN 0 THEN '/etc/B' WHEN 1 THEN '/etc/a'
	  ELSE '/usr/_' END || j, '$H1', 33188 + (created + j) % 2, 0, j % 5, (created % 11) * j
	  FROM builds, f;
	COMMIT;
	EOF
}

# Exactly one line on stderr, matching the regex, and no password in it.
one_line() { # regex file
	grep_one "$1" "$2" && test "$(wc -l <"$2")" = 1 && ! grep -q "sekrit" "$2"
}

test_expect_success 'a PostgreSQL server of our own on a Unix socket' '
	test -n "$PGBIN" || { echo "no PostgreSQL server programs (initdb, pg_ctl): install the Debian package postgresql (make deps does)"; exit 1; }
	require_tool psql postgresql-client && require_tool sqlite3 sqlite3 &&
	chmod a+x "$TEST_DIR" && mkdir -p "$SOCK" && chmod -R a+rwx "$PGDIR" &&
	as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U imgforge -A trust --no-sync -E UTF8 \
		--locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 &&
	printf "local all pwuser scram-sha-256\nlocal all all trust\n" >"$PGDIR/data/pg_hba.conf" &&
	pg_start &&
	for db in reg cmp fresh same kill empty; do
		sql postgres "CREATE DATABASE $db TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '\''en-US'\'' LOCALE '\''C.UTF-8'\''"
	done &&
	sql reg "SELECT string_agg(x, '\'' '\'' ORDER BY x) FROM (VALUES ('\''a'\''), ('\''B'\'')) v(x)" >order &&
	test "$(cat order)" = "a B"
'

test_expect_success 'imgforge build registers into PostgreSQL; ls and show read it back' '
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" m.tar.gz &&
	printf "image: pgimg\nversion: 1\nbase: {tarball: m.tar.gz, sha256: %s}\n" \
		$(sha256sum m.tar.gz | cut -c1-64) >m.yaml &&
	imgforge build --cache c1 --registry "$U" -o out1 m.yaml 2>build.err &&
	test "$(sql reg "SELECT version FROM imgforge_schema WHERE name = '\''registry'\''")" = 4 &&
	test "$(sql reg "SELECT count(*) FROM publications")" = 0 &&
	test "$(sql reg "SELECT count(*) FROM builds")" = 1 &&
	test "$(sql reg "SELECT data_type FROM information_schema.columns WHERE table_name = '\''outputs'\'' AND column_name = '\''size'\''")" = bigint &&
	id=$(sql reg "SELECT id FROM builds") &&
	IMGFORGE_REGISTRY=$U imgforge ls >ls.out &&
	grep -q "^$id  pgimg " ls.out &&
	IMGFORGE_REGISTRY=$U imgforge show "${id%-*}" >show.out &&
	grep -q "^outputs   2 in $TEST_DIR/out1\$" show.out &&
	test "$(sql reg "SELECT count(*) FROM files")" -gt 10
'

test_expect_success 'registry migrate copies 100 builds from SQLite; run again, it adds nothing' '
	gen_registry local.db 20231114 100 20 &&
	imgforge registry migrate --from sqlite:local.db --to "$(url cmp)" >mig.out &&
	grep -q "^copied 100 builds from .local.db. into .postgresql://imgforge@/cmp?host=.*; 0 already there\$" mig.out &&
	imgforge registry migrate --from local.db --to "$(url cmp)" >mig.out &&
	grep -q "^copied 0 builds .*; 100 already there\$" mig.out &&
	for t in builds outputs packages files; do
		test "$(sql cmp "SELECT count(*) FROM $t")" = "$(sqlite3 local.db "SELECT count(*) FROM $t")" || exit 1
	done &&
	test "$(sql cmp "SELECT max(size) FROM outputs")" = 5000000049
'

test_expect_success 'ls, show and diff print the same on SQLite and PostgreSQL, text and JSON' '
	a=$(sqlite3 local.db "SELECT id FROM builds ORDER BY id LIMIT 1 OFFSET 7") &&
	b=$(sqlite3 local.db "SELECT id FROM builds ORDER BY id LIMIT 1 OFFSET 41") &&
	for args in "ls" "ls --json" "show $a" "show --json $a" "show ${b%-*}" "diff $a $b" \
		"diff --json $b $a"; do
		imgforge $args --registry local.db >sqlite.out &&
		imgforge $args --registry "$(url cmp)" >pg.out &&
		diff -u sqlite.out pg.out || { echo "differs: imgforge $args"; exit 1; }
	done &&
	imgforge show --json $a --registry "$(url cmp)" | python3 -c "
import json, sys
b = json.load(sys.stdin)
for names in ([p[\"name\"] for p in b[\"packages\"]], [f[\"path\"] for f in b[\"files\"]]):
    # in byte order, which is not what en-US rules give for these names
    assert names == sorted(names, key=lambda s: s.encode()), names
    assert names != sorted(names, key=str.lower), names
"
'

test_expect_success 'eight writers at once into a new database: no row lost, no build half there' '
	for w in 1 2 3 4 5 6 7 8; do gen_registry w$w.db 2024010$w 12 30 || exit 1; done &&
	for w in 1 2 3 4 5 6 7 8; do
		imgforge registry migrate --from w$w.db --to "$(url fresh)" >w$w.out 2>w$w.err &
	done &&
	fails=0 && for w in 1 2 3 4 5 6 7 8; do wait -n || fails=$((fails + 1)); done &&
	cat w*.err && test $fails = 0 &&
	test "$(cat w*.out | grep -c "^copied 12 builds .*; 0 already there\$")" = 8 &&
	test "$(sql fresh "SELECT count(*) FROM builds")" = 96 &&
	test "$(sql fresh "SELECT count(*) FROM files")" = $((96 * 30)) &&
	test "$(sql fresh "SELECT count(*) FROM packages")" = "$(for w in 1 2 3 4 5 6 7 8; do sqlite3 w$w.db "SELECT count(*) FROM packages"; done | paste -sd+ | bc)" &&
	test "$(sql fresh "SELECT count(*) FROM builds b WHERE (SELECT count(*) FROM files f WHERE f.build_id = b.id) <> 30 OR (SELECT count(*) FROM outputs o WHERE o.build_id = b.id) <> 2")" = 0
'

test_expect_success 'eight writers copying the same builds: each build once, every copy counted once' '
	for w in 1 2 3 4 5 6 7 8; do
		imgforge registry migrate --from w1.db --to "$(url same)" >s$w.out 2>s$w.err &
	done &&
	fails=0 && for w in 1 2 3 4 5 6 7 8; do wait -n || fails=$((fails + 1)); done &&
	cat s*.err && test $fails = 0 &&
	test "$(sql same "SELECT count(*) FROM builds")" = 12 &&
	test "$(sql same "SELECT count(*) FROM files")" = $((12 * 30)) &&
	test "$(sed -n "s/^copied \([0-9]*\) build.*/\1/p" s*.out | paste -sd+ | bc)" = 12 &&
	test "$(sed -n "s/.*; \([0-9]*\) already there\$/\1/p" s*.out | paste -sd+ | bc)" = $((7 * 12))
'

test_expect_success 'eight builds at once register eight rows, each with its own id' '
	for w in 1 2 3 4 5 6 7 8; do
		imgforge build --cache c$w --registry "$U" -o pout$w m.yaml >/dev/null 2>b$w.err &
	done &&
	fails=0 && for w in 1 2 3 4 5 6 7 8; do wait -n || fails=$((fails + 1)); done &&
	{ grep -h "^error" b*.err || :; } && test $fails = 0 &&
	test "$(sql reg "SELECT count(DISTINCT id) FROM builds WHERE image = '\''pgimg'\''")" = 9
'

# Deterministic: another session holds a lock on the files table, so the
# copy of the first build waits inside its transaction, its build row and
# more already sent, until the server is stopped under it.
waiting() { sql kill "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'imgforge' AND wait_event_type = 'Lock'"; }
test_expect_success 'the server stopped in the middle of a write: one error, no half build' '
	imgforge registry migrate --from w1.db --to "$(url kill)" >/dev/null &&
	gen_registry big.db 20240201 4 2000 &&
	{ psql -X -q -h "$SOCK" -U imgforge -d kill -c "BEGIN; LOCK TABLE files IN SHARE MODE; SELECT pg_sleep(120)" >/dev/null 2>&1 & } &&
	for i in $(seq 200); do
		[ "$(sql kill "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = '\''files'\'' AND l.mode = '\''ShareLock'\'' AND l.granted")" = 1 ] && break
		sleep 0.05
	done &&
	{ imgforge registry migrate --from big.db --to "$(url kill)" >kill.out 2>kill.err & pid=$!; } &&
	for i in $(seq 400); do [ "$(waiting)" = 1 ] && break; sleep 0.05; done &&
	test "$(waiting)" = 1 &&
	pg_stop immediate && rc=0 && { wait $pid || rc=$?; } &&
	pg_start &&
	cat kill.err && test $rc = 1 &&
	one_line "^error: registry migrate: copying build .20240201-000001-.*: registry .postgresql://imgforge@/kill\?host=.*.: lost the connection to the server .*nothing of the unfinished transaction was written" kill.err &&
	test "$(sql kill "SELECT count(*) FROM builds")" = 12 &&
	test "$(sql kill "SELECT count(*) FROM builds WHERE id LIKE '\''20240201-%'\''")" = 0 &&
	test "$(sql kill "SELECT count(*) FROM files")" = $((12 * 30)) &&
	test "$(sql kill "SELECT count(*) FROM packages WHERE build_id LIKE '\''20240201-%'\''")" = 0 &&
	imgforge registry migrate --from big.db --to "$(url kill)" >kill.out &&
	grep -q "^copied 4 builds .*; 0 already there\$" kill.out &&
	test "$(sql kill "SELECT count(*) FROM files")" = $((12 * 30 + 4 * 2000))
'

test_expect_success 'a bad password and a missing server are one line each, the password masked' '
	sql reg "CREATE ROLE pwuser LOGIN PASSWORD '\''sekrit-good'\''; GRANT SELECT ON ALL TABLES IN SCHEMA public TO pwuser" &&
	imgforge ls --registry "postgresql://pwuser:sekrit-good@/reg?host=$SOCK" >/dev/null &&
	test_must_fail imgforge ls --registry "postgresql://pwuser:sekrit-bad@/reg?host=$SOCK" 2>err &&
	one_line "^error: ls: cannot connect to registry .postgresql://pwuser:\*\*\*@/reg\?host=.*password authentication failed .*check the user name and password" err &&
	test_must_fail imgforge show x --registry "postgres:///reg?host=$TEST_DIR/nowhere&password=sekrit-x" 2>err &&
	one_line "^error: show: cannot connect to registry .postgres:///reg\?host=.*&password=\*\*\*.: .*No such file or directory: check that the server is running" err &&
	IMGFORGE_REGISTRY="postgresql://imgforge@/nosuchdb?host=$SOCK" test_must_fail imgforge build --cache c1 -o out9 m.yaml 2>err &&
	grep_one "^error: .*cannot connect to registry .*database \"nosuchdb\" does not exist: create the database" err &&
	test ! -e out9/root.ext4
'

test_expect_success 'rights: SELECT reads (ls, show, diff never write); without it, one line' '
	sql reg "CREATE ROLE reader LOGIN; GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader; CREATE ROLE stranger LOGIN" &&
	imgforge ls --registry "$(url reg reader)" >ls.out && grep -q " pgimg " ls.out &&
	id=$(sql reg "SELECT id FROM builds WHERE image = '\''pgimg'\'' LIMIT 1") &&
	imgforge show --registry "$(url reg reader)" $id >/dev/null &&
	test_must_fail imgforge build --cache c1 --registry "$(url reg reader)" -o out8 m.yaml 2>err &&
	grep_one "^error: .*registry .postgresql://reader@/reg.*: the database role may not INSERT into .builds." err &&
	test ! -e out8/root.ext4 &&
	test_must_fail imgforge ls --registry "$(url reg stranger)" 2>err &&
	one_line "^error: ls: registry .*permission denied for table (builds|imgforge_schema): the database role lacks a right" err &&
	test_must_fail imgforge ls --registry "$(url empty)" 2>err &&
	one_line "^error: ls: no registry in .postgresql://imgforge@/empty.*. yet; builds are registered by .imgforge build." err &&
	test "$(sql empty "SELECT count(*) FROM pg_tables WHERE schemaname = '\''public'\''")" = 0
'

test_expect_success 'a foreign database and a newer schema are refused, not misread' '
	sql empty "CREATE TABLE builds (x int)" &&
	test_must_fail imgforge ls --registry "$(url empty)" 2>err &&
	one_line "has a .builds. table but no imgforge schema version" err &&
	test_must_fail imgforge build --cache c1 --registry "$(url empty)" -o out7 m.yaml 2>err &&
	grep_one "has a .builds. table but no imgforge schema version" err &&
	sql same "UPDATE imgforge_schema SET version = 42" &&
	test_must_fail imgforge ls --registry "$(url same)" 2>err &&
	one_line "has schema version 42, newer than this imgforge knows \(4\); use a newer imgforge" err
'

test_done
