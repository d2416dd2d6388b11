#!/bin/bash
# The output directory: written as a set (manifest.json always matches the
# files beside it), locked against a second build, never written through a
# symbolic link; a killed build leaves the previous outputs and no process.
# mkfs -o refuses a device unless --device says to write it.
. "$SRCDIR/tests/e2e/lib.sh"

require_tool e2fsck e2fsprogs || exit 1
require_tool grub-mkimage grub-common || exit 1
FIX=$SRCDIR/tests/helpers/rootfs-fixture.py
export IMGFORGE_CACHE=$TEST_DIR/cache
GRUB_MKIMAGE=$(command -v grub-mkimage)

mkdir -p img/ovl/etc/app img/ovl/boot &&
echo one >img/ovl/etc/app/motd &&
echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
mkdir -p img/ovl/usr/sbin &&
for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
python3 "$FIX" img/rootfs.tar.gz &&
cat >img/image.yaml <<EOT || exit 1
image: tiny
version: 1.0.0
base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
include: [$SRCDIR/recipes/ab-boot-files.yaml]
overlays: [ovl]
disk: {root_size: 64M, data_size: 32M}
EOT

# A grub-mkimage that, the first time after slow.sleep was removed, says
# when it runs and waits for its sleep to be killed before doing the real
# work: a build held in its disk stage.
mkdir -p slow &&
cat >slow/grub-mkimage <<EOT &&
#!/bin/sh
if ! test -e "$TEST_DIR/slow.sleep"; then
	echo \$\$ >"$TEST_DIR/slow.pid"
	sleep 1000 &
	echo \$! >"$TEST_DIR/slow.sleep"
	wait
fi
exec "$GRUB_MKIMAGE" "\$@"
EOT
chmod +x slow/grub-mkimage || exit 1

# Every output manifest.json lists is there with its hash and size.
consistent() { # DIR
	python3 - "$1" <<-'EOT'
	import hashlib, json, os, sys
	d = sys.argv[1]
	m = json.load(open(os.path.join(d, "manifest.json")))
	for o in m["outputs"]:
	    data = open(os.path.join(d, o["name"]), "rb").read()
	    assert hashlib.sha256(data).hexdigest() == o["sha256"], o["name"] + " does not match manifest.json"
	    assert len(data) == o["size"], o["name"]
	EOT
}

DFL_SIGINT='import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])'

# Start a build held in the disk stage; wait until it is there.
start_held() { # OUTDIR
	rm -f slow.pid slow.sleep
	# SIGINT with its default action: a shell starts background jobs with it ignored.
	PATH=$TEST_DIR/slow:$PATH python3 -c "$DFL_SIGINT" "$IMGFORGE" build --cache cache \
		-o "$1" img/image.yaml 2>held.err &
	held=$!
	for i in $(seq 200); do test -s slow.sleep && break; sleep 0.1; done
	test -s slow.sleep
}

gone() { # PID: dead or a zombie, within 5 s
	for i in $(seq 50); do
		kill -0 "$1" 2>/dev/null || return 0
		grep -q "^State:.*Z" /proc/"$1"/status 2>/dev/null && return 0
		sleep 0.1
	done
	echo "process $1 survived"; kill "$1"; return 1
}

test_expect_success 'a first build' '
	imgforge build --cache cache -o out img/image.yaml 2>err &&
	consistent out && e2fsck -fn out/root.ext4 &&
	test "$(ls -A out | tr "\n" " ")" = "build.log disk.raw manifest.json root.ext4 "
'

test_expect_success 'a symbolic link planted at out/build.log is replaced, not followed' '
	echo precious >victim && ln -sf ../victim out/build.log &&
	imgforge build --cache cache -o out img/image.yaml 2>err &&
	test "$(cat victim)" = precious &&
	test -f out/build.log && ! test -L out/build.log && grep -q "build .*: done" out/build.log &&
	ln -sf ../victim out/root.ext4 &&
	imgforge build --cache cache -o out img/image.yaml 2>err &&
	test "$(cat victim)" = precious && ! test -L out/root.ext4 && consistent out
'

test_expect_success 'SIGKILL in the disk stage: the previous outputs stay, matching their manifest' '
	cp out/manifest.json before.json &&
	echo two >img/ovl/etc/app/motd &&
	start_held out && p=$(cat slow.pid) && s=$(cat slow.sleep) &&
	kill -9 $held && { wait $held; true; } &&
	gone $p && { kill $s 2>/dev/null || true; } &&
	cmp before.json out/manifest.json && consistent out
'

test_expect_success 'the next build removes what the killed one left, and builds' '
	imgforge build --cache cache -o out img/image.yaml 2>err &&
	consistent out && ! cmp -s before.json out/manifest.json &&
	test "$(ls -A out | tr "\n" " ")" = "build.log disk.raw manifest.json root.ext4 "
'

n=3
for sig in TERM INT; do
	n=$((n + 1))
	test_expect_success "SIG$sig in the disk stage: outputs kept, no staging directory, no process left" '
		cp out/manifest.json before.json &&
		echo $n >img/ovl/etc/app/motd &&
		start_held out && p=$(cat slow.pid) && s=$(cat slow.sleep) &&
		kill -$sig $held && { wait $held; rc=$?; true; } &&
		test "$rc" = $((128 + $(kill -l $sig))) &&
		left=0 && { gone $p || left=1; } && { gone $s || left=1; } && test $left = 0 &&
		cmp before.json out/manifest.json && consistent out &&
		test "$(ls -A out | tr "\n" " ")" = "build.log disk.raw manifest.json root.ext4 "
	'
done

test_expect_success 'SIGTERM at any point, in-process stages too: no staging directory, outputs consistent' '
	head -c 30000000 /dev/urandom >img/ovl/big &&
	for delay in 0.1 0.3 0.6 1 1.5; do
		echo "$delay" >img/ovl/etc/app/motd
		"$IMGFORGE" build --cache cache -o out img/image.yaml 2>/dev/null &
		pid=$!; sleep $delay; kill -TERM $pid 2>/dev/null; wait $pid; rc=$?
		echo "SIGTERM after $delay s: status $rc"
		test $rc = 143 || test $rc = 0 || exit 1
		consistent out || exit 1
		! ls -A out | grep -v -x -e build.log -e disk.raw -e manifest.json -e root.ext4 || exit 1
	done &&
	rm img/ovl/big
'

# The commit removes manifest.json, renames the outputs in, then renames the
# new manifest.json in. strace holds every unlinkat for a moment; SIGTERM
# comes while the old manifest.json is gone and the new one is not yet in.
test_expect_success 'SIGTERM during the commit: the set is completed, then the build stops' '
	require_tool strace strace &&
	cp out/manifest.json before.json &&
	echo commit >img/ovl/etc/app/motd || exit 1
	strace -f -qq -o strace.log -e trace=unlinkat -e inject=unlinkat:delay_exit=400000 \
		"$IMGFORGE" build --cache cache -o out img/image.yaml 2>err &
	pid=$! &&
	for i in $(seq 1200); do test -e out/manifest.json || break; sleep 0.02; done &&
	! test -e out/manifest.json &&
	pkill -TERM -x -P $pid imgforge && { wait $pid; rc=$?; true; } &&
	echo "status $rc" && grep -c unlinkat strace.log &&
	test $rc = 143 && consistent out && ! cmp -s before.json out/manifest.json &&
	debugfs -R "cat /etc/app/motd" out/root.ext4 2>/dev/null | grep -qx commit &&
	test "$(ls -A out | tr "\n" " ")" = "build.log disk.raw manifest.json root.ext4 "
'

test_expect_success 'a second build into the same directory fails at once, the first completes' '
	echo four >img/ovl/etc/app/motd &&
	start_held out &&
	test_must_fail imgforge build --cache cache -o out img/image.yaml 2>err &&
	grep_one "^error: another build is writing into .out.: wait for it to finish, or choose another directory with -o$" err &&
	kill $(cat slow.sleep) && wait $held &&
	consistent out && grep -q "build .*: done" out/build.log &&
	debugfs -R "cat /etc/app/motd" out/root.ext4 2>/dev/null | grep -qx four
'

test_expect_success 'mkfs -o refuses a device node' '
	mknod null c 1 3 &&
	test_must_fail imgforge mkfs --from img/ovl -o null 2>err &&
	grep_one "^error: mkfs: .null. is a character device, not a regular file: give --device to write the image onto it$" err &&
	test -c null &&
	mkfifo fifo && test_must_fail imgforge mkfs --from img/ovl -o fifo 2>err &&
	grep -q "not a regular file" err && test -p fifo
'

test_expect_success 'mkfs --device writes onto the device in place' '
	imgforge mkfs --from img/ovl --device -o null 2>err &&
	test -c null &&
	truncate -s 8M plain &&
	test_must_fail imgforge mkfs --from img/ovl --device -o plain 2>err &&
	grep -q "is not a device" err
'

# A held build a failed test left waiting: let it go.
test -s slow.sleep && kill "$(cat slow.sleep)" 2>/dev/null
test_done
