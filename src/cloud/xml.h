/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CLOUD_XML_H
#define IMGFORGE_CLOUD_XML_H

#include <stddef.h>

/*
 * Reading the small XML answers of S3 and the EC2 Query API: the text of
 * an element found by its name. These documents have no CDATA, comments or
 * namespaces prefixes on the elements read, so a scan for <Name> and
 * </Name> is enough; the five predefined entities and numeric character
 * references are decoded. Not a general XML parser.
 */
struct xml_span {
	const char *p;
	size_t len;
};

/*
 * The first element named tag inside in: *ret its content (between the
 * start and end tags, undecoded). Returns 1, and *rest what follows the end
 * tag (for the next one), or 0 when there is none.
 */
int xml_element(struct xml_span in, const char *tag, struct xml_span *ret, struct xml_span *rest);
/* The decoded text of the first element tag inside in, malloc'd; NULL when none. */
char *xml_text(struct xml_span in, const char *tag);
/* A span of a NUL-terminated string. */
struct xml_span xml_span_of(const char *s);

#endif
