#!/bin/bash
# imgforge build with a tarball base (file://): stages, cache, outputs,
# scrubbing, registry; interrupted builds leave nothing half-done.
. "$SRCDIR/tests/e2e/lib.sh"

require_tool e2fsck e2fsprogs || exit 1
require_tool debugfs e2fsprogs || exit 1
FIX=$SRCDIR/tests/helpers/rootfs-fixture.py
export IMGFORGE_CACHE=$TEST_DIR/cache

# A package base checks its archives' InRelease files before mmdebstrap runs:
# a file:// archive with nothing but those, for the mmdebstrap stand-ins below.
ARCHIVE=file://$TEST_DIR/archive/debian
for s in debian/dists/bookworm debian/dists/bookworm-updates debian-security/dists/bookworm-security; do
	mkdir -p "archive/$s" && echo "Suite: ${s##*/}" >"archive/$s/InRelease" || exit 1
done

setup() { # NAME PKG=VER...
	mkdir -p "$1/ovl/etc/app" &&
	echo "hello from the overlay" >"$1/ovl/etc/app/motd" &&
	python3 "$FIX" "$1/rootfs.tar.gz" "${@:2}" &&
	sha=$(sha256sum "$1/rootfs.tar.gz" | cut -d" " -f1) &&
	cat >"$1/image.yaml" <<-EOT
	image: tiny
	version: 1.0.0
	variables: {greeting: hello}
	base: {tarball: rootfs.tar.gz, sha256: $sha}
	overlays: [ovl, {source: ovl, target: /srv/app, owner: "app:app"}]
	files:
	  - {path: /etc/app/env, mode: "0640", owner: "root:www-data", content: "GREETING=\${greeting}\n"}
	  - {path: /etc/app/link, type: symlink, target: env}
	services: {enable: [nginx]}
	EOT
}

dbg() { debugfs -R "$1" "$2" 2>/dev/null; }

test_expect_success 'build writes root.ext4, manifest.json and build.log' '
	setup a base-files=12.4 nginx=1.22.1-9 &&
	imgforge build --cache cache -o out a/image.yaml 2>err &&
	test -f out/root.ext4 && test -f out/manifest.json && test -f out/build.log &&
	e2fsck -fn out/root.ext4 &&
	python3 -c "
import json
m = json.load(open(\"out/manifest.json\"))
assert m[\"image\"] == \"tiny\" and m[\"version\"] == \"1.0.0\" and m[\"profile\"] == \"default\"
assert [p[\"name\"] for p in m[\"packages\"]] == [\"base-files\", \"nginx\"], m[\"packages\"]
assert m[\"packages\"][1][\"version\"] == \"1.22.1-9\" and m[\"packages\"][1][\"architecture\"] == \"amd64\"
assert len(m[\"stage_keys\"][\"rootfs\"]) == 64 and len(m[\"build_id\"]) > 8
o = {x[\"name\"]: x for x in m[\"outputs\"]}
import hashlib
assert o[\"root.ext4\"][\"sha256\"] == hashlib.sha256(open(\"out/root.ext4\", \"rb\").read()).hexdigest()
"
'

test_expect_success 'the image holds the recipe: overlays, files, owners, services' '
	dbg "cat /etc/app/motd" out/root.ext4 | grep -q "hello from the overlay" &&
	dbg "cat /srv/app/etc/app/motd" out/root.ext4 | grep -q "hello from the overlay" &&
	dbg "stat /srv/app/etc/app/motd" out/root.ext4 | grep -E "User: +1001 +Group: +1001" &&
	dbg "cat /etc/app/env" out/root.ext4 | grep -qx "GREETING=hello" &&
	dbg "stat /etc/app/env" out/root.ext4 >st && grep -E "Mode: +0640" st && grep -E "User: +0 +Group: +33" st &&
	dbg "stat /etc/systemd/system/multi-user.target.wants/nginx.service" out/root.ext4 | grep -F "Fast link dest: \"/usr/lib/systemd/system/nginx.service\"" &&
	dbg "stat /etc/systemd/system/httpd.service" out/root.ext4 | grep -q "Type: symlink"
'

test_expect_success 'no SSH host key or machine-id is baked into the image' '
	! dbg "ls -l /etc/ssh" out/root.ext4 | grep -q ssh_host_ &&
	dbg "ls -l /etc/ssh" out/root.ext4 | grep -q sshd_config &&
	dbg "stat /etc/machine-id" out/root.ext4 | grep -E "Size: 0$" &&
	dbg "stat /var/lib/dbus/machine-id" out/root.ext4 | grep -F "Fast link dest: \"/etc/machine-id\""
'

test_expect_success 'nothing of the build host: no hostname, no DNS server, the standard hosts' '
	! grep -a -q -e imgforge-build-host-dns -e imgforge-build-host-name out/root.ext4 &&
	! dbg "ls /etc" out/root.ext4 | grep -qw hostname &&
	dbg "stat /etc/resolv.conf" out/root.ext4 |
		grep -F "Fast link dest: \"../run/systemd/resolve/stub-resolv.conf\"" &&
	dbg "cat /etc/hosts" out/root.ext4 >hosts &&
	grep -qx "127.0.0.1	localhost" hosts &&
	grep -qx "::1		localhost ip6-localhost ip6-loopback" hosts
'

test_expect_success 'a recipe can still ship its own /etc/resolv.conf, /etc/hostname and /etc/hosts' '
	setup own &&
	echo "include: [own.yaml]" >>own/image.yaml &&
	cat >own/own.yaml <<-EOT &&
	files:
	  - {path: /etc/resolv.conf, content: "nameserver 198.51.100.1\n"}
	  - {path: /etc/hostname, content: "appliance\n"}
	  - {path: /etc/hosts, content: "127.0.0.1 localhost appliance\n"}
	EOT
	imgforge build --cache cache -o ownout own/image.yaml 2>err &&
	dbg "cat /etc/resolv.conf" ownout/root.ext4 | grep -qx "nameserver 198.51.100.1" &&
	dbg "cat /etc/hostname" ownout/root.ext4 | grep -qx appliance &&
	dbg "cat /etc/hosts" ownout/root.ext4 | grep -qx "127.0.0.1 localhost appliance"
'

test_expect_success 'the second build is a cache hit and says so' '
	imgforge build --cache cache -o out2 a/image.yaml 2>err &&
	grep -q "base: cached" err && grep -q "rootfs: cached" err &&
	cmp out/root.ext4 out2/root.ext4
'

test_expect_success 'same inputs and SOURCE_DATE_EPOCH: byte-identical without the cache' '
	imgforge build --cache c1 -o o1 a/image.yaml 2>/dev/null &&
	imgforge build --cache c2 -o o2 a/image.yaml 2>/dev/null &&
	cmp o1/root.ext4 o2/root.ext4
'

test_expect_success 'a corrupted cache entry is detected and rebuilt' '
	obj=$(ls cache/objects/* | head -1) && chmod u+w cache/objects/* &&
	for f in cache/objects/*; do printf X | dd of="$f" bs=1 seek=100 conv=notrunc 2>/dev/null; done &&
	imgforge build --verify --cache cache -o out3 a/image.yaml 2>err &&
	grep -q "cache entry dropped" err && ! grep -q "rootfs: cached" err &&
	cmp out/root.ext4 out3/root.ext4
'

test_expect_success 'a sha256 mismatch names both hashes and builds nothing' '
	setup bad &&
	sed -i "s/sha256: [0-9a-f]*/sha256: $(printf %064d 0)/" bad/image.yaml &&
	test_must_fail imgforge build --cache cache -o badout bad/image.yaml 2>err &&
	grep -E "0{64}" err && grep -E "$(sha256sum bad/rootfs.tar.gz | cut -c1-64)" err &&
	! test -f badout/root.ext4
'

test_expect_success 'a disk from a tarball without a kernel or the boot tools fails at build time, naming each' '
	setup nk &&
	printf "include: [%s]\ndisk: {root_size: 64M, data_size: 32M}\n" "$SRCDIR/recipes/ab-boot-files.yaml" >>nk/image.yaml &&
	imgforge check nk/image.yaml &&
	test_must_fail imgforge build --cache cache -o nkout nk/image.yaml 2>err &&
	grep_one "^error: the root filesystem lacks an initramfs \(/boot/initrd.img-\*\), sfdisk, partx, e2fsck, resize2fs, so the disk could not boot or grow its data partition: the tarball base must contain them" err &&
	! test -e nkout/disk.raw && ! test -e nkout/root.ext4 &&
	printf "remove: [/boot/vmlinuz-6.1.0-test]\n" >>nk/image.yaml &&
	test_must_fail imgforge build --cache cache -o nkout nk/image.yaml 2>err &&
	grep_one "^error: the root filesystem lacks a kernel \(/boot/vmlinuz-\*\), an initramfs" err &&
	mkdir -p nk/tools/boot nk/tools/usr/sbin nk/tools/usr/bin &&
	echo initrd >nk/tools/boot/initrd.img-6.1.0-test &&
	for t in usr/sbin/sfdisk usr/bin/partx usr/sbin/e2fsck usr/sbin/resize2fs; do
		printf "#!/bin/sh\n" >nk/tools/$t && chmod +x nk/tools/$t || exit 1
	done &&
	echo "overlays: [tools]" >nk/tools.yaml &&
	sed -i -e "/^remove:/d" -e "s|^include: \[\(.*\)\]\$|include: [\1, tools.yaml]|" nk/image.yaml &&
	imgforge build --cache cache -o nkout nk/image.yaml 2>err &&
	test -f nkout/disk.raw
'

# A stand-in for mmdebstrap: writes the fixture as its tarball and leaves a
# daemon behind that holds its output open, as a service started in a chroot can.
fake_mmdebstrap() { # DIR
	mkdir -p "$1/bin" &&
	cat >"$1/bin/mmdebstrap" <<-EOT &&
	#!/bin/sh
	n=0
	for a; do case "\$a" in --*) ;; *) n=\$((n + 1)); [ \$n = 2 ] && out=\$a ;; esac; done
	cp "$PWD/$1/rootfs.tar.gz" "\$out" || exit 1
	sleep 1000 &
	echo \$! >"$PWD/$1/daemon.pid"
	echo "I: done"
	EOT
	chmod +x "$1/bin/mmdebstrap" &&
	printf "image: m\nversion: \"1\"\nbase: {distro: debian, suite: bookworm, mirror: \"$ARCHIVE\"}\n" >"$1/image.yaml"
}

test_expect_success 'a daemon mmdebstrap leaves holding its output does not hang the build' '
	setup fm base-files=12.4 && fake_mmdebstrap fm &&
	PATH=$PWD/fm/bin:$PATH timeout 60 "$IMGFORGE" build --cache cache -o fmout fm/image.yaml 2>err ||
	{ cat err; kill $(cat fm/daemon.pid) 2>/dev/null; false; } &&
	grep -q "base: mmdebstrap done" err && e2fsck -fn fmout/root.ext4 &&
	pid=$(cat fm/daemon.pid) &&
	for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 $pid 2>/dev/null || break; sleep 0.5; done &&
	if kill -0 $pid 2>/dev/null && ! grep -q "^State:.*Z" /proc/$pid/status; then
		echo "the daemon $pid survived the build"; kill $pid; false
	fi
'

test_expect_success 'an overlay edited while the build reads it is not cached under the old key' '
	setup ed base-files=12.4 &&
	mkdir -p ed/bin &&
	cat >ed/bin/mmdebstrap <<-EOT &&
	#!/bin/sh
	n=0
	for a; do case "\$a" in --*) ;; *) n=\$((n + 1)); [ \$n = 2 ] && out=\$a ;; esac; done
	cp "$PWD/ed/rootfs.tar.gz" "\$out" || exit 1
	echo "edited during the build" >"$PWD/ed/ovl/etc/app/motd"
	EOT
	chmod +x ed/bin/mmdebstrap &&
	printf "image: ed\nversion: \"1\"\nbase: {distro: debian, suite: bookworm, mirror: \"$ARCHIVE\"}\noverlays: [ovl]\n" >ed/image.yaml &&
	test_must_fail env PATH=$PWD/ed/bin:$PATH "$IMGFORGE" build --cache edcache -o edout ed/image.yaml 2>err &&
	grep_one "^error: rootfs: an overlay or file source changed while the build read it" err &&
	test ! -e edout/root.ext4 &&
	PATH=$PWD/ed/bin:$PATH "$IMGFORGE" build --cache edcache -o edout ed/image.yaml 2>err &&
	dbg "cat /etc/app/motd" edout/root.ext4 | grep -qx "edited during the build" &&
	e2fsck -fn edout/root.ext4
'

# A stand-in for mmdebstrap that records its arguments, prints an escape
# sequence as a package script might, and exits with $FAKE_STATUS.
recording_mmdebstrap() { # DIR
	mkdir -p "$1/bin" &&
	cat >"$1/bin/mmdebstrap" <<-EOT &&
	#!/bin/sh
	printf "%s\\n" "\$@" >"$PWD/$1/args"
	n=0
	for a; do case "\$a" in --*) ;; *) n=\$((n + 1)); [ \$n = 2 ] && out=\$a ;; esac; done
	cp "$PWD/$1/rootfs.tar.gz" "\$out" || exit 1
	printf "Setting up evil \\033]0;title\\007\\033[2J ...\\n"
	exit \${FAKE_STATUS:-0}
	EOT
	chmod +x "$1/bin/mmdebstrap" &&
	printf "image: r\nversion: \"1\"\nbase: {distro: debian, suite: bookworm, mirror: \"\${mirror}\"}\n" >"$1/image.yaml"
}

test_expect_success 'a failed mmdebstrap is a failure even when imgforge is started with SIGCHLD ignored' '
	setup sc base-files=12.4 && recording_mmdebstrap sc &&
	test_must_fail env PATH=$PWD/sc/bin:$PATH FAKE_STATUS=1 python3 -c "
import os, signal, sys
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
os.execvp(sys.argv[1], sys.argv[1:])
" "$IMGFORGE" build --cache sccache -o scout --set mirror=$ARCHIVE sc/image.yaml 2>err &&
	grep -q "mmdebstrap failed" err && test ! -e scout/root.ext4
'

test_expect_success 'a mirror that looks like an option never reaches mmdebstrap as one' '
	setup mi base-files=12.4 && recording_mmdebstrap mi &&
	test_must_fail env PATH=$PWD/mi/bin:$PATH "$IMGFORGE" build --cache micache -o miout \
		--set "mirror=--customize-hook=touch $PWD/pwned" mi/image.yaml 2>err &&
	grep_one "error: invalid mirror .--customize-hook=touch .*: expected an http://, https:// or file:/// URL" err &&
	test ! -e pwned && test ! -e mi/args &&
	PATH=$PWD/mi/bin:$PATH "$IMGFORGE" build --cache micache -o miout \
		--set mirror=$ARCHIVE mi/image.yaml 2>err &&
	grep -A2 -x -- "--" mi/args | sed -n 2p | grep -qx bookworm
'

test_expect_success 'mmdebstrap output is quoted on the terminal; stale .deb staging is removed' '
	setup es base-files=12.4 && recording_mmdebstrap es &&
	mkdir -p escache/debs/.new-stale/x &&
	PATH=$PWD/es/bin:$PATH "$IMGFORGE" -v build --cache escache -o esout \
		--set mirror=$ARCHIVE es/image.yaml 2>err &&
	grep -q "Setting up evil" err &&
	! grep -q "$(printf "\\033")" err &&
	test ! -e escache/debs/.new-stale
'

test_expect_success 'ls, show and diff the registered builds' '
	setup b base-files=12.4 nginx=1.24.0-1 curl=7.88.1 &&
	echo "changed" >b/ovl/etc/app/motd &&
	imgforge build --cache cache -o outb b/image.yaml 2>/dev/null &&
	imgforge ls --registry cache/registry.db >ls.out &&
	test "$(grep -c tiny ls.out)" -ge 3 &&
	a=$(python3 -c "import json; print(json.load(open(\"out/manifest.json\"))[\"build_id\"])") &&
	b=$(python3 -c "import json; print(json.load(open(\"outb/manifest.json\"))[\"build_id\"])") &&
	imgforge show --registry cache/registry.db "$a" >show.out && grep -q nginx show.out &&
	imgforge diff --registry cache/registry.db "$a" "$b" >diff.out &&
	grep -E "curl" diff.out && grep -E "nginx.*1.22.1-9.*1.24.0-1" diff.out &&
	grep -E "/etc/app/motd" diff.out
'

if [ "$(id -u)" = 0 ] && mkdir -p full && mount -t tmpfs -o size=6m tmpfs full 2>/dev/null; then
	trap 'umount "$TEST_DIR/full" 2>/dev/null; cd /; rm -rf "$TEST_DIR"' EXIT
	test_expect_success 'disk full: one clear error, nothing registered, no partial output' '
		n0=$(imgforge ls --json --registry cache/registry.db | grep -o "\"id\"" | wc -l) &&
		setup f base-files=12.4 &&
		head -c 12000000 /dev/urandom >f/ovl/etc/app/big &&
		test_must_fail imgforge build --cache cache -o full/out f/image.yaml 2>err &&
		grep_one "^error: cannot write .full/out/root.ext4.: No space left on device" err &&
		! test -e full/out/root.ext4 && ! ls -A full/out | grep -vx build.log | grep -q . &&
		n1=$(imgforge ls --json --registry cache/registry.db | grep -o "\"id\"" | wc -l) &&
		test "$n0" -eq "$n1"
	'
else
	test_skip 'disk full: one clear error, nothing registered' 'needs root to mount a small tmpfs'
fi

test_expect_success 'a build killed at any point leaves no partial output and no row' '
	setup k base-files=12.4 &&
	head -c 30000000 /dev/urandom >k/ovl/etc/app/big &&
	before=$(imgforge ls --json --registry cache/registry.db | grep -o "\"id\"" | wc -l) &&
	done_runs=0 &&
	for delay in 0.05 0.2 0.5 1 2; do
		rm -rf kout
		"$IMGFORGE" build --cache cache -o kout k/image.yaml 2>/dev/null &
		pid=$!; sleep $delay; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
		if test -f kout/root.ext4; then
			# Under its final name, an output is complete.
			e2fsck -fn kout/root.ext4 >/dev/null || exit 1
		fi
		test -f kout/manifest.json && done_runs=$((done_runs + 1))
		! ls kout/root.ext4.* 2>/dev/null | grep -v "^kout/\." || exit 1
	done &&
	after=$(imgforge ls --json --registry cache/registry.db | grep -o "\"id\"" | wc -l) &&
	echo "killed runs that finished: $done_runs, rows added: $((after - before))" &&
	test $((after - before)) -le $done_runs &&
	imgforge build --cache cache -o kout k/image.yaml 2>/dev/null &&
	e2fsck -fn kout/root.ext4 &&
	ls cache/tmp | wc -l | grep -qx 0
'

test_expect_success 'build --json is valid JSON whatever the output directory is called' '
	setup j base-files=12.4 &&
	dir=$(printf "out \"quoted\" \\\\ \377") &&
	imgforge build --json --cache cache -o "$dir" j/image.yaml >out.json 2>err &&
	python3 -m json.tool out.json >/dev/null &&
	python3 -c "
import json, os
d = json.load(open(\"out.json\"))
assert os.fsencode(d[\"outdir\"]) == b\"out \\\"quoted\\\" \\\\ \\xff\", d
"
'

test_expect_success 'an unknown owner is named once; disable of a unit the image lacks warns' '
	setup w base-files=12.4 &&
	sed -i "s/owner: \"root:www-data\"/owner: \"nosuch:root\"/" w/image.yaml &&
	test_must_fail imgforge build --cache cache -o wout w/image.yaml 2>err &&
	grep -q "image.yaml:7:[0-9]*: .*no user .nosuch." err &&
	test "$(grep -o "owner .nosuch:root." err | wc -l)" -eq 1 &&
	setup v base-files=12.4 nginx=1.22.1-9 &&
	sed -i "s/services: {enable: \[nginx\]}/services: {enable: [nginx], disable: [nope]}/" v/image.yaml &&
	imgforge build --cache cache -o vout v/image.yaml 2>err &&
	grep -q "warning: .*image.yaml:9:[0-9]*: disable .nope.service.: no such unit in the image" err
'

test_done
