#!/bin/bash
# The README's promise on a fresh Debian 12 machine: a minimal Debian 12 root
# (mmdebstrap minbase plus make, git and ca-certificates), a clone of the
# committed tree, and inside a chroot, with nothing from this machine's
# installed software: `make deps`, `make check-unit`, a build of
# images/test-boot.yaml that boots to "slot A marked good" under UEFI, and the
# sample frontend's `npm ci && npm run build`. Each step prints its time.
#
# What the root does take from this machine is configuration: its Debian apt
# sources (entries for bookworm suites only, so a third-party repository such
# as a newer Node.js does not leak in), the apt options that say how to reach
# them (Acquire::Check-Valid-Until and friends, proxies), the extra CA
# certificates under /usr/local/share/ca-certificates and /etc/resolv.conf.
# dpkg in the root skips its fsyncs (force-unsafe-io): the root is thrown
# away, and the packages installed are the same.
#
# Needs root (mmdebstrap in root mode, chroot, mounts). Every mount is made in
# a private mount namespace (unshare) that ends with the step, so no mount
# outlives a step, whatever way it ends, and none is ever visible here.
#
# FRESH_REV=REV checks that commit instead of HEAD (to see an old tree fail);
# FRESH_KEEP=1 keeps the root to look into afterwards.
# Minutes and the apt mirror: run by `make check-fresh`, not `make check`.
. "$SRCDIR/tests/e2e/lib.sh"

[ "$(id -u)" = 0 ] || {
	echo "t9000: needs root (mmdebstrap, chroot, mounts): run it with sudo" >&2
	exit 1
}
for t in mmdebstrap:mmdebstrap git:git unshare:util-linux chroot:coreutils; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
REV=$(git -C "$SRCDIR" rev-parse --verify "${FRESH_REV:-HEAD}^{commit}") || exit 1
ROOT=$TEST_DIR/root

# lib.sh removes $TEST_DIR on exit: never while something is mounted under it.
# Mounts live in the steps' private namespaces, so this is a second guard.
cleanup() {
	local m
	cd /
	for m in $(awk -v r="$ROOT" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
		umount -l "$m" 2>/dev/null
	done
	if awk -v r="$ROOT" 'index($2, r) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
		echo "t9000: $ROOT still has mounts; not removing $TEST_DIR" >&2
		return
	fi
	if [ -n "${FRESH_KEEP:-}" ]; then
		echo "t9000: the root is kept in $ROOT" >&2
		return
	fi
	rm -rf --one-file-system "$TEST_DIR"
}
trap cleanup EXIT

# The Debian sources of this machine: deb822 stanzas and one-line entries
# whose suites are all bookworm suites.
sources() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; ORS = "\n\n" }
			{ keep = 0; n = split($0, l, "\n")
			  for (i = 1; i <= n; i++) {
				if (l[i] ~ /^Suites:/) { keep = 1; m = split(l[i], s, /[ \t]+/)
					for (j = 2; j <= m; j++) if (s[j] !~ /^bookworm/) keep = 0 }
				if (tolower(l[i]) ~ /^enabled:[ \t]*no/) { keep = 0; break }
			  }
			  if (keep) print }' "$f"
	done >fresh.sources
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) while ($i !~ /\]$/) i++; else i = 1
			if ($(i + 2) ~ /^bookworm/) print }' "$f"
	done >fresh.list
}

# in_root SCRIPT: run SCRIPT with bash -e in the root as root, with /proc,
# /sys and /dev (with /dev/pts) mounted in a private mount namespace, and a
# clean environment.
in_root() {
	unshare --mount --propagation private -- /bin/sh -ec '
		mount --rbind /dev "$1/dev"
		mount -t proc proc "$1/proc"
		mount --rbind /sys "$1/sys"
		exec chroot "$1" /usr/bin/env -i HOME=/root LC_ALL=C.UTF-8 TERM=dumb \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			IMGFORGE_MIRROR="$2" /bin/bash -ec "cd /root/imgforge; $3"' \
		sh "$ROOT" "$MIRROR" "$1"
}

failed=0
# step NAME SCRIPT: one test, in the root, timed; skipped after a failure.
step() {
	local t=$SECONDS
	if [ "$failed" -ne 0 ]; then
		test_skip "$1" "an earlier step failed"
		return
	fi
	test_expect_success "$1" "$2"
	[ "$test_failures" -eq 0 ] || failed=1
	echo "# $1: $((SECONDS - t)) s"
}

total=$SECONDS
step 'a Debian 12 minbase root with make and git, and a clone of the tree' '
	sources
	set --
	! grep -q . fresh.sources || set -- "$@" "$PWD/fresh.sources"
	! grep -q . fresh.list || set -- "$@" "$PWD/fresh.list"
	[ $# -gt 0 ] || set -- "$MIRROR"
	{ apt-config dump | grep -E "^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|ftp::Proxy) " || true; } >apt.conf
	nice -n 5 mmdebstrap --quiet --mode=root --variant=minbase --include=make,git,ca-certificates \
		--aptopt="$PWD/apt.conf" \
		--customize-hook="cp -a /usr/local/share/ca-certificates/. \"\$1/usr/local/share/ca-certificates/\" 2>/dev/null || true" \
		--customize-hook="chroot \"\$1\" update-ca-certificates >/dev/null" \
		--customize-hook="cp -L /etc/resolv.conf \"\$1/etc/resolv.conf\"" \
		--customize-hook="echo force-unsafe-io >\"\$1/etc/dpkg/dpkg.cfg.d/unsafe-io\"" \
		bookworm "$ROOT" "$@" &&
	! chroot "$ROOT" sh -c "command -v node || command -v npm || command -v gcc" &&
	git clone --quiet --no-hardlinks --no-checkout "$SRCDIR" "$ROOT/root/imgforge" &&
	git -C "$ROOT/root/imgforge" checkout --quiet "$REV" &&
	echo "checked out $REV"
'

step 'make deps installs everything, and a second run installs nothing' '
	in_root "nice -n 5 make deps" &&
	in_root "make deps" >again 2>&1 && cat again && ! grep -q installing again &&
	in_root "node --version; npm --version"
'

step 'make check-unit' '
	in_root "nice -n 5 make -j2 check-unit" >unit.log 2>&1 || { tail -40 unit.log; exit 1; }
	tail -3 unit.log
'

step 'a bootable disk from images/test-boot.yaml boots under UEFI to slot A' '
	in_root "nice -n 5 make -j2 all && nice -n 5 ./imgforge build -o /root/out images/test-boot.yaml" &&
	in_root "sgdisk -v /root/out/disk.raw | grep -q \"No problems found\" &&
		e2fsck -fn /root/out/root.ext4 &&
		nice -n 5 ./imgforge boot /root/out/disk.raw --timeout 900 --quiet --log /root/out/console.log \
			--expect \"imgforge\\.slot=A imgforge\\.fallback=0\" --expect \"slot A marked good\""
'

step 'the sample frontend builds with npm ci and npm run build, without a warning about Node.js' '
	in_root "cd examples/atarys/frontend && nice -n 5 npm ci --no-audit --no-fund &&
		nice -n 5 npm run build" >npm.log 2>&1 || { tail -30 npm.log; exit 1; }
	cat npm.log
	if grep -Ei "EBADENGINE|unsupported engine|requires Node\.js" npm.log; then
		echo "npm or Vite warns about this Node.js" >&2
		exit 1
	fi
	test -f "$ROOT/root/imgforge/examples/atarys/frontend/dist/index.html"
'
echo "# total: $((SECONDS - total)) s"

test_done
