#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check the order of an imgforge-update install's writes in an strace log.

    durable-trace.py TRACE TARGET STATE_DIR ESP_DIR

TRACE: strace -f -e trace=openat,rename,fsync,pwrite64,write -o TRACE of one
successful install. Checks, printing what is wrong and exiting 1:
  - the boot blocks: every write of grubenv is preceded by the same write of
    grubenv.bak, each written in place (pwrite64 at 0) and fsynced;
  - the target is marked bad (the first grubenv.bak fsync) before its first
    byte is written, and fsynced before the last grubenv write (the switch);
  - every state file is written to a temporary name, fsynced, renamed, and
    the state directory fsynced after the rename.
"""
import re
import sys

trace, target, state, esp = sys.argv[1:5]
fds, ev = {}, []
for line in open(trace):
    line = line.split(" ", 1)[1].strip() if " " in line else line
    m = re.match(r'openat\(AT_FDCWD, "([^"]+)", [^)]*\) = (\d+)$', line)
    if m:
        fds[m.group(2)] = m.group(1)
        continue
    m = re.match(r'(fsync|pwrite64|write)\((\d+),?', line)
    if m and m.group(2) in fds:
        ev.append((m.group(1), fds[m.group(2)]))
        continue
    m = re.match(r'rename\("([^"]+)", "([^"]+)"\) = 0', line)
    if m:
        ev.append(("rename", m.group(2), m.group(1)))

bad = []
def idx(pred, start=0):
    for i in range(start, len(ev)):
        if pred(ev[i]):
            return i
    return -1

primary, copy = esp + "/grubenv", esp + "/grubenv.bak"
syncs = [e[1] for e in ev if e[0] == "fsync" and e[1] in (primary, copy)]
if syncs != [copy, primary, copy, primary]:
    bad.append("grubenv fsyncs: %s, expected .bak, primary, .bak, primary" % syncs)
for i, e in enumerate(ev):
    if e[0] == "fsync" and e[1] in (primary, copy):
        if i == 0 or ev[i - 1] != ("pwrite64", e[1]):
            bad.append("%s fsynced without an in-place write just before" % e[1])
first_mark = idx(lambda e: e == ("fsync", copy))
first_target = idx(lambda e: e[0] == "pwrite64" and e[1] == target)
if first_target < 0 or first_mark < 0 or first_target < first_mark:
    bad.append("the target was written before it was marked bad")
target_sync = idx(lambda e: e == ("fsync", target))
last_switch = max(i for i, e in enumerate(ev) if e == ("pwrite64", copy))
if target_sync < 0 or target_sync > last_switch:
    bad.append("the target was not fsynced before the switch")
renames = [i for i, e in enumerate(ev) if e[0] == "rename" and e[1].startswith(state + "/")]
if not renames:
    bad.append("no state file renamed into %s" % state)
for i in renames:
    final, tmp = ev[i][1], ev[i][2]
    if idx(lambda e: e == ("fsync", tmp)) < 0 or idx(lambda e: e == ("fsync", tmp)) > i:
        bad.append("%s renamed before it was fsynced" % tmp)
    nxt = idx(lambda e: e == ("fsync", state), i)
    if nxt < 0:
        bad.append("%s: the directory was not fsynced after the rename" % final)
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
