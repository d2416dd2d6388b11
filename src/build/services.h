/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_SERVICES_H
#define IMGFORGE_SERVICES_H

#include "fs/tree.h"
#include "core/util.h"

/*
 * systemd unit enablement applied to an image tree, the way `systemctl
 * --root` would: enable reads the unit's [Install] section (WantedBy=,
 * RequiredBy=, Alias=, Also=) and writes the symlinks under
 * /etc/systemd/system; disable removes them; mask links the unit to
 * /dev/null. Units are looked up in /etc/systemd/system, /usr/lib/systemd/system
 * and /lib/systemd/system of the tree, never on the host.
 * Each returns 0 or -errno with one line appended to err; a unit name that
 * is not valid by systemd's grammar is refused (-EINVAL) before it is
 * joined to any path. services_disable returns 1 with a line in err when
 * there was nothing to disable and the image has no such unit: a warning.
 */
int services_enable(struct tree *t, const char *unit, int64_t mtime, struct strbuf *err);
int services_disable(struct tree *t, const char *unit, struct strbuf *err);
int services_mask(struct tree *t, const char *unit, int64_t mtime, struct strbuf *err);

#endif
