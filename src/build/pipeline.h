/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_PIPELINE_H
#define IMGFORGE_PIPELINE_H

#include <stdbool.h>

#include "build/keys.h"
#include "core/util.h"

/*
 * The build pipeline behind `imgforge build`: base stage (mmdebstrap or a
 * fetched tarball), rootfs stage (the tree with overlays, files, services
 * and removals, written as ext4), each cached under its stage key; then the
 * outputs, the manifest and one registry row. See docs/build.md.
 */
struct build_opts {
	const char *outdir;   /* NULL: out/<image>-<version>-<profile> */
	const char *cache;    /* NULL: the default cache directory */
	const char *registry; /* NULL: <cache>/registry.db */
	const char *store;    /* the shared store, s3://BUCKET/PREFIX; NULL: $IMGFORGE_STORE or none */
	bool verify;	      /* re-hash cache entries instead of trusting metadata */
	bool refresh;	      /* check the archives even when their last state is fresh */
};

struct build_result {
	char *id;     /* registry build id */
	char *outdir; /* where the outputs are */
	bool base_cached, rootfs_cached;
};

/*
 * Run the build. Returns 0 and fills ret (release with build_result_release),
 * or -errno after printing one error line (what, where, what to do).
 */
int pipeline_build(struct recipe *r, const struct stage_keys *keys, const struct build_opts *o,
		   struct build_result *ret);
void build_result_release(struct build_result *res);

#endif
