/* SPDX-License-Identifier: MIT */
/*
 * The channel index (channel.h): read with the strict JSON reader, every
 * entry checked as the manifest's fields are, written back with the compact
 * writer. Its signature is sign.c's business, and the caller's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "update/channel.h"
#include "update/jsonr.h"
#include "update/manifest.h"

#define CHANNEL_FORMAT	1
#define CHANNEL_MAX_URL 2048

int channel_name_valid(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= 64 && name[0] != '.' &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
		       n;
}

void channel_entry_release(struct channel_entry *e)
{
	if (!e)
		return;
	free(e->compatible);
	free(e->version);
	free(e->url);
	memset(e, 0, sizeof(*e));
}

/* One entry of "channels", all five keys and nothing else. */
static int entry_parse(const char *name, const struct jsonr_value *v, struct channel_entry *ret,
		       char *err, size_t errlen)
{
	static const char *const keys[] = {"compatible", "version", "url", "sha256", "size"};
	const struct jsonr_value *f[ARRAY_SIZE(keys)];
	struct channel_entry e = {0};
	uint32_t i;
	size_t k;

	if (v->type != JSONR_OBJECT)
		goto bad;
	for (i = 0; i < v->n; i++) {
		for (k = 0; k < ARRAY_SIZE(keys); k++)
			if (!strcmp(v->members[i].key, keys[k]))
				break;
		if (k == ARRAY_SIZE(keys)) {
			snprintf(err, errlen,
				 "invalid channel index at byte %" PRIu32
				 ": unknown key \"%.64s\" in channel '%s'",
				 v->members[i].value.pos, v->members[i].key, name);
			return -EINVAL;
		}
	}
	for (k = 0; k < ARRAY_SIZE(keys); k++)
		if (!(f[k] = jsonr_get(v, keys[k])))
			goto bad;
	if (f[0]->type != JSONR_STRING || !manifest_name_valid(f[0]->s) ||
	    f[1]->type != JSONR_STRING || !manifest_name_valid(f[1]->s) ||
	    f[2]->type != JSONR_STRING || f[2]->n == 0 || f[2]->n > CHANNEL_MAX_URL ||
	    f[3]->type != JSONR_STRING || f[3]->n != 64 || f[4]->type != JSONR_UINT)
		goto bad;
	for (i = 0; i < f[2]->n; i++)
		if ((unsigned char)f[2]->s[i] <= 0x20 || (unsigned char)f[2]->s[i] >= 0x7f)
			goto bad;
	if (hex_decode(f[3]->s, e.sha256, sizeof(e.sha256)) < 0)
		goto bad;
	e.compatible = xstrdup(f[0]->s);
	e.version = xstrdup(f[1]->s);
	e.url = xstrdup(f[2]->s);
	e.size = f[4]->u;
	*ret = e;
	return 0;
bad:
	snprintf(err, errlen,
		 "invalid channel index at byte %" PRIu32 ": channel '%s' must be "
		 "{\"compatible\",\"version\",\"url\",\"sha256\",\"size\"} with a name, a version, "
		 "a URL (printable ASCII), 64 lowercase hex digits and a number",
		 v->pos, name);
	return -EINVAL;
}

/* The "channels" object of a whole index, every entry checked. */
static int index_parse(const char *json, size_t len, struct jsonr **ret_doc,
		       const struct jsonr_value **ret_channels, char *err, size_t errlen)
{
	const struct jsonr_value *format, *channels;
	struct jsonr *doc = NULL;
	char jerr[256];
	uint32_t i;
	int r;

	r = jsonr_parse(json, len, &doc, jerr, sizeof(jerr));
	if (r < 0) {
		snprintf(err, errlen, "invalid channel index: %s", jerr);
		return -EINVAL;
	}
	format = jsonr_get(&doc->root, "format");
	channels = jsonr_get(&doc->root, "channels");
	if (doc->root.type != JSONR_OBJECT || doc->root.n != 2 || !format || !channels ||
	    format->type != JSONR_UINT || channels->type != JSONR_OBJECT) {
		snprintf(err, errlen,
			 "invalid channel index: it must be {\"format\":%d,"
			 "\"channels\":{...}} and nothing else",
			 CHANNEL_FORMAT);
		goto fail;
	}
	if (format->u != CHANNEL_FORMAT) {
		snprintf(err, errlen,
			 "channel index format %" PRIu64 " is not supported (this "
			 "imgforge reads format %d); update imgforge",
			 format->u, CHANNEL_FORMAT);
		goto fail;
	}
	for (i = 0; i < channels->n; i++) {
		struct channel_entry e;

		if (!channel_name_valid(channels->members[i].key)) {
			snprintf(err, errlen,
				 "invalid channel index at byte %" PRIu32
				 ": bad channel name \"%.64s\"",
				 channels->members[i].value.pos, channels->members[i].key);
			goto fail;
		}
		if (entry_parse(channels->members[i].key, &channels->members[i].value, &e, err,
				errlen) < 0)
			goto fail;
		channel_entry_release(&e);
	}
	*ret_doc = doc;
	*ret_channels = channels;
	return 0;
fail:
	jsonr_free(doc);
	return -EINVAL;
}

int channel_parse(const char *json, size_t len, const char *channel, struct channel_entry *ret,
		  char *err, size_t errlen)
{
	const struct jsonr_value *channels, *v;
	struct jsonr *doc = NULL;
	int r;

	r = index_parse(json, len, &doc, &channels, err, errlen);
	if (r < 0)
		return r;
	v = jsonr_get(channels, channel);
	if (!v) {
		snprintf(err, errlen, "the channel index has no channel '%s'", quote_path(channel));
		r = -ENOENT;
	} else {
		r = entry_parse(channel, v, ret, err, errlen);
	}
	jsonr_free(doc);
	return r;
}

static void entry_write(struct json *j, const char *name, const struct channel_entry *e)
{
	char hex[SHA256_HEX_LEN];

	hex_encode(e->sha256, 32, hex);
	json_key(j, name);
	json_begin_object(j);
	json_kv_string(j, "compatible", e->compatible);
	json_kv_string(j, "version", e->version);
	json_kv_string(j, "url", e->url);
	json_kv_string(j, "sha256", hex);
	json_kv_uint(j, "size", e->size);
	json_end_object(j);
}

int channel_update(const char *old, size_t old_len, const char *channel,
		   const struct channel_entry *e, struct strbuf *out, char *err, size_t errlen)
{
	const struct jsonr_value *channels = NULL;
	struct jsonr *doc = NULL;
	bool done = false;
	struct json j;
	uint32_t i;
	int r;

	if (!channel_name_valid(channel)) {
		snprintf(err, errlen,
			 "bad channel name '%s': 1 to 64 characters of A-Z a-z 0-9 . _ -",
			 quote_path(channel));
		return -EINVAL;
	}
	if (old) {
		r = index_parse(old, old_len, &doc, &channels, err, errlen);
		if (r < 0)
			return r;
	}
	json_init(&j, out, false);
	json_begin_object(&j);
	json_kv_uint(&j, "format", CHANNEL_FORMAT);
	json_key(&j, "channels");
	json_begin_object(&j);
	for (i = 0; channels && i < channels->n; i++) {
		struct channel_entry cur;
		const char *name = channels->members[i].key;

		if (!strcmp(name, channel)) {
			entry_write(&j, channel, e);
			done = true;
			continue;
		}
		/* Checked by index_parse(): cannot fail. */
		if (entry_parse(name, &channels->members[i].value, &cur, err, errlen) == 0) {
			entry_write(&j, name, &cur);
			channel_entry_release(&cur);
		}
	}
	if (!done)
		entry_write(&j, channel, e);
	json_end_object(&j);
	json_end_object(&j);
	jsonr_free(doc);
	return 0;
}
