/* SPDX-License-Identifier: MIT */
/*
 * imgforge build: the table of stages, run in order. Every stage writes into
 * a temporary file and hands it to the cache only when complete; outputs are
 * staged and committed as a set (outputs.c); the registry row is the last
 * thing written, in one transaction. A build killed at any point therefore
 * leaves the previous outputs, no partial file under a final name and no
 * row, and the next build just works.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build/archive.h"
#include "build/outputs.h"
#include "build/stage.h"
#include "core/hash.h"
#include "remote/remote.h"
#include "store/cache.h"
#include "store/registry.h"

static const char *key_base(const struct build_ctx *c)
{
	return c->keys->base;
}

static const char *key_rootfs(const struct build_ctx *c)
{
	return c->keys->rootfs;
}

static const char *key_disk(const struct build_ctx *c)
{
	return c->keys->disk;
}

static bool wants_disk(const struct build_ctx *c)
{
	return recipe_get(c->r, "disk") != NULL;
}

static const struct stage stages[] = {
	{ .name = "base", .key = key_base, .run = stage_base_run },
	{ .name = "rootfs", .key = key_rootfs, .run = stage_rootfs_run, .output = "root.ext4" },
	{ .name = "disk", .key = key_disk, .wanted = wants_disk, .run = stage_disk_run,
	  .output = "disk.raw" },
};

void build_step(struct build_ctx *c, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	info("%s", sb.buf);
	if (c->log_fd >= 0) {
		strbuf_addch(&sb, '\n');
		if (write(c->log_fd, sb.buf, sb.len) < 0) {
			/* the log is best effort; the terminal already has the line */
		}
	}
	strbuf_release(&sb);
}

int build_fail(struct build_ctx *c, int r, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	error("%s", sb.buf);
	if (c->log_fd >= 0) {
		if (write(c->log_fd, "error: ", 7) < 0 || write(c->log_fd, sb.buf, sb.len) < 0 ||
		    write(c->log_fd, "\n", 1) < 0) {
			/* best effort */
		}
	}
	strbuf_release(&sb);
	return r < 0 ? r : -EINVAL;
}

int build_lookup(struct build_ctx *c, const char *stage, const char *key, char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	int r = cache_lookup(c->cache, key,
			     c->o->verify ? CACHE_VERIFY_HASH : CACHE_VERIFY_METADATA, ret_path, &err);

	if (r < 0)
		r = build_fail(c, r, "cache: %s", err.buf);
	else if (r == 0 && err.len)
		build_step(c, "%s: cache entry dropped: %s", stage, err.buf);
	strbuf_release(&err);
	/* A local hit the store may lack (built before --store, or its push failed). */
	if (r > 0)
		build_remote_push(c, stage, key, *ret_path, true);
	else if (r == 0)
		r = build_remote_lookup(c, stage, key, ret_path);
	return r;
}

int build_store(struct build_ctx *c, const char *stage, const char *key, const char *tmp,
		char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	int64_t ts;
	struct stat st;
	char a[32];
	int r;

	ts = monotonic_ms();
	/* The cache hashes the whole file, holes included: say so before a long wait. */
	if (stat(tmp, &st) == 0 && st.st_size >= (off_t)1 << 30)
		build_step(c, "%s: hashing %s into the cache", stage,
			   format_size((uint64_t)st.st_size, a, sizeof(a)));
	r = cache_store(c->cache, key, stage, tmp, ret_path, NULL, &err);
	if (r < 0)
		r = build_fail(c, r, "cache: %s", err.buf);
	else if (seconds_since(ts) >= 1.0)
		build_step(c, "%s: stored in the cache (%.12s) in %.1f s", stage, key,
			   seconds_since(ts));
	else
		build_step(c, "%s: stored in the cache (%.12s)", stage, key);
	strbuf_release(&err);
	if (r >= 0 && ret_path && *ret_path)
		build_remote_push(c, stage, key, *ret_path, false);
	return r;
}

/*
 * Clone (or copy) a stage's output from the cache into the staging
 * directory and record it; say how long it took when that was long.
 */
static int publish(struct build_ctx *c, const struct stage *s, const char *src)
{
	_cleanup_free_ char *staged = outputs_staged_path(c->out, s->output);
	struct strbuf err = STRBUF_INIT;
	char sha[SHA256_HEX_LEN], a[32];
	int64_t ts;
	uint64_t size = 0;
	bool cloned = false;
	int r;

	ts = monotonic_ms();
	r = outputs_add_file(c->out, s->output, src, &cloned, &err);
	if (r < 0) {
		r = build_fail(c, r, "%s", err.buf);
		goto out;
	}
	/*
	 * The hash the cache recorded when it stored the object (checked since by
	 * metadata, or by hash with --verify): hashing a multi-GiB output again
	 * would cost more than copying it.
	 */
	if (cache_pinned_sha256(c->cache, src, sha, &size) < 0) {
		r = sha256_file(staged, sha, &size);
		if (r < 0) {
			r = build_fail(c, r, "cannot read '%s': %s", staged, strerror(-r));
			goto out;
		}
	}
	registry_build_add_output(c->rec, s->output, sha, size);
	if (seconds_since(ts) >= 1.0)
		build_step(c, "outputs: %s (%s) %s in %.1f s", s->output,
			   format_size(size, a, sizeof(a)), cloned ? "cloned" : "copied",
			   seconds_since(ts));
out:
	strbuf_release(&err);
	return r;
}

/*
 * Take the stage's cache lock: another build of the same key is running, so
 * wait for it and then hit the cache instead of building the key twice.
 */
static int lock_stage(struct build_ctx *c, const char *stage, const char *key)
{
	struct strbuf err = STRBUF_INIT;
	int r = cache_lock(c->cache, key, false, &err);

	if (r == -EAGAIN) {
		build_step(c, "%s: waiting for another build of stage %s (key %.12s)", stage, stage,
			   key);
		r = cache_lock(c->cache, key, true, &err);
	}
	if (r < 0)
		r = build_fail(c, r, "cache: %s", err.buf);
	strbuf_release(&err);
	return r;
}

/*
 * A stage from the table under its key's lock, then its output published.
 * Returns 1 on a cache hit.
 */
static int run_stage(struct build_ctx *c, const struct stage *s, const char *input,
		     char **ret_path)
{
	const char *key = s->key(c);
	int hit = lock_stage(c, s->name, key);

	if (hit < 0)
		return hit;
	hit = s->run(c, input, ret_path);
	cache_unlock(c->cache, key);
	if (hit < 0)
		return hit;
	if (s->output) {
		int r = publish(c, s, *ret_path);
		if (r < 0)
			return r;
	}
	return hit;
}

/* The disk in each format the recipe's outputs: list names (disk.raw is the disk stage's). */
static int run_exports(struct build_ctx *c, const char *disk_path)
{
	const struct ynode *list = recipe_get(c->r, "outputs");
	size_t i;
	int r;

	for (i = 0; list && list->kind == YNODE_SEQ && i < list->n; i++) {
		const char *word = list->v[i]->str;
		struct stage s = { .name = "export", .output = stage_export_output(word) };
		_cleanup_free_ char *path = NULL;
		char key[65];

		if (!s.output)
			continue; /* raw: disk.raw */
		stage_export_key(c->keys->disk, word, key);
		r = lock_stage(c, "export", key);
		if (r < 0)
			return r;
		r = stage_export_run(c, word, key, disk_path, &path);
		cache_unlock(c->cache, key);
		if (r >= 0)
			r = publish(c, &s, path);
		if (r < 0)
			return r;
	}
	return 0;
}

static void archive_note(void *userdata, bool warn, const char *line)
{
	struct build_ctx *c = userdata;

	if (!warn) {
		build_step(c, "%s", line);
		return;
	}
	/* Seen even with --quiet: the base may be older than the archive. */
	warning("%s", line);
	if (c->log_fd >= 0)
		dprintf(c->log_fd, "warning: %s\n", line);
}

/*
 * A package base: where its suites come from and what they hold now. The
 * archive's state goes into the keys of every stage (a new base is a new
 * rootfs). 1 with *a and *ret_keys set; 0 for a tarball base; -errno after
 * build_fail().
 */
static int check_archive(struct build_ctx *c, struct archive *a, struct stage_keys *ret_keys)
{
	struct archive_check_opts ao = { 0 };
	struct strbuf err = STRBUF_INIT;
	struct diags d = { 0 };
	_cleanup_free_ char *dir = NULL;
	char digest[65];
	size_t i;
	int r;

	if (recipe_get(c->r, "base.tarball"))
		return 0;
	r = archive_resolve(c->r, a, &err);
	if (r < 0) {
		r = build_fail(c, r, "base: %s", err.buf);
		goto out;
	}
	dir = path_join(cache_dir(c->cache), "archive-state");
	ao.state_dir = dir;
	ao.refresh = c->o->refresh;
	ao.max_age_s = ARCHIVE_MAX_AGE_S;
	ao.note = archive_note;
	ao.userdata = c;
	r = archive_check(a, &ao, digest, &err);
	if (r < 0) {
		r = build_fail(c, r, "base: %s", err.buf);
		goto out;
	}
	for (i = 0; i < a->n; i++) {
		char when[64];
		build_step(c, "base: %s %s (from %s): %.12s, checked %s", a->v[i].uri,
			   a->v[i].suite, a->v[i].from, a->v[i].state,
			   format_time(a->v[i].checked, true, when, sizeof(when)));
	}
	r = keys_compute_archive(c->r, digest, ret_keys, &d);
	if (r < 0) {
		r = build_fail(c, r, "%s:%d:%d: %s", d.n ? d.v[0].file : "", d.n ? d.v[0].line : 0,
			       d.n ? d.v[0].col : 0, d.n ? d.v[0].msg : "cannot compute the keys");
		goto out;
	}
	r = 1;
out:
	diags_release(&d);
	strbuf_release(&err);
	return r;
}

int pipeline_build(struct recipe *r, const struct stage_keys *keys, const struct build_opts *o,
		   struct build_result *ret)
{
	struct build_ctx c = { .r = r, .keys = keys, .o = o, .log_fd = -1 };
	struct strbuf err = STRBUF_INIT, manifest = STRBUF_INIT;
	struct archive archive = { 0 };
	struct stage_keys archive_keys;
	_cleanup_free_ char *reg_path = NULL, *id = NULL;
	char *paths[ARRAY_SIZE(stages)] = { NULL };
	int hits[ARRAY_SIZE(stages)] = { 0 };
	const char *input = NULL;
	struct registry *reg = NULL;
	struct build_result res = { 0 };
	char idbuf[64];
	size_t i;
	int rr;

	c.epoch = source_date_epoch((int64_t)time(NULL));
	c.outdir = o->outdir ? xstrdup(o->outdir)
			     : xasprintf("out/%s-%s-%s", recipe_get_str(r, "image", "image"),
					 recipe_get_str(r, "version", "0"), r->profile);
	rr = outputs_open(c.outdir, &c.out, &err);
	if (rr < 0) {
		rr = build_fail(&c, rr, "%s", err.buf);
		goto out;
	}
	c.log_name = path_join(c.outdir, "build.log");
	c.log_path = outputs_staged_path(c.out, "build.log");
	c.log_fd = outputs_create(c.out, "build.log");
	if (c.log_fd < 0) {
		rr = build_fail(&c, c.log_fd, "cannot write the build log '%s': %s", c.log_name,
				strerror(-c.log_fd));
		goto out;
	}

	rr = cache_open(o->cache, &c.cache, &err);
	if (rr < 0) {
		rr = build_fail(&c, rr, "cache: %s", err.buf);
		goto out;
	}
	if (remote_location(o->store)) {
		rr = remote_open(remote_location(o->store), &c.remote, &err);
		if (rr < 0) {
			rr = build_fail(&c, rr, "%s", err.buf);
			goto out;
		}
	}
	reg_path = registry_location(o->registry) ? xstrdup(registry_location(o->registry))
						  : path_join(cache_dir(c.cache), "registry.db");
	rr = registry_open(reg_path, &reg, &err);
	if (rr < 0) {
		rr = build_fail(&c, rr, "registry: %s", err.buf);
		goto out;
	}

	rr = check_archive(&c, &archive, &archive_keys);
	if (rr < 0)
		goto out;
	if (rr > 0) {
		c.archive = &archive;
		c.keys = keys = &archive_keys;
	}

	c.rec = registry_build_new();
	c.rec->created = (int64_t)time(NULL);
	registry_new_id(c.rec->created, idbuf);
	c.rec->id = xstrdup(idbuf);
	c.rec->image = xstrdup(recipe_get_str(r, "image", ""));
	c.rec->version = xstrdup(recipe_get_str(r, "version", ""));
	c.rec->profile = xstrdup(r->profile);
	c.rec->key_base = xstrdup(keys->base);
	c.rec->key_rootfs = xstrdup(keys->rootfs);
	c.rec->outdir = realpath(c.outdir, NULL);
	{
		struct strbuf in = STRBUF_INIT;
		keys_print_json(r, keys, &in, false);
		c.rec->inputs = strbuf_detach(&in);
	}
	build_step(&c, "build %s: %s %s (profile %s) into %s", c.rec->id, c.rec->image,
		   c.rec->version, r->profile, c.outdir);

	for (i = 0; i < ARRAY_SIZE(stages); i++) {
		const struct stage *s = &stages[i];

		if (s->wanted && !s->wanted(&c))
			continue;
		hits[i] = run_stage(&c, s, input, &paths[i]);
		if (hits[i] < 0) {
			rr = hits[i];
			goto out;
		}
		input = paths[i];
		if (s->key == key_disk)
			c.rec->key_disk = xstrdup(s->key(&c));
		if (s->key == key_disk && (rr = run_exports(&c, paths[i])) < 0)
			goto out;
	}

	build_manifest(&c, &manifest);
	rr = outputs_add_data(c.out, "manifest.json", manifest.buf, manifest.len, &err);
	if (rr < 0) {
		rr = build_fail(&c, rr, "%s", err.buf);
		goto out;
	}
	{
		char sha[SHA256_HEX_LEN];
		sha256_hex(manifest.buf, manifest.len, sha);
		registry_build_add_output(c.rec, "manifest.json", sha, manifest.len);
	}
	rr = outputs_commit(c.out, "manifest.json", &err);
	if (rr < 0) {
		rr = build_fail(&c, rr, "%s", err.buf);
		goto out;
	}
	/* Before the row: a build the shared registry lists has its outputs in the store. */
	build_remote_push_outputs(&c);
	/* The row is written last: a registered build has its outputs in place. */
	rr = registry_add(reg, c.rec, &id, &err);
	if (rr < 0) {
		rr = build_fail(&c, rr, "registry: %s", err.buf);
		goto out;
	}
	/* The log is in place by now; its fd still writes to it. */
	build_step(&c, "build %s: done in %ld s: %s/root.ext4 (%zu packages)", id,
		   (long)(time(NULL) - (time_t)c.rec->created), c.outdir, c.rec->n_packages);
	res.id = TAKE_PTR(id);
	res.outdir = TAKE_PTR(c.outdir);
	res.base_cached = hits[0] > 0;
	res.rootfs_cached = hits[1] > 0;
	*ret = res;
	rr = 0;
out:
	registry_close(reg);
	build_remote_release(&c);
	if (c.cache)
		cache_close(c.cache);
	if (c.rec)
		registry_build_free(c.rec);
	if (c.log_fd >= 0)
		close(c.log_fd);
	outputs_free(c.out, "build.log");
	for (i = 0; i < ARRAY_SIZE(stages); i++)
		free(paths[i]);
	free(c.log_path);
	free(c.log_name);
	free(c.outdir);
	archive_release(&archive);
	strbuf_release(&err);
	strbuf_release(&manifest);
	return rr;
}

void build_result_release(struct build_result *res)
{
	free(res->id);
	free(res->outdir);
	memset(res, 0, sizeof(*res));
}
