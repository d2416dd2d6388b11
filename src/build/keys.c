/* SPDX-License-Identifier: MIT */
/*
 * Stage keys: what each build stage depends on, hashed. The recipe module
 * describes the image; the build layer decides what a stage's inputs are.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/keys.h"
#include "core/hash.h"

/*
 * Bump when the meaning of a stage's inputs or the bytes of its output change for the
 * same inputs (docs/cache.md): old cache entries then miss. tests/e2e/t3050-stage-format.sh
 * fails when the output changes without a bump.
 */
#define STAGE_FORMAT_VERSION "6"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Hash a host directory tree by content: every entry's relative path, type,
 * permission bits, size, symlink target and file content, in byte order.
 * mtimes are left out: overlays come from git checkouts, whose mtimes say
 * nothing about content (imgforge clamps them at build time anyway).
 */
static int hash_tree(struct sha256 *h, const char *root, const char *rel, int depth)
{
	_cleanup_free_ char *path = rel[0] ? path_join(root, rel) : xstrdup(root);
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	struct dirent *de;
	DIR *dir;
	int r = 0;

	if (depth > 256)
		return -ELOOP;
	dir = opendir(path);
	if (!dir)
		return -errno;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		GROW(names, alloc, n + 1);
		names[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n && r == 0; i++) {
		_cleanup_free_ char *sub = rel[0] ? path_join(rel, names[i]) : xstrdup(names[i]);
		_cleanup_free_ char *full = path_join(root, sub);
		struct stat st;

		if (lstat(full, &st) < 0) {
			r = -errno;
			break;
		}
		sha256_update_str(h, sub);
		sha256_update_u64(h, st.st_mode);
		if (S_ISREG(st.st_mode)) {
			char hex[SHA256_HEX_LEN];
			r = sha256_file(full, hex, NULL);
			sha256_update_str(h, hex);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t len = readlink(full, target, sizeof(target) - 1);
			if (len < 0) {
				r = -errno;
				break;
			}
			target[len] = '\0';
			sha256_update_str(h, target);
		} else if (S_ISDIR(st.st_mode)) {
			r = hash_tree(h, root, sub, depth + 1);
		} else {
			sha256_update_u64(h, st.st_rdev);
		}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/*
 * The tools a stage runs are inputs too: their bytes are hashed (a version
 * string can stay the same across rebuilds of a package; the bytes cannot).
 * A missing tool hashes as missing; the stage itself reports it.
 */
static void hash_tool(struct sha256 *h, const char *path)
{
	char hex[SHA256_HEX_LEN];

	sha256_update_str(h, path);
	if (sha256_file(path, hex, NULL) < 0)
		sha256_update_str(h, "missing");
	else
		sha256_update_str(h, hex);
}

/* A value is hashed as its canonical JSON: two spellings of one value give one key. */
static void hash_json(struct sha256 *h, const char *dotted, const struct ynode *n)
{
	struct strbuf sb = STRBUF_INIT;

	recipe_value_json(dotted, n, &sb);
	sha256_update_str(h, strbuf_str(&sb));
	strbuf_release(&sb);
}

static void hash_key(struct sha256 *h, const struct recipe *r, const char *key)
{
	const struct ynode *n = ynode_map_get(r->root, key);

	sha256_update_str(h, key);
	hash_json(h, key, n);
}

/* Hash the contents behind every host path in a subtree. */
static int hash_paths(struct sha256 *h, const struct ynode *n, struct diags *d)
{
	size_t i;
	int r;

	if (n->kind == YNODE_SCALAR) {
		struct stat st;
		char hex[SHA256_HEX_LEN];

		if (!n->abspath)
			return 0;
		if (stat(n->abspath, &st) < 0) {
			r = -errno;
			diags_add(d, &n->pos, "cannot read '%s': %s", n->str, strerror(errno));
			return r;
		}
		if (S_ISDIR(st.st_mode)) {
			r = hash_tree(h, n->abspath, "", 0);
		} else if (!S_ISREG(st.st_mode)) {
			/* A device or FIFO would be read forever or block: refuse it unopened. */
			r = -EINVAL;
			diags_add(d, &n->pos, "cannot hash '%s': not a regular file or directory",
				  n->str);
			return r;
		} else {
			r = sha256_file(n->abspath, hex, NULL);
			if (r == 0)
				sha256_update_str(h, hex);
		}
		if (r < 0)
			diags_add(d, &n->pos, "cannot hash '%s': %s", n->str, strerror(-r));
		return r;
	}
	for (i = 0; i < n->n; i++) {
		r = hash_paths(h, n->v[i], d);
		if (r < 0)
			return r;
	}
	return 0;
}

int keys_compute(const struct recipe *r, struct stage_keys *ret, struct diags *d)
{
	return keys_compute_archive(r, NULL, ret, d);
}

int keys_compute_archive(const struct recipe *r, const char *archive_state,
			 struct stage_keys *ret, struct diags *d)
{
	struct sha256 *h = sha256_new();
	const struct ynode *base = ynode_map_get(r->root, "base");
	const struct ynode *pkgs = ynode_map_get(r->root, "packages");
	struct stage_keys k;
	char **names = NULL;
	size_t n = 0, alloc = 0, i;
	int rr = 0;

	/* base: the base description, the union of package lists (order does not
	 * matter to the package manager), the tool that builds it. */
	sha256_update_str(h, "imgforge-stage-base-" STAGE_FORMAT_VERSION);
	if (base) {
		const struct ynode *bp = ynode_map_get(base, "packages");
		for (i = 0; i < base->n; i++) {
			/* Where packages come from is not what they are: a mirror
			 * change alone does not invalidate the cache. */
			if (!strcmp(base->k[i], "packages") || !strcmp(base->k[i], "mirror") ||
			    !strcmp(base->k[i], "security_mirror"))
				continue;
			_cleanup_free_ char *dotted = xasprintf("base.%s", base->k[i]);

			sha256_update_str(h, base->k[i]);
			hash_json(h, dotted, base->v[i]);
		}
		for (i = 0; bp && i < bp->n; i++) {
			GROW(names, alloc, n + 1);
			names[n++] = bp->v[i]->str;
		}
		if (base->n && ynode_map_get(base, "keyring"))
			rr = hash_paths(h, ynode_map_get(base, "keyring"), d);
		if (rr == 0 && ynode_map_get(base, "sources")) {
			const struct ynode *srcs = ynode_map_get(base, "sources");
			for (i = 0; rr == 0 && i < srcs->n; i++)
				if (ynode_map_get(srcs->v[i], "signed_by"))
					rr = hash_paths(h, ynode_map_get(srcs->v[i], "signed_by"),
							d);
		}
		if (!ynode_map_get(base, "tarball")) {
			hash_tool(h, "/usr/bin/mmdebstrap");
			/* What the archive held when it was checked (build/archive.h). */
			sha256_update_str(h, archive_state ? archive_state : "archive not checked");
		}
	}
	for (i = 0; pkgs && i < pkgs->n; i++) {
		GROW(names, alloc, n + 1);
		names[n++] = pkgs->v[i]->str;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++)
		if (i == 0 || strcmp(names[i], names[i - 1]))
			sha256_update_str(h, names[i]);
	free(names);
	sha256_final_hex(h, k.base);

	/* rootfs: base + everything imgforge adds on top, by content. */
	sha256_update_str(h, "imgforge-stage-rootfs-" STAGE_FORMAT_VERSION);
	sha256_update_str(h, k.base);
	hash_key(h, r, "overlays");
	hash_key(h, r, "files");
	hash_key(h, r, "remove");
	hash_key(h, r, "services");
	hash_key(h, r, "rootfs");
	/* /etc/imgforge/release names the image and its version (build/release.c);
	 * update: adds the agent's configuration and keyring. */
	hash_key(h, r, "image");
	hash_key(h, r, "version");
	if (ynode_map_get(r->root, "update"))
		hash_key(h, r, "update");
	/* Hashed only when it adds someone: the keys of recipes without users:
	 * stay as they were before the key existed (the output is the same). */
	if (ynode_map_get(r->root, "users") && ynode_map_get(r->root, "users")->n)
		hash_key(h, r, "users");
	/* A bootable image's root filesystem gets /boot/vmlinuz and /boot/initrd.img
	 * links (and must have a kernel): it differs from the same tree without a disk. */
	sha256_update_str(h, ynode_map_get(r->root, "disk") ? "bootable" : "not bootable");
	if (rr == 0 && ynode_map_get(r->root, "overlays"))
		rr = hash_paths(h, ynode_map_get(r->root, "overlays"), d);
	if (rr == 0 && ynode_map_get(r->root, "files"))
		rr = hash_paths(h, ynode_map_get(r->root, "files"), d);
	if (rr == 0 && ynode_map_get(r->root, "update"))
		rr = hash_paths(h, ynode_map_get(r->root, "update"), d);
	sha256_final_hex(h, k.rootfs);

	/* disk: rootfs + layout and boot settings. */
	sha256_update_str(h, "imgforge-stage-disk-" STAGE_FORMAT_VERSION);
	sha256_update_str(h, k.rootfs);
	hash_key(h, r, "disk");
	hash_key(h, r, "boot");
	hash_tool(h, "/usr/bin/grub-mkimage");
	hash_tool(h, "/usr/lib/grub/x86_64-efi/kernel.img");
	hash_tool(h, "/usr/lib/grub/i386-pc/kernel.img");
	hash_tool(h, "/usr/lib/grub/i386-pc/boot.img");
	sha256_final_hex(h, k.disk);
	sha256_free(h);

	if (rr < 0)
		return rr;
	*ret = k;
	return 0;
}


static void stage_list(const struct stage_keys *k, struct recipe_stage ret[3])
{
	ret[0] = (struct recipe_stage){ "base", k->base };
	ret[1] = (struct recipe_stage){ "rootfs", k->rootfs };
	ret[2] = (struct recipe_stage){ "disk", k->disk };
}

int keys_print_yaml(const struct recipe *r, const struct stage_keys *k, struct strbuf *out)
{
	struct recipe_stage st[3];

	if (!k)
		return recipe_print_yaml(r, NULL, 0, out);
	stage_list(k, st);
	return recipe_print_yaml(r, st, ARRAY_SIZE(st), out);
}

void keys_print_json(const struct recipe *r, const struct stage_keys *k, struct strbuf *out,
		     bool pretty)
{
	struct recipe_stage st[3];

	if (!k) {
		recipe_print_json(r, NULL, 0, out, pretty);
		return;
	}
	stage_list(k, st);
	recipe_print_json(r, st, ARRAY_SIZE(st), out, pretty);
}
