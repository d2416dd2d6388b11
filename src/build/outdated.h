/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_OUTDATED_H
#define IMGFORGE_OUTDATED_H

#include <stddef.h>

#include "build/archive.h"
#include "fs/dpkg.h"

/*
 * Which installed packages an archive now has newer versions of: the
 * Packages index of every suite and component of a (resolved) archive,
 * fetched over libcurl (Packages.xz, else .gz, else plain) and compared by
 * dpkg's version order. imgforge outdated.
 */
struct outdated_pkg {
	char *name;
	char *arch;
	char *installed;
	char *available; /* the newest version any suite has */
	char *suite;	 /* the suite that has it */
};

/*
 * pkgs: installed, sorted by name then architecture (as the registry keeps
 * them); arch: the image's architecture. *ret is sorted by name, the
 * caller's (outdated_free()). Returns 0, or -errno with one line in err.
 */
int outdated_check(const struct archive *a, const char *arch, const struct dpkg_package *pkgs,
		   size_t n, struct outdated_pkg **ret, size_t *ret_n, struct strbuf *err);

/* Parse one Packages index (for tests): the same comparison for one suite. */
void outdated_scan(const char *suite, const char *text, const char *arch,
		   const struct dpkg_package *pkgs, size_t n, struct outdated_pkg **res,
		   size_t *res_n, size_t *res_alloc);

void outdated_free(struct outdated_pkg *p, size_t n);

#endif
