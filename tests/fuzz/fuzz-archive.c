/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: archive reading (tarball.c through tree_add_archive, with the
 * hostile-input policy of tree.c) and, for archives accepted, the ext4 writer.
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "fs/ext4.h"
#include "fs/tree.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[] = "/tmp/imgforge-fuzz-XXXXXX";
	struct strbuf err = STRBUF_INIT;
	struct tree *t = NULL;
	int fd;

	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) != (ssize_t)size)
		goto out;
	t = tree_new();
	if (tree_add_archive(t, path, &err) == 0) {
		struct ext4_opts o = EXT4_OPTS_INIT;
		struct tree_stats st;
		_cleanup_free_ char *img = xasprintf("%s.ext4", path);

		tree_stats(t, &st);
		/* Keep the replay quick: images of a few MiB only. */
		if (st.data_bytes < (8 << 20) && st.nodes < 10000) {
			o.epoch = 1700000000;
			ext4_write(t, img, &o, NULL, &err);
			unlink(img);
		}
	}
out:
	tree_free(t);
	strbuf_release(&err);
	close(fd);
	unlink(path);
	return 0;
}
