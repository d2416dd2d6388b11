#!/bin/bash
# The command line: global options, the command table, per-command help.
. "$SRCDIR/tests/e2e/lib.sh"

test_expect_success '--version prints the version' '
	imgforge --version >out &&
	grep -E "^imgforge [0-9]+\.[0-9]+\.[0-9]+$" out
'

test_expect_success '--help lists the commands' '
	imgforge --help >out &&
	grep -E "^   check " out && grep -E "^   plan " out && grep -E "^   mkfs " out
'

test_expect_success 'no command is a usage error' '
	rc=0; imgforge 2>err || rc=$?; test $rc -eq 2 && grep usage: err
'

test_expect_success 'an unknown command suggests a close one' '
	rc=0; imgforge chek 2>err || rc=$?
	test $rc -eq 2 &&
	grep_one "^error: .chek. is not an imgforge command" err &&
	grep -E "^	check$" err
'

test_expect_success 'an unknown global option is a usage error' '
	rc=0; imgforge --frobnicate check 2>err || rc=$?
	test $rc -eq 2 && grep_one "unknown option .--frobnicate." err
'

for cmd in check plan mkfs; do
	test_expect_success "$cmd --help prints its own usage" "
		imgforge $cmd --help >out &&
		grep -E '^usage: imgforge $cmd ' out &&
		imgforge help $cmd >out2 && cmp out out2
	"
done

test_expect_success 'check: an unknown option is a usage error' '
	rc=0; imgforge check --bogus x.yaml 2>err || rc=$?
	test $rc -eq 2 && grep_one "unknown option .--bogus." err
'

test_done
