/* SPDX-License-Identifier: MIT */
/*
 * imgforge cache ls | gc: look into and trim the stage cache. A thin layer
 * over cache.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/cache.h"
#include "cmd/cmd.h"
#include "core/json.h"
#include "core/util.h"

static const char usage[] =
	"usage: imgforge cache ls [--json] [--cache <dir>]\n"
	"   or: imgforge cache gc [--max-size <size>] [--cache <dir>]\n"
	"\n"
	"Look into and trim the stage cache (default $XDG_CACHE_HOME/imgforge,\n"
	"else ~/.cache/imgforge).\n"
	"\n"
	"   ls                   list the entries, least recently used first\n"
	"   gc                   delete files left by interrupted builds, partial\n"
	"                        downloads no build is using and, with --max-size, the\n"
	"                        least recently used entries until the cache holds at\n"
	"                        most that much (e.g. 20G; 0 empties it)\n";

static int cache_ls(struct cache *c, bool json)
{
	struct strbuf err = STRBUF_INIT, out = STRBUF_INIT;
	struct cache_entry *e = NULL;
	uint64_t total = 0, unindexed_size = 0;
	size_t n = 0, i, n_unindexed = 0;
	char sz[32], used[32];
	int r;

	r = cache_list(c, &e, &n, &err);
	if (r < 0) {
		error("cache ls: %s", strbuf_str(&err));
		strbuf_release(&err);
		return 1;
	}
	for (i = 0; i < n; i++)
		total += e[i].size;
	if (cache_unindexed(c, &n_unindexed, &unindexed_size, &err) < 0) {
		error("cache ls: %s", strbuf_str(&err));
		strbuf_release(&err);
		cache_entries_free(e, n);
		return 1;
	}
	if (json) {
		struct json j;

		json_init(&j, &out, true);
		json_begin_object(&j);
		json_kv_string(&j, "cache", cache_dir(c));
		json_kv_uint(&j, "total_size", total);
		json_kv_uint(&j, "unindexed_files", n_unindexed);
		json_kv_uint(&j, "unindexed_size", unindexed_size);
		json_key(&j, "entries");
		json_begin_array(&j);
		for (i = 0; i < n; i++) {
			json_begin_object(&j);
			json_kv_string(&j, "key", e[i].key);
			json_kv_string(&j, "stage", e[i].stage);
			json_kv_string(&j, "path", e[i].path);
			json_kv_string(&j, "sha256", e[i].sha256);
			json_kv_uint(&j, "size", e[i].size);
			json_kv_int(&j, "created", e[i].created);
			json_kv_int(&j, "last_used", e[i].last_used);
			json_end_object(&j);
		}
		json_end_array(&j);
		json_end_object(&j);
	} else {
		if (n)
			strbuf_addf(&out, "%-12s  %-8s  %10s  %s\n", "KEY", "STAGE", "SIZE",
				    "LAST USED (UTC)");
		for (i = 0; i < n; i++) {
			format_time(e[i].last_used, false, used, sizeof(used));
			strbuf_addf(&out, "%.12s  %-8s  %10s  %s\n", e[i].key, e[i].stage,
				    format_size(e[i].size, sz, sizeof(sz)), used);
		}
		strbuf_addf(&out, "%zu %s, %s in '%s'\n", n, n == 1 ? "entry" : "entries",
			    format_size(total, sz, sizeof(sz)), cache_dir(c));
		if (n_unindexed)
			strbuf_addf(&out,
				    "%zu %s (%s) in '%s/objects' not in the index: never used; "
				    "'imgforge cache gc' deletes them\n",
				    n_unindexed, n_unindexed == 1 ? "file" : "files",
				    format_size(unindexed_size, sz, sizeof(sz)), cache_dir(c));
	}
	fwrite(out.buf, 1, out.len, stdout);
	cache_entries_free(e, n);
	strbuf_release(&out);
	return 0;
}

static int cache_gc_cmd(struct cache *c, bool have_max, uint64_t max)
{
	struct strbuf err = STRBUF_INIT;
	struct cache_gc_stats st;
	char freed[32], kept[32], dls[32];

	if (cache_gc(c, have_max ? max : UINT64_MAX, &st, &err) < 0) {
		error("cache gc: %s", strbuf_str(&err));
		strbuf_release(&err);
		return 1;
	}
	info("removed %zu %s (%s), %zu leftover %s of interrupted builds and %zu abandoned "
	     "%s (%s); %zu %s (%s) kept",
	     st.removed, st.removed == 1 ? "entry" : "entries",
	     format_size(st.freed, freed, sizeof(freed)), st.orphans,
	     st.orphans == 1 ? "file" : "files", st.downloads,
	     st.downloads == 1 ? "download" : "downloads",
	     format_size(st.downloads_size, dls, sizeof(dls)), st.kept,
	     st.kept == 1 ? "entry" : "entries", format_size(st.kept_size, kept, sizeof(kept)));
	if (st.unindexed)
		info("removed %zu %s in '%s/objects' that the index does not list (%s)",
		     st.unindexed, st.unindexed == 1 ? "file" : "files", cache_dir(c),
		     format_size(st.unindexed_size, freed, sizeof(freed)));
	if (st.busy)
		info("kept %zu %s that running builds are using", st.busy,
		     st.busy == 1 ? "entry" : "entries");
	return 0;
}

int cmd_cache(int argc, char **argv)
{
	struct strbuf err = STRBUF_INIT;
	struct cache *c = NULL;
	const char *dir = NULL, *sub;
	bool json = false, have_max;
	uint64_t max = UINT64_MAX;
	const struct opt opts[] = {
		OPT_FLAG(0, "json", &json, "print the list as JSON (ls)"),
		OPT_STRING(0, "cache", &dir, "<dir>", "the cache directory"),
		OPT_SIZE(0, "max-size", &max, "<size>", "the most the cache may hold (gc)"),
		OPT_END(),
	};
	struct opt_cmd cmd = {
		.name = "cache",
		.usage = usage,
		.opts = opts,
		.footer = "See docs/cache.md.\n",
	};
	_cleanup_free_ char *name = NULL;
	int n, r;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		opt_print_help(&cmd, stdout);
		return 0;
	}
	if (argc < 2 || argv[1][0] == '-') {
		error("cache: give a subcommand, 'ls' or 'gc'; see 'imgforge cache --help'");
		return EXIT_USAGE;
	}
	sub = argv[1];
	if (strcmp(sub, "ls") && strcmp(sub, "gc")) {
		error("cache: unknown subcommand '%s'; use 'ls' or 'gc'", sub);
		return EXIT_USAGE;
	}
	name = xasprintf("cache %s", sub);
	cmd.name = name;
	n = parse_options(&cmd, argc - 1, argv + 1);
	if (n < 0)
		return opt_exit_status(n);
	if (n > 0) {
		error("cache %s: unexpected argument '%s'", sub, argv[1]);
		return EXIT_USAGE;
	}
	/* parse_size() stops short of UINT64_MAX: it only stands for "not given". */
	have_max = max != UINT64_MAX;
	if ((json && !strcmp(sub, "gc")) || (have_max && !strcmp(sub, "ls"))) {
		error("cache %s: %s is an option of 'cache %s'", sub,
		      json ? "--json" : "--max-size", json ? "ls" : "gc");
		return EXIT_USAGE;
	}
	/* ls only looks: it works on a cache the user cannot write, and cleans nothing. */
	if ((!strcmp(sub, "ls") ? cache_open_readonly(dir, &c, &err) : cache_open(dir, &c, &err)) <
	    0) {
		error("cache %s: %s", sub, strbuf_str(&err));
		strbuf_release(&err);
		return 1;
	}
	r = !strcmp(sub, "ls") ? cache_ls(c, json) : cache_gc_cmd(c, have_max, max);
	cache_close(c);
	return r;
}
