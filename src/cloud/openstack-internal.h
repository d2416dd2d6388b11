/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_OPENSTACK_INTERNAL_H
#define IMGFORGE_OPENSTACK_INTERNAL_H

#include "core/util.h"
#include "net/http.h"
#include "update/jsonr.h"

/*
 * OpenStack credentials, as the openstack client reads them: the OS_*
 * variables an openrc file exports, or the entry of clouds.yaml that
 * OS_CLOUD names, with any OS_* variable set overriding that entry's value.
 * Shared by openstack-creds.c and openstack.c; tests/unit/test-openstack.c
 * tests the resolution.
 */
struct os_creds {
	char *auth_url;
	char *auth_type; /* "password" or "v3applicationcredential" (the default follows the values)
			  */
	char *username, *user_id, *password;
	char *user_domain_name, *user_domain_id;
	char *project_name, *project_id;
	char *project_domain_name, *project_domain_id;
	char *app_cred_id, *app_cred_name, *app_cred_secret;
	char *region;
	char *interface; /* of the catalog's endpoints: "public" unless set */
	char *cacert;
	char *origin; /* for messages: "the environment (OS_*)" or "'PATH', cloud 'NAME'" */
};

/* Whether c authenticates with an application credential rather than a password. */
int os_creds_is_app_cred(const struct os_creds *c);

/*
 * Resolve the credentials from the environment and clouds.yaml; region, when
 * not NULL, overrides OS_REGION_NAME and the file's. Returns 0 with *ret
 * filled (release with os_creds_release()), or -errno with one line in err
 * saying what is missing and where it was looked for. Never puts a secret in err.
 */
int os_creds_load(const char *region, struct os_creds *ret, struct strbuf *err);
void os_creds_release(struct os_creds *c);

/* Seconds an API call may take (an upload has no limit). */
#define OS_API_TIMEOUT_S 120

/* One publish's session: the credentials, then what Keystone gave. */
struct os_ctx {
	struct os_creds creds;
	char *token_header; /* "X-Auth-Token: ...": a secret, never in a message */
	char *project_id;
	char *region;	 /* of the image endpoint */
	char *image_url; /* the image service, without a trailing '/' or "/v2" */
};

void os_ctx_release(struct os_ctx *x);

/*
 * Take a Keystone v3 token for x->creds and find the image service in its
 * catalog: fills token_header, project_id, region and image_url, or returns
 * -errno with one line in err (Keystone's refusal with its code and message).
 */
int os_keystone_auth(struct os_ctx *x, struct strbuf *err);

/*
 * One line for a cloud's refusal into err: "WHAT: HTTP STATUS TITLE: MESSAGE;
 * HINT", the title and message from Keystone's {"error": {...}}, Glance's
 * {"message": ...} or an HTML error page; hint may be NULL.
 */
void os_cloud_error(struct strbuf *err, const char *what, const struct http_response *resp,
		    const char *hint);

/* JSON answers: the parsed body (-EPROTO and a message naming what answered). */
int os_parse_json(const struct http_response *resp, const char *what, struct jsonr **ret,
		  struct strbuf *err);
/* The member key of v when it has that type, else NULL. */
const struct jsonr_value *os_jget(const struct jsonr_value *v, const char *key,
				  enum jsonr_type type);
/* The string member key of v, else NULL. */
const char *os_jstr(const struct jsonr_value *v, const char *key);

#endif
