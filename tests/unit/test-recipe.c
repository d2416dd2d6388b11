/* SPDX-License-Identifier: MIT */
/* Tests for src/recipe/: parsing, bad input, merge rules, substitution, limits, diagnostics. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "build/keys.h"
#include "recipe/recipe.h"
#include "tap.h"
#include "core/util.h"

static void put(const char *path, const char *text)
{
	_cleanup_free_ char *dir = path_dirname(path);

	mkdir_p(dir, 0755);
	if (write_file_atomic(path, text, strlen(text), 0644) < 0)
		abort();
}

/* Load path; return the number of diagnostics (0 on success). */
static size_t load(const char *path, const char *profile, const char *const *sets, size_t nsets,
		   struct recipe **ret, struct diags *d)
{
	struct recipe_opts o = { .profile = profile, .sets = sets, .nsets = nsets };
	int r = recipe_load(path, &o, ret, d);

	if (r == 0 && d->n)
		printf("#   success with %zu diagnostics\n", d->n);
	if (r < 0 && d->n == 0)
		printf("#   failure without a diagnostic\n");
	if (r < 0)
		*ret = NULL;
	return r < 0 ? (d->n ? d->n : 1) : 0;
}

/* Expect exactly one error at file:line:col whose message contains want. */
static void expect_error(const char *path, const char *file, int line, int col, const char *want)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;
	size_t n = load(path, NULL, NULL, 0, &r, &d);

	CHECK_INT(n, 1);
	if (d.n >= 1) {
		if (!strstr(d.v[0].msg, want) || strcmp(d.v[0].file, file) || d.v[0].line != line ||
		    d.v[0].col != col) {
			printf("#   got %s:%d:%d: %s\n", d.v[0].file, d.v[0].line, d.v[0].col,
			       d.v[0].msg);
			printf("#   want %s:%d:%d: ...%s...\n", file, line, col, want);
			tap_child_failures++;
		}
	}
	recipe_free(r);
	diags_release(&d);
}

#define MINI "image: t\nversion: '1'\nbase: {distro: debian, suite: bookworm}\n"
/* What a disk needs besides disk: (recipes/ab-boot-files.yaml). */
#define BOOT_SUPPORT \
	"services: {enable: [imgforge-grow-data.service, imgforge-mark-good.service]}\n"

TEST(test_minimal_ok)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;

	put("i.yaml", MINI "packages: [nginx]\n");
	CHECK_INT(load("i.yaml", NULL, NULL, 0, &r, &d), 0);
	CHECK_STR(recipe_get_str(r, "image", NULL), "t");
	CHECK_STR(recipe_get_str(r, "base.suite", NULL), "bookworm");
	CHECK_STR(r->profile, "default");
	recipe_free(r);
	diags_release(&d);
}

TEST(test_syntax_errors)
{
	put("indent.yaml", "image: t\n version: 1\n");
	expect_error("indent.yaml", "indent.yaml", 2, 9, "mapping values are not allowed");
	put("bracket.yaml", "image: t\npackages: [a, b\n");
	expect_error("bracket.yaml", "bracket.yaml", 3, 1, "did not find expected");
	put("quote.yaml", "image: t\nversion: \"1.0\n");
	expect_error("quote.yaml", "quote.yaml", 3, 1, "unexpected end of stream");
	put("tab.yaml", "image: t\nbase:\n\tdistro: debian\n");
	expect_error("tab.yaml", "tab.yaml", 3, 1, "tab character");
}

TEST(test_unknown_key)
{
	put("u.yaml", MINI "pakages: [nginx]\n");
	expect_error("u.yaml", "u.yaml", 4, 1, "unknown key 'pakages' (did you mean 'packages'?)");
	put("u2.yaml", MINI "disk:\n  sise: 4G\n");
	expect_error("u2.yaml", "u2.yaml", 5, 3, "unknown key 'sise' in disk (did you mean 'size'?)");
	put("u3.yaml", MINI "zzzqqq: 1\n");
	expect_error("u3.yaml", "u3.yaml", 4, 1, "unknown key 'zzzqqq'");
}

TEST(test_wrong_types)
{
	put("t1.yaml", MINI "services: [nginx]\n");
	expect_error("t1.yaml", "t1.yaml", 4, 11, "'services' must be a map, not a list");
	put("t2.yaml", MINI "files:\n  - {path: /etc/x, mode: 999, content: x}\n");
	expect_error("t2.yaml", "t2.yaml", 5, 26, "invalid mode '999'");
	put("t3.yaml", MINI "disk: {size: lots}\n");
	expect_error("t3.yaml", "t3.yaml", 4, 14, "invalid size 'lots'");
	put("t4.yaml", MINI "packages: nginx\n");
	expect_error("t4.yaml", "t4.yaml", 4, 11, "'packages' must be a list");
	put("t5.yaml", MINI "boot: {tries: many}\n");
	expect_error("t5.yaml", "t5.yaml", 4, 15, "invalid tries 'many'");
	put("t6.yaml", MINI "files:\n  - {path: etc/x, content: x}\n");
	expect_error("t6.yaml", "t6.yaml", 5, 12, "expected an absolute path");
	put("t7.yaml", MINI "packages: [Nginx]\n");
	expect_error("t7.yaml", "t7.yaml", 4, 12, "invalid package name 'Nginx'");
}

TEST(test_duplicate_key)
{
	put("d.yaml", MINI "packages: [a1]\npackages: [b1]\n");
	expect_error("d.yaml", "d.yaml", 5, 1, "duplicate key 'packages' (first defined at line 4)");
}

TEST(test_include_missing)
{
	put("i.yaml", MINI "include: [nope.yaml]\n");
	expect_error("i.yaml", "i.yaml", 4, 11, "cannot read include 'nope.yaml'");
}

TEST(test_include_cycle)
{
	put("a.yaml", MINI "include: [b.yaml]\n");
	put("b.yaml", "include: [c.yaml]\n");
	put("c.yaml", "include: [b.yaml]\n");
	expect_error("a.yaml", "c.yaml", 1, 11, "include cycle: b.yaml -> c.yaml -> b.yaml");
}

TEST(test_undefined_variable)
{
	put("v.yaml", MINI "files:\n  - {path: /x, content: \"a ${nope} b\"}\n");
	expect_error("v.yaml", "v.yaml", 5, 25, "undefined variable 'nope'");
}

TEST(test_missing_profile)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;

	put("p.yaml", MINI "profiles:\n  staging: {}\n  production: {}\n");
	CHECK_INT(load("p.yaml", "prod", NULL, 0, &r, &d), 1);
	CHECK(d.n == 1 && d.v[0].line == 4 && d.v[0].col == 1);
	CHECK(d.n == 1 && strstr(d.v[0].msg, "no profile 'prod'") &&
	      strstr(d.v[0].msg, "staging, production"));
	diags_release(&d);
}

TEST(test_empty_binary_large_files)
{
	char *big;

	put("empty.yaml", "");
	expect_error("empty.yaml", "empty.yaml", 1, 1, "empty recipe");
	put("comment.yaml", "# nothing here\n");
	expect_error("comment.yaml", "comment.yaml", 1, 1, "empty recipe");
	CHECK(write_file_atomic("bin.yaml", "image: t\n\x7f" "ELF\0\1\2", 15, 0644) == 0);
	expect_error("bin.yaml", "bin.yaml", 2, 5, "binary data");
	CHECK(write_file_atomic("latin1.yaml", "image: caf\xe9\n", 12, 0644) == 0);
	expect_error("latin1.yaml", "latin1.yaml", 1, 11, "UTF-8");
	big = xmalloc(10 * 1024 * 1024);
	memset(big, '#', 10 * 1024 * 1024);
	CHECK(write_file_atomic("big.yaml", big, 10 * 1024 * 1024, 0644) == 0);
	free(big);
	expect_error("big.yaml", "big.yaml", 1, 1, "larger than the 1024 KiB recipe limit");
}

TEST(test_deep_nesting)
{
	struct strbuf sb = STRBUF_INIT;
	int i;

	strbuf_addstr(&sb, "image: ");
	for (i = 0; i < 10000; i++)
		strbuf_addch(&sb, '[');
	for (i = 0; i < 10000; i++)
		strbuf_addch(&sb, ']');
	strbuf_addch(&sb, '\n');
	put("deep.yaml", sb.buf);
	strbuf_reset(&sb);
	for (i = 0; i < 10000; i++)
		strbuf_addf(&sb, "%*sa:\n", i % 1000, "");
	strbuf_release(&sb);
	expect_error("deep.yaml", "deep.yaml", 1, 7 + RECIPE_MAX_DEPTH, "nesting deeper than");
}

TEST(test_aliases_refused)
{
	put("al.yaml", MINI "variables: &v {a: 1}\nfiles: *v\n");
	expect_error("al.yaml", "al.yaml", 4, 12, "anchors (&v) are not supported");
}

TEST(test_merge_rules)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;
	const struct ynode *n;

	put("recipes/a.yaml", "packages: [nginx, curl]\nvariables: {x: a, y: a}\n"
			      "disk: {size: 8G, root_size: 1G}\n"
			      "files:\n  - {path: /etc/f, content: from-a}\n"
			      "  - {path: /etc/g, content: g}\n");
	put("recipes/b.yaml", "packages: [curl, jq]\nvariables: {y: b}\n");
	put("images/i.yaml", "include: [../recipes/a.yaml, ../recipes/b.yaml]\n" MINI
			     "packages: [nginx, vim]\n"
			     "variables: {x: i}\n"
			     "disk: {root_size: 2G}\n" BOOT_SUPPORT
			     "files:\n  - {path: /etc/f, content: from-i}\n"
			     "profiles:\n  p: {variables: {y: p}, packages: [htop]}\n");
	CHECK_INT(load("images/i.yaml", "p", NULL, 0, &r, &d), 0);
	if (!r)
		return;
	/* lists append and de-duplicate, in first-seen order */
	n = recipe_get(r, "packages");
	CHECK(n && n->n == 5);
	if (n && n->n == 5) {
		CHECK_STR(n->v[0]->str, "nginx");
		CHECK_STR(n->v[1]->str, "curl");
		CHECK_STR(n->v[2]->str, "jq");
		CHECK_STR(n->v[3]->str, "vim");
		CHECK_STR(n->v[4]->str, "htop");
	}
	/* scalars: the image file wins over its includes, the profile over the file */
	CHECK_STR(recipe_get_str(r, "variables.x", NULL), "i");
	CHECK_STR(recipe_get_str(r, "variables.y", NULL), "p");
	/* maps merge key by key */
	CHECK_STR(recipe_get_str(r, "disk.size", NULL), "8G");
	CHECK_STR(recipe_get_str(r, "disk.root_size", NULL), "2G");
	/* files with the same path: the later one replaces the earlier */
	n = recipe_get(r, "files");
	CHECK(n && n->n == 2);
	if (n && n->n == 2)
		CHECK_STR(ynode_map_get(n->v[0], "content")->str, "from-i");
	recipe_free(r);
	diags_release(&d);
}

TEST(test_set_wins)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;
	const char *sets[] = { "y=cli", "new=1" };

	put("s.yaml", MINI "variables: {y: file}\nprofiles:\n  p: {variables: {y: prof}}\n"
			   "files:\n  - {path: /f, content: \"${y}-${new}\"}\n");
	CHECK_INT(load("s.yaml", "p", sets, 2, &r, &d), 0);
	CHECK_STR(recipe_get_str(r, "variables.y", NULL), "cli");
	if (r)
		CHECK_STR(ynode_map_get(recipe_get(r, "files")->v[0], "content")->str, "cli-1");
	recipe_free(r);
	diags_release(&d);
}

TEST(test_substitution)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;

	put("v.yaml", MINI "variables:\n  domain: ex.org\n  api: \"api.${domain}\"\n"
			   "  size: 2G\n"
			   "disk: {size: 8G, root_size: \"${size}\"}\n" BOOT_SUPPORT
			   "files:\n  - {path: /a, content: \"${api} ${missing:-dflt} $${literal} "
			   "${missing:-${domain}} ${image}/${profile} $5\"}\n");
	CHECK_INT(load("v.yaml", NULL, NULL, 0, &r, &d), 0);
	if (!r)
		return;
	CHECK_STR(ynode_map_get(recipe_get(r, "files")->v[0], "content")->str,
		  "api.ex.org dflt ${literal} ex.org t/default $5");
	CHECK_STR(recipe_get_str(r, "disk.root_size", NULL), "2G");
	CHECK_STR(recipe_get_str(r, "variables.api", NULL), "api.ex.org");
	recipe_free(r);
	diags_release(&d);
}

TEST(test_substituted_value_checked)
{
	put("sv.yaml", MINI "variables: {sz: lots}\ndisk: {size: \"${sz}\"}\n");
	expect_error("sv.yaml", "sv.yaml", 5, 14, "invalid size 'lots'");
}

TEST(test_variable_cycle)
{
	put("vc.yaml", MINI "variables: {a: \"${b}\", b: \"${a}\"}\n"
			    "files:\n  - {path: /a, content: \"${a}\"}\n");
	{
		struct diags d = { 0 };
		struct recipe *r = NULL;
		CHECK(load("vc.yaml", NULL, NULL, 0, &r, &d) >= 1);
		CHECK(d.n >= 1 && strstr(d.v[0].msg, "variable cycle: a -> b -> a"));
		diags_release(&d);
	}
}

TEST(test_every_error_reported)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;

	put("m.yaml", MINI "pakages: [a1]\ndisk: {size: lots}\nservices: [x]\n");
	CHECK_INT(load("m.yaml", NULL, NULL, 0, &r, &d), 3);
	diags_release(&d);
}

TEST(test_disk_too_small)
{
	put("ds.yaml", MINI "disk: {size: 2G, root_size: 1G, data_size: 512M}\n");
	expect_error("ds.yaml", "ds.yaml", 4, 14, "disk size 2G is too small");
}

TEST(test_rootfs_larger_than_slot)
{
	put("rs.yaml", MINI "rootfs: {size: 2G}\ndisk: {size: 8G, root_size: 1G}\n");
	expect_error("rs.yaml", "rs.yaml", 4, 16, "rootfs.size 2G is larger than its slot");
}

TEST(test_tarball_base_rules)
{
	put("tb.yaml", "image: t\nversion: '1'\nbase: {tarball: ./r.tar}\n");
	expect_error("tb.yaml", "tb.yaml", 3, 8, "needs 'sha256:'");
	put("tb2.yaml", "image: t\nversion: '1'\nbase: {tarball: ./r.tar, sha256: "
			"0000000000000000000000000000000000000000000000000000000000000000}\n"
			"packages: [nginx]\n");
	expect_error("tb2.yaml", "tb2.yaml", 4, 1, "'packages' needs a package base");
}

TEST(test_overlay_checks)
{
	put("o.yaml", MINI "overlays: [ovl, {source: ovl2, target: /opt, owner: \"app:app\"}]\n");
	{
		struct diags d = { 0 };
		struct recipe *r = NULL;
		CHECK_INT(load("o.yaml", NULL, NULL, 0, &r, &d), 2);
		CHECK(d.n == 2 && strstr(d.v[0].msg, "overlay 'ovl'"));
		diags_release(&d);
	}
	mkdir_p("ovl", 0755);
	mkdir_p("ovl2", 0755);
	{
		struct diags d = { 0 };
		struct recipe *r = NULL;
		CHECK_INT(load("o.yaml", NULL, NULL, 0, &r, &d), 0);
		recipe_free(r);
		diags_release(&d);
	}
}

TEST(test_stage_keys)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;
	struct stage_keys k1, k2, k3;

	mkdir_p("ovl", 0755);
	put("ovl/etc/motd", "hello\n");
	put("k.yaml", MINI "overlays: [ovl]\ndisk: {size: 8G}\n" BOOT_SUPPORT);
	CHECK_INT(load("k.yaml", NULL, NULL, 0, &r, &d), 0);
	CHECK(keys_compute(r, &k1, &d) == 0);
	CHECK(keys_compute(r, &k2, &d) == 0);
	CHECK_STR(k1.rootfs, k2.rootfs);
	recipe_free(r);
	/* Overlay content changes rootfs and disk keys, not base. */
	put("ovl/etc/motd", "hello!\n");
	CHECK_INT(load("k.yaml", NULL, NULL, 0, &r, &d), 0);
	CHECK(keys_compute(r, &k3, &d) == 0);
	CHECK_STR(k1.base, k3.base);
	CHECK(strcmp(k1.rootfs, k3.rootfs) != 0);
	CHECK(strcmp(k1.disk, k3.disk) != 0);
	recipe_free(r);
	/* Without a disk the root filesystem differs (no kernel links): another key. */
	put("k.yaml", MINI "overlays: [ovl]\n" BOOT_SUPPORT);
	CHECK_INT(load("k.yaml", NULL, NULL, 0, &r, &d), 0);
	CHECK(keys_compute(r, &k2, &d) == 0);
	CHECK_STR(k2.base, k3.base);
	CHECK(strcmp(k2.rootfs, k3.rootfs) != 0);
	recipe_free(r);
	diags_release(&d);
}

TEST(test_plan_output_stable)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT;

	put("y.yaml", MINI "packages: [b1, a1]\nvariables: {z: '1', a: 'yes'}\n");
	CHECK_INT(load("y.yaml", NULL, NULL, 0, &r, &d), 0);
	CHECK(recipe_print_yaml(r, NULL, 0, &a) == 0);
	recipe_print_json(r, NULL, 0, &b, false);
	CHECK(strstr(a.buf, "packages: [b1, a1]") != NULL);
	CHECK(strstr(a.buf, "a: \"yes\"") != NULL);
	CHECK(strstr(b.buf, "\"packages\":[\"b1\",\"a1\"]") != NULL);
	/* The YAML we print is itself a valid recipe body. */
	{
		struct ynode *n = NULL;
		CHECK(ynode_parse("out.yaml", a.buf, a.len, &n, &d) == 0);
		ynode_free(n);
	}
	recipe_free(r);
	strbuf_release(&a);
	strbuf_release(&b);
	diags_release(&d);
}

TEST(test_unit_names)
{
	static const char *const good[] = { "nginx", "nginx.service", "getty@tty1.service",
					    "getty@.service", "serial-getty@ttyS0", "var-lib.mount",
					    "sys-devices-x\\x2dy.device", "a:b_c.timer", "x.socket" };
	static const char *const bad[] = { "", "x@/../../../../usr/bin/sh", "../x.service",
					   "a/b", "a@b@c.service", "@x.service", ".service",
					   "foo.bogus", "x@y@z", "a b.service", "x\n.service" };
	char longname[300];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good); i++)
		if (!recipe_unit_name_valid(good[i])) {
			printf("#   refused '%s'\n", good[i]);
			tap_child_failures++;
		}
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		if (recipe_unit_name_valid(bad[i])) {
			printf("#   accepted '%s'\n", bad[i]);
			tap_child_failures++;
		}
	memset(longname, 'a', sizeof(longname));
	strcpy(longname + 247, ".service"); /* 255 bytes */
	CHECK(recipe_unit_name_valid(longname));
	strcpy(longname + 248, ".service"); /* 256 bytes */
	CHECK(!recipe_unit_name_valid(longname));
}

TEST(test_cmdline_chars)
{
	CHECK(recipe_cmdline_valid("console=ttyS0,115200n8 quiet root=PARTLABEL=a ro x.y=1-2:3/4"));
	CHECK(recipe_cmdline_valid(""));
	CHECK(!recipe_cmdline_valid("quiet\n}\nmenuentry evil {"));
	CHECK(!recipe_cmdline_valid("a=$root"));
	CHECK(!recipe_cmdline_valid("a;b"));
	CHECK(!recipe_cmdline_valid("a=\"b c\""));
	CHECK(!recipe_cmdline_valid("a\\b"));
	CHECK(!recipe_cmdline_valid("\xc3\xa9"));
}

TEST(test_excerpt)
{
	char buf[RECIPE_EXCERPT_SIZE];

	CHECK_STR(recipe_excerpt("short", buf), "short");
	CHECK_STR(recipe_excerpt("a\x1b[2Jb\\", buf), "a\\x1b[2Jb\\\\");
	CHECK_STR(recipe_excerpt("0123456789012345678901234567890123456789X", buf),
		  "0123456789012345678901234567890123456789...");
	/* The worst case fits: 40 bytes that each take four characters, and "...". */
	CHECK_INT(strlen(recipe_excerpt("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
					"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"
					"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
					buf)),
		  163);
}

/* Each variable is expanded once, when used; the unused stay as written. */
TEST(test_lazy_variables)
{
	struct diags d = { 0 };
	struct recipe *r = NULL;
	const struct ynode *vars;

	put("a.yaml", MINI "variables:\n  a: x\n  b: \"${a}${a}\"\n  c: \"${nope}\"\n"
			  "description: \"${b}\"\n");
	CHECK_INT(load("a.yaml", NULL, NULL, 0, &r, &d), 0);
	if (r) {
		vars = recipe_get(r, "variables");
		CHECK_STR(recipe_get_str(r, "description", NULL), "xx");
		CHECK_STR(ynode_map_get(vars, "b")->str, "xx");
		CHECK_STR(ynode_map_get(vars, "c")->str, "${nope}");
		CHECK(recipe_var_used(r, "a") && recipe_var_used(r, "b"));
		CHECK(!recipe_var_used(r, "c"));
	}
	recipe_free(r);
	diags_release(&d);
}

TEST(test_check_json)
{
	struct diags d = { 0 };
	struct strbuf sb = STRBUF_INIT;
	struct ypos pos = { "f.yaml", 3, 7 };

	diags_json(&d, &sb);
	CHECK_STR(sb.buf, "[]\n");
	strbuf_reset(&sb);
	diags_add(&d, &pos, "bad \"%s\"", "x");
	diags_warn(&d, NULL, "careful");
	CHECK_INT(d.n, 2);
	CHECK_INT(d.nerrors, 1);
	diags_json(&d, &sb);
	CHECK(strstr(sb.buf, "\"file\": \"f.yaml\",\n    \"line\": 3,\n    \"column\": 7,\n"
			     "    \"severity\": \"error\",\n    \"message\": \"bad \\\"x\\\"\"") != NULL);
	CHECK(strstr(sb.buf, "\"file\": \"imgforge\",\n    \"line\": 0") != NULL);
	CHECK(strstr(sb.buf, "\"severity\": \"warning\"") != NULL);
	strbuf_release(&sb);
	diags_release(&d);
}

int main(void)
{
	RUN(test_minimal_ok);
	RUN(test_syntax_errors);
	RUN(test_unknown_key);
	RUN(test_wrong_types);
	RUN(test_duplicate_key);
	RUN(test_include_missing);
	RUN(test_include_cycle);
	RUN(test_undefined_variable);
	RUN(test_missing_profile);
	RUN(test_empty_binary_large_files);
	RUN(test_deep_nesting);
	RUN(test_aliases_refused);
	RUN(test_merge_rules);
	RUN(test_set_wins);
	RUN(test_substitution);
	RUN(test_substituted_value_checked);
	RUN(test_variable_cycle);
	RUN(test_every_error_reported);
	RUN(test_disk_too_small);
	RUN(test_rootfs_larger_than_slot);
	RUN(test_tarball_base_rules);
	RUN(test_overlay_checks);
	RUN(test_stage_keys);
	RUN(test_plan_output_stable);
	RUN(test_unit_names);
	RUN(test_cmdline_chars);
	RUN(test_excerpt);
	RUN(test_lazy_variables);
	RUN(test_check_json);
	return tap_done();
}
