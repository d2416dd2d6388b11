#!/bin/bash
# imgforge test runner: unit tests (TAP programs), fuzz corpus replay, and
# end-to-end shell tests (TAP via tests/e2e/lib.sh). Prints one summary line
# "check: N passed, N failed, N skipped" and exits non-zero on any failure,
# or when no test ran at all.
set -u
cd "$(dirname "$0")/.."
SRCDIR=$PWD

build=build/default san_build= imgforge= fast=0 unit_only=0 only=
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift ;;
	--san-build) san_build=$2; shift ;;
	--imgforge) imgforge=$2; shift ;;
	--fast) fast=1 ;;
	--unit-only) unit_only=1 ;;
	--only) only=$2; shift ;;
	*) echo "run.sh: unknown option '$1'" >&2; exit 2 ;;
	esac
	shift
done
[ -n "$imgforge" ] || imgforge=$build/imgforge
imgforge=$(cd "$(dirname "$imgforge")" && pwd)/$(basename "$imgforge")

passed=0 failed=0 skipped=0 replayed=0
# What tally counts a passing line as: a test, or (for a fuzz target's
# corpus) one input replayed, which is not a test of its own.
kind=test
failures=()
logdir=$SRCDIR/build/test-logs
mkdir -p "$logdir"

# Count the TAP lines of one test program's output; remember failures.
tally() { # label logfile rc
	local label=$1 log=$2 rc=$3 p f s
	[ -f "$log" ] || { echo "not ok - $label left no log" >"$log"; rc=1; }
	p=$(grep -cE '^ok [0-9]+' "$log" 2>/dev/null); p=${p:-0}
	s=$(grep -cE '^ok [0-9]+.*# (SKIP|skip)' "$log" 2>/dev/null); s=${s:-0}
	f=$(grep -cE '^not ok [0-9]+' "$log" 2>/dev/null); f=${f:-0}
	p=$((p - s))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# The program died or exited non-zero without a failing test line.
		f=1
		echo "not ok - $label exited with status $rc" >>"$log"
	fi
	if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ "$s" -eq 0 ]; then
		f=1
		echo "not ok - $label ran no test" >>"$log"
	fi
	if [ "$kind" = replay ]; then
		replayed=$((replayed + p))
		# The target as a whole counts as one test, when every input passed.
		[ "$f" -eq 0 ] && passed=$((passed + 1))
	else
		passed=$((passed + p))
	fi
	failed=$((failed + f)); skipped=$((skipped + s))
	if [ "$f" -gt 0 ]; then
		failures+=("$label")
		printf '%-48s FAIL (%d passed, %d failed)\n' "$label" "$p" "$f"
		grep -E '^(not ok|#)' "$log" | head -40 | sed 's/^/    /'
	else
		if [ "$kind" = replay ]; then
			printf '%-48s ok (%d inputs replayed)\n' "$label" "$p"
		else
			printf '%-48s ok (%d passed%s)\n' "$label" "$p" "$([ "$s" -gt 0 ] && echo ", $s skipped")"
		fi
	fi
}

run_unit_dir() { # dir label-suffix
	local dir=$1 suffix=$2 t name log rc
	for t in "$dir"/tests/test-*; do
		[ -x "$t" ] || continue
		case "$t" in *.o|*.d) continue ;; esac
		name=$(basename "$t")
		[ -z "$only" ] || [[ "$name" == *$only* ]] || continue
		log=$logdir/$name$suffix.log
		(cd "$SRCDIR" && timeout 600 "$t") >"$log" 2>&1
		rc=$?
		tally "unit/$name$suffix" "$log" "$rc"
	done
}

run_fuzz_dir() { # dir label-suffix
	local dir=$1 suffix=$2 t name log rc corpus
	for t in "$dir"/tests/fuzz-*; do
		[ -x "$t" ] || continue
		case "$t" in *.o|*.d) continue ;; esac
		name=$(basename "$t")
		[ -z "$only" ] || [[ "$name" == *$only* ]] || continue
		corpus=tests/fuzz/corpus/${name#fuzz-}
		log=$logdir/$name$suffix.log
		(cd "$SRCDIR" && timeout 600 "$t" "$corpus") >"$log" 2>&1
		rc=$?
		kind=replay
		tally "fuzz/$name$suffix" "$log" "$rc"
		kind=test
	done
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

start=$(date +%s)
run_unit_dir "$build" ""
run_fuzz_dir "$build" ""
if [ -n "$san_build" ]; then
	run_unit_dir "$san_build" " [asan+ubsan]"
	run_fuzz_dir "$san_build" " [asan+ubsan]"
fi

# run_e2e SCRIPT: run one end-to-end script into its log; its status in $log.rc.
run_e2e() {
	local t=$1 name log limit
	name=$(basename "$t" .sh)
	log=$logdir/$name.log
	# A script may ask for more than the default 40 minutes ("# imgforge-test: timeout S").
	limit=$(sed -n 's/^# imgforge-test: timeout \([0-9][0-9]*\)$/\1/p' "$t")
	IMGFORGE=$imgforge IMGFORGE_SAN=${san_build:+$SRCDIR/$san_build/imgforge} \
		SRCDIR=$SRCDIR timeout "${IMGFORGE_TEST_TIMEOUT:-${limit:-2400}}" bash "$t" >"$log" 2>&1
	echo $? >"$log.rc"
}

if [ "$unit_only" -eq 0 ]; then
	e2e=() background=()
	for t in tests/e2e/t[0-9][0-9][0-9][0-9]-*.sh; do
		[ -f "$t" ] || continue
		name=$(basename "$t" .sh)
		[ -z "$only" ] || [[ "$name" == *$only* ]] || continue
		if [ "$fast" -eq 1 ] && grep -q '^# imgforge-test: slow' "$t"; then
			continue
		fi
		# A long script that spends its time waiting on a guest says
		# "# imgforge-test: background": it runs beside the others, which
		# then take no extra wall time (IMGFORGE_TEST_SERIAL=1: one at a time).
		if [ "${IMGFORGE_TEST_SERIAL:-0}" != 1 ] && grep -q '^# imgforge-test: background' "$t"; then
			background+=("$t")
		else
			e2e+=("$t")
		fi
	done
	declare -A bg_pid bg_t0
	for t in "${background[@]}"; do
		bg_t0[$t]=$(date +%s)
		run_e2e "$t" &
		bg_pid[$t]=$!
		printf '%-48s started in the background\n' "e2e/$(basename "$t" .sh)"
	done
	for t in "${e2e[@]}" "${background[@]}"; do
		name=$(basename "$t" .sh)
		log=$logdir/$name.log
		if [ -n "${bg_pid[$t]:-}" ]; then
			wait "${bg_pid[$t]}"
			t0=${bg_t0[$t]}
		else
			t0=$(date +%s)
			run_e2e "$t"
		fi
		rc=$(cat "$log.rc" 2>/dev/null || echo 1)
		rm -f "$log.rc"
		tally "e2e/$name ($(( $(date +%s) - t0 ))s)" "$log" "$rc"
	done
fi

echo
echo "logs in build/test-logs/; took $(( $(date +%s) - start ))s"
if [ "${#failures[@]}" -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
[ "$replayed" -eq 0 ] || echo "fuzz corpus: $replayed inputs replayed (each target counts as one test above)"
echo "check: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
