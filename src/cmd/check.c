/* SPDX-License-Identifier: MIT */
/* imgforge check: validate an image definition and everything it includes. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "recipe/recipe.h"
#include "core/util.h"

static const char check_usage[] =
	"usage: imgforge check IMAGE.yaml [--profile P] [--set NAME=VALUE]... [--mirror URL]\n"
	"                      [--json]\n"
	"\n"
	"Load IMAGE.yaml with its includes, apply the profile and variables, and\n"
	"check every key and value. Prints every problem found as FILE:LINE:COL and\n"
	"exits 1 if there is any, 0 if the image definition is valid.\n"
	"\n"
	"   --profile P        apply profile P from the file's profiles: map\n"
	"   --set NAME=VALUE   set a variable (wins over the recipe's variables:)\n"
	"   --mirror URL       shorthand for --set mirror=URL\n"
	"   --json             print the problems on stdout as a JSON array of\n"
	"                      {file, line, column, severity, message}\n"
	"\n"
	"The variable 'mirror' defaults to $IMGFORGE_MIRROR when the recipe sets none.\n";

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
	int ret = 0;

	if (recipe_cmd_parse("check", check_usage, argc, argv, &a, NULL, NULL, &ret) < 0)
		goto out;
	if (a.json) {
		ret = check_json(&a);
		goto out;
	}
	if (recipe_args_load(&a, &r) < 0) {
		ret = 1;
		goto out;
	}
	info("%s: ok (image %s %s, profile %s)", a.image, recipe_get_str(r, "image", "?"),
	     recipe_get_str(r, "version", "?"), r->profile);
out:
	recipe_free(r);
	recipe_args_release(&a);
	return ret;
}
