/* SPDX-License-Identifier: MIT */
/*
 * imgforge bundle: make, show and check signed update bundles. A thin layer
 * over update/bundle.c; a build id is looked up in the build registry.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/util.h"
#include "store/cache.h"
#include "store/registry.h"
#include "update/bundle.h"
#include "update/patch.h"
#include "update/sign.h"

static const char usage_create[] =
	"usage: imgforge bundle <build>|<root.ext4> -o <file> --key <key> --cert <cert>\n"
	"                       [--compatible <name>] [--version <v>] [--format <n>]\n"
	"                       [--frame-size <size>] [--delta-from <build>|<root.ext4>]\n"
	"   or: imgforge bundle info <file> [--json]\n"
	"   or: imgforge bundle verify <file> --keyring <keyring> [--compatible <name>]\n"
	"\n"
	"Write a signed update bundle of a root filesystem image: one file, read\n"
	"front to back, that imgforge-update installs into the inactive slot of an\n"
	"A/B disk. From a registered build (an id or a unique prefix, see 'imgforge\n"
	"ls'), the build's root.ext4, image name, version and id are used; from an\n"
	"ext4 file, --compatible and --version are needed.\n"
	"\n"
	"With --delta-from, the bundle also carries a patch from that earlier image\n"
	"(format 4): a device running exactly it fetches the patch alone.\n";

static const char footer_create[] =
	"The bundle is written to <file>.tmp, synced, then renamed. The format and\n"
	"what the signature covers: docs/update.md.\n";

static const char usage_info[] =
	"usage: imgforge bundle info <file> [--json]\n"
	"\n"
	"Print a bundle's manifest and signer WITHOUT checking the signature\n"
	"('imgforge bundle verify' checks it).\n";

static const char usage_verify[] =
	"usage: imgforge bundle verify <file> --keyring <keyring> [--compatible <name>]\n"
	"\n"
	"Check a bundle as a device would before installing it: the signature\n"
	"against the keyring, the manifest, then every chunk's SHA-256, the\n"
	"payload's and the whole image's. Exit 0 when all hold, 1 otherwise.\n";

static const char footer_verify[] =
	"A keyring is a PEM file of one or more certificates, or a directory of\n"
	"*.crt/*.pem files; a bundle signed by any of them (or by a certificate\n"
	"one of them issued) is trusted while the certificates are valid.\n";

static int bundle_create_cmd(int argc, char **argv)
{
	const char *out = NULL, *key = NULL, *cert = NULL, *compatible = NULL, *version = NULL;
	const char *registry = NULL, *cache = NULL, *format = NULL, *frame = NULL;
	const char *from = NULL;
	const struct opt options[] = {
		OPT_STRING('o', "output", &out, "<file>", "the bundle to write"),
		OPT_STRING(0, "key", &key, "<key>",
			   "the PEM private key to sign with (imgforge keygen)"),
		OPT_STRING(0, "cert", &cert, "<cert>", "the key's PEM certificate"),
		OPT_STRING(0, "compatible", &compatible, "<name>",
			   "the name devices must run to install it\n(default: the build's image "
			   "name)"),
		OPT_STRING(0, "version", &version, "<v>",
			   "the image version (default: the build's)"),
		OPT_STRING(0, "format", &format, "<n>",
			   "the bundle format: 3 (default; delta downloads with a paged\nindex), "
			   "or 2 or 1 for devices whose imgforge-update reads no newer"),
		OPT_STRING(0, "frame-size", &frame, "<size>",
			   "image bytes per zstd frame, the unit a delta download\nfetches: "
			   "a power of two from 4K to 1M (default 64K;\nformats 2 and 3)"),
		OPT_STRING(0, "delta-from", &from, "<build>",
			   "add a patch from this earlier build or root.ext4: devices\n"
			   "running it download the patch only (format 4)"),
		OPT_STRING(0, "registry", &registry, "<path>",
			   "the registry database (default: registry.db in the cache)"),
		OPT_STRING(0, "cache", &cache, "<dir>",
			   "the cache directory (default $XDG_CACHE_HOME/imgforge)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "bundle", .usage = usage_create, .opts = options, .footer = footer_create};
	struct registry_build *b = NULL, *fb = NULL;
	_cleanup_free_ char *image = NULL, *from_image = NULL;
	const char *build_id = NULL;
	uint64_t frame_size = 0;
	int patched = 0;
	struct stat st;
	int64_t created;
	char err[1024], sz[32];
	int n, r = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1) {
		error("bundle: %s; see 'imgforge bundle --help'",
		      n ? "give one build or image" : "no build or image given");
		return EXIT_USAGE;
	}
	if (!out || !*out || !key || !cert) {
		error("bundle: %s; see 'imgforge bundle --help'",
		      !out || !*out ? "no output given (-o <file>)"
		      : !key	    ? "no signing key given (--key <key>)"
				    : "no certificate given (--cert <cert>)");
		return EXIT_USAGE;
	}
	if (format && strcmp(format, "1") && strcmp(format, "2") && strcmp(format, "3") &&
	    strcmp(format, "4")) {
		error("bundle: --format must be 1, 2, 3 or 4, not '%s'", format);
		return EXIT_USAGE;
	}
	if (format && !strcmp(format, "4") && !from) {
		error("bundle: format 4 is format 3 with a patch: give the earlier image with "
		      "--delta-from <build>|<root.ext4>");
		return EXIT_USAGE;
	}
	if (from && format && strcmp(format, "3") && strcmp(format, "4")) {
		error("bundle: --delta-from writes format 4 (format 3 and a patch); drop --format %s",
		      format);
		return EXIT_USAGE;
	}
	if (from && !*from) {
		error("bundle: --delta-from needs an earlier build or root.ext4");
		return EXIT_USAGE;
	}
	if (frame && (parse_size(frame, &frame_size) < 0 || !bundle_frame_size_valid(frame_size))) {
		error("bundle: --frame-size must be a power of two from 4K to 1M (such as 32K or "
		      "64K), not '%s'",
		      frame);
		return EXIT_USAGE;
	}
	if (frame && format && !strcmp(format, "1")) {
		error("bundle: --frame-size needs format 2 or 3 (a format-1 bundle has one frame "
		      "per chunk); drop one of --format 1 and --frame-size");
		return EXIT_USAGE;
	}
	created = source_date_epoch((int64_t)time(NULL));
	if (stat(argv[0], &st) == 0 || strchr(argv[0], '/')) {
		if (!compatible || !version) {
			error("bundle: a bundle of the file '%s' needs --compatible <name> and "
			      "--version <v>",
			      argv[0]);
			return EXIT_USAGE;
		}
		image = xstrdup(argv[0]);
	} else {
		if (build_output_resolve(
			    &(struct build_output_query){
				    .cmd = "bundle",
				    .output = "root.ext4",
				    .takes_file = true,
				    .give = "give a root.ext4 or a build id from 'imgforge ls'",
				    .no_output = "build the image with a rootfs output, or give the file",
				    .stale = "rebuild it, or give the file with --compatible and "
					     "--version",
				    .check_sha256 = true,
				    .registry = registry,
				    .cache = cache,
			    },
			    argv[0], &b, &image) < 0)
			return 1;
		if (!compatible)
			compatible = b->image;
		if (!version)
			version = b->version;
		if (!version) {
			error("bundle: build %s has no version; give --version <v>", b->id);
			goto out;
		}
		build_id = b->id;
		if (!getenv("SOURCE_DATE_EPOCH") && b->created > 0)
			created = b->created;
	}
	if (from) {
		if (stat(from, &st) == 0 || strchr(from, '/')) {
			from_image = xstrdup(from);
		} else if (build_output_resolve(
				   &(struct build_output_query){
					   .cmd = "bundle",
					   .output = "root.ext4",
					   .takes_file = true,
					   .give = "give the earlier root.ext4 or its build id "
						   "(--delta-from)",
					   .no_output = "give the earlier root.ext4 file",
					   .stale = "give the earlier root.ext4 file",
					   .check_sha256 = true,
					   .registry = registry,
					   .cache = cache,
				   },
				   from, &fb, &from_image) < 0) {
			goto out;
		}
	}
	verbose("bundle: writing '%s' from '%s'", out, image);
	if (bundle_create_patch(image, out, key, cert, compatible, version, build_id, created,
				format && strcmp(format, "4") ? (unsigned)atoi(format) : BUNDLE_FORMAT,
				frame_size, from_image, &patched, err, sizeof(err)) < 0) {
		error("bundle: %s", err);
		goto out;
	}
	if (patched < 0)
		info("bundle: the patch from '%s' would be larger than %u MiB, more than a device "
		     "takes: written without it (format 3)",
		     from, PATCH_MAX_SIZE >> 20);
	if (stat(out, &st) == 0)
		info("bundle: wrote '%s' (%s, %s %s)", out,
		     format_size((uint64_t)st.st_size, sz, sizeof(sz)), compatible, version);
	r = 0;
out:
	registry_build_free(b);
	registry_build_free(fb);
	return r;
}

static int open_file(const char *cmdname, const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		error("%s: cannot open '%s': %s", cmdname, path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		error("%s: '%s' is not a regular file", cmdname, path);
		close(fd);
		return -1;
	}
	return fd;
}

static const char *utc(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "%" PRId64, t);
	return buf;
}

static int bundle_info_cmd(int argc, char **argv)
{
	bool json = false;
	const struct opt options[] = {
		OPT_FLAG(0, "json", &json, "print JSON"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {.name = "bundle info", .usage = usage_info, .opts = options};
	struct bundle_manifest *m = NULL;
	_cleanup_free_ uint8_t *sig = NULL;
	_cleanup_free_ char *signer = NULL;
	_cleanup_close_ int fd = -1;
	struct strbuf out = STRBUF_INIT;
	char err[1024], hex[SHA256_HEX_LEN], sz[32], when[48];
	uint64_t stored = 0;
	size_t siglen = 0, i;
	int n;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1) {
		error("bundle info: %s; see 'imgforge bundle info --help'",
		      n ? "give one bundle" : "no bundle given");
		return EXIT_USAGE;
	}
	fd = open_file("bundle info", argv[0]);
	if (fd < 0)
		return 1;
	if (bundle_open_unverified(bundle_read_fd, &fd, &m, &sig, &siglen, err, sizeof(err)) < 0) {
		error("bundle info: '%s': %s", argv[0], err);
		return 1;
	}
	if (sig_describe_der_signer(sig, siglen, &signer, err, sizeof(err)) < 0)
		signer = xasprintf("unreadable (%s)", err);
	for (i = 0; i < m->n_chunks; i++)
		stored += m->chunks[i].size;
	if (json) {
		struct json j;

		json_init(&j, &out, true);
		json_begin_object(&j);
		json_kv_string(&j, "file", argv[0]);
		json_kv_bool(&j, "signature_checked", false);
		json_kv_string(&j, "signer", signer);
		json_key(&j, "manifest");
		{
			struct strbuf mj = STRBUF_INIT;
			manifest_write(m, &mj);
			json_raw(&j, strbuf_str(&mj));
			strbuf_release(&mj);
		}
		json_end_object(&j);
	} else {
		strbuf_addf(&out, "bundle      %s\n", argv[0]);
		strbuf_addf(&out, "format      %u\n", m->format);
		strbuf_addf(&out, "compatible  %s\n", m->compatible);
		strbuf_addf(&out, "version     %s\n", m->version);
		strbuf_addf(&out, "build id    %s\n", *m->build_id ? m->build_id : "-");
		strbuf_addf(&out, "created     %s\n", utc(m->created, when, sizeof(when)));
		hex_encode(m->image_sha256, 32, hex);
		strbuf_addf(&out, "image       %" PRIu64 " bytes (%s), sha256 %s\n", m->image_size,
			    format_size(m->image_size, sz, sizeof(sz)), hex);
		hex_encode(m->payload_sha256, 32, hex);
		strbuf_addf(&out,
			    "payload     %" PRIu64 " bytes at byte %" PRIu64 ", zstd, sha256 %s\n",
			    m->payload_size, m->payload_offset, hex);
		strbuf_addf(&out,
			    "chunks      %zu of %" PRIu64 " bytes stored (%" PRIu64
			    " image bytes; the rest is zeros)\n",
			    m->n_chunks, m->chunk_size, stored);
		if (m->format >= 2)
			strbuf_addf(&out, "frames      of %" PRIu64 " bytes, zstd each\n",
				    m->frame_size);
		if (m->has_chunk_index) {
			hex_encode(m->chunk_index_sha256, 32, hex);
			if (m->format >= 2)
				strbuf_addf(&out, "chunk index %" PRIu64 " bytes, sha256 %s\n",
					    m->index_size, hex);
			else
				strbuf_addf(&out, "chunk index sha256 %s\n", hex);
		}
		if (m->has_patch) {
			hex_encode(m->patch_sha256, 32, hex);
			strbuf_addf(&out, "patch       %" PRIu64 " bytes at byte %" PRIu64 ", sha256 %s\n",
				    m->patch_size, m->payload_offset + m->payload_size, hex);
			hex_encode(m->patch_from_sha256, 32, hex);
			strbuf_addf(&out, "patch from  an image of %" PRIu64 " bytes, sha256 %s\n",
				    m->patch_from_size, hex);
		}
		strbuf_addf(&out, "signer      %s\n", signer);
		strbuf_addf(
			&out,
			"signature   NOT CHECKED (imgforge bundle verify %s --keyring <keyring>)\n",
			argv[0]);
	}
	fwrite(out.buf, 1, out.len, stdout);
	strbuf_release(&out);
	bundle_manifest_free(m);
	return 0;
}

static int bundle_verify_cmd(int argc, char **argv)
{
	const char *keyring = NULL, *compatible = NULL;
	const struct opt options[] = {
		OPT_STRING(0, "keyring", &keyring, "<keyring>",
			   "the trusted certificates: a PEM file or a directory"),
		OPT_STRING(0, "compatible", &compatible, "<name>",
			   "also refuse a bundle for another compatible name"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {.name = "bundle verify",
				    .usage = usage_verify,
				    .opts = options,
				    .footer = footer_verify};
	struct bundle_manifest *m = NULL;
	_cleanup_close_ int fd = -1;
	char err[1024];
	int n, r = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1 || !keyring) {
		error("bundle verify: %s; see 'imgforge bundle verify --help'",
		      n > 1    ? "give one bundle"
		      : n == 0 ? "no bundle given"
			       : "no keyring given (--keyring <keyring>)");
		return EXIT_USAGE;
	}
	fd = open_file("bundle verify", argv[0]);
	if (fd < 0)
		return 1;
	if (bundle_open(bundle_read_fd, &fd, keyring, &m, err, sizeof(err)) < 0 ||
	    (compatible &&
	     bundle_check_target(m, compatible, NULL, false, false, err, sizeof(err)) < 0) ||
	    bundle_stream_payload(bundle_read_fd, &fd, m, NULL, NULL, NULL, err, sizeof(err)) < 0) {
		error("bundle verify: '%s': %s", argv[0], err);
		goto out;
	}
	info("bundle verify: '%s': good signature, %s %s, %zu chunks and the image's SHA-256 "
	     "match",
	     argv[0], m->compatible, m->version, m->n_chunks);
	r = 0;
out:
	bundle_manifest_free(m);
	return r;
}

int cmd_bundle(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "info"))
		return bundle_info_cmd(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return bundle_verify_cmd(argc - 1, argv + 1);
	return bundle_create_cmd(argc, argv);
}
