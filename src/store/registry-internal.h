/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_REGISTRY_INTERNAL_H
#define IMGFORGE_REGISTRY_INTERNAL_H

#include <stdbool.h>

#include "store/db.h"

/* What registry.c and publications.c share: the open registry. */
struct registry {
	struct db *db;
	int version; /* schema version: older ones are read as they are (read-only) */
	bool readonly;
};

#endif
