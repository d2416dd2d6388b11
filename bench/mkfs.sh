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
#
# Before every timed step the page cache is written back and dropped (when
# this runs as root), so that no step pays for the writeback of the one
# before it; the order of the two sides alternates round by round. Wall time
# and CPU time (user + system) are reported, and a plain copy of the tarball
# as a floor: no builder can write the image faster than the bytes can be
# copied.
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

# timed CMD...: prints "wall_seconds cpu_seconds peak_kib" of one command.
timed() {
	/usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" ||
		{ cat "$work/err" >&2; exit 1; }
	awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$work/time"
}

# Write back and drop the page cache, so a step neither pays for the
# writeback of the step before it nor profits from its reads.
settle() {
	sync
	if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
}
[ -w /proc/sys/vm/drop_caches ] || echo "bench: not root: the page cache is synced, not dropped, between steps"

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

ours() {
	rm -f "$work/ours.ext4"
	settle
	read -r t_ours c_ours m_ours < <(timed "$imgforge" -q mkfs --from "$rootfs" -o "$work/ours.ext4")
	size=$(stat -c %s "$work/ours.ext4")
	rm -f "$work/ours.ext4"
}
base() {
	rm -rf "$work/x" "$work/base.ext4"; mkdir "$work/x"
	settle
	read -r t_tar c_tar m_tar < <(timed tar -xpf "$rootfs" -C "$work/x")
	settle
	read -r t_mke c_mke m_mke < <(timed mke2fs -q -F -t ext4 -d "$work/x" "$work/base.ext4" "$((size / 1024))k")
	rm -rf "$work/x" "$work/base.ext4"
	t_base=$(echo "$t_tar + $t_mke" | bc)
	c_base=$(echo "$c_tar + $c_mke" | bc)
	m_base=$((m_tar > m_mke ? m_tar : m_mke))
}
copy() {
	rm -f "$work/copy.tar"
	settle
	read -r t_copy c_copy _ < <(timed cp "$rootfs" "$work/copy.tar")
	rm -f "$work/copy.tar"
}

: >"$work/ours" ; : >"$work/base" ; : >"$work/copy"
# size is needed by the baseline: the first round runs imgforge first.
printf '%-6s %-16s %10s %10s %10s %10s %8s %12s %12s\n' round order ours_s ours_cpu base_s base_cpu copy_s ours_rss base_rss
for r in $(seq "$rounds"); do
	if [ $((r % 2)) -eq 1 ]; then order="imgforge first"; ours; base; else order="baseline first"; base; ours; fi
	copy
	echo "$t_ours $c_ours $m_ours" >>"$work/ours"
	echo "$t_base $c_base $m_base" >>"$work/base"
	echo "$t_copy $c_copy" >>"$work/copy"
	printf '%-6s %-16s %10s %10s %10s %10s %8s %8d MiB %8d MiB   (tar %ss + mke2fs %ss)\n' "$r" "$order" \
		"$t_ours" "$c_ours" "$t_base" "$c_base" "$t_copy" $((m_ours / 1024)) $((m_base / 1024)) "$t_tar" "$t_mke"
done
mo=$(cut -d' ' -f1 "$work/ours" | median)
mb=$(cut -d' ' -f1 "$work/base" | median)
co=$(cut -d' ' -f2 "$work/ours" | median)
cb=$(cut -d' ' -f2 "$work/base" | median)
mc=$(cut -d' ' -f1 "$work/copy" | median)
ro=$(cut -d' ' -f3 "$work/ours" | sort -n | tail -1)
rb=$(cut -d' ' -f3 "$work/base" | sort -n | tail -1)
echo
echo "median of $rounds, wall: imgforge ${mo}s, baseline ${mb}s: $(echo "scale=3; $mo / $mb" | bc)x; against a plain copy (${mc}s): $(echo "scale=2; $mo / $mc" | bc)x (target <= 1.5x)"
echo "median of $rounds, CPU: imgforge ${co}s, baseline ${cb}s: $(echo "scale=3; $co / $cb" | bc)x (target <= 0.25x)"
echo "peak RSS: imgforge $((ro / 1024)) MiB (target <= 256 MiB), baseline $((rb / 1024)) MiB"
echo "image size: $((size / 1048576)) MiB"
