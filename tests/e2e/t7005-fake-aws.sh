#!/bin/bash
# fake-aws.py, the publish tests' EC2 and EBS (tests/helpers/README.md),
# driven by botocore, the SDK the AWS CLI is built on (and by the CLI when
# installed), reading images from a real S3 peer (s3rver). Each refusal the
# real services make and the publish client must meet is checked, so a fake
# that accepts anything fails here. The checks are tests/helpers/test-fake-aws.py
# (one Python process: its TAP lines are this script's).
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"
trap 'cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT

fail() { echo "not ok 1 - $1"; echo "1..1"; exit 1; }
command -v qemu-img >/dev/null || fail "missing tool 'qemu-img': install the Debian package 'qemu-utils' (make deps does)"
s3=--s3
s3rver_start 2>s3rver.err || { s3=; sed 's/^/# /' s3rver.err; }
fake_aws_start --data-dir "$TEST_DIR/aws-data" --import-polls 2 2>err || fail "$(cat err)"

# One 4 MiB disk with data at 0 and 2 MiB, in every format the peers take.
head -c 1048576 /dev/urandom >disk.raw && truncate -s 2M disk.raw &&
head -c 524288 /dev/urandom >>disk.raw && truncate -s 4M disk.raw &&
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw disk.vmdk &&
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse disk.raw sparse.vmdk &&
qemu-img convert -f raw -O vpc -o subformat=fixed,force_size=on disk.raw disk.vhd &&
qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2 || fail "qemu-img convert failed"

echo "# peers and images ready after $SECONDS s"
cli=
command -v aws >/dev/null 2>&1 && cli=--aws-cli
S3_ACCESS_KEY=$CLOUD_S3_ACCESS_KEY S3_SECRET_KEY=$CLOUD_S3_SECRET_KEY FAKE_AWS_LOG=$FAKE_AWS_LOG FAKE_S3_LOG=${FAKE_S3_LOG:-} \
	"$PY_BOTO" "$SRCDIR/tests/helpers/test-fake-aws.py" --data-dir "$TEST_DIR/aws-data" $s3 $cli
