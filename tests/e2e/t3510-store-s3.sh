#!/bin/bash
# The shared store (--store s3://BUCKET/PREFIX, docs/registry.md): two
# builders with caches of their own and one registry. The first pushes its
# stages and outputs; the second builds the same image from the store's
# entries (remote hits: no stage runs), fetches a build it never made,
# exports its disk and bundles its root.ext4; an object changed in the bucket is refused (by fetch, and
# by a build, which then builds the stage itself and puts it back); a store
# that does not answer is one line. The registry both builders write is a
# PostgreSQL server of the test's own (initdb, a Unix socket), as a team
# shares one. imgforge talks to the SigV4-checking S3
# front of tests/helpers/cloud-peers.sh before s3rver; the AWS CLI reads and
# changes the bucket behind it.
# imgforge-test: timeout 300
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"
# The shared registry: PostgreSQL, as tests/e2e/t3500-registry-pg.sh starts it.
PGBIN=
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
	[ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { PGBIN=$d; break; }
done
PGDIR=$TEST_DIR/pg
SOCK=$PGDIR/sock
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }
pg_start() { as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w -t 60 \
	-o "-c listen_addresses='' -k $SOCK -c fsync=off" start >/dev/null; }
pg_stop() { as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -w -m immediate stop >/dev/null 2>&1; }
trap 'cloud_peers_stop; [ -f "$PGDIR/data/postmaster.pid" ] && pg_stop; cd /; rm -rf "$TEST_DIR"' EXIT

IMG=${IMGFORGE_SAN:-$IMGFORGE}
export HOME=$TEST_DIR/home
mkdir -p "$HOME"
unset $(env | grep -oE '^(AWS|SCW|OS)_[A-Z_]*') 2>/dev/null || true
unset IMGFORGE_CACHE
BUCKET=imgforge-store
STORE=s3://$BUCKET/team/a
AWSCLI=/usr/bin/aws
[ -x "$AWSCLI" ] || AWSCLI=$(command -v aws || echo aws)
FIX=$SRCDIR/tests/helpers/rootfs-fixture.py

peers_ok=0
s3rver_start && cloud_python &&
	FRONT=$(cloud_s3_front store-s3 "$CLOUD_AWS_ACCESS_KEY" "$CLOUD_AWS_SECRET_KEY" us-east-1) &&
	peers_ok=1
export AWS_ACCESS_KEY_ID=$CLOUD_AWS_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$CLOUD_AWS_SECRET_KEY
export AWS_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ENDPOINT_URL_S3=${FRONT:-}
s3api() { AWS_ENDPOINT_URL_S3= "$AWSCLI" --endpoint-url "$S3_URL" s3api "$@"; }

# The two builders: each its own cache; one registry both write (a shared
# registry: docs/registry.md).
REG="postgresql://imgforge@/reg?host=$SOCK"
A() { "$IMG" "$@" --cache "$TEST_DIR/a-cache" --registry "$REG"; }
B() { "$IMG" "$@" --cache "$TEST_DIR/b-cache" --registry "$REG"; }
build_id() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['build_id'])" "$1"; }

test_expect_success 'setup: s3rver behind a SigV4 front, a bucket, PostgreSQL, a tiny image with a disk' '
	test $peers_ok = 1 &&
	{ test -n "$PGBIN" || { echo "no PostgreSQL server programs: install the Debian package postgresql (make deps does)"; exit 1; }; } &&
	chmod a+x "$TEST_DIR" && mkdir -p "$SOCK" && chmod -R a+rwx "$PGDIR" &&
	as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U imgforge -A trust --no-sync -E UTF8 \
		--locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 &&
	pg_start &&
	psql -X -q -h "$SOCK" -U imgforge -d postgres -c "CREATE DATABASE reg" &&
	require_tool "$AWSCLI" awscli &&
	require_tool grub-mkimage grub-common &&
	s3api create-bucket --bucket $BUCKET >/dev/null &&
	mkdir -p shared img/ovl/etc/app img/ovl/boot img/ovl/usr/sbin &&
	echo one >img/ovl/etc/app/motd &&
	echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
	python3 "$FIX" img/rootfs.tar.gz &&
	cat >img/image.yaml <<-EOT
	image: tiny
	version: 1.0.0
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml]
	overlays: [ovl]
	disk: {root_size: 32M, data_size: 16M}
	outputs: [qcow2]
	EOT
'

test_expect_success 'builder A pushes every stage and output to the store' '
	{ A build --store $STORE -o aout img/image.yaml 2>err || { cat err; false; }; } &&
	ID_A=$(build_id aout/manifest.json) && echo $ID_A >id_a &&
	for s in base rootfs meta disk export; do
		grep -q "^$s: pushed to the store" aout/build.log || { echo "no push of $s"; exit 1; }
	done &&
	grep -q "^store: the build.s 4 outputs are in $STORE" aout/build.log &&
	s3api list-objects --bucket $BUCKET --prefix team/a/ --query "Contents[].Key" --output text |
		tr "\t" "\n" >keys &&
	test $(grep -c "^team/a/stages/[0-9a-f]\{64\}\.json$" keys) = 5 &&
	python3 - <<-EOF
	import hashlib, json
	m = json.load(open("aout/manifest.json"))
	keys = set(open("keys").read().split())
	for o in m["outputs"]:
	    assert "team/a/objects/sha256/" + o["sha256"] in keys, o["name"]
	for s in ("base", "rootfs", "disk"):
	    assert "team/a/stages/%s.json" % m["stage_keys"][s] in keys, s
	EOF
'

puts() { grep -c "\"action\": \"PUT " "$TEST_DIR/store-s3.log" || true; }

test_expect_success 'builder A again, all local hits: nothing written but its new manifest; a lost entry put back' '
	before=$(puts) &&
	A build --store $STORE -o aout img/image.yaml 2>err &&
	! grep -q "pushed to the store" aout/build.log &&
	test $(( $(puts) - before )) = 1 &&
	key=$(python3 -c "import json; print(json.load(open(\"aout/manifest.json\"))[\"stage_keys\"][\"disk\"])") &&
	s3api delete-object --bucket $BUCKET --key team/a/stages/$key.json &&
	before=$(puts) &&
	A build --store $STORE -o aout img/image.yaml 2>err &&
	grep -q "^disk: entry pushed to the store ($(echo $key | cut -c1-12); its object was there)" aout/build.log &&
	test $(grep -c "pushed to the store" aout/build.log) = 1 &&
	test $(( $(puts) - before )) = 2 &&
	s3api head-object --bucket $BUCKET --key team/a/stages/$key.json >/dev/null &&
	ID_A=$(build_id aout/manifest.json) && echo $ID_A >id_a
'

test_expect_success 'builder B, an empty cache: every stage a remote hit, none built' '
	{ B build --store $STORE -o bout img/image.yaml 2>err || { cat err; false; }; } &&
	for s in base rootfs meta disk export; do
		grep -q "^$s: remote hit" bout/build.log || { echo "no remote hit for $s"; cat bout/build.log; exit 1; }
	done &&
	! grep -E "fetching|writing ext4|writing GPT|written in" bout/build.log &&
	! grep -q "pushed to the store" bout/build.log &&
	cmp aout/root.ext4 bout/root.ext4 && cmp aout/disk.raw bout/disk.raw &&
	cmp aout/disk.qcow2 bout/disk.qcow2 &&
	# Both builds in the one registry, each by its id.
	IMGFORGE_REGISTRY=$REG "$IMG" ls >ls-reg &&
	grep -q "^$(cat id_a) " ls-reg && grep -q "^$(build_id bout/manifest.json) " ls-reg &&
	test "$(psql -X -A -t -h "$SOCK" -U imgforge -d reg -c "SELECT count(*) FROM builds")" -ge 3 &&
	"$IMG" cache ls --cache "$TEST_DIR/b-cache" >ls && test $(grep -c "^[0-9a-f]\{12\}" ls) -ge 5 || { cat ls; false; }
'

test_expect_success 'the same build without --store builds locally (the hits came from the store)' '
	"$IMG" build --cache "$TEST_DIR/c-cache" --registry "$TEST_DIR/c.db" -o cout img/image.yaml 2>err &&
	grep -q "^rootfs: writing ext4" cout/build.log && ! grep -q "remote hit" cout/build.log
'

test_expect_success 'fetch: builder B gets build A (gone from its machine), exports its disk, bundles it' '
	ID_A=$(cat id_a) &&
	mv aout aout.away &&
	test_must_fail B export $ID_A -o x.vmdk 2>err &&
	grep_one "imgforge fetch $ID_A" err &&
	dead=$(sh -c "echo \$\$") &&
	mkdir -p "$TEST_DIR/b-cache/builds/$ID_A.tmp-$dead" &&
	B fetch $ID_A --store $STORE >dir 2>err &&
	! test -e "$TEST_DIR/b-cache/builds/$ID_A.tmp-$dead" &&
	test "$(ls "$TEST_DIR/b-cache/builds")" = $ID_A &&
	test "$(cat dir)" = "$TEST_DIR/b-cache/builds/$ID_A" &&
	for f in root.ext4 disk.raw disk.qcow2 manifest.json; do
		cmp aout.away/$f "$(cat dir)/$f" || exit 1
	done &&
	d=$(cat dir) &&
	echo "disk.raw: $(stat -c %s $d/disk.raw) bytes, $(du -k $d/disk.raw | cut -f1) KiB allocated" &&
	test $(du -k $d/disk.raw | cut -f1) -lt $(( $(stat -c %s $d/disk.raw) / 1024 / 2 )) &&
	B export $ID_A -o a.vmdk &&
	qemu-img compare -f raw -F vmdk aout.away/disk.raw a.vmdk &&
	"$IMG" keygen -o sign 2>/dev/null &&
	B bundle $ID_A -o a.bundle --key sign/signing.key --cert sign/signing.crt 2>/dev/null &&
	"$IMG" bundle info a.bundle --json | python3 -c "import json, sys; assert json.load(sys.stdin)[\"manifest\"][\"build_id\"] == sys.argv[1]" $ID_A &&
	B fetch $ID_A --store $STORE 2>err2 && grep -q "already here" err2 &&
	mv aout.away aout
'

sha_of() { python3 -c "import json,sys; print([o['sha256'] for o in json.load(open(sys.argv[1]))['outputs'] if o['name'] == sys.argv[2]][0])" "$1" "$2"; }

test -d aout || mv aout.away aout

test_expect_success 'a changed object in the store: fetch refuses it in one line and keeps nothing' '
	ID_A=$(cat id_a) &&
	sha=$(sha_of aout/manifest.json root.ext4) &&
	head -c 4096 /dev/urandom >evil &&
	s3api put-object --bucket $BUCKET --key team/a/objects/sha256/$sha --body evil >/dev/null &&
	test_must_fail "$IMG" fetch $ID_A --store $STORE --cache "$TEST_DIR/d-cache" --registry "$REG" >out 2>err &&
	cat err &&
	test $(wc -l <err) -le 2 &&
	grep_one "^error: fetch: root.ext4 of build $ID_A: .s3://$BUCKET/team/a/objects/sha256/$sha. is not the file stored under that name .its SHA-256 is $(sha256sum evil | cut -d" " -f1).: refused; delete the object from the store" err &&
	! test -e "$TEST_DIR/d-cache/builds/$ID_A" &&
	test -z "$(ls -A "$TEST_DIR/d-cache/builds" 2>/dev/null)"
'

test_expect_success 'a build refuses the changed object, builds the stage itself and puts it back' '
	"$IMG" build --store $STORE --cache "$TEST_DIR/e-cache" --registry "$REG" -o eout img/image.yaml 2>err &&
	grep -q "^base: remote hit" eout/build.log &&
	grep_one "^warning: store: rootfs: .*is not the file stored under that name.*; building the stage here" err &&
	grep -q "^rootfs: writing ext4" eout/build.log &&
	cmp aout/root.ext4 eout/root.ext4 &&
	grep -q "^rootfs: pushed to the store" eout/build.log &&
	grep -q "^store: the build.s 4 outputs are in $STORE (1 sent)" eout/build.log &&
	sha=$(sha_of aout/manifest.json root.ext4) &&
	s3api get-object --bucket $BUCKET --key team/a/objects/sha256/$sha back >/dev/null &&
	test "$(sha256sum back | cut -d" " -f1)" = $sha
'

test_expect_success 'a store that does not answer: one warning line, the build succeeds locally' '
	port=$(python3 -c "import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])") &&
	AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port "$IMG" build --store $STORE --cache "$TEST_DIR/f-cache" \
		--registry "$TEST_DIR/f.db" -o fout img/image.yaml 2>err &&
	cat err &&
	test $(grep -c "warning: store" err) = 1 &&
	grep_one "^warning: store .$STORE.: .*127.0.0.1:$port.*; the build goes on without the store$" err &&
	grep -q "^rootfs: writing ext4" fout/build.log &&
	AWS_ENDPOINT_URL_S3=http://127.0.0.1:$port test_must_fail "$IMG" fetch "$(cat id_a)" --store $STORE \
		--cache "$TEST_DIR/f-cache" --registry "$REG" 2>err &&
	test $(wc -l <err) = 1 && grep_one "^error: fetch: .*127.0.0.1:$port" err
'

test_expect_success 'a stage entry that is not one: one warning line, the build succeeds locally' '
	key=$(python3 -c "import json; print(json.load(open(\"aout/manifest.json\"))[\"stage_keys\"][\"base\"])") &&
	echo "not json" >junk &&
	s3api put-object --bucket $BUCKET --key team/a/stages/$key.json --body junk >/dev/null &&
	"$IMG" build --store $STORE --cache "$TEST_DIR/h-cache" --registry "$TEST_DIR/h.db" -o hout img/image.yaml 2>err &&
	test $(grep -c "warning: store" err) = 1 &&
	grep_one "^warning: store .$STORE.: .s3://$BUCKET/team/a/stages/$key.json. cannot be read: .*; the build goes on without the store$" err &&
	grep -q "^base: fetching" hout/build.log && ! grep -q "remote hit" hout/build.log
'

test_expect_success 'bad store URLs and missing credentials: one error line each, nothing built' '
	test_must_fail "$IMG" build --store http://x/y --cache g -o gout img/image.yaml 2>err &&
	grep_one "^error: store .http://x/y.: not an s3:// URL" err &&
	test_must_fail "$IMG" build --store s3://B_ad --cache g -o gout img/image.yaml 2>err &&
	grep_one "not a bucket name" err &&
	test_must_fail env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY IMGFORGE_STORE=$STORE \
		"$IMG" fetch "$(cat id_a)" --cache g --registry "$REG" 2>err &&
	test $(wc -l <err) = 1 && grep_one "for the store .$STORE." err &&
	! test -e gout/manifest.json &&
	rc=0; "$IMG" fetch --store $STORE 2>err || rc=$? &&
	test $rc = 2 && grep_one "^error: fetch: give one build id" err &&
	rc=0; "$IMG" fetch "$(cat id_a)" --registry "$REG" 2>err || rc=$? &&
	test $rc = 2 && grep_one "^error: fetch: no shared store: give --store s3://BUCKET/PREFIX or set IMGFORGE_STORE$" err &&
	test_must_fail "$IMG" fetch 29991231 --store $STORE --registry "$REG" 2>err &&
	test $(wc -l <err) = 1 && grep_one "^error: fetch: .*imgforge ls" err
'

test_done
