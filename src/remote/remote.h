/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_REMOTE_H
#define IMGFORGE_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/hash.h"
#include "core/util.h"

/*
 * The shared store (docs/registry.md, "The shared store"): a bucket of an
 * S3-compatible service, under a prefix, where builders leave what they
 * built for each other:
 *
 *	PREFIX/objects/sha256/<hex>	a file (a stage's output, a build's
 *					output), named by its SHA-256
 *	PREFIX/stages/<key>.json	a stage cache entry: which object holds
 *					the output of the stage of that key
 *
 * Objects are written before the entries that name them, and checked
 * against their name when they are read: a file that is not what its name
 * says is refused, never used. Nothing here prints.
 *
 * It sits between build/ and cloud/ (docs/development.md): it speaks S3
 * through cloud/s3, and credentials and the endpoint come from where
 * `imgforge publish --to aws` reads them (cloud/aws-auth).
 */
struct remote;

/* The store to use: option, else $IMGFORGE_STORE, else NULL (none). */
const char *remote_location(const char *option);

/*
 * Open s3://BUCKET[/PREFIX]. Nothing is sent yet. -EINVAL for a URL of
 * another form, -ENOKEY without credentials, each with one line in err.
 * *ret is the caller's (remote_close()).
 */
int remote_open(const char *url, struct remote **ret, struct strbuf *err);
void remote_close(struct remote *r);
void remote_closep(struct remote **r);
#define _cleanup_remote_ _cleanup_(remote_closep)

/* "s3://bucket/prefix", for messages. */
const char *remote_url(const struct remote *r);
/* The URL of the object of sha256, for messages. Malloc'd. */
char *remote_object_url(const struct remote *r, const char *sha256);

/*
 * Put the file path, whose SHA-256 is sha256, as its object, unless the
 * store has it already (force: put it anyway, over an object found bad).
 * A file over 64 MiB goes as a multipart upload whose resume state is kept
 * in state_dir. 1 when sent, 0 when it was there.
 */
int remote_put_object(struct remote *r, const char *path, const char *sha256, const char *state_dir,
		      bool force, struct strbuf *err);

/*
 * Download the object of sha256 into path (created or truncated) and check
 * it: -EBADMSG when its bytes do not hash to sha256 (the file is then
 * emptied), -ENOENT when the store has no such object. *ret_size (may be
 * NULL) its size.
 */
int remote_get_object(struct remote *r, const char *sha256, const char *path, uint64_t *ret_size,
		      struct strbuf *err);

struct remote_stage {
	char stage[32]; /* "base", "rootfs", ... */
	char sha256[SHA256_HEX_LEN];
	uint64_t size;
};

/*
 * The store's entry for stage key: 1 with *ret, 0 when it has none; an
 * entry that cannot be read is -EBADMSG.
 */
int remote_get_stage(struct remote *r, const char *key, struct remote_stage *ret,
		     struct strbuf *err);
/* Write the entry for key (after its object). */
int remote_put_stage(struct remote *r, const char *key, const struct remote_stage *e,
		     struct strbuf *err);

#endif
