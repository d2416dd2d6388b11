/* SPDX-License-Identifier: MIT */
/* XML answers of S3 and EC2 read with libxml2 (see xml.h). */
#include <limits.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "cloud/xml.h"

struct xml_doc *xml_parse(const char *buf, size_t len)
{
	xmlDocPtr doc;

	if (!buf || !len || len > INT_MAX)
		return NULL;
	/* No network, no entity substitution, no DTD loading, no messages on stderr. */
	doc = xmlReadMemory(buf, (int)len, "answer.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (doc && !xmlDocGetRootElement(doc)) {
		xmlFreeDoc(doc);
		doc = NULL;
	}
	return (struct xml_doc *)doc;
}

void xml_free(struct xml_doc *d)
{
	if (d)
		xmlFreeDoc((xmlDocPtr)d);
}

void xml_freep(struct xml_doc **d)
{
	xml_free(*d);
}

const struct xml_node *xml_root(const struct xml_doc *d)
{
	return (const struct xml_node *)xmlDocGetRootElement((xmlDocPtr)d);
}

static bool is_element(const xmlNode *n, const char *tag)
{
	return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, tag);
}

/* The node after n in document order, not descending into n when skip_children; stops at top. */
static const xmlNode *following(const xmlNode *n, const xmlNode *top, bool skip_children)
{
	if (!skip_children && n->children)
		return n->children;
	while (n && n != top) {
		if (n->next)
			return n->next;
		n = n->parent;
	}
	return NULL;
}

bool xml_is(const struct xml_node *n, const char *tag)
{
	return n && is_element((const xmlNode *)n, tag);
}

const struct xml_node *xml_next(const struct xml_node *under, const char *tag,
				const struct xml_node *after)
{
	const xmlNode *top = (const xmlNode *)under, *n;

	if (!top)
		return NULL;
	n = after ? following((const xmlNode *)after, top, true) : top->children;
	for (; n; n = following(n, top, false))
		if (is_element(n, tag))
			return (const struct xml_node *)n;
	return NULL;
}

char *xml_text(const struct xml_node *under, const char *tag)
{
	const xmlNode *n = (const xmlNode *)under;
	xmlChar *c;
	char *s;

	if (!n)
		return NULL;
	if (!is_element(n, tag))
		n = (const xmlNode *)xml_next(under, tag, NULL);
	if (!n)
		return NULL;
	c = xmlNodeGetContent(n);
	s = xstrdup(c ? (const char *)c : "");
	xmlFree(c);
	return s;
}

char *xml_doc_text(const char *buf, size_t len, const char *tag)
{
	_cleanup_xml_ struct xml_doc *d = xml_parse(buf, len);

	return d ? xml_text(xml_root(d), tag) : NULL;
}
