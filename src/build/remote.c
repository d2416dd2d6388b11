/* SPDX-License-Identifier: MIT */
/*
 * The shared store in a build (--store, docs/registry.md): a stage the
 * local cache misses is looked up in the store before it is built; what a
 * build makes or finds is put into it. The local cache stays the fast
 * path and the only place a stage's output is read from: an object from
 * the store is checked against its SHA-256, then cache_store()d like a
 * stage's own output. The store is best effort: when it fails, the build
 * says so once and goes on without it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "build/stage.h"
#include "core/file.h"
#include "core/hash.h"
#include "remote/remote.h"
#include "store/cache.h"
#include "store/registry.h"

/* One warning line (terminal and build log), and no more use of the store in this build. */
static void remote_failed(struct build_ctx *c, struct strbuf *err)
{
	warning("store '%s': %s; the build goes on without the store", remote_url(c->remote),
		strbuf_str(err));
	if (c->log_fd >= 0)
		dprintf(c->log_fd, "warning: store '%s': %s; the build goes on without the store\n",
			remote_url(c->remote), strbuf_str(err));
	c->remote_off = true;
}

static bool remote_is_bad(const struct build_ctx *c, const char *sha256)
{
	char **p;

	for (p = c->remote_bad; p && *p; p++)
		if (!strcmp(*p, sha256))
			return true;
	return false;
}

static void remote_mark_bad(struct build_ctx *c, const char *sha256)
{
	size_t n = 0;

	while (c->remote_bad && c->remote_bad[n])
		n++;
	c->remote_bad = xrealloc(c->remote_bad, (n + 2) * sizeof(char *));
	c->remote_bad[n] = xstrdup(sha256);
	c->remote_bad[n + 1] = NULL;
}

static void remote_unmark_bad(struct build_ctx *c, const char *sha256)
{
	size_t i, n = 0;

	while (c->remote_bad && c->remote_bad[n])
		n++;
	for (i = 0; i < n; i++)
		if (!strcmp(c->remote_bad[i], sha256)) {
			free(c->remote_bad[i]);
			c->remote_bad[i] = c->remote_bad[n - 1];
			c->remote_bad[n - 1] = NULL;
			return;
		}
}

int build_remote_lookup(struct build_ctx *c, const char *stage, const char *key, char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL;
	struct remote_stage e;
	uint64_t size = 0;
	int64_t ts;
	int r;

	if (!c->remote || c->remote_off)
		return 0;
	ts = monotonic_ms();
	r = remote_get_stage(c->remote, key, &e, &err);
	if (r < 0) {
		remote_failed(c, &err);
		r = 0;
		goto out;
	}
	if (r == 0)
		goto out;
	r = cache_tmpfile(c->cache, stage, &tmp, &err);
	if (r < 0) {
		r = build_fail(c, r, "cache: %s", err.buf);
		goto out;
	}
	r = remote_get_object(c->remote, e.sha256, tmp, &size, &err);
	if (r == -EBADMSG || r == -ENOENT) {
		/* This object only: the stage is built here, and put over it. */
		warning("store: %s: %s; building the stage here", stage, err.buf);
		if (c->log_fd >= 0)
			dprintf(c->log_fd, "warning: store: %s: %s; building the stage here\n",
				stage, err.buf);
		remote_mark_bad(c, e.sha256);
		unlink(tmp);
		r = 0;
		goto out;
	}
	if (r < 0) {
		unlink(tmp);
		remote_failed(c, &err);
		r = 0;
		goto out;
	}
	r = cache_store(c->cache, key, stage, tmp, ret_path, NULL, &err);
	if (r < 0) {
		r = build_fail(c, r, "cache: %s", err.buf);
		goto out;
	}
	{
		char a[32];

		build_step(c, "%s: remote hit (%.12s): %s from %s in %.1f s", stage, key,
			   format_size(size, a, sizeof(a)), remote_url(c->remote),
			   seconds_since(ts));
	}
	r = 1;
out:
	strbuf_release(&err);
	return r;
}

/* The object of sha256 at path into the store: 1 sent, 0 there already, -errno (message in err). */
static int push_object(struct build_ctx *c, const char *path, const char *sha256,
		       struct strbuf *err)
{
	_cleanup_free_ char *dir = xasprintf("%s/store-uploads/%s", cache_dir(c->cache), sha256);
	int r = remote_put_object(c->remote, path, sha256, dir, remote_is_bad(c, sha256), err);

	if (r >= 0) {
		rm_rf(dir);
		remote_unmark_bad(c, sha256); /* put back: good from now on */
	}
	return r;
}

void build_remote_push(struct build_ctx *c, const char *stage, const char *key, const char *path,
		       bool local_hit)
{
	struct strbuf err = STRBUF_INIT;
	struct remote_stage e = {0};
	int64_t ts;
	int r;

	if (!c->remote || c->remote_off)
		return;
	if (cache_pinned_sha256(c->cache, path, e.sha256, &e.size) < 0) {
		r = sha256_file(path, e.sha256, &e.size);
		if (r < 0) {
			strbuf_addf(&err, "cannot read '%s': %s", path, strerror(-r));
			remote_failed(c, &err);
			goto out;
		}
	}
	snprintf(e.stage, sizeof(e.stage), "%s", stage);
	/* A local hit the store has: one GET, nothing written. */
	if (local_hit) {
		struct remote_stage have;

		r = remote_get_stage(c->remote, key, &have, &err);
		if (r < 0) {
			remote_failed(c, &err);
			goto out;
		}
		if (r > 0 && !strcmp(have.sha256, e.sha256))
			goto out;
	}
	ts = monotonic_ms();
	r = push_object(c, path, e.sha256, &err);
	if (r >= 0) {
		int k = remote_put_stage(c->remote, key, &e, &err);
		if (k < 0)
			r = k;
	}
	if (r < 0) {
		remote_failed(c, &err);
		goto out;
	}
	if (r > 0) {
		char a[32];

		build_step(c, "%s: pushed to the store (%.12s): %s in %.1f s", stage, key,
			   format_size(e.size, a, sizeof(a)), seconds_since(ts));
	} else {
		build_step(c, "%s: entry pushed to the store (%.12s; its object was there)", stage,
			   key);
	}
out:
	strbuf_release(&err);
}

void build_remote_push_outputs(struct build_ctx *c)
{
	struct strbuf err = STRBUF_INIT;
	size_t i, sent = 0;

	if (!c->remote || c->remote_off)
		return;
	for (i = 0; i < c->rec->n_outputs; i++) {
		const struct registry_output *o = &c->rec->outputs[i];
		_cleanup_free_ char *path = path_join(c->outdir, o->name);
		int r = push_object(c, path, o->sha256, &err);

		if (r < 0) {
			remote_failed(c, &err);
			goto out;
		}
		sent += (size_t)r;
	}
	build_step(c, "store: the build's %zu outputs are in %s (%zu sent)", c->rec->n_outputs,
		   remote_url(c->remote), sent);
out:
	strbuf_release(&err);
}

void build_remote_release(struct build_ctx *c)
{
	char **p;

	for (p = c->remote_bad; p && *p; p++)
		free(*p);
	free(c->remote_bad);
	c->remote_bad = NULL;
	remote_close(c->remote);
	c->remote = NULL;
}
