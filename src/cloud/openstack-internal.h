/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_OPENSTACK_INTERNAL_H
#define IMGFORGE_OPENSTACK_INTERNAL_H

#include "core/util.h"

/*
 * OpenStack credentials, as the openstack client reads them: the OS_*
 * variables an openrc file exports, or the entry of clouds.yaml that
 * OS_CLOUD names, with any OS_* variable set overriding that entry's value.
 * Shared by openstack-creds.c and openstack.c; tests/unit/test-openstack.c
 * tests the resolution.
 */
struct os_creds {
	char *auth_url;
	char *auth_type; /* "password" or "v3applicationcredential" (the default follows the values) */
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

#endif
