#!/bin/bash
# imgforge publish --to openstack against a real OpenStack on loopback:
# Debian's Keystone (under uWSGI) and Glance (glance-api), SQLite databases
# and a file store in the scratch directory, configured and bootstrapped
# here; the openstack client checks what imgforge made.
# imgforge-test: slow
# imgforge-test: timeout 1800
. "$SRCDIR/tests/e2e/lib.sh"

IMG=${IMGFORGE_SAN:-$IMGFORGE}
CACHE=$XDG_CACHE_HOME/imgforge
# Keystone and Glance are Debian's Python programs: Debian's interpreter, not one earlier in PATH.
SYSPY=/usr/bin/python3
unset $(env | grep -oE '^(AWS|OS|SCW)_[A-Z_]*') 2>/dev/null || true
export HOME=$TEST_DIR/home
mkdir -p "$HOME"
ADMIN_PW=adminpw-$RANDOM$RANDOM

port() { "$SYSPY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
KP=$(port) GP=$(port)
KS=http://127.0.0.1:$KP/v3 GL=http://127.0.0.1:$GP

stack_stop() {
	local f
	for f in "$TEST_DIR"/keystone.pid "$TEST_DIR"/glance.pid; do
		[ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	sleep 0.5
	for f in "$TEST_DIR"/keystone.pid "$TEST_DIR"/glance.pid; do
		[ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
	done
	true
}
# T7100_KEEP=1 keeps the scratch directory (the services' logs) to look into.
trap 'stack_stop; cd /; [ -n "${T7100_KEEP:-}" ] && echo "# kept $TEST_DIR" || rm -rf "$TEST_DIR"' EXIT

# The admin's credentials, as an openrc exports them.
admin_env() {
	export OS_AUTH_URL=$KS OS_USERNAME=admin OS_PASSWORD=$ADMIN_PW OS_PROJECT_NAME=admin \
		OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
		OS_REGION_NAME=RegionOne OS_IDENTITY_API_VERSION=3
}

# An admin token for the few calls the test makes with curl.
admin_token() {
	curl -sf -D - -o /dev/null -H 'Content-Type: application/json' -d "{\"auth\": {\"identity\":
		{\"methods\": [\"password\"], \"password\": {\"user\": {\"name\": \"admin\",
		\"domain\": {\"name\": \"Default\"}, \"password\": \"$ADMIN_PW\"}}}, \"scope\":
		{\"project\": {\"name\": \"admin\", \"domain\": {\"name\": \"Default\"}}}}}" \
		"$KS/auth/tokens" | tr -d '\r' | sed -n 's/^[Xx]-[Ss]ubject-[Tt]oken: //p'
}

jq_py() { "$SYSPY" -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

wait_http() { # url seconds
	local i
	for i in $(seq $(($2 * 5))); do
		curl -s -o /dev/null "$1" && return 0
		sleep 0.2
	done
	echo "nothing answers at $1 after $2 s" >&2
	return 1
}

# The setup runs under set -e: each line must succeed.
test_expect_success 'setup: Keystone and Glance on loopback' '
	require_tool keystone-manage keystone
	require_tool glance-api glance-api
	require_tool glance-manage glance-common
	require_tool openstack python3-openstackclient
	require_tool uwsgi uwsgi-core
	test -e /usr/lib/uwsgi/plugins/python3_plugin.so ||
		{ echo "missing the uWSGI Python 3 plugin: install uwsgi-plugin-python3 (make deps does)"; exit 1; }
	start=$(date +%s)
	mkdir -p ks/fernet ks/credential gl/images gl/staging gl/tasks
	cat >ks/keystone.conf <<-EOF
	[DEFAULT]
	log_file = $TEST_DIR/ks/keystone.log
	[database]
	connection = sqlite:///$TEST_DIR/ks/keystone.db
	[token]
	provider = fernet
	[fernet_tokens]
	key_repository = $TEST_DIR/ks/fernet
	[fernet_receipts]
	key_repository = $TEST_DIR/ks/fernet
	[credential]
	key_repository = $TEST_DIR/ks/credential
	[cache]
	enabled = false
	[identity]
	# The fewest bcrypt rounds: each token costs a hash of the password.
	password_hash_rounds = 4
	EOF
	cat >gl/glance-api.conf <<-EOF
	[DEFAULT]
	bind_host = 127.0.0.1
	bind_port = $GP
	workers = 1
	log_file = $TEST_DIR/gl/glance-api.log
	enabled_backends = fs:file
	[glance_store]
	default_backend = fs
	[fs]
	filesystem_store_datadir = $TEST_DIR/gl/images
	[os_glance_staging_store]
	filesystem_store_datadir = $TEST_DIR/gl/staging
	[os_glance_tasks_store]
	filesystem_store_datadir = $TEST_DIR/gl/tasks
	[database]
	connection = sqlite:///$TEST_DIR/gl/glance.db
	[keystone_authtoken]
	www_authenticate_uri = $KS
	auth_url = $KS
	interface = public
	auth_type = password
	username = admin
	password = $ADMIN_PW
	project_name = admin
	user_domain_name = Default
	project_domain_name = Default
	[paste_deploy]
	flavor = keystone
	config_file = /etc/glance/glance-api-paste.ini
	EOF
	glance-manage --config-file gl/glance-api.conf db_sync >gl/db_sync.log 2>&1 &
	dbsync=$!
	keystone-manage --config-file ks/keystone.conf fernet_setup \
		--keystone-user "$(id -un)" --keystone-group "$(id -gn)" >ks/setup.log 2>&1
	keystone-manage --config-file ks/keystone.conf db_sync >>ks/setup.log 2>&1
	# Readers must not block writers: with the default rollback journal, a
	# connection Keystone leaves open makes the next write "database is locked".
	sqlite3 ks/keystone.db "PRAGMA journal_mode=WAL" >/dev/null
	keystone-manage --config-file ks/keystone.conf bootstrap \
		--bootstrap-password "$ADMIN_PW" --bootstrap-public-url "$KS" \
		--bootstrap-region-id RegionOne >>ks/setup.log 2>&1
	# One thread per process: SQLite connections may not cross threads.
	uwsgi --plugin python3 --http-socket "127.0.0.1:$KP" --wsgi-file /usr/bin/keystone-wsgi-public \
		--env "OS_KEYSTONE_CONFIG_DIR=$TEST_DIR/ks" --master --processes 2 --threads 1 \
		--die-on-term --buffer-size 65535 --add-header "Connection: close" \
		--logto "$TEST_DIR/ks/uwsgi.log" &
	echo $! >"$TEST_DIR/keystone.pid"
	wait $dbsync || { cat gl/db_sync.log; exit 1; }
	glance-api --config-file gl/glance-api.conf >gl/stdout.log 2>&1 &
	echo $! >"$TEST_DIR/glance.pid"
	wait_http "$KS" 120
	tok=$(admin_token)
	test -n "$tok"
	sid=$(curl -sf -H "X-Auth-Token: $tok" -H "Content-Type: application/json" \
		-d "{\"service\": {\"type\": \"image\", \"name\": \"glance\"}}" "$KS/services" |
		jq_py "d[\"service\"][\"id\"]")
	curl -sf -o /dev/null -H "X-Auth-Token: $tok" -H "Content-Type: application/json" \
		-d "{\"region\": {\"id\": \"RegionTwo\"}}" "$KS/regions"
	for r in RegionOne RegionTwo; do
		curl -sf -o /dev/null -H "X-Auth-Token: $tok" -H "Content-Type: application/json" \
			-d "{\"endpoint\": {\"service_id\": \"$sid\", \"interface\": \"public\",
			\"region_id\": \"$r\", \"url\": \"$GL/\"}}" "$KS/endpoints"
	done
	wait_http "$GL/" 120
	echo "Keystone and Glance ready in $(($(date +%s) - start)) s" >"$TEST_DIR/stack-time"
'
[ -s "$TEST_DIR/stack-time" ] && echo "# $(cat "$TEST_DIR/stack-time")"

test_expect_success 'setup: a small registered build with a disk' '
	require_tool grub-mkimage grub-common &&
	mkdir -p img/ovl/etc/app img/ovl/boot img/ovl/usr/sbin &&
	echo one >img/ovl/etc/app/motd &&
	echo initrd >img/ovl/boot/initrd.img-6.1.0-test &&
	for t in sfdisk partx e2fsck resize2fs; do printf "#!/bin/sh\n" >img/ovl/usr/sbin/$t || exit 1; done &&
	python3 "$SRCDIR/tests/helpers/rootfs-fixture.py" img/rootfs.tar.gz &&
	cat >img/image.yaml <<-EOT &&
	image: tiny
	version: 1.0.0
	base: {tarball: rootfs.tar.gz, sha256: $(sha256sum img/rootfs.tar.gz | cut -d" " -f1)}
	include: [$SRCDIR/recipes/ab-boot-files.yaml]
	overlays: [ovl]
	disk: {root_size: 64M, data_size: 32M}
	EOT
	imgforge -q build -o bout img/image.yaml &&
	python3 -c "import json; print(json.load(open(\"bout/manifest.json\"))[\"build_id\"])" >id
'
ID=$(cat id 2>/dev/null)

published() { sqlite3 "$CACHE/registry.db" "SELECT count(*) FROM publications WHERE target = 'openstack'"; }
# The project's images of this build, as "id status" lines.
build_images() {
	curl -sf -H "X-Auth-Token: $(admin_token)" "$GL/v2/images?imgforge_build_id=$ID" |
		jq_py "\"\\n\".join(i[\"id\"] + \" \" + i[\"status\"] for i in d[\"images\"])"
}

test_expect_success 'publish with a password: the image is active with its properties' '
	admin_env &&
	"$IMG" publish "$ID" --to openstack --name tiny-os >out 2>err &&
	iid=$(cat out) && test -n "$iid" && echo "$iid" >iid1 &&
	openstack image show "$iid" -f json >show.json &&
	cat >check.py <<-\EOF &&
	import json, sys
	d = json.load(open("show.json"))
	p = d["properties"]
	build, vsize = sys.argv[1], int(sys.argv[2])
	checks = [
	    (d["status"], "active"), (d["name"], "tiny-os"), (d["disk_format"], "qcow2"),
	    (d["container_format"], "bare"), (d["visibility"], "private"),
	    (d["min_disk"], (vsize + 2**30 - 1) // 2**30),
	    (p["hw_firmware_type"], "uefi"), (p["hw_machine_type"], "q35"),
	    (p["os_type"], "linux"), (p["imgforge_build_id"], build), (p["os_hash_algo"], "sha512"),
	    (d["tags"], ["imgforge"]),
	]
	bad = [f"{got!r} != {want!r}" for got, want in checks if got != want]
	if bad:
	    sys.exit("; ".join(bad))
	EOF
	"$SYSPY" check.py "$ID" "$(stat -c %s bout/disk.raw)" &&
	test "$(sqlite3 "$CACHE/registry.db" "SELECT image_id, region FROM publications")" = "$iid|RegionOne" &&
	stored=gl/images/$iid && test -f "$stored" &&
	qemu-img compare -f raw -F qcow2 bout/disk.raw "$stored" &&
	test "$(openstack image show "$iid" -f value -c size)" = "$(stat -c %s "$stored")"
'

test_expect_success 'no credential in the registry, the logs or the output' '
	! grep -r -l -a "$ADMIN_PW" "$CACHE" out err &&
	! grep -a -q "gAAAA" err out
'

test_expect_success 'publishing the same build again reuses its image' '
	admin_env &&
	"$IMG" publish "$ID" --to openstack --name tiny-os >out 2>err &&
	test "$(cat out)" = "$(cat iid1)" &&
	test "$(build_images | grep -c .)" = 1
'

test_expect_success 'an image created but never uploaded is found and uploaded into' '
	admin_env &&
	openstack image delete "$(cat iid1)" &&
	sha=$(sqlite3 "$CACHE/registry.db" "SELECT sha256 FROM publications LIMIT 1") &&
	# What an interrupted publish leaves: the image created, no data sent.
	curl -sf -H "X-Auth-Token: $(admin_token)" -H "Content-Type: application/json" \
		-d "{\"name\": \"half-done\", \"disk_format\": \"qcow2\", \"container_format\": \"bare\",
		\"imgforge_build_id\": \"$ID\", \"imgforge_sha256\": \"$sha\"}" "$GL/v2/images" |
		jq_py "d[\"id\"]" >queued &&
	test "$(openstack image show "$(cat queued)" -f value -c status)" = queued &&
	"$IMG" publish "$ID" --to openstack --name tiny-os >out 2>err &&
	test "$(cat out)" = "$(cat queued)" &&
	test "$(openstack image show "$(cat queued)" -f value -c status)" = active &&
	test "$(build_images | grep -c .)" = 1
'

test_expect_success 'a wrong password: Keystone'"'"'s answer in one line, nothing recorded' '
	admin_env &&
	n=$(published) &&
	test_must_fail env OS_PASSWORD=wrong "$IMG" publish "$ID" --to openstack --name other >out 2>err &&
	grep_one "^error: publish: keystone at .$KS/auth/tokens. refused the credentials from the environment \(OS_\*\): HTTP 401 Unauthorized: The request you have made requires authentication\.; check OS_USERNAME, OS_PASSWORD" err &&
	test "$(grep -c "^error:" err)" = 1 && test ! -s out &&
	test "$(published)" = "$n" &&
	! openstack image list -f value -c Name | grep -qx other
'

test_expect_success 'missing credentials: one line naming what to set' '
	test_must_fail env -u OS_PASSWORD OS_AUTH_URL=$KS OS_USERNAME=admin \
		"$IMG" publish "$ID" --to openstack 2>err &&
	grep_one "^error: publish: no OpenStack OS_PASSWORD \(password\) in the environment \(OS_\*\): source" err &&
	test "$(grep -c "^error:" err)" = 1
'

test_expect_success 'a region without the image service, and two regions with it' '
	admin_env &&
	test_must_fail env OS_REGION_NAME=Nowhere "$IMG" publish "$ID" --to openstack 2>err &&
	grep_one "no public image service endpoint in region .Nowhere. \(it has: .RegionOne., .RegionTwo.\): set OS_REGION_NAME" err &&
	test_must_fail env -u OS_REGION_NAME "$IMG" publish "$ID" --to openstack 2>err &&
	grep_one "in several regions .*: set OS_REGION_NAME" err &&
	"$IMG" publish "$ID" --to openstack --region RegionTwo --name tiny-os >out 2>err &&
	test "$(cat out)" = "$(cat queued)"
'

test_expect_success 'an application credential from clouds.yaml (OS_CLOUD), raw format' '
	admin_env &&
	openstack application credential create imgforge-test -f json >ac.json &&
	acid=$(jq_py "d[\"id\"]" <ac.json) && acsecret=$(jq_py "d[\"secret\"]" <ac.json) &&
	mkdir -p "$HOME/.config/openstack" &&
	cat >"$HOME/.config/openstack/clouds.yaml" <<-EOF &&
	clouds:
	  ovh-like:
	    auth_type: v3applicationcredential
	    auth:
	      auth_url: $KS
	      application_credential_id: "$acid"
	      application_credential_secret: "$acsecret"
	    region_name: RegionOne
	EOF
	env -u OS_AUTH_URL -u OS_USERNAME -u OS_PASSWORD -u OS_PROJECT_NAME -u OS_REGION_NAME \
		-u OS_USER_DOMAIN_NAME -u OS_PROJECT_DOMAIN_NAME OS_CLOUD=ovh-like \
		"$IMG" publish "$ID" --to openstack --format raw --name tiny-raw >out 2>err &&
	iid=$(cat out) &&
	openstack image show "$iid" -f value -c status -c disk_format -c size >shown &&
	printf "%s\n" raw "$(stat -c %s bout/disk.raw)" active | diff - shown &&
	! grep -r -l -a "$acsecret" "$CACHE" out err &&
	test "$(build_images | grep -c .)" = 2 &&
	test_must_fail env -u OS_AUTH_URL -u OS_USERNAME -u OS_PASSWORD -u OS_PROJECT_NAME \
		OS_CLOUD=ovh-like OS_APPLICATION_CREDENTIAL_SECRET=wrong \
		"$IMG" publish "$ID" --to openstack --name x 2>err &&
	grep_one "^error: publish: keystone at .* refused the credentials from .*clouds.yaml., cloud .ovh-like.: HTTP 401 .*check OS_APPLICATION_CREDENTIAL_ID" err
'

test_done
