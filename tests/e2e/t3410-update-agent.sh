#!/bin/bash
# imgforge-update on a disk made of files, without QEMU: the slots are two
# files (IMGFORGE_UPDATE_ROOT_A/B), the ESP a directory with a real GRUB
# environment block (read back with grub-editenv), the kernel command line a
# file. Real ext4 images (imgforge mkfs), real signed bundles (imgforge
# bundle), downloads from an HTTP server on loopback that can cut them off.
. "$SRCDIR/tests/e2e/lib.sh"

agent_setup || exit 1
SLOTTOOL=$SRCDIR/overlays/imgforge-ab/usr/sbin/imgforge-slot

# booted SLOT VERSION: what GRUB and the running image would say.
booted() {
	echo "BOOT_IMAGE=/boot/vmlinuz root=PARTUUID=x ro imgforge.slot=$1 imgforge.fallback=0" >cmdline
	printf "IMAGE=test-update\nVERSION=%s\n" "$2" >release
}
# Both blocks hold the same variables.
blocks_agree() { cmp "$ENV/grubenv" "$ENV/grubenv.bak"; }
sha() { sha256sum "$1" | cut -c1-64; }

test_expect_success 'setup: two ext4 images, keys, bundles, a disk of files' '
	mkdir -p v1/etc v2/etc v2/usr/lib &&
	echo "release 1.0" >v1/etc/motd && echo "release 1.1" >v2/etc/motd &&
	head -c 3000000 /dev/urandom >v2/usr/lib/blob &&
	imgforge mkfs --from v1 -o v1.ext4 --size 16M &&
	imgforge mkfs --from v2 -o v2.ext4 --size 16M &&
	imgforge mkfs --from v2 -o big.ext4 --size 48M &&
	imgforge keygen -o keys && imgforge keygen -o other &&
	K="--key keys/signing.key --cert keys/signing.crt" &&
	imgforge bundle v2.ext4 -o v2.bundle $K --compatible test-update --version 1.1 &&
	imgforge bundle v2.ext4 -o v12.bundle $K --compatible test-update --version 1.2 &&
	imgforge bundle v1.ext4 -o old.bundle $K --compatible test-update --version 0.9 &&
	imgforge bundle v1.ext4 -o same.bundle $K --compatible test-update --version 1.0 &&
	imgforge bundle v2.ext4 -o other-name.bundle $K --compatible atarys --version 1.1 &&
	imgforge bundle big.ext4 -o big.bundle $K --compatible test-update --version 1.1 &&
	imgforge bundle v2.ext4 -o untrusted.bundle --key other/signing.key \
		--cert other/signing.crt --compatible test-update --version 1.1 &&
	cp v1.ext4 root-a.img && truncate -s 32M root-a.img &&
	head -c 33554432 /dev/urandom >root-b.img &&
	mkdir -p $ENV data &&
	grub-editenv $ENV/grubenv create &&
	grub-editenv $ENV/grubenv set "ORDER=A B" A_TRIES=0 B_TRIES=3 &&
	cp $ENV/grubenv $ENV/grubenv.bak &&
	echo "KEYRING=$TEST_DIR/keys/signing.crt" >update.conf &&
	booted A 1.0 &&
	mkdir -p update.d/pre-install.d update.d/post-install.d &&
	printf "#!/bin/sh\nenv | grep ^IMGFORGE_UPDATE_ | sort >%s/pre.env\n" "$TEST_DIR" \
		>update.d/pre-install.d/50-record &&
	printf "#!/bin/sh\necho post \$IMGFORGE_UPDATE_VERSION >%s/post.out\n" "$TEST_DIR" \
		>update.d/post-install.d/50-record &&
	chmod +x update.d/*/50-record
'

test_expect_success 'every command has --help' '
	for c in status install mark-good rollback check health-failed; do
		agent $c --help >out && grep -q "^usage: imgforge-update $c" out || exit 1
	done &&
	agent --help | grep -q "^   install " &&
	test_must_fail agent instal 2>err && grep_one "is not an imgforge-update command" err &&
	test_must_fail agent install 2>err && grep_one "install takes one URL or FILE" err
'

test_expect_success 'status: slot A runs and is good, B is bad, no update yet' '
	agent status >out &&
	grep -q "^booted:      slot A$" out && grep -q "^slot A:      good, running" out &&
	grep -q "^slot B:      bad" out && grep -q "^last update: none$" out &&
	agent status --json >st.json &&
	"$PY" -c "import json,sys; d=json.load(open(\"st.json\")); \
assert d[\"booted\"]==\"A\" and d[\"slots\"][\"B\"][\"tries\"]==3 and d[\"version\"]==\"1.0\", d"
'

# refused FILE REGEX: one error line, and neither slot B nor the boot order touched.
refused() {
	before=$(sha root-b.img) && cp $ENV/grubenv env.before &&
	test_must_fail agent install "$1" >out 2>err &&
	grep_one "^error: .*$2" err &&
	test "$(grep -c ^error: err)" = 1 &&
	test "$(sha root-b.img)" = "$before" &&
	cmp $ENV/grubenv env.before && blocks_agree &&
	test ! -e pre.env
}

test_expect_success 'refused before any write: untrusted signer, another image, downgrade, same version, too big' '
	refused untrusted.bundle ".untrusted.bundle.: signed by .* which the keyring .* does not trust" &&
	refused other-name.bundle "the bundle is for .atarys., this system is .test-update." &&
	refused old.bundle "version 0.9 is older than the running 1.0; give --allow-downgrade" &&
	refused same.bundle "version 1.0 is already running; give --force" &&
	refused big.bundle "does not fit slot B" &&
	grep -q "^RESULT=refused$" data/imgforge/update/last-attempt &&
	test ! -e data/imgforge/update/last-install
'

test_expect_success 'refused: a bundle whose manifest was changed after signing' '
	cp v2.bundle tampered.bundle &&
	off=$(grep -boa "\"version\":\"1.1\"" tampered.bundle | head -1 | cut -d: -f1) &&
	printf "9" | dd of=tampered.bundle bs=1 seek=$((off + 13)) conv=notrunc status=none &&
	refused tampered.bundle "the signature does not match the signed bytes"
'

test_expect_success 'refused: a damaged bundle header and a file that is no bundle' '
	head -c 10 v2.bundle >short.bundle && refused short.bundle "truncated bundle" &&
	refused update.conf "update.conf.: not an imgforge bundle"
'

test_expect_success 'a corrupted payload is refused before any write' '
	for at in first middle last; do
		cp v2.bundle corrupt.bundle &&
		poff=$("$PY" -c "import json,struct; f=open(\"v2.bundle\",\"rb\"); h=f.read(24); m=json.loads(f.read(struct.unpack(\">I\",h[12:16])[0])); print(m[\"payload\"][\"offset\"])") &&
		size=$(stat -c %s corrupt.bundle) &&
		pend=$("$PY" -c "import json,struct; f=open(\"v2.bundle\",\"rb\"); h=f.read(24); m=json.loads(f.read(struct.unpack(\">I\",h[12:16])[0])); print(m[\"payload\"][\"offset\"]+m[\"payload\"][\"size\"])") &&
		case $at in
		first) off=$((poff + 10)) ;;
		middle) off=$(((poff + size) / 2)) ;;
		last) off=$((pend - 100)) ;;
		esac &&
		cp $ENV/grubenv env.before && before=$(sha root-b.img) &&
		printf "\377\377\377\377" | dd of=corrupt.bundle bs=1 seek=$off conv=notrunc status=none &&
		test_must_fail agent install corrupt.bundle 2>err &&
		grep_one "^error: .corrupt.bundle.: the payload.s SHA-256 is not the one the signed manifest gives" err &&
		cmp $ENV/grubenv env.before && test "$(sha root-b.img)" = "$before" &&
		grep -q "^RESULT=refused$" data/imgforge/update/last-attempt || { echo "flip in the $at chunk"; exit 1; }
	done &&
	test ! -e pre.env
'

test_expect_success 'install from a file: slot B holds the image, boots next, hooks ran' '
	agent install v2.bundle >out 2>err &&
	cmp -n $(stat -c %s v2.ext4) v2.ext4 root-b.img &&
	cmp -n $(stat -c %s v1.ext4) v1.ext4 root-a.img &&
	test "$(env_get ORDER)" = "B A" && test "$(env_get B_TRIES)" = 0 &&
	test "$(env_get A_TRIES)" = 0 && blocks_agree &&
	grep -qx "IMGFORGE_UPDATE_SLOT=B" pre.env && grep -qx "IMGFORGE_UPDATE_VERSION=1.1" pre.env &&
	grep -qx "IMGFORGE_UPDATE_FROM_VERSION=1.0" pre.env &&
	grep -qx "post 1.1" post.out &&
	agent status >out && grep -q "^last update: 1.1 into slot B: installed, boots at the next reboot$" out &&
	e2fsck -fn root-b.img >/dev/null 2>&1 || e2fsck -fn v2.ext4
'

test_expect_success 'imgforge-slot reads what the agent wrote, and the agent what it writes' '
	"$SLOTTOOL" status >out && grep -qx "booted=A" out && grep -qx "ORDER=B A" out &&
	"$SLOTTOOL" set B_TRIES=1 &&
	agent status --json >st.json && grep -q "\"tries\": 1" st.json &&
	"$SLOTTOOL" set B_TRIES=0 && blocks_agree
'

test_expect_success 'a failing pre-install hook stops before the switch' '
	rm -f pre.env &&
	printf "#!/bin/sh\necho no backup space >&2\nexit 3\n" >update.d/pre-install.d/60-fail &&
	chmod +x update.d/pre-install.d/60-fail &&
	test_must_fail agent install v12.bundle 2>err &&
	grep_one "^error: the pre-install hook .*60-fail.* exited with status 3" err &&
	test "$(env_get ORDER)" = "A B" && test "$(env_get B_TRIES)" = 3 && blocks_agree &&
	rm update.d/pre-install.d/60-fail
'

test_expect_success 'a download cut off for good leaves slot A the default' '
	cp v2.bundle www/ &&
	test_must_fail agent install "$URL/v2.bundle?drop=2000000&times=100&norange=1" 2>err &&
	grep_one "^error: .*v2.bundle" err &&
	test "$(env_get ORDER)" = "A B" && test "$(env_get B_TRIES)" = 3 && blocks_agree &&
	agent status >out && grep -q "failed" out
'

test_expect_success 'cut off anywhere: nothing is written, slot A stays the default' '
	poff=$("$PY" -c "import struct,sys; h=open(\"v2.bundle\",\"rb\").read(24); m,s=struct.unpack(\">II\",h[12:20]); print(24+m+s)") &&
	size=$(stat -c %s v2.bundle) &&
	for cut in 0 10 24 200 $((poff - 1)) $poff $((poff + 1)) $((size / 2)) $((size - 1)); do
		grub-editenv $ENV/grubenv set "ORDER=A B" A_TRIES=0 B_TRIES=3 &&
		cp $ENV/grubenv $ENV/grubenv.bak && cp $ENV/grubenv env.before &&
		before=$(sha root-b.img) &&
		test_must_fail agent install "$URL/v2.bundle?drop=$cut&times=1000&norange=1" 2>err &&
		grep_one "^error: " err &&
		cmp $ENV/grubenv env.before && test "$(sha root-b.img)" = "$before" ||
		{ echo "cut at $cut (payload at $poff) changed the disk"; exit 1; }
	done
'

# The whole-bundle stream (--full: no delta download).
test_expect_success 'a download cut off once resumes with a range request and installs' '
	agent install --full "$URL/v2.bundle?drop=1500000" >out 2>err &&
	grep -q "range=bytes=1500000- status=206" httpd.log &&
	cmp -n $(stat -c %s v2.ext4) v2.ext4 root-b.img &&
	test "$(env_get ORDER)" = "B A" && test "$(env_get B_TRIES)" = 0
'

test_expect_success 'killed in the middle of a download: slot A stays the default' '
	# The first read of the bundle (the check before any write) goes
	# through; the second, which writes slot B, stalls halfway.
	"$AGENT" install --full "$URL/v2.bundle?stall=60000&times=100&after=1" >out 2>err &
	pid=$! &&
	for i in $(seq 300); do grep -q "^RESULT=installing$" data/imgforge/update/last-install 2>/dev/null && break; sleep 0.1; done &&
	grep -q "^RESULT=installing$" data/imgforge/update/last-install &&
	sleep 0.5 && kill -9 $pid && { wait $pid || true; } &&
	test "$(env_get ORDER)" = "A B" && test "$(env_get B_TRIES)" = 3 && blocks_agree &&
	agent status >out && grep -q "interrupted" out
'

test_expect_success 'a record that names no slot: status says it is damaged, prints no slot' '
	cp data/imgforge/update/last-install li.bak &&
	grep -v "^SLOT=" li.bak >data/imgforge/update/last-install &&
	agent status >out && cp li.bak data/imgforge/update/last-install &&
	cat out && test "$(tr -d "\\000" <out | wc -c)" = "$(wc -c <out)" &&
	grep -q "^last update: .* into slot ?: installing (the record names no slot: it is damaged" out
'

test_expect_success 'the new slot boots, passes its health check, is marked good' '
	agent install v2.bundle &&
	booted B 1.1 && grub-editenv $ENV/grubenv set B_TRIES=1 &&
	agent status >out && grep -q "running, waiting for its health check" out &&
	agent mark-good >out && grep -qx "imgforge: slot B marked good" out &&
	test "$(env_get B_TRIES)" = 0 && blocks_agree &&
	grep -q "^RESULT=good$" data/imgforge/update/last-install &&
	agent status >out && grep -q "^last update: 1.1 into slot B: good" out
'

test_expect_success 'rollback: the other slot boots next' '
	agent rollback >out && grep -q "slot A boots next" out &&
	test "$(env_get ORDER)" = "A B" && test "$(env_get A_TRIES)" = 0 && blocks_agree &&
	agent status --json >st.json && grep -q "imgforge-update rollback to slot A" st.json &&
	booted A 1.0
'

test_expect_success 'unhealthy new slot: GRUB falls back after the tries, status says why' '
	agent install v12.bundle && booted B 1.2 && grub-editenv $ENV/grubenv set B_TRIES=1 &&
	agent health-failed "unhealthy after 600 s: 50-app: connection refused" &&
	grub-editenv $ENV/grubenv set B_TRIES=3 && booted A 1.0 &&
	agent status >out &&
	grep -q "rolled back from B: health check failed (unhealthy after 600 s: 50-app: connection refused); tries exhausted" out &&
	agent mark-good >/dev/null 2>&1 &&
	grep -q "^RESULT=rolled-back$" data/imgforge/update/last-install &&
	agent status --json >st.json &&
	"$PY" -c "import json; d=json.load(open(\"st.json\")); r=d[\"rolled_back\"]; \
assert r[\"from\"]==\"B\" and \"health check failed\" in r[\"reason\"], d"
'

test_expect_success 'rollback to a slot marked bad is refused without --force' '
	test_must_fail agent rollback 2>err && grep_one "slot B is marked bad" err &&
	test "$(env_get ORDER)" = "B A"
'

test_expect_success 'a damaged primary block: the copy is read and both are written again' '
	grub-editenv $ENV/grubenv set "ORDER=A B" && cp $ENV/grubenv $ENV/grubenv.bak &&
	printf "garbage" | dd of=$ENV/grubenv bs=1 seek=0 conv=notrunc status=none &&
	agent status >out && grep -q "^boot order:  A B$" out &&
	agent install v12.bundle --force &&
	blocks_agree && test "$(env_get ORDER)" = "B A"
'

test_expect_success 'both blocks damaged: every command says so, mark-good on a working slot writes them anew' '
	cp $ENV/grubenv good.env &&
	printf "garbage" | dd of=$ENV/grubenv bs=1 seek=0 conv=notrunc status=none &&
	printf "garbage" | dd of=$ENV/grubenv.bak bs=1 seek=0 conv=notrunc status=none &&
	booted B 1.2 &&
	test_must_fail agent status 2>err &&
	grep_one "^error: neither .*grubenv. nor .*grubenv.bak. is a valid GRUB environment block" err &&
	test_must_fail agent install v12.bundle --force 2>err && grep_one "is a valid GRUB" err &&
	agent mark-good >out 2>err && grep -qx "imgforge: slot B marked good" out &&
	test "$(env_get ORDER)" = "B A" && test "$(env_get A_TRIES)" = 3 &&
	test "$(env_get B_TRIES)" = 0 && blocks_agree &&
	booted A 1.0 && cp good.env $ENV/grubenv && cp good.env $ENV/grubenv.bak
'

test_expect_success 'check: the signed channel index offers a newer version, --install installs it' '
	grub-editenv $ENV/grubenv set "ORDER=A B" B_TRIES=3 && cp $ENV/grubenv $ENV/grubenv.bak &&
	mkdir -p www/ch && cp v12.bundle www/ch/ &&
	imgforge channel www/ch --channel stable --bundle www/ch/v12.bundle --url v12.bundle \
		--key keys/signing.key --cert keys/signing.crt &&
	echo "CHANNEL_URL=$URL/ch" >>update.conf &&
	agent check >out && grep -q "update available: test-update 1.2 (running 1.0)" out &&
	test "$(env_get ORDER)" = "A B" &&
	agent check --install >out 2>err &&
	test "$(env_get ORDER)" = "B A" && cmp -n $(stat -c %s v2.ext4) v2.ext4 root-b.img &&
	booted B 1.2 && agent check >out && grep -q "up to date" out
'

test_expect_success 'check --install does not install again a version that rolled back here' '
	grub-editenv $ENV/grubenv set "ORDER=A B" A_TRIES=0 B_TRIES=3 && cp $ENV/grubenv $ENV/grubenv.bak &&
	booted A 1.0 &&
	agent check --install >out 2>err && test "$(env_get ORDER)" = "B A" &&
	booted B 1.2 && grub-editenv $ENV/grubenv set B_TRIES=1 &&
	agent health-failed "unhealthy after 600 s: 50-app: connection refused" &&
	grub-editenv $ENV/grubenv set B_TRIES=3 && booted A 1.0 &&
	agent mark-good >/dev/null 2>&1 &&
	grep -q "^RESULT=rolled-back$" data/imgforge/update/last-install &&
	cp $ENV/grubenv env.before && before=$(sha root-b.img) &&
	agent check --install >out 2>err &&
	grep -q "not installing test-update 1.2 from channel .stable.: it was rolled back on this device (health check failed" out &&
	cmp $ENV/grubenv env.before && test "$(sha root-b.img)" = "$before" &&
	grep -q "^RESULT=rolled-back$" data/imgforge/update/last-check &&
	# By hand it still installs (the operator fixed what failed, say).
	agent install "$URL/ch/v12.bundle" >out 2>err && test "$(env_get ORDER)" = "B A"
'

test_expect_success 'check: an index changed after signing is refused' '
	booted A 1.0 &&
	sed -i "s/1\.2/1.3/" www/ch/channels.json &&
	test_must_fail agent check --install 2>err && grep_one "^error: channel index" err &&
	grep -q "^RESULT=error$" data/imgforge/update/last-check
'

test_expect_success 'the appliance backs up its database before a switch; a failed backup stops it' '
	hook=$SRCDIR/overlays/pg-backup/usr/lib/imgforge/update.d/pre-install.d/50-pg-backup &&
	test -x "$hook" && sh -n "$hook" && grep -q "exec /usr/sbin/appliance-backup" "$hook" &&
	grub-editenv $ENV/grubenv set "ORDER=A B" B_TRIES=3 && cp $ENV/grubenv $ENV/grubenv.bak &&
	booted A 1.0 && test ! -e /usr/sbin/appliance-backup &&
	IMGFORGE_UPDATE_HOOKS=$SRCDIR/overlays/pg-backup/usr/lib/imgforge/update.d \
		test_must_fail "$AGENT" install v2.bundle 2>err &&
	grep_one "^error: the pre-install hook .*50-pg-backup. exited with status 127" err &&
	test "$(env_get ORDER)" = "A B" && test "$(env_get B_TRIES)" = 3
'

test_expect_success 'every write in its order: boot blocks copy first and in place, the slot before the switch, state files durable' '
	require_tool strace strace &&
	grub-editenv $ENV/grubenv set "ORDER=A B" A_TRIES=0 B_TRIES=3 && cp $ENV/grubenv $ENV/grubenv.bak &&
	booted A 1.0 && rm -rf data/imgforge &&
	# LeakSanitizer cannot run under ptrace: leaks are checked by every other test.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -e trace=openat,rename,fsync,pwrite64,write -o trace "$AGENT" install v2.bundle &&
	"$PY" "$SRCDIR/tests/e2e/durable-trace.py" trace "$TEST_DIR/root-b.img" \
		"$TEST_DIR/data/imgforge/update" "$TEST_DIR/$ENV" &&
	test "$(env_get ORDER)" = "B A"
'

# The image side: a tarball base with the boot support and stand-ins for the
# kernel and the boot tools (as t3100), and an update: section.
FIX=$SRCDIR/tests/helpers/rootfs-fixture.py
dbg() { debugfs -R "$1" "$2" 2>/dev/null; }
image() { # VERSION [UPDATE-SECTION]
	cat >img/image.yaml <<-EOT
	image: tiny
	version: "$1"
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -c1-64)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml, tools.yaml]
	disk: {root_size: 64M, data_size: 32M}
	EOT
	[ -z "${2:-}" ] || printf "%s\n" "$2" >>img/image.yaml
}
UPD="update: {keyring: [keys/signing.crt, keys/old.pem], channel: \"http://updates.example/tiny\", schedule: \"*-*-* 04:00:00\", health_timeout: 900}"

test_expect_success 'build: /etc/imgforge/release, update.conf, the keyring, the agent and the poll timer' '
	mkdir -p img/keys img/tools/boot img/tools/usr/sbin img/tools/usr/bin &&
	python3 "$FIX" img/rootfs.tar.gz base-files=12.4 &&
	echo kernel >img/tools/boot/vmlinuz-6.1.0-test && echo initrd >img/tools/boot/initrd.img-6.1.0-test &&
	for t in usr/sbin/sfdisk usr/bin/partx usr/sbin/e2fsck usr/sbin/resize2fs; do
		printf "#!/bin/sh\n" >img/tools/$t && chmod +x img/tools/$t || exit 1
	done &&
	echo "overlays: [tools]" >img/tools.yaml &&
	cp keys/signing.crt img/keys/ && cp other/signing.crt img/keys/old.pem &&
	image 2.0 "$UPD" &&
	imgforge build --cache cache -o o1 img/image.yaml 2>err &&
	grep_one "^warning: the root filesystem lacks libcurl.so.4, libcrypto.so.3, libzstd.so.1, which /usr/sbin/imgforge-update needs" err &&
	R=o1/root.ext4 &&
	dbg "cat /etc/imgforge/release" $R >release.got &&
	printf "IMAGE=tiny\nVERSION=2.0\n" | cmp - release.got &&
	dbg "cat /etc/imgforge/update.conf" $R >conf.got &&
	grep -qx "COMPATIBLE=tiny" conf.got && grep -qx "KEYRING=/etc/imgforge/keyring.d" conf.got &&
	grep -qx "CHANNEL_URL=http://updates.example/tiny" conf.got && grep -qx "CHANNEL=stable" conf.got &&
	grep -qx "IMGFORGE_HEALTH_TIMEOUT=900" conf.got &&
	dbg "cat /etc/imgforge/keyring.d/signing.crt" $R | cmp - keys/signing.crt &&
	dbg "cat /etc/imgforge/keyring.d/old.pem" $R | cmp - other/signing.crt &&
	dbg "cat /usr/sbin/imgforge-update" $R | cmp - "$(dirname "$IMGFORGE")/imgforge-update" &&
	dbg "stat /usr/sbin/imgforge-update" $R | grep -q "Mode:  0755" &&
	dbg "cat /etc/systemd/system/imgforge-update-check.timer.d/schedule.conf" $R |
		grep -qx "OnCalendar=\*-\*-\* 04:00:00" &&
	dbg "stat /etc/systemd/system/timers.target.wants/imgforge-update-check.timer" $R |
		grep -q "Type: symlink" &&
	dbg "cat /usr/lib/imgforge/mark-good" $R | grep -q "imgforge-update mark-good" &&
	! dbg "stat /etc/systemd/system/imgforge-update-check.service.d/reboot.conf" $R | grep -q Type
'

test_expect_success 'build: the version is in the root filesystem key; no update: means no agent configuration' '
	imgforge plan img/image.yaml | grep "^  rootfs:" >k1 &&
	image 2.1 "$UPD" &&
	imgforge plan img/image.yaml | grep "^  rootfs:" >k2 &&
	! cmp -s k1 k2 &&
	mkdir -p img/tools/usr/lib/x86_64-linux-gnu &&
	for l in libcurl.so.4 libcrypto.so.3 libzstd.so.1; do echo lib >img/tools/usr/lib/x86_64-linux-gnu/$l; done &&
	imgforge build --cache cache -o o2 img/image.yaml 2>err && ! grep -q "rootfs: cached" err &&
	! grep -q "^warning: " err &&
	dbg "cat /etc/imgforge/release" o2/root.ext4 | grep -qx "VERSION=2.1" &&
	image 2.1 &&
	imgforge build --cache cache -o o3 img/image.yaml 2>err &&
	dbg "cat /etc/imgforge/release" o3/root.ext4 | grep -qx "IMAGE=tiny" &&
	! dbg "stat /etc/imgforge/update.conf" o3/root.ext4 | grep -q Type &&
	! dbg "stat /etc/systemd/system/timers.target.wants/imgforge-update-check.timer" o3/root.ext4 | grep -q Type
'

test_expect_success 'build: a private key in the keyring, no keyring, a bad channel or schedule are refused' '
	image 2.1 "update: {keyring: [keys/signing.key]}" && cp keys/signing.key img/keys/ &&
	test_must_fail imgforge build --cache cache -o o4 img/image.yaml 2>err &&
	grep_one "^error: .*update.keyring .keys/signing.key. holds a private key" err && ! test -e o4/root.ext4 &&
	image 2.1 "update: {channel: \"http://x.example/\"}" &&
	test_must_fail imgforge check img/image.yaml 2>err && grep_one "update: needs .keyring:." err &&
	image 2.1 "update: {keyring: [keys/signing.crt], channel: \"updates.example\"}" &&
	test_must_fail imgforge check img/image.yaml 2>err && grep_one "update.channel .updates.example. is not an http" err &&
	image 2.1 "update: {keyring: [keys/signing.crt], schedule: \"daily\\n[Service]\"}" &&
	test_must_fail imgforge check img/image.yaml 2>err && grep_one "update.schedule must be one systemd calendar expression" err
'

test_done
