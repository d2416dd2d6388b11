/* SPDX-License-Identifier: MIT */
/*
 * imgforge: main(), global options and the command table. Each command lives
 * in src/cmd-<name>.c and is a thin layer over the modules in src/.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "core/util.h"

static const struct cmd commands[] = {
	{ "check", cmd_check, "validate an image definition and its recipes" },
	{ "plan", cmd_plan, "print the resolved recipe and the stage cache keys" },
	{ "build", cmd_build, "build an image: base, root filesystem, outputs, registry" },
	{ "mkfs", cmd_mkfs, "write an ext4 image from tarballs and directories" },
	{ "cache", cmd_cache, "list or trim the stage cache (cache ls, cache gc)" },
	{ "ls", cmd_ls, "list the registered builds" },
	{ "show", cmd_show, "show a registered build: outputs, packages, files" },
	{ "diff", cmd_diff, "compare the packages and files of two builds" },
	{ "boot", cmd_boot, "boot a disk image in QEMU and wait for patterns" },
};

static void print_help(FILE *f)
{
	size_t i;

	fputs("usage: imgforge [-v | -q] [--version] [--help] <command> [<args>]\n"
	      "\n"
	      "Build reproducible, bootable appliance images from YAML recipes.\n"
	      "\n"
	      "Commands:\n",
	      f);
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "   %-10s %s\n", commands[i].name, commands[i].summary);
	fputs("\n"
	      "Global options:\n"
	      "   -v, --verbose   say more about each step\n"
	      "   -q, --quiet     print only errors and requested data\n"
	      "   --version       print the version and exit\n"
	      "   -h, --help      print this help and exit\n"
	      "\n"
	      "Run 'imgforge <command> --help' for a command's options.\n",
	      f);
}

static const struct cmd *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

static void suggest_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (str_distance(name, commands[i].name) <= 2) {
			fprintf(stderr, "\nThe most similar command is\n\t%s\n", commands[i].name);
			return;
		}
}

int main(int argc, char **argv)
{
	const struct cmd *c;
	int i;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			log_set_level(log_get_level() >= LOG_VERBOSE ? LOG_DEBUG : LOG_VERBOSE);
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			log_set_level(LOG_QUIET);
		} else if (!strcmp(a, "--version")) {
			printf("imgforge %s\n", IMGFORGE_VERSION);
			return 0;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_help(stdout);
			return 0;
		} else {
			error("unknown option '%s'; see 'imgforge --help'", a);
			return EXIT_USAGE;
		}
	}
	if (i >= argc) {
		print_help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		if (i + 1 < argc && (c = find_command(argv[i + 1]))) {
			char *sub[] = { argv[i + 1], (char *)"--help", NULL };
			return c->fn(2, sub);
		}
		print_help(stdout);
		return 0;
	}
	c = find_command(argv[i]);
	if (!c) {
		error("'%s' is not an imgforge command; see 'imgforge --help'", argv[i]);
		suggest_command(argv[i]);
		return EXIT_USAGE;
	}
	return c->fn(argc - i, argv + i);
}
