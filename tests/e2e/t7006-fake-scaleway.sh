#!/bin/bash
# fake-scaleway.py, the publish tests' Scaleway Instance and Block APIs
# (tests/helpers/README.md), driven by curl, reading QCOW2 images from a real
# S3 peer (s3rver). Each refusal the real API makes and the publish client
# must meet is checked, so a fake that accepts anything fails here.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/helpers/cloud-peers.sh"
trap 'cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT

have_s3=1
s3rver_start 2>s3rver.err || { have_s3=0; sed 's/^/# /' s3rver.err; }
no_s3="s3rver is not installed (make deps installs it in build/tools/s3rver)"
fake_scaleway_start --data-dir "$TEST_DIR/scw-data" --import-polls 2 2>err ||
	{ echo "not ok 1 - $(cat err)"; echo "1..1"; exit 1; }

# scw METHOD PATH [JSON]: status in ./status, body in ./body.
scw() {
	local m=$1 p=$2
	shift 2
	curl -s -o body -w "%{http_code}" -X "$m" -H "X-Auth-Token: $SCW_SECRET_KEY" \
		${1:+-H "Content-Type: application/json" --data "$1"} "$SCW_API_URL$p" >status
}
status_is() { test "$(cat status)" = "$1" || { echo "status $(cat status), expected $1:"; cat body; return 1; }; }
has() { grep -qF -- "$1" body || { echo "no '$1' in:"; cat body; return 1; }; }
# The first "id" of the body: the snapshot's or image's own (it comes first).
first_id() { grep -o '"id": "[0-9a-f-]*"' body | head -1 | cut -d'"' -f4; }
Z=/instance/v1/zones/fr-par-1
B=/block/v1alpha1/zones/fr-par-1
snap_body() { # name key [volume_type]
	echo "{\"name\": \"$1\", \"project\": \"$SCW_DEFAULT_PROJECT_ID\", \"volume_type\": \"${3:-b_ssd}\",
		\"bucket\": \"images\", \"key\": \"$2\", \"size\": 10737418240}"
}
# Poll GET PATH until the body no longer holds STATE-FIELD: "TRANSIENT".
poll() { # path field transient
	local i
	for i in $(seq 100); do
		scw GET "$1" && grep -qF "\"$2\": \"$3\"" body || return 0
		sleep 0.1
	done
	echo "$1 still $3"; return 1
}

# curl's own SigV4 (libcurl's, --aws-sigv4) with Scaleway's key pair, through
# the SigV4-checking front before s3rver. S3 requires x-amz-content-sha256,
# which curl 7.88 does not add itself.
s3put() { # file key [secret]
	curl -s -o body -w "%{http_code}" --aws-sigv4 "aws:amz:fr-par:s3" \
		--user "$SCW_ACCESS_KEY:${3:-$SCW_SECRET_KEY}" \
		-H "x-amz-content-sha256: $(sha256sum <"$1" | cut -c1-64)" -T "$1" "$SCW_S3_ENDPOINT/images/$2" >status
}

test_expect_success 'setup: a QCOW2 disk and a raw one in the S3 peer, signed by curl' '
	require_tool qemu-img qemu-utils &&
	head -c 1048576 /dev/urandom >disk.raw && truncate -s 4M disk.raw &&
	qemu-img convert -f raw -O qcow2 disk.raw disk.qcow2 &&
	if [ $have_s3 = 1 ]; then
		curl -s -o body -w "%{http_code}" --aws-sigv4 "aws:amz:fr-par:s3" -X PUT \
			--user "$SCW_ACCESS_KEY:$SCW_SECRET_KEY" -H "x-amz-content-sha256: $(sha256sum </dev/null | cut -c1-64)" \
			"$SCW_S3_ENDPOINT/images" >status && status_is 200 &&
		s3put disk.qcow2 disk.qcow2 && status_is 200 &&
		s3put disk.raw disk.raw && status_is 200 &&
		s3put disk.raw other wrong && status_is 403 && has "<Code>SignatureDoesNotMatch</Code>"
	fi
'

test_expect_success 'a missing or wrong X-Auth-Token is refused: 401 denied_authentication' '
	curl -s -o body -w "%{http_code}" "$SCW_API_URL$Z/images" >status &&
	status_is 401 && has "\"type\": \"denied_authentication\"" && has "\"method\": \"api_key\"" &&
	curl -s -o body -w "%{http_code}" -H "X-Auth-Token: 11111111-2222-4333-8444-000000000000" \
		"$SCW_API_URL$Z/images" >status &&
	status_is 401 && has "\"type\": \"denied_authentication\"" &&
	scw GET $Z/images && status_is 200 && has "\"images\": []"
'

test_expect_success 'bad arguments, another project, an unknown zone or snapshot are refused' '
	scw POST $Z/snapshots "{\"name\": \"s\", \"project\": \"$SCW_DEFAULT_PROJECT_ID\", \"volume_type\": \"b_ssd\", \"size\": 1024}" &&
	status_is 400 && has "\"type\": \"invalid_arguments\"" && has "\"argument_name\": \"bucket\"" &&
	scw POST $Z/snapshots "$(snap_body s disk.qcow2 sbs_volume)" &&
	status_is 400 && has "\"argument_name\": \"volume_type\"" &&
	scw POST $Z/snapshots "{\"name\": \"s\", \"project\": \"$SCW_DEFAULT_PROJECT_ID\", \"volume_type\": \"b_ssd\",
		\"bucket\": \"images\", \"key\": \"disk.qcow2\", \"size\": 1000}" &&
	status_is 400 && has "\"argument_name\": \"size\"" &&
	scw POST $Z/snapshots "{\"name\": \"s\", \"project\": \"66666666-7777-4888-9999-000000000000\", \"volume_type\": \"b_ssd\",
		\"bucket\": \"images\", \"key\": \"disk.qcow2\", \"size\": 10737418240}" &&
	status_is 403 && has "\"type\": \"permissions_denied\"" &&
	scw GET /instance/v1/zones/xx-yyy-1/images && status_is 400 && has "\"argument_name\": \"zone\"" &&
	scw GET $Z/snapshots/00000000-0000-4000-8000-000000000000 &&
	status_is 404 && has "\"type\": \"not_found\"" && has "\"resource\": \"instance_snapshot\"" &&
	scw POST $Z/images "{\"name\": \"i\", \"root_volume\": \"00000000-0000-4000-8000-000000000000\",
		\"arch\": \"x86_64\", \"project\": \"$SCW_DEFAULT_PROJECT_ID\"}" && status_is 404 &&
	scw POST $Z/images "{\"name\": \"i\", \"arch\": \"x86_64\", \"project\": \"$SCW_DEFAULT_PROJECT_ID\"}" &&
	status_is 400 && has "\"argument_name\": \"root_volume\""
'

if [ $have_s3 = 1 ]; then
	test_expect_success 'a QCOW2 import: importing, then available with the disk'"'"'s data; an image of it' '
		scw POST $Z/snapshots "$(snap_body imgforge-s1 disk.qcow2)" && status_is 201 &&
		has "\"state\": \"importing\"" && has "\"task\": {" && sid=$(first_id) && test -n "$sid" &&
		scw POST $Z/images "{\"name\": \"imgforge-demo\", \"root_volume\": \"$sid\", \"arch\": \"x86_64\",
			\"project\": \"$SCW_DEFAULT_PROJECT_ID\", \"public\": false, \"tags\": [\"imgforge\", \"build=b1\"]}" &&
		status_is 409 && has "\"type\": \"transient_state\"" &&
		poll $Z/snapshots/$sid state importing && has "\"state\": \"available\"" &&
		cmp disk.raw scw-data/$sid.raw &&
		scw POST $Z/images "{\"name\": \"imgforge-demo\", \"root_volume\": \"$sid\", \"arch\": \"x86_64\",
			\"project\": \"$SCW_DEFAULT_PROJECT_ID\", \"public\": false, \"tags\": [\"imgforge\", \"build=b1\"]}" &&
		status_is 201 && has "\"volume_type\": \"b_ssd\"" && iid=$(first_id) && test -n "$iid" &&
		scw GET "$Z/images?tags=build=b1" && status_is 200 && has "\"id\": \"$iid\"" &&
		scw GET "$Z/images?tags=build=b2" && has "\"images\": []" &&
		poll $Z/images/$iid state creating && has "\"state\": \"available\"" &&
		scw DELETE $Z/snapshots/$sid && status_is 412 &&
		scw DELETE $Z/images/$iid && status_is 204 && scw DELETE $Z/snapshots/$sid && status_is 204
	'

	test_expect_success 'a Block API import gives an image whose root volume is an sbs_snapshot' '
		scw POST $B/snapshots/import-from-object-storage "{\"name\": \"imgforge-b1\",
			\"project_id\": \"$SCW_DEFAULT_PROJECT_ID\", \"bucket\": \"images\", \"key\": \"disk.qcow2\"}" &&
		status_is 201 && has "\"status\": \"creating\"" && has "\"class\": \"sbs\"" && bid=$(first_id) &&
		poll $B/snapshots/$bid status creating && has "\"status\": \"available\"" && has "\"size\": 4194304" &&
		scw POST $Z/images "{\"name\": \"imgforge-demo-sbs\", \"root_volume\": \"$bid\", \"arch\": \"x86_64\",
			\"project\": \"$SCW_DEFAULT_PROJECT_ID\"}" &&
		status_is 201 && has "\"volume_type\": \"sbs_snapshot\""
	'

	test_expect_success 'an object that is not QCOW2, or is missing, ends in state error' '
		for key in disk.raw nosuch.qcow2; do
			scw POST $Z/snapshots "$(snap_body bad $key)" && status_is 201 && sid=$(first_id) &&
			poll $Z/snapshots/$sid state importing && has "\"state\": \"error\"" &&
			! has "\"error_reason\": null" || exit 1
		done &&
		scw POST $B/snapshots/import-from-object-storage "{\"name\": \"bad\",
			\"project_id\": \"$SCW_DEFAULT_PROJECT_ID\", \"bucket\": \"images\", \"key\": \"disk.raw\"}" &&
		bid=$(first_id) && poll $B/snapshots/$bid status creating && has "\"status\": \"error\""
	'
else
	test_skip 'snapshot imports read from the S3 peer' "$no_s3"
fi

test_expect_success 'the request log names each call, never the token' '
	grep -q "\"action\": \"CreateSnapshot\"" "$FAKE_SCW_LOG" &&
	grep -q "\"error\": \"denied_authentication\"" "$FAKE_SCW_LOG" &&
	! grep -q "$SCW_SECRET_KEY" "$FAKE_SCW_LOG"
'

test_done
