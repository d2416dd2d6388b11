#!/bin/bash
# imgforge mkfs: a directory too large for a one-level htree (60,000 long
# names, over 507 leaf blocks) gets a two-level index that e2fsck and the
# kernel accept.
. "$SRCDIR/tests/e2e/lib.sh"

dbg() { debugfs -R "$2" "$1" 2>/dev/null </dev/null; }
prefix=a-rather-long-name-so-that-few-fit-in-one-block-

test_expect_success 'a two-level htree for 60,000 entries' '
	require_tool e2fsck e2fsprogs &&
	require_tool debugfs e2fsprogs &&
	require_tool python3 python3 &&
	python3 "$SRCDIR/tests/e2e/mkfs-fixture.py" big huge.tar 60000 $prefix &&
	imgforge -q mkfs --from huge.tar -o huge.ext4 &&
	e2fsck -fn huge.ext4 &&
	dbg huge.ext4 "htree /many" >htree &&
	grep -F "Indirect levels: 1" htree &&
	test "$(dbg huge.ext4 "cat /many/${prefix}54321")" = 54321 &&
	test "$(dbg huge.ext4 "ls -p /many" | grep -c "/$prefix")" = 60000
'

if [ "$(id -u)" = 0 ] && mkdir -p mnt && mount -o loop,ro huge.ext4 mnt 2>/dev/null; then
	test_expect_success 'the kernel finds names through both levels' '
		test "$(cat mnt/many/${prefix}00007)" = 7 &&
		test "$(cat mnt/many/${prefix}59999)" = 59999 &&
		test "$(ls mnt/many | wc -l)" = 60000
	'
	umount mnt
else
	test_skip 'the kernel finds names through both levels' 'needs root and loop devices'
fi

test_done
