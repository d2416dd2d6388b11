/* SPDX-License-Identifier: MIT */
/*
 * imgforge mkfs: write an ext4 image straight from tarballs and
 * directories, as an ordinary user. A thin layer over tree.c and ext4.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd/cmd.h"
#include "fs/ext4.h"
#include "fs/tree.h"
#include "core/util.h"

static const char usage[] =
	"usage: imgforge mkfs --from <src> [--from <src>]... [--overlay <dir>]...\n"
	"                     -o <out.ext4> [--size auto|<size>] [--headroom <percent>]\n"
	"                     [--label <label>] [--uuid <uuid>]\n"
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
	"\n"
	"All timestamps are clamped to SOURCE_DATE_EPOCH (default: now); with the same\n"
	"inputs and SOURCE_DATE_EPOCH the image is the same, byte for byte.\n"
	"See docs/mkfs.md.\n";

enum { OPT_FROM = 256, OPT_OVERLAY, OPT_SIZE, OPT_HEADROOM, OPT_LABEL, OPT_UUID };

static int add_source(struct tree *t, const char *src, bool overlay, struct strbuf *err)
{
	struct stat st;

	if (stat(src, &st) < 0) {
		int e = errno; /* before strbuf_addf, which may change it */

		strbuf_addf(err, "cannot open '%s': %s", src, strerror(e));
		return -e;
	}
	/* A FIFO blocks and a device never ends: only files and directories are read. */
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
		strbuf_addf(err, "cannot read '%s': not a regular file or directory", src);
		return -EINVAL;
	}
	if (overlay)
		return tree_add_dir(t, src, "", 0, 0, err);
	if (S_ISDIR(st.st_mode))
		return tree_add_dir(t, src, "", TREE_OWNER_HOST, 0, err);
	return tree_add_archive(t, src, err);
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
	uint64_t size = 0;
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
	if (ext4_write(t, out, &opts, &size, &err) < 0) {
		error("%s", err.buf);
		goto out;
	}
	info("mkfs: wrote '%s' (%s)", out, format_size(size, sz, sizeof(sz)));
	r = 0;
out:
	tree_free(t);
	strbuf_release(&err);
	free(srcs);
	free(is_overlay);
	return r;
}
