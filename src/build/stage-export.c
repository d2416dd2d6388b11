/* SPDX-License-Identifier: MIT */
/*
 * The export stage: the disk written in each format the recipe's outputs:
 * list names (fs/imgout.c), cached under a key of its own: the disk's key
 * and the format. disk.raw itself is the disk stage's output.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/stage.h"
#include "core/hash.h"
#include "fs/imgout.h"
#include "store/cache.h"

#define EXPORT_FORMAT_VERSION "1"

/*
 * What each outputs: word writes. qcow2 is compressed (zlib, read by every
 * qcow2 reader): an output is made to be shipped. vhd is fixed (what Azure
 * and AWS take), vmdk streamOptimized (AWS VM Import, VMware).
 */
static const struct {
	const char *word, *output;
	struct imgout_opts o;
} formats[] = {
	{ "qcow2", "disk.qcow2", { .format = IMGOUT_QCOW2, .compress = true } },
	{ "vhd", "disk.vhd", { .format = IMGOUT_VHD } },
	{ "vmdk", "disk.vmdk", { .format = IMGOUT_VMDK, .compress = true } },
};

const char *stage_export_output(const char *word)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(formats); i++)
		if (!strcmp(formats[i].word, word))
			return formats[i].output;
	return NULL;
}

void stage_export_key(const char *disk_key, const char *word, char ret[SHA256_HEX_LEN])
{
	struct sha256 *h = sha256_new();

	sha256_update_str(h, "imgforge-stage-export-" EXPORT_FORMAT_VERSION);
	sha256_update_str(h, disk_key);
	sha256_update_str(h, word);
	sha256_final_hex(h, ret);
	sha256_free(h);
}

int stage_export_run(struct build_ctx *c, const char *word, const char *key,
		     const char *disk_path, char **ret_path)
{
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *tmp = NULL;
	_cleanup_close_ int in = -1, out = -1;
	struct imgout_opts o = { 0 };
	struct stat st;
	size_t i;
	int64_t ts;
	int r;

	for (i = 0; i < ARRAY_SIZE(formats); i++)
		if (!strcmp(formats[i].word, word))
			o = formats[i].o;
	o.extent_name = stage_export_output(word);
	if (!o.extent_name)
		return build_fail(c, -EINVAL, "export: no output format '%s'", word);

	r = build_lookup(c, "export", key, ret_path);
	if (r > 0)
		build_step(c, "export: %s cached (%.12s)", o.extent_name, key);
	if (r != 0)
		return r;

	r = cache_tmpfile(c->cache, "export", &tmp, &err);
	if (r < 0) {
		r = build_fail(c, r, "cache: %s", err.buf);
		goto out;
	}
	in = open(disk_path, O_RDONLY | O_CLOEXEC);
	out = open(tmp, O_WRONLY | O_CLOEXEC);
	if (in < 0 || out < 0 || fstat(in, &st) < 0) {
		r = build_fail(c, -errno, "export: cannot open '%s': %s", in < 0 ? disk_path : tmp,
			       strerror(errno));
		goto out;
	}
	ts = monotonic_ms();
	r = imgout_write(in, (uint64_t)st.st_size, out, &o, NULL, &err);
	if (r < 0) {
		r = build_fail(c, r, "export: %s: %s", o.extent_name, err.buf);
		goto out;
	}
	build_step(c, "export: %s written in %.1f s", o.extent_name, seconds_since(ts));
	r = build_store(c, "export", key, tmp, ret_path);
out:
	strbuf_release(&err);
	return r;
}
