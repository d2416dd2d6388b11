/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_RELEASE_H
#define IMGFORGE_RELEASE_H

#include "build/stage.h"
#include "fs/tree.h"

/*
 * Add /etc/imgforge/release (IMAGE=, VERSION=) to every image, and for a
 * recipe with update: /etc/imgforge/update.conf, the keyring in
 * /etc/imgforge/keyring.d/ and, with a channel, the poll timer's schedule
 * and its enablement. The rootfs stage key hashes what these depend on
 * (build/keys.c). Returns 0, or -errno after build_fail().
 */
int release_apply(struct build_ctx *c, struct tree *t);

#endif
