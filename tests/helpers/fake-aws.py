#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stand-in for the AWS EC2 Query API and the EBS direct APIs, for imgforge's
publish tests, on loopback only.

    fake-aws.py --port-file FILE [--log FILE] [--s3-endpoint URL]
                [--access-key AK] [--secret-key SK] [--region R]
                [--s3-access-key AK] [--s3-secret-key SK]
                [--import-polls N] [--data-dir DIR] [--account ID]
                [--extra-key AK:SK]... [--s3-front-port-file FILE]

EC2 and EBS answer on one port (point both AWS_ENDPOINT_URL_EC2 and
AWS_ENDPOINT_URL_EBS at it): a request to /snapshots... is an EBS direct API
call, anything else an EC2 Query API call (Action=... in a form-encoded body
or the query string). Which service a request was signed for is read from
its credential scope, and must match.

Every request's SigV4 signature is recomputed with botocore over the
received method, path, query, the headers the client listed in SignedHeaders
and the body (or its X-Amz-Content-SHA256, which must then be the body's hash
or UNSIGNED-PAYLOAD where the service allows it), with the request's own
X-Amz-Date, for the one key pair given. Refusals are those of AWS:

    EC2:  AuthFailure (401) for a missing Authorization or an unknown key,
          SignatureDoesNotMatch (403), RequestExpired (400) past 15 minutes
          of skew, UnknownParameter, MissingParameter, InvalidParameterValue,
          InvalidAction, Invalid*.NotFound / .Malformed (400), XML errors
          <Response><Errors><Error><Code/><Message/></Error></Errors>
          <RequestID/></Response>.
    EBS:  MissingAuthenticationTokenException, UnrecognizedClientException,
          InvalidSignatureException (403), ValidationException (400, with a
          Reason), ResourceNotFoundException (404): JSON {"message": ...}
          with the x-amzn-ErrorType header.

ImportSnapshot reads the object from the S3 peer (--s3-endpoint, path-style,
signed with --s3-access-key/--s3-secret-key) the way VM Import would, checks
its header against DiskContainer.Format (VMDK: "KDMV" and
createType="streamOptimized"; VHD: the "conectix" footer; RAW: none of
these) and the task goes active -> completed over --import-polls
DescribeImportSnapshotTasks answers, or ends "deleted" with a
"ClientError: ..." StatusMessage. With --data-dir and qemu-img on PATH, the
object is also converted to DIR/<snapshot-id>.raw by qemu-img (a real check
that the file is a well-formed image); snapshots written with the EBS direct
APIs land in DIR/<snapshot-id>.raw block by block.

Each request is appended to --log as one JSON object per line:
    {"service": "ec2"|"ebs", "action": "ImportSnapshot", "params": {...},
     "status": 200, "error": null|"ErrorCode"}
params are the Query parameters (without Action, Version and the signature),
for EBS the path parameters, the x-amz-* headers and the JSON body; never a
secret key, nor block data.
"""
import argparse
import base64
import datetime
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

try:
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials
    import botocore.session
    from botocore.config import Config
except ImportError:
    sys.stderr.write("fake-aws.py: python3-botocore is missing: apt-get install python3-botocore\n")
    sys.exit(2)

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
EC2_VERSION = "2016-11-15"
BLOCK = 512 * 1024
MAX_SKEW = 15 * 60

args = None
lock = threading.Lock()
log_lock = threading.Lock()
state = {
    "import_tasks": {},  # import-snap-... -> task dict
    "snapshots": {},  # snap-... -> snapshot dict
    "images": {},  # ami-... -> image dict
    "client_tokens": {},  # (action, token) -> result id
}


def new_id(prefix):
    return prefix + "-0" + secrets.token_hex(8)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class ApiError(Exception):
    def __init__(self, status, code, message, reason=None):
        super().__init__(message)
        self.status, self.code, self.message, self.reason = status, code, message, reason


# --- SigV4 --------------------------------------------------------------------


class VerifyingSigV4(botocore.auth.SigV4Auth):
    """botocore's SigV4 signer, restricted to the headers the client signed."""

    def __init__(self, credentials, service, region, signed):
        super().__init__(credentials, service, region)
        self.signed = signed

    def headers_to_sign(self, request):
        hm = botocore.auth.HTTPHeaders()
        for name, value in request.headers.items():
            if name.lower() in self.signed:
                hm[name.lower()] = value
        return hm


AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$"
)


def auth_error(service, kind, detail=""):
    """The answer AWS gives, per protocol, for each way a signature fails."""
    if service == "ec2":
        if kind in ("missing", "unknown-key", "malformed"):
            msg = "AWS was not able to validate the provided access credentials"
            return ApiError(401, "AuthFailure", msg)
        if kind == "expired":
            return ApiError(400, "RequestExpired", "Request has expired." + detail)
        return ApiError(403, "SignatureDoesNotMatch",
                        "The request signature we calculated does not match the signature you "
                        "provided. Check your AWS Secret Access Key and signing method. Consult "
                        "the service documentation for details." + detail)
    if kind == "missing":
        return ApiError(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    if kind == "malformed":
        return ApiError(403, "IncompleteSignatureException",
                        "Authorization header requires 'Credential', 'Signature' and "
                        "'SignedHeaders' parameters." + detail)
    if kind == "unknown-key":
        return ApiError(403, "UnrecognizedClientException",
                        "The security token included in the request is invalid.")
    if kind == "expired":
        return ApiError(403, "InvalidSignatureException", "Signature expired" + detail)
    return ApiError(403, "InvalidSignatureException",
                    "The request signature we calculated does not match the signature you "
                    "provided. Check your AWS Secret Access Key and signing method. Consult the "
                    "service documentation for details." + detail)


def verify_sigv4(handler, service, body, unsigned_ok):
    h = handler.headers
    auth = h.get("Authorization")
    if not auth:
        raise auth_error(service, "missing")
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise auth_error(service, "malformed")
    akid, day, region, svc, signed, sig = m.groups()
    if akid not in args.keys:
        raise auth_error(service, "unknown-key")
    if h.get("X-Amz-Security-Token") is not None:
        # The test key pair is a long-term one: AWS refuses a session token with it.
        raise auth_error(service, "unknown-key")
    amz_date = h.get("X-Amz-Date")
    if not amz_date or not re.match(r"^\d{8}T\d{6}Z$", amz_date):
        raise auth_error(service, "malformed", " (X-Amz-Date missing or not YYYYMMDDTHHMMSSZ)")
    if amz_date[:8] != day:
        raise auth_error(service, "bad", " (credential scope date differs from X-Amz-Date)")
    if svc != service:
        raise auth_error(service, "bad", " (credential scope names service '%s')" % svc)
    if region != args.region:
        # AWS answers a scope for another region with SignatureDoesNotMatch.
        raise auth_error(service, "bad", " (credential scope names region '%s', this endpoint is "
                         "'%s')" % (region, args.region))
    t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    skew = abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if skew > MAX_SKEW:
        n = datetime.datetime.now(datetime.timezone.utc)
        if service == "ec2":
            detail = " Timestamp date is %s, more than 15 minutes from now." % amz_date
        else:
            fmt = "%Y%m%dT%H%M%SZ"
            lim = n - datetime.timedelta(seconds=MAX_SKEW) if t < n else n + datetime.timedelta(seconds=MAX_SKEW)
            detail = ": %s is now %s than %s (%s %s 15 min.)" % (
                amz_date, "earlier" if t < n else "later", lim.strftime(fmt), n.strftime(fmt),
                "-" if t < n else "+")
        raise auth_error(service, "expired", detail)
    signed_set = signed.split(";")
    if "host" not in signed_set:
        raise auth_error(service, "bad", " (the host header must be signed)")
    for name in signed_set:
        if name not in (k.lower() for k in h.keys()):
            raise auth_error(service, "bad", " (signed header '%s' is not in the request)" % name)
    psha = h.get("X-Amz-Content-SHA256")
    if psha is not None:
        if psha == "UNSIGNED-PAYLOAD":
            if not unsigned_ok:
                raise auth_error(service, "bad", " (this operation signs its payload)")
        elif psha != hashlib.sha256(body).hexdigest():
            raise auth_error(service, "bad", " (X-Amz-Content-SHA256 is not the body's SHA-256)")
    headers = {}
    for k in h.keys():
        if k.lower() == "authorization":
            continue
        headers[k] = ",".join(v.strip() for v in h.get_all(k))
    req = botocore.awsrequest.AWSRequest(method=handler.command,
                                         url="http://%s%s" % (h.get("Host", "localhost"), handler.path),
                                         headers=headers, data=body)
    req.context["timestamp"] = amz_date
    creds = botocore.credentials.Credentials(akid, args.keys[akid])
    signer = VerifyingSigV4(creds, svc, region, set(signed_set))
    want = signer.signature(signer.string_to_sign(req, signer.canonical_request(req)), req)
    if not secrets.compare_digest(want, sig):
        raise auth_error(service, "bad")


# --- request log ----------------------------------------------------------------


def record(service, action, params, status, error):
    if not args.log:
        return
    line = json.dumps({"service": service, "action": action, "params": params, "status": status,
                       "error": error}, sort_keys=True)
    with log_lock, open(args.log, "a") as f:
        f.write(line + "\n")
        f.flush()


# --- the S3 peer --------------------------------------------------------------------


_s3 = None
_s3_lock = threading.Lock()


def s3_client():
    """One client for the process: botocore loads its models once, calls are thread-safe."""
    global _s3
    with _s3_lock:
        if _s3 is None:
            _s3 = botocore.session.get_session().create_client(
                "s3", endpoint_url=args.s3_endpoint, region_name=args.region,
                aws_access_key_id=args.s3_access_key, aws_secret_access_key=args.s3_secret_key,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        return _s3


def s3_fetch(bucket, key, dest):
    """Copy s3://bucket/key to dest; None, or the ClientError text VM Import gives."""
    if not args.s3_endpoint:
        return "ClientError: Unable to access the S3 object (no S3 endpoint configured)"
    try:
        obj = s3_client().get_object(Bucket=bucket, Key=key)
    except Exception as e:  # botocore's ClientError and connection errors alike
        code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
        return ("ClientError: Unable to access the S3 object s3://%s/%s (%s). Make sure the "
                "object exists and the vmimport role can read it." % (bucket, key, code))
    with open(dest, "wb") as f:
        for chunk in iter(lambda: obj["Body"].read(1 << 20), b""):
            f.write(chunk)
    return None


def check_disk(path, fmt):
    """(virtual size in bytes, None) or (0, the ClientError VM Import gives)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1 << 20)
        f.seek(max(0, size - 512))
        tail = f.read(512)
    is_vmdk = head[:4] == b"KDMV"
    is_vhd = tail[:8] == b"conectix" or head[:8] == b"conectix"
    is_qcow = head[:4] == b"QFI\xfb"
    is_vhdx = head[:8] == b"vhdxfile"
    if fmt == "VMDK":
        if not is_vmdk:
            return 0, "ClientError: Disk validation failed [Unsupported VMDK File Format]"
        cap = int.from_bytes(head[12:20], "little") * 512
        doff = int.from_bytes(head[28:36], "little") * 512
        dsize = int.from_bytes(head[36:44], "little") * 512
        desc = head[doff:doff + dsize].split(b"\0")[0].decode("latin-1") if doff else ""
        m = re.search(r'createType\s*=\s*"([^"]*)"', desc)
        if not m or m.group(1) != "streamOptimized":
            return 0, ("ClientError: Disk validation failed [Unsupported VMDK File Format: "
                       "createType %s, not streamOptimized]" % (m.group(1) if m else "missing"))
        return cap, None
    if fmt == "VHD":
        if not is_vhd:
            return 0, "ClientError: Disk validation failed [Invalid VHD footer]"
        footer = tail if tail[:8] == b"conectix" else head[:512]
        return int.from_bytes(footer[48:56], "big"), None
    # RAW: VM Import takes any bytes; a header of another format is a client bug.
    for flag, name in ((is_vmdk, "VMDK"), (is_vhd, "VHD"), (is_qcow, "QCOW2"), (is_vhdx, "VHDX")):
        if flag:
            return 0, ("ClientError: Disk validation failed [the RAW disk carries a %s header; "
                       "DiskContainer.Format must name the file's format]" % name)
    if size % 512:
        return 0, "ClientError: Disk validation failed [RAW size %d is not a multiple of 512]" % size
    return size, None


def run_import(task_id):
    """Fetch and check the object of an import task, as VM Import would."""
    with lock:
        t = state["import_tasks"][task_id]
        bucket, key, fmt = t["bucket"], t["key"], t["format"]
    tmpdir = tempfile.mkdtemp(prefix="fake-aws-")
    try:
        src = os.path.join(tmpdir, "disk")
        err = s3_fetch(bucket, key, src)
        vsize = 0
        if not err:
            vsize, err = check_disk(src, fmt)
        snap_id = None
        if not err:
            snap_id = new_id("snap")
            if args.data_dir and shutil.which("qemu-img"):
                qfmt = {"VMDK": "vmdk", "VHD": "vpc", "RAW": "raw"}[fmt]
                out = os.path.join(args.data_dir, snap_id + ".raw")
                r = subprocess.run(["qemu-img", "convert", "-f", qfmt, "-O", "raw", src, out],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    err = "ClientError: Disk validation failed [%s]" % r.stderr.strip()
        with lock:
            t["disk_size"] = os.path.getsize(src) if os.path.exists(src) else 0
            if err:
                t["error"] = err
            else:
                t["snapshot_id"] = snap_id
                state["snapshots"][snap_id] = {
                    "id": snap_id, "state": "completed", "size_gib": max(1, math.ceil(vsize / 2**30)),
                    "description": "Created by AWS-VMImport service for %s" % task_id,
                    "tags": {}, "start": now_iso(), "blocks": {}, "source": "import"}
            t["ready"] = True
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


# --- EC2 Query API --------------------------------------------------------------------


def xml_of(name, value):
    """<name>value</name>: dicts become nested elements, lists <item>s."""
    if value is None:
        return ""
    if isinstance(value, dict):
        inner = "".join(xml_of(k, v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(xml_of("item", v) for v in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return "<%s>%s</%s>" % (name, inner, name)


def ec2_ok(action, fields):
    body = "".join(xml_of(k, v) for k, v in fields.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s"><requestId>%s</requestId>'
            '%s</%sResponse>' % (action, EC2_NS, uuid.uuid4(), body, action)).encode()


def ec2_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>%s</Code>'
            '<Message>%s</Message></Error></Errors><RequestID>%s</RequestID></Response>'
            % (escape(code), escape(message), uuid.uuid4())).encode()


def bad(message, code="InvalidParameterValue"):
    return ApiError(400, code, message)


# Each action's parameters, as patterns over the Query names (N: 1, 2, ...).
N = r"[1-9][0-9]*"
TAGSPEC = [r"TagSpecification\.%s\.ResourceType" % N, r"TagSpecification\.%s\.Tag\.%s\.(Key|Value)" % (N, N)]
FILTER = lambda p: [r"%s\.%s\.Name" % (p, N), r"%s\.%s\.Value\.%s" % (p, N, N)]
ACTIONS = {
    "ImportSnapshot": [r"ClientData\.(Comment|UploadEnd|UploadSize|UploadStart)", "ClientToken",
                       "Description", r"DiskContainer\.(Description|Format|Url)",
                       r"DiskContainer\.UserBucket\.(S3Bucket|S3Key)", "Encrypted", "KmsKeyId",
                       "RoleName"] + TAGSPEC,
    "DescribeImportSnapshotTasks": FILTER("Filters") + [r"ImportTaskId\.%s" % N, "MaxResults", "NextToken"],
    "RegisterImage": ["ImageLocation", "Architecture", "Description", "EnaSupport", "KernelId", "Name",
                      "RamdiskId", "RootDeviceName", "SriovNetSupport", "VirtualizationType",
                      "BootMode", "TpmSupport", "ImdsSupport", "UefiData", "BillingProduct\\.%s" % N,
                      r"BlockDeviceMapping\.%s\.(DeviceName|VirtualName|NoDevice)" % N,
                      r"BlockDeviceMapping\.%s\.Ebs\.(DeleteOnTermination|Iops|SnapshotId|VolumeSize|"
                      r"VolumeType|KmsKeyId|Throughput|Encrypted)" % N] + TAGSPEC,
    "CreateTags": [r"ResourceId\.%s" % N, r"Tag\.%s\.(Key|Value)" % N],
    "DescribeImages": FILTER("Filter") + [r"ExecutableBy\.%s" % N, r"ImageId\.%s" % N,
                                          r"Owner\.%s" % N, "IncludeDeprecated", "IncludeDisabled",
                                          "MaxResults", "NextToken"],
    "DescribeSnapshots": FILTER("Filter") + [r"SnapshotId\.%s" % N, r"Owner\.%s" % N,
                                             r"RestorableBy\.%s" % N, "MaxResults", "NextToken"],
    "ModifyImageAttribute": ["Attribute", r"Description\.Value", "ImageId", "OperationType", "Value",
                             r"LaunchPermission\.(Add|Remove)\.%s\.(Group|UserId)" % N,
                             r"UserGroup\.%s" % N, r"UserId\.%s" % N],
    "DeregisterImage": ["ImageId"],
    "DeleteSnapshot": ["SnapshotId"],
}


def indexed(params, prefix, suffix=""):
    """The values of prefix.N<suffix>, in the order of N."""
    out = []
    pat = re.compile(r"^%s\.(%s)%s$" % (re.escape(prefix), N, re.escape(suffix)))
    for k, v in params.items():
        m = pat.match(k)
        if m:
            out.append((int(m.group(1)), v))
    return [v for _, v in sorted(out)]


def groups(params, prefix):
    """{N: {rest: value}} for prefix.N.rest keys."""
    out = {}
    pat = re.compile(r"^%s\.(%s)\.(.+)$" % (re.escape(prefix), N))
    for k, v in params.items():
        m = pat.match(k)
        if m:
            out.setdefault(int(m.group(1)), {})[m.group(2)] = v
    return [out[i] for i in sorted(out)]


def tag_specs(params, want_type):
    tags = {}
    for spec in groups(params, "TagSpecification"):
        rt = spec.get("ResourceType")
        if rt is None:
            raise bad("The tag specification must have a resource type", "MissingParameter")
        if rt != want_type:
            raise bad("'%s' is not a valid taggable resource type for this operation." % rt)
        for tag in groups({k: v for k, v in spec.items()}, "Tag"):
            tags[check_tag(tag)] = tag.get("Value", "")
    return tags


def check_tag(tag):
    key = tag.get("Key")
    if key is None or key == "":
        raise bad("Tag keys must not be empty", "InvalidParameterValue")
    if len(key) > 128 or key.lower().startswith("aws:"):
        raise bad("Tag key '%s' is too long or uses the reserved prefix aws:" % key)
    if len(tag.get("Value", "")) > 256:
        raise bad("Tag value for key '%s' is longer than 256 characters" % key)
    return key


def boolean(params, name):
    v = params.get(name)
    if v is None:
        return None
    if v not in ("true", "false"):
        raise bad("Value (%s) for parameter %s is invalid. Expected 'true' or 'false'." % (v, name))
    return v == "true"


def tag_set(tags):
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def filters_match(filters, obj, fields):
    for f in filters:
        name, values = f.get("Name"), [v for k, v in sorted(f.items()) if k.startswith("Value.")]
        if name is None:
            raise bad("The filter 'null' is invalid", "InvalidParameterValue")
        if name.startswith("tag:"):
            have = obj["tags"].get(name[4:])
            if have is None or not any(re.fullmatch(glob_re(v), have) for v in values):
                return False
        elif name == "tag-key":
            if not any(k in values for k in obj["tags"]):
                return False
        elif name in fields:
            have = fields[name](obj)
            if not any(re.fullmatch(glob_re(v), str(have)) for v in values):
                return False
        else:
            raise bad("The filter '%s' is invalid" % name, "InvalidParameterValue")
    return True


def glob_re(v):
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in v)


def task_xml(t):
    detail = {"diskImageSize": t.get("disk_size") or None, "description": t["description"] or None,
              "format": t["format"], "userBucket": {"s3Bucket": t["bucket"], "s3Key": t["key"]}}
    polls = t["polls"]
    if not t.get("ready") or polls < args.import_polls:
        steps = ["pending", "validating", "validated", "converting"]
        detail.update(status="active", progress=str(min(90, 10 + 80 * polls // max(1, args.import_polls))),
                      statusMessage=steps[min(len(steps) - 1, polls)])
    elif t.get("error"):
        detail.update(status="deleted", statusMessage=t["error"])
    else:
        detail.update(status="completed", snapshotId=t["snapshot_id"])
    return {"description": t["description"] or None, "importTaskId": t["id"],
            "snapshotTaskDetail": detail, "tagSet": tag_set(t["tags"])}


def ec2_import_snapshot(p):
    fmt = p.get("DiskContainer.Format")
    url = p.get("DiskContainer.Url")
    bucket = p.get("DiskContainer.UserBucket.S3Bucket")
    key = p.get("DiskContainer.UserBucket.S3Key")
    if fmt is None:
        raise bad("The request must contain the parameter DiskContainer.Format", "MissingParameter")
    if fmt.upper() not in ("VMDK", "VHD", "RAW"):
        raise bad("Invalid value '%s' for DiskContainer.Format. Valid values: VHD | VMDK | RAW" % fmt)
    if url is not None and bucket is not None:
        raise bad("DiskContainer.Url and DiskContainer.UserBucket cannot both be given",
                  "InvalidParameterCombination")
    if url is not None:
        m = re.match(r"^s3://([^/]+)/(.+)$", url)
        if not m:
            raise bad("DiskContainer.Url '%s' is not an s3://bucket/key URL (this peer takes no "
                      "presigned HTTPS URLs)" % url)
        bucket, key = m.group(1), m.group(2)
    if not bucket or not key:
        raise bad("The request must contain DiskContainer.UserBucket.S3Bucket and .S3Key",
                  "MissingParameter")
    if p.get("RoleName") not in (None, "vmimport"):
        raise bad("The service role %s provided does not exist or does not have sufficient "
                  "permissions" % p["RoleName"], "InvalidParameter")
    tags = tag_specs(p, "import-snapshot-task")
    token = p.get("ClientToken")
    with lock:
        if token and ("ImportSnapshot", token) in state["client_tokens"]:
            t = state["import_tasks"][state["client_tokens"][("ImportSnapshot", token)]]
        else:
            tid = "import-snap-" + secrets.token_hex(8) + "0"
            t = {"id": tid, "format": fmt.upper(), "bucket": bucket, "key": key,
                 "description": p.get("Description", ""), "tags": tags, "polls": 0}
            state["import_tasks"][tid] = t
            if token:
                state["client_tokens"][("ImportSnapshot", token)] = tid
            threading.Thread(target=run_import, args=(tid,), daemon=True).start()
        out = task_xml(t)
    return {"description": out["description"], "importTaskId": out["importTaskId"],
            "snapshotTaskDetail": out["snapshotTaskDetail"], "tagSet": out["tagSet"]}


def ec2_describe_import_snapshot_tasks(p):
    ids = indexed(p, "ImportTaskId")
    filters = groups(p, "Filters")
    items = []
    with lock:
        for i in ids:
            if i not in state["import_tasks"]:
                raise bad("The import task ID '%s' does not exist" % i, "InvalidConversionTaskId")
        for tid, t in state["import_tasks"].items():
            if ids and tid not in ids:
                continue
            if not filters_match(filters, t, {"task-state": lambda o: task_xml(o)["snapshotTaskDetail"]["status"]}):
                continue
            items.append(task_xml(t))
            if t.get("ready"):
                t["polls"] += 1
    return {"importSnapshotTaskSet": items}


NAME_RE = re.compile(r"^[A-Za-z0-9()\[\] ./'@_-]{3,128}$")
DEV_RE = re.compile(r"^/dev/(sd[a-z]|xvd[a-z]|nvme[0-9]+n1)[0-9]*$")


def ec2_register_image(p):
    name = p.get("Name")
    if name is None:
        raise bad("The request must contain the parameter Name", "MissingParameter")
    if not NAME_RE.match(name):
        raise bad("AMI names must be between 3 and 128 characters long, and may contain letters, "
                  "numbers, '(', ')', '.', '-', '/' and '_'", "InvalidAMIName.Malformed")
    arch = p.get("Architecture", "i386")
    if arch not in ("i386", "x86_64", "arm64", "x86_64_mac", "arm64_mac"):
        raise bad("Invalid value '%s' for Architecture" % arch)
    virt = p.get("VirtualizationType", "paravirtual")
    if virt not in ("hvm", "paravirtual"):
        raise bad("Invalid value '%s' for VirtualizationType" % virt)
    boot = p.get("BootMode")
    if boot is not None and boot not in ("legacy-bios", "uefi", "uefi-preferred"):
        raise bad("Invalid value '%s' for BootMode. Valid values: legacy-bios | uefi | "
                  "uefi-preferred" % boot)
    if boot in ("uefi", "uefi-preferred") and arch not in ("x86_64", "arm64"):
        raise bad("UEFI boot mode is not supported for architecture %s" % arch)
    ena = boolean(p, "EnaSupport")
    if p.get("ImageLocation"):
        raise bad("ImageLocation registers an instance-store AMI; this peer only takes EBS-backed "
                  "images", "InvalidParameterCombination")
    root = p.get("RootDeviceName")
    if root is None:
        raise bad("The request must contain the parameter RootDeviceName", "MissingParameter")
    if not DEV_RE.match(root):
        raise bad("Invalid value '%s' for RootDeviceName" % root)
    bdms = groups(p, "BlockDeviceMapping")
    if not bdms:
        raise bad("The request must contain the parameter BlockDeviceMapping", "MissingParameter")
    mappings = []
    root_found = False
    with lock:
        for b in bdms:
            dev = b.get("DeviceName")
            if dev is None:
                raise bad("The request must contain the parameter BlockDeviceMapping.N.DeviceName",
                          "MissingParameter")
            if not DEV_RE.match(dev):
                raise bad("Invalid device name %s" % dev, "InvalidBlockDeviceMapping")
            snap = b.get("Ebs.SnapshotId")
            ent = {"deviceName": dev}
            if snap is not None:
                if not re.match(r"^snap-[0-9a-f]{8,17}$", snap):
                    raise bad("Invalid id: \"%s\" (expecting \"snap-...\")" % snap, "InvalidSnapshotID.Malformed")
                s = state["snapshots"].get(snap)
                if s is None:
                    raise bad("The snapshot '%s' does not exist." % snap, "InvalidSnapshot.NotFound")
                if s["state"] != "completed":
                    raise bad("Snapshot '%s' is not in state 'completed' (it is '%s')" % (snap, s["state"]),
                              "IncorrectState")
                size = int(b.get("Ebs.VolumeSize", s["size_gib"]))
                if size < s["size_gib"]:
                    raise bad("Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB"
                              % (size, snap, s["size_gib"]), "InvalidBlockDeviceMapping")
                vt = b.get("Ebs.VolumeType", "standard")
                if vt not in ("standard", "io1", "io2", "gp2", "sc1", "st1", "gp3"):
                    raise bad("Invalid value '%s' for volumeType" % vt)
                ent["ebs"] = {"snapshotId": snap, "volumeSize": size, "volumeType": vt,
                              "deleteOnTermination": b.get("Ebs.DeleteOnTermination", "true") == "true",
                              "encrypted": False}
            if dev == root:
                root_found = snap is not None
            mappings.append(ent)
        if not root_found:
            raise bad("The root device name %s is not in the block device mappings, or has no "
                      "snapshot" % root, "InvalidBlockDeviceMapping")
        if virt == "hvm" and arch == "x86_64" and ena is None:
            pass  # AWS accepts it; such an AMI cannot launch on current instance types.
        for img in state["images"].values():
            if img["name"] == name and img["state"] != "deregistered":
                raise bad("AMI name %s is already in use by AMI %s" % (name, img["id"]),
                          "InvalidAMIName.Duplicate")
        tags = tag_specs(p, "image")
        iid = new_id("ami")
        state["images"][iid] = {
            "id": iid, "name": name, "description": p.get("Description"), "arch": arch,
            "root": root, "mappings": mappings, "virt": virt, "ena": ena, "boot": boot,
            "tpm": p.get("TpmSupport"), "imds": p.get("ImdsSupport"), "tags": tags,
            "public": False, "state": "available", "created": now_iso()}
    return {"imageId": iid}


def resource(rid):
    for kind in ("images", "snapshots", "import_tasks"):
        if rid in state[kind]:
            return state[kind][rid]
    return None


def ec2_create_tags(p):
    ids = indexed(p, "ResourceId")
    tags = groups(p, "Tag")
    if not ids:
        raise bad("The request must contain the parameter resourceIdSet", "MissingParameter")
    if not tags:
        raise bad("The request must contain the parameter tagSet", "MissingParameter")
    with lock:
        for rid in ids:
            if resource(rid) is None:
                code = {"ami": "InvalidAMIID.NotFound", "snap": "InvalidSnapshot.NotFound"}.get(
                    rid.split("-")[0], "InvalidID")
                raise bad("The ID '%s' does not exist" % rid, code)
        for rid in ids:
            for tag in tags:
                resource(rid)["tags"][check_tag(tag)] = tag.get("Value", "")
    return {"return": True}


def image_xml(img):
    return {
        "imageId": img["id"], "imageLocation": "%s/%s" % (args.account, img["name"]),
        "imageState": img["state"], "imageOwnerId": args.account, "creationDate": img["created"],
        "isPublic": img["public"], "architecture": img["arch"], "imageType": "machine",
        "name": img["name"], "description": img["description"], "rootDeviceType": "ebs",
        "rootDeviceName": img["root"],
        "blockDeviceMapping": img["mappings"], "virtualizationType": img["virt"],
        "tagSet": tag_set(img["tags"]) or None, "hypervisor": "xen", "enaSupport": img["ena"],
        "bootMode": img["boot"], "tpmSupport": img["tpm"], "imdsSupport": img["imds"]}


def ec2_describe_images(p):
    ids = indexed(p, "ImageId")
    owners = indexed(p, "Owner")
    filters = groups(p, "Filter")
    with lock:
        for i in ids:
            if not re.match(r"^ami-[0-9a-f]{8,17}$", i):
                raise bad("Invalid id: \"%s\" (expecting \"ami-...\")" % i, "InvalidAMIID.Malformed")
            if i not in state["images"]:
                raise bad("The image id '[%s]' does not exist" % i, "InvalidAMIID.NotFound")
        items = []
        for iid, img in state["images"].items():
            if ids and iid not in ids:
                continue
            if owners and not any(o in ("self", args.account) for o in owners):
                continue
            if not filters_match(filters, img, {"name": lambda o: o["name"], "image-id": lambda o: o["id"],
                                                "state": lambda o: o["state"],
                                                "architecture": lambda o: o["arch"],
                                                "is-public": lambda o: "true" if o["public"] else "false"}):
                continue
            items.append(image_xml(img))
    return {"imagesSet": items}


def ec2_describe_snapshots(p):
    ids = indexed(p, "SnapshotId")
    filters = groups(p, "Filter")
    with lock:
        for i in ids:
            if i not in state["snapshots"]:
                raise bad("The snapshot '%s' does not exist." % i, "InvalidSnapshot.NotFound")
        items = []
        for sid, s in state["snapshots"].items():
            if ids and sid not in ids:
                continue
            if s.get("sealed") and s["state"] == "pending":
                s["polls"] += 1
                if s["polls"] >= args.import_polls:
                    s["state"] = "completed"
            if not filters_match(filters, s, {"status": lambda o: o["state"], "snapshot-id": lambda o: o["id"]}):
                continue
            items.append({"snapshotId": sid, "volumeId": "vol-ffffffff", "status": s["state"],
                          "startTime": s["start"], "progress": "100%" if s["state"] == "completed" else "0%",
                          "ownerId": args.account, "volumeSize": s["size_gib"],
                          "description": s["description"] or None, "encrypted": False,
                          "tagSet": tag_set(s["tags"]) or None})
    return {"snapshotSet": items}


def ec2_modify_image_attribute(p):
    iid = p.get("ImageId")
    with lock:
        img = state["images"].get(iid)
        if img is None:
            raise bad("The image id '[%s]' does not exist" % iid, "InvalidAMIID.NotFound")
        adds = [g for g in groups(p, "LaunchPermission.Add")]
        removes = [g for g in groups(p, "LaunchPermission.Remove")]
        if p.get("Attribute") == "launchPermission" or p.get("UserGroup.1"):
            op = p.get("OperationType")
            if op not in ("add", "remove"):
                raise bad("OperationType must be add or remove", "InvalidParameterValue")
            (adds if op == "add" else removes).extend({"Group": g} for g in indexed(p, "UserGroup"))
        if p.get("Description.Value") is not None:
            img["description"] = p["Description.Value"]
        elif not adds and not removes:
            raise bad("No attribute to modify was given", "MissingParameter")
        for g in adds + removes:
            if g.get("Group") not in (None, "all"):
                raise bad("Invalid value '%s' for Group" % g.get("Group"))
        if any(g.get("Group") == "all" for g in adds):
            img["public"] = True
        if any(g.get("Group") == "all" for g in removes):
            img["public"] = False
    return {"return": True}


def ec2_deregister_image(p):
    with lock:
        img = state["images"].get(p.get("ImageId"))
        if img is None:
            raise bad("The image id '[%s]' does not exist" % p.get("ImageId"), "InvalidAMIID.NotFound")
        img["state"] = "deregistered"
        del state["images"][img["id"]]
    return {"return": True}


def ec2_delete_snapshot(p):
    with lock:
        sid = p.get("SnapshotId")
        if sid not in state["snapshots"]:
            raise bad("The snapshot '%s' does not exist." % sid, "InvalidSnapshot.NotFound")
        for img in state["images"].values():
            if any(m.get("ebs", {}).get("snapshotId") == sid for m in img["mappings"]):
                raise bad("The snapshot %s is currently in use by %s" % (sid, img["id"]),
                          "InvalidSnapshot.InUse")
        del state["snapshots"][sid]
    return {"return": True}


EC2_HANDLERS = {
    "ImportSnapshot": ec2_import_snapshot,
    "DescribeImportSnapshotTasks": ec2_describe_import_snapshot_tasks,
    "RegisterImage": ec2_register_image,
    "CreateTags": ec2_create_tags,
    "DescribeImages": ec2_describe_images,
    "DescribeSnapshots": ec2_describe_snapshots,
    "ModifyImageAttribute": ec2_modify_image_attribute,
    "DeregisterImage": ec2_deregister_image,
    "DeleteSnapshot": ec2_delete_snapshot,
}


def ec2_params(handler, body):
    pairs = urllib.parse.parse_qsl(urllib.parse.urlsplit(handler.path).query, keep_blank_values=True)
    if handler.command == "POST":
        ctype = handler.headers.get("Content-Type", "")
        if not ctype.startswith("application/x-www-form-urlencoded"):
            raise bad("POST requests must be application/x-www-form-urlencoded", "InvalidParameterValue")
        pairs += urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    params = {}
    for k, v in pairs:
        if k in params:
            raise bad("The parameter %s is given more than once" % k, "InvalidParameterValue")
        params[k] = v
    return params


# --- failures on demand ------------------------------------------------------------
#
# --fail-file FILE: lines "ACTION STATUS CODE COUNT" (COUNT a number or *),
# read at every request, so a test injects failures while the peer runs:
# the first COUNT valid, signed requests of ACTION get STATUS with CODE, as
# AWS answers when it throttles (EC2: 503 RequestLimitExceeded; EBS: 429
# ThrottlingException) or fails (500 InternalError / InternalServerException).
INJECTED = {}
INJECTED_LOCK = threading.Lock()


class LostAnswer(Exception):
    """A fail-file line whose STATUS is "lost": the request is carried out, its answer never sent."""


def injected_failure(action):
    if not args.fail_file:
        return
    try:
        with open(args.fail_file) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return
    for i, line in enumerate(lines):
        f = line.split()
        if len(f) != 4 or f[0] != action:
            continue
        with INJECTED_LOCK:
            used = INJECTED.get((i, line), 0)
            if f[3] != "*" and used >= int(f[3]):
                continue
            INJECTED[(i, line)] = used + 1
        if f[1] == "lost":
            raise LostAnswer()
        raise ApiError(int(f[1]), f[2], "failure injected by the test (%s, %d)" % (line, used + 1))


def ec2_call(handler, body):
    action = None
    params = {}
    try:
        params = ec2_params(handler, body)
        action = params.get("Action")
        verify_sigv4(handler, "ec2", body, unsigned_ok=False)
        if action is None:
            raise ApiError(400, "MissingAction", "The request must contain the parameter Action")
        if action not in EC2_HANDLERS:
            raise ApiError(400, "InvalidAction", "The action %s is not valid for this web service." % action)
        if "Version" not in params:
            raise bad("The request must contain the parameter Version", "MissingParameter")
        if params["Version"] != EC2_VERSION:
            raise bad("The requested version (%s) of service AmazonEC2 does not exist; this peer "
                      "speaks %s" % (params["Version"], EC2_VERSION), "NoSuchVersion")
        allowed = [re.compile("^(%s)$" % r) for r in ACTIONS[action] + ["Action", "Version", "DryRun"]]
        for k in params:
            if not any(a.match(k) for a in allowed):
                raise bad("The parameter %s is not recognized" % k, "UnknownParameter")
        injected_failure(action)
        if boolean(params, "DryRun"):
            raise ApiError(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
        result = EC2_HANDLERS[action](params)
        out = ec2_ok(action, result)
        status, err = 200, None
    except ApiError as e:
        out, status, err = ec2_error(e.code, e.message), e.status, e.code
    logged = {k: v for k, v in params.items() if k not in ("Action", "Version") and not k.startswith("X-Amz-")}
    record("ec2", action, logged, status, err)
    handler.answer(status, out, "text/xml;charset=UTF-8")


# --- EBS direct APIs -----------------------------------------------------------------


def ebs_error(e):
    body = {"message": e.message}
    if e.reason:
        body["Reason"] = e.reason
    return json.dumps(body).encode()


def vbad(message, reason="INVALID_PARAMETER_VALUE"):
    return ApiError(400, "ValidationException", message, reason)


def snapshot_of(sid):
    s = state["snapshots"].get(sid)
    if s is None or s.get("source") != "ebs":
        raise ApiError(404, "ResourceNotFoundException", "The snapshot '%s' does not exist." % sid,
                       "SNAPSHOT_NOT_FOUND")
    return s


def ebs_start_snapshot(handler, body, params):
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "SerializationException", "Start of structure or map found where not expected.")
    if not isinstance(req, dict):
        raise ApiError(400, "SerializationException", "Start of structure or map found where not expected.")
    params.update(req)
    known = {"VolumeSize", "ParentSnapshotId", "Tags", "Description", "ClientToken", "Encrypted",
             "KmsKeyArn", "Timeout"}
    for k in req:
        if k not in known:
            raise ApiError(400, "SerializationException", "Unknown field '%s'" % k)
    size = req.get("VolumeSize")
    if size is None:
        raise vbad("1 validation error detected: Value null at 'volumeSize' failed to satisfy "
                   "constraint: Member must not be null", "INVALID_VOLUME_SIZE")
    if not isinstance(size, int) or not 1 <= size <= 65536:
        raise vbad("The volume size %r GiB is not between 1 and 65536" % (size,), "INVALID_VOLUME_SIZE")
    if req.get("ParentSnapshotId") is not None:
        raise vbad("This peer takes no parent snapshot", "INVALID_SNAPSHOT_ID")
    tags = {}
    for t in req.get("Tags") or []:
        if not isinstance(t, dict) or not t.get("Key"):
            raise vbad("Tags must have a non-empty Key", "INVALID_TAG")
        tags[t["Key"]] = t.get("Value", "")
    token = req.get("ClientToken")
    with lock:
        if token and ("StartSnapshot", token) in state["client_tokens"]:
            s = state["snapshots"][state["client_tokens"][("StartSnapshot", token)]]
            if s["size_gib"] != size:
                raise ApiError(409, "ConflictException", "The request uses the same client token as a "
                               "previous, but non-identical request.")
        else:
            sid = new_id("snap")
            s = {"id": sid, "state": "pending", "size_gib": size, "description": req.get("Description", ""),
                 "tags": tags, "start": now_iso(), "blocks": {}, "source": "ebs", "polls": 0}
            state["snapshots"][sid] = s
            if token:
                state["client_tokens"][("StartSnapshot", token)] = sid
            if args.data_dir:
                with open(os.path.join(args.data_dir, sid + ".raw"), "wb") as f:
                    f.truncate(size * 2**30)
        out = {"SnapshotId": s["id"], "OwnerId": args.account, "Status": "pending",
               "StartTime": datetime.datetime.now(datetime.timezone.utc).timestamp(),
               "VolumeSize": s["size_gib"], "BlockSize": BLOCK, "Description": s["description"],
               "Tags": [{"Key": k, "Value": v} for k, v in sorted(s["tags"].items())]}
    return 201, {}, out


def ebs_put_block(handler, body, params, sid, index):
    h = handler.headers
    params.update({"SnapshotId": sid, "BlockIndex": index, "DataLength": h.get("x-amz-Data-Length"),
                   "Checksum": h.get("x-amz-Checksum"), "ChecksumAlgorithm": h.get("x-amz-Checksum-Algorithm"),
                   "Progress": h.get("x-amz-Progress")})
    for name in ("x-amz-Data-Length", "x-amz-Checksum", "x-amz-Checksum-Algorithm"):
        if h.get(name) is None:
            raise vbad("1 validation error detected: the header %s must not be null" % name)
    if h["x-amz-Checksum-Algorithm"] != "SHA256":
        raise vbad("The checksum algorithm '%s' is not supported; use SHA256" % h["x-amz-Checksum-Algorithm"])
    if h["x-amz-Data-Length"] != str(BLOCK):
        raise vbad("The data length %s is not supported; the only valid value is %d"
                   % (h["x-amz-Data-Length"], BLOCK), "INVALID_BLOCK")
    if len(body) != BLOCK:
        raise vbad("The block holds %d bytes, x-amz-Data-Length says %d" % (len(body), BLOCK), "INVALID_BLOCK")
    p = h.get("x-amz-Progress")
    if p is not None and (not p.isdigit() or int(p) > 100):
        raise vbad("The progress '%s' is not an integer from 0 to 100" % p)
    digest = hashlib.sha256(body).digest()
    if h["x-amz-Checksum"] != base64.b64encode(digest).decode():
        raise vbad("The checksum of the data does not match x-amz-Checksum", "INVALID_BLOCK")
    with lock:
        s = snapshot_of(sid)
        if s["state"] != "pending" or s.get("sealed"):
            raise vbad("The snapshot '%s' is completed; blocks are written to pending snapshots only"
                       % sid, "INVALID_SNAPSHOT_ID")
        if not index.isdigit() or int(index) * BLOCK >= s["size_gib"] * 2**30:
            raise vbad("The block index %s is outside the volume of %d GiB" % (index, s["size_gib"]),
                       "INVALID_BLOCK")
        s["blocks"][int(index)] = digest
        if args.data_dir:
            with open(os.path.join(args.data_dir, sid + ".raw"), "r+b") as f:
                f.seek(int(index) * BLOCK)
                f.write(body)
    return 201, {"x-amz-Checksum": h["x-amz-Checksum"], "x-amz-Checksum-Algorithm": "SHA256"}, {}


def ebs_complete(handler, body, params, sid):
    h = handler.headers
    count = h.get("x-amz-ChangedBlocksCount")
    params.update({"SnapshotId": sid, "ChangedBlocksCount": count, "Checksum": h.get("x-amz-Checksum"),
                   "ChecksumAlgorithm": h.get("x-amz-Checksum-Algorithm"),
                   "ChecksumAggregationMethod": h.get("x-amz-Checksum-Aggregation-Method")})
    if count is None:
        raise vbad("1 validation error detected: Value null at 'changedBlocksCount' failed to satisfy "
                   "constraint: Member must not be null")
    if not count.isdigit():
        raise vbad("The changed blocks count '%s' is not a number" % count)
    with lock:
        s = snapshot_of(sid)
        if s["state"] != "pending" or s.get("sealed"):
            raise vbad("The snapshot '%s' is already completed" % sid, "INVALID_SNAPSHOT_ID")
        if int(count) != len(s["blocks"]):
            raise vbad("ChangedBlocksCount is %s, %d blocks were written" % (count, len(s["blocks"])))
        ck = h.get("x-amz-Checksum")
        if ck is not None:
            if h.get("x-amz-Checksum-Algorithm") != "SHA256":
                raise vbad("x-amz-Checksum-Algorithm must be SHA256 with an aggregate checksum")
            if h.get("x-amz-Checksum-Aggregation-Method") != "LINEAR":
                raise vbad("x-amz-Checksum-Aggregation-Method must be LINEAR with an aggregate checksum")
            # The blocks' SHA-256 digests, in block index order, concatenated and hashed.
            agg = hashlib.sha256(b"".join(s["blocks"][i] for i in sorted(s["blocks"]))).digest()
            if ck != base64.b64encode(agg).decode():
                raise vbad("The aggregate checksum does not match the blocks written", "INVALID_BLOCK")
        # Sealed now, "completed" after --import-polls DescribeSnapshots answers, as the real
        # snapshot stays pending a while after CompleteSnapshot.
        s["sealed"] = True
    return 202, {}, {"Status": "pending"}


EBS_ROUTES = [
    ("POST", re.compile(r"^/snapshots$"), "StartSnapshot", ebs_start_snapshot),
    ("PUT", re.compile(r"^/snapshots/([^/]+)/blocks/([^/]+)$"), "PutSnapshotBlock", ebs_put_block),
    ("POST", re.compile(r"^/snapshots/completion/([^/]+)$"), "CompleteSnapshot", ebs_complete),
]


def ebs_call(handler, body):
    path = urllib.parse.urlsplit(handler.path).path
    action, params, extra = None, {}, {}
    try:
        route = None
        for method, pat, name, fn in EBS_ROUTES:
            m = pat.match(path)
            if m and method == handler.command:
                route = (name, fn, [urllib.parse.unquote(g) for g in m.groups()])
                break
        if route is None:
            raise ApiError(404, "UnknownOperationException", "No operation matches %s %s"
                           % (handler.command, path))
        action = route[0]
        verify_sigv4(handler, "ebs", body, unsigned_ok=(action == "PutSnapshotBlock"))
        injected_failure(action)
        status, extra, out = route[1](handler, body, params, *route[2])
        payload = json.dumps(out).encode()
        err = None
    except ApiError as e:
        status, payload, err = e.status, ebs_error(e), e.code
        extra = {"x-amzn-ErrorType": e.code}
    record("ebs", action, params, status, err)
    handler.answer(status, payload, "application/json", extra)



# --- a SigV4-checking front for the S3 peer -------------------------------------------------
#
# s3rver checks that an access key exists, not the signature. The front
# checks S3's flavour of SigV4 (the path as sent, no double encoding;
# x-amz-content-sha256 required and checked against the body, or
# UNSIGNED-PAYLOAD) and passes the request on to s3rver unchanged.


def s3_error(status, code, message, **extra):
    more = "".join("<%s>%s</%s>" % (k, escape(str(v)), k) for k, v in extra.items())
    return ApiError(status, code, message, more)


def verify_s3(handler, body_sha):
    h = handler.headers
    auth = h.get("Authorization")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
    if "X-Amz-Signature" in q or "Signature" in q:
        raise s3_error(501, "NotImplemented", "presigned URLs are not checked by this test peer")
    if not auth:
        raise s3_error(403, "AccessDenied", "Access Denied")
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise s3_error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed")
    akid, day, region, svc, signed, sig = m.groups()
    if akid not in args.keys:
        raise s3_error(403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist "
                       "in our records.", AWSAccessKeyId=akid)
    if svc != "s3":
        raise s3_error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; "
                       "incorrect service \"%s\". This endpoint belongs to \"s3\"." % svc)
    if region != args.region:
        raise s3_error(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; "
                       "the region '%s' is wrong; expecting '%s'" % (region, args.region),
                       Region=args.region)
    amz_date = h.get("X-Amz-Date", "")
    if not re.match(r"^\d{8}T\d{6}Z$", amz_date) or amz_date[:8] != day:
        raise s3_error(400, "AuthorizationHeaderMalformed", "X-Amz-Date is missing, malformed or "
                       "not the day of the credential scope")
    t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > MAX_SKEW:
        raise s3_error(403, "RequestTimeTooSkewed", "The difference between the request time and the "
                       "current time is too large.", RequestTime=amz_date)
    psha = h.get("X-Amz-Content-SHA256")
    if psha is None:
        raise s3_error(400, "InvalidRequest", "Missing required header for this request: "
                       "x-amz-content-sha256")
    if psha.startswith("STREAMING-"):
        raise s3_error(501, "NotImplemented", "aws-chunked uploads are not checked by this test peer")
    if psha != "UNSIGNED-PAYLOAD" and psha != body_sha:
        raise s3_error(400, "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header "
                       "does not match what was computed.", ClientComputedContentSHA256=psha,
                       S3ComputedContentSHA256=body_sha)
    signed_set = signed.split(";")
    present = set(k.lower() for k in h.keys())
    if "host" not in signed_set or "x-amz-content-sha256" not in signed_set or \
            not set(signed_set) <= present:
        raise s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not "
                       "match the signature you provided. Check your key and signing method.")
    headers = {k: ",".join(v.strip() for v in h.get_all(k)) for k in h.keys() if k.lower() != "authorization"}
    req = botocore.awsrequest.AWSRequest(method=handler.command,
                                         url="http://%s%s" % (h.get("Host", "localhost"), handler.path),
                                         headers=headers, data=b"")
    req.context["timestamp"] = amz_date
    creds = botocore.credentials.Credentials(akid, args.keys[akid])

    class S3Verifier(botocore.auth.S3SigV4Auth):
        def headers_to_sign(self, request):
            hm = botocore.auth.HTTPHeaders()
            for name, value in request.headers.items():
                if name.lower() in signed_set:
                    hm[name.lower()] = value
            return hm

    v = S3Verifier(creds, "s3", region)
    want = v.signature(v.string_to_sign(req, v.canonical_request(req)), req)
    if not secrets.compare_digest(want, sig):
        raise s3_error(403, "SignatureDoesNotMatch", "The request signature we calculated does not "
                       "match the signature you provided. Check your key and signing method.")


part_sizes = {}  # (path, upload id, part number) -> bytes
MIN_PART = 5 << 20


def check_parts(path, upload, xml):
    """S3's CompleteMultipartUpload rules that s3rver does not apply: parts in
    ascending order, each but the last at least 5 MiB. None or (code, message)."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return ("MalformedXML", "The XML you provided was not well-formed or did not validate "
                "against our published schema.")
    nums = [int(e.text) for e in root.iter() if e.tag.split("}")[-1] == "PartNumber"]
    if nums != sorted(set(nums)):
        return ("InvalidPartOrder", "The list of parts was not in ascending order. The parts list "
                "must be specified in order by part number.")
    with lock:
        sizes = [part_sizes.get((path, upload, str(n))) for n in nums]
    for n, size in zip(nums[:-1], sizes[:-1]):
        if size is not None and size < MIN_PART:
            return ("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
                    "size (part %d is %d bytes; every part but the last must be at least 5 MiB)"
                    % (n, size))
    return None


class S3FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "imgforge-fake-aws-s3-front/1"

    def log_message(self, fmt, *a):
        pass

    def dispatch(self):
        try:
            self.relay()
        except Exception:
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            out = b"<Error><Code>InternalError</Code><Message>the S3 front failed: see its stderr</Message></Error>"
            self.send_response(500)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    def relay(self):
        import http.client
        parts = urllib.parse.urlsplit(self.path)
        params = {"query": dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True)),
                  "ContentSHA256": self.headers.get("X-Amz-Content-SHA256")}
        action = "%s %s" % (self.command, parts.path)
        with tempfile.TemporaryFile() as body:
            digest = hashlib.sha256()
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                data = Handler.body(self)
                digest.update(data)
                body.write(data)
            else:
                left = int(self.headers.get("Content-Length", "0") or 0)
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    digest.update(chunk)
                    body.write(chunk)
                    left -= len(chunk)
            size = body.tell()
            body.seek(0)
            try:
                verify_s3(self, digest.hexdigest())
                q0 = params["query"]
                s3name = ("CompleteMultipartUpload" if self.command == "POST" and "uploadId" in q0 else
                          "CreateMultipartUpload" if self.command == "POST" and "uploads" in q0 else
                          "UploadPart" if self.command == "PUT" and "partNumber" in q0 else None)
                lost = False
                if s3name:
                    # A STATUS of 200 gives S3's "200 with an <Error> document".
                    try:
                        injected_failure(s3name)
                    except LostAnswer:
                        lost = True
            except ApiError as e:
                out = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
                       '%s<RequestId>%s</RequestId></Error>' % (escape(e.code), escape(e.message), e.reason or "",
                                                               uuid.uuid4().hex[:16].upper())).encode()
                record("s3", action, params, e.status, e.code)
                self.send_response(e.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(out)
                return
            q = params["query"]
            if self.command == "PUT" and "uploadId" in q and "partNumber" in q:
                with lock:
                    part_sizes[(parts.path, q["uploadId"], q["partNumber"])] = size
            if self.command == "POST" and "uploadId" in q:
                err = check_parts(parts.path, q["uploadId"], body.read())
                body.seek(0)
                if err:
                    out = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
                           '<RequestId>%s</RequestId></Error>' % (err[0], escape(err[1]),
                                                                 uuid.uuid4().hex[:16].upper())).encode()
                    record("s3", action, params, 400, err[0])
                    self.send_response(400)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
            up = urllib.parse.urlsplit(args.s3_endpoint)
            conn = http.client.HTTPConnection(up.hostname, up.port, timeout=600)
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("transfer-encoding", "content-length", "expect", "connection")}
            headers["Content-Length"] = str(size)
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            for chunk in iter(lambda: body.read(1 << 20), b""):
                conn.send(chunk)
            resp = conn.getresponse()
            data = resp.read()
            record("s3", action, params, resp.status, None if resp.status < 300 else "upstream")
            if lost:
                # Carried out upstream; the connection is closed without an answer.
                conn.close()
                self.close_connection = True
                return
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "content-length", "connection", "date", "server"):
                    self.send_header(k, v)
            if self.command == "HEAD":
                self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
                self.end_headers()
            else:
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = dispatch

# --- the server -----------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "imgforge-fake-aws/1"

    def log_message(self, fmt, *a):
        pass

    def answer(self, status, body, ctype, extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(n)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))

    def dispatch(self):
        body = self.body()
        ebs = urllib.parse.urlsplit(self.path).path.startswith("/snapshots")
        try:
            (ebs_call if ebs else ec2_call)(self, body)
        except Exception:
            # A bug of this peer, not the client's: say so loudly, as a 500.
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            if ebs:
                self.answer(500, b'{"message": "fake-aws.py failed: see its stderr"}', "application/json",
                            {"x-amzn-ErrorType": "InternalServerException"})
            else:
                self.answer(500, ec2_error("InternalError", "fake-aws.py failed: see its stderr"),
                            "text/xml;charset=UTF-8")

    do_GET = do_POST = do_PUT = do_DELETE = dispatch


def main():
    global args
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--s3-endpoint")
    p.add_argument("--access-key", default="AKIAIMGFORGETEST0001")
    p.add_argument("--secret-key", default="imgforge/test/secret/key/not/a/real/one0")
    p.add_argument("--s3-access-key", default="S3RVER")
    p.add_argument("--s3-secret-key", default="S3RVER")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--account", default="123456789012")
    p.add_argument("--import-polls", type=int, default=3)
    p.add_argument("--fail-file", help="lines ACTION STATUS CODE COUNT: failures injected on demand")
    p.add_argument("--data-dir")
    p.add_argument("--s3-front-port-file")
    p.add_argument("--extra-key", action="append", default=[], metavar="ACCESS_KEY:SECRET_KEY",
                   help="another key pair to accept (repeatable)")
    args = p.parse_args()
    args.keys = {args.access_key: args.secret_key}
    for pair in args.extra_key:
        ak, sep, sk = pair.partition(":")
        if not sep or not ak or not sk:
            sys.exit("fake-aws.py: --extra-key takes ACCESS_KEY:SECRET_KEY")
        args.keys[ak] = sk
    if args.data_dir:
        os.makedirs(args.data_dir, exist_ok=True)
    if args.s3_front_port_file:
        if not args.s3_endpoint:
            sys.exit("fake-aws.py: --s3-front-port-file needs --s3-endpoint")
        front = ThreadingHTTPServer(("127.0.0.1", 0), S3FrontHandler)
        front.daemon_threads = True
        threading.Thread(target=front.serve_forever, daemon=True).start()
        with open(args.s3_front_port_file + ".tmp", "w") as f:
            f.write("%d\n" % front.server_address[1])
        os.rename(args.s3_front_port_file + ".tmp", args.s3_front_port_file)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
