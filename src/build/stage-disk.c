/* SPDX-License-Identifier: MIT */
/* The disk stage: the A/B disk image around the root file system. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "build/disk.h"
#include "build/stage.h"
#include "store/cache.h"

static uint64_t size_of(struct build_ctx *c, const char *key)
{
	uint64_t v = 0;
	const char *s = recipe_get_str(c->r, key, NULL);

	if (s)
		parse_size(s, &v);
	return v;
}

int stage_disk_run(struct build_ctx *c, const char *root_path, char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL, *tmpdir = NULL;
	struct disk_opts o = { 0 };
	struct disk_layout l;
	int64_t ts;
	int r;

	r = build_lookup(c, "disk", c->keys->disk, ret_path);
	if (r > 0)
		build_step(c, "disk: cached (%.12s)", c->keys->disk);
	if (r != 0)
		return r;

	r = cache_tmpfile(c->cache, "disk", &tmp, &err);
	if (r < 0) {
		r = build_fail(c, r, "cache: %s", err.buf);
		goto out;
	}
	tmpdir = xasprintf("%s.d", tmp);
	r = mkdir_p(tmpdir, 0700);
	if (r < 0) {
		r = build_fail(c, r, "cannot create '%s': %s", tmpdir, strerror(-r));
		goto out;
	}
	o.seed = c->keys->disk;
	o.root_path = root_path;
	o.size = size_of(c, "disk.size");
	o.root_size = size_of(c, "disk.root_size");
	o.data_size = size_of(c, "disk.data_size");
	o.esp_size = size_of(c, "disk.esp_size");
	o.tries = (unsigned)atoi(recipe_get_str(c->r, "boot.tries", "3"));
	o.timeout = (unsigned)atoi(recipe_get_str(c->r, "boot.timeout", "1"));
	o.cmdline = recipe_get_str(c->r, "boot.cmdline", "console=ttyS0,115200 no_timer_check");
	o.epoch = c->epoch;
	o.tmpdir = tmpdir;
	ts = monotonic_ms();
	build_step(c, "disk: writing GPT, ESP with GRUB, root-a, root-b, data");
	r = disk_write(&o, tmp, &l, &err);
	rm_rf(tmpdir);
	if (r < 0) {
		r = build_fail(c, r, "disk: %s", err.buf);
		goto out;
	}
	{
		char a[32];
		build_step(c, "disk: %s written in %.1f s (root slots %llu MiB, data %llu MiB)",
		     format_size(l.size, a, sizeof(a)), seconds_since(ts),
		     (unsigned long long)(l.len[2] >> 20), (unsigned long long)(l.len[4] >> 20));
	}
	r = build_store(c, "disk", c->keys->disk, tmp, ret_path);
out:
	strbuf_release(&err);
	return r;
}
