/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_EXT4_H
#define IMGFORGE_EXT4_H

#include <stdbool.h>
#include <stdint.h>

#include "fs/tree.h"
#include "core/util.h"

/*
 * Writing a tree as an ext4 filesystem image with libext2fs, in one pass
 * over the inputs' content, as an ordinary user. The only module that
 * includes ext2fs headers. See docs/mkfs.md for the on-disk choices.
 *
 * The output is deterministic: the same tree and epoch give the same bytes.
 */

struct ext4_opts {
	uint64_t size;            /* bytes; 0 means "auto" */
	unsigned headroom_percent; /* auto: free space on top of the content (default 15) */
	const char *label;        /* up to 16 bytes, or NULL */
	const char *uuid;         /* "xxxxxxxx-xxxx-...", or NULL: derived (see lineage) */
	int64_t epoch;            /* every timestamp is clamped to this */
	/*
	 * The identity of the image across versions, e.g. its name: when set,
	 * the UUID (unless given), the directory hash seed and the metadata
	 * checksum seed are derived from it and the label, not from the
	 * content, so that two versions differ only where their content does.
	 * NULL: all three derived from the content.
	 */
	const char *lineage;
};

#define EXT4_OPTS_INIT { 0, 15, NULL, NULL, 0, NULL }

/*
 * Write the tree to out_path (through a temporary file in the same
 * directory, renamed on success; nothing is left behind on failure).
 * Adds /lost+found to the tree if it has none. May be called again on the
 * same tree.
 * Returns 0 or -errno with one line appended to err.
 * If ret_size is not NULL it gets the image size in bytes.
 */
int ext4_write(struct tree *t, const char *out_path, const struct ext4_opts *opts,
	       uint64_t *ret_size, struct strbuf *err);

/* Whether s is a lineage name: letters, digits, '.', '_' and '-', 1 to 64 of them. */
bool ext4_valid_lineage(const char *s);

/* Parse a UUID in the usual 8-4-4-4-12 hex form. */
int ext4_parse_uuid(const char *s, uint8_t ret[16]);

#endif
