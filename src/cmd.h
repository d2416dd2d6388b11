/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CMD_H
#define IMGFORGE_CMD_H

#include <stdbool.h>

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

/* Shared by commands: print a usage text and return EXIT_USAGE or 0. */
int usage_print(const char *text, bool to_stdout);

#endif
