/* SPDX-License-Identifier: MIT */
/*
 * GRUB images, configuration and environment for the A/B disk. The boot
 * flow, in both firmware modes: the firmware starts GRUB (BOOTX64.EFI from
 * the ESP, or boot.img -> core.img in the BIOS boot partition); GRUB's
 * embedded early configuration finds the ESP by its volume id and reads
 * EFI/BOOT/grub.cfg, which picks a slot from the environment block and
 * boots that slot's /boot/vmlinuz and /boot/initrd.img.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/bootloader.h"
#include "recipe/recipe.h"
#include "core/spawn.h"

#define GRUB_EFI_DIR "/usr/lib/grub/x86_64-efi"
#define GRUB_PC_DIR  "/usr/lib/grub/i386-pc"

/* Modules built into both images: there is no module directory on the ESP. */
static const char *const common_modules[] = {
	"part_gpt", "part_msdos", "fat",    "ext2",	"normal", "configfile", "linux",
	"echo",	    "test",	  "loadenv", "search", "search_fs_uuid", "regexp", "gzio",
	"sleep",    "serial",	  "terminal", "cat",	"ls",	  "true",	"halt",
	"reboot",   "minicmd",	  "all_video",
};

static int run(char *const argv[], const char *log, struct strbuf *err)
{
	struct spawn_opts o = { .log_fd = -1 };
	struct spawn_status st;
	int r;

	o.log_fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (o.log_fd < 0) {
		strbuf_addf(err, "cannot create '%s': %s", log, strerror(errno));
		return -errno;
	}
	r = spawn_run(argv, &o, &st);
	close(o.log_fd);
	if (r == -ENOENT) {
		strbuf_addf(err, "%s is not installed: install the Debian package 'grub-common'",
			    argv[0]);
		return r;
	}
	if (r < 0) {
		strbuf_addf(err, "cannot run %s: %s", argv[0], strerror(-r));
		return r;
	}
	if (!spawn_status_ok(&st)) {
		_cleanup_free_ char *out = NULL;
		char how[64];
		size_t len = 0;
		if (read_file(log, 4096, &out, &len) == 0 && len && out[len - 1] == '\n')
			out[len - 1] = '\0';
		strbuf_addf(err, "%s failed: %s (it %s)", argv[0], out && *out ? out : "(no output)",
			    spawn_status_describe(&st, how, sizeof(how)));
		return -EIO;
	}
	return 0;
}

static int mkimage(const char *format, const char *dir, const char *pkg, const char *early,
		   const char *out, const char *log, const char *const *extra, size_t nextra,
		   struct strbuf *err)
{
	const char *argv[64];
	size_t n = 0, i;
	struct stat st;

	if (stat(dir, &st) < 0) {
		strbuf_addf(err, "GRUB for %s is missing (%s): install the Debian package '%s'",
			    format, dir, pkg);
		return -ENOENT;
	}
	argv[n++] = "grub-mkimage";
	argv[n++] = "-O";
	argv[n++] = format;
	argv[n++] = "-d";
	argv[n++] = dir;
	argv[n++] = "-c";
	argv[n++] = early;
	argv[n++] = "-p";
	argv[n++] = "/EFI/BOOT";
	argv[n++] = "-o";
	argv[n++] = out;
	for (i = 0; i < ARRAY_SIZE(common_modules); i++)
		argv[n++] = common_modules[i];
	for (i = 0; i < nextra; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	return run((char *const *)argv, log, err);
}

int bootloader_images(const struct boot_settings *s, const char *tmpdir, struct boot_images *ret,
		      struct strbuf *err)
{
	static const char *const pc_extra[] = { "biosdisk" };
	_cleanup_free_ char *early = path_join(tmpdir, "early.cfg");
	_cleanup_free_ char *efi = path_join(tmpdir, "BOOTX64.EFI");
	_cleanup_free_ char *core = path_join(tmpdir, "core.img");
	_cleanup_free_ char *log = path_join(tmpdir, "grub-mkimage.log");
	_cleanup_free_ char *cfg = NULL, *boot = NULL;
	struct boot_images b = { 0 };
	size_t len;
	char *buf = NULL;
	int r;

	/* grub.cfg takes the command line as it is: refuse what would end or extend its line. */
	if (s->cmdline && !recipe_cmdline_valid(s->cmdline)) {
		strbuf_addf(err, "the kernel command line has characters grub.cfg cannot hold "
				 "(allowed: letters, digits, spaces and '%s')",
			    CMDLINE_PUNCT);
		return -EINVAL;
	}
	cfg = xasprintf("search --no-floppy --fs-uuid --set=root %s\n"
			"set prefix=($root)/EFI/BOOT\n",
			s->esp_uuid);
	r = write_file_atomic(early, cfg, strlen(cfg), 0644);
	if (r < 0) {
		strbuf_addf(err, "cannot write '%s': %s", early, strerror(-r));
		return r;
	}
	r = mkimage("x86_64-efi", GRUB_EFI_DIR, "grub-efi-amd64-bin", early, efi, log, NULL, 0,
		    err);
	if (r < 0)
		return r;
	r = mkimage("i386-pc", GRUB_PC_DIR, "grub-pc-bin", early, core, log, pc_extra,
		    ARRAY_SIZE(pc_extra), err);
	if (r < 0)
		return r;

	r = read_file(efi, 64 << 20, &buf, &len);
	if (r < 0)
		goto read_error;
	b.efi = (uint8_t *)buf;
	b.efi_len = len;
	r = read_file(core, 1 << 20, &buf, &len);
	if (r < 0)
		goto read_error;
	/* Whole sectors: the blocklist counts them. */
	b.core_len = (len + 511) / 512 * 512;
	b.core = xcalloc(1, b.core_len);
	memcpy(b.core, buf, len);
	free(buf);
	boot = path_join(GRUB_PC_DIR, "boot.img");
	r = read_file(boot, 512, &buf, &len);
	if (r < 0 || len != 512) {
		strbuf_addf(err, "cannot read '%s': install the Debian package 'grub-pc-bin'", boot);
		free(buf);
		boot_images_release(&b);
		return r < 0 ? r : -EINVAL;
	}
	memcpy(b.boot, buf, 512);
	free(buf);
	if (b.core_len > (1 << 20) - 512) {
		strbuf_addf(err, "GRUB's core.img is %zu bytes, more than the 1 MiB BIOS boot partition",
			    b.core_len);
		boot_images_release(&b);
		return -E2BIG;
	}
	*ret = b;
	return 0;
read_error:
	strbuf_addf(err, "cannot read the GRUB image: %s", strerror(-r));
	boot_images_release(&b);
	return r;
}

void boot_images_release(struct boot_images *b)
{
	free(b->efi);
	free(b->core);
	memset(b, 0, sizeof(*b));
}

void bootloader_patch_bios(struct boot_images *b, uint64_t core_lba)
{
	uint8_t *bl = b->core + 512 - 12;
	uint16_t sectors = (uint16_t)(b->core_len / 512 - 1);

	/* boot.img: where core.img starts; use the drive the BIOS booted from;
	 * the floppy check replaced with two nops, as grub-install does for disks. */
	put_le64(b->boot + 0x5c, core_lba);
	b->boot[0x64] = 0xff;
	b->boot[0x66] = 0x90;
	b->boot[0x67] = 0x90;
	/* core.img's first sector loads the rest: start, count, segment 0x820. */
	put_le64(bl, core_lba + 1);
	bl[8] = (uint8_t)sectors;
	bl[9] = (uint8_t)(sectors >> 8);
	bl[10] = 0x20;
	bl[11] = 0x08;
}

int grubenv_render(const char *const *names, const char *const *values, size_t n,
		   uint8_t out[GRUBENV_SIZE])
{
	static const char head[] = "# GRUB Environment Block\n";
	size_t pos = sizeof(head) - 1, i;

	memset(out, '#', GRUBENV_SIZE);
	memcpy(out, head, pos);
	for (i = 0; i < n; i++) {
		int k = snprintf(NULL, 0, "%s=%s\n", names[i], values[i]);
		if (k < 0 || pos + (size_t)k > GRUBENV_SIZE)
			return -E2BIG;
		snprintf((char *)out + pos, (size_t)k + 1, "%s=%s\n", names[i], values[i]);
		pos += (size_t)k;
	}
	if (pos < GRUBENV_SIZE)
		out[pos] = '#'; /* snprintf's NUL */
	return 0;
}

/* The slot choice for one slot: count a try if it has tries left. */
static void slot_block(struct strbuf *sb, char slot, unsigned tries)
{
	unsigned t;

	strbuf_addf(sb,
		    "\tif [ -z \"${slot}\" -a \"${s}\" = \"%c\" ]; then\n"
		    "\t\tif [ -z \"${%c_TRIES}\" ]; then set %c_TRIES=0; fi\n",
		    slot, slot, slot);
	for (t = 0; t < tries; t++)
		strbuf_addf(sb,
			    "\t\t%sif [ \"${%c_TRIES}\" = \"%u\" ]; then set %c_TRIES=%u; set slot=%c\n",
			    t ? "el" : "", slot, t, slot, t + 1, slot);
	strbuf_addstr(sb, "\t\tfi\n\tfi\n");
}

char *bootloader_config(const struct boot_settings *s)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb,
		    "# imgforge: A/B boot with boot counting (see docs/boot.md).\n"
		    "# Generated: edit the recipe's boot: section, not this file.\n"
		    "serial --unit=0 --speed=115200\n"
		    "terminal_input serial console\n"
		    "terminal_output serial console\n"
		    "set timeout=%u\n"
		    "\n"
		    "# The environment: the primary block, or its copy if the primary is damaged.\n"
		    "set envfile=${prefix}/grubenv\n"
		    "if ! load_env --file ${envfile}; then\n"
		    "\techo \"imgforge: ${envfile} is damaged, using the copy\"\n"
		    "\tset envfile=${prefix}/grubenv.bak\n"
		    "\tload_env --file ${envfile}\n"
		    "fi\n"
		    "if [ -z \"${ORDER}\" ]; then set ORDER=\"A B\"; fi\n"
		    "\n"
		    "# The first slot in ORDER with tries left gets one more try.\n"
		    "set slot=\n"
		    "for s in ${ORDER}; do\n",
		    s->timeout);
	slot_block(&sb, 'A', s->tries);
	slot_block(&sb, 'B', s->tries);
	strbuf_addf(&sb,
		    "done\n"
		    "set fallback=0\n"
		    "if [ -n \"${slot}\" ]; then\n"
		    "\tsave_env --file ${envfile} A_TRIES B_TRIES\n"
		    "else\n"
		    "\t# No slot has tries left: boot the first one anyway rather than nothing.\n"
		    "\tfor s in ${ORDER}; do if [ -z \"${slot}\" ]; then set slot=${s}; fi; done\n"
		    "\tif [ -z \"${slot}\" ]; then set slot=A; fi\n"
		    "\tset fallback=1\n"
		    "\techo \"imgforge: no slot has tries left, booting ${slot}\"\n"
		    "fi\n"
		    "\n"
		    "# ${root} is the ESP, \"hd0,gpt2\": the slots are on the same disk.\n"
		    "regexp --set=1:disk '^([^,]+),' \"${root}\"\n"
		    "if [ \"${slot}\" = \"B\" ]; then\n"
		    "\tset part=%u\n\tset partuuid=%s\n"
		    "else\n"
		    "\tset part=%u\n\tset partuuid=%s\n"
		    "fi\n"
		    "\n"
		    "menuentry \"imgforge slot ${slot}\" --id imgforge {\n"
		    "\tset root=(${disk},gpt${part})\n"
		    "\techo \"imgforge: booting slot ${slot} from (${disk},gpt${part})\"\n"
		    "\tlinux /boot/vmlinuz root=PARTUUID=${partuuid} ro imgforge.slot=${slot} "
		    "imgforge.fallback=${fallback} %s\n"
		    "\tinitrd /boot/initrd.img\n"
		    "}\n",
		    s->part_b, s->partuuid_b, s->part_a, s->partuuid_a,
		    s->cmdline ? s->cmdline : "");
	return strbuf_detach(&sb);
}
