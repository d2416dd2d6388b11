/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_KEYS_H
#define IMGFORGE_KEYS_H

#include <stdbool.h>

#include "core/util.h"
#include "recipe/recipe.h"

/*
 * Stage keys: SHA-256 hex digests of everything each stage depends on,
 * used as cache keys by `imgforge build` and shown by `imgforge plan`.
 * Overlay trees and file sources are hashed by content, and so are the
 * tools a stage runs.
 */
struct stage_keys {
	char base[65];
	char rootfs[65];
	char disk[65];
};

/*
 * Compute the keys of a loaded recipe. Returns 0, or -errno with a diagnostic added.
 * A package base's key also hashes the state of its archives (archive_check()'s
 * digest); keys_compute() leaves it out, as imgforge plan does, which does not
 * go to the network: the base key a build uses then differs from plan's.
 */
int keys_compute(const struct recipe *r, struct stage_keys *ret, struct diags *diags);
int keys_compute_archive(const struct recipe *r, const char *archive_state,
			 struct stage_keys *ret, struct diags *diags);

/* The resolved recipe followed by the keys (none when k is NULL): the output of plan. */
int keys_print_yaml(const struct recipe *r, const struct stage_keys *k, struct strbuf *out);
void keys_print_json(const struct recipe *r, const struct stage_keys *k, struct strbuf *out,
		     bool pretty);

#endif
