#!/bin/bash
# Several imgforge builds at once on one cold cache and one registry, with
# `cache gc` running beside them: every build succeeds, each stage key is
# built once (the others wait for it and hit the cache), gc never deletes an
# object a running build uses, and no registry row is lost.
. "$SRCDIR/tests/e2e/lib.sh"

require_tool e2fsck e2fsprogs || exit 1
FIX=$SRCDIR/tests/helpers/rootfs-fixture.py

# The tarballs are served over loopback with a delay, so that the base stage
# of the first build is still running when the second build of the same image
# asks for it.
mkdir -p www
python3 "$FIX" www/one.tar.gz base-files=12.4 nginx=1.22.1-9 &&
cp www/one.tar.gz www/same-bytes.tar.gz &&
python3 "$FIX" www/two.tar.gz base-files=12.4 curl=7.88.1 || exit 1
python3 "$SRCDIR/tests/helpers/httpd.py" --root www --port-file port --log requests.log &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null; cd /; rm -rf "$TEST_DIR"' EXIT
for _ in $(seq 50); do [ -s port ] && break; sleep 0.1; done
URL=http://127.0.0.1:$(cat port)

image() { # DIR TARBALL MOTD
	mkdir -p "$1/ovl/etc" &&
	echo "$3" >"$1/ovl/etc/motd" &&
	cat >"$1/image.yaml" <<-EOT
	image: $1
	version: 1.0.0
	base: {tarball: "$URL/$2?delay=1000", sha256: $(sha256sum "www/$2" | cut -d" " -f1)}
	overlays: [ovl]
	EOT
}
# a is built twice at once; b has the same tarball bytes as a under another
# name (another base key, the same download); c has its own.
image a one.tar.gz "image a" && image b same-bytes.tar.gz "image b" &&
image c two.tar.gz "image c" || exit 1

count_rows() {
	imgforge ls --json --registry reg.db | grep -c "\"build_id\": "
}

# A string field of manifest.json (written one field a line).
field() { # FILE NAME
	sed -n "s/^ *\"$2\": \"\(.*\)\",\{0,1\}\$/\1/p" "$1" | head -1
}

# Run the four builds with gc looping beside them; $1 is gc's option.
run_round() { # ROUND GC-OPTIONS...
	local round=$1 pids=() rc=0 p gcpid
	shift
	rm -rf cache "$round"
	mkdir "$round" || return 1
	( while [ ! -e "$round/stop" ]; do
		imgforge -q cache gc --cache cache "$@" >/dev/null 2>>"$round/gc.err" || echo "gc failed" >>"$round/gc.err"
	done ) &
	gcpid=$!
	for b in a1:a a2:a b:b c:c; do
		imgforge build --cache cache --registry reg.db -o "$round/${b%%:*}" \
			"${b#*:}/image.yaml" >"$round/${b%%:*}.err" 2>&1 &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || rc=1; done
	touch "$round/stop" && wait $gcpid
	for b in a1 a2 b c; do
		grep -q "^error:" "$round/$b.err" && { echo "--- $b"; cat "$round/$b.err"; }
	done
	return $rc
}

test_expect_success 'four builds at once on a cold cache, gc looping: all succeed' '
	run_round r1 &&
	for b in a1 a2 b c; do
		e2fsck -fn r1/$b/root.ext4 >/dev/null &&
		grep -q "\"sha256\": \"$(sha256sum r1/$b/root.ext4 | cut -c1-64)\"" r1/$b/manifest.json ||
		exit 1
	done &&
	cmp r1/a1/root.ext4 r1/a2/root.ext4 &&
	! grep -v "^$" r1/gc.err
'

test_expect_success 'each base and rootfs key was built once; the other build waited' '
	test "$(cat r1/a1/build.log r1/a2/build.log | grep -c "base: fetching")" = 1 &&
	test "$(cat r1/a1/build.log r1/a2/build.log | grep -c "base: cached")" = 1 &&
	test "$(cat r1/a1/build.log r1/a2/build.log | grep -c "rootfs: writing ext4")" = 1 &&
	test "$(cat r1/a1.err r1/a2.err | grep -c "waiting for another build of stage base (key [0-9a-f]\{12\}")" = 1 &&
	grep -q "base: fetching" r1/b/build.log &&
	grep -q "base: fetching" r1/c/build.log
'

test_expect_success 'no registry row lost' '
	test "$(count_rows)" = 4 &&
	for b in a1 a2 b c; do
		id=$(field r1/$b/manifest.json build_id) && test -n "$id" &&
		imgforge show --registry reg.db "$id" >/dev/null || exit 1
	done
'

test_expect_success 'gc emptying the cache in a loop deletes nothing a build uses' '
	run_round r2 --max-size 0 &&
	for b in a1 a2 b c; do
		e2fsck -fn r2/$b/root.ext4 >/dev/null || exit 1
	done &&
	cmp r1/a1/root.ext4 r2/a1/root.ext4 &&
	cmp r1/c/root.ext4 r2/c/root.ext4 &&
	! grep -v "^$" r2/gc.err &&
	test "$(count_rows)" = 8
'

test_done
