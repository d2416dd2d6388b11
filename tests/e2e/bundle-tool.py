#!/usr/bin/env python3
"""Read and damage imgforge update bundles for tests/e2e/t3400-bundle.sh,
independently of imgforge: the format as docs/update.md describes it.

  bundle-tool.py extract BUNDLE IMAGE   the image, from the chunks (zstd -d) and zeros;
                                        formats 2 and 3: the chunk index checked frame by
                                        frame; format 3: each page's region digest too
  bundle-tool.py manifest BUNDLE        the manifest as JSON, with "chunks" (format 3: from
                                        the index's pages) and "pages" (format 3: each page's
                                        "at" (file offset), "size", "chunks")
  bundle-tool.py apply-patch BUNDLE SOURCE IMAGE  format 4: the image made from the
                                        earlier image SOURCE and the bundle's patch alone
                                        (zstd -d --patch-from for the data frames)
  bundle-tool.py split BUNDLE SIGNED SIG  the signed bytes [0, 24+M) and the DER signature
  bundle-tool.py layout BUNDLE          "M S PAYLOAD_OFFSET SIZE"
  bundle-tool.py flip BUNDLE OUT OFFSET [BIT]
  bundle-tool.py mutate BUNDLE OUT SEED   one seeded random mutation
"""
import hashlib
import json
import random
import struct
import subprocess
import sys


def layout(data):
    assert data[:8] == b"IMGFBND1", "magic"
    version, m, s, reserved = struct.unpack(">IIII", data[8:24])
    assert version in (1, 2, 3, 4) and reserved == 0
    return m, s, 24 + m + s


def check_index(man, payload, index):
    """Format 2: the chunk index names every frame, its stored size and digest."""
    assert len(index) == man["chunk_index"]["size"]
    assert hashlib.sha256(index).hexdigest() == man["chunk_index"]["sha256"]
    raw = subprocess.run(["zstd", "-dc"], input=index, stdout=subprocess.PIPE,
                         check=True).stdout
    fsize, dlen, n = struct.unpack(">IIQ", raw[8:24])
    assert raw[:8] == b"IMGFIDX1" and fsize == man["frame_size"] and dlen == 8
    assert len(raw) == 24 + 12 * n
    sizes = struct.unpack(">%dI" % n, raw[24:24 + 4 * n])
    digests = [raw[24 + 4 * n + 8 * i:24 + 4 * n + 8 * i + 8] for i in range(n)]
    f = pos = 0
    for c in man["chunks"]:
        for k in range(0, c["size"], fsize):
            z = payload[pos:pos + sizes[f]]
            frame = subprocess.run(["zstd", "-dc"], input=z, stdout=subprocess.PIPE,
                                   check=True).stdout
            want = min(fsize, c["size"] - k)
            assert len(frame) == want
            blocks = b"".join(hashlib.sha256(frame[b:b + 4096]).digest()
                              for b in range(0, len(frame), 4096))
            assert hashlib.sha256(blocks).digest()[:8] == digests[f]
            pos += sizes[f]
            f += 1
    assert f == n and pos == len(payload)


def zstd_d(z):
    return subprocess.run(["zstd", "-dc"], input=z, stdout=subprocess.PIPE, check=True).stdout


def read_pages(data, man, at):
    """Format 3: the directory at `at` and every page; fills man["chunks"] and man["pages"],
    returns (frame sizes, frame digests, region digests)."""
    ci, cs, size = man["chunk_index"], man["chunk_size"], man["image"]["size"]
    per = ci["page_chunks"]
    n = -(-size // (per * cs))
    dlen = 24 + 80 * n
    d = data[at:at + dlen]
    assert hashlib.sha256(d).hexdigest() == ci["sha256"], "directory digest"
    assert d[:8] == b"IMGFDIR1"
    p_chunks, n_pages, pages_size = struct.unpack(">IIQ", d[8:24])
    assert p_chunks == per and n_pages == n and pages_size == ci["size"] - dlen
    chunks, pages, sizes, digests, regions = [], [], [], [], []
    pos = at + dlen
    for i in range(n):
        soff, nc, psize = struct.unpack(">QII", d[24 + 80 * i:24 + 80 * i + 16])
        sha, region = d[24 + 80 * i + 16:24 + 80 * i + 48], d[24 + 80 * i + 48:24 + 80 * i + 80]
        regions.append(region)
        pages.append({"at": pos, "size": psize, "chunks": nc})
        if nc == 0:
            assert psize == 0
            continue
        z = data[pos:pos + psize]
        assert hashlib.sha256(z).digest() == sha, "page digest"
        raw = zstd_d(z)
        assert raw[:8] == b"IMGFPAG1" and struct.unpack(">II", raw[8:16]) == (i, nc)
        nums = struct.unpack(">%dI" % nc, raw[16:16 + 4 * nc])
        stored = struct.unpack(">%dI" % nc, raw[16 + 4 * nc:16 + 8 * nc])
        q = 16 + 40 * nc
        so = soff
        for k in range(nc):
            off = (i * per + nums[k]) * cs
            chunks.append({"offset": off, "size": min(cs, size - off), "stored_offset": so,
                           "stored_size": stored[k],
                           "sha256": raw[16 + 8 * nc + 32 * k:16 + 8 * nc + 32 * k + 32].hex()})
            so += stored[k]
        nf = (len(raw) - q) // 12
        assert len(raw) == q + 12 * nf
        sizes += struct.unpack(">%dI" % nf, raw[q:q + 4 * nf])
        digests += [raw[q + 4 * nf + 8 * f:q + 4 * nf + 8 * f + 8] for f in range(nf)]
        pos += psize
    assert pos == at + ci["size"]
    man["chunks"], man["pages"] = chunks, pages
    return sizes, digests, regions


def check_frames(man, payload, sizes, digests):
    """Each frame of the payload: its stored size and digest as the index gives them."""
    fsize = man["frame_size"]
    f = pos = 0
    for c in man["chunks"]:
        for k in range(0, c["size"], fsize):
            frame = zstd_d(payload[pos:pos + sizes[f]])
            assert len(frame) == min(fsize, c["size"] - k)
            blocks = b"".join(hashlib.sha256(frame[b:b + 4096]).digest()
                              for b in range(0, len(frame), 4096))
            assert hashlib.sha256(blocks).digest()[:8] == digests[f]
            pos += sizes[f]
            f += 1
    assert f == len(sizes) and pos == len(payload)


def parse(data):
    m, s, off = layout(data)
    man = json.loads(data[24:24 + m])
    if man["format"] >= 3:
        index = read_pages(data, man, off)
        off += man["chunk_index"]["size"]
    else:
        index = None
    assert man["payload"]["offset"] == off
    return man, index


def extract(bundle, image):
    data = open(bundle, "rb").read()
    man, index = parse(data)
    off = man["payload"]["offset"]
    payload = data[off:off + man["payload"]["size"]]
    assert len(payload) == man["payload"]["size"]
    if index:
        patch = man["patch"]["size"] if man["format"] >= 4 else 0
        assert len(data) == off + len(payload) + patch
        if patch:
            assert man["patch"]["offset"] == off + len(payload)
            assert hashlib.sha256(data[off + len(payload):]).hexdigest() == \
                man["patch"]["sha256"]
        check_frames(man, payload, index[0], index[1])
    elif man["format"] >= 2:
        check_index(man, payload, data[off + len(payload):])
    else:
        assert len(data) == off + len(payload)
    assert hashlib.sha256(payload).hexdigest() == man["payload"]["sha256"]
    out = bytearray(man["image"]["size"])
    for c in man["chunks"]:
        z = payload[c["stored_offset"]:c["stored_offset"] + c["stored_size"]]
        raw = subprocess.run(["zstd", "-dc"], input=z, stdout=subprocess.PIPE,
                             check=True).stdout
        assert len(raw) == c["size"] and hashlib.sha256(raw).hexdigest() == c["sha256"]
        out[c["offset"]:c["offset"] + c["size"]] = raw
    assert hashlib.sha256(out).hexdigest() == man["image"]["sha256"]
    if index:
        span = man["chunk_index"]["page_chunks"] * man["chunk_size"]
        for i, region in enumerate(index[2]):
            part = out[i * span:(i + 1) * span]
            blocks = b"".join(hashlib.sha256(part[b:b + 4096]).digest()
                              for b in range(0, len(part), 4096))
            assert hashlib.sha256(blocks).digest() == region, "region digest of page %d" % i
    open(image, "wb").write(out)


def apply_patch(bundle, source, image):
    """Format 4: the image from the earlier one and the patch, as docs/update.md says."""
    import os
    import tempfile
    data = open(bundle, "rb").read()
    man, _ = parse(data)
    p = man["patch"]
    sec = data[p["offset"]:p["offset"] + p["size"]]
    assert len(sec) == p["size"] and hashlib.sha256(sec).hexdigest() == p["sha256"]
    src = open(source, "rb").read()[:p["from"]["size"]]
    assert len(src) == p["from"]["size"]
    assert hashlib.sha256(src).hexdigest() == p["from"]["sha256"], "not the patch's source"
    assert sec[:8] == b"IMGFPAT1"
    hlen = struct.unpack(">I", sec[8:12])[0]
    head = zstd_d(sec[12:12 + hlen])
    assert head[:8] == b"IMGFPAH1"
    size, ssize, csize, nops, nchg = struct.unpack(">QQIII", head[8:36])
    assert size == man["image"]["size"] and ssize == len(src) and csize == man["chunk_size"]
    ops = [struct.unpack(">BIQ", head[36 + 13 * i:49 + 13 * i]) for i in range(nops)]
    at = 36 + 13 * nops
    chg = {}
    dpos = 12 + hlen
    for i in range(nchg):
        c, dl = struct.unpack(">II", head[at + 40 * i:at + 40 * i + 8])
        chg[c] = (dpos, dl, head[at + 40 * i + 8:at + 40 * i + 40])
        dpos += dl
    assert dpos == len(sec)
    assert len(head) == at + 40 * nchg
    # each changed chunk's new blocks, decompressed against the earlier chunk at its place
    data_of = {}
    tmp = tempfile.mkdtemp()
    try:
        for c, (dp, dl, _) in chg.items():
            if not dl:
                continue
            ref = os.path.join(tmp, "ref")
            open(ref, "wb").write(src[c * csize:(c + 1) * csize])
            data_of[c] = bytearray(subprocess.run(
                ["zstd", "-dc", "--patch-from=" + ref], input=sec[dp:dp + dl],
                stdout=subprocess.PIPE, check=True).stdout)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    out = bytearray(size)
    b = 0
    for kind, count, arg in ops:
        for k in range(count):
            t = (b + k) * 4096
            if kind == 0:
                out[t:t + 4096] = src[t:t + 4096]
            elif kind == 2:
                out[t:t + 4096] = src[(arg + k) * 4096:(arg + k + 1) * 4096]
            elif kind == 3:
                c = (b + k) * 4096 // csize
                out[t:t + 4096] = data_of[c][:4096]
                del data_of[c][:4096]
            else:
                assert kind == 1
        b += count
    assert b * 4096 == size and all(len(v) == 0 for v in data_of.values())
    for c, (_, _, digest) in chg.items():
        assert hashlib.sha256(out[c * csize:(c + 1) * csize]).digest() == digest
    assert hashlib.sha256(out).hexdigest() == man["image"]["sha256"]
    open(image, "wb").write(out)


def mutate(data, rng):
    m, s, off = layout(data)
    head = off
    pos = rng.randrange(head) if rng.random() < 0.75 else rng.randrange(len(data))
    kind = rng.randrange(6)
    b = bytearray(data)
    if kind == 0:
        b[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:
        v = rng.randrange(256)
        b[pos] = v if v != b[pos] else v ^ 0xff
    elif kind == 2:
        b = b[:rng.randrange(len(b))]
    elif kind == 3:
        b[pos:pos] = bytes(rng.randrange(256) for _ in range(1 + rng.randrange(8)))
    elif kind == 4:
        del b[pos:pos + 1 + rng.randrange(8)]
    else:
        for _ in range(2 + rng.randrange(5)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    if bytes(b) == data:
        b[pos] ^= 0x40
    return bytes(b)


def main():
    cmd = sys.argv[1]
    if cmd == "extract":
        extract(sys.argv[2], sys.argv[3])
    elif cmd == "apply-patch":
        apply_patch(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "manifest":
        man, _ = parse(open(sys.argv[2], "rb").read())
        print(json.dumps(man))
    elif cmd == "split":
        data = open(sys.argv[2], "rb").read()
        m, s, off = layout(data)
        open(sys.argv[3], "wb").write(data[:24 + m])
        open(sys.argv[4], "wb").write(data[24 + m:off])
    elif cmd == "layout":
        data = open(sys.argv[2], "rb").read()
        m, s, off = layout(data)
        print(m, s, off, len(data))
    elif cmd == "flip":
        b = bytearray(open(sys.argv[2], "rb").read())
        b[int(sys.argv[4])] ^= 1 << int(sys.argv[5] if len(sys.argv) > 5 else 0)
        open(sys.argv[3], "wb").write(b)
    elif cmd == "mutate":
        rng = random.Random(int(sys.argv[4]))
        open(sys.argv[3], "wb").write(mutate(open(sys.argv[2], "rb").read(), rng))
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
