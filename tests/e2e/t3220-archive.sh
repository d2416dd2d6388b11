#!/bin/bash
# A package base's apt archives: several suites and sources, this machine's
# apt sources as the default, and the archives' state (InRelease) in the base
# key, checked over HTTP against a fake archive on loopback. mmdebstrap is a
# stand-in that records its arguments and writes a fixture root filesystem;
# tests/e2e/t3200 builds from the real archive.
. "$SRCDIR/tests/e2e/lib.sh"

require_tool e2fsck e2fsprogs || exit 1
FIX=$SRCDIR/tests/helpers/rootfs-fixture.py
unset IMGFORGE_MIRROR IMGFORGE_SECURITY_MIRROR

# The fake archive: dists/SUITE/InRelease of the release, -updates, -security,
# the security suites under a path no mirror name can be derived from.
mkdir -p www/debian/dists/bookworm www/debian/dists/bookworm-updates \
	www/sec/dists/bookworm-security www/debian-security/dists/bookworm-security &&
echo "Suite: bookworm" >www/debian/dists/bookworm/InRelease &&
echo "Suite: bookworm-updates" >www/debian/dists/bookworm-updates/InRelease &&
echo "Suite: bookworm-security 1" >www/sec/dists/bookworm-security/InRelease &&
echo "Suite: bookworm-security" >www/debian-security/dists/bookworm-security/InRelease || exit 1

start_httpd() { httpd_start && write_sources; }
# This machine's apt sources, as apt reads them: one-line and deb822.
write_sources() {
	mkdir -p apt/sources.list.d &&
	echo "deb $URL/debian bookworm main" >apt/sources.list &&
	printf "Types: deb\nURIs: $URL/debian\nSuites: bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: $URL/sec\nSuites: bookworm-security\nComponents: main\n" \
		>apt/sources.list.d/debian.sources
}
trap 'httpd_stop; cd /; rm -rf "$TEST_DIR"' EXIT
start_httpd || exit 1

mkdir -p bin && cat >bin/mmdebstrap <<EOT && chmod +x bin/mmdebstrap || exit 1
#!/bin/sh
printf "%s\\n" "\$@" >"$PWD/args"
echo run >>"$PWD/runs"
n=0
for a; do case "\$a" in --*) ;; *) n=\$((n + 1)); [ \$n = 2 ] && out=\$a ;; esac; done
cp "$PWD/rootfs.tar.gz" "\$out"
EOT
python3 "$FIX" rootfs.tar.gz base-files=12.4 libssl3=3.0.20-1~deb12u2 || exit 1
export PATH=$PWD/bin:$PATH

export IMGFORGE_APT_ETC=$PWD/apt

# The repository's Debian base without its services (the fixture has no systemd).
sed "/^services:/,\$d" "$SRCDIR/recipes/base-debian-bookworm.yaml" >base.yaml &&
printf 'image: a\nversion: "1"\ninclude: [base.yaml]\n' >image.yaml || exit 1
runs() { test -f runs && wc -l <runs || echo 0; }
base_key() { python3 -c "import json; print(json.load(open(\"$1/manifest.json\"))[\"stage_keys\"][\"base\"])"; }

test_expect_success 'without --mirror the base comes from this machine apt sources, security from its own URI' '
	imgforge build --cache c -o o1 image.yaml 2>err &&
	grep -qx "deb $URL/debian bookworm main" args &&
	grep -qx "deb $URL/debian bookworm-updates main" args &&
	grep -qx "deb $URL/sec bookworm-security main" args &&
	grep -q "base: $URL/sec bookworm-security (from this machine.s apt sources)" err &&
	test "$(runs)" = 1 && ls c/archive-state/* >/dev/null &&
	python3 -c "
import json, hashlib
m = json.load(open(\"o1/manifest.json\"))
a = {x[\"suite\"]: x for x in m[\"archive\"]}
assert a[\"bookworm-security\"][\"uri\"] == \"$URL/sec\", a
want = hashlib.sha256(open(\"www/sec/dists/bookworm-security/InRelease\", \"rb\").read()).hexdigest()
assert a[\"bookworm-security\"][\"inrelease_sha256\"] == want, a
assert a[\"bookworm\"][\"components\"] == \"main\" and a[\"bookworm\"][\"checked\"] > 0
"
'

test_expect_success 'the same archive state: the base is cached' '
	imgforge build --cache c -o o2 image.yaml 2>err &&
	grep -q "base: cached" err && test "$(runs)" = 1 &&
	imgforge build --refresh --cache c -o o2 image.yaml 2>err &&
	grep -q "base: cached" err && test "$(runs)" = 1 &&
	test "$(base_key o1)" = "$(base_key o2)"
'

test_expect_success 'a new upload to a suite: the state in the cache is used for an hour, --refresh sees it' '
	echo "Suite: bookworm-security 2" >www/sec/dists/bookworm-security/InRelease &&
	imgforge build --cache c -o o3 image.yaml 2>err &&
	grep -q "base: cached" err && test "$(runs)" = 1 &&
	imgforge build --refresh --cache c -o o3 image.yaml 2>err &&
	grep -q "base: $URL/sec bookworm-security changed since" err &&
	! grep -q "base: cached" err && test "$(runs)" = 2 &&
	test "$(base_key o1)" != "$(base_key o3)" &&
	grep -q "^GET /sec/dists/bookworm-security/InRelease" httpd.log
'

# Packages indexes: plain, gzip and xz, as archives serve them.
python3 - <<'EOP' || exit 1
import gzip, lzma, os
def put(path, text, how):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = text.encode()
    data = {"plain": data, "gz": gzip.compress(data), "xz": lzma.compress(data)}[how]
    open(path + {"plain": "", "gz": ".gz", "xz": ".xz"}[how], "wb").write(data)
stanza = "Package: %s\nVersion: %s\nArchitecture: %s\nDescription: x\n y\n\n"
put("www/debian/dists/bookworm/main/binary-amd64/Packages",
    stanza % ("base-files", "12.4", "amd64") + stanza % ("libssl3", "3.0.20-1~deb12u2", "amd64"), "plain")
put("www/debian/dists/bookworm-updates/main/binary-amd64/Packages",
    stanza % ("libssl3", "3.0.17-1~deb12u2", "amd64") + stanza % ("base-files", "12.4+deb12u1", "i386"), "xz")
put("www/sec/dists/bookworm-security/main/binary-amd64/Packages",
    stanza % ("libssl3", "3.0.22-1~deb12u2", "amd64") + stanza % ("libssl3", "3.0.21-1~deb12u2", "amd64")
    + stanza % ("nginx", "1.22.1-9+deb12u11", "amd64"), "gz")
EOP

test_expect_success 'outdated lists the packages of the latest build the archive has newer versions of' '
	{ imgforge outdated --cache c image.yaml >out 2>err; test $? = 3; } &&
	test "$(cat out)" = "libssl3 3.0.20-1~deb12u2 -> 3.0.22-1~deb12u2 (bookworm-security)" &&
	{ imgforge outdated --json --cache c image.yaml >out.json; test $? = 3; } &&
	python3 -c "
import json
o = json.load(open(\"out.json\"))
assert o[\"packages\"] == [{\"name\": \"libssl3\", \"architecture\": \"amd64\", \"installed\": \"3.0.20-1~deb12u2\", \"available\": \"3.0.22-1~deb12u2\", \"suite\": \"bookworm-security\"}], o
" &&
	printf "Package: libssl3\nVersion: 3.0.20-1~deb12u2\nArchitecture: amd64\n" >www/sec/dists/bookworm-security/main/binary-amd64/Packages &&
	rm www/sec/dists/bookworm-security/main/binary-amd64/Packages.gz &&
	imgforge outdated --cache c image.yaml >out 2>err &&
	test ! -s out && grep -q "is up to date with 3 suites" err &&
	id=$(python3 -c "import json; print(json.load(open(\"o3/manifest.json\"))[\"build_id\"])") &&
	imgforge show --cache c "$id" | grep -qx "updates   newer versions in the archives now: imgforge outdated IMAGE.yaml --build $id" &&
	test_must_fail imgforge outdated --cache c --build nosuchbuild image.yaml 2>err &&
	grep -q "imgforge ls" err
'

test_expect_success 'the archive cannot be reached: the last known state is used, and the build says so' '
	httpd_stop &&
	imgforge build --refresh --cache c -o o4 image.yaml 2>err &&
	grep_one "^warning: base: cannot fetch .$URL/sec/dists/bookworm-security/InRelease.: .*; using the archive state from [0-9-]+ [0-9:]+ UTC$" err &&
	imgforge -q build --refresh --cache c -o o4 image.yaml 2>err &&
	grep_one "^warning: base: cannot fetch .$URL/sec/dists/bookworm-security/InRelease.: .*; using the archive state from" err &&
	grep -q "^warning: base: cannot fetch" o4/build.log &&
	grep -q "base: cached" o4/build.log && test "$(base_key o3)" = "$(base_key o4)" &&
	test_must_fail imgforge build --refresh --cache c-new -o o5 image.yaml 2>err &&
	grep_one "^error: base: cannot fetch .*; no earlier state of $URL/debian bookworm is known: check the network and the mirror" err &&
	test ! -e o5/root.ext4 && test "$(runs)" = 2
'
start_httpd || exit 1

test_expect_success 'no apt sources and no --mirror: one line saying what to set' '
	test_must_fail env IMGFORGE_APT_ETC=$PWD/none "$IMGFORGE" build --cache c -o o6 image.yaml 2>err &&
	grep_one "^error: base: no archive for .bookworm.: this machine.s apt sources name none; pass --mirror URL \(or set IMGFORGE_MIRROR\)" err &&
	test $(wc -l <err) -le 2 && test ! -e o6/root.ext4
'

test_expect_success '--mirror alone: the security archive is the mirror sibling, or set on its own' '
	imgforge build --mirror "$URL/debian" --cache c -o o7 image.yaml 2>err &&
	grep -qx "deb $URL/debian-security bookworm-security main" args &&
	grep -q "(from next to base.mirror)" err &&
	IMGFORGE_SECURITY_MIRROR=$URL/sec imgforge build --mirror "$URL/debian" --cache c -o o7 image.yaml 2>err &&
	test "$(base_key o3)" = "$(base_key o7)"
'

test_expect_success 'a suite the archive does not have, and Release without InRelease' '
	printf "image: b\nversion: \"1\"\nbase: {distro: debian, suite: bookworm, suites: [bookworm, trixie]}\n" >b.yaml &&
	test_must_fail imgforge build --cache c -o o8 b.yaml 2>err &&
	grep_one "^error: base: no suite .trixie. at .$URL/debian. \(neither dists/trixie/InRelease nor Release" err &&
	mkdir -p www/debian/dists/trixie && echo "Suite: trixie" >www/debian/dists/trixie/Release &&
	imgforge build --cache c -o o8 b.yaml 2>err &&
	grep -qx "deb $URL/debian trixie main" args && ! grep -q security args
'

test_expect_success 'extra sources with their keyring; the keyring is part of the base key' '
	mkdir -p www/extra/dists/stable && echo "Suite: stable" >www/extra/dists/stable/InRelease &&
	echo key1 >extra.gpg &&
	printf "image: x\nversion: \"1\"\nbase:\n  distro: debian\n  suite: bookworm\n  sources:\n    - {uri: \"$URL/extra\", suites: [stable], components: [main, contrib], signed_by: extra.gpg}\n" >x.yaml &&
	imgforge build --cache c -o o9 x.yaml 2>err &&
	grep -qx "deb \[signed-by=$PWD/extra.gpg\] $URL/extra stable main contrib" args &&
	grep -qx -- "--customize-hook=upload $PWD/extra.gpg /etc/apt/keyrings/extra.gpg" args &&
	grep -qxF -- "--customize-hook=sed -i '"'"'s|signed-by=$PWD/extra.gpg|signed-by=/etc/apt/keyrings/extra.gpg|'"'"' \"\$1/etc/apt/sources.list\"" args &&
	imgforge plan x.yaml >p1 && echo key2 >extra.gpg && imgforge plan x.yaml >p2 &&
	test "$(grep "^  base:" p1)" != "$(grep "^  base:" p2)"
'

test_expect_success 'a snapshot: the snapshot service URL with the date, Valid-Until not checked' '
	mkdir -p www/archive/debian/20250520T000000Z/dists/bookworm \
		www/archive/debian-security/20250520T000000Z/dists/bookworm-security &&
	echo a >www/archive/debian/20250520T000000Z/dists/bookworm/InRelease &&
	echo b >www/archive/debian-security/20250520T000000Z/dists/bookworm-security/InRelease &&
	printf "image: s\nversion: \"1\"\nbase: {distro: debian, suite: bookworm, suites: [bookworm, bookworm-security], mirror: \"\${mirror:-}\", snapshot: 20250520T000000Z}\n" >s.yaml &&
	test_must_fail imgforge build --cache c -o o10 s.yaml 2>err &&
	grep_one "^error: base: base.snapshot .20250520T000000Z. needs the snapshot service.s archive URL: pass --mirror URL" err &&
	imgforge build --mirror "$URL/archive/debian" --cache c -o o10 s.yaml 2>err &&
	grep -qx "deb $URL/archive/debian/20250520T000000Z bookworm main" args &&
	grep -qx "deb $URL/archive/debian-security/20250520T000000Z bookworm-security main" args &&
	grep -qx -- "--aptopt=Acquire::Check-Valid-Until \"false\"" args
'

test_expect_success 'check refuses a bad snapshot date, a mirror that is not a URL, a source without suites' '
	printf "image: s\nversion: \"1\"\nbase: {distro: debian, suite: bookworm, snapshot: yesterday, mirror: \"-x\", sources: [{uri: \"http://127.0.0.1:9/x\"}]}\n" >bad.yaml &&
	test_must_fail imgforge check bad.yaml 2>err &&
	grep -q "bad.yaml:3:.*invalid snapshot .yesterday.: expected a UTC time like 20250520T000000Z" err &&
	grep -q "bad.yaml:3:.*invalid mirror .-x.: expected an http://" err &&
	grep -q "bad.yaml:3:.*a source needs .suites:." err
'

test_done
