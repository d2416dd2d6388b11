#!/bin/bash
# make demo: what imgforge can show today on this machine.
#
# When the appliance work lands, this builds the ATARYS production image
# against the machine's apt mirror, boots it in QEMU with ports forwarded,
# waits for its health check and prints how to reach it. Until then it
# validates and plans the appliance image, which is what exists now.
set -euo pipefail
cd "$(dirname "$0")/.."

# The mirror: $IMGFORGE_MIRROR, else the one this machine's apt uses.
IMGFORGE_MIRROR=$(tests/helpers/host-mirror.sh)
export IMGFORGE_MIRROR

echo "demo: imgforge $(./imgforge --version | cut -d' ' -f2)"
echo "demo: not yet here: building, booting and testing the appliance (see README.md)."
echo
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
echo "demo: checking the ATARYS images"
for e in production staging dev; do
	./imgforge check --set frontend_dist="$dist" images/atarys-$e.yaml
done
echo
echo "demo: the resolved production recipe and its stage keys:"
./imgforge plan --set frontend_dist="$dist" images/atarys-production.yaml
