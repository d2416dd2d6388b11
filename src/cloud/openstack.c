/* SPDX-License-Identifier: MIT */
/*
 * Publishing to an OpenStack cloud (OVH Public Cloud and others): a Keystone
 * v3 token (password or application credential), the image service's
 * endpoint from the token's catalog, then Glance v2: create the image with
 * its properties, upload the file in one PUT, wait for "active", check the
 * checksum Glance computed against the file. See docs/publish-openstack.md.
 *
 * Resuming: Glance takes the data in one PUT, so there is nothing to resume
 * inside an upload. What is resumed is the image: every image imgforge
 * creates carries the properties imgforge_build_id and imgforge_sha256, and
 * a publish first looks for an image of the project with both. One still
 * "queued" (created, its upload never finished) gets the upload; one
 * "active" is the answer, checked again, and nothing is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cloud/cloud.h"
#include "cloud/openstack-internal.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/json.h"

#define GIB		 (1024ull * 1024 * 1024)
#define ACTIVE_TIMEOUT_S 1800

/* A request to the image service with the token; body JSON or NULL. */
static int glance_call(const struct os_ctx *x, const char *method, const char *url,
		       const char *content_type, const char *body, struct http_response *resp,
		       struct strbuf *err)
{
	struct http_request req = HTTP_REQUEST_INIT;
	_cleanup_free_ char *ct = content_type ? xasprintf("Content-Type: %s", content_type) : NULL;
	const char *headers[] = {x->token_header, "Accept: application/json", ct, NULL};

	req.method = method;
	req.url = url;
	req.headers = headers;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	req.timeout_s = OS_API_TIMEOUT_S;
	req.ca_file = x->creds.cacert;
	return http_request(&req, resp, err);
}

/* ------------------------------------------------------------------------ */
/* Glance */

struct glance_image {
	char *id;
	char *status;
	char *sha256; /* imgforge_sha256 */
};

static void glance_image_release(struct glance_image *g)
{
	free(g->id);
	free(g->status);
	free(g->sha256);
	*g = (struct glance_image){0};
}

/*
 * The image of this build and file already in the project, if any: one
 * active (published before) wins over one queued (created, not uploaded).
 * Returns 0 with ret->id NULL when there is none.
 */
static int glance_find(const struct os_ctx *x, const struct cloud_image *img,
		       struct glance_image *ret, struct strbuf *err)
{
	struct strbuf url = STRBUF_INIT;
	struct http_response resp = {0};
	struct jsonr *doc = NULL;
	const struct jsonr_value *images;
	int best = 0; /* 2: active, 1: queued or in transit */
	uint32_t i;
	int r;

	strbuf_addf(&url, "%s/v2/images?imgforge_build_id=", x->image_url);
	http_uri_encode(&url, img->build_id, false);
	strbuf_addstr(&url, "&owner=");
	http_uri_encode(&url, x->project_id, false);
	strbuf_addstr(&url, "&limit=100");
	r = glance_call(x, "GET", url.buf, NULL, NULL, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		os_cloud_error(err, "glance could not list the project's images", &resp,
			       "check that the account may use the image service");
		r = -EIO;
		goto out;
	}
	r = os_parse_json(&resp, "glance", &doc, err);
	if (r < 0)
		goto out;
	images = os_jget(&doc->root, "images", JSONR_ARRAY);
	for (i = 0; images && i < images->n; i++) {
		const struct jsonr_value *im = &images->items[i];
		const char *id = os_jstr(im, "id"), *status = os_jstr(im, "status");
		const char *sha = os_jstr(im, "imgforge_sha256");
		int rank;

		if (!id || !status || !sha || strcmp(sha, img->sha256))
			continue;
		if (!strcmp(status, "active"))
			rank = 2;
		else if (!strcmp(status, "queued") || !strcmp(status, "saving") ||
			 !strcmp(status, "importing") || !strcmp(status, "uploading"))
			rank = 1;
		else
			continue; /* killed, deleted, deactivated: not this build's image any more
				   */
		if (rank <= best)
			continue;
		best = rank;
		glance_image_release(ret);
		ret->id = xstrdup(id);
		ret->status = xstrdup(status);
		ret->sha256 = xstrdup(sha);
	}
out:
	jsonr_free(doc);
	http_response_release(&resp);
	strbuf_release(&url);
	return r;
}

static const char *disk_format(const char *format)
{
	static const char *const ok[] = {"raw", "qcow2", "vhd", "vmdk"};
	size_t i;

	for (i = 0; format && i < ARRAY_SIZE(ok); i++)
		if (!strcmp(format, ok[i]))
			return ok[i];
	return NULL;
}

static int glance_create(const struct os_ctx *x, const struct cloud_image *img, char **ret_id,
			 struct strbuf *err)
{
	struct strbuf body = STRBUF_INIT, url = STRBUF_INIT;
	struct http_response resp = {0};
	struct jsonr *doc = NULL;
	uint64_t min_disk = (img->virtual_size + GIB - 1) / GIB;
	struct json j;
	const char *id;
	int r;

	json_init(&j, &body, false);
	json_begin_object(&j);
	json_kv_string(&j, "name", img->name);
	json_kv_string(&j, "disk_format", disk_format(img->format));
	json_kv_string(&j, "container_format", "bare");
	json_kv_string(&j, "visibility", img->public_image ? "public" : "private");
	json_kv_uint(&j, "min_disk", min_disk ? min_disk : 1);
	if (img->firmware) {
		json_kv_string(&j, "hw_firmware_type", img->firmware);
		/* OVMF with Secure Boot needs q35; Nova's default i440fx boots BIOS disks. */
		if (!strcmp(img->firmware, "uefi"))
			json_kv_string(&j, "hw_machine_type", "q35");
	}
	json_kv_string(&j, "os_type", "linux");
	if (img->os_distro)
		json_kv_string(&j, "os_distro", img->os_distro);
	if (img->os_version)
		json_kv_string(&j, "os_version", img->os_version);
	if (img->description)
		json_kv_string(&j, "description", img->description);
	json_kv_string(&j, "imgforge_build_id", img->build_id);
	json_kv_string(&j, "imgforge_sha256", img->sha256);
	json_key(&j, "tags");
	json_begin_array(&j);
	json_string(&j, "imgforge");
	json_end_array(&j);
	json_end_object(&j);

	strbuf_addf(&url, "%s/v2/images", x->image_url);
	r = glance_call(x, "POST", url.buf, "application/json", body.buf, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 201) {
		const char *hint = resp.status == 403 && img->public_image
					   ? "this account may not publish public images: publish "
					     "it private"
				   : resp.status == 413
					   ? "the project's image quota is full: delete "
					     "unused images ('openstack image list')"
					   : "check the image's name and properties";
		_cleanup_free_ char *what = xasprintf("glance at '%s' refused to create image '%s'",
						      x->image_url, img->name);
		os_cloud_error(err, what, &resp, hint);
		r = -EIO;
		goto out;
	}
	r = os_parse_json(&resp, "glance", &doc, err);
	if (r < 0)
		goto out;
	id = os_jstr(&doc->root, "id");
	if (!id) {
		strbuf_addf(err, "glance at '%s' created image '%s' but gave no id", x->image_url,
			    img->name);
		r = -EPROTO;
		goto out;
	}
	*ret_id = xstrdup(id);
out:
	jsonr_free(doc);
	http_response_release(&resp);
	strbuf_release(&url);
	strbuf_release(&body);
	return r;
}

/* GET the image: its status and, once active, its size and checksums. */
static int glance_get(const struct os_ctx *x, const char *id, struct jsonr **ret_doc,
		      struct strbuf *err)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/images/%s", x->image_url, id);
	struct http_response resp = {0};
	int r;

	r = glance_call(x, "GET", url, NULL, NULL, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status != 200) {
		_cleanup_free_ char *what =
			xasprintf("glance at '%s' cannot show image '%s'", x->image_url, id);
		os_cloud_error(err, what, &resp,
			       resp.status == 404 ? "it was deleted meanwhile: publish again"
						  : NULL);
		r = -EIO;
		goto out;
	}
	r = os_parse_json(&resp, "glance", ret_doc, err);
out:
	http_response_release(&resp);
	return r;
}

static int glance_upload(const struct os_ctx *x, const struct cloud_image *img, const char *id,
			 struct strbuf *err)
{
	_cleanup_free_ char *url = xasprintf("%s/v2/images/%s/file", x->image_url, id);
	_cleanup_close_ int fd = -1;
	struct http_request req = HTTP_REQUEST_INIT;
	struct http_response resp = {0};
	const char *headers[] = {x->token_header, "Accept: application/json",
				 "Content-Type: application/octet-stream", NULL};
	int r;

	fd = open(img->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		strbuf_addf(err, "cannot open '%s': %s", img->path, strerror(errno));
		return r;
	}
	req.method = "PUT";
	req.url = url;
	req.headers = headers;
	req.body_fd = fd;
	req.body_offset = 0;
	req.body_len = img->size;
	req.ca_file = x->creds.cacert;
	/* A failed upload leaves the image queued again: sending it once more is safe. */
	req.retries = 2;
	req.progress = img->progress;
	req.progress_userdata = img->progress_userdata;
	r = http_request(&req, &resp, err);
	if (r < 0)
		goto out;
	if (resp.status == 409) {
		/* An earlier attempt's data arrived after all (the answer was lost): see its
		 * status. */
		r = 0;
		goto out;
	}
	if (resp.status != 204 && resp.status != 200 && resp.status != 201) {
		_cleanup_free_ char *what = xasprintf(
			"glance at '%s' refused the data of image '%s'", x->image_url, id);
		os_cloud_error(err, what, &resp,
			       resp.status == 413
				       ? "the project's storage quota is full: delete unused "
					 "images ('openstack image list')"
				       : "publish again: the image is kept and reused");
		r = -EIO;
	}
out:
	http_response_release(&resp);
	return r;
}

/*
 * Wait for the image to become active, then check that what Glance stored
 * is the file: its size, and the checksum Glance computed over the data it
 * received (os_hash_value with os_hash_algo, or the older MD5 checksum).
 */
static int glance_wait_active(const struct os_ctx *x, const struct cloud_image *img, const char *id,
			      struct strbuf *err)
{
	int64_t start = monotonic_ms();
	unsigned delay_ms = 500;
	struct jsonr *doc = NULL;
	const char *status = NULL;
	int r;

	for (;;) {
		jsonr_free(doc);
		doc = NULL;
		r = glance_get(x, id, &doc, err);
		if (r < 0)
			goto out;
		status = os_jstr(&doc->root, "status");
		if (status && !strcmp(status, "active"))
			break;
		if (!status || !strcmp(status, "killed") || !strcmp(status, "deleted") ||
		    !strcmp(status, "pending_delete") || !strcmp(status, "deactivated")) {
			strbuf_addf(
				err,
				"glance at '%s' put image '%s' in status '%s' after its upload: "
				"the service failed to store it; delete it with 'openstack image "
				"delete %s' and publish again",
				x->image_url, id, status ? status : "(none)", id);
			r = -EIO;
			goto out;
		}
		if (monotonic_ms() - start > (int64_t)ACTIVE_TIMEOUT_S * 1000) {
			strbuf_addf(err,
				    "glance at '%s' still has image '%s' in status '%s' after %d "
				    "minutes: see 'openstack image show %s'; publishing again "
				    "reuses it",
				    x->image_url, id, status, ACTIVE_TIMEOUT_S / 60, id);
			r = -ETIMEDOUT;
			goto out;
		}
		struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
		if (delay_ms < 5000)
			delay_ms *= 2;
	}

	const struct jsonr_value *size = os_jget(&doc->root, "size", JSONR_UINT);
	const char *algo = os_jstr(&doc->root, "os_hash_algo");
	const char *want = os_jstr(&doc->root, "os_hash_value");
	_cleanup_free_ char *have = NULL;

	if (!size || size->u != img->size) {
		strbuf_addf(err,
			    "glance at '%s' stored %llu bytes for image '%s' but '%s' has %llu: "
			    "delete it with 'openstack image delete %s' and publish again",
			    x->image_url, size ? (unsigned long long)size->u : 0ull, id, img->path,
			    (unsigned long long)img->size, id);
		r = -EIO;
		goto out;
	}
	if (!algo || !want) {
		algo = "md5";
		want = os_jstr(&doc->root, "checksum");
	}
	if (!want) {
		strbuf_addf(err, "glance at '%s' reports no checksum for image '%s'", x->image_url,
			    id);
		r = -EPROTO;
		goto out;
	}
	r = digest_file(img->path, algo, &have);
	if (r == -EINVAL) {
		strbuf_addf(err,
			    "glance at '%s' checksums image '%s' with '%s', which imgforge does "
			    "not know: check it by hand against '%s'",
			    x->image_url, id, algo, img->path);
		goto out;
	}
	if (r < 0) {
		strbuf_addf(err, "cannot read '%s': %s", img->path, strerror(-r));
		goto out;
	}
	if (strcasecmp(have, want)) {
		strbuf_addf(err,
			    "glance at '%s' stored image '%s' with %s %s but '%s' has %s: the data "
			    "was damaged on the way; delete it with 'openstack image delete %s' "
			    "and publish again",
			    x->image_url, id, algo, want, img->path, have, id);
		r = -EIO;
	}
out:
	jsonr_free(doc);
	return r;
}

/* Names are checked here, before anything is created: ASCII printable characters only. */
static int check_image(const struct cloud_image *img, struct strbuf *err)
{
	const char *p;

	if (!disk_format(img->format)) {
		strbuf_addf(err,
			    "cannot publish a '%s' file to openstack: Glance takes raw, qcow2, vhd "
			    "or vmdk",
			    img->format ? img->format : "(none)");
		return -EINVAL;
	}
	if (!img->name || !*img->name || strlen(img->name) > 255) {
		strbuf_addstr(err, "an OpenStack image name must have 1 to 255 characters");
		return -EINVAL;
	}
	for (p = img->name; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
			strbuf_addf(err,
				    "image name '%s' has a character imgforge does not send to "
				    "OpenStack: use printable ASCII",
				    img->name);
			return -EINVAL;
		}
	if (!img->build_id || !img->sha256 || !img->path) {
		strbuf_addstr(err, "publishing to openstack needs the build id, the file and its "
				   "SHA-256");
		return -EINVAL;
	}
	return 0;
}

int cloud_publish_openstack(const struct cloud_image *img, struct cloud_result *res,
			    struct strbuf *err)
{
	struct os_ctx x = {0};
	struct glance_image found = {0};
	_cleanup_free_ char *id = NULL;
	int r;

	r = check_image(img, err);
	if (r < 0)
		return r;
	r = os_creds_load(img->region, &x.creds, err);
	if (r < 0)
		return r;
	r = os_keystone_auth(&x, err);
	if (r < 0)
		goto out;
	r = glance_find(&x, img, &found, err);
	if (r < 0)
		goto out;
	if (found.id && strcmp(found.status, "active") && strcmp(found.status, "queued")) {
		strbuf_addf(err,
			    "image '%s' of build '%s' is being uploaded already (status '%s'): "
			    "wait for it, or delete it with 'openstack image delete %s' and "
			    "publish again",
			    found.id, img->build_id, found.status, found.id);
		r = -EBUSY;
		goto out;
	}
	if (found.id) {
		id = TAKE_PTR(found.id);
	} else {
		r = glance_create(&x, img, &id, err);
		if (r < 0)
			goto out;
	}
	if (!found.status || strcmp(found.status, "active")) {
		r = glance_upload(&x, img, id, err);
		if (r < 0)
			goto out;
	} else if (img->progress) {
		img->progress(img->progress_userdata, img->size, img->size);
	}
	r = glance_wait_active(&x, img, id, err);
	if (r < 0)
		goto out;
	res->target = xstrdup("openstack");
	res->region = xstrdup(x.region);
	res->location = xasprintf("%s/v2/images/%s", x.image_url, id);
	res->image_id = TAKE_PTR(id);
out:
	glance_image_release(&found);
	os_ctx_release(&x);
	return r;
}
