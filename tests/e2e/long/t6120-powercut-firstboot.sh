#!/bin/bash
# imgforge-test: timeout 14400
# Power cuts during the appliance's first boot (make check-powercut-firstboot):
# atarys-production is killed (SIGKILL of QEMU) at 30 points of its first
# boot, each on a fresh copy of the disk: between and inside its steps, on
# each side of every durable write, mid initdb, mid certificate and key
# generation, after it said it was done while the services start for the
# first time. The next boot must be healthy and the first boot done exactly
# once in effect (tests/e2e/firstboot-cut.sh says what is checked;
# docs/appliance.md, "Power cuts during the first boot", lists the points and
# the last results). About 4 minutes a point under TCG on a quiet machine:
# two hours.
# FBCUT_POINTS=FILE runs the points of FILE instead; FBCUT_REPORT=FILE
# keeps the table of points run.
. "$SRCDIR/tests/e2e/lib.sh"
. "$SRCDIR/tests/e2e/vm-lib.sh"
. "$SRCDIR/tests/e2e/firstboot-cut.sh"

# Ordered so that the first dozen already cover every step.
POINTS='stop ssh:ed25519-public-renamed
after pg:initdb 5
stop rename:/data/atarys/secrets.env
stop tls:key-renamed
stop rename:/data/.appliance-initialised
stop rename:/data/etc/machine-id
stop db:role-created
stop tls:live-linked
stop pg:renamed
after rename:/data/.appliance-initialised 20
stop firstboot:synced
stop data-prepared
after pg:initdb 12
stop ssh:ecdsa-generated
stop write:/data/atarys/secrets.env
stop tls:generated
stop write:/data/.appliance-initialised
stop write:/data/etc/machine-id
stop db:server-started
stop db:database-created
stop pg:initdb-done
stop firstboot:20-ssh-host-keys
stop firstboot:40-atarys-database
stop tls:renamed
stop pg:before-rename
stop ssh:ecdsa-public-renamed
after db:server-started 1
stop firstboot:30-postgresql
after rename:/data/.appliance-initialised 3
boot imgforge: slot A marked good'
[ -z "${FBCUT_POINTS:-}" ] || POINTS=$(cat "$FBCUT_POINTS") || exit 1
fbcut_setup
fbcut_run
test_done
