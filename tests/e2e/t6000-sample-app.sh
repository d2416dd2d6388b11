#!/bin/bash
# The ATARYS sample application (examples/atarys) that the appliance image
# embeds: the Flask backend under Debian's gunicorn against a real PostgreSQL
# server, checked with curl; its unit tests; and the Vite frontend build.
# Everything listens on 127.0.0.1 only and is stopped on exit.
. "$SRCDIR/tests/e2e/lib.sh"

APP=$SRCDIR/examples/atarys
PGBIN=/usr/lib/postgresql/15/bin
GUNICORN=/usr/bin/gunicorn
PY=/usr/bin/python3

require_tool curl curl || exit 1
require_tool psql postgresql || exit 1
[ -x "$PGBIN/initdb" ] ||
	{ echo "missing $PGBIN/initdb: install the Debian package 'postgresql'" >&2; exit 1; }
[ -x "$GUNICORN" ] || { echo "missing $GUNICORN: install the Debian package 'gunicorn'" >&2; exit 1; }
"$PY" -c 'import flask, psycopg2' ||
	{ echo "missing Python modules: install the Debian packages 'python3-flask python3-psycopg2'" >&2
	  exit 1; }

# The app runs from the source tree: keep __pycache__ out of it.
export PYTHONDONTWRITEBYTECODE=1

# free_ports N: N distinct ports nothing listens on now, on loopback (all
# bound at once, so that they differ).
free_ports() {
	"$PY" -c 'import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# PostgreSQL runs as 'postgres' when we are root (it refuses to run as root).
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

read -r PGPORT PORT SPARE_PORT <<<"$(free_ports 3)"
PGDATA=$TEST_DIR/pg/data
PGSOCK=$TEST_DIR/pg/run
PGPASS=pw$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
export DATABASE_URL=postgresql://atarys:$PGPASS@127.0.0.1:$PGPORT/atarys
export SECRET_KEY=test-secret-key ATARYS_ENV=staging LOG_LEVEL=INFO
export CORS_ORIGINS=http://allowed.test,https://other.test
export ATARYS_METRICS_DIR=$TEST_DIR/metrics.d
BASE=http://127.0.0.1:$PORT

cleanup() {
	local pid
	if [ -f "$TEST_DIR/gunicorn.pid" ]; then
		pid=$(cat "$TEST_DIR/gunicorn.pid")
		kill "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	fi
	[ -f "$PGDATA/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m immediate -t 10 stop >/dev/null 2>&1
	cd / && rm -rf "$TEST_DIR"
}
trap cleanup EXIT

# wait_http URL: up to 20 s for any HTTP answer.
wait_http() {
	for _ in $(seq 100); do
		curl -s -o /dev/null --max-time 2 "$1" && return 0
		sleep 0.2
	done
	echo "no answer from $1 within 20 s" >&2
	return 1
}

# req METHOD PATH [curl args...]: body to ./body, status to ./code.
req() {
	local m=$1 p=$2; shift 2
	curl -sS --max-time 10 -X "$m" -o body -w '%{http_code}' "$@" "$BASE$p" >code
	echo "$m $p -> $(cat code): $(head -c 400 body)"
}
post_json() { req POST /api/chantiers -H 'Content-Type: application/json' --data-binary "$1"; }
# jq-free JSON field read: json FIELD [FILE]
json() { "$PY" -c 'import json, sys; v = json.load(open(sys.argv[2]))
for k in sys.argv[1].split("."): v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1" "${2:-body}"; }

test_expect_success 'backend unit tests' '
	cd "$APP/backend" && "$PY" -m unittest discover -s tests -t . -v
'

test_expect_success 'PostgreSQL starts on loopback with a role and database' '
	mkdir -p "$PGDATA" "$PGSOCK" &&
	chmod 711 "$TEST_DIR" &&
	if [ "$(id -u)" = 0 ]; then chown -R postgres: "$TEST_DIR/pg"; fi &&
	{ as_pg test -w "$PGDATA" ||
		{ echo "user postgres cannot reach $PGDATA: point TMPDIR at a directory it can traverse" >&2
		  false; }; } &&
	as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
		--no-sync -E UTF8 >"$TEST_DIR/initdb.log" &&
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$TEST_DIR/pg/server.log" -w -t 30 \
		-o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGSOCK -c fsync=off" start &&
	psql -h "$PGSOCK" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qc \
		"CREATE ROLE atarys LOGIN PASSWORD '\''$PGPASS'\''" &&
	psql -h "$PGSOCK" -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 -qc \
		"CREATE DATABASE atarys OWNER atarys"
'

test_expect_success 'gunicorn serves wsgi:app, health is ok with the database' '
	"$GUNICORN" --chdir "$APP/backend" --bind "127.0.0.1:$PORT" --workers 2 \
		--pid "$TEST_DIR/gunicorn.pid" wsgi:app >"$TEST_DIR/gunicorn.log" 2>&1 &
	wait_http "$BASE/api/health" &&
	req GET /api/health &&
	test "$(cat code)" = 200 &&
	test "$(json status)" = ok && test "$(json database)" = ok && test "$(json env)" = staging
'

test_expect_success 'the schema was created by the app at startup' '
	psql -h "$PGSOCK" -p "$PGPORT" -U atarys -d atarys -Atc "\\d chantiers" >schema &&
	grep -E "^created_at\|timestamp with time zone" schema &&
	psql -h "$PGSOCK" -p "$PGPORT" -U postgres -d atarys -Atc \
		"SELECT tableowner FROM pg_tables WHERE tablename = '\''chantiers'\''" >owner &&
	test "$(cat owner)" = atarys &&
	! grep -E "^(WARNING|ERROR|CRITICAL) atarys" "$TEST_DIR/gunicorn.log"
'

test_expect_success 'POST creates chantiers, GET reads them back newest first' '
	post_json "{\"name\": \"Rénovation mairie\", \"client\": \"Commune\", \"status\": \"active\"}" &&
	test "$(cat code)" = 201 &&
	id1=$(json id) &&
	test "$(json name)" = "Rénovation mairie" && test "$(json client)" = Commune &&
	test "$(json status)" = active &&
	json created_at | grep -E "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+\+00:00$" &&
	post_json "{\"name\": \"  Pont  \"}" &&
	test "$(cat code)" = 201 && id2=$(json id) &&
	test "$(json name)" = Pont && test "$(json status)" = planned && test "$(json client)" = None &&
	req GET /api/chantiers && test "$(cat code)" = 200 &&
	test "$(json 0.id)" = "$id2" && test "$(json 1.id)" = "$id1" &&
	test "$("$PY" -c "import json; print(len(json.load(open(\"body\"))))")" = 2 &&
	req GET "/api/chantiers/$id1" && test "$(cat code)" = 200 &&
	test "$(json name)" = "Rénovation mairie" && test "$(json id)" = "$id1" &&
	req GET "/api/chantiers?limit=1" && test "$(cat code)" = 200 && test "$(json 0.id)" = "$id2"
'

test_expect_success 'bad input is a 400 with a JSON error naming the problem' '
	post_json "{}" && test "$(cat code)" = 400 && json error | grep "name.* is required" &&
	post_json "{\"name\": \"\"}" && test "$(cat code)" = 400 && test "$(json field)" = name &&
	long=$(printf "x%.0s" $(seq 201)) &&
	post_json "{\"name\": \"$long\"}" && test "$(cat code)" = 400 && json error | grep "1 to 200" &&
	post_json "{\"name\": \"a\", \"status\": \"paused\"}" && test "$(cat code)" = 400 &&
	test "$(json field)" = status &&
	post_json "{\"name\": 7}" && test "$(cat code)" = 400 &&
	post_json "{\"name\": \"a\", \"colour\": 1}" && test "$(cat code)" = 400 &&
	json error | grep "unknown field .colour." &&
	post_json "[1]" && test "$(cat code)" = 400 &&
	post_json "{not json" && test "$(cat code)" = 400 && json error | grep "not valid JSON" &&
	req POST /api/chantiers --data-binary "name=a" && test "$(cat code)" = 400 &&
	req GET "/api/chantiers?limit=0" && test "$(cat code)" = 400 &&
	req GET /api/chantiers && test "$("$PY" -c "import json; print(len(json.load(open(\"body\"))))")" = 2
'

test_expect_success 'unknown ids and routes are JSON 404s' '
	req GET /api/chantiers/999999 && test "$(cat code)" = 404 && json error | grep "999999 not found" &&
	req GET /api/chantiers/99999999999999999999999 && test "$(cat code)" = 404 &&
	req GET /api/chantiers/abc && test "$(cat code)" = 404 && json error &&
	req DELETE /api/chantiers && test "$(cat code)" = 405
'

test_expect_success 'CORS answers the configured origins only' '
	curl -sS -D hdr -o /dev/null -H "Origin: http://allowed.test" "$BASE/api/chantiers" &&
	grep -i "^access-control-allow-origin: http://allowed.test" hdr &&
	curl -sS -D hdr -o /dev/null -X OPTIONS -H "Origin: https://other.test" \
		-H "Access-Control-Request-Method: POST" "$BASE/api/chantiers" &&
	grep -i "^access-control-allow-methods:.*POST" hdr &&
	curl -sS -D hdr -o /dev/null -H "Origin: http://evil.test" "$BASE/api/chantiers" &&
	! grep -i "^access-control-allow-origin" hdr
'

test_expect_success 'X-Forwarded-For from the proxy is the logged client' '
	curl -sS -o /dev/null -H "X-Forwarded-For: 198.51.100.23" -H "X-Forwarded-Proto: https" \
		"$BASE/api/chantiers/1" &&
	grep -E "^INFO atarys: GET /api/chantiers/1 [0-9]+ .*client=198.51.100.23$" "$TEST_DIR/gunicorn.log"
'

test_expect_success 'metrics count by route template across both workers' '
	for i in $(seq 30); do curl -sf -o /dev/null "$BASE/api/chantiers/1"; done &&
	curl -sS -D hdr -o metrics "$BASE/metrics" &&
	grep -i "^content-type: text/plain; version=0.0.4" hdr &&
	grep_one "^atarys_http_requests_total\{method=\"GET\",path=\"/api/chantiers/<id>\",status=\"200\"\} 32$" metrics &&
	grep_one "^atarys_http_requests_total\{method=\"POST\",path=\"/api/chantiers\",status=\"201\"\} 2$" metrics &&
	grep_one "^atarys_http_requests_total\{method=\"GET\",path=\"/api/chantiers/<id>\",status=\"404\"\} 2$" metrics &&
	grep_one "^atarys_http_requests_total\{method=\"GET\",path=\"unmatched\",status=\"404\"\} 1$" metrics &&
	grep_one "^atarys_http_request_duration_seconds_count\{method=\"GET\",path=\"/api/chantiers/<id>\"\} 34$" metrics &&
	grep_one "^atarys_http_request_duration_seconds_bucket\{method=\"GET\",path=\"/api/chantiers/<id>\",le=\"\+Inf\"\} 34$" metrics &&
	grep_one "^# TYPE atarys_http_request_duration_seconds histogram$" metrics &&
	grep_one "^atarys_database_up 1$" metrics &&
	grep_one "^atarys_chantiers_total 2$" metrics &&
	"$PY" -c "import glob, json, sys
print(sum(1 for f in glob.glob(sys.argv[1] + \"/atarys-*.json\") if json.load(open(f))[\"requests\"]))" \
		"$ATARYS_METRICS_DIR" >served && test "$(cat served)" = 2 &&
	curl -sS -o metrics2 "$BASE/metrics" &&
	grep_one "^atarys_http_requests_total\{method=\"GET\",path=\"/metrics\",status=\"200\"\} 1$" metrics2
'

test_expect_success 'with PostgreSQL stopped: health 503, database_up 0, no secret shown' '
	as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop &&
	req GET /api/health && test "$(cat code)" = 503 &&
	test "$(json database)" = unreachable && test "$(json error)" = OperationalError &&
	! grep -F "$PGPASS" body &&
	req GET /api/chantiers && test "$(cat code)" = 503 &&
	curl -sS -o metrics "$BASE/metrics" &&
	grep_one "^atarys_database_up 0$" metrics &&
	! grep "^atarys_chantiers_total" metrics &&
	! grep -F "$PGPASS" "$TEST_DIR/gunicorn.log" &&
	grep_one "^WARNING atarys: health: database unreachable: OperationalError$" "$TEST_DIR/gunicorn.log" &&
	! grep -E "atarys: GET /(metrics|api/health) " "$TEST_DIR/gunicorn.log"
'

test_expect_success 'gunicorn exits on SIGTERM' '
	pid=$(cat "$TEST_DIR/gunicorn.pid") && kill "$pid" &&
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done &&
	! kill -0 "$pid" 2>/dev/null &&
	grep "Shutting down" "$TEST_DIR/gunicorn.log"
'

test_expect_success 'without SECRET_KEY gunicorn fails to start and says why' '
	rc=0 &&
	env -u SECRET_KEY timeout 30 "$GUNICORN" --chdir "$APP/backend" \
		--bind "127.0.0.1:$SPARE_PORT" wsgi:app >out 2>&1 || rc=$? &&
	cat out && test "$rc" = 3 &&
	grep_one "^CRITICAL atarys: cannot start: SECRET_KEY is not set" out &&
	grep_one "Reason: Worker failed to boot" out &&
	! grep Traceback out
'

test_expect_success 'an invalid ATARYS_ENV also stops it, also with --preload' '
	rc=0 &&
	ATARYS_ENV=prod timeout 30 "$GUNICORN" --preload --chdir "$APP/backend" \
		--bind "127.0.0.1:$SPARE_PORT" wsgi:app >out 2>&1 || rc=$? &&
	test "$rc" = 3 &&
	grep_one "cannot start: ATARYS_ENV .prod. is not one of dev, staging, production" out
'

test_expect_success 'an unusable ATARYS_METRICS_DIR stops it' '
	rc=0 && : >afile &&
	ATARYS_METRICS_DIR=$PWD/afile/m timeout 30 "$GUNICORN" --chdir "$APP/backend" \
		--bind "127.0.0.1:$SPARE_PORT" wsgi:app >out 2>&1 || rc=$? &&
	test "$rc" = 3 &&
	grep_one "cannot start: ATARYS_METRICS_DIR .*/afile/m. is not a writable directory: Not a directory" out
'

test_expect_success 'the frontend builds with npm ci and vite' '
	command -v npm >/dev/null ||
		{ echo "missing npm: install the Debian packages nodejs and npm" >&2; exit 1; }
	mkdir fe && cp -r "$APP/frontend/package.json" "$APP/frontend/package-lock.json" \
		"$APP/frontend/.npmrc" "$APP/frontend/index.html" "$APP/frontend/vite.config.js" \
		"$APP/frontend/src" fe/ &&
	cd fe && npm ci --no-audit --no-fund && npm run build &&
	test -s dist/index.html &&
	ls dist/assets/index-*.js dist/assets/index-*.css &&
	js=$(cd dist && ls assets/index-*.js) &&
	grep -F "src=\"/$js\"" dist/index.html &&
	grep -F "/api/chantiers" "dist/$js" &&
	! grep -F "/src/main.js" dist/index.html
'

test_done
