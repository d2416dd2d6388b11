/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_OPTIONS_H
#define IMGFORGE_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Command-line options, after git's parse-options: each command declares a
 * table of its options, and the one parser reads them all the same way and
 * prints the command's help from the same table.
 *
 *	bool json = false;
 *	const char *dir = NULL;
 *	const struct opt opts[] = {
 *		OPT_FLAG(0, "json", &json, "print JSON"),
 *		OPT_STRING('o', "output", &dir, "DIR", "where to write the outputs"),
 *		OPT_END(),
 *	};
 *	const struct opt_cmd cmd = { .name = "build", .usage = usage_text, .opts = opts };
 *	int n = parse_options(&cmd, argc, argv);
 *	if (n < 0)
 *		return opt_exit_status(n);
 *	// argv[0] .. argv[n - 1] are now the operands, in order
 *
 * Accepted spellings: --name=value, --name value, -o value, -ovalue, short
 * flags bundled (-ab); "--" ends the options; -h and --help print the help.
 * Options and operands may come in any order.
 */

struct strbuf;
struct opt;

enum opt_type {
	OPTION_END = 0,
	OPTION_FLAG,	 /* bool *value = true */
	OPTION_STRING,	 /* const char **value = the argument (points into argv); last wins */
	OPTION_SIZE,	 /* uint64_t *value = parse_size(argument) */
	OPTION_UINT,	 /* unsigned *value = a decimal number from min to max */
	OPTION_LIST,	 /* struct opt_list *value: every argument, in command-line order */
	OPTION_CHOICE,	 /* int (or enum) *value = the argument's index in choices */
	OPTION_CALLBACK, /* cb(opt, argument, err); argument is NULL when argh is NULL */
};

/*
 * A callback checks and stores its argument (o->value and o->data say
 * where). On a bad argument it returns -EINVAL with a message in err,
 * such as "--firmware takes uefi or bios, not 'x'"; the parser prints it
 * after the command's name.
 */
typedef int (*opt_cb)(const struct opt *o, const char *arg, struct strbuf *err);

struct opt {
	enum opt_type type;
	char short_name;       /* 0: none */
	const char *long_name; /* without the dashes; NULL: none */
	void *value;
	const char *argh; /* the argument's name in the help; NULL: the option takes none */
	const char *help; /* NULL: accepted but not listed */
	opt_cb cb;
	unsigned min, max; /* OPTION_UINT */
	const char *const *choices; /* OPTION_CHOICE: the words, NULL-terminated */
	intptr_t data;	   /* for a callback that serves several options */
};

#define OPT_END() { .type = OPTION_END }
#define OPT_FLAG(s, l, v, h) \
	{ .type = OPTION_FLAG, .short_name = (s), .long_name = (l), .value = (v), .help = (h) }
#define OPT_STRING(s, l, v, a, h)                                                            \
	{ .type = OPTION_STRING, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), \
	  .help = (h) }
#define OPT_SIZE(s, l, v, a, h)                                                            \
	{ .type = OPTION_SIZE, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), \
	  .help = (h) }
#define OPT_UINT(s, l, v, a, lo, hi, h)                                                    \
	{ .type = OPTION_UINT, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), \
	  .help = (h), .min = (lo), .max = (hi) }
#define OPT_LIST(s, l, v, a, h)                                                            \
	{ .type = OPTION_LIST, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), \
	  .help = (h) }
#define OPT_CHOICE(s, l, v, a, c, h)                                                         \
	{ .type = OPTION_CHOICE, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), \
	  .help = (h), .choices = (c) }
#define OPT_CALLBACK(s, l, v, a, h, f)                                                         \
	{ .type = OPTION_CALLBACK, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), \
	  .help = (h), .cb = (f) }
/* A callback option with a constant for the callback (o->data). */
#define OPT_CALLBACK_DATA(s, l, v, a, h, f, d)                                                 \
	{ .type = OPTION_CALLBACK, .short_name = (s), .long_name = (l), .value = (v), .argh = (a), \
	  .help = (h), .cb = (f), .data = (d) }

/* The values of a repeatable option; the strings point into argv. */
struct opt_list {
	const char **v;
	size_t n, alloc;
};
void opt_list_release(struct opt_list *l);

/* A command as the parser and its help see it. */
struct opt_cmd {
	const char *name; /* "build", "cache gc": as messages name it after "imgforge "; "": main */
	const char *usage;    /* "usage: imgforge ...\n\ndescription\n", before the options */
	const struct opt *opts; /* ends with OPT_END() */
	const char *footer;   /* printed after the options; NULL: nothing */
	bool stop_at_operand; /* the first operand and all after it are operands (a command name) */
};

/* The exit status of a usage error (0 is success, 1 a failure). */
#define EXIT_USAGE 2

#define OPT_HELP (-1)  /* the help was printed on standard output */
#define OPT_ERROR (-2) /* a usage error was printed on standard error */

/*
 * Parse argv[1..argc-1] (argv[0] is the command's name). Returns the number
 * of operands, moved to argv[0..n-1] in order (argv[n] is set to NULL), or
 * OPT_HELP or OPT_ERROR. Every error is one line on stderr that names the
 * command and where to look: an unknown option (with the closest known one,
 * or where a global option goes), a missing value, a value given to a flag,
 * a bad value.
 */
int parse_options(const struct opt_cmd *cmd, int argc, char **argv);
/* The exit status for a parse_options() result below 0: 0 after help, else EXIT_USAGE. */
int opt_exit_status(int r);
/* The program messages name ("imgforge" unless set): "see 'imgforge-update install --help'". */
void opt_set_program(const char *name);

/* Print the usage, the options from the table and the footer. */
void opt_print_help(const struct opt_cmd *cmd, FILE *f);

#endif
