/* SPDX-License-Identifier: MIT */
/* imgforge plan: print the resolved recipe and the stage cache keys. */
#include <stdio.h>
#include <string.h>

#include "build/keys.h"
#include "cmd/cmd.h"
#include "recipe/recipe.h"
#include "core/util.h"

static const char plan_usage[] =
	"usage: imgforge plan IMAGE.yaml [--profile P] [--set NAME=VALUE]... [--mirror URL]\n"
	"                     [-I DIR]... [--json]\n"
	"\n"
	"Print the fully resolved recipe (after includes, profile and variables) and\n"
	"one content hash per build stage: base, rootfs and disk. `imgforge build`\n"
	"uses these hashes as cache keys. The same inputs give the same output, byte\n"
	"for byte.\n";

int cmd_plan(int argc, char **argv)
{
	struct recipe_args a = { 0 };
	struct recipe *r = NULL;
	struct strbuf out = STRBUF_INIT;
	struct stage_keys keys;
	const struct opt opts[] = {
		RECIPE_OPTIONS(&a),
		OPT_FLAG(0, "json", &a.json, "print JSON instead of YAML"),
		OPT_END(),
	};
	const struct opt_cmd cmd = { .name = "plan", .usage = plan_usage, .opts = opts };
	int ret;

	ret = recipe_cmd_load(&cmd, argc, argv, &a, &r, &keys);
	if (ret >= 0)
		goto out;
	ret = 0;
	if (a.json)
		keys_print_json(r, &keys, &out, true);
	else if (keys_print_yaml(r, &keys, &out) < 0) {
		error("plan: cannot format the recipe as YAML");
		ret = 1;
		goto out;
	}
	fwrite(out.buf, 1, out.len, stdout);
	if (fflush(stdout) != 0) {
		error("plan: cannot write the output");
		ret = 1;
	}
out:
	strbuf_release(&out);
	recipe_free(r);
	recipe_args_release(&a);
	return ret;
}
