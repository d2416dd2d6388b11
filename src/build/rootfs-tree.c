/* SPDX-License-Identifier: MIT */
/*
 * What the recipe does to the base's tree: overlays, files, services and
 * removals, then the kernel links a disk needs and the scrubbing of
 * per-machine secrets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "build/services.h"
#include "build/users.h"
#include "build/stage.h"
#include "fs/tree.h"

static int owner_of(struct build_ctx *c, struct tree *t, const struct ynode *n, uint32_t *uid,
		    uint32_t *gid)
{
	struct strbuf err = STRBUF_INIT;
	int r;

	*uid = *gid = 0;
	if (!n)
		return 0;
	r = tree_resolve_owner(t, n->str, uid, gid, &err);
	if (r < 0)
		r = build_fail(c, r, "%s:%d:%d: %s", n->pos.file, n->pos.line, n->pos.col,
			       err.buf);
	strbuf_release(&err);
	return r;
}

static unsigned mode_of(const struct ynode *n, unsigned def)
{
	return n ? (unsigned)strtoul(n->str, NULL, 8) : def;
}

/* Paths that must never ship in an image: per-machine identity and secrets. */
static const char *const scrub_paths[] = {
	"/etc/ssh/ssh_host_rsa_key",	     "/etc/ssh/ssh_host_rsa_key.pub",
	"/etc/ssh/ssh_host_ecdsa_key",	     "/etc/ssh/ssh_host_ecdsa_key.pub",
	"/etc/ssh/ssh_host_ed25519_key",     "/etc/ssh/ssh_host_ed25519_key.pub",
	"/etc/ssh/ssh_host_dsa_key",	     "/etc/ssh/ssh_host_dsa_key.pub",
	"/var/lib/dbus/machine-id",	     "/var/lib/systemd/random-seed",
	"/var/lib/systemd/credential.secret", "/etc/ssl/private/ssl-cert-snakeoil.key",
	"/etc/ssl/certs/ssl-cert-snakeoil.pem",
};

static int scrub(struct build_ctx *c, struct tree *t)
{
	struct strbuf err = STRBUF_INIT;
	size_t i;
	int r = 0, removed = 0;

	for (i = 0; i < ARRAY_SIZE(scrub_paths); i++)
		if (tree_lookup(t, scrub_paths[i]) && tree_remove(t, scrub_paths[i], &err) == 0)
			removed++;
	/* An empty machine-id makes systemd generate one on first boot; D-Bus's
	 * copy becomes a link to it, as Debian makes it, so nothing needs to
	 * write it on a read-only root. */
	if (tree_lookup(t, "/etc/machine-id")) {
		r = tree_add_file(t, "/etc/machine-id", "", 0, NULL, 0444, 0, 0, c->epoch, &err);
		if (r == 0 && tree_lookup(t, "/var/lib/dbus"))
			r = tree_add_symlink(t, "/var/lib/dbus/machine-id", "/etc/machine-id", 0, 0,
					     c->epoch, &err);
	}
	if (r < 0)
		r = build_fail(c, r, "rootfs: cannot reset /etc/machine-id: %s", err.buf);
	if (removed)
		build_step(c, "rootfs: removed %d host keys and machine secrets from the image", removed);
	strbuf_release(&err);
	return r;
}

/* The newest "prefix<version>" entry of /boot, by version order. */
static char *newest_in_boot(struct tree *t, const char *prefix)
{
	struct tree_node *boot = tree_lookup(t, "/boot");
	struct tree_node **kids = NULL;
	size_t n = 0, i;
	char *best = NULL;

	if (!boot)
		return NULL;
	tree_sorted_children(boot, &kids, &n);
	for (i = 0; i < n; i++) {
		const char *name = kids[i]->name;
		if (!str_startswith(name, prefix) || !kids[i]->inode ||
		    !S_ISREG(kids[i]->inode->mode) || str_endswith(name, ".bak") ||
		    str_endswith(name, ".dpkg-bak"))
			continue;
		if (!best || strverscmp(name, best) > 0)
			best = (char *)name;
	}
	best = best ? xstrdup(best) : NULL;
	free(kids);
	return best;
}

/*
 * A bootable image needs /boot/vmlinuz and /boot/initrd.img: GRUB loads
 * those fixed names from whichever slot it boots, so that slots built
 * from different kernels boot with the same grub.cfg.
 */
static int kernel_links(struct build_ctx *c, struct tree *t)
{
	static const char *const names[][2] = { { "/boot/vmlinuz", "vmlinuz-" },
						 { "/boot/initrd.img", "initrd.img-" } };
	struct strbuf err = STRBUF_INIT;
	size_t i;
	int r = 0;

	for (i = 0; i < ARRAY_SIZE(names) && r == 0; i++) {
		_cleanup_free_ char *found = NULL;
		struct tree_node *n = tree_lookup(t, names[i][0]);

		if (n && n->inode && S_ISLNK(n->inode->mode)) {
			_cleanup_free_ char *target = path_join("/boot", n->inode->symlink);
			if (n->inode->symlink[0] == '/' ? tree_lookup(t, n->inode->symlink)
							: tree_lookup(t, target))
				continue;
			tree_remove(t, names[i][0], &err);
		} else if (n) {
			continue;
		}
		found = newest_in_boot(t, names[i][1]);
		if (!found) {
			r = build_fail(c, -ENOENT,
				 "the root filesystem has no %s in /boot, so the disk could not "
				 "boot: add a kernel package (linux-image-amd64 on Debian, "
				 "linux-image-virtual on Ubuntu) and initramfs-tools to packages",
				 i == 0 ? "kernel (vmlinuz-*)" : "initramfs (initrd.img-*)");
			break;
		}
		r = tree_add_symlink(t, names[i][0], found, 0, 0, c->epoch, &err);
		if (r < 0)
			r = build_fail(c, r, "rootfs: cannot link %s: %s", names[i][0], err.buf);
		else
			build_step(c, "rootfs: %s -> %s", names[i][0], found);
	}
	strbuf_release(&err);
	return r;
}

/* The strings of a list node, borrowed from it (NULL when empty or absent). */
static const char **list_strs(const struct ynode *list, size_t *ret_n)
{
	const char **v;
	size_t i;

	*ret_n = list ? list->n : 0;
	if (!*ret_n)
		return NULL;
	v = xcalloc(list->n, sizeof(*v));
	for (i = 0; i < list->n; i++)
		v[i] = list->v[i]->str;
	return v;
}

/*
 * users: first, so that overlays and files can name the new accounts as
 * owners. Each is added in recipe order: the uids given out depend only
 * on the base and the recipe.
 */
static int apply_users(struct build_ctx *c, struct tree *t)
{
	const struct ynode *users = recipe_get(c->r, "users");
	struct strbuf err = STRBUF_INIT;
	size_t i;
	int r = 0;

	for (i = 0; users && i < users->n && r == 0; i++) {
		const struct ynode *u = users->v[i];
		const struct ynode *name = ynode_map_get(u, "name");
		const struct ynode *uidn = ynode_map_get(u, "uid");
		const struct ynode *sudo = ynode_map_get(u, "sudo");
		const struct ynode *shell = ynode_map_get(u, "shell");
		const struct ynode *home = ynode_map_get(u, "home");
		_cleanup_free_ const char **groups = NULL, **keys = NULL;
		struct user_spec spec = {
			.name = name->str,
			.uid = uidn ? (uint32_t)strtoul(uidn->str, NULL, 10) : 0,
			.system = recipe_bool(ynode_map_get(u, "system"), false),
			.sudo = sudo && !strcmp(sudo->str, "nopasswd"),
			.shell = shell ? shell->str : NULL,
			.home = home ? home->str : NULL,
		};
		uint32_t uid;

		groups = list_strs(ynode_map_get(u, "groups"), &spec.ngroups);
		keys = list_strs(ynode_map_get(u, "ssh-authorized-keys"), &spec.nkeys);
		spec.groups = groups;
		spec.keys = keys;
		r = users_add(t, &spec, c->epoch, &uid, &err);
		if (r < 0)
			r = build_fail(c, r, "%s:%d:%d: user '%s': %s", name->pos.file,
				       name->pos.line, name->pos.col, name->str, err.buf);
		else
			build_step(c, "rootfs: user %s (uid %u)", name->str, uid);
	}
	strbuf_release(&err);
	return r;
}

int rootfs_apply_recipe(struct build_ctx *c, struct tree *t)
{
	struct strbuf err = STRBUF_INIT;
	const struct ynode *ov = recipe_get(c->r, "overlays");
	const struct ynode *files = recipe_get(c->r, "files");
	const struct ynode *rm = recipe_get(c->r, "remove");
	const struct ynode *svc = recipe_get(c->r, "services");
	size_t i;
	int r = apply_users(c, t);

	for (i = 0; ov && i < ov->n && r == 0; i++) {
		const struct ynode *it = ov->v[i];
		const struct ynode *src = it->kind == YNODE_MAP ? ynode_map_get(it, "source") : it;
		const char *target = "/";
		uint32_t uid = 0, gid = 0;

		if (it->kind == YNODE_MAP) {
			const struct ynode *tg = ynode_map_get(it, "target");
			target = tg ? tg->str : "/";
			r = owner_of(c, t, ynode_map_get(it, "owner"), &uid, &gid);
			if (r < 0)
				break;
		}
		r = tree_add_dir(t, src->abspath, target, uid, gid, &err);
		if (r < 0)
			r = build_fail(c, r, "%s:%d:%d: overlay '%s': %s", src->pos.file, src->pos.line,
				 src->pos.col, src->str, err.buf);
		else
			build_step(c, "rootfs: overlay %s -> %s", src->str, target);
	}
	for (i = 0; files && i < files->n && r == 0; i++) {
		const struct ynode *f = files->v[i];
		const struct ynode *path = ynode_map_get(f, "path");
		const char *type = ynode_map_get(f, "type") ? ynode_map_get(f, "type")->str : "file";
		const struct ynode *content = ynode_map_get(f, "content");
		const struct ynode *source = ynode_map_get(f, "source");
		uint32_t uid, gid;

		r = owner_of(c, t, ynode_map_get(f, "owner"), &uid, &gid);
		if (r < 0)
			break;
		if (!strcmp(type, "directory"))
			r = tree_add_directory(t, path->str, mode_of(ynode_map_get(f, "mode"), 0755),
					       uid, gid, c->epoch, &err);
		else if (!strcmp(type, "symlink"))
			r = tree_add_symlink(t, path->str, ynode_map_get(f, "target")->str, uid, gid,
					     c->epoch, &err);
		else
			r = tree_add_file(t, path->str, content ? content->str : NULL,
					  content ? strlen(content->str) : 0,
					  source ? source->abspath : NULL,
					  mode_of(ynode_map_get(f, "mode"), 0644), uid, gid, c->epoch,
					  &err);
		if (r < 0)
			r = build_fail(c, r, "%s:%d:%d: file '%s': %s", path->pos.file, path->pos.line,
				 path->pos.col, path->str, err.buf);
	}
	if (files && files->n && r == 0)
		build_step(c, "rootfs: %zu files from the recipe", files->n);
	for (i = 0; svc && i < svc->n && r == 0; i++) {
		const struct ynode *list = svc->v[i];
		size_t j;

		for (j = 0; j < list->n && r == 0; j++) {
			const struct ynode *u = list->v[j];
			if (!strcmp(svc->k[i], "enable"))
				r = services_enable(t, u->str, c->epoch, &err);
			else if (!strcmp(svc->k[i], "disable"))
				r = services_disable(t, u->str, &err);
			else
				r = services_mask(t, u->str, c->epoch, &err);
			if (r < 0)
				r = build_fail(c, r, "%s:%d:%d: %s", u->pos.file, u->pos.line, u->pos.col,
					       err.buf);
			else if (r > 0)
				warning("%s:%d:%d: %s", u->pos.file, u->pos.line, u->pos.col,
					err.buf);
			else
				build_step(c, "rootfs: %s %s", svc->k[i], u->str);
			strbuf_reset(&err);
			r = r > 0 ? 0 : r;
		}
	}
	for (i = 0; rm && i < rm->n && r == 0; i++) {
		const struct ynode *p = rm->v[i];
		r = tree_remove(t, p->str, &err);
		if (r == -ENOENT) {
			strbuf_reset(&err);
			r = 0;
		} else if (r < 0) {
			r = build_fail(c, r, "%s:%d:%d: remove '%s': %s", p->pos.file, p->pos.line,
				 p->pos.col, p->str, err.buf);
		}
	}
	if (r == 0 && recipe_get(c->r, "disk"))
		r = kernel_links(c, t);
	if (r == 0)
		r = scrub(c, t);
	strbuf_release(&err);
	return r;
}
