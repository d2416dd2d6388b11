/* SPDX-License-Identifier: MIT */
/*
 * imgforge: main(), global options and the command table. Each command lives
 * in src/cmd/<name>.c and is a thin layer over the modules in src/.
 */
#include <signal.h>
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
	{ "registry", cmd_registry, "copy builds into another registry (registry migrate)" },
	{ "outdated", cmd_outdated, "list the packages of a build the archive has newer versions of" },
	{ "export", cmd_export, "write a disk as a raw, qcow2, VHD or VMDK image" },
	{ "boot", cmd_boot, "boot a disk image in QEMU and wait for patterns" },
	{ "keygen", cmd_keygen, "make a key and certificate to sign update bundles with" },
	{ "bundle", cmd_bundle, "write, show or verify a signed update bundle" },
	{ "channel", cmd_channel, "offer a bundle on an update channel (signed index)" },
	{ "fetch", cmd_fetch, "download a build's outputs from the shared store (--store)" },
	{ "publish", cmd_publish, "make a build's disk an image in a cloud (AWS, OpenStack, Scaleway)" },
};

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

/* -v once: verbose; twice: debug. In command-line order with -q, the last one wins. */
static int opt_verbose(const struct opt *o, const char *arg, struct strbuf *err)
{
	(void)o, (void)arg, (void)err;
	log_set_level(log_get_level() >= LOG_VERBOSE ? LOG_DEBUG : LOG_VERBOSE);
	return 0;
}

static int opt_quiet(const struct opt *o, const char *arg, struct strbuf *err)
{
	(void)o, (void)arg, (void)err;
	log_set_level(LOG_QUIET);
	return 0;
}

/* The usage line, the description and the command table. */
static char *main_usage(void)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	strbuf_addstr(&sb, "usage: imgforge [-v | -q] [--version] [--help] <command> [<args>]\n"
			   "\n"
			   "Build reproducible, bootable appliance images from YAML recipes.\n"
			   "\n"
			   "Commands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		strbuf_addf(&sb, "   %-10s %s\n", commands[i].name, commands[i].summary);
	return strbuf_detach(&sb);
}

int main(int argc, char **argv)
{
	_cleanup_free_ char *usage = main_usage();
	bool version = false, help = false;
	const struct opt opts[] = {
		OPT_CALLBACK('v', "verbose", NULL, NULL, "say more about each step", opt_verbose),
		OPT_CALLBACK('q', "quiet", NULL, NULL, "print only errors and requested data",
			     opt_quiet),
		OPT_FLAG(0, "version", &version, "print the version and exit"),
		OPT_FLAG('h', "help", &help, "print this help and exit"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "",
		.usage = usage,
		.opts = opts,
		.footer = "Run 'imgforge <command> --help' for a command's options.\n",
		.stop_at_operand = true,
	};
	const struct cmd *c;
	int n;

	/*
	 * A SIGCHLD ignored by whoever started imgforge would be inherited, and
	 * the kernel would then reap children before their status is read.
	 */
	signal(SIGCHLD, SIG_DFL);

	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (version) {
		printf("imgforge %s\n", IMGFORGE_VERSION);
		return 0;
	}
	if (help) {
		opt_print_help(&cmd, stdout);
		return 0;
	}
	if (n == 0) {
		opt_print_help(&cmd, stderr);
		return EXIT_USAGE;
	}
	/* argv[0] is now the command's name, the command's own arguments after it. */
	if (!strcmp(argv[0], "help")) {
		if (n > 1 && (c = find_command(argv[1]))) {
			char *sub[] = { argv[1], (char *)"--help", NULL };
			return c->fn(2, sub);
		}
		opt_print_help(&cmd, stdout);
		return 0;
	}
	c = find_command(argv[0]);
	if (!c) {
		error("'%s' is not an imgforge command; see 'imgforge --help'", argv[0]);
		suggest_command(argv[0]);
		return EXIT_USAGE;
	}
	return c->fn(n, argv);
}
