#!/bin/bash
# Benchmark: how many 4-KiB blocks of a root filesystem image change when the
# application changes a little. Two pairs of images are built from one base
# tree with an application overlay in /opt/app:
#
#   edit: one line of /opt/app/app.conf changed (its length too)
#   grow: /opt/app/data.bin doubled (4 MiB to 8 MiB)
#   base: one file of the base tree doubled instead (the first of 256 KiB or
#         more past the middle of the archive), as a package update would
#
# and each pair is built twice: with the identity derived from the content
# (imgforge mkfs without --lineage, as before lineages existed) and with
# --lineage. The counts are printed side by side with the ratio.
#
#   bench/fs-identity.sh [--from TAR] [--size SIZE] [--imgforge PATH] [--baseline PATH]
#
# --from: the base tree (default: the bench root filesystem of bench/mkfs.sh,
# $IMGFORGE_BENCH_CACHE/rootfs.tar, when it exists, else a generated tree of
# about 300 MiB). --size: the image size (default 1G, fixed so that both images
# of a pair have the same geometry). --baseline: another imgforge (e.g. one
# built from an older commit), whose content-derived images are counted in one
# more column. Not a test: nothing here gates.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${IMGFORGE_BENCH_CACHE:-$PWD/build/bench}
from="" size=1G imgforge=$PWD/imgforge baseline=""
while [ $# -gt 0 ]; do
	case "$1" in
	--from) from=$2; shift ;;
	--size) size=$2; shift ;;
	--imgforge) imgforge=$2; shift ;;
	--baseline) baseline=$2; shift ;;
	*) echo "usage: bench/fs-identity.sh [--from TAR] [--size SIZE] [--imgforge PATH] [--baseline PATH]" >&2
	   exit 2 ;;
	esac
	shift
done
[ -x "$imgforge" ] || { echo "bench: no imgforge at '$imgforge': run make first" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench: missing python3: install the Debian package 'python3'" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/imgforge-bench-fsid.XXXXXX")
trap 'rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000

if [ -z "$from" ] && [ -f "$cache/rootfs.tar" ]; then
	from=$cache/rootfs.tar
fi
if [ -z "$from" ]; then
	# A tree shaped like a small root filesystem: some large directories
	# (hashed by ext4), many small files, some large ones. Fixed seed.
	python3 - "$work/base.tar" <<'PY'
import io, random, sys, tarfile
rnd = random.Random(42)
def add(tf, name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 1690000000; ti.mode = 0o644
    tf.addfile(ti, io.BytesIO(data))
with tarfile.open(sys.argv[1], "w") as tf:
    for d, n, lo, hi in (("etc", 400, 100, 4000), ("usr/bin", 900, 8000, 400000),
                         ("usr/lib/x86_64-linux-gnu", 1500, 4000, 600000),
                         ("usr/share/doc", 2500, 200, 6000), ("var/lib/dpkg/info", 3000, 100, 3000)):
        for i in range(n):
            add(tf, "%s/f%05d" % (d, i), rnd.randbytes(rnd.randint(lo, hi)))
PY
	from=$work/base.tar
fi

# The application: a config file and a data file, in two versions each.
mkdir -p "$work/a/opt/app" "$work/edit/opt/app" "$work/grow/opt/app"
for i in $(seq 1 200); do echo "option_$i = value $i"; done >"$work/a/opt/app/app.conf"
sed 's/^option_100 = value 100$/option_100 = value 100, changed/' "$work/a/opt/app/app.conf" \
	>"$work/edit/opt/app/app.conf"
python3 -c 'import random,sys; sys.stdout.buffer.write(random.Random(7).randbytes(4 << 20))' \
	>"$work/a/opt/app/data.bin"
cp "$work/a/opt/app/data.bin" "$work/edit/opt/app/data.bin"
cp "$work/a/opt/app/app.conf" "$work/grow/opt/app/app.conf"
cat "$work/a/opt/app/data.bin" "$work/a/opt/app/data.bin" >"$work/grow/opt/app/data.bin"
for v in a edit grow; do
	for i in $(seq 1 20); do head -c $((i * 5000)) "$work/a/opt/app/data.bin" >"$work/$v/opt/app/lib$i.so"; done
done

# The base with one file doubled.
python3 - "$from" "$work/base2.tar" <<'PY'
import sys, tarfile
src, out = sys.argv[1], sys.argv[2]
with tarfile.open(src) as t:
    members = t.getmembers()
    pick = next((m for m in members[len(members) // 2:] if m.isreg() and m.size >= 256 << 10),
                None) or max((m for m in members if m.isreg()), key=lambda m: m.size)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as o:
        for m in members:
            f = t.extractfile(m) if m.isreg() else None
            if m is pick:
                data = f.read() * 2
                m.size = len(data)
                import io
                f = io.BytesIO(data)
            o.addfile(m, f)
print("base: /%s doubled (%d to %d bytes)" % (pick.name.lstrip("./"), pick.size // 2, pick.size),
      file=sys.stderr)
PY

# Differing 4-KiB blocks of two images (blocks past the end of the shorter count as differing).
diffblocks() {
	python3 - "$1" "$2" <<'PY'
import sys
B = 4096
n = 0
with open(sys.argv[1], "rb") as a, open(sys.argv[2], "rb") as b:
    while True:
        x, y = a.read(B * 256), b.read(B * 256)
        if not x and not y:
            break
        for i in range(0, max(len(x), len(y)), B):
            if x[i:i + B] != y[i:i + B]:
                n += 1
print(n)
PY
}

build() { # binary out overlay [mkfs options...]
	local bin=$1 out=$2 ovl=$3
	shift 3
	"$bin" mkfs --from "$from" --overlay "$ovl" --size "$size" -o "$out" "$@" 2>/dev/null
}

count() { # binary scenario [mkfs options...]
	local bin=$1 sc=$2
	shift 2
	build "$bin" "$work/a.ext4" "$work/a" "$@"
	if [ "$sc" = base ]; then
		from=$work/base2.tar build "$bin" "$work/b.ext4" "$work/a" "$@"
	else
		build "$bin" "$work/b.ext4" "$work/$sc" "$@"
	fi
	diffblocks "$work/a.ext4" "$work/b.ext4"
}

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b * 4096 / 1048576 }'; }

echo "base: $from; image size $size; differing 4-KiB blocks (MiB)"
if [ -n "$baseline" ]; then
	printf "%-6s %22s %22s %22s %8s\n" "" "baseline (content)" "content" "--lineage" "ratio"
else
	printf "%-6s %22s %22s %8s\n" "" "content (as before)" "--lineage" "ratio"
fi
for sc in edit grow base; do
	c=$(count "$imgforge" "$sc")
	l=$(count "$imgforge" "$sc" --lineage bench-appliance)
	ratio=$(awk -v c="$c" -v l="$l" 'BEGIN { printf "%.1fx", l ? c / l : 0 }')
	if [ -n "$baseline" ]; then
		o=$(count "$baseline" "$sc")
		printf "%-6s %12s (%7s) %12s (%7s) %12s (%7s) %8s\n" "$sc" "$o" "$(mib "$o")" \
			"$c" "$(mib "$c")" "$l" "$(mib "$l")" "$ratio"
	else
		printf "%-6s %12s (%7s) %12s (%7s) %8s\n" "$sc" "$c" "$(mib "$c")" "$l" "$(mib "$l")" \
			"$ratio"
	fi
done
echo "(grow: the file itself takes 1024 more blocks, base: as many as it grew; the rest moved)"
