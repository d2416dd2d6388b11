/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_OUTPUTS_H
#define IMGFORGE_OUTPUTS_H

#include <stdbool.h>
#include <stddef.h>

#include "core/util.h"

/*
 * A build's output directory, locked, with the set of outputs being
 * written in a private staging directory inside it until outputs_commit()
 * moves them in (see outputs.c and docs/build.md). Names are file names
 * with static storage (string literals). Messages go to err, nothing prints.
 */
struct build_outputs;

/*
 * Create and lock dir (a second build into it gets -EWOULDBLOCK and a
 * message), remove what killed builds left there, and make the staging
 * directory. Until outputs_free(), SIGINT, SIGTERM and SIGHUP remove the
 * staging directory and then end imgforge as they would have.
 */
int outputs_open(const char *dir, struct build_outputs **ret, struct strbuf *err);
const char *outputs_dir(const struct build_outputs *o);
/* Where name is while staged (malloc'd, the caller's). */
char *outputs_staged_path(const struct build_outputs *o, const char *name);

/* A new file name in the staging directory, opened for writing: an fd, or -errno. */
int outputs_create(struct build_outputs *o, const char *name);
/*
 * The file src as output name: a copy-on-write clone where the file system
 * can (*ret_cloned, may be NULL, says whether it did), else a copy of its
 * data (holes stay holes). Synced.
 */
int outputs_add_file(struct build_outputs *o, const char *name, const char *src, bool *ret_cloned,
		     struct strbuf *err);
int outputs_add_data(struct build_outputs *o, const char *name, const void *data, size_t len,
		     struct strbuf *err);

/*
 * Move every staged file into the directory, last (the manifest) removed
 * first, moved last. SIGINT, SIGTERM and SIGHUP wait until it returns.
 */
int outputs_commit(struct build_outputs *o, const char *last, struct strbuf *err);

/*
 * Remove the staging directory and unlock. Without a commit, keep (the
 * log; may be NULL) is moved into the directory first.
 */
void outputs_free(struct build_outputs *o, const char *keep);

#endif
