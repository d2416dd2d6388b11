/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_SLOT_H
#define IMGFORGE_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

/*
 * The A/B slots on the device: the GRUB environment block on the ESP
 * (EFI/BOOT/grubenv and its copy grubenv.bak, docs/boot.md), the slot the
 * kernel was booted from (imgforge.slot= on its command line), and the
 * partitions of the slots. The same semantics as the image's
 * /usr/sbin/imgforge-slot shell tool, so that both can be used on one disk:
 *
 * - a block is valid when it is exactly 1024 bytes and starts with the line
 *   "# GRUB Environment Block"; its variables are its NAME=VALUE lines;
 * - reading takes grubenv, or grubenv.bak when grubenv is not valid;
 * - writing writes grubenv.bak first, then grubenv, each rewritten in place
 *   (the same 1024 bytes, so on FAT the same clusters, as GRUB's save_env)
 *   and fsync'ed before the next write starts; a missing or wrongly sized
 *   file is replaced by a new one (temp, fsync, rename, directory fsync);
 * - setting a variable removes it and appends it at the end.
 *
 * Paths, each overridable through the environment (tests, recovery shells):
 *   IMGFORGE_ESP_MNT       where the ESP is mounted (/boot/efi); the blocks
 *                          are in its EFI/BOOT
 *   IMGFORGE_ESP_DEV       the ESP partition (/dev/disk/by-partlabel/esp),
 *                          mounted there when EFI/BOOT is missing
 *   IMGFORGE_UPDATE_CMDLINE the kernel command line (/proc/cmdline)
 *   IMGFORGE_UPDATE_ROOT_A, IMGFORGE_UPDATE_ROOT_B the slots' partitions
 *                          (/dev/disk/by-partlabel/root-a, root-b)
 */

#define SLOT_ENV_SIZE 1024
#define SLOT_TRIES_DEFAULT 3

struct slot_var {
	char *name, *value;
};

/* The variables of one environment block, in file order. */
struct slot_env {
	struct slot_var *vars;
	size_t n, alloc;
};

#define SLOT_ENV_INIT { NULL, 0, 0 }

void slot_env_release(struct slot_env *env);

/*
 * Parse a block. Returns 0, or -EINVAL when it is not a valid block (the
 * wrong size or no header line): the caller names the file.
 */
int slot_env_parse(const void *buf, size_t len, struct slot_env *ret_env);

/* The value of name, or NULL. Owned by env. */
const char *slot_env_get(const struct slot_env *env, const char *name);

/*
 * Set name (A-Z, 0-9, _; starting with a letter or _) to value (no newline):
 * any earlier value is removed and the variable appended at the end, as
 * imgforge-slot does. -EINVAL for a bad name or value.
 */
int slot_env_set(struct slot_env *env, const char *name, const char *value);

/* The block's 1024 bytes: header, NAME=VALUE lines, '#' padding. -E2BIG if too long. */
int slot_env_render(const struct slot_env *env, uint8_t out[SLOT_ENV_SIZE]);

/*
 * Read the environment in dir (the ESP's EFI/BOOT): grubenv, else
 * grubenv.bak. *ret_from_copy (may be NULL) tells that the copy was used.
 * -EINVAL with a message naming both files when neither is valid.
 */
int slot_env_load(const char *dir, struct slot_env *ret_env, bool *ret_from_copy,
		  struct strbuf *err);

/* Write env to dir's grubenv.bak, then grubenv (see above). */
int slot_env_store(const char *dir, const struct slot_env *env, struct strbuf *err);

/*
 * The directory of the blocks: $IMGFORGE_ESP_MNT/EFI/BOOT (default
 * /boot/efi/EFI/BOOT), malloc'd. When it does not exist and mount is true,
 * the ESP is mounted there first (vfat, umask=0077), as imgforge-slot does.
 */
int slot_env_dir(bool mount, char **ret_dir, struct strbuf *err);

/*
 * The slot the running system was booted from: 'A' or 'B' from
 * imgforge.slot= on the kernel command line ($IMGFORGE_UPDATE_CMDLINE or
 * /proc/cmdline), and whether GRUB booted it as a last resort
 * (imgforge.fallback=1). -ENOENT with a message when there is no
 * imgforge.slot=.
 */
int slot_booted(char *ret_slot, bool *ret_fallback, struct strbuf *err);

/* The partition of a slot ('A' or 'B'); a static string or the environment's. */
const char *slot_device(char slot);

/* The other slot. */
static inline char slot_other(char slot)
{
	return slot == 'A' ? 'B' : 'A';
}

/*
 * The most boots GRUB gives a slot (boot.tries): read from dir's grub.cfg,
 * which tests "${A_TRIES}" = "N" for N below the maximum; SLOT_TRIES_DEFAULT
 * when grub.cfg is missing or says nothing.
 */
unsigned slot_max_tries(const char *dir);

/*
 * The counter of a slot as GRUB reads it: an empty or missing value is 0;
 * a value that is not a number (which GRUB never matches) is UINT_MAX.
 */
unsigned slot_tries(const struct slot_env *env, char slot);

#endif
