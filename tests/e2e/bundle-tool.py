#!/usr/bin/env python3
"""Read and damage imgforge update bundles for tests/e2e/t3400-bundle.sh,
independently of imgforge: the format as docs/update.md describes it.

  bundle-tool.py extract BUNDLE IMAGE   the image, from the chunks (zstd -d) and zeros;
                                        formats 2 and 3: the chunk index checked frame by
                                        frame; format 3: each page's region digest too
  bundle-tool.py manifest BUNDLE        the manifest as JSON, with "chunks" (format 3: from
                                        the index's pages) and "pages" (format 3: each page's
                                        "at" (file offset), "size", "chunks")
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
    assert version in (1, 2, 3) and reserved == 0
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
        assert len(data) == off + len(payload)
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
