/* SPDX-License-Identifier: MIT */
#include "cmd.h"
#include "util.h"

int cmd_plan(int argc, char **argv)
{
	(void)argc; (void)argv;
	return error("plan: being written");
}
