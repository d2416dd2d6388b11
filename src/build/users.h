/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_USERS_H
#define IMGFORGE_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"
#include "fs/tree.h"

/*
 * Accounts declared by a recipe's users: key, added to an image tree the
 * way adduser would on a running system, but at build time, so that they
 * exist on a read-only root: lines appended to /etc/passwd, /etc/group,
 * /etc/shadow and /etc/gshadow, the user added to its supplementary groups,
 * SSH keys in /etc/ssh/authorized_keys.d/NAME, a sudoers.d file, and a
 * home on /data made at boot by imgforge-users-homes.service.
 * docs/recipes.md describes the rules.
 */

/* Debian's adduser ranges (adduser.conf FIRST_SYSTEM_UID... LAST_UID). */
#define USERS_SYSTEM_FIRST 100
#define USERS_SYSTEM_LAST  999
#define USERS_FIRST	   1000
#define USERS_LAST	   59999

struct user_spec {
	const char *name;
	uint32_t uid; /* 0: the lowest free one of the range */
	bool system;
	const char *const *groups; /* supplementary groups, which must exist */
	size_t ngroups;
	const char *const *keys; /* OpenSSH public key lines, already checked */
	size_t nkeys;
	bool sudo;	   /* password-less sudo */
	const char *shell; /* NULL: /bin/bash (/bin/sh if none), system users nologin */
	const char *home;  /* NULL: /data/home/NAME, system users /nonexistent */
};

/*
 * Add one account to t. Returns 0, or -errno with one line appended to err
 * (the tree must not be used then): a name or uid the image already has,
 * a group it does not have, no free id left, a shell, sudo or sshd the image
 * lacks, or a password or group file that cannot be parsed.
 * On success *ret_uid is the uid given (may be NULL).
 */
int users_add(struct tree *t, const struct user_spec *u, int64_t mtime, uint32_t *ret_uid,
	      struct strbuf *err);

#endif
