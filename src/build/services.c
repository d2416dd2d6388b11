/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "build/services.h"
#include "recipe/recipe.h"

static const char *const unit_dirs[] = { "/etc/systemd/system", "/usr/lib/systemd/system",
					 "/lib/systemd/system" };

/* Find a unit file; for "foo@bar.service" fall back to the template "foo@.service". */
static int find_unit(struct tree *t, const char *unit, char **ret_path, char **ret_file)
{
	_cleanup_free_ char *tmpl = NULL;
	const char *at = strchr(unit, '@'), *dot = strrchr(unit, '.');
	size_t i;
	int pass;

	if (at && dot && dot > at + 1)
		tmpl = xasprintf("%.*s%s", (int)(at - unit + 1), unit, dot);
	for (pass = 0; pass < 2; pass++) {
		const char *name = pass == 0 ? unit : tmpl;
		if (!name)
			break;
		for (i = 0; i < ARRAY_SIZE(unit_dirs); i++) {
			_cleanup_free_ char *p = xasprintf("%s/%s", unit_dirs[i], name);
			struct tree_node *n = tree_lookup(t, p);
			if (!n || !n->inode)
				continue;
			if (S_ISLNK(n->inode->mode) && !strcmp(n->inode->symlink, "/dev/null"))
				return -ESHUTDOWN; /* masked */
			if (!S_ISREG(n->inode->mode))
				continue;
			*ret_file = xstrdup(name);
			*ret_path = TAKE_PTR(p);
			return 0;
		}
	}
	return -ENOENT;
}

static int add_link(struct tree *t, const char *dir, const char *name, const char *target,
		    int64_t mtime, struct strbuf *err)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, name);
	int r;

	if (!tree_lookup(t, dir)) {
		r = tree_add_directory(t, dir, 0755, 0, 0, mtime, err);
		if (r < 0)
			return r;
	}
	if (tree_lookup(t, path))
		tree_remove(t, path, err);
	return tree_add_symlink(t, path, target, 0, 0, mtime, err);
}

static int enable_one(struct tree *t, const char *unit, int64_t mtime, int depth,
		      struct strbuf *err)
{
	_cleanup_free_ char *path = NULL, *file = NULL, *buf = NULL;
	size_t len;
	char *line, *save = NULL;
	bool in_install = false;
	int r, found = 0;

	if (depth > 8)
		return 0;
	r = find_unit(t, unit, &path, &file);
	if (r == -ESHUTDOWN) {
		strbuf_addf(err, "cannot enable '%s': it is masked in the image", unit);
		return -EINVAL;
	}
	if (r < 0) {
		strbuf_addf(err,
			    "cannot enable '%s': no such unit in the image (looked in "
			    "/etc/systemd/system and /usr/lib/systemd/system); add the package "
			    "that ships it",
			    unit);
		return r;
	}
	r = tree_read_content(t, path, 1 << 20, &buf, &len, err);
	if (r < 0)
		return r;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq, *val, *word, *wsave = NULL;

		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '[') {
			in_install = !strncmp(line, "[Install]", 9);
			continue;
		}
		if (!in_install || *line == '#' || *line == ';')
			continue;
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		val = eq + 1;
		for (word = strtok_r(val, " \t", &wsave); word; word = strtok_r(NULL, " \t", &wsave)) {
			_cleanup_free_ char *dir = NULL, *target = NULL;
			_cleanup_free_ char *name = NULL;
			bool is_inst = strchr(unit, '@') && unit[strlen(unit) - 1] != '@';

			name = xstrdup(is_inst || !strchr(file, '@') ? unit : file);
			target = xasprintf("%s", path);
			/* Unit files come from packages and overlays: their names are input too. */
			if (!recipe_unit_name_valid(word)) {
				strbuf_addf(err, "cannot enable '%s': %s names an invalid unit in %s=",
					    unit, path, line);
				return -EINVAL;
			}
			if (!strcmp(line, "WantedBy") || !strcmp(line, "RequiredBy")) {
				dir = xasprintf("/etc/systemd/system/%s.%s", word,
						!strcmp(line, "WantedBy") ? "wants" : "requires");
				r = add_link(t, dir, name, target, mtime, err);
				found = 1;
			} else if (!strcmp(line, "Alias")) {
				r = add_link(t, "/etc/systemd/system", word, target, mtime, err);
				found = 1;
			} else if (!strcmp(line, "Also")) {
				r = enable_one(t, word, mtime, depth + 1, err);
			} else {
				r = 0;
			}
			if (r < 0)
				return r;
		}
	}
	(void)found;
	return 0;
}

/*
 * Like systemctl, a name without a unit type means a service. A name that
 * is not a unit name (one with '/' or "..") never reaches a path: NULL and
 * a message in err.
 */
static char *unit_name(const char *unit, const char *what, struct strbuf *err)
{
	if (!recipe_unit_name_valid(unit)) {
		strbuf_addf(err, "cannot %s '%s': not a valid unit name", what, unit);
		return NULL;
	}
	return strchr(unit, '.') ? xstrdup(unit) : xasprintf("%s.service", unit);
}

int services_enable(struct tree *t, const char *name, int64_t mtime, struct strbuf *err)
{
	_cleanup_free_ char *unit = unit_name(name, "enable", err);

	if (!unit)
		return -EINVAL;
	return enable_one(t, unit, mtime, 0, err);
}

static int disable_links(struct tree *t, const char *unit, struct strbuf *err)
{
	struct tree_node *etc = tree_lookup(t, "/etc/systemd/system");
	struct tree_node **kids = NULL;
	size_t n = 0, i;
	int removed = 0;

	if (!etc)
		return 0;
	tree_sorted_children(etc, &kids, &n);
	for (i = 0; i < n; i++) {
		_cleanup_free_ char *p = NULL;
		const char *dir = kids[i]->name;
		size_t l = strlen(dir);

		if (!kids[i]->inode || !S_ISDIR(kids[i]->inode->mode))
			continue;
		if (!(l > 6 && !strcmp(dir + l - 6, ".wants")) &&
		    !(l > 9 && !strcmp(dir + l - 9, ".requires")))
			continue;
		p = xasprintf("/etc/systemd/system/%s/%s", dir, unit);
		if (tree_lookup(t, p) && tree_remove(t, p, err) >= 0)
			removed++;
	}
	free(kids);
	return removed;
}

int services_disable(struct tree *t, const char *name, struct strbuf *err)
{
	_cleanup_free_ char *unit = unit_name(name, "disable", err);
	_cleanup_free_ char *path = NULL, *file = NULL;

	if (!unit)
		return -EINVAL;
	if (disable_links(t, unit, err) > 0)
		return 0;
	/* Nothing to disable, and no such unit: most likely a typo in the recipe. */
	if (find_unit(t, unit, &path, &file) == -ENOENT) {
		strbuf_addf(err, "disable '%s': no such unit in the image", unit);
		return 1;
	}
	return 0;
}

int services_mask(struct tree *t, const char *name, int64_t mtime, struct strbuf *err)
{
	_cleanup_free_ char *unit = unit_name(name, "mask", err);

	if (!unit)
		return -EINVAL;
	disable_links(t, unit, err);
	return add_link(t, "/etc/systemd/system", unit, "/dev/null", mtime, err);
}
