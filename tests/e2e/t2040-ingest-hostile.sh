#!/bin/bash
# imgforge mkfs on inputs that libarchive or the tree model could misread:
# directory symlinks, deep trees, pax warnings, corrupt compressed streams,
# files that are no archive, out-of-range header fields, names with control
# characters. Each refusal is one line naming the input and the entry, with
# no output file; every image accepted passes e2fsck.
. "$SRCDIR/tests/e2e/lib.sh"

IMG=${IMGFORGE_SAN:-$IMGFORGE}
fixture() { python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" ingest "$@"; }
dbg() { debugfs -R "$2" "$1" 2>/dev/null; }

test_expect_success 'tools' '
	require_tool python3 python3 &&
	require_tool debugfs e2fsprogs &&
	require_tool dpkg-deb dpkg &&
	require_tool xz xz-utils && require_tool zstd zstd && require_tool bzip2 bzip2 &&
	require_tool lz4 lz4
'

test_expect_success 'a layer goes through a directory symlink of the image (tar and .deb)' '
	fixture merged-base base.tar &&
	fixture bin-layer layer.tar &&
	"$IMG" -q mkfs --from base.tar --from layer.tar -o merged.ext4 &&
	e2fsck -fn merged.ext4 &&
	dbg merged.ext4 "stat /bin" | grep -F "Type: symlink" &&
	test "$(dbg merged.ext4 "cat /usr/bin/sh")" = sh &&
	test "$(dbg merged.ext4 "cat /usr/bin/foo")" = foo &&
	test "$(dbg merged.ext4 "cat /usr/lib/libx.so")" = x &&
	dbg merged.ext4 "stat /usr/bin" | grep -F "Mode:  0755" &&
	mkdir -p deb/DEBIAN && tar -xf layer.tar -C deb &&
	printf "Package: foo\nVersion: 1\nArchitecture: all\nMaintainer: x <x@example.org>\nDescription: x\n" >deb/DEBIAN/control &&
	dpkg-deb --root-owner-group -Zgzip -b deb foo.deb >/dev/null &&
	"$IMG" -q mkfs --from base.tar --from foo.deb -o deb.ext4 &&
	e2fsck -fn deb.ext4 &&
	dbg deb.ext4 "stat /bin" | grep -F "Type: symlink" &&
	test "$(dbg deb.ext4 "cat /usr/bin/sh")" = sh &&
	test "$(dbg deb.ext4 "cat /usr/bin/foo")" = foo
'

test_expect_success 'an overlay directory goes through a directory symlink too' '
	mkdir -p over/bin over/lib/sub && echo bar >over/bin/bar && chmod 0700 over/lib/sub &&
	"$IMG" -q mkfs --from base.tar --overlay over -o over1.ext4 &&
	mkdir -p over2/usr/lib/sub && chmod 0750 over2/usr/lib/sub &&
	"$IMG" -q mkfs --from base.tar --overlay over2 --overlay over -o over.ext4 &&
	e2fsck -fn over.ext4 &&
	dbg over.ext4 "stat /bin" | grep -F "Type: symlink" &&
	test "$(dbg over.ext4 "cat /usr/bin/bar")" = bar &&
	test "$(dbg over.ext4 "cat /usr/bin/sh")" = sh &&
	dbg over.ext4 "stat /usr/lib/sub" | grep -F "Mode:  0750"
'

test_expect_success 'a symlink leaving the image, to a file, or looping is refused' '
	fixture symlink-outside out.tar &&
	refuse "archive .out.tar.: entry .bin/.: the symlink ./bin. \(-> \.\./\.\./usr/bin\) leads out of the image" \
		--from out.tar &&
	fixture symlink-file file.tar &&
	refuse "archive .file.tar.: entry .l/foo.: the symlink ./l. \(-> f\) does not lead to a directory" \
		--from file.tar &&
	fixture symlink-loop loop.tar &&
	refuse "archive .loop.tar.: entry .a/foo.: too many levels of symlinks at ./a." --from loop.tar
'

test_expect_success 'a path deeper than 1024 levels is refused, fast and without a crash' '
	fixture deep-1023 ok.tar &&
	"$IMG" -q mkfs --from ok.tar -o deep.ext4 &&
	e2fsck -fn deep.ext4 &&
	fixture deep-1024 deep.tar &&
	refuse "archive .deep.tar.: entry .d/d/d/.*: more than 1024 levels of directories" --from deep.tar &&
	fixture deep-300000 huge.tar && gzip -9 huge.tar &&
	test "$(stat -c %s huge.tar.gz)" -lt 4096 &&
	start=$(date +%s) &&
	refuse "archive .huge.tar.gz.: entry .d/d/d/.*: more than 1024 levels of directories" --from huge.tar.gz &&
	test $(($(date +%s) - start)) -lt 30
'

test_expect_success 'an overlay deeper than 1024 levels is refused' '
	python3 -c "import os; os.mkdir(\"deepdir\"); os.chdir(\"deepdir\"); [(os.mkdir(\"d\"), os.chdir(\"d\")) for i in range(1100)]" &&
	refuse "directory .deepdir.: entry .d/d/d/.*: more than 1024 levels of directories" \
		--from base.tar --overlay deepdir
'

test_expect_success 'a pax header libarchive only warns about is refused' '
	fixture pax-oversized pax.tar &&
	tar -tf pax.tar | grep -Fx usr/share/doc/harmless/README &&
	refuse "cannot read .pax.tar.: .*pax.*" --from pax.tar &&
	fixture pax-garbage garbage.tar &&
	refuse "cannot read .garbage.tar.: .*pax.*" --from garbage.tar
'

test_expect_success 'one flipped byte in a compressed archive is refused, naming the compressor' '
	python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" everything whole.tar manifest &&
	for c in gzip xz zstd bzip2; do
		$c -c whole.tar >whole.tar.$c &&
		"$IMG" -q mkfs --from whole.tar.$c -o ok.ext4 &&
		size=$(stat -c %s whole.tar.$c) &&
		for at in $((size / 2)) $((size - 6)); do
			cp whole.tar.$c bad.tar.$c &&
			printf "\\x$(printf %02x $(( ($(od -An -tu1 -j$at -N1 bad.tar.$c) ^ 0x10) )))" |
				dd of=bad.tar.$c bs=1 seek=$at conv=notrunc status=none &&
			! $c -t bad.tar.$c 2>/dev/null &&
			refuse "cannot read .bad.tar.$c.( (at|after) entry .[^ ]*.)?: the $c data is (corrupt|truncated).*" \
				--from bad.tar.$c || { echo "$c at $at"; exit 1; }
		done
	done
'

test_expect_success 'files that are no archive are refused, naming what is accepted' '
	fixture iso cd.iso &&
	head -c 512 /dev/zero >zero512 && head -c 1048576 /dev/zero >zero1m &&
	for f in cd.iso zero512 zero1m; do
		refuse "cannot read .$f.: not a tar archive .*gzip, bzip2, xz, lzma or zstd.* or a Debian package" \
			--from $f || exit 1
	done &&
	refuse "cannot read ./dev/zero.: not a regular file or directory" --from /dev/zero
'

test_expect_success 'compressors run as external programs are not used' '
	mkdir bin && printf "#!/bin/sh\ntouch \"$PWD/ran\"\nexec cat\n" >bin/lrzip &&
	cp bin/lrzip bin/lzop && cp bin/lrzip bin/grzip && chmod +x bin/* &&
	{ printf "LRZI\\0\\6"; head -c 100 /dev/zero; } >x.lrz &&
	PATH=$PWD/bin:$PATH refuse "cannot read .x.lrz.: .*lrzip.*" --from x.lrz &&
	test ! -e ran &&
	lz4 -q -c whole.tar >whole.tar.lz4 &&
	refuse "cannot read .whole.tar.lz4.: compressed with lz4, which imgforge does not read.*" \
		--from whole.tar.lz4
'

test_expect_success 'owners, device numbers and times out of range are refused' '
	fixture uid-big uid.tar &&
	refuse "archive .uid.tar.: entry .bin/x.: the owner 4294967296 is out of range \(0 to 4294967294\)" --from uid.tar &&
	fixture uid-negative uidn.tar &&
	refuse "archive .uidn.tar.: entry .bin/x.: the owner -1 is out of range .*" --from uidn.tar &&
	fixture dev-big dev.tar &&
	refuse "archive .dev.tar.: entry .dev/x.: the device number 4294967295:4294967295 .*4095:1048575" \
		--from dev.tar &&
	fixture mtime-old old.tar &&
	refuse "archive .old.tar.: entry .bin/x.: the modification time -99999999999 .*" --from old.tar &&
	fixture mtime-far far.tar &&
	refuse "archive .far.tar.: entry .bin/x.: the modification time 99999999999 .*" --from far.tar
'

test_expect_success 'names with control characters are quoted in messages' '
	fixture name-newline nl.tar &&
	refuse "archive .nl.tar.: entry .a\\\\nerror: fake/b.: .* is not a directory" --from nl.tar &&
	fixture name-escape esc.tar &&
	refuse "archive .esc.tar.: entry .f/\\\\x1b\]0;pwned\\\\x07\\\\x1b\[31mred\\\\xc2\\\\x9b2J.: .*" --from esc.tar &&
	! grep -q "$(printf "\\033")" err && ! grep -q "$(printf "\\302\\233")" err
'

test_expect_success 'a --from path with control characters is quoted too' '
	rc=0; imgforge mkfs --from "$(printf "no\\nerror: such")" -o x.ext4 2>err || rc=$?
	test $rc -eq 1 && test $(wc -l <err) -eq 1 &&
	grep_one "^error: cannot open .no\\\\nerror: such.: No such file or directory$" err
'

test_done
