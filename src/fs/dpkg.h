/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_DPKG_H
#define IMGFORGE_DPKG_H

#include <stddef.h>

/*
 * The installed-package list of a Debian tree, read from its dpkg status
 * file (var/lib/dpkg/status), and dpkg's version ordering.
 */

struct dpkg_package {
	char *name;
	char *version;
	char *arch;
};

/*
 * Parse a dpkg status file held in memory (buf need not be NUL-terminated).
 * Keeps the entries whose Status says the package is installed with no error
 * flag ("install ok installed", and "hold ok installed" for held packages),
 * with non-empty Package, Version and Architecture. Anything else, and any
 * malformed stanza, is skipped: the parser never fails on content, so that
 * a damaged status file still yields what can be read from it.
 *
 * The list is sorted by name, then architecture (multi-arch packages appear
 * once per architecture); duplicates of a name and architecture are
 * dropped. *ret (NULL when empty) and its strings are the caller's; free
 * them with dpkg_packages_free(). Returns the number of stanzas skipped.
 */
int dpkg_parse_status(const char *buf, size_t len, struct dpkg_package **ret, size_t *ret_n);
void dpkg_packages_free(struct dpkg_package *p, size_t n);

/* Order of two packages by name, then architecture (for sorting and diffs). */
int dpkg_package_compare(const struct dpkg_package *a, const struct dpkg_package *b);

/*
 * Compare two Debian version strings as dpkg does ([epoch:]upstream[-revision],
 * letters before other characters, '~' before everything, even the end).
 * Returns <0, 0 or >0. Defined for any input, valid or not.
 */
int dpkg_version_compare(const char *a, const char *b);

#endif
