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
# input directory: an empty one stands in for it. Their update keyring, the
# release certificate, is made here.
"$IMGFORGE" keygen -o keys 2>/dev/null || exit 1
test_expect_success 'the repository images check clean' '
	mkdir -p dist &&
	for f in "$SRCDIR"/images/*.yaml; do
		set -- --mirror http://mirror.invalid/debian --set frontend_dist="$TEST_DIR/dist" \
			--set update_keyring="$TEST_DIR/keys/signing.crt"
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

test_expect_success 'an appliance image without its release certificate says how to make one' '
	mkdir -p dist &&
	test_must_fail "$IF" check --set frontend_dist="$TEST_DIR/dist" \
		"$SRCDIR/images/atarys-production.yaml" 2>err &&
	grep_one "^$SRCDIR/recipes/atarys.yaml:[0-9]*:[0-9]*: error: update.keyring .*atarys-release.crt.: No such file or directory: make the release key with .imgforge keygen -o DIR. and name its DIR/signing.crt here$" err &&
	test_must_fail "$IF" check --set frontend_dist="$TEST_DIR/dist" --set update_keyring="$TEST_DIR/keys" \
		"$SRCDIR/images/atarys-production.yaml" 2>err &&
	grep -q "is not a regular file (a directory)" err
'

test_expect_success 'the mirrors come from IMGFORGE_MIRROR and IMGFORGE_SECURITY_MIRROR, else from the build' '
	mkdir -p dist && set -- --set frontend_dist="$TEST_DIR/dist" \
		--set update_keyring="$TEST_DIR/keys/signing.crt" "$SRCDIR/images/atarys-production.yaml" &&
	IMGFORGE_MIRROR=http://mirror.invalid/debian "$IF" check "$@" &&
	env -u IMGFORGE_MIRROR -u IMGFORGE_SECURITY_MIRROR "$IF" check "$@" &&
	IMGFORGE_MIRROR=http://mirror.invalid/debian IMGFORGE_SECURITY_MIRROR=http://sec.invalid/x \
		"$IF" plan "$@" >plan.out &&
	grep -E "^    mirror: \"?http://mirror.invalid/debian\"?$" plan.out &&
	grep -E "^    security_mirror: \"?http://sec.invalid/x\"?$" plan.out &&
	env -u IMGFORGE_MIRROR -u IMGFORGE_SECURITY_MIRROR "$IF" plan "$@" >plan.out &&
	grep -E "^    mirror: \"\"$" plan.out
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
	expect_bad bad.yaml "^bad.yaml:4:11: error: cannot find include .nope.yaml.: looked in .nope.yaml., .[^ ]*/share/imgforge/recipes/nope.yaml. \(add its directory with -I DIR or \\\$IMGFORGE_PATH\)$" &&
	mkdir -p d1 d2 &&
	IMGFORGE_PATH=d1::d2 test_must_fail "$IF" check -I sub/dir bad.yaml 2>err &&
	grep_one "looked in .nope.yaml., .sub/dir/nope.yaml., .d1/nope.yaml., .d2/nope.yaml., .[^ ]*/share/imgforge/recipes/nope.yaml." err &&
	mkdir -p x.yaml d1/x.yaml && printf "packages: [p]\n" >d1/x.yaml/y &&
	{ mini; echo "include: [x.yaml]"; } >bad.yaml &&
	IMGFORGE_PATH=d1 test_must_fail "$IF" check bad.yaml 2>err &&
	grep_one "^bad.yaml:4:11: error: cannot read include .x.yaml.: Is a directory" err
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

# Hostile recipes: each must end in one error line, fast, whatever the input.
# The plain binary under a memory limit (the sanitizer build cannot run under
# ulimit -v), so that a regression fails the test instead of the machine.
bounded() { (ulimit -v 2000000; timeout 20 "$IMGFORGE" "$@"); }
laughs() { # LEVELS: a0 .. aLEVELS, each twice the one before
	mini; echo "variables:"; echo "  a0: \"ha\""
	for i in $(seq 1 "$1"); do echo "  a$i: \"\${a$((i - 1))}\${a$((i - 1))}\""; done
}

test_expect_success 'billion laughs: one error at the use, no exhaustion' '
	{ laughs 40; echo "description: \"\${a40}\""; echo "files: [{path: /x, content: \"\${a39}\"}]"; } >bad.yaml &&
	rc=0; bounded check bad.yaml 2>err || rc=$?
	test $rc -eq 1 &&
	grep_one "^bad.yaml:46:14: error: variable .a40. expands to more than 1 MiB" err &&
	test "$(grep -c "error:" err)" -eq 1
'

test_expect_success 'unused variables are not expanded' '
	laughs 40 >ok.yaml &&
	bounded check ok.yaml
'

test_expect_success 'many uses of a large value stop at the total limit' '
	{ laughs 18; echo "files:"; for i in $(seq 1 200); do echo "  - {path: /f$i, content: \"\${a18}\"}"; done; } >bad.yaml &&
	rc=0; bounded check bad.yaml 2>err || rc=$?
	test $rc -eq 1 &&
	grep_one "^bad.yaml:[0-9]+:[0-9]+: error: variables expand to more than 64 MiB in all" err &&
	test "$(grep -c "error:" err)" -eq 1
'

test_expect_success 'a device or FIFO as a file source is refused, not read' '
	mkfifo fifo &&
	{ mini; echo "files: [{path: /x, source: /dev/zero}, {path: /y, source: fifo}]"; } >bad.yaml &&
	rc=0; bounded check bad.yaml 2>err || rc=$?
	test $rc -eq 1 &&
	grep_one "^bad.yaml:4:28: error: source ./dev/zero. is not a regular file \(a character device\)" err &&
	grep_one "^bad.yaml:4:59: error: source .fifo. is not a regular file \(a FIFO\)" err
'

test_expect_success 'a FIFO as an include or as the image is refused, not read' '
	rm -f fifo && mkfifo fifo &&
	{ mini; echo "include: [fifo]"; } >bad.yaml &&
	rc=0; bounded check bad.yaml 2>err || rc=$?
	test $rc -eq 1 &&
	grep_one "^bad.yaml:4:11: error: cannot read include .fifo.: not a regular file \(a FIFO\)" err &&
	rc=0; bounded check fifo 2>err || rc=$?
	test $rc -eq 1 &&
	grep_one "^imgforge: error: cannot read .fifo.: not a regular file \(a FIFO\)" err
'

test_expect_success 'a file that is not a recipe is one error, its content not shown' '
	printf "root:\$6\$secret\$hash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n" >shadow &&
	{ mini; echo "include: [shadow]"; } >bad.yaml &&
	expect_bad bad.yaml "^shadow:1:1: error: .shadow. is not a recipe \(none of its keys is a recipe key\)$" &&
	! grep -q secret err &&
	printf "just some\ntext\n" >text &&
	{ mini; echo "include: [text]"; } >bad.yaml &&
	expect_bad bad.yaml "^text:1:1: error: .text. is not a recipe \(expected a YAML mapping\)$" &&
	! grep -q "some" err
'

test_expect_success 'long or binary keys are shown as a short escaped excerpt' '
	{ mini; printf "k\\303\\251%0200d: 1\n" 0; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:1: error: unknown key .k\\\\xc3\\\\xa90000000000000000000000000000000000000\.\.\..$"
'

test_expect_success 'a kernel command line that would break grub.cfg is refused' '
	{ mini; echo "boot: {cmdline: \"quiet\\n}\\nmenuentry evil {\"}"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:17: error: invalid kernel command line .quiet\\\\n\}\\\\nmenuentry evil \{.: " &&
	{ mini; echo "boot: {cmdline: \"console=ttyS0 \\\$(reboot)\"}"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:17: error: invalid kernel command line" &&
	{ mini; echo "boot: {cmdline: \"console=ttyS0,115200 quiet root=PARTLABEL=root-a ro init=/sbin/init x.y=1-2:3/4\"}"; } >ok.yaml &&
	"$IF" check ok.yaml
'

test_expect_success 'unit names follow systemd'"'"'s grammar' '
	{ mini; echo "services: {mask: [\"x@/../../../../usr/bin/sh\"]}"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:19: error: invalid unit name .x@/\.\./\.\./\.\./\.\./usr/bin/sh." &&
	{ mini; echo "services: {enable: [a@b@c.service]}"; } >bad.yaml &&
	expect_bad bad.yaml "invalid unit name .a@b@c.service." &&
	{ mini; echo "services: {enable: [foo.bogus]}"; } >bad.yaml &&
	expect_bad bad.yaml "invalid unit name .foo.bogus." &&
	{ mini; echo "services: {enable: [getty@tty1.service, serial-getty@ttyS0, foo@.service, var-lib.mount, a.timer, nginx, \"sys-devices-x\\\\x2dy.device\"]}"; } >ok.yaml &&
	"$IF" check ok.yaml
'

test_expect_success 'sizes that overflow 64 bits are refused' '
	{ mini; echo "disk: {size: 1G, root_size: 8388608T}"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:14: error: disk size 1G is too small: the partitions need more than 16 EiB"
'

test_expect_success 'a disk without the boot support is refused at disk: with the include to add' '
	{ mini; echo "packages: [nginx]"; echo "disk: {root_size: 1G}"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:5:1: error: a disk image needs imgforge.s boot support: imgforge-mark-good.service is not enabled, .*add .include: \[ab-boot.yaml\]." &&
	sha=$(printf %064d 0) &&
	printf "image: t\nversion: \"1\"\nbase: {tarball: r.tar, sha256: %s}\ndisk:\n  root_size: 1G\n" $sha >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:1: error: a disk image needs .*add .include: \[ab-boot-files.yaml\]..*the tarball must bring a kernel, an initramfs, sfdisk" &&
	{ mini; echo "include: [$SRCDIR/recipes/ab-boot.yaml]"; echo "disk: {root_size: 1G}"; } >ok.yaml &&
	"$IF" check ok.yaml &&
	printf "image: t\nversion: \"1\"\nbase: {tarball: r.tar, sha256: %s}\ninclude: [%s]\ndisk: {root_size: 1G}\n" $sha "$SRCDIR/recipes/ab-boot-files.yaml" >ok.yaml &&
	"$IF" check ok.yaml &&
	{ mini; echo "disk: {size: 1G, root_size: 8388608T}"; } >bad.yaml &&
	test_must_fail "$IF" check bad.yaml 2>err && test "$(grep -c error: err)" -eq 1
'

test_expect_success 'a byte-order mark at the start is accepted' '
	{ printf "\357\273\277"; mini; } >ok.yaml &&
	"$IF" check ok.yaml
'

test_expect_success '--set without a name or without = is a usage error' '
	mini >ok.yaml &&
	rc=0; "$IF" check --set novalue ok.yaml 2>err || rc=$?
	test $rc -eq 2 && test "$(wc -l <err)" -eq 1 &&
	grep_one "error: check: .--set novalue.: expected NAME=VALUE" err &&
	rc=0; "$IF" check --set =v ok.yaml 2>err || rc=$?
	test $rc -eq 2 && test "$(wc -l <err)" -eq 1 &&
	grep_one "error: check: .--set =v.: expected NAME=VALUE" err &&
	rc=0; "$IF" check --set "1x=v" ok.yaml 2>err || rc=$?
	test $rc -eq 2 && grep_one "error: check: .--set 1x=v.: invalid variable name .1x." err
'

test_expect_success 'more than 256 includes is one error' '
	{ mini; printf "include: ["; for i in $(seq 1 300); do printf "i%d.yaml, " $i; echo "packages: [p$i]" >i$i.yaml; done; echo "]"; } >bad.yaml &&
	expect_bad bad.yaml "^bad.yaml:4:[0-9]+: error: more than 256 included files" &&
	test "$(grep -c error: err)" -eq 1
'

test_expect_success '--set of a variable nothing uses warns' '
	mini >ok.yaml &&
	"$IF" check --set nothing=1 ok.yaml 2>err &&
	grep_one "warning: .--set nothing=1.: no recipe uses the variable .nothing." err
'

test_expect_success 'check --json prints the diagnostics as JSON' '
	{ mini; echo "pakages: [nginx]"; echo "disk: {size: lots}"; } >bad.yaml &&
	rc=0; "$IF" check --json bad.yaml >out.json 2>err || rc=$?
	test $rc -eq 1 &&
	python3 -c "
import json
d = json.load(open(\"out.json\"))
assert isinstance(d, list) and len(d) == 2, d
assert d[0] == {\"file\": \"bad.yaml\", \"line\": 4, \"column\": 1, \"severity\": \"error\", \"message\": \"unknown key '"'"'pakages'"'"' (did you mean '"'"'packages'"'"'?)\"}, d[0]
assert d[1][\"line\"] == 5 and d[1][\"column\"] == 14, d[1]
" &&
	mini >ok.yaml && "$IF" check --json ok.yaml >ok.json &&
	test "$(cat ok.json)" = "[]"
'

test_done
