#!/bin/bash
# imgforge boot: real QEMU boots of tiny disks made here. Under BIOS, a boot
# sector (tests/e2e/boot-fixture.py) prints a message on COM1: SeaBIOS, the
# virtio disk, the serial console and the matching. Under UEFI, OVMF with a
# GPT disk that holds no bootloader prints its boot manager and shell on the
# serial console.
. "$SRCDIR/tests/e2e/lib.sh"

require_tool qemu-system-x86_64 qemu-system-x86 || exit 1
require_tool python3 python3 || exit 1
require_tool sgdisk gdisk || exit 1
[ -f /usr/share/seabios/bios-256k.bin ] || {
	echo "missing SeaBIOS: install the Debian package seabios (make deps does)" >&2
	exit 1
}
ls /usr/share/OVMF/OVMF_CODE*.fd >/dev/null 2>&1 || {
	echo "missing OVMF: install the Debian package ovmf (make deps does)" >&2
	exit 1
}

fixture() { python3 "$SRCDIR/tests/e2e/boot-fixture.py" "$@"; }

expect_code() { # status command...
	local want=$1 rc=0
	shift
	"$@" || rc=$?
	[ "$rc" -eq "$want" ] || { echo "'$*' exited $rc, expected $want" >&2; return 1; }
}

bios() { imgforge boot --firmware bios "$@"; }

fixture hello.img 'hello from the boot sector\r\nIMGFORGE-MARKER 42\r\n'

test_expect_success 'boot --help prints its own usage' '
	imgforge boot --help >out &&
	grep -E "^usage: imgforge boot DISK " out &&
	imgforge help boot >out2 && cmp out out2 &&
	imgforge --help | grep -E "^   boot "
'

test_expect_success 'usage errors exit 2 with one line' '
	expect_code 2 imgforge boot 2>err && grep -q "^usage: imgforge boot" err &&
	expect_code 2 imgforge boot hello.img --firmware coreboot 2>err &&
	grep_one "^error: boot: --firmware takes uefi or bios, not .coreboot." err &&
	expect_code 2 imgforge boot hello.img --memory lots 2>err &&
	grep_one "^error: boot: bad --memory .lots." err &&
	expect_code 2 imgforge boot hello.img --memory 1000K 2>err &&
	expect_code 2 imgforge boot hello.img --cpus 0 2>err &&
	expect_code 2 imgforge boot hello.img --forward 2222:22 2>err &&
	grep_one "^error: boot: bad --forward .2222:22.: expected tcp:HOSTPORT:GUESTPORT" err &&
	expect_code 2 imgforge boot hello.img --expect "(unclosed" 2>err &&
	grep_one "^error: boot: --expect: bad regular expression .\(unclosed." err &&
	expect_code 2 imgforge boot hello.img --fw-cfg "a b=1" 2>err &&
	grep_one "^error: boot: --fw-cfg .a b=1.: NAME has a character other than letters" err &&
	expect_code 2 imgforge boot hello.img --fw-cfg cutpoint 2>err &&
	grep_one "^error: boot: --fw-cfg .cutpoint.: expected NAME=STRING" err &&
	expect_code 2 imgforge boot hello.img --keep 2>err &&
	grep_one "^error: boot: --keep needs --expect" err &&
	expect_code 2 imgforge boot hello.img --bogus 2>err &&
	grep_one "unknown option .--bogus." err
'

test_expect_success 'a missing disk is one error line' '
	expect_code 1 imgforge boot nope.img --expect x 2>err &&
	grep_one "^error: boot: cannot open .nope.img.: No such file or directory$" err &&
	test $(grep -c . err) -eq 1
'

test_expect_success 'a file that is not a disk image is refused before QEMU starts' '
	: >empty.img &&
	truncate -s 1M zeros.img &&
	printf "not a disk" >short.img &&
	for d in empty short; do
		expect_code 1 imgforge boot $d.img --expect x 2>err &&
		grep_one "^error: boot: .$d.img. is not a disk image: it is shorter than one sector" err &&
		test $(grep -c . err) -eq 1 || return 1
	done &&
	expect_code 1 imgforge boot zeros.img --expect x 2>err &&
	grep_one "^error: boot: .zeros.img. is not a disk image: no qcow2 header and no partition table \(MBR or GPT\)" err &&
	test $(grep -c . err) -eq 1 &&
	! grep -q "qemu" err
'

test_expect_success 'missing QEMU names the package to install' '
	expect_code 1 env PATH=/nonexistent "$IMGFORGE" boot hello.img --expect x 2>err &&
	grep_one "^error: boot: qemu-system-x86_64 not found: install the Debian package qemu-system-x86$" err
'

test_expect_success 'BIOS: every pattern, in any order, streams and logs the console' '
	bios hello.img --expect "^IMGFORGE-MARKER [0-9]+$" --expect "^hello from" \
		--memory 256M --cpus 1 --log console.log >out 2>err &&
	grep -q "^hello from the boot sector" out &&
	grep -qE "^boot: (KVM|TCG)" err &&
	grep_one "^boot: 2 patterns seen after " err &&
	grep -q "^IMGFORGE-MARKER 42" console.log &&
	printf "hello from the boot sector\r\n" | cmp -n 28 - console.log
'

test_expect_success 'BIOS: --quiet keeps the console off standard output' '
	bios hello.img --quiet --expect MARKER --log console.log >out 2>err &&
	test ! -s out && grep -q MARKER console.log
'

test_expect_success 'escape sequences and \r do not get in the way of a match' '
	fixture ansi.img "\e[2J\e[01;01H\e[1m\e[33mBOLD\e[0m-MARKER\e[37m\r\n" &&
	bios ansi.img --expect "^BOLD-MARKER$" >out 2>err
'

test_expect_success 'a timeout exits 1 naming the pattern, with the last console lines' '
	expect_code 1 bios hello.img --expect MARKER --expect NEVER-SEEN --timeout 2 >out 2>err &&
	grep_one "^error: boot: timed out after 2 s waiting for .NEVER-SEEN.$" err &&
	grep_one "^boot: last 2 console lines:$" err &&
	grep_one "^    hello from the boot sector$" err &&
	grep_one "^    IMGFORGE-MARKER 42$" err &&
	! grep -q "terminating on signal" err
'

test_expect_success 'a kernel panic on the console exits 1 with the panic' '
	fixture panic.img "booting\r\nKernel panic - not syncing: VFS: Unable to mount root fs\r\n" &&
	expect_code 1 bios panic.img --expect "login:" --timeout 60 >out 2>err &&
	grep_one "^error: boot: guest kernel panic after " err &&
	grep_one "^    Kernel panic - not syncing: VFS" err
'

test_expect_success 'a panic reported through pvpanic exits 1 as a panic' '
	fixture pvpanic.img "about to crash\r\n" --then pvpanic &&
	expect_code 1 bios pvpanic.img --expect "login:" --timeout 60 >out 2>err &&
	grep_one "^error: boot: guest kernel panic after " err &&
	grep_one "^    about to crash$" err
'

test_expect_success 'without --expect, run until QEMU exits and take its status' '
	fixture reset.img "resetting\r\n" --then reset &&
	bios reset.img --timeout 60 >out 2>err &&
	grep -q "^resetting" out
'

test_expect_success 'QEMU exiting before the patterns appeared is a failure' '
	expect_code 1 bios reset.img --expect NEVER-SEEN --timeout 60 >out 2>err &&
	grep_one "^error: boot: QEMU exited with status 0 before .NEVER-SEEN. appeared$" err &&
	grep_one "^    resetting$" err
'

test_expect_success 'a QEMU failure shows what QEMU said' '
	printf "QFI\373\0\0\0\077garbage" >bad.qcow2 &&
	expect_code 1 bios bad.qcow2 --expect x --timeout 60 >out 2>err &&
	grep_one "^error: boot: QEMU exited with status 1 before .x. appeared$" err &&
	grep -q "^qemu-system-x86_64: .*bad.qcow2" err &&
	grep_one "^boot: the console stayed silent$" err
'

test_expect_success '--snapshot leaves the disk as it was; without it the guest writes' '
	fixture write.img "WROTE\r\n" --write-sector &&
	cp write.img orig.img &&
	bios write.img --snapshot --expect WROTE >out 2>err &&
	cmp write.img orig.img &&
	bios write.img --expect WROTE >out 2>err &&
	! cmp -s write.img orig.img &&
	dd if=write.img bs=512 skip=1 count=1 status=none | cmp - <(head -c 512 orig.img)
'

test_expect_success 'a qcow2 disk is recognised by its header' '
	require_tool qemu-img qemu-utils &&
	qemu-img convert -f raw -O qcow2 hello.img hello.qcow2 &&
	bios hello.qcow2 --expect "^IMGFORGE-MARKER 42$" --timeout 60 >out 2>err
'

test_expect_success 'Ctrl-C stops imgforge and QEMU with it' '
	"$IMGFORGE" boot --firmware bios hello.img --expect NEVER-SEEN --timeout 60 >out 2>err &
	pid=$! &&
	for i in $(seq 50); do grep -q MARKER out && break; sleep 0.1; done &&
	qemu=$(pgrep -P $pid) && test -n "$qemu" &&
	kill -INT $pid &&
	rc=0 && { wait $pid || rc=$?; } &&
	test $rc -eq 130 &&
	grep_one "^error: boot: interrupted; QEMU stopped$" err &&
	! kill -0 $qemu 2>/dev/null
'

test_expect_success 'QEMU dies with imgforge, even when imgforge is killed' '
	mkdir killed-tmp
	TMPDIR=$PWD/killed-tmp "$IMGFORGE" boot --firmware bios hello.img --expect NEVER-SEEN \
		--timeout 60 >out 2>err &
	pid=$! &&
	for i in $(seq 50); do grep -q MARKER out && break; sleep 0.1; done &&
	qemu=$(pgrep -P $pid) && test -n "$qemu" &&
	kill -KILL $pid &&
	for i in $(seq 100); do kill -0 $qemu 2>/dev/null || break; sleep 0.1; done &&
	! kill -0 $qemu 2>/dev/null &&
	rmdir killed-tmp
'

test_expect_success '--keep leaves the VM running, --forward listens on 127.0.0.1 only' '
	port=$(python3 -c "import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])") &&
	bios hello.img --expect MARKER --keep --forward tcp:$port:22 --timeout 60 >out 2>err &&
	pid=$(sed -n "s/^boot: the VM keeps running as pid \([0-9]*\);.*/\1/p" err) &&
	test -n "$pid" &&
	grep -q "qemu-system-x86_64" /proc/$pid/cmdline &&
	hex=$(printf "%04X" $port) &&
	grep -E "^ *[0-9]+: 0100007F:$hex 00000000:0000 0A " /proc/net/tcp &&
	! grep -E "^ *[0-9]+: [0-9A-F]{8}:$hex " /proc/net/tcp | grep -v " 0100007F:$hex " &&
	kill $pid &&
	for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done &&
	! kill -0 $pid 2>/dev/null
'

test_expect_success 'UEFI: OVMF boot manager and shell on the serial console' '
	truncate -s 4M nobootloader.img && sgdisk -o nobootloader.img >/dev/null &&
	mkdir tmp && TMPDIR=$PWD/tmp imgforge boot nobootloader.img --expect "^BdsDxe: (loading|starting) Boot[0-9A-F]+ \"EFI Internal Shell\"" \
		--expect "^UEFI Interactive Shell" --expect "^Shell> $" --timeout 120 \
		--log uefi.log >out 2>err &&
	grep_one "^boot: 3 patterns seen after " err &&
	grep -q "Mapping table" out &&
	grep -q "BdsDxe" uefi.log &&
	rmdir tmp
'

# A QEMU in front of the real one that keeps a copy of the seed volume it is
# given and its -drive line: what the guest would read, checked with dosfstools,
# mtools and blkid; the real QEMU then boots the fixture.
mkdir -p wrap && cat >wrap/qemu-system-x86_64 <<'EOT' && chmod +x wrap/qemu-system-x86_64
#!/bin/bash
for a in "$@"; do
	case $a in *id=seed0*) echo "$a" >"$SEED_COPY.drive"; f=${a#file=}; cp "${f%%,if=*}" "$SEED_COPY" ;; esac
done
exec /usr/bin/qemu-system-x86_64 "$@"
EOT

test_expect_success '--user-data: a NoCloud seed (CIDATA, user-data, meta-data) read-only, removed after' '
	printf "#cloud-config\nhostname: seeded\n" >ud.yaml &&
	printf "version: 2\n" >net.yaml &&
	mkdir -p seedtmp &&
	SEED_COPY=$PWD/seed.img TMPDIR=$PWD/seedtmp PATH=$PWD/wrap:$PATH \
		imgforge boot --firmware bios hello.img --user-data ud.yaml --network-config net.yaml \
		--expect "^IMGFORGE-MARKER" --quiet 2>err &&
	grep -q "readonly=on" seed.img.drive && grep -q "format=raw" seed.img.drive &&
	test -z "$(ls seedtmp)" &&
	fsck.fat -n seed.img >fsck.out 2>&1 &&
	test "$(blkid -o value -s LABEL seed.img)" = CIDATA &&
	test "$(blkid -o value -s TYPE seed.img)" = vfat &&
	MTOOLS_SKIP_CHECK=1 mtype -i seed.img ::/user-data >got && cmp got ud.yaml &&
	MTOOLS_SKIP_CHECK=1 mtype -i seed.img ::/network-config >got && cmp got net.yaml &&
	MTOOLS_SKIP_CHECK=1 mtype -i seed.img ::/meta-data >md &&
	grep -qx "instance-id: iid-imgforge-$(sha256sum ud.yaml | cut -c1-16)" md
'

test_expect_success '--user-data: the same files make the same volume, a given meta-data is used as it is' '
	cp seed.img seed1.img &&
	SEED_COPY=$PWD/seed.img PATH=$PWD/wrap:$PATH \
		imgforge boot --firmware bios hello.img --user-data ud.yaml --network-config net.yaml \
		--expect "^IMGFORGE-MARKER" --quiet 2>err &&
	cmp seed.img seed1.img &&
	printf "instance-id: mine\nlocal-hostname: m\n" >md.yaml &&
	SEED_COPY=$PWD/seed.img PATH=$PWD/wrap:$PATH \
		imgforge boot --firmware bios hello.img --user-data ud.yaml --meta-data md.yaml \
		--expect "^IMGFORGE-MARKER" --quiet 2>err &&
	MTOOLS_SKIP_CHECK=1 mtype -i seed.img ::/meta-data >got && cmp got md.yaml &&
	! MTOOLS_SKIP_CHECK=1 mtype -i seed.img ::/network-config >/dev/null 2>&1
'

test_expect_success '--user-data errors: one line each' '
	expect_code 1 imgforge boot hello.img --user-data missing.yaml --expect x 2>err &&
	grep_one "^error: boot: cannot read --user-data .missing.yaml.: No such file" err &&
	head -c $((17 << 20)) /dev/zero >big.yaml &&
	expect_code 1 imgforge boot hello.img --user-data big.yaml --expect x 2>err &&
	grep_one "^error: boot: cannot read --user-data .big.yaml.: larger than 16 MiB" err &&
	expect_code 2 imgforge boot hello.img --meta-data md.yaml --expect x 2>err &&
	grep_one "^error: boot: --meta-data needs --user-data" err
'

test_done
