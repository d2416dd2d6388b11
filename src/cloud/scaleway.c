/* SPDX-License-Identifier: MIT */
/* Publishing to scaleway: not written yet (see docs/publish.md). */
#include <errno.h>

#include "cloud/cloud.h"

int cloud_publish_scaleway(const struct cloud_image *img, struct cloud_result *res, struct strbuf *err)
{
	(void)img;
	(void)res;
	strbuf_addstr(err, "publishing to scaleway is not available in this version of imgforge");
	return -EOPNOTSUPP;
}
