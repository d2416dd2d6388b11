/* SPDX-License-Identifier: MIT */
/*
 * The schema of image definitions and recipes: one typed field table, the
 * checks of each value type, and validation of a tree against the table.
 * docs/recipes.md describes every key and rule.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "recipe/recipe-internal.h"

/* ------------------------------------------------------------------------ */
/* schema */

static const char *const distro_choices[] = { "debian", "ubuntu", NULL };
static const char *const variant_choices[] = { "extract", "custom", "essential", "apt",
					       "required", "minbase", "buildd", "important",
					       "standard", NULL };
static const char *const arch_choices[] = { "amd64", NULL };
static const char *const filetype_choices[] = { "file", "directory", "symlink", NULL };

static const struct field str_item[] = { { NULL, T_STR, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field pkg_item[] = { { NULL, T_PKG, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field unit_item[] = { { NULL, T_UNIT, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field abspath_item[] = { { NULL, T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field hostpath_item[] = { { NULL, T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL } };

static const struct field name_item[] = { { NULL, T_NAME, NULL, NULL, 0, 0, NULL, NULL } };

static const struct field source_fields[] = {
	{ "uri", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "suites", T_LIST, name_item, NULL, 0, 0, NULL, NULL },
	{ "components", T_LIST, str_item, NULL, 0, 0, NULL, NULL },
	{ "signed_by", T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};
static const struct field source_item[] = {
	{ NULL, T_MAP, source_fields, NULL, 0, 0, "uri", NULL }
};

static const struct field base_fields[] = {
	{ "distro", T_ENUM, NULL, distro_choices, 0, 0, NULL, NULL },
	{ "suite", T_NAME, NULL, NULL, 0, 0, NULL, NULL },
	{ "suites", T_LIST, name_item, NULL, 0, 0, NULL, NULL },
	{ "mirror", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "security_mirror", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "sources", T_LIST, source_item, NULL, 0, 0, NULL, NULL },
	{ "snapshot", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "components", T_LIST, str_item, NULL, 0, 0, NULL, NULL },
	{ "keyring", T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "variant", T_ENUM, NULL, variant_choices, 0, 0, NULL, NULL },
	{ "architecture", T_ENUM, NULL, arch_choices, 0, 0, NULL, NULL },
	{ "packages", T_LIST, pkg_item, NULL, 0, 0, NULL, NULL },
	{ "minimize", T_BOOL, NULL, NULL, 0, 0, NULL, NULL },
	{ "exclude", T_LIST, abspath_item, NULL, 0, 0, NULL, NULL },
	{ "tarball", T_SOURCE, NULL, NULL, 0, 0, NULL, NULL },
	{ "sha256", T_SHA256, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field overlay_fields[] = {
	{ "source", T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "target", T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "owner", T_OWNER, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};
static const struct field overlay_item[] = {
	{ NULL, T_OVERLAY, overlay_fields, NULL, 0, 0, NULL, NULL }
};

static const struct field file_fields[] = {
	{ "path", T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "type", T_ENUM, NULL, filetype_choices, 0, 0, NULL, NULL },
	{ "mode", T_MODE, NULL, NULL, 0, 0, NULL, NULL },
	{ "owner", T_OWNER, NULL, NULL, 0, 0, NULL, NULL },
	{ "content", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "source", T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "target", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};
static const struct field file_item[] = { { NULL, T_MAP, file_fields, NULL, 0, 0, "path", NULL } };

static const struct field account_item[] = { { NULL, T_ACCOUNT, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field sshkey_item[] = { { NULL, T_SSHKEY, NULL, NULL, 0, 0, NULL, NULL } };
static const struct field user_fields[] = {
	{ "name", T_ACCOUNT, NULL, NULL, 0, 0, NULL, NULL },
	{ "uid", T_INT, NULL, NULL, 1, 59999, NULL, "a number from 1 to 59999" },
	{ "system", T_BOOL, NULL, NULL, 0, 0, NULL, NULL },
	{ "groups", T_LIST, account_item, NULL, 0, 0, NULL, NULL },
	{ "ssh-authorized-keys", T_LIST, sshkey_item, NULL, 0, 0, NULL, NULL },
	{ "sudo", T_SUDO, NULL, NULL, 0, 0, NULL, NULL },
	{ "shell", T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ "home", T_ABSPATH, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};
static const struct field user_item[] = { { NULL, T_MAP, user_fields, NULL, 0, 0, "name", NULL } };

static const struct field services_fields[] = {
	{ "enable", T_LIST, unit_item, NULL, 0, 0, NULL, NULL },
	{ "disable", T_LIST, unit_item, NULL, 0, 0, NULL, NULL },
	{ "mask", T_LIST, unit_item, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field rootfs_fields[] = {
	{ "size", T_SIZE_AUTO, NULL, NULL, 0, 0, NULL, NULL },
	{ "headroom", T_INT, NULL, NULL, 0, 1000, NULL, "a percentage from 0 to 1000" },
	{ "label", T_STR, NULL, NULL, 0, 16, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field disk_fields[] = {
	{ "size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ "root_size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ "data_size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ "esp_size", T_SIZE, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field boot_fields[] = {
	{ "cmdline", T_CMDLINE, NULL, NULL, 0, 4096, NULL, NULL },
	{ "tries", T_INT, NULL, NULL, 1, 100, NULL, "a number of tries from 1 to 100" },
	{ "timeout", T_INT, NULL, NULL, 0, 600, NULL, "seconds from 0 to 600" },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const struct field update_fields[] = {
	{ "compatible", T_NAME, NULL, NULL, 0, 0, NULL, NULL },
	{ "lineage", T_NAME, NULL, NULL, 0, 0, NULL, NULL },
	{ "keyring", T_LIST, hostpath_item, NULL, 0, 0, NULL, NULL },
	{ "channel", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "channel_name", T_NAME, NULL, NULL, 0, 0, NULL, NULL },
	{ "schedule", T_STR, NULL, NULL, 0, 0, NULL, NULL },
	{ "health_timeout", T_INT, NULL, NULL, 1, 86400, NULL, "seconds from 1 to 86400" },
	{ "reboot", T_BOOL, NULL, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

static const char *const output_formats[] = { "raw", "qcow2", "vhd", "vmdk", NULL };
static const struct field output_item[] = {
	{ NULL, T_ENUM, NULL, output_formats, 0, 0, NULL, NULL },
};

/* Keys a profile may set: everything but the image's identity and structure. */
#define BODY_FIELDS                                                                                \
	{ "description", T_STR, NULL, NULL, 0, 0, NULL, NULL },                                    \
		{ "variables", T_VARS, NULL, NULL, 0, 0, NULL, NULL },                             \
		{ "base", T_MAP, base_fields, NULL, 0, 0, NULL, NULL },                            \
		{ "packages", T_LIST, pkg_item, NULL, 0, 0, NULL, NULL },                          \
		{ "overlays", T_LIST, overlay_item, NULL, 0, 0, NULL, NULL },                      \
		{ "files", T_LIST, file_item, NULL, 0, 0, NULL, NULL },                            \
		{ "remove", T_LIST, abspath_item, NULL, 0, 0, NULL, NULL },                        \
		{ "services", T_MAP, services_fields, NULL, 0, 0, NULL, NULL },                    \
		{ "users", T_LIST, user_item, NULL, 0, 0, NULL, NULL },                            \
		{ "rootfs", T_MAP, rootfs_fields, NULL, 0, 0, NULL, NULL },                        \
		{ "disk", T_MAP, disk_fields, NULL, 0, 0, NULL, NULL },                            \
		{ "outputs", T_LIST, output_item, NULL, 0, 0, NULL, NULL },                        \
		{ "boot", T_MAP, boot_fields, NULL, 0, 0, NULL, NULL },                            \
		{ "update", T_MAP, update_fields, NULL, 0, 0, NULL, NULL }

static const struct field profile_fields[] = {
	BODY_FIELDS,
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

const struct field schema_top_fields[] = {
	{ "image", T_NAME, NULL, NULL, 0, 0, NULL, NULL },
	{ "version", T_VERSION, NULL, NULL, 0, 0, NULL, NULL },
	{ "include", T_LIST, hostpath_item, NULL, 0, 0, NULL, NULL },
	BODY_FIELDS,
	{ "profiles", T_PROFILES, profile_fields, NULL, 0, 0, NULL, NULL },
	{ NULL, 0, NULL, NULL, 0, 0, NULL, NULL },
};

const struct field schema_top = { NULL, T_MAP, schema_top_fields, NULL, 0, 0, NULL, NULL };

const struct field *schema_field_find(const struct field *fields, const char *key)
{
	for (; fields && fields->key; fields++)
		if (!strcmp(fields->key, key))
			return fields;
	return NULL;
}

static const char *field_suggest(const struct field *fields, const char *key)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX;

	for (; fields && fields->key; fields++) {
		size_t dist = str_distance(key, fields->key);
		if (dist < best_d) {
			best_d = dist;
			best = fields->key;
		}
	}
	if (best && (best_d <= 2 || (best_d <= 3 && strlen(key) >= 8)))
		return best;
	return NULL;
}

bool schema_looks_like_recipe(const struct ynode *root)
{
	size_t i;

	if (!root->n)
		return true;
	for (i = 0; i < root->n; i++)
		if (schema_field_find(schema_top_fields, root->k[i]) ||
		    field_suggest(schema_top_fields, root->k[i]))
			return true;
	return false;
}

static const char *type_name(const struct field *f)
{
	switch (f->type) {
	case T_LIST: return "a list";
	case T_MAP: case T_VARS: case T_PROFILES: return "a map";
	case T_OVERLAY: return "a path or a map";
	case T_INT: return "a number";
	case T_BOOL: return "true or false";
	default: return "a scalar";
	}
}

/* ------------------------------------------------------------------------ */
/* value checks */

static bool valid_name(const char *s, size_t max)
{
	size_t i, n = strlen(s);

	if (!n || n > max || !isalnum((unsigned char)s[0]))
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			return false;
	return true;
}

static bool valid_pkg(const char *s)
{
	size_t i, n = strlen(s);

	/* name[:arch][=version], as apt takes them */
	if (n < 2 || n > 200 || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!islower(c) && !isdigit(c) && !strchr("+-.:=~", c))
			return false;
	}
	return true;
}

static bool valid_version(const char *s)
{
	size_t n = strlen(s);

	return n && n <= 64 && isalnum((unsigned char)s[0]) &&
	       strspn(s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+~_-") == n;
}

static bool valid_user(const char *s, size_t n)
{
	size_t i;

	if (!n || n > 32)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && !strchr("_-.", c) && !(c == '$' && i == n - 1))
			return false;
	}
	return true;
}

static bool parse_mode(const char *s, unsigned *ret)
{
	size_t i, n = strlen(s);
	unsigned v = 0;

	if (n < 3 || n > 5)
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return false;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	if (v > 07777)
		return false;
	*ret = v;
	return true;
}

bool schema_parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "True", "Yes", "On", "TRUE" };
	static const char *const no[] = { "false", "no", "off", "False", "No", "Off", "FALSE" };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcmp(s, yes[i])) {
			*ret = true;
			return true;
		}
		if (!strcmp(s, no[i])) {
			*ret = false;
			return true;
		}
	}
	return false;
}

bool schema_parse_long(const char *s, long *ret)
{
	char *end;
	long v;

	if (!*s || isspace((unsigned char)*s))
		return false;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return false;
	*ret = v;
	return true;
}

/*
 * systemd's unit name grammar (unit_name_is_valid()): PREFIX[@[INSTANCE]].TYPE
 * of [a-zA-Z0-9:_.\\-] with at most one '@', a known type, at most 255
 * bytes. Recipes may leave out ".service", as systemctl does. A name that
 * passes cannot leave /etc/systemd/system when joined to it.
 */
bool recipe_unit_name_valid(const char *s)
{
	static const char *const types[] = { "service", "socket", "target",	"device",
					      "mount",	 "automount", "swap", "timer",
					      "path",	 "slice",     "scope" };
	_cleanup_free_ char *full = NULL;
	const char *dot, *at;
	size_t i, n = strlen(s);
	bool typed = false;

	if (!n || n > 255)
		return false;
	dot = strrchr(s, '.');
	for (i = 0; dot && i < ARRAY_SIZE(types); i++)
		typed |= !strcmp(dot + 1, types[i]);
	if (!typed) {
		if (dot)
			return false;
		full = xasprintf("%s.service", s);
		return recipe_unit_name_valid(full);
	}
	if (dot == s)
		return false;
	for (i = 0; i < (size_t)(dot - s); i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(":_.\\-@", s[i]))
			return false;
	at = strchr(s, '@');
	if (at && (at == s || at > dot || memchr(at + 1, '@', (size_t)(dot - at - 1))))
		return false;
	return true;
}

bool recipe_var_name_valid(const char *name)
{
	return schema_valid_var_name(name);
}

bool recipe_cmdline_valid(const char *s)
{
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != ' ' && !strchr(CMDLINE_PUNCT, *s))
			return false;
	return true;
}

/*
 * Debian's adduser rule for names (NAME_REGEX and SYS_NAME_REGEX,
 * "^[a-z_][-a-z0-9_]*$"), at most 32 bytes as useradd allows: a name that
 * passes can be a file name under /etc/sudoers.d (sudo skips names with a
 * '.') and under /etc/ssh/authorized_keys.d, and a field of /etc/passwd.
 */
bool recipe_account_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 32 || !(islower((unsigned char)s[0]) || s[0] == '_'))
		return false;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/*
 * One OpenSSH public key as authorized_keys(5) holds it, without options:
 * "TYPE BASE64 [COMMENT]". The base64 must decode to a key blob whose first
 * string is TYPE again, as sshd checks: a truncated or pasted-wrong key is
 * found at check time, not at the first failed login. NULL when valid, else
 * why not.
 */
const char *recipe_ssh_key_valid(const char *s)
{
	static const char *const types[] = { "ssh-ed25519",
					      "ssh-rsa",
					      "ecdsa-sha2-nistp256",
					      "ecdsa-sha2-nistp384",
					      "ecdsa-sha2-nistp521",
					      "sk-ssh-ed25519@openssh.com",
					      "sk-ecdsa-sha2-nistp256@openssh.com" };
	_cleanup_free_ char *type = NULL, *b64 = NULL;
	_cleanup_free_ uint8_t *blob = NULL;
	const char *p = s, *sp;
	size_t i, len, tlen;
	bool known = false;

	for (p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "a key is one line of printable characters";
	if (strlen(s) > 16384)
		return "longer than 16384 characters";
	sp = strchr(s, ' ');
	if (!sp)
		return "expected 'TYPE BASE64 [COMMENT]', like 'ssh-ed25519 AAAAC3Nza... user@host'";
	type = xstrndup(s, (size_t)(sp - s));
	for (i = 0; i < ARRAY_SIZE(types); i++)
		known |= !strcmp(type, types[i]);
	if (!known)
		return "unknown key type (expected ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 "
		       "or an sk- key; options before the type are not supported)";
	p = sp + 1;
	sp = p + strcspn(p, " ");
	b64 = xstrndup(p, (size_t)(sp - p));
	if (base64_decode(b64, &blob, &len) < 0)
		return "the key data is not valid base64";
	tlen = strlen(type);
	if (len < 4 + tlen || blob[0] || blob[1] || blob[2] != (tlen >> 8 & 0xff) ||
	    blob[3] != (tlen & 0xff) || memcmp(blob + 4, type, tlen))
		return "the key data does not hold a key of the type named before it";
	return NULL;
}

/* Check a scalar's value against its type. Adds a diagnostic and returns false if bad. */
static bool check_value(const struct field *f, const char *name, const struct ynode *n,
			struct diags *d)
{
	const char *s = n->str;
	char ex[RECIPE_EXCERPT_SIZE];
	const char *q = recipe_excerpt(s, ex); /* s as messages show it */
	uint64_t size;
	unsigned mode;
	long l;
	bool b;
	const char *const *c;

	switch (f->type) {
	case T_STR:
		if (f->max && strlen(s) > (size_t)f->max) {
			diags_add(d, &n->pos, "'%s' is longer than %ld characters", name, f->max);
			return false;
		}
		return true;
	case T_NAME:
		if (valid_name(s, 64))
			return true;
		diags_add(d, &n->pos,
			  "invalid %s '%s': use letters, digits, '.', '_' and '-' (at most 64)", name,
			  q);
		return false;
	case T_VERSION:
		if (valid_version(s))
			return true;
		diags_add(d, &n->pos, "invalid version '%s': use letters, digits and '.+~_-'", q);
		return false;
	case T_INT:
		if (!schema_parse_long(s, &l) || l < f->min || l > f->max) {
			diags_add(d, &n->pos, "invalid %s '%s': expected %s", name, q,
				  f->help ? f->help : "a number");
			return false;
		}
		return true;
	case T_BOOL:
		if (schema_parse_bool(s, &b))
			return true;
		diags_add(d, &n->pos, "invalid %s '%s': expected true or false", name, q);
		return false;
	case T_SIZE_AUTO:
		if (!strcmp(s, "auto"))
			return true;
		/* fall through */
	case T_SIZE:
		if (parse_size(s, &size) == 0 && size > 0)
			return true;
		diags_add(d, &n->pos, "invalid size '%s' for %s: use a number with K, M, G or T%s",
			  q, name, f->type == T_SIZE_AUTO ? ", or auto" : " (like 512M or 4G)");
		return false;
	case T_MODE:
		if (parse_mode(s, &mode))
			return true;
		diags_add(d, &n->pos, "invalid mode '%s': expected octal permission bits like 0644",
			  q);
		return false;
	case T_OWNER: {
		const char *colon = strchr(s, ':');
		size_t ul = colon ? (size_t)(colon - s) : strlen(s);
		if (valid_user(s, ul) && (!colon || valid_user(colon + 1, strlen(colon + 1))))
			return true;
		diags_add(d, &n->pos, "invalid owner '%s': expected user:group (names or numbers)",
			  q);
		return false;
	}
	case T_ABSPATH:
		if (s[0] == '/' && !strstr(s, "/../") && !str_endswith(s, "/..") &&
		    strlen(s) < 4096)
			return true;
		diags_add(d, &n->pos,
			  "invalid path '%s' for %s: expected an absolute path inside the image, "
			  "without '..'",
			  q, name);
		return false;
	case T_HOSTPATH:
	case T_SOURCE:
		if (*s && strlen(s) < 4096)
			return true;
		diags_add(d, &n->pos, "empty path for %s", name);
		return false;
	case T_PKG:
		if (valid_pkg(s))
			return true;
		diags_add(d, &n->pos,
			  "invalid package name '%s': Debian package names use lowercase letters, "
			  "digits and '+-.'",
			  q);
		return false;
	case T_UNIT:
		if (recipe_unit_name_valid(s))
			return true;
		diags_add(d, &n->pos,
			  "invalid unit name '%s': expected NAME.TYPE (like nginx.service or "
			  "getty@tty1.service) with letters, digits and ':_.\\-', at most 255",
			  q);
		return false;
	case T_CMDLINE:
		if (recipe_cmdline_valid(s) && strlen(s) <= (size_t)f->max)
			return true;
		diags_add(d, &n->pos,
			  "invalid kernel command line '%s': use letters, digits, spaces and "
			  "'%s' (at most %ld characters; it is written into grub.cfg)",
			  q, CMDLINE_PUNCT, f->max);
		return false;
	case T_ENUM:
		for (c = f->choices; *c; c++)
			if (!strcmp(*c, s))
				return true;
		{
			struct strbuf sb = STRBUF_INIT;
			for (c = f->choices; *c; c++)
				strbuf_addf(&sb, "%s%s", c == f->choices ? "" : ", ", *c);
			diags_add(d, &n->pos, "invalid %s '%s': expected one of %s", name, q,
				  sb.buf);
			strbuf_release(&sb);
		}
		return false;
	case T_SHA256:
		if (is_sha256_hex(s))
			return true;
		diags_add(d, &n->pos, "invalid sha256 '%s': expected 64 hex digits", q);
		return false;
	case T_ACCOUNT:
		if (recipe_account_name_valid(s))
			return true;
		diags_add(d, &n->pos,
			  "invalid %s '%s': a user or group name starts with a lowercase letter "
			  "or '_', then lowercase letters, digits, '_' and '-' (at most 32)",
			  !strcmp(name, "name") ? "user name" : "group name", q);
		return false;
	case T_SSHKEY: {
		const char *why = recipe_ssh_key_valid(s);
		if (!why)
			return true;
		diags_add(d, &n->pos, "invalid SSH public key '%s': %s", q, why);
		return false;
	}
	case T_SUDO:
		if (!strcmp(s, "nopasswd") || (schema_parse_bool(s, &b) && !b))
			return true;
		if (schema_parse_bool(s, &b))
			diags_add(d, &n->pos,
				  "sudo: %s would ask for a password, and the accounts imgforge "
				  "makes have none (key-only logins): write 'sudo: nopasswd'",
				  q);
		else
			diags_add(d, &n->pos, "invalid sudo '%s': expected nopasswd or false", q);
		return false;
	default:
		return true;
	}
}

/* ------------------------------------------------------------------------ */
/* validation: structure (per file) and values */

bool schema_valid_var_name(const char *s)
{
	size_t i;

	if (!s[0] || (!isalpha((unsigned char)s[0]) && s[0] != '_'))
		return false;
	for (i = 0; s[i]; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return false;
	return i <= 64;
}

static void validate_map(struct vctx *v, const struct field *fields, const char *name,
			 struct ynode *n)
{
	char ex[RECIPE_EXCERPT_SIZE];
	size_t i;

	for (i = 0; i < n->n; i++) {
		const struct field *sub = schema_field_find(fields, n->k[i]);
		if (!sub) {
			const char *hint = field_suggest(fields, n->k[i]);
			if (v->mode == V_VALUES)
				continue;
			if (hint)
				diags_add(v->d, &n->kpos[i],
					  "unknown key '%s'%s%s (did you mean '%s'?)",
					  recipe_excerpt(n->k[i], ex),
					  name ? " in " : "", name ? name : "", hint);
			else
				diags_add(v->d, &n->kpos[i], "unknown key '%s'%s%s",
					  recipe_excerpt(n->k[i], ex),
					  name ? " in " : "", name ? name : "");
			continue;
		}
		schema_validate(v, sub, sub->key, n->v[i]);
	}
}

static void set_abspath(struct vctx *v, struct ynode *n)
{
	if (!v->dir || n->had_var)
		return;
	free(n->abspath);
	if (n->str[0] == '/')
		n->abspath = xstrdup(n->str);
	else
		n->abspath = path_join(v->dir, n->str);
}

void schema_validate(struct vctx *v, const struct field *f, const char *name, struct ynode *n)
{
	char ex[RECIPE_EXCERPT_SIZE];
	size_t i;

	/* An empty value (`key:` with nothing) means an empty list or map. */
	if (ynode_is_null(n) && (f->type == T_LIST || f->type == T_MAP || f->type == T_VARS ||
				 f->type == T_PROFILES)) {
		free(n->str);
		n->str = NULL;
		n->kind = f->type == T_LIST ? YNODE_SEQ : YNODE_MAP;
		return;
	}

	switch (f->type) {
	case T_LIST:
		if (n->kind != YNODE_SEQ) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'%s' must be a list, not %s", name,
					  ynode_kind_name(n));
			return;
		}
		for (i = 0; i < n->n; i++)
			schema_validate(v, &f->sub[0], name, n->v[i]);
		return;
	case T_MAP:
		if (n->kind != YNODE_MAP) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'%s' must be a map, not %s",
					  name ? name : "a recipe", ynode_kind_name(n));
			return;
		}
		validate_map(v, f->sub, name, n);
		return;
	case T_VARS:
		if (n->kind != YNODE_MAP) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'variables' must be a map, not %s",
					  ynode_kind_name(n));
			return;
		}
		if (v->mode != V_STRUCTURE)
			return;
		for (i = 0; i < n->n; i++) {
			if (!schema_valid_var_name(n->k[i]))
				diags_add(v->d, &n->kpos[i],
					  "invalid variable name '%s': use letters, digits and '_'",
					  n->k[i]);
			if (n->v[i]->kind != YNODE_SCALAR)
				diags_add(v->d, &n->v[i]->pos,
					  "variable '%s' must be a scalar, not %s", n->k[i],
					  ynode_kind_name(n->v[i]));
		}
		return;
	case T_PROFILES:
		if (n->kind != YNODE_MAP) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos, "'profiles' must be a map, not %s",
					  ynode_kind_name(n));
			return;
		}
		for (i = 0; i < n->n; i++) {
			if (v->mode == V_STRUCTURE && !valid_name(n->k[i], 64))
				diags_add(v->d, &n->kpos[i], "invalid profile name '%s'",
					  recipe_excerpt(n->k[i], ex));
			if (ynode_is_null(n->v[i])) {
				free(n->v[i]->str);
				n->v[i]->str = NULL;
				n->v[i]->kind = YNODE_MAP;
			}
			if (n->v[i]->kind != YNODE_MAP) {
				if (v->mode == V_STRUCTURE)
					diags_add(v->d, &n->v[i]->pos,
						  "profile '%s' must be a map, not %s", n->k[i],
						  ynode_kind_name(n->v[i]));
				continue;
			}
			validate_map(v, f->sub, "a profile", n->v[i]);
		}
		return;
	case T_OVERLAY:
		if (n->kind == YNODE_MAP) {
			validate_map(v, f->sub, "an overlay", n);
			if (v->mode == V_STRUCTURE && !ynode_map_get(n, "source"))
				diags_add(v->d, &n->pos, "overlay needs 'source:' (a directory)");
			return;
		}
		if (n->kind != YNODE_SCALAR) {
			if (v->mode == V_STRUCTURE)
				diags_add(v->d, &n->pos,
					  "an overlay is a directory path or a map, not %s",
					  ynode_kind_name(n));
			return;
		}
		{
			static const struct field hp = { NULL, T_HOSTPATH, NULL, NULL, 0, 0, NULL, NULL };
			schema_validate(v, &hp, "overlay", n);
		}
		return;
	default:
		break;
	}

	/* Scalars. */
	if (n->kind != YNODE_SCALAR) {
		if (v->mode == V_STRUCTURE)
			diags_add(v->d, &n->pos, "'%s' must be %s, not %s", name ? name : "value",
				  type_name(f), ynode_kind_name(n));
		return;
	}
	if (v->mode == V_STRUCTURE) {
		if (strstr(n->str, "${")) {
			n->had_var = true;
			return; /* checked after substitution */
		}
		check_value(f, name ? name : "value", n, v->d);
		if (f->type == T_HOSTPATH || (f->type == T_SOURCE && !strstr(n->str, "://")))
			set_abspath(v, n);
	} else if (n->had_var) {
		check_value(f, name ? name : "value", n, v->d);
	}
}
