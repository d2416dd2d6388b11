/* SPDX-License-Identifier: MIT */
/*
 * What the recipe does to the base's tree: overlays, files, services and
 * removals, then the kernel links a disk needs and the scrubbing of
 * per-machine secrets.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "build/release.h"
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

/*
 * What the base brought from the build host rather than from a package:
 * mmdebstrap copies the host's /etc/resolv.conf (its DNS server) and
 * /etc/hostname into the chroot so that maintainer scripts reach the
 * network, and leaves them there (systemd-resolved's maintainer script
 * moves resolv.conf to a backup beside it). Done before the recipe, so that an
 * overlay or a file of the recipe can still put its own in place.
 *
 * In their stead: no /etc/hostname (systemd takes the name from DHCP,
 * cloud-init or its fallback), /etc/resolv.conf a link to the file
 * systemd-resolved writes under /run (the root is read-only: DNS must be
 * configured at run time) when the image has systemd-resolved, and the
 * standard /etc/hosts when the base has none. docs/build.md.
 */
#define RESOLV_STUB "../run/systemd/resolve/stub-resolv.conf"
#define RESOLV_BACKUP "/etc/.resolv.conf.systemd-resolved.bak"
static const char hosts_default[] = "127.0.0.1\tlocalhost\n"
				    "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
				    "ff02::1\t\tip6-allnodes\n"
				    "ff02::2\t\tip6-allrouters\n";

static bool has_resolved(struct tree *t)
{
	return tree_lookup(t, "/usr/lib/systemd/systemd-resolved") ||
	       tree_lookup(t, "/lib/systemd/systemd-resolved");
}

static int scrub_host(struct build_ctx *c, struct tree *t)
{
	struct strbuf err = STRBUF_INIT;
	struct tree_node *n;
	int r = 0;

	if (tree_lookup(t, "/etc/hostname") && tree_remove(t, "/etc/hostname", &err) == 0)
		build_step(c, "rootfs: removed /etc/hostname (the build host's name)");
	/* systemd-resolved's postinst keeps the copied file under this name. */
	if (tree_lookup(t, RESOLV_BACKUP) && tree_remove(t, RESOLV_BACKUP, &err) == 0)
		build_step(c, "rootfs: removed %s (the build host's DNS servers)", RESOLV_BACKUP);
	n = tree_lookup(t, "/etc/resolv.conf");
	if (n && !(n->inode && S_ISLNK(n->inode->mode)) &&
	    tree_remove(t, "/etc/resolv.conf", &err) == 0) {
		build_step(c, "rootfs: removed /etc/resolv.conf (the build host's DNS servers)");
		n = NULL;
	}
	strbuf_reset(&err);
	if (!n && tree_lookup(t, "/etc") && has_resolved(t)) {
		r = tree_add_symlink(t, "/etc/resolv.conf", RESOLV_STUB, 0, 0, c->epoch, &err);
		if (r == 0)
			build_step(c, "rootfs: /etc/resolv.conf -> %s", RESOLV_STUB);
	}
	if (r == 0 && !tree_lookup(t, "/etc/hosts") && tree_lookup(t, "/etc"))
		r = tree_add_file(t, "/etc/hosts", hosts_default, strlen(hosts_default), NULL, 0644,
				  0, 0, c->epoch, &err);
	if (r < 0)
		r = build_fail(c, r, "rootfs: cannot replace the build host's files: %s", err.buf);
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

/*
 * What the boot support of a disk (recipes/ab-boot-files.yaml) runs in the
 * image, besides systemd: the data partition grows with sfdisk, partx,
 * e2fsck and resize2fs. A package base gets them from ab-boot.yaml's
 * packages; a tarball base only has what its tarball has, which is known
 * once it is read: so this is checked here, before anything is written,
 * naming everything that is missing at once.
 */
static const char *const boot_tools[] = { "sfdisk", "partx", "e2fsck", "resize2fs" };

static bool has_tool(struct tree *t, const char *name)
{
	static const char *const dirs[] = { "/usr/sbin/", "/usr/bin/", "/sbin/", "/bin/" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(dirs); i++) {
		_cleanup_free_ char *p = xasprintf("%s%s", dirs[i], name);
		if (tree_lookup(t, p))
			return true;
	}
	return false;
}

static bool has_boot_file(struct tree *t, const char *path, const char *prefix)
{
	_cleanup_free_ char *found = NULL;

	if (tree_lookup(t, path))
		return true;
	found = newest_in_boot(t, prefix);
	return found != NULL;
}

/*
 * The update agent needs these at run time; mark-good falls back to
 * imgforge-slot when it cannot run, so a missing one is a warning: the image
 * boots and is marked good, but cannot install updates.
 */
static const char *const agent_libs[] = { "libcurl.so.4", "libcrypto.so.3", "libzstd.so.1" };

static void agent_needs(struct tree *t)
{
	static const char *const dirs[] = { "/usr/lib/x86_64-linux-gnu/", "/lib/x86_64-linux-gnu/",
					    "/usr/lib/", "/lib/" };
	struct strbuf missing = STRBUF_INIT;
	size_t i, j;

	if (!tree_lookup(t, "/usr/sbin/imgforge-update"))
		return;
	for (i = 0; i < ARRAY_SIZE(agent_libs); i++) {
		for (j = 0; j < ARRAY_SIZE(dirs); j++) {
			_cleanup_free_ char *p = xasprintf("%s%s", dirs[j], agent_libs[i]);
			if (tree_lookup(t, p))
				break;
		}
		if (j == ARRAY_SIZE(dirs))
			strbuf_addf(&missing, ", %s", agent_libs[i]);
	}
	if (missing.len)
		warning("the root filesystem lacks %s, which /usr/sbin/imgforge-update needs: the "
			"image will boot but not install updates; add libcurl4, libssl3 and "
			"libzstd1 (ab-boot.yaml does)",
			missing.buf + 2);
	strbuf_release(&missing);
}

static int boot_needs(struct build_ctx *c, struct tree *t)
{
	struct strbuf missing = STRBUF_INIT;
	bool tarball = recipe_get(c->r, "base.tarball") != NULL;
	size_t i;
	int r = 0;

	if (!has_boot_file(t, "/boot/vmlinuz", "vmlinuz-"))
		strbuf_addstr(&missing, ", a kernel (/boot/vmlinuz-*)");
	if (!has_boot_file(t, "/boot/initrd.img", "initrd.img-"))
		strbuf_addstr(&missing, ", an initramfs (/boot/initrd.img-*)");
	for (i = 0; i < ARRAY_SIZE(boot_tools); i++)
		if (!has_tool(t, boot_tools[i]))
			strbuf_addf(&missing, ", %s", boot_tools[i]);
	if (missing.len)
		r = build_fail(c, -ENOENT,
			       "the root filesystem lacks %s, so the disk could not boot or grow "
			       "its data partition: %s",
			       missing.buf + 2,
			       tarball ? "the tarball base must contain them (a kernel package, "
					 "initramfs-tools, fdisk, util-linux and e2fsprogs)"
				       : "add a kernel package (linux-image-amd64 on Debian, "
					 "linux-image-virtual on Ubuntu), initramfs-tools, fdisk "
					 "and e2fsprogs to packages (include ab-boot.yaml)");
	strbuf_release(&missing);
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
	int r = scrub_host(c, t);

	if (r == 0)
		r = apply_users(c, t);

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
	if (r == 0)
		r = release_apply(c, t);
	if (r == 0 && recipe_get(c->r, "disk"))
		r = boot_needs(c, t);
	if (r == 0)
		agent_needs(t);
	if (r == 0 && recipe_get(c->r, "disk"))
		r = kernel_links(c, t);
	if (r == 0)
		r = scrub(c, t);
	strbuf_release(&err);
	return r;
}
