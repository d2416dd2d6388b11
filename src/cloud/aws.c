/* SPDX-License-Identifier: MIT */
/* Publishing to aws: not written yet (see docs/publish.md). */
#include <errno.h>

#include "cloud/cloud.h"

int cloud_publish_aws(const struct cloud_image *img, struct cloud_result *res, struct strbuf *err)
{
	(void)img;
	(void)res;
	strbuf_addstr(err, "publishing to aws is not available in this version of imgforge");
	return -EOPNOTSUPP;
}
