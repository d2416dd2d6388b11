#!/bin/bash
# Benchmark: imgforge export against qemu-img convert, side by side, for each
# format: qcow2, compressed qcow2 (zlib, and zstd), VHD fixed and dynamic,
# streamOptimized VMDK. Prints the median wall time of each side over the
# rounds, their ratio (imgforge / qemu-img: below 1 is faster) and the sizes
# of both files (bytes on disk).
#
#   bench/export.sh [--rounds N] [--only FORMAT...] [DISK]
#
# DISK is a raw disk, such as the disk.raw of a build (the appliance's:
# examples/atarys). Without one, a synthetic sparse disk is made: 4 GiB with
# 600 MiB of system files and libraries as data, in runs, with holes between.
# The order of the two sides alternates round by round; the source is read
# once first so that both find it in the page cache. Both files are on disk
# when the clock stops: imgforge syncs its output before renaming it, and
# qemu-img's is synced (sync FILE) as part of its time. Not a test: nothing
# here gates on time.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 only= disk=
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) rounds=$2; shift ;;
	--only) only="$only $2"; shift ;;
	-*) echo "usage: bench/export.sh [--rounds N] [--only FORMAT] [DISK]" >&2; exit 2 ;;
	*) disk=$1 ;;
	esac
	shift
done

imgforge=$PWD/imgforge
[ -x "$imgforge" ] || { echo "bench: build imgforge first (make)" >&2; exit 1; }
command -v qemu-img >/dev/null || { echo "bench: missing qemu-img: install the Debian package 'qemu-utils'" >&2; exit 1; }
work=${TMPDIR:-/tmp}/imgforge-bench-export.$$
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

if [ -z "$disk" ]; then
	disk=$work/disk.raw
	echo "bench: making a 4 GiB sparse disk with about 600 MiB of data in $disk"
	truncate -s 4G "$disk"
	off=1
	for d in /usr/lib /usr/share /usr/bin; do
		tar cf - "$d" 2>/dev/null | head -c $((200 << 20)) |
			dd of="$disk" bs=1M seek=$off conv=notrunc status=none
		off=$((off + 1000))
	done
fi
[ -f "$disk" ] || { echo "bench: no disk '$disk'" >&2; exit 1; }
cat "$disk" >/dev/null # into the page cache, for both sides

# name | imgforge arguments | qemu-img convert arguments | output extension
cases=(
	"qcow2|--format qcow2|-O qcow2|qcow2"
	"qcow2-c|--format qcow2 --compress|-c -O qcow2|qcow2"
	"qcow2-zstd|--format qcow2 --compress --compression-type zstd|-c -O qcow2 -o compression_type=zstd|qcow2"
	"vhd-fixed|--format vhd|-O vpc -o subformat=fixed,force_size=on|vhd"
	"vhd-dynamic|--format vhd --subformat dynamic|-O vpc -o subformat=dynamic,force_size=on|vhd"
	"vmdk-stream|--format vmdk|-O vmdk -o subformat=streamOptimized|vmdk"
)

now() { date +%s.%N; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f MiB", b / 1048576 }'; }

run() { # side args ext -> seconds
	local side=$1 args=$2 ext=$3 out=$work/out-$1.$3 t0
	rm -f "$out"
	sync
	t0=$(now)
	if [ "$side" = imgforge ]; then
		# shellcheck disable=SC2086
		"$imgforge" -q export "$disk" $args -o "$out"
	else
		# shellcheck disable=SC2086
		qemu-img convert -f raw $args "$disk" "$out" && sync "$out"
	fi
	awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }'
}

echo "disk: $disk ($(mib "$(stat -c %s "$disk")"), $(mib $(($(stat -c %b "$disk") * 512))) allocated);" \
	"$(nproc) CPUs; $rounds rounds; $(qemu-img --version | head -1)"
printf "%-12s %10s %10s %7s %12s %12s\n" format imgforge qemu-img ratio "size-imgf" "size-qemu"
for c in "${cases[@]}"; do
	IFS='|' read -r name iargs qargs ext <<<"$c"
	[ -z "$only" ] || [[ " $only " == *" $name "* ]] || continue
	: >"$work/t-imgforge" && : >"$work/t-qemu"
	for r in $(seq "$rounds"); do
		if [ $((r % 2)) = 1 ]; then
			run imgforge "$iargs" "$ext" >>"$work/t-imgforge"
			run qemu "$qargs" "$ext" >>"$work/t-qemu"
		else
			run qemu "$qargs" "$ext" >>"$work/t-qemu"
			run imgforge "$iargs" "$ext" >>"$work/t-imgforge"
		fi
	done
	ti=$(median <"$work/t-imgforge") tq=$(median <"$work/t-qemu")
	printf "%-12s %9ss %9ss %6.2fx %12s %12s\n" "$name" "$ti" "$tq" \
		"$(awk -v a="$ti" -v b="$tq" 'BEGIN { print (b > 0 ? a / b : 0) }')" \
		"$(mib $(($(stat -c %b "$work/out-imgforge.$ext") * 512)))" \
		"$(mib $(($(stat -c %b "$work/out-qemu.$ext") * 512)))"
done
