#!/bin/bash
# imgforge-test: timeout 14400
# Power cuts over A/B updates in QEMU (make check-powercut): 59 points of a
# chain, spread over both install paths (the whole bundle, read twice, and
# the delta download, of frames or of a format-4 patch), each step of an
# install, the reboot, the first boots of the new slot before its health
# check, and two boots cut in a row (GRUB then rolls back). After each cut
# the disk boots until a slot is marked good, and it must be the right slot,
# holding a whole image, with `imgforge-update status` consistent
# (tests/e2e/powercut-check.py); the next point installs from there, and a
# last install runs to its end.
# tests/e2e/powercut-vm.sh says what a point is; docs/update.md, "Power
# cuts", lists them. About 5 minutes a point under TCG on an idle machine.
# POWERCUT_POINTS=FILE runs the points of FILE instead; POWERCUT_REPORT=FILE
# keeps the table of points run.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/vm-lib.sh"
. "$SRCDIR/tests/e2e/powercut-vm.sh"

# Ordered so that the first dozen already cover every phase.
POINTS='stop download#3 full
stop checked#1 delta
stop installing-recorded#1 full
stop grubenv.bak#1 delta
stop grubenv#1 full
stop write#5 full
stop written#1 delta
stop read-back#1 full
stop pre-install-hooks#1 delta
stop grubenv.bak#2 full
stop grubenv#2 full
stop installed-recorded#1 delta
stop done#1 full
after done#1 1 full
boot Booting .imgforge slot delta
boot imgforge\.slot=[AB] imgforge\.fallback=0 full
boot Reached target.*Basic System delta
boot Reached target.*Multi-User full
boot slot [AB] marked good delta
boot2 imgforge\.slot=[AB] imgforge\.fallback=0 full
time 3 delta
time 10 delta
after delta-prepared#1 0.5 delta
after write#2 0.7 full
after download#5 0.3 full
after written#1 0.5 full
after done#1 3 delta
stop download#1 full
stop download#9 full
stop write#1 full
stop write#10 full
stop delta-prepared#1 delta
stop installing-recorded#1 delta
stop grubenv#1 delta
stop write#1 delta
stop read-back#1 delta
stop grubenv.bak#2 delta
stop done#1 delta
after write#7 0.4 full
after checked#1 1 full
time 20 full
time 40 full
after installing-recorded#1 0.05 full
after grubenv#1 0.2 full
after pre-install-hooks#1 0.02 full
after done#1 6 full
boot Reached target.*Multi-User delta
boot Linux version full
boot2 Reached target.*Basic System delta
stop write#3 full
stop write#8 full
after download#8 0.5 full
boot Reached target.*Local File Systems delta
stop patch#1 patch
stop checked#1 patch
after patch#1 0.05 patch
stop written#1 patch
stop grubenv#2 patch
boot Booting .imgforge slot patch'
[ -z "${POWERCUT_POINTS:-}" ] || POINTS=$(cat "$POWERCUT_POINTS") || exit 1
powercut_setup
powercut_run
test_done
