#!/bin/bash
# bench/build.sh: imgforge build of an appliance-sized image, cold and warm,
# against mmdebstrap alone on the same package list (the baseline: the base
# stage is mmdebstrap, so cold cannot beat it; the question is what the rest
# of the build adds). Warm: one overlay file changed, the base cached.
#
#   bench/build.sh [--rounds N]        (needs root or unshare, and the apt mirror)
#
# Prints each round and the ratios; never fails on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=1
[ "${1:-}" = "--rounds" ] && rounds=$2
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
for r in $(seq 1 "$rounds"); do
	rm -rf "$work/cache" "$work/out" "$work/base.tar"
	t0=$(now)
	mmdebstrap --quiet --mode=root --format=tar --variant=apt --architectures=amd64 \
		--include="$(echo $PKGS | tr ' ' ',')" bookworm "$work/base.tar" "$MIRROR"
	t1=$(now)
	"$IMGFORGE" -q build --cache "$work/cache" -o "$work/out" "$work/image.yaml" >/dev/null
	t2=$(now)
	echo "round $r" >"$work/ovl/etc/atarys/release"
	"$IMGFORGE" -q build --cache "$work/cache" -o "$work/out" "$work/image.yaml" >/dev/null
	t3=$(now)
	b=$(secs "$t0" "$t1") c=$(secs "$t1" "$t2") w=$(secs "$t2" "$t3")
	base_t+=("$b") cold_t+=("$c") warm_t+=("$w")
	echo "round $r: mmdebstrap alone ${b} s, imgforge build cold ${c} s, warm (one overlay file changed) ${w} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
b=$(median "${base_t[@]}") c=$(median "${cold_t[@]}") w=$(median "${warm_t[@]}")
echo
echo "median: mmdebstrap ${b} s, cold build ${c} s: $(python3 -c "print(f'{$c / $b:.2f}')")x (target <= 1.1x)"
echo "median: warm rebuild ${w} s (target <= 10 s)"
echo "root.ext4: $(du -h --apparent-size "$work/out/root.ext4" | cut -f1), $(python3 -c "import json; print(len(json.load(open('$work/out/manifest.json'))['packages']))") packages"
