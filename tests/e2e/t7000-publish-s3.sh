#!/bin/bash
# imgforge publish through S3: the multipart upload (SigV4, 8 MiB parts)
# against s3rver on loopback, read back with the AWS CLI as a second,
# independent client; an interrupted upload resumed with only the missing
# parts sent (counted in s3rver's log: s3rver 3.7 has no ListParts); a wrong
# access key or secret refused in one line with S3's error code and nothing
# recorded. imgforge talks to the S3 front of tests/helpers/cloud-peers.sh,
# which checks SigV4 with botocore before s3rver (s3rver 3.7 checks only the
# access key id); EC2's side (ImportSnapshot, RegisterImage) is the fake of
# tests/helpers/fake-aws.py.
# imgforge-test: timeout 900
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"
trap 'cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT

IMG=${IMGFORGE_SAN:-$IMGFORGE}
CACHE=$XDG_CACHE_HOME/imgforge
export HOME=$TEST_DIR/home
mkdir -p "$HOME"
unset $(env | grep -oE '^(AWS|SCW|OS)_[A-Z_]*') 2>/dev/null || true
export IMGFORGE_AWS_POLL_SECONDS=0
BUCKET=imgforge-test
# The AWS CLI of the Debian package, not another one earlier on PATH.
AWSCLI=/usr/bin/aws
[ -x "$AWSCLI" ] || AWSCLI=$(command -v aws || echo aws)

peers_ok=0
# imgforge talks to the S3 front of cloud-peers.sh (SigV4 checked, then
# s3rver); the AWS CLI reads s3rver itself.
s3rver_start && fake_aws_start --import-polls 2 && peers_ok=1
s3api() { "$AWSCLI" --endpoint-url "$S3_URL" s3api "$@"; }

test_expect_success 'setup: s3rver, the fake EC2, a bucket, a build whose VMDK takes 6 parts' '
	test $peers_ok = 1 &&
	require_tool "$AWSCLI" awscli &&
	s3api create-bucket --bucket $BUCKET >/dev/null &&
	require_tool grub-mkimage grub-common &&
	mkdir -p img/ovl/etc/app img/ovl/boot img/ovl/usr/sbin &&
	head -c $((42 << 20)) /dev/urandom >img/ovl/etc/app/noise &&
	echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" img/rootfs.tar.gz &&
	cat >img/image.yaml <<-EOT &&
	image: tiny
	version: 1.0.0
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml]
	overlays: [ovl]
	disk: {root_size: 96M, data_size: 16M}
	EOT
	imgforge -q build -o bout img/image.yaml &&
	python3 -c "import json; print(json.load(open(\"bout/manifest.json\"))[\"build_id\"])" >id
'
ID=$(cat id 2>/dev/null)
STATE=$CACHE/publish/$ID/aws-default-vmdk

stored_parts() { grep -c "Stored part [0-9]* of $1 " "$TEST_DIR/s3rver.out" || true; }

test_expect_success 'a publish killed half-way through the upload resumes with the missing parts only' '
	"$IMG" -v publish "$ID" --to aws --format vmdk --bucket $BUCKET >out1 2>err1 &
	pid=$! &&
	for i in $(seq 600); do
		n=$(grep -c "\"etag\"" "$STATE/upload.json" 2>/dev/null || true)
		[ "${n:-0}" -ge 1 ] && break
		sleep 0.05
	done &&
	kill -9 $pid && { wait $pid || true; } &&
	done1=$(grep -c "\"etag\"" "$STATE/upload.json") &&
	upload=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"upload_id\"])" "$STATE/upload.json") &&
	cp "$STATE/disk.vmdk" sent.vmdk &&
	size=$(stat -c %s sent.vmdk) &&
	parts=$(( (size + (8 << 20) - 1) / (8 << 20) )) &&
	test $parts -ge 5 &&
	test $done1 -lt $parts || { echo "the upload ended before it was killed"; exit 1; } &&
	before=$(stored_parts $upload) &&
	test "$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))[\"parts\"]))" "$STATE/upload.json")" = $done1 &&
	"$IMG" -v publish "$ID" --to aws --format vmdk --bucket $BUCKET >out2 2>err2 &&
	after=$(stored_parts $upload) &&
	echo "parts $parts, recorded $done1, sent on resume $((after - before))" &&
	test $((after - before)) = $((parts - done1)) &&
	grep -o "Stored part [0-9]* of $upload " "$TEST_DIR/s3rver.out" | tail -n +$((before + 1)) |
		cut -d" " -f3 | sort -n | tr "\n" " " >resent &&
	test "$(cat resent)" = "$(seq -s " " $((done1 + 1)) $parts) " &&
	grep -q "resuming upload to .s3://$BUCKET/imgforge/$ID/tiny-1.0.0-$ID.vmdk.: $done1 of $parts parts" err2 &&
	grep -qE "^ami-[0-9a-f]{17}$" out2 &&
	test ! -e "$STATE"
'

test_expect_success 'the AWS CLI reads back the same object: size, ETag of the parts, bytes' '
	key="imgforge/$ID/tiny-1.0.0-$ID.vmdk" &&
	s3api head-object --bucket $BUCKET --key "$key" >head &&
	python3 - "$key" <<-EOT &&
	import hashlib, json
	h = json.load(open("head"))
	data = open("sent.vmdk", "rb").read()
	assert h["ContentLength"] == len(data), (h["ContentLength"], len(data))
	parts = [data[i:i + (8 << 20)] for i in range(0, len(data), 8 << 20)]
	# AWS: the MD5 of the MD5 of each part, and their count; s3rver: the MD5 of the object.
	aws = "\"%s-%d\"" % (hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest(), len(parts))
	s3rver = "\"%s\"" % hashlib.md5(data).hexdigest()
	assert h["ETag"] in (aws, s3rver), (h["ETag"], aws, s3rver)
	open("etag", "w").write(h["ETag"])
	EOT
	grep "s3: uploaded .s3://$BUCKET/$key. " err2 | grep -qF "(ETag $(cat etag))" &&
	s3api get-object --bucket $BUCKET --key "$key" got.vmdk >/dev/null &&
	cmp got.vmdk sent.vmdk &&
	qemu-img compare -f raw -F vmdk bout/disk.raw got.vmdk
'

test_expect_success 'the import and the image are recorded once, with the snapshot' '
	grep -q "\"action\": \"ImportSnapshot\"" "$FAKE_AWS_LOG" &&
	imgforge ls --published >ls &&
	test $(grep -c "^$ID " ls) = 1 &&
	grep -qE " aws +$CLOUD_AWS_REGION .* $(cat out2)$" ls &&
	imgforge show --json "$ID" >show &&
	python3 -c "
import json
p = json.load(open(\"show\"))[\"publications\"]
assert len(p) == 1 and p[0][\"format\"] == \"vmdk\" and p[0][\"location\"].startswith(\"snap-\"), p
"
'

test_expect_success 'a wrong access key: one line with S3 error code, nothing recorded' '
	AWS_ACCESS_KEY_ID=AKIANOTAKEY test_must_fail "$IMG" publish "$ID" --to aws \
		--format vmdk --bucket $BUCKET --name other >out 2>err &&
	test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: cannot start an upload to .s3://$BUCKET/.*: InvalidAccessKeyId: .*check the access key id" err &&
	test ! -s out &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 1
'

test_expect_success 'a wrong secret: one line with the code, nothing recorded, the secret nowhere' '
	AWS_SECRET_ACCESS_KEY=not-the-secret-5f1e9c test_must_fail "$IMG" publish "$ID" --to aws \
		--format vmdk --bucket $BUCKET --name other >out 2>err &&
	test $(grep -c "^error: " err) = 1 &&
	{ grep -q "^error: publish: cannot start an upload to .s3://$BUCKET/.*: SignatureDoesNotMatch: .*check the secret key" err || { cat err; exit 1; }; } &&
	test ! -s out &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 1 &&
	! grep -rq "not-the-secret-5f1e9c" "$CACHE" err out "$FAKE_AWS_LOG" &&
	! grep -q "S3RVER" "$CACHE/registry.db"
'

test_expect_success 'a bucket that does not exist: its code, what to do' '
	test_must_fail "$IMG" publish "$ID" --to aws --format vmdk --bucket no-such-bucket \
		--name other2 2>err &&
	test $(wc -l <err) -le 2 && test $(grep -c "^error: " err) = 1 &&
	grep -q "NoSuchBucket: .*create the bucket, or give --bucket" err
'

test_expect_success 'S3 answers InternalError to the completion: the parts are kept, the next run sends none again' '
	printf "%s\n" "CompleteMultipartUpload 200 InternalError 1" >"$TEST_DIR/fake-aws-s3.fail" &&
	test_must_fail "$IMG" publish "$ID" --to aws --format vmdk --bucket $BUCKET --name tiny-complete 2>err &&
	rm -f "$TEST_DIR/fake-aws-s3.fail" &&
	cat err && test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: cannot complete the upload to .*: InternalError: .*run the same command again" err &&
	upload=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"upload_id\"])" "$STATE/upload.json") &&
	before=$(stored_parts $upload) && test "$before" -ge 5 &&
	{ "$IMG" publish "$ID" --to aws --format vmdk --bucket $BUCKET --name tiny-complete >out 2>err ||
		{ cat err; exit 1; }; } &&
	test "$(stored_parts $upload)" = "$before" &&
	grep -qE "^ami-[0-9a-f]{17}$" out
'

# Start a publish to bucket $1 and kill it once a part is recorded.
publish_killed() {
	"$IMG" publish "$ID" --to aws --format vmdk --bucket $1 --name "$2" >/dev/null 2>&1 &
	pid=$!
	for i in $(seq 600); do
		n=$(grep -c "\"etag\"" "$STATE/upload.json" 2>/dev/null || true)
		[ "${n:-0}" -ge 1 ] && break
		sleep 0.05
	done
	kill -9 $pid; wait $pid 2>/dev/null
	grep -q "\"etag\"" "$STATE/upload.json"
}

test_expect_success 'a resumed upload refused for its credentials keeps its parts; fixed, none is sent again' '
	publish_killed $BUCKET tiny-creds &&
	upload=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"upload_id\"])" "$STATE/upload.json") &&
	done1=$(grep -c "\"etag\"" "$STATE/upload.json") && before=$(stored_parts $upload) &&
	AWS_SECRET_ACCESS_KEY=not-the-secret test_must_fail "$IMG" publish "$ID" --to aws --format vmdk \
		--bucket $BUCKET --name tiny-creds 2>err &&
	cat err && test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: cannot list the parts of .*SignatureDoesNotMatch.*part(s) already sent are kept" err &&
	test "$(grep -c "\"etag\"" "$STATE/upload.json")" = $done1 &&
	"$IMG" publish "$ID" --to aws --format vmdk --bucket $BUCKET --name tiny-creds >out 2>err ||
		{ cat err; exit 1; } &&
	parts=$(( ($(stat -c %s sent.vmdk) + (8 << 20) - 1) / (8 << 20) )) &&
	test $(( $(stored_parts $upload) - before )) = $((parts - done1)) &&
	grep -qE "^ami-[0-9a-f]{17}$" out
'

test_expect_success 'an interrupted upload to another bucket is aborted when the next run goes elsewhere' '
	s3api create-bucket --bucket $BUCKET-other >/dev/null &&
	publish_killed $BUCKET tiny-moved &&
	upload=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"upload_id\"])" "$STATE/upload.json") &&
	"$IMG" publish "$ID" --to aws --format vmdk --bucket $BUCKET-other --name tiny-moved >out 2>err ||
		{ cat err; exit 1; } &&
	python3 - "$FAKE_S3_LOG" "$BUCKET" "$upload" <<-EOT
	import json, sys
	log, bucket, upload = sys.argv[1:]
	aborts = [r for r in map(json.loads, open(log))
	          if r["action"].startswith("DELETE /%s/" % bucket) and r["params"]["query"].get("uploadId") == upload]
	# Sent once; s3rver 3.7 answers 405 (it has no AbortMultipartUpload), AWS 204.
	assert len(aborts) == 1, aborts
	EOT
'

test_expect_success 'the answer to the completion is lost: the next run finds the object complete, sends nothing' '
	printf "%s\n" "CompleteMultipartUpload lost - 1" >"$TEST_DIR/fake-aws-s3.fail" &&
	test_must_fail "$IMG" publish "$ID" --to aws --format vmdk --bucket $BUCKET --name tiny-lost 2>err &&
	rm -f "$TEST_DIR/fake-aws-s3.fail" && cat err &&
	upload=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"upload_id\"])" "$STATE/upload.json") &&
	s3api head-object --bucket $BUCKET --key "imgforge/$ID/tiny-lost.vmdk" >head &&
	grep -q "\"imgforge-sha256\": \"$(sha256sum "$STATE/disk.vmdk" | cut -d" " -f1)\"" head &&
	before=$(grep -c "\"PUT /$BUCKET/" "$FAKE_S3_LOG") &&
	"$IMG" -v publish "$ID" --to aws --format vmdk --bucket $BUCKET --name tiny-lost >out 2>err ||
		{ cat err; exit 1; } &&
	grep -q "was completed by an earlier run" err &&
	test "$(grep -c "\"PUT /$BUCKET/" "$FAKE_S3_LOG")" = "$before" &&
	grep -qE "^ami-[0-9a-f]{17}$" out
'

test_done
