/* SPDX-License-Identifier: MIT */
/*
 * Replays a fuzz target's corpus as a TAP test: every file in the directory
 * given as argv[1] is fed to LLVMFuzzerTestOneInput once. Built into each
 * tests/fuzz/fuzz-*.c program for `make check`; `make fuzz` links the same
 * targets with libFuzzer instead.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	struct dirent *de;
	DIR *d;
	int count = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
		return 2;
	}
	d = opendir(argv[1]);
	if (!d) {
		printf("not ok 1 - cannot open corpus '%s'\n1..1\n", argv[1]);
		return 1;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		GROW(names, alloc, n + 1);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp);
	for (i = 0; i < n; i++) {
		_cleanup_free_ char *path = path_join(argv[1], names[i]);
		char *buf = NULL;
		size_t len = 0;

		if (read_file(path, 16 << 20, &buf, &len) < 0) {
			printf("not ok %d - cannot read %s\n", ++count, names[i]);
			free(names[i]);
			continue;
		}
		/* A crash or sanitizer report ends the program: the runner sees it. */
		LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
		free(buf);
		printf("ok %d - %s\n", ++count, names[i]);
		free(names[i]);
	}
	free(names);
	printf("1..%d\n", count);
	return 0;
}
