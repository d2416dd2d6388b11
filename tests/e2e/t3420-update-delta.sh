#!/bin/bash
# Delta downloads: imgforge-update install URL fetches only the frames that
# neither the running slot nor the target already holds, by byte ranges of
# the bundle, from the test HTTP server on loopback (tests/helpers/httpd.py,
# whose log says which ranges it served). The slots are files, as in t3410.
. "$SRCDIR/tests/e2e/lib.sh"

agent_setup || exit 1

# A fresh disk: slot A runs v1 (image 1.0) and is good, slot B holds noise.
fresh_disk() {
	cp v1.ext4 root-a.img && truncate -s 80M root-a.img &&
	head -c 83886080 /dev/urandom >root-b.img &&
	rm -rf $ENV data && mkdir -p $ENV data &&
	grub-editenv $ENV/grubenv create &&
	grub-editenv $ENV/grubenv set "ORDER=A B" A_TRIES=0 B_TRIES=3 &&
	cp $ENV/grubenv $ENV/grubenv.bak &&
	echo "BOOT_IMAGE=/boot/vmlinuz ro imgforge.slot=A imgforge.fallback=0" >cmdline &&
	printf "IMAGE=test-update\nVERSION=1.0\n" >release &&
	: >httpd.log
}
# Bytes the server sent for PATH (ranges as asked; a 200 as the whole file).
served() {
	"$PY" - "$1" "$(stat -c %s "www/${1%%\?*}")" <<-'PYEOF'
	import re, sys
	path, size, n = sys.argv[1], int(sys.argv[2]), 0
	for line in open("httpd.log"):
	    m = re.match(r"GET /(\S+) range=(\S+) status=(\d+)", line)
	    if not m or m.group(1) != path:
	        continue
	    if m.group(3) == "200":
	        n += size
	    elif m.group(3) == "206":
	        a, b = re.match(r"bytes=(\d+)-(\d*)", m.group(2)).groups()
	        n += (int(b) if b else size - 1) - int(a) + 1
	print(n)
	PYEOF
}
# manifest BUNDLE EXPR: EXPR over m, the manifest with its chunks and pages
# (tests/e2e/bundle-tool.py, which reads the bundle without imgforge).
manifest() {
	"$PY" "$SRCDIR/tests/e2e/bundle-tool.py" manifest "www/$1" |
		"$PY" -c "import json,sys; m=json.load(sys.stdin); print($2)"
}
installed_v2() { cmp -n $(stat -c %s v2.ext4) v2.ext4 root-b.img && test "$(env_get ORDER)" = "B A"; }

test_expect_success 'setup: two ext4 images one small file apart, their bundles' '
	mkdir -p v1/etc v1/usr/lib &&
	for i in $(seq 1 40); do head -c 400000 /dev/urandom >v1/usr/lib/lib$i.so || exit 1; done &&
	seq 1 200000 >v1/etc/data.txt && echo "release 1.0" >v1/etc/motd &&
	yes "a line of text that compresses well" | head -c 8000000 >v1/usr/lib/table &&
	cp -a v1 v2 && echo "release 1.1" >v2/etc/motd && echo "x=1" >v2/etc/new.conf &&
	export SOURCE_DATE_EPOCH=1700000000 &&
	U=3f2504e0-4f89-11d3-9a0c-0305e82c3301 &&
	imgforge mkfs --from v1 -o v1.ext4 --size 64M --uuid $U &&
	imgforge mkfs --from v2 -o v2.ext4 --size 64M --uuid $U &&
	imgforge keygen -o keys &&
	K="--key keys/signing.key --cert keys/signing.crt --compatible test-update" &&
	imgforge bundle v2.ext4 -o www/v2.bundle $K --version 1.1 &&
	imgforge bundle v2.ext4 -o www/v2-format1.bundle $K --version 1.1 --format 1 &&
	# v3: one byte of a compressible file changed: one 4 KiB block apart from
	# v1, in a chunk that stores smaller than the chunk index.
	cp -a v1 v3 &&
	printf Y | dd of=v3/usr/lib/table bs=1 seek=4000000 conv=notrunc status=none &&
	imgforge mkfs --from v3 -o v3.ext4 --size 64M --uuid $U &&
	test "$(cmp -l v1.ext4 v3.ext4 | wc -l)" -le 4096 &&
	imgforge bundle v3.ext4 -o www/v3.bundle $K --version 1.2 &&
	imgforge bundle v3.ext4 -o www/v3-format2.bundle $K --version 1.2 --format 2 &&
	imgforge bundle v2.ext4 -o www/v2-format2.bundle $K --version 1.1 --format 2 &&
	echo "KEYRING=$TEST_DIR/keys/signing.crt" >update.conf &&
	imgforge bundle info www/v2.bundle >info && grep -q "^format      3$" info &&
	grep -q "^chunk index " info
'

test_expect_success 'install from a server with ranges: a small part of the bundle is downloaded' '
	fresh_disk &&
	agent install "$URL/v2.bundle" >out 2>err &&
	installed_v2 &&
	size=$(stat -c %s www/v2.bundle) && n=$(served v2.bundle) &&
	echo "served $n of $size bytes" &&
	grep -q "range=bytes=0-23 status=206" httpd.log &&
	! grep -q "v2.bundle range=- status=200" httpd.log &&
	test $((n * 20)) -lt $size &&
	grep -q "downloaded $n of the bundle.s $size bytes" err &&
	grep -qx "DOWNLOADED=$n" data/imgforge/update/last-install &&
	grep -qx "BUNDLE_SIZE=$size" data/imgforge/update/last-install &&
	grep -qx "METHOD=delta" data/imgforge/update/last-install &&
	agent status >st && grep -q "^downloaded:  $n of the bundle.s $size bytes (delta" st &&
	agent status --json >st.json &&
	"$PY" -c "import json; d=json.load(open(\"st.json\"))[\"last_install\"]; \
assert d[\"downloaded\"] == \"$n\" and d[\"method\"] == \"delta\", d"
'

test_expect_success 'one block changed: the directory, one page of the index and one frame' '
	fresh_disk &&
	agent install "$URL/v3.bundle" >out 2>err &&
	cmp -n $(stat -c %s v3.ext4) v3.ext4 root-b.img && test "$(env_get ORDER)" = "B A" &&
	grep -q "; 1 of [0-9]* chunk index pages fetched" err &&
	grep -q " 1 frames fetched" err &&
	n=$(served v3.bundle) &&
	set -- $(manifest v3.bundle "m[\"payload\"][\"offset\"] - m[\"chunk_index\"][\"size\"], \
24 + 80 * len(m[\"pages\"]), max(p[\"size\"] for p in m[\"pages\"]), m[\"chunk_index\"][\"size\"]") &&
	echo "served $n: signed head $1, directory $2, largest page $3, whole index $4" &&
	# the head, the directory, one page and one frame of at most 64 KiB
	test $n -le $(($1 + $2 + $3 + 65536 + 1024)) &&
	test $n -lt $(($1 + $4)) &&
	! grep -q "v3.bundle range=bytes=$(($1 + $2))-$(($1 + $4 - 1)) " httpd.log
'

# v4: a scattered change, one byte in each of six incompressible files: six
# places apart from v1, each inside a frame that compresses to its own size.
test_expect_success 'setup: a scattered change, bundled with 64 KiB and 32 KiB frames' '
	export SOURCE_DATE_EPOCH=1700000000 &&
	U=3f2504e0-4f89-11d3-9a0c-0305e82c3301 &&
	K="--key keys/signing.key --cert keys/signing.crt --compatible test-update" &&
	cp -a v1 v4 &&
	for i in 3 9 15 21 27 33; do
		# one byte changed (to another value than the random one it replaces)
		b=$(od -An -tu1 -j200000 -N1 v4/usr/lib/lib$i.so) &&
		printf "\\$(printf %o $(((b + 1) % 256)))" |
			dd of=v4/usr/lib/lib$i.so bs=1 seek=200000 conv=notrunc status=none || exit 1
	done &&
	imgforge mkfs --from v4 -o v4.ext4 --size 64M --uuid $U &&
	imgforge bundle v4.ext4 -o www/v4.bundle $K --version 1.4 &&
	imgforge bundle v4.ext4 -o www/v4-32k.bundle $K --version 1.4 --frame-size 32K &&
	test "$(manifest v4.bundle "m[\"frame_size\"]")" = 65536 &&
	test "$(manifest v4-32k.bundle "m[\"frame_size\"]")" = 32768
'

installed_v4() { cmp -n $(stat -c %s v4.ext4) v4.ext4 root-b.img && test "$(env_get ORDER)" = "B A"; }

test_expect_success '32 KiB frames: a bundle installs whole, from a file and from a server without ranges' '
	fresh_disk && agent install www/v4-32k.bundle >out 2>err && installed_v4 &&
	fresh_disk && agent install "$URL/v4-32k.bundle?norange=1" >out 2>err && installed_v4 &&
	grep -qx "METHOD=full" data/imgforge/update/last-install
'

test_expect_success 'a scattered change: 32 KiB frames fetch fewer bytes than 64 KiB frames, both install' '
	fresh_disk && agent install "$URL/v4.bundle" >out 2>err && installed_v4 &&
	grep -qx "METHOD=delta" data/imgforge/update/last-install &&
	n64=$(served v4.bundle) && f64=$(sed -n "s/.* \([0-9]*\) frames fetched.*/\1/p" err) &&
	fresh_disk && agent install "$URL/v4-32k.bundle" >out 2>err && installed_v4 &&
	grep -qx "METHOD=delta" data/imgforge/update/last-install &&
	n32=$(served v4-32k.bundle) && f32=$(sed -n "s/.* \([0-9]*\) frames fetched.*/\1/p" err) &&
	echo "64 KiB frames: $f64 frames, $n64 bytes; 32 KiB frames: $f32 frames, $n32 bytes" &&
	test "$f64" -ge 6 && test "$f64" -le 12 && test "$f32" -ge 6 && test "$f32" -le 12 &&
	# each place costs about half: the frames are incompressible
	test $((n32 + 6 * 16384)) -le $n64 &&
	# and the whole of v4-32k.bundle is not fetched
	test $((n32 * 10)) -lt $(stat -c %s www/v4-32k.bundle)
'

test_expect_success 'format 2, one block changed: the chunk is fetched whole, not the chunk index' '
	fresh_disk &&
	agent install "$URL/v3-format2.bundle" >out 2>err &&
	cmp -n $(stat -c %s v3.ext4) v3.ext4 root-b.img && test "$(env_get ORDER)" = "B A" &&
	grep -q "1 chunks to fetch .* fetching them whole" err &&
	n=$(served v3-format2.bundle) &&
	set -- $(manifest v3-format2.bundle "m[\"payload\"][\"offset\"], m[\"payload\"][\"size\"], \
m[\"chunk_index\"][\"size\"], max(c[\"stored_size\"] for c in m[\"chunks\"])") &&
	echo "served $n: header $1, index $3" &&
	test $n -le $(($1 + $3)) &&
	! grep -q "range=bytes=$(($1 + $2))-" httpd.log
'

test_expect_success 'format 2: a delta with its whole chunk index, and it installs' '
	fresh_disk &&
	agent install "$URL/v2-format2.bundle" >out 2>err && installed_v2 &&
	grep -qx "METHOD=delta" data/imgforge/update/last-install &&
	! grep -q "chunk index pages" err &&
	n=$(served v2-format2.bundle) && test $((n * 20)) -lt $(stat -c %s www/v2-format2.bundle)
'

test_expect_success 'a server that ignores Range: the whole bundle, and it installs' '
	fresh_disk &&
	agent install "$URL/v2.bundle?norange=1" >out 2>err &&
	installed_v2 &&
	grep -q "does not answer range requests" err &&
	grep -qx "METHOD=full" data/imgforge/update/last-install &&
	test "$(grep -c "v2.bundle?norange=1 range=- status=200" httpd.log)" = 2
'

test_expect_success 'a format-1 bundle is downloaded whole, and installs' '
	fresh_disk &&
	agent install "$URL/v2-format1.bundle" >out 2>err &&
	installed_v2 && grep -q "format-1 bundle" err
'

test_expect_success 'an install from a file reads the file, as before' '
	fresh_disk &&
	agent install www/v2.bundle >out 2>err && installed_v2 &&
	! grep -q "^METHOD=" data/imgforge/update/last-install
'

# payload_layout: "PAYLOAD_OFFSET PAYLOAD_SIZE INDEX_SIZE LARGEST_CHUNK_STORED"
payload_layout() {
	manifest v2.bundle "m[\"payload\"][\"offset\"], m[\"payload\"][\"size\"], \
m[\"chunk_index\"][\"size\"], max(c[\"stored_size\"] for c in m[\"chunks\"])"
}

# killed_at WHEN: install slowly (nothing in slot A to reuse: every frame is
# fetched), kill -9 once WHEN holds, run again; at most one chunk's frames
# (and the header and index again) are fetched twice.
killed_at() {
	fresh_disk && : >root-a.img && truncate -s 80M root-a.img && rm -f err1 || return 1
	"$AGENT" install "$URL/v2.bundle?delay=150" >out1 2>err1 &
	pid=$!
	for i in $(seq 600); do eval "$1" && break; sleep 0.05; done &&
	kill -9 $pid && { wait $pid || true; } &&
	eval "$1" && test "$(env_get ORDER)" = "A B" &&
	n1=$(served "v2.bundle?delay=150") &&
	agent install "$URL/v2.bundle" >out2 2>err2 && installed_v2 &&
	n2=$(served v2.bundle) &&
	set -- $(payload_layout) &&
	echo "first run $n1, second run $n2; payload at $1, $2 bytes, index $3, largest chunk $4" &&
	test $((n1 + n2)) -le $(($2 + 2 * ($1 + $3) + $4)) &&
	test ! -e data/imgforge/update/delta-spool
}

test_expect_success 'killed while downloading, then run again: at most one chunk is fetched twice' '
	killed_at "test \$(grep -c \"delay=150 range=bytes\" httpd.log) -ge 8" &&
	grep -q "bytes fetched by an interrupted install before" err2
'

test_expect_success 'a target that holds part of the image already (a killed write): only the rest is fetched' '
	fresh_disk && : >root-a.img && truncate -s 80M root-a.img &&
	dd if=v2.ext4 of=root-b.img bs=1M count=40 conv=notrunc status=none &&
	agent install "$URL/v2.bundle" >out 2>err && installed_v2 &&
	grep -q " [1-9][0-9]* bytes kept in the target slot" err &&
	n=$(served v2.bundle) && set -- $(payload_layout) &&
	echo "served $n of a $2-byte payload" && test $n -lt $(($2 / 2))
'

test_expect_success 'a tampered frame served in a range is refused before it is written' '
	fresh_disk &&
	agent install "$URL/v2.bundle" >out 2>err &&
	# the last range: frames (the signed head, the directory and pages come first)
	range=$(grep "GET /v2.bundle range=" httpd.log | sed -n "\$p" | sed "s/.*range=bytes=\([0-9]*\)-\([0-9]*\).*/\1 \2/") &&
	set -- $range && at=$((($1 + $2) / 2)) &&
	fresh_disk &&
	cp www/v2.bundle www/tampered.bundle &&
	printf "\377\377\377\377" | dd of=www/tampered.bundle bs=1 seek=$at conv=notrunc status=none &&
	chunk=$(manifest v2.bundle "[(c[\"offset\"], c[\"size\"]) for c in m[\"chunks\"] \
if c[\"stored_offset\"] <= $at - m[\"payload\"][\"offset\"] < c[\"stored_offset\"] + c[\"stored_size\"]][0]" | tr -d "(),") &&
	set -- $chunk &&
	dd if=root-b.img bs=4096 skip=$(($1 / 4096)) count=$(($2 / 4096)) status=none | sha256sum >before &&
	sha256sum <root-b.img >before.all && cp $ENV/grubenv env.before &&
	test_must_fail agent install "$URL/tampered.bundle" >out 2>err &&
	grep_one "^error: damaged bundle: chunk [0-9]* .*does not match its SHA-256 in the signed manifest; it was not written" err &&
	test "$(grep -c ^error: err)" = 1 &&
	dd if=root-b.img bs=4096 skip=$(($1 / 4096)) count=$(($2 / 4096)) status=none | sha256sum >after &&
	cmp before after &&
	# A delta this small is checked whole first: nothing was written at all.
	sha256sum <root-b.img >after.all && cmp before.all after.all && cmp $ENV/grubenv env.before &&
	grep -qx "RESULT=refused" data/imgforge/update/last-attempt
'

test_expect_success 'a range cut off once is fetched again and installs' '
	fresh_disk &&
	agent install "$URL/v2.bundle?drop=5&times=1" >out 2>err && installed_v2
'

# Format 4: the bundle carries a patch from v1 (imgforge bundle --delta-from).
test_expect_success 'setup: bundles with a patch from v1 (format 4), one of them of several MiB' '
	U=3f2504e0-4f89-11d3-9a0c-0305e82c3301 &&
	K="--key keys/signing.key --cert keys/signing.crt --compatible test-update" &&
	imgforge bundle v2.ext4 -o www/v2-patch.bundle $K --version 1.1 --delta-from v1.ext4 &&
	imgforge bundle info www/v2-patch.bundle >info && grep -q "^format      4$" info &&
	grep -q "^patch       [0-9]* bytes at byte" info &&
	imgforge bundle verify www/v2-patch.bundle --keyring keys/signing.crt &&
	# read without imgforge: the payload as ever, and the image made from v1 and the patch alone
	"$PY" "$SRCDIR/tests/e2e/bundle-tool.py" extract www/v2-patch.bundle x.img && cmp x.img v2.ext4 &&
	"$PY" "$SRCDIR/tests/e2e/bundle-tool.py" apply-patch www/v2-patch.bundle v1.ext4 y.img &&
	cmp y.img v2.ext4 &&
	# v5: 3 MB of new incompressible files, so that the patch spans several ranges
	cp -a v1 v5 && head -c 3000000 /dev/urandom >v5/usr/lib/new.so &&
	imgforge mkfs --from v5 -o v5.ext4 --size 64M --uuid $U &&
	imgforge bundle v5.ext4 -o www/v5-patch.bundle $K --version 1.5 --delta-from v1.ext4 &&
	test $(manifest v5-patch.bundle "m[\"patch\"][\"size\"]") -gt 2097152
'

test_expect_success 'running v1: the patch alone is fetched, fewer bytes than the frames of format 3' '
	fresh_disk &&
	agent install "$URL/v2-patch.bundle" >out 2>err && installed_v2 &&
	grep -q "holds the image this bundle.s patch starts from: fetching the patch" err &&
	grep -q "downloaded [0-9]* of the bundle.s [0-9]* bytes (.*): the patch from the running image" err &&
	grep -qx "METHOD=delta" data/imgforge/update/last-install &&
	n4=$(served v2-patch.bundle) &&
	set -- $(manifest v2-patch.bundle "m[\"payload\"][\"offset\"], m[\"chunk_index\"][\"size\"], m[\"patch\"][\"size\"]") &&
	# the head (header, manifest, signature) and the patch; nothing of the index or the payload
	test $n4 -le $(($1 - $2 + $3)) &&
	fresh_disk && agent install "$URL/v2.bundle" >out 2>err && installed_v2 &&
	n3=$(served v2.bundle) && echo "format 4: $n4 bytes, format 3: $n3 bytes" &&
	test $n4 -lt $n3
'

test_expect_success 'a running slot that is not the patch.s source: frames as in format 3, and it installs' '
	fresh_disk &&
	cp v3.ext4 root-a.img && truncate -s 80M root-a.img &&
	agent install "$URL/v2-patch.bundle" >out 2>err && installed_v2 &&
	grep -q "is not the image this bundle.s patch starts from: fetching what it lacks frame by frame" err &&
	grep -q " frames fetched" err &&
	n=$(served v2-patch.bundle) &&
	set -- $(manifest v2-patch.bundle "m[\"patch\"][\"offset\"]") &&
	# no byte of the patch was fetched
	! grep "GET /v2-patch.bundle range=bytes=\($1\|[0-9]*-$1\)" httpd.log
'

test_expect_success 'a format-4 bundle installs from a file and from a server without ranges' '
	fresh_disk && agent install www/v2-patch.bundle >out 2>err && installed_v2 &&
	fresh_disk && agent install "$URL/v2-patch.bundle?norange=1" >out 2>err && installed_v2
'

test_expect_success 'a tampered patch is refused with one error line before anything is written' '
	set -- $(manifest v2-patch.bundle "m[\"patch\"][\"offset\"], m[\"patch\"][\"size\"]") &&
	"$PY" "$SRCDIR/tests/e2e/bundle-tool.py" flip www/v2-patch.bundle www/tampered-patch.bundle $(($1 + $2 - 3)) &&
	test_must_fail imgforge bundle verify www/tampered-patch.bundle --keyring keys/signing.crt 2>verr &&
	grep_one "damaged bundle: the patch does not match its SHA-256 in the manifest" verr &&
	fresh_disk &&
	sha256sum <root-b.img >before.all && cp $ENV/grubenv env.before &&
	test_must_fail agent install "$URL/tampered-patch.bundle" >out 2>err &&
	grep_one "^error: .*the patch does not match its SHA-256 in the signed manifest" err &&
	test "$(grep -c ^error: err)" = 1 &&
	sha256sum <root-b.img >after.all && cmp before.all after.all && cmp $ENV/grubenv env.before &&
	grep -qx "RESULT=refused" data/imgforge/update/last-attempt &&
	test_must_fail agent install www/tampered-patch.bundle >out 2>err &&
	grep_one "^error: .*the patch.s SHA-256 is not the one the signed manifest gives" err
'

test_expect_success 'killed while fetching the patch, then run again: at most one range is fetched twice' '
	fresh_disk && rm -f err1 || return 1
	"$AGENT" install "$URL/v5-patch.bundle?delay=400" >out1 2>err1 &
	pid=$!
	set -- $(manifest v5-patch.bundle "m[\"patch\"][\"offset\"], m[\"patch\"][\"size\"], m[\"payload\"][\"offset\"] - m[\"chunk_index\"][\"size\"]") &&
	for i in $(seq 600); do grep -q "delay=400 range=bytes=$(($1 + 1048576))-" httpd.log && break; sleep 0.05; done &&
	kill -9 $pid && { wait $pid || true; } &&
	test "$(env_get ORDER)" = "A B" &&
	n1=$(served "v5-patch.bundle?delay=400") &&
	agent install "$URL/v5-patch.bundle" >out2 2>err2 &&
	cmp -n $(stat -c %s v5.ext4) v5.ext4 root-b.img && test "$(env_get ORDER)" = "B A" &&
	n2=$(served v5-patch.bundle) &&
	echo "first run $n1, second run $n2; patch $2 bytes, head $3" &&
	grep -q "bytes fetched by an interrupted install before" err2 &&
	test $((n1 + n2)) -le $(($2 + 1048576 + 2 * $3)) &&
	test ! -e data/imgforge/update/delta-spool
'

test_expect_success 'imgforge bundle --delta-from: wrong uses are one error line each' '
	K="--key keys/signing.key --cert keys/signing.crt --compatible test-update --version 9" &&
	{ imgforge bundle v2.ext4 -o x.bundle $K --delta-from v1.ext4 --format 2 2>err; test $? = 2; } &&
	grep_one "^error: bundle: --delta-from writes format 4" err &&
	{ imgforge bundle v2.ext4 -o x.bundle $K --format 4 2>err; test $? = 2; } &&
	grep_one "^error: bundle: format 4 is format 3 with a patch" err &&
	test_must_fail imgforge bundle v2.ext4 -o x.bundle $K --delta-from nothere.ext4 2>err &&
	grep_one "^error: bundle: .nothere.ext4. is neither a file nor a registered build" err &&
	head -c 5000 /dev/urandom >odd.img &&
	test_must_fail imgforge bundle v2.ext4 -o x.bundle $K --delta-from odd.img 2>err &&
	grep_one "^error: bundle: .odd.img. is not an image of whole 4 KiB blocks" err &&
	test ! -e x.bundle && test ! -e x.bundle.tmp
'

test_done
