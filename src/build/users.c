/* SPDX-License-Identifier: MIT */
/*
 * users: accounts added to an image tree at build time (see users.h).
 *
 * The password and group files come from the base's packages and are
 * parsed as untrusted input: every line must have its fields and numeric
 * ids, a NUL byte or a broken line is one error naming the file and line,
 * and nothing is written unless all four files were read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "build/services.h"
#include "build/users.h"
#include "recipe/recipe.h"

#define DB_MAX_SIZE (16 << 20)
#define HOMES	    "/usr/lib/imgforge/users-homes.conf"
#define HOMES_UNIT  "imgforge-users-homes.service"
#define UNIT_DIR    "/usr/lib/systemd/system"
#define SSHD_CONF   "/etc/ssh/sshd_config.d/imgforge-users.conf"
#define KEYS_DIR    "/etc/ssh/authorized_keys.d"

struct db_line {
	size_t off, len;  /* the line without its newline */
	size_t name_len;  /* field 0 */
	uint32_t id;	  /* field 2 of passwd and group */
};

struct db {
	const char *path;
	int nfields; /* exact count (passwd 7, group 4, gshadow 4), or the minimum (shadow: -2) */
	bool numeric; /* field 2 is an id */
	bool present;
	struct strbuf text;
	struct db_line *lines;
	size_t n, alloc;
	uint32_t mode, uid, gid; /* of the file in the tree */
};

static void db_release(struct db *db)
{
	strbuf_release(&db->text);
	free(db->lines);
	db->lines = NULL;
	db->n = db->alloc = 0;
}

static bool parse_id(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v = 0;
	size_t i;

	if (!len || len > 10)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

/* Split db->text into lines and check each; one error line on failure. */
static int db_parse(struct db *db, struct strbuf *err)
{
	const char *buf = db->text.buf;
	size_t off = 0, lineno = 0;
	char ex[64];

	if (!db->text.len)
		return 0;
	if (memchr(buf, '\0', db->text.len)) {
		strbuf_addf(err, "'%s' in the image holds a NUL byte: it is not a text file",
			    db->path);
		return -EINVAL;
	}
	while (off < db->text.len) {
		const char *line = buf + off, *eol = memchr(line, '\n', db->text.len - off);
		size_t len = eol ? (size_t)(eol - line) : db->text.len - off;
		const char *f[8] = { line };
		size_t nf = 1, i;
		struct db_line *l;

		lineno++;
		for (i = 0; i < len && nf < ARRAY_SIZE(f); i++)
			if (line[i] == ':')
				f[nf++] = line + i + 1;
		for (; i < len; i++)
			nf += line[i] == ':';
		if (len == 0) {
			off += 1;
			continue;
		}
		if ((db->nfields > 0 && nf != (size_t)db->nfields) ||
		    (db->nfields < 0 && nf < (size_t)-db->nfields)) {
			snprintf(ex, sizeof(ex), "%.*s%s", (int)(len > 40 ? 40 : len), line,
				 len > 40 ? "..." : "");
			for (i = 0; ex[i]; i++)
				if ((unsigned char)ex[i] < 0x20 || (unsigned char)ex[i] >= 0x7f)
					ex[i] = '?';
			strbuf_addf(err,
				    "'%s' in the image, line %zu: expected %s%d fields separated "
				    "by ':', found %zu ('%s')",
				    db->path, lineno, db->nfields < 0 ? "at least " : "",
				    db->nfields < 0 ? -db->nfields : db->nfields, nf, ex);
			return -EINVAL;
		}
		GROW(db->lines, db->alloc, db->n + 1);
		l = &db->lines[db->n++];
		l->off = off;
		l->len = len;
		l->name_len = (size_t)(f[1] - 1 - f[0]);
		l->id = 0;
		if (db->numeric && !parse_id(f[2], (size_t)(f[3] - 1 - f[2]), &l->id)) {
			strbuf_addf(err, "'%s' in the image, line %zu: the id is not a number",
				    db->path, lineno);
			return -EINVAL;
		}
		off += len + (eol ? 1 : 0);
	}
	return 0;
}

static int db_load(struct tree *t, struct db *db, bool required, struct strbuf *err)
{
	struct tree_node *n = tree_lookup(t, db->path);
	_cleanup_(strbuf_release) struct strbuf why = STRBUF_INIT;
	char *buf = NULL;
	size_t len = 0;
	int r;

	if (!n && !required)
		return 0;
	if (!n) {
		strbuf_addf(err, "the image has no %s: users: needs a base with the Debian "
			    "account files (package base-passwd)", db->path);
		return -ENOENT;
	}
	r = tree_read_content(t, db->path, DB_MAX_SIZE, &buf, &len, &why);
	if (r < 0) {
		strbuf_addf(err, "cannot read %s in the image: %s", db->path, why.buf);
		return r;
	}
	db->present = true;
	db->mode = n->inode->mode & 07777;
	db->uid = n->inode->uid;
	db->gid = n->inode->gid;
	strbuf_add(&db->text, buf, len);
	free(buf);
	return db_parse(db, err);
}

static const struct db_line *db_find(const struct db *db, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < db->n; i++)
		if (db->lines[i].name_len == n && !memcmp(db->text.buf + db->lines[i].off, name, n))
			return &db->lines[i];
	return NULL;
}

static bool db_has_id(const struct db *db, uint32_t id)
{
	size_t i;

	for (i = 0; i < db->n; i++)
		if (db->lines[i].id == id)
			return true;
	return false;
}

static void db_append(struct db *db, const char *line)
{
	if (!db->present)
		return;
	if (db->text.len && db->text.buf[db->text.len - 1] != '\n')
		strbuf_addch(&db->text, '\n');
	strbuf_addf(&db->text, "%s\n", line);
}

/* Add user to the member list (the last field) of group's line. */
static void db_add_member(struct db *db, const char *group, const char *user)
{
	const struct db_line *l = db->present ? db_find(db, group) : NULL;
	struct strbuf out = STRBUF_INIT;
	size_t end;

	if (!l)
		return;
	end = l->off + l->len;
	strbuf_add(&out, db->text.buf, end);
	if (db->text.buf[end - 1] != ':')
		strbuf_addch(&out, ',');
	strbuf_addstr(&out, user);
	strbuf_add(&out, db->text.buf + end, db->text.len - end);
	strbuf_release(&db->text);
	db->text = out;
	/* The offsets after the change moved: split again (it parsed before). */
	db->n = 0;
	out = (struct strbuf)STRBUF_INIT;
	db_parse(db, &out);
	strbuf_release(&out);
}

static int db_store(struct tree *t, struct db *db, int64_t mtime, struct strbuf *err)
{
	if (!db->present)
		return 0;
	return tree_add_file(t, db->path, db->text.buf, db->text.len, NULL, db->mode, db->uid,
			     db->gid, mtime, err);
}

/*
 * Look a path up the way the running system would: symlinks on the way
 * and at the end followed inside the tree (/bin is a link to usr/bin on a
 * merged-/usr system). NULL if it does not resolve.
 */
static struct tree_node *resolve(struct tree *t, const char *path)
{
	_cleanup_free_ char *cur = NULL;
	int hops;

	if (tree_normalize_path(path, &cur) < 0)
		return NULL;
	for (hops = 0; hops < 40; hops++) {
		size_t i = 0;
		bool again = false;

		for (;;) {
			size_t end = i + strcspn(cur + i, "/");
			_cleanup_free_ char *prefix = xstrndup(cur, end);
			struct tree_node *n = tree_lookup(t, prefix);

			if (!n || !n->inode)
				return NULL;
			if (S_ISLNK(n->inode->mode)) {
				const char *slash = strrchr(prefix, '/');
				_cleanup_free_ char *dir = slash ? xstrndup(prefix, (size_t)(slash - prefix))
								 : xstrdup("");
				_cleanup_free_ char *joined = NULL, *norm = NULL;

				if (n->inode->symlink[0] == '/')
					joined = xasprintf("%s%s", n->inode->symlink, cur + end);
				else
					joined = xasprintf("/%s/%s%s", dir, n->inode->symlink, cur + end);
				if (tree_normalize_path(joined, &norm) < 0)
					return NULL;
				free(cur);
				cur = TAKE_PTR(norm);
				again = true;
				break;
			}
			if (!cur[end])
				return n;
			i = end + 1;
		}
		if (!again)
			break;
	}
	return NULL;
}

static bool is_file(struct tree *t, const char *path)
{
	struct tree_node *n = resolve(t, path);
	return n && S_ISREG(n->inode->mode);
}

/* Append a line to a small text file of the tree (created 0644 root:root). */
static int append_file(struct tree *t, const char *path, const char *line, int64_t mtime,
		       struct strbuf *err)
{
	_cleanup_(strbuf_release) struct strbuf why = STRBUF_INIT;
	_cleanup_free_ char *old = NULL;
	_cleanup_free_ char *text = NULL;
	size_t len = 0;

	if (tree_lookup(t, path) && tree_read_content(t, path, DB_MAX_SIZE, &old, &len, &why) < 0) {
		strbuf_addf(err, "cannot read %s in the image: %s", path, why.buf);
		return -EINVAL;
	}
	text = xasprintf("%.*s%s", (int)len, old ? old : "", line);
	return tree_add_file(t, path, text, strlen(text), NULL, 0644, 0, 0, mtime, err);
}

static int ensure_dir(struct tree *t, const char *path, uint32_t mode, int64_t mtime,
		      struct strbuf *err)
{
	if (resolve(t, path))
		return 0;
	return tree_add_directory(t, path, mode, 0, 0, mtime, err);
}

/* A value that can be a field of /etc/passwd and a word of a tmpfiles.d line. */
static bool valid_field(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == ':' || *s == 0x7f)
			return false;
	return true;
}

/* What the recipe checks already, checked again: users_add takes no input on trust. */
static int check_spec(const struct user_spec *u, struct strbuf *err)
{
	size_t i;

	if (!recipe_account_name_valid(u->name)) {
		strbuf_addf(err, "invalid user name");
		return -EINVAL;
	}
	for (i = 0; i < u->ngroups; i++)
		if (!recipe_account_name_valid(u->groups[i])) {
			strbuf_addf(err, "invalid group name");
			return -EINVAL;
		}
	for (i = 0; i < u->nkeys; i++)
		if (recipe_ssh_key_valid(u->keys[i])) {
			strbuf_addf(err, "invalid SSH public key");
			return -EINVAL;
		}
	if ((u->shell && (u->shell[0] != '/' || !valid_field(u->shell))) ||
	    (u->home && (u->home[0] != '/' || !valid_field(u->home)))) {
		strbuf_addf(err, "a shell or home is an absolute path without spaces, ':' or "
			    "control characters");
		return -EINVAL;
	}
	return 0;
}

/* The lowest id of [lo, hi] that is neither a uid nor a gid of the image. */
static uint32_t lowest_free(const struct db *passwd, const struct db *group, uint32_t lo,
			    uint32_t hi)
{
	uint32_t id;

	for (id = lo; id <= hi; id++)
		if (!db_has_id(passwd, id) && !db_has_id(group, id))
			return id;
	return 0;
}

/*
 * Homes on /data are made at boot, once /data is mounted: not by
 * systemd-tmpfiles-setup, which a nofail mount (the data partition) is not
 * ordered before, but by a unit of their own that waits for /data and
 * runs before logins are allowed.
 */
static int homes_unit(struct tree *t, int64_t mtime, struct strbuf *err)
{
	static const char unit[] =
		"# Written by imgforge for the users: of the recipe.\n"
		"[Unit]\n"
		"Description=imgforge: home directories of the image's users on /data\n"
		"RequiresMountsFor=/data\n"
		"After=appliance-data.service\n"
		"Before=systemd-user-sessions.service\n"
		"\n"
		"[Service]\n"
		"Type=oneshot\n"
		"RemainAfterExit=yes\n"
		"ExecStart=systemd-tmpfiles --create " HOMES "\n"
		"\n"
		"[Install]\n"
		"WantedBy=multi-user.target\n";
	int r = ensure_dir(t, UNIT_DIR, 0755, mtime, err);

	if (r == 0)
		r = tree_add_file(t, UNIT_DIR "/" HOMES_UNIT, unit, strlen(unit), NULL, 0644, 0, 0,
				  mtime, err);
	if (r == 0)
		r = services_enable(t, HOMES_UNIT, mtime, err);
	return r;
}

static int write_extras(struct tree *t, const struct user_spec *u, uint32_t uid, uint32_t gid,
			const char *home, int64_t mtime, struct strbuf *err)
{
	_cleanup_free_ char *path = NULL, *line = NULL;
	struct strbuf keys = STRBUF_INIT;
	size_t i;
	int r = 0;

	if (str_startswith(home, "/data/")) {
		line = xasprintf("d %s 0700 %u %u -\n", home, uid, gid);
		r = ensure_dir(t, "/usr/lib/imgforge", 0755, mtime, err);
		if (r == 0)
			r = append_file(t, HOMES, line, mtime, err);
		if (r == 0 && !tree_lookup(t, UNIT_DIR "/" HOMES_UNIT))
			r = homes_unit(t, mtime, err);
	}
	if (r == 0 && u->nkeys) {
		for (i = 0; i < u->nkeys; i++)
			strbuf_addf(&keys, "%s\n", u->keys[i]);
		path = xasprintf(KEYS_DIR "/%s", u->name);
		r = ensure_dir(t, KEYS_DIR, 0755, mtime, err);
		if (r == 0)
			r = tree_add_file(t, path, keys.buf, keys.len, NULL, 0644, 0, 0, mtime, err);
		if (r == 0 && !tree_lookup(t, SSHD_CONF)) {
			static const char conf[] =
				"# Written by imgforge for the users: of the recipe. The image's\n"
				"# keys are in " KEYS_DIR "/USER (root's, 0644): the root\n"
				"# filesystem is read-only. An earlier file in this directory that\n"
				"# sets AuthorizedKeysFile wins (sshd takes the first value).\n"
				"AuthorizedKeysFile " KEYS_DIR "/%u .ssh/authorized_keys\n";
			r = ensure_dir(t, "/etc/ssh/sshd_config.d", 0755, mtime, err);
			if (r == 0)
				r = tree_add_file(t, SSHD_CONF, conf, strlen(conf), NULL, 0644, 0, 0,
						  mtime, err);
		}
	}
	if (r == 0 && u->sudo) {
		free(path);
		free(line);
		path = xasprintf("/etc/sudoers.d/%s", u->name);
		line = xasprintf("# Written by imgforge (users: in the recipe).\n"
				 "%s ALL=(ALL:ALL) NOPASSWD: ALL\n",
				 u->name);
		r = ensure_dir(t, "/etc/sudoers.d", 0755, mtime, err);
		if (r == 0)
			r = tree_add_file(t, path, line, strlen(line), NULL, 0440, 0, 0, mtime, err);
	}
	strbuf_release(&keys);
	return r;
}

int users_add(struct tree *t, const struct user_spec *u, int64_t mtime, uint32_t *ret_uid,
	      struct strbuf *err)
{
	struct db passwd = { .path = "/etc/passwd", .nfields = 7, .numeric = true };
	struct db group = { .path = "/etc/group", .nfields = 4, .numeric = true };
	struct db shadow = { .path = "/etc/shadow", .nfields = -2 };
	struct db gshadow = { .path = "/etc/gshadow", .nfields = 4 };
	_cleanup_free_ char *home = NULL, *shell = NULL, *line = NULL;
	uint32_t lo = u->system ? USERS_SYSTEM_FIRST : USERS_FIRST;
	uint32_t hi = u->system ? USERS_SYSTEM_LAST : USERS_LAST;
	uint32_t uid, gid;
	size_t i;
	int r;

	passwd.text = group.text = shadow.text = gshadow.text = (struct strbuf)STRBUF_INIT;
	r = check_spec(u, err);
	if (r == 0)
		r = db_load(t, &passwd, true, err);
	if (r == 0)
		r = db_load(t, &group, true, err);
	if (r == 0)
		r = db_load(t, &shadow, false, err);
	if (r == 0)
		r = db_load(t, &gshadow, false, err);
	if (r < 0)
		goto out;

	if (db_find(&passwd, u->name) || (shadow.present && db_find(&shadow, u->name))) {
		strbuf_addf(err, "the image already has a user '%s' (from its base or packages): "
			    "choose another name", u->name);
		r = -EEXIST;
		goto out;
	}
	if (db_find(&group, u->name)) {
		strbuf_addf(err, "the image already has a group '%s', which would be the user's "
			    "own group: choose another name", u->name);
		r = -EEXIST;
		goto out;
	}
	for (i = 0; i < u->ngroups; i++) {
		if (!strcmp(u->groups[i], u->name))
			continue;
		if (!db_find(&group, u->groups[i])) {
			strbuf_addf(err, "no group '%s' in the image's /etc/group: name a group "
				    "the base or a package creates (like sudo, adm, systemd-journal)",
				    u->groups[i]);
			r = -ESRCH;
			goto out;
		}
	}
	if (u->uid) {
		uid = u->uid;
		if (db_has_id(&passwd, uid)) {
			strbuf_addf(err, "uid %u is already taken in the image's /etc/passwd: "
				    "choose another or leave uid: out", uid);
			r = -EEXIST;
			goto out;
		}
		gid = db_has_id(&group, uid) ? lowest_free(&passwd, &group, lo, hi) : uid;
	} else {
		uid = gid = lowest_free(&passwd, &group, lo, hi);
	}
	if (!uid || !gid) {
		strbuf_addf(err, "no free %s id left from %u to %u in the image",
			    u->system ? "system" : "user", lo, hi);
		r = -ENOSPC;
		goto out;
	}

	if (u->shell) {
		shell = xstrdup(u->shell);
		if (!is_file(t, shell)) {
			strbuf_addf(err, "shell '%s' is not in the image: add its package or "
				    "name another", shell);
			r = -ENOENT;
			goto out;
		}
	} else if (u->system) {
		shell = xstrdup("/usr/sbin/nologin");
	} else {
		shell = xstrdup(is_file(t, "/bin/bash") ? "/bin/bash" : "/bin/sh");
	}
	if (u->home)
		home = xstrdup(u->home);
	else
		home = u->system ? xstrdup("/nonexistent") : xasprintf("/data/home/%s", u->name);
	if (u->sudo && !is_file(t, "/usr/bin/sudo")) {
		strbuf_addf(err, "sudo: nopasswd needs sudo in the image: add the package sudo "
			    "to packages");
		r = -ENOENT;
		goto out;
	}
	if (u->nkeys && !is_file(t, "/usr/sbin/sshd")) {
		strbuf_addf(err, "ssh-authorized-keys needs an SSH server in the image: add the "
			    "package openssh-server to packages");
		r = -ENOENT;
		goto out;
	}

	line = xasprintf("%s:x:%u:%u::%s:%s", u->name, uid, gid, home, shell);
	db_append(&passwd, line);
	free(line);
	line = xasprintf("%s:x:%u:", u->name, gid);
	db_append(&group, line);
	free(line);
	/* No password: logins are by key, sudo by nopasswd. "*" (never a valid
	 * hash) rather than "!" (locked), which sshd refuses without PAM. */
	line = xasprintf("%s:*::0:99999:7:::", u->name);
	db_append(&shadow, line);
	free(line);
	line = xasprintf("%s:!::", u->name);
	db_append(&gshadow, line);
	for (i = 0; i < u->ngroups; i++) {
		if (!strcmp(u->groups[i], u->name))
			continue;
		db_add_member(&group, u->groups[i], u->name);
		db_add_member(&gshadow, u->groups[i], u->name);
	}
	r = db_store(t, &passwd, mtime, err);
	if (r == 0)
		r = db_store(t, &group, mtime, err);
	if (r == 0)
		r = db_store(t, &shadow, mtime, err);
	if (r == 0)
		r = db_store(t, &gshadow, mtime, err);
	if (r == 0)
		r = write_extras(t, u, uid, gid, home, mtime, err);
	if (r == 0 && ret_uid)
		*ret_uid = uid;
out:
	db_release(&passwd);
	db_release(&group);
	db_release(&shadow);
	db_release(&gshadow);
	return r;
}
