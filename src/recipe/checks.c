/* SPDX-License-Identifier: MIT */
/* Checks of the resolved recipe across keys: base kind, files, overlays, disk layout. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recipe/recipe-internal.h"

/* ------------------------------------------------------------------------ */
/* whole-recipe checks after resolution */

static const struct ypos *key_pos(const struct ynode *map, const char *key)
{
	ssize_t i = ynode_map_index(map, key);
	return i < 0 ? &map->pos : &map->kpos[i];
}

static uint64_t size_or(const struct ynode *map, const char *key, uint64_t def)
{
	const struct ynode *n = ynode_map_get(map, key);
	uint64_t v;

	if (!n || n->kind != YNODE_SCALAR || parse_size(n->str, &v) < 0)
		return def;
	return v;
}

/* outputs: are written from the disk, each once. */
static void check_outputs(const struct ynode *root, struct diags *d)
{
	const struct ynode *list = ynode_map_get(root, "outputs");
	size_t i, j;

	if (!list || list->kind != YNODE_SEQ)
		return;
	if (list->n && !ynode_map_get(root, "disk")) {
		diags_add(d, &list->pos,
			  "outputs: are written from the disk, and the image has no disk: section; "
			  "add one, or remove outputs:");
		return;
	}
	for (i = 0; i < list->n; i++)
		for (j = 0; j < i; j++)
			if (list->v[i]->str && list->v[j]->str &&
			    !strcmp(list->v[i]->str, list->v[j]->str)) {
				diags_add(d, &list->v[i]->pos, "outputs: '%s' is listed twice",
					  list->v[i]->str);
				break;
			}
}

static void check_disk(const struct ynode *root, struct diags *d)
{
	const struct ynode *disk = ynode_map_get(root, "disk");
	const struct ynode *rootfs = ynode_map_get(root, "rootfs");
	uint64_t size, root_size, data, esp, need, fs;
	char a[32];
	bool over;

	/* A fixed root filesystem size must fit its slot. */
	if (disk && disk->kind == YNODE_MAP && rootfs && rootfs->kind == YNODE_MAP &&
	    (fs = size_or(rootfs, "size", 0)) && (root_size = size_or(disk, "root_size", 0)) &&
	    fs > root_size)
		diags_add(d, &ynode_map_get(rootfs, "size")->pos,
			  "rootfs.size %s is larger than its slot (disk.root_size %s): raise "
			  "root_size to at least %s",
			  ynode_map_get(rootfs, "size")->str, ynode_map_get(disk, "root_size")->str,
			  format_size(fs, a, sizeof(a)));

	if (!disk || disk->kind != YNODE_MAP || !ynode_map_get(disk, "size"))
		return;
	size = size_or(disk, "size", 0);
	root_size = size_or(disk, "root_size", 0);
	data = size_or(disk, "data_size", 0);
	esp = size_or(disk, "esp_size", 128ULL << 20);
	if (!size)
		return;
	/*
	 * 1 MiB before the first partition, BIOS boot 1 MiB, backup GPT 1 MiB.
	 * Each size is below 2^64 on its own, their sum need not be: checked.
	 */
	over = __builtin_mul_overflow(root_size, 2, &need) ||
	       __builtin_add_overflow(need, esp, &need) ||
	       __builtin_add_overflow(need, data, &need) ||
	       __builtin_add_overflow(need, 3ULL << 20, &need);
	if (over || need > size)
		diags_add(d, &ynode_map_get(disk, "size")->pos,
			  "disk size %s is too small: the partitions need %s%s (1 MiB BIOS boot + "
			  "%s ESP + 2 x %s root slots + %s data + 2 MiB for the partition tables)",
			  ynode_map_get(disk, "size")->str, over ? "more than " : "",
			  over ? "16 EiB" : format_size(need, a, sizeof(a)),
			  ynode_map_get(disk, "esp_size") ? ynode_map_get(disk, "esp_size")->str
							  : "128M",
			  ynode_map_get(disk, "root_size") ? ynode_map_get(disk, "root_size")->str
							   : "0",
			  ynode_map_get(disk, "data_size") ? ynode_map_get(disk, "data_size")->str
							   : "0");
}

/*
 * A file source is read whole at build time and hashed by plan: it must be
 * a readable regular file. stat() alone decides, without opening: opening
 * a FIFO blocks, reading /dev/zero never ends.
 */
static void check_source(const struct ynode *source, struct diags *d)
{
	char ex[RECIPE_EXCERPT_SIZE];
	struct stat st;

	if (stat(source->abspath, &st) < 0 || access(source->abspath, R_OK) < 0)
		diags_add(d, &source->pos, "cannot read source '%s': %s",
			  recipe_excerpt(source->str, ex), strerror(errno));
	else if (!S_ISREG(st.st_mode))
		diags_add(d, &source->pos, "source '%s' is not a regular file (%s)",
			  recipe_excerpt(source->str, ex), load_kind_name(st.st_mode));
}

static void check_files(const struct ynode *root, struct diags *d)
{
	const struct ynode *files = ynode_map_get(root, "files");
	size_t i;

	if (!files || files->kind != YNODE_SEQ)
		return;
	for (i = 0; i < files->n; i++) {
		const struct ynode *f = files->v[i];
		const struct ynode *type, *content, *source, *target;
		const char *t;

		if (f->kind != YNODE_MAP)
			continue;
		if (!ynode_map_get(f, "path")) {
			diags_add(d, &f->pos, "file entry needs 'path:'");
			continue;
		}
		type = ynode_map_get(f, "type");
		t = type ? type->str : "file";
		content = ynode_map_get(f, "content");
		source = ynode_map_get(f, "source");
		target = ynode_map_get(f, "target");
		if (!strcmp(t, "file") && !!content == !!source)
			diags_add(d, &f->pos, "file '%s' needs exactly one of 'content:' or 'source:'",
				  ynode_map_get(f, "path")->str);
		if (!strcmp(t, "symlink") && !target)
			diags_add(d, &f->pos, "symlink '%s' needs 'target:'",
				  ynode_map_get(f, "path")->str);
		if (strcmp(t, "symlink") && target)
			diags_add(d, key_pos(f, "target"), "'target:' is only for type: symlink");
		if (strcmp(t, "file") && (content || source))
			diags_add(d, key_pos(f, content ? "content" : "source"),
				  "'%s:' is only for type: file", content ? "content" : "source");
		if (source && source->abspath)
			check_source(source, d);
	}
}

static bool is_uri(const char *s)
{
	return str_startswith(s, "http://") || str_startswith(s, "https://") ||
	       str_startswith(s, "file:///");
}

/* A snapshot date as snapshot archives name them: YYYYMMDDTHHMMSSZ. */
static bool valid_snapshot(const char *s)
{
	size_t i;

	if (strlen(s) != 16 || s[8] != 'T' || s[15] != 'Z')
		return false;
	for (i = 0; i < 15; i++)
		if (i != 8 && (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

/* base.mirror, security_mirror, snapshot and the extra sources of a package base. */
static void check_sources(const struct ynode *base, struct diags *d)
{
	static const char *const mirrors[] = { "mirror", "security_mirror" };
	const struct ynode *srcs = ynode_map_get(base, "sources");
	const struct ynode *snap = ynode_map_get(base, "snapshot");
	size_t i;

	for (i = 0; i < ARRAY_SIZE(mirrors); i++) {
		const struct ynode *m = ynode_map_get(base, mirrors[i]);
		char ex[RECIPE_EXCERPT_SIZE];

		if (m && m->kind == YNODE_SCALAR && *m->str && !is_uri(m->str))
			diags_add(d, &m->pos,
				  "invalid %s '%s': expected an http://, https:// or file:/// URL "
				  "of a Debian archive",
				  mirrors[i], recipe_excerpt(m->str, ex));
	}
	if (snap && snap->kind == YNODE_SCALAR && !valid_snapshot(snap->str))
		diags_add(d, &snap->pos,
			  "invalid snapshot '%s': expected a UTC time like 20250520T000000Z",
			  snap->str);
	for (i = 0; srcs && srcs->kind == YNODE_SEQ && i < srcs->n; i++) {
		const struct ynode *s = srcs->v[i];
		const struct ynode *uri = ynode_map_get(s, "uri");
		const struct ynode *suites = ynode_map_get(s, "suites");

		if (s->kind != YNODE_MAP)
			continue;
		if (!uri || uri->kind != YNODE_SCALAR)
			diags_add(d, &s->pos, "a source needs 'uri:' (the archive's URL)");
		else if (!is_uri(uri->str))
			diags_add(d, &uri->pos,
				  "invalid source uri '%s': expected an http://, https:// or "
				  "file:/// URL",
				  uri->str);
		if (!suites || suites->kind != YNODE_SEQ || !suites->n)
			diags_add(d, &s->pos, "a source needs 'suites:' (a list, like [stable])");
	}
}

static void check_base(const struct ynode *root, struct diags *d)
{
	const struct ynode *base = ynode_map_get(root, "base");
	const struct ynode *tarball, *pkgs, *bpkgs;

	if (!base || base->kind != YNODE_MAP) {
		diags_add(d, &root->pos,
			  "no 'base:': give a package base (distro, suite) or a tarball (tarball, "
			  "sha256)");
		return;
	}
	tarball = ynode_map_get(base, "tarball");
	pkgs = ynode_map_get(root, "packages");
	bpkgs = ynode_map_get(base, "packages");
	if (tarball) {
		static const char *const pkg_only[] = { "distro",	   "suite",
							"suites",	   "mirror",
							"security_mirror", "sources",
							"snapshot",	   "components",
							"keyring",	   "variant" };
		size_t i;
		if (!ynode_map_get(base, "sha256"))
			diags_add(d, key_pos(base, "tarball"),
				  "a tarball base needs 'sha256:' so that the download can be "
				  "verified");
		if (pkgs && pkgs->n)
			diags_add(d, key_pos(root, "packages"),
				  "'packages' needs a package base: a tarball base is used as it "
				  "is; add files with overlays, or build a new tarball");
		if (bpkgs && bpkgs->n)
			diags_add(d, key_pos(base, "packages"),
				  "'base.packages' needs a package base (distro, suite), not a "
				  "tarball");
		for (i = 0; i < ARRAY_SIZE(pkg_only); i++)
			if (ynode_map_get(base, pkg_only[i]))
				diags_add(d, key_pos(base, pkg_only[i]),
					  "'%s' is for package bases; this base is a tarball",
					  pkg_only[i]);
		return;
	}
	if (!ynode_map_get(base, "distro"))
		diags_add(d, &base->pos, "base needs 'distro:' (debian or ubuntu) or 'tarball:'");
	if (!ynode_map_get(base, "suite"))
		diags_add(d, &base->pos, "base needs 'suite:' (like bookworm or noble)");
	if (ynode_map_get(base, "sha256"))
		diags_add(d, key_pos(base, "sha256"), "'sha256' is for tarball bases");
	check_sources(base, d);
}

static void check_overlays(const struct ynode *root, struct diags *d)
{
	const struct ynode *ov = ynode_map_get(root, "overlays");
	size_t i;

	if (!ov || ov->kind != YNODE_SEQ)
		return;
	for (i = 0; i < ov->n; i++) {
		const struct ynode *src = ov->v[i];
		struct stat st;

		if (src->kind == YNODE_MAP)
			src = ynode_map_get(src, "source");
		if (!src || !src->abspath)
			continue;
		if (stat(src->abspath, &st) < 0)
			diags_add(d, &src->pos, "overlay '%s': %s", src->str, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			diags_add(d, &src->pos, "overlay '%s' is not a directory", src->str);
	}
}

/*
 * users: every entry has a name, no name or explicit uid twice. A later
 * file's entry with the same name replaces an earlier one when merging
 * (like files: by path), so a duplicate here is within one file.
 */
static void check_users(const struct ynode *root, struct diags *d)
{
	const struct ynode *users = ynode_map_get(root, "users");
	size_t i, j;

	if (!users || users->kind != YNODE_SEQ)
		return;
	for (i = 0; i < users->n; i++) {
		const struct ynode *u = users->v[i], *name, *uid;

		if (u->kind != YNODE_MAP)
			continue;
		name = ynode_map_get(u, "name");
		uid = ynode_map_get(u, "uid");
		for (j = 0; j < 2; j++) {
			const struct ynode *p = ynode_map_get(u, j ? "home" : "shell");
			const char *c;

			for (c = p && p->kind == YNODE_SCALAR ? p->str : ""; *c; c++)
				if ((unsigned char)*c <= ' ' || *c == ':' || *c == 0x7f)
					break;
			if (p && *c)
				diags_add(d, &p->pos,
					  "'%s' cannot hold spaces, ':' or control characters: it is a "
					  "field of /etc/passwd",
					  j ? "home" : "shell");
		}
		if (!name) {
			diags_add(d, &u->pos, "user entry needs 'name:'");
			continue;
		}
		for (j = 0; j < i; j++) {
			const struct ynode *o = users->v[j], *oname, *ouid;

			if (o->kind != YNODE_MAP)
				continue;
			oname = ynode_map_get(o, "name");
			ouid = ynode_map_get(o, "uid");
			if (oname && !strcmp(oname->str, name->str)) {
				diags_add(d, &name->pos, "user '%s' is defined twice (first at %s:%d)",
					  name->str, oname->pos.file, oname->pos.line);
				break;
			}
			if (uid && ouid && !strcmp(uid->str, ouid->str)) {
				diags_add(d, &uid->pos,
					  "uid %s is given to both '%s' and '%s' (at %s:%d)", uid->str,
					  oname ? oname->str : "?", name->str, ouid->pos.file,
					  ouid->pos.line);
				break;
			}
		}
	}
}

/*
 * A disk boots slot A with a try counter (boot.tries): unless the booted
 * system marks the slot good, GRUB falls back after that many boots. The
 * services that do it, and the fstab that mounts /data, come with
 * recipes/ab-boot.yaml (package bases) or recipes/ab-boot-files.yaml
 * (tarball bases: files only). A disk without them is refused here, at the
 * 'disk:' key, rather than built to fail on its fourth boot (docs/boot.md).
 */
static const char *const boot_services[] = { "imgforge-mark-good.service",
					     "imgforge-grow-data.service" };

static bool enabled(const struct ynode *root, const char *unit)
{
	const struct ynode *svc = ynode_map_get(root, "services");
	const struct ynode *en = NULL;
	size_t i;

	if (svc && svc->kind == YNODE_MAP)
		en = ynode_map_get(svc, "enable");
	for (i = 0; en && en->kind == YNODE_SEQ && i < en->n; i++)
		if (en->v[i]->kind == YNODE_SCALAR && !strcmp(en->v[i]->str, unit))
			return true;
	return false;
}

void checks_boot_support(const struct ynode *root, struct diags *d)
{
	const struct ynode *base = ynode_map_get(root, "base");
	bool tarball = base && base->kind == YNODE_MAP && ynode_map_get(base, "tarball");
	size_t i;

	if (!ynode_map_get(root, "disk"))
		return;
	for (i = 0; i < ARRAY_SIZE(boot_services); i++)
		if (!enabled(root, boot_services[i]))
			break;
	if (i == ARRAY_SIZE(boot_services))
		return;
	diags_add(d, key_pos(root, "disk"),
		  "a disk image needs imgforge's boot support: %s is not enabled, so no boot "
		  "would mark the slot good (GRUB falls back after boot.tries boots) and /data "
		  "would not be mounted: add 'include: [%s]' (imgforge's recipes/, found by name "
		  "through -I, $IMGFORGE_PATH or the installed recipes)%s",
		  boot_services[i], tarball ? "ab-boot-files.yaml" : "ab-boot.yaml",
		  tarball ? "; the tarball must bring a kernel, an initramfs, sfdisk, partx, "
			    "e2fsck and resize2fs"
			  : "");
}

/*
 * update: the agent trusts only the keyring baked into the image, so one is
 * needed; the channel is a URL the agent fetches; the schedule lands in a
 * systemd unit, one line: no control characters. Each needs the A/B disk.
 */
static void check_update(const struct ynode *root, struct diags *d)
{
	const struct ynode *u = ynode_map_get(root, "update");
	const struct ynode *keyring, *channel, *schedule;
	const char *c;

	if (!u || u->kind != YNODE_MAP)
		return;
	keyring = ynode_map_get(u, "keyring");
	if (!keyring || keyring->kind != YNODE_SEQ || !keyring->n)
		diags_add(d, key_pos(root, "update"),
			  "update: needs 'keyring:', the certificates (PEM) bundles must be signed "
			  "with: make one with 'imgforge keygen -o keys' and add "
			  "'keyring: [keys/signing.crt]'");
	/* Found now, not at the end of a long build. */
	for (size_t i = 0; keyring && keyring->kind == YNODE_SEQ && i < keyring->n; i++) {
		const struct ynode *k = keyring->v[i];
		char ex[RECIPE_EXCERPT_SIZE];
		struct stat st;

		if (!k->abspath)
			continue;
		if (stat(k->abspath, &st) < 0)
			diags_add(d, &k->pos,
				  "update.keyring '%s': %s: make the release key with 'imgforge "
				  "keygen -o DIR' and name its DIR/signing.crt here",
				  recipe_excerpt(k->str, ex), strerror(errno));
		else if (!S_ISREG(st.st_mode))
			diags_add(d, &k->pos, "update.keyring '%s' is not a regular file (%s)",
				  recipe_excerpt(k->str, ex), load_kind_name(st.st_mode));
	}
	channel = ynode_map_get(u, "channel");
	if (channel && channel->kind == YNODE_SCALAR && !str_startswith(channel->str, "http://") &&
	    !str_startswith(channel->str, "https://") && !str_startswith(channel->str, "file://"))
		diags_add(d, &channel->pos,
			  "update.channel '%s' is not an http://, https:// or file:// URL (of the "
			  "directory that holds channels.json, or of channels.json itself)",
			  channel->str);
	schedule = ynode_map_get(u, "schedule");
	for (c = schedule && schedule->kind == YNODE_SCALAR ? schedule->str : ""; *c; c++)
		if ((unsigned char)*c < ' ' || *c == 0x7f)
			break;
	if (schedule && (*c || !*schedule->str))
		diags_add(d, &schedule->pos,
			  "update.schedule must be one systemd calendar expression (OnCalendar=, "
			  "such as daily or '*-*-* 04:00:00'), without control characters");
	if (!ynode_map_get(root, "disk"))
		diags_add(d, key_pos(root, "update"),
			  "update: needs an A/B disk ('disk:' and 'include: [ab-boot.yaml]'): "
			  "updates are written into the slot that is not running");
}

void checks_run(const struct ynode *root, struct diags *d)
{
	check_update(root, d);
	check_base(root, d);
	check_files(root, d);
	check_overlays(root, d);
	check_disk(root, d);
	check_outputs(root, d);
	check_users(root, d);
}
