#!/bin/bash
# imgforge mkfs at ext4's limits: images of many block groups without --uuid,
# 65,000 hard links, 65,000 subdirectories, the largest file, tens of
# thousands of inodes without data, and a disk that fills up. Every image
# written must be clean for e2fsck; every refusal is one line naming the
# entry and the limit, and leaves no output.
. "$SRCDIR/tests/e2e/lib.sh"

fixture() { python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" "$@"; }
dbg() { debugfs -R "$2" "$1" 2>/dev/null </dev/null; }
stat_field() { # image path field
	dbg "$1" "stat \"$2\"" | sed -n "s/.*$3: *\([^ ]*\).*/\1/p" | head -1
}
fsck_clean() { # image
	e2fsck -fn "$1" >fsck.out 2>&1 || { echo "e2fsck -fn $1:"; cat fsck.out; return 1; }
}

# refuse REGEX ARGS...: mkfs fails with exactly one line of error matching REGEX, no output.
refuse() {
	local re=$1
	shift
	rm -f out.ext4 err
	test_must_fail imgforge mkfs "$@" -o out.ext4 2>err || return 1
	grep_one "^error: $re" err || return 1
	test "$(wc -l <err)" = 1 || { echo "more than one line:"; cat err; return 1; }
	test ! -e out.ext4 || { echo "out.ext4 left behind"; return 1; }
	! ls out.ext4.tmp-* 2>/dev/null
}

test_expect_success 'tools and fixtures' '
	require_tool e2fsck e2fsprogs &&
	require_tool debugfs e2fsprogs &&
	require_tool python3 python3 &&
	echo hello >small && tar cf small.tar small
'

test_expect_success 'group descriptor checksums are right at every size, without --uuid' '
	for size in 64M 512M 1G 2G 5G; do
		imgforge -q mkfs --from small.tar --size $size -o s.ext4 &&
		fsck_clean s.ext4 || { echo "at --size $size"; exit 1; }
	done &&
	dumpe2fs s.ext4 2>/dev/null | grep -c "BLOCK_UNINIT" >uninit &&
	test "$(cat uninit)" -gt 30
'

test_expect_success '... and with --size auto over several block groups' '
	head -c 40000000 /dev/zero | tr "\0" x >big && tar cf big.tar big &&
	imgforge -q mkfs --from big.tar --headroom 1000 -o a.ext4 &&
	test "$(dumpe2fs -h a.ext4 2>/dev/null | sed -n "s/^Block count: *//p")" -gt 65536 &&
	fsck_clean a.ext4
'

test_expect_success '65,000 hard links to one file are kept' '
	fixture links links.tar 65000 &&
	imgforge -q mkfs --from links.tar -o links.ext4 &&
	fsck_clean links.ext4 &&
	test "$(stat_field links.ext4 /f Links)" = 65000 &&
	test "$(stat_field links.ext4 /l/64999 Links)" = 65000
'

test_expect_success 'one more is refused, naming the file and the limit' '
	fixture link one.tar x f &&
	refuse ".?/f. \(entry 0 of archive .links.tar.\) has 65001 hard links; ext4 allows at most 65000 per file" \
		--from links.tar --from one.tar
'

test_expect_success 'a directory with 64,999 subdirectories counts 1 link (dir_nlink)' '
	fixture subdirs sub.tar 64999 &&
	imgforge -q mkfs --from sub.tar -o sub.ext4 &&
	fsck_clean sub.ext4 &&
	dumpe2fs -h sub.ext4 2>/dev/null | grep -E "^Filesystem features:.* dir_nlink" &&
	test "$(stat_field sub.ext4 /d Links)" = 1 &&
	test "$(stat_field sub.ext4 /d/64998 Links)" = 2 &&
	rm sub.ext4
'

test_expect_success 'a sparse file of the largest size ext4 allows is kept' '
	fixture sparse max.tar 17592186040320 &&
	imgforge -q mkfs --from max.tar -o max.ext4 &&
	fsck_clean max.ext4 &&
	test "$(stat_field max.ext4 /big Size)" = 17592186040320
'

test_expect_success 'a larger one is refused with the limit named' '
	fixture sparse over.tar 17592186040321 &&
	refuse ".?/big. \(entry 0 of archive .over.tar.\): file size 17592186040321 exceeds ext4.s maximum file size of 17592186040320 bytes" \
		--from over.tar &&
	fixture sparse pb.tar 1125899906842624 &&
	refuse ".?/big. \(entry 0 of archive .pb.tar.\): file size 1125899906842624 exceeds ext4.s maximum file size of 17592186040320 bytes" \
		--from pb.tar &&
	fixture sparse beyond.tar 17592186048512 17592186044416 &&
	refuse ".?/big. \(entry 0 of archive .beyond.tar.\): file size 17592186048512 exceeds ext4.s maximum file size of 17592186040320 bytes" \
		--from beyond.tar
'

test_expect_success '70,000 empty files or symlinks: the inode tables are sized for them' '
	fixture empty empty.tar 70000 &&
	fixture empty sym.tar 70000 symlink &&
	imgforge -q mkfs --from empty.tar -o e.ext4 &&
	fsck_clean e.ext4 &&
	test "$(dumpe2fs -h e.ext4 2>/dev/null | sed -n "s/^Inode count: *//p")" -ge 70012 &&
	imgforge -q mkfs --from sym.tar --size 1G -o e.ext4 &&
	fsck_clean e.ext4 &&
	test "$(stat -c %s e.ext4)" = 1073741824 &&
	imgforge -q mkfs --from sym.tar --headroom 1000 -o e.ext4 &&
	fsck_clean e.ext4 &&
	test "$(dumpe2fs -h e.ext4 2>/dev/null | sed -n "s/^Inode count: *//p")" -ge 770000 &&
	test "$(dbg e.ext4 "ls -p /e" | grep -c "^/[0-9]*/120777/0/0/[0-9]*/1/$")" = 70000
'

test_expect_success '... and a fixed size too small for them says what is needed' '
	refuse "an image of 16.0 MiB is too small for this content, which needs at least .*; use --size [0-9]+M or --size auto" \
		--from empty.tar --size 16M
'

# A full disk needs a small filesystem to write to: a tmpfs, mounted as root.
if [ "$(id -u)" = 0 ] && mkdir -p full && mount -t tmpfs -o size=6m tmpfs full 2>/dev/null; then
	trap 'umount "$TEST_DIR/full" 2>/dev/null; cd /; rm -rf "$TEST_DIR"' EXIT
	test_expect_success 'disk full: the output and ENOSPC are named, nothing is left' '
		head -c 12000000 /dev/urandom >noise && tar cf noise.tar noise &&
		test_must_fail imgforge mkfs --from noise.tar -o full/out.ext4 2>err &&
		grep_one "^error: cannot write .full/out.ext4.: No space left on device" err &&
		test "$(wc -l <err)" = 1 &&
		test -z "$(ls -A full)"
	'
else
	test_skip 'disk full: the output and ENOSPC are named, nothing is left' \
		'needs root to mount a small tmpfs'
fi

test_done
