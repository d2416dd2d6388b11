#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stand-in for Scaleway's Instance API v1 (snapshots, images) and the Block
Storage API's snapshot import, for imgforge's publish tests, on loopback only.

    fake-scaleway.py --port-file FILE [--log FILE] [--s3-endpoint URL]
                     [--secret-key UUID] [--project UUID]
                     [--s3-access-key AK] [--s3-secret-key SK]
                     [--import-polls N] [--data-dir DIR]

Point SCW_API_URL at http://127.0.0.1:PORT. Every request must carry
X-Auth-Token: the --secret-key; anything else is answered 401
{"message": "authentication is denied", "method": "api_key", "reason":
"invalid_argument"|"not_found", "type": "denied_authentication"} as Scaleway
does. A project other than --project is 403 "permissions_denied".

    POST   /instance/v1/zones/{zone}/snapshots        {name, project, volume_type
           (l_ssd|b_ssd|unified), bucket, key, size, tags}: import a QCOW2
           object -> 201 {"snapshot": {.. "state": "importing"}, "task": {..}}
    GET    /instance/v1/zones/{zone}/snapshots/{id}   importing -> available
           (or "error" with error_reason) over --import-polls answers
    DELETE /instance/v1/zones/{zone}/snapshots/{id}
    POST   /block/v1alpha1/zones/{zone}/snapshots/import-from-object-storage
           (and /block/v1/...) {bucket, key, name, project_id, tags, size}:
           201 Snapshot {"status": "creating", "class": "sbs", ..}
    GET    /block/v1alpha1/zones/{zone}/snapshots/{id} creating -> available|error
    POST   /instance/v1/zones/{zone}/images           {name, root_volume (an
           instance snapshot, or a block snapshot: "sbs_snapshot"), arch,
           project, public, tags, extra_volumes} -> 201 {"image": {..}}
    GET    /instance/v1/zones/{zone}/images[/{id}]    (?name= ?project= ?arch=
           ?public= ?tags=) creating -> available
    DELETE /instance/v1/zones/{zone}/images/{id}

The import reads bucket/key from the S3 peer (--s3-endpoint, path style) as
Object Storage in the zone's region would, and checks it is QCOW2 ("QFI\\xfb",
version 2 or 3) with a virtual size that fits `size` (a multiple of 512).
With --data-dir and qemu-img on PATH, the object is converted to
DIR/<snapshot-id>.raw by qemu-img. Errors have Scaleway's shapes:
invalid_arguments (400, with details), not_found (404, resource and
resource_id), transient_state (409), permissions_denied (403).

Each request is appended to --log as one JSON object per line:
    {"method": "POST", "path": "/instance/v1/...", "action": "CreateSnapshot",
     "body": {...}, "query": {...}, "status": 201, "error": null|"type"}
never with the X-Auth-Token.
"""
import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

args = None
lock = threading.Lock()
log_lock = threading.Lock()
snapshots = {}  # id -> dict (instance and block snapshots)
images = {}  # id -> dict

ZONES = {"fr-par-1", "fr-par-2", "fr-par-3", "nl-ams-1", "nl-ams-2", "nl-ams-3",
         "pl-waw-1", "pl-waw-2", "pl-waw-3"}
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(body.get("message"))
        self.status, self.body = status, body


def invalid(name, reason, help_message):
    return ApiError(400, {"details": [{"argument_name": name, "reason": reason,
                                       "help_message": help_message}],
                          "message": "invalid argument(s)", "type": "invalid_arguments"})


def not_found(resource, rid):
    return ApiError(404, {"message": "resource is not found", "resource": resource,
                          "resource_id": rid, "type": "not_found"})


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def record(method, path, action, body, query, status, error):
    if not args.log:
        return
    line = json.dumps({"method": method, "path": path, "action": action, "body": body,
                       "query": query, "status": status, "error": error}, sort_keys=True)
    with log_lock, open(args.log, "a") as f:
        f.write(line + "\n")


# --- the import ----------------------------------------------------------------------


_s3 = None
_s3_lock = threading.Lock()


def s3_client():
    """One client for the process: botocore loads its models once, calls are thread-safe."""
    global _s3
    with _s3_lock:
        if _s3 is None:
            import botocore.session
            from botocore.config import Config
            _s3 = botocore.session.get_session().create_client(
                "s3", endpoint_url=args.s3_endpoint, region_name="fr-par",
                aws_access_key_id=args.s3_access_key, aws_secret_access_key=args.s3_secret_key,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        return _s3


def s3_fetch(bucket, key, dest):
    """Copy bucket/key to dest; None or why the import fails."""
    if not args.s3_endpoint:
        return "no Object Storage endpoint configured"
    try:
        c = s3_client()
    except ImportError:
        return "python3-botocore is missing on the test host"
    try:
        obj = c.get_object(Bucket=bucket, Key=key)
    except Exception as e:
        code = getattr(e, "response", {}).get("Error", {}).get("Code", type(e).__name__)
        return "cannot read object %s/%s: %s" % (bucket, key, code)
    with open(dest, "wb") as f:
        for chunk in iter(lambda: obj["Body"].read(1 << 20), b""):
            f.write(chunk)
    return None


def run_import(sid):
    with lock:
        s = snapshots[sid]
        bucket, key, size = s["_bucket"], s["_key"], s["_want_size"]
    tmpdir = tempfile.mkdtemp(prefix="fake-scw-")
    err, vsize = None, 0
    try:
        src = os.path.join(tmpdir, "disk")
        err = s3_fetch(bucket, key, src)
        if not err:
            with open(src, "rb") as f:
                head = f.read(32)
            if head[:4] != b"QFI\xfb":
                err = "invalid QCOW2 image: bad magic"
            elif int.from_bytes(head[4:8], "big") not in (2, 3):
                err = "invalid QCOW2 image: version %d" % int.from_bytes(head[4:8], "big")
            else:
                vsize = int.from_bytes(head[24:32], "big")
                if size is not None and vsize > size:
                    err = "image virtual size %d is larger than the requested size %d" % (vsize, size)
        if not err and args.data_dir and shutil.which("qemu-img"):
            r = subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", src,
                                os.path.join(args.data_dir, sid + ".raw")],
                               capture_output=True, text=True)
            if r.returncode:
                err = "invalid QCOW2 image: " + r.stderr.strip()
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if err:
        sys.stderr.write("fake-scaleway.py: import of snapshot %s fails: %s\n" % (sid, err))
        sys.stderr.flush()
    with lock:
        s["_ready"] = True
        s["_error"] = err
        if not err and size is None:
            s["size"] = vsize


def advance(s):
    """One more GET of an importing snapshot: its state after it."""
    if s["_ready"]:
        s["_polls"] += 1
        if s["_polls"] >= args.import_polls:
            ok = s["_error"] is None
            if s["class"] == "sbs":
                s["status"] = "available" if ok else "error"
            else:
                s["state"] = "available" if ok else "error"
                s["error_reason"] = s["_error"]
            s["modification_date" if s["class"] != "sbs" else "updated_at"] = now()


def public(s):
    return {k: v for k, v in s.items() if not k.startswith("_") and k != "class"} \
        if s["class"] != "sbs" else {k: v for k, v in s.items() if not k.startswith("_")}


# --- request checks ------------------------------------------------------------------------


def check_project(body, name):
    p = body.get(name)
    if p is None and name == "project" and body.get("organization") is not None:
        p = body["organization"]
    if p is None:
        raise invalid(name, "required", "project is required (or organization)")
    if not isinstance(p, str) or not UUID_RE.match(p):
        raise invalid(name, "constraint", "must be a valid UUID")
    if p != args.project:
        raise ApiError(403, {"message": "insufficient permissions", "type": "permissions_denied",
                             "details": [{"resource": "instance", "action": "write"}]})
    return p


def check_name(body):
    n = body.get("name")
    if n is None:
        return "snp-" + uuid.uuid4().hex[:12]
    if not isinstance(n, str) or not 1 <= len(n) <= 255:
        raise invalid("name", "constraint", "must be a string of 1 to 255 characters")
    return n


def check_tags(body):
    t = body.get("tags", [])
    if not isinstance(t, list) or not all(isinstance(x, str) for x in t):
        raise invalid("tags", "constraint", "must be a list of strings")
    return t


def check_import(body):
    for k in ("bucket", "key"):
        if not isinstance(body.get(k), str) or not body[k]:
            raise invalid(k, "required", "%s is required to import from Object Storage" % k)
    size = body.get("size")
    if size is not None and (not isinstance(size, int) or size <= 0 or size % 512):
        raise invalid("size", "constraint", "must be a positive multiple of 512 (bytes)")
    return size


def zone_of(z):
    if z not in ZONES:
        raise invalid("zone", "constraint", "unknown zone '%s'" % z)
    return z


# --- handlers ----------------------------------------------------------------------------


def create_instance_snapshot(zone, body, query):
    known = {"name", "volume_id", "tags", "project", "organization", "volume_type", "bucket", "key", "size"}
    for k in body:
        if k not in known:
            raise invalid(k, "unknown", "unknown field")
    if body.get("volume_id") is not None:
        raise invalid("volume_id", "constraint", "this peer only imports from Object Storage")
    vt = body.get("volume_type", "unknown_volume_type")
    if vt not in ("l_ssd", "b_ssd", "unified"):
        raise invalid("volume_type", "constraint", "volume_type must be one of l_ssd, b_ssd, unified "
                      "for an import (got '%s')" % vt)
    size = check_import(body)
    if size is None:
        raise invalid("size", "required", "size is required to import from Object Storage")
    proj = check_project(body, "project")
    sid = str(uuid.uuid4())
    s = {"id": sid, "name": check_name(body), "organization": proj, "project": proj,
         "tags": check_tags(body), "volume_type": vt, "size": size, "state": "importing",
         "base_volume": None, "creation_date": now(), "modification_date": now(), "zone": zone,
         "error_reason": None, "class": "instance",
         "_bucket": body["bucket"], "_key": body["key"], "_want_size": size, "_ready": False,
         "_polls": 0, "_error": None}
    with lock:
        snapshots[sid] = s
    threading.Thread(target=run_import, args=(sid,), daemon=True).start()
    task = {"id": str(uuid.uuid4()), "description": "import_snapshot", "progress": 0,
            "started_at": now(), "terminated_at": None, "status": "pending",
            "href_from": "/snapshots/" + sid, "href_result": "snapshots/" + sid, "zone": zone}
    with lock:
        return 201, {"snapshot": public(s), "task": task}


def get_instance_snapshot(zone, sid, query):
    with lock:
        s = snapshots.get(sid)
        if s is None or s["class"] == "sbs" or s["zone"] != zone:
            raise not_found("instance_snapshot", sid)
        if s["state"] == "importing":
            advance(s)
        return 200, {"snapshot": public(s)}


def delete_snapshot(zone, sid, query, cls):
    with lock:
        s = snapshots.get(sid)
        if s is None or (s["class"] == "sbs") != (cls == "sbs") or s["zone"] != zone:
            raise not_found("instance_snapshot" if cls != "sbs" else "snapshot", sid)
        for img in images.values():
            if img["root_volume"]["id"] == sid:
                raise ApiError(412, {"message": "snapshot is in use by image %s" % img["id"],
                                     "type": "precondition_failed", "precondition": "resource_still_in_use"})
        del snapshots[sid]
    return 204, None


def import_block_snapshot(zone, body, query):
    known = {"bucket", "key", "name", "project_id", "tags", "size"}
    for k in body:
        if k not in known:
            raise invalid(k, "unknown", "unknown field")
    size = check_import(body)
    proj = check_project(body, "project_id")
    if body.get("name") is None:
        raise invalid("name", "required", "name is required")
    sid = str(uuid.uuid4())
    s = {"id": sid, "name": check_name(body), "parent_volume": None, "size": size or 0,
         "project_id": proj, "created_at": now(), "updated_at": now(), "references": [],
         "status": "creating", "tags": check_tags(body), "zone": zone, "class": "sbs",
         "_bucket": body["bucket"], "_key": body["key"], "_want_size": size, "_ready": False,
         "_polls": 0, "_error": None}
    with lock:
        snapshots[sid] = s
    threading.Thread(target=run_import, args=(sid,), daemon=True).start()
    with lock:
        return 201, public(s)


def get_block_snapshot(zone, sid, query):
    with lock:
        s = snapshots.get(sid)
        if s is None or s["class"] != "sbs" or s["zone"] != zone:
            raise not_found("snapshot", sid)
        if s["status"] == "creating":
            advance(s)
        return 200, public(s)


def image_view(img):
    return {k: v for k, v in img.items() if not k.startswith("_")}


def create_image(zone, body, query):
    known = {"name", "root_volume", "arch", "extra_volumes", "organization", "project", "tags", "public",
             "default_bootscript"}
    for k in body:
        if k not in known:
            raise invalid(k, "unknown", "unknown field")
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise invalid("name", "required", "name is required")
    arch = body.get("arch")
    if arch not in ("x86_64", "arm", "arm64"):
        raise invalid("arch", "constraint" if arch else "required", "arch must be x86_64, arm or arm64")
    root = body.get("root_volume")
    if not isinstance(root, str) or not UUID_RE.match(root):
        raise invalid("root_volume", "required" if root is None else "constraint",
                      "root_volume must be the UUID of a snapshot")
    if body.get("extra_volumes") not in (None, {}):
        raise invalid("extra_volumes", "constraint", "this peer takes no extra volumes")
    pub = body.get("public", False)
    if not isinstance(pub, bool):
        raise invalid("public", "constraint", "must be a boolean")
    proj = check_project(body, "project")
    tags = check_tags(body)
    with lock:
        s = snapshots.get(root)
        if s is None or s["zone"] != zone:
            raise not_found("instance_snapshot", root)
        st = s["status"] if s["class"] == "sbs" else s["state"]
        if st != "available":
            raise ApiError(409, {"message": "resource is in a transient state",
                                 "resource": "instance_snapshot", "resource_id": root,
                                 "current_state": st, "type": "transient_state"}) \
                if st in ("importing", "creating") else \
                ApiError(412, {"message": "snapshot %s is in state %s" % (root, st),
                               "type": "precondition_failed", "precondition": "resource_not_usable"})
        vt = "sbs_snapshot" if s["class"] == "sbs" else s["volume_type"]
        iid = str(uuid.uuid4())
        img = {"id": iid, "name": name, "arch": arch, "creation_date": now(), "modification_date": now(),
               "default_bootscript": None, "extra_volumes": {}, "from_server": "",
               "organization": proj, "project": proj, "public": pub,
               "root_volume": {"id": root, "name": s["name"], "size": s["size"], "volume_type": vt},
               "state": "creating", "tags": tags, "zone": zone, "_polls": 0}
        images[iid] = img
        return 201, {"image": image_view(img)}


def advance_image(img):
    if img["state"] == "creating":
        img["_polls"] += 1
        if img["_polls"] >= args.import_polls:
            img["state"] = "available"


def get_image(zone, iid, query):
    with lock:
        img = images.get(iid)
        if img is None or img["zone"] != zone:
            raise not_found("instance_image", iid)
        advance_image(img)
        return 200, {"image": image_view(img)}


def list_images(zone, query):
    with lock:
        out = []
        for img in images.values():
            if img["zone"] != zone:
                continue
            if "name" in query and query["name"] not in img["name"]:
                continue
            if "project" in query and query["project"] != img["project"]:
                continue
            if "arch" in query and query["arch"] != img["arch"]:
                continue
            if "public" in query and query["public"] != ("true" if img["public"] else "false"):
                continue
            if "tags" in query and not all(t in img["tags"] for t in query["tags"].split(",")):
                continue
            advance_image(img)
            out.append(image_view(img))
        return 200, {"images": out}


def delete_image(zone, iid, query):
    with lock:
        img = images.get(iid)
        if img is None or img["zone"] != zone:
            raise not_found("instance_image", iid)
        del images[iid]
    return 204, None


Z = r"/zones/([^/]+)"
ID = r"([^/]+)"
ROUTES = [
    ("POST", r"/instance/v1%s/snapshots" % Z, "CreateSnapshot", lambda z, b, q: create_instance_snapshot(z, b, q)),
    ("GET", r"/instance/v1%s/snapshots/%s" % (Z, ID), "GetSnapshot", lambda z, i, b, q: get_instance_snapshot(z, i, q)),
    ("DELETE", r"/instance/v1%s/snapshots/%s" % (Z, ID), "DeleteSnapshot",
     lambda z, i, b, q: delete_snapshot(z, i, q, "instance")),
    ("POST", r"/block/(?:v1alpha1|v1)%s/snapshots/import-from-object-storage" % Z, "ImportSnapshotFromObjectStorage",
     lambda z, b, q: import_block_snapshot(z, b, q)),
    ("GET", r"/block/(?:v1alpha1|v1)%s/snapshots/%s" % (Z, ID), "GetBlockSnapshot",
     lambda z, i, b, q: get_block_snapshot(z, i, q)),
    ("DELETE", r"/block/(?:v1alpha1|v1)%s/snapshots/%s" % (Z, ID), "DeleteBlockSnapshot",
     lambda z, i, b, q: delete_snapshot(z, i, q, "sbs")),
    ("POST", r"/instance/v1%s/images" % Z, "CreateImage", lambda z, b, q: create_image(z, b, q)),
    ("GET", r"/instance/v1%s/images" % Z, "ListImages", lambda z, b, q: list_images(z, q)),
    ("GET", r"/instance/v1%s/images/%s" % (Z, ID), "GetImage", lambda z, i, b, q: get_image(z, i, q)),
    ("DELETE", r"/instance/v1%s/images/%s" % (Z, ID), "DeleteImage", lambda z, i, b, q: delete_image(z, i, q)),
]
ROUTES = [(m, re.compile("^" + p + "$"), n, f) for m, p, n, f in ROUTES]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "imgforge-fake-scaleway/1"

    def log_message(self, fmt, *a):
        pass

    def answer(self, status, obj, extra=None):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def dispatch(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        action, body, extra = None, None, {}
        try:
            token = self.headers.get("X-Auth-Token")
            if token is None or not UUID_RE.match(token):
                raise ApiError(401, {"message": "authentication is denied", "method": "api_key",
                                     "reason": "invalid_argument", "type": "denied_authentication"})
            if token != args.secret_key:
                raise ApiError(401, {"message": "authentication is denied", "method": "api_key",
                                     "reason": "not_found", "type": "denied_authentication"})
            route = None
            for method, pat, name, fn in ROUTES:
                m = pat.match(parts.path)
                if m and method == self.command:
                    route = (name, fn, list(m.groups()))
                    break
            if route is None:
                raise ApiError(404, {"message": "resource is not found", "resource": "route",
                                     "resource_id": "%s %s" % (self.command, parts.path), "type": "not_found"})
            action = route[0]
            if self.command == "POST":
                if not self.headers.get("Content-Type", "").startswith("application/json"):
                    raise invalid("body", "constraint", "Content-Type must be application/json")
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    raise invalid("body", "constraint", "the body is not JSON")
                if not isinstance(body, dict):
                    raise invalid("body", "constraint", "the body must be a JSON object")
            zone = zone_of(route[2][0])
            status, out = route[1](zone, *route[2][1:], body, query)
            if action == "ListImages":
                extra["X-Total-Count"] = str(len(out["images"]))
            err = None
        except ApiError as e:
            status, out, err = e.status, e.body, e.body.get("type")
        except Exception:
            # A bug of this peer, not the client's: say so loudly, as a 500.
            import traceback
            traceback.print_exc()
            sys.stderr.flush()
            status, err = 500, "internal_error"
            out = {"message": "fake-scaleway.py failed: see its stderr", "type": "internal_error"}
        record(self.command, parts.path, action, body, query, status, err)
        self.answer(status, out, extra)

    do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = dispatch


def main():
    global args
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--log")
    p.add_argument("--s3-endpoint")
    p.add_argument("--secret-key", default="11111111-2222-4333-8444-555555555555")
    p.add_argument("--project", default="66666666-7777-4888-9999-aaaaaaaaaaaa")
    p.add_argument("--s3-access-key", default="S3RVER")
    p.add_argument("--s3-secret-key", default="S3RVER")
    p.add_argument("--import-polls", type=int, default=3)
    p.add_argument("--data-dir")
    args = p.parse_args()
    if not UUID_RE.match(args.secret_key) or not UUID_RE.match(args.project):
        sys.exit("fake-scaleway.py: --secret-key and --project must be UUIDs, as Scaleway's are")
    if args.data_dir:
        os.makedirs(args.data_dir, exist_ok=True)
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
