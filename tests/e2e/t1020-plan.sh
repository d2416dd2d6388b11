#!/bin/bash
# imgforge plan: the resolved recipe and stage keys, stable byte for byte.
. "$SRCDIR/tests/e2e/lib.sh"

M=--mirror=http://mirror.invalid/debian

# A small image with profiles, next to the repository's recipes and overlays.
mkdir -p repo/images && ln -s "$SRCDIR/recipes" "$SRCDIR/overlays" repo/
cat >repo/images/atarys.yaml <<'EOF'
image: atarys
version: 1.0.0
include: [../recipes/base-debian-bookworm.yaml, ../recipes/nginx.yaml, ../recipes/ab-boot.yaml]
variables:
  domain: atarys.example
  workers: 4
  log_level: INFO
packages: [postgresql]
files:
  - path: /etc/atarys/app.env
    mode: "0640"
    owner: "root:www-data"
    content: "LOG_LEVEL=${log_level}\nDOMAIN=${domain}\nWORKERS=${workers}\n"
disk: {size: 4G, root_size: 1536M, data_size: 512M}
profiles:
  staging:    {variables: {domain: staging.atarys.example}}
  production: {variables: {log_level: WARNING}}
EOF
IMG=$TEST_DIR/repo/images/atarys.yaml

test_expect_success 'plan prints the resolved recipe and three stage keys' '
	imgforge plan $M "$IMG" >plan.yaml &&
	grep -E "^profile: default$" plan.yaml &&
	grep -E "^  image: atarys$" plan.yaml &&
	grep -A1 -E "^  packages: \[nginx, linux-image-cloud-amd64, initramfs-tools, systemd-sysv, udev, fdisk, e2fsprogs, libcurl4,$" plan.yaml |
		grep -E "^    libssl3, libzstd1, postgresql\]$" &&
	grep -E "^    enable: \[systemd-networkd.service, systemd-resolved.service, nginx, imgforge-grow-data.service, imgforge-mark-good.service\]$" plan.yaml &&
	grep -E "^  base: (\"?)[0-9a-f]{64}\\1$" plan.yaml &&
	grep -E "^  rootfs: (\"?)[0-9a-f]{64}\\1$" plan.yaml &&
	grep -E "^  disk: (\"?)[0-9a-f]{64}\\1$" plan.yaml
'

test_expect_success 'the same input gives the same output, from any directory' '
	imgforge plan $M "$IMG" >a &&
	imgforge plan $M "$IMG" >b &&
	cmp a b &&
	(cd repo && "$IMGFORGE" plan $M images/atarys.yaml) >c &&
	cmp a c
'

test_expect_success 'profile and --set change the variables and the keys' '
	imgforge plan $M "$IMG" >a &&
	imgforge plan $M --profile production "$IMG" >b &&
	grep -F "LOG_LEVEL=WARNING" b && grep -F "LOG_LEVEL=INFO" a &&
	imgforge plan $M --profile production --set log_level=DEBUG "$IMG" >c &&
	grep -F "LOG_LEVEL=DEBUG" c &&
	test "$(grep "^  rootfs:" a)" != "$(grep "^  rootfs:" b)" &&
	test "$(grep "^  base:" a)" = "$(grep "^  base:" b)"
'

test_expect_success 'the mirror is not part of the base key' '
	imgforge plan --mirror=http://a.invalid/debian "$IMG" >a &&
	imgforge plan --mirror=http://b.invalid/debian "$IMG" >b &&
	test "$(grep "^  base:" a)" = "$(grep "^  base:" b)"
'

test_expect_success 'overlay content is part of the rootfs key' '
	mkdir -p img/recipes img/images img/ovl/etc &&
	echo one >img/ovl/etc/motd &&
	printf "image: t\nversion: \"1\"\nbase: {distro: debian, suite: bookworm}\noverlays: [../ovl]\n" >img/images/t.yaml &&
	imgforge plan img/images/t.yaml >a &&
	echo two >img/ovl/etc/motd &&
	imgforge plan img/images/t.yaml >b &&
	test "$(grep "^  rootfs:" a)" != "$(grep "^  rootfs:" b)" &&
	test "$(grep "^  base:" a)" = "$(grep "^  base:" b)"
'

test_expect_success 'plan --json is JSON with the same content' '
	imgforge plan $M --json "$IMG" >plan.json &&
	python3 -c "
import json, sys
p = json.load(open(\"plan.json\"))
assert p[\"profile\"] == \"default\"
assert p[\"recipe\"][\"packages\"][0] == \"nginx\" and p[\"recipe\"][\"packages\"][-1] == \"postgresql\"
assert len(p[\"stages\"][\"rootfs\"]) == 64
" &&
	imgforge plan $M "$IMG" >plan.yaml &&
	test "$(sed -n "s/^  rootfs: \"\{0,1\}\([0-9a-f]*\)\"\{0,1\}$/\1/p" plan.yaml)" = "$(python3 -c "import json; print(json.load(open(\"plan.json\"))[\"stages\"][\"rootfs\"])")"
'

test_expect_success 'plan output is itself valid YAML' '
	imgforge plan $M "$IMG" >plan.yaml &&
	python3 -c "
import sys
try:
    import yaml
except ImportError:
    sys.exit(0)
d = yaml.safe_load(open(\"plan.yaml\"))
assert d[\"recipe\"][\"image\"] == \"atarys\"
"
'

test_expect_success 'the ATARYS images differ in their settings, not in their packages' '
	mkdir -p dist && "$IMGFORGE" keygen -o keys 2>/dev/null &&
	for e in production staging; do
		imgforge plan $M --set frontend_dist="$TEST_DIR/dist" \
			--set update_keyring="$TEST_DIR/keys/signing.crt" "$SRCDIR/images/atarys-$e.yaml" >$e || exit 1
	done &&
	grep -F "workers = 4" production && grep -F "workers = 2" staging &&
	grep -F "LOG_LEVEL=WARNING" production && grep -F "LOG_LEVEL=INFO" staging &&
	grep -F "DOMAIN=atarys.example" production && grep -F "DOMAIN=staging.atarys.example" staging &&
	test "$(grep "^  base:" production)" = "$(grep "^  base:" staging)" &&
	test "$(grep "^  rootfs:" production)" != "$(grep "^  rootfs:" staging)"
'

test_expect_success 'plan of a bad recipe fails like check' '
	printf "image: t\n" >bad.yaml &&
	test_must_fail imgforge plan bad.yaml 2>err &&
	grep -q "^bad.yaml:1:1: error: missing .version:." err
'

# plan reads and hashes what the recipe names: it must not hang or run out
# of memory on hostile input (plain binary, bounded; see t1010).
bounded() { (ulimit -v 2000000; timeout 20 "$IMGFORGE" "$@"); }
mini() { printf "image: t\nversion: \"1\"\nbase: {distro: debian, suite: bookworm}\n"; }

test_expect_success 'plan refuses a device or FIFO as a source instead of hashing it forever' '
	mkfifo fifo &&
	{ mini; echo "files: [{path: /z, source: /dev/zero}]"; } >zero.yaml &&
	rc=0; bounded plan zero.yaml >out 2>err || rc=$?
	test $rc -eq 1 && grep -q "^zero.yaml:4:28: error: source ./dev/zero. is not a regular file" err &&
	{ mini; echo "files: [{path: /f, source: fifo}]"; } >fifo.yaml &&
	rc=0; bounded plan fifo.yaml >out 2>err || rc=$?
	test $rc -eq 1 && grep -q "^fifo.yaml:4:28: error: source .fifo. is not a regular file" err
'

test_expect_success 'plan of a billion laughs is one error' '
	{ mini; echo "variables:"; echo "  a0: ha"
	  for i in $(seq 1 40); do echo "  a$i: \"\${a$((i - 1))}\${a$((i - 1))}\""; done
	  echo "description: \"\${a40}\""; } >laughs.yaml &&
	rc=0; bounded plan laughs.yaml >out 2>err || rc=$?
	test $rc -eq 1 && test ! -s out &&
	grep -q "^laughs.yaml:46:14: error: variable .a40. expands to more than 1 MiB" err
'

test_expect_success 'plan shows unused variables as written' '
	{ mini; echo "variables: {a: x, b: \"\${a}\${a}\", c: \"\${a}-\$\$\"}"; echo "description: \"\${b}\""; } >lazy.yaml &&
	imgforge plan lazy.yaml >out &&
	grep -qx "    b: xx" out && grep -qxF "    c: \${a}-\$\$" out
'

test_done
