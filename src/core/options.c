/* SPDX-License-Identifier: MIT */
/* The one command-line option parser, after git's parse-options. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/options.h"
#include "core/util.h"

/* Where an option's help starts in the help text. */
#define HELP_INDENT 3
#define HELP_COLUMN 24

/* The global options of imgforge, which commands do not take. */
static const struct {
	char short_name;
	const char *long_name;
} global_opts[] = {
	{ 'v', "verbose" },
	{ 'q', "quiet" },
};

/* The program messages name: imgforge, or imgforge-update (which has no global options). */
static const char *program = "imgforge";

void opt_set_program(const char *name)
{
	program = name;
}

void opt_list_release(struct opt_list *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->alloc = 0;
}

int opt_exit_status(int r)
{
	return r == OPT_HELP ? 0 : EXIT_USAGE;
}

static bool takes_value(const struct opt *o)
{
	return o->type != OPTION_FLAG && (o->type != OPTION_CALLBACK || o->argh);
}

/* How messages name an option: by its long name when it has one. */
static void opt_name(const struct opt *o, char *buf, size_t len)
{
	if (o->long_name)
		snprintf(buf, len, "--%s", o->long_name);
	else
		snprintf(buf, len, "-%c", o->short_name);
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end || errno || v < min || v > max)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

/* "--firmware takes uefi or bios, not 'x'" unless arg is one of the choices. */
static int parse_choice(const struct opt *o, const char *arg, const char *name,
			struct strbuf *err)
{
	size_t i, n;

	for (n = 0; o->choices[n]; n++)
		if (!strcmp(arg, o->choices[n])) {
			*(int *)o->value = (int)n;
			return 0;
		}
	strbuf_addf(err, "%s takes ", name);
	for (i = 0; i < n; i++)
		strbuf_addf(err, "%s%s", i == 0 ? "" : i + 1 < n ? ", " : " or ", o->choices[i]);
	strbuf_addf(err, ", not '%s'", arg);
	return -EINVAL;
}

/* "error: build: <what>", or "error: <what>" for imgforge's own options. */
static void cmd_error(const struct opt_cmd *cmd, const char *what)
{
	error("%s%s%s", cmd->name, cmd->name[0] ? ": " : "", what);
}

/* Store arg (NULL for a flag) into the option's target. */
static int apply(const struct opt_cmd *cmd, const struct opt *o, const char *arg)
{
	struct strbuf err = STRBUF_INIT;
	char name[64];
	uint64_t size;
	int r = 0;

	opt_name(o, name, sizeof(name));
	switch (o->type) {
	case OPTION_FLAG:
		*(bool *)o->value = true;
		break;
	case OPTION_STRING:
		*(const char **)o->value = arg;
		break;
	case OPTION_SIZE:
		if (parse_size(arg, &size) < 0) {
			strbuf_addf(&err, "invalid %s '%s': give a size such as 512M or 2G", name,
				    arg);
			r = -EINVAL;
			break;
		}
		*(uint64_t *)o->value = size;
		break;
	case OPTION_UINT:
		if (parse_uint(arg, o->min, o->max, o->value) < 0) {
			strbuf_addf(&err, "invalid %s '%s': give a whole number from %u to %u", name,
				    arg, o->min, o->max);
			r = -EINVAL;
		}
		break;
	case OPTION_LIST: {
		struct opt_list *l = o->value;

		GROW(l->v, l->alloc, l->n + 1);
		l->v[l->n++] = arg;
		break;
	}
	case OPTION_CHOICE:
		r = parse_choice(o, arg, name, &err);
		break;
	case OPTION_CALLBACK:
		r = o->cb(o, arg, &err);
		if (r < 0 && !err.len)
			strbuf_addf(&err, "invalid %s '%s'", name, arg ? arg : "");
		break;
	case OPTION_END:
		break;
	}
	if (r < 0)
		cmd_error(cmd, err.buf);
	strbuf_release(&err);
	return r < 0 ? OPT_ERROR : 0;
}

/*
 * An option the command does not take: say where a global option goes, or
 * name the closest option the command has.
 */
static int unknown(const struct opt_cmd *cmd, const char *arg, size_t len)
{
	_cleanup_free_ char *name = xstrndup(arg, len);
	_cleanup_free_ char *full = xasprintf("%s%s%s", program, cmd->name[0] ? " " : "", cmd->name);
	const struct opt *o, *best = NULL;
	size_t i, d, best_d = 3;

	for (i = 0; !strcmp(program, "imgforge") && i < ARRAY_SIZE(global_opts); i++) {
		bool is_long = name[1] == '-' && !strcmp(name + 2, global_opts[i].long_name);
		bool is_short = name[1] == global_opts[i].short_name && !name[2];

		if (is_long || is_short) {
			error("'%s' is a global option, put it before the command: "
			      "imgforge %s %s ...",
			      name, name, cmd->name);
			return OPT_ERROR;
		}
	}
	if (name[1] == '-') {
		for (o = cmd->opts; o->type != OPTION_END; o++) {
			if (!o->long_name || !o->help)
				continue;
			d = str_distance(name + 2, o->long_name);
			if (d < best_d) {
				best = o;
				best_d = d;
			}
		}
	}
	if (best)
		error("unknown option '%s' for '%s' (did you mean '--%s'?); see '%s --help'", name,
		      full, best->long_name, full);
	else
		error("unknown option '%s' for '%s'; see '%s --help'", name, full, full);
	return OPT_ERROR;
}

static int needs_value(const struct opt_cmd *cmd, const char *spelled)
{
	_cleanup_free_ char *what = xasprintf("option '%s' needs a value", spelled);

	cmd_error(cmd, what);
	return OPT_ERROR;
}

/* "--name", "--name=value" or "--name value" at argv[*i] (arg is past the dashes). */
static int parse_long(const struct opt_cmd *cmd, const char *arg, int argc, char **argv, int *i)
{
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const struct opt *o;

	for (o = cmd->opts; o->type != OPTION_END; o++) {
		if (!o->long_name || strlen(o->long_name) != len || strncmp(o->long_name, arg, len))
			continue;
		if (!takes_value(o)) {
			if (eq) {
				_cleanup_free_ char *what =
					xasprintf("option '--%s' takes no value", o->long_name);

				cmd_error(cmd, what);
				return OPT_ERROR;
			}
			return apply(cmd, o, NULL);
		}
		if (eq)
			return apply(cmd, o, eq + 1);
		if (*i + 1 >= argc)
			return needs_value(cmd, argv[*i]);
		return apply(cmd, o, argv[++*i]);
	}
	if (len == 4 && !strncmp(arg, "help", 4) && !eq) {
		opt_print_help(cmd, stdout);
		return OPT_HELP;
	}
	return unknown(cmd, argv[*i], len + 2);
}

/* "-a", "-abc" (flags), "-o value" or "-ovalue" at argv[*i] (arg is past the dash). */
static int parse_short(const struct opt_cmd *cmd, const char *arg, int argc, char **argv, int *i)
{
	const struct opt *o;
	const char *p;
	char spelled[3] = "-";
	int r;

	for (p = arg; *p; p++) {
		for (o = cmd->opts; o->type != OPTION_END; o++)
			if (o->short_name && o->short_name == *p)
				break;
		spelled[1] = *p;
		if (o->type == OPTION_END) {
			if (*p == 'h') {
				opt_print_help(cmd, stdout);
				return OPT_HELP;
			}
			return unknown(cmd, spelled, 2);
		}
		if (takes_value(o)) {
			if (p[1])
				return apply(cmd, o, p + 1);
			if (*i + 1 >= argc)
				return needs_value(cmd, spelled);
			return apply(cmd, o, argv[++*i]);
		}
		r = apply(cmd, o, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

int parse_options(const struct opt_cmd *cmd, int argc, char **argv)
{
	bool dashdash = false;
	int i, n = 0, r;

	for (i = 1; i < argc; i++) {
		char *a = argv[i];

		if (dashdash || a[0] != '-' || !a[1]) {
			argv[n++] = a; /* n < i: that slot was read already */
			if (cmd->stop_at_operand)
				dashdash = true;
			continue;
		}
		if (!strcmp(a, "--")) {
			dashdash = true;
			continue;
		}
		r = a[1] == '-' ? parse_long(cmd, a + 2, argc, argv, &i)
				: parse_short(cmd, a + 1, argc, argv, &i);
		if (r < 0)
			return r;
	}
	argv[n] = NULL;
	return n;
}

/* Write text with every line after the first indented to the help column. */
static void put_help(const char *text, FILE *f)
{
	const char *nl;

	while ((nl = strchr(text, '\n'))) {
		fprintf(f, "%.*s\n%*s", (int)(nl - text), text, HELP_COLUMN, "");
		text = nl + 1;
	}
	fprintf(f, "%s\n", text);
}

void opt_print_help(const struct opt_cmd *cmd, FILE *f)
{
	const struct opt *o;
	bool any = false;

	fputs(cmd->usage, f);
	for (o = cmd->opts; o->type != OPTION_END; o++) {
		struct strbuf sb = STRBUF_INIT;

		if (!o->help)
			continue;
		if (!any)
			fputc('\n', f);
		any = true;
		strbuf_addf(&sb, "%*s", HELP_INDENT, "");
		if (o->short_name)
			strbuf_addf(&sb, "-%c%s", o->short_name, o->long_name ? ", " : "");
		if (o->long_name)
			strbuf_addf(&sb, "--%s", o->long_name);
		if (o->argh)
			strbuf_addf(&sb, " %s", o->argh);
		if (sb.len + 2 <= HELP_COLUMN)
			fprintf(f, "%-*s", HELP_COLUMN, sb.buf);
		else
			fprintf(f, "%s\n%*s", sb.buf, HELP_COLUMN, "");
		put_help(o->help, f);
		strbuf_release(&sb);
	}
	if (cmd->footer) {
		fputc('\n', f);
		fputs(cmd->footer, f);
	}
}
