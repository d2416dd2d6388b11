/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cmd.h"

int usage_print(const char *text, bool to_stdout)
{
	fputs(text, to_stdout ? stdout : stderr);
	return to_stdout ? 0 : EXIT_USAGE;
}
