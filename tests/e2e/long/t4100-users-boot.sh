#!/bin/bash
# users: on a booted image. A small appliance (appliance-state, ssh-keys-only)
# with one account from users: boots in QEMU; the account logs in over SSH
# with its key (the root filesystem is read-only), its home on /data exists,
# and password-less sudo works. Minutes and the apt mirror: run by
# `make check-users-boot` (IMGFORGE_FIRMWARE=bios for SeaBIOS), not `make check`.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/vm-lib.sh"

for t in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 ssh:openssh-client \
	ssh-keygen:openssh-client debugfs:e2fsprogs; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
export IMGFORGE_MIRROR
FW=${IMGFORGE_FIRMWARE:-uefi}
P22=$(free_ports 1)
vm() { vm_ssh "$@"; } # USER COMMAND...

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
	vm_start console.log out/disk.raw --firmware "$FW" --memory 1024 --timeout 900 \
		--forward "tcp:$P22:22" --expect "login:" &&
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
