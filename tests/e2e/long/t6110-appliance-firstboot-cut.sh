#!/bin/bash
# Power cuts during the appliance's first boot, the short version of
# tests/e2e/long/t6120-powercut-firstboot.sh (make check-powercut-firstboot,
# 30 points): atarys-production is killed (SIGKILL of QEMU) at two points
# of its first boot, each on a fresh copy of the disk: mid initdb, and with
# the self-signed key renamed into place but not its certificate. The next
# boot must be healthy and the first boot done exactly once in effect
# (tests/e2e/firstboot-cut.sh says what is checked). Four boots under TCG,
# two of them cut short: about 9 minutes on a quiet 2-core machine, plus
# the build (3 to 4 minutes from scratch; less with
# IMGFORGE_TEST_CACHE).
# imgforge-test: slow
# imgforge-test: timeout 3600
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/vm-lib.sh"
. "$SRCDIR/tests/e2e/firstboot-cut.sh"

POINTS='after pg:initdb 5
stop tls:key-renamed'
fbcut_setup
fbcut_run
test_done
