#!/bin/bash
# imgforge mkfs --lineage and the build's root filesystem: the UUID, the
# directory hash seed and the checksum seed come from the image's identity,
# not its content, so two versions differ only in the blocks their content
# touches; content placement keeps a growing application file from moving
# the base system. Checked with e2fsck, dumpe2fs and debugfs.
. "$SRCDIR/tests/e2e/lib.sh"

export SOURCE_DATE_EPOCH=1700000000

# Differing 4-KiB blocks of two images of the same size.
diffblocks() { # a b
	cmp -l "$1" "$2" | awk '{ print int(($1 - 1) / 4096) }' | uniq | wc -l
}

sb_field() { # image field
	dumpe2fs -h "$1" 2>/dev/null | sed -n "s/^$2: *//p"
}

mkimg() { # out overlay [options...]
	local out=$1 ovl=$2
	shift 2
	imgforge mkfs --from base.tar --overlay "$ovl" --size 64M -o "$out" "$@" 2>>log
}

test_expect_success 'tools and fixtures' '
	require_tool e2fsck e2fsprogs &&
	require_tool dumpe2fs e2fsprogs &&
	require_tool debugfs e2fsprogs &&
	require_tool python3 python3 &&
	python3 - <<-\PY &&
	import io, random, tarfile
	rnd = random.Random(1)
	with tarfile.open("base.tar", "w") as tf:
	    def add(name, data):
	        ti = tarfile.TarInfo(name)
	        ti.size, ti.mtime, ti.mode = len(data), 1690000000, 0o644
	        tf.addfile(ti, io.BytesIO(data))
	    # a directory large enough to be hashed (htree), and some larger files
	    for i in range(3000):
	        add("usr/share/many/file-%05d" % i, rnd.randbytes(rnd.randint(100, 3000)))
	    for i in range(40):
	        add("usr/lib/lib%02d.so" % i, rnd.randbytes(65536))
	PY
	mkdir -p a/opt/app edit/opt/app grow/opt/app &&
	for i in $(seq 1 200); do echo "option_$i = value $i"; done >a/opt/app/app.conf &&
	sed "s/^option_100 = value 100\$/option_100 = value 100, changed/" a/opt/app/app.conf \
		>edit/opt/app/app.conf &&
	! cmp -s a/opt/app/app.conf edit/opt/app/app.conf &&
	cp a/opt/app/app.conf grow/opt/app/app.conf &&
	head -c 1048576 /dev/urandom >a/opt/app/data.bin &&
	cp a/opt/app/data.bin edit/opt/app/data.bin &&
	cat a/opt/app/data.bin a/opt/app/data.bin >grow/opt/app/data.bin &&
	for i in $(seq 1 10); do
		head -c 40000 /dev/urandom >a/opt/app/lib$i.so &&
		cp a/opt/app/lib$i.so edit/opt/app/ && cp a/opt/app/lib$i.so grow/opt/app/ || exit 1
	done
'

test_expect_success 'same lineage, one line changed: a few blocks differ, the UUID is the same' '
	mkimg a.ext4 a --lineage appliance &&
	mkimg edit.ext4 edit --lineage appliance &&
	n=$(diffblocks a.ext4 edit.ext4) &&
	echo "differing blocks: $n" &&
	test "$n" -gt 0 && test "$n" -lt 100 &&
	test "$(sb_field a.ext4 "Filesystem UUID")" = "$(sb_field edit.ext4 "Filesystem UUID")" &&
	test "$(sb_field a.ext4 "Directory Hash Seed")" = \
		"$(sb_field edit.ext4 "Directory Hash Seed")" &&
	e2fsck -fn a.ext4 >fsck.out 2>&1 || { cat fsck.out; false; } &&
	e2fsck -fn edit.ext4 >fsck.out 2>&1 || { cat fsck.out; false; }
'

test_expect_success 'without --lineage the identity still comes from the content' '
	mkimg ca.ext4 a &&
	mkimg cedit.ext4 edit &&
	test "$(sb_field ca.ext4 "Filesystem UUID")" != "$(sb_field cedit.ext4 "Filesystem UUID")" &&
	! sb_field ca.ext4 "Filesystem features" | grep -qw metadata_csum_seed &&
	n=$(diffblocks ca.ext4 cedit.ext4) &&
	echo "differing blocks: $n" &&
	test "$n" -gt 100
'

test_expect_success 'the UUID and both seeds come from the lineage and the label' '
	mkimg other.ext4 a --lineage other &&
	mkimg label.ext4 a --lineage appliance --label data &&
	mkimg small.ext4 grow --lineage appliance &&
	u=$(sb_field a.ext4 "Filesystem UUID") &&
	test "$(sb_field small.ext4 "Filesystem UUID")" = "$u" &&
	test "$(sb_field other.ext4 "Filesystem UUID")" != "$u" &&
	test "$(sb_field label.ext4 "Filesystem UUID")" != "$u" &&
	test "$(sb_field other.ext4 "Directory Hash Seed")" != \
		"$(sb_field a.ext4 "Directory Hash Seed")" &&
	test "$(sb_field other.ext4 "Checksum seed")" != "$(sb_field a.ext4 "Checksum seed")" &&
	echo "$u" | grep -Eq "^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\$"
'

test_expect_success 'metadata_csum_seed: dumpe2fs and debugfs show the seed' '
	sb_field a.ext4 "Filesystem features" | grep -qw metadata_csum_seed &&
	sb_field a.ext4 "Filesystem features" | grep -qw metadata_csum &&
	seed=$(sb_field a.ext4 "Checksum seed") &&
	echo "$seed" | grep -Eq "^0x[0-9a-f]{8}\$" &&
	debugfs -R stats a.ext4 2>/dev/null | grep -q "Checksum seed: *$seed"
'

# GRUB reads /boot from the root filesystem: its ext4 driver must accept the
# metadata_csum_seed feature (grub-fstest is built from the same sources as
# the modules imgforge puts in its bootloader).
test_expect_success 'GRUB reads a filesystem with metadata_csum_seed' '
	require_tool grub-fstest grub-common &&
	grub-fstest a.ext4 cat /opt/app/app.conf >grub.out &&
	cmp grub.out a/opt/app/app.conf
'

test_expect_success '--uuid with --lineage: only the blocks holding the UUID differ' '
	mkimg u.ext4 a --lineage appliance --uuid 01234567-89ab-4cde-8f01-23456789abcd &&
	test "$(sb_field u.ext4 "Filesystem UUID")" = 01234567-89ab-4cde-8f01-23456789abcd &&
	test "$(sb_field u.ext4 "Checksum seed")" = "$(sb_field a.ext4 "Checksum seed")" &&
	e2fsck -fn u.ext4 >fsck.out 2>&1 || { cat fsck.out; false; } &&
	n=$(diffblocks a.ext4 u.ext4) &&
	echo "differing blocks: $n" &&
	test "$n" -le 4
'

test_expect_success 'the same inputs give the same bytes, with and without a lineage' '
	mkimg a2.ext4 a --lineage appliance &&
	cmp a.ext4 a2.ext4 &&
	mkimg ca2.ext4 a &&
	cmp ca.ext4 ca2.ext4
'

test_expect_success 'an application file that doubles moves only what follows it in /opt/app' '
	mkimg grow.ext4 grow --lineage appliance &&
	e2fsck -fn grow.ext4 >fsck.out 2>&1 || { cat fsck.out; false; } &&
	n=$(diffblocks a.ext4 grow.ext4) &&
	echo "differing blocks: $n (256 new, about 100 of lib*.so after data.bin)" &&
	test "$n" -lt 500 &&
	debugfs -R "dump /opt/app/data.bin dumped" grow.ext4 2>/dev/null &&
	cmp dumped grow/opt/app/data.bin
'

test_expect_success 'a bad lineage: one line, non-zero, no image' '
	test_must_fail imgforge mkfs --from base.tar -o bad.ext4 --lineage "no spaces" 2>err &&
	test "$(wc -l <err)" = 1 &&
	grep -q "invalid lineage .no spaces." err &&
	test_must_fail imgforge mkfs --from base.tar -o bad.ext4 --lineage "" 2>err &&
	grep -q "invalid lineage" err &&
	! ls bad.ext4* 2>/dev/null
'

# A build's root filesystem: the lineage is the image name, or update.lineage.
recipe() { # dir lineage-line
	printf "image: fmt\nversion: 1\nbase: {tarball: ../r.tar.gz, sha256: %s}\noverlays: [ovl]\n%s" \
		"$(sha256sum r.tar.gz | cut -c1-64)" "$2" >"$1/image.yaml"
}

test_expect_success 'build: two versions of one image share the UUID, few blocks differ' '
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" r.tar.gz &&
	mkdir -p v1/ovl/etc v2/ovl/etc &&
	for i in $(seq 1 50); do echo "line $i"; done >v1/ovl/etc/app.conf &&
	sed "s/^line 25\$/line 25 changed/" v1/ovl/etc/app.conf >v2/ovl/etc/app.conf &&
	recipe v1 "" && recipe v2 "" &&
	(cd v1 && imgforge build --cache ../c -o o image.yaml 2>err) &&
	(cd v2 && imgforge build --cache ../c -o o image.yaml 2>err) &&
	test "$(stat -c %s v1/o/root.ext4)" = "$(stat -c %s v2/o/root.ext4)" &&
	n=$(diffblocks v1/o/root.ext4 v2/o/root.ext4) &&
	echo "differing blocks: $n" &&
	test "$n" -gt 0 && test "$n" -lt 100 &&
	u=$(sb_field v1/o/root.ext4 "Filesystem UUID") &&
	test "$(sb_field v2/o/root.ext4 "Filesystem UUID")" = "$u" &&
	imgforge mkfs --from base.tar -o fmt.ext4 --lineage fmt --label root 2>>log &&
	test "$(sb_field fmt.ext4 "Filesystem UUID")" = "$u" &&
	e2fsck -fn v2/o/root.ext4 >fsck.out 2>&1 || { cat fsck.out; false; }
'

# update: needs an A/B disk: the boot files from recipes/ab-boot-files.yaml, a
# stand-in kernel and the tools the agent checks for.
test_expect_success 'build: update.lineage names the lineage instead of the image' '
	imgforge keygen -o keys 2>>log &&
	mkdir -p v3/tools/boot v3/tools/usr/sbin v3/tools/usr/bin &&
	cp -r v1/ovl v3/ &&
	echo kernel >v3/tools/boot/vmlinuz-6.1.0-test &&
	echo initrd >v3/tools/boot/initrd.img-6.1.0-test &&
	for t in usr/sbin/sfdisk usr/bin/partx usr/sbin/e2fsck usr/sbin/resize2fs; do
		printf "#!/bin/sh\n" >v3/tools/$t && chmod +x v3/tools/$t || exit 1
	done &&
	cp -r v3 v4 &&
	for v in v3 v4; do
		recipe $v "include: [$SRCDIR/recipes/ab-boot-files.yaml]
overlays: [ovl, tools]
disk: {root_size: 64M, data_size: 32M}
update:
  keyring: [../keys/signing.crt]
  lineage: atarys-appliance
" || exit 1
	done &&
	sed -i "/^overlays: \[ovl\]\$/d" v3/image.yaml v4/image.yaml &&
	(cd v3 && imgforge build --cache ../c -o o image.yaml 2>err) || { cat v3/err; false; } &&
	imgforge mkfs --from base.tar -o lin.ext4 --lineage atarys-appliance --label root 2>>log &&
	test "$(sb_field v3/o/root.ext4 "Filesystem UUID")" = "$(sb_field lin.ext4 "Filesystem UUID")" &&
	test "$(sb_field v3/o/root.ext4 "Filesystem UUID")" != "$(sb_field v1/o/root.ext4 "Filesystem UUID")" &&
	sed -i "s/lineage: atarys-appliance/lineage: \"not a name\"/" v4/image.yaml &&
	(cd v4 && test_must_fail imgforge check image.yaml >out 2>&1) &&
	cat v4/out &&
	grep -q "image.yaml:[0-9]*:[0-9]*: error: invalid lineage .not a name." v4/out
'

test_done
