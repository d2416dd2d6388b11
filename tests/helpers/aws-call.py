#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One AWS API call through botocore, the AWS SDK for Python, for tests.

    aws-call.py [--skew SECONDS] [--tamper] SERVICE OPERATION [JSON]
    aws-call.py --query 'Action=...&Version=...' ec2

SERVICE is a botocore service name (ec2, ebs, s3), OPERATION its API name
(ImportSnapshot, StartSnapshot, PutObject...), JSON the parameters as the SDK
takes them. A string value "@file:PATH" is the file's bytes (for BlockData,
Body). The endpoint is AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL, the
keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, the region AWS_REGION.

--query sends a Query API body as given (parameters the SDK would refuse to
send), signed with botocore's SigV4 signer, and prints the answer's status
on stderr and its body on stdout; it exits 0 for 2xx, else 1.

--skew signs the request as if the clock were SECONDS ahead (negative:
behind). --tamper changes the body after it was signed (a byte appended).

Prints the result as JSON (ResponseMetadata left out) and exits 0, or prints
"error: STATUS CODE: MESSAGE" on stderr and exits 1.
"""
import argparse
import datetime
import json
import os
import sys

import botocore.auth
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, ParamValidationError


def load(v):
    if isinstance(v, str) and v.startswith("@file:"):
        with open(v[6:], "rb") as f:
            return f.read()
    if isinstance(v, dict):
        return {k: load(x) for k, x in v.items()}
    if isinstance(v, list):
        return [load(x) for x in v]
    return v


def raw_query(a, endpoint):
    import botocore.awsrequest
    import botocore.credentials
    import urllib.error
    import urllib.request
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=endpoint.rstrip("/") + "/", data=a.query.encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    creds = botocore.credentials.Credentials(os.environ.get("AWS_ACCESS_KEY_ID"),
                                             os.environ.get("AWS_SECRET_ACCESS_KEY"))
    botocore.auth.SigV4Auth(creds, a.service, os.environ.get("AWS_REGION", "us-east-1")).add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body, headers=dict(p.headers), method="POST")
    try:
        with urllib.request.urlopen(r) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    sys.stderr.write("status: %d\n" % status)
    sys.stdout.write(body.decode() + "\n")
    return 0 if 200 <= status < 300 else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--skew", type=int, default=0)
    p.add_argument("--tamper", action="store_true")
    p.add_argument("--query")
    p.add_argument("service")
    p.add_argument("operation", nargs="?")
    p.add_argument("params", nargs="?", default="{}")
    a = p.parse_args()

    if a.skew:
        real = datetime.datetime

        class Skewed(real):
            @classmethod
            def utcnow(cls):
                return real.utcnow() + datetime.timedelta(seconds=a.skew)

            @classmethod
            def now(cls, tz=None):
                return real.now(tz) + datetime.timedelta(seconds=a.skew)

        botocore.auth.datetime.datetime = Skewed

    env = a.service.upper().replace("-", "_")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_" + env) or os.environ.get("AWS_ENDPOINT_URL")
    s = botocore.session.get_session()
    c = s.create_client(a.service, endpoint_url=endpoint,
                        region_name=os.environ.get("AWS_REGION", "us-east-1"),
                        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
                        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
                        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
    if a.query is not None:
        return raw_query(a, endpoint)
    if a.tamper:
        def tamper(request, **kw):
            body = request.body or b""
            request.body = (body if isinstance(body, bytes) else body.encode()) + b"x"
            request.headers["Content-Length"] = str(len(request.body))
        c.meta.events.register("before-send", tamper)
    try:
        r = getattr(c, botocore.xform_name(a.operation))(**load(json.loads(a.params)))
    except ClientError as e:
        err = e.response.get("Error", {})
        sys.stderr.write("error: %s %s: %s\n" % (e.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
                                                err.get("Code"), err.get("Message")))
        return 1
    except ParamValidationError as e:
        sys.stderr.write("error: the SDK refused the parameters: %s\n" % e)
        return 2
    r.pop("ResponseMetadata", None)
    for k, v in list(r.items()):
        if hasattr(v, "read"):
            r[k] = v.read().decode("latin-1")
    json.dump(r, sys.stdout, default=str, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
