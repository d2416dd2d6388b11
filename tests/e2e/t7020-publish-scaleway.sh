#!/bin/bash
# imgforge publish --to scaleway: the qcow2 uploaded to Object Storage
# (s3rver on loopback, behind the S3 front of tests/helpers/cloud-peers.sh
# that checks SigV4), imported as a block snapshot and made an instance
# image, against tests/helpers/fake-scaleway.py (X-Auth-Token checked, the
# object read back from s3rver and converted with qemu-img, compared here
# with the disk); refusals in one line with Scaleway's error type; nothing
# secret stored or printed.
# imgforge-test: timeout 900
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"
trap 'cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT

IMG=${IMGFORGE_SAN:-$IMGFORGE}
CACHE=$XDG_CACHE_HOME/imgforge
export HOME=$TEST_DIR/home
mkdir -p "$HOME" snaps
unset $(env | grep -oE '^(AWS|SCW|OS)_[A-Z_]*') 2>/dev/null || true
export IMGFORGE_SCW_POLL_SECONDS=0
BUCKET=imgforge-scw
AWSCLI=/usr/bin/aws
[ -x "$AWSCLI" ] || AWSCLI=$(command -v aws || echo aws)

peers_ok=0
s3rver_start && fake_scaleway_start --data-dir "$TEST_DIR/snaps" --import-polls 2 && peers_ok=1

test_expect_success 'setup: s3rver, the fake Scaleway APIs, a bucket, a build' '
	test $peers_ok = 1 &&
	require_tool "$AWSCLI" awscli &&
	AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=fr-par \
		"$AWSCLI" --endpoint-url "$S3_URL" s3api create-bucket --bucket $BUCKET >/dev/null &&
	require_tool grub-mkimage grub-common &&
	mkdir -p img/ovl/etc/app img/ovl/boot img/ovl/usr/sbin &&
	head -c $((12 << 20)) /dev/urandom >img/ovl/etc/app/noise &&
	echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" img/rootfs.tar.gz &&
	cat >img/image.yaml <<-EOT &&
	image: tiny
	version: 1.0.0
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml]
	overlays: [ovl]
	disk: {root_size: 64M, data_size: 16M}
	EOT
	imgforge -q build -o bout img/image.yaml &&
	python3 -c "import json; print(json.load(open(\"bout/manifest.json\"))[\"build_id\"])" >id
'
ID=$(cat id 2>/dev/null)

test_expect_success 'refusals: no bucket, no credentials, a wrong secret key; one line each' '
	test_must_fail "$IMG" publish "$ID" --to scaleway 2>err &&
	grep -q "^error: publish: Scaleway imports images from Object Storage: give --bucket B" err &&
	env -u SCW_SECRET_KEY "$IMG" publish "$ID" --to scaleway --bucket $BUCKET 2>err && exit 1 ;
	grep -q "^error: publish: no Scaleway credentials: set SCW_ACCESS_KEY and SCW_SECRET_KEY" err &&
	SCW_SECRET_KEY=99999999-2222-4333-8444-555555555555 test_must_fail "$IMG" publish "$ID" \
		--to scaleway --bucket $BUCKET 2>err &&
	test $(grep -c "^error: " err) = 1 &&
	{ grep -q "^error: publish: cannot start an upload to .s3://$BUCKET/.*: SignatureDoesNotMatch: .*check the secret key" err || { cat err; exit 1; }; } &&
	SCW_DEFAULT_PROJECT_ID=77777777-7777-4888-9999-aaaaaaaaaaaa test_must_fail "$IMG" publish "$ID" \
		--to scaleway --bucket $BUCKET 2>err &&
	test $(grep -c "^error: " err) = 1 &&
	{ grep -q "^error: publish: Scaleway snapshot import: permissions_denied: .*; the API key lacks the permission, or SCW_DEFAULT_PROJECT_ID is not its project$" err || { cat err; exit 1; }; } &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 0
'

test_expect_success 'the qcow2 imported as a snapshot, the image made from it, recorded' '
	"$IMG" -v publish "$ID" --to scaleway --bucket $BUCKET --region fr-par-2 >out 2>err &&
	grep -qE "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" out &&
	curl -sf -H "X-Auth-Token: $SCW_SECRET_KEY" "$FAKE_SCW_URL/instance/v1/zones/fr-par-2/images/$(cat out)" >img.json &&
	python3 - "$ID" <<-EOT &&
	import json, sys
	i = json.load(open("img.json"))["image"]
	assert i["arch"] == "x86_64" and i["root_volume"]["volume_type"] == "sbs_snapshot", i
	assert "imgforge:build=%s" % sys.argv[1] in i["tags"], i
	assert i["name"] == "tiny-1.0.0-%s" % sys.argv[1], i
	EOT
	sid=$(python3 -c "import json; print(json.load(open(\"img.json\"))[\"image\"][\"root_volume\"][\"id\"])") &&
	cmp -n $(stat -c %s bout/disk.raw) bout/disk.raw snaps/$sid.raw &&
	imgforge ls --published >ls &&
	grep -qE "^$ID +tiny +1.0.0 +scaleway +fr-par-2 .* $(cat out)$" ls &&
	imgforge show --json "$ID" >show.json &&
	python3 -c "
import json
p = json.load(open(\"show.json\"))[\"publications\"]
assert len(p) == 1 and p[0][\"format\"] == \"qcow2\" and p[0][\"location\"] == \"$sid\", p
" &&
	test ! -e "$CACHE/publish/$ID/scaleway-fr-par-2-qcow2" &&
	! grep -q "$SCW_SECRET_KEY" "$CACHE/registry.db" out err "$FAKE_SCW_LOG"
'

test_expect_success 'credentials from the Scaleway configuration file: its active profile, variables first' '
	cat >scw.yaml <<-EOT &&
	access_key: SCWWRONGWRONGWRONG00
	secret_key: 00000000-0000-4000-8000-000000000000
	default_zone: fr-par-1
	active_profile: prod
	profiles:
	  prod:
	    access_key: $SCW_ACCESS_KEY
	    secret_key: $SCW_SECRET_KEY
	    default_project_id: $SCW_DEFAULT_PROJECT_ID
	    api_url: $SCW_API_URL
	EOT
	env -u SCW_ACCESS_KEY -u SCW_SECRET_KEY -u SCW_DEFAULT_PROJECT_ID -u SCW_API_URL \
		-u SCW_DEFAULT_ORGANIZATION_ID SCW_CONFIG_PATH=$PWD/scw.yaml \
		"$IMG" publish "$ID" --to scaleway --bucket $BUCKET --name tiny-cfg >out 2>err ||
		{ cat err; exit 1; } &&
	grep -qE "^[0-9a-f]{8}-[0-9a-f]{4}-" out &&
	{ env -u SCW_ACCESS_KEY -u SCW_SECRET_KEY SCW_CONFIG_PATH=$PWD/scw.yaml SCW_PROFILE=dev \
		"$IMG" publish "$ID" --to scaleway --bucket $BUCKET 2>err && exit 1 || true; } &&
	cat err && test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: .*scw.yaml: no profile .dev. under profiles:" err &&
	printf "access_key: SCWWRONGWRONGWRONG00\nsecret_key: 00000000-0000-4000-8000-000000000000\n" >top.yaml &&
	SCW_CONFIG_PATH=$PWD/top.yaml "$IMG" publish "$ID" --to scaleway --bucket $BUCKET \
		--name tiny-vars >out 2>err || { cat err; exit 1; } &&
	printf "access_key: [unclosed\n" >bad.yaml &&
	SCW_CONFIG_PATH=$PWD/bad.yaml test_must_fail "$IMG" publish "$ID" --to scaleway --bucket $BUCKET 2>err &&
	cat err && test $(grep -c "^error: " err) = 1 && grep -q "bad.yaml:[0-9]*:[0-9]*: " err &&
	! grep -q "$SCW_SECRET_KEY" err out "$CACHE/registry.db"
'

test_expect_success 'progress: bytes, rate and ETA on a terminal, nothing of it in a log' '
	require_tool script bsdutils &&
	! grep -q "ETA" err &&
	SHELL=/bin/sh script -qec "\"$IMG\" publish $ID --to scaleway --bucket $BUCKET --name tiny-tty" tty.log >/dev/null &&
	grep -aqE "[0-9.]+ [KMG]?i?B of [0-9.]+ [KMG]?i?B  [0-9.]+ [KMG]?i?B/s  ETA [0-9]+:[0-9]{2}" tty.log &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications WHERE name = \"tiny-tty\"")" = 1
'

test_expect_success 'the snapshot of an interrupted run deleted since: one line, then the next run imports anew' '
	st=$CACHE/publish/$ID/scaleway-default-qcow2
	IMGFORGE_SCW_POLL_SECONDS=2 "$IMG" publish "$ID" --to scaleway --bucket $BUCKET --name tiny-gone \
		>out 2>err &
	pid=$! &&
	for i in $(seq 600); do
		test -s "$st/import.json" && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done &&
	{ kill -9 $pid || { cat err; exit 1; }; } && { wait $pid || true; } &&
	sid=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"snapshot_id\"])" "$st/import.json") &&
	curl -sf -X DELETE -H "X-Auth-Token: $SCW_SECRET_KEY" \
		"$FAKE_SCW_URL/block/v1alpha1/zones/fr-par-1/snapshots/$sid" &&
	test_must_fail "$IMG" publish "$ID" --to scaleway --bucket $BUCKET --name tiny-gone 2>err &&
	cat err && test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: Scaleway snapshot: .*the snapshot of the earlier run is gone, run the same command again" err &&
	test ! -e "$st/import.json" &&
	{ "$IMG" publish "$ID" --to scaleway --bucket $BUCKET --name tiny-gone >out 2>err || { cat err; exit 1; }; } &&
	grep -qE "^[0-9a-f]{8}-[0-9a-f]{4}-" out
'

test_done
