#!/bin/bash
# Two builds of one mmdebstrap image at once on a cold cache, with `cache gc
# --max-size 0` looping beside them: mmdebstrap runs once, the other build
# waits for it and uses its base, gc deletes nothing in use, both register.
# Minutes and the apt mirror: run by `make check-concurrent`, not `make check`.
. "$SRCDIR/tests/e2e/lib.sh"

for t in mmdebstrap:mmdebstrap e2fsck:e2fsprogs; do require_tool "${t%%:*}" "${t#*:}" || exit 1; done
IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
export IMGFORGE_MIRROR
printf "%s\n" "image: mini" "version: \"1\"" "packages: [less]" \
	"base: {distro: debian, suite: bookworm, mirror: \"\${mirror}\", variant: minbase}" >img.yaml

test_expect_success 'two builds of one mmdebstrap image at once: one mmdebstrap, both succeed' '
	( while [ ! -e stop ]; do imgforge -q cache gc --cache cache --max-size 0 2>>gc.err || echo "gc failed" >>gc.err; done ) &
	gcpid=$!
	rc=0
	imgforge build --cache cache --registry reg.db -o o1 img.yaml 2>e1 &
	p1=$!
	sleep 2
	imgforge build --cache cache --registry reg.db -o o2 img.yaml 2>e2 &
	p2=$!
	wait $p1 || rc=1
	wait $p2 || rc=1
	touch stop
	wait $gcpid
	cat e1 e2 gc.err && test $rc = 0 &&
	test "$(cat o1/build.log o2/build.log | grep -c "base: running mmdebstrap")" = 1 &&
	test "$(cat e1 e2 | grep -c "waiting for another build of stage base")" = 1 &&
	e2fsck -fn o1/root.ext4 && cmp o1/root.ext4 o2/root.ext4 &&
	! grep -v "^$" gc.err &&
	test "$(imgforge ls --json --registry reg.db | grep -c "\"build_id\": ")" = 2
'

test_done
