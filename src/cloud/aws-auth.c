/* SPDX-License-Identifier: MIT */
/*
 * AWS credentials, regions, endpoints and Signature Version 4 (see
 * aws-auth.h). The signature follows AWS's "Create a signed AWS API
 * request" steps: canonical request, string to sign, the key derived by an
 * HMAC chain over date, region and service, and the Authorization header.
 * HMAC and SHA-256 come from OpenSSL through core/hash.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cloud/aws-auth.h"
#include "core/file.h"
#include "core/hash.h"
#include "net/http.h"

void strv_free(char **v)
{
	size_t i;

	for (i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* --- the shared configuration and credentials files --- */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/*
 * key's value in section of an INI file (the format of ~/.aws/config and
 * ~/.aws/credentials), malloc'd; NULL when the file, section or key is not
 * there.
 */
static char *ini_get(const char *path, const char *section, const char *key)
{
	_cleanup_free_ char *text = NULL;
	char *line, *save = NULL, *val = NULL;
	bool in = false;
	size_t len;

	if (!path || read_file(path, 1u << 20, &text, &len) < 0)
		return NULL;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *l = trim(line), *eq;

		if (*l == '#' || *l == ';' || !*l)
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']');

			if (end) {
				*end = 0;
				in = !strcmp(trim(l + 1), section);
			}
			continue;
		}
		eq = strchr(l, '=');
		if (!in || !eq)
			continue;
		*eq = 0;
		if (!strcmp(trim(l), key)) {
			free(val);
			val = xstrdup(trim(eq + 1));
		}
	}
	return val;
}

static char *home_file(const char *env, const char *name)
{
	const char *v = getenv(env), *home = getenv("HOME");

	if (v && *v)
		return xstrdup(v);
	return home && *home ? xasprintf("%s/.aws/%s", home, name) : NULL;
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

int aws_config_load(const char *region, struct aws_config *ret, struct strbuf *err)
{
	_cleanup_free_ char *creds = home_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
	_cleanup_free_ char *config = home_file("AWS_CONFIG_FILE", "config");
	_cleanup_free_ char *section = NULL;
	struct aws_config c = {0};
	const char *profile = env_nonempty("AWS_PROFILE");
	const char *v;

	if (!profile)
		profile = env_nonempty("AWS_DEFAULT_PROFILE");
	if (!profile)
		profile = "default";
	c.profile = xstrdup(profile);
	/* ~/.aws/config names its sections "profile NAME", except the default one. */
	section = strcmp(profile, "default") ? xasprintf("profile %s", profile) : xstrdup(profile);

	if (env_nonempty("AWS_ACCESS_KEY_ID") && env_nonempty("AWS_SECRET_ACCESS_KEY")) {
		c.access_key_id = xstrdup(getenv("AWS_ACCESS_KEY_ID"));
		c.secret_access_key = xstrdup(getenv("AWS_SECRET_ACCESS_KEY"));
		if ((v = env_nonempty("AWS_SESSION_TOKEN")))
			c.session_token = xstrdup(v);
	} else {
		c.access_key_id = ini_get(creds, profile, "aws_access_key_id");
		c.secret_access_key = ini_get(creds, profile, "aws_secret_access_key");
		c.session_token = ini_get(creds, profile, "aws_session_token");
		/* The config file may hold them too. */
		if (!c.access_key_id || !c.secret_access_key) {
			free(c.access_key_id);
			free(c.secret_access_key);
			free(c.session_token);
			c.access_key_id = ini_get(config, section, "aws_access_key_id");
			c.secret_access_key = ini_get(config, section, "aws_secret_access_key");
			c.session_token = ini_get(config, section, "aws_session_token");
		}
	}
	if (!c.access_key_id || !*c.access_key_id || !c.secret_access_key ||
	    !*c.secret_access_key) {
		strbuf_addf(err,
			    "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
			    "or aws_access_key_id and aws_secret_access_key in profile '%s' of "
			    "'%s' ('aws configure' writes them)",
			    profile, creds ? creds : "~/.aws/credentials");
		aws_config_release(&c);
		return -ENOKEY;
	}
	if (region)
		c.region = xstrdup(region);
	else if ((v = env_nonempty("AWS_REGION")) || (v = env_nonempty("AWS_DEFAULT_REGION")))
		c.region = xstrdup(v);
	else
		c.region = ini_get(config, section, "region");
	*ret = c;
	return 0;
}

void aws_config_release(struct aws_config *c)
{
	if (!c)
		return;
	free(c->access_key_id);
	if (c->secret_access_key) /* do not leave it in freed memory */
		explicit_bzero(c->secret_access_key, strlen(c->secret_access_key));
	free(c->secret_access_key);
	free(c->session_token);
	free(c->region);
	free(c->profile);
	*c = (struct aws_config){0};
}

char *aws_endpoint(const char *service, const char *region, bool *ret_custom)
{
	char name[64];
	const char *v;
	char *url;
	size_t i, n;

	n = (size_t)snprintf(name, sizeof(name), "AWS_ENDPOINT_URL_%s", service);
	for (i = 17; i < n && i < sizeof(name); i++)
		name[i] = (char)toupper((unsigned char)name[i]);
	v = env_nonempty(name);
	if (!v)
		v = env_nonempty("AWS_ENDPOINT_URL");
	*ret_custom = v != NULL;
	if (!v)
		return xasprintf("https://%s.%s.amazonaws.com", service,
				 region ? region : "us-east-1");
	url = xstrdup(v);
	n = strlen(url);
	while (n && url[n - 1] == '/')
		url[--n] = 0;
	return url;
}

/* --- Signature Version 4 --- */

struct kv {
	char *k, *v;
};

static int kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	return c ? c : strcmp(x->v, y->v);
}

static void kv_free(struct kv *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].k);
		free(v[i].v);
	}
	free(v);
}

static void hex_of(const uint8_t *d, size_t n, char *out)
{
	hex_encode(d, n, out);
}

/* A header value as SigV4 canonicalises it: trimmed, runs of blanks made one space. */
static char *canon_value(const char *v)
{
	struct strbuf sb = STRBUF_INIT;
	bool space = false;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = true;
			continue;
		}
		if (space)
			strbuf_addch(&sb, ' ');
		space = false;
		strbuf_addch(&sb, *v);
	}
	return strbuf_detach(&sb);
}

/*
 * The canonical query string: each parameter as sent (our URLs are built
 * with http_uri_encode(), RFC 3986's set, which is SigV4's), "=" added to
 * a name without a value, sorted by name then value.
 */
static void canon_query(const char *q, struct strbuf *out)
{
	_cleanup_free_ char *copy = xstrdup(q);
	struct kv *v = NULL;
	size_t n = 0, i;
	char *p, *save = NULL;

	for (p = strtok_r(copy, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(p, '=');

		v = xrealloc(v, (n + 1) * sizeof(*v));
		v[n].k = eq ? xstrndup(p, (size_t)(eq - p)) : xstrdup(p);
		v[n].v = xstrdup(eq ? eq + 1 : "");
		n++;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), kv_cmp);
	for (i = 0; i < n; i++)
		strbuf_addf(out, "%s%s=%s", i ? "&" : "", v[i].k, v[i].v);
	kv_free(v, n);
}

int sigv4_sign(const struct sigv4 *s, const char *method, const char *url,
	       const char *const *headers, const char *payload_sha256, char ***ret,
	       struct strbuf *err)
{
	struct strbuf creq = STRBUF_INIT, sts = STRBUF_INIT, signed_names = STRBUF_INIT;
	_cleanup_free_ char *host = NULL, *path = NULL, *query = NULL, *secret = NULL;
	const char *p, *h, *slash, *qm;
	struct kv *hv = NULL;
	size_t nh = 0, i, nout = 0;
	char **out = NULL;
	char amzdate[17], date[9], hex[SHA256_HEX_LEN], sig[SHA256_HEX_LEN];
	uint8_t k[SHA256_LEN], digest[SHA256_LEN];
	bool s3 = !strcmp(s->service, "s3");
	time_t now = s->now ? s->now : time(NULL);
	struct tm tm;

	/* scheme://host[:port]/path?query */
	p = strstr(url, "://");
	if (!p) {
		strbuf_addf(err, "cannot sign a request to '%s': not an absolute URL", url);
		return -EINVAL;
	}
	h = p + 3;
	slash = h + strcspn(h, "/?");
	host = xstrndup(h, (size_t)(slash - h));
	if (!*host) {
		strbuf_addf(err, "cannot sign a request to '%s': no host", url);
		return -EINVAL;
	}
	qm = strchr(slash, '?');
	path = qm ? xstrndup(slash, (size_t)(qm - slash)) : xstrdup(slash);
	query = xstrdup(qm ? qm + 1 : "");
	if (!*path) {
		free(path);
		path = xstrdup("/");
	}
	/* A default port is not part of the Host header curl sends. */
	if ((!strncmp(url, "https:", 6) && str_endswith(host, ":443")) ||
	    (!strncmp(url, "http:", 5) && str_endswith(host, ":80")))
		*strrchr(host, ':') = 0;

	gmtime_r(&now, &tm);
	strftime(amzdate, sizeof(amzdate), "%Y%m%dT%H%M%SZ", &tm);
	memcpy(date, amzdate, 8);
	date[8] = 0;

	/* The headers: the caller's, then ours; names lowercase, sorted. */
	for (i = 0; headers && headers[i]; i++) {
		const char *colon = strchr(headers[i], ':');
		char *name;
		size_t j;

		if (!colon)
			continue;
		name = xstrndup(headers[i], (size_t)(colon - headers[i]));
		for (j = 0; name[j]; j++)
			name[j] = (char)tolower((unsigned char)name[j]);
		hv = xrealloc(hv, (nh + 1) * sizeof(*hv));
		hv[nh].k = name;
		hv[nh].v = canon_value(colon + 1);
		nh++;
	}
	hv = xrealloc(hv, (nh + 4) * sizeof(*hv));
	hv[nh++] = (struct kv){xstrdup("host"), xstrdup(host)};
	hv[nh++] = (struct kv){xstrdup("x-amz-date"), xstrdup(amzdate)};
	if (s3)
		hv[nh++] = (struct kv){xstrdup("x-amz-content-sha256"), xstrdup(payload_sha256)};
	if (s->session_token)
		hv[nh++] = (struct kv){xstrdup("x-amz-security-token"), xstrdup(s->session_token)};
	qsort(hv, nh, sizeof(*hv), kv_cmp);

	/* Canonical request. S3 signs the path as sent; other services encode it once more. */
	strbuf_addf(&creq, "%s\n", method);
	if (s3)
		strbuf_addstr(&creq, path);
	else
		http_uri_encode(&creq, path, true);
	strbuf_addch(&creq, '\n');
	canon_query(query, &creq);
	strbuf_addch(&creq, '\n');
	for (i = 0; i < nh; i++) {
		strbuf_addf(&creq, "%s:%s\n", hv[i].k, hv[i].v);
		strbuf_addf(&signed_names, "%s%s", i ? ";" : "", hv[i].k);
	}
	strbuf_addf(&creq, "\n%s\n%s", signed_names.buf, payload_sha256);

	/* String to sign. */
	sha256_hex(creq.buf, creq.len, hex);
	strbuf_addf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", amzdate, date,
		    s->region, s->service, hex);

	/* The signing key: HMAC("AWS4" + secret, date), then region, service, "aws4_request". */
	secret = xasprintf("AWS4%s", s->secret_access_key);
	hmac_sha256(secret, strlen(secret), date, strlen(date), k);
	explicit_bzero(secret, strlen(secret));
	hmac_sha256(k, sizeof(k), s->region, strlen(s->region), k);
	hmac_sha256(k, sizeof(k), s->service, strlen(s->service), k);
	hmac_sha256(k, sizeof(k), "aws4_request", 12, k);
	hmac_sha256(k, sizeof(k), sts.buf, sts.len, digest);
	explicit_bzero(k, sizeof(k));
	hex_of(digest, sizeof(digest), sig);

	out = xcalloc(nh + 8, sizeof(*out));
	for (i = 0; headers && headers[i]; i++)
		out[nout++] = xstrdup(headers[i]);
	out[nout++] = xasprintf("Host: %s", host);
	out[nout++] = xasprintf("X-Amz-Date: %s", amzdate);
	if (s3)
		out[nout++] = xasprintf("X-Amz-Content-Sha256: %s", payload_sha256);
	if (s->session_token)
		out[nout++] = xasprintf("X-Amz-Security-Token: %s", s->session_token);
	out[nout++] =
		xasprintf("Authorization: AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
			  "SignedHeaders=%s, Signature=%s",
			  s->access_key_id, date, s->region, s->service, signed_names.buf, sig);
	*ret = out;
	kv_free(hv, nh);
	strbuf_release(&creq);
	strbuf_release(&sts);
	strbuf_release(&signed_names);
	return 0;
}
