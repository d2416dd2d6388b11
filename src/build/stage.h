/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_STAGE_H
#define IMGFORGE_STAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "build/pipeline.h"
#include "core/util.h"
#include "recipe/recipe.h"

/*
 * What the stages of a build share (internal to src/build/). pipeline.c
 * runs the table of stages in order, each one's output the next one's
 * input; a stage with an output name has its file published among the
 * outputs (outputs.c).
 */
struct archive;
struct cache;
struct registry_build;
struct build_outputs;
struct remote;

struct build_ctx {
	struct recipe *r;
	const struct stage_keys *keys;
	const struct build_opts *o;
	struct cache *cache;
	char *outdir;
	char *log_path; /* where build.log is written now */
	char *log_name; /* where it ends up, for messages */
	int log_fd;
	int64_t epoch;
	struct registry_build *rec;
	struct build_outputs *out;
	struct archive *archive; /* a package base's sources and their state, else NULL */
	struct remote *remote;	 /* the shared store (--store), else NULL */
	bool remote_off;	 /* the store failed once: the build goes on without it */
	char **remote_bad;	 /* objects of the store found bad, NULL-terminated: put again */
};

struct stage {
	const char *name;
	/* The stage's cache key (see imgforge plan). */
	const char *(*key)(const struct build_ctx *c);
	/* Whether the recipe asks for this stage; NULL: always. */
	bool (*wanted)(const struct build_ctx *c);
	/*
	 * Run the stage on the previous stage's output (NULL for the first).
	 * Returns 1 on a cache hit, 0 when built, with *ret_path the output in
	 * the cache (malloc'd, the caller's); -errno after build_fail().
	 */
	int (*run)(struct build_ctx *c, const char *input, char **ret_path);
	/* The name the output is published under, or NULL. */
	const char *output;
};

/* Log a step: to the terminal (unless --quiet) and always to the build log. */
void build_step(struct build_ctx *c, const char *fmt, ...) _printf_(2, 3);
/* Print one error line (and log it); returns r if < 0, else -EINVAL. */
int build_fail(struct build_ctx *c, int r, const char *fmt, ...) _printf_(3, 4);

/*
 * Look a stage's key up in the cache (re-hashing with --verify): 1 with
 * *ret_path on a hit, 0 on a miss (saying why when a bad entry was
 * dropped), -errno after build_fail().
 */
int build_lookup(struct build_ctx *c, const char *stage, const char *key, char **ret_path);

/*
 * cache_store() of a stage's finished file under key, with a step line
 * (and one before it for a large file: the cache hashes all of it).
 * -errno after build_fail().
 */
int build_store(struct build_ctx *c, const char *stage, const char *key, const char *tmp,
		char **ret_path);

/*
 * remote.c: the shared store. On a local miss, the stage's entry and object
 * from the store, checked and stored in the local cache: 1 with *ret_path,
 * 0 when the store has none or fails (one warning, then the build goes on
 * without it), -errno after build_fail() when the local cache fails.
 */
int build_remote_lookup(struct build_ctx *c, const char *stage, const char *key,
			char **ret_path);
/*
 * The object at path (pinned in the local cache) and the entry of key, into
 * the store: best effort, a failure is a warning and the build goes on.
 * For a local hit (local_hit), nothing when the store's entry names the
 * same object already.
 */
void build_remote_push(struct build_ctx *c, const char *stage, const char *key, const char *path,
		       bool local_hit);
/* The build's registered outputs, from the output directory, into the store (best effort). */
void build_remote_push_outputs(struct build_ctx *c);
void build_remote_release(struct build_ctx *c);

int stage_base_run(struct build_ctx *c, const char *input, char **ret_path);
int stage_rootfs_run(struct build_ctx *c, const char *base_path, char **ret_path);
int stage_disk_run(struct build_ctx *c, const char *root_path, char **ret_path);
/* stage-export.c: the disk in a format of the recipe's outputs: list ("qcow2", "vhd", "vmdk"). */
const char *stage_export_output(const char *word); /* "disk.qcow2"; NULL: none */
void stage_export_key(const char *disk_key, const char *word, char ret[65]);
int stage_export_run(struct build_ctx *c, const char *word, const char *key,
		     const char *disk_path, char **ret_path);

/* rootfs-tree.c: the recipe's overlays, files, services and removals, kernel links, scrub. */
struct tree;
int rootfs_apply_recipe(struct build_ctx *c, struct tree *t);

/* manifest.c: manifest.json for the build in c->rec. */
void build_manifest(struct build_ctx *c, struct strbuf *out);

#endif
