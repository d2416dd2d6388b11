/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/stoppoint.h"
#include "core/util.h"
#include "update/slot.h"

static const char slot_env_head[] = "# GRUB Environment Block\n";

void slot_env_release(struct slot_env *env)
{
	size_t i;

	if (!env)
		return;
	for (i = 0; i < env->n; i++) {
		free(env->vars[i].name);
		free(env->vars[i].value);
	}
	free(env->vars);
	env->vars = NULL;
	env->n = env->alloc = 0;
}

static void env_append(struct slot_env *env, char *name, char *value)
{
	GROW(env->vars, env->alloc, env->n + 1);
	env->vars[env->n].name = name;
	env->vars[env->n].value = value;
	env->n++;
}

int slot_env_parse(const void *buf, size_t len, struct slot_env *ret_env)
{
	struct slot_env env = SLOT_ENV_INIT;
	const char *p = buf, *end = p + len;

	if (len != SLOT_ENV_SIZE || memcmp(p, slot_env_head, sizeof(slot_env_head) - 1))
		return -EINVAL;
	p += sizeof(slot_env_head) - 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		const char *eq = memchr(p, '=', (size_t)(eol - p));

		/* As imgforge-slot: lines not starting with '#' that hold a '='. */
		if (*p != '#' && eq && !memchr(p, '\0', (size_t)(eol - p)))
			env_append(&env, xstrndup(p, (size_t)(eq - p)),
				   xstrndup(eq + 1, (size_t)(eol - eq - 1)));
		p = nl ? nl + 1 : end;
	}
	*ret_env = env;
	return 0;
}

const char *slot_env_get(const struct slot_env *env, const char *name)
{
	size_t i;

	/* GRUB's load_env sets them in order: the last one wins. */
	for (i = env->n; i > 0; i--)
		if (!strcmp(env->vars[i - 1].name, name))
			return env->vars[i - 1].value;
	return NULL;
}

static bool valid_name(const char *s)
{
	if (!(*s == '_' || (*s >= 'A' && *s <= 'Z')))
		return false;
	for (; *s; s++)
		if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

int slot_env_set(struct slot_env *env, const char *name, const char *value)
{
	size_t i, j;

	if (!valid_name(name) || strchr(value, '\n'))
		return -EINVAL;
	for (i = j = 0; i < env->n; i++) {
		if (!strcmp(env->vars[i].name, name)) {
			free(env->vars[i].name);
			free(env->vars[i].value);
			continue;
		}
		env->vars[j++] = env->vars[i];
	}
	env->n = j;
	env_append(env, xstrdup(name), xstrdup(value));
	return 0;
}

int slot_env_render(const struct slot_env *env, uint8_t out[SLOT_ENV_SIZE])
{
	size_t pos = sizeof(slot_env_head) - 1, i;

	memset(out, '#', SLOT_ENV_SIZE);
	memcpy(out, slot_env_head, pos);
	for (i = 0; i < env->n; i++) {
		size_t ln = strlen(env->vars[i].name), lv = strlen(env->vars[i].value);

		if (pos + ln + 1 + lv + 1 > SLOT_ENV_SIZE)
			return -E2BIG;
		memcpy(out + pos, env->vars[i].name, ln);
		out[pos + ln] = '=';
		memcpy(out + pos + ln + 1, env->vars[i].value, lv);
		out[pos + ln + 1 + lv] = '\n';
		pos += ln + lv + 2;
	}
	return 0;
}

static int load_one(const char *path, struct slot_env *ret_env)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	int r;

	r = read_file(path, SLOT_ENV_SIZE, &buf, &len);
	if (r == -EFBIG)
		return -EINVAL;
	if (r < 0)
		return r;
	return slot_env_parse(buf, len, ret_env);
}

int slot_env_load(const char *dir, struct slot_env *ret_env, bool *ret_from_copy,
		  struct strbuf *err)
{
	_cleanup_free_ char *primary = path_join(dir, "grubenv");
	_cleanup_free_ char *copy = path_join(dir, "grubenv.bak");
	int r;

	r = load_one(primary, ret_env);
	if (r >= 0) {
		if (ret_from_copy)
			*ret_from_copy = false;
		return 0;
	}
	r = load_one(copy, ret_env);
	if (r >= 0) {
		if (ret_from_copy)
			*ret_from_copy = true;
		return 0;
	}
	strbuf_addf(err,
		    "neither '%s' nor '%s' is a valid GRUB environment block: the boot "
		    "variables are lost; on a slot that works, 'imgforge-update mark-good' writes "
		    "them anew (docs/update.md, \"When both slots are bad\")",
		    primary, copy);
	return -EINVAL;
}

/*
 * One block, in place when the file already has the size of a block: only
 * its data changes, never the FAT or the directory, so a power cut cannot
 * leave the name pointing at free clusters. Otherwise a new file.
 */
static int store_one(const char *path, const uint8_t block[SLOT_ENV_SIZE], struct strbuf *err)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	int r;

	fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == SLOT_ENV_SIZE) {
		r = pwrite_all(fd, block, SLOT_ENV_SIZE, 0);
		if (r >= 0 && fsync(fd) < 0)
			r = -errno;
		if (r < 0) {
			strbuf_addf(err, "cannot write '%s': %s", path, strerror(-r));
			return r;
		}
		return 0;
	}
	closep(&fd);
	fd = -1;
	r = write_file_atomic(path, block, SLOT_ENV_SIZE, 0600);
	if (r >= 0)
		r = fsync_parent(path);
	if (r < 0) {
		strbuf_addf(err, "cannot write '%s': %s", path, strerror(-r));
		return r;
	}
	return 0;
}

int slot_env_store(const char *dir, const struct slot_env *env, struct strbuf *err)
{
	_cleanup_free_ char *primary = path_join(dir, "grubenv");
	_cleanup_free_ char *copy = path_join(dir, "grubenv.bak");
	uint8_t block[SLOT_ENV_SIZE];
	int r;

	r = slot_env_render(env, block);
	if (r < 0) {
		strbuf_addf(err, "the boot variables do not fit in the %d bytes of '%s'",
			    SLOT_ENV_SIZE, primary);
		return r;
	}
	r = store_one(copy, block, err);
	if (r < 0)
		return r;
	stop_point("grubenv.bak");
	r = store_one(primary, block, err);
	if (r < 0)
		return r;
	stop_point("grubenv");
	return 0;
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

int slot_env_dir(bool mount_it, char **ret_dir, struct strbuf *err)
{
	const char *mnt = env_or("IMGFORGE_ESP_MNT", "/boot/efi");
	const char *dev = env_or("IMGFORGE_ESP_DEV", "/dev/disk/by-partlabel/esp");
	_cleanup_free_ char *dir = path_join(mnt, "EFI/BOOT");
	struct stat st;

	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		goto out;
	if (mount_it && mount(dev, mnt, "vfat", MS_NOSUID | MS_NODEV | MS_NOEXEC, "umask=0077") < 0 &&
	    errno != EBUSY) {
		strbuf_addf(err, "cannot mount the ESP ('%s') on '%s': %s", dev, mnt,
			    strerror(errno));
		return -errno;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		strbuf_addf(err, "no '%s': is the ESP mounted on '%s'?", dir, mnt);
		return -ENOENT;
	}
out:
	*ret_dir = TAKE_PTR(dir);
	return 0;
}

/* The value of key=V in a kernel command line, as a static copy, or NULL. */
static const char *cmdline_value(const char *cmdline, const char *key, char *buf, size_t size)
{
	size_t kl = strlen(key);
	const char *p = cmdline;

	while (*p) {
		size_t wl;

		p += strspn(p, " \t\n");
		wl = strcspn(p, " \t\n");
		if (wl > kl && !strncmp(p, key, kl) && p[kl] == '=') {
			size_t vl = wl - kl - 1;

			if (vl >= size)
				vl = size - 1;
			memcpy(buf, p + kl + 1, vl);
			buf[vl] = '\0';
			return buf;
		}
		p += wl;
	}
	return NULL;
}

int slot_booted(char *ret_slot, bool *ret_fallback, struct strbuf *err)
{
	const char *path = env_or("IMGFORGE_UPDATE_CMDLINE", "/proc/cmdline");
	_cleanup_free_ char *cmdline = NULL;
	const char *v;
	char buf[16];
	int r;

	size_t len = 0;
	r = read_file(path, 64 * 1024, &cmdline, &len);
	if (r < 0) {
		strbuf_addf(err, "cannot read '%s': %s", path, strerror(-r));
		return r;
	}
	v = cmdline_value(cmdline, "imgforge.slot", buf, sizeof(buf));
	if (!v || (strcmp(v, "A") && strcmp(v, "B"))) {
		strbuf_addf(err,
			    "not booted by imgforge's GRUB: no imgforge.slot=A or B in '%s' "
			    "(an image with a disk: section boots that way)",
			    path);
		return -ENOENT;
	}
	*ret_slot = v[0];
	if (ret_fallback) {
		v = cmdline_value(cmdline, "imgforge.fallback", buf, sizeof(buf));
		*ret_fallback = v && !strcmp(v, "1");
	}
	return 0;
}

const char *slot_device(char slot)
{
	if (slot == 'B')
		return env_or("IMGFORGE_UPDATE_ROOT_B", "/dev/disk/by-partlabel/root-b");
	return env_or("IMGFORGE_UPDATE_ROOT_A", "/dev/disk/by-partlabel/root-a");
}

unsigned slot_max_tries(const char *dir)
{
	_cleanup_free_ char *path = path_join(dir, "grub.cfg");
	_cleanup_free_ char *cfg = NULL;
	static const char pat[] = "_TRIES}\" = \"";
	unsigned max = 0;
	const char *p;
	size_t len = 0;

	if (read_file(path, 1 << 20, &cfg, &len) < 0)
		return SLOT_TRIES_DEFAULT;
	/* grub.cfg tests '"${A_TRIES}" = "N"' for every N below the maximum. */
	for (p = cfg; (p = strstr(p, pat)); ) {
		char *end;
		unsigned long n;

		p += sizeof(pat) - 1;
		n = strtoul(p, &end, 10);
		if (end != p && *end == '"' && n < 1000 && n + 1 > max)
			max = (unsigned)n + 1;
	}
	return max ? max : SLOT_TRIES_DEFAULT;
}

unsigned slot_tries(const struct slot_env *env, char slot)
{
	char name[] = "X_TRIES";
	const char *v;
	char *end;
	unsigned long n;

	name[0] = slot;
	v = slot_env_get(env, name);
	if (!v || !*v)
		return 0;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (*end || errno || n > UINT_MAX || *v < '0' || *v > '9')
		return UINT_MAX;
	return (unsigned)n;
}
