#!/bin/bash
# imgforge check: every bad input gives FILE:LINE:COL, a non-zero exit and
# no crash (run under the ASan+UBSan binary when make check provides one).
. "$SRCDIR/tests/e2e/lib.sh"

# Prefer the sanitizer build for hostile input.
IF=${IMGFORGE_SAN:-$IMGFORGE}
[ -x "$IF" ] || IF=$IMGFORGE
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

mini() { printf "image: t\nversion: '1'\nbase: {distro: debian, suite: bookworm}\n"; }

# expect_bad FILE 'REGEX for the whole error line'
expect_bad() {
	local rc=0
	"$IF" check "$1" >out 2>err || rc=$?
	if [ $rc -ne 1 ]; then echo "exit status $rc, expected 1" >&2; cat err >&2; return 1; fi
	grep -vE "^$1: [0-9]+ errors$" err >err.lines || true
	grep_one "$2" err.lines
	! grep -q AddressSanitizer err && ! grep -q "runtime error" err
}

# The appliance images take the built frontend (not in a fresh clone) as an
# input directory: an empty one stands in for it.
test_expect_success 'the repository images check clean' '
	mkdir -p dist &&
	for f in "$SRCDIR"/images/*.yaml; do
		set -- --mirror http://mirror.invalid/debian --set frontend_dist="$TEST_DIR/dist"
		"$IF" check "$@" "$f" || exit 1
		for p in $(sed -n "/^profiles:/,\$p" "$f" | sed -n "s/^  \([a-z0-9_-]*\):.*/\1/p"); do
			"$IF" check "$@" --profile "$p" "$f" || exit 1
		done
	done
'

test_expect_success 'an appliance image without its frontend names the missing directory' '
	test_must_fail "$IF" check --mirror http://mirror.invalid/debian \
		--set frontend_dist="$TEST_DIR/no-dist" "$SRCDIR/images/atarys-production.yaml" 2>err &&
	grep -q "no-dist" err
'

test_expect_success 'the mirror comes from IMGFORGE_MIRROR when not set' '
	mkdir -p dist && set -- --set frontend_dist="$TEST_DIR/dist" "$SRCDIR/images/atarys-production.yaml" &&
	IMGFORGE_MIRROR=http://mirror.invalid/debian "$IF" check "$@" &&
	test_must_fail "$IF" check "$@" 2>err &&
	grep_one "base-debian-bookworm.yaml:[0-9]+:[0-9]+: error: undefined variable .mirror." err
'

test_expect_success 'bad indentation' '
	printf "image: t\n version: 1\n" >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:2:9: error: mapping values are not allowed"
'

test_expect_success 'unclosed bracket' '
	printf "image: t\npackages: [a, b\n" >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:3:1: error: did not find expected"
'

test_expect_success 'unclosed quote' '
	printf "image: t\nversion: \"1.0\n" >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:3:1: error: .*end of stream"
'

test_expect_success 'tab indentation' '
	printf "image: t\nbase:\n\tdistro: debian\n" >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:3:1: error: tab character in indentation"
'

test_expect_success 'unknown key with a suggestion' '
	{ mini; echo "pakages: [nginx]"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:1: error: unknown key .pakages. \(did you mean .packages.\?\)$"
'

test_expect_success 'a list where a map is expected' '
	{ mini; echo "services: [nginx]"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:11: error: .services. must be a map, not a list$"
'

test_expect_success 'mode: 999' '
	{ mini; echo "files:"; echo "  - path: /etc/x"; echo "    mode: 999"; echo "    content: x"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:6:11: error: invalid mode .999."
'

test_expect_success 'size: lots' '
	{ mini; echo "disk:"; echo "  size: lots"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:5:9: error: invalid size .lots."
'

test_expect_success 'missing include file' '
	{ mini; echo "include: [nope.yaml]"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:11: error: cannot read include .nope.yaml.: No such file"
'

test_expect_success 'include cycle names the chain' '
	{ mini; echo "include: [b.yaml]"; } >a.yaml &&
	echo "include: [a.yaml]" >b.yaml &&
	expect_bad a.yaml "^b.yaml:1:11: error: include cycle: a.yaml -> b.yaml -> a.yaml$"
'

test_expect_success 'undefined variable' '
	{ mini; echo "variables: {x: \"\${y}\"}"; echo "files: [{path: /f, content: \"\${x}\"}]"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:5:[0-9]+: error: undefined variable .y."
'

test_expect_success 'a profile that does not exist' '
	{ mini; echo "profiles: {staging: {}, production: {}}"; } >p.yaml &&
	rc=0; "$IF" check --profile prod p.yaml 2>err || rc=$?
	test $rc -eq 1 &&
	grep_one "^p.yaml:4:1: error: no profile .prod. in p.yaml \(profiles: staging, production\)$" err
'

test_expect_success 'duplicate keys' '
	{ mini; echo "packages: [a1]"; echo "packages: [b1]"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:5:1: error: duplicate key .packages. \(first defined at line 4\)$"
'

test_expect_success 'empty file' '
	: >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:1:1: error: empty recipe"
'

test_expect_success 'binary file' '
	head -c 4096 "$IF" >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:1:[0-9]+: error: binary data"
'

test_expect_success '10 MB file' '
	head -c 10485760 /dev/zero | tr "\0" "#" >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:1:1: error: file is larger than the 1024 KiB recipe limit$"
'

test_expect_success '10,000 levels of nesting are refused, not recursed' '
	{ printf "image: "; head -c 10000 /dev/zero | tr "\0" "["; head -c 10000 /dev/zero | tr "\0" "]"; echo; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:1:[0-9]+: error: nesting deeper than 64 levels" &&
	python3 -c "print(\"image: \" + \"{a: \" * 10000 + \"x\" + \"}\" * 10000)" >deep2.yaml &&
	python3 -c "print(\"\n\".join(\" \" * i + \"- \" for i in range(0, 20000, 2)))" >deep3.yaml &&
	expect_bad deep3.yaml "^deep3.yaml:[0-9]+:[0-9]+: error: nesting deeper than 64 levels" &&
	expect_bad deep2.yaml "^deep2.yaml:[0-9]+:[0-9]+: error: nesting deeper than 64 levels"
'

test_expect_success 'every error in a file is reported' '
	{ mini; echo "pakages: [a1]"; echo "disk: {size: lots}"; echo "services: [x]"; } >bad.yaml &&
	test_must_fail "$IF" check bad.yaml 2>err &&
	test "$(grep -c "^bad.yaml:[0-9]*:[0-9]*: error: " err)" -eq 3 &&
	grep -q "^bad.yaml: 3 errors$" err
'

test_expect_success 'a missing image file' '
	rc=0; "$IF" check nope.yaml 2>err || rc=$?
	test $rc -eq 1 && grep_one "^imgforge: error: cannot read .nope.yaml.: No such file" err
'

test_done
