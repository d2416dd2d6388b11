/* SPDX-License-Identifier: MIT */
/*
 * imgforge keygen: a signing key and its self-signed certificate for update
 * bundles and channel indexes. A thin layer over update/sign.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/util.h"
#include "update/sign.h"

static const char usage[] =
	"usage: imgforge keygen -o <dir> [--name <cn>] [--days <n>]\n"
	"\n"
	"Make a key to sign update bundles with: <dir>/signing.key (an ECDSA P-256\n"
	"private key, PEM, mode 0600) and <dir>/signing.crt (its self-signed X.509\n"
	"certificate, PEM). Devices trust the certificate: put it in the image's\n"
	"update keyring. Existing files are never overwritten.\n";

static const char footer[] =
	"Keep signing.key off the build machine's shared disks. To replace a key,\n"
	"ship an image whose keyring holds the old and the new certificate first;\n"
	"see docs/update.md, \"Key rotation\".\n";

/*
 * Write data to dir/name, durably, only if no such file exists: a temporary
 * file is written and synced, then hard-linked to its name (link() never
 * replaces), then the directory is synced.
 */
static int write_new(const char *dir, const char *name, const char *data, unsigned mode)
{
	_cleanup_free_ char *path = path_join(dir, name), *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r = 0;

	tmp = xasprintf("%s.tmp-XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return error("keygen: cannot create a file in '%s': %s", dir, strerror(errno));
	if (fchmod(fd, mode) < 0 || write_all(fd, data, strlen(data)) < 0 || fsync(fd) < 0)
		r = -errno;
	if (r == 0 && link(tmp, path) < 0)
		r = -errno;
	unlink(tmp);
	if (r == -EEXIST)
		return error("keygen: '%s' exists; give another directory (existing keys are never "
			     "overwritten)",
			     path);
	if (r < 0)
		return error("keygen: cannot write '%s': %s", path, strerror(-r));
	return 0;
}

static int exists(const char *dir, const char *name)
{
	_cleanup_free_ char *path = path_join(dir, name);
	struct stat st;

	if (lstat(path, &st) == 0)
		return error("keygen: '%s' exists; give another directory (existing keys are never "
			     "overwritten)",
			     path);
	return 0;
}

int cmd_keygen(int argc, char **argv)
{
	const char *out = NULL, *name = "imgforge update signing key";
	unsigned days = 3650;
	const struct opt options[] = {
		OPT_STRING('o', "output", &out, "<dir>",
			   "the directory to write signing.key and "
			   "signing.crt to\n(created if needed)"),
		OPT_STRING(0, "name", &name, "<cn>",
			   "the certificate's common name (default\n"
			   "'imgforge update signing key')"),
		OPT_UINT(0, "days", &days, "<n>", 1, 36500,
			 "how long the certificate is valid, from now (default 3650)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "keygen", .usage = usage, .opts = options, .footer = footer};
	char *key = NULL, *cert = NULL, err[512];
	int n, r = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n > 0) {
		error("keygen: unexpected argument '%s'; the directory is given with -o", argv[0]);
		return EXIT_USAGE;
	}
	if (!out || !*out) {
		error("keygen: no output directory given (-o <dir>); see 'imgforge keygen --help'");
		return EXIT_USAGE;
	}
	n = mkdir_p(out, 0700);
	if (n < 0) {
		error("keygen: cannot create '%s': %s", out, strerror(-n));
		return 1;
	}
	if (exists(out, "signing.key") < 0 || exists(out, "signing.crt") < 0)
		return 1;
	if (sig_keygen(name, (int64_t)time(NULL), days, &key, &cert, err, sizeof(err)) < 0) {
		error("keygen: %s", err);
		return 1;
	}
	if (write_new(out, "signing.key", key, 0600) < 0)
		goto out;
	if (write_new(out, "signing.crt", cert, 0644) < 0) {
		/* No half pair left behind: a key without its certificate is of no use. */
		_cleanup_free_ char *k = path_join(out, "signing.key");
		unlink(k);
		goto out;
	}
	if (fsync_dir(out) < 0 || fsync_parent(out) < 0) {
		error("keygen: cannot sync '%s': %s", out, strerror(errno));
		goto out;
	}
	info("keygen: wrote '%s/signing.key' and '%s/signing.crt'", out, out);
	r = 0;
out:
	explicit_bzero(key, strlen(key));
	free(key);
	free(cert);
	return r;
}
