/* SPDX-License-Identifier: MIT */
/*
 * Publishing to AWS: a snapshot of the disk, then an AMI registered from it
 * (EC2 RegisterImage: x86_64, ENA, UEFI-preferred, the snapshot as the root
 * device) and tagged with the build id. Two ways to make the snapshot:
 *
 * - raw (the default): the EBS direct APIs. StartSnapshot, one
 *   PutSnapshotBlock per 512 KiB block that holds data (the disk's holes
 *   and zero blocks are never read or sent), CompleteSnapshot with the
 *   blocks' aggregate SHA-256. No bucket, no vmimport role, no conversion
 *   on AWS's side.
 * - vmdk or vhd: the image uploaded to an S3 bucket (s3.c, multipart,
 *   resumable), then EC2 ImportSnapshot, polled with
 *   DescribeImportSnapshotTasks. Needs a bucket and the vmimport role.
 *
 * docs/publish.md says why raw is the default.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloud/aws-auth.h"
#include "cloud/cloud.h"
#include "cloud/s3.h"
#include "cloud/xml.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/json.h"
#include "update/jsonr.h"

#define EBS_BLOCK   (512u << 10) /* the EBS direct APIs' only block size */
#define EC2_VERSION "2016-11-15"

struct aws {
	struct aws_config cfg;
	char *ec2, *ebs;
	const struct cloud_image *img;
	char *creds_hint;
};

static void sleep_s(unsigned s)
{
	struct timespec ts = {(time_t)s, 0};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Poll interval: IMGFORGE_AWS_POLL_SECONDS for tests against a local peer, else 15 s. */
static unsigned poll_seconds(void)
{
	const char *v = getenv("IMGFORGE_AWS_POLL_SECONDS");

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : 15;
}

/* "Code: Message; what to do" of an answer, after what. */
static void add_error(struct strbuf *err, const struct aws *a, const struct http_response *resp,
		      const char *what)
{
	_cleanup_free_ char *code = NULL;
	const char *hint;

	strbuf_addf(err, "%s: ", what);
	aws_error_text(resp, err, &code);
	hint = aws_error_hint(code);
	if (hint)
		strbuf_addf(err, "; %s", hint);
	if (code && (strstr(code, "Signature") || strstr(code, "AuthFailure") ||
		     strstr(code, "Unrecognized") || strstr(code, "InvalidClientTokenId")))
		strbuf_addf(err, " (%s)", a->creds_hint);
}

/* --- EC2 Query API --- */

static void param(struct strbuf *q, const char *name, const char *value)
{
	strbuf_addf(q, "&%s=", name);
	http_uri_encode(q, value, false);
}

/*
 * One EC2 call: Action and Version, then params (each "&Name=value",
 * encoded). 0 with resp holding the answer document, or -errno with err.
 */
static int ec2_call(const struct aws *a, const char *action, const struct strbuf *params,
		    struct http_response *resp, struct strbuf *err)
{
	static const char *const hdr[] = {
		"Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL};
	struct strbuf body = STRBUF_INIT;
	_cleanup_free_ char *url = xasprintf("%s/", a->ec2);
	int k;

	strbuf_addf(&body, "Action=%s&Version=%s%s", action, EC2_VERSION,
		    params && params->buf ? params->buf : "");
	k = aws_request(&a->cfg, "ec2", "POST", url, hdr, body.buf, body.len, resp, err);
	strbuf_release(&body);
	if (k < 0)
		return k;
	if (resp->status != 200) {
		_cleanup_free_ char *what = xasprintf("EC2 %s", action);

		add_error(err, a, resp, what);
		return -EACCES;
	}
	return 0;
}

static char *ec2_text(const struct http_response *resp, const char *tag)
{
	return xml_doc_text(resp->body.buf, resp->body.len, tag);
}

/* --- the state of a resumable snapshot --- */

static int state_write(const char *dir, const char *name, const char *json, struct strbuf *err)
{
	_cleanup_free_ char *path = path_join(dir, name);
	int k = write_file_atomic(path, json, strlen(json), 0600);

	if (k >= 0)
		k = fsync_parent(path);
	if (k < 0)
		strbuf_addf(err, "cannot write '%s': %s", path, strerror(-k));
	return k;
}

static struct jsonr *state_read(const char *dir, const char *name)
{
	_cleanup_free_ char *path = path_join(dir, name), *text = NULL;
	struct jsonr *doc = NULL;
	char jerr[64];
	size_t len;

	if (read_file(path, 1u << 20, &text, &len) < 0 ||
	    jsonr_parse(text, len, &doc, jerr, sizeof(jerr)) < 0)
		return NULL;
	return doc;
}

static const char *jstr(const struct jsonr *doc, const char *k)
{
	const struct jsonr_value *v = doc ? jsonr_get(&doc->root, k) : NULL;

	return v && v->type == JSONR_STRING ? v->s : NULL;
}

static uint64_t juint(const struct jsonr *doc, const char *k)
{
	const struct jsonr_value *v = doc ? jsonr_get(&doc->root, k) : NULL;

	return v && v->type == JSONR_UINT ? v->u : 0;
}

/* --- EBS direct APIs --- */

static int ebs_answer(const struct aws *a, struct http_response *resp, long want, const char *what,
		      struct strbuf *err)
{
	if (resp->status == want || (want == 201 && resp->status == 200))
		return 0;
	/* EBS errors are JSON with the code in x-amzn-ErrorType. */
	{
		_cleanup_free_ char *type = http_response_header(resp, "x-amzn-ErrorType");
		struct jsonr *doc = NULL;
		char jerr[64];
		const char *msg = NULL;

		if (resp->body.len &&
		    jsonr_parse_api(resp->body.buf, resp->body.len, &doc, jerr, sizeof(jerr)) == 0)
			msg = jstr(doc, "message") ? jstr(doc, "message") : jstr(doc, "Message");
		if (type) {
			const char *hint;

			type[strcspn(type, ":")] = 0;
			hint = strstr(type, "Signature") || strstr(type, "Unrecognized") ||
					       strstr(type, "MissingAuthentication")
				       ? a->creds_hint
				       : NULL;
			strbuf_addf(err, "%s: %s: %s%s%s%s", what, type, msg ? msg : "(no message)",
				    hint ? "; check the credentials (" : "", hint ? hint : "",
				    hint ? ")" : "");
		} else {
			add_error(err, a, resp, what);
		}
		jsonr_free(doc);
	}
	return resp->status >= 500 || resp->status == 429 ? -EAGAIN : -EACCES;
}

static int ebs_start(struct aws *a, const char *token, char **ret_id, struct strbuf *err)
{
	static const char *const hdr[] = {"Content-Type: application/json", NULL};
	_cleanup_free_ char *url = xasprintf("%s/snapshots", a->ebs);
	const struct cloud_image *img = a->img;
	struct strbuf body = STRBUF_INIT;
	struct http_response resp = {0};
	struct jsonr *doc = NULL;
	struct json j;
	char jerr[64];
	uint64_t gib = (img->virtual_size + (1ull << 30) - 1) >> 30;
	int k;

	json_init(&j, &body, false);
	json_begin_object(&j);
	json_kv_uint(&j, "VolumeSize", gib ? gib : 1);
	json_kv_string(&j, "ClientToken", token);
	json_kv_string(&j, "Description", img->description ? img->description : img->name);
	json_kv_uint(&j, "Timeout", 4320); /* minutes: three days to resume in */
	json_key(&j, "Tags");
	json_begin_array(&j);
	json_begin_object(&j);
	json_kv_string(&j, "Key", "imgforge:build");
	json_kv_string(&j, "Value", img->build_id);
	json_end_object(&j);
	json_end_array(&j);
	json_end_object(&j);
	k = aws_request(&a->cfg, "ebs", "POST", url, hdr, body.buf, body.len, &resp, err);
	if (k >= 0)
		k = ebs_answer(a, &resp, 201, "EBS StartSnapshot", err);
	if (k >= 0 &&
	    (jsonr_parse_api(resp.body.buf, resp.body.len, &doc, jerr, sizeof(jerr)) < 0 ||
	     !jstr(doc, "SnapshotId"))) {
		strbuf_addstr(err, "EBS StartSnapshot answered without a SnapshotId");
		k = -EPROTO;
	}
	if (k >= 0)
		*ret_id = xstrdup(jstr(doc, "SnapshotId"));
	jsonr_free(doc);
	strbuf_release(&body);
	http_response_release(&resp);
	return k;
}

static int ebs_put(struct aws *a, const char *snap, uint64_t index, const uint8_t *block,
		   const uint8_t digest[SHA256_LEN], unsigned progress, struct strbuf *err)
{
	_cleanup_free_ char *url =
		xasprintf("%s/snapshots/%s/blocks/%" PRIu64, a->ebs, snap, index);
	_cleanup_free_ char *b64 = base64_encode(digest, SHA256_LEN);
	_cleanup_free_ char *h1 = xasprintf("x-amz-Checksum: %s", b64);
	_cleanup_free_ char *h2 = xasprintf("x-amz-Data-Length: %u", EBS_BLOCK);
	_cleanup_free_ char *h3 = xasprintf("x-amz-Progress: %u", progress);
	const char *const hdr[] = {"Content-Type: application/octet-stream",
				   h1,
				   "x-amz-Checksum-Algorithm: SHA256",
				   h2,
				   h3,
				   NULL};
	struct http_response resp = {0};
	_cleanup_free_ char *what = NULL;
	int k;

	k = aws_request(&a->cfg, "ebs", "PUT", url, hdr, block, EBS_BLOCK, &resp, err);
	if (k >= 0) {
		what = xasprintf("EBS PutSnapshotBlock %" PRIu64 " of %s", index, snap);
		k = ebs_answer(a, &resp, 201, what, err);
	}
	http_response_release(&resp);
	return k;
}

static int ebs_complete(struct aws *a, const char *snap, uint64_t count,
			const uint8_t agg[SHA256_LEN], struct strbuf *err)
{
	_cleanup_free_ char *url = xasprintf("%s/snapshots/completion/%s", a->ebs, snap);
	_cleanup_free_ char *b64 = base64_encode(agg, SHA256_LEN);
	_cleanup_free_ char *h1 = xasprintf("x-amz-ChangedBlocksCount: %" PRIu64, count);
	_cleanup_free_ char *h2 = xasprintf("x-amz-Checksum: %s", b64);
	const char *const hdr[] = {h1, h2, "x-amz-Checksum-Algorithm: SHA256",
				   "x-amz-Checksum-Aggregation-Method: LINEAR", NULL};
	struct http_response resp = {0};
	int k;

	k = aws_request(&a->cfg, "ebs", "POST", url, hdr, "", 0, &resp, err);
	if (k >= 0)
		k = ebs_answer(a, &resp, 202, "EBS CompleteSnapshot", err);
	http_response_release(&resp);
	return k;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return p[0] == 0 && !memcmp(p, p + 1, n - 1);
}

/*
 * The raw disk as an EBS snapshot, block by block. State (ebs.json): the
 * client token (written before StartSnapshot, so a retry after a crash
 * gets the same snapshot), the snapshot id, and how far the blocks are
 * sent; resuming reads the blocks before that point again only to hash
 * them (the aggregate checksum covers every block), and sends the rest.
 */
static int describe_snapshot(struct aws *a, const char *snap, char **ret_status, char **ret_msg,
			     struct strbuf *err);

/* A fresh client token: 128 random bits in hex, malloc'd in *ret. */
static int new_token(char **ret, struct strbuf *err)
{
	uint8_t r[16];
	char hex[33];

	if (getrandom(r, sizeof(r), 0) != sizeof(r)) {
		strbuf_addf(err, "cannot draw a client token: %s", strerror(errno));
		return -errno;
	}
	hex_encode(r, sizeof(r), hex);
	free(*ret);
	*ret = xstrdup(hex);
	return 0;
}

static int ebs_snapshot(struct aws *a, char **ret_snap, struct strbuf *err)
{
	const struct cloud_image *img = a->img;
	_cleanup_free_ char *snap = NULL, *token = NULL;
	_cleanup_free_ uint8_t *block = xmalloc(EBS_BLOCK);
	_cleanup_close_ int fd = -1;
	struct jsonr *st = state_read(img->state_dir, "ebs.json");
	struct sha256 *agg = sha256_new();
	uint64_t done_upto = 0, size = img->virtual_size, pos = 0, last = UINT64_MAX, count = 0;
	uint64_t sent = 0, eoff, elen;
	uint8_t digest[SHA256_LEN];
	struct strbuf js = STRBUF_INIT;
	int k;

	if (st && jstr(st, "sha256") && !strcmp(jstr(st, "sha256"), img->sha256)) {
		token = jstr(st, "client_token") ? xstrdup(jstr(st, "client_token")) : NULL;
		snap = jstr(st, "snapshot_id") ? xstrdup(jstr(st, "snapshot_id")) : NULL;
		done_upto = snap ? juint(st, "done_upto") : 0;
	}
	jsonr_free(st);
	if (!token) {
		k = new_token(&token, err);
		if (k < 0)
			goto out;
	}
	if (!snap) {
		strbuf_reset(&js);
		strbuf_addf(&js, "{\"sha256\": \"%s\", \"client_token\": \"%s\"}\n", img->sha256,
			    token);
		k = state_write(img->state_dir, "ebs.json", js.buf, err);
		if (k < 0)
			goto out;
		k = ebs_start(a, token, &snap, err);
		if (k < 0)
			goto out;
	} else {
		/*
		 * A snapshot of an earlier run: completed already when that run
		 * stopped after CompleteSnapshot (RegisterImage refused, the
		 * process killed before it), so only the image is left to make;
		 * failed, so a new one is started.
		 */
		_cleanup_free_ char *status = NULL, *msg = NULL;

		k = describe_snapshot(a, snap, &status, &msg, err);
		if (k < 0)
			goto out;
		if (status && !strcmp(status, "completed")) {
			verbose("aws: snapshot %s of an earlier run is complete", snap);
			*ret_snap = TAKE_PTR(snap);
			k = 0;
			goto out;
		}
		if (!status || !strcmp(status, "error")) {
			verbose("aws: snapshot %s of an earlier run is %s: starting a new one",
				snap, status ? "in error" : "gone");
			free(snap);
			snap = NULL;
			done_upto = 0;
			/* A new client token: the old one names the snapshot that failed. */
			k = new_token(&token, err);
			if (k < 0)
				goto out;
			strbuf_reset(&js);
			strbuf_addf(&js, "{\"sha256\": \"%s\", \"client_token\": \"%s\"}\n",
				    img->sha256, token);
			k = state_write(img->state_dir, "ebs.json", js.buf, err);
			if (k < 0)
				goto out;
			k = ebs_start(a, token, &snap, err);
			if (k < 0)
				goto out;
		} else if (done_upto) {
			verbose("aws: resuming snapshot %s from block %" PRIu64, snap,
				done_upto / EBS_BLOCK);
		}
	}

	fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		strbuf_addf(err, "cannot open '%s': %s", img->path, strerror(errno));
		k = -errno;
		goto out;
	}
	/* Only the data runs are read; a block of zeros is not sent (a snapshot reads as zeros). */
	while ((k = next_data_extent(fd, pos, size, &eoff, &elen)) > 0) {
		uint64_t b;

		for (b = eoff / EBS_BLOCK; b * EBS_BLOCK < eoff + elen; b++) {
			ssize_t n;

			if (last != UINT64_MAX && b <= last)
				continue;
			last = b;
			memset(block, 0, EBS_BLOCK);
			n = pread(fd, block, EBS_BLOCK, (off_t)(b * EBS_BLOCK));
			if (n < 0) {
				strbuf_addf(err, "cannot read '%s': %s", img->path,
					    strerror(errno));
				k = -errno;
				goto out;
			}
			if (all_zero(block, EBS_BLOCK))
				continue;
			{
				struct sha256 *h = sha256_new();

				sha256_update(h, block, EBS_BLOCK);
				sha256_final(h, digest);
				sha256_free(h);
			}
			sha256_update(agg, digest, sizeof(digest));
			count++;
			if (b * EBS_BLOCK < done_upto)
				continue;
			k = ebs_put(a, snap, b, block, digest,
				    (unsigned)(size ? (b * EBS_BLOCK * 100) / size : 0), err);
			if (k < 0)
				goto out;
			sent++;
			if (img->progress)
				img->progress(img->progress_userdata,
					      (b + 1) * EBS_BLOCK < size ? (b + 1) * EBS_BLOCK
									 : size,
					      size);
			/* Every 64 blocks (32 MiB), the point to resume from. */
			if (sent % 64 == 0) {
				strbuf_reset(&js);
				strbuf_addf(&js,
					    "{\"sha256\": \"%s\", \"client_token\": \"%s\", "
					    "\"snapshot_id\": \"%s\", \"done_upto\": %" PRIu64
					    "}\n",
					    img->sha256, token, snap, (b + 1) * EBS_BLOCK);
				k = state_write(img->state_dir, "ebs.json", js.buf, err);
				if (k < 0)
					goto out;
			}
		}
		pos = eoff + elen;
	}
	if (k < 0) {
		strbuf_addf(err, "cannot read '%s': %s", img->path, strerror(-k));
		goto out;
	}
	sha256_final(agg, digest);
	verbose("aws: sent %" PRIu64 " of %" PRIu64 " blocks holding data to %s", sent, count,
		snap);
	k = ebs_complete(a, snap, count, digest, err);
	if (k < 0)
		goto out;
	*ret_snap = TAKE_PTR(snap);
	k = 0;
out:
	sha256_free(agg);
	strbuf_release(&js);
	return k;
}

/* The state of a snapshot (DescribeSnapshots): *ret_status NULL when EC2 knows none. */
static int describe_snapshot(struct aws *a, const char *snap, char **ret_status, char **ret_msg,
			     struct strbuf *err)
{
	struct strbuf q = STRBUF_INIT;
	struct http_response resp = {0};
	int k;

	struct strbuf why = STRBUF_INIT;

	*ret_status = *ret_msg = NULL;
	param(&q, "SnapshotId.1", snap);
	k = ec2_call(a, "DescribeSnapshots", &q, &resp, &why);
	if (k >= 0) {
		*ret_status = ec2_text(&resp, "status");
		*ret_msg = ec2_text(&resp, "statusMessage");
	} else if (strstr(strbuf_str(&why), "InvalidSnapshot.NotFound")) {
		k = 0; /* deleted since: no status */
	} else {
		strbuf_addstr(err, strbuf_str(&why));
	}
	strbuf_release(&why);
	http_response_release(&resp);
	strbuf_release(&q);
	return k;
}

/* Wait until the snapshot is completed (DescribeSnapshots); RegisterImage needs it. */
static int wait_snapshot(struct aws *a, const char *snap, struct strbuf *err)
{
	unsigned tries;
	int k = 0;

	for (tries = 0;; tries++) {
		_cleanup_free_ char *status = NULL, *msg = NULL;

		k = describe_snapshot(a, snap, &status, &msg, err);
		if (k < 0)
			break;
		if (status && !strcmp(status, "completed"))
			break;
		if (status && !strcmp(status, "error")) {
			strbuf_addf(err, "snapshot %s failed: %s; run the same command again", snap,
				    msg ? msg : "(no message)");
			k = -EIO;
			break;
		}
		if (tries > 2880) {
			strbuf_addf(err, "snapshot %s is still pending; run the same command later",
				    snap);
			k = -ETIMEDOUT;
			break;
		}
		sleep_s(poll_seconds());
	}
	return k;
}

/* --- S3 and ImportSnapshot --- */

static int import_snapshot(struct aws *a, const char *bucket, char **ret_snap, struct strbuf *err)
{
	const struct cloud_image *img = a->img;
	_cleanup_free_ char *s3ep = NULL, *key = NULL, *task = NULL, *fmt = NULL, *token = NULL;
	struct jsonr *st = state_read(img->state_dir, "import.json");
	struct strbuf q = STRBUF_INIT, js = STRBUF_INIT;
	bool custom = false;
	unsigned tries;
	size_t i;
	int k;

	key = xasprintf("imgforge/%s/%s.%s", img->build_id, img->name, img->format);
	if (st && jstr(st, "sha256") && !strcmp(jstr(st, "sha256"), img->sha256)) {
		if (jstr(st, "import_task_id"))
			task = xstrdup(jstr(st, "import_task_id"));
		if (jstr(st, "client_token"))
			token = xstrdup(jstr(st, "client_token"));
	}
	jsonr_free(st);
	if (!task) {
		s3ep = aws_endpoint("s3", a->cfg.region, &custom);
		{
			const struct s3 s = {.cfg = &a->cfg,
					     .endpoint = s3ep,
					     .path_style = custom,
					     .creds_hint = a->creds_hint};

			k = s3_upload(&s, bucket, key, img->path, img->state_dir, img->progress,
				      img->progress_userdata, NULL, err);
		}
		if (k < 0)
			goto out;
		fmt = xstrdup(img->format);
		for (i = 0; fmt[i]; i++)
			fmt[i] = (char)(fmt[i] >= 'a' && fmt[i] <= 'z' ? fmt[i] - 32 : fmt[i]);
		param(&q, "DiskContainer.Format", fmt);
		param(&q, "DiskContainer.UserBucket.S3Bucket", bucket);
		param(&q, "DiskContainer.UserBucket.S3Key", key);
		param(&q, "DiskContainer.Description", img->name);
		param(&q, "Description", img->description ? img->description : img->name);
		/*
		 * The token is kept before the call, so that a run killed before
		 * it recorded the task gets the same task back; a failed import's
		 * state is removed, and the next run draws a new one.
		 */
		if (!token) {
			k = new_token(&token, err);
			if (k < 0)
				goto out;
			strbuf_addf(&js, "{\"sha256\": \"%s\", \"client_token\": \"%s\"}\n",
				    img->sha256, token);
			k = state_write(img->state_dir, "import.json", js.buf, err);
			if (k < 0)
				goto out;
			strbuf_reset(&js);
		}
		param(&q, "ClientToken", token);
		param(&q, "TagSpecification.1.ResourceType", "import-snapshot-task");
		param(&q, "TagSpecification.1.Tag.1.Key", "imgforge:build");
		param(&q, "TagSpecification.1.Tag.1.Value", img->build_id);
		{
			struct http_response resp = {0};

			k = ec2_call(a, "ImportSnapshot", &q, &resp, err);
			if (k >= 0 && !(task = ec2_text(&resp, "importTaskId"))) {
				strbuf_addstr(
					err, "EC2 ImportSnapshot answered without an importTaskId");
				k = -EPROTO;
			}
			http_response_release(&resp);
		}
		if (k < 0)
			goto out;
		strbuf_addf(&js,
			    "{\"sha256\": \"%s\", \"client_token\": \"%s\", \"import_task_id\": "
			    "\"%s\"}\n",
			    img->sha256, token, task);
		k = state_write(img->state_dir, "import.json", js.buf, err);
		if (k < 0)
			goto out;
	}
	info("aws: import task %s converts s3://%s/%s into a snapshot", task, bucket, key);
	strbuf_reset(&q);
	param(&q, "ImportTaskId.1", task);
	for (tries = 0;; tries++) {
		struct http_response resp = {0};
		_cleanup_free_ char *status = NULL, *msg = NULL, *snap = NULL;

		k = ec2_call(a, "DescribeImportSnapshotTasks", &q, &resp, err);
		if (k >= 0) {
			status = ec2_text(&resp, "status");
			msg = ec2_text(&resp, "statusMessage");
			snap = ec2_text(&resp, "snapshotId");
		}
		http_response_release(&resp);
		if (k < 0)
			goto out;
		if (status && !strcmp(status, "completed") && snap && *snap) {
			*ret_snap = TAKE_PTR(snap);
			break;
		}
		if (!status || !strcmp(status, "deleted") || !strcmp(status, "deleting")) {
			_cleanup_free_ char *p = path_join(img->state_dir, "import.json");

			/* No status: EC2 no longer knows the task (they expire); import again. */
			strbuf_addf(err,
				    "import task %s failed: %s; check the image and the vmimport "
				    "role, then run the same command again",
				    task,
				    msg	     ? msg
				    : status ? "(no message)"
					     : "EC2 no longer knows it");
			unlink(p); /* the next run imports again */
			fsync_parent(p);
			k = -EIO;
			goto out;
		}
		if (tries > 2880) {
			strbuf_addf(err, "import task %s is still %s; run the same command later",
				    task, status ? status : "running");
			k = -ETIMEDOUT;
			goto out;
		}
		sleep_s(poll_seconds());
	}
	k = 0;
out:
	strbuf_release(&q);
	strbuf_release(&js);
	return k;
}

/* --- the image --- */

static int register_image(struct aws *a, const char *snap, char **ret_ami, struct strbuf *err)
{
	const struct cloud_image *img = a->img;
	struct strbuf q = STRBUF_INIT;
	struct http_response resp = {0};
	int k;

	param(&q, "Name", img->name);
	param(&q, "Description", img->description ? img->description : img->name);
	param(&q, "Architecture", "x86_64");
	param(&q, "VirtualizationType", "hvm");
	param(&q, "EnaSupport", "true");
	/*
	 * imgforge's disks boot both ways (a BIOS boot partition and an ESP):
	 * UEFI where the instance type has it, BIOS elsewhere.
	 */
	param(&q, "BootMode",
	      img->firmware && !strcmp(img->firmware, "uefi") ? "uefi-preferred" : "legacy-bios");
	param(&q, "RootDeviceName", "/dev/xvda");
	param(&q, "BlockDeviceMapping.1.DeviceName", "/dev/xvda");
	param(&q, "BlockDeviceMapping.1.Ebs.SnapshotId", snap);
	param(&q, "BlockDeviceMapping.1.Ebs.DeleteOnTermination", "true");
	param(&q, "BlockDeviceMapping.1.Ebs.VolumeType", "gp3");
	k = ec2_call(a, "RegisterImage", &q, &resp, err);
	if (k >= 0 && !(*ret_ami = ec2_text(&resp, "imageId"))) {
		strbuf_addstr(err, "EC2 RegisterImage answered without an imageId");
		k = -EPROTO;
	}
	http_response_release(&resp);
	strbuf_release(&q);
	return k;
}

static int tag_and_share(struct aws *a, const char *ami, const char *snap, struct strbuf *err)
{
	struct strbuf q = STRBUF_INIT;
	struct http_response resp = {0};
	int k;

	param(&q, "ResourceId.1", ami);
	param(&q, "ResourceId.2", snap);
	param(&q, "Tag.1.Key", "imgforge:build");
	param(&q, "Tag.1.Value", a->img->build_id);
	param(&q, "Tag.2.Key", "Name");
	param(&q, "Tag.2.Value", a->img->name);
	k = ec2_call(a, "CreateTags", &q, &resp, err);
	http_response_release(&resp);
	if (k >= 0 && a->img->public_image) {
		strbuf_reset(&q);
		param(&q, "ImageId", ami);
		param(&q, "LaunchPermission.Add.1.Group", "all");
		k = ec2_call(a, "ModifyImageAttribute", &q, &resp, err);
		http_response_release(&resp);
	}
	strbuf_release(&q);
	return k;
}

int cloud_publish_aws(const struct cloud_image *img, struct cloud_result *res, struct strbuf *err)
{
	struct aws a = {.img = img};
	_cleanup_free_ char *snap = NULL, *ami = NULL;
	const char *bucket = img->bucket;
	bool custom;
	int k;

	k = aws_config_load(img->region, &a.cfg, err);
	if (k < 0)
		return k;
	if (!a.cfg.region) {
		strbuf_addf(err,
			    "no AWS region: give --region, or set AWS_REGION, or region in "
			    "profile '%s' of ~/.aws/config",
			    a.cfg.profile);
		k = -EINVAL;
		goto out;
	}
	a.creds_hint =
		getenv("AWS_ACCESS_KEY_ID") && *getenv("AWS_ACCESS_KEY_ID")
			? xstrdup("from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
			: xasprintf("from profile '%s' of ~/.aws/credentials", a.cfg.profile);
	a.ec2 = aws_endpoint("ec2", a.cfg.region, &custom);
	a.ebs = aws_endpoint("ebs", a.cfg.region, &custom);

	if (!strcmp(img->format, "raw")) {
		k = ebs_snapshot(&a, &snap, err);
	} else {
		if (!bucket || !*bucket) {
			strbuf_addf(err,
				    "a %s image goes through an S3 bucket: give --bucket B (or "
				    "publish the raw disk with the EBS direct APIs: --format raw)",
				    img->format);
			k = -EINVAL;
			goto out;
		}
		k = import_snapshot(&a, bucket, &snap, err);
	}
	if (k < 0)
		goto out;
	k = wait_snapshot(&a, snap, err);
	if (k < 0)
		goto out;
	k = register_image(&a, snap, &ami, err);
	if (k < 0)
		goto out;
	k = tag_and_share(&a, ami, snap, err);
	if (k < 0)
		goto out;
	{
		_cleanup_free_ char *p1 = path_join(img->state_dir, "ebs.json");
		_cleanup_free_ char *p2 = path_join(img->state_dir, "import.json");

		unlink(p1);
		unlink(p2);
		fsync_parent(p2);
	}
	res->target = xstrdup("aws");
	res->region = xstrdup(a.cfg.region);
	res->image_id = TAKE_PTR(ami);
	res->location = TAKE_PTR(snap);
	k = 0;
out:
	aws_config_release(&a.cfg);
	free(a.ec2);
	free(a.ebs);
	free(a.creds_hint);
	return k;
}
