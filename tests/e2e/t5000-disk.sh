#!/bin/bash
# The bootable A/B disk: verified with sgdisk, sfdisk, fsck.fat, e2fsck;
# byte-identical rebuilds; boots under UEFI and BIOS; boot counting falls
# through to slot B; a damaged grubenv; growth of the data partition.
# imgforge-test: slow
. "$SRCDIR/tests/e2e/lib.sh"

for t in mmdebstrap:mmdebstrap sgdisk:gdisk sfdisk:fdisk fsck.fat:dosfstools mcopy:mtools \
	e2fsck:e2fsprogs qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
test -e /usr/share/OVMF/OVMF_CODE_4M.fd || test -e /usr/share/OVMF/OVMF_CODE.fd ||
	{ echo "missing OVMF: install the Debian package 'ovmf'" >&2; exit 1; }
export IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
export MTOOLS_SKIP_CHECK=1
IMG=$SRCDIR/images/test-boot.yaml
MIB=1048576

# part N FILE: start and size in bytes of partition N, from sfdisk.
part() {
	sfdisk --json "$2" | python3 -c "
import json, sys
p = json.load(sys.stdin)['partitiontable']['partitions'][$1 - 1]
print(p['start'] * 512, p['size'] * 512)"
}
extract() { # N DISK OUT
	set -- "$1" "$2" "$3" $(part "$1" "$2")
	dd if="$2" of="$3" bs=$MIB skip=$(($4 / MIB)) count=$(($5 / MIB)) status=none
}
# setenv DISK NAME=VALUE...: rewrite EFI/BOOT/grubenv (and the copy) in the ESP.
setenv() {
	local disk=$1 off; shift
	off=$(part 2 "$disk" | cut -d" " -f1)
	python3 - "$@" >env.new <<'PY'
import sys
body = "# GRUB Environment Block\n" + "".join(a + "\n" for a in sys.argv[1:])
sys.stdout.write(body + "#" * (1024 - len(body)))
PY
	mcopy -o -i "$disk@@$off" env.new ::/EFI/BOOT/grubenv &&
	mcopy -o -i "$disk@@$off" env.new ::/EFI/BOOT/grubenv.bak
}
getenv() { # DISK [FILE]
	mtype -i "$1@@$(part 2 "$1" | cut -d" " -f1)" "::/EFI/BOOT/${2:-grubenv}" | tr -d '#'
}
boot() { # DISK FIRMWARE REGEX...   ($BOOT_OPTS: more options)
	local disk=$1 fw=$2; shift 2
	local args=(${BOOT_OPTS:-})
	for re in "$@"; do args+=(--expect "$re"); done
	imgforge boot "$disk" --firmware "$fw" --timeout 420 --quiet --log "console-$fw.log" "${args[@]}"
}

test_expect_success 'build writes a disk.raw that the partitioning tools find clean' '
	imgforge build --cache cache -o out "$IMG" 2>err &&
	test -f out/disk.raw && test -f out/root.ext4 &&
	e2fsck -fn out/root.ext4 &&
	sgdisk -v out/disk.raw | grep -q "No problems found" &&
	sfdisk --verify out/disk.raw &&
	sfdisk --dump out/disk.raw >dump &&
	for n in bios esp root-a root-b data; do grep -q "name=\"$n\"" dump || exit 1; done &&
	grep -q "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B.*name=\"esp\"" dump &&
	grep -q "type=21686148-6449-6E6F-744E-656564454649.*name=\"bios\"" dump &&
	test "$(grep -c "type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709" dump)" -eq 2
'

test_expect_success 'each partition holds a clean filesystem' '
	extract 2 out/disk.raw esp.img && fsck.fat -n esp.img &&
	mdir -i esp.img ::/EFI/BOOT >ls && grep -qi bootx64 ls && grep -qi grubenv ls &&
	mtype -i esp.img ::/EFI/BOOT/grub.cfg | grep -q "save_env" &&
	extract 3 out/disk.raw root-a.img && e2fsck -fn root-a.img &&
	cmp <(head -c $(stat -c %s out/root.ext4) root-a.img) out/root.ext4 &&
	extract 5 out/disk.raw data.img && e2fsck -fn data.img &&
	test "$(blkid -o value -s LABEL data.img)" = data &&
	extract 4 out/disk.raw root-b.img && ! grep -q . <(tr -d "\0" <root-b.img | head -c 1) &&
	test "$(getenv out/disk.raw | grep -c .)" -ge 3 && getenv out/disk.raw | grep -qx "ORDER=A B"
'

test_expect_success 'rebuilding rootfs and disk gives the same bytes' '
	python3 -c "
import json, os
m = json.load(open(\"out/manifest.json\"))
for k in (m[\"stage_keys\"][\"rootfs\"], m[\"stage_keys\"][\"disk\"]):
    os.remove(os.path.join(\"cache/objects\", k))
" &&
	imgforge build --cache cache -o out2 "$IMG" 2>err &&
	grep -q "base: cached" err && ! grep -q "disk: cached" err &&
	cmp out/disk.raw out2/disk.raw
'

test_expect_success 'boots under UEFI (OVMF) to slot A and marks it good' '
	cp --sparse=always out/disk.raw uefi.raw &&
	boot uefi.raw uefi "imgforge\.slot=A imgforge\.fallback=0" "slot A marked good" &&
	getenv uefi.raw | grep -qx "A_TRIES=0" && getenv uefi.raw grubenv.bak | grep -qx "A_TRIES=0" &&
	extract 2 uefi.raw esp-after.img && { fsck.fat -n esp-after.img >fsck.out 2>&1 || true; } &&
	! grep -q "free cluster" fsck.out

'

test_expect_success 'boots under BIOS (SeaBIOS) from the same disk' '
	BOOT_OPTS=--snapshot boot out/disk.raw bios "imgforge\.slot=A" "slot A marked good"
'

test_expect_success 'slot A out of tries: GRUB falls through to slot B' '
	cp --sparse=always out/disk.raw ab.raw &&
	set -- $(part 4 ab.raw) &&
	dd if=out/root.ext4 of=ab.raw bs=$MIB seek=$(($1 / MIB)) conv=notrunc,sparse status=none &&
	setenv ab.raw "ORDER=A B" A_TRIES=3 B_TRIES=0 &&
	boot ab.raw uefi "imgforge\.slot=B imgforge\.fallback=0" "slot B marked good" &&
	getenv ab.raw | grep -qx "A_TRIES=3" && getenv ab.raw | grep -qx "B_TRIES=0"
'

test_expect_success 'no slot with tries left: GRUB still boots the first, marked as a fallback' '
	cp --sparse=always out/disk.raw fb.raw &&
	setenv fb.raw "ORDER=A B" A_TRIES=3 B_TRIES=3 &&
	boot fb.raw bios "no slot has tries left, booting A" "imgforge\.slot=A imgforge\.fallback=1"
'

test_expect_success 'a damaged grubenv: GRUB uses the copy and the disk still boots' '
	cp --sparse=always out/disk.raw bad.raw &&
	head -c 1024 /dev/urandom >junk &&
	mcopy -o -i "bad.raw@@$(part 2 bad.raw | cut -d" " -f1)" junk ::/EFI/BOOT/grubenv &&
	boot bad.raw uefi "grubenv is damaged, using the copy" "slot A marked good" &&
	getenv bad.raw | grep -qx "A_TRIES=0"
'

test_expect_success 'a larger disk: data partition, filesystem and backup GPT grow on first boot' '
	qemu-img convert -O qcow2 out/disk.raw big.qcow2 &&
	qemu-img resize -q big.qcow2 +1G &&
	boot big.qcow2 bios "grown to 1088 MiB" "slot A marked good" &&
	qemu-img convert -O raw big.qcow2 big.raw &&
	sgdisk -v big.raw | grep -q "No problems found" &&
	set -- $(part 5 big.raw) && test $(($2 / MIB)) -eq 1088 &&
	extract 5 big.raw data2.img && e2fsck -fn data2.img &&
	dumpe2fs -h data2.img 2>/dev/null >fs.txt &&
	test $(($(sed -n "s/^Block count: *//p" fs.txt) * $(sed -n "s/^Block size: *//p" fs.txt) / MIB)) -eq 1088
'

# Health-gated blessing: an image whose health check never passes is not
# marked good; it reboots, and GRUB, the tries used up, boots slot B (here
# the plain test-boot root filesystem, which has no check and is marked good).
test_expect_success 'an unhealthy slot is not marked good, reboots, and GRUB falls back to slot B' '
	cat >sick.yaml <<-EOF &&
	include: [$IMG]
	image: test-boot-sick
	files:
	  - {path: /usr/lib/imgforge/health.d/50-never, mode: "0755", content: "#!/bin/sh\necho this check never passes\nexit 1\n"}
	  - {path: /etc/default/imgforge-health, content: "IMGFORGE_HEALTH_TIMEOUT=6\nIMGFORGE_HEALTH_INTERVAL=2\n"}
	EOF
	imgforge build --cache cache -o out-sick sick.yaml 2>err || { tail -5 err; exit 1; }
	cp --sparse=always out-sick/disk.raw sick.raw &&
	set -- $(part 4 sick.raw) &&
	dd if=out/root.ext4 of=sick.raw bs=$MIB seek=$(($1 / MIB)) conv=notrunc,sparse status=none &&
	setenv sick.raw "ORDER=A B" A_TRIES=2 B_TRIES=0 &&
	boot sick.raw uefi "imgforge\.slot=A imgforge\.fallback=0" \
		"health check 50-never failed: this check never passes" \
		"slot A not marked good: unhealthy after 6 s" "reboot: Restarting system" &&
	! grep -q "slot A marked good" console-uefi.log &&
	getenv sick.raw | grep -qx "A_TRIES=3" && getenv sick.raw | grep -qx "B_TRIES=0" &&
	boot sick.raw uefi "imgforge\.slot=B imgforge\.fallback=0" "slot B marked good" &&
	getenv sick.raw | grep -qx "A_TRIES=3" && getenv sick.raw | grep -qx "B_TRIES=0"
'

test_expect_success 'an unhealthy slot booted as the last resort stays up and does not reboot' '
	cp --sparse=always out-sick/disk.raw last.raw &&
	setenv last.raw "ORDER=A B" A_TRIES=3 B_TRIES=3 &&
	boot last.raw uefi "imgforge\.slot=A imgforge\.fallback=1" \
		"slot A not marked good" "booted as a fallback .*: not rebooting" &&
	! grep -q "Restarting system" console-uefi.log
'

test_done
