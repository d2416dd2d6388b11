/* SPDX-License-Identifier: MIT */
/*
 * imgforge mkfs: write an ext4 image straight from tarballs and
 * directories, as an ordinary user. A thin layer over tree.c and ext4.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
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
	"                     [--label <label>] [--uuid <uuid>] [--device]\n"
	"\n"
	"Write an ext4 filesystem image from tarballs and directories, without root\n"
	"and without unpacking: owners, modes, xattrs and devices come from the inputs.\n"
	"\n"
	"   --from <src>        a tarball (any compression), a .deb, or a directory\n"
	"                       (owners and xattrs taken from the host); repeatable,\n"
	"                       later sources win\n"
	"   --overlay <dir>     a host directory laid over the result, owned by root\n"
	"                       (--from and --overlay apply in command-line order)\n"
	"   -o, --output <file> the image to write (replaced only on success)\n"
	"   --size auto|<size>  image size, e.g. 2G; 'auto' (default) fits the content\n"
	"                       plus the headroom\n"
	"   --headroom <pct>    free space for --size auto, in percent of the content\n"
	"                       (default 15)\n"
	"   --label <label>     filesystem label (up to 16 bytes)\n"
	"   --uuid <uuid>       filesystem UUID (default: derived from the content)\n"
	"   --device            -o is a block or character device: write the image onto\n"
	"                       it in place (without it, mkfs refuses any -o that exists\n"
	"                       and is not a regular file)\n"
	"\n"
	"All timestamps are clamped to SOURCE_DATE_EPOCH (default: now); with the same\n"
	"inputs and SOURCE_DATE_EPOCH the image is the same, byte for byte.\n"
	"See docs/mkfs.md.\n";

enum { OPT_FROM = 256, OPT_OVERLAY, OPT_SIZE, OPT_HEADROOM, OPT_LABEL, OPT_UUID, OPT_DEVICE };

static int add_source(struct tree *t, const char *src, bool overlay, struct strbuf *err)
{
	struct stat st;

	if (stat(src, &st) < 0) {
		strbuf_addf(err, "cannot open '%s': %s", src, strerror(errno));
		return -errno;
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
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, OPT_FROM },
		{ "overlay", required_argument, NULL, OPT_OVERLAY },
		{ "output", required_argument, NULL, 'o' },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "headroom", required_argument, NULL, OPT_HEADROOM },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "uuid", required_argument, NULL, OPT_UUID },
		{ "device", no_argument, NULL, OPT_DEVICE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ext4_opts opts = EXT4_OPTS_INIT;
	struct strbuf err = STRBUF_INIT;
	struct tree *t = NULL;
	const char *out = NULL;
	char **srcs;
	bool *is_overlay;
	size_t n_srcs = 0, i;
	_cleanup_free_ char *tmpdir = NULL, *image = NULL;
	uint64_t size = 0;
	bool device = false;
	char sz[32];
	int c, r = 1;

	srcs = xcalloc((size_t)argc, sizeof(*srcs));
	is_overlay = xcalloc((size_t)argc, sizeof(*is_overlay));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_FROM:
		case OPT_OVERLAY:
			is_overlay[n_srcs] = c == OPT_OVERLAY;
			srcs[n_srcs++] = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case OPT_SIZE:
			if (!strcmp(optarg, "auto")) {
				opts.size = 0;
			} else if (parse_size(optarg, &size) < 0 || size < (1 << 20)) {
				error("mkfs: invalid --size '%s': give 'auto' or a size such as 512M or 2G "
				      "(at least 1M)", optarg);
				r = EXIT_USAGE;
				goto out;
			} else {
				opts.size = size;
			}
			break;
		case OPT_HEADROOM: {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || end == optarg || v < 0 || v > 1000) {
				error("mkfs: invalid --headroom '%s': give a percentage from 0 to 1000",
				      optarg);
				r = EXIT_USAGE;
				goto out;
			}
			opts.headroom_percent = (unsigned)v;
			break;
		}
		case OPT_LABEL:
			opts.label = optarg;
			break;
		case OPT_UUID:
			opts.uuid = optarg;
			break;
		case OPT_DEVICE:
			device = true;
			break;
		case 'h':
			r = usage_print(usage, true);
			goto out;
		default:
			error("mkfs: unknown option '%s'; see 'imgforge mkfs --help'",
			      argv[optind - 1]);
			r = EXIT_USAGE;
			goto out;
		}
	}
	if (optind < argc) {
		error("mkfs: unexpected argument '%s'; sources are given with --from", argv[optind]);
		r = EXIT_USAGE;
		goto out;
	}
	if (!out || n_srcs == 0) {
		error("mkfs: %s; see 'imgforge mkfs --help'",
		      !out ? "no output given (-o <file>)" : "no source given (--from <src>)");
		r = EXIT_USAGE;
		goto out;
	}
	if (check_target(out, device) < 0)
		goto out;
	opts.epoch = source_date_epoch((int64_t)time(NULL));

	t = tree_new();
	tree_set_default_mtime(t, opts.epoch);
	for (i = 0; i < n_srcs; i++) {
		verbose("mkfs: reading '%s'", srcs[i]);
		if (add_source(t, srcs[i], is_overlay[i], &err) < 0) {
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
	free(srcs);
	free(is_overlay);
	return r;
}
