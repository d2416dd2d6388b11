/* SPDX-License-Identifier: MIT */
/*
 * imgforge-update install: a bundle into the slot that is not running.
 *
 * Each step is safe to interrupt, in the order RAUC, Mender and OSTree use:
 *
 *  1. open the bundle, check its signature against the keyring, its
 *     compatible name against the running image's, its version against the
 *     running one, that the image fits the slot, and read the payload to
 *     its end against the signed manifest's size and SHA-256: nothing is
 *     written anywhere on the disk before all of that passed (a refused
 *     bundle, a damaged or a truncated one, leaves the other slot as it
 *     was, bit for bit). The bundle is then read again from its start (a
 *     URL fetched twice) for the next steps;
 *  2. mark the target slot bad and the running slot first in ORDER, with
 *     the redundant grubenv writes: from here on, GRUB never boots the
 *     target until step 6;
 *  3. stream the payload into the target partition, each chunk checked
 *     against its SHA-256 before it is written, the payload's and the
 *     image's hashes at the end;
 *  4. fsync, drop the cached pages, read the written range back and hash
 *     it: it must be the image's SHA-256;
 *  5. the pre-install hooks (a database backup): one failing stops here;
 *  6. ORDER="<target> <running>", <target>_TRIES=0: the next boot starts the
 *     new slot, and GRUB falls back to the running one after boot.tries
 *     boots that are not marked good;
 *  7. the post-install hooks; a reboot if asked.
 *
 * Killed anywhere before 6, the running slot stays the default; the state
 * file says the install was interrupted. The stop_point() calls name the
 * places between these writes where the power-cut tests cut the power
 * (docs/update.md, "Power cuts"); they do nothing otherwise.
 *
 * From a server that answers range requests, a format-2 bundle takes the
 * delta path instead of reading the bundle twice (delta.c): steps 1 and 3
 * fetch only what neither slot holds, checked whole before step 2 when it
 * fits in 64 MiB, else chunk by chunk as it is written.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/options.h"
#include "core/stoppoint.h"
#include "core/util.h"
#include "net/fetch.h"
#include "update/agent/agent.h"
#include "update/agent/delta.h"
#include "update/bundle.h"
#include "update/slot.h"

#define ERRLEN 1024

/* Where the bundle comes from: a file or a URL, hashed as it is read. */
struct source {
	const char *name;
	int fd;
	struct fetch_stream *fs;
	struct sha256 *h;
	uint64_t n;
	bool failed;
	int read_errno;
};

static ssize_t source_read(void *ctx, void *buf, size_t len)
{
	struct source *s = ctx;
	ssize_t r;

	if (s->fs) {
		r = fetch_stream_read(s->fs, buf, len);
	} else {
		do
			r = read(s->fd, buf, len);
		while (r < 0 && errno == EINTR);
		if (r < 0)
			r = -errno;
	}
	if (r < 0) {
		s->failed = true;
		s->read_errno = (int)-r;
		return r;
	}
	sha256_update(s->h, buf, (size_t)r);
	s->n += (uint64_t)r;
	return r;
}

/*
 * The message of a failed bundle step: the download's own when the stream
 * broke (it names the URL), else the bundle reader's with the source named.
 */
static void bundle_failed(const struct source *s, const char *err, struct strbuf *out)
{
	if (s->failed && s->fs)
		strbuf_addstr(out, fetch_stream_error(s->fs));
	else if (s->failed)
		strbuf_addf(out, "cannot read '%s': %s", s->name, strerror(s->read_errno));
	else
		strbuf_addf(out, "'%s': %s", s->name, err);
}

static int source_open(struct source *s, const char *src, struct strbuf *err)
{
	memset(s, 0, sizeof(*s));
	s->name = src;
	s->fd = -1;
	s->h = sha256_new();
	if (strstr(src, "://"))
		return fetch_stream_open(src, NULL, &s->fs, err);
	s->fd = open(src, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		strbuf_addf(err, "cannot open '%s': %s", src, strerror(errno));
		return -errno;
	}
	return 0;
}

static void source_close(struct source *s)
{
	fetch_stream_close(s->fs);
	s->fs = NULL;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	sha256_free(s->h);
	s->h = NULL;
}

/* The slot partition being written. */
struct target {
	const char *dev;
	char slot;
	int fd;
	bool blockdev;
	uint64_t size;
	uint64_t image_size;
	unsigned last_tenth;
};

static int target_open(struct target *t, char slot, struct strbuf *err)
{
	struct stat st;

	t->slot = slot;
	t->dev = slot_device(slot);
	t->fd = open(t->dev, O_RDWR | O_CLOEXEC);
	if (t->fd < 0) {
		strbuf_addf(err, "cannot open slot %c's partition '%s': %s", slot, t->dev,
			    strerror(errno));
		return -errno;
	}
	if (fstat(t->fd, &st) < 0) {
		strbuf_addf(err, "cannot stat '%s': %s", t->dev, strerror(errno));
		return -errno;
	}
	t->blockdev = S_ISBLK(st.st_mode);
	if (t->blockdev) {
		if (ioctl(t->fd, BLKGETSIZE64, &t->size) < 0) {
			strbuf_addf(err, "cannot read the size of '%s': %s", t->dev,
				    strerror(errno));
			return -errno;
		}
	} else if (S_ISREG(st.st_mode)) {
		t->size = (uint64_t)st.st_size;
	} else {
		strbuf_addf(err, "slot %c's partition '%s' is neither a block device nor a file",
			    slot, t->dev);
		return -EINVAL;
	}
	return 0;
}

static void progress(struct target *t, uint64_t end)
{
	unsigned tenth = t->image_size ? (unsigned)(end * 10 / t->image_size) : 10;

	while (tenth > t->last_tenth) {
		t->last_tenth++;
		if (t->last_tenth == tenth)
			info("writing slot %c: %u%%", t->slot, tenth * 10);
		stop_point("write");
	}
}

static int emit(void *ctx, uint64_t off, const void *data, size_t len)
{
	struct target *t = ctx;
	int r = pwrite_all(t->fd, data, len, off);

	if (r >= 0)
		progress(t, off + len);
	return r;
}

static int write_zeros(struct target *t, uint64_t off, uint64_t len)
{
	static const uint8_t zeros[1 << 16];

	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int r = pwrite_all(t->fd, zeros, n, off);

		if (r < 0)
			return r;
		off += n;
		len -= n;
	}
	return 0;
}

/* A range of zeros: the device zeroes it itself, or a file gets a hole. */
static int emit_zero(void *ctx, uint64_t off, uint64_t len)
{
	struct target *t = ctx;
	int r;

	if (t->blockdev) {
		uint64_t range[2] = { off, len };

		r = ioctl(t->fd, BLKZEROOUT, range) < 0 ? -errno : 0;
	} else {
		r = fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len) < 0
			    ? -errno
			    : 0;
	}
	if (r < 0)
		r = write_zeros(t, off, len);
	if (r >= 0)
		progress(t, off + len);
	return r;
}

/* Step 4: what the partition holds now, read back past the page cache. */
static int target_verify(struct target *t, const uint8_t want[32], struct strbuf *err)
{
	_cleanup_free_ uint8_t *buf = xmalloc(1 << 20);
	struct sha256 *h = sha256_new();
	uint8_t got[SHA256_LEN];
	uint64_t off = 0;
	int r = 0;

	if (fsync(t->fd) < 0) {
		strbuf_addf(err, "cannot sync '%s': %s", t->dev, strerror(errno));
		r = -errno;
		goto out;
	}
	posix_fadvise(t->fd, 0, 0, POSIX_FADV_DONTNEED);
	if (t->blockdev)
		ioctl(t->fd, BLKFLSBUF, 0);
	while (off < t->image_size) {
		size_t n = t->image_size - off < (1 << 20) ? (size_t)(t->image_size - off) : 1 << 20;
		ssize_t k = pread(t->fd, buf, n, (off_t)off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			strbuf_addf(err, "cannot read back '%s' at %" PRIu64 ": %s", t->dev, off,
				    k < 0 ? strerror(errno) : "unexpected end");
			r = k < 0 ? -errno : -EIO;
			goto out;
		}
		sha256_update(h, buf, (size_t)k);
		off += (uint64_t)k;
	}
	sha256_final(h, got);
	if (memcmp(got, want, SHA256_LEN)) {
		char a[SHA256_HEX_LEN], b[SHA256_HEX_LEN];

		hex_encode(want, SHA256_LEN, a);
		hex_encode(got, SHA256_LEN, b);
		strbuf_addf(err,
			    "slot %c ('%s') does not hold the image after writing it: sha256 %s, "
			    "expected %s; the disk may be failing",
			    t->slot, t->dev, b, a);
		r = -EIO;
	}
out:
	sha256_free(h);
	return r;
}

static int set_boot(struct slots *s, char first, char target, const char *tries,
		    struct strbuf *err)
{
	char order[4] = { first, ' ', slot_other(first), '\0' };
	char name[] = "X_TRIES";

	name[0] = target;
	slot_env_set(&s->env, "ORDER", order);
	slot_env_set(&s->env, name, tries);
	return slot_env_store(s->dir, &s->env, err);
}

/*
 * The next len bytes of the bundle (its chunk index, its patch), whose
 * SHA-256 must be want (NULL: not checked): 0, or -1 with one line in sb.
 */
static int read_checked(struct source *in, uint64_t len, const char *what, const uint8_t *want,
			struct strbuf *sb)
{
	struct sha256 *h = sha256_new();
	uint8_t buf[65536], got[SHA256_LEN];
	ssize_t r;
	int ret = -1;

	while (len > 0) {
		r = source_read(in, buf, len < sizeof(buf) ? (size_t)len : sizeof(buf));
		if (r <= 0) {
			if (r < 0)
				bundle_failed(in, "", sb);
			else
				strbuf_addf(sb, "'%s' is cut short in its %s; download it again",
					    in->name, what);
			goto out;
		}
		sha256_update(h, buf, (size_t)r);
		len -= (uint64_t)r;
	}
	sha256_final(h, got);
	if (want && memcmp(got, want, SHA256_LEN)) {
		strbuf_addf(sb,
			    "'%s': the %s's SHA-256 is not the one the signed manifest gives "
			    "(damaged in transit or on disk); download it again",
			    in->name, what);
		goto out;
	}
	ret = 0;
out:
	sha256_free(h);
	return ret;
}

/*
 * The first pass over the payload, before anything is written: read it to
 * the end of the bundle, hashing the stored bytes, and compare with the
 * payload's SHA-256 and size the signed manifest gives. A flipped payload
 * byte or a bundle cut short is refused here, with the other slot untouched;
 * the second pass (bundle_stream_payload) checks each chunk again as it
 * writes it, against a source that could change between the passes.
 */
static int payload_precheck(struct source *in, const struct bundle_manifest *m,
			    struct strbuf *sb)
{
	struct sha256 *h = sha256_new();
	uint8_t buf[65536], got[SHA256_LEN];
	uint64_t left = m->payload_size;
	unsigned tenth = 0;
	ssize_t r;
	int ret = -1;

	while (left > 0) {
		/* A stop point at each tenth of the payload read (power-cut tests). */
		while (m->payload_size && tenth < (m->payload_size - left) * 10 / m->payload_size) {
			tenth++;
			stop_point("download");
		}
		r = source_read(in, buf, left < sizeof(buf) ? (size_t)left : sizeof(buf));
		if (r < 0) {
			bundle_failed(in, "", sb);
			goto out;
		}
		if (r == 0) {
			strbuf_addf(sb,
				    "'%s' is cut short: the payload ends %" PRIu64 " bytes early "
				    "(bundle of %" PRIu64 " bytes expected); download it again",
				    in->name, left, m->payload_offset + m->payload_size);
			goto out;
		}
		sha256_update(h, buf, (size_t)r);
		left -= (uint64_t)r;
	}
	sha256_final(h, got);
	if (memcmp(got, m->payload_sha256, SHA256_LEN)) {
		strbuf_addf(sb,
			    "'%s': the payload's SHA-256 is not the one the signed manifest "
			    "gives (damaged in transit or on disk); download it again",
			    in->name);
		goto out;
	}
	/* Format 2: the chunk index follows (format 3: it came before, read by bundle_open()). */
	if (!manifest_index_first(m) &&
	    read_checked(in, m->index_size, "chunk index",
			 m->format == 2 ? m->chunk_index_sha256 : NULL, sb) < 0)
		goto out;
	/* Format 4: the patch follows, for devices running its earlier image (not this path). */
	if (m->has_patch && read_checked(in, m->patch_size, "patch", m->patch_sha256, sb) < 0)
		goto out;
	r = source_read(in, buf, 1);
	if (r < 0) {
		bundle_failed(in, "", sb);
		goto out;
	}
	if (r > 0) {
		strbuf_addf(sb, "'%s' has bytes after its payload: not a bundle imgforge wrote",
			    in->name);
		goto out;
	}
	ret = 0;
out:
	sha256_free(h);
	return ret;
}

/* The same signed contents: the second pass must read the bundle the first checked. */
static bool same_bundle(const struct bundle_manifest *a, const struct bundle_manifest *b)
{
	return a->payload_offset == b->payload_offset && a->payload_size == b->payload_size &&
	       a->image_size == b->image_size &&
	       !memcmp(a->payload_sha256, b->payload_sha256, SHA256_LEN) &&
	       !memcmp(a->image_sha256, b->image_sha256, SHA256_LEN) &&
	       !strcmp(a->version, b->version) && !strcmp(a->compatible, b->compatible);
}

/* The record of one attempt (and, once a slot was touched, of the install). */
static void record(struct agent *a, struct kv *st, const char *file, const char *result,
		   const char *reason)
{
	_cleanup_free_ char *path = agent_state_path(a, file);
	struct strbuf err = STRBUF_INIT;

	if (a->lock_fd < 0)
		return; /* no state directory: the error said why */
	kv_set(st, "RESULT", result);
	kv_set(st, "REASON", reason ? reason : "");
	kv_setf(st, "TIME", "%" PRId64, agent_now());
	if (kv_store(path, st, &err) < 0)
		warning("%s", err.buf);
	strbuf_release(&err);
}

int agent_install(struct agent *a, const char *src, const uint8_t *want_sha256,
		  uint64_t want_size, bool allow_downgrade, bool force, bool reboot, bool full)
{
	struct strbuf sb = STRBUF_INIT;
	struct slots s = { 0 };
	struct source in = { .fd = -1 };
	struct target t = { .fd = -1 };
	struct bundle_manifest *m = NULL;
	struct kv st = KV_INIT;
	char err[ERRLEN] = "";
	char tries[16];
	bool touched = false;
	unsigned running_tries;
	struct delta *d = NULL;
	_cleanup_free_ char *spool = NULL;
	uint64_t downloaded = 0;
	int ret = -1, r;

	kv_set(&st, "SOURCE", src);
	kv_set(&st, "FROM_VERSION", a->version ? a->version : "");
	if (agent_lock(a, &sb) < 0 || slots_load(&s, false, &sb) < 0)
		goto fail;
	kv_setf(&st, "FROM_SLOT", "%c", s.booted);
	kv_setf(&st, "SLOT", "%c", slot_other(s.booted));
	running_tries = slot_tries(&s.env, s.booted);
	if (running_tries != 0 && !s.fallback && !force) {
		strbuf_addf(&sb,
			    "the running slot %c is not marked good yet (%c_TRIES=%u): installing "
			    "would overwrite slot %c, the last one known good; wait for the health "
			    "check (imgforge-update status) or use --force",
			    s.booted, s.booted, running_tries, slot_other(s.booted));
		goto fail;
	}
	if (!a->compatible) {
		strbuf_addf(&sb,
			    "the running image's compatible name is unknown: no COMPATIBLE= in "
			    "'%s' and no IMAGE= in '%s'",
			    a->conf_path, a->release_path);
		goto fail;
	}
	if (!a->version && !force) {
		strbuf_addf(&sb,
			    "the running image's version is unknown (no VERSION= in '%s'), so a "
			    "downgrade could not be told; use --force to install anyway",
			    a->release_path);
		goto fail;
	}

	/* 1: everything is checked before anything is written. */
	info("installing '%s' into slot %c ('%s')", src, slot_other(s.booted),
	     slot_device(slot_other(s.booted)));
	/* A URL whose server answers range requests: only what the slots lack is fetched. */
	r = full ? 1 : delta_open(src, a->keyring, &d, &m, &sb);
	if (r < 0)
		goto fail;
	if (!d) {
		if (source_open(&in, src, &sb) < 0)
			goto fail;
		if (bundle_open(source_read, &in, a->keyring, &m, err, sizeof(err)) < 0) {
			bundle_failed(&in, err, &sb);
			goto fail;
		}
	}
	kv_set(&st, "VERSION", m->version);
	if (bundle_check_target(m, a->compatible, a->version, allow_downgrade, force, err,
				sizeof(err)) < 0) {
		bundle_failed(&in, err, &sb);
		goto fail;
	}
	if (target_open(&t, slot_other(s.booted), &sb) < 0)
		goto fail;
	t.image_size = m->image_size;
	if (m->image_size > t.size) {
		strbuf_addf(&sb,
			    "the image of '%s' (%" PRIu64 " bytes) does not fit slot %c's partition "
			    "'%s' (%" PRIu64 " bytes)",
			    src, m->image_size, t.slot, t.dev, t.size);
		goto fail;
	}
	if (d) {
		/*
		 * Delta: the signature and the manifest are checked; each chunk is
		 * checked against it before it is written, the image after.
		 */
		if (want_size && delta_bundle_size(d) != want_size) {
			strbuf_addf(&sb,
				    "'%s' is not the bundle the channel index names (another size): "
				    "the index and the bundle were published apart; try again later",
				    src);
			goto fail;
		}
		info("verified: %s %s (running %s %s), signed, %" PRIu64 " bytes; fetching "
		     "what the slots lack",
		     m->compatible, m->version, a->compatible,
		     a->version ? a->version : "(unknown version)", m->image_size);
		if (delta_prepare(d, slot_device(s.booted), t.fd, &sb) < 0) {
			kv_setf(&st, "DOWNLOADED", "%" PRIu64, delta_downloaded(d));
			goto fail;
		}
		stop_point("delta-prepared");
		if (a->lock_fd >= 0) {
			spool = agent_state_path(a, "delta-spool");
			if (delta_spool_open(d, spool) < 0)
				warning("cannot keep the download in '%s': an interrupted install "
					"will fetch it again",
					spool);
		}
		if (delta_check(d, t.fd, &sb) < 0) {
			kv_setf(&st, "DOWNLOADED", "%" PRIu64, delta_downloaded(d));
			goto fail;
		}
		stop_point("checked");
		if (!delta_checked_all(d))
			info("more than 64 MiB to download: each chunk is checked as it is "
			     "written");
		touched = true;
		kv_set(&st, "METHOD", "delta");
		kv_setf(&st, "BUNDLE_SIZE", "%" PRIu64, delta_bundle_size(d));
		record(a, &st, "last-install", "installing", NULL);
		stop_point("installing-recorded");
		snprintf(tries, sizeof(tries), "%u", s.max_tries);
		if (set_boot(&s, s.booted, t.slot, tries, &sb) < 0)
			goto fail;
		r = delta_write(d, t.fd, emit, emit_zero, &t, &sb);
		kv_setf(&st, "DOWNLOADED", "%" PRIu64, delta_downloaded(d));
		if (r < 0)
			goto fail;
		if (spool && unlink(spool) < 0 && errno != ENOENT)
			warning("cannot remove '%s': %s", spool, strerror(errno));
		{
			struct strbuf sum = STRBUF_INIT;

			delta_summary(d, &sum);
			info("%s", sum.buf);
			strbuf_release(&sum);
		}
		goto written;
	}
	if (payload_precheck(&in, m, &sb) < 0)
		goto fail;
	if (want_sha256 || want_size) {
		uint8_t got[SHA256_LEN];

		sha256_final(in.h, got);
		if ((want_size && in.n != want_size) ||
		    (want_sha256 && memcmp(got, want_sha256, SHA256_LEN))) {
			strbuf_addf(&sb,
				    "'%s' is not the bundle the channel index names (another size "
				    "or SHA-256): the index and the bundle were published apart; "
				    "try again later",
				    src);
			goto fail;
		}
	}
	info("verified: %s %s (running %s %s), signed, %" PRIu64 " bytes", m->compatible,
	     m->version, a->compatible, a->version ? a->version : "(unknown version)",
	     m->image_size);
	stop_point("checked");

	/* The second pass reads the bundle again from its start. */
	downloaded = in.n;
	source_close(&in);
	if (source_open(&in, src, &sb) < 0)
		goto fail;
	{
		struct bundle_manifest *m2 = NULL;

		if (bundle_open(source_read, &in, a->keyring, &m2, err, sizeof(err)) < 0) {
			bundle_failed(&in, err, &sb);
			goto fail;
		}
		if (!same_bundle(m, m2)) {
			bundle_manifest_free(m2);
			strbuf_addf(&sb,
				    "'%s' changed while it was being installed (another signed "
				    "bundle the second time it was read); try again",
				    src);
			goto fail;
		}
		bundle_manifest_free(m2);
	}

	/* 2: the target is bad and the running slot first until the end. */
	touched = true;
	if (in.fs) {
		kv_set(&st, "METHOD", "full");
		kv_setf(&st, "BUNDLE_SIZE", "%" PRIu64, downloaded);
	}
	record(a, &st, "last-install", "installing", NULL);
	stop_point("installing-recorded");
	snprintf(tries, sizeof(tries), "%u", s.max_tries);
	if (set_boot(&s, s.booted, t.slot, tries, &sb) < 0)
		goto fail;

	/* 3 and 4. */
	r = bundle_stream_payload(source_read, &in, m, emit, emit_zero, &t, err, sizeof(err));
	if (in.fs) {
		downloaded += in.n;
		kv_setf(&st, "DOWNLOADED", "%" PRIu64, downloaded);
		info("downloaded %" PRIu64 " bytes: the bundle twice (the server does not answer "
		     "range requests, or the bundle has no chunk index)",
		     downloaded);
	}
	if (r < 0) {
		bundle_failed(&in, err, &sb);
		goto fail;
	}
written:
	stop_point("written");
	if (target_verify(&t, m->image_sha256, &sb) < 0)
		goto fail;
	info("slot %c written and read back: sha256 matches", t.slot);
	stop_point("read-back");

	/* 5. */
	{
		_cleanup_free_ char *e1 = xasprintf("IMGFORGE_UPDATE_SLOT=%c", t.slot);
		_cleanup_free_ char *e2 = xasprintf("IMGFORGE_UPDATE_DEVICE=%s", t.dev);
		_cleanup_free_ char *e3 = xasprintf("IMGFORGE_UPDATE_VERSION=%s", m->version);
		_cleanup_free_ char *e4 =
			xasprintf("IMGFORGE_UPDATE_FROM_VERSION=%s", a->version ? a->version : "");
		_cleanup_free_ char *e5 = xasprintf("IMGFORGE_UPDATE_COMPATIBLE=%s", m->compatible);
		char *env[] = { e1, e2, e3, e4, e5, NULL };

		if (agent_run_hooks(a, "pre-install", env, &sb) < 0) {
			strbuf_addf(&sb, "; slot %c stays inactive", t.slot);
			goto fail;
		}

		stop_point("pre-install-hooks");

		/* 6. */
		if (set_boot(&s, t.slot, t.slot, "0", &sb) < 0)
			goto fail;
		record(a, &st, "last-install", "installed", NULL);
		stop_point("installed-recorded");
		record(a, &st, "last-attempt", "installed", NULL);
		info("slot %c holds %s %s and boots next (slot %c is the fallback)", t.slot,
		     m->compatible, m->version, s.booted);

		/* 7. */
		if (agent_run_hooks(a, "post-install", env, &sb) < 0) {
			warning("%s", sb.buf);
			strbuf_reset(&sb);
		}
	}
	ret = 0;
	stop_point("done");
	if (reboot)
		ret = agent_reboot();
	goto out;

fail:
	error("%s", sb.buf);
	if (touched)
		record(a, &st, "last-install", "failed", sb.buf);
	record(a, &st, "last-attempt", touched ? "failed" : "refused", sb.buf);
	if (touched)
		info("slot %c stays the default; slot %c is marked bad until an install completes",
		     s.booted, t.slot);
out:
	if (t.fd >= 0)
		close(t.fd);
	source_close(&in);
	delta_free(d);
	bundle_manifest_free(m);
	slots_release(&s);
	kv_release(&st);
	strbuf_release(&sb);
	return ret;
}

int cmd_install(int argc, char **argv)
{
	static const char usage[] =
		"usage: imgforge-update install URL|FILE [--reboot] [--allow-downgrade] [--force]\n"
		"                               [--full]\n"
		"\n"
		"Install an update bundle into the slot that is not running: check its signature,\n"
		"compatible name and version first, then write and read back the slot, and only\n"
		"then make it the next boot. The running slot stays the fallback. From a server\n"
		"that answers range requests only what the slots lack is downloaded.\n";
	bool reboot = false, downgrade = false, force = false, full = false;
	const struct opt opts[] = {
		OPT_FLAG(0, "reboot", &reboot, "reboot into the new slot once installed"),
		OPT_FLAG(0, "allow-downgrade", &downgrade, "install an older version"),
		OPT_FLAG(0, "force", &force,
			 "install the same version, or while the running slot is not marked good"),
		OPT_FLAG(0, "full", &full,
			 "download the whole bundle (twice), not only what the slots lack"),
		OPT_END(),
	};
	const struct opt_cmd cmd = { "install", usage, opts, NULL, false };
	struct strbuf err = STRBUF_INIT;
	struct agent a;
	int n, r;

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (n != 1) {
		error("install takes one URL or FILE; see 'imgforge-update install --help'");
		return EXIT_USAGE;
	}
	if (agent_init(&a, &err) < 0) {
		error("%s", err.buf);
		r = -1;
	} else {
		r = agent_install(&a, argv[0], NULL, 0, downgrade, force, reboot, full);
	}
	agent_release(&a);
	strbuf_release(&err);
	return r < 0 ? 1 : 0;
}
