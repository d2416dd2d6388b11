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
#include "recipe/recipe.h"
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
 * The Scaleway CLI's configuration file, as its CLI and SDKs read it:
 * $SCW_CONFIG_PATH, else $XDG_CONFIG_HOME/scw/config.yaml, else
 * ~/.config/scw/config.yaml. Its top-level keys, or those of the profile
 * SCW_PROFILE (else its active_profile) names under profiles:, a key the
 * profile lacks taken from the top level.
 */
enum { SCW_AK, SCW_SK, SCW_PROJECT, SCW_ORG, SCW_ZONE, SCW_REGION, SCW_API, SCW_NKEYS };
static const char *const scw_keys[SCW_NKEYS] = {
	"access_key",
	"secret_key",
	"default_project_id",
	"default_organization_id",
	"default_zone",
	"default_region",
	"api_url",
};
static const char *const scw_vars[SCW_NKEYS] = {
	"SCW_ACCESS_KEY",
	"SCW_SECRET_KEY",
	"SCW_DEFAULT_PROJECT_ID",
	"SCW_DEFAULT_ORGANIZATION_ID",
	"SCW_DEFAULT_ZONE",
	"SCW_DEFAULT_REGION",
	"SCW_API_URL",
};

struct scw_file {
	char *path; /* the file read, or NULL */
	char *v[SCW_NKEYS];
};

static void scw_file_release(struct scw_file *f)
{
	size_t i;

	free(f->path);
	for (i = 0; i < SCW_NKEYS; i++)
		free(f->v[i]);
}

static const char *ystr(const struct ynode *map, const char *key)
{
	const struct ynode *v = map && map->kind == YNODE_MAP ? ynode_map_get(map, key) : NULL;

	return v && v->kind == YNODE_SCALAR && v->str[0] ? v->str : NULL;
}

static int scw_file_read(struct scw_file *f, struct strbuf *err)
{
	_cleanup_free_ char *path = NULL, *buf = NULL;
	const char *profile = env("SCW_PROFILE");
	const struct ynode *prof = NULL;
	struct ynode *root = NULL;
	struct diags d = {0};
	size_t len = 0, i;
	int r;

	if (env("SCW_CONFIG_PATH"))
		path = xstrdup(env("SCW_CONFIG_PATH"));
	else if (env("XDG_CONFIG_HOME"))
		path = xasprintf("%s/scw/config.yaml", env("XDG_CONFIG_HOME"));
	else if (env("HOME"))
		path = xasprintf("%s/.config/scw/config.yaml", env("HOME"));
	else
		return 0;
	r = read_file(path, 1 << 20, &buf, &len);
	if (r == -ENOENT && !env("SCW_CONFIG_PATH"))
		return 0;
	if (r < 0) {
		strbuf_addf(err, "cannot read the Scaleway configuration '%s': %s", path,
			    strerror(-r));
		return r;
	}
	if (!len)
		return 0;
	r = ynode_parse(path, buf, len, &root, &d);
	if (r < 0 || d.nerrors) {
		if (d.n)
			strbuf_addf(err, "%s:%d:%d: %s", d.v[0].file, d.v[0].line, d.v[0].col,
				    d.v[0].msg);
		else
			strbuf_addf(err, "'%s' is not valid YAML", path);
		r = -EINVAL;
		goto out;
	}
	if (!root || root->kind != YNODE_MAP) {
		strbuf_addf(err, "%s: the Scaleway configuration must be a mapping of keys", path);
		r = -EINVAL;
		goto out;
	}
	if (!profile)
		profile = ystr(root, "active_profile");
	if (profile) {
		const struct ynode *all = ynode_map_get(root, "profiles");

		prof = all && all->kind == YNODE_MAP ? ynode_map_get(all, profile) : NULL;
		if (!prof || prof->kind != YNODE_MAP) {
			strbuf_addf(err,
				    "%s: no profile '%s' under profiles: (set SCW_PROFILE or "
				    "active_profile to one of them)",
				    path, profile);
			r = -ENOENT;
			goto out;
		}
	}
	for (i = 0; i < SCW_NKEYS; i++) {
		const char *v = prof ? ystr(prof, scw_keys[i]) : NULL;

		if (!v)
			v = ystr(root, scw_keys[i]);
		f->v[i] = v ? xstrdup(v) : NULL;
	}
	f->path = TAKE_PTR(path);
	r = 0;
out:
	ynode_free(root);
	diags_release(&d);
	return r;
}

/* A setting: its variable, else the configuration file's key. */
static const char *scw_get(const struct scw_file *f, int key)
{
	return env(scw_vars[key]) ? env(scw_vars[key]) : f->v[key];
}

/*
 * The credentials and where to publish, from the variables the Scaleway CLI
 * and SDKs read, over its configuration file. --region takes a zone
 * ("fr-par-1") or a region ("fr-par": its first zone).
 */
static int scw_load(struct scw *s, const char *where, struct strbuf *err)
{
	struct scw_file f = {0};
	const char *ak, *sk, *proj, *zone;
	size_t n;
	int r;

	r = scw_file_read(&f, err);
	if (r < 0)
		return r;
	ak = scw_get(&f, SCW_AK);
	sk = scw_get(&f, SCW_SK);
	proj = scw_get(&f, SCW_PROJECT);
	zone = where ? where : scw_get(&f, SCW_ZONE);
	if (!proj)
		proj = scw_get(&f, SCW_ORG);
	if (!ak || !sk) {
		strbuf_addstr(err,
			      "no Scaleway credentials: set SCW_ACCESS_KEY and SCW_SECRET_KEY, or "
			      "access_key and secret_key in ~/.config/scw/config.yaml (an API key "
			      "of the project, made in the console's IAM section)");
		r = -ENOKEY;
		goto out;
	}
	if (!proj) {
		strbuf_addstr(err, "no Scaleway project: set SCW_DEFAULT_PROJECT_ID, or "
				   "default_project_id in ~/.config/scw/config.yaml");
		r = -EINVAL;
		goto out;
	}
	if (!zone)
		zone = scw_get(&f, SCW_REGION) ? scw_get(&f, SCW_REGION) : "fr-par-1";
	n = strlen(zone);
	/* A region ("fr-par") names its first zone; a zone ends in "-DIGIT". */
	if (n > 2 && zone[n - 2] == '-' && zone[n - 1] >= '1' && zone[n - 1] <= '9') {
		s->zone = xstrdup(zone);
		s->region = xstrndup(zone, n - 2);
	} else {
		s->zone = xasprintf("%s-1", zone);
		s->region = xstrdup(zone);
	}
	s->api = xstrdup(scw_get(&f, SCW_API) ? scw_get(&f, SCW_API) : "https://api.scaleway.com");
	n = strlen(s->api);
	while (n && s->api[n - 1] == '/')
		s->api[--n] = 0;
	s->project = xstrdup(proj);
	s->s3cfg.access_key_id = xstrdup(ak);
	s->s3cfg.secret_access_key = xstrdup(sk);
	s->s3cfg.region = xstrdup(s->region);
	s->s3cfg.profile = xstrdup("scaleway");
	s->auth = xasprintf("X-Auth-Token: %s", sk);
	r = 0;
out:
	scw_file_release(&f);
	return r;
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
		k = resp.status >= 500 || resp.status == 429 ? -EAGAIN
		    : resp.status == 404		     ? -ENOENT
							     : -EACCES;
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
		if (k == -ENOENT) {
			/* Deleted since the earlier run: the next run uploads and imports again. */
			strbuf_addstr(err,
				      "; the snapshot of the earlier run is gone, run the same "
				      "command again to import the image anew");
			unlink(state);
			fsync_parent(state);
			goto out;
		}
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
			fsync_parent(state);
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
		const struct s3 s3 = {.cfg = &s.s3cfg,
				      .endpoint = s3ep,
				      .path_style = env("SCW_S3_ENDPOINT") != NULL,
				      .creds_hint = "from SCW_ACCESS_KEY and SCW_SECRET_KEY"};
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
		fsync_parent(state);
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
