/* SPDX-License-Identifier: MIT */
/*
 * S3 multipart uploads, resumable across runs (see s3.h), and the signed
 * request every AWS-style call of src/cloud/ goes through. Single objects
 * (HEAD, GET, PUT) are in s3-object.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloud/s3.h"
#include "cloud/xml.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/json.h"
#include "update/jsonr.h"

#define PART_SIZE_MIN (8u << 20) /* the AWS CLI's multipart_chunksize */
#define PARTS_MAX     10000	 /* S3's limit */

/* --- signed requests --- */

struct sign_ctx {
	const struct aws_config *cfg;
	const char *service, *method, *url, *payload;
	const char *const *headers;
	char **cur;
};

/* Signed again before every attempt: the signature covers the time it is made. */
static int sign_cb(void *userdata, const char *const **ret_headers, struct strbuf *err)
{
	struct sign_ctx *c = userdata;
	const struct sigv4 s = {
		.access_key_id = c->cfg->access_key_id,
		.secret_access_key = c->cfg->secret_access_key,
		.session_token = c->cfg->session_token,
		.region = c->cfg->region ? c->cfg->region : "us-east-1",
		.service = c->service,
	};
	int k;

	strv_free(c->cur);
	c->cur = NULL;
	k = sigv4_sign(&s, c->method, c->url, c->headers, c->payload, &c->cur, err);
	if (k < 0)
		return k;
	*ret_headers = (const char *const *)c->cur;
	return 0;
}

int aws_signed_request(const struct aws_config *cfg, const char *service, struct http_request *req,
		       const char *payload_sha256, const char *const *headers,
		       struct http_response *resp, struct strbuf *err)
{
	struct sign_ctx c = {cfg, service, req->method, req->url, payload_sha256, headers, NULL};
	int k;

	req->sign = sign_cb;
	req->sign_userdata = &c;
	k = http_request(req, resp, err);
	strv_free(c.cur);
	return k;
}

int aws_request(const struct aws_config *cfg, const char *service, const char *method,
		const char *url, const char *const *headers, const void *body, size_t body_len,
		struct http_response *resp, struct strbuf *err)
{
	struct http_request req = HTTP_REQUEST_INIT;
	char hash[SHA256_HEX_LEN];

	sha256_hex(body ? body : "", body ? body_len : 0, hash);
	req.method = method;
	req.url = url;
	req.body = body;
	req.body_len = body ? body_len : 0;
	req.timeout_s = 300;
	/*
	 * Safe to repeat: what is not a POST, an EC2 query that only reads
	 * (Describe*), and a call carrying a ClientToken (ImportSnapshot,
	 * StartSnapshot), which the service answers once.
	 */
	req.idempotent = strcmp(method, "POST") ||
			 (body && body_len >= 15 && !memcmp(body, "Action=Describe", 15)) ||
			 (body && memmem(body, body_len, "ClientToken", 11));
	return aws_signed_request(cfg, service, &req, hash, headers, resp, err);
}

/* --- one upload --- */

struct part {
	unsigned n;
	char *etag; /* NULL: not sent (or not known to be) */
};

struct upload {
	char *upload_id;
	uint64_t size, part_size;
	char sha256[SHA256_HEX_LEN];
	char *bucket, *key;
	struct part *parts;
	unsigned n_parts;
};

/* --- errors --- */

void aws_error_text(const struct http_response *resp, struct strbuf *sb, char **ret_code)
{
	_cleanup_xml_ struct xml_doc *doc = xml_parse(resp->body.buf, resp->body.len);
	_cleanup_free_ char *code = doc ? xml_text(xml_root(doc), "Code") : NULL;
	_cleanup_free_ char *msg = doc ? xml_text(xml_root(doc), "Message") : NULL;

	if (code) {
		strbuf_addf(sb, "%s: %s", code, msg ? msg : "(no message)");
	} else {
		/* No error document (a HEAD, a proxy): the status and the AWS error header. */
		_cleanup_free_ char *h = http_response_header(resp, "x-amzn-ErrorType");

		strbuf_addf(sb, "HTTP %ld%s%s", resp->status, h ? " " : "", h ? h : "");
		if (h)
			code = xstrndup(h, strcspn(h, ":"));
	}
	if (ret_code)
		*ret_code = TAKE_PTR(code);
}

const char *aws_error_hint(const char *code)
{
	static const struct {
		const char *code, *hint;
	} hints[] = {
		{"InvalidAccessKeyId", "check the access key id"},
		{"SignatureDoesNotMatch", "check the secret key that goes with the access key id"},
		{"AuthFailure", "check the access key id and its secret key"},
		{"InvalidClientTokenId", "check the access key id"},
		{"ExpiredToken", "the session token expired: get new temporary credentials"},
		{"RequestExpired", "check this machine's clock"},
		{"RequestTimeTooSkewed", "check this machine's clock"},
		{"AccessDenied",
		 "the credentials are not allowed this: see the account's policies"},
		{"UnauthorizedOperation", "the credentials are not allowed this: see the account's "
					  "IAM policies"},
		{"NoSuchBucket", "create the bucket, or give --bucket with one that exists"},
		{"AllAccessDisabled", "the bucket is disabled: give another with --bucket"},
		{"PermanentRedirect",
		 "the bucket is in another region: give --region of the bucket"},
		{"AuthorizationHeaderMalformed", "the region does not match the bucket's: give "
						 "--region"},
		{"InvalidParameterValue", "check the options given"},
		{"InvalidAMIName.Duplicate", "an image of that name exists: give another --name"},
		{"InvalidAMIName.Malformed", "give another --name"},
		{"RequestLimitExceeded", "the account's API rate was exceeded: wait and run the "
					 "same command again"},
		{"SlowDown", "wait and run the same command again: the upload resumes"},
	};
	size_t i;

	for (i = 0; code && i < ARRAY_SIZE(hints); i++)
		if (!strcmp(code, hints[i].code))
			return hints[i].hint;
	return NULL;
}

/* "what 's3://bucket/key': Code: Message; what to do" from an error answer. */
static void add_error(struct strbuf *err, const struct s3 *s, const struct http_response *resp,
		      const char *what, const struct upload *u)
{
	_cleanup_free_ char *code = NULL;

	strbuf_addf(err, "%s 's3://%s/%s': ", what, u->bucket, u->key);
	aws_error_text(resp, err, &code);
	s3_add_hint(err, s, code, NULL);
}

void s3_add_hint(struct strbuf *err, const struct s3 *s, const char *code, const char *hint)
{
	if (!hint)
		hint = aws_error_hint(code);
	if (hint)
		strbuf_addf(err, "; %s", hint);
	if (code &&
	    (!strcmp(code, "InvalidAccessKeyId") || !strcmp(code, "SignatureDoesNotMatch")) &&
	    s->creds_hint)
		strbuf_addf(err, " (%s)", s->creds_hint);
}

/*
 * What a failed answer means for the upload: S3's own trouble (5xx,
 * throttling) -EAGAIN, the credentials refused (401, 403) -EPERM: both keep
 * the parts and the state for the next run (an abort with refused
 * credentials would be refused too, and the parts sent would be lost);
 * anything else -EACCES, which abandons the upload.
 */
static int refusal(const struct http_response *resp, struct strbuf *err, unsigned kept)
{
	if (resp->status >= 500 || resp->status == 429) {
		strbuf_addstr(err, "; run the same command again to complete it");
		return -EAGAIN;
	}
	if (resp->status == 401 || resp->status == 403) {
		if (kept)
			strbuf_addf(err, "; the %u part(s) already sent are kept for the next run",
				    kept);
		return -EPERM;
	}
	return -EACCES;
}

static unsigned parts_kept(const struct upload *u)
{
	unsigned i, n = 0;

	for (i = 0; i < u->n_parts; i++)
		n += u->parts[i].etag != NULL;
	return n;
}

/* --- URLs --- */

char *s3_object_url(const struct s3 *s, const char *bucket, const char *key)
{
	struct strbuf sb = STRBUF_INIT;
	const char *p = strstr(s->endpoint, "://");

	if (s->path_style || !p) {
		strbuf_addf(&sb, "%s/", s->endpoint);
		http_uri_encode(&sb, bucket, false);
	} else {
		strbuf_add(&sb, s->endpoint, (size_t)(p + 3 - s->endpoint));
		strbuf_addf(&sb, "%s.%s", bucket, p + 3);
	}
	strbuf_addch(&sb, '/');
	http_uri_encode(&sb, key, true);
	return strbuf_detach(&sb);
}

/* --- the upload's state --- */

static void upload_release(struct upload *u)
{
	unsigned i;

	for (i = 0; u->parts && i < u->n_parts; i++)
		free(u->parts[i].etag);
	free(u->parts);
	free(u->upload_id);
	free(u->bucket);
	free(u->key);
	*u = (struct upload){0};
}

/* Written whole, synced, renamed and the directory synced, after every part. */
static int state_save(const char *path, const struct upload *u, struct strbuf *err)
{
	struct strbuf sb = STRBUF_INIT;
	struct json j;
	unsigned i;
	int k;

	json_init(&j, &sb, true);
	json_begin_object(&j);
	json_kv_string(&j, "bucket", u->bucket);
	json_kv_string(&j, "key", u->key);
	json_kv_uint(&j, "size", u->size);
	json_kv_string(&j, "sha256", u->sha256);
	json_kv_uint(&j, "part_size", u->part_size);
	json_kv_string(&j, "upload_id", u->upload_id);
	json_key(&j, "parts");
	json_begin_array(&j);
	for (i = 0; i < u->n_parts; i++) {
		if (!u->parts[i].etag)
			continue;
		json_begin_object(&j);
		json_kv_uint(&j, "part", u->parts[i].n);
		json_kv_string(&j, "etag", u->parts[i].etag);
		json_end_object(&j);
	}
	json_end_array(&j);
	json_end_object(&j);
	k = write_file_atomic(path, sb.buf, sb.len, 0600);
	if (k >= 0)
		k = fsync_parent(path);
	if (k < 0)
		strbuf_addf(err, "cannot write '%s': %s", path, strerror(-k));
	strbuf_release(&sb);
	return k;
}

static const char *jstr(const struct jsonr_value *o, const char *k)
{
	const struct jsonr_value *v = jsonr_get(o, k);

	return v && v->type == JSONR_STRING ? v->s : NULL;
}

static bool juint(const struct jsonr_value *o, const char *k, uint64_t *ret)
{
	const struct jsonr_value *v = jsonr_get(o, k);

	if (!v || v->type != JSONR_UINT)
		return false;
	*ret = v->u;
	return true;
}

/*
 * The state an earlier run left for this very upload (same bucket, key,
 * file size and SHA-256), into u: 1; 0 when there is none or it is for
 * something else (*stale then names the other upload, to abort: another
 * file to the same object, or the same state directory used for another
 * bucket or key, whose upload nothing would ever complete).
 */
static int state_load(const char *path, struct upload *u, struct upload *stale)
{
	_cleanup_free_ char *text = NULL;
	struct jsonr *doc = NULL;
	const struct jsonr_value *parts;
	uint64_t size = 0, psize = 0;
	const char *id, *b, *k, *h;
	char jerr[128];
	size_t len, i;
	int r = 0;

	if (read_file(path, 4u << 20, &text, &len) < 0 ||
	    jsonr_parse(text, len, &doc, jerr, sizeof(jerr)) < 0)
		return 0;
	id = jstr(&doc->root, "upload_id");
	b = jstr(&doc->root, "bucket");
	k = jstr(&doc->root, "key");
	h = jstr(&doc->root, "sha256");
	if (!id || !b || !k || !h || !juint(&doc->root, "size", &size) ||
	    !juint(&doc->root, "part_size", &psize) || !psize)
		goto out;
	if (strcmp(b, u->bucket) || strcmp(k, u->key) || strcmp(h, u->sha256) || size != u->size ||
	    psize != u->part_size) {
		stale->upload_id = xstrdup(id);
		stale->bucket = xstrdup(b);
		stale->key = xstrdup(k);
		goto out;
	}
	u->upload_id = xstrdup(id);
	parts = jsonr_get(&doc->root, "parts");
	for (i = 0; parts && parts->type == JSONR_ARRAY && i < parts->n; i++) {
		const char *etag = jstr(&parts->items[i], "etag");
		uint64_t n = 0;

		if (etag && juint(&parts->items[i], "part", &n) && n >= 1 && n <= u->n_parts) {
			free(u->parts[n - 1].etag);
			u->parts[n - 1].etag = xstrdup(etag);
		}
	}
	r = 1;
out:
	jsonr_free(doc);
	return r;
}

/* --- the S3 calls --- */

static char *upload_url(const struct s3 *s, const struct upload *u, const char *query_fmt,
			unsigned n)
{
	_cleanup_free_ char *obj = s3_object_url(s, u->bucket, u->key);
	struct strbuf sb = STRBUF_INIT, id = STRBUF_INIT;

	http_uri_encode(&id, u->upload_id ? u->upload_id : "", false);
	strbuf_addf(&sb, "%s?", obj);
	if (!strcmp(query_fmt, "part"))
		strbuf_addf(&sb, "partNumber=%u&uploadId=%s", n, id.buf);
	else if (!strcmp(query_fmt, "uploads"))
		strbuf_addstr(&sb, "uploads");
	else
		strbuf_addf(&sb, "uploadId=%s", strbuf_str(&id));
	strbuf_release(&id);
	return strbuf_detach(&sb);
}

static int create_upload(const struct s3 *s, struct upload *u, struct strbuf *err)
{
	_cleanup_free_ char *url = upload_url(s, u, "uploads", 0);
	/* The file's SHA-256 goes with the object: a later run can tell it landed. */
	_cleanup_free_ char *meta = xasprintf("x-amz-meta-imgforge-sha256: %s", u->sha256);
	const char *const hdr[] = {"Content-Type: application/octet-stream", meta, NULL};
	struct http_response resp = {0};
	int k;

	k = aws_request(s->cfg, "s3", "POST", url, hdr, "", 0, &resp, err);
	if (k < 0)
		goto out;
	if (resp.status != 200 ||
	    !(u->upload_id = xml_doc_text(resp.body.buf, resp.body.len, "UploadId"))) {
		add_error(err, s, &resp, "cannot start an upload to", u);
		k = -EACCES;
	}
out:
	http_response_release(&resp);
	return k;
}

/*
 * Whether the object is already this upload's file, complete: an earlier
 * CompleteMultipartUpload that S3 carried out but whose answer was lost
 * leaves S3 saying it knows no such upload. The object's size and the
 * SHA-256 recorded in its metadata at the start of the upload tell.
 */
static bool upload_landed(const struct s3 *s, const struct upload *u)
{
	_cleanup_free_ char *sha = NULL;
	struct strbuf e = STRBUF_INIT;
	uint64_t size = 0;
	bool ok = s3_head(s, u->bucket, u->key, &size, &sha, &e) == 1 && size == u->size && sha &&
		  !strcmp(sha, u->sha256);

	strbuf_release(&e);
	return ok;
}

static void abort_upload(const struct s3 *s, struct upload *u)
{
	_cleanup_free_ char *url = NULL;
	struct http_response resp = {0};
	struct strbuf e = STRBUF_INIT;

	if (!u->upload_id)
		return;
	url = upload_url(s, u, "id", 0);
	aws_request(s->cfg, "s3", "DELETE", url, NULL, NULL, 0, &resp, &e);
	http_response_release(&resp);
	strbuf_release(&e);
}

/*
 * Which parts S3 has of this upload (ListParts, every page): a part counts
 * as sent when S3 lists it with the ETag and size the state recorded.
 * Returns 1, 0 when S3 no longer knows the upload (aborted, expired), or
 * -errno.
 */
static int check_parts(const struct s3 *s, struct upload *u, struct strbuf *err)
{
	bool *seen = xcalloc(u->n_parts + 1, sizeof(bool));
	unsigned marker = 0, i;
	int r = 1;

	for (;;) {
		_cleanup_free_ char *base = upload_url(s, u, "id", 0), *url = NULL;
		_cleanup_free_ char *trunc = NULL, *next = NULL;
		struct http_response resp = {0};
		_cleanup_xml_ struct xml_doc *doc = NULL;
		const struct xml_node *root, *part = NULL;
		int k;

		url = marker ? xasprintf("%s&part-number-marker=%u", base, marker) : xstrdup(base);
		k = aws_request(s->cfg, "s3", "GET", url, NULL, NULL, 0, &resp, err);
		if (k < 0) {
			r = k;
			break;
		}
		if (resp.status == 404) {
			http_response_release(&resp);
			r = 0;
			break;
		}
		/*
		 * An S3 without ListParts (some S3-compatible servers): the state's
		 * ETags are all there is, and CompleteMultipartUpload checks them.
		 */
		if (resp.status == 405 || resp.status == 501) {
			verbose("s3: the server does not list parts (HTTP %ld): trusting the "
				"recorded ones",
				resp.status);
			http_response_release(&resp);
			free(seen);
			return 1;
		}
		if (resp.status != 200) {
			add_error(err, s, &resp, "cannot list the parts of", u);
			r = refusal(&resp, err, parts_kept(u));
			http_response_release(&resp);
			break;
		}
		doc = xml_parse(resp.body.buf, resp.body.len);
		if (!doc) {
			add_error(err, s, &resp, "cannot list the parts of", u);
			http_response_release(&resp);
			r = -EBADMSG;
			break;
		}
		root = xml_root(doc);
		while ((part = xml_next(root, "Part", part))) {
			_cleanup_free_ char *pn = xml_text(part, "PartNumber");
			_cleanup_free_ char *etag = xml_text(part, "ETag");
			_cleanup_free_ char *size = xml_text(part, "Size");
			unsigned long n = pn ? strtoul(pn, NULL, 10) : 0;
			uint64_t want;

			if (n < 1 || n > u->n_parts || !etag || !size)
				continue;
			want = n == u->n_parts ? u->size - (uint64_t)(n - 1) * u->part_size
					       : u->part_size;
			if (u->parts[n - 1].etag && !strcmp(u->parts[n - 1].etag, etag) &&
			    strtoull(size, NULL, 10) == want)
				seen[n] = true;
		}
		trunc = xml_text(root, "IsTruncated");
		next = xml_text(root, "NextPartNumberMarker");
		http_response_release(&resp);
		if (!trunc || strcmp(trunc, "true") || !next || strtoul(next, NULL, 10) <= marker)
			break;
		marker = (unsigned)strtoul(next, NULL, 10);
	}
	if (r == 1)
		for (i = 0; i < u->n_parts; i++)
			if (!seen[i + 1]) {
				free(u->parts[i].etag);
				u->parts[i].etag = NULL;
			}
	free(seen);
	return r;
}

struct part_progress {
	cloud_progress_fn fn;
	void *userdata;
	uint64_t base, total;
};

static void part_progress(void *userdata, uint64_t sent, uint64_t total)
{
	struct part_progress *p = userdata;

	(void)total;
	if (p->fn)
		p->fn(p->userdata, p->base + sent, p->total);
}

static int put_part(const struct s3 *s, struct upload *u, int fd, unsigned n,
		    struct part_progress *pp, struct strbuf *err)
{
	_cleanup_free_ char *url = upload_url(s, u, "part", n);
	struct http_request req = HTTP_REQUEST_INIT;
	struct http_response resp = {0};
	uint64_t off = (uint64_t)(n - 1) * u->part_size;
	uint64_t len = n == u->n_parts ? u->size - off : u->part_size;
	char hash[SHA256_HEX_LEN];
	int k;

	k = sha256_fd_range(fd, off, len, hash);
	if (k < 0) {
		strbuf_addf(err, "cannot read part %u of the file: %s", n, strerror(-k));
		return k;
	}
	req.method = "PUT";
	req.url = url;
	req.body_fd = fd;
	req.body_offset = (off_t)off;
	req.body_len = len;
	req.progress = part_progress;
	req.progress_userdata = pp;
	k = aws_signed_request(s->cfg, "s3", &req, hash, NULL, &resp, err);
	if (k < 0)
		goto out;
	if (resp.status != 200) {
		_cleanup_free_ char *what = xasprintf("cannot upload part %u of", n);

		add_error(err, s, &resp, what, u);
		k = refusal(&resp, err, parts_kept(u));
		goto out;
	}
	free(u->parts[n - 1].etag);
	u->parts[n - 1].etag = http_response_header(&resp, "ETag");
	if (!u->parts[n - 1].etag) {
		strbuf_addf(err, "S3 answered part %u of 's3://%s/%s' without an ETag", n,
			    u->bucket, u->key);
		k = -EPROTO;
	}
out:
	http_response_release(&resp);
	return k;
}

static void xml_escape(struct strbuf *sb, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			strbuf_addstr(sb, "&amp;");
		else if (*s == '<')
			strbuf_addstr(sb, "&lt;");
		else if (*s == '>')
			strbuf_addstr(sb, "&gt;");
		else if (*s == '"')
			strbuf_addstr(sb, "&quot;");
		else
			strbuf_addch(sb, *s);
	}
}

static int complete_upload(const struct s3 *s, struct upload *u, char **ret_etag,
			   struct strbuf *err)
{
	_cleanup_free_ char *url = upload_url(s, u, "id", 0);
	static const char *const hdr[] = {"Content-Type: application/xml", NULL};
	struct strbuf body = STRBUF_INIT;
	struct http_response resp = {0};
	_cleanup_xml_ struct xml_doc *doc = NULL;
	unsigned i;
	int k;

	strbuf_addstr(&body, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/"
			     "2006-03-01/\">");
	for (i = 0; i < u->n_parts; i++) {
		strbuf_addf(&body, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
		xml_escape(&body, u->parts[i].etag);
		strbuf_addstr(&body, "</ETag></Part>");
	}
	strbuf_addstr(&body, "</CompleteMultipartUpload>");
	k = aws_request(s->cfg, "s3", "POST", url, hdr, body.buf, body.len, &resp, err);
	if (k < 0)
		goto out;
	/* S3 may answer 200 and an <Error> document: the upload is then not complete. */
	doc = xml_parse(resp.body.buf, resp.body.len);
	if (resp.status != 200 ||
	    (doc && (xml_is(xml_root(doc), "Error") || xml_next(xml_root(doc), "Error", NULL)))) {
		_cleanup_free_ char *code = doc ? xml_text(xml_root(doc), "Code") : NULL;

		/*
		 * Completed by an earlier run whose answer was lost: S3 then knows
		 * no such upload (NoSuchUpload), another server may say anything.
		 */
		if (upload_landed(s, u)) {
			verbose("s3: 's3://%s/%s' was completed by an earlier run", u->bucket,
				u->key);
			k = 0;
			goto out;
		}
		add_error(err, s, &resp, "cannot complete the upload to", u);
		/* S3's own trouble can also come as a 200 with an error document. */
		if (resp.status == 200 &&
		    (code && (!strcmp(code, "InternalError") || !strcmp(code, "SlowDown") ||
			      !strcmp(code, "ServiceUnavailable")))) {
			strbuf_addstr(err, "; run the same command again to complete it");
			k = -EAGAIN;
		} else {
			k = refusal(&resp, err, parts_kept(u));
		}
		goto out;
	}
	if (ret_etag)
		*ret_etag = doc ? xml_text(xml_root(doc), "ETag") : NULL;
out:
	strbuf_release(&body);
	http_response_release(&resp);
	return k;
}

int s3_upload(const struct s3 *s, const char *bucket, const char *key, const char *path,
	      const char *state_dir, cloud_progress_fn progress, void *userdata, char **ret_etag,
	      struct strbuf *err)
{
	_cleanup_free_ char *state = path_join(state_dir, "upload.json");
	_cleanup_free_ char *etag = NULL;
	_cleanup_close_ int fd = -1;
	struct upload u = {0}, stale = {0};
	struct part_progress pp = {progress, userdata, 0, 0};
	struct stat st;
	unsigned i, sent = 0, reused = 0;
	int k;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		strbuf_addf(err, "cannot open '%s': %s", path, strerror(errno));
		return -errno;
	}
	k = sha256_fd_range(fd, 0, (uint64_t)st.st_size, u.sha256);
	if (k < 0) {
		strbuf_addf(err, "cannot read '%s': %s", path, strerror(-k));
		return k;
	}
	u.bucket = xstrdup(bucket);
	u.key = xstrdup(key);
	u.size = (uint64_t)st.st_size;
	u.part_size = PART_SIZE_MIN;
	while ((u.size + u.part_size - 1) / u.part_size > PARTS_MAX)
		u.part_size *= 2;
	u.n_parts = u.size ? (unsigned)((u.size + u.part_size - 1) / u.part_size) : 1;
	u.parts = xcalloc(u.n_parts, sizeof(*u.parts));
	for (i = 0; i < u.n_parts; i++)
		u.parts[i].n = i + 1;
	pp.total = u.size;

	if (state_load(state, &u, &stale) > 0) {
		k = check_parts(s, &u, err);
		if (k < 0)
			goto out;
		if (k == 0 && upload_landed(s, &u)) {
			/* Completed by an earlier run whose answer was lost: nothing to send. */
			verbose("s3: 's3://%s/%s' was completed by an earlier run", bucket, key);
			unlink(state);
			fsync_parent(state);
			upload_release(&u);
			return 0;
		}
		if (k == 0) { /* S3 forgot it: start again */
			free(u.upload_id);
			u.upload_id = NULL;
			for (i = 0; i < u.n_parts; i++) {
				free(u.parts[i].etag);
				u.parts[i].etag = NULL;
			}
		}
	} else if (stale.upload_id) {
		verbose("s3: aborting the earlier upload %s to 's3://%s/%s': it was of another "
			"file",
			stale.upload_id, stale.bucket, stale.key);
		abort_upload(s, &stale);
		upload_release(&stale);
	}
	if (!u.upload_id) {
		k = create_upload(s, &u, err);
		if (k < 0)
			goto out;
		k = state_save(state, &u, err);
		if (k < 0)
			goto out;
	}
	for (i = 0; i < u.n_parts; i++)
		if (u.parts[i].etag) {
			reused++;
			pp.base += i + 1 == u.n_parts ? u.size - (uint64_t)i * u.part_size
						      : u.part_size;
		}
	if (reused)
		verbose("s3: resuming upload to 's3://%s/%s': %u of %u parts already there", bucket,
			key, reused, u.n_parts);
	for (i = 0; i < u.n_parts; i++) {
		uint64_t len =
			i + 1 == u.n_parts ? u.size - (uint64_t)i * u.part_size : u.part_size;

		if (u.parts[i].etag)
			continue;
		k = put_part(s, &u, fd, i + 1, &pp, err);
		if (k < 0)
			goto out;
		k = state_save(state, &u, err);
		if (k < 0)
			goto out;
		pp.base += len;
		sent++;
	}
	verbose("s3: sent %u part(s) of %u to 's3://%s/%s'", sent, u.n_parts, bucket, key);
	k = complete_upload(s, &u, &etag, err);
	if (k < 0)
		goto out;
	verbose("s3: uploaded 's3://%s/%s' (ETag %s)", bucket, key, etag ? etag : "none");
	if (ret_etag)
		*ret_etag = TAKE_PTR(etag);
	unlink(state);
	fsync_parent(state);
out:
	/* Refused (not a lost connection, not a busy S3): nothing to resume. */
	if (k == -EACCES || k == -EPROTO) {
		abort_upload(s, &u);
		unlink(state);
	}
	upload_release(&u);
	return k < 0 ? k : 0;
}
