#!/bin/bash
# users: on a booted image. A small appliance (appliance-state, ssh-keys-only)
# with one account from users: boots in QEMU; the account logs in over SSH
# with its key (the root filesystem is read-only), its home on /data exists,
# and password-less sudo works. Minutes and the apt mirror: run by
# `make check-users-boot` (IMGFORGE_FIRMWARE=bios for SeaBIOS), not `make check`.
. "$SRCDIR/tests/e2e/lib.sh"

for t in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 ssh:openssh-client \
	ssh-keygen:openssh-client debugfs:e2fsprogs; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
export IMGFORGE_MIRROR
FW=${IMGFORGE_FIRMWARE:-uefi}
P22=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

vm_pid() { cat "$TEST_DIR/vm.pid" 2>/dev/null; }
stop_vm() {
	local pid
	pid=$(vm_pid) && [ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	kill -9 "$pid" 2>/dev/null
	rm -f "$TEST_DIR/vm.pid"
}
trap 'stop_vm; cd /; rm -rf "$TEST_DIR"' EXIT
vm() { # USER COMMAND...
	local user=$1; shift
	ssh -i "$TEST_DIR/key" -p "$P22" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o LogLevel=ERROR -o ConnectTimeout=20 -o BatchMode=yes "$user@127.0.0.1" "$@"
}

test_expect_success 'an image with a users: account builds' '
	ssh-keygen -q -t ed25519 -N "" -C imgforge-test -f key &&
	cat >img.yaml <<-EOT &&
	image: users-boot
	version: "1"
	include: [$SRCDIR/recipes/base-debian-bookworm.yaml, $SRCDIR/recipes/appliance-state.yaml,
	          $SRCDIR/recipes/ssh-keys-only.yaml]
	packages: [sudo]
	users:
	  - {name: op, groups: [adm], sudo: nopasswd, ssh-authorized-keys: ["$(cat key.pub)"]}
	disk: {root_size: 1G, data_size: 256M}
	boot: {timeout: 0}
	EOT
	imgforge build --cache cache -o out img.yaml 2>build.err || { tail -20 build.err; exit 1; }
	debugfs -R "cat /etc/passwd" out/root.ext4 2>/dev/null | grep -x "op:x:1000:1000::/data/home/op:/bin/bash"
'

test_expect_success "it boots ($FW) and the account logs in with its key" '
	imgforge boot out/disk.raw --firmware "$FW" --keep --memory 1024 --timeout 900 --quiet \
		--forward "tcp:$P22:22" --log "$TEST_DIR/console.log" --expect "login:" \
		2>"$TEST_DIR/boot.err" || { cat "$TEST_DIR/boot.err"; tail -30 "$TEST_DIR/console.log"; exit 1; }
	sed -n "s/.*keeps running as pid \([0-9]*\).*/\1/p" "$TEST_DIR/boot.err" >"$TEST_DIR/vm.pid" &&
	test -s "$TEST_DIR/vm.pid" &&
	for _ in $(seq 60); do vm op true 2>/dev/null && break; sleep 5; done &&
	test "$(vm op id -un)" = op &&
	vm op id -Gn | grep -qw adm &&
	test "$(vm op pwd)" = /data/home/op &&
	vm op "touch ~/written && ls -ld ~" | grep -q "^drwx------ .* op op " &&
	vm op "findmnt -no OPTIONS /" | grep -q "^ro"
'

test_expect_success 'password-less sudo works for it, and root has no key' '
	test "$(vm op sudo -n id -u)" = 0 &&
	! vm root true 2>/dev/null
'

stop_vm
test_done
