/* SPDX-License-Identifier: MIT */
/*
 * Publishing to Scaleway: the qcow2 uploaded to Object Storage (S3, SigV4,
 * s3.c, resumable), imported as a block snapshot (Block Storage API,
 * import-from-object-storage), polled until available, and an instance
 * image made from it (Instance API), tagged with the build id.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloud/aws-auth.h"
#include "cloud/cloud.h"
#include "cloud/s3.h"
#include "core/file.h"
#include "core/json.h"
#include "net/http.h"
#include "update/jsonr.h"

struct scw {
	const struct cloud_image *img;
	char *api, *zone, *region, *project;
	struct aws_config s3cfg; /* the access and secret key, as S3 takes them */
	char *auth;		 /* "X-Auth-Token: SECRET" */
};

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static void sleep_s(unsigned s)
{
	struct timespec ts = {(time_t)s, 0};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static unsigned poll_seconds(void)
{
	const char *v = env("IMGFORGE_SCW_POLL_SECONDS");

	return v ? (unsigned)strtoul(v, NULL, 10) : 10;
}

/*
 * The credentials and where to publish, from the variables the Scaleway CLI
 * and SDKs read. --region takes a zone ("fr-par-1") or a region ("fr-par":
 * its first zone).
 */
static int scw_load(struct scw *s, const char *where, struct strbuf *err)
{
	const char *ak = env("SCW_ACCESS_KEY"), *sk = env("SCW_SECRET_KEY");
	const char *proj = env("SCW_DEFAULT_PROJECT_ID");
	const char *zone = where ? where : env("SCW_DEFAULT_ZONE");
	size_t n;

	if (!proj)
		proj = env("SCW_DEFAULT_ORGANIZATION_ID");
	if (!ak || !sk) {
		strbuf_addstr(err,
			      "no Scaleway credentials: set SCW_ACCESS_KEY and SCW_SECRET_KEY "
			      "(an API key of the project, made in the console's IAM section)");
		return -ENOKEY;
	}
	if (!proj) {
		strbuf_addstr(err, "no Scaleway project: set SCW_DEFAULT_PROJECT_ID");
		return -EINVAL;
	}
	if (!zone)
		zone = env("SCW_DEFAULT_REGION") ? env("SCW_DEFAULT_REGION") : "fr-par-1";
	n = strlen(zone);
	/* A region ("fr-par") names its first zone; a zone ends in "-DIGIT". */
	if (n > 2 && zone[n - 2] == '-' && zone[n - 1] >= '1' && zone[n - 1] <= '9') {
		s->zone = xstrdup(zone);
		s->region = xstrndup(zone, n - 2);
	} else {
		s->zone = xasprintf("%s-1", zone);
		s->region = xstrdup(zone);
	}
	s->api = xstrdup(env("SCW_API_URL") ? env("SCW_API_URL") : "https://api.scaleway.com");
	n = strlen(s->api);
	while (n && s->api[n - 1] == '/')
		s->api[--n] = 0;
	s->project = xstrdup(proj);
	s->s3cfg.access_key_id = xstrdup(ak);
	s->s3cfg.secret_access_key = xstrdup(sk);
	s->s3cfg.region = xstrdup(s->region);
	s->s3cfg.profile = xstrdup("scaleway");
	s->auth = xasprintf("X-Auth-Token: %s", sk);
	return 0;
}

static void scw_release(struct scw *s)
{
	aws_config_release(&s->s3cfg);
	if (s->auth)
		explicit_bzero(s->auth, strlen(s->auth));
	free(s->auth);
	free(s->api);
	free(s->zone);
	free(s->region);
	free(s->project);
}

/* "type: message (details); what to do" of a Scaleway error answer. */
static void scw_error(const struct http_response *resp, const char *what, struct strbuf *err)
{
	struct jsonr *doc = NULL;
	const struct jsonr_value *v, *d;
	const char *type = NULL, *msg = NULL;
	char jerr[64];

	strbuf_addf(err, "%s: ", what);
	if (resp->body.len &&
	    jsonr_parse_api(resp->body.buf, resp->body.len, &doc, jerr, sizeof(jerr)) == 0) {
		v = jsonr_get(&doc->root, "type");
		type = v && v->type == JSONR_STRING ? v->s : NULL;
		v = jsonr_get(&doc->root, "message");
		msg = v && v->type == JSONR_STRING ? v->s : NULL;
	}
	strbuf_addf(err, "%s: %s", type ? type : "HTTP error", msg ? msg : "(no message)");
	d = doc ? jsonr_get(&doc->root, "details") : NULL;
	if (d && d->type == JSONR_ARRAY && d->n) {
		const struct jsonr_value *a = jsonr_get(&d->items[0], "argument_name");
		const struct jsonr_value *h = jsonr_get(&d->items[0], "help_message");

		if (a && a->type == JSONR_STRING)
			strbuf_addf(err, " (%s%s%s)", a->s,
				    h && h->type == JSONR_STRING ? ": " : "",
				    h && h->type == JSONR_STRING ? h->s : "");
	}
	if (resp->status == 401)
		strbuf_addstr(err, "; check SCW_SECRET_KEY (and that the API key is not expired)");
	else if (resp->status == 403)
		strbuf_addstr(err,
			      "; the API key lacks the permission, or SCW_DEFAULT_PROJECT_ID is "
			      "not its project");
	else if (type && !strcmp(type, "quotas_exceeded"))
		strbuf_addstr(err, "; raise the project's quota or remove old images");
	jsonr_free(doc);
}

/* One call of the Scaleway API; 0 with *ret the answer's JSON, or -errno with err. */
static int scw_call(const struct scw *s, const char *method, const char *path,
		    const struct strbuf *body, long want, const char *what, struct jsonr **ret,
		    struct strbuf *err)
{
	const char *const hdr[] = {s->auth, "Content-Type: application/json", NULL};
	_cleanup_free_ char *url = xasprintf("%s%s", s->api, path);
	struct http_request req = HTTP_REQUEST_INIT;
	struct http_response resp = {0};
	char jerr[128];
	int k;

	req.method = method;
	req.url = url;
	req.headers = hdr;
	if (body) {
		req.body = body->buf;
		req.body_len = body->len;
	}
	req.timeout_s = 300;
	k = http_request(&req, &resp, err);
	if (k < 0)
		goto out;
	if (resp.status != want && !(want == 201 && resp.status == 200)) {
		scw_error(&resp, what, err);
		k = resp.status >= 500 || resp.status == 429 ? -EAGAIN : -EACCES;
		goto out;
	}
	if (jsonr_parse_api(resp.body.buf ? resp.body.buf : "", resp.body.len, ret, jerr,
			    sizeof(jerr)) < 0) {
		strbuf_addf(err, "%s: the answer is not JSON: %s", what, jerr);
		k = -EPROTO;
	}
out:
	http_response_release(&resp);
	return k;
}

static const char *jstr(const struct jsonr_value *o, const char *k)
{
	const struct jsonr_value *v = o ? jsonr_get(o, k) : NULL;

	return v && v->type == JSONR_STRING ? v->s : NULL;
}

static int import_snapshot(struct scw *s, const char *bucket, const char *key, char **ret_id,
			   struct strbuf *err)
{
	const struct cloud_image *img = s->img;
	_cleanup_free_ char *path = NULL, *tag = xasprintf("imgforge:build=%s", img->build_id);
	_cleanup_free_ char *state = path_join(img->state_dir, "import.json"), *text = NULL;
	_cleanup_free_ char *sid = NULL;
	struct strbuf body = STRBUF_INIT;
	struct jsonr *doc = NULL;
	struct json j;
	char jerr[64];
	size_t len;
	unsigned tries;
	int k;

	/* An import started by an earlier run of the same file: poll it again. */
	if (read_file(state, 1u << 20, &text, &len) == 0 &&
	    jsonr_parse(text, len, &doc, jerr, sizeof(jerr)) == 0 && jstr(&doc->root, "sha256") &&
	    !strcmp(jstr(&doc->root, "sha256"), img->sha256) && jstr(&doc->root, "snapshot_id"))
		sid = xstrdup(jstr(&doc->root, "snapshot_id"));
	jsonr_free(doc);
	doc = NULL;
	if (!sid) {
		json_init(&j, &body, false);
		json_begin_object(&j);
		json_kv_string(&j, "bucket", bucket);
		json_kv_string(&j, "key", key);
		json_kv_string(&j, "name", img->name);
		json_kv_string(&j, "project_id", s->project);
		json_kv_uint(&j, "size", img->virtual_size);
		json_key(&j, "tags");
		json_begin_array(&j);
		json_string(&j, tag);
		json_end_array(&j);
		json_end_object(&j);
		path = xasprintf("/block/v1alpha1/zones/%s/snapshots/import-from-object-storage",
				 s->zone);
		k = scw_call(s, "POST", path, &body, 201, "Scaleway snapshot import", &doc, err);
		if (k < 0)
			goto out;
		if (!jstr(&doc->root, "id")) {
			strbuf_addstr(err,
				      "Scaleway snapshot import: the answer has no snapshot id");
			k = -EPROTO;
			goto out;
		}
		sid = xstrdup(jstr(&doc->root, "id"));
		jsonr_free(doc);
		doc = NULL;
		strbuf_reset(&body);
		strbuf_addf(&body, "{\"sha256\": \"%s\", \"snapshot_id\": \"%s\"}\n", img->sha256,
			    sid);
		k = write_file_atomic(state, body.buf, body.len, 0600);
		if (k >= 0)
			k = fsync_parent(state);
		if (k < 0) {
			strbuf_addf(err, "cannot write '%s': %s", state, strerror(-k));
			goto out;
		}
	}
	info("scaleway: snapshot %s imports s3://%s/%s", sid, bucket, key);
	free(path);
	path = xasprintf("/block/v1alpha1/zones/%s/snapshots/%s", s->zone, sid);
	for (tries = 0;; tries++) {
		const char *st;

		k = scw_call(s, "GET", path, NULL, 200, "Scaleway snapshot", &doc, err);
		if (k < 0)
			goto out;
		st = jstr(&doc->root, "status");
		if (st && !strcmp(st, "available"))
			break;
		if (st && strcmp(st, "creating")) {
			strbuf_addf(err,
				    "Scaleway snapshot %s of s3://%s/%s is '%s': the import "
				    "failed; check that the object is a qcow2, then run the same "
				    "command again",
				    sid, bucket, key, st);
			unlink(state);
			k = -EIO;
			goto out;
		}
		if (tries > 2000) {
			strbuf_addf(err,
				    "Scaleway snapshot %s is still importing; run the same "
				    "command later",
				    sid);
			k = -ETIMEDOUT;
			goto out;
		}
		jsonr_free(doc);
		doc = NULL;
		sleep_s(poll_seconds());
	}
	*ret_id = TAKE_PTR(sid);
	k = 0;
out:
	jsonr_free(doc);
	strbuf_release(&body);
	return k;
}

static int create_image(struct scw *s, const char *sid, char **ret_id, struct strbuf *err)
{
	const struct cloud_image *img = s->img;
	_cleanup_free_ char *path = xasprintf("/instance/v1/zones/%s/images", s->zone);
	_cleanup_free_ char *tag = xasprintf("imgforge:build=%s", img->build_id);
	struct strbuf body = STRBUF_INIT;
	struct jsonr *doc = NULL;
	const char *id;
	struct json j;
	int k;

	json_init(&j, &body, false);
	json_begin_object(&j);
	json_kv_string(&j, "name", img->name);
	json_kv_string(&j, "root_volume", sid);
	json_kv_string(&j, "arch", "x86_64");
	json_kv_string(&j, "project", s->project);
	json_kv_bool(&j, "public", img->public_image);
	json_key(&j, "tags");
	json_begin_array(&j);
	json_string(&j, tag);
	json_end_array(&j);
	json_end_object(&j);
	k = scw_call(s, "POST", path, &body, 201, "Scaleway image", &doc, err);
	if (k >= 0) {
		id = jstr(jsonr_get(&doc->root, "image"), "id");
		if (id) {
			*ret_id = xstrdup(id);
		} else {
			strbuf_addstr(err, "Scaleway image: the answer has no image id");
			k = -EPROTO;
		}
	}
	jsonr_free(doc);
	strbuf_release(&body);
	return k;
}

int cloud_publish_scaleway(const struct cloud_image *img, struct cloud_result *res,
			   struct strbuf *err)
{
	struct scw s = {.img = img};
	_cleanup_free_ char *s3ep = NULL, *key = NULL, *sid = NULL, *iid = NULL;
	int k;

	k = scw_load(&s, img->region, err);
	if (k < 0)
		goto out;
	if (!img->bucket || !*img->bucket) {
		strbuf_addstr(err, "Scaleway imports images from Object Storage: give --bucket B, "
				   "a bucket of the project in the region");
		k = -EINVAL;
		goto out;
	}
	s3ep = env("SCW_S3_ENDPOINT") ? xstrdup(env("SCW_S3_ENDPOINT"))
				      : xasprintf("https://s3.%s.scw.cloud", s.region);
	key = xasprintf("imgforge/%s/%s.%s", img->build_id, img->name, img->format);
	{
		const struct s3 s3 = {&s.s3cfg, s3ep, env("SCW_S3_ENDPOINT") != NULL,
				      "from SCW_ACCESS_KEY and SCW_SECRET_KEY"};
		_cleanup_free_ char *state = path_join(img->state_dir, "import.json");

		/* Once the snapshot is imported, the object is not needed again. */
		if (access(state, F_OK) < 0) {
			k = s3_upload(&s3, img->bucket, key, img->path, img->state_dir,
				      img->progress, img->progress_userdata, NULL, err);
			if (k < 0)
				goto out;
		}
	}
	k = import_snapshot(&s, img->bucket, key, &sid, err);
	if (k < 0)
		goto out;
	k = create_image(&s, sid, &iid, err);
	if (k < 0)
		goto out;
	{
		_cleanup_free_ char *state = path_join(img->state_dir, "import.json");

		unlink(state);
	}
	res->target = xstrdup("scaleway");
	res->region = xstrdup(s.zone);
	res->image_id = TAKE_PTR(iid);
	res->location = TAKE_PTR(sid);
	k = 0;
out:
	scw_release(&s);
	return k;
}
