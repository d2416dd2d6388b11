/* SPDX-License-Identifier: MIT */
/*
 * OpenStack credentials from where the openstack client finds them (see
 * openstack-internal.h and docs/publish-openstack.md): an openrc's OS_*
 * variables, or the clouds.yaml entry OS_CLOUD names. clouds.yaml is read
 * through the recipe module's YAML tree (libyaml), so its errors carry
 * file:line:col.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloud/openstack-internal.h"
#include "core/file.h"
#include "recipe/recipe.h"

#define CLOUDS_YAML_MAX (1u << 20)

/*
 * Each setting: its variable, its key in a clouds.yaml entry (under auth:
 * or at the entry's top), and where it goes. OS_TENANT_* are the older
 * names some openrc files still export.
 */
struct os_setting {
	const char *env;
	const char *env_alias;
	const char *key;
	const char *key_alias;
	bool in_auth;
	size_t off;
};

#define S(env, alias, key, kalias, auth, field)                                                    \
	{                                                                                          \
		env, alias, key, kalias, auth, offsetof(struct os_creds, field)                    \
	}

static const struct os_setting settings[] = {
	S("OS_AUTH_URL", NULL, "auth_url", NULL, true, auth_url),
	S("OS_AUTH_TYPE", NULL, "auth_type", NULL, false, auth_type),
	S("OS_USERNAME", NULL, "username", NULL, true, username),
	S("OS_USER_ID", NULL, "user_id", NULL, true, user_id),
	S("OS_PASSWORD", NULL, "password", NULL, true, password),
	S("OS_USER_DOMAIN_NAME", NULL, "user_domain_name", NULL, true, user_domain_name),
	S("OS_USER_DOMAIN_ID", NULL, "user_domain_id", NULL, true, user_domain_id),
	S("OS_PROJECT_NAME", "OS_TENANT_NAME", "project_name", "tenant_name", true, project_name),
	S("OS_PROJECT_ID", "OS_TENANT_ID", "project_id", "tenant_id", true, project_id),
	S("OS_PROJECT_DOMAIN_NAME", NULL, "project_domain_name", NULL, true, project_domain_name),
	S("OS_PROJECT_DOMAIN_ID", NULL, "project_domain_id", NULL, true, project_domain_id),
	S("OS_APPLICATION_CREDENTIAL_ID", NULL, "application_credential_id", NULL, true,
	  app_cred_id),
	S("OS_APPLICATION_CREDENTIAL_NAME", NULL, "application_credential_name", NULL, true,
	  app_cred_name),
	S("OS_APPLICATION_CREDENTIAL_SECRET", NULL, "application_credential_secret", NULL, true,
	  app_cred_secret),
	S("OS_REGION_NAME", NULL, "region_name", NULL, false, region),
	S("OS_INTERFACE", NULL, "interface", NULL, false, interface),
	S("OS_CACERT", NULL, "cacert", NULL, false, cacert),
};

#undef S

static char **field(struct os_creds *c, const struct os_setting *s)
{
	return (char **)((char *)c + s->off);
}

static void set_field(char **f, const char *v)
{
	free(*f);
	*f = xstrdup(v);
}

static const char *env_value(const char *name)
{
	const char *v = name ? getenv(name) : NULL;

	return v && *v ? v : NULL;
}

int os_creds_is_app_cred(const struct os_creds *c)
{
	if (c->auth_type)
		return strstr(c->auth_type, "applicationcredential") != NULL;
	return c->app_cred_id || c->app_cred_name || c->app_cred_secret;
}

void os_creds_release(struct os_creds *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < ARRAY_SIZE(settings); i++)
		free(*field(c, &settings[i]));
	free(c->origin);
	*c = (struct os_creds){0};
}

/*
 * The clouds.yaml to read, in the openstack client's order: the file
 * OS_CLIENT_CONFIG_FILE names, ./clouds.yaml, the user's
 * ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml. The first
 * that exists is the only one read. NULL when none exists; where it looked in
 * *looked.
 */
static char *clouds_yaml_find(struct strbuf *looked)
{
	const char *explicit = env_value("OS_CLIENT_CONFIG_FILE");
	const char *xdg = env_value("XDG_CONFIG_HOME"), *home = env_value("HOME");
	char *cands[4] = {0};
	char *found = NULL;
	size_t n = 0, i;

	if (explicit)
		cands[n++] = xstrdup(explicit);
	cands[n++] = xstrdup("clouds.yaml");
	if (xdg)
		cands[n++] = xasprintf("%s/openstack/clouds.yaml", xdg);
	else if (home)
		cands[n++] = xasprintf("%s/.config/openstack/clouds.yaml", home);
	cands[n++] = xstrdup("/etc/openstack/clouds.yaml");
	for (i = 0; i < n; i++) {
		strbuf_addf(looked, "%s'%s'", i ? ", " : "", cands[i]);
		if (!found && access(cands[i], F_OK) == 0)
			found = cands[i];
		else
			free(cands[i]);
	}
	return found;
}

/* "FILE:LINE:COL: 'NAME' must be WHAT" */
static int yaml_error(struct strbuf *err, const struct ynode *n, const char *name, const char *what)
{
	strbuf_addf(err, "%s:%d:%d: '%s' must be %s", n->pos.file, n->pos.line, n->pos.col, name,
		    what);
	return -EINVAL;
}

/* Take the scalar settings of map (the entry, or its auth:) that belong there. */
static int take_settings(struct os_creds *c, const struct ynode *map, bool in_auth,
			 struct strbuf *err)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(settings); i++) {
		const struct os_setting *s = &settings[i];
		const struct ynode *v;

		if (s->in_auth != in_auth)
			continue;
		v = ynode_map_get(map, s->key);
		if (!v && s->key_alias)
			v = ynode_map_get(map, s->key_alias);
		if (!v || (v->kind == YNODE_SCALAR &&
			   (!v->str[0] ||
			    (v->plain && (!strcmp(v->str, "~") || !strcmp(v->str, "null"))))))
			continue;
		if (v->kind != YNODE_SCALAR)
			return yaml_error(err, v, s->key, "a plain value");
		set_field(field(c, s), v->str);
	}
	return 0;
}

/* Fill c from the entry clouds.<name> of path. */
static int clouds_yaml_read(struct os_creds *c, const char *path, const char *name,
			    struct strbuf *err)
{
	_cleanup_free_ char *buf = NULL;
	struct diags d = {0};
	struct ynode *root = NULL;
	const struct ynode *clouds, *entry, *auth, *regions;
	size_t len = 0;
	int r;

	r = read_file(path, CLOUDS_YAML_MAX, &buf, &len);
	if (r < 0) {
		strbuf_addf(err, "cannot read '%s': %s", path, strerror(-r));
		return r;
	}
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
	clouds = root && root->kind == YNODE_MAP ? ynode_map_get(root, "clouds") : NULL;
	entry = clouds && clouds->kind == YNODE_MAP ? ynode_map_get(clouds, name) : NULL;
	if (!entry) {
		strbuf_addf(err,
			    "OS_CLOUD is '%s' but '%s' has no entry 'clouds: %s:'; set OS_CLOUD "
			    "to one of its clouds or add it",
			    name, path, name);
		r = -ENOENT;
		goto out;
	}
	if (entry->kind != YNODE_MAP) {
		r = yaml_error(err, entry, name, "a mapping");
		goto out;
	}
	r = take_settings(c, entry, false, err);
	if (r < 0)
		goto out;
	auth = ynode_map_get(entry, "auth");
	if (auth && auth->kind != YNODE_MAP) {
		r = yaml_error(err, auth, "auth", "a mapping");
		goto out;
	}
	if (auth) {
		r = take_settings(c, auth, true, err);
		if (r < 0)
			goto out;
	}
	/* regions: [A] (or [{name: A}]) stands for region_name when it lists one. */
	regions = ynode_map_get(entry, "regions");
	if (!c->region && regions && regions->kind == YNODE_SEQ && regions->n == 1) {
		const struct ynode *reg = regions->v[0];
		if (reg->kind == YNODE_MAP)
			reg = ynode_map_get(reg, "name");
		if (reg && reg->kind == YNODE_SCALAR)
			set_field(&c->region, reg->str);
	}
	c->origin = xasprintf("'%s', cloud '%s'", path, name);
out:
	ynode_free(root);
	diags_release(&d);
	return r;
}

static int creds_check(const struct os_creds *c, struct strbuf *err)
{
	const char *hint = c->origin && strncmp(c->origin, "the environment", 15)
				   ? "complete that clouds.yaml entry or set the OS_* variable"
				   : "source your project's openrc file (OS_* variables) or set "
				     "OS_CLOUD to an entry of clouds.yaml";
	const char *missing = NULL;

	if (!c->auth_url)
		missing = "OS_AUTH_URL (auth_url)";
	else if (os_creds_is_app_cred(c)) {
		if (!c->app_cred_secret)
			missing =
				"OS_APPLICATION_CREDENTIAL_SECRET (application_credential_secret)";
		else if (!c->app_cred_id && !c->app_cred_name)
			missing = "OS_APPLICATION_CREDENTIAL_ID (application_credential_id)";
		else if (!c->app_cred_id && !c->user_id && !c->username)
			missing = "OS_USERNAME (username), which an application credential "
				  "given by name needs";
	} else {
		if (!c->username && !c->user_id)
			missing = "OS_USERNAME (username)";
		else if (!c->password)
			missing = "OS_PASSWORD (password)";
		else if (!c->project_name && !c->project_id)
			missing = "OS_PROJECT_NAME or OS_PROJECT_ID (project_name, project_id)";
	}
	if (!missing)
		return 0;
	strbuf_addf(err, "no OpenStack %s in %s: %s", missing, c->origin, hint);
	return -EINVAL;
}

int os_creds_load(const char *region, struct os_creds *ret, struct strbuf *err)
{
	struct os_creds c = {0};
	const char *cloud = env_value("OS_CLOUD");
	size_t i;
	int r;

	if (cloud) {
		struct strbuf looked = STRBUF_INIT;
		_cleanup_free_ char *path = clouds_yaml_find(&looked);

		if (!path) {
			strbuf_addf(err,
				    "OS_CLOUD is '%s' but there is no clouds.yaml (looked for %s): "
				    "write one there or unset OS_CLOUD and source your openrc",
				    cloud, looked.buf);
			strbuf_release(&looked);
			return -ENOENT;
		}
		strbuf_release(&looked);
		r = clouds_yaml_read(&c, path, cloud, err);
		if (r < 0)
			goto fail;
	} else {
		c.origin = xstrdup("the environment (OS_*)");
	}
	/* Variables set override the file, as they do for the openstack client. */
	for (i = 0; i < ARRAY_SIZE(settings); i++) {
		const char *v = env_value(settings[i].env);
		if (!v)
			v = env_value(settings[i].env_alias);
		if (v)
			set_field(field(&c, &settings[i]), v);
	}
	if (region && *region)
		set_field(&c.region, region);
	if (!c.interface)
		c.interface = xstrdup("public");
	/* Keystone v3 needs a domain for a name; OpenStack's default domain is "Default". */
	if (c.username && !c.user_id && !c.user_domain_name && !c.user_domain_id)
		c.user_domain_name = xstrdup("Default");
	if (c.project_name && !c.project_id && !c.project_domain_name && !c.project_domain_id)
		c.project_domain_name = xstrdup("Default");
	r = creds_check(&c, err);
	if (r < 0)
		goto fail;
	*ret = c;
	return 0;
fail:
	os_creds_release(&c);
	return r;
}
