#!/bin/bash
# Benchmark: imgforge mkfs against the two-step baseline (tar -xpf, then
# mke2fs -t ext4 -d) on a large real root filesystem, side by side, several
# rounds. Prints wall time and peak RSS of each and the ratio of medians.
#
#   bench/mkfs.sh [--rounds N] [--prepare]
#
# The root filesystem is built once with mmdebstrap from the appliance's
# packages and cached ($IMGFORGE_BENCH_CACHE, default build/bench). The mirror
# is $MIRROR, else the first Debian mirror in this machine's apt sources.
# The baseline runs as root (tar -p needs it to keep owners); imgforge does
# not need root. Not a test: nothing here gates on time.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=3 prepare_only=0
while [ $# -gt 0 ]; do
	case "$1" in
	--rounds) rounds=$2; shift ;;
	--prepare) prepare_only=1 ;;
	*) echo "usage: bench/mkfs.sh [--rounds N] [--prepare]" >&2; exit 2 ;;
	esac
	shift
done

PACKAGES=systemd-sysv,linux-image-amd64,nginx,postgresql,python3-flask,gunicorn,ufw,certbot,prometheus-node-exporter,openssh-server
SUITE=${SUITE:-bookworm}
cache=${IMGFORGE_BENCH_CACHE:-$PWD/build/bench}
rootfs=$cache/rootfs.tar
work=${TMPDIR:-/tmp}/imgforge-bench.$$
imgforge=$PWD/imgforge

need() { command -v "$1" >/dev/null || PATH=$PATH:/sbin:/usr/sbin command -v "$1" >/dev/null ||
	{ echo "bench: missing '$1': install the Debian package '$2'" >&2; exit 1; }; }
need mmdebstrap mmdebstrap
need mke2fs e2fsprogs
need tar tar
[ -x /usr/bin/time ] || { echo "bench: missing /usr/bin/time: install the Debian package 'time'" >&2; exit 1; }
export PATH=$PATH:/sbin:/usr/sbin

# The machine's own mirror, from deb822 .sources or the one-line format.
find_mirror() {
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		uri=$(awk '/^URIs:/ { u = $2 } /^Suites:/ && u != "" && $0 !~ /security/ { print u; exit }' "$f")
		[ -n "$uri" ] && { echo "$uri"; return; }
	done
	if [ -f /etc/apt/sources.list ]; then
		awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
			/etc/apt/sources.list
	fi
}

if [ ! -f "$rootfs" ] || [ ! -s "$rootfs" ]; then
	mirror=${MIRROR:-$(find_mirror)}
	[ -n "$mirror" ] || { echo "bench: no apt mirror found; set MIRROR" >&2; exit 1; }
	mkdir -p "$cache"
	echo "bench: building the root filesystem with mmdebstrap (once; cached in $cache)"
	rm -rf "$rootfs" "$rootfs.part"
	mmdebstrap --quiet --format=tar --variant=apt --include="$PACKAGES" "$SUITE" \
		"$rootfs.part" "$mirror"
	mv "$rootfs.part" "$rootfs"
fi
[ "$prepare_only" = 1 ] && exit 0
[ -x "$imgforge" ] || make -s

paths=$(tar -tf "$rootfs" | wc -l)
echo "rootfs: $rootfs, $(du -h --apparent-size "$rootfs" | cut -f1), $paths paths"
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

# run LABEL CMD...: prints "seconds kib" of one command.
timed() {
	/usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" ||
		{ cat "$work/err" >&2; exit 1; }
	cat "$work/time"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

: >"$work/ours" ; : >"$work/base"
printf '%-6s %12s %12s %14s %14s\n' round imgforge_s baseline_s imgforge_rss baseline_rss
for r in $(seq "$rounds"); do
	rm -f "$work/ours.ext4"
	sync
	read -r t_ours m_ours < <(timed "$imgforge" -q mkfs --from "$rootfs" -o "$work/ours.ext4")
	size=$(stat -c %s "$work/ours.ext4")
	rm -f "$work/ours.ext4"

	rm -rf "$work/x" "$work/base.ext4"; mkdir "$work/x"
	sync
	read -r t_tar m_tar < <(timed tar -xpf "$rootfs" -C "$work/x")
	read -r t_mke m_mke < <(timed mke2fs -q -F -t ext4 -d "$work/x" "$work/base.ext4" "$((size / 1024))k")
	rm -rf "$work/x" "$work/base.ext4"
	t_base=$(echo "$t_tar + $t_mke" | bc)
	m_base=$((m_tar > m_mke ? m_tar : m_mke))
	echo "$t_ours $m_ours" >>"$work/ours"
	echo "$t_base $m_base" >>"$work/base"
	printf '%-6s %12s %12s %11d MiB %11d MiB   (tar %ss + mke2fs %ss)\n' "$r" "$t_ours" "$t_base" \
		$((m_ours / 1024)) $((m_base / 1024)) "$t_tar" "$t_mke"
done
mo=$(cut -d' ' -f1 "$work/ours" | median)
mb=$(cut -d' ' -f1 "$work/base" | median)
ro=$(cut -d' ' -f2 "$work/ours" | sort -n | tail -1)
rb=$(cut -d' ' -f2 "$work/base" | sort -n | tail -1)
echo
echo "median wall time: imgforge ${mo}s, baseline ${mb}s; ratio $(echo "scale=3; $mo / $mb" | bc)x (target <= 0.33x)"
echo "peak RSS: imgforge $((ro / 1024)) MiB (target <= 256 MiB), baseline $((rb / 1024)) MiB"
echo "image size: $((size / 1048576)) MiB"
