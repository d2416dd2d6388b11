#!/bin/bash
# imgforge-update killed (SIGKILL) at every stop point of an install, on a
# disk made of files (as t3410: no QEMU, a second per point): after each
# kill the test boots the disk as GRUB would (the first slot of ORDER with
# tries left, its counter incremented), marks it good as the health check
# would, and checks `imgforge-update status --json` with
# tests/e2e/powercut-check.py; the next install starts from there. Both
# install paths: a bundle file (read twice) and a delta download over HTTP
# ranges. The same points cut the power of a real VM in
# tests/e2e/long/t5110-powercut.sh (make check-powercut).
. "$SRCDIR/tests/e2e/lib.sh"

require_tool grub-editenv grub-common || exit 1
AGENT=${IMGFORGE_UPDATE:-}
if [ -z "$AGENT" ] && [ -n "${IMGFORGE_SAN:-}" ] && [ -x "$(dirname "$IMGFORGE_SAN")/imgforge-update" ]; then
	AGENT=$(dirname "$IMGFORGE_SAN")/imgforge-update
fi
AGENT=${AGENT:-$(dirname "$IMGFORGE")/imgforge-update}
[ -x "$AGENT" ] || { echo "no $AGENT: build it with make" >&2; exit 1; }
agent() { "$AGENT" "$@"; }

trap 'httpd_stop; cd /; [ -n "${KEEP:-}" ] || rm -rf "$TEST_DIR"' EXIT
mkdir -p www && httpd_start || exit 1

ENV=esp/EFI/BOOT
MAX=3
export IMGFORGE_ESP_MNT=$TEST_DIR/esp IMGFORGE_UPDATE_CMDLINE=$TEST_DIR/cmdline \
	IMGFORGE_UPDATE_ROOT_A=$TEST_DIR/root-a.img IMGFORGE_UPDATE_ROOT_B=$TEST_DIR/root-b.img \
	IMGFORGE_UPDATE_RELEASE=$TEST_DIR/release IMGFORGE_UPDATE_CONF=$TEST_DIR/update.conf \
	IMGFORGE_UPDATE_STATE=$TEST_DIR/data/imgforge/update IMGFORGE_UPDATE_HOOKS=$TEST_DIR/update.d

# holds SLOT: the version whose image the slot's file starts with, or partial.
holds() {
	local f=root-a.img v
	[ "$1" = B ] && f=root-b.img
	for v in 1.0 1.1; do
		cmp -s -n "$(stat -c %s v$v.ext4)" v$v.ext4 "$f" && { echo $v; return; }
	done
	echo partial
}
# power_on: what GRUB does at power on (docs/boot.md), then the booted image's
# release and command line, then the health check's mark-good.
power_on() {
	local slot
	slot=$(grub-editenv $ENV/grubenv list | "$PY" -c "
import sys
env = dict(l.rstrip('\n').split('=', 1) for l in sys.stdin if '=' in l)
for s in env.get('ORDER', 'A B').split():
    if int(env.get(s + '_TRIES', '0')) < $MAX:
        print(s, int(env.get(s + '_TRIES', '0')) + 1); break
else:
    sys.exit('no slot has tries left')") || return 1
	grub-editenv $ENV/grubenv set "${slot% *}_TRIES=${slot#* }" &&
	cp $ENV/grubenv $ENV/grubenv.bak &&
	slot=${slot% *} &&
	echo "BOOT_IMAGE=/boot/vmlinuz ro imgforge.slot=$slot imgforge.fallback=0" >cmdline &&
	printf "IMAGE=test-update\nVERSION=%s\n" "$(holds $slot)" >release &&
	agent mark-good >/dev/null
}
# check POINT EXPECTED_SLOT: status after the boot that followed the cut.
check() {
	local slot
	slot=$(sed -n "s/.*imgforge\.slot=\([AB]\).*/\1/p" cmdline) &&
	agent status --json >status.json &&
	"$PY" "$SRCDIR/tests/e2e/powercut-check.py" status.json --booted "$slot" \
		--version "$(sed -n "s/^VERSION=//p" release)" --holds "A=$(holds A),B=$(holds B)" \
		--expect-booted "$2" --point "$1" || { cat status.json; agent status; return 1; }
}
# cut_at POINT SOURCE: install the other version from SOURCE (a file or a URL
# with %s for the version), stopped at POINT and killed there.
cut_at() {
	local point=$1 running other target pid
	running=$(sed -n "s/^VERSION=//p" release)
	other=1.0 && [ "$running" = 1.0 ] && other=1.1
	target=B && grep -q "imgforge.slot=B" cmdline && target=A
	rm -f stop.err
	IMGFORGE_STOP_AT=$point "$AGENT" install --allow-downgrade "$(printf "$2" $other)" \
		>stop.out 2>stop.err &
	pid=$!
	for _ in $(seq 600); do
		grep -q "^stop-point: .*: stopped$" stop.err && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done
	kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
	grep -q "^stop-point: $point: stopped$" stop.err ||
		{ echo "the install never reached $point"; cat stop.err; return 1; }
	# Switched: the switch's primary block was written (the second write of
	# the install's boot variables) or anything after it.
	case $point in
	grubenv#2|installed-recorded#*|done#*) expect=$target ;;
	*) expect=$(sed -n "s/.*imgforge\.slot=\([AB]\).*/\1/p" cmdline) ;;
	esac
	power_on && check "$point" "$expect"
}

test_expect_success 'setup: two ext4 images, their bundles, a disk of files running 1.0' '
	mkdir -p v1/etc v2/etc v1/usr/lib v2/usr/lib &&
	echo "release 1.0" >v1/etc/motd && echo "release 1.1" >v2/etc/motd &&
	head -c 3000000 /dev/urandom >v2/usr/lib/blob &&
	head -c 3000000 /dev/urandom >v1/usr/lib/blob1 &&
	imgforge mkfs --from v1 -o v1.0.ext4 --size 16M &&
	imgforge mkfs --from v2 -o v1.1.ext4 --size 16M &&
	imgforge keygen -o keys &&
	for v in 1.0 1.1; do
		imgforge bundle v$v.ext4 -o www/v$v.bundle --key keys/signing.key \
			--cert keys/signing.crt --compatible test-update --version $v || exit 1
	done &&
	# Format 4: each version with a patch from the other (a 3 MB blob each: 3 ranges)
	imgforge bundle v1.1.ext4 -o www/p1.1.bundle --key keys/signing.key \
		--cert keys/signing.crt --compatible test-update --version 1.1 --delta-from v1.0.ext4 &&
	imgforge bundle v1.0.ext4 -o www/p1.0.bundle --key keys/signing.key \
		--cert keys/signing.crt --compatible test-update --version 1.0 --delta-from v1.1.ext4 &&
	cp v1.0.ext4 root-a.img && truncate -s 32M root-a.img &&
	head -c 33554432 /dev/urandom >root-b.img &&
	mkdir -p $ENV data &&
	grub-editenv $ENV/grubenv create &&
	grub-editenv $ENV/grubenv set "ORDER=A B" A_TRIES=0 B_TRIES=$MAX &&
	cp $ENV/grubenv $ENV/grubenv.bak &&
	echo "KEYRING=$TEST_DIR/keys/signing.crt" >update.conf &&
	mkdir -p update.d/pre-install.d && printf "#!/bin/sh\ntrue\n" >update.d/pre-install.d/50-ok &&
	chmod +x update.d/pre-install.d/50-ok &&
	power_on && check start A
'

# The points an install passes, from a traced run of each path.
test_expect_success 'the stop points of both install paths' '
	IMGFORGE_STOP_AT=trace agent install www/v1.1.bundle 2>trace-file.err &&
	sed -n "s/^stop-point: //p" trace-file.err >points-file &&
	power_on && check traced-file B &&
	IMGFORGE_STOP_AT=trace agent install --allow-downgrade "$URL/v1.0.bundle" 2>trace-delta.err &&
	sed -n "s/^stop-point: //p" trace-delta.err >points-delta &&
	power_on && check traced-delta A &&
	cat points-file points-delta | tr "\n" " " && echo &&
	for p in download#9 checked#1 installing-recorded#1 grubenv.bak#1 grubenv#1 write#10 \
		written#1 read-back#1 pre-install-hooks#1 grubenv.bak#2 grubenv#2 \
		installed-recorded#1 done#1; do
		grep -qx "$p" points-file || { echo "no $p in the file install"; exit 1; }
	done &&
	grep -qx delta-prepared#1 points-delta && grep -qx grubenv#1 points-delta &&
	grep -qx grubenv#2 points-delta
'

test_expect_success 'killed at every stop point of an install from a file: status consistent each time' '
	n=0 && while read -r p; do
		cut_at "$p" www/v%s.bundle || exit 1
		n=$((n + 1))
	done <points-file && echo "$n points" && test "$n" -ge 25
'

test_expect_success 'killed at every stop point of a delta download: status consistent each time' '
	n=0 && while read -r p; do
		cut_at "$p" "$URL/v%s.bundle" || exit 1
		n=$((n + 1))
	# Bundle format 3 fetches the changed pages of its index and frames in
	# a few ranges: fewer points than a whole download, each still a stop.
	done <points-delta && echo "$n points" && test "$n" -ge 10
'

test_expect_success 'killed at every stop point of a download with a patch (format 4): status consistent each time' '
	IMGFORGE_STOP_AT=trace agent install --allow-downgrade "$URL/p$(
		grep -q "^VERSION=1.0" release && echo 1.1 || echo 1.0).bundle" 2>trace-patch.err &&
	grep -q "fetching the patch" trace-patch.err &&
	sed -n "s/^stop-point: //p" trace-patch.err >points-patch &&
	power_on && check traced-patch "$(grep -q imgforge.slot=A cmdline && echo A || echo B)" &&
	grep -qx patch#1 points-patch && grep -qx patch#3 points-patch &&
	n=0 && while read -r p; do
		# The spool would let the next install skip the ranges fetched
		# before (t3420 tests that): each cut starts without it, so that
		# every point is reached.
		rm -f data/imgforge/update/delta-spool &&
		cut_at "$p" "$URL/p%s.bundle" || exit 1
		n=$((n + 1))
	done <points-patch && echo "$n points" && test "$n" -ge 10
'

test_expect_success 'after all of that, an install runs to its end and the new slot is good' '
	running=$(sed -n "s/^VERSION=//p" release) && other=1.0 && [ "$running" = 1.0 ] && other=1.1 &&
	target=$(grep -q imgforge.slot=A cmdline && echo B || echo A) &&
	agent install --allow-downgrade www/v$other.bundle >out 2>&1 &&
	power_on && check final $target &&
	test "$(sed -n "s/^VERSION=//p" release)" = $other
'

test_done
