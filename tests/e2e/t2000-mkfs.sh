#!/bin/bash
# imgforge mkfs: every entry type, checked with e2fsck and debugfs; layering;
# host directories; determinism.
. "$SRCDIR/tests/e2e/lib.sh"

export SOURCE_DATE_EPOCH=1700000000

# debugfs on the image: the output of one request, without the banner.
dbg() { # image request
	debugfs -R "$2" "$1" 2>/dev/null </dev/null
}

# The field after "label:" in debugfs stat output, e.g. stat_field img /x Links
stat_field() { # image path field
	dbg "$1" "stat \"$2\"" | sed -n "s/.*$3: *\([^ ]*\).*/\1/p" | head -1
}

test_expect_success 'tools and fixtures' '
	require_tool e2fsck e2fsprogs &&
	require_tool debugfs e2fsprogs &&
	require_tool python3 python3 &&
	require_tool bsdtar libarchive-tools &&
	python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" everything everything.tar manifest &&
	python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" big many.tar 20000 &&
	mkdir sp &&
	truncate -s 2G sp/sparse &&
	printf start | dd of=sp/sparse conv=notrunc status=none &&
	printf middle | dd of=sp/sparse bs=1 seek=1073741824 conv=notrunc status=none &&
	printf end | dd of=sp/sparse bs=1 seek=2147483645 conv=notrunc status=none &&
	bsdtar --format pax -cf sparse.tar -C sp sparse &&
	test "$(stat -c %s sparse.tar)" -lt 1048576 &&
	gzip -k everything.tar &&
	zstd -q everything.tar -o everything.tar.zst
'

test_expect_success 'mkfs writes an image e2fsck finds clean' '
	imgforge mkfs --from everything.tar.gz --from sparse.tar --from many.tar \
		-o root.ext4 2>err &&
	grep "wrote .root.ext4." err &&
	e2fsck -fn root.ext4 >fsck.out 2>&1 || { cat fsck.out; false; } &&
	! ls root.ext4.tmp-* 2>/dev/null
'

test_expect_success 'file contents match the archive (sha256 of debugfs dump)' '
	while read -r sum path; do
		rm -f dumped &&
		dbg root.ext4 "dump \"$path\" dumped" &&
		echo "$sum  dumped" | sha256sum -c --quiet - ||
			{ echo "content of $path differs"; exit 1; }
	done <manifest &&
	test "$(wc -l <manifest)" -ge 13
'

test_expect_success 'owners, modes, setuid, setgid, sticky, ids above 65535' '
	test "$(stat_field root.ext4 /usr/bin/su Mode)" = 04755 &&
	test "$(stat_field root.ext4 /usr/bin/wall Mode)" = 02755 &&
	test "$(stat_field root.ext4 /usr/bin/wall Group)" = 5 &&
	test "$(stat_field root.ext4 /tmp Mode)" = 01777 &&
	test "$(stat_field root.ext4 /home/alice Mode)" = 0750 &&
	test "$(stat_field root.ext4 /home/alice User)" = 1001 &&
	test "$(stat_field root.ext4 /home/alice Group)" = 1002 &&
	test "$(stat_field root.ext4 /home/alice/notes.txt Mode)" = 0600 &&
	test "$(stat_field root.ext4 /home/alice/far User)" = 70000 &&
	test "$(stat_field root.ext4 /home/alice/far Group)" = 70001
'

test_expect_success 'security.capability and user xattrs' '
	dbg root.ext4 "ea_list /usr/bin/ping" >ea &&
	grep -F "security.capability (20) = 01 00 00 02 00 20 00 00 00 00 00 00 00 00 00 00 00 00 00 00" ea &&
	grep -F "user.comment (5) = \"pings\"" ea &&
	dbg root.ext4 "ea_get -f cap.bin /usr/bin/ping4 security.capability" &&
	printf "\\001\\000\\000\\002\\000\\040\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000\\000" >cap.want &&
	cmp cap.bin cap.want
'

test_expect_success 'hard links share one inode with the right link count' '
	test "$(stat_field root.ext4 /usr/bin/ping Links)" = 3 &&
	ino=$(dbg root.ext4 "ls -l /usr/bin" | awk "\$NF == \"ping\" { print \$1 }") &&
	test -n "$ino" &&
	test "$(dbg root.ext4 "ls -l /usr/bin" | awk -v i=$ino "\$1 == i" | wc -l)" = 3 &&
	test "$(stat_field root.ext4 /usr/bin Links)" = 2 &&
	test "$(stat_field root.ext4 / Links)" = 12
'

test_expect_success 'symlinks, fast and slow' '
	dbg root.ext4 "stat /usr/bin/sh" | grep -F "Fast link dest: \"dash\"" &&
	target=$(python3 -c "print(\"/\" + \"x\" * 70 + \"/\" + \"y\" * 130)") &&
	test "$(stat_field root.ext4 /srv/long-link Size)" = 202 &&
	test "$(dbg root.ext4 "cat /srv/long-link")" = "$target"
'

test_expect_success 'devices and FIFOs' '
	dbg root.ext4 "stat /dev/null" | grep -F "Type: character special" &&
	dbg root.ext4 "stat /dev/null" | grep -F "major/minor number: 01:03" &&
	dbg root.ext4 "stat /dev/sda" | grep -F "Type: block special" &&
	dbg root.ext4 "stat /dev/sda" | grep -F "major/minor number: 08:00" &&
	dbg root.ext4 "stat /dev/nvme" | grep -F "major/minor number: 259:70000" &&
	dbg root.ext4 "stat /run/initctl" | grep -F "Type: FIFO"
'

test_expect_success 'non-ASCII and 255-byte names' '
	dbg root.ext4 "ls -p /ünïcödé" | grep -F "/файл-😀.txt/" &&
	dbg root.ext4 "ls -p /srv" | grep -F "/$(printf "n%.0s" $(seq 255))/"
'

test_expect_success 'a 2 GiB sparse file stays sparse and reads back the same' '
	test "$(stat_field root.ext4 /sparse Size)" = 2147483648 &&
	test "$(stat_field root.ext4 /sparse Blockcount)" -le 64 &&
	dbg root.ext4 "dump /sparse sparse.out" &&
	cmp sparse.out sp/sparse
'

test_expect_success '20,000 files in one directory' '
	dbg root.ext4 "ls -p /many" | grep -c "/file-" >count &&
	test "$(cat count)" = 20000 &&
	test "$(dbg root.ext4 "cat /many/file-12345")" = 12345
'

test_expect_success 'a large directory is hash-indexed (dir_index)' '
	dbg root.ext4 "stat /many" | grep -E "Flags: 0x[0-9a-f]*1[0-9a-f]{3}$" &&
	dbg root.ext4 "htree /many" >htree &&
	grep -F "Indirect levels: 0" htree &&
	test "$(sed -n "s/^Number of entries (count): //p" htree)" -gt 50 &&
	test "$(stat_field root.ext4 /etc Flags)" = 0x80000
'

# Mounting needs root and loop devices; where there are none this is skipped.
if [ "$(id -u)" = 0 ] && mkdir -p mnt && mount -o loop,ro root.ext4 mnt 2>/dev/null; then
	test_expect_success 'the kernel reads it: names through the htree, capabilities' '
		test "$(cat mnt/many/file-04321)" = 4321 &&
		test "$(ls mnt/many | wc -l)" = 20000 &&
		test "$(stat -c "%a %u %g" mnt/usr/bin/su mnt/home/alice/far)" = "4755 0 0
644 70000 70001" &&
		{ ! command -v getcap >/dev/null || getcap mnt/usr/bin/ping | grep -F cap_net_raw; }
	'
	umount mnt
else
	test_skip 'the kernel reads it: names through the htree, capabilities' 'needs root and loop devices'
fi

test_expect_success 'timestamps are clamped to SOURCE_DATE_EPOCH' '
	dbg root.ext4 "stat /srv/future" | grep -F "mtime: 0x6553f100:00000000" &&
	dbg root.ext4 "stat /etc/passwd" | grep -F "mtime: 0x6553e2f0:00000000" &&
	dumpe2fs -h root.ext4 2>/dev/null | grep -E "^(Filesystem created|Last write time|Last checked):" >times &&
	test "$(grep -c "Tue Nov 14 22:13:20 2023" times)" = 3
'

test_expect_success 'two runs give byte-identical images; other content another UUID' '
	sleep 1 &&
	imgforge -q mkfs --from everything.tar.zst --from sparse.tar --from many.tar -o again.ext4 &&
	test "$(sha256sum <root.ext4)" = "$(sha256sum <again.ext4)" &&
	imgforge -q mkfs --from everything.tar -o one.ext4 &&
	e2fsck -fn one.ext4 &&
	uuid1=$(dumpe2fs -h one.ext4 2>/dev/null | sed -n "s/^Filesystem UUID: *//p") &&
	uuid2=$(dumpe2fs -h root.ext4 2>/dev/null | sed -n "s/^Filesystem UUID: *//p") &&
	test -n "$uuid1" && test "$uuid1" != "$uuid2"
'

# Under ASan every allocation starts filled with 0xbe: any heap byte that
# reached the image without being written would change it.
if [ -n "${IMGFORGE_SAN:-}" ]; then
	test_expect_success 'no uninitialised memory reaches the image (ASan malloc fill)' '
		ASAN_OPTIONS=${ASAN_OPTIONS:-}:malloc_fill_byte=190:max_malloc_fill_size=1048576 \
			"$IMGFORGE_SAN" -q mkfs --from everything.tar.zst --from sparse.tar \
			--from many.tar -o san.ext4 &&
		cmp root.ext4 san.ext4
	'
else
	test_skip 'no uninitialised memory reaches the image (ASan malloc fill)' \
		'needs the sanitizer build (make check)'
fi

test_expect_success '--label, --uuid and a fixed --size' '
	imgforge -q mkfs --from everything.tar -o l.ext4 --label appliance-root \
		--uuid 01234567-89ab-cdef-0123-456789abcdef --size 64M &&
	test "$(stat -c %s l.ext4)" = 67108864 &&
	dumpe2fs -h l.ext4 2>/dev/null | grep -E "^Filesystem volume name: +appliance-root$" &&
	dumpe2fs -h l.ext4 2>/dev/null | grep -E "^Filesystem UUID: +01234567-89ab-cdef-0123-456789abcdef$" &&
	e2fsck -fn l.ext4
'

test_expect_success 'a fixed size too small fails, says what is needed, leaves nothing' '
	test_must_fail imgforge mkfs --from many.tar -o small.ext4 --size 8M 2>err &&
	grep_one "too small for this content, which needs at least .*--size [0-9]+M" err &&
	test ! -e small.ext4 && ! ls small.ext4.tmp-* 2>/dev/null
'

test_expect_success 'later layers win; --from DIR keeps host owners; --overlay is root-owned' '
	mkdir -p base/etc over/etc over/srv &&
	echo base >base/etc/motd && chown 1234:4321 base/etc/motd &&
	mkfifo base/fifo &&
	python3 -c "import socket; s = socket.socket(socket.AF_UNIX); s.bind(\"base/sock\")" &&
	echo over >over/etc/motd && chown 999:999 over/etc/motd && chmod 0640 over/etc/motd &&
	echo new >over/srv/new && chown 5:5 over/srv/new &&
	ln over/srv/new over/srv/new-link &&
	require_tool setfattr attr &&
	setfattr -n user.origin -v host base/etc/motd &&
	imgforge -q mkfs --from everything.tar --from base -o layered.ext4 &&
	e2fsck -fn layered.ext4 &&
	test "$(stat_field layered.ext4 /etc/motd User)" = 1234 &&
	dbg layered.ext4 "ea_list /etc/motd" | grep -F "user.origin (4) = \"host\"" &&
	test "$(dbg layered.ext4 "cat /etc/motd")" = base &&
	dbg layered.ext4 "stat /sock" | grep -F "Type: socket" &&
	imgforge -q mkfs --from everything.tar --from base --overlay over -o layered.ext4 &&
	e2fsck -fn layered.ext4 &&
	test "$(dbg layered.ext4 "cat /etc/motd")" = over &&
	test "$(stat_field layered.ext4 /etc/motd User)" = 0 &&
	test "$(stat_field layered.ext4 /etc/motd Mode)" = 0640 &&
	test "$(stat_field layered.ext4 /srv/new Group)" = 0 &&
	test "$(stat_field layered.ext4 /srv/new Links)" = 2 &&
	test "$(dbg layered.ext4 "cat /srv/new-link")" = new &&
	test "$(dbg layered.ext4 "cat /etc/passwd" | head -1)" = "root:x:0:0:root:/root:/bin/sh"
'

test_expect_success 'POSIX ACLs become system.posix_acl_* in ext4 format' '
	python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" acl acl.tar &&
	imgforge -q mkfs --from acl.tar -o acl.ext4 &&
	e2fsck -fn acl.ext4 &&
	dbg acl.ext4 "ea_list /shared/f" >acl.out &&
	grep -F "system.posix_acl_access (28) = 01 00 00 00 01 00 06 00 02 00 04 00 e9 03 00 00 04 00 04 00 10 00 04 00 20 00 00 00" acl.out &&
	dbg acl.ext4 "ea_list /shared" >acl.out &&
	grep -F "system.posix_acl_default (28) = 01 00 00 00 01 00 07 00 04 00 05 00 08 00 07 00 ea 03 00 00 10 00 07 00 20 00 00 00" acl.out
'

test_expect_success 'a .deb is read through its data.tar' '
	mkdir -p deb/DEBIAN deb/usr/share/doc/hello &&
	printf "Package: hello\nVersion: 1\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: x\n" >deb/DEBIAN/control &&
	echo hi >deb/usr/share/doc/hello/README &&
	require_tool dpkg-deb dpkg &&
	dpkg-deb --root-owner-group -Zxz -b deb hello.deb >/dev/null &&
	imgforge -q mkfs --from everything.tar --from hello.deb -o deb.ext4 &&
	e2fsck -fn deb.ext4 &&
	test "$(dbg deb.ext4 "cat /usr/share/doc/hello/README")" = hi &&
	dbg deb.ext4 "ls -p /" | grep -v DEBIAN >/dev/null &&
	! dbg deb.ext4 "ls -p /" | grep -F "/DEBIAN/"
'

test_expect_success 'mkfs --help and usage errors' '
	imgforge mkfs --help | grep -F -- "--from <src>" &&
	test_must_fail imgforge mkfs --from everything.tar 2>err &&
	grep_one "no output given" err &&
	test_must_fail imgforge mkfs --from everything.tar -o x.ext4 --size lots 2>err &&
	grep_one "invalid --size" err &&
	test ! -e x.ext4
'

test_done
