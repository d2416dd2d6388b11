/* SPDX-License-Identifier: MIT */
/*
 * OpenStack credentials (cloud/openstack-creds.c): OS_* variables, the
 * clouds.yaml entry OS_CLOUD names, where clouds.yaml is looked for, and
 * which wins. Each test runs forked in a fresh directory, HOME set to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloud/openstack-internal.h"
#include "tap.h"

/* A clean environment: no OS_*, HOME here, no XDG_CONFIG_HOME. */
static void env_clean(void)
{
	extern char **environ;
	char cwd[4096];
	size_t i;

	for (;;) {
		char *name = NULL;
		for (i = 0; environ[i]; i++)
			if (!strncmp(environ[i], "OS_", 3)) {
				name = xstrndup(environ[i], strcspn(environ[i], "="));
				break;
			}
		if (!name)
			break;
		unsetenv(name);
		free(name);
	}
	unsetenv("XDG_CONFIG_HOME");
	if (getcwd(cwd, sizeof(cwd)))
		setenv("HOME", cwd, 1);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs(text, f);
	fclose(f);
}

static void openrc(void)
{
	setenv("OS_AUTH_URL", "https://auth.cloud.example/v3", 1);
	setenv("OS_USERNAME", "user-abc", 1);
	setenv("OS_PASSWORD", "s3cret", 1);
	setenv("OS_TENANT_NAME", "1234567890", 1);
	setenv("OS_REGION_NAME", "GRA11", 1);
}

static const char clouds_yaml[] = "clouds:\n"
				  "  mine:\n"
				  "    auth:\n"
				  "      auth_url: https://file.example/v3\n"
				  "      username: file-user\n"
				  "      password: file-pass\n"
				  "      project_id: 42\n"
				  "      user_domain_name: Users\n"
				  "    regions: [SBG5]\n"
				  "  app:\n"
				  "    auth_type: v3applicationcredential\n"
				  "    auth:\n"
				  "      auth_url: https://file.example/v3\n"
				  "      application_credential_id: ac-id\n"
				  "      application_credential_secret: ac-secret\n"
				  "    region_name: BHS5\n";

TEST(test_openrc_environment)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	openrc();
	CHECK_INT(os_creds_load(NULL, &c, &err), 0);
	CHECK_STR(c.auth_url, "https://auth.cloud.example/v3");
	CHECK_STR(c.username, "user-abc");
	CHECK_STR(c.password, "s3cret");
	/* OS_TENANT_NAME, the older name, stands for OS_PROJECT_NAME. */
	CHECK_STR(c.project_name, "1234567890");
	CHECK_STR(c.user_domain_name, "Default");
	CHECK_STR(c.project_domain_name, "Default");
	CHECK_STR(c.region, "GRA11");
	CHECK_STR(c.interface, "public");
	CHECK(!os_creds_is_app_cred(&c));
	CHECK_STR(c.origin, "the environment (OS_*)");
	os_creds_release(&c);
	strbuf_release(&err);
}

TEST(test_region_argument_wins)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	openrc();
	CHECK_INT(os_creds_load("WAW1", &c, &err), 0);
	CHECK_STR(c.region, "WAW1");
	os_creds_release(&c);
	strbuf_release(&err);
}

TEST(test_missing_password)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	openrc();
	unsetenv("OS_PASSWORD");
	CHECK_INT(os_creds_load(NULL, &c, &err), -EINVAL);
	CHECK_STR(err.buf, "no OpenStack OS_PASSWORD (password) in the environment (OS_*): source "
			   "your project's openrc file (OS_* variables) or set OS_CLOUD to an "
			   "entry of clouds.yaml");
	strbuf_release(&err);
}

TEST(test_nothing_set)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	CHECK_INT(os_creds_load(NULL, &c, &err), -EINVAL);
	CHECK(strstr(err.buf, "no OpenStack OS_AUTH_URL (auth_url) in the environment") == err.buf);
	strbuf_release(&err);
}

TEST(test_clouds_yaml_in_config_dir)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	CHECK_INT(mkdir(".config", 0755), 0);
	CHECK_INT(mkdir(".config/openstack", 0755), 0);
	write_text(".config/openstack/clouds.yaml", clouds_yaml);
	setenv("OS_CLOUD", "mine", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), 0);
	CHECK_STR(c.auth_url, "https://file.example/v3");
	CHECK_STR(c.username, "file-user");
	CHECK_STR(c.password, "file-pass");
	CHECK_STR(c.project_id, "42");
	CHECK(c.project_domain_name == NULL); /* a project id needs no domain */
	CHECK_STR(c.user_domain_name, "Users");
	CHECK_STR(c.region, "SBG5"); /* regions: [one] */
	CHECK(strstr(c.origin, ".config/openstack/clouds.yaml', cloud 'mine'") != NULL);
	os_creds_release(&c);
	strbuf_release(&err);
}

/* Variables set override the entry's values, as for the openstack client. */
TEST(test_environment_overrides_clouds_yaml)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	write_text("clouds.yaml", clouds_yaml);
	setenv("OS_CLOUD", "mine", 1);
	setenv("OS_PASSWORD", "env-pass", 1);
	setenv("OS_REGION_NAME", "GRA7", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), 0);
	CHECK_STR(c.password, "env-pass");
	CHECK_STR(c.region, "GRA7");
	CHECK_STR(c.username, "file-user");
	CHECK_STR(c.origin, "'clouds.yaml', cloud 'mine'");
	os_creds_release(&c);
	strbuf_release(&err);
}

/* ./clouds.yaml comes before the user's, which is then not read at all. */
TEST(test_clouds_yaml_order)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	CHECK_INT(mkdir(".config", 0755), 0);
	CHECK_INT(mkdir(".config/openstack", 0755), 0);
	write_text(".config/openstack/clouds.yaml", clouds_yaml);
	write_text("clouds.yaml", "clouds:\n  other: {auth: {auth_url: x}}\n");
	setenv("OS_CLOUD", "mine", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), -ENOENT);
	CHECK_STR(err.buf, "OS_CLOUD is 'mine' but 'clouds.yaml' has no entry 'clouds: mine:'; set "
			   "OS_CLOUD to one of its clouds or add it");
	strbuf_reset(&err);
	/* OS_CLIENT_CONFIG_FILE comes first of all. */
	setenv("OS_CLIENT_CONFIG_FILE", ".config/openstack/clouds.yaml", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), 0);
	CHECK_STR(c.username, "file-user");
	os_creds_release(&c);
	strbuf_release(&err);
}

TEST(test_application_credential)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	write_text("clouds.yaml", clouds_yaml);
	setenv("OS_CLOUD", "app", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), 0);
	CHECK(os_creds_is_app_cred(&c));
	CHECK_STR(c.app_cred_id, "ac-id");
	CHECK_STR(c.app_cred_secret, "ac-secret");
	CHECK_STR(c.region, "BHS5");
	os_creds_release(&c);
	strbuf_reset(&err);

	/* From the environment alone, without OS_AUTH_TYPE. */
	env_clean();
	setenv("OS_AUTH_URL", "https://auth.cloud.example/v3", 1);
	setenv("OS_APPLICATION_CREDENTIAL_ID", "id1", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), -EINVAL);
	CHECK(strstr(err.buf, "no OpenStack OS_APPLICATION_CREDENTIAL_SECRET") == err.buf);
	strbuf_reset(&err);
	setenv("OS_APPLICATION_CREDENTIAL_SECRET", "sec1", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), 0);
	CHECK(os_creds_is_app_cred(&c));
	os_creds_release(&c);
	strbuf_release(&err);
}

TEST(test_no_clouds_yaml)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	setenv("OS_CLOUD", "mine", 1);
	CHECK_INT(os_creds_load(NULL, &c, &err), -ENOENT);
	CHECK(strstr(err.buf, "OS_CLOUD is 'mine' but there is no clouds.yaml (looked for "
			      "'clouds.yaml', '") == err.buf);
	CHECK(strstr(err.buf, "/.config/openstack/clouds.yaml', '/etc/openstack/clouds.yaml')") !=
	      NULL);
	strbuf_release(&err);
}

TEST(test_bad_clouds_yaml)
{
	struct os_creds c = {0};
	struct strbuf err = STRBUF_INIT;

	env_clean();
	setenv("OS_CLOUD", "mine", 1);
	write_text("clouds.yaml", "clouds:\n  mine:\n    auth: [a, b]\n");
	CHECK_INT(os_creds_load(NULL, &c, &err), -EINVAL);
	CHECK_STR(err.buf, "clouds.yaml:3:11: 'auth' must be a mapping");
	strbuf_reset(&err);
	write_text("clouds.yaml", "clouds:\n  mine: {auth: {password: [x]}}\n");
	CHECK_INT(os_creds_load(NULL, &c, &err), -EINVAL);
	CHECK(strstr(err.buf, "clouds.yaml:2:") == err.buf);
	CHECK(strstr(err.buf, "'password' must be a plain value") != NULL);
	strbuf_reset(&err);
	write_text("clouds.yaml", "clouds:\n  mine: {auth: \n");
	CHECK_INT(os_creds_load(NULL, &c, &err), -EINVAL);
	CHECK(strstr(err.buf, "clouds.yaml:") == err.buf);
	/* A secret never lands in a message. */
	write_text("clouds.yaml", "clouds:\n  mine: {auth: {auth_url: u, username: n, password: "
				  "topsecret}}\n");
	strbuf_reset(&err);
	CHECK_INT(os_creds_load(NULL, &c, &err), -EINVAL);
	CHECK(strstr(err.buf, "OS_PROJECT_NAME") != NULL);
	CHECK(strstr(err.buf, "topsecret") == NULL);
	strbuf_release(&err);
}

int main(void)
{
	RUN(test_openrc_environment);
	RUN(test_region_argument_wins);
	RUN(test_missing_password);
	RUN(test_nothing_set);
	RUN(test_clouds_yaml_in_config_dir);
	RUN(test_environment_overrides_clouds_yaml);
	RUN(test_clouds_yaml_order);
	RUN(test_application_credential);
	RUN(test_no_clouds_yaml);
	RUN(test_bad_clouds_yaml);
	return tap_done();
}
