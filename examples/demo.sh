#!/bin/bash
# make demo: from a fresh clone on Debian 12, the ATARYS appliance running in
# a local VM. Installs what is missing, builds imgforge, builds the sample
# frontend with npm, builds images/atarys-production.yaml against this
# machine's apt mirror, boots it with QEMU (KVM when there is one), forwards
# HTTPS, HTTP and SSH to local ports, waits for /api/health and prints how to
# reach it and how to stop it. Each step says how long it took.
#
# Ports: DEMO_HTTPS_PORT (8443), DEMO_HTTP_PORT (8080), DEMO_SSH_PORT (2222).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
HTTPS_PORT=${DEMO_HTTPS_PORT:-8443}
HTTP_PORT=${DEMO_HTTP_PORT:-8080}
SSH_PORT=${DEMO_SSH_PORT:-2222}
OUT=$SRC/out/atarys-production-demo
TOTAL=$SECONDS

step_start=0
step() { step_start=$SECONDS; echo; echo "demo: == $* =="; }
took() { echo "demo: $1 took $((SECONDS - step_start)) s"; }

for port in "$HTTPS_PORT" "$HTTP_PORT" "$SSH_PORT"; do
	# bash's /dev/tcp: this runs before make deps, when python3 may be missing.
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		echo "demo: port $port on 127.0.0.1 is in use (another demo VM?); stop it or set" \
			"DEMO_HTTPS_PORT, DEMO_HTTP_PORT, DEMO_SSH_PORT" >&2
		exit 1
	fi
done

step "1/5 Debian packages (make deps)"
make --no-print-directory deps
took "deps"

step "2/5 imgforge (make)"
make --no-print-directory all
took "building imgforge"

# The mirror: $IMGFORGE_MIRROR, else the one this machine's apt uses.
IMGFORGE_MIRROR=$(tests/helpers/host-mirror.sh)
export IMGFORGE_MIRROR

step "3/5 the sample frontend (npm ci && npm run build)"
command -v npm >/dev/null || { echo "demo: npm is missing: install the Debian packages nodejs and npm" >&2; exit 1; }
(cd examples/atarys/frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build)
took "the frontend"

step "4/5 imgforge build images/atarys-production.yaml"
mkdir -p "$OUT"
# A key pair for this demo only, to log in over SSH; the image gets the public half.
[ -f "$OUT/demo-key" ] || ssh-keygen -q -t ed25519 -N "" -C atarys-demo -f "$OUT/demo-key"
# A release key for this demo only: the image trusts updates signed with it.
[ -f "$OUT/release/signing.crt" ] || ./imgforge keygen -o "$OUT/release" --name "ATARYS demo releases"
./imgforge build -o "$OUT" \
	--set update_keyring="$OUT/release/signing.crt" \
	--set frontend_dist="$SRC/examples/atarys/frontend/dist" \
	--set ssh_authorized_keys="$(cat "$OUT/demo-key.pub")" \
	images/atarys-production.yaml
took "the image build"

step "5/5 imgforge boot (first boot: keys, database, certificate)"
# Boot a copy, so that disk.raw stays as built.
cp --sparse=always "$OUT/disk.raw" "$OUT/demo.raw"
./imgforge boot "$OUT/demo.raw" --keep --memory 2048 --timeout 1200 --quiet \
	--log "$OUT/console.log" \
	--forward "tcp:$HTTPS_PORT:443" --forward "tcp:$HTTP_PORT:80" --forward "tcp:$SSH_PORT:22" \
	--expect "appliance: first boot done" --expect "slot A marked good" 2>"$OUT/boot.err" || {
	cat "$OUT/boot.err" >&2
	echo "demo: the VM did not boot; console: $OUT/console.log" >&2
	exit 1
}
cat "$OUT/boot.err"
pid=$(sed -n "s/.*keeps running as pid \([0-9]*\).*/\1/p" "$OUT/boot.err")
echo "demo: waiting for https://127.0.0.1:$HTTPS_PORT/api/health"
for _ in $(seq 300); do
	[ "$(curl -sk -o /dev/null -w "%{http_code}" "https://127.0.0.1:$HTTPS_PORT/api/health")" = 200 ] && break
	sleep 1
done
curl -skf "https://127.0.0.1:$HTTPS_PORT/api/health" || {
	echo "demo: /api/health does not answer; console: $OUT/console.log; stop the VM with 'kill $pid'" >&2
	exit 1
}
echo
took "booting to a healthy application"

cat <<EOF

demo: ATARYS is running (production image, $((SECONDS - TOTAL)) s in all).

  web:     https://127.0.0.1:$HTTPS_PORT/   (self-signed certificate: accept it, or curl -k)
  API:     curl -k https://127.0.0.1:$HTTPS_PORT/api/chantiers
  HTTP:    http://127.0.0.1:$HTTP_PORT/   (redirects to HTTPS on port 443)
  SSH:     ssh -i $OUT/demo-key -p $SSH_PORT -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no root@127.0.0.1
  console: $OUT/console.log

  stop:    kill $pid
EOF
