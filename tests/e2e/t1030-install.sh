#!/bin/bash
# make install: the binary, recipes/ and overlays/ under PREFIX/share/imgforge
# with their modes, the update agent in PREFIX/lib/imgforge; an image outside
# the checkout includes ab-boot.yaml by name (the installed recipes, -I,
# $IMGFORGE_PATH), and the overlays the
# installed recipes name resolve next to them.
. "$SRCDIR/tests/e2e/lib.sh"

require_tool make make || exit 1
require_tool debugfs e2fsprogs || exit 1
ROOT=$TEST_DIR/root
DATA=$ROOT/usr/share/imgforge
BIN=$ROOT/usr/bin/imgforge

test_expect_success 'make install PREFIX=/usr installs the binary, recipes and overlays' '
	nice make -j2 -s -C "$SRCDIR" O="$TEST_DIR/obj" PREFIX=/usr DESTDIR="$ROOT" install >make.out 2>&1 ||
		{ cat make.out; exit 1; } &&
	test -x "$BIN" && test -x "$ROOT/usr/lib/imgforge/imgforge-update" &&
	"$ROOT/usr/lib/imgforge/imgforge-update" --version | grep -q "^imgforge-update " &&
	test -f "$DATA/recipes/ab-boot.yaml" && test -f "$DATA/recipes/ab-boot-files.yaml" &&
	test -x "$DATA/overlays/imgforge-ab/usr/sbin/imgforge-slot" &&
	test "$(stat -c %a "$DATA/overlays/imgforge-ab/etc/fstab")" = 644 &&
	(cd "$SRCDIR" && find recipes overlays -printf "%p %m %s\n" | sort) >want &&
	(cd "$DATA" && find recipes overlays -printf "%p %m %s\n" | sort) >got &&
	diff want got
'

mini() { printf "image: t\nversion: \"1\"\nbase: {distro: debian, suite: bookworm}\n"; }

test_expect_success 'the installed binary looks in PREFIX/share/imgforge/recipes' '
	mkdir -p img && { mini; echo "include: [ab-boot.yaml]"; echo "disk: {root_size: 1G}"; } >img/i.yaml &&
	test_must_fail "$BIN" check img/i.yaml 2>err &&
	grep_one "^img/i.yaml:4:11: error: cannot find include .ab-boot.yaml.: looked in .img/ab-boot.yaml., ./usr/share/imgforge/recipes/ab-boot.yaml." err
'

# The installed binary is not where PREFIX says (DESTDIR): the agent neither.
export IMGFORGE_AGENT=$ROOT/usr/lib/imgforge/imgforge-update

test_expect_success 'an image outside the checkout includes ab-boot.yaml by name: IMGFORGE_PATH or -I' '
	IMGFORGE_PATH=/nonexistent:$DATA/recipes "$BIN" check img/i.yaml &&
	"$BIN" check -I "$DATA/recipes" img/i.yaml &&
	"$BIN" plan -I "$DATA/recipes" img/i.yaml >plan.yaml &&
	grep -F "  overlays: [../overlays/imgforge-ab]" plan.yaml &&
	grep -F "imgforge-mark-good.service" plan.yaml
'

test_expect_success 'a tarball image built with the installed boot support has its overlay' '
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" img/r.tar.gz &&
	mkdir -p img/tools/boot img/tools/usr/sbin &&
	echo initrd >img/tools/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/tools/usr/sbin/$t || exit 1; done &&
	printf "image: t\nversion: \"1\"\nbase: {tarball: r.tar.gz, sha256: %s}\ninclude: [ab-boot-files.yaml]\noverlays: [tools]\ndisk: {root_size: 64M, data_size: 32M}\n" \
		"$(sha256sum img/r.tar.gz | cut -c1-64)" >img/t.yaml &&
	test_must_fail env -u IMGFORGE_AGENT IMGFORGE_PATH=$DATA/recipes "$BIN" build --cache cache -o out img/t.yaml 2>err &&
	grep_one "cannot read source ./usr/lib/imgforge/imgforge-update." err &&
	IMGFORGE_PATH=$DATA/recipes "$BIN" build --cache cache -o out img/t.yaml 2>err &&
	debugfs -R "stat /usr/sbin/imgforge-slot" out/root.ext4 2>/dev/null | grep -E "Mode: +0755" &&
	debugfs -R "cat /usr/sbin/imgforge-update" out/root.ext4 2>/dev/null |
		cmp - "$ROOT/usr/lib/imgforge/imgforge-update" &&
	debugfs -R "cat /etc/fstab" out/root.ext4 2>/dev/null | grep -q "^PARTLABEL=data" &&
	test -f out/disk.raw
'

test_done
