/* SPDX-License-Identifier: MIT */
/* cloud/xml.c: element texts of S3 and EC2 answers through libxml2. */
#include <stdlib.h>
#include <string.h>

#include "cloud/xml.h"
#include "core/util.h"
#include "tap.h"

static struct xml_doc *parse(const char *s)
{
	return xml_parse(s, strlen(s));
}

TEST(test_text_and_entities)
{
	static const char doc[] =
		"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
		"<Message>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &#233;&#x41;</Message>"
		"<CodeX>no</CodeX><Empty/></Error>";
	struct xml_doc *d = parse(doc);
	char *t;

	CHECK(d != NULL);
	CHECK(xml_is(xml_root(d), "Error"));
	t = xml_text(xml_root(d), "Code");
	CHECK_STR(t, "SignatureDoesNotMatch");
	free(t);
	t = xml_text(xml_root(d), "Message");
	CHECK_STR(t, "a <b> & \"c\" 'd' \xc3\xa9"
		     "A");
	free(t);
	t = xml_text(xml_root(d), "Empty");
	CHECK_STR(t, "");
	free(t);
	CHECK(xml_text(xml_root(d), "Missing") == NULL);
	xml_free(d);
}

TEST(test_not_xml)
{
	/* A cut answer, a proxy's page, nothing, an undefined entity: no document, and no output. */
	CHECK(parse("<Code>unterminated") == NULL);
	CHECK(parse("<html><body>Bad Gateway</body>") == NULL);
	CHECK(parse("") == NULL);
	CHECK(xml_parse(NULL, 0) == NULL);
	CHECK(parse("<a>&zz;</a>") == NULL);
	CHECK(xml_doc_text("<Code>x", 7, "Code") == NULL);
}

TEST(test_no_external_entities)
{
	/* An external entity is neither read nor expanded. */
	static const char doc[] = "<!DOCTYPE a [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
				  "<a><b>&x;</b></a>";
	struct xml_doc *d = parse(doc);
	char *t = d ? xml_text(xml_root(d), "b") : NULL;

	CHECK(!t || !strstr(t, "root:"));
	free(t);
	xml_free(d);
}

TEST(test_elements_in_turn)
{
	static const char doc[] = "<ListPartsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
				  "<Part><PartNumber>1</PartNumber>"
				  "<ETag>&quot;a&quot;</ETag></Part><Part xmlns=\"x\"><PartNumber>2"
				  "</PartNumber><ETag>\"b\"</ETag></Part>"
				  "<IsTruncated>false</IsTruncated></ListPartsResult>";
	struct xml_doc *d = parse(doc);
	const struct xml_node *part = NULL;
	char *n, *e;
	int i = 0;

	CHECK(d != NULL);
	while ((part = xml_next(xml_root(d), "Part", part))) {
		n = xml_text(part, "PartNumber");
		e = xml_text(part, "ETag");
		CHECK_STR(n, i == 0 ? "1" : "2");
		CHECK_STR(e, i == 0 ? "\"a\"" : "\"b\"");
		free(n);
		free(e);
		i++;
	}
	CHECK_INT(i, 2);
	n = xml_doc_text(doc, sizeof(doc) - 1, "IsTruncated");
	CHECK_STR(n, "false");
	free(n);
	xml_free(d);
}

int main(void)
{
	RUN(test_text_and_entities);
	RUN(test_not_xml);
	RUN(test_no_external_entities);
	RUN(test_elements_in_turn);
	return tap_done();
}
