#!/bin/bash
# imgforge export: a raw disk as raw, qcow2 (plain, zlib, zstd), VHD (fixed,
# dynamic) and streamOptimized VMDK, checked by qemu-img (check, compare
# against the raw disk, info fields), the same bytes from the same disk
# whatever the threads, holes and zero clusters not stored, a boot of every
# exported format (qcow2, VMDK, fixed and dynamic VHD) in QEMU, and hostile input refused with one line.
. "$SRCDIR/tests/e2e/lib.sh"

IMG=${IMGFORGE_SAN:-$IMGFORGE}
MIB=1048576

require_tool qemu-img qemu-utils || exit 1
require_tool python3 python3 || exit 1

# disk.raw: 96 MiB and 3 sectors (a multiple of neither 64 KiB nor 2 MiB), sparse:
# compressible data (system libraries) at 1 MiB, random data at 40 MiB (clusters
# that do not shrink), random and text clusters alternating at 50 MiB, 4 MiB of
# zeros written out (allocated, not data) at 70 MiB, and 3 bytes at the very end.
make_disk() {
	local size=$((96 * MIB + 3 * 512))
	rm -f "$1" && truncate -s $size "$1" &&
	tar cf - /usr/lib/x86_64-linux-gnu 2>/dev/null | head -c $((12 * MIB)) |
		dd of="$1" bs=$MIB seek=1 conv=notrunc status=none &&
	head -c $((2 * MIB)) /dev/urandom | dd of="$1" bs=$MIB seek=40 conv=notrunc status=none &&
	python3 - "$1" <<-'PY' &&
	import os, sys
	with open(sys.argv[1], "r+b") as f:
	    f.seek(50 << 20)
	    for i in range(24):
	        f.write(os.urandom(65536) if i % 3 == 0 else (b"cluster %d " % i) * 6000 + b"\1" * (65536 - 6000 * len(b"cluster %d " % i)))
	PY
	dd if=/dev/zero of="$1" bs=$MIB seek=70 count=4 conv=notrunc status=none &&
	printf END | dd of="$1" bs=1 seek=$((size - 3)) conv=notrunc status=none
}

# qinfo FILE FORMAT KEY...: a field of `qemu-img info --output=json`.
qinfo() {
	local f=$1 fmt=$2; shift 2
	qemu-img info -f "$fmt" --output=json "$f" | python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$@"
}

exports() { # the same disk in every format, to DIR
	mkdir -p "$1" &&
	"$IMG" -q export disk.raw -o "$1/d.raw" "${@:2}" &&
	"$IMG" -q export disk.raw -o "$1/d.qcow2" "${@:2}" &&
	"$IMG" -q export disk.raw -o "$1/c.qcow2" -c "${@:2}" &&
	"$IMG" -q export disk.raw -o "$1/z.qcow2" -c --compression-type zstd "${@:2}" &&
	"$IMG" -q export disk.raw -o "$1/f.vhd" "${@:2}" &&
	"$IMG" -q export disk.raw -o "$1/y.vhd" --subformat dynamic "${@:2}" &&
	"$IMG" -q export disk.raw -o "$1/s.vmdk" "${@:2}"
}

make_disk disk.raw

test_expect_success 'export --help and the command list' '
	imgforge export --help >out &&
	grep -q "^usage: imgforge export <build>|<disk> -o <file>" out &&
	grep -q -- "--compression-type" out &&
	imgforge --help | grep -qE "^   export "
'

test_expect_success 'every format, with 1 thread and with 3' '
	exports t1 --threads 1 &&
	exports t3 --threads 3 &&
	ls t1 | wc -l | grep -qx 7
'

test_expect_success 'the same disk gives the same bytes, whatever the threads' '
	for f in d.raw d.qcow2 c.qcow2 z.qcow2 f.vhd y.vhd s.vmdk; do
		cmp t1/$f t3/$f || exit 1
	done &&
	"$IMG" -q export disk.raw -o again.qcow2 -c &&
	cmp again.qcow2 t1/c.qcow2
'

test_expect_success 'qemu-img compare: every export holds the raw disk' '
	qemu-img compare -f raw -F raw disk.raw t1/d.raw &&
	for f in d.qcow2 c.qcow2 z.qcow2; do
		qemu-img compare -f raw -F qcow2 disk.raw t1/$f || exit 1
	done &&
	qemu-img compare -f raw -F vpc disk.raw t1/f.vhd &&
	qemu-img compare -f raw -F vpc disk.raw t1/y.vhd &&
	qemu-img compare -f raw -F vmdk disk.raw t1/s.vmdk
'

test_expect_success 'qemu-img compare notices a changed byte (the check can fail)' '
	test -s t1/c.qcow2 && test -s t1/s.vmdk &&
	cp disk.raw changed.raw &&
	printf X | dd of=changed.raw bs=1 seek=$((MIB + 4097)) conv=notrunc status=none &&
	test_must_fail qemu-img compare -q -f raw -F qcow2 changed.raw t1/c.qcow2 &&
	test_must_fail qemu-img compare -q -f raw -F vmdk changed.raw t1/s.vmdk
'

test_expect_success 'qemu-img check finds no errors, leaks or corruptions' '
	for f in d.qcow2 c.qcow2 z.qcow2; do
		qemu-img check -f qcow2 t1/$f >check.out 2>&1 || { cat check.out; exit 1; }
		grep -q "^No errors were found on the image" check.out || exit 1
	done &&
	qemu-img check -f qcow2 t1/c.qcow2 | grep -qE "[1-9][0-9.]*% compressed clusters" &&
	qemu-img check -f vmdk t1/s.vmdk >check.out 2>&1 &&
	grep -q "^No errors were found on the image" check.out
'

test_expect_success 'qemu-img info: sizes, qcow2 compat and compression, VMDK and VHD types' '
	size=$(stat -c %s disk.raw) &&
	for f in d.qcow2:qcow2 c.qcow2:qcow2 z.qcow2:qcow2 f.vhd:vpc y.vhd:vpc s.vmdk:vmdk; do
		test "$(qinfo t1/${f%%:*} ${f#*:} virtual-size)" = "$size" || { echo "$f"; exit 1; }
	done &&
	test "$(qinfo t1/d.qcow2 qcow2 format-specific data compat)" = 1.1 &&
	test "$(qinfo t1/c.qcow2 qcow2 format-specific data compression-type)" = zlib &&
	test "$(qinfo t1/z.qcow2 qcow2 format-specific data compression-type)" = zstd &&
	test "$(qinfo t1/d.qcow2 qcow2 cluster-size)" = 65536 &&
	test "$(qinfo t1/s.vmdk vmdk format-specific data create-type)" = streamOptimized &&
	test "$(qinfo t1/s.vmdk vmdk format-specific data extents 0 compressed)" = True &&
	test "$(qinfo t1/y.vhd vpc cluster-size)" = 2097152 &&
	qemu-img info t1/y.vhd | grep -q "^file format: vpc" &&
	qemu-img info t1/c.qcow2 | grep -q "^file format: qcow2" &&
	qemu-img info t1/s.vmdk | grep -q "^file format: vmdk"
'

test_expect_success 'VHD footers: fixed and dynamic types, the size, a good checksum' '
	python3 - t1/f.vhd t1/y.vhd "$(stat -c %s disk.raw)" <<-'"'"'PY'"'"'
	import struct, sys
	size = int(sys.argv[3])
	for path, want in ((sys.argv[1], 2), (sys.argv[2], 3)):
	    data = open(path, "rb").read()
	    f = data[-512:]
	    assert f[:8] == b"conectix", path
	    assert struct.unpack(">Q", f[48:56])[0] == size, path
	    assert struct.unpack(">I", f[60:64])[0] == want, path
	    s = (~(sum(f[:64]) + sum(f[68:]))) & 0xFFFFFFFF
	    assert struct.unpack(">I", f[64:68])[0] == s, path
	    if want == 3:
	        assert data[:512] == f, "footer copy"
	    else:
	        assert len(data) == size + 512, len(data)
	PY
'

test_expect_success 'zeros and holes are not stored; the files are about their data' '
	qemu-img map -f qcow2 --output=json t1/d.qcow2 >map.json &&
	python3 - map.json <<-'"'"'PY'"'"'
	import json, sys
	mib = 1 << 20
	for e in json.load(open(sys.argv[1])):
	    if e["data"]:
	        lo, hi = e["start"], e["start"] + e["length"]
	        # the 4 MiB of written zeros at 70 MiB are not data
	        assert hi <= 70 * mib or lo >= 74 * mib, e
	PY
	data=$((12 + 2 + 2 + 1)) &&
	test $(stat -c %s t1/d.qcow2) -lt $(((data + 1) * MIB)) &&
	test $(stat -c %s t1/c.qcow2) -lt $(stat -c %s t1/d.qcow2) &&
	test $(stat -c %b t1/f.vhd) -lt $(((data + 1) * 2048))
'

test_expect_success 'no larger than qemu-img convert for compressed qcow2 and VMDK' '
	qemu-img convert -f raw -O qcow2 -c disk.raw q.qcow2 &&
	qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw q.vmdk &&
	test $(stat -c %s t1/c.qcow2) -le $(stat -c %s q.qcow2) &&
	test $(stat -c %s t1/s.vmdk) -le $(stat -c %s q.vmdk)
'

test_expect_success 'a 1 TiB sparse disk with data at its end: only the data is read' '
	truncate -s 1T big.raw &&
	printf "LAST SECTOR" | dd of=big.raw bs=1 seek=$(((1 << 40) - 512)) conv=notrunc status=none &&
	timeout 60 "$IMG" -q export big.raw -o big.qcow2 -c &&
	timeout 60 "$IMG" -q export big.raw -o big.vhd --subformat dynamic &&
	test $(stat -c %s big.qcow2) -lt $((4 * MIB)) &&
	qemu-img compare -f raw -F qcow2 big.raw big.qcow2 &&
	qemu-img compare -f raw -F vpc big.raw big.vhd
'

test_expect_success 'a build id that is not registered is one error line' '
	test_must_fail "$IMG" export 0123abcd -o x.qcow2 2>err &&
	grep_one "^error: export: .0123abcd. is neither a file nor a registered build" err &&
	test $(wc -l <err) = 1 && test ! -e x.qcow2
'

test_expect_success 'a build id exports its disk.raw; not once a later build took its directory' '
	require_tool grub-mkimage grub-common &&
	require_tool e2fsck e2fsprogs &&
	mkdir -p img/ovl/etc/app img/ovl/boot img/ovl/usr/sbin &&
	echo one >img/ovl/etc/app/motd &&
	echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" img/rootfs.tar.gz &&
	cat >img/image.yaml <<-EOT &&
	image: tiny
	version: 1.0.0
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml]
	overlays: [ovl]
	disk: {root_size: 64M, data_size: 32M}
	EOT
	imgforge -q build --cache cache -o bout img/image.yaml &&
	id=$(python3 -c "import json; print(json.load(open(\"bout/manifest.json\"))[\"build_id\"])") &&
	"$IMG" -q export --cache cache "${id:0:8}" -o build.qcow2 -c &&
	qemu-img compare -f raw -F qcow2 bout/disk.raw build.qcow2 &&
	echo two >img/ovl/etc/app/motd &&
	imgforge -q build --cache cache -o bout img/image.yaml &&
	test_must_fail "$IMG" export --cache cache "$id" -o old.qcow2 2>err &&
	grep_one "^error: export: .*bout. no longer holds the outputs of build $id \(removed, or written by a later build\)" err &&
	test ! -e old.qcow2
'

test_expect_success 'outputs: in a recipe writes the formats with the build, cached as a stage' '
	sed "s/^disk:/outputs: [raw, qcow2, vhd, vmdk]\ndisk:/" img/image.yaml >img/outputs.yaml &&
	grep -q "^outputs: \[raw, qcow2, vhd, vmdk\]" img/outputs.yaml &&
	imgforge build --cache cache -o oout img/outputs.yaml 2>err &&
	grep -q "^export: disk.qcow2 written" err &&
	for f in disk.raw disk.qcow2 disk.vhd disk.vmdk manifest.json; do test -f oout/$f || exit 1; done &&
	mkdir -p mine &&
	"$IMG" -q export oout/disk.raw -o mine/disk.qcow2 -c &&
	"$IMG" -q export oout/disk.raw -o mine/disk.vhd &&
	"$IMG" -q export oout/disk.raw -o mine/disk.vmdk &&
	for f in disk.qcow2 disk.vhd disk.vmdk; do cmp oout/$f mine/$f || exit 1; done &&
	qemu-img compare -f raw -F qcow2 oout/disk.raw oout/disk.qcow2 &&
	grep -q "\"disk.vmdk\"" oout/manifest.json &&
	imgforge build --cache cache -o oout img/outputs.yaml 2>err &&
	grep -q "^export: disk.qcow2 cached" err &&
	grep -q "^export: disk.vmdk cached" err &&
	cmp oout/disk.qcow2 mine/disk.qcow2
'

test_expect_success 'outputs: without a disk, or a format twice, is refused by check' '
	sed -e "/^disk:/d" -e "/ab-boot-files/d" img/outputs.yaml >img/nodisk.yaml &&
	test_must_fail imgforge check img/nodisk.yaml 2>err &&
	grep_one "nodisk.yaml:[0-9]+:[0-9]+: error: outputs: are written from the disk, and the image has no disk: section" err &&
	sed "s/^outputs: .*/outputs: [qcow2, vmdk, qcow2]/" img/outputs.yaml >img/twice.yaml &&
	test_must_fail imgforge check img/twice.yaml 2>err &&
	grep_one "twice.yaml:[0-9]+:[0-9]+: error: outputs: .qcow2. is listed twice" err &&
	sed "s/^outputs: .*/outputs: [vdi]/" img/outputs.yaml >img/vdi.yaml &&
	test_must_fail imgforge check img/vdi.yaml 2>err &&
	grep -q "invalid .* .vdi.: expected one of raw, qcow2, vhd, vmdk" err
'

# refuse_export REGEX ARGS...: one error line, status 1 or 2, no output, no temporary file.
refuse_export() {
	local re=$1 out=out.qcow2
	shift
	for a in "$@"; do case $a in -o?*) out=${a#-o} ;; esac; done
	rm -f err
	test_must_fail "$IMG" export "$@" 2>err || return 1
	grep_one "^error: export: $re" err || return 1
	test "$(wc -l <err)" = 1 || { echo "more than one line:"; cat err; return 1; }
	test ! -e "$out" || test -L "$out" || test "$out" = disk.raw || { echo "$out left behind"; return 1; }
	! ls ./*.tmp-* 2>/dev/null
}

test_expect_success 'hostile and wrong input: one clear line, nothing written' '
	refuse_export ".vdi. is not a format imgforge writes; give raw, qcow2, vhd or vmdk" \
		disk.raw --format vdi -oout.qcow2 &&
	refuse_export "cannot tell the format from .out.bin.; give --format" disk.raw -oout.bin &&
	refuse_export "no output given" disk.raw &&
	refuse_export "cannot open .\./missing.raw.: No such file or directory" ./missing.raw -oout.qcow2 &&
	refuse_export ".missing.raw. is neither a file nor a registered build" missing.raw -oout.qcow2 &&
	mkdir adir &&
	refuse_export ".adir. is a directory, not a disk" adir -oout.qcow2 &&
	head -c 1000 /dev/urandom >odd.raw &&
	refuse_export ".odd.raw. is not a disk: 1000 bytes is not a whole number of 512-byte sectors" odd.raw -oout.qcow2 &&
	: >empty.raw &&
	refuse_export ".empty.raw. is not a disk: 0 bytes" empty.raw -oout.qcow2 &&
	refuse_export ".t1/c.qcow2. is a qcow2 image, not a raw disk" t1/c.qcow2 -oout.qcow2 &&
	refuse_export ".t1/s.vmdk. is a VMDK image, not a raw disk" t1/s.vmdk -oout.qcow2 &&
	refuse_export ".t1/f.vhd. is a VHD image, not a raw disk" t1/f.vhd -oout.qcow2 &&
	refuse_export "a vhd image is not compressed" disk.raw -oout.vhd -c &&
	refuse_export "--compression-type is for compressed qcow2" disk.raw -oout.qcow2 --compression-type zstd &&
	refuse_export "--subformat is for vhd images" disk.raw -oout.qcow2 --subformat dynamic &&
	refuse_export ".disk.raw. is the disk being exported" disk.raw -odisk.raw --format raw &&
	ln -s elsewhere.qcow2 link.qcow2 &&
	refuse_export ".link.qcow2. is a symbolic link; imgforge does not write through one" \
		disk.raw -olink.qcow2 &&
	test ! -e elsewhere.qcow2 &&
	refuse_export "cannot create a file beside .nodir/x.qcow2.: No such file or directory" \
		disk.raw -onodir/x.qcow2
'

test_expect_success 'a full disk: one line, the old file kept, no temporary file' '
	mkdir -p full &&
	if ! unshare -m true 2>/dev/null; then echo "unshare -m not permitted: not root?"; exit 0; fi &&
	rc=0 && unshare -m sh -c "
		mount -t tmpfs -o size=4m tmpfs full &&
		echo old >full/x.qcow2 &&
		\"$IMG\" export disk.raw -o full/x.qcow2 2>err; echo \$? >rc;
		cat full/x.qcow2 >old; ls full >left" &&
	test "$(cat rc)" = 1 &&
	grep_one "^error: export: no space left on the device writing the qcow2 image" err &&
	test $(wc -l <err) = 1 &&
	test "$(cat old)" = old && test "$(cat left)" = x.qcow2
'

test_expect_success 'an export stopped by SIGINT or SIGTERM leaves no file behind' '
	head -c $((64 * MIB)) /dev/urandom >noise.raw &&
	for sig in INT TERM; do
		echo old >stopped.qcow2 &&
		{ "$IMG" export noise.raw -o stopped.qcow2 -c --threads 1 2>err & } &&
		pid=$! &&
		for i in $(seq 100); do ls stopped.qcow2.tmp-* >/dev/null 2>&1 && break; sleep 0.05; done &&
		kill -$sig $pid &&
		rc=0 && { wait $pid || rc=$?; } &&
		test $rc -gt 128 &&
		test "$(cat stopped.qcow2)" = old &&
		! ls stopped.qcow2.tmp-* 2>/dev/null || exit 1
	done
'

test_expect_success 'the exported qcow2, VMDK and VHDs (fixed, dynamic) of a BIOS boot disk boot in QEMU' '
	require_tool qemu-system-x86_64 qemu-system-x86 &&
	test -f /usr/share/seabios/bios-256k.bin &&
	python3 "$SRCDIR/tests/e2e/boot-fixture.py" hello.img "IMGFORGE-EXPORT 7\r\n" &&
	truncate -s 8M hello.img &&
	imgforge -q export hello.img -o hello.qcow2 -c &&
	imgforge -q export hello.img -o hello.vmdk &&
	imgforge -q export hello.img -o hello-fixed.vhd --subformat fixed &&
	imgforge -q export hello.img -o hello-dynamic.vhd --subformat dynamic &&
	start=$(date +%s) &&
	for d in hello.qcow2 hello.vmdk hello-fixed.vhd hello-dynamic.vhd; do
		imgforge boot "$d" --firmware bios --snapshot --expect "^IMGFORGE-EXPORT 7$" \
			--timeout 120 --quiet 2>err || { cat err; exit 1; }
		grep -q "^boot: (qcow2|vmdk)" err || true
	done &&
	echo "four boots: $(( $(date +%s) - start )) s"
'

test_done
