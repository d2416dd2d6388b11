# Offsite copies of the backups (sourced by appliance-backup and
# appliance-restore): an S3-compatible object store reached with curl's own
# SigV4 signing (--aws-sigv4), path-style URLs (ENDPOINT/BUCKET/KEY), and
# ListObjectsV2 answers read with Python's XML parser.
#
# The store and its credentials are never in the image: they are read from
# $BACKUP_OFFSITE_CONF (/data/backups/offsite.env, written by cloud-init's
# write_files from the user-data, or by an operator), lines NAME=VALUE:
#
#   OFFSITE_URL=s3://BUCKET/PREFIX
#   OFFSITE_ENDPOINT=https://s3.eu-west-3.amazonaws.com
#   OFFSITE_REGION=eu-west-3
#   OFFSITE_ACCESS_KEY_ID=...
#   OFFSITE_SECRET_ACCESS_KEY=...
#
# The secret key reaches curl on its standard input (-K -), never on its
# command line, where any user could read it in ps.
#
#   offsite_load [URL]          read the settings (URL overrides OFFSITE_URL); 1: not configured,
#                               2: a bad file (with its message in $offsite_err)
#   offsite_list FILE           the keys under the prefix into FILE, one a line ("KEY SIZE"), sorted
#   offsite_put FILE KEY        upload FILE as KEY
#   offsite_get KEY FILE        download KEY into FILE
#   offsite_delete KEY
# Each returns non-zero with one line in $offsite_err on failure.

: "${BACKUP_OFFSITE_CONF:=/data/backups/offsite.env}"
offsite_err=

offsite_load() { # [s3://BUCKET/PREFIX]
	OFFSITE_URL= OFFSITE_ENDPOINT= OFFSITE_REGION= OFFSITE_ACCESS_KEY_ID= OFFSITE_SECRET_ACCESS_KEY=
	[ -f "$BACKUP_OFFSITE_CONF" ] || { offsite_err="$BACKUP_OFFSITE_CONF does not exist"; return 1; }
	_n=0 _cr=$(printf '\r')
	while IFS= read -r _line || [ -n "$_line" ]; do
		_n=$((_n + 1))
		_line=${_line%"$_cr"}  # a file written on Windows
		case $_line in '' | '#'*) continue ;; esac
		_k=${_line%%=*} _v=${_line#*=}
		# Values may be quoted as in a shell file; nothing is expanded.
		case $_v in \"*\") _v=${_v#\"} _v=${_v%\"} ;; \'*\') _v=${_v#\'} _v=${_v%\'} ;; esac
		case $_k in
		OFFSITE_URL | OFFSITE_ENDPOINT | OFFSITE_REGION | OFFSITE_ACCESS_KEY_ID | OFFSITE_SECRET_ACCESS_KEY)
			[ "$_k" != "$_line" ] || { offsite_err="$BACKUP_OFFSITE_CONF:$_n: expected NAME=VALUE"; return 2; }
			eval "$_k=\$_v" ;;
		*)
			offsite_err="$BACKUP_OFFSITE_CONF:$_n: unknown setting '$_k' (known: OFFSITE_URL, OFFSITE_ENDPOINT, OFFSITE_REGION, OFFSITE_ACCESS_KEY_ID, OFFSITE_SECRET_ACCESS_KEY)"
			return 2 ;;
		esac
	done <"$BACKUP_OFFSITE_CONF"
	[ -z "${1:-}" ] || OFFSITE_URL=$1
	for _k in OFFSITE_URL OFFSITE_ENDPOINT OFFSITE_REGION OFFSITE_ACCESS_KEY_ID OFFSITE_SECRET_ACCESS_KEY; do
		eval "_v=\$$_k"
		[ -n "$_v" ] || { offsite_err="$BACKUP_OFFSITE_CONF: $_k is not set"; return 2; }
	done
	case $OFFSITE_URL in
	s3://?*) ;;
	*) offsite_err="'$OFFSITE_URL' is not an s3://BUCKET[/PREFIX] URL"; return 2 ;;
	esac
	_p=${OFFSITE_URL#s3://}
	OFFSITE_BUCKET=${_p%%/*}
	OFFSITE_PREFIX=${_p#"$OFFSITE_BUCKET"}
	OFFSITE_PREFIX=${OFFSITE_PREFIX#/}
	OFFSITE_PREFIX=${OFFSITE_PREFIX%/}
	# Keys are put into URLs as they are: only characters that need no encoding.
	if printf '%s' "$OFFSITE_BUCKET" | grep -q '[^a-z0-9.-]' ||
		printf '%s' "$OFFSITE_PREFIX" | grep -q '[^A-Za-z0-9._/-]'; then
		offsite_err="'$OFFSITE_URL': the bucket may use a-z 0-9 . - and the prefix A-Z a-z 0-9 . _ - /"
		return 2
	fi
	case $OFFSITE_ENDPOINT in
	http://?* | https://?*) OFFSITE_ENDPOINT=${OFFSITE_ENDPOINT%/} ;;
	*) offsite_err="$BACKUP_OFFSITE_CONF: OFFSITE_ENDPOINT '$OFFSITE_ENDPOINT' is not an http(s):// URL"; return 2 ;;
	esac
	OFFSITE_KEYPREFIX=${OFFSITE_PREFIX:+$OFFSITE_PREFIX/}
	return 0
}

# _offsite_curl OUT PAYLOAD-SHA256 CURL-ARGS... : one signed request; the
# answer's body in OUT. S3's error code (or curl's message) in $offsite_err.
_offsite_curl() {
	_out=$1 _sha=$2
	shift 2
	_code=$(printf 'user = "%s:%s"\n' \
		"$(printf '%s' "$OFFSITE_ACCESS_KEY_ID" | sed 's/[\\"]/\\&/g')" \
		"$(printf '%s' "$OFFSITE_SECRET_ACCESS_KEY" | sed 's/[\\"]/\\&/g')" |
		curl -sS -K - --aws-sigv4 "aws:amz:$OFFSITE_REGION:s3" \
			-H "x-amz-content-sha256: $_sha" --connect-timeout 20 --retry 2 \
			-o "$_out" -w '%{http_code}' "$@" 2>"$_out.err") || {
		offsite_err=$(head -n 1 "$_out.err")
		rm -f "$_out.err"
		return 1
	}
	rm -f "$_out.err"
	case $_code in 2??) return 0 ;; esac
	offsite_err="HTTP $_code $(python3 -c '
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    print(" ".join(x for x in (r.findtext("Code"), r.findtext("Message")) if x))
except Exception:
    pass
' "$_out" 2>/dev/null)"
	return 1
}

_offsite_empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855

offsite_put() { # FILE KEY
	_t=$(mktemp) || return 1
	_offsite_curl "$_t" "$(sha256sum <"$1" | cut -d' ' -f1)" -T "$1" \
		"$OFFSITE_ENDPOINT/$OFFSITE_BUCKET/$2"
	_rc=$?
	rm -f "$_t"
	return $_rc
}

offsite_get() { # KEY FILE
	_offsite_curl "$2" $_offsite_empty_sha "$OFFSITE_ENDPOINT/$OFFSITE_BUCKET/$1"
}

offsite_delete() { # KEY
	_t=$(mktemp) || return 1
	_offsite_curl "$_t" $_offsite_empty_sha -X DELETE "$OFFSITE_ENDPOINT/$OFFSITE_BUCKET/$1"
	_rc=$?
	rm -f "$_t"
	return $_rc
}

# ListObjectsV2, page after page. The query's parameters are sent sorted and
# encoded, as SigV4's canonical request has them: curl signs the query as it
# is written.
offsite_list() { # FILE
	_t=$(mktemp) || return 1
	_token=
	: >"$1.tmp"
	while :; do
		_q="list-type=2&prefix=$(_offsite_quote "$OFFSITE_KEYPREFIX")"
		[ -z "$_token" ] || _q="continuation-token=$(_offsite_quote "$_token")&$_q"
		_offsite_curl "$_t" $_offsite_empty_sha "$OFFSITE_ENDPOINT/$OFFSITE_BUCKET?$_q" ||
			{ rm -f "$_t" "$1.tmp"; return 1; }
		_token=$(python3 -c '
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
ns = r.tag[:r.tag.index("}") + 1] if r.tag.startswith("{") else ""
with open(sys.argv[2], "a") as out:
    for c in r.findall(ns + "Contents"):
        print(c.findtext(ns + "Key"), c.findtext(ns + "Size"), file=out)
if r.findtext(ns + "IsTruncated") == "true":
    print(r.findtext(ns + "NextContinuationToken") or "")
' "$_t" "$1.tmp") || {
			offsite_err="the answer to a listing of $OFFSITE_URL is not a ListBucketResult"
			rm -f "$_t" "$1.tmp"
			return 1
		}
		[ -n "$_token" ] || break
	done
	rm -f "$_t"
	sort "$1.tmp" >"$1" && rm -f "$1.tmp"
}

_offsite_quote() {
	python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe="-_.~"))' "$1"
}
