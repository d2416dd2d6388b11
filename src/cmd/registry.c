/* SPDX-License-Identifier: MIT */
/*
 * imgforge ls | show | diff: read the build registry. One section per
 * command below, each a thin layer over registry.c; they share option
 * parsing and the way the registry is found.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/cache.h"
#include "cmd/cmd.h"
#include "core/json.h"
#include "store/registry.h"
#include "core/util.h"

static const char usage_ls[] =
	"usage: imgforge ls [--published] [--json] [--registry <path>] [--cache <dir>]\n"
	"\n"
	"List the registered builds, oldest first. With --published, only the builds\n"
	"published to a cloud ('imgforge publish'), one line per image.\n";

static const char usage_show[] =
	"usage: imgforge show <build> [--json] [--registry <path>] [--cache <dir>]\n"
	"\n"
	"Show a registered build: its inputs, stage keys, outputs, packages, where it\n"
	"was published (and, with --json, its file list). <build> is a build id or a unique prefix of one;\n"
	"'imgforge ls' lists them.\n";

static const char usage_diff[] =
	"usage: imgforge diff <build1> <build2> [--json] [--registry <path>] [--cache <dir>]\n"
	"\n"
	"Compare two registered builds: packages added, removed, upgraded and\n"
	"downgraded (by dpkg's version order), and files added, removed and changed\n"
	"(content, mode, owner or size).\n";

struct reg_opts {
	const char *name;
	const char *usage;
	bool json;
	bool published; /* ls only */
	const char *registry;
	const char *cache;
	char **args;
	int n_args;
};

/* Parse the options common to ls/show/diff; returns -1 to go on, else an exit status. */
static int parse_opts(int argc, char **argv, struct reg_opts *o, int want_args)
{
	const struct opt opts[] = {
		OPT_FLAG(0, "json", &o->json, "print JSON"),
		OPT_FLAG(0, "published", &o->published,
			 !strcmp(o->name, "ls") ? "only the builds published to a cloud" : NULL),
		OPT_STRING(0, "registry", &o->registry, "<path>",
			   "the registry database (default: registry.db in the cache\n"
			   "directory)"),
		OPT_STRING(0, "cache", &o->cache, "<dir>",
			   "the cache directory (default $XDG_CACHE_HOME/imgforge)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = o->name,
		.usage = o->usage,
		.opts = opts,
		.footer = "See docs/registry.md.\n",
	};
	int n = parse_options(&cmd, argc, argv);

	if (n < 0)
		return opt_exit_status(n);
	if (o->published && strcmp(o->name, "ls")) {
		error("%s: --published is an option of 'imgforge ls'", o->name);
		return EXIT_USAGE;
	}
	o->args = argv;
	o->n_args = n;
	if (o->n_args != want_args) {
		if (o->n_args > want_args)
			error("%s: unexpected argument '%s'; see 'imgforge %s --help'", o->name,
			      o->args[want_args], o->name);
		else
			error("%s: %s; see 'imgforge %s --help'", o->name,
			      want_args == 1 ? "give a build id" : "give two build ids", o->name);
		return EXIT_USAGE;
	}
	return -1;
}

/*
 * Open the registry read-only: these commands never create, migrate or
 * clean it, so they work on a registry the user cannot write. A default
 * registry that does not exist yet is not an error for ls (there are no
 * builds); *ret is then NULL.
 */
static int open_registry(const struct reg_opts *o, bool missing_ok, struct registry **ret)
{
	_cleanup_free_ char *dir = NULL, *path = NULL;
	struct strbuf err = STRBUF_INIT;
	struct stat st;
	int r;

	*ret = NULL;
	if (o->registry) {
		path = xstrdup(o->registry);
	} else {
		if (o->cache)
			dir = xstrdup(o->cache);
		else if (cache_default_dir(&dir, &err) < 0)
			goto fail;
		path = path_join(dir, "registry.db");
	}
	if (!str_startswith(path, "postgres") && stat(path, &st) < 0 && errno == ENOENT) {
		if (missing_ok && !o->registry)
			return 0;
		error("%s: no registry at '%s'; builds are registered by 'imgforge build'%s",
		      o->name, path, o->registry ? "" : " (or give --registry <path>)");
		return 1;
	}
	r = registry_open_readonly(path, ret, &err);
	if (r < 0)
		goto fail;
	return 0;
fail:
	error("%s: %s", o->name, strbuf_str(&err));
	strbuf_release(&err);
	return 1;
}

static void flush_out(struct strbuf *out)
{
	fwrite(out->buf ? out->buf : "", 1, out->len, stdout);
	strbuf_release(out);
}

/* Look up a build for show/diff, with the hint users need when it is not there. */
static int get_build(struct registry *reg, const char *cmd, const char *id,
		     struct registry_build **ret)
{
	struct strbuf err = STRBUF_INIT;
	int r = registry_get(reg, id, ret, &err);

	if (r == -ENOENT)
		error("%s: %s; run 'imgforge ls' to list the builds", cmd, strbuf_str(&err));
	else if (r == -ENOTUNIQ)
		error("%s: %s; give more of the id", cmd, strbuf_str(&err));
	else if (r < 0)
		error("%s: %s", cmd, strbuf_str(&err));
	strbuf_release(&err);
	return r;
}

/* --- imgforge ls --- */

static void json_publication(struct json *j, const struct registry_publication *p)
{
	json_begin_object(j);
	json_kv_string(j, "target", p->target);
	json_kv_string(j, "region", p->region);
	json_kv_string(j, "image_id", p->image_id);
	json_kv_string(j, "name", p->name);
	json_key(j, "location");
	if (p->location)
		json_string(j, p->location);
	else
		json_null(j);
	json_kv_string(j, "format", p->format);
	json_kv_string(j, "sha256", p->sha256);
	json_kv_bool(j, "public", p->public_image);
	json_kv_int(j, "created", p->created);
	json_end_object(j);
}

/*
 * ls --published: one line per image in a cloud (a build published twice
 * has two); in JSON, the builds that were published, each with the
 * "publications" show gives.
 */
static void ls_published(const struct registry_summary *s, size_t n,
			 const struct registry_publication *p, size_t np, bool json,
			 struct strbuf *out)
{
	char when[64];
	size_t i, k;

	if (json) {
		struct json j;

		json_init(&j, out, true);
		json_begin_array(&j);
		for (i = 0; i < n; i++) {
			bool any = false;

			for (k = 0; k < np && !any; k++)
				any = !strcmp(p[k].build_id, s[i].id);
			if (!any)
				continue;
			json_begin_object(&j);
			json_kv_string(&j, "build_id", s[i].id);
			json_kv_string(&j, "image", s[i].image);
			json_kv_string(&j, "version", s[i].version);
			json_key(&j, "publications");
			json_begin_array(&j);
			for (k = 0; k < np; k++)
				if (!strcmp(p[k].build_id, s[i].id))
					json_publication(&j, &p[k]);
			json_end_array(&j);
			json_end_object(&j);
		}
		json_end_array(&j);
		return;
	}
	if (!np) {
		info("no builds published yet ('imgforge publish')");
		return;
	}
	strbuf_addf(out, "%-24s  %-16s  %-10s  %-9s  %-14s  %-23s  %s\n", "BUILD", "IMAGE",
		    "VERSION", "CLOUD", "REGION", "PUBLISHED", "IMAGE ID");
	for (k = 0; k < np; k++) {
		const char *image = "?", *version = "?";

		for (i = 0; i < n; i++)
			if (!strcmp(p[k].build_id, s[i].id)) {
				image = s[i].image;
				version = s[i].version;
			}
		format_time(p[k].created, true, when, sizeof(when));
		strbuf_addf(out, "%-24s  %-16s  %-10s  %-9s  %-14s  %-23s  %s\n", p[k].build_id,
			    image, version, p[k].target, *p[k].region ? p[k].region : "-", when,
			    p[k].image_id);
	}
}

int cmd_ls(int argc, char **argv)
{
	struct reg_opts o = {.name = "ls", .usage = usage_ls};
	struct strbuf err = STRBUF_INIT, out = STRBUF_INIT;
	struct registry_summary *s = NULL;
	struct registry_publication *p = NULL;
	struct registry *reg = NULL;
	size_t n = 0, np = 0, i;
	char when[64];
	int r;

	r = parse_opts(argc, argv, &o, 0);
	if (r >= 0)
		return r;
	r = open_registry(&o, true, &reg);
	if (r)
		return r;
	if (reg && (registry_list(reg, &s, &n, &err) < 0 ||
		    registry_list_publications(reg, NULL, &p, &np, &err) < 0)) {
		error("ls: %s", strbuf_str(&err));
		strbuf_release(&err);
		registry_summaries_free(s, n);
		registry_close(reg);
		return 1;
	}
	if (o.published) {
		ls_published(s, n, p, np, o.json, &out);
	} else if (o.json) {
		struct json j;

		json_init(&j, &out, true);
		json_begin_array(&j);
		for (i = 0; i < n; i++) {
			json_begin_object(&j);
			json_kv_string(&j, "build_id", s[i].id);
			json_kv_string(&j, "image", s[i].image);
			json_kv_string(&j, "version", s[i].version);
			json_key(&j, "profile");
			if (s[i].profile)
				json_string(&j, s[i].profile);
			else
				json_null(&j);
			json_kv_int(&j, "created", s[i].created);
			json_kv_uint(&j, "package_count", s[i].n_packages);
			json_kv_uint(&j, "file_count", s[i].n_files);
			json_kv_uint(&j, "output_count", s[i].n_outputs);
			json_end_object(&j);
		}
		json_end_array(&j);
	} else if (n) {
		strbuf_addf(&out, "%-24s  %-16s  %-10s  %-10s  %-23s  %s\n", "BUILD", "IMAGE",
			    "VERSION", "PROFILE", "CREATED", "PACKAGES");
		for (i = 0; i < n; i++) {
			format_time(s[i].created, true, when, sizeof(when));
			strbuf_addf(&out, "%-24s  %-16s  %-10s  %-10s  %-23s  %zu\n", s[i].id,
				    s[i].image, s[i].version, s[i].profile ? s[i].profile : "-",
				    when, s[i].n_packages);
		}
	} else {
		info("no builds registered yet");
	}
	flush_out(&out);
	registry_summaries_free(s, n);
	registry_publications_free(p, np);
	registry_close(reg);
	return 0;
}

/* --- imgforge show --- */

static void json_opt_string(struct json *j, const char *key, const char *v)
{
	json_key(j, key);
	if (v)
		json_string(j, v);
	else
		json_null(j);
}

/*
 * Where an output of a build is now: the registry row describes the file as
 * it was written, and the file may since have been deleted or replaced
 * (rebuilt into the same directory). Size only: hashing every output on
 * show would read gigabytes.
 */
enum output_state { OUTPUT_UNKNOWN, OUTPUT_PRESENT, OUTPUT_MISSING, OUTPUT_CHANGED };

static enum output_state output_state(const struct registry_build *b,
				      const struct registry_output *o, char **ret_path)
{
	struct stat st;

	*ret_path = NULL;
	if (!b->outdir)
		return OUTPUT_UNKNOWN;
	*ret_path = path_join(b->outdir, o->name);
	if (stat(*ret_path, &st) < 0 || !S_ISREG(st.st_mode))
		return OUTPUT_MISSING;
	return (uint64_t)st.st_size == o->size ? OUTPUT_PRESENT : OUTPUT_CHANGED;
}

static const char *const output_state_names[] = {
	[OUTPUT_UNKNOWN] = "unknown",
	[OUTPUT_PRESENT] = "present",
	[OUTPUT_MISSING] = "missing",
	[OUTPUT_CHANGED] = "changed",
};

static void show_json(const struct registry_build *b, const struct registry_publication *p,
		      size_t np, struct strbuf *out)
{
	struct json j;
	size_t i;

	json_init(&j, out, true);
	json_begin_object(&j);
	json_kv_string(&j, "build_id", b->id);
	json_kv_string(&j, "image", b->image);
	json_kv_string(&j, "version", b->version);
	json_opt_string(&j, "profile", b->profile);
	json_kv_int(&j, "created", b->created);
	json_key(&j, "stage_keys");
	json_begin_object(&j);
	json_opt_string(&j, "base", b->key_base);
	json_opt_string(&j, "rootfs", b->key_rootfs);
	json_opt_string(&j, "disk", b->key_disk);
	json_end_object(&j);
	json_key(&j, "inputs");
	if (b->inputs)
		json_raw(&j, b->inputs);
	else
		json_null(&j);
	json_key(&j, "outputs");
	json_begin_array(&j);
	for (i = 0; i < b->n_outputs; i++) {
		_cleanup_free_ char *path = NULL;
		enum output_state st = output_state(b, &b->outputs[i], &path);

		json_begin_object(&j);
		json_kv_string(&j, "name", b->outputs[i].name);
		json_kv_string(&j, "sha256", b->outputs[i].sha256);
		json_kv_uint(&j, "size", b->outputs[i].size);
		json_opt_string(&j, "path", path);
		json_kv_string(&j, "state", output_state_names[st]);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_key(&j, "packages");
	json_begin_array(&j);
	for (i = 0; i < b->n_packages; i++) {
		json_begin_object(&j);
		json_kv_string(&j, "name", b->packages[i].name);
		json_kv_string(&j, "version", b->packages[i].version);
		json_kv_string(&j, "architecture", b->packages[i].arch);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_key(&j, "publications");
	json_begin_array(&j);
	for (i = 0; i < np; i++)
		json_publication(&j, &p[i]);
	json_end_array(&j);
	json_key(&j, "files");
	json_begin_array(&j);
	for (i = 0; i < b->n_files; i++) {
		char mode[16];

		snprintf(mode, sizeof(mode), "%06o", b->files[i].mode);
		json_begin_object(&j);
		json_kv_string(&j, "path", b->files[i].path);
		json_kv_string(&j, "mode", mode);
		json_kv_uint(&j, "uid", b->files[i].uid);
		json_kv_uint(&j, "gid", b->files[i].gid);
		json_kv_uint(&j, "size", b->files[i].size);
		json_kv_string(&j, "sha256", b->files[i].sha256);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_end_object(&j);
}

static void show_text(const struct registry_build *b, const struct registry_publication *p,
		      size_t np, struct strbuf *out)
{
	char when[64], sz[32];
	size_t i;

	format_time(b->created, true, when, sizeof(when));
	strbuf_addf(out, "build     %s\n", b->id);
	strbuf_addf(out, "image     %s %s", b->image, b->version);
	if (b->profile)
		strbuf_addf(out, " (profile %s)", b->profile);
	strbuf_addf(out, "\ncreated   %s\n", when);
	strbuf_addf(out, "stages    base %s\n", b->key_base ? b->key_base : "-");
	strbuf_addf(out, "          rootfs %s\n", b->key_rootfs ? b->key_rootfs : "-");
	strbuf_addf(out, "          disk %s\n", b->key_disk ? b->key_disk : "-");
	strbuf_addf(out, "outputs   %zu%s%s\n", b->n_outputs, b->outdir ? " in " : "",
		    b->outdir ? b->outdir : "");
	for (i = 0; i < b->n_outputs; i++) {
		_cleanup_free_ char *path = NULL;
		enum output_state st = output_state(b, &b->outputs[i], &path);

		strbuf_addf(out, "  %-24s  %s  %s", b->outputs[i].name, b->outputs[i].sha256,
			    format_size(b->outputs[i].size, sz, sizeof(sz)));
		if (st == OUTPUT_MISSING)
			strbuf_addf(out, "  (gone: '%s' no longer exists)", path);
		else if (st == OUTPUT_CHANGED)
			strbuf_addf(out, "  (replaced: '%s' is not this file any more)", path);
		strbuf_addch(out, '\n');
	}
	strbuf_addf(out, "packages  %zu\n", b->n_packages);
	for (i = 0; i < b->n_packages; i++)
		strbuf_addf(out, "  %-32s  %-28s  %s\n", b->packages[i].name,
			    b->packages[i].version, b->packages[i].arch);
	/* Whether the archives moved on since is a question for the network: its command. */
	if (b->n_packages && b->key_base)
		strbuf_addf(out,
			    "updates   newer versions in the archives now: imgforge outdated "
			    "IMAGE.yaml --build %s\n",
			    b->id);
	if (np) {
		strbuf_addf(out, "published %zu\n", np);
		for (i = 0; i < np; i++) {
			format_time(p[i].created, true, when, sizeof(when));
			strbuf_addf(out, "  %-9s  %-14s  %-24s  %s  %s%s\n", p[i].target,
				    *p[i].region ? p[i].region : "-", p[i].image_id, when,
				    p[i].name, p[i].public_image ? "  (public)" : "");
		}
	}
	strbuf_addf(out, "files     %zu (listed with --json)\n", b->n_files);
}

int cmd_show(int argc, char **argv)
{
	struct reg_opts o = {.name = "show", .usage = usage_show};
	_cleanup_registry_ struct registry *reg = NULL;
	_cleanup_build_ struct registry_build *b = NULL;
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	struct registry_publication *p = NULL;
	size_t np = 0;
	int r;

	r = parse_opts(argc, argv, &o, 1);
	if (r >= 0)
		return r;
	r = open_registry(&o, false, &reg);
	if (r)
		return r;
	if (get_build(reg, "show", o.args[0], &b) < 0)
		return 1;
	if (registry_list_publications(reg, b->id, &p, &np, &err) < 0) {
		error("show: %s", strbuf_str(&err));
		strbuf_release(&err);
		return 1;
	}
	if (o.json)
		show_json(b, p, np, &out);
	else
		show_text(b, p, np, &out);
	flush_out(&out);
	registry_publications_free(p, np);
	return 0;
}

/* --- imgforge diff --- */

static void file_what(unsigned what, struct strbuf *sb, bool json, struct json *j)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{REGISTRY_FILE_CONTENT, "content"},
		{REGISTRY_FILE_MODE, "mode"},
		{REGISTRY_FILE_OWNER, "owner"},
		{REGISTRY_FILE_SIZE, "size"},
	};
	size_t i;
	bool first = true;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		if (!(what & names[i].bit))
			continue;
		if (json) {
			json_string(j, names[i].name);
		} else {
			strbuf_addstr(sb, first ? "" : ", ");
			strbuf_addstr(sb, names[i].name);
		}
		first = false;
	}
}

static void diff_json(const struct registry_build *a, const struct registry_build *b,
		      const struct registry_diff *d, struct strbuf *out)
{
	struct json j;
	size_t i;

	json_init(&j, out, true);
	json_begin_object(&j);
	json_kv_string(&j, "from", a->id);
	json_kv_string(&j, "to", b->id);
	json_key(&j, "packages");
	json_begin_array(&j);
	for (i = 0; i < d->n_packages; i++) {
		const struct registry_package_change *c = &d->packages[i];
		const struct dpkg_package *p = c->new ? c->new : c->old;

		json_begin_object(&j);
		json_kv_string(&j, "name", p->name);
		json_kv_string(&j, "architecture", p->arch);
		json_kv_string(&j, "change", registry_change_name(c->change));
		json_opt_string(&j, "old_version", c->old ? c->old->version : NULL);
		json_opt_string(&j, "new_version", c->new ? c->new->version : NULL);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_key(&j, "files");
	json_begin_array(&j);
	for (i = 0; i < d->n_files; i++) {
		const struct registry_file_change *c = &d->files[i];

		json_begin_object(&j);
		json_kv_string(&j, "path", (c->new ? c->new : c->old)->path);
		json_kv_string(&j, "change", registry_change_name(c->change));
		if (c->change == REGISTRY_CHANGED) {
			json_key(&j, "what");
			json_begin_array(&j);
			file_what(c->what, NULL, true, &j);
			json_end_array(&j);
		}
		json_end_object(&j);
	}
	json_end_array(&j);
	json_end_object(&j);
}

static void diff_text(const struct registry_diff *d, struct strbuf *out)
{
	size_t i;

	strbuf_addf(out, "packages: %zu changed\n", d->n_packages);
	for (i = 0; i < d->n_packages; i++) {
		const struct registry_package_change *c = &d->packages[i];
		const struct dpkg_package *p = c->new ? c->new : c->old;

		strbuf_addf(out, "  %-10s  %s [%s]  ", registry_change_name(c->change), p->name,
			    p->arch);
		if (c->old && c->new)
			strbuf_addf(out, "%s -> %s\n", c->old->version, c->new->version);
		else
			strbuf_addf(out, "%s\n", p->version);
	}
	strbuf_addf(out, "files: %zu changed\n", d->n_files);
	for (i = 0; i < d->n_files; i++) {
		const struct registry_file_change *c = &d->files[i];

		strbuf_addf(out, "  %-10s  %s", registry_change_name(c->change),
			    (c->new ? c->new : c->old)->path);
		if (c->change == REGISTRY_CHANGED) {
			strbuf_addstr(out, " (");
			file_what(c->what, out, false, NULL);
			strbuf_addch(out, ')');
		}
		strbuf_addch(out, '\n');
	}
}

int cmd_diff(int argc, char **argv)
{
	struct reg_opts o = {.name = "diff", .usage = usage_diff};
	_cleanup_registry_ struct registry *reg = NULL;
	_cleanup_build_ struct registry_build *a = NULL, *b = NULL;
	struct strbuf out = STRBUF_INIT;
	struct registry_diff *d;
	int r;

	r = parse_opts(argc, argv, &o, 2);
	if (r >= 0)
		return r;
	r = open_registry(&o, false, &reg);
	if (r)
		return r;
	if (get_build(reg, "diff", o.args[0], &a) < 0 || get_build(reg, "diff", o.args[1], &b) < 0)
		return 1;
	d = registry_diff(a, b);
	if (o.json)
		diff_json(a, b, d, &out);
	else
		diff_text(d, &out);
	flush_out(&out);
	registry_diff_free(d);
	return 0;
}
