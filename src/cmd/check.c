/* SPDX-License-Identifier: MIT */
/* imgforge check: validate an image definition and everything it includes. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "recipe/recipe.h"
#include "core/util.h"

static const char check_usage[] =
	"usage: imgforge check IMAGE.yaml [--profile P] [--set NAME=VALUE]... [--mirror URL]\n"
	"                      [-I DIR]... [--json]\n"
	"\n"
	"Load IMAGE.yaml with its includes, apply the profile and variables, and\n"
	"check every key and value. Prints every problem found as FILE:LINE:COL and\n"
	"exits 1 if there is any, 0 if the image definition is valid.\n";

/* check --json: every diagnostic, errors and warnings, as one JSON array on stdout. */
static int check_json(struct recipe_args *a)
{
	struct strbuf out = STRBUF_INIT;
	struct diags d = { 0 };
	struct recipe *r = NULL;
	int ret;

	ret = recipe_args_load_diags(a, &r, &d) < 0 ? 1 : 0;
	diags_json(&d, &out); /* pretty: ends with a newline */
	fwrite(out.buf, 1, out.len, stdout);
	if (fflush(stdout) != 0) {
		error("check: cannot write the output");
		ret = 1;
	}
	strbuf_release(&out);
	diags_release(&d);
	recipe_free(r);
	return ret;
}

int cmd_check(int argc, char **argv)
{
	struct recipe_args a = { 0 };
	struct recipe *r = NULL;
	const struct opt opts[] = {
		RECIPE_OPTIONS(&a),
		OPT_FLAG(0, "json", &a.json,
			 "print the problems on stdout as a JSON array of\n"
			 "{file, line, column, severity, message}"),
		OPT_END(),
	};
	const struct opt_cmd cmd = { .name = "check", .usage = check_usage, .opts = opts };
	int ret;

	ret = recipe_cmd_parse(&cmd, argc, argv, &a);
	if (ret >= 0)
		goto out;
	if (a.json) {
		ret = check_json(&a);
		goto out;
	}
	if (recipe_args_load(&a, &r) < 0) {
		ret = 1;
		goto out;
	}
	ret = 0;
	info("%s: ok (image %s %s, profile %s)", a.image, recipe_get_str(r, "image", "?"),
	     recipe_get_str(r, "version", "?"), r->profile);
out:
	recipe_free(r);
	recipe_args_release(&a);
	return ret;
}
