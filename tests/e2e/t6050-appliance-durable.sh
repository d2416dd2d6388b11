#!/bin/bash
# The appliance's state scripts write durably: run them, under strace, in a
# chroot made of this host's /usr and /etc with the overlays' files on top
# (overlayfs, in a private mount namespace: the host is not changed), and
# check for every file they put under /data that it was written under a
# temporary name, fsynced, renamed, and its directory fsynced after the
# rename; that the first boot's marker is the last thing written, after a
# syncfs of /data; that each step keeps valid state when run again and
# repairs damaged state (empty certificate, empty public host key, leftover
# temporary files). No virtual machine: a few seconds.
. "$SRCDIR/tests/e2e/lib.sh"

for t in strace:strace unshare:util-linux openssl:openssl ssh-keygen:openssh-client python3:python3; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
if [ "$(id -u)" != 0 ] || ! unshare -m true 2>/dev/null; then
	test_skip 'appliance state scripts write durably' 'needs root (mount namespaces, overlayfs)'
	test_done
	exit
fi
OV=$SRCDIR/overlays

# The overlays' /usr and /etc, merged; the root with mount points.
# /data's directories as prepare-data makes them (data.d).
mkdir -p ov/etc/atarys root/usr root/etc root/dev root/proc root/run root/tmp \
	root/data/etc root/data/ssh root/data/tls &&
	for o in appliance-state ssh-keys-only atarys-web pg-backup; do cp -a "$OV/$o/usr" ov/; done &&
	echo "DOMAIN=atarys.example" >ov/etc/atarys/tls.env &&
	ln -s usr/bin root/bin && ln -s usr/sbin root/sbin && ln -s usr/lib root/lib &&
	{ test ! -e /lib64 || ln -s usr/lib64 root/lib64; } || exit 1

# in_root TRACE CMD...: run CMD in the chroot under strace; the syscalls that
# matter go to TRACE.
in_root() {
	local trace=$1; shift
	unshare -m sh -ec '
		r=$1 ov=$2 trace=$3; shift 3
		mount --make-rprivate /
		mount -t overlay overlay -o "lowerdir=$ov/usr:/usr" "$r/usr"
		mount -t overlay overlay -o "lowerdir=$ov/etc:/etc" "$r/etc"
		mount --rbind /dev "$r/dev"
		mount -t proc proc "$r/proc"
		exec strace -f -qq -o "$trace" -e trace=openat,fsync,fdatasync,syncfs,rename,renameat,renameat2 \
			chroot "$r" "$@"
	' sh "$TEST_DIR/root" "$TEST_DIR/ov" "$TEST_DIR/$trace" "$@"
}

# check_durable TRACE [MARKER]: every rename onto a path under /data was of a
# file or directory fsynced before, and its directory was fsynced after. With
# MARKER, the rename onto MARKER is the last one and follows a syncfs.
check_durable() {
	python3 - "$TEST_DIR/$1" "$TEST_DIR/root" "${2:-}" <<-'PY'
	import os, re, sys
	trace, root, marker = sys.argv[1], sys.argv[2], sys.argv[3]
	fds, events = {}, []
	for line in open(trace):
	    m = re.match(r'(\d+) +(\w+)\((.*)\) += (-?\d+)', line)
	    if not m:
	        continue
	    pid, call, args, ret = m.group(1), m.group(2), m.group(3), int(m.group(4))
	    if ret < 0:
	        continue
	    paths = re.findall(r'"([^"]*)"', args)
	    if call == 'openat':
	        fds[(pid, ret)] = os.path.normpath(paths[0])
	    elif call in ('fsync', 'fdatasync', 'syncfs'):
	        fd = int(args.split(',')[0])
	        events.append((call, fds.get((pid, fd), '?')))
	    elif call.startswith('rename'):
	        events.append(('rename', os.path.normpath(paths[0]), os.path.normpath(paths[1])))
	bad, renames = [], 0
	for i, e in enumerate(events):
	    if e[0] != 'rename' or not e[2].startswith('/data/'):
	        continue
	    renames += 1
	    src, dst = e[1], e[2]
	    synced_before = any(x[0] in ('fsync', 'fdatasync') and x[1] == src for x in events[:i])
	    if not os.path.islink(root + dst) and not synced_before:
	        bad.append(f'{src} renamed to {dst} without an fsync of {src} first')
	    if not any(x[0] == 'fsync' and x[1] == os.path.dirname(dst) for x in events[i + 1:]):
	        bad.append(f'{dst}: its directory was not fsynced after the rename')
	if marker:
	    last = [i for i, e in enumerate(events) if e[0] == 'rename'][-1]
	    if events[last][2] != marker:
	        bad.append(f'the last rename is onto {events[last][2]}, not the marker {marker}')
	    if not any(x[0] == 'syncfs' and x[1] == '/data' for x in events[:last]):
	        bad.append(f'no syncfs of /data before the marker {marker}')
	if renames == 0:
	    bad.append('no file renamed into /data')
	for b in bad:
	    print(b)
	sys.exit(1 if bad else 0)
	PY
}

test_expect_success 'machine-id: kept on /data, written durably' '
	in_root mid.trace /usr/lib/appliance/machine-id &&
	grep -qE "^[0-9a-f]{32}$" root/data/etc/machine-id &&
	test "$(stat -c %a root/data/etc/machine-id)" = 444 &&
	check_durable mid.trace
'

test_expect_success 'first boot: host keys and certificate durable, the marker last after a syncfs' '
	in_root fb.trace /usr/lib/appliance/firstboot >fb.out 2>&1 || { cat fb.out; exit 1; }
	grep -q "appliance: first boot done" fb.out &&
	check_durable fb.trace /data/.appliance-initialised &&
	for t in ed25519 ecdsa; do
		ssh-keygen -y -f root/data/ssh/ssh_host_${t}_key >/dev/null || exit 1
	done &&
	openssl x509 -noout -subject -in root/data/tls/self-signed/fullchain.pem | grep -q "CN *= *atarys.example" &&
	openssl pkey -noout -in root/data/tls/self-signed/privkey.pem &&
	test "$(readlink root/data/tls/live)" = /data/tls/self-signed &&
	test "$(stat -c %a root/data/tls/self-signed/privkey.pem)" = 600 &&
	! ls root/data/ssh root/data/tls/self-signed | grep -q "\.tmp"
'

test_expect_success 'run again: everything valid is kept as it is' '
	md5sum root/data/ssh/* root/data/tls/self-signed/* >sums &&
	in_root again.trace /usr/lib/appliance/repair >again.out 2>&1 || { cat again.out; exit 1; }
	test ! -s again.out &&
	md5sum -c --quiet sums
'

test_expect_success 'repair: an empty certificate, an empty public host key, leftovers of a cut-short run' '
	cut -d" " -f1-2 root/data/ssh/ssh_host_ecdsa_key.pub >ecdsa.before &&
	md5sum root/data/ssh/ssh_host_ed25519_key* >ed.sums &&
	: >root/data/tls/self-signed/privkey.pem && : >root/data/tls/self-signed/fullchain.pem &&
	: >root/data/ssh/ssh_host_ecdsa_key.pub &&
	echo junk >root/data/ssh/ssh_host_ed25519_key.tmp &&
	echo junk >root/data/tls/self-signed/privkey.pem.tmp &&
	in_root repair.trace /usr/lib/appliance/repair >repair.out 2>&1 || { cat repair.out; exit 1; }
	cat repair.out &&
	grep -q "self-signed certificate for atarys.example generated" repair.out &&
	grep -q "ssh_host_ecdsa_key.pub restored from the private key" repair.out &&
	check_durable repair.trace &&
	openssl x509 -noout -in root/data/tls/self-signed/fullchain.pem &&
	openssl pkey -noout -in root/data/tls/self-signed/privkey.pem &&
	cut -d" " -f1-2 root/data/ssh/ssh_host_ecdsa_key.pub | cmp - ecdsa.before &&
	md5sum -c --quiet ed.sums &&
	! ls root/data/ssh | grep -q "\.tmp"
'

test_expect_success 'a damaged private host key: a new pair, written durably' '
	: >root/data/ssh/ssh_host_ed25519_key &&
	in_root key.trace /usr/lib/appliance/firstboot.d/20-ssh-host-keys >key.out 2>&1 || { cat key.out; exit 1; }
	check_durable key.trace &&
	ssh-keygen -y -f root/data/ssh/ssh_host_ed25519_key | cut -d" " -f1-2 >pub.derived &&
	cut -d" " -f1-2 root/data/ssh/ssh_host_ed25519_key.pub | cmp - pub.derived
'

test_done
