/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/bootloader.h"
#include "build/disk.h"
#include "fs/ext4.h"
#include "fs/fat.h"
#include "fs/gpt.h"
#include "fs/tree.h"

#define MIB (1ULL << 20)

enum { P_BIOS, P_ESP, P_ROOT_A, P_ROOT_B, P_DATA, NPARTS };

static const char *const part_names[NPARTS] = { "bios", "esp", "root-a", "root-b", "data" };
static const char *const part_types[NPARTS] = { GPT_TYPE_BIOS, GPT_TYPE_ESP, GPT_TYPE_ROOT_X86_64,
						GPT_TYPE_ROOT_X86_64, GPT_TYPE_LINUX_DATA };

static uint64_t round_up(uint64_t v, uint64_t to)
{
	return (v + to - 1) / to * to;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

int disk_layout(const struct disk_opts *o, uint64_t fs, struct disk_layout *ret,
		struct strbuf *err)
{
	struct disk_layout l = { 0 };
	uint64_t root, data, esp, need, pos;
	char a[32], b[32];
	uint8_t g[16];
	int i;

	esp = o->esp_size ? round_up(o->esp_size, MIB) : 128 * MIB;
	data = o->data_size ? round_up(o->data_size, MIB) : 256 * MIB;
	if (o->root_size) {
		root = round_up(o->root_size, MIB);
		if (fs > root) {
			strbuf_addf(err,
				    "the root filesystem is %s but disk.root_size is %s: raise "
				    "root_size to at least %s",
				    format_size(fs, a, sizeof(a)), format_size(root, b, sizeof(b)),
				    format_size(round_up(fs, MIB), a, sizeof(a)));
			return -ENOSPC;
		}
	} else {
		/* Room for updates to grow: half again, at least 256 MiB more. */
		root = fs + fs / 2 > fs + 256 * MIB ? fs + fs / 2 : fs + 256 * MIB;
		root = round_up(root, 64 * MIB);
	}
	need = MIB + MIB + esp + 2 * root + data + MIB;
	if (o->size && o->size < need) {
		strbuf_addf(err,
			    "disk.size %s is too small: the partitions need %s (1 MiB BIOS boot + "
			    "%llu MiB ESP + 2 x %llu MiB root + %llu MiB data + 2 MiB for the "
			    "partition tables)",
			    format_size(o->size, a, sizeof(a)), format_size(need, b, sizeof(b)),
			    (unsigned long long)(esp / MIB), (unsigned long long)(root / MIB),
			    (unsigned long long)(data / MIB));
		return -ENOSPC;
	}
	l.size = o->size ? o->size / MIB * MIB : need;
	pos = MIB;
	l.start[P_BIOS] = pos, l.len[P_BIOS] = MIB, pos += MIB;
	l.start[P_ESP] = pos, l.len[P_ESP] = esp, pos += esp;
	l.start[P_ROOT_A] = pos, l.len[P_ROOT_A] = root, pos += root;
	l.start[P_ROOT_B] = pos, l.len[P_ROOT_B] = root, pos += root;
	l.start[P_DATA] = pos, l.len[P_DATA] = l.size - MIB - pos;
	for (i = 0; i < NPARTS; i++) {
		gpt_guid_derive(o->seed, part_names[i], g);
		gpt_guid_format(g, l.partuuid[i]);
		lower(l.partuuid[i]);
	}
	gpt_guid_derive(o->seed, "esp-volume-id", g);
	snprintf(l.esp_uuid, sizeof(l.esp_uuid), "%02X%02X-%02X%02X", g[3], g[2], g[1], g[0]);
	*ret = l;
	return 0;
}

/* Copy a (sparse) file into the disk at offset, data extents only. */
static int copy_into(int out, uint64_t offset, const char *src, struct strbuf *err)
{
	_cleanup_close_ int in = open(src, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int r;

	if (in < 0 || fstat(in, &st) < 0) {
		strbuf_addf(err, "cannot read '%s': %s", src, strerror(errno));
		return -errno;
	}
	r = copy_sparse(in, (uint64_t)st.st_size, out, offset);
	if (r < 0)
		strbuf_addf(err, "cannot copy '%s' into the disk image: %s", src, strerror(-r));
	return r;
}

static int write_esp(int fd, const struct disk_opts *o, const struct disk_layout *l,
		     struct boot_images *imgs, struct strbuf *err)
{
	struct boot_settings s = { 0 };
	_cleanup_free_ char *cfg = NULL;
	uint8_t env[GRUBENV_SIZE];
	char tries[16];
	const char *names[] = { "ORDER", "A_TRIES", "B_TRIES" };
	const char *values[] = { "A B", "0", tries };
	struct fat_opts fo = { 0 };
	int r;

	memcpy(s.esp_uuid, l->esp_uuid, sizeof(s.esp_uuid));
	memcpy(s.partuuid_a, l->partuuid[P_ROOT_A], 37);
	memcpy(s.partuuid_b, l->partuuid[P_ROOT_B], 37);
	s.part_a = P_ROOT_A + 1;
	s.part_b = P_ROOT_B + 1;
	s.tries = o->tries ? o->tries : 3;
	s.timeout = o->timeout;
	s.cmdline = o->cmdline ? o->cmdline : "console=ttyS0,115200 no_timer_check";

	r = bootloader_images(&s, o->tmpdir, imgs, err);
	if (r < 0)
		return r;
	bootloader_patch_bios(imgs, l->start[P_BIOS] / GPT_SECTOR);
	cfg = bootloader_config(&s);
	/* Slot B is empty: it starts with its tries used up, until an update fills it. */
	snprintf(tries, sizeof(tries), "%u", s.tries);
	r = grubenv_render(names, values, ARRAY_SIZE(names), env);
	if (r < 0) {
		strbuf_addf(err, "the GRUB environment does not fit in %d bytes", GRUBENV_SIZE);
		return r;
	}
	{
		struct fat_file files[] = {
			{ "EFI/BOOT/BOOTX64.EFI", imgs->efi, imgs->efi_len },
			{ "EFI/BOOT/grub.cfg", cfg, strlen(cfg) },
			{ "EFI/BOOT/grubenv", env, sizeof(env) },
			{ "EFI/BOOT/grubenv.bak", env, sizeof(env) },
		};
		fo.size = l->len[P_ESP];
		fo.volume_id = (uint32_t)strtoul(l->esp_uuid, NULL, 16) << 16 |
			       (uint32_t)strtoul(l->esp_uuid + 5, NULL, 16);
		fo.label = "ESP";
		fo.mtime = o->epoch;
		fo.hidden_sectors = (uint32_t)(l->start[P_ESP] / GPT_SECTOR);
		return fat_write(fd, l->start[P_ESP], &fo, files, ARRAY_SIZE(files), err);
	}
}

static int write_data(int fd, const struct disk_opts *o, const struct disk_layout *l,
		      struct strbuf *err)
{
	_cleanup_free_ char *path = path_join(o->tmpdir, "data.ext4");
	struct ext4_opts eo = EXT4_OPTS_INIT;
	struct tree *t = tree_new();
	int r;

	tree_set_default_mtime(t, o->epoch);
	eo.size = l->len[P_DATA];
	eo.label = "data";
	eo.uuid = l->partuuid[P_DATA]; /* the filesystem UUID follows the partition's */
	eo.epoch = o->epoch;
	r = ext4_write(t, path, &eo, NULL, err);
	tree_free(t);
	if (r < 0)
		return r;
	r = copy_into(fd, l->start[P_DATA], path, err);
	unlink(path);
	return r;
}

int disk_write(const struct disk_opts *o, const char *out_path, struct disk_layout *ret,
	       struct strbuf *err)
{
	struct boot_images imgs = { 0 };
	struct disk_layout l;
	struct gpt *g = NULL;
	struct stat st;
	int fd = -1, r, i;

	if (stat(o->root_path, &st) < 0) {
		strbuf_addf(err, "cannot read '%s': %s", o->root_path, strerror(errno));
		return -errno;
	}
	r = disk_layout(o, (uint64_t)st.st_size, &l, err);
	if (r < 0)
		return r;
	fd = open(out_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		strbuf_addf(err, "cannot create '%s': %s", out_path, strerror(errno));
		return -errno;
	}
	if (ftruncate(fd, (off_t)l.size) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot size '%s': %s", out_path, strerror(errno));
		goto out;
	}
	r = write_esp(fd, o, &l, &imgs, err);
	if (r < 0)
		goto out;
	r = pwrite_all(fd, imgs.core, imgs.core_len, l.start[P_BIOS]);
	if (r < 0) {
		strbuf_addf(err, "cannot write GRUB's core.img: %s", strerror(-r));
		goto out;
	}
	r = copy_into(fd, l.start[P_ROOT_A], o->root_path, err);
	if (r < 0)
		goto out;
	r = write_data(fd, o, &l, err);
	if (r < 0)
		goto out;

	g = xcalloc(1, sizeof(*g));
	g->disk_size = l.size;
	gpt_guid_derive(o->seed, "disk", g->disk_uuid);
	memcpy(g->boot_code, imgs.boot, sizeof(g->boot_code));
	for (i = 0; i < NPARTS; i++) {
		struct gpt_part *p = &g->parts[i];
		char upper[37];
		size_t k;

		gpt_guid_parse(part_types[i], p->type);
		for (k = 0; k < 37; k++)
			upper[k] = (char)toupper((unsigned char)l.partuuid[i][k]);
		gpt_guid_parse(upper, p->uuid);
		p->start = l.start[i];
		p->size = l.len[i];
		snprintf(p->name, sizeof(p->name), "%s", part_names[i]);
	}
	/* Legacy BIOS bootable flag on the ESP is not needed: GRUB is in the MBR. */
	g->nparts = NPARTS;
	r = gpt_write(fd, g, err);
	if (r < 0)
		goto out;
	if (fsync(fd) < 0) {
		r = -errno;
		strbuf_addf(err, "cannot write '%s': %s", out_path, strerror(errno));
	}
out:
	free(g);
	boot_images_release(&imgs);
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(out_path);
	else if (ret)
		*ret = l;
	return r;
}
