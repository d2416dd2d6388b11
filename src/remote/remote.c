/* SPDX-License-Identifier: MIT */
/*
 * The shared store over S3 (see remote.h): content-addressed objects and
 * the small entries of the stage cache that name them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud/s3.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/json.h"
#include "remote/remote.h"
#include "update/jsonr.h"

/* A stage entry is a few lines of JSON: anything much larger is not one. */
#define STAGE_ENTRY_MAX 4096

struct remote {
	char *url; /* s3://bucket/prefix, no trailing '/' */
	char *bucket;
	char *prefix; /* "" or "a/b/", with its trailing '/' */
	struct aws_config cfg;
	char *endpoint;
	char *creds_hint;
	struct s3 s3;
};

const char *remote_location(const char *option)
{
	const char *env = getenv("IMGFORGE_STORE");

	if (option)
		return option;
	return env && *env ? env : NULL;
}

/* S3's bucket names: 3 to 63 of [a-z0-9.-], starting and ending with a letter or digit. */
static bool bucket_valid(const char *b, size_t n)
{
	size_t i;

	if (n < 3 || n > 63)
		return false;
	for (i = 0; i < n; i++)
		if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
		      b[i] == '-'))
			return false;
	return b[0] != '.' && b[0] != '-' && b[n - 1] != '.' && b[n - 1] != '-';
}

int remote_open(const char *url, struct remote **ret, struct strbuf *err)
{
	struct remote *r;
	const char *b, *slash;
	size_t blen, plen;
	bool custom = false;
	int k;

	if (!str_startswith(url, "s3://")) {
		strbuf_addf(err,
			    "store '%s': not an s3:// URL; give s3://BUCKET or s3://BUCKET/PREFIX",
			    url);
		return -EINVAL;
	}
	b = url + 5;
	slash = strchr(b, '/');
	blen = slash ? (size_t)(slash - b) : strlen(b);
	if (!bucket_valid(b, blen)) {
		strbuf_addf(err,
			    "store '%s': '%.*s' is not a bucket name (3 to 63 of a-z, 0-9, '.' and "
			    "'-'); give s3://BUCKET or s3://BUCKET/PREFIX",
			    url, (int)blen, b);
		return -EINVAL;
	}
	r = xcalloc(1, sizeof(*r));
	r->bucket = xstrndup(b, blen);
	{
		const char *p = slash ? slash + 1 : "";

		plen = strlen(p);
		while (plen && p[plen - 1] == '/')
			plen--;
		r->prefix = plen ? xasprintf("%.*s/", (int)plen, p) : xstrdup("");
		r->url = plen ? xasprintf("s3://%s/%.*s", r->bucket, (int)plen, p)
			      : xasprintf("s3://%s", r->bucket);
	}
	k = aws_config_load(NULL, &r->cfg, err);
	if (k < 0) {
		strbuf_addf(err, " (for the store '%s')", r->url);
		remote_close(r);
		return k;
	}
	r->creds_hint = getenv("AWS_ACCESS_KEY_ID") && *getenv("AWS_ACCESS_KEY_ID")
				? xstrdup("from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
				: xasprintf("from profile '%s' of ~/.aws/credentials",
					    r->cfg.profile ? r->cfg.profile : "default");
	r->endpoint = aws_endpoint("s3", r->cfg.region ? r->cfg.region : "us-east-1", &custom);
	r->s3 = (struct s3){
		.cfg = &r->cfg,
		.endpoint = r->endpoint,
		.path_style = custom,
		.creds_hint = r->creds_hint,
		/* A store that is not there costs a build seconds, not minutes. */
		.retries = 2,
		.retry_delay_ms = 500,
	};
	*ret = r;
	return 0;
}

void remote_close(struct remote *r)
{
	if (!r)
		return;
	aws_config_release(&r->cfg);
	free(r->url);
	free(r->bucket);
	free(r->prefix);
	free(r->endpoint);
	free(r->creds_hint);
	free(r);
}

void remote_closep(struct remote **r)
{
	remote_close(*r);
	*r = NULL;
}

const char *remote_url(const struct remote *r)
{
	return r->url;
}

static char *object_key(const struct remote *r, const char *sha256)
{
	return xasprintf("%sobjects/sha256/%s", r->prefix, sha256);
}

static char *stage_key(const struct remote *r, const char *key)
{
	return xasprintf("%sstages/%s.json", r->prefix, key);
}

char *remote_object_url(const struct remote *r, const char *sha256)
{
	_cleanup_free_ char *k = object_key(r, sha256);

	return xasprintf("s3://%s/%s", r->bucket, k);
}

int remote_put_object(struct remote *r, const char *path, const char *sha256, const char *state_dir,
		      bool force, struct strbuf *err)
{
	_cleanup_free_ char *key = object_key(r, sha256);
	int k;

	if (!force) {
		k = s3_head(&r->s3, r->bucket, key, NULL, NULL, err);
		if (k != 0)
			return k < 0 ? k : 0;
	}
	k = mkdir_p(state_dir, 0700);
	if (k < 0) {
		strbuf_addf(err, "cannot create '%s': %s", state_dir, strerror(-k));
		return k;
	}
	k = s3_put_file(&r->s3, r->bucket, key, path, state_dir, err);
	return k < 0 ? k : 1;
}

int remote_get_object(struct remote *r, const char *sha256, const char *path, uint64_t *ret_size,
		      struct strbuf *err)
{
	_cleanup_free_ char *key = object_key(r, sha256);
	_cleanup_close_ int fd = -1;
	char got[SHA256_HEX_LEN];
	uint64_t size = 0;
	int k;

	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		strbuf_addf(err, "cannot create '%s': %s", path, strerror(errno));
		return -errno;
	}
	k = s3_get_fd(&r->s3, r->bucket, key, fd, &size, err);
	if (k < 0)
		return k;
	k = sha256_fd_range(fd, 0, size, got);
	if (k < 0) {
		strbuf_addf(err, "cannot read '%s': %s", path, strerror(-k));
		return k;
	}
	if (strcmp(got, sha256)) {
		if (ftruncate(fd, 0) < 0) {
			/* the caller deletes the file all the same */
		}
		strbuf_addf(
			err,
			"'s3://%s/%s' is not the file stored under that name (its SHA-256 is %s): "
			"refused; delete the object from the store (the next build that makes it "
			"puts it back)",
			r->bucket, key, got);
		return -EBADMSG;
	}
	if (fsync(fd) < 0) {
		strbuf_addf(err, "cannot write '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (ret_size)
		*ret_size = size;
	return 0;
}

static bool stage_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (!n || n >= sizeof(((struct remote_stage *)0)->stage))
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}

static bool sha256_valid(const char *s)
{
	size_t i;

	for (i = 0; i < SHA256_HEX_LEN - 1; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[SHA256_HEX_LEN - 1] == '\0';
}

int remote_get_stage(struct remote *r, const char *key, struct remote_stage *ret,
		     struct strbuf *err)
{
	_cleanup_free_ char *skey = stage_key(r, key), *text = NULL;
	struct jsonr *doc = NULL;
	const struct jsonr_value *k, *st, *sha, *size;
	struct remote_stage e = {0};
	char jerr[128] = "";
	size_t len = 0;
	int rc;

	rc = s3_get_data(&r->s3, r->bucket, skey, STAGE_ENTRY_MAX, &text, &len, err);
	if (rc == -ENOENT) {
		strbuf_reset(err);
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = -EBADMSG;
	if (jsonr_parse(text, len, &doc, jerr, sizeof(jerr)) < 0)
		goto bad;
	k = jsonr_get(&doc->root, "key");
	st = jsonr_get(&doc->root, "stage");
	sha = jsonr_get(&doc->root, "sha256");
	size = jsonr_get(&doc->root, "size");
	if (!k || k->type != JSONR_STRING || strcmp(k->s, key) || !st || st->type != JSONR_STRING ||
	    !stage_name_valid(st->s) || !sha || sha->type != JSONR_STRING ||
	    strlen(sha->s) != SHA256_HEX_LEN - 1 || !sha256_valid(sha->s) || !size ||
	    size->type != JSONR_UINT) {
		snprintf(jerr, sizeof(jerr), "not a stage entry for this key");
		goto bad;
	}
	strcpy(e.stage, st->s);
	strcpy(e.sha256, sha->s);
	e.size = size->u;
	jsonr_free(doc);
	*ret = e;
	return 1;
bad:
	jsonr_free(doc);
	strbuf_addf(err,
		    "'s3://%s/%s' cannot be read: %s; delete it from the store (the next build of "
		    "the stage writes it again)",
		    r->bucket, skey, jerr);
	return rc;
}

int remote_put_stage(struct remote *r, const char *key, const struct remote_stage *e,
		     struct strbuf *err)
{
	_cleanup_free_ char *skey = stage_key(r, key);
	struct strbuf sb = STRBUF_INIT;
	struct json j;
	int k;

	json_init(&j, &sb, true);
	json_begin_object(&j);
	json_kv_string(&j, "key", key);
	json_kv_string(&j, "stage", e->stage);
	json_kv_string(&j, "sha256", e->sha256);
	json_kv_uint(&j, "size", e->size);
	json_end_object(&j);
	strbuf_addch(&sb, '\n');
	k = s3_put_data(&r->s3, r->bucket, skey, sb.buf, sb.len, err);
	strbuf_release(&sb);
	return k;
}
