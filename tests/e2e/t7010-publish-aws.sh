#!/bin/bash
# imgforge publish --to aws, the default path: the raw disk sent with the
# EBS direct APIs (only the blocks that hold data), the AMI registered
# (x86_64, ENA, UEFI-preferred, the snapshot as root) and tagged, against
# tests/helpers/fake-aws.py, which checks every signature with botocore and
# writes the snapshot's blocks into a file compared here with the disk. An
# interrupted publish resumes from its last checkpoint; refusals are one
# line with AWS's code; nothing secret is stored or printed.
# imgforge-test: timeout 900
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"
trap 'cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT

IMG=${IMGFORGE_SAN:-$IMGFORGE}
CACHE=$XDG_CACHE_HOME/imgforge
export HOME=$TEST_DIR/home
mkdir -p "$HOME" snaps
unset $(env | grep -oE '^(AWS|SCW|OS)_[A-Z_]*') 2>/dev/null || true
export IMGFORGE_AWS_POLL_SECONDS=0

peers_ok=0
fake_aws_start --data-dir "$TEST_DIR/snaps" --import-polls 2 --fail-file "$TEST_DIR/fail" &&
	peers_ok=1
aws_call() { "$PY_BOTO" "$SRCDIR/tests/helpers/aws-call.py" "$@"; }
ebs_calls() { # action snapshot: how many the fake answered with success
	python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["action"] == sys.argv[2] and r["status"] < 300 and (sys.argv[3] == "" or r["params"].get("SnapshotId") == sys.argv[3]):
        n += 1
print(n)' "$FAKE_AWS_LOG" "$1" "${2:-}"
}

test_expect_success 'setup: the fake EC2 and EBS, a build with 60 MiB of data' '
	test $peers_ok = 1 &&
	require_tool grub-mkimage grub-common &&
	mkdir -p img/ovl/etc/app img/ovl/boot img/ovl/usr/sbin &&
	head -c $((60 << 20)) /dev/urandom >img/ovl/etc/app/noise &&
	echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" img/rootfs.tar.gz &&
	cat >img/image.yaml <<-EOT &&
	image: tiny
	version: 1.0.0
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml]
	overlays: [ovl]
	disk: {root_size: 112M, data_size: 16M}
	EOT
	imgforge -q build -o bout img/image.yaml &&
	python3 -c "import json; print(json.load(open(\"bout/manifest.json\"))[\"build_id\"])" >id
'
ID=$(cat id 2>/dev/null)
STATE=$CACHE/publish/$ID/aws-default-raw

test_expect_success 'no credentials, no region: one line each, saying where to put them' '
	env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$IMG" publish "$ID" --to aws 2>err && exit 1 ;
	test $(wc -l <err) -le 2 &&
	grep -q "^error: publish: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or .* in profile .default." err &&
	env -u AWS_REGION -u AWS_DEFAULT_REGION "$IMG" publish "$ID" --to aws 2>err && exit 1 ;
	grep -q "^error: publish: no AWS region: give --region, or set AWS_REGION" err
'

test_expect_success 'a wrong secret: InvalidSignatureException/SignatureDoesNotMatch in one line, nothing kept' '
	AWS_SECRET_ACCESS_KEY=wrong-secret-81b2 test_must_fail "$IMG" publish "$ID" --to aws 2>err &&
	test $(grep -c "^error: " err) = 1 &&
	grep -qE "^error: publish: EBS StartSnapshot: (InvalidSignatureException|UnrecognizedClientException): .*check the credentials" err &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 0 &&
	! grep -rq "wrong-secret-81b2" "$CACHE" "$FAKE_AWS_LOG" err
'

test_expect_success 'interrupted after a checkpoint, the publish resumes there and registers the AMI' '
	"$IMG" -v publish "$ID" --to aws --name tiny-ebs --public >out1 2>err1 &
	pid=$! &&
	for i in $(seq 1200); do
		grep -q done_upto "$STATE/ebs.json" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done &&
	{ kill -9 $pid || { cat err1; exit 1; }; } && { wait $pid || true; } &&
	snap=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"snapshot_id\"])" "$STATE/ebs.json") &&
	upto=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"done_upto\"])" "$STATE/ebs.json") &&
	before=$(ebs_calls PutSnapshotBlock $snap) &&
	"$IMG" -v publish "$ID" --to aws --name tiny-ebs --public >out2 2>err2 &&
	after=$(ebs_calls PutSnapshotBlock $snap) &&
	python3 - bout/disk.raw $upto $((after - before)) <<-EOT &&
	import sys
	upto, resent = int(sys.argv[2]), int(sys.argv[3])
	B = 512 << 10
	data = below = 0
	with open(sys.argv[1], "rb") as f:
	    i = 0
	    while True:
	        b = f.read(B)
	        if not b:
	            break
	        if b.strip(b"\0"):
	            data += 1
	            below += i * B < upto
	        i += 1
	print("blocks with data %d, before the checkpoint %d, sent on resume %d" % (data, below, resent))
	assert below > 0 and resent == data - below, (data, below, resent)
	EOT
	test "$(ebs_calls StartSnapshot)" = 1 &&
	test "$(ebs_calls CompleteSnapshot $snap)" = 1 &&
	grep -qE "^ami-[0-9a-f]{17}$" out2 &&
	test ! -e "$STATE" &&
	cmp -n $(stat -c %s bout/disk.raw) bout/disk.raw snaps/$snap.raw &&
	echo $snap >snap && cp out2 ami
'

test_expect_success 'the AMI as EC2 describes it: x86_64, ENA, UEFI-preferred, root snapshot, tags, public' '
	aws_call ec2 DescribeImages "{\"ImageIds\": [\"$(cat ami)\"]}" >img.json &&
	python3 - "$(cat snap)" "$ID" <<-EOT
	import json, sys
	i = json.load(open("img.json"))["Images"][0]
	assert i["Architecture"] == "x86_64" and i["EnaSupport"] is True, i
	assert i["BootMode"] == "uefi-preferred" and i["VirtualizationType"] == "hvm", i
	assert i["RootDeviceName"] == "/dev/xvda" and i["Name"] == "tiny-ebs", i
	m = i["BlockDeviceMappings"][0]
	assert m["DeviceName"] == "/dev/xvda" and m["Ebs"]["SnapshotId"] == sys.argv[1], m
	tags = {t["Key"]: t["Value"] for t in i["Tags"]}
	assert tags["imgforge:build"] == sys.argv[2], tags
	assert i["Public"] is True, i
	EOT
'

test_expect_success 'the registry has the AMI, its region and snapshot; no secret in it' '
	imgforge show "$ID" >show &&
	grep -qE "^  aws +us-east-1 +$(cat ami) .* tiny-ebs  \(public\)$" show &&
	imgforge show --json "$ID" >show.json &&
	python3 -c "
import json
p = json.load(open(\"show.json\"))[\"publications\"]
assert len(p) == 1 and p[0][\"location\"] == \"$(cat snap)\" and p[0][\"format\"] == \"raw\", p
" &&
	! grep -q "$CLOUD_AWS_SECRET_KEY" "$CACHE/registry.db" err1 err2 out2 show.json &&
	! grep -q "$CLOUD_AWS_SECRET_KEY" "$FAKE_AWS_LOG"
'

test_expect_success 'an image name EC2 refuses: its code and message, nothing recorded' '
	test_must_fail "$IMG" publish "$ID" --to aws --name "x" 2>err &&
	test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: EC2 RegisterImage: InvalidAMIName.Malformed: AMI names must be .*; give another --name$" err &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 1
'

# refused ACTION STATUS: how many requests of ACTION the fake refused with STATUS.
refused() {
	python3 -c '
import json, sys
print(sum(1 for l in open(sys.argv[1]) for r in [json.loads(l)]
          if r["action"] == sys.argv[2] and r["status"] == int(sys.argv[3])))' "$FAKE_AWS_LOG" "$1" "$2"
}

test_expect_success 'after RegisterImage refused, the next publish makes the image from the completed snapshot' '
	starts=$(ebs_calls StartSnapshot) && puts=$(ebs_calls PutSnapshotBlock) &&
	{ "$IMG" publish "$ID" --to aws --name tiny-second >out 2>err || { cat err; exit 1; }; } &&
	grep -qE "^ami-[0-9a-f]{17}$" out &&
	test "$(ebs_calls StartSnapshot)" = "$starts" &&
	test "$(ebs_calls PutSnapshotBlock)" = "$puts" &&
	test ! -e "$STATE" &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 2
'

test_expect_success 'throttling and 5xx answers of EBS and EC2 are retried, and the publish completes' '
	printf "%s\n" "StartSnapshot 429 ThrottlingException 2" \
		"PutSnapshotBlock 500 InternalServerException 1" \
		"RegisterImage 503 RequestLimitExceeded 1" >fail &&
	{ "$IMG" publish "$ID" --to aws --name tiny-retry >out 2>err || { cat err; exit 1; }; } &&
	grep -qE "^ami-[0-9a-f]{17}$" out &&
	test "$(refused StartSnapshot 429)" = 2 &&
	test "$(refused PutSnapshotBlock 500)" = 1 &&
	test "$(refused RegisterImage 503)" = 1 &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 3
'

test_expect_success 'throttling that stays: one line with the code, given up after the retries, nothing recorded' '
	printf "%s\n" "RegisterImage 503 RequestLimitExceeded *" >fail &&
	test_must_fail "$IMG" publish "$ID" --to aws --name tiny-fail 2>err &&
	rm -f fail &&
	test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: EC2 RegisterImage: RequestLimitExceeded: failure injected" err &&
	test "$(refused RegisterImage 503)" -ge 3 &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 3
'

test_expect_success 'a 5xx to a call that creates (RegisterImage) is not sent again: it may have been done' '
	before=$(refused RegisterImage 500) &&
	printf "%s\n" "RegisterImage 500 InternalError 1" >fail &&
	test_must_fail "$IMG" publish "$ID" --to aws --name tiny-once 2>err &&
	test $(grep -c "^error: " err) = 1 &&
	grep -q "^error: publish: EC2 RegisterImage: InternalError: failure injected" err &&
	test "$(refused RegisterImage 500)" = $((before + 1)) &&
	{ "$IMG" publish "$ID" --to aws --name tiny-once >out 2>err || { cat err; exit 1; }; } &&
	rm -f fail &&
	grep -qE "^ami-[0-9a-f]{17}$" out &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications")" = 4
'

test_expect_success 'a snapshot of an interrupted run that EC2 no longer has: a new one, with a new client token' '
	"$IMG" -v publish "$ID" --to aws --name tiny-lost >out1 2>err1 &
	pid=$! &&
	for i in $(seq 1200); do
		grep -q done_upto "$STATE/ebs.json" 2>/dev/null && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.05
	done &&
	{ kill -9 $pid || { cat err1; exit 1; }; } && { wait $pid || true; } &&
	old=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[\"snapshot_id\"])" "$STATE/ebs.json") &&
	starts=$(ebs_calls StartSnapshot) &&
	printf "%s\n" "DescribeSnapshots 400 InvalidSnapshot.NotFound 1" >fail &&
	{ "$IMG" publish "$ID" --to aws --name tiny-lost >out 2>err || { cat err; exit 1; }; } &&
	rm -f fail &&
	grep -qE "^ami-[0-9a-f]{17}$" out &&
	test "$(ebs_calls StartSnapshot)" = $((starts + 1)) &&
	new=$(sqlite3 "$CACHE/registry.db" "SELECT location FROM publications WHERE name = '\''tiny-lost'\''") &&
	echo "old $old new $new" && test -n "$new" && test "$new" != "$old"
'

test_done
