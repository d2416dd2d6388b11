#!/bin/bash
# Disaster recovery and staging replicas in VMs (make check-recovery;
# docs/recovery.md): atarys-production and atarys-staging built with the
# sample app and an age recipient for the backups, s3rver behind a
# SigV4-checking front as the offsite store (10.0.2.2 from the guests).
#   1. a production machine with 300 chantiers (clients with names and
#      e-mail addresses) backs up offsite;
#   2. a staging machine restores that backup at its first boot from its
#      user-data: the same chantiers, every client scrubbed, the staging
#      marks (headers, banner, robots.txt), its own backups to its own prefix;
#   3. a production machine told to restore a tampered backup starts empty,
#      healthy, with one error line and the provisioning unit failed;
#   4. a production machine given the sample SQLite development database
#      (user-data `appliance: import:`, by URL) imports it with pgloader: the
#      same rows, the application healthy.
# Each machine's time from power-on to healthy (with its data) is printed.
# Four first boots under TCG: about 20 minutes on a quiet 2-core machine.
# imgforge-test: slow
# imgforge-test: timeout 5400
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/vm-lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"

for t in mmdebstrap:mmdebstrap qemu-system-x86_64:qemu-system-x86 curl:curl ssh:openssh-client \
	ssh-keygen:openssh-client npm:npm python3:python3 age-keygen:age; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
test -e /usr/share/OVMF/OVMF_CODE_4M.fd || test -e /usr/share/OVMF/OVMF_CODE.fd ||
	{ echo "missing OVMF: install the Debian package 'ovmf'" >&2; exit 1; }
export IMGFORGE_MIRROR=$("$SRCDIR/tests/helpers/host-mirror.sh") || exit 1
APP=$SRCDIR/examples/atarys
test -f "$APP/backend/wsgi.py" || { echo "missing the sample app in $APP" >&2; exit 1; }

read -r -a PORTS < <(free_ports 12)
use_ports() { # 1..4: a set of forwards for each machine (TIME_WAIT)
	local i=$((($1 - 1) * 3))
	P443=${PORTS[$i]} P80=${PORTS[$((i + 1))]} P22=${PORTS[$((i + 2))]}
	URL=https://127.0.0.1:$P443
}
vm() { vm_ssh root "$@"; }
elapsed() { echo "# $1: $((SECONDS - ${2:-0})) s"; }
# fresh_boot IMAGE N USER-DATA LOG: a new machine from IMAGE's disk.
fresh_boot() {
	stop_vm &&
		cp --sparse=always "out-$1/disk.raw" vm.raw &&
		use_ports "$2" &&
		vm_start "$4" vm.raw --firmware uefi --memory 2048 --timeout 1800 \
			--forward "tcp:$P443:443" --forward "tcp:$P80:80" --forward "tcp:$P22:22" \
			--user-data "$3" --expect "appliance: first boot done" --expect "appliance: provision: " \
			--expect "slot A marked good"
}
# The chantiers as the guest's database has them, one a line.
rows() {
	vm "cd / && runuser -u postgres -- psql -d atarys -XtA -F '|' -c \
		\"SELECT id, name, coalesce(client, ''), status, created_at FROM chantiers ORDER BY id\""
}

mkdir -p www && httpd_start && HTTP_PORT=$PORT
trap 'stop_vm; httpd_stop; cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT
age-keygen -o backup.key 2>/dev/null &&
	s3rver_start && cloud_python &&
	FRONT=$(cloud_s3_front s3front "$CLOUD_AWS_ACCESS_KEY" "$CLOUD_AWS_SECRET_KEY" eu-west-3) &&
	curl -sSf --aws-sigv4 "aws:amz:eu-west-3:s3" --user "$CLOUD_AWS_ACCESS_KEY:$CLOUD_AWS_SECRET_KEY" \
		-X PUT -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$FRONT/bkt" >/dev/null || exit 1
objects() { # prefix
	(cd "$TEST_DIR/s3rver/bkt" 2>/dev/null && find . -name '*._S3rver_object' |
		sed 's|^\./||; s|\._S3rver_object$||' | grep "^$1/atarys-.*\.sql\.gz\.age$" | sort)
}
user_data() { # prefix [appliance section lines]
	cat <<-EOF
	#cloud-config
	write_files:
	  - path: /data/backups/offsite.env
	    owner: root:root
	    permissions: "0600"
	    content: |
	      OFFSITE_URL=s3://bkt/atarys/$1
	      OFFSITE_ENDPOINT=http://10.0.2.2:${FRONT##*:}
	      OFFSITE_REGION=eu-west-3
	      OFFSITE_ACCESS_KEY_ID=$CLOUD_AWS_ACCESS_KEY
	      OFFSITE_SECRET_ACCESS_KEY=$CLOUD_AWS_SECRET_KEY
	EOF
	[ $# -lt 2 ] || printf '%s\n' "$2"
}
# 299 more chantiers, their clients people with e-mail addresses.
cat >insert.sql <<'EOF'
INSERT INTO chantiers (name, client, status, created_at)
SELECT 'Chantier ' || i, 'Client Person ' || i || ' <person' || i || '@example.org>',
       (ARRAY['planned', 'active', 'done'])[1 + i % 3], now() - i * interval '1 day'
FROM generate_series(1, 299) i;
EOF
restore_section() { # backup
	printf 'appliance:\n  restore:\n    from: s3://bkt/atarys/production\n    backup: %s\n    key: |\n' "$1"
	sed 's/^/      /' backup.key
}

test_expect_success 'atarys-production and atarys-staging build with the sample app' '
	mkdir frontend &&
	tar -C "$APP/frontend" --exclude=node_modules --exclude=dist -cf - . | tar -C frontend -xf - &&
	(cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build) >npm.log 2>&1 ||
		{ tail -20 npm.log; exit 1; }
	ssh-keygen -q -t ed25519 -N "" -C imgforge-test -f key &&
	imgforge keygen -o keys --name "ATARYS test releases" 2>keygen.err &&
	for img in production staging; do
		cat >"$img.yaml" <<-EOF
		image: atarys-$img
		version: "1.0.0"
		include: [$SRCDIR/images/atarys-$img.yaml]
		update:
		  health_timeout: 1800
		EOF
		start=$SECONDS &&
		imgforge build --cache "${IMGFORGE_TEST_CACHE:-cache}" -o "out-$img" \
			--set backend_dir="$APP/backend" --set frontend_dist="$TEST_DIR/frontend/dist" \
			--set update_keyring="$TEST_DIR/keys/signing.crt" \
			--set backup_recipient="$(age-keygen -y backup.key)" \
			--set ssh_authorized_keys="$(cat key.pub)" "$img.yaml" 2>"build-$img.err" ||
			{ tail -20 "build-$img.err"; exit 1; }
		elapsed "build atarys-$img" $start >>"$TEST_DIR/timings"
	done
'

test_expect_success 'production: 300 chantiers, backed up offsite' '
	user_data production >ud-production.yaml &&
	start=$SECONDS && fresh_boot production 1 ud-production.yaml console-production.log &&
	wait_health && elapsed "production: power-on to healthy" $start >>"$TEST_DIR/timings" &&
	grep -aq "appliance: provision: nothing to restore or import" console-production.log &&
	# The first through the API (the application makes its table), the others with SQL.
	curl -skf -X POST -H "Content-Type: application/json" \
		-d "{\"name\": \"Mairie de Lyon\", \"client\": \"Jeanne Martin <jeanne.martin@example.org>\", \"status\": \"active\"}" \
		"$URL/api/chantiers" >/dev/null &&
	vm "cd / && runuser -u postgres -- psql -d atarys -XqAt -v ON_ERROR_STOP=1" <insert.sql &&
	rows >production.rows && test "$(wc -l <production.rows)" = 300 &&
	vm "appliance-backup now" &&
	objects atarys/production >backups && test "$(wc -l <backups)" = 1
'

test_expect_success 'staging: restored from production at first boot, scrubbed, marked, its own backups' '
	user_data staging "$(restore_section latest)" >ud-staging.yaml &&
	start=$SECONDS && fresh_boot staging 2 ud-staging.yaml console-staging.log &&
	wait_health && elapsed "staging: power-on to healthy with the data restored" $start >>"$TEST_DIR/timings" &&
	grep -ao "appliance: provision: .*" console-staging.log | tr -d "\r" | sed "s/^/# /" >>"$TEST_DIR/timings" &&
	grep -aq "appliance: provision: restored s3://bkt/atarys/production/atarys-.* in [0-9]* s" console-staging.log &&
	rows >staging.rows && test "$(wc -l <staging.rows)" = 300 &&
	# Same ids, names, statuses and dates; every client replaced, none kept.
	cut -d"|" -f1,2,4,5 production.rows >p && cut -d"|" -f1,2,4,5 staging.rows >s && cmp p s &&
	awk -F"|" "\$3 != \"Client \" \$1 { bad++ } END { exit bad }" staging.rows &&
	! grep -q "example.org" staging.rows &&
	curl -sk -D h -o index.html "$URL/" &&
	grep -qi "^x-robots-tag: noindex, nofollow" h && grep -qi "^x-atarys-environment: staging" h &&
	grep -q "<body><div id=\"atarys-environment-banner\"[^>]*>STAGING" index.html &&
	curl -skf "$URL/robots.txt" | grep -qx "Disallow: /" &&
	curl -sk -D ha -o /dev/null "$URL/api/health" && grep -qi "^x-robots-tag: noindex" ha &&
	curl -skf "$URL/api/health" | grep -q "\"env\": *\"staging\"" &&
	vm "systemctl --failed --no-legend --plain" >failed && { test ! -s failed || { cat failed; exit 1; }; } &&
	vm "appliance-backup now" &&
	test "$(objects atarys/staging | wc -l)" = 1 && test "$(objects atarys/production | wc -l)" = 1
'

test_expect_success 'a tampered backup: refused with one line, the application starts empty' '
	name=$(head -n 1 backups) &&
	cp "$TEST_DIR/s3rver/bkt/$name._S3rver_object" good.age &&
	size=$(stat -c %s good.age) && cp good.age bad.age &&
	printf "\\x55" | dd of=bad.age bs=1 seek=$((size - 100)) conv=notrunc 2>/dev/null && ! cmp -s good.age bad.age &&
	curl -sSf --aws-sigv4 "aws:amz:eu-west-3:s3" --user "$CLOUD_AWS_ACCESS_KEY:$CLOUD_AWS_SECRET_KEY" \
		-H "x-amz-content-sha256: $(sha256sum <bad.age | cut -d" " -f1)" -T bad.age \
		"$FRONT/bkt/atarys/production/atarys-20261201-000000.sql.gz.age" >/dev/null &&
	user_data production-2 "$(restore_section atarys-20261201-000000)" >ud-tampered.yaml &&
	start=$SECONDS && fresh_boot production 3 ud-tampered.yaml console-tampered.log &&
	wait_health && elapsed "tampered: power-on to healthy, empty" $start >>"$TEST_DIR/timings" &&
	grep -a "appliance: provision: " console-tampered.log | tee provision.out &&
	grep_one "appliance: provision: error: restore failed: appliance-restore: error: cannot decrypt .*atarys-20261201-000000.sql.gz.age.*nothing restored; the application starts with an empty database" provision.out &&
	curl -skf "$URL/api/health" | grep -q "\"database\": *\"ok\"" &&
	curl -skf "$URL/api/chantiers" >list.json &&
	python3 -c "import json,sys; d = json.load(open(\"list.json\")); d = d.get(\"chantiers\", d) if isinstance(d, dict) else d; assert d == [], d" &&
	vm "systemctl --failed --no-legend --plain" >failed && grep -q "appliance-provision.service" failed &&
	test "$(wc -l <failed)" = 1 &&
	vm "cat /data/.appliance-provisioned" | grep -q " error: restore failed: " &&
	# The production image carries no staging marks.
	curl -sk -D h -o index.html "$URL/" && ! grep -qi "^x-robots-tag\|^x-atarys-environment" h &&
	! grep -q "atarys-environment-banner" index.html
'

# The sample development database, served by the test's HTTP server.
python3 "$APP/backend/dev/make-dev-db.py" www/atarys-dev.sqlite >/dev/null || exit 1
printf 'appliance:\n  import:\n    sqlite: http://10.0.2.2:%s/atarys-dev.sqlite\n' "$HTTP_PORT" >import-section.yaml
test_expect_success 'a SQLite development database by URL: imported with pgloader at first boot, the same rows' '
	python3 -c "
import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute(\"SELECT id, name, coalesce(client, \x27\x27), status FROM chantiers ORDER BY id\"):
    print(\"|\".join(map(str, r)))" www/atarys-dev.sqlite >sqlite.rows &&
	test "$(wc -l <sqlite.rows)" -ge 200 &&
	user_data production-3 "$(cat import-section.yaml)" >ud-import.yaml &&
	start=$SECONDS && fresh_boot production 4 ud-import.yaml console-import.log &&
	wait_health && elapsed "import: power-on to healthy with the data imported" $start >>"$TEST_DIR/timings" &&
	grep -ao "appliance: provision: .*" console-import.log | tr -d "\r" | sed "s/^/# /" >>"$TEST_DIR/timings" &&
	grep -aq "appliance: provision: imported http://10.0.2.2:$HTTP_PORT/atarys-dev.sqlite in [0-9]* s" console-import.log &&
	rows | cut -d"|" -f1-4 >imported.rows && cmp sqlite.rows imported.rows &&
	vm "cat /data/atarys/import.done && test ! -e /data/atarys/import.failed" &&
	vm "systemctl --failed --no-legend --plain" >failed && { test ! -s failed || { cat failed; exit 1; }; } &&
	# A new chantier gets an id after the imported ones.
	curl -skf -X POST -H "Content-Type: application/json" -d "{\"name\": \"after the import\"}" \
		"$URL/api/chantiers" >new.json &&
	python3 -c "import json,sys; n = json.load(open(\"new.json\"))[\"id\"]; m = max(int(l.split(\"|\")[0]) for l in open(\"sqlite.rows\")); assert n > m, (n, m)"
'

test_expect_success 'while import.failed exists the backend does not start (systemd, ExecCondition), then does' '
	use_ports 4 &&
	vm "echo reason=a test of the check >/data/atarys/import.failed && systemctl restart atarys-backend; sleep 2" &&
	! vm "systemctl is-active atarys-backend" &&
	vm "journalctl -b -u atarys-backend --no-pager" | grep -q "not started: the import of an SQLite database failed: a test of the check" &&
	test "$(curl -sk -o /dev/null -w "%{http_code}" "$URL/api/health")" = 502 &&
	vm "rm /data/atarys/import.failed && systemctl restart atarys-backend" &&
	wait_health
'

cat "$TEST_DIR/timings" 2>/dev/null | sed 's/^/# /'
test_done
