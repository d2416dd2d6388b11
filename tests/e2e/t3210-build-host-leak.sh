#!/bin/bash
# Nothing of the build host in an image built with mmdebstrap: the build
# runs in a private mount namespace where the host's /etc/resolv.conf and
# /etc/hostname carry markers, and root.ext4 is searched for them.
# imgforge-test: slow
. "$SRCDIR/tests/e2e/lib.sh"

require_tool mmdebstrap mmdebstrap || exit 1
require_tool debugfs e2fsprogs || exit 1
require_tool unshare util-linux || exit 1
MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
export IMGFORGE_MIRROR=$MIRROR

if [ "$(id -u)" != 0 ]; then
	test_skip 'the build host leaves no trace in an mmdebstrap image' \
		'needs root: a private mount namespace over /etc/resolv.conf'
	test_done
	exit
fi

cat >img.yaml <<'EOT'
image: leak
version: "1"
base:
  distro: debian
  suite: bookworm
  mirror: "${mirror}"
  variant: minbase
  packages: [systemd, systemd-resolved]
EOT

# The host's real resolver with a marker comment (the build still needs DNS
# to reach the mirror); a hostname file with a marker.
DNS_MARK=imgforge-test-host-dns-$$
NAME_MARK=imgforge-test-host-name-$$
{ cat /etc/resolv.conf 2>/dev/null; echo "# $DNS_MARK"; } >resolv.conf
echo "$NAME_MARK" >hostname
# The .deb files of earlier runs, when the cache of t3200 is not around: none.

test_expect_success 'an mmdebstrap build on a host with marked resolv.conf and hostname' '
	unshare --mount --propagation private sh -c "
		mount --bind \"$TEST_DIR/resolv.conf\" /etc/resolv.conf &&
		{ ! test -e /etc/hostname || mount --bind \"$TEST_DIR/hostname\" /etc/hostname; } &&
		grep -q $DNS_MARK /etc/resolv.conf &&
		\"$IMGFORGE\" build --cache cache -o out img.yaml
	" 2>err || { tail -5 err; exit 1; } &&
	grep -q "base: mmdebstrap done" err &&
	! grep -q $DNS_MARK /etc/resolv.conf
'

test_expect_success 'root.ext4 holds neither marker, nor a host resolv.conf or hostname' '
	! grep -a -q -e $DNS_MARK -e $NAME_MARK out/root.ext4 &&
	! debugfs -R "ls /etc" out/root.ext4 2>/dev/null | grep -qw hostname &&
	debugfs -R "stat /etc/resolv.conf" out/root.ext4 2>/dev/null |
		grep -F "Fast link dest: \"../run/systemd/resolve/stub-resolv.conf\"" &&
	debugfs -R "cat /etc/hosts" out/root.ext4 2>/dev/null | grep -qx "127.0.0.1	localhost"
'

test_done
