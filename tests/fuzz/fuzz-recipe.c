/* SPDX-License-Identifier: MIT */
/* Fuzz target: the recipe parser and the structure checks behind it. */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "recipe/recipe.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct diags d = { 0 };
	struct ynode *n = NULL;
	struct recipe *r = NULL;
	struct recipe_opts o = { 0 };
	char path[] = "/tmp/imgforge-fuzz-XXXXXX";
	int fd;

	if (ynode_parse("fuzz.yaml", (const char *)data, size, &n, &d) == 0)
		ynode_free(n);
	diags_release(&d);

	/* The whole loader too: through a file, as users feed it. */
	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		if (recipe_load(path, &o, &r, &d) == 0) {
			struct strbuf sb = STRBUF_INIT;
			recipe_print_yaml(r, NULL, 0, &sb);
			strbuf_release(&sb);
			recipe_free(r);
		}
		diags_release(&d);
	}
	close(fd);
	unlink(path);
	return 0;
}
