#!/bin/bash
# imgforge mkfs on hostile and broken archives: one clear error naming the
# archive and the entry, a non-zero exit (never a crash: run under ASan+UBSan
# when make check provides that build), and no output file.
. "$SRCDIR/tests/e2e/lib.sh"

IMG=${IMGFORGE_SAN:-$IMGFORGE}
fixture() { python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" "$@"; }

test_expect_success 'tools' '
	require_tool python3 python3
'

test_expect_success '".." leaving the root is refused' '
	fixture hostile dotdot dotdot.tar &&
	refuse "archive .dotdot.tar.: entry .a/\.\./\.\./etc/shadow.: path leaves the image root" \
		--from dotdot.tar
'

test_expect_success 'an absolute path with ".." leaving the root is refused' '
	fixture hostile absolute-dotdot abs.tar &&
	refuse "archive .abs.tar.: entry ./\.\./\.\./etc/shadow.: path leaves the image root" \
		--from abs.tar
'

test_expect_success 'writing through a symlink to no directory of the image is refused' '
	fixture hostile symlink sym.tar &&
	refuse "archive .sym.tar.: entry .a/passwd.: the symlink ./a. \(-> /etc\) does not lead to a directory of the image" \
		--from sym.tar
'

test_expect_success 'writing through a relative symlink leaving the image is refused' '
	fixture hostile symlink-relative symrel.tar &&
	refuse "archive .symrel.tar.: entry .d/up/etc/passwd.: the symlink ./d/up. \(-> \.\./\.\.\) leads out of the image" \
		--from symrel.tar
'

test_expect_success 'writing through a symlink planted by an earlier layer is checked too' '
	fixture hostile symlink-layer1 l1.tar &&
	fixture hostile symlink-layer2 l2.tar &&
	refuse "archive .l2.tar.: entry .a/passwd.: the symlink ./a. \(-> /etc\) does not lead" \
		--from l1.tar --from l2.tar
'

test_expect_success 'a hard link to a path that does not exist is refused' '
	fixture hostile hardlink-missing hl.tar &&
	refuse "archive .hl.tar.: entry .x.: hard link to ./does/not/exist., which does not exist in the image" \
		--from hl.tar
'

test_expect_success 'a hard link leaving the root is refused' '
	fixture hostile hardlink-outside hlo.tar &&
	refuse "archive .hlo.tar.: entry .x.: path leaves the image root" --from hlo.tar
'

test_expect_success 'a name longer than 255 bytes is refused' '
	fixture hostile longname long.tar &&
	refuse "archive .long.tar.: entry .d/n{256}.: a file name is longer than 255 bytes" \
		--from long.tar
'

test_expect_success 'a truncated archive is refused' '
	fixture everything whole.tar manifest &&
	head -c 200000 whole.tar >trunc.tar &&
	refuse "cannot read .trunc.tar. (at|after) entry .usr/bin/blob.: .*[Tt]runcated" --from trunc.tar &&
	gzip -c whole.tar | head -c 20000 >trunc.tar.gz &&
	refuse "cannot read .trunc.tar.gz.( (at|after) entry .[^ ]*.)?: .*" --from trunc.tar.gz
'

test_expect_success 'a corrupt archive is refused' '
	cp whole.tar corrupt.tar &&
	off=$(grep -boa "usr/bin/blob" whole.tar | head -1 | cut -d: -f1) &&
	test "$((off % 512))" = 0 &&
	printf "garbage!" | dd of=corrupt.tar bs=1 seek=$((off + 148)) conv=notrunc status=none &&
	refuse "cannot read .corrupt.tar. after entry .home/alice/far.: Damaged tar archive" --from corrupt.tar &&
	head -c 5000 /dev/urandom >noise.tar &&
	refuse "cannot read .noise.tar.: .*" --from noise.tar &&
	: >empty.tar &&
	refuse "cannot read .empty.tar.: .*" --from empty.tar
'

test_expect_success 'a file larger than the whole image is refused' '
	fixture hostile big big.tar &&
	refuse ".*/big. \(entry 0 of archive .big.tar.\) holds 3.0 MiB of data, more than the whole image \(2.0 MiB\)" \
		--from big.tar --size 2M
'

test_expect_success 'a malformed POSIX ACL xattr is refused, naming the entry' '
	fixture hostile acl-short acls.tar &&
	refuse ".?/f. \(entry 0 of archive .acls.tar.\): malformed POSIX ACL in system.posix_acl_access \(2 bytes\)" \
		--from acls.tar &&
	fixture hostile acl-tag aclt.tar &&
	refuse ".?/f. \(entry 0 of archive .aclt.tar.\): malformed POSIX ACL in system.posix_acl_access \(12 bytes\)" \
		--from aclt.tar
'

test_expect_success 'a missing input is named' '
	refuse "cannot open .nope.tar.: No such file or directory" --from nope.tar
'

test_expect_success 'killed while writing: no temporary file, no partial image' '
	fixture big many.tar 20000 &&
	for delay in 0.05 0.1 0.2 0.3 0.5; do
		rm -f out.ext4 &&
		{ timeout -s KILL $delay "$IMGFORGE" mkfs --from many.tar --from whole.tar \
			-o out.ext4 2>/dev/null || true; } &&
		! ls out.ext4.tmp-* 2>/dev/null &&
		if [ -e out.ext4 ]; then e2fsck -fn out.ext4 >/dev/null 2>&1; fi ||
			{ echo "after $delay s"; exit 1; }
	done
'

test_expect_success 'a FIFO or a device as --from is refused, not read' '
	mkfifo from.fifo &&
	rc=0; timeout 20 "$IMGFORGE" mkfs --from from.fifo -o fifo.ext4 2>err || rc=$?
	test $rc -eq 1 && grep -q "cannot read .from.fifo.: not a regular file or directory" err &&
	rc=0; timeout 20 "$IMGFORGE" mkfs --from /dev/zero -o zero.ext4 2>err || rc=$?
	test $rc -eq 1 && grep -q "cannot read ./dev/zero.: not a regular file or directory" err
'

test_expect_success 'nothing on the host was touched' '
	! grep -q pwned /etc/passwd /etc/shadow 2>/dev/null &&
	test ! -e etc/shadow && test ! -e a/passwd
'

test_done
