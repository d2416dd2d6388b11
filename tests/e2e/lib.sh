# imgforge end-to-end test library (sourced by tests/e2e/tNNNN-*.sh).
#
#	. "$SRCDIR/tests/e2e/lib.sh"
#	test_expect_success 'what it checks' '
#		imgforge check x.yaml &&
#		grep foo out
#	'
#	test_done
#
# Each test body runs under `set -e` in a subshell, inside the script's own
# fresh scratch directory ($TEST_DIR). Output is TAP.
set -u
: "${SRCDIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${IMGFORGE:=$SRCDIR/imgforge}"
export SRCDIR IMGFORGE
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1700000000}
# A developer's shared registry and store must not receive the tests' builds.
unset IMGFORGE_REGISTRY IMGFORGE_STORE
export LC_ALL=C.UTF-8
export XDG_CACHE_HOME

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/imgforge-e2e.XXXXXX")
XDG_CACHE_HOME=$TEST_DIR/.cache
trap 'cd /; rm -rf "$TEST_DIR"' EXIT
cd "$TEST_DIR" || exit 1

test_count=0 test_failures=0

imgforge() { "$IMGFORGE" "$@"; }
export -f imgforge 2>/dev/null || true

test_expect_success() { # description body
	local desc=$1 body=$2 out rc
	test_count=$((test_count + 1))
	out=$TEST_DIR/.test-$test_count.out
	( set -e; eval "$body" ) >"$out" 2>&1 </dev/null
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "ok $test_count - $desc"
	else
		test_failures=$((test_failures + 1))
		echo "not ok $test_count - $desc"
		sed 's/^/#   /' "$out" | tail -40
	fi
}

test_skip() { # description reason
	test_count=$((test_count + 1))
	echo "ok $test_count - $1 # SKIP $2"
}

# Fail unless the command exits non-zero (but not by a signal or sanitizer).
test_must_fail() {
	local rc=0
	"$@" || rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "test_must_fail: '$*' succeeded" >&2
		return 1
	elif [ "$rc" -gt 128 ] || [ "$rc" -eq 70 ]; then
		echo "test_must_fail: '$*' died (status $rc)" >&2
		return 1
	fi
	return 0
}

# The command's stderr has exactly one line matching the regex.
grep_one() { # regex file
	local n
	n=$(grep -cE -- "$1" "$2" || true)
	if [ "$n" -ne 1 ]; then
		echo "grep_one: expected one line matching '$1' in $2, found $n:" >&2
		cat "$2" >&2
		return 1
	fi
}

# The appliance's scripts in a chroot on a PostgreSQL of the test's own
# (t6060, t6070): skip the whole test, saying why, unless it runs as root
# with mount namespaces and the postgres user; then PGBIN, the newest
# /usr/lib/postgresql/*/bin with initdb and pg_ctl (1 and one line if none).
skip_unless_root_pg() { # what the test checks
	if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null || ! id postgres >/dev/null 2>&1; then
		test_skip "$1" 'needs root (mount namespaces, overlayfs) and the postgres user'
		test_done
		exit
	fi
}
pg_server_bin() {
	local d
	PGBIN=
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { PGBIN=$d; return 0; }
	done
	echo "no PostgreSQL server programs (initdb, pg_ctl): install the Debian package postgresql (make deps does)" >&2
	return 1
}

# Require a host tool; a missing one fails the test with what to install.
require_tool() { # tool package
	command -v "$1" >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin command -v "$1" >/dev/null 2>&1 || {
		echo "missing tool '$1': install the Debian package '$2' (make deps does)" >&2
		return 1
	}
}
export PATH=$PATH:/sbin:/usr/sbin

# refuse REGEX ARGS...: `imgforge mkfs ARGS -o out.ext4` (the sanitizer build
# when there is one) fails cleanly: exactly one line of error matching REGEX,
# no output file, no temporary file left.
refuse() {
	local re=$1
	shift
	rm -f out.ext4 err
	test_must_fail "${IMGFORGE_SAN:-$IMGFORGE}" mkfs "$@" -o out.ext4 2>err || return 1
	grep_one "^error: $re" err || return 1
	test "$(wc -l <err)" = 1 || { echo "more than one line:"; cat err; return 1; }
	test ! -e out.ext4 || { echo "out.ext4 left behind"; return 1; }
	! ls out.ext4.tmp-* 2>/dev/null
}

# The test's own HTTP server (tests/helpers/httpd.py, fault injection through
# the query string) serving ./www: httpd_start sets PORT and URL; its pid is in
# $TEST_DIR/httpd.pid (test bodies are subshells). A test that starts one
# stops it in its EXIT trap with httpd_stop. It also sets PY, the python3
# interpreter itself, not a wrapper script: $! must be the server's pid.
httpd_start() {
	PY=${PY:-$(python3 -c "import sys; print(sys.executable)")}
	rm -f port
	"$PY" "$SRCDIR/tests/helpers/httpd.py" --root www --port-file port --log httpd.log >httpd.out 2>&1 &
	echo $! >"$TEST_DIR/httpd.pid"
	for i in $(seq 100); do [ -s port ] && break; sleep 0.1; done
	PORT=$(cat port) && URL=http://127.0.0.1:$PORT
}
httpd_stop() { kill "$(cat "$TEST_DIR/httpd.pid")" 2>/dev/null; wait "$(cat "$TEST_DIR/httpd.pid")" 2>/dev/null; true; }

# agent_setup: imgforge-update on a disk made of files (t3410, t3420). Sets
# AGENT: IMGFORGE_UPDATE, else the ASan+UBSan build's when make check has one
# (IMGFORGE_SAN), else the one next to $IMGFORGE, which is also the one
# images get; starts the HTTP server on ./www (stopped on exit, with the test
# directory removed unless KEEP); sets ENV (the ESP's GRUB directory) and
# exports the agent's paths into $TEST_DIR. agent ARGS runs it; env_get NAME
# reads a GRUB variable through GRUB's own tool.
agent_setup() {
	require_tool grub-editenv grub-common || return 1
	AGENT=${IMGFORGE_UPDATE:-}
	if [ -z "$AGENT" ] && [ -n "${IMGFORGE_SAN:-}" ] &&
		[ -x "$(dirname "$IMGFORGE_SAN")/imgforge-update" ]; then
		AGENT=$(dirname "$IMGFORGE_SAN")/imgforge-update
	fi
	AGENT=${AGENT:-$(dirname "$IMGFORGE")/imgforge-update}
	[ -x "$AGENT" ] || { echo "no $AGENT: build it with make" >&2; return 1; }
	trap 'httpd_stop; cd /; [ -n "${KEEP:-}" ] || rm -rf "$TEST_DIR"' EXIT
	mkdir -p www && httpd_start || return 1
	ENV=esp/EFI/BOOT
	export IMGFORGE_ESP_MNT=$TEST_DIR/esp IMGFORGE_UPDATE_CMDLINE=$TEST_DIR/cmdline \
		IMGFORGE_UPDATE_ROOT_A=$TEST_DIR/root-a.img IMGFORGE_UPDATE_ROOT_B=$TEST_DIR/root-b.img \
		IMGFORGE_UPDATE_RELEASE=$TEST_DIR/release IMGFORGE_UPDATE_CONF=$TEST_DIR/update.conf \
		IMGFORGE_UPDATE_STATE=$TEST_DIR/data/imgforge/update \
		IMGFORGE_UPDATE_HOOKS=$TEST_DIR/update.d
}
agent() { "$AGENT" "$@"; }
env_get() { grub-editenv "$ENV/grubenv" list | sed -n "s/^$1=//p"; }

test_done() {
	echo "1..$test_count"
	[ "$test_failures" -eq 0 ]
}
