# The cloud peers of the publish tests, for tests/e2e/t7*.sh (sourced after
# tests/e2e/lib.sh; see tests/helpers/README.md):
#
#	. "$SRCDIR/tests/helpers/cloud-peers.sh"
#	trap 'cloud_peers_stop; cd /; rm -rf "$TEST_DIR"' EXIT
#	s3rver_start || ...            # S3_URL, S3_PORT (s3rver itself)
#	fake_aws_start [OPTION...]     # FAKE_AWS_URL, FAKE_AWS_LOG, FAKE_S3_URL,
#	                               # FAKE_S3_LOG, AWS_* exported
#	fake_scaleway_start [OPTION...]  # FAKE_SCW_URL, FAKE_SCW_LOG, FAKE_SCW_S3_URL,
#	                               # FAKE_SCW_S3_LOG, SCW_* exported
#
# Call them at the top level of the test script (test bodies are subshells):
# each writes its pid to $TEST_DIR/<name>.pid, and cloud_peers_stop ends
# those, and only those. Each returns non-zero with one line saying what is
# missing (s3rver: `make deps`; botocore: python3-botocore) when it cannot
# start. The fakes' options are in their own headers.

# The test key pairs. Not secrets: the peers accept these and nothing else.
CLOUD_AWS_ACCESS_KEY=AKIAIMGFORGETEST0001
CLOUD_AWS_SECRET_KEY=imgforge/test/secret/key/not/a/real/one0
CLOUD_AWS_REGION=us-east-1
CLOUD_S3_ACCESS_KEY=S3RVER
CLOUD_S3_SECRET_KEY=S3RVER
CLOUD_SCW_ACCESS_KEY=SCWIMGFORGETEST0001
CLOUD_SCW_SECRET_KEY=11111111-2222-4333-8444-555555555555
CLOUD_SCW_PROJECT=66666666-7777-4888-9999-aaaaaaaaaaaa

# PY_BOTO: a python3 interpreter (itself, not a wrapper: $! must be the
# server) that imports botocore.
cloud_python() {
	[ -n "${PY_BOTO:-}" ] && return 0
	local py
	for py in python3 /usr/bin/python3; do
		py=$(command -v "$py" 2>/dev/null) || continue
		if "$py" -c 'import botocore' 2>/dev/null; then
			PY_BOTO=$("$py" -c 'import sys; print(sys.executable)')
			return 0
		fi
	done
	echo "cloud-peers: no python3 with botocore: install the Debian package python3-botocore (make deps does)" >&2
	return 1
}

# Wait for a port file, at most 10 s (or TENTHS/10 s); the port on stdout.
cloud_wait_port() { # file pidfile what [tenths]
	local i
	for i in $(seq "${4:-100}"); do
		[ -s "$1" ] && { cat "$1"; return 0; }
		kill -0 "$(cat "$2")" 2>/dev/null || break
		sleep 0.1
	done
	echo "cloud-peers: $3 did not start:" >&2
	return 1
}

# The directory `make deps` installed s3rver in (its node_modules/s3rver),
# else $S3RVER_DIR.
cloud_s3rver_dir() {
	local d
	for d in "${S3RVER_DIR:-}" "$SRCDIR/build/tools/s3rver"; do
		[ -n "$d" ] && [ -f "$d/node_modules/s3rver/package.json" ] && { echo "$d"; return 0; }
	done
	echo "cloud-peers: s3rver is missing: run 'make deps' (it installs s3rver from npm in build/tools/s3rver)" >&2
	return 1
}

# s3rver on loopback (tests/helpers/s3rver.js), knowing the AWS and Scaleway
# test key pairs and its own, its data in $TEST_DIR/s3rver; S3_PORT, S3_URL.
# s3rver checks access keys, not signatures: the S3 endpoints the fakes'
# starters export are fake-aws.py's SigV4-checking fronts before it.
s3rver_start() {
	local dir
	dir=$(cloud_s3rver_dir) || return 1
	command -v node >/dev/null || { echo "cloud-peers: node is missing: run 'make deps'" >&2; return 1; }
	mkdir -p "$TEST_DIR/s3rver"
	rm -f "$TEST_DIR/s3rver.port"
	node "$SRCDIR/tests/helpers/s3rver.js" "$dir" "$TEST_DIR/s3rver" "$TEST_DIR/s3rver.port" \
		"$CLOUD_AWS_ACCESS_KEY" "$CLOUD_AWS_SECRET_KEY" "$CLOUD_SCW_ACCESS_KEY" "$CLOUD_SCW_SECRET_KEY" \
		>"$TEST_DIR/s3rver.out" 2>&1 &
	echo $! >"$TEST_DIR/s3rver.pid"
	S3_PORT=$(cloud_wait_port "$TEST_DIR/s3rver.port" "$TEST_DIR/s3rver.pid" s3rver 300) ||
		{ cat "$TEST_DIR/s3rver.out" >&2; return 1; }
	S3_URL=http://127.0.0.1:$S3_PORT
}

# A SigV4-checking S3 front (fake-aws.py --s3-front-port-file) before
# s3rver, for a key pair (and more --extra-key AK:SK) and a region; its URL
# on stdout.
cloud_s3_front() { # name access-key secret-key region [option...]
	local name=$1 ak=$2 sk=$3 region=$4
	shift 4
	rm -f "$TEST_DIR/$name.port" "$TEST_DIR/$name-api.port"
	"$PY_BOTO" "$SRCDIR/tests/helpers/fake-aws.py" --port-file "$TEST_DIR/$name-api.port" \
		--s3-front-port-file "$TEST_DIR/$name.port" --log "$TEST_DIR/$name.log" --s3-endpoint "$S3_URL" \
		--access-key "$ak" --secret-key "$sk" --region "$region" --fail-file "$TEST_DIR/$name.fail" \
		"$@" >"$TEST_DIR/$name.out" 2>&1 &
	echo $! >"$TEST_DIR/$name.pid"
	# Fronts of any name are stopped by cloud_peers_stop.
	echo "$TEST_DIR/$name.pid" >>"$TEST_DIR/cloud-peers.pids"
	local port
	port=$(cloud_wait_port "$TEST_DIR/$name.port" "$TEST_DIR/$name.pid" "the S3 front") ||
		{ cat "$TEST_DIR/$name.out" >&2; return 1; }
	echo "http://127.0.0.1:$port"
}

# fake-aws.py (EC2 and EBS on one port), reading objects from s3rver when it
# runs. Exports the key pair, the region and AWS_ENDPOINT_URL_EC2/_EBS (and
# _S3 when s3rver runs) as the AWS CLI and SDKs read them.
fake_aws_start() {
	cloud_python || return 1
	# The key pair and region in force, the caller's options winning: the S3
	# front takes the same ones, as one AWS key pair serves S3 and EC2.
	local ak=$CLOUD_AWS_ACCESS_KEY sk=$CLOUD_AWS_SECRET_KEY region=$CLOUD_AWS_REGION a prev=
	for a in "$@"; do
		case $prev in
		--access-key) ak=$a ;;
		--secret-key) sk=$a ;;
		--region) region=$a ;;
		esac
		prev=$a
	done
	rm -f "$TEST_DIR/fake-aws.port"
	FAKE_AWS_LOG=$TEST_DIR/fake-aws.log
	"$PY_BOTO" "$SRCDIR/tests/helpers/fake-aws.py" --port-file "$TEST_DIR/fake-aws.port" \
		--log "$FAKE_AWS_LOG" ${S3_URL:+--s3-endpoint "$S3_URL"} \
		--access-key "$CLOUD_AWS_ACCESS_KEY" --secret-key "$CLOUD_AWS_SECRET_KEY" \
		--region "$CLOUD_AWS_REGION" --s3-access-key "$CLOUD_S3_ACCESS_KEY" \
		--s3-secret-key "$CLOUD_S3_SECRET_KEY" "$@" >"$TEST_DIR/fake-aws.out" 2>&1 &
	echo $! >"$TEST_DIR/fake-aws.pid"
	FAKE_AWS_PORT=$(cloud_wait_port "$TEST_DIR/fake-aws.port" "$TEST_DIR/fake-aws.pid" fake-aws.py) ||
		{ cat "$TEST_DIR/fake-aws.out" >&2; return 1; }
	FAKE_AWS_URL=http://127.0.0.1:$FAKE_AWS_PORT
	export AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk
	export AWS_REGION=$region AWS_DEFAULT_REGION=$region
	export AWS_ENDPOINT_URL_EC2=$FAKE_AWS_URL AWS_ENDPOINT_URL_EBS=$FAKE_AWS_URL
	if [ -n "${S3_URL:-}" ]; then
		FAKE_S3_URL=$(cloud_s3_front fake-aws-s3 "$ak" "$sk" "$region") || return 1
		FAKE_S3_LOG=$TEST_DIR/fake-aws-s3.log
		export AWS_ENDPOINT_URL_S3=$FAKE_S3_URL
	fi
	# Nothing from the invoking user's AWS setup may leak in.
	export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
	unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL
}

# fake-scaleway.py; exports SCW_API_URL, the key pair, the project, a zone
# and SCW_S3_ENDPOINT when s3rver runs.
fake_scaleway_start() {
	cloud_python || return 1
	rm -f "$TEST_DIR/fake-scaleway.port"
	FAKE_SCW_LOG=$TEST_DIR/fake-scaleway.log
	"$PY_BOTO" "$SRCDIR/tests/helpers/fake-scaleway.py" --port-file "$TEST_DIR/fake-scaleway.port" \
		--log "$FAKE_SCW_LOG" ${S3_URL:+--s3-endpoint "$S3_URL"} \
		--secret-key "$CLOUD_SCW_SECRET_KEY" --project "$CLOUD_SCW_PROJECT" \
		--s3-access-key "$CLOUD_S3_ACCESS_KEY" --s3-secret-key "$CLOUD_S3_SECRET_KEY" \
		"$@" >"$TEST_DIR/fake-scaleway.out" 2>&1 &
	echo $! >"$TEST_DIR/fake-scaleway.pid"
	FAKE_SCW_PORT=$(cloud_wait_port "$TEST_DIR/fake-scaleway.port" "$TEST_DIR/fake-scaleway.pid" fake-scaleway.py) ||
		{ cat "$TEST_DIR/fake-scaleway.out" >&2; return 1; }
	FAKE_SCW_URL=http://127.0.0.1:$FAKE_SCW_PORT
	export SCW_API_URL=$FAKE_SCW_URL SCW_ACCESS_KEY=$CLOUD_SCW_ACCESS_KEY
	export SCW_SECRET_KEY=$CLOUD_SCW_SECRET_KEY SCW_DEFAULT_PROJECT_ID=$CLOUD_SCW_PROJECT
	export SCW_DEFAULT_ORGANIZATION_ID=$CLOUD_SCW_PROJECT SCW_DEFAULT_ZONE=fr-par-1 SCW_DEFAULT_REGION=fr-par
	if [ -n "${S3_URL:-}" ]; then
		# S3RVER with the Scaleway secret too: tests written when s3rver knew
		# no other access key sign with it.
		FAKE_SCW_S3_URL=$(cloud_s3_front fake-scaleway-s3 "$CLOUD_SCW_ACCESS_KEY" "$CLOUD_SCW_SECRET_KEY" \
			fr-par --extra-key "S3RVER:$CLOUD_SCW_SECRET_KEY") || return 1
		FAKE_SCW_S3_LOG=$TEST_DIR/fake-scaleway-s3.log
		export SCW_S3_ENDPOINT=$FAKE_SCW_S3_URL
	fi
	unset SCW_PROFILE
	export SCW_CONFIG_PATH=/dev/null
}

cloud_peers_stop() {
	local f pid
	for f in "$TEST_DIR"/fake-aws.pid "$TEST_DIR"/fake-aws-s3.pid "$TEST_DIR"/fake-scaleway.pid \
		"$TEST_DIR"/fake-scaleway-s3.pid "$TEST_DIR"/s3rver.pid \
		$(cat "$TEST_DIR/cloud-peers.pids" 2>/dev/null); do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		# A front started in a command substitution is not this shell's
		# child: wait for it by its pid.
		kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null ||
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; }
		rm -f "$f"
	done
	rm -f "$TEST_DIR/cloud-peers.pids"
	true
}
