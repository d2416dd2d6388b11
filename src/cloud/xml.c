/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cloud/xml.h"
#include "core/util.h"

struct xml_span xml_span_of(const char *s)
{
	return (struct xml_span){s ? s : "", s ? strlen(s) : 0};
}

int xml_element(struct xml_span in, const char *tag, struct xml_span *ret, struct xml_span *rest)
{
	size_t tl = strlen(tag);
	const char *p = in.p, *end = in.p + in.len;

	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		const char *gt, *close;
		struct strbuf ct = STRBUF_INIT;
		size_t left;

		if (!lt || (size_t)(end - lt) < tl + 2)
			return 0;
		p = lt + 1;
		if (memcmp(p, tag, tl) || (p[tl] != '>' && p[tl] != ' ' && p[tl] != '/'))
			continue;
		gt = memchr(p, '>', (size_t)(end - p));
		if (!gt)
			return 0;
		if (gt[-1] == '/') { /* <Tag/>: empty */
			*ret = (struct xml_span){gt, 0};
			if (rest)
				*rest = (struct xml_span){gt + 1, (size_t)(end - gt - 1)};
			return 1;
		}
		strbuf_addf(&ct, "</%s>", tag);
		left = (size_t)(end - gt - 1);
		close = memmem(gt + 1, left, ct.buf, ct.len);
		if (!close) {
			strbuf_release(&ct);
			return 0;
		}
		*ret = (struct xml_span){gt + 1, (size_t)(close - gt - 1)};
		if (rest)
			*rest = (struct xml_span){close + ct.len, (size_t)(end - close - ct.len)};
		strbuf_release(&ct);
		return 1;
	}
	return 0;
}

static void add_utf8(struct strbuf *sb, unsigned long c)
{
	if (c < 0x80) {
		strbuf_addch(sb, (char)c);
	} else if (c < 0x800) {
		strbuf_addch(sb, (char)(0xc0 | (c >> 6)));
		strbuf_addch(sb, (char)(0x80 | (c & 0x3f)));
	} else if (c < 0x10000) {
		strbuf_addch(sb, (char)(0xe0 | (c >> 12)));
		strbuf_addch(sb, (char)(0x80 | ((c >> 6) & 0x3f)));
		strbuf_addch(sb, (char)(0x80 | (c & 0x3f)));
	} else if (c < 0x110000) {
		strbuf_addch(sb, (char)(0xf0 | (c >> 18)));
		strbuf_addch(sb, (char)(0x80 | ((c >> 12) & 0x3f)));
		strbuf_addch(sb, (char)(0x80 | ((c >> 6) & 0x3f)));
		strbuf_addch(sb, (char)(0x80 | (c & 0x3f)));
	}
}

char *xml_text(struct xml_span in, const char *tag)
{
	static const struct {
		const char *name;
		char c;
	} ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
	struct xml_span t;
	struct strbuf sb = STRBUF_INIT;
	size_t i, k;

	if (!xml_element(in, tag, &t, NULL))
		return NULL;
	for (i = 0; i < t.len; i++) {
		const char *p = t.p + i;
		size_t left = t.len - i - 1;
		bool done = false;

		if (*p != '&') {
			strbuf_addch(&sb, *p);
			continue;
		}
		for (k = 0; k < ARRAY_SIZE(ents) && !done; k++)
			if (left >= strlen(ents[k].name) &&
			    !memcmp(p + 1, ents[k].name, strlen(ents[k].name))) {
				strbuf_addch(&sb, ents[k].c);
				i += strlen(ents[k].name);
				done = true;
			}
		if (!done && left >= 3 && p[1] == '#') {
			char *e = NULL;
			unsigned long c =
				p[2] == 'x' ? strtoul(p + 3, &e, 16) : strtoul(p + 2, &e, 10);

			if (e && *e == ';' && (size_t)(e - p) <= left) {
				add_utf8(&sb, c);
				i += (size_t)(e - p);
				done = true;
			}
		}
		if (!done)
			strbuf_addch(&sb, '&');
	}
	return strbuf_detach(&sb);
}
