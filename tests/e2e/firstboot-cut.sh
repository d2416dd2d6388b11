# Power cuts during the appliance's first boot, for
# tests/e2e/long/t6120-powercut-firstboot.sh (make check-powercut-firstboot,
# every point) and tests/e2e/t6110-appliance-firstboot-cut.sh (make check,
# two points): sourced after lib.sh and vm-lib.sh; the caller sets POINTS
# (one point a line, below) and calls fbcut_setup, then fbcut_run.
# docs/appliance.md, "Power cuts during the first boot", lists the points.
#
# atarys-production is built once (the sample backend and frontend, as
# t6100). For each point a fresh copy of disk.raw boots, QEMU is killed
# with SIGKILL at the point (a power cut: what the guest had not written to
# its disk is lost, nothing is synced on the way), and the same disk boots
# again, without any point set, until the slot is marked good. That boot
# must be healthy, as t6100 checks it (no failed unit; ssh, PostgreSQL, the
# backend and nginx active; /api/health 200 with the database; TLS served
# with a certificate and key on /data that parse and match), and the first
# boot must have happened exactly once in effect: /data marked initialised,
# one machine-id (the one on /data, bind-mounted, naming the one journal
# directory), SSH host keys whose public halves match their private keys, a
# secrets file of three lines, one PostgreSQL cluster holding the database,
# no half-made file left (*.tmp, main.new, live.new). A cut after the first
# boot said it was done must not run it again; one before must.
#
# A point: KIND ARG
#   stop NAME       the guest stops at the named point (appliance_point in
#                   /usr/lib/appliance/point.sh, enabled by QEMU's
#                   firmware configuration item opt/imgforge/cutpoint);
#                   the power is cut once the console says so
#   after NAME S    every point is traced, none stops; the power is cut S
#                   seconds after the console showed NAME
#   boot REGEX      no point; the power is cut when REGEX appears on the
#                   console of the first boot
for t in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 curl:curl ssh:openssh-client \
	ssh-keygen:openssh-client npm:npm python3:python3 openssl:openssl; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
test -e /usr/share/OVMF/OVMF_CODE_4M.fd || test -e /usr/share/OVMF/OVMF_CODE.fd ||
	{ echo "missing OVMF: install the Debian package 'ovmf'" >&2; exit 1; }
export IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
APP=$SRCDIR/examples/atarys
test -f "$APP/backend/wsgi.py" || { echo "missing the sample app in $APP" >&2; exit 1; }
trap 'stop_vm; cd /; rm -rf "$TEST_DIR"' EXIT

vm() {
	ssh -i "$TEST_DIR/key" -p "$P22" -o StrictHostKeyChecking=no \
		-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=20 -o BatchMode=yes \
		root@127.0.0.1 "$@"
}
# power_cut: SIGKILL QEMU, as a power cut stops the machine.
power_cut() {
	local pid
	pid=$(vm_pid) && [ -n "$pid" ] || return 1
	kill -9 "$pid"
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null && rm -f "$TEST_DIR/vm.pid"
}
# boot_vm LOG [--fw-cfg X] REGEX...: boot vm.raw on fresh ports (QEMU cannot
# listen again at once on a port whose connections it closed), keep it.
# A boot may take FBCUT_TIMEOUT seconds (default 30 minutes, as t6100: a
# loaded machine under TCG); an appliance that never becomes healthy fails
# only then, so a shorter one suits checking that a point can fail.
boot_vm() {
	local log=$1 args=() re
	shift
	read -r P443 P22 < <(free_ports 2)
	URL=https://127.0.0.1:$P443
	echo "$P443 $P22" >"$TEST_DIR/ports"
	if [ "$1" = --fw-cfg ]; then args+=(--fw-cfg "$2"); shift 2; fi
	for re in "$@"; do args+=(--expect "$re"); done
	vm_start "$log" vm.raw --firmware uefi --memory 2048 --timeout "${FBCUT_TIMEOUT:-1800}" \
		--forward "tcp:$P443:443" --forward "tcp:$P22:22" "${args[@]}"
}

fbcut_setup() {
	cat >appliance.yaml <<-EOF
	image: atarys-production
	version: "1.0.0"
	include: [$SRCDIR/images/atarys-production.yaml]
	update:
	  health_timeout: 1800
	EOF
	test_expect_success 'atarys-production builds with the sample app' '
		mkdir frontend &&
		tar -C "$APP/frontend" --exclude=node_modules --exclude=dist -cf - . | tar -C frontend -xf - &&
		(cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build) >npm.log 2>&1 ||
			{ tail -20 npm.log; exit 1; }
		ssh-keygen -q -t ed25519 -N "" -C imgforge-test -f key &&
		imgforge keygen -o keys --name "ATARYS test releases" 2>keygen.err &&
		start=$SECONDS &&
		imgforge build --cache "${IMGFORGE_TEST_CACHE:-cache}" -o out \
			--set backend_dir="$APP/backend" --set frontend_dist="$TEST_DIR/frontend/dist" \
			--set update_keyring="$TEST_DIR/keys/signing.crt" \
			--set ssh_authorized_keys="$(cat key.pub)" appliance.yaml 2>build.err ||
			{ tail -20 build.err; exit 1; }
		echo "build: $((SECONDS - start)) s" >>timings &&
		test -f out/disk.raw
	'
}

# check N EXPECT_FIRSTBOOT: the boot after the cut is healthy and the first
# boot happened once in effect. EXPECT_FIRSTBOOT: yes (the cut came before
# the marker could be on disk: the first boot must run again), no (after
# the first boot was done: it must not), or empty (either).
check() {
	local n=$1 again=$2 log
	log=$TEST_DIR/console-$n-after.log
	if grep -q "appliance: first boot done" "$log"; then
		[ "$again" != no ] || { echo "point $n: the first boot ran again"; return 1; }
		echo yes >"again-$n"
	else
		[ "$again" != yes ] || { echo "point $n: the first boot did not run again"; return 1; }
		echo no >"again-$n"
	fi
	if [ "$again" = no ] && grep -E "appliance: .*(generated|restored)|repair: .* failed" "$log"; then
		echo "point $n: the boot after the cut had to repair state the first boot had made"
		return 1
	fi
	# TLS as served from the host: the self-signed certificate for the domain.
	echo | openssl s_client -connect "127.0.0.1:$P443" 2>/dev/null | openssl x509 -noout -subject |
		grep -q "CN *= *atarys.example" || { echo "point $n: no certificate served"; return 1; }
	curl -sk "$URL/api/health" >"health-$n.json" &&
	python3 -c "
import json, sys
h = json.load(open(sys.argv[1]))
assert h['status'] == 'ok' and h['database'] == 'ok', h" "health-$n.json" || return 1
	# The application's own table, created at its first start.
	curl -skf "$URL/api/chantiers" >/dev/null || { echo "point $n: GET /api/chantiers failed"; return 1; }
	vm 'set -u
	fail() { echo "$*"; exit 1; }
	systemctl is-system-running --wait >/dev/null
	systemctl --failed --no-legend --plain | grep . && fail "failed units"
	for u in ssh postgresql@15-main atarys-backend nginx appliance-data appliance-machine-id; do
		systemctl -q is-active $u || fail "$u is not active"
	done
	grep -qE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T" /data/.appliance-initialised || fail "/data not marked initialised"
	id=$(cat /etc/machine-id)
	echo "$id" | grep -qE "^[0-9a-f]{32}$" || fail "bad machine-id"
	[ "$(cat /data/etc/machine-id)" = "$id" ] || fail "/data/etc/machine-id is not the one in use"
	[ "$(ls /data/log/journal)" = "$id" ] || fail "journal directories: $(ls /data/log/journal)"
	for t in ed25519 ecdsa; do
		k=/data/ssh/ssh_host_${t}_key
		[ "$(ssh-keygen -y -f $k | cut -d" " -f1-2)" = "$(cut -d" " -f1-2 $k.pub)" ] ||
			fail "$k and $k.pub do not match"
	done
	[ "$(grep -cE "^(SECRET_KEY|DATABASE_PASSWORD|DATABASE_URL)=." /data/atarys/secrets.env)" = 3 ] ||
		fail "secrets.env is not whole"
	[ "$(stat -c %a /data/atarys/secrets.env)" = 600 ] || fail "secrets.env mode"
	d=/data/tls/self-signed
	[ "$(openssl x509 -noout -pubkey -in $d/fullchain.pem)" = "$(openssl pkey -pubout -in $d/privkey.pem)" ] ||
		fail "the self-signed pair does not match"
	[ "$(readlink /data/tls/live)" = "$d" ] || fail "/data/tls/live: $(readlink /data/tls/live)"
	[ "$(cat /var/lib/postgresql/15/main/PG_VERSION)" = 15 ] || fail "no cluster"
	[ "$(runuser -u postgres -- psql -tAc "SELECT count(*) FROM pg_database WHERE datname = '"'"'atarys'"'"'")" = 1 ] ||
		fail "no database atarys"
	left=$(find /data /var/lib/postgresql \( -name "*.tmp" -o -name "*.tmp.pub" -o -name main.new -o -name live.new \) -print)
	[ -z "$left" ] || fail "half-made files left: $left"
	' >"check-$n.out" 2>&1 || { echo "point $n:"; cat "check-$n.out"; return 1; }
}

# cut_at N KIND ARG: one point, on a fresh copy of the disk.
cut_at() {
	local n=$1 kind=$2 arg=$3 start=$SECONDS again="" re
	# Called in an || list: each failure below returns on its own.
	stop_vm
	cp --sparse=always out/disk.raw vm.raw || return 1
	case $kind in
	stop)
		re="appliance: point $(printf '%s' "$arg" | sed 's/[.[\*^$()+?{|]/\\&/g'): stopped"
		boot_vm "console-$n-cut.log" --fw-cfg "imgforge/cutpoint=$arg" "$re" || return 1 ;;
	after)
		re="appliance: point $(printf '%s' "${arg% *}" | sed 's/[.[\*^$()+?{|]/\\&/g')\$"
		boot_vm "console-$n-cut.log" --fw-cfg "imgforge/cutpoint=none" "$re" || return 1
		sleep "${arg##* }" ;;
	boot)
		boot_vm "console-$n-cut.log" "$arg" || return 1 ;;
	esac
	power_cut || return 1
	echo "$((SECONDS - start))" >"cut-time-$n"
	# Before the marker's durable write began, the first boot cannot be
	# done: it must run again; once the console said it was done, it must
	# not. In between (the marker renamed, its directory not yet fsynced),
	# either.
	if grep -q "appliance: first boot done" "console-$n-cut.log"; then
		again=no
	elif [ "$kind" = stop ] && [ "$arg" != rename:/data/.appliance-initialised ]; then
		again=yes
	elif [ "$kind" = after ] && ! grep -q "appliance: point rename:/data/.appliance-initialised" \
		"console-$n-cut.log"; then
		again=yes
	fi
	boot_vm "console-$n-after.log" "slot A marked good" || return 1
	wait_health || return 1
	check "$n" "$again" || return 1
	printf "%2d %-5s %-40s first boot again: %-3s cut after %4s s, %4s s in all\n" "$n" "$kind" \
		"$arg" "$(cat "again-$n")" "$(cat "cut-time-$n")" $((SECONDS - start)) >>points.txt
	[ -z "${FBCUT_REPORT:-}" ] || tail -1 points.txt >>"$FBCUT_REPORT"
}

fbcut_run() {
	local n=0 line kind arg
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		n=$((n + 1))
		kind=${line%% *} arg=${line#* }
		test_expect_success "power cut $n during the first boot: $kind $arg: the next boot is healthy, first boot done once" "
			cut_at $n $kind \"$arg\" || exit 1
		"
	done <<<"$POINTS"
	stop_vm
	sed 's/^/# /' points.txt timings 2>/dev/null
}
