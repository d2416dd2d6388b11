/* SPDX-License-Identifier: MIT */
/*
 * imgforge-update: the update agent on an imgforge A/B device. main() and
 * the command table; each command in its own file of src/update/agent/.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "core/options.h"
#include "core/util.h"
#include "update/agent/agent.h"

struct agent_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct agent_cmd commands[] = {
	{ "status", cmd_status, "which slot runs, which is good, what became of the last update" },
	{ "install", cmd_install, "install a bundle (URL or FILE) into the other slot" },
	{ "mark-good", cmd_mark_good, "the running slot is healthy: keep booting it" },
	{ "rollback", cmd_rollback, "boot the other slot next" },
	{ "check", cmd_check, "poll the channel; --install a newer version" },
	{ "health-failed", cmd_health_failed, "record why the running slot is unhealthy" },
};

static char *main_usage(void)
{
	struct strbuf sb = STRBUF_INIT;
	size_t i;

	strbuf_addstr(&sb, "usage: imgforge-update [--version] [--help] <command> [<args>]\n"
			   "\n"
			   "Signed A/B updates of an imgforge image (docs/update.md).\n"
			   "\n"
			   "Commands:\n");
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		strbuf_addf(&sb, "   %-14s %s\n", commands[i].name, commands[i].summary);
	return strbuf_detach(&sb);
}

int main(int argc, char **argv)
{
	_cleanup_free_ char *usage = main_usage();
	bool version = false, help = false;
	const struct opt opts[] = {
		OPT_FLAG(0, "version", &version, "print the version and exit"),
		OPT_FLAG('h', "help", &help, "print this help and exit"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "",
		.usage = usage,
		.opts = opts,
		.footer = "Run 'imgforge-update <command> --help' for a command's options.\n",
		.stop_at_operand = true,
	};
	size_t i;
	int n;

	signal(SIGCHLD, SIG_DFL);
	opt_set_program("imgforge-update");
	n = parse_options(&cmd, argc, argv);
	if (n < 0)
		return opt_exit_status(n);
	if (version) {
		printf("imgforge-update %s\n", IMGFORGE_VERSION);
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
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[0], commands[i].name))
			return commands[i].fn(n, argv);
	error("'%s' is not an imgforge-update command; see 'imgforge-update --help'", argv[0]);
	return EXIT_USAGE;
}
