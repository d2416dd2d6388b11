/* SPDX-License-Identifier: MIT */
/*
 * imgforge publish: a registered build's disk made an image in a cloud. The
 * disk is exported in-process (fs/imgout.c) to the format the cloud takes,
 * into a state directory of the cache that also keeps what a resumable
 * upload needs; the cloud module (src/cloud/) uploads and registers it; the
 * image id is recorded in the registry. Nothing is recorded unless the cloud
 * said the image exists. See docs/publish.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloud/cloud.h"
#include "cmd/cmd.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/util.h"
#include "fs/gpt.h"
#include "fs/imgout.h"
#include "store/cache.h"
#include "store/registry.h"

static const char usage[] =
	"usage: imgforge publish <build> --to aws|openstack|scaleway [--region <r>]\n"
	"                        [--name <n>] [--public] [--format <f>] [--bucket <b>]\n"
	"                        [--json]\n"
	"\n"
	"Make a registered build's disk a bootable image in a cloud: export it to\n"
	"the format the cloud takes, upload it (resumable: run the same command\n"
	"again after an interruption and the upload goes on from the next part),\n"
	"register the image, and record its id in the registry ('imgforge show',\n"
	"'imgforge ls --published'). The image id is printed on stdout.\n";

static const char footer[] =
	"Formats: aws takes raw (default: EBS direct APIs, no bucket, only the\n"
	"disk's data sent) or vmdk/vhd (S3 upload and EC2 ImportSnapshot);\n"
	"openstack and scaleway take qcow2. Credentials are read from each cloud's\n"
	"own places (AWS: environment, ~/.aws; OpenStack: OS_* or clouds.yaml;\n"
	"Scaleway: SCW_* or its config file) and never stored. See docs/publish.md.\n";

enum target { T_AWS, T_OPENSTACK, T_SCALEWAY };
static const char *const targets[] = {"aws", "openstack", "scaleway", NULL};

static const struct {
	int (*publish)(const struct cloud_image *img, struct cloud_result *res, struct strbuf *err);
	const char *formats[3]; /* what the cloud takes; the first is the default */
} target_info[] = {
	[T_AWS] = {cloud_publish_aws, {"raw", "vmdk", "vhd"}},
	[T_OPENSTACK] = {cloud_publish_openstack, {"qcow2", "raw", NULL}},
	[T_SCALEWAY] = {cloud_publish_scaleway, {"qcow2", NULL, NULL}},
};

/* --- progress --- */

struct progress {
	bool tty;
	int64_t t0, last;
	uint64_t first; /* bytes already sent when this run began (a resumed upload) */
	bool started, shown;
};

static void fmt_eta(int64_t s, char *buf, size_t len)
{
	if (s >= 3600)
		snprintf(buf, len, "%" PRId64 ":%02d:%02d", s / 3600, (int)(s / 60 % 60),
			 (int)(s % 60));
	else
		snprintf(buf, len, "%d:%02d", (int)(s / 60), (int)(s % 60));
}

/*
 * Bytes, rate and time left on one line of a terminal, redrawn at most four
 * times a second; nothing when stderr is not a terminal or with -q (logs
 * and CI output get the one line at the end instead).
 */
static void on_progress(void *userdata, uint64_t done, uint64_t total)
{
	struct progress *p = userdata;
	int64_t now = monotonic_ms();
	char a[32], b[32], r[32], eta[32] = "-";
	double rate;

	if (!p->tty)
		return;
	if (!p->started) {
		p->started = true;
		p->t0 = now;
		p->first = done;
	}
	if (now - p->last < 250 && done < total)
		return;
	p->last = now;
	rate = now > p->t0 ? (double)(done - p->first) * 1000.0 / (double)(now - p->t0) : 0;
	if (rate > 0 && total > done)
		fmt_eta((int64_t)((double)(total - done) / rate), eta, sizeof(eta));
	else if (total <= done)
		snprintf(eta, sizeof(eta), "0:00");
	fprintf(stderr, "\r\033[K%s of %s  %s/s  ETA %s", format_size(done, a, sizeof(a)),
		format_size(total, b, sizeof(b)), format_size((uint64_t)rate, r, sizeof(r)), eta);
	p->shown = true;
}

static void progress_end(struct progress *p)
{
	if (p->shown)
		fputs("\r\033[K", stderr);
	p->shown = false;
}

/* --- the file to upload --- */

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* "uefi" when the disk's GPT has an EFI system partition, else "bios". */
static const char *disk_firmware(int fd)
{
	uint8_t hdr[92], ent[128], esp[16];
	uint64_t lba;
	uint32_t n, size, i;

	if (gpt_guid_parse(GPT_TYPE_ESP, esp) < 0 || pread(fd, hdr, sizeof(hdr), 512) != 92 ||
	    memcmp(hdr, "EFI PART", 8))
		return "bios";
	lba = le32(hdr + 72) | (uint64_t)le32(hdr + 76) << 32;
	n = le32(hdr + 80);
	size = le32(hdr + 84);
	if (size < 128 || n > 1024)
		return "bios";
	for (i = 0; i < n; i++) {
		if (pread(fd, ent, sizeof(ent), (off_t)(lba * 512 + (uint64_t)i * size)) != 128)
			break;
		if (!memcmp(ent, esp, 16))
			return "uefi";
	}
	return "bios";
}

/*
 * The disk exported to format into dir/disk.<format>, unless an earlier run
 * left it there complete (an export is only renamed into place once synced,
 * and the same disk gives the same bytes, so a file there is this one).
 */
static int export_disk(const char *disk, const char *dir, enum imgout_format f, char **ret_path)
{
	_cleanup_free_ char *path = xasprintf("%s/disk.%s", dir, imgout_format_name(f));
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
	_cleanup_close_ int in = -1, out = -1;
	struct imgout_opts o = {
		.format = f, .compress = f == IMGOUT_VMDK, .extent_name = "disk.vmdk"};
	struct strbuf err = STRBUF_INIT;
	struct stat st;
	int64_t t0 = monotonic_ms();
	int r = -1;

	if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		verbose("publish: reusing '%s' from an earlier run", path);
		*ret_path = TAKE_PTR(path);
		return 0;
	}
	in = open(disk, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0)
		return error("publish: cannot open '%s': %s", disk, strerror(errno));
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0)
		return error("publish: cannot create '%s': %s", tmp, strerror(errno));
	info("publish: exporting '%s' as %s", disk, imgout_format_name(f));
	if (imgout_write(in, (uint64_t)st.st_size, out, &o, NULL, &err) < 0) {
		error("publish: %s (exporting '%s' to '%s')", strbuf_str(&err), disk, tmp);
		goto out;
	}
	if (fsync(out) < 0 || rename(tmp, path) < 0 || fsync_parent(path) < 0) {
		error("publish: cannot write '%s': %s", path,
		      errno == ENOSPC ? "no space left on the device" : strerror(errno));
		goto out;
	}
	verbose("publish: exported in %.1f s", (monotonic_ms() - t0) / 1000.0);
	*ret_path = TAKE_PTR(path);
	r = 0;
out:
	if (r < 0)
		unlink(tmp);
	strbuf_release(&err);
	return r;
}

/* Distribution and release from the image's base-files package: "debian" "12". */
static void os_from_packages(const struct registry_build *b, char **ret_distro, char **ret_version)
{
	size_t i, n;

	for (i = 0; i < b->n_packages; i++) {
		const char *v = b->packages[i].version;

		if (strcmp(b->packages[i].name, "base-files"))
			continue;
		n = strspn(v, "0123456789.");
		if (strstr(v, "ubuntu")) {
			*ret_distro = xstrdup("ubuntu");
			*ret_version = n ? xstrndup(v, n) : NULL;
		} else {
			*ret_distro = xstrdup("debian");
			*ret_version = xstrndup(v, strspn(v, "0123456789"));
		}
		return;
	}
}

/*
 * The state directory of one publication: <cache>/publish/<build>/<target>-
 * <region>-<format>, private (0700), locked so that two runs do not upload
 * into the same state. The lock is held until the process exits.
 */
static int state_dir(const char *cache, const char *build_id, const char *target,
		     const char *region, const char *format, char **ret)
{
	_cleanup_free_ char *base = NULL, *dir = NULL, *lock = NULL;
	struct strbuf err = STRBUF_INIT;
	int fd;

	if (cache)
		base = xstrdup(cache);
	else if (cache_default_dir(&base, &err) < 0) {
		error("publish: %s", strbuf_str(&err));
		strbuf_release(&err);
		return -1;
	}
	dir = xasprintf("%s/publish/%s/%s-%s-%s", base, build_id, target,
			region ? region : "default", format);
	if (mkdir_p(dir, 0700) < 0 || chmod(dir, 0700) < 0)
		return error("publish: cannot create '%s': %s", dir, strerror(errno));
	lock = path_join(dir, "lock");
	for (;;) {
		struct stat held, now;

		if (mkdir_p(dir, 0700) < 0)
			return error("publish: cannot create '%s': %s", dir, strerror(errno));
		fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return error("publish: cannot open '%s': %s", lock, strerror(errno));
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			return error("publish: another 'imgforge publish' of build %s to %s is "
				     "running ('%s' is locked); wait for it to end",
				     build_id, target, dir);
		}
		/*
		 * A run that finished removes its state, lock file included: a lock
		 * taken on the file it removed guards nothing, so take it again on
		 * the file the path names now.
		 */
		if (fstat(fd, &held) == 0 && stat(lock, &now) == 0 && held.st_dev == now.st_dev &&
		    held.st_ino == now.st_ino)
			break;
		close(fd);
	}
	/* fd stays open: the lock lasts as long as this process. */
	*ret = TAKE_PTR(dir);
	return 0;
}

/* Remove the state of a finished publication: the exported file, the upload's state. */
static void state_remove(const char *dir)
{
	static const char *const names[] = {"disk.raw",	   "disk.qcow2",  "disk.vmdk",
					    "disk.vhd",	   "upload.json", "ebs.json",
					    "import.json", "lock",	  NULL};
	size_t i;

	for (i = 0; names[i]; i++) {
		_cleanup_free_ char *p = path_join(dir, names[i]);

		unlink(p);
	}
	if (rmdir(dir) == 0)
		fsync_parent(dir);
}

static void result_json(const struct registry_publication *p, struct strbuf *out)
{
	struct json j;

	json_init(&j, out, true);
	json_begin_object(&j);
	json_kv_string(&j, "build_id", p->build_id);
	json_kv_string(&j, "target", p->target);
	json_kv_string(&j, "region", p->region);
	json_kv_string(&j, "image_id", p->image_id);
	json_kv_string(&j, "name", p->name);
	json_key(&j, "location");
	if (p->location)
		json_string(&j, p->location);
	else
		json_null(&j);
	json_kv_string(&j, "format", p->format);
	json_kv_string(&j, "sha256", p->sha256);
	json_kv_bool(&j, "public", p->public_image);
	json_kv_int(&j, "created", p->created);
	json_end_object(&j);
}

int cmd_publish(int argc, char **argv)
{
	const char *region = NULL, *name = NULL, *fmt = NULL, *registry = NULL, *cache = NULL;
	const char *description = NULL, *bucket = NULL;
	int to = -1;
	bool public_image = false, json = false;
	const struct opt options[] = {
		OPT_CHOICE(0, "to", &to, "<cloud>", targets, "aws, openstack or scaleway"),
		OPT_STRING(0, "region", &region, "<r>",
			   "the region (default: the cloud's configuration)"),
		OPT_STRING(0, "name", &name, "<n>",
			   "the image's name (default: <image>-<version>-<build>)"),
		OPT_STRING(0, "description", &description, "<text>", "a one-line description"),
		OPT_FLAG(0, "public", &public_image, "make the image visible to every account"),
		OPT_STRING(0, "bucket", &bucket, "<b>",
			   "the S3 bucket to upload through (aws with vmdk or vhd, scaleway)"),
		OPT_STRING('f', "format", &fmt, "<f>",
			   "the format to upload (default: what the cloud takes best)"),
		OPT_FLAG(0, "json", &json, "print the publication as JSON"),
		OPT_STRING(0, "registry", &registry, "<path|url>",
			   "the registry: an SQLite file or a postgresql:// URL (default:\n"
			   "$IMGFORGE_REGISTRY, else registry.db in the cache directory)"),
		OPT_STRING(0, "cache", &cache, "<dir>",
			   "the cache directory (default $XDG_CACHE_HOME/imgforge)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "publish", .usage = usage, .opts = options, .footer = footer};
	_cleanup_free_ char *disk = NULL, *dir = NULL, *file = NULL, *regpath = NULL;
	_cleanup_free_ char *defname = NULL, *distro = NULL, *osver = NULL, *base = NULL;
	_cleanup_build_ struct registry_build *b = NULL;
	_cleanup_registry_ struct registry *reg = NULL;
	_cleanup_close_ int dfd = -1;
	struct registry_publication pub = {0};
	struct cloud_result res = {0};
	struct cloud_image img = {0};
	struct progress prog = {.tty = isatty(STDERR_FILENO) && log_get_level() >= LOG_NORMAL};
	struct strbuf err = STRBUF_INIT, out = STRBUF_INIT;
	enum imgout_format f = IMGOUT_RAW;
	char hex[SHA256_HEX_LEN];
	uint64_t fsize = 0;
	struct stat st;
	size_t i;
	int n, k, r = 1;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1) {
		error("publish: %s; see 'imgforge publish --help'",
		      n ? "give one build" : "no build given");
		return EXIT_USAGE;
	}
	if (to < 0) {
		error("publish: no cloud given (--to aws, openstack or scaleway); see 'imgforge "
		      "publish --help'");
		return EXIT_USAGE;
	}
	if (!fmt)
		fmt = target_info[to].formats[0];
	for (i = 0; i < ARRAY_SIZE(target_info[to].formats); i++)
		if (target_info[to].formats[i] && !strcmp(target_info[to].formats[i], fmt))
			break;
	if (i == ARRAY_SIZE(target_info[to].formats) || imgout_format_parse(fmt, &f) < 0) {
		struct strbuf list = STRBUF_INIT;

		for (i = 0; i < ARRAY_SIZE(target_info[to].formats); i++)
			if (target_info[to].formats[i])
				strbuf_addf(&list, "%s%s", list.len ? ", " : "",
					    target_info[to].formats[i]);
		error("publish: %s does not take '%s' images here; give --format %s", targets[to],
		      fmt, strbuf_str(&list));
		strbuf_release(&list);
		return EXIT_USAGE;
	}
	if (name && (!*name || strpbrk(name, "\n\r\t"))) {
		error("publish: --name must be one line, not empty");
		return EXIT_USAGE;
	}
	if (region && (!*region || strpbrk(region, "/ \n\r\t"))) {
		error("publish: '%s' is not a region name", region);
		return EXIT_USAGE;
	}

	if (build_output_resolve(
		    &(struct build_output_query){
			    .cmd = "publish",
			    .output = "disk.raw",
			    .give = "give a build id from 'imgforge ls'",
			    .no_output = "build the image with a disk: section",
			    .stale = "rebuild it",
			    .registry = registry,
			    .cache = cache,
		    },
		    argv[0], &b, &disk) < 0)
		return 1;

	/* The registry is written at the end: make sure now that it can be. */
	if (registry_location(registry)) {
		regpath = xstrdup(registry_location(registry));
	} else {
		if (cache)
			base = xstrdup(cache);
		else if (cache_default_dir(&base, &err) < 0) {
			error("publish: %s", strbuf_str(&err));
			goto out;
		}
		regpath = path_join(base, "registry.db");
	}
	if (registry_open(regpath, &reg, &err) < 0) {
		error("publish: %s", strbuf_str(&err));
		goto out;
	}

	if (state_dir(cache, b->id, targets[to], region, fmt, &dir) < 0)
		goto out;
	dfd = open(disk, O_RDONLY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &st) < 0) {
		error("publish: cannot open '%s': %s", disk, strerror(errno));
		goto out;
	}
	if (f == IMGOUT_RAW) {
		/* Raw is uploaded from the build's own disk.raw, its holes skipped. */
		file = xstrdup(disk);
	} else if (export_disk(disk, dir, f, &file) < 0) {
		goto out;
	}
	if (sha256_file(file, hex, &fsize) < 0) {
		error("publish: cannot read '%s': %s", file, strerror(errno));
		goto out;
	}
	os_from_packages(b, &distro, &osver);
	defname = xasprintf("%s-%s-%s", b->image, b->version, b->id);
	img = (struct cloud_image){
		.build_id = b->id,
		.name = name ? name : defname,
		.description = description,
		.path = file,
		.format = fmt,
		.size = fsize,
		.virtual_size = (uint64_t)st.st_size,
		.sha256 = hex,
		.firmware = disk_firmware(dfd),
		.os_distro = distro,
		.os_version = osver,
		.region = region,
		.public_image = public_image,
		.bucket = bucket,
		.state_dir = dir,
		.progress = on_progress,
		.progress_userdata = &prog,
	};
	info("publish: %s to %s (%s, %s boot)", b->id, targets[to], fmt, img.firmware);
	k = target_info[to].publish(&img, &res, &err);
	progress_end(&prog);
	if (k < 0) {
		if (k == -EOPNOTSUPP && !err.len)
			strbuf_addf(&err, "publishing to %s is not available in this imgforge",
				    targets[to]);
		error("publish: %s", strbuf_str(&err));
		goto out;
	}

	pub = (struct registry_publication){
		.build_id = b->id,
		.target = res.target ? res.target : (char *)targets[to],
		.region = res.region ? res.region : (char *)"",
		.image_id = res.image_id,
		.name = (char *)img.name,
		.location = res.location,
		.format = (char *)fmt,
		.public_image = public_image,
	};
	memcpy(pub.sha256, hex, sizeof(hex));
	pub.created = (int64_t)time(NULL);
	if (registry_add_publication(reg, &pub, &err) < 0) {
		error("publish: image %s was made in %s%s%s but could not be recorded: %s",
		      res.image_id, targets[to], *pub.region ? " " : "", pub.region,
		      strbuf_str(&err));
		goto out;
	}
	state_remove(dir);
	if (json) {
		result_json(&pub, &out);
		fwrite(out.buf, 1, out.len, stdout);
	} else {
		info("publish: build %s is image %s in %s%s%s", b->id, res.image_id, targets[to],
		     *pub.region ? " " : "", pub.region);
		printf("%s\n", res.image_id);
	}
	r = 0;
out:
	cloud_result_release(&res);
	strbuf_release(&err);
	strbuf_release(&out);
	return r;
}
