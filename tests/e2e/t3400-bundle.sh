#!/bin/bash
# imgforge keygen, bundle, bundle info/verify and channel: a bundle of a real
# ext4 image read back with python3, zstd and openssl (not imgforge), and
# every kind of damage refused by `bundle verify` with one line and exit 1
# (under ASan+UBSan when make check provides that build): bit flips in the
# header, manifest, signature and payload, truncation, wrong, untrusted and
# expired keys; key rotation with a two-certificate keyring; a seeded sample
# of random mutations through the command line (the in-process harness of
# a thousand and more is tests/unit/test-bundle.c).
. "$SRCDIR/tests/e2e/lib.sh"

IMG=${IMGFORGE_SAN:-$IMGFORGE}
TOOL="python3 $SRCDIR/tests/e2e/bundle-tool.py"
: "${IMGFORGE_BUNDLE_CLI_MUTATIONS:=100}"

# verify_refused REGEX BUNDLE [KEYRING] [ARGS...]: exit 1, exactly one line, matching REGEX.
verify_refused() {
	local re=$1 b=$2 ring=${3:-keys/signing.crt} rc=0
	shift 3 2>/dev/null || shift $#
	"$IMG" bundle verify "$b" --keyring "$ring" "$@" >/dev/null 2>err || rc=$?
	test "$rc" = 1 || { echo "exit $rc for $b (want 1):"; cat err; return 1; }
	test "$(wc -l <err)" = 1 || { echo "not one line for $b:"; cat err; return 1; }
	grep -qE "^error: bundle verify: '[^']*': $re" err || { echo "unexpected:"; cat err; return 1; }
}

test_expect_success 'tools and a real ext4 image' '
	require_tool openssl openssl &&
	require_tool zstd zstd &&
	require_tool python3 python3 &&
	require_tool e2fsck e2fsprogs &&
	mkdir -p tree/etc tree/usr/bin &&
	echo "appliance 1.0" >tree/etc/issue &&
	head -c 3000000 /dev/urandom >tree/usr/bin/blob &&
	seq 1 200000 >tree/etc/numbers &&
	imgforge mkfs --from tree -o root.ext4 --size 24M &&
	e2fsck -fn root.ext4
'

test_expect_success 'keygen writes a 0600 key and a CA certificate, never overwrites' '
	imgforge keygen -o keys 2>err &&
	test "$(stat -c %a keys/signing.key)" = 600 &&
	openssl pkey -in keys/signing.key -noout -text | grep -q "NIST CURVE: P-256" &&
	openssl x509 -in keys/signing.crt -noout -text >crt.txt &&
	grep -q "CA:TRUE" crt.txt &&
	grep -q "Digital Signature, Certificate Sign" crt.txt &&
	grep -q "Subject: CN = imgforge update signing key" crt.txt &&
	openssl x509 -in keys/signing.crt -noout -checkend $((3640 * 86400)) &&
	cp keys/signing.key key.before &&
	test_must_fail imgforge keygen -o keys 2>err &&
	grep_one "^error: keygen: .keys/signing.key. exists" err &&
	cmp keys/signing.key key.before &&
	imgforge keygen --help | grep -q "signing.crt" &&
	imgforge keygen -o other --name "second key" --days 30 &&
	openssl x509 -in other/signing.crt -noout -subject | grep -q "second key"
'

test_expect_success 'bundle writes a bundle; no temporary file left' '
	imgforge bundle root.ext4 -o app.bundle --key keys/signing.key --cert keys/signing.crt \
		--compatible board-a --version 1.0.1 2>err &&
	grep -q "wrote .app.bundle." err &&
	test ! -e app.bundle.tmp &&
	test "$(stat -c %s app.bundle)" -lt "$(stat -c %s root.ext4)"
'

test_expect_success 'the bundle read back without imgforge: image, digests, signature' '
	$TOOL extract app.bundle image.out &&
	cmp image.out root.ext4 &&
	$TOOL split app.bundle signed.bin sig.der &&
	openssl cms -verify -binary -inform DER -in sig.der -content signed.bin \
		-CAfile keys/signing.crt -purpose any -out /dev/null &&
	openssl cms -cmsout -print -inform DER -in sig.der | grep -q "ecdsa-with-SHA256"
'

test_expect_success 'bundle info prints the manifest and says the signature is not checked' '
	imgforge bundle info app.bundle >info &&
	grep -qx "compatible  board-a" info &&
	grep -qx "version     1.0.1" info &&
	grep -q "^created     2023-11-14 22:13:20 UTC" info &&
	grep -q "^signer      CN=imgforge update signing key" info &&
	grep -q "NOT CHECKED" info &&
	imgforge bundle info app.bundle --json >info.json &&
	python3 -c "
import json, hashlib
j = json.load(open(\"info.json\"))
assert j[\"signature_checked\"] is False
m = j[\"manifest\"]
assert m[\"compatible\"] == \"board-a\" and m[\"version\"] == \"1.0.1\" and m[\"format\"] == 3
assert m[\"image\"][\"sha256\"] == hashlib.sha256(open(\"root.ext4\", \"rb\").read()).hexdigest()
assert m[\"chunk_index\"][\"size\"] > 0 and m[\"compression\"] == \"zstd\"
assert m[\"frame_size\"] == 65536 and m[\"chunk_index\"][\"page_chunks\"] == 16
# the chunk list is in the index, not in the manifest
assert \"chunks\" not in m
" &&
	$TOOL manifest app.bundle >man.json &&
	python3 -c "
import json
m = json.load(open(\"man.json\"))
# zero chunks are not stored
assert 0 < len(m[\"chunks\"]) < m[\"image\"][\"size\"] // m[\"chunk_size\"]
"
'

test_expect_success 'bundle verify accepts it; --help of every subcommand' '
	"$IMG" bundle verify app.bundle --keyring keys/signing.crt 2>err &&
	grep -q "good signature, board-a 1.0.1" err &&
	"$IMG" bundle verify app.bundle --keyring keys/signing.crt --compatible board-a &&
	imgforge bundle --help | grep -q "bundle info" &&
	imgforge bundle info --help | grep -q "WITHOUT checking" &&
	imgforge bundle verify --help | grep -q -- "--keyring" &&
	imgforge channel --help | grep -q -- "--channel" &&
	imgforge --help | grep -qE "^ +bundle "
'

test_expect_success 'usage errors exit 2 with one line' '
	rc=0; imgforge bundle verify app.bundle 2>err || rc=$?; test $rc = 2 &&
	grep_one "no keyring given" err &&
	rc=0; imgforge bundle root.ext4 -o x.bundle --key keys/signing.key --cert keys/signing.crt 2>err || rc=$?
	test $rc = 2 && grep_one "needs --compatible" err && test ! -e x.bundle
'

test_expect_success '--frame-size: recorded in the signed manifest, read back, verified' '
	imgforge bundle root.ext4 -o f32.bundle --key keys/signing.key --cert keys/signing.crt \
		--compatible board-a --version 1.0.1 --frame-size 32K &&
	imgforge bundle root.ext4 -o f2-16.bundle --key keys/signing.key --cert keys/signing.crt \
		--compatible board-a --version 1.0.1 --frame-size 16384 --format 2 &&
	imgforge bundle info f32.bundle --json >f32.json &&
	python3 -c "
import json
m = json.load(open(\"f32.json\"))[\"manifest\"]
assert m[\"frame_size\"] == 32768 and m[\"format\"] == 3, m
" &&
	$TOOL manifest f2-16.bundle | python3 -c "
import json, sys
m = json.load(sys.stdin)
assert m[\"frame_size\"] == 16384 and m[\"format\"] == 2, m
" &&
	$TOOL extract f32.bundle f32.out && cmp f32.out root.ext4 &&
	$TOOL extract f2-16.bundle f16.out && cmp f16.out root.ext4 &&
	"$IMG" bundle verify f32.bundle --keyring keys/signing.crt &&
	"$IMG" bundle verify f2-16.bundle --keyring keys/signing.crt
'

test_expect_success 'a bad --frame-size is refused with one line, nothing written' '
	for fs in 48K 2K 2M 0 abc 64KB-; do
		rc=0
		imgforge bundle root.ext4 -o x.bundle --key keys/signing.key --cert keys/signing.crt \
			--compatible board-a --version 1 --frame-size $fs 2>err || rc=$?
		test $rc = 2 &&
		grep_one "^error: bundle: --frame-size must be a power of two from 4K to 1M \(such as 32K or 64K\), not .$fs.$" err &&
		test ! -e x.bundle && test ! -e x.bundle.tmp || { echo "--frame-size $fs: exit $rc"; cat err; exit 1; }
	done &&
	rc=0
	imgforge bundle root.ext4 -o x.bundle --key keys/signing.key --cert keys/signing.crt \
		--compatible board-a --version 1 --format 1 --frame-size 32K 2>err || rc=$?
	test $rc = 2 && grep_one "^error: bundle: --frame-size needs format 2 or 3" err &&
	test ! -e x.bundle
'

test_expect_success 'bit flips in the header are refused (each with its message)' '
	for spec in "0:not an imgforge bundle" "7:not an imgforge bundle" \
		"8:bundle format 16777219 is not supported" \
		"12:invalid bundle header: manifest length" \
		"16:invalid bundle header: signature length" \
		"20:invalid bundle header: the reserved field" "23:invalid bundle header: the reserved field"; do
		off=${spec%%:*} re=${spec#*:}
		$TOOL flip app.bundle f.bundle "$off" 0 &&
		verify_refused "$re" f.bundle || { echo "byte $off"; exit 1; }
	done &&
	$TOOL flip app.bundle f.bundle 11 2 &&
	verify_refused "bundle format 7 is not supported" f.bundle &&
	for off in 11 13 14 15 17 18 19; do
		$TOOL flip app.bundle f.bundle "$off" 0 &&
		verify_refused "" f.bundle || { echo "byte $off"; exit 1; }
	done
'

test_expect_success 'bit flips in the manifest and the signature are refused' '
	read -r M S P N < <($TOOL layout app.bundle) &&
	for off in 24 30 $((24 + M / 3)) $((24 + M / 2)) $((24 + M - 1)); do
		for bit in 0 3 7; do
			$TOOL flip app.bundle f.bundle $off $bit &&
			verify_refused "the signature does not match the signed bytes" f.bundle ||
				{ echo "manifest byte $off bit $bit"; exit 1; }
		done
	done &&
	for off in $((24 + M)) $((24 + M + 30)) $((24 + M + S / 2)) $((24 + M + S - 1)); do
		for bit in 0 5; do
			$TOOL flip app.bundle f.bundle $off $bit &&
			verify_refused "(the signature|signed by)" f.bundle ||
				{ echo "signature byte $off bit $bit"; exit 1; }
		done
	done
'

test_expect_success 'bit flips in the payload and the chunk index are refused' '
	read -r M S P N < <($TOOL layout app.bundle) &&
	for off in $P $((P + 5)) $((P + (N - P) / 2)) $((N - 10)) $((N - 1)); do
		$TOOL flip app.bundle f.bundle $off 2 &&
		verify_refused "damaged bundle: (chunk [0-9]+|the payload|the chunk index)" f.bundle ||
			{ echo "payload byte $off"; exit 1; }
	done
'

test_expect_success 'truncation at many points is refused' '
	read -r M S P N < <($TOOL layout app.bundle) &&
	for len in 0 1 7 8 12 23 24 25 $((24 + M / 2)) $((24 + M - 1)) $((24 + M)) \
		$((24 + M + 1)) $((P - 1)) $P $((P + 1)) $((P + (N - P) / 2)) $((N - 1)); do
		head -c $len app.bundle >t.bundle &&
		verify_refused "(the bundle is empty|truncated bundle: it ends at byte $len, in)" t.bundle ||
			{ echo "truncated to $len"; exit 1; }
	done &&
	cat app.bundle >long.bundle && printf x >>long.bundle &&
	verify_refused "invalid bundle: data after the payload" long.bundle
'

test_expect_success 'wrong key, untrusted certificate, wrong compatible name' '
	verify_refused "signed by .CN=imgforge update signing key. \(certificate sha256 [0-9a-f]{16}\.\.\.\), which the keyring .other/signing.crt. does not trust" \
		app.bundle other/signing.crt &&
	verify_refused "the bundle is for .board-a., this system is .board-b." app.bundle \
		keys/signing.crt --compatible board-b &&
	verify_refused "cannot read keyring .nokeys.pem." app.bundle nokeys.pem &&
	verify_refused "keyring .keys/signing.key. holds no certificate" app.bundle keys/signing.key &&
	rm -f x.bundle && test_must_fail imgforge bundle root.ext4 -o x.bundle --key other/signing.key \
		--cert keys/signing.crt --compatible a --version 1 2>err &&
	grep_one "^error: bundle: the key .other/signing.key. does not belong" err &&
	test ! -e x.bundle && test ! -e x.bundle.tmp
'

test_expect_success 'an expired certificate is refused' '
	mkdir -p exp ca/newcerts && : >ca/index.txt && echo 01 >ca/serial &&
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out exp/signing.key 2>/dev/null &&
	openssl req -new -key exp/signing.key -subj "/CN=expired key" -out exp.csr &&
	cat >ca.cnf <<-EOF &&
	[ca]
	default_ca = d
	[d]
	dir = ca
	database = ca/index.txt
	new_certs_dir = ca/newcerts
	serial = ca/serial
	default_md = sha256
	policy = p
	unique_subject = no
	x509_extensions = ext
	[p]
	commonName = supplied
	[ext]
	basicConstraints = critical,CA:TRUE
	keyUsage = critical,digitalSignature,keyCertSign
	EOF
	openssl ca -batch -config ca.cnf -selfsign -keyfile exp/signing.key -in exp.csr \
		-startdate 20200101000000Z -enddate 20210101000000Z -out exp/signing.crt 2>/dev/null &&
	imgforge bundle root.ext4 -o exp.bundle --key exp/signing.key --cert exp/signing.crt \
		--compatible board-a --version 1.0.2 &&
	verify_refused "the signing certificate .CN=expired key. expired on 2021-01-01 00:00:00 UTC" \
		exp.bundle exp/signing.crt
'

test_expect_success 'key rotation: old+new keyring accepts both, then the old one is dropped' '
	imgforge keygen -o new --name "signing key 2027" &&
	imgforge bundle root.ext4 -o new.bundle --key new/signing.key --cert new/signing.crt \
		--compatible board-a --version 1.1 &&
	cat keys/signing.crt new/signing.crt >ring.pem &&
	"$IMG" bundle verify app.bundle --keyring ring.pem &&
	"$IMG" bundle verify new.bundle --keyring ring.pem &&
	mkdir ring.d && cp keys/signing.crt ring.d/old.crt && cp new/signing.crt ring.d/new.pem &&
	"$IMG" bundle verify app.bundle --keyring ring.d &&
	"$IMG" bundle verify new.bundle --keyring ring.d &&
	verify_refused "signed by .CN=signing key 2027." new.bundle keys/signing.crt &&
	rm ring.d/old.crt &&
	"$IMG" bundle verify new.bundle --keyring ring.d &&
	verify_refused "signed by .CN=imgforge update signing key." app.bundle ring.d
'

test_expect_success "random mutations through the command line ($IMGFORGE_BUNDLE_CLI_MUTATIONS, seeded): all refused, one line each" '
	i=0 &&
	while [ $i -lt $IMGFORGE_BUNDLE_CLI_MUTATIONS ]; do
		$TOOL mutate app.bundle m.bundle $((7000 + i)) &&
		verify_refused "" m.bundle || { echo "mutation seed $((7000 + i))"; exit 1; }
		i=$((i + 1))
	done
'

test_expect_success 'channel writes a signed index and keeps the other channels' '
	mkdir srv &&
	imgforge channel srv --channel stable --bundle app.bundle --url http://updates.test/app.bundle \
		--key keys/signing.key --cert keys/signing.crt &&
	imgforge channel srv --channel testing --bundle new.bundle --url http://updates.test/new.bundle \
		--key keys/signing.key --cert keys/signing.crt &&
	openssl cms -verify -binary -inform DER -in srv/channels.json.sig -content srv/channels.json \
		-CAfile keys/signing.crt -purpose any -out /dev/null &&
	python3 -c "
import json, hashlib, os
j = json.load(open(\"srv/channels.json\"))
assert j[\"format\"] == 1 and sorted(j[\"channels\"]) == [\"stable\", \"testing\"]
s = j[\"channels\"][\"stable\"]
assert s[\"version\"] == \"1.0.1\" and s[\"compatible\"] == \"board-a\"
assert s[\"sha256\"] == hashlib.sha256(open(\"app.bundle\", \"rb\").read()).hexdigest()
assert s[\"size\"] == os.path.getsize(\"app.bundle\")
assert j[\"channels\"][\"testing\"][\"version\"] == \"1.1\"
" &&
	test ! -e srv/channels.json.tmp && test ! -e srv/channels.json.sig.tmp &&
	echo "{" >srv/channels.json &&
	test_must_fail imgforge channel srv --channel stable --bundle app.bundle --url http://x/a \
		--key keys/signing.key --cert keys/signing.crt 2>err &&
	grep_one "^error: channel: .srv/channels.json.: invalid channel index" err
'

test_expect_success 'bundle BUILD_ID takes the image, version and id from the registry' '
	mkdir -p archive/debian/dists/bookworm archive/debian/dists/bookworm-updates \
		archive/debian-security/dists/bookworm-security &&
	for s in bookworm bookworm-updates; do echo "Suite: $s" >archive/debian/dists/$s/InRelease; done &&
	echo "Suite: bookworm-security" >archive/debian-security/dists/bookworm-security/InRelease &&
	mkdir -p b && python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" b/rootfs.tar.gz base-files=12.4 &&
	sha=$(sha256sum b/rootfs.tar.gz | cut -d" " -f1) &&
	printf "image: tiny\nversion: 2.0.0\nbase: {tarball: rootfs.tar.gz, sha256: %s}\n" "$sha" >b/image.yaml &&
	imgforge build --cache cache -o bout b/image.yaml 2>build.err &&
	id=$(imgforge ls --cache cache --json | python3 -c "import json,sys; print(json.load(sys.stdin)[-1][\"build_id\"])") &&
	imgforge bundle "${id:0:8}" --cache cache -o b.bundle --key keys/signing.key \
		--cert keys/signing.crt &&
	imgforge bundle info b.bundle --json >b.json &&
	python3 -c "
import json, sys
m = json.load(open(\"b.json\"))[\"manifest\"]
assert m[\"compatible\"] == \"tiny\" and m[\"version\"] == \"2.0.0\", m
assert m[\"build_id\"] == sys.argv[1], (m[\"build_id\"], sys.argv[1])
" "$id" &&
	$TOOL extract b.bundle b.img && cmp b.img bout/root.ext4 &&
	test_must_fail imgforge bundle nosuchbuild --cache cache -o c.bundle --key keys/signing.key \
		--cert keys/signing.crt 2>err &&
	grep_one "^error: bundle: .nosuchbuild. is not a file, and" err &&
	echo tampered >>bout/root.ext4 &&
	test_must_fail imgforge bundle "$id" --cache cache -o c.bundle --key keys/signing.key \
		--cert keys/signing.crt 2>err &&
	grep_one "is not the root.ext4 build $id wrote" err && test ! -e c.bundle
'

test_expect_success 'bundle --delta-from BUILD_ID: the patch from that build.s root.ext4, checked' '
	sha=$(sha256sum b/rootfs.tar.gz | cut -d" " -f1) &&
	mkdir -p c/ovl/etc && echo one >c/ovl/etc/motd && cp b/rootfs.tar.gz c/ &&
	printf "image: tiny\nversion: 3.0.0\nbase: {tarball: rootfs.tar.gz, sha256: %s}\noverlays: [ovl]\n" \
		"$sha" >c/image.yaml &&
	imgforge build --cache cache -o c1 c/image.yaml 2>build.err &&
	echo two >c/ovl/etc/motd && head -c 300000 /dev/urandom >c/ovl/etc/blob &&
	sed -i "s/^version: 3.0.0/version: 3.0.1/" c/image.yaml &&
	imgforge build --cache cache -o c2 c/image.yaml 2>build.err &&
	# by version: builds made within one second may be listed in either order
	ids=$(imgforge ls --cache cache --json | python3 -c "import json,sys; b={x[\"version\"]: x[\"build_id\"] for x in json.load(sys.stdin)}; print(b[\"3.0.0\"], b[\"3.0.1\"])") &&
	set -- $ids &&
	imgforge bundle "$2" --cache cache -o p.bundle --key keys/signing.key \
		--cert keys/signing.crt --delta-from "$1" &&
	imgforge bundle info p.bundle >p.info && grep -q "^format      4$" p.info &&
	grep -q "^patch from  an image of $(stat -c %s c1/root.ext4) bytes, sha256 $(sha256sum <c1/root.ext4 | cut -d" " -f1)$" p.info &&
	"$IMG" bundle verify p.bundle --keyring keys/signing.crt &&
	$TOOL apply-patch p.bundle c1/root.ext4 p.img && cmp p.img c2/root.ext4 &&
	test_must_fail imgforge bundle "$2" --cache cache -o q.bundle --key keys/signing.key \
		--cert keys/signing.crt --delta-from nosuchbuild 2>err &&
	grep_one "^error: bundle: .nosuchbuild. is" err && test ! -e q.bundle &&
	echo tampered >>c1/root.ext4 &&
	test_must_fail imgforge bundle "$2" --cache cache -o q.bundle --key keys/signing.key \
		--cert keys/signing.crt --delta-from "$1" 2>err &&
	grep_one "is not the root.ext4 build $1 wrote" err && test ! -e q.bundle
'

test_done
