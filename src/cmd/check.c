/* SPDX-License-Identifier: MIT */
/* imgforge check: validate an image definition and everything it includes. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "recipe/recipe.h"
#include "core/util.h"

static const char check_usage[] =
	"usage: imgforge check IMAGE.yaml [--profile P] [--set NAME=VALUE]... [--mirror URL]\n"
	"\n"
	"Load IMAGE.yaml with its includes, apply the profile and variables, and\n"
	"check every key and value. Prints every problem found as FILE:LINE:COL and\n"
	"exits 1 if there is any, 0 if the image definition is valid.\n";

int cmd_check(int argc, char **argv)
{
	struct recipe_args a = { 0 };
	struct recipe *r = NULL;
	const struct opt opts[] = {
		RECIPE_OPTIONS(&a),
		/* Taken for symmetry with plan and build; check prints no data. */
		OPT_FLAG(0, "json", &a.json, NULL),
		OPT_END(),
	};
	const struct opt_cmd cmd = { .name = "check", .usage = check_usage, .opts = opts };
	int ret;

	ret = recipe_cmd_load(&cmd, argc, argv, &a, &r, NULL);
	if (ret >= 0)
		goto out;
	ret = 0;
	info("%s: ok (image %s %s, profile %s)", a.image, recipe_get_str(r, "image", "?"),
	     recipe_get_str(r, "version", "?"), r->profile);
out:
	recipe_free(r);
	recipe_args_release(&a);
	return ret;
}
