#!/usr/bin/python3
# A tiny Debian-like root filesystem tarball for the build tests, made with
# python's tarfile so that no binary fixture is committed.
#
#   rootfs-fixture.py OUT.tar.gz [PKG=VERSION]...
#
# It has /etc/passwd and /etc/group (www-data is 33), a dpkg status file
# listing the given packages, a systemd unit with an [Install] section, and
# the per-machine files a build must scrub: a machine-id and SSH host keys,
# and what mmdebstrap copies from the build host: /etc/resolv.conf and
# /etc/hostname (mode 0755, as a host's umask can leave them), and the copy
# systemd-resolved's maintainer script keeps of the former, each with a
# marker a test can look for in the image.
import io
import sys
import tarfile

EPOCH = 1700000000
out = sys.argv[1]
pkgs = [a.split("=", 1) for a in sys.argv[2:]] or [["base-files", "12.4"], ["nginx", "1.22.1-9"]]

status = ""
for name, ver in pkgs:
    status += (f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
               f"Architecture: amd64\nVersion: {ver}\nDescription: {name}\n\n")

files = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                  "app:x:1001:1001::/srv/app:/usr/sbin/nologin\n",
    "etc/group": "root:x:0:\nwww-data:x:33:\napp:x:1001:\n",
    "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
    "var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n",
    "etc/ssh/ssh_host_ed25519_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key\n",
    "etc/ssh/ssh_host_ed25519_key.pub": "ssh-ed25519 AAAA test\n",
    "etc/ssh/sshd_config": "PermitRootLogin no\n",
    "var/lib/dpkg/status": status,
    "usr/lib/systemd/system/nginx.service":
        "[Unit]\nDescription=nginx\n[Service]\nExecStart=/usr/sbin/nginx\n"
        "[Install]\nWantedBy=multi-user.target\nAlias=httpd.service\n",
    "usr/lib/systemd/system/unused.service": "[Service]\nExecStart=/bin/true\n",
    "boot/vmlinuz-6.1.0-test": "kernel",
    "etc/resolv.conf": "nameserver 192.0.2.53 # imgforge-build-host-dns\n",
    "etc/hostname": "imgforge-build-host-name\n",
    "etc/.resolv.conf.systemd-resolved.bak": "nameserver 192.0.2.54 # imgforge-build-host-dns\n",
    "usr/lib/systemd/systemd-resolved": "resolved",
}
dirs = ["etc", "etc/ssh", "var", "var/lib", "var/lib/dpkg", "var/lib/dbus", "usr", "usr/lib", "usr/lib/systemd",
        "usr/lib/systemd/system", "etc/systemd", "etc/systemd/system", "boot", "tmp", "srv"]

with tarfile.open(out, "w:gz", format=tarfile.PAX_FORMAT) as tar:
    for d in dirs:
        ti = tarfile.TarInfo(d)
        ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, EPOCH
        tar.addfile(ti)
    for name, text in sorted(files.items()):
        data = text.encode()
        ti = tarfile.TarInfo(name)
        ti.size, ti.mtime = len(data), EPOCH
        ti.mode = 0o600 if name.endswith("_key") else 0o755 if name in (
            "etc/resolv.conf", "etc/hostname", "usr/lib/systemd/systemd-resolved") else 0o644
        tar.addfile(ti, io.BytesIO(data))
    ti = tarfile.TarInfo("bin")
    ti.type, ti.linkname, ti.mtime = tarfile.SYMTYPE, "usr/bin", EPOCH
    tar.addfile(ti)
