#!/usr/bin/python3
# Write a small raw disk whose MBR boot sector prints a message on the first
# serial port (COM1, I/O port 0x3f8) and then stops, for tests/e2e/t4000-boot.sh:
# it proves the BIOS boot, the virtio disk and the serial plumbing of
# `imgforge boot` without needing an operating system.
#
#   boot-fixture.py OUT.img MESSAGE [--then halt|reset|pvpanic] [--write-sector]
#
# MESSAGE takes \r, \n and \e escapes. After printing, the CPU halts (halt,
# the default), resets the machine through the keyboard controller (reset:
# QEMU with -no-reboot then exits 0), or reports a guest panic on the
# pvpanic port 0x505 (pvpanic). --write-sector first copies the boot sector
# to the disk's second sector with BIOS int 13h, so a test can see whether
# the guest's writes reached the file. The disk is 1 MiB, sectors 2+ zero.
import sys


def boot_sector(message, then, write_sector):
    # 16-bit real mode, loaded at 0x7c00: segments to 0, stack below us.
    code = bytearray(b"\xfa\x31\xc0\x8e\xd8\x8e\xc0\x8e\xd0\xbc\x00\x7c\xfb\xfc")
    if write_sector:
        # ah=3 write, al=1 sector, ch=0 cylinder, cl=2 sector, dh=0 head,
        # dl = the boot drive the BIOS handed us, es:bx = 0:0x7c00.
        code += b"\xb8\x01\x03\xb9\x02\x00\xb6\x00\xbb\x00\x7c\xcd\x13"
    si = len(code)
    # mov si,msg; mov dx,0x3f8; 1: lodsb; test al,al; jz 2f; out dx,al; jmp 1b; 2:
    code += b"\xbe\x00\x00\xba\xf8\x03\xac\x84\xc0\x74\x03\xee\xeb\xf8"
    if then == "reset":
        code += b"\xb0\xfe\xe6\x64"  # mov al,0xfe; out 0x64,al
    elif then == "pvpanic":
        code += b"\xba\x05\x05\xb0\x01\xee"  # mov dx,0x505; mov al,1; out dx,al
    code += b"\xfa\xf4\xeb\xfd"  # cli; 1: hlt; jmp 1b
    msg_addr = 0x7C00 + len(code)
    code[si + 1 : si + 3] = msg_addr.to_bytes(2, "little")
    code += message + b"\0"
    if len(code) > 446:
        sys.exit("boot-fixture.py: message too long")
    return bytes(code.ljust(510, b"\0") + b"\x55\xaa")


def main():
    args = sys.argv[1:]
    then, write_sector = "halt", False
    if "--write-sector" in args:
        args.remove("--write-sector")
        write_sector = True
    if "--then" in args:
        i = args.index("--then")
        then = args[i + 1]
        del args[i : i + 2]
    if len(args) != 2 or then not in ("halt", "reset", "pvpanic"):
        sys.exit(__doc__ if __doc__ else "usage: boot-fixture.py OUT.img MESSAGE [options]")
    out, message = args
    message = message.replace("\\r", "\r").replace("\\n", "\n").replace("\\e", "\x1b")
    sector = boot_sector(message.encode(), then, write_sector)
    with open(out, "wb") as f:
        f.write(sector + b"\0" * (1024 * 1024 - 512))


main()
