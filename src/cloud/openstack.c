/* SPDX-License-Identifier: MIT */
/* Publishing to openstack: not written yet (see docs/publish.md). */
#include <errno.h>

#include "cloud/cloud.h"

int cloud_publish_openstack(const struct cloud_image *img, struct cloud_result *res, struct strbuf *err)
{
	(void)img;
	(void)res;
	strbuf_addstr(err, "publishing to openstack is not available in this version of imgforge");
	return -EOPNOTSUPP;
}
