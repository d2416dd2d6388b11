#!/bin/bash
# imgforge publish, the command: its options, the build it resolves, the
# file it exports for each cloud, nothing recorded when a cloud fails; and
# what show and ls --published print of the publications table.
. "$SRCDIR/tests/e2e/lib.sh"

IMG=${IMGFORGE_SAN:-$IMGFORGE}
CACHE=$XDG_CACHE_HOME/imgforge
# No cloud's credentials from the machine running the tests.
unset $(env | grep -oE '^(AWS|OS|SCW)_[A-Z_]*') 2>/dev/null || true
export HOME=$TEST_DIR/home
mkdir -p "$HOME"

test_expect_success 'setup: a small registered build with a disk' '
	require_tool grub-mkimage grub-common &&
	mkdir -p img/ovl/etc/app img/ovl/boot img/ovl/usr/sbin &&
	echo one >img/ovl/etc/app/motd &&
	echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" img/rootfs.tar.gz &&
	cat >img/image.yaml <<-EOT &&
	image: tiny
	version: 1.0.0
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml]
	overlays: [ovl]
	disk: {root_size: 64M, data_size: 32M}
	EOT
	imgforge -q build -o bout img/image.yaml &&
	python3 -c "import json; print(json.load(open(\"bout/manifest.json\"))[\"build_id\"])" >id
'
ID=$(cat id 2>/dev/null)

test_expect_success 'usage errors are one line and exit 2' '
	for args in "" "$ID" "$ID --to gce" "$ID --to aws --format qcow2" \
		"$ID --to scaleway --format vmdk" "$ID $ID --to aws" "$ID --to aws --region a/b"; do
		rc=0; "$IMG" publish $args 2>err || rc=$?
		test $rc = 2 || { echo "publish $args: exit $rc"; exit 1; }
		test $(wc -l <err) = 1 || { cat err; exit 1; }
	done &&
	"$IMG" publish "$ID" --to aws --format qcow2 2>err || true &&
	grep_one "^error: publish: aws does not take .qcow2. images here; give --format raw, vmdk, vhd$" err
'

test_expect_success 'a build that is not registered, or lost its disk, is one error line' '
	test_must_fail "$IMG" publish 0123abcd --to openstack 2>err &&
	grep_one "^error: publish: no build .0123abcd. in the registry; give a build id from .imgforge ls.$" err &&
	test $(wc -l <err) = 1 &&
	test_must_fail "$IMG" publish --cache nowhere "$ID" --to openstack 2>err &&
	grep_one "^error: publish: .$ID. is not a registered build \(no registry at .nowhere/registry.db.\)" err &&
	mv bout/manifest.json manifest.keep &&
	test_must_fail "$IMG" publish "$ID" --to openstack 2>err &&
	mv manifest.keep bout/manifest.json &&
	grep_one "^error: publish: .*bout. no longer holds the outputs of build $ID" err &&
	test $(wc -l <err) = 1
'

test_expect_success 'a cloud that fails: one line, nothing recorded, the export kept to resume' '
	test_must_fail "$IMG" publish "$ID" --to openstack 2>err &&
	grep -c "^error: publish: " err >n && test "$(cat n)" = 1 &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 0 &&
	f=$(ls "$CACHE"/publish/$ID/openstack-default-qcow2/disk.qcow2) &&
	qemu-img compare -f raw -F qcow2 bout/disk.raw "$f" &&
	test "$(stat -c %a "$CACHE/publish/$ID/openstack-default-qcow2")" = 700 &&
	imgforge ls --published >out 2>err && test ! -s out &&
	grep -q "no builds published yet" err
'

test_expect_success 'show and ls --published list the publications, in text and JSON' '
	sqlite3 "$CACHE/registry.db" "INSERT INTO publications VALUES
		(\"$ID\", \"aws\", \"eu-west-3\", \"ami-0123456789abcdef0\", \"tiny-1\", \"snap-1\", \"raw\",
		 \"$(printf %064d 0)\", 0, 1700000000),
		(\"$ID\", \"scaleway\", \"fr-par-1\", \"11111111-2222-3333-4444-555555555555\", \"tiny-1\",
		 NULL, \"qcow2\", \"$(printf %064d 1)\", 1, 1700000100)" &&
	imgforge show "$ID" >out &&
	grep -q "^published 2$" out &&
	grep -qE "^  aws +eu-west-3 +ami-0123456789abcdef0 " out &&
	grep -qE "^  scaleway +fr-par-1 +11111111-2222-3333-4444-555555555555 .*\(public\)$" out &&
	imgforge ls --published >out &&
	test $(wc -l <out) = 3 &&
	grep -qE "^$ID +tiny +1.0.0 +aws +eu-west-3 .* ami-0123456789abcdef0$" out &&
	imgforge ls --published --json >j &&
	imgforge show --json "$ID" >s &&
	python3 -c "
import json
l = json.load(open(\"j\"))
assert len(l) == 1 and l[0][\"build_id\"] == \"$ID\", l
p = l[0][\"publications\"]
assert [x[\"image_id\"] for x in p] == [\"ami-0123456789abcdef0\", \"11111111-2222-3333-4444-555555555555\"], p
assert p[1][\"public\"] is True and p[1][\"location\"] is None and p[0][\"format\"] == \"raw\", p
s = json.load(open(\"s\"))
assert len(s[\"publications\"]) == 2 and s[\"publications\"][0][\"region\"] == \"eu-west-3\", s
" &&
	test_must_fail imgforge show --published "$ID" 2>err &&
	grep_one "^error: show: --published is an option of .imgforge ls.$" err
'

test_done
