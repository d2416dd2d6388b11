/* SPDX-License-Identifier: MIT */
/* Tests for src/build/services.c: unit links in a tree, and names that must not become paths. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "build/services.h"
#include "tap.h"
#include "fs/tree.h"
#include "core/util.h"

static struct tree *image(const char *unit_file)
{
	static const char *const dirs[] = { "/usr", "/usr/bin", "/usr/lib", "/usr/lib/systemd",
					    "/usr/lib/systemd/system", "/etc", "/etc/systemd",
					    "/etc/systemd/system" };
	struct strbuf err = STRBUF_INIT;
	struct tree *t = tree_new();
	size_t i;

	for (i = 0; i < ARRAY_SIZE(dirs); i++)
		CHECK(tree_add_directory(t, dirs[i], 0755, 0, 0, 0, &err) == 0);
	CHECK(tree_add_file(t, "/usr/bin/sh", "#!", 2, NULL, 0755, 0, 0, 0, &err) == 0);
	CHECK(tree_add_file(t, "/usr/lib/systemd/system/foo.service", unit_file,
			    strlen(unit_file), NULL, 0644, 0, 0, 0, &err) == 0);
	strbuf_release(&err);
	return t;
}

static bool is_regular(struct tree *t, const char *path)
{
	struct tree_node *n = tree_lookup(t, path);
	return n && n->inode && S_ISREG(n->inode->mode);
}

TEST(test_enable_disable)
{
	struct tree *t = image("[Unit]\n[Install]\nWantedBy=multi-user.target\n");
	struct strbuf err = STRBUF_INIT;
	const char *link = "/etc/systemd/system/multi-user.target.wants/foo.service";

	CHECK(services_enable(t, "foo", 0, &err) == 0);
	CHECK(tree_lookup(t, link) != NULL);
	CHECK(services_disable(t, "foo.service", &err) == 0);
	CHECK(tree_lookup(t, link) == NULL);
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_disable_missing_unit_warns)
{
	struct tree *t = image("[Install]\nWantedBy=multi-user.target\n");
	struct strbuf err = STRBUF_INIT;

	CHECK_INT(services_disable(t, "nope", &err), 1);
	CHECK_STR(err.buf, "disable 'nope.service': no such unit in the image");
	strbuf_reset(&err);
	/* A unit that exists but is not enabled: nothing to say. */
	CHECK_INT(services_disable(t, "foo", &err), 0);
	CHECK_STR(err.buf, "");
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_invalid_names_never_become_paths)
{
	static const char *const bad[] = { "x@/../../../../usr/bin/sh", "../../usr/bin/sh",
					   "a/b.service", "a@b@c.service", "foo.bogus", "" };
	struct tree *t = image("[Install]\nWantedBy=multi-user.target\n");
	struct strbuf err = STRBUF_INIT;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		CHECK_INT(services_mask(t, bad[i], 0, &err), -EINVAL);
		CHECK_INT(services_enable(t, bad[i], 0, &err), -EINVAL);
		CHECK_INT(services_disable(t, bad[i], &err), -EINVAL);
		CHECK(strstr(err.buf, "not a valid unit name") != NULL);
		strbuf_reset(&err);
	}
	CHECK(is_regular(t, "/usr/bin/sh"));
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_invalid_alias_in_unit_file)
{
	struct tree *t = image("[Install]\nAlias=../../../usr/bin/sh\n");
	struct strbuf err = STRBUF_INIT;

	CHECK_INT(services_enable(t, "foo.service", 0, &err), -EINVAL);
	CHECK(strstr(err.buf, "names an invalid unit in Alias=") != NULL);
	CHECK(is_regular(t, "/usr/bin/sh"));
	tree_free(t);
	strbuf_release(&err);
}

int main(void)
{
	RUN(test_enable_disable);
	RUN(test_disable_missing_unit_warns);
	RUN(test_invalid_names_never_become_paths);
	RUN(test_invalid_alias_in_unit_file);
	return tap_done();
}
