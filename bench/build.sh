#!/bin/bash
# bench/build.sh: imgforge build of an appliance-sized image, cold and warm,
# against mmdebstrap alone on the same package list (the baseline: the base
# stage is mmdebstrap, so cold cannot beat it; the question is what the rest
# of the build adds). Warm: one overlay file changed, the base cached.
#
#   bench/build.sh [--rounds N]        (needs root or unshare, and the apt mirror)
#
# Both sides fetch from the same mirror, so whichever runs first warms the
# mirror (and the page cache) for the other: the order alternates round by
# round (odd rounds the baseline first, even rounds imgforge first), there are
# at least 3 rounds, and the summary gives the median and the spread.
#
# Prints each round and the ratios; never fails on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
[ "${1:-}" = "--rounds" ] && rounds=$2
[ "$rounds" -ge 3 ] || { echo "bench/build.sh: --rounds must be at least 3" >&2; exit 2; }
make -s all
IMGFORGE=$PWD/imgforge
MIRROR=$(tests/helpers/host-mirror.sh)
PKGS="systemd-sysv linux-image-amd64 nginx postgresql python3-flask gunicorn ufw certbot prometheus-node-exporter openssh-server"
work=$(mktemp -d "${TMPDIR:-/tmp}/imgforge-bench-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

mkdir -p "$work/ovl/etc/atarys"
echo "round 0" >"$work/ovl/etc/atarys/release"
cat >"$work/image.yaml" <<EOT
image: bench
version: "1"
base:
  distro: debian
  suite: bookworm
  mirror: "$MIRROR"
  variant: apt
  minimize: false
packages: [$(echo $PKGS | sed 's/ /, /g')]
overlays: [ovl]
EOT

now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.1f}')"; }

echo "bench/build.sh: $(nproc) CPUs, $rounds round(s), packages: $PKGS"
base_t=() cold_t=() warm_t=()
baseline() {
	local t0 t1
	rm -f "$work/base.tar"
	t0=$(now)
	mmdebstrap --quiet --mode=root --format=tar --variant=apt --architectures=amd64 \
		--include="$(echo $PKGS | tr ' ' ',')" bookworm "$work/base.tar" "$MIRROR"
	t1=$(now)
	rm -f "$work/base.tar"
	b=$(secs "$t0" "$t1")
}
ours() { # round
	local t1 t2 t3
	rm -rf "$work/cache" "$work/out"
	t1=$(now)
	"$IMGFORGE" -q build --cache "$work/cache" -o "$work/out" "$work/image.yaml" >/dev/null
	t2=$(now)
	echo "round $1" >"$work/ovl/etc/atarys/release"
	"$IMGFORGE" -q build --cache "$work/cache" -o "$work/out" "$work/image.yaml" >/dev/null
	t3=$(now)
	c=$(secs "$t1" "$t2") w=$(secs "$t2" "$t3")
}
for r in $(seq 1 "$rounds"); do
	if [ $((r % 2)) -eq 1 ]; then
		order="baseline first"
		baseline
		ours "$r"
	else
		order="imgforge first"
		ours "$r"
		baseline
	fi
	base_t+=("$b") cold_t+=("$c") warm_t+=("$w")
	echo "round $r ($order): mmdebstrap alone ${b} s, imgforge build cold ${c} s, warm (one overlay file changed) ${w} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
spread() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s-%s s", lo, hi }'; }
b=$(median "${base_t[@]}") c=$(median "${cold_t[@]}") w=$(median "${warm_t[@]}")
echo
echo "median of $rounds: mmdebstrap ${b} s (spread $(spread "${base_t[@]}")), cold build ${c} s (spread $(spread "${cold_t[@]}")): $(python3 -c "print(f'{$c / $b:.2f}')")x (target <= 1.1x)"
echo "median of $rounds: warm rebuild ${w} s (spread $(spread "${warm_t[@]}")) (target <= 3 s)"
echo "root.ext4: $(du -h --apparent-size "$work/out/root.ext4" | cut -f1), $(python3 -c "import json; print(len(json.load(open('$work/out/manifest.json'))['packages']))") packages"
