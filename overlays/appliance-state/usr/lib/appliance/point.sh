# Named points of the first boot, for the power-cut tests
# (tests/e2e/long/t6120-powercut-firstboot.sh, docs/appliance.md "Power cuts
# during the first boot"); sourced by durable.sh, so every script that writes
# state on /data has it.
#
#   appliance_point NAME    a named point of the first boot
#
# Inert on every machine but a test VM: it does something only when QEMU
# hands the guest the firmware configuration item opt/imgforge/cutpoint
# (`imgforge boot --fw-cfg imgforge/cutpoint=NAME`), which no machine has
# unless its QEMU command line asks for it. Then each point prints
# "appliance: point NAME" on the console, and the point the item names
# prints "appliance: point NAME: stopped" and waits there, so that the test
# kills QEMU (SIGKILL: a power cut) with the guest held at that point.
# Nothing is written to disk and nothing is synced on the way.
appliance_point() { # NAME
	_ap_dir=/sys/firmware/qemu_fw_cfg
	if [ ! -d "$_ap_dir" ]; then
		# The module is loaded by udev on QEMU machines, maybe not yet this early.
		[ "$(cat /sys/class/dmi/id/sys_vendor 2>/dev/null)" = QEMU ] || return 0
		modprobe -q qemu_fw_cfg 2>/dev/null || return 0
	fi
	_ap_item=$_ap_dir/by_name/opt/imgforge/cutpoint/raw
	[ -r "$_ap_item" ] || return 0
	echo "appliance: point $1" >/dev/console
	[ "$(cat "$_ap_item")" = "$1" ] || return 0
	echo "appliance: point $1: stopped" >/dev/console
	while :; do sleep 3600; done
}
