#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""fake-aws.py's own tests, driven by botocore, the AWS SDK the AWS CLI is
built on (one process: a Python start per call costs seconds on a loaded
machine). Output is TAP. Run by tests/e2e/t7005-fake-aws.sh, which starts
the peers (tests/helpers/cloud-peers.sh) and passes:

    test-fake-aws.py --data-dir DIR [--s3] [--aws-cli]

in a directory holding disk.raw (4 MiB) and disk.vmdk, sparse.vmdk (a
monolithicSparse VMDK), disk.vhd, disk.qcow2 of it; with --s3 they are
uploaded to the S3 peer (AWS_ENDPOINT_URL_S3, keys in S3_ACCESS_KEY and
S3_SECRET_KEY) first. The endpoints, keys and region come from the
environment cloud-peers.sh sets.
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError

A = None
E = os.environ
URL = E["AWS_ENDPOINT_URL_EC2"]
count = 0
failures = 0


def test(desc, fn):
    global count, failures
    count += 1
    t0 = time.monotonic()
    try:
        fn()
        print("ok %d - %s (%.1fs)" % (count, desc, time.monotonic() - t0))
    except Exception:
        failures += 1
        print("not ok %d - %s" % (count, desc))
        for line in traceback.format_exc().splitlines()[-12:]:
            print("#   " + line)
    sys.stdout.flush()


def skip(desc, why):
    global count
    count += 1
    print("ok %d - %s # SKIP %s" % (count, desc, why))


SESSION = botocore.session.get_session()  # one: it caches the service models


def client(service, key=None, secret=None, region=None, skew=0, tamper=False):
    c = SESSION.create_client(
        service, endpoint_url=URL if service != "s3" else E["AWS_ENDPOINT_URL_S3"],
        region_name=region or E["AWS_REGION"],
        aws_access_key_id=key or E["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or E["AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
    if skew:
        # Sign as if the clock were `skew` seconds off: botocore's signer reads
        # datetime.datetime.utcnow() (or .now()), moved for the call only.
        real = datetime.datetime

        class Skewed(real):
            @classmethod
            def utcnow(cls):
                return real.utcnow() + datetime.timedelta(seconds=skew)

            @classmethod
            def now(cls, tz=None):
                return real.now(tz) + datetime.timedelta(seconds=skew)

        def on(**kw):
            botocore.auth.datetime.datetime = Skewed

        def off(**kw):
            botocore.auth.datetime.datetime = real
        c.meta.events.register("before-sign", on)
        c.meta.events.register("before-send", off)
    if tamper:
        def change(request, **kw):
            body = request.body or b""
            if hasattr(body, "read"):
                body = body.read()
            request.body = (body if isinstance(body, bytes) else body.encode()) + b"x"
            request.headers["Content-Length"] = str(len(request.body))
        c.meta.events.register("before-send", change)
    return c


def refused(fn, status, code, message=None):
    """fn() fails with this HTTP status and AWS error code."""
    try:
        fn()
    except ClientError as e:
        got = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
        assert got == (status, code), "got %s, expected %s" % (got, (status, code))
        if message:
            assert message in e.response["Error"]["Message"], e.response["Error"]["Message"]
        return e
    raise AssertionError("accepted; expected %d %s" % (status, code))


def raw(body, service="ec2", path="/", method="POST", headers=None, sign=True):
    """A request botocore's client would not send, signed by botocore's signer."""
    h = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    h.update(headers or {})
    req = botocore.awsrequest.AWSRequest(method=method, url=URL + path, data=body.encode(), headers=h)
    if sign:
        creds = botocore.credentials.Credentials(E["AWS_ACCESS_KEY_ID"], E["AWS_SECRET_ACCESS_KEY"])
        botocore.auth.SigV4Auth(creds, service, E["AWS_REGION"]).add_auth(req)
    p = req.prepare()
    r = urllib.request.Request(p.url, data=p.body, headers=dict(p.headers), method=method)
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    global A
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", required=True)
    p.add_argument("--s3", action="store_true")
    p.add_argument("--aws-cli", action="store_true")
    A = p.parse_args()
    ec2, ebs = client("ec2"), client("ebs")
    no_s3 = "s3rver is not installed (make deps installs it in build/tools/s3rver)"
    disk = open("disk.raw", "rb").read()

    if A.s3:
        def upload():
            s3 = client("s3")
            s3.create_bucket(Bucket="images")
            for f in ("disk.raw", "disk.vmdk", "sparse.vmdk", "disk.vhd", "disk.qcow2"):
                with open(f, "rb") as b:
                    s3.put_object(Bucket="images", Key=f, Body=b)
        test("setup: the disk in every format, in the S3 peer", upload)

        def front():
            s3 = client("s3")
            big = os.urandom(6 << 20)

            def multipart(chunks):
                up = s3.create_multipart_upload(Bucket="images", Key="multi")["UploadId"]
                parts = [{"PartNumber": n, "ETag": s3.upload_part(
                    Bucket="images", Key="multi", UploadId=up, PartNumber=n, Body=c)["ETag"]}
                    for n, c in enumerate(chunks, 1)]
                s3.complete_multipart_upload(Bucket="images", Key="multi", UploadId=up,
                                             MultipartUpload={"Parts": parts})
            # Every part but the last must be 5 MiB at least: s3rver does not say so, S3 does.
            refused(lambda: multipart([big[:1 << 20], big[1 << 20:]]), 400, "EntityTooSmall")
            multipart([big[:5 << 20], big[5 << 20:]])
            assert s3.get_object(Bucket="images", Key="multi")["Body"].read() == big
            put = lambda c: c.put_object(Bucket="images", Key="x", Body=b"x")
            refused(lambda: put(client("s3", secret="wrong")), 403, "SignatureDoesNotMatch")
            refused(lambda: put(client("s3", key="AKIAUNKNOWNKEY000000")), 403, "InvalidAccessKeyId")
            # botocore follows S3's answer to a wrong region (AuthorizationHeaderMalformed
            # naming the right one) and signs again: the front's log shows both.
            put(client("s3", region="eu-west-1"))
            log = [json.loads(line) for line in open(E["FAKE_S3_LOG"])]
            assert [r["error"] for r in log[-2:]] == ["AuthorizationHeaderMalformed", None], log[-2:]
            refused(lambda: put(client("s3", tamper=True)), 400, "XAmzContentSHA256Mismatch")
            refused(lambda: put(client("s3", skew=-1200)), 403, "RequestTimeTooSkewed")
        test("s3 front: multipart uploads (parts under 5 MiB refused); bad keys, region, body, clock refused as S3 does",
             front)

    # --- signatures ---------------------------------------------------------------------

    test("ec2: a signed request is accepted",
         lambda: ec2.describe_images()["Images"] == [] or None)

    def unsigned():
        st, body = raw("Action=DescribeImages&Version=2016-11-15", sign=False)
        assert st == 401 and "<Response><Errors><Error><Code>AuthFailure</Code>" in body, (st, body)
        assert "<RequestID>" in body
    test("ec2: an unsigned request is refused: 401 AuthFailure", unsigned)

    test("ec2: a wrong secret key is refused: 403 SignatureDoesNotMatch",
         lambda: refused(client("ec2", secret="wrong").describe_images, 403, "SignatureDoesNotMatch",
                         "The request signature we calculated does not match"))
    test("ec2: an unknown access key is refused: 401 AuthFailure",
         lambda: refused(client("ec2", key="AKIAUNKNOWNKEY000000").describe_images, 401, "AuthFailure",
                         "AWS was not able to validate the provided access credentials"))
    test("ec2: a body changed after signing is refused",
         lambda: refused(client("ec2", tamper=True).describe_images, 403, "SignatureDoesNotMatch"))
    test("ec2: a credential scope for another region is refused",
         lambda: refused(client("ec2", region="eu-west-1").describe_images, 403, "SignatureDoesNotMatch"))

    def clock():
        refused(client("ec2", skew=1200).describe_images, 400, "RequestExpired")
        refused(client("ec2", skew=-1200).describe_images, 400, "RequestExpired")
        client("ec2", skew=600).describe_images()
        client("ec2", skew=-600).describe_images()
    test("ec2: a clock 20 minutes off is refused (RequestExpired), 10 minutes off is not", clock)

    def ebs_sig():
        refused(lambda: client("ebs", secret="wrong").start_snapshot(VolumeSize=1), 403,
                "InvalidSignatureException")
        refused(lambda: client("ebs", key="AKIAUNKNOWNKEY000000").start_snapshot(VolumeSize=1), 403,
                "UnrecognizedClientException")
        e = refused(lambda: client("ebs", skew=-1200).start_snapshot(VolumeSize=1), 403,
                    "InvalidSignatureException")
        assert "Signature expired: " in e.response["Error"]["Message"], e.response
        refused(lambda: client("ebs", tamper=True).start_snapshot(VolumeSize=1), 403,
                "InvalidSignatureException")
        st, body = raw('{"VolumeSize": 1}', path="/snapshots", sign=False)
        assert st == 403 and "Missing Authentication Token" in body, (st, body)
    test("ebs: signatures are checked with the ebs service name", ebs_sig)

    def cross():
        st, body = raw("Action=DescribeImages&Version=2016-11-15", service="ebs")
        assert st == 403 and "<Code>SignatureDoesNotMatch</Code>" in body, (st, body)
        st, body = raw('{"VolumeSize": 1}', service="ec2", path="/snapshots",
                       headers={"Content-Type": "application/json"})
        assert st == 403, (st, body)
    test("a request signed for one service is refused by the other", cross)

    def libcurl():
        # A second, independent SigV4 signer: libcurl's (curl --aws-sigv4). The
        # query is in sorted order: curl 7.88 signs it as given, AWS sorts it.
        def curl(service, *a, secret=None):
            r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:%s:%s" % (
                E["AWS_REGION"], service), "--user", "%s:%s" % (E["AWS_ACCESS_KEY_ID"],
                                                              secret or E["AWS_SECRET_ACCESS_KEY"])] + list(a),
                capture_output=True, text=True, check=True)
            return r.stdout.rsplit("\n", 1)[1], r.stdout
        st, out = curl("ec2", "-d", "Action=DescribeImages&Version=2016-11-15", URL + "/")
        assert st == "200" and "<DescribeImagesResponse" in out, out
        st, out = curl("ec2", URL + "/?Action=DescribeImages&Owner.1=self&Version=2016-11-15")
        assert st == "200", out
        st, out = curl("ebs", "-H", "Content-Type: application/json", "-d", '{"VolumeSize": 1}', URL + "/snapshots")
        assert st == "201" and '"Status": "pending"' in out, out
        st, out = curl("ec2", "-d", "Action=DescribeImages&Version=2016-11-15", URL + "/", secret="wrong")
        assert st == "403" and "SignatureDoesNotMatch" in out, out
    test("curl --aws-sigv4 (libcurl's signer): EC2 POST and GET, EBS StartSnapshot; a wrong key refused",
         libcurl)

    # --- EC2 parameters ------------------------------------------------------------------

    def params():
        for q, st, code in (
                ("Action=DescribeImages&Version=2016-11-15&Bogus=1", 400, "UnknownParameter"),
                ("Action=RegisterImage&Version=2016-11-15&RootDeviceName=/dev/xvda", 400, "MissingParameter"),
                ("Action=DescribeImages", 400, "MissingParameter"),
                ("Action=RunInstances&Version=2016-11-15", 400, "InvalidAction"),
                ("Action=DescribeImages&Version=2016-11-15&DryRun=true", 412, "DryRunOperation"),
                ("Action=RegisterImage&Version=2016-11-15&Name=x", 400, "InvalidAMIName.Malformed")):
            s, body = raw(q)
            assert s == st and "<Code>%s</Code>" % code in body, (q, s, body)
        refused(lambda: ec2.describe_images(ImageIds=["ami-0123456789abcdef0"]), 400, "InvalidAMIID.NotFound")
        refused(lambda: ec2.describe_images(ImageIds=["ami-zz"]), 400, "InvalidAMIID.Malformed")
        refused(lambda: ec2.import_snapshot(DiskContainer={"Format": "QCOW2", "UserBucket": {
            "S3Bucket": "images", "S3Key": "disk.qcow2"}}), 400, "InvalidParameterValue")
        refused(lambda: ec2.import_snapshot(DiskContainer={"Format": "VMDK"}), 400, "MissingParameter")
    test("ec2: unknown, missing and malformed parameters are refused with AWS's codes", params)

    # --- ImportSnapshot -----------------------------------------------------------------------

    def import_wait(fmt, key):
        r = ec2.import_snapshot(Description="imgforge test", DiskContainer={
            "Format": fmt, "UserBucket": {"S3Bucket": "images", "S3Key": key}},
            TagSpecifications=[{"ResourceType": "import-snapshot-task",
                                "Tags": [{"Key": "imgforge:build", "Value": "b1"}]}])
        assert r["SnapshotTaskDetail"]["Status"] == "active", r
        seen = set()
        for _ in range(300):
            t = ec2.describe_import_snapshot_tasks(ImportTaskIds=[r["ImportTaskId"]])["ImportSnapshotTasks"][0]
            d = t["SnapshotTaskDetail"]
            assert t["Tags"] == [{"Key": "imgforge:build", "Value": "b1"}], t
            seen.add(d["Status"])
            if d["Status"] != "active":
                assert "active" in seen, "no active answer before %s" % d["Status"]
                return d
            time.sleep(0.05)
        raise AssertionError("the import did not end")

    snaps = {}
    if A.s3:
        for fmt, key in (("VMDK", "disk.vmdk"), ("VHD", "disk.vhd"), ("RAW", "disk.raw")):
            def one(fmt=fmt, key=key):
                d = import_wait(fmt, key)
                assert d["Status"] == "completed" and d["SnapshotId"].startswith("snap-"), d
                assert d["Format"] == fmt and d["UserBucket"] == {"S3Bucket": "images", "S3Key": key}, d
                with open(os.path.join(A.data_dir, d["SnapshotId"] + ".raw"), "rb") as f:
                    assert f.read(len(disk)) == disk, "the snapshot does not hold the disk"
                snaps[fmt] = d["SnapshotId"]
            test("ec2: ImportSnapshot of a %s completes with the disk's data" % fmt, one)

        def failing():
            for fmt, key, msg in (("RAW", "disk.vmdk", "ClientError: Disk validation failed"),
                                  ("VHD", "disk.vmdk", "ClientError: Disk validation failed"),
                                  ("VMDK", "sparse.vmdk", "not streamOptimized"),
                                  ("VMDK", "disk.raw", "ClientError: Disk validation failed"),
                                  ("VMDK", "nosuch.vmdk", "ClientError: Unable to access the S3 object")):
                d = import_wait(fmt, key)
                assert d["Status"] == "deleted" and msg in d.get("StatusMessage", ""), (fmt, key, d)
        test("ec2: ImportSnapshot ends 'deleted' like VM Import: wrong format, missing object", failing)
    else:
        skip("ec2: ImportSnapshot reads its object from the S3 peer", no_s3)

    # --- EBS direct APIs: the blocks of disk.raw that are not zero ---------------------------

    def put_all(sid, mode=""):
        digests = []
        for i in range(len(disk) // 524288):
            blk = disk[i * 524288:(i + 1) * 524288]
            if not blk.strip(b"\0"):
                continue
            d = hashlib.sha256(blk).digest()
            digests.append(d)
            ck = hashlib.sha256(b"x").digest() if mode == "bad-checksum" else d
            ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=i, BlockData=blk, DataLength=524288,
                                   Checksum=base64.b64encode(ck).decode(), ChecksumAlgorithm="SHA256",
                                   Progress=50)
        agg = hashlib.sha256(b"".join(digests[::-1] if mode == "bad-aggregate" else digests)).digest()
        return ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=len(digests) + (mode == "bad-count"),
                                     Checksum=base64.b64encode(agg).decode(), ChecksumAlgorithm="SHA256",
                                     ChecksumAggregationMethod="LINEAR")

    def ebs_ok():
        r = ebs.start_snapshot(VolumeSize=1, Description="imgforge test",
                               Tags=[{"Key": "imgforge:build", "Value": "b1"}])
        assert r["Status"] == "pending" and r["BlockSize"] == 524288 and r["VolumeSize"] == 1, r
        sid = r["SnapshotId"]
        assert put_all(sid)["Status"] == "pending"
        assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "pending"
        assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed"
        with open(os.path.join(A.data_dir, sid + ".raw"), "rb") as f:
            assert f.read(len(disk)) == disk
        blk = disk[:524288]
        refused(lambda: ebs.put_snapshot_block(
            SnapshotId=sid, BlockIndex=0, BlockData=blk, DataLength=524288,
            Checksum=base64.b64encode(hashlib.sha256(blk).digest()).decode(), ChecksumAlgorithm="SHA256"),
            400, "ValidationException")
        snaps["EBS"] = sid
    test("ebs: StartSnapshot, PutSnapshotBlock, CompleteSnapshot; pending, then completed", ebs_ok)

    def ebs_bad():
        for mode in ("bad-checksum", "bad-aggregate", "bad-count"):
            sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
            refused(lambda: put_all(sid, mode), 400, "ValidationException")
        short = disk[:4096]
        refused(lambda: ebs.put_snapshot_block(
            SnapshotId=sid, BlockIndex=0, BlockData=short, DataLength=4096,
            Checksum=base64.b64encode(hashlib.sha256(short).digest()).decode(), ChecksumAlgorithm="SHA256"),
            400, "ValidationException")
        blk = disk[:524288]
        ck = base64.b64encode(hashlib.sha256(blk).digest()).decode()
        refused(lambda: ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=4096, BlockData=blk,
                                               DataLength=524288, Checksum=ck, ChecksumAlgorithm="SHA256"),
                400, "ValidationException")
        refused(lambda: ebs.put_snapshot_block(SnapshotId="snap-0123456789abcdef0", BlockIndex=0, BlockData=blk,
                                               DataLength=524288, Checksum=ck, ChecksumAlgorithm="SHA256"),
                404, "ResourceNotFoundException")
    test("ebs: a wrong checksum, aggregate, block count, size or index is refused", ebs_bad)

    # --- RegisterImage, tags, DescribeImages -------------------------------------------------

    def register():
        sid = snaps["EBS"]
        # As a Query: the SDK of Debian 12 (botocore 1.29) has no TagSpecifications
        # for RegisterImage yet, the service has.
        st, body = raw("Action=RegisterImage&Version=2016-11-15&Name=imgforge-demo-1&Architecture=x86_64"
                       "&RootDeviceName=%2Fdev%2Fxvda&VirtualizationType=hvm&EnaSupport=true&BootMode=uefi"
                       "&BlockDeviceMapping.1.DeviceName=%2Fdev%2Fxvda&BlockDeviceMapping.1.Ebs.SnapshotId=" + sid +
                       "&BlockDeviceMapping.1.Ebs.VolumeType=gp3&BlockDeviceMapping.1.Ebs.DeleteOnTermination=true"
                       "&TagSpecification.1.ResourceType=image&TagSpecification.1.Tag.1.Key=imgforge%3Abuild"
                       "&TagSpecification.1.Tag.1.Value=b1")
        assert st == 200, body
        ami = re.search(r"<imageId>(ami-[0-9a-f]+)</imageId>", body).group(1)
        assert ami.startswith("ami-")
        img = ec2.describe_images(ImageIds=[ami])["Images"][0]
        assert img["State"] == "available" and img["BootMode"] == "uefi" and img["EnaSupport"] is True, img
        assert img["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"] == sid, img
        f = lambda v: ec2.describe_images(Filters=[{"Name": "tag:imgforge:build", "Values": [v]}])["Images"]
        assert [i["ImageId"] for i in f("b1")] == [ami] and f("b2") == []
        ec2.create_tags(Resources=[ami, sid], Tags=[{"Key": "Name", "Value": "demo"}])
        assert ec2.describe_images(Filters=[{"Name": "tag:Name", "Values": ["demo"]}])["Images"][0]["ImageId"] == ami
        ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
        assert ec2.describe_images(ImageIds=[ami])["Images"][0]["Public"] is True
        refused(lambda: ec2.create_tags(Resources=["ami-0123456789abcdef0"], Tags=[{"Key": "a", "Value": "b"}]),
                400, "InvalidAMIID.NotFound")
    test("ec2: RegisterImage from a snapshot; DescribeImages by id and by tag; CreateTags", register)

    def register_bad():
        sid = snaps["EBS"]
        bdm = [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": sid}}]
        refused(lambda: ec2.register_image(Name="imgforge-demo-1", RootDeviceName="/dev/xvda",
                                           BlockDeviceMappings=bdm), 400, "InvalidAMIName.Duplicate")
        refused(lambda: ec2.register_image(Name="imgforge-2", RootDeviceName="/dev/sda1",
                                           BlockDeviceMappings=bdm), 400, "InvalidBlockDeviceMapping")
        refused(lambda: ec2.register_image(Name="imgforge-2", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}]),
            400, "InvalidSnapshot.NotFound")
        pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
        refused(lambda: ec2.register_image(Name="imgforge-2", RootDeviceName="/dev/xvda", BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": pending}}]), 400, "IncorrectState")
        st, body = raw("Action=RegisterImage&Version=2016-11-15&Name=imgforge-2&RootDeviceName=/dev/xvda"
                       "&BootMode=bios&BlockDeviceMapping.1.DeviceName=/dev/xvda"
                       "&BlockDeviceMapping.1.Ebs.SnapshotId=" + sid)
        assert st == 400 and "<Code>InvalidParameterValue</Code>" in body, body
    test("ec2: RegisterImage refuses a duplicate name, a root not mapped, an unknown or pending "
         "snapshot, a bad boot mode", register_bad)

    # --- the AWS CLI ---------------------------------------------------------------------------

    if A.aws_cli:
        def cli():
            run = lambda *a, **kw: subprocess.run(["aws"] + list(a) + ["--endpoint-url", URL, "--output", "json"],
                                                  capture_output=True, text=True, **kw)
            # Two calls: a CLI start costs seconds on a loaded machine.
            r = run("ebs", "start-snapshot", "--volume-size", "2")
            assert r.returncode == 0 and json.loads(r.stdout)["Status"] == "pending", r
            if A.s3:
                r = run("ec2", "import-snapshot", "--disk-container",
                        "Format=VMDK,UserBucket={S3Bucket=images,S3Key=disk.vmdk}")
                assert r.returncode == 0 and json.loads(r.stdout)["ImportTaskId"].startswith("import-snap-"), r
            else:
                r = run("ec2", "describe-images", "--filters", "Name=tag:imgforge:build,Values=b1")
                assert r.returncode == 0 and '"ImageId": "ami-' in r.stdout, r
        test("aws CLI: ebs start-snapshot, ec2 import-snapshot", cli)
    else:
        skip("aws CLI: the same calls through the CLI", "no aws command (optional: botocore is the CLI's SDK)")

    def log():
        seen = {}
        for line in open(E["FAKE_AWS_LOG"]):
            r = json.loads(line)
            assert set(r) == {"service", "action", "params", "status", "error"}, r
            assert E["AWS_SECRET_ACCESS_KEY"] not in line
            seen.setdefault((r["service"], r["action"]), []).append(r)
        ok = [r for r in seen[("ec2", "RegisterImage")] if r["status"] == 200]
        assert ok and ok[0]["params"]["BootMode"] == "uefi", ok
        assert ok[0]["params"]["BlockDeviceMapping.1.DeviceName"] == "/dev/xvda", ok
        assert any(r["params"].get("Checksum") for r in seen[("ebs", "PutSnapshotBlock")])
        assert any(r["error"] == "SignatureDoesNotMatch" for r in seen[("ec2", "DescribeImages")])
        if A.s3:
            assert any(r["params"].get("DiskContainer.Format") == "VMDK" for r in seen[("ec2", "ImportSnapshot")])
    test("fake-aws: the request log names each call, never a secret", log)

    print("1..%d" % count)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
