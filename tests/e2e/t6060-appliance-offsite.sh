#!/bin/bash
# The appliance's offsite backups (overlays/pg-backup), without a VM: the
# scripts run in a chroot made of this host's /usr and /etc with the
# overlays on top (as t6050), against a PostgreSQL server of the test's own
# (its socket where the appliance has it, /run/postgresql, peer
# authentication), s3rver behind fake-aws.py's SigV4-checking S3 front
# (curl --aws-sigv4 must sign right), and the real age. A backup is a local
# dump plus an age-encrypted copy in the bucket that does not show its rows;
# restored from the bucket into an empty database the rows are the same and
# owned by the application's role; remote copies past the retention are
# deleted and nothing else; with the store stopped the local backup is kept,
# the metric is not updated, one error line, and the next run uploads it; a
# tampered, truncated or wrong-key backup, or one whose SQL fails half-way,
# is refused and the database left as it was. The alert rules are checked
# and unit-tested with promtool.
# imgforge-test: timeout 300
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"

for t in unshare:util-linux age:age age-keygen:age curl:curl python3:python3 psql:postgresql-client \
	runuser:util-linux promtool:prometheus; do
	require_tool "${t%%:*}" "${t#*:}" || exit 1
done
skip_unless_root_pg 'appliance offsite backups'
pg_server_bin || exit 1

OV=$SRCDIR/overlays R=$TEST_DIR/root
SOCK=$R/run/postgresql PGDATA=$TEST_DIR/pg
pg_stop() { runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -w -m immediate stop >/dev/null 2>&1; }
# The S3 front is started here (cloud_s3_front), which cloud_peers_stop does
# not know: stopped here, and waited for (it is not this shell's child).
front_stop() {
	local pid i
	[ -f "$TEST_DIR/s3front.pid" ] || return 0
	pid=$(cat "$TEST_DIR/s3front.pid")
	kill "$pid" 2>/dev/null
	for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	rm -f "$TEST_DIR/s3front.pid"
}
trap '[ -f "$PGDATA/postmaster.pid" ] && pg_stop; front_stop; cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT
# The test's psql, as the appliance's scripts connect: user postgres, peer.
sql() { runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$SOCK" -d "$1" -c "$2"; }
# The rows of the application's table, and what the whole database holds.
rows() { sql "$1" "SELECT id, nom FROM chantiers ORDER BY id"; }
state() { runuser -u postgres -- pg_dump -h "$SOCK" --no-comments "$1" | grep -v "^--\|^\\\\\(un\)\?restrict " | md5sum; }

# in_root CMD...: CMD in the chroot, its /usr and /etc the overlays' over the host's.
in_root() {
	unshare -m sh -ec '
		r=$1 ov=$2; shift 2
		mount --make-rprivate /
		mount -t overlay overlay -o "lowerdir=$ov/usr:/usr" "$r/usr"
		mount -t overlay overlay -o "lowerdir=$ov/etc:/etc" "$r/etc"
		mount --rbind /dev "$r/dev"
		mount -t proc proc "$r/proc"
		exec chroot "$r" "$@"
	' sh "$R" "$TEST_DIR/ov" "$@"
}

# sign ARGS...: curl signing for the test's own requests to the store.
sign() {
	curl -sS -f --aws-sigv4 "aws:amz:eu-west-3:s3" --user "$CLOUD_AWS_ACCESS_KEY:$CLOUD_AWS_SECRET_KEY" "$@"
}
put_object() { # file key
	sign -H "x-amz-content-sha256: $(sha256sum <"$1" | cut -d" " -f1)" -T "$1" "$FRONT/bkt/$2" >/dev/null
}
get_object() { # key file
	sign -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -o "$2" "$FRONT/bkt/$1"
}
# The keys in the bucket, as s3rver keeps them.
objects() {
	(cd "$TEST_DIR/s3rver/bkt" && find . -name '*._S3rver_object' | sed 's|^\./||; s|\._S3rver_object$||' | sort)
}
offsite_env() { # endpoint [line end]
	printf "%s${2:-}\n" "# written by cloud-init" "OFFSITE_URL=s3://bkt/appliance/prod" "OFFSITE_ENDPOINT=$1" \
		"OFFSITE_REGION=eu-west-3" "OFFSITE_ACCESS_KEY_ID=$CLOUD_AWS_ACCESS_KEY" \
		"OFFSITE_SECRET_ACCESS_KEY=\"$CLOUD_AWS_SECRET_KEY\"" >"$R/data/backups/offsite.env"
}
METRIC=$R/var/lib/prometheus/node-exporter/appliance_backup_offsite_last_success_timestamp_seconds.prom

# The root: overlays' /usr and /etc (the image's backup.env and the
# recipient, as recipes/pg-backup.yaml writes them), /data as prepare-data
# makes it. The private key stays outside.
mkdir -p ov/etc/appliance "$R"/usr "$R"/etc "$R"/dev "$R"/proc "$R"/tmp "$SOCK" \
	"$R"/data/backups "$R"/var/lib/prometheus/node-exporter "$PGDATA" &&
	for o in appliance-state pg-backup; do cp -a "$OV/$o/usr" ov/; done &&
	printf 'BACKUP_DATABASE=atarys\nBACKUP_RETENTION_DAYS=30\n' >ov/etc/appliance/backup.env &&
	age-keygen -o key.txt 2>/dev/null && age-keygen -o other-key.txt 2>/dev/null &&
	{ echo "# the backups' recipient"; age-keygen -y key.txt; } >ov/etc/appliance/backup-recipients &&
	chmod 1777 "$R/tmp" && chmod 0700 "$R/data/backups" && chmod a+x "$TEST_DIR" &&
	chown postgres: "$SOCK" "$PGDATA" &&
	ln -s ../run "$R/var/run" && ln -s usr/bin "$R/bin" && ln -s usr/sbin "$R/sbin" && ln -s usr/lib "$R/lib" &&
	{ test ! -e /lib64 || ln -s usr/lib64 "$R/lib64"; } || exit 1

test_expect_success 'PostgreSQL, the application database and its rows; s3rver behind a SigV4 front' '
	runuser -u postgres -- "$PGBIN/initdb" -D "$PGDATA" -U postgres -A peer --no-sync -E UTF8 \
		--locale=C.UTF-8 >initdb.log 2>&1 &&
	runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA/server.log" -w -t 60 \
		-o "-c listen_addresses='\'''\'' -k $SOCK -c fsync=off" start >/dev/null &&
	sql postgres "CREATE ROLE atarys LOGIN" &&
	sql postgres "CREATE DATABASE atarys OWNER atarys" &&
	sql atarys "SET ROLE atarys; CREATE TABLE chantiers (id serial PRIMARY KEY, nom text NOT NULL);
		INSERT INTO chantiers (nom) SELECT '\''chantier-secret-'\'' || i FROM generate_series(1, 500) i;
		INSERT INTO chantiers (nom) VALUES ('\''Rénovation de la mairie'\'')" &&
	test "$(sql atarys "SELECT count(*) FROM chantiers")" = 501
'
s3rver_start && cloud_python && FRONT=$(cloud_s3_front s3front "$CLOUD_AWS_ACCESS_KEY" "$CLOUD_AWS_SECRET_KEY" eu-west-3) ||
	exit 1
sign -X PUT -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$FRONT/bkt" >/dev/null || exit 1

test_expect_success 'no store configured: the local backup, said, exit 0' '
	in_root /usr/sbin/appliance-backup now >out 2>err || { cat out err; exit 1; }
	grep -q "^appliance-backup: /data/backups/atarys-[0-9]\{8\}-[0-9]\{6\}\.sql\.gz ([0-9]* bytes)\$" out &&
	grep -q "^appliance-backup: no offsite copies: /data/backups/offsite.env does not exist" out &&
	test ! -s err && test ! -e "$METRIC" &&
	test -s "$R/var/lib/prometheus/node-exporter/appliance_backup_last_success_timestamp_seconds.prom" &&
	test -z "$(objects)"
'

test_expect_success 'backup: an encrypted copy in the bucket, unreadable without the key' '
	offsite_env "$FRONT" "\r" && chmod 600 "$R/data/backups/offsite.env" &&
	sleep 1 && in_root /usr/sbin/appliance-backup >out 2>err || { cat out err; exit 1; }
	cat out && test ! -s err &&
	test "$(ls "$R"/data/backups/atarys-*.sql.gz | wc -l)" = 2 &&
	test "$(objects | wc -l)" = 2 &&
	test "$(objects | grep -c "^appliance/prod/atarys-[0-9]\{8\}-[0-9]\{6\}\.sql\.gz\.age\$")" = 2 &&
	test "$(grep -c "^appliance-backup: uploaded s3://bkt/appliance/prod/atarys-" out)" = 2 &&
	! grep -q "$CLOUD_AWS_SECRET_KEY" out &&
	name=$(objects | tail -n 1) &&
	get_object "$name" obj &&
	head -c 21 obj | grep -q "^age-encryption.org/v1" &&
	! grep -aq "chantier-secret" obj && ! gzip -dc <obj >/dev/null 2>&1 &&
	age -d -i key.txt obj | gzip -dc | grep -q "Rénovation de la mairie" &&
	test_must_fail age -d -i other-key.txt obj >/dev/null 2>&1 &&
	grep -q "PUT /bkt/appliance/prod/atarys-" "$TEST_DIR/s3front.log" &&
	! grep -q "SignatureDoesNotMatch\|InvalidAccessKeyId\|AuthorizationHeaderMalformed" "$TEST_DIR/s3front.log" &&
	promtool check metrics <"$METRIC" &&
	ts=$(sed -n "s/^appliance_backup_offsite_last_success_timestamp_seconds //p" "$METRIC") &&
	test $(( $(date +%s) - ts )) -lt 120
'

test_expect_success 'list: local and offsite copies' '
	in_root /usr/sbin/appliance-backup list >list 2>err || { cat list err; exit 1; }
	cat list &&
	head -n 1 list | grep -q "^BACKUP  *LOCAL BYTES  *OFFSITE BYTES\$" &&
	test "$(grep -c "^atarys-[0-9-]*  *[0-9][0-9]*  *[0-9][0-9]*\$" list)" = 2 &&
	tail -n 1 list | grep -q "^offsite: s3://bkt/appliance/prod\$"
'

test_expect_success 'restore from the store into an empty database: the same rows, the owner kept' '
	cp key.txt "$R/tmp/key.txt" &&
	in_root /usr/sbin/appliance-restore --from s3://bkt/appliance/prod --key /tmp/key.txt latest fresh >out 2>err ||
		{ cat out err; exit 1; }
	grep -q "^appliance-restore: .s3://bkt/appliance/prod/atarys-.*\.sql\.gz\.age. restored into .fresh.\$" out &&
	rows atarys >a && rows fresh >b && test "$(wc -l <b)" = 501 && cmp a b &&
	test "$(sql fresh "SELECT tableowner FROM pg_tables WHERE tablename = '\''chantiers'\''")" = atarys &&
	test "$(sql postgres "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '\''fresh'\''")" = atarys &&
	! ls -A "$R/data/backups" | grep -q "^\.restore"
'

# A staging image's scrub files (overlays/atarys-staging): run in the
# restore's transaction, after the dump.
test_expect_success 'restore with scrub files: personal data replaced in the same transaction' '
	mkdir -p ov/usr/lib/appliance/scrub.d &&
	echo "UPDATE chantiers SET nom = '\''Chantier '\'' || id WHERE nom LIKE '\''chantier-secret-%'\'';" \
		>ov/usr/lib/appliance/scrub.d/10-names.sql &&
	in_root /usr/sbin/appliance-restore --from s3://bkt/appliance/prod --key /tmp/key.txt latest scrubbed >out 2>err ||
		{ cat out err; exit 1; }
	cat out && grep -q "^appliance-restore: scrubbed with 10-names.sql\$" out &&
	test "$(sql scrubbed "SELECT count(*) FROM chantiers")" = 501 &&
	test "$(sql scrubbed "SELECT count(*) FROM chantiers WHERE nom LIKE '\''chantier-secret-%'\''")" = 0 &&
	test "$(sql scrubbed "SELECT nom FROM chantiers WHERE id = 7")" = "Chantier 7" &&
	test "$(sql scrubbed "SELECT count(*) FROM chantiers WHERE nom = '\''Rénovation de la mairie'\''")" = 1 &&
	sql atarys "SELECT id FROM chantiers ORDER BY id" >ids.a && sql scrubbed "SELECT id FROM chantiers ORDER BY id" >ids.b &&
	cmp ids.a ids.b
'

test_expect_success 'a scrub file that fails: nothing restored, the database dropped again' '
	echo "UPDATE chantiers SET no_such_column = 1;" >ov/usr/lib/appliance/scrub.d/20-broken.sql &&
	test_must_fail in_root /usr/sbin/appliance-restore --from s3://bkt/appliance/prod --key /tmp/key.txt latest scratch >out 2>err &&
	cat err && test "$(wc -l <err)" = 1 &&
	grep_one "^appliance-restore: error: restoring .* into .scratch. failed \\(.*no_such_column.*\\): .scratch. is as it was\$" err &&
	test -z "$(sql postgres "SELECT datname FROM pg_database WHERE datname = '\''scratch'\''")" &&
	rm -r ov/usr/lib/appliance/scrub.d
'

# The first boot's provisioning (/usr/lib/appliance/provision,
# appliance-provision.service) with the cloud-config cloud-init would have
# stored: restore into the application's database, a marker, one line.
provision() { # cloud-config (stdin)
	cat >"$R/tmp/cloud-config.txt" &&
	rm -f "$R/data/.appliance-provisioned" && date >"$R/data/.appliance-provision-pending" &&
	in_root env APPLIANCE_CLOUD_CONFIG=/tmp/cloud-config.txt APPLIANCE_RUN_DIR=/tmp \
		APPLIANCE_PROVISION_ATTEMPTS=1 /usr/lib/appliance/provision >out 2>err
}
test_expect_success 'provision: nothing asked, nothing done, said once' '
	printf "#cloud-config\nhostname: x\n" | provision || { cat out err; exit 1; }
	test ! -s err && grep_one "^appliance: provision: nothing to restore or import in [0-9]* s\$" out &&
	grep -q " nothing to restore or import " "$R/data/.appliance-provisioned" &&
	test ! -e "$R/data/.appliance-provision-pending"
'

test_expect_success 'provision: restore latest from the user-data, the key given there' '
	sql atarys "DELETE FROM chantiers" &&
	{ printf "#cloud-config\nappliance:\n  restore:\n    from: s3://bkt/appliance/prod\n    backup: latest\n    key: |\n" &&
		sed "s/^/      /" key.txt; } | provision || { cat out err; exit 1; }
	cat out && test ! -s err &&
	grep -q "^appliance: provision: restored s3://bkt/appliance/prod/atarys-.*\.sql\.gz\.age in [0-9]* s\$" out &&
	test "$(sql atarys "SELECT count(*) FROM chantiers")" = 501 &&
	grep -q " restored s3://bkt/appliance/prod/atarys-" "$R/data/.appliance-provisioned" &&
	! ls "$R/tmp" | grep -q "^appliance-provision\."
'

test_expect_success 'provision: from defaults to the offsite URL; the wrong key: one line, database as it was' '
	{ printf "#cloud-config\nappliance:\n  restore:\n    key: |\n" && sed "s/^/      /" other-key.txt; } >cc &&
	state atarys >before &&
	test_must_fail provision <cc && cat out err &&
	grep_one "^appliance: provision: error: restore failed: appliance-restore: error: cannot decrypt .s3://bkt/appliance/prod/atarys-.* \\(age: error: no identity matched any of the recipients\\): .*; the application starts with an empty database \\(docs/recovery.md\\)\$" out &&
	state atarys | cmp - before &&
	grep -q " error: restore failed: " "$R/data/.appliance-provisioned"
'

test_expect_success 'provision: bad user-data: one line each, nothing restored' '
	state atarys >before &&
	for cc in "appliance: {restore: {from: s3://bkt/x}, import: {sqlite: /data/x}}|give .restore. or .import., not both" \
		"appliance: {restor: {}}|unknown key .restor. \\(known: restore, import\\)" \
		"appliance: {restore: {from: s3://bkt/appliance/prod}}|restore: .key. is missing" \
		"appliance: {restore: {key: not-a-key}}|restore: .key. is not an age identity" \
		"appliance: {restore: {key: AGE-SECRET-KEY-1X, backup: [1]}}|restore: .backup. must be a non-empty string" \
		"appliance: [1|/tmp/cloud-config.txt:[0-9]+:[0-9]+: not a YAML cloud-config"; do
		printf "#cloud-config\n%s\n" "${cc%%|*}" | test_must_fail provision &&
		grep_one "^appliance: provision: error: .*${cc#*|}" out || { cat out err; exit 1; }
	done &&
	state atarys | cmp - before
'

test_expect_success 'retention: offsite copies past 30 days deleted, nothing else' '
	echo old >old && echo notes >notes &&
	put_object old appliance/prod/atarys-20200101-000000.sql.gz.age &&
	put_object old appliance/prod/atarys-20200102-000000.sql.gz.age &&
	put_object notes appliance/prod/notes.txt &&
	put_object old appliance/staging/atarys-20200101-000000.sql.gz.age &&
	in_root /usr/sbin/appliance-backup upload >out 2>err || { cat out err; exit 1; }
	cat out &&
	test "$(grep -c "^appliance-backup: deleted s3://bkt/appliance/prod/atarys-2020010[12]-000000.sql.gz.age (older than 30 days)\$" out)" = 2 &&
	! objects | grep -q "^appliance/prod/atarys-2020" &&
	objects | grep -q "^appliance/prod/notes.txt\$" &&
	objects | grep -q "^appliance/staging/atarys-20200101-000000.sql.gz.age\$" &&
	test "$(objects | grep -c "^appliance/prod/atarys-")" = 2
'

test_expect_success 'retention: the newest offsite copy is kept, however old' '
	printf "BACKUP_DATABASE=other\nBACKUP_RETENTION_DAYS=30\n" >ov/etc/appliance/backup.env &&
	put_object old appliance/prod/other-20200101-000000.sql.gz.age &&
	put_object old appliance/prod/other-20200102-000000.sql.gz.age &&
	in_root /usr/sbin/appliance-backup upload >out 2>err || { cat out err; exit 1; }
	printf "BACKUP_DATABASE=atarys\nBACKUP_RETENTION_DAYS=30\n" >ov/etc/appliance/backup.env &&
	cat out && grep_one "^appliance-backup: deleted " out &&
	grep -q "^appliance-backup: deleted s3://bkt/appliance/prod/other-20200101-000000.sql.gz.age " out &&
	objects | grep -qx "appliance/prod/other-20200102-000000.sql.gz.age" &&
	test "$(objects | grep -c "^appliance/prod/atarys-")" = 2
'

# The store stopped (its SigV4 front: nothing answers at the endpoint).
front_stop
test_expect_success 'the store stopped: local backup kept, metric unchanged, one line, exit 1' '
	cp "$METRIC" metric.before &&
	sleep 1 && test_must_fail in_root /usr/sbin/appliance-backup now >out 2>err &&
	cat out err &&
	test "$(wc -l <err)" = 1 &&
	grep_one "^appliance-backup: error: cannot list s3://bkt/appliance/prod: curl: \\(7\\) .*; the local backups are kept, the next run uploads them\$" err &&
	test "$(ls "$R"/data/backups/atarys-*.sql.gz | wc -l)" = 3 &&
	cmp metric.before "$METRIC" &&
	! ls -A "$R/data/backups" | grep -q "\.tmp\$"
'
# The store back (the front at a new port).
FRONT=$(cloud_s3_front s3front "$CLOUD_AWS_ACCESS_KEY" "$CLOUD_AWS_SECRET_KEY" eu-west-3) || exit 1

test_expect_success 'the next run uploads what the failed one did not' '
	offsite_env "$FRONT" &&
	sleep 1 && in_root /usr/sbin/appliance-backup >out 2>err || { cat out err; exit 1; }
	cat out &&
	test "$(grep -c "^appliance-backup: uploaded " out)" = 2 &&
	test "$(objects | grep -c "^appliance/prod/atarys-")" = 4 &&
	for f in "$R"/data/backups/atarys-*.sql.gz; do
		objects | grep -qx "appliance/prod/$(basename "$f").age" || exit 1
	done &&
	! cmp -s metric.before "$METRIC"
'

# Restores that must be refused with one line, and leave the database as it was.
refused() { # regex ARGS...
	local re=$1
	shift
	state atarys >before &&
	test_must_fail in_root /usr/sbin/appliance-restore "$@" >out 2>err &&
	test "$(wc -l <err)" = 1 && grep_one "$re" err && cat err &&
	state atarys | cmp - before &&
	test -z "$(sql postgres "SELECT datname FROM pg_database WHERE datname = '\''scratch'\''")" &&
	! ls -A "$R/data/backups" | grep -q "^\.restore"
}

test_expect_success 'a tampered or truncated copy is refused; the database untouched' '
	sql atarys "INSERT INTO chantiers (nom) VALUES ('\''written after the backup'\'')" &&
	name=$(objects | grep "^appliance/prod/atarys-" | tail -n 1) && get_object "$name" good &&
	size=$(stat -c %s good) &&
	cp good bad && printf "\\x55" | dd of=bad bs=1 seek=$((size - 100)) conv=notrunc 2>/dev/null &&
	! cmp -s good bad && put_object bad appliance/prod/atarys-20261201-000000.sql.gz.age &&
	head -c $((size - 70000)) good >short && put_object short appliance/prod/atarys-20261202-000000.sql.gz.age &&
	refused "^appliance-restore: error: cannot decrypt .s3://bkt/appliance/prod/atarys-20261201-000000.sql.gz.age. with ./tmp/key.txt. \\(age: error: .*\\): the backup was encrypted for another key, or damaged or changed since; nothing restored\$" \
		--from s3://bkt/appliance/prod --key /tmp/key.txt atarys-20261201-000000 &&
	refused "^appliance-restore: error: cannot decrypt .*atarys-20261202-000000.sql.gz.age" \
		--from s3://bkt/appliance/prod --key /tmp/key.txt atarys-20261202-000000.sql.gz.age scratch &&
	refused "^appliance-restore: error: cannot download s3://bkt/appliance/prod/atarys-20261203-000000.sql.gz.age: HTTP 404 NoSuchKey" \
		--from s3://bkt/appliance/prod --key /tmp/key.txt atarys-20261203-000000
'

test_expect_success 'the wrong key is refused; the database untouched' '
	cp other-key.txt "$R/tmp/other-key.txt" &&
	refused "^appliance-restore: error: cannot decrypt .* with ./tmp/other-key.txt. \\(age: error: no identity matched any of the recipients\\): the backup was encrypted for another key" \
		--from s3://bkt/appliance/prod --key /tmp/other-key.txt latest &&
	refused "^appliance-restore: error: cannot decrypt .* with ./tmp/other-key.txt. " \
		--from s3://bkt/appliance/prod --key /tmp/other-key.txt latest scratch &&
	refused "^appliance-restore: error: .*is encrypted: give its private key with --key FILE\$" \
		--from s3://bkt/appliance/prod latest
'

test_expect_success 'a backup whose SQL fails half-way: one transaction, nothing applied' '
	printf "DROP TABLE chantiers;\nCREATE TABLE chantiers (x int);\nSELECT no_such_function();\n" |
		gzip | age -e -R ov/etc/appliance/backup-recipients >half.age &&
	cp half.age "$R/tmp/atarys-20261130-000000.sql.gz.age" &&
	refused "^appliance-restore: error: restoring ./tmp/atarys-20261130-000000.sql.gz.age. into .atarys. failed \\(.*no_such_function.*\\): .atarys. is as it was\$" \
		--key /tmp/key.txt /tmp/atarys-20261130-000000.sql.gz.age &&
	refused "^appliance-restore: error: restoring .* into .scratch. failed" \
		--key /tmp/key.txt /tmp/atarys-20261130-000000.sql.gz.age scratch &&
	test "$(sql atarys "SELECT count(*) FROM chantiers")" = 502
'

test_expect_success 'offsite.env: a bad line, a wrong secret key: one error line each' '
	echo "OFFSITE_BUKCET=x" >>"$R/data/backups/offsite.env" &&
	test_must_fail in_root /usr/sbin/appliance-backup upload >out 2>err &&
	test "$(wc -l <err)" = 1 &&
	grep_one "^appliance-backup: error: /data/backups/offsite.env:7: unknown setting .OFFSITE_BUKCET." err &&
	offsite_env "$FRONT" &&
	sed -i "s|^OFFSITE_SECRET_ACCESS_KEY=.*|OFFSITE_SECRET_ACCESS_KEY=not/the/right/one|" "$R/data/backups/offsite.env" &&
	test_must_fail in_root /usr/sbin/appliance-backup upload >out 2>err &&
	test "$(wc -l <err)" = 1 &&
	grep_one "^appliance-backup: error: cannot list s3://bkt/appliance/prod: HTTP 403 SignatureDoesNotMatch " err &&
	! grep -q "not/the/right/one" err &&
	offsite_env "$FRONT"
'

test_expect_success 'alert rules: promtool checks them; offsite backup too old or missing fires' '
	rules=$OV/monitoring/etc/prometheus/rules/atarys.yml &&
	promtool check rules "$rules" &&
	cat >alerts.test.yml <<-EOF &&
	rule_files: [$rules]
	evaluation_interval: 1m
	tests:
	  # A backup at 01:00, the next one due 24 h later never comes.
	  - interval: 10m
	    input_series:
	      - series: appliance_backup_offsite_last_success_timestamp_seconds{instance="localhost:9100",job="node"}
	        values: 3600x300
	    alert_rule_test:
	      - eval_time: 26h
	        alertname: OffsiteBackupTooOld
	      - eval_time: 27h10m
	        alertname: OffsiteBackupTooOld
	        exp_alerts:
	          - exp_labels: {severity: critical, instance: localhost:9100, job: node}
	            exp_annotations:
	              summary: "the last offsite backup is 1d 2h 10m 0s old (more than 26 hours): see appliance-backup list"
	  # Never a successful run: the metric is absent.
	  - interval: 10m
	    input_series:
	      - series: node_boot_time_seconds{instance="localhost:9100",job="node"}
	        values: 0x300
	    alert_rule_test:
	      - eval_time: 25h
	        alertname: OffsiteBackupMissing
	      - eval_time: 27h
	        alertname: OffsiteBackupMissing
	        exp_alerts:
	          - exp_labels: {severity: critical}
	            exp_annotations:
	              summary: "no offsite backup has succeeded (appliance_backup_offsite_last_success_timestamp_seconds absent for 26 hours): see docs/recovery.md"
	EOF
	promtool test rules alerts.test.yml
'

test_done
