#!/usr/bin/python3
# Build the test archives for tests/e2e/t2*-mkfs*.sh with python's tarfile,
# so that no binary fixture is committed.
#
#   mkfs-fixture.py everything OUT.tar MANIFEST   every entry type mkfs must carry
#   mkfs-fixture.py big OUT.tar N [PREFIX]        N small files in one directory
#   mkfs-fixture.py acl OUT.tar                   POSIX ACLs (pax SCHILY.acl.*)
#   mkfs-fixture.py hostile KIND OUT.tar          one hostile archive (see below)
#   mkfs-fixture.py links OUT.tar N               the file f and N-1 hard links to it
#   mkfs-fixture.py link OUT.tar NAME TARGET      one hard link (a layer on top)
#   mkfs-fixture.py subdirs OUT.tar N             the directory d with N subdirectories
#   mkfs-fixture.py empty OUT.tar N [symlink]     N empty files (or symlinks) in e/
#   mkfs-fixture.py sparse OUT.tar SIZE [OFFSET]  the file big of SIZE bytes, 4 KiB of data
#                                                 at OFFSET (default 0), the rest holes
#   mkfs-fixture.py ingest KIND OUT               one archive for t2040-ingest-hostile.sh
#
# MANIFEST gets "sha256 path" lines for the regular files, computed here from
# the bytes put into the archive.
import hashlib
import io
import random
import sys
import tarfile

EPOCH = 1700000000

# security.capability v2 granting cap_net_raw (bit 13), as setcap writes it.
CAP_NET_RAW = bytes([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00] + [0] * 12)


def info(name, type_=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, mtime=EPOCH - 3600, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def everything(out, manifest):
    files = {}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, data=None, **kw):
            ti = info(name, **kw)
            if data is not None:
                ti.size = len(data)
                files[name] = hashlib.sha256(data).hexdigest()
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)

        def d(name, mode=0o755, **kw):
            add(name, type_=tarfile.DIRTYPE, mode=mode, **kw)

        d("./")
        for x in ("etc", "usr", "usr/bin", "dev", "run", "home", "tmp", "srv"):
            d(x, mode=0o1777 if x == "tmp" else 0o755)
        add("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
            b"alice:x:1001:1002:Alice:/home/alice:/bin/sh\n")
        add("etc/group", b"root:x:0:\nstaff:x:1002:alice\nbig:x:70001:\n")
        d("home/alice", mode=0o750, uid=1001, gid=1002)
        add("home/alice/notes.txt", b"alice's notes\n", mode=0o600, uid=1001, gid=1002)
        add("home/alice/far", b"high ids\n", uid=70000, gid=70001)
        rnd = random.Random(42)
        add("usr/bin/blob", bytes(rnd.getrandbits(8) for _ in range(300001)), mode=0o755)
        ping = info("usr/bin/ping", mode=0o755)
        ping.pax_headers = {"SCHILY.xattr.security.capability": CAP_NET_RAW.decode("latin-1"),
                            "SCHILY.xattr.user.comment": "pings"}
        data = b"\x7fELF ping\n"
        ping.size = len(data)
        files["usr/bin/ping"] = hashlib.sha256(data).hexdigest()
        tar.addfile(ping, io.BytesIO(data))
        add("usr/bin/ping4", type_=tarfile.LNKTYPE, linkname="usr/bin/ping")
        add("usr/bin/ping6", type_=tarfile.LNKTYPE, linkname="usr/bin/ping")
        add("usr/bin/su", b"su\n", mode=0o4755)
        add("usr/bin/wall", b"wall\n", mode=0o2755, gid=5)
        add("usr/bin/sh", type_=tarfile.SYMTYPE, linkname="dash", mode=0o777)
        add("usr/bin/dash", b"dash\n", mode=0o755)
        add("srv/long-link", type_=tarfile.SYMTYPE, linkname="/" + "x" * 70 + "/" + "y" * 130)
        add("dev/null", type_=tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        add("dev/sda", type_=tarfile.BLKTYPE, mode=0o660, gid=6, devmajor=8, devminor=0)
        add("dev/nvme", type_=tarfile.BLKTYPE, mode=0o660, devmajor=259, devminor=70000)
        add("run/initctl", type_=tarfile.FIFOTYPE, mode=0o600)
        d("ünïcödé")
        add("ünïcödé/файл-😀.txt", "привет\n".encode())
        add("srv/future", b"from the future\n", mtime=EPOCH + 10**6)
        add("srv/empty", b"")
        add("srv/" + "n" * 255, b"longest name\n")
    with open(manifest, "w") as f:
        for name, digest in sorted(files.items()):
            f.write("%s /%s\n" % (digest, name))


def acl(out):
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        d = info("shared", tarfile.DIRTYPE, 0o770)
        d.pax_headers = {
            "SCHILY.acl.access": "user::rwx,user:1001:rwx,group::r-x,mask::rwx,other::---",
            "SCHILY.acl.default": "user::rwx,group::r-x,group:1002:rwx,mask::rwx,other::---"}
        tar.addfile(d)
        f = info("shared/f", mode=0o640)
        f.pax_headers = {"SCHILY.acl.access": "user::rw-,user:1001:r--,group::r--,mask::r--,other::---"}
        f.size = 2
        tar.addfile(f, io.BytesIO(b"x\n"))


def big(out, n, prefix="file-"):
    with tarfile.open(out, "w") as tar:
        tar.addfile(info("many", tarfile.DIRTYPE, 0o755))
        for i in range(n):
            data = b"%d\n" % i
            ti = info("many/%s%05d" % (prefix, i))
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))


def hostile(kind, out):
    with tarfile.open(out, "w") as tar:
        def add(ti, data=b""):
            ti.size = len(data) if ti.type == tarfile.REGTYPE else 0
            tar.addfile(ti, io.BytesIO(data))

        if kind == "dotdot":
            add(info("etc"), b"x")
            add(info("a/../../etc/shadow"), b"pwned\n")
        elif kind == "absolute-dotdot":
            add(info("/../../etc/shadow"), b"pwned\n")
        elif kind == "symlink":
            add(info("a", tarfile.SYMTYPE, linkname="/etc"))
            add(info("a/passwd"), b"pwned\n")
        elif kind == "symlink-relative":
            add(info("d", tarfile.DIRTYPE, 0o755))
            add(info("d/up", tarfile.SYMTYPE, linkname="../.."))
            add(info("d/up/etc/passwd"), b"pwned\n")
        elif kind == "hardlink-missing":
            add(info("x", tarfile.LNKTYPE, linkname="does/not/exist"))
        elif kind == "hardlink-outside":
            add(info("x", tarfile.LNKTYPE, linkname="../../etc/passwd"))
        elif kind == "longname":
            add(info("d/" + "n" * 256), b"x")
        elif kind == "symlink-layer1":
            add(info("a", tarfile.SYMTYPE, linkname="/etc"))
        elif kind == "symlink-layer2":
            add(info("a/passwd"), b"pwned\n")
        elif kind == "big":
            add(info("big"), b"\xa5" * (3 << 20))
        elif kind in ("acl-short", "acl-tag"):
            # a system.posix_acl_access xattr that is no ACL: too short, or an unknown tag
            value = "\x02\x00" if kind == "acl-short" else \
                "\x02\x00\x00\x00" "\x40\x00\x06\x00\x00\x00\x00\x00"
            f = info("f")
            f.pax_headers = {"SCHILY.xattr.system.posix_acl_access": value}
            add(f, b"x")
        else:
            raise SystemExit("unknown hostile kind " + kind)


def ustar(name, type_=tarfile.REGTYPE, linkname="", size=0, mode=0o644):
    """One ustar header, root-owned, for the bulk fixtures below."""
    h = bytearray(512)

    def put(off, val):
        h[off:off + len(val)] = val

    put(0, name.encode())
    put(100, b"%07o\0" % mode)
    put(108, b"0000000\0")
    put(116, b"0000000\0")
    put(124, b"%011o\0" % size)
    put(136, b"%011o\0" % (EPOCH - 3600))
    put(148, b" " * 8)
    put(156, type_)
    put(157, linkname.encode())
    put(257, b"ustar\x0000")
    put(148, b"%06o\0 " % sum(h))
    return bytes(h)


def ustar_many(prefix, n, type_, linkname="", mode=0o644, start=0):
    """n headers named PREFIX00000...: one template, only the name and checksum vary
    (tarfile takes seconds for tens of thousands of entries, this a fraction)."""
    base = bytearray(ustar(prefix + "00000", type_, linkname, mode=mode))
    at = len(prefix.encode())
    base[148:156] = b" " * 8
    s0 = sum(base) - sum(b"00000")
    out = []
    for i in range(start, start + n):
        d = b"%05d" % i
        base[at:at + 5] = d
        base[148:156] = b"%06o\0 " % (s0 + sum(d))
        out.append(bytes(base))
        base[148:156] = b" " * 8
    return b"".join(out)


def write_ustar(out, *parts):
    with open(out, "wb") as f:
        for p in parts:
            f.write(p)
        f.write(b"\0" * 1024)


def links(out, n):
    write_ustar(out, ustar("f", size=2), b"f\n".ljust(512, b"\0"),
                ustar("l", tarfile.DIRTYPE, mode=0o755),
                ustar_many("l/", n - 1, tarfile.LNKTYPE, "f", start=1))


def link(out, name, target):
    write_ustar(out, ustar(name, tarfile.LNKTYPE, target))


def subdirs(out, n):
    write_ustar(out, ustar("d", tarfile.DIRTYPE, mode=0o755),
                ustar_many("d/", n, tarfile.DIRTYPE, mode=0o755))


def empty(out, n, kind="file"):
    if kind == "symlink":
        entries = ustar_many("e/", n, tarfile.SYMTYPE, "t", mode=0o777)
    else:
        entries = ustar_many("e/", n, tarfile.REGTYPE)
    write_ustar(out, ustar("e", tarfile.DIRTYPE, mode=0o755), entries)


def sparse(out, size, offset=0):
    """A GNU sparse 1.0 (pax) file: the map, then the data, as GNU tar writes it."""
    data = bytes(range(256)) * 16
    smap = b"1\n%d\n%d\n" % (offset, len(data))
    smap += b"\0" * (-len(smap) % 512)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        ti = info("GNUSparseFile.0/big")
        ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                          "GNU.sparse.name": "big", "GNU.sparse.realsize": str(size)}
        ti.size = len(smap) + len(data)
        tar.addfile(ti, io.BytesIO(smap + data))

def pax_raw(records):
    """A pax extended header block carrying records as given (valid or not)."""
    body = b"".join(records)
    ti = tarfile.TarInfo("./PaxHeaders/x")
    ti.type = tarfile.XHDTYPE
    ti.size = len(body)
    hdr = ti.tobuf(tarfile.USTAR_FORMAT)
    return hdr + body + b"\0" * ((512 - len(body) % 512) % 512)


def pax_record(key, value):
    rec = b" %s=%s\n" % (key, value)
    n = len(rec)
    while len(b"%d" % n) + len(rec) != n:
        n = len(b"%d" % n) + len(rec)
    return b"%d" % n + rec


def ingest(kind, out):
    """Archives for the ingest tests; see t2040-ingest-hostile.sh."""
    def write(entries, fmt=tarfile.PAX_FORMAT, opener=None):
        with (opener or (lambda: tarfile.open(out, "w", format=fmt)))() as tar:
            for ti, data in entries:
                if ti.type == tarfile.REGTYPE:
                    ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))

    def deep(levels):
        return "/".join(["d"] * levels)

    D, S, F = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.REGTYPE
    if kind == "merged-base":
        write([(info("usr", D, 0o755), b""), (info("usr/bin", D, 0o755), b""),
               (info("usr/bin/sh", mode=0o755), b"sh\n"),
               (info("bin", S, 0o777, linkname="usr/bin"), b""),
               (info("lib", S, 0o777, linkname="/usr/lib"), b""),
               (info("usr/lib", D, 0o755), b"")])
    elif kind == "merged":
        # base and layer in one archive: the layer's ./bin/ goes through bin -> usr/bin
        write([(info("usr", D, 0o755), b""), (info("usr/bin", D, 0o755), b""),
               (info("usr/bin/sh", mode=0o755), b"sh\n"),
               (info("bin", S, 0o777, linkname="usr/bin"), b""),
               (info("./bin/", D, 0o700), b""), (info("./bin/foo", mode=0o755), b"foo\n"),
               (info("bin/sh2", tarfile.LNKTYPE, linkname="usr/bin/sh"), b""),
               (info("usr/bin/sh3", tarfile.LNKTYPE, linkname="bin/sh"), b"")])
    elif kind == "hardlinks":
        # one file with many names in many directories
        entries = [(info("a/f", mode=0o644), b"shared\n")]
        for i in range(2000):
            entries.append((info("d%02d/l%04d" % (i % 50, i), tarfile.LNKTYPE, linkname="a/f"), b""))
        write(entries)
    elif kind == "bin-layer":
        write([(info("./bin/", D, 0o700, mtime=5), b""), (info("./bin/foo", mode=0o755), b"foo\n"),
               (info("./lib/", D, 0o755), b""), (info("./lib/libx.so", mode=0o644), b"x\n")])
    elif kind == "symlink-outside":
        write([(info("bin", S, 0o777, linkname="../../usr/bin"), b""),
               (info("bin/", D, 0o755), b""), (info("bin/foo"), b"x")])
    elif kind == "symlink-file":
        write([(info("f"), b"x"), (info("l", S, 0o777, linkname="f"), b""), (info("l/foo"), b"x")])
    elif kind == "symlink-loop":
        write([(info("a", S, 0o777, linkname="b"), b""), (info("b", S, 0o777, linkname="a"), b""),
               (info("a/foo"), b"x")])
    elif kind.startswith("deep-"):
        # one entry, a path N directories deep (pax path header)
        levels = int(kind[5:])
        write([(info(deep(levels) + "/f"), b"x")])
    elif kind == "pax-oversized":
        ti = info("etc/sudoers.d/zz-evil", mode=0o440)
        ti.pax_headers = {"comment": "x" * 1000100, "path": "usr/share/doc/harmless/README"}
        write([(ti, b"ALL ALL=(ALL) NOPASSWD: ALL\n")])
    elif kind == "pax-garbage":
        ti = info("etc/evil", mode=0o644)
        ti.size = 2
        with open(out, "wb") as f:
            f.write(pax_raw([b"garbage without a length\n", pax_record(b"path", b"harmless")]))
            f.write(ti.tobuf(tarfile.USTAR_FORMAT) + b"x\n" + b"\0" * 510 + b"\0" * 1024)
    elif kind in ("uid-big", "uid-negative", "dev-big", "mtime-old", "mtime-far"):
        pax = {"uid-big": {"uid": "4294967296"}, "uid-negative": {"uid": "-1"},
               "dev-big": {"SCHILY.devmajor": "4294967295", "SCHILY.devminor": "4294967295"},
               "mtime-old": {"mtime": "-99999999999"}, "mtime-far": {"mtime": "99999999999"}}[kind]
        ti = info("dev/x", tarfile.CHRTYPE, 0o600) if kind == "dev-big" else info("bin/x", mode=0o4755)
        ti.pax_headers = pax
        write([(ti, b"x")])
    elif kind == "name-newline":
        write([(info("a\nerror: fake"), b"x"), (info("a\nerror: fake/b"), b"x")])
    elif kind == "name-escape":
        write([(info("f"), b"x"), (info("f/\x1b]0;pwned\x07\x1b[31mred\x9b2J"), b"x")])
    elif kind == "iso":
        # ISO 9660: 32 KiB of system area (zeros), then a primary volume descriptor
        with open(out, "wb") as f:
            f.write(b"\0" * 32768 + b"\x01CD001\x01" + b"\0" * (2048 - 7) + b"\0" * 65536)
    else:
        raise SystemExit("unknown ingest kind " + kind)


if __name__ == "__main__":
    if sys.argv[1] == "everything":
        everything(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "acl":
        acl(sys.argv[2])
    elif sys.argv[1] == "big":
        big(sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
    elif sys.argv[1] == "ingest":
        ingest(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "hostile":
        hostile(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "links":
        links(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "link":
        link(sys.argv[2], sys.argv[3], sys.argv[4])
    elif sys.argv[1] == "subdirs":
        subdirs(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "empty":
        empty(sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
    elif sys.argv[1] == "sparse":
        sparse(sys.argv[2], int(sys.argv[3]), *map(int, sys.argv[4:5]))
    else:
        raise SystemExit("usage: see the comment at the top")
