#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What `imgforge-update status` must say after a power cut (docs/update.md,
"Power cuts"), for the power-cut tests.

    powercut-check.py STATUS.json --booted X --version W --holds A=V,B=V
                      [--expect-booted X] [--point NAME]

STATUS.json is `imgforge-update status --json` taken once the boot after the
cut was marked good; --booted and --version what the kernel command line and
/etc/imgforge/release of that boot say; --holds what each slot's bytes are
(a version, or "partial" for neither image whole), hashed by the test
itself. Prints one line per broken rule and exits 1, else exits 0.
"""
import argparse
import json
import sys

ap = argparse.ArgumentParser()
ap.add_argument("status")
ap.add_argument("--booted", required=True)
ap.add_argument("--version", required=True)
ap.add_argument("--holds", required=True)
ap.add_argument("--expect-booted")
ap.add_argument("--point", default="?")
a = ap.parse_args()
s = json.load(open(a.status))
holds = dict(kv.split("=", 1) for kv in a.holds.split(","))
bad = []


def rule(ok, msg):
    if not ok:
        bad.append("after a cut at %s: %s" % (a.point, msg))


X, W, mx = a.booted, a.version, s["max_tries"]
Y = "B" if X == "A" else "A"
rule(s["booted"] == X, "status says slot %s booted, the kernel says %s" % (s["booted"], X))
rule(not s["fallback"], "booted as a last resort (no slot had tries left)")
rule(s["version"] == W, "status says version %s, the running image is %s" % (s["version"], W))
rule(holds[X] == W, "slot %s runs %s but holds %s" % (X, W, holds[X]))
if a.expect_booted:
    rule(X == a.expect_booted, "slot %s booted, slot %s was expected" % (X, a.expect_booted))
rule(s["slots"][X]["good"], "the running slot %s is not marked good" % X)
# First in ORDER, or after slots GRUB skips (a rollback leaves ORDER as it was).
before = s["order"].split()[:s["order"].split().index(X)] if X in s["order"].split() else ["?"]
rule(all(b in "AB" and (s["slots"][b]["tries"] or 0) >= mx for b in before),
     "the running slot %s is not the first bootable one in ORDER (%s)" % (X, s["order"]))
# A slot GRUB may boot holds a whole image; the other slot is usable or bad.
for slot in "AB":
    t = s["slots"][slot]["tries"]
    if t is None or t < mx:
        rule(holds[slot] != "partial",
             "slot %s has tries left (%s of %s) but holds no whole image" % (slot, t, mx))
li = s["last_install"]
line = s["last_update"]
if li:
    L, V, R = li.get("slot"), li.get("version"), li.get("result")
    if L == X:
        rule(V == W, "the last install put %s into the running slot %s, which runs %s" % (V, X, W))
        rule(R == "good" and "good (passed its health check)" in line,
             "the running slot's install is not recorded good: %s / %s" % (R, line))
    else:
        if R in ("installing", "failed"):
            # Marked bad, or cut before the first write (and then whole, above).
            t = s["slots"][L]["tries"]
            rule(t == mx or (R == "installing" and "before it wrote" in line),
                 "slot %s holds an unfinished install, is not marked bad (%s of %s), and "
                 "status says: %s" % (L, t, mx, line))
            rule(("interrupted" if R == "installing" else "failed") in line,
                 "last update does not say the install did not finish: %s" % line)
        elif R == "installed":
            rule(s["rolled_back"] is not None, "an install into %s neither boots nor rolled back: %s"
                 % (L, line))
        elif R in ("good", "rolled-back"):
            pass  # an older install, settled before
        else:
            rule(False, "unknown install result %r" % R)
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
