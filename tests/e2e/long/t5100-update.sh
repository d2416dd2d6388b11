#!/bin/bash
# Signed A/B updates, end to end in QEMU: three releases of a small appliance
# (the boot test image with SSH and its state on /data) built from one
# cache, their bundles signed with a key made by `imgforge keygen` and
# served from the host over HTTP (10.0.2.2 in the guest). v1 boots from slot
# A; `imgforge-update install URL --reboot` brings v2 up from slot B with
# /data, the machine-id and the SSH host key kept; damaged, truncated,
# foreign, wrongly signed and older bundles are each refused with one error
# and the other slot's bytes and the boot order unchanged (hashed on the
# host); the signed channel index offers v3, `imgforge-update check
# --install --reboot` installs it, v3's health check fails, and after its
# boot.tries boots GRUB brings v2 back by itself.
#
# The VM runs with QEMU's -no-reboot (imgforge boot): a reboot in the guest
# ends QEMU, and the test boots the same disk again, as a power cycle
# would. The image's boot.tries is 2 (the default is 3) to spare one slow
# boot. About 12 minutes under TCG; the boot times are printed at the end.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/vm-lib.sh"

for t in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 ssh:openssh-client \
	ssh-keygen:openssh-client ssh-keyscan:openssh-client sfdisk:fdisk debugfs:e2fsprogs \
	python3:python3; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
FW=${IMGFORGE_UPDATE_FIRMWARE:-uefi}
if [ "$FW" = uefi ]; then
	test -e /usr/share/OVMF/OVMF_CODE_4M.fd || test -e /usr/share/OVMF/OVMF_CODE.fd ||
		{ echo "missing OVMF: install the Debian package 'ovmf'" >&2; exit 1; }
fi
export IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
CACHE=${IMGFORGE_TEST_CACHE:-$TEST_DIR/cache}
TRIES=2
MIB=1048576

# One port for the HTTP server, one for SSH on each kept boot (a port QEMU
# closed may sit in TIME_WAIT).
read -r -a PORTS < <(free_ports 4)
HTTP_PORT=${PORTS[0]}
BASE_URL=http://10.0.2.2:$HTTP_PORT
mkdir -p "$TEST_DIR/www"
python3 -m http.server --bind 127.0.0.1 --directory "$TEST_DIR/www" "$HTTP_PORT" \
	>"$TEST_DIR/http.log" 2>&1 &
HTTP_PID=$!
trap 'stop_vm; kill "$HTTP_PID" 2>/dev/null; cd /; rm -rf "$TEST_DIR"' EXIT

# SSH into the running VM, whose port is kept in a file (test bodies are
# subshells), through one master connection per boot: a new SSH handshake
# takes seconds in an emulated guest.
vm() {
	ssh -i "$TEST_DIR/key" -p "$(cat "$TEST_DIR/p22")" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 -o BatchMode=yes \
		-o ControlMaster=auto -o ControlPath="$TEST_DIR/ssh-%p" -o ControlPersist=60 root@127.0.0.1 "$@"
}
# boot_kept LOG N REGEX...: boot vm.raw and keep it running, SSH on PORTS[N].
boot_kept() {
	local log=$1 args=() re
	echo "${PORTS[$2]}" >"$TEST_DIR/p22"
	shift 2
	for re in "$@"; do args+=(--expect "$re"); done
	vm_start "$log" vm.raw --firmware "$FW" --timeout 900 \
		--forward "tcp:$(cat "$TEST_DIR/p22"):22" "${args[@]}"
}
# boot_once LOG REGEX...: boot vm.raw until the patterns appeared, then stop it.
boot_once() {
	local log=$1 args=() re
	shift
	for re in "$@"; do args+=(--expect "$re"); done
	imgforge boot vm.raw --firmware "$FW" --timeout 900 --quiet --log "$TEST_DIR/$log" \
		"${args[@]}" 2>"$TEST_DIR/$log.err" ||
		{ cat "$TEST_DIR/$log.err"; tail -30 "$TEST_DIR/$log"; return 1; }
}
elapsed() { echo "$1: $((SECONDS - $2)) s" >>"$TEST_DIR/timings"; }
# slot_hash A|B: SHA-256 of the slot's whole partition in vm.raw, read on the
# host after the guest flushed its caches to the disk.
slot_hash() {
	local n=3
	[ "$1" = B ] && n=4
	if [ -n "$(vm_pid)" ] && [ -z "${NO_SYNC:-}" ]; then vm sync || return 1; fi
	sfdisk --json "$TEST_DIR/vm.raw" | python3 -c "
import hashlib, json, sys
p = json.load(sys.stdin)['partitiontable']['partitions'][$n - 1]
h = hashlib.sha256()
with open('$TEST_DIR/vm.raw', 'rb') as f:
    f.seek(p['start'] * 512)
    left = p['size'] * 512
    while left:
        b = f.read(min(left, 1 << 22))
        if not b: sys.exit('short read')
        h.update(b); left -= len(b)
print(h.hexdigest())"
}
# slot_holds A|B BUNDLE|ROOT.ext4: the slot's partition starts with that image.
slot_holds() {
	local n=3
	[ "$1" = B ] && n=4
	if [ -n "$(vm_pid)" ]; then vm sync || return 1; fi
	case "$2" in
	*.bundle) imgforge bundle info "$2" --json >"$TEST_DIR/holds.json" ;;
	*) python3 -c "
import hashlib, json, os, sys
h = hashlib.sha256()
with open(sys.argv[1], 'rb') as f:
    for b in iter(lambda: f.read(1 << 22), b''): h.update(b)
json.dump({'manifest': {'image': {'size': os.path.getsize(sys.argv[1]), 'sha256': h.hexdigest()}}}, sys.stdout)" \
		"$2" >"$TEST_DIR/holds.json" ;;
	esac &&
	sfdisk --json "$TEST_DIR/vm.raw" | python3 -c "
import hashlib, json, sys
p = json.load(sys.stdin)['partitiontable']['partitions'][$n - 1]
img = json.load(open('$TEST_DIR/holds.json'))['manifest']['image']
h = hashlib.sha256()
with open('$TEST_DIR/vm.raw', 'rb') as f:
    f.seek(p['start'] * 512)
    left = img['size']
    while left:
        b = f.read(min(left, 1 << 22))
        if not b: sys.exit('short read')
        h.update(b); left -= len(b)
if h.hexdigest() != img['sha256']:
    sys.exit('slot $1 holds %s, not the image of $2 (%s)' % (h.hexdigest(), img['sha256']))"
}
# status_is EXPR: a Python expression over s, the guest's `imgforge-update
# status --json`; status_json_is EXPR: the same over the one last fetched.
status_is() {
	vm imgforge-update status --json >"$TEST_DIR/status.json" && status_json_is "$1"
}
status_json_is() {
	python3 - "$1" <<-'PY' || { cat "$TEST_DIR/status.json"; return 1; }
	import json, os, sys
	s = json.load(open(os.environ["TEST_DIR"] + "/status.json"))
	if not eval(sys.argv[1]):
	    sys.exit("status --json: not " + sys.argv[1])
	PY
}
export TEST_DIR
# identity: what must survive every update (/data, the machine-id, the SSH host key).
identity() {
	vm "cat /data/t5100-marker; echo; cat /etc/machine-id" &&
	ssh-keyscan -t ed25519 -p "$(cat "$TEST_DIR/p22")" 127.0.0.1 2>/dev/null | cut -d" " -f2-
}

cat >update.yaml <<EOF
# A small appliance for the update test: the boot test image with SSH (keys
# only), its state on /data, a health check, and signed updates.
image: test-update
version: "\${version}"
include:
  - $SRCDIR/images/test-boot.yaml
  - $SRCDIR/recipes/appliance-state.yaml
  - $SRCDIR/recipes/ssh-keys-only.yaml
variables:
  health_exit: "0"
services:
  enable: [systemd-networkd.service]
disk:
  data_size: 128M
boot:
  tries: $TRIES
files:
  - path: /usr/lib/imgforge/health.d/50-test-update
    mode: "0755"
    content: "#!/bin/sh\necho \"test-update \${version}: health \${health_exit}\"\nexit \${health_exit}\n"
update:
  keyring: [$TEST_DIR/keys/signing.crt]
  channel: $BASE_URL/
  health_timeout: 10
EOF

test_expect_success 'keys, and three releases built from one cache (v3 unhealthy)' '
	imgforge keygen -o keys 2>err && test "$(stat -c %a keys/signing.key)" = 600 &&
	imgforge keygen -o other --name "not the vendor" 2>err &&
	ssh-keygen -q -t ed25519 -N "" -C imgforge-test -f key &&
	for v in 1.0 2.0 3.0; do
		h=0 && if [ $v = 3.0 ]; then h=1; fi &&
		start=$SECONDS &&
		imgforge build --cache "$CACHE" -o out-$v --set version=$v --set health_exit=$h \
			--set ssh_authorized_keys="$(cat key.pub)" update.yaml 2>build-$v.err ||
			{ tail -20 build-$v.err; exit 1; }
		elapsed "build $v" $start || exit 1
	done &&
	grep -q "base: cached" build-2.0.err && grep -q "base: cached" build-3.0.err &&
	debugfs -R "cat /etc/imgforge/release" out-2.0/root.ext4 2>/dev/null | grep -qx "VERSION=2.0" &&
	debugfs -R "cat /etc/imgforge/update.conf" out-2.0/root.ext4 2>/dev/null >conf &&
	grep -qx "CHANNEL_URL=$BASE_URL/" conf &&
	debugfs -R "ls -l /etc/imgforge/keyring.d" out-2.0/root.ext4 2>/dev/null | grep -q "\.crt" &&
	debugfs -R "stat /usr/sbin/imgforge-update" out-2.0/root.ext4 2>/dev/null | grep -q "Mode: *0755" &&
	# The image holds the certificate, never the signing key.
	! grep -aqF "$(sed -n 2p keys/signing.key)" out-2.0/root.ext4
'

# The bundles the VM installs, and the bad ones it must refuse. The bad ones
# are made from a small ext4 image (7 chunks; streaming a damaged v3 would
# take minutes under TCG for the same checks), all for test-update 3.0,
# newer than the running v2, so that only their flaw can refuse them, but
# for the downgrade (1.0) and the other product.
test_expect_success 'signed bundles, verified on the host; the bad ones refused by bundle verify too' '
	build_id() { python3 -c "import json; print(json.load(open(\"$1/manifest.json\"))[\"build_id\"])"; } &&
	sign=(--key keys/signing.key --cert keys/signing.crt) &&
	start=$SECONDS &&
	for v in 2.0 3.0; do
		imgforge bundle "$(build_id out-$v)" --cache "$CACHE" -o www/v$v.bundle "${sign[@]}" 2>err ||
			{ cat err; exit 1; }
		imgforge bundle verify www/v$v.bundle --keyring keys/signing.crt || exit 1
	done &&
	elapsed "bundles of v2 and v3" $start &&
	imgforge bundle info www/v2.0.bundle --json >info2.json &&
	python3 -c "
import json
m = json.load(open(\"info2.json\"))[\"manifest\"]
assert m[\"compatible\"] == \"test-update\" and m[\"version\"] == \"2.0\", m
assert m[\"build_id\"] == \"$(build_id out-2.0)\", m" &&
	mkdir small && head -c 6M /dev/urandom >small/random &&
	imgforge mkfs --from small -o small.ext4 2>err &&
	imgforge bundle small.ext4 -o www/small.bundle "${sign[@]}" --compatible test-update \
		--version 3.0 2>err &&
	imgforge bundle small.ext4 -o www/other-key.bundle --key other/signing.key \
		--cert other/signing.crt --compatible test-update --version 3.0 2>err &&
	imgforge bundle small.ext4 -o www/other-product.bundle "${sign[@]}" \
		--compatible other-product --version 3.0 2>err &&
	imgforge bundle small.ext4 -o www/downgrade.bundle "${sign[@]}" \
		--compatible test-update --version 1.0 2>err &&
	imgforge bundle verify www/small.bundle --keyring keys/signing.crt &&
	# Damage copies where bundle info and the header say each part is.
	imgforge bundle info www/small.bundle --json >info-small.json &&
	python3 - <<-\PY &&
	import json, struct
	m = json.load(open("info-small.json"))["manifest"]
	data = open("www/small.bundle", "rb").read()
	mlen, slen = struct.unpack(">II", data[12:20])
	pay = m["payload"]["offset"]
	assert pay == 24 + mlen + slen, (pay, mlen, slen)
	assert len(data) == pay + m["payload"]["size"] + m["chunk_index"]["size"]
	assert len(m["chunks"]) >= 5, m["chunks"]
	first, last = m["chunks"][0], m["chunks"][-1]
	flips = {
	    "flip-manifest": 24 + mlen // 2,
	    "flip-signature": 24 + mlen + slen - 8,
	    "flip-signer-cert": 24 + mlen + slen // 2,
	    "flip-payload-first": pay + first["stored_offset"] + first["stored_size"] // 2,
	    "flip-payload-middle": pay + m["payload"]["size"] // 2,
	    "flip-payload-last": pay + last["stored_offset"] + last["stored_size"] // 2,
	}
	for name, off in flips.items():
	    b = bytearray(data)
	    b[off] ^= 0x10
	    open("www/%s.bundle" % name, "wb").write(b)
	open("www/cut-manifest.bundle", "wb").write(data[:24 + mlen // 2])
	open("www/cut-payload.bundle", "wb").write(data[:len(data) - 4096])
	PY
	for b in flip-manifest flip-signature flip-signer-cert flip-payload-first flip-payload-middle \
		flip-payload-last cut-manifest cut-payload other-key; do
		test_must_fail imgforge bundle verify www/$b.bundle --keyring keys/signing.crt \
			2>verify-$b.err || { echo "bundle verify took $b"; exit 1; }
		grep_one "^error: " verify-$b.err || exit 1
	done
'

test_expect_success "v1 boots ($FW) from slot A and is marked good" '
	cp --sparse=always out-1.0/disk.raw vm.raw &&
	start=$SECONDS &&
	boot_kept console-v1.log 1 "imgforge\.slot=A imgforge\.fallback=0" "slot A marked good" &&
	elapsed "v1: boot to marked good" $start &&
	vm "grep -o \"imgforge\.slot=[AB]\" /proc/cmdline" | grep -qx "imgforge.slot=A" &&
	status_is "s[\"booted\"] == \"A\" and s[\"version\"] == \"1.0\" and s[\"compatible\"] == \"test-update\" and s[\"slots\"][\"A\"][\"good\"]" &&
	vm "head -c 16 /dev/urandom | od -An -tx1 | tr -d \" \n\" >/data/t5100-marker && sync" &&
	identity >identity-v1 && cat identity-v1 && test "$(wc -l <identity-v1)" -eq 3
'

test_expect_success 'install v2 over HTTP with --reboot: v2 runs from slot B, /data and identity kept' '
	start=$SECONDS &&
	{ vm imgforge-update install "$BASE_URL/v2.0.bundle" --reboot >install-v2.out 2>&1 || true; } &&
	cat install-v2.out &&
	grep -q "slot B written and read back" install-v2.out &&
	! grep -q "^error:" install-v2.out &&
	wait_vm_exit &&
	elapsed "v1: install v2 until the reboot" $start &&
	slot_holds B www/v2.0.bundle && slot_holds A out-1.0/root.ext4 &&
	start=$SECONDS &&
	boot_kept console-v2.log 2 "imgforge\.slot=B imgforge\.fallback=0" "slot B marked good" &&
	elapsed "v2: boot to marked good" $start &&
	vm "grep -o \"imgforge\.slot=[AB]\" /proc/cmdline" | grep -qx "imgforge.slot=B" &&
	vm cat /etc/imgforge/release | grep -qx "VERSION=2.0" &&
	status_is "s[\"booted\"] == \"B\" and s[\"version\"] == \"2.0\" and s[\"order\"] == \"B A\" and s[\"slots\"][\"B\"][\"good\"] and s[\"slots\"][\"A\"][\"good\"]" &&
	status_is "s[\"last_install\"][\"result\"] == \"good\" and s[\"last_install\"][\"version\"] == \"2.0\"" &&
	identity >identity-v2 && cmp identity-v1 identity-v2 &&
	vm "systemctl --failed --no-legend --plain" >failed && { test ! -s failed || { cat failed; exit 1; }; }
'

# refused NAME REGEX: installing www/NAME.bundle fails with one error line
# matching REGEX, and changes neither slot A (v1, the other slot) nor the
# boot environment.
refused() {
	local name=$1 re=$2 a0 a1 rc=0 ok=1 start=$SECONDS
	# The state before: what the previous call left, or taken now.
	if [ ! -s "$TEST_DIR/slot-a.sha256" ]; then
		slot_hash A >"$TEST_DIR/slot-a.sha256" && vm imgforge-slot status >"$TEST_DIR/env.kept" ||
			return 1
	fi
	a0=$(cat "$TEST_DIR/slot-a.sha256") && cp "$TEST_DIR/env.kept" env.before || return 1
	vm imgforge-update install "$BASE_URL/$name.bundle" >"$name.out" 2>"$name.err" || rc=$?
	echo "--- $name: exit $rc"; cat "$name.err"
	vm "imgforge-slot status && echo --- && imgforge-update status --json && sync" >post &&
	sed "/^---$/,\$d" post >env.after && sed "1,/^---$/d" post >"$TEST_DIR/status.json" &&
	a1=$(NO_SYNC=1 slot_hash A) || return 1
	elapsed "refusal of $name" $start
	# The next call is judged on its own.
	echo "$a1" >"$TEST_DIR/slot-a.sha256" && cp env.after "$TEST_DIR/env.kept" || return 1
	test "$rc" -eq 1 || { echo "$name: exit status $rc, not 1"; ok=0; }
	grep_one "^error: " "$name.err" || ok=0
	grep -qE "^error: .*($re)" "$name.err" || { echo "$name: the error does not match /$re/"; ok=0; }
	test "$a0" = "$a1" || { echo "$name: slot A changed ($a0 -> $a1)"; ok=0; }
	cmp -s env.before env.after ||
		{ echo "$name: the boot environment changed:"; diff env.before env.after; ok=0; }
	test "$ok" = 1 &&
	status_json_is "s[\"booted\"] == \"B\" and s[\"version\"] == \"2.0\" and s[\"last_attempt\"][\"result\"] == \"refused\""
}

test_expect_success 'refused before any write: a bit flipped in the manifest' '
	refused flip-manifest "signature"
'
test_expect_success 'refused before any write: a bit flipped in the signature' '
	refused flip-signature "signature"
'
test_expect_success 'refused before any write: a bit flipped in the signer certificate inside the signature' '
	refused flip-signer-cert "signature|trust"
'
test_expect_success 'refused before any write: a bit flipped in the first chunk of the payload' '
	refused flip-payload-first "damaged|SHA-256"
'
test_expect_success 'refused before any write: a bit flipped in the middle of the payload' '
	refused flip-payload-middle "damaged|SHA-256"
'
test_expect_success 'refused before any write: a bit flipped in the last chunk of the payload' '
	refused flip-payload-last "damaged|SHA-256"
'
test_expect_success 'refused before any write: a bundle cut inside its manifest' '
	refused cut-manifest "truncated"
'
test_expect_success 'refused before any write: a bundle 4 KiB short' '
	refused cut-payload "truncated|cut short"
'
test_expect_success 'refused before any write: signed with a key the keyring does not hold' '
	refused other-key "trust|keyring"
'
test_expect_success 'refused before any write: a bundle for another product' '
	refused other-product "other-product"
'
test_expect_success 'refused before any write: an older version (v1)' '
	refused downgrade "older"
'
test_expect_success 'refused: the running version again, without --force' '
	refused v2.0 "already running"
'

test_expect_success 'the signed channel: a tampered index is refused, then v3 is offered' '
	imgforge channel www --channel stable --bundle www/v3.0.bundle --url v3.0.bundle \
		--key keys/signing.key --cert keys/signing.crt 2>err &&
	test -s www/channels.json && test -s www/channels.json.sig &&
	cp www/channels.json good.json &&
	sed "s/\"3\.0\"/\"3.1\"/" good.json >www/channels.json && ! cmp -s good.json www/channels.json &&
	a0=$(slot_hash A) && test -n "$a0" &&
	{ rc=0; vm imgforge-update check --install >check-bad.out 2>&1 || rc=$?; } &&
	cat check-bad.out && test "$rc" -eq 1 &&
	grep_one "^error: .*signature" check-bad.out &&
	test "$a0" = "$(slot_hash A)" &&
	cp good.json www/channels.json &&
	vm imgforge-update check >check.out 2>&1 && cat check.out &&
	grep -q "update available: test-update 3.0 (running 2.0)" check.out &&
	test "$a0" = "$(slot_hash A)"
'

test_expect_success 'check --install --reboot installs v3 from the channel into slot A' '
	start=$SECONDS &&
	{ vm imgforge-update check --install --reboot >check-install.out 2>&1 || true; } &&
	cat check-install.out &&
	grep -q "slot A written and read back" check-install.out &&
	! grep -q "^error:" check-install.out &&
	wait_vm_exit &&
	elapsed "v2: install v3 from the channel until the reboot" $start &&
	slot_holds A www/v3.0.bundle && slot_holds B www/v2.0.bundle
'

test_expect_success "v3 fails its health check; after $TRIES boots GRUB brings v2 back by itself" '
	for i in $(seq $TRIES); do
		start=$SECONDS &&
		boot_once console-v3-$i.log "imgforge\.slot=A imgforge\.fallback=0" \
			"health check 50-test-update failed: test-update 3.0: health 1" \
			"slot A not marked good" "reboot: Restarting system" &&
		elapsed "v3: unhealthy boot $i to its reboot" $start || exit 1
	done &&
	start=$SECONDS &&
	boot_kept console-rollback.log 3 "imgforge\.slot=B imgforge\.fallback=0" "slot B marked good" &&
	elapsed "v2 again: boot to marked good" $start &&
	vm "grep -o \"imgforge\.slot=[AB]\" /proc/cmdline" | grep -qx "imgforge.slot=B" &&
	vm cat /etc/imgforge/release | grep -qx "VERSION=2.0" &&
	vm imgforge-update status >status-rollback.txt && cat status-rollback.txt &&
	status_is "s[\"booted\"] == \"B\" and s[\"version\"] == \"2.0\" and s[\"slots\"][\"B\"][\"good\"] and not s[\"slots\"][\"A\"][\"good\"]" &&
	status_is "s[\"rolled_back\"] is not None and s[\"rolled_back\"][\"from\"] == \"A\" and \"health\" in s[\"rolled_back\"][\"reason\"]" &&
	identity >identity-rollback && cmp identity-v1 identity-rollback &&
	slot_holds A www/v3.0.bundle &&
	vm "systemctl --failed --no-legend --plain" >failed && { test ! -s failed || { cat failed; exit 1; }; }
'

sed 's/^/# /' "$TEST_DIR/timings" 2>/dev/null

test_done
