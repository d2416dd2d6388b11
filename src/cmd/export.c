/* SPDX-License-Identifier: MIT */
/*
 * imgforge export: a raw disk, or a registered build's disk.raw, written as
 * raw, qcow2, VHD or VMDK. A thin layer over fs/imgout.c; the file is
 * written beside its name, synced, then renamed into place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/util.h"
#include "fs/imgout.h"
#include "store/cache.h"
#include "store/registry.h"
#include "update/jsonr.h"

static const char usage[] =
	"usage: imgforge export <build>|<disk> -o <file> [--format <f>] [--compress]\n"
	"                       [--compression-type zlib|zstd] [--subformat fixed|dynamic]\n"
	"                       [--threads <n>]\n"
	"\n"
	"Write a raw disk as a raw, qcow2, VHD or VMDK image. <build> is a\n"
	"registered build (an id or a unique prefix, see 'imgforge ls'), whose\n"
	"disk.raw is read; <disk> is a raw disk file. Only the data the disk holds\n"
	"is read (its holes are skipped) and clusters of zeros are not stored.\n";

static const char footer[] =
	"Formats: raw; qcow2 (version 3, --compress for zlib or zstd clusters);\n"
	"vhd (--subformat fixed, what Azure and AWS take, or dynamic); vmdk\n"
	"(streamOptimized, always compressed: what AWS VM Import and VMware take).\n"
	"Without --format, the extension of <file> names it (.raw .img .qcow2 .vhd\n"
	".vmdk). The same disk gives the same bytes, whatever --threads is. The\n"
	"image is written to <file>.tmp-*, synced, then renamed. See docs/export.md.\n";

/*
 * The temporary file, removed if a signal stops the export: the signal is
 * then raised again with its default action, so the export ends by it.
 */
static char *volatile tmp_path;

static void on_stop(int sig)
{
	char *p = tmp_path;

	if (p)
		unlink(p);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void remove_on_stop(char *path)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = on_stop };
	size_t i;

	tmp_path = path;
	for (i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
}

static const char *const ctypes[] = { "zlib", "zstd", NULL };
static const char *const subformats[] = { "fixed", "dynamic", NULL };

static int format_from_name(const char *out, enum imgout_format *ret)
{
	static const struct {
		const char *ext;
		enum imgout_format f;
	} exts[] = {
		{ ".raw", IMGOUT_RAW }, { ".img", IMGOUT_RAW },	  { ".qcow2", IMGOUT_QCOW2 },
		{ ".vhd", IMGOUT_VHD }, { ".vmdk", IMGOUT_VMDK },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(exts); i++)
		if (str_endswith(out, exts[i].ext)) {
			*ret = exts[i].f;
			return 0;
		}
	return -EINVAL;
}

/* Open the input and check that it is a raw disk. */
static int open_disk(const char *path, uint64_t *ret_size)
{
	_cleanup_close_ int fd = -1;
	const char *what;
	struct stat st;
	off_t end;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return error("export: cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return error("export: cannot stat '%s': %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return error("export: '%s' is a directory, not a disk; give a disk.raw or a "
			     "build id",
			     path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return error("export: '%s' is not a regular file or a block device", path);
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		return error("export: cannot size '%s': %s", path, strerror(errno));
	if (end == 0 || end % 512)
		return error("export: '%s' is not a disk: %jd bytes is not a whole number of "
			     "512-byte sectors; give a disk.raw",
			     path, (intmax_t)end);
	what = imgout_sniff(fd, (uint64_t)end);
	if (what)
		return error("export: '%s' is a %s image, not a raw disk; export the disk.raw it "
			     "was made from",
			     path, what);
	*ret_size = (uint64_t)end;
	return TAKE_FD(fd);
}

int cmd_export(int argc, char **argv)
{
	const char *out = NULL, *fmt = NULL, *registry = NULL, *cache = NULL;
	int ctype = -1, subformat = -1; /* -1: not given */
	unsigned threads = 0;
	bool compress = false;
	const struct opt options[] = {
		OPT_STRING('o', "output", &out, "<file>", "the image to write"),
		OPT_STRING('f', "format", &fmt, "<f>",
			   "raw, qcow2, vhd or vmdk (default: from <file>'s extension)"),
		OPT_FLAG('c', "compress", &compress, "qcow2: compress the clusters"),
		OPT_CHOICE(0, "compression-type", &ctype, "<t>", ctypes,
			   "qcow2: zlib (default, read everywhere) or zstd (QEMU 5.1+)"),
		OPT_CHOICE(0, "subformat", &subformat, "<s>", subformats,
			   "vhd: fixed (default) or dynamic"),
		OPT_UINT(0, "threads", &threads, "<n>", 1, 1024,
			 "compress on <n> threads (default: one per CPU)"),
		OPT_STRING(0, "registry", &registry, "<path>",
			   "the registry database (default: registry.db in the cache)"),
		OPT_STRING(0, "cache", &cache, "<dir>",
			   "the cache directory (default $XDG_CACHE_HOME/imgforge)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "export", .usage = usage, .opts = options, .footer = footer};
	struct imgout_opts o = { 0 };
	struct imgout_stats stats = { 0 };
	struct strbuf err = STRBUF_INIT;
	_cleanup_free_ char *disk = NULL, *tmp = NULL;
	_cleanup_close_ int in = -1, fd = -1;
	struct stat st, ist;
	uint64_t size = 0;
	int64_t t0 = monotonic_ms();
	char sz[32], rd[32];
	int n, r = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1) {
		error("export: %s; see 'imgforge export --help'",
		      n ? "give one build or disk" : "no build or disk given");
		return EXIT_USAGE;
	}
	if (!out || !*out) {
		error("export: no output given (-o <file>); see 'imgforge export --help'");
		return EXIT_USAGE;
	}
	if (fmt ? imgout_format_parse(fmt, &o.format) < 0
		: format_from_name(out, &o.format) < 0) {
		if (fmt)
			error("export: '%s' is not a format imgforge writes; give raw, qcow2, vhd "
			      "or vmdk",
			      fmt);
		else
			error("export: cannot tell the format from '%s'; give --format raw, "
			      "qcow2, vhd or vmdk",
			      out);
		return EXIT_USAGE;
	}
	if (compress && o.format != IMGOUT_QCOW2 && o.format != IMGOUT_VMDK) {
		error("export: a %s image is not compressed; --compress is for qcow2 (VMDK "
		      "grains always are)",
		      imgout_format_name(o.format));
		return EXIT_USAGE;
	}
	if (ctype >= 0 && !(o.format == IMGOUT_QCOW2 && compress)) {
		error("export: --compression-type is for compressed qcow2 images (--format qcow2 "
		      "--compress)");
		return EXIT_USAGE;
	}
	if (subformat >= 0 && o.format != IMGOUT_VHD) {
		error("export: --subformat is for vhd images");
		return EXIT_USAGE;
	}
	o.compress = compress || o.format == IMGOUT_VMDK;
	o.ctype = ctype == 1 ? IMGOUT_ZSTD : IMGOUT_ZLIB;
	o.vhd_dynamic = subformat == 1;
	o.threads = threads;
	o.extent_name = path_basename(out);

	if (stat(argv[0], &st) == 0 || strchr(argv[0], '/'))
		disk = xstrdup(argv[0]);
	else if (build_output_resolve(
			 &(struct build_output_query){
				 .cmd = "export",
				 .output = "disk.raw",
				 .takes_file = true,
				 .give = "give a raw disk or a build id from 'imgforge ls'",
				 .no_output = "build the image with a disk: section, or give a raw disk",
				 .stale = "rebuild it, or give the raw disk",
				 .registry = registry,
				 .cache = cache,
			 },
			 argv[0], NULL, &disk) < 0)
		return 1;
	in = open_disk(disk, &size);
	if (in < 0)
		return 1;

	if (o.format == IMGOUT_VHD && !o.vhd_dynamic && size % (1u << 20))
		warning("export: '%s' is not a whole number of MiB: Azure refuses such a VHD", disk);

	/* The output: never through a symlink, never onto the input, never a directory. */
	if (lstat(out, &st) == 0) {
		if (S_ISLNK(st.st_mode)) {
			error("export: '%s' is a symbolic link; imgforge does not write through "
			      "one: give the file it points to, or remove it",
			      out);
			return 1;
		}
		if (S_ISDIR(st.st_mode)) {
			error("export: '%s' is a directory; give a file name with -o", out);
			return 1;
		}
		if (fstat(in, &ist) == 0 && ist.st_dev == st.st_dev && ist.st_ino == st.st_ino) {
			error("export: '%s' is the disk being exported; write to another file",
			      out);
			return 1;
		}
	}
	tmp = xasprintf("%s.tmp-XXXXXX", out);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		error("export: cannot create a file beside '%s': %s", out, strerror(errno));
		return 1;
	}
	remove_on_stop(tmp);
	if (fchmod(fd, 0644) < 0 ||
	    imgout_write(in, size, fd, &o, &stats, &err) < 0) {
		if (!err.len)
			strbuf_addf(&err, "cannot write '%s': %s", tmp, strerror(errno));
		error("export: %s ('%s' from '%s')", strbuf_str(&err), out, disk);
		goto fail;
	}
	if (fsync(fd) < 0) {
		error("export: cannot sync '%s': %s", tmp,
		      errno == ENOSPC ? "no space left on the device" : strerror(errno));
		goto fail;
	}
	if (rename(tmp, out) < 0) {
		error("export: cannot rename '%s' to '%s': %s", tmp, out, strerror(errno));
		goto fail;
	}
	tmp_path = NULL;
	if ((n = fsync_parent(out)) < 0) {
		error("export: cannot sync the directory of '%s': %s", out, strerror(-n));
		goto out;
	}
	if (fstat(fd, &st) == 0)
		info("export: wrote '%s' (%s%s, %s stored of %s read, %.1f s)", out,
		     imgout_format_name(o.format),
		     o.format == IMGOUT_VHD	? (o.vhd_dynamic ? " dynamic" : " fixed")
		     : o.format == IMGOUT_QCOW2 && o.compress
			     ? (o.ctype == IMGOUT_ZSTD ? " zstd" : " zlib")
			     : "",
		     format_size((uint64_t)st.st_blocks * 512, sz, sizeof(sz)),
		     format_size(stats.read, rd, sizeof(rd)), (monotonic_ms() - t0) / 1000.0);
	r = 0;
	goto out;
fail:
	unlink(tmp);
	tmp_path = NULL;
out:
	strbuf_release(&err);
	return r;
}
