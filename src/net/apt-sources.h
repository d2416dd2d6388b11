/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_APT_SOURCES_H
#define IMGFORGE_APT_SOURCES_H

#include <stddef.h>

#include "core/util.h"

/*
 * This machine's apt sources: where its own apt fetches each suite from.
 * imgforge builds from the same archive when the recipe names no mirror.
 * Reads <etc>/sources.list and <etc>/sources.list.d/ *.list (one-line
 * format) and *.sources (deb822), "deb" entries only, skipping entries with
 * "Enabled: no". No network.
 */
struct apt_source {
	char *uri;
	char *suite;
	char *file; /* where it was read from, for messages */
};

struct apt_sources {
	struct apt_source *v;
	size_t n, alloc;
};

/*
 * Read the sources under etc_dir (NULL: $IMGFORGE_APT_ETC, else /etc/apt).
 * Unreadable or missing files are skipped: a machine without apt has no
 * sources. Returns 0; *ret is released with apt_sources_release().
 */
int apt_sources_read(const char *etc_dir, struct apt_sources *ret);

/* Parse one file's text (format from its name: *.sources is deb822) into s. */
void apt_sources_parse(struct apt_sources *s, const char *file, const char *text);

/* The first URI serving suite, without a trailing '/', or NULL. Owned by s. */
const char *apt_sources_uri_for(const struct apt_sources *s, const char *suite);

void apt_sources_release(struct apt_sources *s);

#endif
