/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/stoppoint.h"

/* Passages counted per name, for NAME#N; a handful of names per run. */
#define STOP_NAMES 64

static struct {
	char name[48];
	unsigned n;
} passed[STOP_NAMES];

static unsigned count(const char *name)
{
	size_t i;

	for (i = 0; i < STOP_NAMES && passed[i].name[0]; i++)
		if (!strcmp(passed[i].name, name))
			return ++passed[i].n;
	if (i == STOP_NAMES)
		return 0;
	snprintf(passed[i].name, sizeof(passed[i].name), "%s", name);
	return passed[i].n = 1;
}

void stop_point(const char *name)
{
	const char *spec = getenv("IMGFORGE_STOP_AT");
	const char *hash;
	size_t len;
	unsigned n, want = 1;

	if (!spec || !*spec)
		return;
	n = count(name);
	if (!strcmp(spec, "trace")) {
		fprintf(stderr, "stop-point: %s#%u\n", name, n);
		fflush(stderr);
		return;
	}
	hash = strchr(spec, '#');
	len = hash ? (size_t)(hash - spec) : strlen(spec);
	if (hash)
		want = (unsigned)strtoul(hash + 1, NULL, 10);
	if (len != strlen(name) || strncmp(spec, name, len) || n != want)
		return;
	fprintf(stderr, "stop-point: %s#%u: stopped\n", name, n);
	fflush(stderr);
	for (;;)
		pause();
}
