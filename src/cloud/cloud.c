/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "cloud/cloud.h"

void cloud_result_release(struct cloud_result *res)
{
	free(res->target);
	free(res->region);
	free(res->image_id);
	free(res->location);
	*res = (struct cloud_result){ 0 };
}
