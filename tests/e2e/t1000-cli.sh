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

mini() { printf "image: t\nversion: '1'\nbase: {distro: debian, suite: bookworm}\n"; }

# Run a command; print its exit status and stderr, for comparing two spellings.
status_and_err() {
	local rc=0
	"$IMGFORGE" "$@" >/dev/null 2>err.tmp || rc=$?
	echo "exit $rc"
	sed "s/=/ /g" err.tmp
}

# Each command takes its value options as --opt=value and --opt value, and
# both spellings behave the same. The runs below stop at a known point after
# parsing (an error that names the value, or success), never at "unknown option".
test_expect_success 'every command takes --opt=value and --opt value' '
	mini >x.yaml &&
	mkdir -p tree && echo hi >tree/f &&
	for spec in \
		"check --set=v=1 x.yaml|check --set v=1 x.yaml|0" \
		"plan --set=v=1 x.yaml|plan --set v=1 x.yaml|0" \
		"build --registry=nodir/r.db nosuch.yaml|build --registry nodir/r.db nosuch.yaml|1" \
		"mkfs --from=tree -o a.ext4 --label=L|mkfs --from tree -o a.ext4 --label L|0" \
		"cache ls --cache=cdir|cache ls --cache cdir|0" \
		"ls --registry=nosuch.db|ls --registry nosuch.db|1" \
		"show --registry=nosuch.db 1|show --registry nosuch.db 1|1" \
		"diff --registry=nosuch.db 1 2|diff --registry nosuch.db 1 2|1" \
		"boot nosuch.img --timeout=5 --expect=x|boot nosuch.img --timeout 5 --expect x|1"
	do
		IFS="|" read -r eq sep want <<-EOF
		$spec
		EOF
		# shellcheck disable=SC2086
		status_and_err $eq >a.out && status_and_err $sep >b.out &&
		{ diff -u a.out b.out || { echo "differs: $eq / $sep"; exit 1; }; } &&
		{ grep -qx "exit $want" a.out || { echo "$eq:"; cat a.out; exit 1; }; } &&
		! grep -q "unknown option" a.out || exit 1
	done
'

test_expect_success 'short options: -o value, -ovalue; -- ends the options' '
	mkdir -p tree && echo hi >tree/f &&
	imgforge -q mkfs --from tree -o s1.ext4 &&
	imgforge -q mkfs --from tree -os2.ext4 &&
	test -s s1.ext4 && test -s s2.ext4 &&
	mini >-x.yaml &&
	imgforge -q check -- -x.yaml
'

test_expect_success 'a global option after the command says where it goes' '
	for o in -v --verbose -q --quiet; do
		rc=0; imgforge build $o x.yaml 2>err || rc=$?
		test $rc -eq 2 &&
		grep_one "^error: .$o. is a global option, put it before the command: imgforge $o build" err ||
		exit 1
	done
'

test_expect_success 'an unknown option names the command and suggests a close one' '
	rc=0; imgforge build --ouptut x x.yaml 2>err || rc=$?
	test $rc -eq 2 &&
	grep_one "^error: unknown option .--ouptut. for .imgforge build. \(did you mean .--output.\?\); see .imgforge build --help.$" err &&
	rc=0; imgforge mkfs --frobnicate 2>err || rc=$?
	test $rc -eq 2 &&
	grep_one "^error: unknown option .--frobnicate. for .imgforge mkfs.; see .imgforge mkfs --help.$" err
'

test_expect_success 'a missing value and a value given to a flag are usage errors' '
	rc=0; imgforge mkfs --from 2>err || rc=$?
	test $rc -eq 2 && grep_one "option .--from. needs a value" err &&
	rc=0; imgforge plan --json=yes x.yaml 2>err || rc=$?
	test $rc -eq 2 && grep_one "option .--json. takes no value" err
'

test_expect_success 'global options: the same parser, did-you-mean, -q and -v bundled' '
	rc=0; imgforge --verbos check x.yaml 2>err || rc=$?
	test $rc -eq 2 &&
	grep_one "^error: unknown option .--verbos. for .imgforge. \(did you mean .--verbose.\?\); see .imgforge --help.$" err &&
	rc=0; imgforge --version=1 2>err || rc=$?
	test $rc -eq 2 && grep_one "^error: option .--version. takes no value$" err &&
	mini >x.yaml &&
	imgforge -qv check x.yaml 2>err &&
	grep -q "x.yaml: ok" err
'

test_expect_success 'an empty -o is a usage error, and nothing is written' '
	mkdir empty-o && cd empty-o &&
	mkdir d && echo hi >d/f && tar -cf x.tar -C d . &&
	rc=0; imgforge mkfs --from x.tar -o "" 2>err || rc=$?
	test $rc -eq 2 && grep_one "^error: mkfs: the output file name is empty" err &&
	test $(grep -c . err) -eq 1 &&
	printf "image: t\nversion: \"1\"\nbase: {tarball: x.tar, sha256: %s}\n" \
		$(sha256sum x.tar | cut -d" " -f1) >i.yaml &&
	rc=0; imgforge build --cache c -o "" i.yaml 2>err || rc=$?
	test $rc -eq 2 && grep_one "^error: build: the output directory name is empty" err &&
	test "$(ls -A | sort | tr "\n" " ")" = "d err i.yaml x.tar "
'

for cmd in build cache ls show diff boot fetch; do
	test_expect_success "$cmd --help lists its options from the table" "
		imgforge $cmd --help >out &&
		grep -E '^usage: imgforge ' out &&
		grep -E '^   --' out &&
		imgforge help $cmd >out2 && cmp out out2
	"
done

test_done
