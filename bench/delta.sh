#!/bin/bash
# bench/delta.sh: what a device downloads to update its root slot, for three
# kinds of change between two builds of one image, side by side with the
# whole bundle and with casync (the baseline: a store made of the old image,
# the new image's index plus the chunks that store lacks, which is what
# `casync extract --seed=OLD` fetches).
#
#   bench/delta.sh [--small] [--cases "a b c"] [--work DIR] [--frame-sizes "64K 32K"]
#   (needs root or unshare, the apt mirror, casync)
#
# The images (SOURCE_DATE_EPOCH fixed, one cache, so unchanged stages are
# reused): v1, then (a) v1 with one backend file changed, (b) v1 with one
# Debian package added, (c) v1 with another kernel package. Without --small
# the image carries the appliance's packages (those of bench/build.sh); with
# it a minbase with a kernel (images/test-boot.yaml's content).
#
# imgforge's bytes are measured, not computed: imgforge-update installs each
# bundle over HTTP (tests/helpers/httpd.py on loopback) into a slot file
# while the v1 image is the running slot, and the server's log gives the
# bytes sent. Bytes need one run; nothing here is timed. Never gates CI.
# --work DIR keeps the images and their build cache in DIR (made if missing)
# and reuses them in a later run: only what changed is built again.
# --frame-sizes "SIZE ..." bundles each image once per frame size
# (`imgforge bundle --frame-size`; default: the default frame size only) and
# prints a row for each, next to the same casync figure: the images are the
# same, only the bundling differs.
# Each case also gets a "patch" row: the image bundled with a patch from v1
# (`imgforge bundle --delta-from`, format 4), which the agent, running v1,
# fetches instead of frames.
# IMGFORGE_BENCH_BUILDER=PATH builds the images with another imgforge binary
# (another ext4 writer); bundles and the agent are this tree's.
set -euo pipefail
cd "$(dirname "$0")/.."
small=0 cases="a b c" keep= frames=
while [ $# -gt 0 ]; do
	case $1 in
	--small) small=1 ;;
	--cases) cases=$2; shift ;;
	--work) keep=$2; shift ;;
	--frame-sizes) frames=$2; shift ;;
	*) echo "usage: bench/delta.sh [--small] [--cases \"a b c\"] [--work DIR] [--frame-sizes \"64K 32K\"]" >&2; exit 2 ;;
	esac
	shift
done
command -v casync >/dev/null || { echo "bench/delta.sh: needs casync (make deps)" >&2; exit 1; }
command -v grub-editenv >/dev/null || { echo "bench/delta.sh: needs grub-editenv (make deps)" >&2; exit 1; }
make -s all
SRC=$PWD IMGFORGE=$PWD/build/default/imgforge AGENT=$PWD/build/default/imgforge-update
MIRROR=$(tests/helpers/host-mirror.sh)
if [ $small = 1 ]; then
	PKGS="" VARIANT=minbase ROOT_SIZE=1G
else
	PKGS="nginx postgresql python3-flask gunicorn ufw certbot prometheus-node-exporter openssh-server"
	VARIANT=apt ROOT_SIZE=2G
fi
EXTRA_PKG=jq NEW_KERNEL=linux-image-amd64
if [ -n "$keep" ]; then
	mkdir -p "$keep" && work=$(cd "$keep" && pwd)
	rm -rf "$work/www" "$work/keys" "$work/port" "$work"/store-*
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/imgforge-bench-delta.XXXXXX")
fi
httpd_pid=
trap '[ -z "$httpd_pid" ] || kill $httpd_pid 2>/dev/null; [ -n "$keep" ] || rm -rf "$work"' EXIT
export SOURCE_DATE_EPOCH=1700000000
cd "$work"

# build NAME OVERLAY-TEXT EXTRA-PACKAGES [--set ...]: out-NAME/root.ext4
build() {
	local name=$1 text=$2 extra=$3
	shift 3
	rm -rf ovl && mkdir -p ovl/usr/lib/appliance
	printf '%s\n' "$text" >ovl/usr/lib/appliance/backend.py
	cat >image.yaml <<-EOT
	image: delta-bench
	version: "1"
	include: [ab-boot.yaml]
	base:
	  distro: debian
	  suite: bookworm
	  mirror: "$MIRROR"
	  variant: $VARIANT
	packages: [$(echo $PKGS $extra | sed 's/ /, /g')]
	overlays: [ovl]
	disk:
	  root_size: $ROOT_SIZE
	  data_size: 64M
	EOT
	"${IMGFORGE_BENCH_BUILDER:-$IMGFORGE}" -q build -I "$SRC/recipes" --cache cache \
		-o "out-$name" "$@" image.yaml >/dev/null
}
BACKEND='def handler(request):
    return {"status": "ok", "version": 1}'
echo "bench/delta.sh: building v1 ($([ $small = 1 ] && echo "minbase + kernel" || echo "appliance packages"))"
build v1 "$BACKEND" ""
for c in $cases; do
	echo "bench/delta.sh: building ($c)"
	case $c in
	a) build a "${BACKEND/version\": 1/version\": 2}" "" ;;
	b) build b "$BACKEND" "$EXTRA_PKG" ;;
	c) build c "$BACKEND" "" --set kernel=$NEW_KERNEL ;;
	esac
done

"$IMGFORGE" keygen -o keys >/dev/null
K="--key keys/signing.key --cert keys/signing.crt --compatible delta-bench"
mkdir -p www
python3 "$SRC/tests/helpers/httpd.py" --root www --port-file port --log httpd.log >/dev/null 2>&1 &
httpd_pid=$!
for i in $(seq 100); do [ -s port ] && break; sleep 0.1; done
URL=http://127.0.0.1:$(cat port)

# casync: v1's store, then the new image's index and what v1's store lacks.
casync make --store=store-v1 v1.caibx out-v1/root.ext4 >/dev/null
casync_bytes() { # NAME
	rm -rf "store-$1"
	casync make --store="store-$1" "$1.caibx" "out-$1/root.ext4" >/dev/null
	python3 - "$1" <<-'PYEOF'
	import os, sys
	name = sys.argv[1]
	def chunks(store):
	    out = {}
	    for d, _, files in os.walk(store):
	        for f in files:
	            if f.endswith(".cacnk"):
	                out[f] = os.path.getsize(os.path.join(d, f))
	    return out
	old, new = chunks("store-v1"), chunks("store-" + name)
	missing = [s for f, s in new.items() if f not in old]
	print(os.path.getsize(name + ".caibx") + sum(missing), len(missing), len(new))
	PYEOF
}

# imgforge: install the bundle over HTTP with v1 as the running slot.
agent_bytes() { # NAME
	local d=agent-$1
	rm -rf "$d" && mkdir -p "$d/esp/EFI/BOOT" "$d/state"
	cp out-v1/root.ext4 "$d/root-a.img"
	truncate -s "$(stat -c %s "out-$1/root.ext4")" "$d/root-b.img"
	grub-editenv "$d/esp/EFI/BOOT/grubenv" create
	grub-editenv "$d/esp/EFI/BOOT/grubenv" set "ORDER=A B" A_TRIES=0 B_TRIES=3
	cp "$d/esp/EFI/BOOT/grubenv" "$d/esp/EFI/BOOT/grubenv.bak"
	echo "BOOT_IMAGE=/vmlinuz imgforge.slot=A imgforge.fallback=0" >"$d/cmdline"
	printf 'IMAGE=delta-bench\nVERSION=1\n' >"$d/release"
	echo "KEYRING=$work/keys/signing.crt" >"$d/update.conf"
	: >httpd.log
	IMGFORGE_ESP_MNT=$d/esp IMGFORGE_UPDATE_CMDLINE=$d/cmdline \
		IMGFORGE_UPDATE_ROOT_A=$d/root-a.img IMGFORGE_UPDATE_ROOT_B=$d/root-b.img \
		IMGFORGE_UPDATE_RELEASE=$d/release IMGFORGE_UPDATE_CONF=$d/update.conf \
		IMGFORGE_UPDATE_STATE=$d/state "$AGENT" install "$URL/$1.bundle" >"$d/out" 2>&1 ||
		{ cat "$d/out" >&2; exit 1; }
	cmp -n "$(stat -c %s "out-$1/root.ext4")" "out-$1/root.ext4" "$d/root-b.img"
	python3 - "$(stat -c %s "www/$1.bundle")" <<-'PYEOF'
	import re, sys
	size, n = int(sys.argv[1]), 0
	for line in open("httpd.log"):
	    m = re.match(r"GET \S+ range=bytes=(\d+)-(\d+) status=206", line)
	    if m:
	        n += int(m.group(2)) - int(m.group(1)) + 1
	    elif " status=200" in line:
	        n += size
	print(n)
	PYEOF
	rm -rf "$d"
}

blocks() { # 4 KiB blocks that differ between v1 and NAME, at the same place
	python3 - "out-$1/root.ext4" <<-'PYEOF'
	import sys
	n = 0
	with open("out-v1/root.ext4", "rb") as a, open(sys.argv[1], "rb") as b:
	    while True:
	        x, y = a.read(1 << 20), b.read(1 << 20)
	        if not x and not y:
	            break
	        for i in range(0, max(len(x), len(y)), 4096):
	            n += x[i:i + 4096] != y[i:i + 4096]
	print(n)
	PYEOF
}

# index_size BUNDLE: the chunk index's stored bytes (directory and pages)
index_size() {
	"$IMGFORGE" bundle info --json "$1" | python3 -c '
import json, sys
d = json.load(sys.stdin)
m = d.get("manifest", d)
print(m.get("chunk_index", {}).get("size", 0))'
}

printf '\n%-34s %6s %12s %12s %9s %12s %12s %9s %9s\n' "case" "frame" "root.ext4" "bundle" "index" \
	"bundle fmt 1" "casync" "imgforge" "vs casync"
for c in $cases; do
	case $c in
	a) what="(a) one backend file" ;;
	b) what="(b) one package added ($EXTRA_PKG)" ;;
	c) what="(c) another kernel ($NEW_KERNEL)" ;;
	esac
	"$IMGFORGE" -q bundle "out-$c/root.ext4" -o "f1-$c.bundle" $K --version 2 --format 1 >/dev/null
	img=$(stat -c %s "out-$c/root.ext4")
	set -- $(casync_bytes "$c")
	cas=$1 cas_missing=$2 cas_all=$3
	for fs in ${frames:-default}; do
		if [ "$fs" = default ]; then
			"$IMGFORGE" -q bundle "out-$c/root.ext4" -o "www/$c.bundle" $K --version 2 >/dev/null
		else
			"$IMGFORGE" -q bundle "out-$c/root.ext4" -o "www/$c.bundle" $K --version 2 \
				--frame-size "$fs" >/dev/null
		fi
		ours=$(agent_bytes "$c")
		printf '%-34s %6s %12s %12s %9s %12s %12s %9s %9s\n' "$what" "$fs" "$img" \
			"$(stat -c %s "www/$c.bundle")" "$(index_size "www/$c.bundle")" \
			"$(stat -c %s "f1-$c.bundle")" "$cas" "$ours" \
			"$(python3 -c "print(f'{$ours / $cas:.2f}x')")"
		echo "    imgforge: $(python3 -c "print(f'{100 * $ours / $img:.3f}')") % of root.ext4," \
			"$(python3 -c "print(f'{100 * $ours / $(stat -c %s "www/$c.bundle"):.2f}')") % of the bundle;" \
			"casync: $cas_missing of $cas_all chunks missing"
	done
	# Format 4: the same image with a patch from v1 (`--delta-from`), which
	# the agent, running v1, fetches alone.
	"$IMGFORGE" -q bundle "out-$c/root.ext4" -o "www/$c.bundle" $K --version 2 \
		--delta-from out-v1/root.ext4 >/dev/null
	fmt=$("$IMGFORGE" bundle info "www/$c.bundle" | sed -n 's/^format *//p')
	ours=$(agent_bytes "$c")
	printf '%-34s %6s %12s %12s %9s %12s %12s %9s %9s\n' "$what" "patch" "$img" \
		"$(stat -c %s "www/$c.bundle")" "$(index_size "www/$c.bundle")" \
		"$(stat -c %s "f1-$c.bundle")" "$cas" "$ours" \
		"$(python3 -c "print(f'{$ours / $cas:.2f}x')")"
	if [ "$fmt" = 4 ]; then
		echo "    with the patch (format 4): $("$IMGFORGE" bundle info "www/$c.bundle" |
			sed -n 's/^patch  *\([0-9]*\) bytes.*/\1/p') bytes of patch;" \
			"$(python3 -c "print(f'{100 * $ours / $img:.3f}')") % of root.ext4"
	else
		echo "    no patch: it would be larger than a device takes (format 3 written)"
	fi
	echo "    $(blocks "$c") 4-KiB blocks differ from v1"
	rm -f "f1-$c.bundle"
done
echo
echo "goal: imgforge <= 0.5x casync in (a) and (b); under 0.1 % of root.ext4 in (a)"
