#!/bin/sh
# Print the Debian mirror this machine's apt uses: $IMGFORGE_MIRROR if set,
# else the first main-archive URI in /etc/apt/sources.list.d/*.sources or
# /etc/apt/sources.list. Tests and the demo use it so that no mirror is
# written into the repository.
if [ -n "${IMGFORGE_MIRROR:-}" ]; then
	echo "$IMGFORGE_MIRROR"
	exit 0
fi
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	sed -n 's/^URIs:[[:space:]]*//p' "$f" | tr ' ' '\n' | grep -v -- '-security' | grep -m1 .
done | head -1 | grep . && exit 0
awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' \
	/etc/apt/sources.list 2>/dev/null | grep -v -- '-security' | head -1 | grep . && exit 0
echo "host-mirror: no Debian mirror in this machine's apt sources; set IMGFORGE_MIRROR" >&2
exit 1
