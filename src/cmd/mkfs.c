/* SPDX-License-Identifier: MIT */
/*
 * imgforge mkfs: write an ext4 image straight from tarballs and
 * directories, as an ordinary user. A thin layer over tree.c and ext4.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "fs/ext4.h"
#include "fs/tree.h"
#include "core/util.h"

static const char usage[] =
	"usage: imgforge mkfs --from <src> [--from <src>]... [--overlay <dir>]...\n"
	"                     -o <out.ext4> [--size auto|<size>] [--headroom <percent>]\n"
	"                     [--label <label>] [--uuid <uuid>] [--lineage <name>] [--device]\n"
	"\n"
	"Write an ext4 filesystem image from tarballs and directories, without root\n"
	"and without unpacking: owners, modes, xattrs and devices come from the inputs.\n";

static const char footer[] =
	"All timestamps are clamped to SOURCE_DATE_EPOCH (default: now); with the same\n"
	"inputs and SOURCE_DATE_EPOCH the image is the same, byte for byte.\n"
	"See docs/mkfs.md.\n";

/* The sources, --from and --overlay in command-line order. */
struct sources {
	const char **path;
	bool *is_overlay;
	size_t n, alloc, alloc_overlay;
};

static int opt_source(const struct opt *o, const char *arg, struct strbuf *err)
{
	struct sources *s = o->value;

	(void)err;
	GROW(s->path, s->alloc, s->n + 1);
	GROW(s->is_overlay, s->alloc_overlay, s->n + 1);
	s->is_overlay[s->n] = o->data;
	s->path[s->n++] = arg;
	return 0;
}

static int opt_size(const struct opt *o, const char *arg, struct strbuf *err)
{
	uint64_t size;

	if (!strcmp(arg, "auto")) {
		*(uint64_t *)o->value = 0;
		return 0;
	}
	if (parse_size(arg, &size) < 0 || size < (1 << 20)) {
		strbuf_addf(err, "invalid --size '%s': give 'auto' or a size such as 512M or 2G "
			    "(at least 1M)", arg);
		return -EINVAL;
	}
	*(uint64_t *)o->value = size;
	return 0;
}

static int add_source(struct tree *t, const char *src, bool overlay, struct strbuf *err)
{
	struct stat st;

	if (stat(src, &st) < 0) {
		int e = errno; /* before strbuf_addf, which may change it */

		strbuf_addf(err, "cannot open '%s': %s", quote_path(src), strerror(e));
		return -e;
	}
	/* A FIFO blocks and a device never ends: only files and directories are read. */
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		strbuf_addf(err, "cannot read '%s': not a regular file or directory",
			    quote_path(src));
		return -EINVAL;
	}
	if (overlay)
		return tree_add_dir(t, src, "", 0, 0, err);
	if (S_ISDIR(st.st_mode))
		return tree_add_dir(t, src, "", TREE_OWNER_HOST, 0, err);
	return tree_add_archive(t, src, err);
}

static const char *file_kind(mode_t mode)
{
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISSOCK(mode))
		return "a socket";
	return "a special file";
}

/*
 * The image replaces a regular file by a rename: done to a device node,
 * that would replace the node with a file and leave the device untouched.
 * So any other existing target needs --device, which writes onto it.
 */
static int check_target(const char *out, bool device)
{
	struct stat st;

	if (stat(out, &st) < 0) {
		if (device || errno != ENOENT)
			return error("mkfs: cannot open '%s': %s", out, strerror(errno));
		return 0;
	}
	if (device && !S_ISBLK(st.st_mode) && !S_ISCHR(st.st_mode))
		return error("mkfs: '%s' is not a device: --device writes onto an existing block "
			     "or character device", out);
	if (!device && !S_ISREG(st.st_mode))
		return error("mkfs: '%s' is %s, not a regular file: give --device to write the "
			     "image onto it", out, file_kind(st.st_mode));
	return 0;
}

/* Write the image file onto the device, in place, from its first byte. */
static int write_device(const char *image, const char *dev, uint64_t size)
{
	_cleanup_close_ int in = -1, out = -1;
	int r;

	in = open(image, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return error("mkfs: cannot read '%s': %s", image, strerror(errno));
	out = open(dev, O_WRONLY | O_CLOEXEC);
	if (out < 0)
		return error("mkfs: cannot open '%s': %s", dev, strerror(errno));
	r = copy_range(in, 0, out, 0, size);
	if (r == 0 && fsync(out) < 0 && errno != EINVAL && errno != EROFS)
		r = -errno;
	if (r < 0)
		return error("mkfs: cannot write '%s': %s", dev, strerror(-r));
	return 0;
}

int cmd_mkfs(int argc, char **argv)
{
	bool device = false;
	struct ext4_opts opts = EXT4_OPTS_INIT;
	struct strbuf err = STRBUF_INIT;
	struct sources srcs = { 0 };
	struct tree *t = NULL;
	const char *out = NULL;
	const struct opt options[] = {
		OPT_CALLBACK_DATA(0, "from", &srcs, "<src>",
				  "a tarball (any compression), a .deb, or a directory\n"
				  "(owners and xattrs taken from the host); repeatable,\n"
				  "later sources win",
				  opt_source, false),
		OPT_CALLBACK_DATA(0, "overlay", &srcs, "<dir>",
				  "a host directory laid over the result, owned by root\n"
				  "(--from and --overlay apply in command-line order)",
				  opt_source, true),
		OPT_STRING('o', "output", &out, "<file>",
			   "the image to write (replaced only on success)"),
		OPT_CALLBACK(0, "size", &opts.size, "auto|<size>",
			     "image size, e.g. 2G; 'auto' (default) fits the content\n"
			     "plus the headroom",
			     opt_size),
		OPT_UINT(0, "headroom", &opts.headroom_percent, "<pct>", 0, 1000,
			 "free space for --size auto, in percent of the content\n"
			 "(default 15)"),
		OPT_STRING(0, "label", &opts.label, "<label>", "filesystem label (up to 16 bytes)"),
		OPT_STRING(0, "uuid", &opts.uuid, "<uuid>",
			   "filesystem UUID (default: derived from the lineage, or\n"
			   "else from the content)"),
		OPT_STRING(0, "lineage", &opts.lineage, "<name>",
			   "the image's identity across versions: the UUID, the\n"
			   "directory hash seed and the checksum seed come from it\n"
			   "(and the label), so versions differ only where their\n"
			   "content does (default: all from the content)"),
		OPT_FLAG(0, "device", &device,
			 "-o is a block or character device: write the image onto\n"
			 "it in place (without it, mkfs refuses any -o that exists\n"
			 "and is not a regular file)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "mkfs",
		.usage = usage,
		.opts = options,
		.footer = footer,
	};
	size_t i;
	_cleanup_free_ char *tmpdir = NULL, *image = NULL;
	uint64_t size = 0;
	char sz[32];
	int n, r = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0) {
		r = opt_exit_status(n);
		goto out;
	}
	if (n > 0) {
		error("mkfs: unexpected argument '%s'; sources are given with --from", argv[0]);
		r = EXIT_USAGE;
		goto out;
	}
	if (!out || !*out || srcs.n == 0) {
		error("mkfs: %s; see 'imgforge mkfs --help'",
		      !out ? "no output given (-o <file>)"
		      : !*out ? "the output file name is empty (-o <file>)"
			      : "no source given (--from <src>)");
		r = EXIT_USAGE;
		goto out;
	}
	if (check_target(out, device) < 0)
		goto out;
	opts.epoch = source_date_epoch((int64_t)time(NULL));

	t = tree_new();
	tree_set_default_mtime(t, opts.epoch);
	for (i = 0; i < srcs.n; i++) {
		verbose("mkfs: reading '%s'", srcs.path[i]);
		if (add_source(t, srcs.path[i], srcs.is_overlay[i], &err) < 0) {
			error("%s", err.buf);
			goto out;
		}
	}
	verbose("mkfs: writing '%s'", out);
	if (device) {
		/* Built whole in a private file first: a failure leaves the device as it was. */
		const char *tmp = getenv("TMPDIR");
		tmpdir = xasprintf("%s/imgforge-mkfs-XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(tmpdir)) {
			error("mkfs: cannot create a temporary directory: %s", strerror(errno));
			free(TAKE_PTR(tmpdir));
			goto out;
		}
		image = path_join(tmpdir, "image.ext4");
	}
	if (ext4_write(t, image ? image : out, &opts, &size, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	if (image && write_device(image, out, size) < 0)
		goto out;
	info("mkfs: wrote '%s' (%s)", out, format_size(size, sz, sizeof(sz)));
	r = 0;
out:
	if (tmpdir)
		rm_rf(tmpdir);
	tree_free(t);
	strbuf_release(&err);
	free(srcs.path);
	free(srcs.is_overlay);
	return r;
}
