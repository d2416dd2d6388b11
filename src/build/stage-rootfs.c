/* SPDX-License-Identifier: MIT */
/*
 * The rootfs stage: the base's tree with the recipe applied, written as
 * ext4, and beside it in the cache the list of packages and files the
 * registry records (so that a cache hit needs no tree).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/keys.h"
#include "build/archive.h"
#include "build/stage.h"
#include "core/hash.h"
#include "fs/dpkg.h"
#include "fs/ext4.h"
#include "fs/tree.h"
#include "store/cache.h"
#include "store/registry.h"

/* --- the metadata kept next to a cached rootfs: packages and files ------- */

static void tsv_field(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == '\t' || *s == '\n' || *s == '%' || *s == '\r')
			strbuf_addf(sb, "%%%02X", (unsigned char)*s);
		else
			strbuf_addch(sb, *s);
	}
}

static char *tsv_unescape(const char *s)
{
	struct strbuf sb = STRBUF_INIT;

	for (; *s; s++) {
		unsigned v;
		if (*s == '%' && sscanf(s + 1, "%2X", &v) == 1) {
			strbuf_addch(&sb, (char)v);
			s += 2;
		} else {
			strbuf_addch(&sb, *s);
		}
	}
	return strbuf_detach(&sb);
}

static void walk_files(struct tree *t, struct tree_node *n, struct strbuf *out)
{
	struct tree_node **kids = NULL;
	size_t nk = 0, i;

	tree_sorted_children(n, &kids, &nk);
	for (i = 0; i < nk; i++) {
		struct tree_inode *ino = kids[i]->inode;
		_cleanup_free_ char *path = tree_node_path(kids[i]);
		char hex[SHA256_HEX_LEN] = "";

		if (!ino)
			continue;
		if (S_ISREG(ino->mode))
			hex_encode(ino->digest, SHA256_LEN, hex);
		else if (S_ISLNK(ino->mode))
			sha256_hex(ino->symlink, strlen(ino->symlink), hex);
		strbuf_addstr(out, "F\t");
		tsv_field(out, path);
		strbuf_addf(out, "\t%s\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu32 "\t%" PRIu64 "\n",
			    hex[0] ? hex : "-", ino->mode, ino->uid, ino->gid,
			    S_ISREG(ino->mode) ? ino->size : 0);
		if (S_ISDIR(ino->mode))
			walk_files(t, kids[i], out);
	}
	free(kids);
}

static int make_meta(struct build_ctx *c, struct tree *t, struct strbuf *out)
{
	struct strbuf err = STRBUF_INIT;
	struct dpkg_package *pkgs = NULL;
	_cleanup_free_ char *status = NULL;
	size_t len = 0, n = 0, i;
	int r;

	r = tree_read_content(t, "/var/lib/dpkg/status", 256 << 20, &status, &len, &err);
	if (r == 0) {
		dpkg_parse_status(status, len, &pkgs, &n);
		for (i = 0; i < n; i++) {
			strbuf_addstr(out, "P\t");
			tsv_field(out, pkgs[i].name);
			strbuf_addch(out, '\t');
			tsv_field(out, pkgs[i].version);
			strbuf_addch(out, '\t');
			tsv_field(out, pkgs[i].arch);
			strbuf_addch(out, '\n');
		}
		dpkg_packages_free(pkgs, n);
	} else {
		build_step(c, "rootfs: no /var/lib/dpkg/status in the image: no package list");
	}
	/* The epoch the image was built with: a later build reusing it reports this one. */
	strbuf_addf(out, "E\t%" PRId64 "\n", c->epoch);
	walk_files(t, tree_root(t), out);
	strbuf_release(&err);
	return 0;
}

static void meta_key(const char *rootfs_key, char out[SHA256_HEX_LEN])
{
	struct sha256 *h = sha256_new();

	sha256_update_str(h, "imgforge-rootfs-meta");
	sha256_update_str(h, rootfs_key);
	sha256_final_hex(h, out);
	sha256_free(h);
}

static int load_meta(struct build_ctx *c, const char *path)
{
	_cleanup_free_ char *buf = NULL;
	char *line, *save = NULL;
	size_t len;
	int r;

	r = read_file(path, 1 << 30, &buf, &len);
	if (r < 0)
		return build_fail(c, r, "cannot read the cached file list '%s': %s", path, strerror(-r));
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *f[8];
		int nf = 0;
		char *p = line, *tab;

		while (nf < 8) {
			f[nf++] = p;
			tab = strchr(p, '\t');
			if (!tab)
				break;
			*tab = '\0';
			p = tab + 1;
		}
		if (f[0][0] == 'E' && nf == 2) {
			c->epoch = strtoll(f[1], NULL, 10);
		} else if (f[0][0] == 'P' && nf == 4) {
			_cleanup_free_ char *a = tsv_unescape(f[1]), *b = tsv_unescape(f[2]),
					    *d = tsv_unescape(f[3]);
			registry_build_add_package(c->rec, a, b, d);
		} else if (f[0][0] == 'F' && nf == 7) {
			_cleanup_free_ char *a = tsv_unescape(f[1]);
			registry_build_add_file(c->rec, a, strcmp(f[2], "-") ? f[2] : "",
						(uint32_t)strtoul(f[3], NULL, 10),
						(uint32_t)strtoul(f[4], NULL, 10),
						(uint32_t)strtoul(f[5], NULL, 10),
						strtoull(f[6], NULL, 10));
		}
	}
	return 0;
}

/*
 * The rootfs key hashed the overlays and file sources when the build started;
 * ext4_write() read them minutes later, after the base stage. Hash them again
 * now that they have been read: an edit in between would otherwise be cached
 * under the key of the old content. (An edit made and undone again while ext4
 * reads would pass; nothing short of a copy of the inputs closes that.)
 */
static int inputs_unchanged(struct build_ctx *c)
{
	struct stage_keys now;
	struct diags d = { 0 };
	int r = keys_compute_archive(c->r, c->archive ? c->archive->digest : NULL, &now, &d);

	if (r < 0)
		r = build_fail(c, r, "rootfs: the inputs cannot be read again: %s",
			       d.n ? d.v[0].msg : strerror(-r));
	else if (strcmp(now.base, c->keys->base))
		r = build_fail(c, -ESTALE,
			       "rootfs: what the base stage depends on (mmdebstrap, its keyring) "
			       "changed during the build; nothing was cached: run the build again");
	else if (strcmp(now.rootfs, c->keys->rootfs))
		r = build_fail(c, -ESTALE,
			       "rootfs: an overlay or file source changed while the build read it "
			       "(key %.12s when the build started, %.12s now); nothing was cached: "
			       "run the build again",
			       c->keys->rootfs, now.rootfs);
	diags_release(&d);
	return r;
}

int stage_rootfs_run(struct build_ctx *c, const char *base_path, char **ret_path)
{
	struct strbuf err = STRBUF_INIT, meta = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL, *mtmp = NULL, *meta_path = NULL;
	struct ext4_opts eo = EXT4_OPTS_INIT;
	char mkey[SHA256_HEX_LEN];
	struct tree *t = NULL;
	int64_t ts;
	uint64_t size = 0;
	const char *sz;
	int r;

	meta_key(c->keys->rootfs, mkey);
	r = build_lookup(c, "rootfs", c->keys->rootfs, ret_path);
	if (r < 0)
		return r;
	if (r > 0) {
		/* The rootfs is a hit only with its package and file lists. */
		r = cache_lookup(c->cache, mkey, CACHE_VERIFY_HASH, &meta_path, &err);
		if (r > 0)
			build_remote_push(c, "meta", mkey, meta_path, true);
		else if (r == 0 && (r = build_remote_lookup(c, "meta", mkey, &meta_path)) < 0) {
			free(*ret_path);
			*ret_path = NULL;
			strbuf_release(&err);
			return r;
		}
		if (r > 0) {
			build_step(c, "rootfs: cached (%.12s)", c->keys->rootfs);
			r = load_meta(c, meta_path);
			strbuf_release(&err);
			return r < 0 ? r : 1;
		}
		free(*ret_path);
		*ret_path = NULL;
		if (r < 0)
			goto cache_error;
		if (err.len)
			build_step(c, "rootfs: cache entry dropped: %s", err.buf);
		strbuf_reset(&err);
	}

	ts = monotonic_ms();
	t = tree_new();
	tree_set_default_mtime(t, c->epoch);
	build_step(c, "rootfs: reading the base");
	r = tree_add_archive(t, base_path, &err);
	if (r < 0) {
		r = build_fail(c, r, "rootfs: %s", err.buf);
		goto out;
	}
	r = rootfs_apply_recipe(c, t);
	if (r < 0)
		goto out;

	r = cache_tmpfile(c->cache, "rootfs", &tmp, &err);
	if (r < 0)
		goto cache_error;
	sz = recipe_get_str(c->r, "rootfs.size", "auto");
	if (strcmp(sz, "auto"))
		parse_size(sz, &eo.size);
	eo.headroom_percent = (unsigned)atoi(recipe_get_str(c->r, "rootfs.headroom", "15"));
	eo.label = recipe_get_str(c->r, "rootfs.label", "root");
	eo.epoch = c->epoch;
	/* The identity of the filesystem across versions (docs/mkfs.md): no content in it. */
	eo.lineage = recipe_get_str(c->r, "update.lineage", recipe_get_str(c->r, "image", ""));
	if (!*eo.lineage)
		eo.lineage = NULL;
	build_step(c, "rootfs: writing ext4");
	r = ext4_write(t, tmp, &eo, &size, &err);
	if (r < 0) {
		r = build_fail(c, r, "rootfs: %s", err.buf);
		goto out;
	}
	{
		char a[32];
		build_step(c, "rootfs: %s ext4 written in %.1f s", format_size(size, a, sizeof(a)),
		     seconds_since(ts));
	}
	r = inputs_unchanged(c);
	if (r < 0)
		goto out;
	make_meta(c, t, &meta);
	r = cache_tmpfile(c->cache, "meta", &mtmp, &err);
	if (r < 0)
		goto cache_error;
	/* Into the file cache_tmpfile() made and locked, not a new one renamed over it. */
	{
		int fd = open(mtmp, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);

		r = fd < 0 ? -errno : write_all(fd, meta.buf ? meta.buf : "", meta.len);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		if (fd >= 0 && close(fd) < 0 && r == 0)
			r = -errno;
	}
	if (r < 0) {
		r = build_fail(c, r, "cannot write '%s': %s", mtmp, strerror(-r));
		goto out;
	}
	r = build_store(c, "rootfs", c->keys->rootfs, tmp, ret_path);
	if (r < 0)
		goto out;
	r = cache_store(c->cache, mkey, "meta", mtmp, &meta_path, NULL, &err);
	if (r < 0)
		goto cache_error;
	build_remote_push(c, "meta", mkey, meta_path, false);
	r = load_meta(c, meta_path);
	goto out;
cache_error:
	r = build_fail(c, r, "cache: %s", err.buf);
out:
	tree_free(t);
	strbuf_release(&meta);
	strbuf_release(&err);
	return r;
}
