/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: the dpkg status parser and dpkg's version order. Besides not
 * crashing, checks what the registry relies on: every package has a name,
 * version and architecture, the list is sorted without duplicates, and the
 * version order is reflexive and antisymmetric on whatever strings the input
 * holds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/dpkg.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dpkg_package *p = NULL;
	size_t n = 0, i;
	char *copy, *a, *b, *save = NULL;

	dpkg_parse_status((const char *)data, size, &p, &n);
	for (i = 0; i < n; i++) {
		check(p[i].name[0] && p[i].version[0] && p[i].arch[0]);
		check(dpkg_version_compare(p[i].version, p[i].version) == 0);
		if (i) {
			int c = dpkg_version_compare(p[i - 1].version, p[i].version);

			check(dpkg_package_compare(&p[i - 1], &p[i]) < 0);
			check(c == -dpkg_version_compare(p[i].version, p[i - 1].version));
		}
	}
	dpkg_packages_free(p, n);

	/* Lines of the input as version strings, compared pairwise in order. */
	copy = xstrndup((const char *)data, size);
	a = strtok_r(copy, "\n", &save);
	while (a && (b = strtok_r(NULL, "\n", &save))) {
		int c = dpkg_version_compare(a, b);

		check(c >= -1 && c <= 1);
		check(c == -dpkg_version_compare(b, a));
		check(dpkg_version_compare(a, a) == 0);
		a = b;
	}
	free(copy);
	return 0;
}
