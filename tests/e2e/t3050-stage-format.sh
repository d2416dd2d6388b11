#!/bin/bash
# A stage's cache key changes when STAGE_FORMAT_VERSION does: an output format
# change without a bump would let builds reuse outputs of the old format
# from the cache. This builds a fixed input and compares the root filesystem
# with the hash recorded under the version it was recorded with; and the
# epoch manifest.json reports for a cached root filesystem.
. "$SRCDIR/tests/e2e/lib.sh"

# Recorded together: update both, and bump STAGE_FORMAT_VERSION in
# src/build/keys.c, whenever imgforge writes different bytes for this input.
RECORDED_VERSION=6
RECORDED_ROOTFS=c1363550e9588ba2c0a487a18790460a92cfac64d28717d26f9a35757e581589

version=$(sed -n 's/^#define STAGE_FORMAT_VERSION "\(.*\)"$/\1/p' "$SRCDIR/src/build/keys.c")

test_expect_success 'the root filesystem of a fixed input matches the recorded format' '
	test -n "$version" &&
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" r.tar.gz &&
	mkdir -p ovl/etc && echo hi >ovl/etc/motd &&
	printf "image: fmt\nversion: 1\nbase: {tarball: r.tar.gz, sha256: %s}\noverlays: [ovl]\nfiles:\n  - {path: /etc/hostname, content: \"fmt\\\\n\"}\n" \
		"$(sha256sum r.tar.gz | cut -c1-64)" >image.yaml &&
	SOURCE_DATE_EPOCH=1700000000 imgforge build --cache c -o o image.yaml 2>err &&
	got=$(sha256sum o/root.ext4 | cut -c1-64) &&
	if [ "$got" != "$RECORDED_ROOTFS" ] && [ "$version" = "$RECORDED_VERSION" ]; then
		echo "root.ext4 of the fixed input is now $got, recorded as $RECORDED_ROOTFS" \
			"under STAGE_FORMAT_VERSION $RECORDED_VERSION: the output format changed," \
			"so bump STAGE_FORMAT_VERSION in src/build/keys.c (else caches keep" \
			"serving the old format) and record the new hash and version in $0" >&2
		exit 1
	elif [ "$version" != "$RECORDED_VERSION" ]; then
		echo "STAGE_FORMAT_VERSION is $version but the hash in $0 was recorded under" \
			"$RECORDED_VERSION: record root.ext4 sha256 $got and version $version there" >&2
		exit 1
	fi
'

test_expect_success 'manifest.json records the epoch a cached root filesystem was built with' '
	grep -q "^  \"epoch\": 1700000000,\$" o/manifest.json &&
	SOURCE_DATE_EPOCH=1800000000 imgforge build --cache c -o o2 image.yaml 2>err &&
	grep -q "rootfs: cached" err &&
	grep -q "^  \"epoch\": 1700000000,\$" o2/manifest.json &&
	SOURCE_DATE_EPOCH=1800000000 imgforge build --cache c2 -o o3 image.yaml 2>err &&
	grep -q "^  \"epoch\": 1800000000,\$" o3/manifest.json
'

test_done
