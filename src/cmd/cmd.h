/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CMD_H
#define IMGFORGE_CMD_H

#include <stdbool.h>
#include <stddef.h>

/*
 * One function per command, each in src/cmd-<name>.c. They parse their own
 * options (argv[0] is the command name), log their own errors once, and
 * return the process exit status: 0 success, 1 failure, 2 usage error.
 */
#define EXIT_USAGE 2

struct cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

int cmd_check(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_mkfs(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_show(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_boot(int argc, char **argv);

/*
 * Match the option name at argv[*i] as "--name value" or "--name=value":
 * returns 1 with *ret_val set (and *i advanced past a separate value), 0 if
 * argv[*i] is another option, -1 after "CMD: option '--name' needs a value"
 * (without the prefix when cmd is NULL).
 */
int cmd_opt_value(const char *cmd, const char *name, int argc, char **argv, int *i,
		  const char **ret_val);

/* Shared by commands: print a usage text and return EXIT_USAGE or 0. */
int usage_print(const char *text, bool to_stdout);

struct recipe;
struct recipe_args {
	const char *image;
	const char *profile;
	const char **sets;
	size_t nsets;
	char **owned; /* strings made here, freed by recipe_args_release() */
	size_t nowned;
	bool json;
};

/*
 * Parse one recipe option (--profile P, --set k=v, --mirror URL, --json)
 * at argv[*i]; returns 1 if taken, 0 if not a recipe option, -1 on error.
 */
int recipe_args_parse(struct recipe_args *a, int argc, char **argv, int *i);
void recipe_args_release(struct recipe_args *a);
/*
 * Parse the arguments of a command that reads an image definition: recipe
 * options, -h/--help, one IMAGE, and the command's own options through
 * extra (which returns 1 if it took argv[*i], 0 if not, -1 on a usage
 * error it reported). Returns 0, or -1 with *ret_exit the exit status when
 * the command must stop (help printed, usage error).
 */
typedef int (*recipe_extra_fn)(void *userdata, int argc, char **argv, int *i);
int recipe_cmd_parse(const char *name, const char *usage, int argc, char **argv,
		     struct recipe_args *a, recipe_extra_fn extra, void *userdata, int *ret_exit);
/* Load the image with the options; print every diagnostic. Returns 0 or -errno. */
int recipe_args_load(struct recipe_args *a, struct recipe **ret);
/* The same, with the diagnostics handed to the caller instead of printed. */
struct diags;
int recipe_args_load_diags(struct recipe_args *a, struct recipe **ret, struct diags *d);

#endif
