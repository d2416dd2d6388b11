/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CLOUD_XML_H
#define IMGFORGE_CLOUD_XML_H

#include <stddef.h>

#include "core/util.h"

/*
 * Reading the XML answers of S3 and the EC2 Query API with libxml2 (the
 * only file that includes its headers): a document parsed whole, elements
 * found by their local name (the answers put them in a default namespace),
 * their text with entities and character references decoded. The network
 * is never read, no entity is expanded from a DTD, and libxml2 prints
 * nothing: an answer that is not well-formed XML (an empty body, a proxy's
 * HTML page) parses as NULL, and the caller reports the HTTP status.
 */
struct xml_doc;
struct xml_node;

/* The document in buf[0..len), or NULL when it is not well-formed XML. */
struct xml_doc *xml_parse(const char *buf, size_t len);
void xml_free(struct xml_doc *d);
void xml_freep(struct xml_doc **d);
#define _cleanup_xml_ _cleanup_(xml_freep)

/* Whether n is an element named tag. */
bool xml_is(const struct xml_node *n, const char *tag);
/* The root element (never NULL for a parsed document). */
const struct xml_node *xml_root(const struct xml_doc *d);
/*
 * The next element named tag inside under, in document order: the first
 * one when after is NULL, else the first one after the end of after (not
 * inside it). NULL when there is none.
 */
const struct xml_node *xml_next(const struct xml_node *under, const char *tag,
				const struct xml_node *after);
/* The decoded text of the first element tag inside under (or under itself), malloc'd; NULL when none. */
char *xml_text(const struct xml_node *under, const char *tag);
/* xml_text() of the root of buf[0..len); NULL when not XML or no such element. */
char *xml_doc_text(const char *buf, size_t len, const char *tag);

#endif
