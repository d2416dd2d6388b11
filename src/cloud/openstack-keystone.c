/* SPDX-License-Identifier: MIT */
/*
 * Keystone v3 for publishing to OpenStack (see openstack.c): a token for the
 * credentials of openstack-creds.c, the image service's endpoint from its
 * catalog, and the one-line messages for a cloud's refusals that Glance's
 * calls share.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cloud/openstack-internal.h"
#include "core/json.h"

#define MAX_CLOUD_MESSAGE 300

void os_ctx_release(struct os_ctx *x)
{
	os_creds_release(&x->creds);
	if (x->token_header) {
		explicit_bzero(x->token_header, strlen(x->token_header));
		free(x->token_header);
	}
	free(x->project_id);
	free(x->region);
	free(x->image_url);
}

const struct jsonr_value *os_jget(const struct jsonr_value *v, const char *key,
				  enum jsonr_type type)
{
	const struct jsonr_value *m = jsonr_get(v, key);

	return m && m->type == type ? m : NULL;
}

const char *os_jstr(const struct jsonr_value *v, const char *key)
{
	const struct jsonr_value *m = os_jget(v, key, JSONR_STRING);

	return m ? m->s : NULL;
}

int os_parse_json(const struct http_response *resp, const char *what, struct jsonr **ret,
		  struct strbuf *err)
{
	char jerr[256];

	if (jsonr_parse(resp->body.buf ? resp->body.buf : "", resp->body.len, ret, jerr,
			sizeof(jerr)) < 0) {
		strbuf_addf(err, "cannot read the answer of %s: %s", what, jerr);
		return -EPROTO;
	}
	return 0;
}

/* Append s to err on one line: blanks folded, HTML line breaks dropped, cut at a length. */
static void add_message(struct strbuf *err, const char *s)
{
	size_t n = 0;
	bool blank = false;

	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	for (; *s && n < MAX_CLOUD_MESSAGE; s++) {
		if (!strncmp(s, "<br />", 6)) {
			s += 5;
			blank = true;
			continue;
		}
		if (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t' ||
		    (unsigned char)*s < 0x20) {
			blank = true;
			continue;
		}
		if (blank && n)
			strbuf_addch(err, ' ');
		blank = false;
		strbuf_addch(err, *s);
		n++;
	}
	if (*s)
		strbuf_addstr(err, "...");
}

/*
 * One line for a cloud's refusal: what failed, the HTTP status, the cloud's
 * own code and message (Keystone's {"error": {...}}, Glance's {"message":
 * ...}, or the text of an HTML page), then what to do.
 */
void os_cloud_error(struct strbuf *err, const char *what, const struct http_response *resp,
		    const char *hint)
{
	struct jsonr *doc = NULL;
	char jerr[64];
	const char *title = NULL, *msg = NULL;

	strbuf_addf(err, "%s: HTTP %ld", what, resp->status);
	if (resp->body.len &&
	    jsonr_parse(resp->body.buf, resp->body.len, &doc, jerr, sizeof(jerr)) == 0) {
		const struct jsonr_value *e = os_jget(&doc->root, "error", JSONR_OBJECT);
		if (!e)
			e = &doc->root;
		title = os_jstr(e, "title");
		msg = os_jstr(e, "message");
		if (!msg)
			msg = os_jstr(e, "detail");
	}
	if (title) {
		strbuf_addstr(err, " ");
		add_message(err, title);
	}
	if (msg) {
		strbuf_addstr(err, ": ");
		add_message(err, msg);
	} else if (!doc && resp->body.len) {
		/* An HTML error page: its text after the heading. */
		const char *h1 = strstr(resp->body.buf, "</h1>");
		struct strbuf text = STRBUF_INIT;
		const char *p;
		bool tag = false;

		for (p = h1 ? h1 + 5 : resp->body.buf; *p; p++) {
			if (*p == '<')
				tag = true;
			else if (*p == '>')
				tag = false;
			else if (!tag)
				strbuf_addch(&text, *p);
		}
		if (text.len) {
			strbuf_addstr(err, ": ");
			add_message(err, text.buf);
		}
		strbuf_release(&text);
	}
	if (hint)
		strbuf_addf(err, "; %s", hint);
	jsonr_free(doc);
}

/* ------------------------------------------------------------------------ */
/* Keystone */

static void auth_body(const struct os_creds *c, struct strbuf *out)
{
	struct json j;

	json_init(&j, out, false);
	json_begin_object(&j);
	json_key(&j, "auth");
	json_begin_object(&j);
	json_key(&j, "identity");
	json_begin_object(&j);
	json_key(&j, "methods");
	json_begin_array(&j);
	if (os_creds_is_app_cred(c)) {
		json_string(&j, "application_credential");
		json_end_array(&j);
		json_key(&j, "application_credential");
		json_begin_object(&j);
		if (c->app_cred_id) {
			json_kv_string(&j, "id", c->app_cred_id);
		} else {
			json_kv_string(&j, "name", c->app_cred_name);
			json_key(&j, "user");
			json_begin_object(&j);
			if (c->user_id) {
				json_kv_string(&j, "id", c->user_id);
			} else {
				json_kv_string(&j, "name", c->username);
				json_key(&j, "domain");
				json_begin_object(&j);
				if (c->user_domain_id)
					json_kv_string(&j, "id", c->user_domain_id);
				else
					json_kv_string(&j, "name", c->user_domain_name);
				json_end_object(&j);
			}
			json_end_object(&j);
		}
		json_kv_string(&j, "secret", c->app_cred_secret);
		json_end_object(&j);
		json_end_object(&j); /* identity */
		/* An application credential carries its own project: no scope. */
	} else {
		json_string(&j, "password");
		json_end_array(&j);
		json_key(&j, "password");
		json_begin_object(&j);
		json_key(&j, "user");
		json_begin_object(&j);
		if (c->user_id) {
			json_kv_string(&j, "id", c->user_id);
		} else {
			json_kv_string(&j, "name", c->username);
			json_key(&j, "domain");
			json_begin_object(&j);
			if (c->user_domain_id)
				json_kv_string(&j, "id", c->user_domain_id);
			else
				json_kv_string(&j, "name", c->user_domain_name);
			json_end_object(&j);
		}
		json_kv_string(&j, "password", c->password);
		json_end_object(&j); /* user */
		json_end_object(&j); /* password */
		json_end_object(&j); /* identity */
		json_key(&j, "scope");
		json_begin_object(&j);
		json_key(&j, "project");
		json_begin_object(&j);
		if (c->project_id) {
			json_kv_string(&j, "id", c->project_id);
		} else {
			json_kv_string(&j, "name", c->project_name);
			json_key(&j, "domain");
			json_begin_object(&j);
			if (c->project_domain_id)
				json_kv_string(&j, "id", c->project_domain_id);
			else
				json_kv_string(&j, "name", c->project_domain_name);
			json_end_object(&j);
		}
		json_end_object(&j);
		json_end_object(&j); /* scope */
	}
	json_end_object(&j); /* auth */
	json_end_object(&j);
}

/* The Keystone v3 tokens URL of an auth URL: with or without its "/v3". */
static char *tokens_url(const char *auth_url)
{
	size_t n = strlen(auth_url);

	while (n && auth_url[n - 1] == '/')
		n--;
	if (n >= 3 && !strncmp(auth_url + n - 3, "/v3", 3))
		return xasprintf("%.*s/auth/tokens", (int)n, auth_url);
	return xasprintf("%.*s/v3/auth/tokens", (int)n, auth_url);
}

/*
 * Find the image service's endpoint of the wanted interface in the token's
 * catalog, in x->creds.region, or the only region that has one.
 */
static int catalog_image_endpoint(struct os_ctx *x, const struct jsonr_value *catalog,
				  struct strbuf *err)
{
	const struct os_creds *c = &x->creds;
	struct strbuf regions = STRBUF_INIT;
	const char *url = NULL, *region = NULL;
	unsigned matches = 0;
	uint32_t i, k;

	for (i = 0; catalog && i < catalog->n; i++) {
		const struct jsonr_value *svc = &catalog->items[i];
		const struct jsonr_value *eps = os_jget(svc, "endpoints", JSONR_ARRAY);
		const char *type = os_jstr(svc, "type");

		if (!type || strcmp(type, "image") || !eps)
			continue;
		for (k = 0; k < eps->n; k++) {
			const struct jsonr_value *ep = &eps->items[k];
			const char *iface = os_jstr(ep, "interface"), *u = os_jstr(ep, "url");
			const char *reg = os_jstr(ep, "region_id");

			if (!reg)
				reg = os_jstr(ep, "region");
			if (!iface || !u || strcmp(iface, c->interface))
				continue;
			strbuf_addf(&regions, "%s'%s'", regions.len ? ", " : "", reg ? reg : "");
			if (c->region && (!reg || strcmp(reg, c->region)))
				continue;
			matches++;
			url = u;
			region = reg;
		}
	}
	if (matches == 1) {
		size_t n = strlen(url);
		while (n && url[n - 1] == '/')
			n--;
		if (n >= 3 && !strncmp(url + n - 3, "/v2", 3))
			n -= 3;
		x->image_url = xasprintf("%.*s", (int)n, url);
		x->region = xstrdup(region ? region : "");
		strbuf_release(&regions);
		return 0;
	}
	if (!regions.len)
		strbuf_addf(err,
			    "the catalog of '%s' has no %s endpoint of the image service (Glance): "
			    "check OS_AUTH_URL and OS_INTERFACE, or ask the cloud's support",
			    c->auth_url, c->interface);
	else if (!matches)
		strbuf_addf(err,
			    "the catalog of '%s' has no %s image service endpoint in region '%s' "
			    "(it has: %s): set OS_REGION_NAME to one of them",
			    c->auth_url, c->interface, c->region, regions.buf);
	else
		strbuf_addf(
			err,
			"the catalog of '%s' has a %s image service endpoint in several regions "
			"(%s): set OS_REGION_NAME to one of them",
			c->auth_url, c->interface, regions.buf);
	strbuf_release(&regions);
	return -ENOENT;
}

int os_keystone_auth(struct os_ctx *x, struct strbuf *err)
{
	const struct os_creds *c = &x->creds;
	struct http_request req = HTTP_REQUEST_INIT;
	struct http_response resp = {0};
	struct strbuf body = STRBUF_INIT;
	_cleanup_free_ char *url = tokens_url(c->auth_url);
	_cleanup_free_ char *token = NULL;
	const char *headers[] = {"Content-Type: application/json", "Accept: application/json",
				 NULL};
	struct jsonr *doc = NULL;
	const struct jsonr_value *tok, *project;
	int r;

	auth_body(c, &body);
	req.method = "POST";
	req.url = url;
	req.headers = headers;
	req.body = body.buf;
	req.body_len = body.len;
	req.timeout_s = OS_API_TIMEOUT_S;
	req.ca_file = c->cacert;
	r = http_request(&req, &resp, err);
	explicit_bzero(body.buf, body.len);
	strbuf_release(&body);
	if (r < 0)
		goto out;
	if (resp.status != 201 && resp.status != 200) {
		_cleanup_free_ char *what = xasprintf(
			"keystone at '%s' refused the credentials from %s", url, c->origin);
		const char *hint;

		if (resp.status == 401 && os_creds_is_app_cred(c))
			hint = "check OS_APPLICATION_CREDENTIAL_ID and _SECRET (an application "
			       "credential may have expired or been deleted)";
		else if (resp.status == 401)
			hint = "check OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME and their domains "
			       "(or the clouds.yaml entry)";
		else
			hint = "check OS_AUTH_URL and the credentials";
		os_cloud_error(err, what, &resp, hint);
		r = -EACCES;
		goto out;
	}
	token = http_response_header(&resp, "X-Subject-Token");
	r = os_parse_json(&resp, "keystone", &doc, err);
	if (r < 0)
		goto out;
	tok = os_jget(&doc->root, "token", JSONR_OBJECT);
	project = tok ? os_jget(tok, "project", JSONR_OBJECT) : NULL;
	if (!token || !*token || !tok) {
		strbuf_addf(err,
			    "keystone at '%s' answered without a token: is OS_AUTH_URL a "
			    "Keystone v3 endpoint?",
			    url);
		r = -EPROTO;
		goto out;
	}
	if (!project || !os_jstr(project, "id")) {
		strbuf_addf(err,
			    "keystone at '%s' gave a token without a project: set OS_PROJECT_NAME "
			    "or OS_PROJECT_ID (images belong to a project)",
			    url);
		r = -EPROTO;
		goto out;
	}
	x->project_id = xstrdup(os_jstr(project, "id"));
	x->token_header = xasprintf("X-Auth-Token: %s", token);
	explicit_bzero(token, strlen(token));
	r = catalog_image_endpoint(x, os_jget(tok, "catalog", JSONR_ARRAY), err);
out:
	jsonr_free(doc);
	http_response_release(&resp);
	return r;
}
