/* SPDX-License-Identifier: MIT */
/* Tests for src/build/users.c: accounts added to a tree, id allocation, hostile account files. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "build/users.h"
#include "core/util.h"
#include "fs/tree.h"
#include "recipe/recipe.h"
#include "tap.h"

#define KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIAxkdGy6U/+KCESQCPVzHQtOf4vbt3FLnGKR/qwNUJ t@x"

static void add(struct tree *t, const char *path, const char *text, unsigned mode)
{
	struct strbuf err = STRBUF_INIT;

	CHECK(tree_add_file(t, path, text, strlen(text), NULL, mode, 0, 42, 0, &err) == 0);
	strbuf_release(&err);
}

/* A small Debian-like tree; passwd and group as given (NULL: the defaults). */
static struct tree *image(const char *passwd, const char *group)
{
	struct strbuf err = STRBUF_INIT;
	struct tree *t = tree_new();

	CHECK(tree_add_directory(t, "/usr/bin", 0755, 0, 0, 0, &err) == 0);
	CHECK(tree_add_directory(t, "/usr/sbin", 0755, 0, 0, 0, &err) == 0);
	CHECK(tree_add_symlink(t, "/bin", "usr/bin", 0, 0, 0, &err) == 0);
	CHECK(tree_add_directory(t, "/etc/ssh/sshd_config.d", 0755, 0, 0, 0, &err) == 0);
	add(t, "/usr/bin/bash", "\x7f" "ELF", 0755);
	add(t, "/usr/sbin/sshd", "\x7f" "ELF", 0755);
	add(t, "/etc/passwd",
	    passwd ? passwd
		   : "root:x:0:0:root:/root:/bin/bash\n_apt:x:100:65534::/nonexistent:/usr/sbin/nologin\n"
		     "a:x:1000:1000::/home/a:/bin/bash",
	    0644);
	add(t, "/etc/group",
	    group ? group : "root:x:0:\nsudo:x:27:\nadm:x:4:root\nusers:x:100:\nb:x:1001:\n", 0644);
	add(t, "/etc/shadow", "root:*:19000:0:99999:7:::\n", 0640);
	add(t, "/etc/gshadow", "root:*::\nsudo:*::\nadm:*::root\n", 0640);
	strbuf_release(&err);
	return t;
}

static char *content(struct tree *t, const char *path)
{
	struct strbuf err = STRBUF_INIT;
	char *buf = NULL;
	size_t len;

	if (tree_read_content(t, path, 1 << 20, &buf, &len, &err) < 0)
		buf = NULL;
	strbuf_release(&err);
	return buf;
}

TEST(test_regular_user)
{
	static const char *const groups[] = { "sudo", "adm" };
	static const char *const keys[] = { KEY };
	struct tree *t = image(NULL, NULL);
	struct strbuf err = STRBUF_INIT;
	struct user_spec u = { .name = "alice", .groups = groups, .ngroups = 2,
			       .keys = keys, .nkeys = 1 };
	_cleanup_free_ char *passwd = NULL, *group = NULL, *shadow = NULL, *gshadow = NULL,
			      *authk = NULL, *tmpf = NULL;
	uint32_t uid = 0;

	CHECK_INT(users_add(t, &u, 0, &uid, &err), 0);
	CHECK_STR(err.buf ? err.buf : "", "");
	/* 1000 is a's uid, 1001 a gid: the lowest free in both is 1002. The
	 * last line had no newline: one is added before the new line. */
	CHECK_INT(uid, 1002);
	passwd = content(t, "/etc/passwd");
	CHECK(passwd && str_endswith(passwd, "/bin/bash\nalice:x:1002:1002::/data/home/alice:/bin/bash\n"));
	group = content(t, "/etc/group");
	CHECK_STR(group, "root:x:0:\nsudo:x:27:alice\nadm:x:4:root,alice\nusers:x:100:\nb:x:1001:\n"
			 "alice:x:1002:\n");
	shadow = content(t, "/etc/shadow");
	CHECK_STR(shadow, "root:*:19000:0:99999:7:::\nalice:*::0:99999:7:::\n");
	gshadow = content(t, "/etc/gshadow");
	CHECK_STR(gshadow, "root:*::\nsudo:*::alice\nadm:*::root,alice\nalice:!::\n");
	/* The files keep their owner and mode. */
	CHECK_INT(tree_lookup(t, "/etc/shadow")->inode->mode & 07777, 0640);
	CHECK_INT(tree_lookup(t, "/etc/shadow")->inode->gid, 42);
	authk = content(t, "/etc/ssh/authorized_keys.d/alice");
	CHECK_STR(authk, KEY "\n");
	CHECK_INT(tree_lookup(t, "/etc/ssh/authorized_keys.d/alice")->inode->mode & 07777, 0644);
	CHECK(tree_lookup(t, "/etc/ssh/sshd_config.d/imgforge-users.conf") != NULL);
	tmpf = content(t, "/usr/lib/imgforge/users-homes.conf");
	CHECK_STR(tmpf, "d /data/home/alice 0700 1002 1002 -\n");
	CHECK(tree_lookup(t, "/usr/lib/systemd/system/imgforge-users-homes.service") != NULL);
	CHECK(tree_lookup(t, "/etc/systemd/system/multi-user.target.wants/"
			     "imgforge-users-homes.service") != NULL);
	CHECK(tree_lookup(t, "/etc/sudoers.d/alice") == NULL);
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_system_user_and_explicit_uid)
{
	struct tree *t = image(NULL, NULL);
	struct strbuf err = STRBUF_INIT;
	struct user_spec s = { .name = "svc", .system = true };
	struct user_spec e = { .name = "eve", .uid = 2000, .shell = "/bin/bash", .home = "/srv/eve" };
	struct user_spec f = { .name = "fay", .uid = 1001 };
	_cleanup_free_ char *passwd = NULL, *group = NULL;
	uint32_t uid = 0;

	/* 100 is _apt's uid and the gid of users: 101. */
	CHECK_INT(users_add(t, &s, 0, &uid, &err), 0);
	CHECK_INT(uid, 101);
	CHECK_INT(users_add(t, &e, 0, &uid, &err), 0);
	CHECK_INT(uid, 2000);
	/* uid 1001 is free, gid 1001 is b's: the group gets the lowest free id. */
	CHECK_INT(users_add(t, &f, 0, &uid, &err), 0);
	CHECK_STR(err.buf ? err.buf : "", "");
	passwd = content(t, "/etc/passwd");
	CHECK(strstr(passwd, "\nsvc:x:101:101::/nonexistent:/usr/sbin/nologin\n"));
	CHECK(strstr(passwd, "\neve:x:2000:2000::/srv/eve:/bin/bash\n"));
	CHECK(strstr(passwd, "\nfay:x:1001:1002::/data/home/fay:/bin/bash\n"));
	group = content(t, "/etc/group");
	CHECK(strstr(group, "\nfay:x:1002:\n"));
	/* Homes off /data get no tmpfiles line. */
	_cleanup_free_ char *tmpf = content(t, "/usr/lib/imgforge/users-homes.conf");
	CHECK_STR(tmpf, "d /data/home/fay 0700 1001 1002 -\n");
	tree_free(t);
	strbuf_release(&err);
}

static void expect_fail(struct tree *t, const struct user_spec *u, int want, const char *msg)
{
	struct strbuf err = STRBUF_INIT;

	CHECK_INT(users_add(t, u, 0, NULL, &err), want);
	if (!err.buf || !strstr(err.buf, msg))
		printf("#   error '%s' does not contain '%s'\n", err.buf ? err.buf : "", msg),
			tap_child_failures++;
	CHECK(err.buf && !strchr(err.buf, '\n'));
	strbuf_release(&err);
}

TEST(test_refusals)
{
	static const char *const nogroup[] = { "wheel" };
	struct tree *t = image(NULL, NULL);
	struct user_spec u;
	_cleanup_free_ char *before = content(t, "/etc/passwd"), *after = NULL;

	u = (struct user_spec){ .name = "root" };
	expect_fail(t, &u, -EEXIST, "the image already has a user 'root'");
	u = (struct user_spec){ .name = "b" };
	expect_fail(t, &u, -EEXIST, "already has a group 'b'");
	u = (struct user_spec){ .name = "x", .groups = nogroup, .ngroups = 1 };
	expect_fail(t, &u, -ESRCH, "no group 'wheel' in the image's /etc/group");
	u = (struct user_spec){ .name = "x", .uid = 1000 };
	expect_fail(t, &u, -EEXIST, "uid 1000 is already taken");
	u = (struct user_spec){ .name = "x", .sudo = true };
	expect_fail(t, &u, -ENOENT, "add the package sudo");
	u = (struct user_spec){ .name = "x", .shell = "/bin/zsh" };
	expect_fail(t, &u, -ENOENT, "shell '/bin/zsh' is not in the image");
	u = (struct user_spec){ .name = "x", .home = "/data/a b" };
	expect_fail(t, &u, -EINVAL, "a shell or home is an absolute path without spaces");
	u = (struct user_spec){ .name = "x", .shell = "/bin/sh:0:0" };
	expect_fail(t, &u, -EINVAL, "a shell or home is an absolute path without spaces");
	u = (struct user_spec){ .name = "x\n" };
	expect_fail(t, &u, -EINVAL, "invalid user name");
	after = content(t, "/etc/passwd");
	CHECK_STR(after, before);
	tree_free(t);
}

TEST(test_sudo_and_no_sshd)
{
	static const char *const keys[] = { KEY };
	struct tree *t = image(NULL, NULL);
	struct strbuf err = STRBUF_INIT;
	struct user_spec u = { .name = "op", .sudo = true };
	struct tree_node *n;
	_cleanup_free_ char *s = NULL;

	add(t, "/usr/bin/sudo", "\x7f" "ELF", 04755);
	CHECK_INT(users_add(t, &u, 0, NULL, &err), 0);
	n = tree_lookup(t, "/etc/sudoers.d/op");
	CHECK(n && (n->inode->mode & 07777) == 0440 && n->inode->uid == 0);
	s = content(t, "/etc/sudoers.d/op");
	CHECK(s && strstr(s, "\nop ALL=(ALL:ALL) NOPASSWD: ALL\n"));
	CHECK(tree_remove(t, "/usr/sbin/sshd", &err) == 0);
	u = (struct user_spec){ .name = "k", .keys = keys, .nkeys = 1 };
	expect_fail(t, &u, -ENOENT, "add the package openssh-server");
	tree_free(t);
	strbuf_release(&err);
}

TEST(test_no_free_id)
{
	struct strbuf sb = STRBUF_INIT;
	struct tree *t;
	struct user_spec u = { .name = "late", .system = true };
	uint32_t i;

	strbuf_addstr(&sb, "root:x:0:0::/root:/bin/sh\n");
	for (i = USERS_SYSTEM_FIRST; i <= USERS_SYSTEM_LAST; i++)
		strbuf_addf(&sb, "s%u:x:%u:0::/:/bin/sh\n", i, i);
	t = image(sb.buf, NULL);
	expect_fail(t, &u, -ENOSPC, "no free system id left from 100 to 999");
	tree_free(t);
	strbuf_release(&sb);
}

/* Account files come from packages: every malformed one is one error line, never a crash. */
TEST(test_hostile_account_files)
{
	static const struct {
		const char *passwd, *group, *msg;
	} cases[] = {
		{ "root:x:0:0:root:/root\n", NULL,
		  "'/etc/passwd' in the image, line 1: expected 7 fields separated by ':', found 6" },
		{ "root:x:0:0:root:/root:/bin/sh:extra\n", NULL, "found 8" },
		{ "root:x:zero:0:root:/root:/bin/sh\n", NULL, "line 1: the id is not a number" },
		{ "root:x:99999999999:0::/:/bin/sh\n", NULL, "the id is not a number" },
		{ "root:x:0:0::/:/bin/sh\n\nbad\n", NULL, "line 3: expected 7 fields" },
		{ NULL, "root:x:0\n", "'/etc/group' in the image, line 1: expected 4 fields" },
		{ NULL, "root:x::\n", "'/etc/group' in the image, line 1: the id is not a number" },
	};
	struct user_spec u = { .name = "x" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct tree *t = image(cases[i].passwd, cases[i].group);
		expect_fail(t, &u, -EINVAL, cases[i].msg);
		tree_free(t);
	}
	{
		/* A NUL byte, and a line far longer than any buffer. */
		struct tree *t = image(NULL, NULL);
		struct strbuf err = STRBUF_INIT, big = STRBUF_INIT;
		size_t k;

		CHECK(tree_add_file(t, "/etc/passwd", "root:x:0\0:0::/:/bin/sh\n", 23, NULL, 0644, 0,
				    0, 0, &err) == 0);
		expect_fail(t, &u, -EINVAL, "'/etc/passwd' in the image holds a NUL byte");
		for (k = 0; k < 200000; k++)
			strbuf_addch(&big, k % 7 ? 'a' : ':');
		CHECK(tree_add_file(t, "/etc/passwd", big.buf, big.len, NULL, 0644, 0, 0, 0,
				    &err) == 0);
		expect_fail(t, &u, -EINVAL, "expected 7 fields separated by ':', found 28573");
		CHECK(tree_remove(t, "/etc/passwd", &err) == 0);
		expect_fail(t, &u, -ENOENT, "the image has no /etc/passwd");
		tree_free(t);
		strbuf_release(&err);
		strbuf_release(&big);
	}
}

TEST(test_names_and_keys)
{
	static const char *const good[] = { "alice", "_svc", "a-b_c9", "abcdefghijklmnopqrstuvwxyz012345" };
	static const char *const bad[] = { "", "Alice", "9lives", "-x", "a.b", "a b", "a$", "../x",
					   "abcdefghijklmnopqrstuvwxyz0123456" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good); i++)
		CHECK(recipe_account_name_valid(good[i]));
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK(!recipe_account_name_valid(bad[i]));
	CHECK(recipe_ssh_key_valid(KEY) == NULL);
	CHECK(recipe_ssh_key_valid("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIAxkdGy6U/+KCESQCPVzHQtOf4vbt3FLnGKR/qwNUJ") == NULL);
	CHECK(recipe_ssh_key_valid("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIDIAxkdGy6U/+KCESQCPVzHQtOf4vbt3FLnGKR/qwNUJ") != NULL);
	CHECK(recipe_ssh_key_valid("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIAxkdGy6U/+KCESQCPVzHQtOf4vbt3FLnGKR/qwNU") != NULL);
	CHECK(recipe_ssh_key_valid("ssh-ed25519 AAAA!!!!") != NULL);
	CHECK(recipe_ssh_key_valid("ssh-ed25519") != NULL);
	CHECK(recipe_ssh_key_valid("ssh-ed25519 ") != NULL);
	CHECK(recipe_ssh_key_valid("ssh-foo AAAA") != NULL);
	CHECK(recipe_ssh_key_valid("from=\"x\" " KEY) != NULL);
	CHECK(recipe_ssh_key_valid(KEY "\nssh-ed25519 AAAA") != NULL);
	CHECK(recipe_ssh_key_valid("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDIAxkdGy6U/+KCESQCPVzHQtOf4vbt3FLnGKR/qwNUJ==") != NULL);
}

int main(void)
{
	RUN(test_regular_user);
	RUN(test_system_user_and_explicit_uid);
	RUN(test_refusals);
	RUN(test_sudo_and_no_sshd);
	RUN(test_no_free_id);
	RUN(test_hostile_account_files);
	RUN(test_names_and_keys);
	return tap_done();
}
