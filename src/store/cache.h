/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CACHE_H
#define IMGFORGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "core/hash.h"
#include "core/util.h"

/*
 * The content-addressed stage cache (docs/cache.md). A stage's output (a
 * file: the base tarball, the root file system tarball, the disk image) is
 * stored under the key that hashes everything the stage depends on:
 *
 *	<dir>/index.db		SQLite index: key, stage, sha256, size, times
 *	<dir>/objects/<key>	the stored outputs, read-only
 *	<dir>/tmp/		files being written by running stages
 *	<dir>/downloads/	downloads in progress, kept to be resumed
 *	<dir>/locks/		one lock file per key (and per download) being built
 *
 * An entry exists only once its file is complete: a stage writes into a
 * path from cache_tmpfile() and cache_store() moves it into objects/ (never
 * over an existing file) and inserts the row within one write transaction.
 * Files a crash leaves in tmp/ are deleted by cache_open() and cache_gc();
 * files in objects/ without a row only by cache_gc().
 *
 * Several processes share a cache: a build takes the key's lock
 * (cache_lock()) around looking a stage up and building it, so that one
 * process builds a key and the others wait and then hit the cache; every
 * object a handle looked up or stored stays pinned (a shared flock on it)
 * until cache_close(), and gc deletes nothing pinned or locked. Nothing here
 * prints.
 */

struct cache;

/* The default directory: $XDG_CACHE_HOME/imgforge, else $HOME/.cache/imgforge. */
int cache_default_dir(char **ret, struct strbuf *err);

/*
 * Open the cache in dir (NULL: the default), creating it if needed, and
 * clean up what crashed processes left behind. Free with cache_close(),
 * which also deletes the temporary files this handle made and never stored.
 */
int cache_open(const char *dir, struct cache **ret, struct strbuf *err);
void cache_close(struct cache *c);

/*
 * Open the cache only to look into it (cache ls): nothing is created,
 * migrated, cleaned or written, so it works on a cache the user cannot
 * write. A cache without an index has no entries. Only cache_dir() and
 * cache_list() work on such a handle; the others give -EROFS.
 */
int cache_open_readonly(const char *dir, struct cache **ret, struct strbuf *err);
void cache_closep(struct cache **c);
#define _cleanup_cache_ _cleanup_(cache_closep)

const char *cache_dir(const struct cache *c);

/* Keys are 64 lowercase hex digits (a SHA-256 of the stage's inputs). */
bool cache_key_valid(const char *key);

/*
 * Take key's build lock for this handle (released by cache_unlock() or
 * cache_close()): held from before looking a stage up until its output is
 * stored, it makes a second process building the same key wait and then hit
 * the cache instead of building it again. With wait false, -EAGAIN when
 * another process holds it (the caller can say it waits, then call again
 * with wait true). Locks are taken one at a time, in stage order, so
 * builds cannot deadlock. Taking a lock this handle holds is a no-op.
 */
int cache_lock(struct cache *c, const char *key, bool wait, struct strbuf *err);
void cache_unlock(struct cache *c, const char *key);

enum cache_verify {
	/*
	 * Trust the file when its size, inode, mtime and ctime are those
	 * recorded when it was stored; hash it again when any differs. Catches
	 * deleted, truncated, rewritten and replaced files without reading
	 * gigabytes on every build.
	 */
	CACHE_VERIFY_METADATA,
	/* Always hash the whole file (imgforge --verify). */
	CACHE_VERIFY_HASH,
};

/*
 * Look up key. Returns 1 on a hit, with *ret_path (malloc'd, the caller's)
 * the object's path, marks the entry used and pins the object until
 * cache_close(). Returns 0 on a miss; when
 * there was an entry but its file is missing or its hash is wrong, the entry
 * and file are removed and why is appended to reason (may be NULL), for the
 * caller to log. -errno on failure (message in reason).
 */
int cache_lookup(struct cache *c, const char *key, enum cache_verify verify, char **ret_path,
		 struct strbuf *reason);

/*
 * A new empty file in <dir>/tmp for a stage to write its output into (same
 * file system as objects/, so that cache_store() can rename it). The stage
 * should write into this path rather than replace it: the file is locked by this
 * handle, and named after this process, so that another process's cleanup
 * leaves it (and files beside it, such as fetch_file()'s "<path>.part")
 * alone while this process runs. *ret_path is the caller's.
 */
int cache_tmpfile(struct cache *c, const char *stage, char **ret_path, struct strbuf *err);

/*
 * Move the complete file tmp_path (from cache_tmpfile()) into the cache
 * under key. The file is fsync'ed, hashed, made read-only and moved into
 * objects/ (never over an existing file); the row is committed in the same
 * write transaction. When another process stored the key first, its entry
 * is used and tmp_path deleted. The object is pinned until cache_close().
 * ret_path (may be NULL) receives the object's path, ret_sha256 (may be
 * NULL, 65 bytes) its hash.
 */
int cache_store(struct cache *c, const char *key, const char *stage, const char *tmp_path,
		char **ret_path, char *ret_sha256, struct strbuf *err);

/*
 * A stable path for downloading a file that will be stored in the cache:
 * <dir>/downloads/<name>, name typically the expected sha256 of the file. A
 * download interrupted by Ctrl-C resumes from "<name>.part" on the next
 * build (fetch_file() does, and locks it while in use); cache_store() then
 * moves the finished file into objects/. The download's lock is taken
 * (waiting for another process that holds it) and held until cache_store()
 * of that file or cache_close(), so that two builds fetching the same file
 * for different keys take turns, and cache_gc() leaves it alone.
 * *ret_path is the caller's.
 */
int cache_download_path(struct cache *c, const char *name, char **ret_path, struct strbuf *err);

/*
 * The sha256 (and size) recorded for the object at path, when it is one this
 * handle looked up or stored and still pins: a caller that copies the
 * object out need not read gigabytes again to hash the copy. -ENOENT for
 * any other file. ret must hold SHA256_HEX_LEN bytes.
 */
int cache_pinned_sha256(struct cache *c, const char *path, char ret[SHA256_HEX_LEN],
			uint64_t *ret_size);

/* Mark key as used now (for gc). -ENOENT if it is not in the cache. */
int cache_touch(struct cache *c, const char *key, struct strbuf *err);

struct cache_entry {
	char *key;
	char *stage;
	char *path; /* absolute */
	char sha256[SHA256_HEX_LEN];
	uint64_t size;
	int64_t created; /* Unix time */
	int64_t last_used;
};

/* All entries, least recently used first (the order gc removes them in). */
int cache_list(struct cache *c, struct cache_entry **ret, size_t *ret_n, struct strbuf *err);
void cache_entries_free(struct cache_entry *e, size_t n);

/*
 * How many files in objects/ have no entry, and their bytes (cache ls
 * reports them: after a lost index, that is where the cache's space went).
 */
int cache_unindexed(struct cache *c, size_t *ret_n, uint64_t *ret_size, struct strbuf *err);

struct cache_gc_stats {
	size_t removed;	    /* entries removed */
	uint64_t freed;	    /* their bytes */
	size_t kept;	    /* entries left */
	uint64_t kept_size; /* their bytes */
	size_t orphans;	    /* files left in tmp/ by crashed processes, deleted */
	size_t unindexed;   /* files in objects/ without an entry, deleted */
	uint64_t unindexed_size;
	size_t busy;	  /* entries gc would have removed but a build is using */
	size_t downloads; /* abandoned partial downloads, deleted */
	uint64_t downloads_size;
};

/*
 * Remove least recently used entries until the entries total at most
 * max_size bytes (0 empties the cache), skipping those a build has locked
 * or pinned, and delete leftovers of crashed processes, files in objects/
 * without an entry, and downloads and lock files not in use.
 * ret (may be NULL) receives what was done.
 */
int cache_gc(struct cache *c, uint64_t max_size, struct cache_gc_stats *ret, struct strbuf *err);

#endif
