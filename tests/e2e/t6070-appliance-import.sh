#!/bin/bash
# The appliance's import of an SQLite development database into its
# PostgreSQL (overlays/atarys-backend/usr/lib/appliance/import-sqlite), without
# a VM: the script runs in a chroot made of this host's /usr and /etc with the
# overlays on top (as t6060), the sample backend at /opt/atarys/backend,
# Debian's real pgloader, against a PostgreSQL server of the test's own that
# the script reaches as the appliance's does (DATABASE_URL from
# /data/atarys/secrets.env, TCP, a password), its time zone Europe/Paris so
# that a time without a zone read in the server's zone would show. The
# database is the sample's generated one (examples/atarys/backend/dev).
#
# Imported, every row is equal field by field (times as instants), the
# tables are the application's (its constraints), a new chantier gets an id
# past the imported ones; a second run of the same file does nothing, another
# file or a database with rows is refused untouched; a file that is not
# SQLite, a table or a column the application lacks, rows PostgreSQL refuses
# (pgloader exits 0 then: the counts catch it) each give one error line,
# import.failed and an empty database, and the backend's condition
# (import-check) refuses to start it; a run killed after pgloader (a power
# cut) leaves import.failed, and the next run empties and imports again.
# imgforge-test: timeout 300
. "$SRCDIR/tests/e2e/lib.sh"

for t in unshare:util-linux pgloader:pgloader psql:postgresql-client runuser:util-linux pg_dump:postgresql-client; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
# Debian's python3, whose psycopg2 the appliance has (not one earlier in PATH).
PY=/usr/bin/python3
"$PY" -c "import psycopg2" 2>/dev/null ||
	{ echo "no $PY with psycopg2: install the Debian packages python3 and python3-psycopg2 (make deps does)" >&2; exit 1; }
skip_unless_root_pg 'appliance SQLite import'
pg_server_bin || exit 1

OV=$SRCDIR/overlays R=$TEST_DIR/root BACKEND=$SRCDIR/examples/atarys/backend
SOCK=$TEST_DIR/sock PGDATA=$TEST_DIR/pg
STATE=$R/data/atarys
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
PASSWORD=$(openssl rand -hex 24)
URL=postgresql://atarys:$PASSWORD@127.0.0.1:$PORT/atarys
pg_stop() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -w -m immediate stop >/dev/null 2>&1; }
trap '[ -f "$PGDATA/postmaster.pid" ] && pg_stop; cd /; rm -rf "$TEST_DIR"' EXIT
sql() { runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -d "$1" -c "$2"; }
# What the database holds, to show that a refused run changed nothing.
state() { runuser -u postgres -- pg_dump -h "$SOCK" -p "$PORT" --no-comments atarys | grep -v "^--\|^\\\\\(un\)\?restrict " | md5sum; }
count() { sql atarys "SELECT count(*) FROM chantiers"; }
# An empty application database, no import state: as after the first boot.
fresh() {
	sql postgres "DROP DATABASE IF EXISTS atarys" && sql postgres "CREATE DATABASE atarys OWNER atarys" &&
		rm -f "$STATE/import.done" "$STATE/import.failed"
}
# in_root CMD...: CMD in the chroot, its /usr and /etc the overlays' over the host's.
in_root() {
	unshare -m sh -ec '
		r=$1 ov=$2; shift 2
		mount --make-rprivate /
		mount -t overlay overlay -o "lowerdir=$ov/usr:/usr" "$r/usr"
		mount -t overlay overlay -o "lowerdir=$ov/etc:/etc" "$r/etc"
		mount --rbind /dev "$r/dev"
		mount -t proc proc "$r/proc"
		exec chroot "$r" "$@"
	' sh "$R" "$TEST_DIR/ov" "$@"
}
imp() { in_root /usr/lib/appliance/import-sqlite "$@" >out 2>err; }
# refused REGEX ARGS...: import-sqlite fails with one line, and changes nothing.
refused() {
	local re=$1
	shift
	state >before && ls -A "$STATE" >files.before &&
	test_must_fail imp "$@" &&
	cat out err && test "$(wc -l <err)" = 1 && grep_one "^import-sqlite: error: $re" err &&
	state | cmp - before && ls -A "$STATE" | cmp - files.before
}
# failed REGEX ARGS...: import-sqlite fails with one line, nothing stays in
# the database, import.failed has the reason and the backend's condition
# refuses with it.
failed() {
	local re=$1
	shift
	test_must_fail imp "$@" &&
	cat out err && test "$(wc -l <err)" = 1 && grep_one "^import-sqlite: error: $re" err &&
	test "$(count)" = 0 &&
	test "$(sql atarys "SELECT last_value, is_called FROM chantiers_id_seq")" = "1|f" &&
	test "$(sed -n 's/^reason=//p' "$STATE/import.failed")" = "$(sed 's/^import-sqlite: error: //' err)" &&
	test ! -e "$STATE/import.done" && ! ls -A "$STATE" | grep -q "^\.import-" &&
	test_must_fail in_root /usr/lib/appliance/import-check >check.out 2>check.err &&
	test ! -s check.out && test "$(wc -l <check.err)" = 1 &&
	grep_one "^atarys-backend: not started: the import of an SQLite database failed: ${re%\$}.*; fix it and run '/usr/lib/appliance/import-sqlite FILE' again, or remove /data/atarys/import.failed to start with what the database holds" check.err
}

# Every row of FILE's chantiers against the database's, field by field, the
# times as instants (a time without a zone in SQLite is UTC).
cat >compare.py <<'EOF'
import datetime, sqlite3, sys
import psycopg2
lite = sqlite3.connect(sys.argv[1])
pg = psycopg2.connect(sys.argv[2])
cur = pg.cursor()
cur.execute("SELECT id, name, client, status, created_at FROM chantiers ORDER BY id")
b = cur.fetchall()
a = []
for id, name, client, status, t in lite.execute(
        "SELECT id, name, client, status, created_at FROM chantiers ORDER BY id"):
    t = datetime.datetime.fromisoformat(t)
    a.append((id, name, client, status, t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)))
if len(a) != len(b) or not a:
    sys.exit(f"{len(a)} rows in {sys.argv[1]}, {len(b)} in the database")
for x, y in zip(a, b):
    if x != y:
        sys.exit(f"differ:\n  {x}\n  {y}")
print(f"{len(a)} rows equal")
EOF

# The root: the overlays' /usr, the backend where the image has it, /data as
# the first boot leaves it (secrets.env with the database's URL).
mkdir -p ov/etc "$R"/usr "$R"/etc "$R"/dev "$R"/proc "$R"/tmp "$R"/opt/atarys "$STATE" "$SOCK" "$PGDATA" &&
	for o in appliance-state atarys-backend; do cp -a "$OV/$o/usr" ov/; done &&
	cp -a "$BACKEND" "$R/opt/atarys/backend" &&
	chmod 1777 "$R/tmp" && chmod 0700 "$STATE" && chmod a+x "$TEST_DIR" &&
	printf 'SECRET_KEY=%s\nDATABASE_PASSWORD=%s\nDATABASE_URL=%s\n' "$(openssl rand -hex 32)" "$PASSWORD" "$URL" \
		>"$STATE/secrets.env" && chmod 600 "$STATE/secrets.env" &&
	chown postgres: "$SOCK" "$PGDATA" &&
	ln -s usr/bin "$R/bin" && ln -s usr/sbin "$R/sbin" && ln -s usr/lib "$R/lib" &&
	{ test ! -e /lib64 || ln -s usr/lib64 "$R/lib64"; } || exit 1

test_expect_success 'PostgreSQL (Europe/Paris), the role and database of the first boot; the dev databases' '
	runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -A peer --auth-host=scram-sha-256 \
		--no-sync -E UTF8 --locale=C.UTF-8 >initdb.log 2>&1 &&
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c fsync=off -c timezone=Europe/Paris" start >/dev/null &&
	sql postgres "CREATE ROLE atarys LOGIN PASSWORD '\''$PASSWORD'\''" &&
	sql postgres "CREATE DATABASE atarys OWNER atarys" &&
	gen=$BACKEND/dev/make-dev-db.py &&
	"$PY" "$gen" "$R/data/dev.sqlite" >gen.out && grep -qx "$R/data/dev.sqlite: 300 chantiers" gen.out &&
	"$PY" "$gen" again.sqlite >/dev/null && cmp again.sqlite "$R/data/dev.sqlite" &&
	"$PY" "$gen" --rows 50 "$R/data/other.sqlite" >/dev/null &&
	"$PY" - "$R/data/dev.sqlite" >shape <<-EOF &&
	import sqlite3, sys
	db = sqlite3.connect(sys.argv[1])
	n, top = db.execute("SELECT count(*), max(id) FROM chantiers").fetchone()
	forms = db.execute("SELECT count(*) FROM chantiers WHERE created_at LIKE '\''____-__-__ __:__:__'\''").fetchone()[0], \\
		db.execute("SELECT count(*) FROM chantiers WHERE created_at LIKE '\''%.______'\''").fetchone()[0], \\
		db.execute("SELECT count(*) FROM chantiers WHERE created_at LIKE '\''%T%+__:__'\'' OR created_at LIKE '\''%T%-__:__'\''").fetchone()[0]
	print(n, top > n, min(forms) > 10, sum(forms) == n,
		db.execute("SELECT count(*) FROM chantiers WHERE client LIKE '\''%@example.%'\''").fetchone()[0] > 100)
	EOF
	test "$(cat shape)" = "300 True True True True"
'

test_expect_success 'import: every row equal field by field, the times as instants; import.done; nothing left over' '
	imp /data/dev.sqlite || { cat out err; exit 1; }
	cat out && test ! -s err &&
	grep_one "^import-sqlite: ./data/dev.sqlite. imported into .atarys.: chantiers 300 rows, counts checked\$" out &&
	"$PY" compare.py "$R/data/dev.sqlite" "$URL" &&
	grep -qx "sha256=$(sha256sum <"$R/data/dev.sqlite" | cut -d" " -f1)" "$STATE/import.done" &&
	grep -qx "rows.chantiers=300" "$STATE/import.done" && grep -qx "file=/data/dev.sqlite" "$STATE/import.done" &&
	test "$(stat -c %a "$STATE/import.done")" = 600 &&
	test ! -e "$STATE/import.failed" && ! ls -A "$STATE" | grep -q "^\.import-\|\.tmp\$" &&
	test "$(sql atarys "SELECT tableowner FROM pg_tables WHERE tablename = '\''chantiers'\''")" = atarys &&
	test "$(sql atarys "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = '\''chantiers'\''::regclass AND attname IN ('\''name'\'', '\''created_at'\'') ORDER BY attname")" = \
		"timestamp with time zone
character varying(200)" &&
	test "$(sql atarys "SELECT count(*) FROM pg_constraint WHERE conrelid = '\''chantiers'\''::regclass
		AND conname IN ('\''chantiers_status_check'\'', '\''chantiers_name_check'\'', '\''chantiers_pkey'\'')")" = 3 &&
	test "$(sql atarys "SELECT count(*) FROM pg_indexes WHERE indexname = '\''chantiers_created_at_idx'\''")" = 1
'

test_expect_success 'a new chantier, through the application, gets an id past the imported ones' '
	top=$(sql atarys "SELECT max(id) FROM chantiers") && test "$top" -gt 300 &&
	"$PY" -B -c "
import sys
sys.path.insert(0, sys.argv[2])
from atarys.db import Database
print(Database(sys.argv[1]).create_chantier(\"Nouveau\", None, \"planned\")[\"id\"])" "$URL" "$BACKEND" >id &&
	test "$(cat id)" = $((top + 1))
'

test_expect_success 'the backend runs import-check as its condition, as root; it passes without import.failed' '
	grep -qx "ExecCondition=+/usr/lib/appliance/import-check" \
		"$OV/atarys-backend/usr/lib/systemd/system/atarys-backend.service" &&
	in_root /usr/lib/appliance/import-check >check.out 2>check.err &&
	test ! -s check.out && test ! -s check.err
'

test_expect_success 'the same file again: nothing to do; another file: refused, nothing changed' '
	state >before && cp "$STATE/import.done" done.before &&
	imp /data/dev.sqlite || { cat out err; exit 1; }
	cat out && test ! -s err &&
	grep_one "^import-sqlite: ./data/dev.sqlite. was imported into .atarys. at .* already \\(/data/atarys/import.done\\): nothing to do\$" out &&
	state | cmp - before && cmp done.before "$STATE/import.done" &&
	refused "the database .atarys. already holds the import of ./data/dev.sqlite. \\(/data/atarys/import.done, .*\\): an import is done once, into an empty database; nothing imported\$" \
		/data/other.sqlite &&
	test ! -e "$STATE/import.failed"
'

test_expect_success 'import.done written but import.failed not yet removed (a cut between): the next run removes it' '
	printf "reason=the import began\n" >"$STATE/import.failed" &&
	imp /data/dev.sqlite || { cat out err; exit 1; }
	grep -q "already" out && test ! -e "$STATE/import.failed"
'

test_expect_success 'a database holding rows of its own: refused, untouched, nothing recorded' '
	fresh && "$PY" -B -c "
import sys
sys.path.insert(0, sys.argv[2])
from atarys.db import Database
Database(sys.argv[1]).create_chantier(\"Le mien\", None, \"active\")" "$URL" "$BACKEND" &&
	refused "the database .atarys. already holds rows \\(chantiers: 1\\): import-sqlite imports into an empty database only, it does not merge; nothing imported\$" \
		/data/dev.sqlite &&
	test ! -e "$STATE/import.failed" && test ! -e "$STATE/import.done"
'

test_expect_success 'not an SQLite file, or a truncated one: one line, nothing imported, the backend refused' '
	fresh &&
	printf "id,name\n1,Mairie\n" >"$R/data/chantiers.csv" &&
	failed "./data/chantiers.csv. is not an SQLite database \\(it does not start with .SQLite format 3.\\): nothing imported\$" \
		/data/chantiers.csv &&
	head -c 20000 "$R/data/dev.sqlite" >"$R/data/short.sqlite" &&
	failed "./data/short.sqlite. is (a damaged|not a readable) SQLite database \\(.*\\): nothing imported\$" /data/short.sqlite
'

test_expect_success 'a table or a column the application does not have: refused by name' '
	fresh &&
	cp "$R/data/dev.sqlite" "$R/data/notes.sqlite" && cp "$R/data/dev.sqlite" "$R/data/budget.sqlite" &&
	"$PY" -c "
import sqlite3, sys
a = sqlite3.connect(sys.argv[1]); a.execute(\"CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)\"); a.commit()
b = sqlite3.connect(sys.argv[2]); b.execute(\"ALTER TABLE chantiers ADD COLUMN budget REAL\"); b.commit()" \
		"$R/data/notes.sqlite" "$R/data/budget.sqlite" &&
	failed "./data/notes.sqlite. has a table .notes. that the application does not have \\(its tables: chantiers\\): nothing imported\$" \
		/data/notes.sqlite &&
	failed "the table .chantiers. of ./data/budget.sqlite. has a column .budget. that the application.s table does not have: nothing imported\$" \
		/data/budget.sqlite
'

test_expect_success 'rows PostgreSQL refuses: the counts differ, one line with both, the database emptied again' '
	cp "$R/data/dev.sqlite" "$R/data/bad.sqlite" &&
	"$PY" -c "
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute(\"INSERT INTO chantiers (name, client) VALUES (\x27\x27, \x27empty name\x27)\")
db.execute(\"INSERT INTO chantiers (name, status) VALUES (?, \x27paused\x27)\", (\"x\" * 250,))
db.commit()" "$R/data/bad.sqlite" &&
	failed "table .chantiers.: 302 rows in ./data/bad.sqlite., 300 in the database .atarys. after pgloader \\(Database error [0-9]*: .*\\); the database .atarys. was emptied again\$" \
		/data/bad.sqlite &&
	test "$(grep -c "^pgloader=Database error " "$STATE/import.failed")" = 2 &&
	! grep -q "empty name\|xxxxxxxxxx" "$STATE/import.failed"
'

test_expect_success 'after a failure the import runs again and succeeds; import.failed goes' '
	test -e "$STATE/import.failed" &&
	imp /data/dev.sqlite || { cat out err; exit 1; }
	cat out && test ! -s err && grep -q "imported into" out &&
	test ! -e "$STATE/import.failed" && test -e "$STATE/import.done" &&
	"$PY" compare.py "$R/data/dev.sqlite" "$URL" &&
	in_root /usr/lib/appliance/import-check
'

test_expect_success 'killed after pgloader (a power cut): import.failed, the backend refused; the next run empties and imports' '
	fresh &&
	mkdir -p "$R/tmp/cut" &&
	printf "#!/bin/sh\n/usr/bin/pgloader \"\$@\"\nkill -9 \$PPID\n" >"$R/tmp/cut/pgloader" && chmod +x "$R/tmp/cut/pgloader" &&
	rc=0 && in_root env PATH=/tmp/cut:/usr/sbin:/usr/bin /usr/lib/appliance/import-sqlite /data/other.sqlite >out 2>err || rc=$?
	test "$rc" = 137 && test "$(count)" = 50 && test ! -e "$STATE/import.done" &&
	grep -qx "reason=the import of ./data/other.sqlite. into .atarys. began at .* and did not finish (a power cut, or the import was stopped): run import-sqlite ./data/other.sqlite. again" \
		"$STATE/import.failed" &&
	ls -A "$STATE" | grep -q "^\.import-" &&
	test_must_fail in_root /usr/lib/appliance/import-check 2>check.err && grep -q "did not finish" check.err &&
	imp /data/dev.sqlite || { cat out err; exit 1; }
	cat out && test ! -s err &&
	grep_one "^import-sqlite: emptying what an earlier attempt imported \\(chantiers: 50 rows\\)\$" out &&
	grep_one "^import-sqlite: ./data/dev.sqlite. imported into .atarys.: chantiers 300 rows, counts checked\$" out &&
	"$PY" compare.py "$R/data/dev.sqlite" "$URL" &&
	test ! -e "$STATE/import.failed" && ! ls -A "$STATE" | grep -q "^\.import-"
'

test_expect_success 'without secrets.env: one line; --database-url and --backend instead' '
	fresh && mv "$STATE/secrets.env" secrets.env &&
	refused "cannot read /data/atarys/secrets.env \\(No such file or directory\\): the first boot writes it; or give --database-url URL\$" \
		/data/dev.sqlite &&
	mkdir -p "$R/srv" && mv "$R/opt/atarys/backend" "$R/srv/backend" &&
	imp --database-url "$URL" --backend /srv/backend /data/dev.sqlite || { cat out err; exit 1; }
	mv "$R/srv/backend" "$R/opt/atarys/backend" && mv secrets.env "$STATE/secrets.env" &&
	grep -q "imported into .atarys.: chantiers 300 rows" out &&
	"$PY" compare.py "$R/data/dev.sqlite" "$URL"
'

test_done
