/* SPDX-License-Identifier: MIT */
/*
 * imgforge channel: publish a bundle on a channel of an update server's
 * directory: DIR/channels.json and its detached signature
 * DIR/channels.json.sig. A thin layer over update/channel.c and sign.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/hash.h"
#include "core/util.h"
#include "update/bundle.h"
#include "update/channel.h"
#include "update/jsonr.h"
#include "update/sign.h"

static const char usage[] =
	"usage: imgforge channel <dir> --channel <name> --bundle <file> --url <url>\n"
	"                        --key <key> --cert <cert>\n"
	"\n"
	"Offer a bundle on a channel: set <name> in <dir>/channels.json to the\n"
	"bundle's compatible name, version, size and SHA-256 and the URL devices\n"
	"fetch it from, keep the other channels, and sign the index into\n"
	"<dir>/channels.json.sig. Devices whose update channel is <dir>'s URL\n"
	"read the index, check its signature against their keyring, and install\n"
	"the bundle when it is newer than what they run.\n";

static const char footer[] = "See docs/update.md, \"Channels\".\n";

/* Write data to path through path.tmp: synced and renamed; the directory is synced by the caller.
 */
static int write_durable(const char *path, const void *data, size_t len)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
	_cleanup_close_ int fd = -1;
	int r = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return error("channel: cannot create '%s': %s", tmp, strerror(errno));
	if (write_all(fd, data, len) < 0 || fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return error("channel: cannot write '%s': %s", path, strerror(-r));
	}
	return 0;
}

int cmd_channel(int argc, char **argv)
{
	const char *name = NULL, *bundle = NULL, *url = NULL, *key = NULL, *cert = NULL;
	const struct opt options[] = {
		OPT_STRING(0, "channel", &name, "<name>", "the channel: stable, testing, ..."),
		OPT_STRING(0, "bundle", &bundle, "<file>", "the bundle to offer (imgforge bundle)"),
		OPT_STRING(0, "url", &url, "<url>", "where devices fetch the bundle from"),
		OPT_STRING(0, "key", &key, "<key>", "the PEM private key to sign the index with"),
		OPT_STRING(0, "cert", &cert, "<cert>", "the key's PEM certificate"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "channel", .usage = usage, .opts = options, .footer = footer};
	_cleanup_free_ char *index = NULL, *sigpath = NULL, *old = NULL;
	_cleanup_free_ uint8_t *sig = NULL;
	_cleanup_close_ int fd = -1;
	struct bundle_manifest *m = NULL;
	struct strbuf out = STRBUF_INIT;
	struct channel_entry e = {0};
	char err[1024], hex[SHA256_HEX_LEN];
	size_t old_len = 0, siglen = 0;
	struct stat st;
	int n, r = 1, i;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1 || !name || !bundle || !url || !key || !cert) {
		error("channel: %s; see 'imgforge channel --help'",
		      n != 1	? "give one directory"
		      : !name	? "no channel given (--channel <name>)"
		      : !bundle ? "no bundle given (--bundle <file>)"
		      : !url	? "no URL given (--url <url>)"
				: "give the signing key and certificate (--key, --cert)");
		return EXIT_USAGE;
	}
	if (!channel_name_valid(name)) {
		error("channel: bad channel name '%s': give 1 to 64 characters of A-Z a-z 0-9 . _ "
		      "-",
		      name);
		return EXIT_USAGE;
	}
	if (stat(argv[0], &st) < 0 || !S_ISDIR(st.st_mode)) {
		error("channel: '%s' is not a directory; create the update server's directory "
		      "first",
		      argv[0]);
		return 1;
	}
	fd = open(bundle, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		error("channel: cannot open '%s': %s", bundle, strerror(errno));
		return 1;
	}
	if (bundle_open_unverified(bundle_read_fd, &fd, &m, NULL, NULL, err, sizeof(err)) < 0) {
		error("channel: '%s': %s", bundle, err);
		return 1;
	}
	i = sha256_file(bundle, hex, &e.size);
	if (i < 0) {
		error("channel: cannot read '%s': %s", bundle, strerror(-i));
		goto out;
	}
	for (i = 0; i < 32; i++)
		sscanf(hex + 2 * i, "%2hhx", &e.sha256[i]);
	e.compatible = m->compatible;
	e.version = m->version;
	e.url = (char *)url;
	index = path_join(argv[0], "channels.json");
	sigpath = path_join(argv[0], "channels.json.sig");
	i = read_file(index, JSONR_MAX_SIZE, &old, &old_len);
	if (i < 0 && i != -ENOENT) {
		error("channel: cannot read '%s': %s", index, strerror(-i));
		goto out;
	}
	if (channel_update(old, old_len, name, &e, &out, err, sizeof(err)) < 0) {
		error("channel: '%s': %s; fix or remove it", index, err);
		goto out;
	}
	if (sig_sign_detached(out.buf, out.len, key, cert, &sig, &siglen, err, sizeof(err)) < 0) {
		error("channel: %s", err);
		goto out;
	}
	/*
	 * The index, then its signature: between the two renames a device sees
	 * a signature that does not match and refuses, then tries again later.
	 */
	if (write_durable(index, out.buf, out.len) < 0 || write_durable(sigpath, sig, siglen) < 0)
		goto out;
	if (fsync_dir(argv[0]) < 0) {
		error("channel: cannot sync '%s': %s", argv[0], strerror(errno));
		goto out;
	}
	info("channel: '%s' offers %s %s on '%s'", index, m->compatible, m->version, name);
	r = 0;
out:
	bundle_manifest_free(m);
	strbuf_release(&out);
	return r;
}
