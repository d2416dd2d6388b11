/* SPDX-License-Identifier: MIT */
/*
 * Owner names resolved through the image's own /etc/passwd and /etc/group.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "fs/tree-internal.h"

static bool parse_u32(const char *s, size_t len, uint32_t *ret)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 10)
		return false;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX - 1) /* (uint32_t)-1 means "no owner" */
		return false;
	*ret = (uint32_t)v;
	return true;
}

/*
 * Find a line in a passwd(5)/group(5) file by field 0 (name) or field 2
 * (number); return fields 2 and 3 of it.
 */
static bool db_find(const char *db, const char *name, size_t name_len, const uint32_t *num,
		    uint32_t *ret_id, uint32_t *ret_group)
{
	const char *line = db;

	while (line && *line) {
		const char *eol = strchrnul(line, '\n');
		const char *f[5] = { line };
		size_t nf = 1;
		const char *p;

		for (p = line; p < eol && nf < 5; p++)
			if (*p == ':')
				f[nf++] = p + 1;
		if (nf >= 3) {
			size_t l0 = (size_t)(f[1] - 1 - f[0]);
			size_t l2 = (size_t)((nf > 3 ? f[3] - 1 : eol) - f[2]);
			size_t l3 = nf > 4 ? (size_t)(f[4] - 1 - f[3]) : nf > 3 ? (size_t)(eol - f[3]) : 0;
			uint32_t id, grp = 0;

			if (parse_u32(f[2], l2, &id) &&
			    ((name && l0 == name_len && !strncmp(f[0], name, name_len)) ||
			     (num && id == *num))) {
				if (nf > 3 && !parse_u32(f[3], l3, &grp))
					grp = id;
				*ret_id = id;
				if (ret_group)
					*ret_group = grp;
				return true;
			}
		}
		line = *eol ? eol + 1 : NULL;
	}
	return false;
}

int tree_resolve_owner(struct tree *t, const char *spec, uint32_t *ret_uid, uint32_t *ret_gid,
		       struct strbuf *err)
{
	_cleanup_free_ char *passwd = NULL, *group = NULL;
	const char *colon = strchr(spec, ':');
	size_t ulen = colon ? (size_t)(colon - spec) : strlen(spec);
	size_t len;
	_cleanup_(strbuf_release) struct strbuf ignored = STRBUF_INIT;
	uint32_t uid, gid, pgid;
	bool have_pgid = false;
	int r;

	if (ulen == 0) {
		strbuf_addf(err, "owner '%s': no user given", quote_path(spec));
		return -EINVAL;
	}
	if (parse_u32(spec, ulen, &uid)) {
		/* only for the primary group: no /etc/passwd is no error */
		r = tree_read_content(t, "etc/passwd", 16 << 20, &passwd, &len, &ignored);
		if (r == 0)
			have_pgid = db_find(passwd, NULL, 0, &uid, &uid, &pgid);
	} else {
		r = tree_read_content(t, "etc/passwd", 16 << 20, &passwd, &len, &ignored);
		if (r < 0) {
			strbuf_addf(err, "owner '%s': the image has no readable /etc/passwd to look "
				    "up '%.*s' in; give a number", quote_path(spec), (int)ulen, spec);
			return r == -ENOENT ? -ESRCH : r;
		}
		if (!db_find(passwd, spec, ulen, NULL, &uid, &pgid)) {
			strbuf_addf(err, "owner '%s': no user '%.*s' in the image's /etc/passwd",
				    quote_path(spec), (int)ulen, spec);
			return -ESRCH;
		}
		have_pgid = true;
	}
	if (!colon || !colon[1]) {
		gid = have_pgid ? pgid : uid;
	} else if (!parse_u32(colon + 1, strlen(colon + 1), &gid)) {
		r = tree_read_content(t, "etc/group", 16 << 20, &group, &len, &ignored);
		if (r < 0) {
			strbuf_addf(err, "owner '%s': the image has no readable /etc/group to look "
				    "up '%s' in; give a number", quote_path(spec), quote_path(colon + 1));
			return r == -ENOENT ? -ESRCH : r;
		}
		if (!db_find(group, colon + 1, strlen(colon + 1), NULL, &gid, NULL)) {
			strbuf_addf(err, "owner '%s': no group '%s' in the image's /etc/group",
				    quote_path(spec), quote_path(colon + 1));
			return -ESRCH;
		}
	}
	*ret_uid = uid;
	*ret_gid = gid;
	return 0;
}
