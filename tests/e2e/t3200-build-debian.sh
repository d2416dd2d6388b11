#!/bin/bash
# imgforge build with a real package base: mmdebstrap from this machine's
# apt mirror (minbase plus a couple of packages).
# imgforge-test: slow
. "$SRCDIR/tests/e2e/lib.sh"

require_tool mmdebstrap mmdebstrap || exit 1
require_tool debugfs e2fsprogs || exit 1
MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
export IMGFORGE_MIRROR=$MIRROR
export SOURCE_DATE_EPOCH=1700000000

cat >img.yaml <<'EOT'
image: mini
version: "1"
base:
  distro: debian
  suite: bookworm
  mirror: "${mirror}"
  variant: minbase
packages: [jq, less, libssl3]
EOT

test_expect_success 'a minbase + packages image builds with mmdebstrap' '
	imgforge build --cache cache -o out img.yaml 2>err || { tail -5 err; false; } &&
	grep -q "base: mmdebstrap done" err &&
	e2fsck -fn out/root.ext4 &&
	debugfs -R "stat /usr/bin/jq" out/root.ext4 2>/dev/null | grep -q "Type: regular" &&
	python3 -c "
import json
m = json.load(open(\"out/manifest.json\"))
names = {p[\"name\"] for p in m[\"packages\"]}
assert {\"jq\", \"less\", \"dpkg\", \"base-files\"} <= names, names
assert len(names) > 50
"
'

# The release, its -updates and its -security suites by default: the image
# has the security archive's libssl3, at least the version this machine's apt
# (same sources) would install.
test_expect_success 'the base has the security updates this machine apt would install' '
	grep -q "bookworm-security" out/build.log &&
	got=$(python3 -c "
import json
m = json.load(open(\"out/manifest.json\"))
print([p[\"version\"] for p in m[\"packages\"] if p[\"name\"] == \"libssl3\"][0])
") &&
	want=$(apt-cache policy libssl3 | sed -n "s/^ *Candidate: //p") &&
	echo "libssl3 in the image: $got, this machine candidate: $want" &&
	dpkg --compare-versions "$got" ge "$want"
'

test_expect_success 'minimize drops documentation and man pages, keeps copyrights' '
	debugfs -R "ls -l /usr/share/doc/jq" out/root.ext4 2>/dev/null | grep -q copyright &&
	! debugfs -R "ls -l /usr/share/doc/jq" out/root.ext4 2>/dev/null | grep -q changelog &&
	! debugfs -R "ls /usr/share/man/man1" out/root.ext4 2>/dev/null | grep -q "jq.1"
'

test_expect_success 'the second build reuses the cached base and rootfs' '
	imgforge build --cache cache -o out2 img.yaml 2>err &&
	grep -q "base: cached" err && grep -q "rootfs: cached" err
'

test_expect_success 'the .deb files are kept for later builds and leave no trace in the image' '
	ls cache/debs/*/jq_*.deb cache/debs/*/dpkg_*.deb &&
	! debugfs -R "ls /var/cache/apt/archives" out/root.ext4 2>/dev/null | grep -q "\.deb" &&
	! ls -d cache/debs/.new-* 2>/dev/null
'

test_expect_success 'a cold build from kept .deb files downloads none again and gives the same image' '
	mkdir cache2 && cp -a cache/debs cache2/ &&
	n=$(ls cache2/debs/*/ | wc -l) &&
	imgforge build --cache cache2 -o out3 img.yaml 2>err || { tail -5 err; false; } &&
	grep -q "base: mmdebstrap done" err &&
	{ ! grep -q "new .deb files kept" err || { grep "new .deb" err; false; }; } &&
	test $(ls cache2/debs/*/ | wc -l) -eq $n &&
	{ cmp out/root.ext4 out3/root.ext4 || { grep "^base: http" out/build.log out3/build.log; false; }; }
'

test_expect_success 'an unknown package: mmdebstrap says why, with the log path' '
	sed "s/packages: \[jq, less, libssl3\]/packages: [no-such-package-imgforge]/" img.yaml >bad.yaml &&
	test_must_fail imgforge build --cache cache -o bad bad.yaml 2>err &&
	grep_one "^error: mmdebstrap failed: .*\(it exited with status [0-9]+; full log: bad/build.log\)$" err &&
	! test -f bad/root.ext4
'

test_done
