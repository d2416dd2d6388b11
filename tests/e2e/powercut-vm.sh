# Power cuts over A/B updates in QEMU, for tests/e2e/long/t5110-powercut.sh
# (make check-powercut): sourced after lib.sh and vm-lib.sh; the caller sets
# POINTS (one point a line, below) and calls powercut_setup, then
# powercut_run. docs/update.md, "Power cuts", says what is checked.
#
# The image is the boot test image with SSH and /data (as t5100), built
# once; versions 1.1 and 1.2 are its root.ext4 with /etc/imgforge/release
# changed by debugfs, so three bundles exist whose images differ. Each point
# of the chain installs the version that neither slot runs (the target then
# never holds it already), from the host's HTTP server (10.0.2.2 in the
# guest; tests/helpers/httpd.py, which answers range requests), cuts the
# power (SIGKILL of QEMU) at the point, boots the disk until the slot is
# marked good, and checks what runs and what `imgforge-update status` says
# (tests/e2e/powercut-check.py) against the slots' bytes hashed on the host.
#
# A point: KIND ARG [full|delta]
#   stop NAME#N     the agent stops at that stop point (IMGFORGE_STOP_AT);
#                   the power is cut once it says so
#   after NAME#N S  the agent runs on (IMGFORGE_STOP_AT=trace); the power is
#                   cut S seconds after it passed the point
#   time S          cut S seconds after the install started
#   boot REGEX      the install runs to its end and reboots; the next boot is
#                   cut when REGEX appears on its console
#   boot2 REGEX     the same for the next two boots: GRUB's counter runs out
#                   (boot.tries 2) and the old slot must come back
for t in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 ssh:openssh-client \
	ssh-keygen:openssh-client sfdisk:fdisk debugfs:e2fsprogs python3:python3; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
test -e /usr/share/OVMF/OVMF_CODE_4M.fd || test -e /usr/share/OVMF/OVMF_CODE.fd ||
	{ echo "missing OVMF: install the Debian package 'ovmf'" >&2; exit 1; }
export IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
CACHE=${IMGFORGE_TEST_CACHE:-$TEST_DIR/cache}
export TEST_DIR
trap 'stop_vm; httpd_stop; cd /; rm -rf "$TEST_DIR"' EXIT

vm() {
	ssh -i "$TEST_DIR/key" -p "$(cat "$TEST_DIR/p22")" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 -o BatchMode=yes \
		-o ControlMaster=auto -o ControlPath="$TEST_DIR/ssh-%p" -o ControlPersist=60 root@127.0.0.1 "$@"
}
# power_cut: SIGKILL QEMU, as a power cut stops the machine. A QEMU that
# already ended (the guest's reboot finished before a cut timed after
# done#1: QEMU runs with -no-reboot) is said, and the chain goes on: the
# machine is off either way.
power_cut() {
	local pid
	pid=$(vm_pid) && [ -n "$pid" ] || return 1
	kill -9 "$pid" 2>/dev/null || echo "power_cut: QEMU (pid $pid) had already ended: the guest rebooted before the cut"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -f "$TEST_DIR/vm.pid" "$TEST_DIR"/ssh-*
}
# boot_kept LOG REGEX...: boot vm.raw, keep it, SSH on a fresh port.
boot_kept() {
	local log=$1 args=() re
	shift
	free_ports 1 >"$TEST_DIR/p22"
	for re in "$@"; do args+=(--expect "$re"); done
	vm_start "$log" vm.raw --firmware uefi --timeout 900 \
		--forward "tcp:$(cat "$TEST_DIR/p22"):22" "${args[@]}"
}
# holds SLOT: the version whose image the slot's partition starts with, or partial.
holds() {
	python3 - "$1" <<-'PY'
	import hashlib, json, os, subprocess, sys
	d = os.environ["TEST_DIR"]
	n = 3 if sys.argv[1] == "A" else 4
	p = json.loads(subprocess.check_output(["sfdisk", "--json", d + "/vm.raw"]))
	start = p["partitiontable"]["partitions"][n - 1]["start"] * 512
	imgs = json.load(open(d + "/images.json"))
	size = min(i["size"] for i in imgs.values())
	assert all(i["size"] == size for i in imgs.values())
	h = hashlib.sha256()
	with open(d + "/vm.raw", "rb") as f:
	    f.seek(start)
	    left = size
	    while left:
	        b = f.read(min(left, 1 << 22))
	        if not b:
	            break
	        h.update(b); left -= len(b)
	print(next((v for v, i in imgs.items() if i["sha256"] == h.hexdigest()), "partial"))
	PY
}

powercut_setup() {
	cat >pc.yaml <<-EOF
	image: test-powercut
	version: "1.0"
	include:
	  - $SRCDIR/images/test-boot.yaml
	  - $SRCDIR/recipes/appliance-state.yaml
	  - $SRCDIR/recipes/ssh-keys-only.yaml
	services:
	  enable: [systemd-networkd.service]
	disk:
	  data_size: 128M
	boot:
	  tries: 2
	update:
	  keyring: [$TEST_DIR/keys/signing.crt]
	  health_timeout: 120
	EOF
	test_expect_success 'one image built; three versions of it, their bundles on an HTTP server' '
		imgforge keygen -o keys 2>err && ssh-keygen -q -t ed25519 -N "" -C t -f key &&
		start=$SECONDS &&
		imgforge build --cache "$CACHE" -o out --set ssh_authorized_keys="$(cat key.pub)" \
			pc.yaml 2>build.err || { tail -20 build.err; exit 1; }
		echo "build: $((SECONDS - start)) s" >>timings &&
		mkdir -p www &&
		# 1.0 is the image slot A of disk.raw holds, untouched.
		debugfs -R "cat /etc/imgforge/release" out/root.ext4 2>/dev/null | grep -qx "VERSION=1.0" &&
		cp --sparse=always out/root.ext4 v1.0.ext4 &&
		imgforge bundle v1.0.ext4 -o www/v1.0.bundle --key keys/signing.key \
			--cert keys/signing.crt --compatible test-powercut --version 1.0 2>err ||
			{ cat err; exit 1; }
		for v in 1.1 1.2; do
			cp --sparse=always out/root.ext4 v$v.ext4 &&
			debugfs -R "cat /etc/imgforge/release" v$v.ext4 2>/dev/null |
				sed "s/^VERSION=.*/VERSION=$v/" >release-$v &&
			grep -qx "VERSION=$v" release-$v &&
			debugfs -w -R "rm /etc/imgforge/release" v$v.ext4 2>/dev/null &&
			debugfs -w -R "write release-$v /etc/imgforge/release" v$v.ext4 2>/dev/null &&
			debugfs -R "cat /etc/imgforge/release" v$v.ext4 2>/dev/null | grep -qx "VERSION=$v" &&
			imgforge bundle v$v.ext4 -o www/v$v.bundle --key keys/signing.key \
				--cert keys/signing.crt --compatible test-powercut --version $v 2>err ||
				{ cat err; exit 1; }
		done &&
		# Format 4 (points run "patch"): each version with a patch from each other one.
		if printf "%s\n" "$POINTS" | grep -q " patch$"; then
			for v in 1.0 1.1 1.2; do
				for s in 1.0 1.1 1.2; do
					[ $s = $v ] && continue
					imgforge bundle v$v.ext4 -o www/p$v-from$s.bundle --key keys/signing.key \
						--cert keys/signing.crt --compatible test-powercut --version $v \
						--delta-from v$s.ext4 2>err || { cat err; exit 1; }
				done
			done
		fi &&
		python3 -c "
import hashlib, json, os
out = {}
for v in (\"1.0\", \"1.1\", \"1.2\"):
    h = hashlib.sha256()
    with open(\"v%s.ext4\" % v, \"rb\") as f:
        for b in iter(lambda: f.read(1 << 22), b\"\"): h.update(b)
    out[v] = {\"size\": os.path.getsize(\"v%s.ext4\" % v), \"sha256\": h.hexdigest()}
assert len({i[\"sha256\"] for i in out.values()}) == 3
json.dump(out, open(\"images.json\", \"w\"))" &&
		cp --sparse=always out/disk.raw vm.raw
	'
	httpd_start || exit 1
	BASE_URL=http://10.0.2.2:$PORT
}

# up N: boot until the slot is marked good; the booted slot into $TEST_DIR/booted.
# A kernel that panics in its timer check ("IO-APIC + timer doesn't work"),
# which a TCG guest on an overloaded host does, is booted once more: that is
# the host's doing, and a boot GRUB counted like any other.
up() {
	local start=$SECONDS
	if ! boot_kept "console-$1.log" "imgforge\.slot=[AB] imgforge\.fallback=0" \
		"slot [AB] marked good"; then
		grep -q "IO-APIC + timer doesn't work" "$TEST_DIR/console-$1.log" || return 1
		echo "boot $1: the kernel's timer check failed under TCG; booted again" >>"$TEST_DIR/timings"
		mv "$TEST_DIR/console-$1.log" "$TEST_DIR/console-$1-panic.log"
		boot_kept "console-$1.log" "imgforge\.slot=[AB] imgforge\.fallback=0" \
			"slot [AB] marked good" || return 1
	fi
	sed -n "s/.*imgforge\.slot=\([AB]\) imgforge\.fallback=0.*/\1/p" "$TEST_DIR/console-$1.log" |
		tail -1 >"$TEST_DIR/booted"
	echo "boot $1 to marked good: $((SECONDS - start)) s" >>"$TEST_DIR/timings"
}
# check N POINT EXPECTED: what runs, and status, after the cut.
check() {
	local v
	vm "grep -o \"imgforge\.slot=[AB]\" /proc/cmdline; sed -n s/^VERSION=//p /etc/imgforge/release; \
		systemctl is-system-running --wait >/dev/null; imgforge-update status --json >/tmp/s.json; \
		cat /tmp/s.json; sync" >"check-$1.out" || return 1
	sed -n 3,\$p "check-$1.out" >"status-$1.json"
	test "$(sed -n 1p "check-$1.out")" = "imgforge.slot=$(cat booted)" || { echo "cmdline and console disagree"; return 1; }
	v=$(sed -n 2p "check-$1.out")
	python3 "$SRCDIR/tests/e2e/powercut-check.py" "status-$1.json" --booted "$(cat booted)" \
		--version "$v" --holds "A=$(holds A),B=$(holds B)" ${3:+--expect-booted $3} \
		--point "$2" || { vm imgforge-update status; return 1; }
	vm "systemctl --failed --no-legend --plain" >failed && { test ! -s failed || { cat failed; return 1; }; }
}
# cut_at N KIND ARG [full|delta|patch]: one point of the chain (the VM runs,
# marked good); patch: a delta download of a format-4 bundle whose patch
# starts from the running image.
cut_at() {
	local n=$1 kind=$2 arg=$3 how=${4:-full} running target other v stop=trace url
	local flags="--allow-downgrade --reboot" start=$SECONDS expect pid i
	running=$(cat booted)
	target=B && [ "$running" = B ] && target=A
	for v in 1.0 1.1 1.2; do
		[ "$(holds A)" = $v ] || [ "$(holds B)" = $v ] || other=$v
	done
	[ "$how" = full ] && flags="$flags --full"
	[ "$kind" = stop ] && stop=$arg
	url=$BASE_URL/v$other.bundle
	# patch: the format-4 bundle whose patch starts from what the running slot holds
	[ "$how" = patch ] && url=$BASE_URL/p$other-from$(holds "$running").bundle
	# A point in the patch's download: without the spool an earlier cut left
	# (the patch fetched already: no range, no patch#N), so that it is reached.
	case $how:$arg in patch:patch#*) vm rm -f /data/imgforge/update/delta-spool || return 1 ;; esac
	rm -f "cut-$n.out"
	vm "IMGFORGE_STOP_AT='$stop' imgforge-update install $flags $url" \
		>"cut-$n.out" 2>&1 &
	case $kind in
	stop) i=0; until grep -q "^stop-point: $arg: stopped" "cut-$n.out"; do
			sleep 0.1; i=$((i + 1)); [ $i -lt 9000 ] || break
			grep -q "^error:" "cut-$n.out" && break
		done ;;
	after) i=0; until grep -q "^stop-point: ${arg%% *}$" "cut-$n.out"; do
			sleep 0.1; i=$((i + 1)); [ $i -lt 9000 ] || break
			grep -q "^error:" "cut-$n.out" && break
		done; sleep "${arg#* }" ;;
	time) sleep "$arg" ;;
	boot|boot2) # The install runs to its end (minutes under TCG), then the reboot.
		wait
		grep -q "^stop-point: done#1" "cut-$n.out" ||
			{ echo "point $n: the install did not finish"; cat "cut-$n.out"; return 1; }
		wait_vm_exit || return 1 ;;
	esac
	if [ "$kind" = boot ] || [ "$kind" = boot2 ]; then
		for i in 1 2; do
			[ $i = 2 ] && [ "$kind" = boot ] && break
			boot_kept "console-$n-cut$i.log" "$arg" || return 1
			power_cut
		done
	else
		power_cut
	fi
	wait
	grep "^stop-point:\|^error:" "cut-$n.out" | tail -1 >"phase-$n"
	if [ "$kind" = stop ]; then
		grep -q "stopped" "phase-$n" || { echo "point $n: the install never reached $arg"; cat "cut-$n.out"; return 1; }
	fi
	if [ "$kind" = after ]; then
		grep -q "^stop-point: ${arg%% *}$" "cut-$n.out" ||
			{ echo "point $n: the install never passed ${arg%% *}"; cat "cut-$n.out"; return 1; }
	fi
	# Which slot must boot: the switch's primary block written, or not yet.
	case $kind:$arg in
	boot:*|stop:grubenv#2|stop:installed-recorded#*|stop:done#*) expect=$target ;;
	boot2:*|stop:*) expect=$running ;;
	*)	if grep -q "^stop-point: grubenv#2" "cut-$n.out"; then
			expect=$target
		elif ! grep -q "^stop-point: pre-install-hooks#1" "cut-$n.out"; then
			expect=$running
		else
			expect= # cut around the switch's write: either slot, but consistent
		fi ;;
	esac
	echo "$kind $arg" >"point-$n"
	up "$n" && check "$n" "$kind $arg ($how)" "$expect" || return 1
	printf "%2d %-6s %-28s %-5s last: %-32s booted %s, v%s, %s s\n" "$n" "$kind" "$arg" "$how" \
		"$(sed "s/^stop-point: //; s/: stopped//" "phase-$n" | cut -c1-32)" "$(cat booted)" \
		"$(sed -n 2p "check-$n.out")" $((SECONDS - start)) >>points.txt
	[ -z "${POWERCUT_REPORT:-}" ] || tail -1 points.txt >>"$POWERCUT_REPORT"
}

powercut_run() {
	test_expect_success 'the first boot: slot A runs 1.0 and is marked good' '
		up 0 && check 0 start A && test "$(holds A)" = 1.0
	'
	local n=0 line
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		n=$((n + 1))
		set -f
		# shellcheck disable=SC2086
		set -- $line
		set +f
		local kind=$1 how=${*: -1} arg
		case $how in full|delta|patch) arg=${line#"$kind "}; arg=${arg%" $how"} ;; *) how=full; arg=${line#"$kind "} ;; esac
		test_expect_success "power cut $n: $kind $arg ($how): a good slot boots, status consistent" "
			cut_at $n $kind \"$arg\" $how
		"
	done <<<"$POINTS"
	test_expect_success 'after every cut, an install runs to its end and its slot is marked good' '
		# The slot that does not run (a chain may end on either).
		running=$(cat booted) && target=B && if [ "$running" = B ]; then target=A; fi &&
		for v in 1.0 1.1 1.2; do [ "$(holds A)" = $v ] || [ "$(holds B)" = $v ] || other=$v; done &&
		{ vm imgforge-update install --allow-downgrade --reboot $BASE_URL/v$other.bundle >final.out 2>&1 || true; } &&
		grep -q "slot $target written and read back" final.out && wait_vm_exit &&
		up final && check final final $target && test "$(holds $target)" = $other
	'
	sed 's/^/# /' points.txt timings 2>/dev/null
}
