# Helpers for tests that keep a VM running and talk to it over SSH: sourced
# after lib.sh. The running QEMU's pid is kept in $TEST_DIR/vm.pid, because
# test bodies are subshells.
#
#   free_ports N          N free TCP ports on 127.0.0.1, space-separated
#   vm_start LOG ARGS...  imgforge boot --keep ARGS..., console in $TEST_DIR/LOG
#   stop_vm               stop the running VM (TERM, then KILL after 10 s)
#   vm_ssh USER CMD...    run CMD in the guest as USER, with $TEST_DIR/key, on $P22
#   wait_vm_exit          the guest rebooted: QEMU (-no-reboot) ends; wait up to 300 s
#   wait_health           the appliance's $URL/api/health answers 200 (nginx,
#                         Gunicorn and PostgreSQL are up); wait up to 180 s
#
# vm_start's caller passes the disk, firmware, forwards and --expect
# patterns; on failure the boot's error output is printed.

free_ports() {
	python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])' "$1"
}
vm_pid() { cat "$TEST_DIR/vm.pid" 2>/dev/null; }
stop_vm() {
	local pid
	pid=$(vm_pid) && [ -n "$pid" ] || return 0
	kill "$pid" 2>/dev/null
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	kill -9 "$pid" 2>/dev/null
	rm -f "$TEST_DIR/vm.pid"
}
vm_start() { # LOG ARGS...
	local log=$1; shift
	imgforge boot --keep --quiet --log "$TEST_DIR/$log" "$@" 2>"$TEST_DIR/$log.err" ||
		{ cat "$TEST_DIR/$log.err"; tail -30 "$TEST_DIR/$log" 2>/dev/null; return 1; }
	sed -n "s/.*keeps running as pid \([0-9]*\).*/\1/p" "$TEST_DIR/$log.err" >"$TEST_DIR/vm.pid"
	test -s "$TEST_DIR/vm.pid"
}
vm_ssh() { # USER COMMAND...
	local user=$1; shift
	ssh -i "$TEST_DIR/key" -p "$P22" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o LogLevel=ERROR -o ConnectTimeout=20 -o BatchMode=yes "$user@127.0.0.1" "$@"
}
wait_health() {
	for _ in $(seq 180); do
		[ "$(curl -sk -o /dev/null -w "%{http_code}" "$URL/api/health")" = 200 ] && return 0
		sleep 1
	done
	echo "no healthy /api/health after 180 s" >&2
	return 1
}
# A zombie counts as gone.
wait_vm_exit() {
	local pid st
	pid=$(vm_pid) && test -n "$pid" || return 1
	for _ in $(seq 300); do
		st=$(sed -n "s/^[0-9]* ([^)]*) \([A-Z]\).*/\1/p" "/proc/$pid/stat" 2>/dev/null)
		if [ -z "$st" ] || [ "$st" = Z ]; then
			rm -f "$TEST_DIR/vm.pid"
			return 0
		fi
		sleep 1
	done
	echo "QEMU (pid $pid) still runs 300 s after the guest was asked to reboot" >&2
	return 1
}
trap 'stop_vm; cd /; rm -rf "$TEST_DIR"' EXIT
