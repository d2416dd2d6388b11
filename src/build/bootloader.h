/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_BOOTLOADER_H
#define IMGFORGE_BOOTLOADER_H

#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/*
 * GRUB for a hybrid UEFI/BIOS disk with A/B root slots and boot counting.
 * The GRUB images come from Debian's grub-efi-amd64-bin and grub-pc-bin
 * (grub-mkimage); the configuration and the environment block are written
 * here. docs/boot.md describes the variables and the boot flow.
 */
#define GRUBENV_SIZE 1024

struct boot_settings {
	char esp_uuid[10];	/* FAT volume id as GRUB shows it: "1234-ABCD" */
	char partuuid_a[37];	/* PARTUUIDs of the root slots */
	char partuuid_b[37];
	unsigned part_a, part_b; /* partition numbers of the slots */
	unsigned tries;		/* boots a slot gets before GRUB moves on */
	unsigned timeout;	/* menu timeout, seconds */
	const char *cmdline;	/* extra kernel arguments */
};

struct boot_images {
	uint8_t *efi; /* EFI/BOOT/BOOTX64.EFI */
	size_t efi_len;
	uint8_t *core; /* i386-pc core.img, padded to whole sectors */
	size_t core_len;
	uint8_t boot[512]; /* i386-pc boot.img */
};

/*
 * Build both GRUB images with an embedded early configuration that finds
 * the ESP by its volume id. Returns 0 or -errno with one line in err (a
 * missing GRUB package is named).
 */
int bootloader_images(const struct boot_settings *s, const char *tmpdir, struct boot_images *ret,
		      struct strbuf *err);
void boot_images_release(struct boot_images *b);

/* The grub.cfg text (malloc'd). */
char *bootloader_config(const struct boot_settings *s);

/*
 * Render an environment block: "# GRUB Environment Block\n", NAME=VALUE
 * lines in the order given, padded with '#' to 1024 bytes. -E2BIG if the
 * variables do not fit.
 */
int grubenv_render(const char *const *names, const char *const *values, size_t n,
		   uint8_t out[GRUBENV_SIZE]);

/*
 * Point GRUB's boot sector at core.img (which starts at core_lba) and fill
 * core.img's blocklist, as grub-install does for a BIOS boot partition.
 */
void bootloader_patch_bios(struct boot_images *b, uint64_t core_lba);

#endif
