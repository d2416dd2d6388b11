/* SPDX-License-Identifier: MIT */
/* cloud/xml.c: element texts of S3 and EC2 answers, entities decoded. */
#include <stdlib.h>
#include <string.h>

#include "cloud/xml.h"
#include "core/util.h"
#include "tap.h"

TEST(test_text_and_entities)
{
	static const char doc[] =
		"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>"
		"<Message>a &lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &#233;&#x41;&zz;</Message>"
		"<CodeX>no</CodeX><Empty/></Error>";
	char *t;

	t = xml_text(xml_span_of(doc), "Code");
	CHECK_STR(t, "SignatureDoesNotMatch");
	free(t);
	t = xml_text(xml_span_of(doc), "Message");
	CHECK_STR(t, "a <b> & \"c\" 'd' \xc3\xa9"
		     "A&zz;");
	free(t);
	t = xml_text(xml_span_of(doc), "Empty");
	CHECK_STR(t, "");
	free(t);
	CHECK(xml_text(xml_span_of(doc), "Missing") == NULL);
	CHECK(xml_text(xml_span_of("<Code>unterminated"), "Code") == NULL);
}

TEST(test_elements_in_turn)
{
	static const char doc[] = "<ListPartsResult><Part><PartNumber>1</PartNumber>"
				  "<ETag>&quot;a&quot;</ETag></Part><Part xmlns=\"x\"><PartNumber>2"
				  "</PartNumber><ETag>\"b\"</ETag></Part></ListPartsResult>";
	struct xml_span rest = xml_span_of(doc), part;
	char *n, *e;
	int i = 0;

	while (xml_element(rest, "Part", &part, &rest)) {
		n = xml_text(part, "PartNumber");
		e = xml_text(part, "ETag");
		CHECK_STR(n, i == 0 ? "1" : "2");
		CHECK_STR(e, i == 0 ? "\"a\"" : "\"b\"");
		free(n);
		free(e);
		i++;
	}
	CHECK_INT(i, 2);
}

int main(void)
{
	RUN(test_text_and_entities);
	RUN(test_elements_in_turn);
	return tap_done();
}
