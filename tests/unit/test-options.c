/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "core/options.h"
#include "tap.h"
#include "core/util.h"

struct vals {
	bool json, flag_a, flag_b;
	const char *out;
	uint64_t size;
	unsigned cpus;
	int fw;
	struct opt_list sets;
	struct strbuf order; /* what the callback saw, in order */
};

static int pick_cb(const struct opt *o, const char *arg, struct strbuf *err)
{
	struct vals *v = o->value;

	if (!strcmp(arg, "bad")) {
		strbuf_addf(err, "--%s takes anything but 'bad'", o->long_name);
		return -EINVAL;
	}
	strbuf_addf(&v->order, "%c:%s ", (char)o->data, arg);
	return 0;
}

static const char usage[] = "usage: imgforge t [options] ARG...\n";
static const char *const fws[] = { "uefi", "bios", "coreboot", NULL };

/* The arguments of the last parse(); the operands are left here. */
static char *av[32];

/*
 * Parse args (a NULL-terminated list, the command's name first) with a
 * table of every type; stderr goes to the file "err". Returns what
 * parse_options() returns.
 */
static int parse(struct vals *v, const char *const *args)
{
	const struct opt opts[] = {
		OPT_FLAG(0, "json", &v->json, "print JSON"),
		OPT_FLAG('a', NULL, &v->flag_a, "flag a"),
		OPT_FLAG('b', "bee", &v->flag_b, "flag b"),
		OPT_STRING('o', "output", &v->out, "DIR", "where to write"),
		OPT_SIZE(0, "size", &v->size, "SIZE", "a size"),
		OPT_UINT(0, "cpus", &v->cpus, "N", 1, 255, "a count"),
		OPT_LIST(0, "set", &v->sets, "K=V", "repeatable\nsecond line"),
		OPT_CHOICE(0, "fw", &v->fw, "F", fws, "a firmware"),
		OPT_CALLBACK_DATA(0, "from", v, "SRC", "a source", pick_cb, 'f'),
		OPT_CALLBACK_DATA(0, "overlay", v, "DIR", "an overlay", pick_cb, 'o'),
		OPT_STRING(0, "hidden", &v->out, "X", NULL),
		OPT_END(),
	};
	const struct opt_cmd cmd = {
		.name = "t",
		.usage = usage,
		.opts = opts,
		.footer = "footer\n",
	};
	int argc = 0, r;

	for (argc = 0; args[argc]; argc++)
		av[argc] = (char *)args[argc];
	av[argc] = NULL;
	fflush(stderr);
	if (!freopen("err", "w", stderr))
		return -999;
	r = parse_options(&cmd, argc, av);
	fflush(stderr);
	return r;
}

static char *err_text(void)
{
	char *buf = NULL;
	size_t len;

	if (read_file("err", 1 << 20, &buf, &len) < 0)
		return xstrdup("(no err file)");
	return buf;
}

#define ARGS(...) ((const char *const[]){ "t", __VA_ARGS__, NULL })

TEST(test_long_both_spellings)
{
	struct vals v = { 0 };
	CHECK_INT(parse(&v, ARGS("--output=a", "x", "--size", "2M", "--cpus=3", "--json", "y")), 2);
	CHECK_STR(v.out, "a");
	CHECK_INT(v.size, 2 << 20);
	CHECK_INT(v.cpus, 3);
	CHECK(v.json);
	CHECK_STR(av[0], "x");
	CHECK_STR(av[1], "y");
	CHECK(av[2] == NULL);
	CHECK_INT(parse(&v, ARGS("--fw=bios")), 0);
	CHECK_INT(v.fw, 1);
	CHECK_INT(parse(&v, ARGS("--fw", "coreboot")), 0);
	CHECK_INT(v.fw, 2);

	v.out = NULL;
	CHECK_INT(parse(&v, ARGS("--output", "b")), 0);
	CHECK_STR(v.out, "b");
	CHECK_INT(parse(&v, ARGS("--output=")), 0);
	CHECK_STR(v.out, "");
	CHECK_INT(parse(&v, ARGS("--output=c=d")), 0);
	CHECK_STR(v.out, "c=d");
}

TEST(test_short_spellings)
{
	struct vals v = { 0 };

	CHECK_INT(parse(&v, ARGS("-o", "a")), 0);
	CHECK_STR(v.out, "a");
	CHECK_INT(parse(&v, ARGS("-ob")), 0);
	CHECK_STR(v.out, "b");
	CHECK_INT(parse(&v, ARGS("-abo", "c")), 0);
	CHECK(v.flag_a && v.flag_b);
	CHECK_STR(v.out, "c");
	v.flag_a = false;
	CHECK_INT(parse(&v, ARGS("-aod")), 0);
	CHECK(v.flag_a);
	CHECK_STR(v.out, "d");
}

TEST(test_dashdash_and_dash)
{
	struct vals v = { 0 };
	CHECK_INT(parse(&v, ARGS("-", "--json", "--", "--output", "-a")), 3);
	CHECK(v.json);
	CHECK(!v.out && !v.flag_a);
	CHECK_STR(av[0], "-");
	CHECK_STR(av[1], "--output");
	CHECK_STR(av[2], "-a");
}

TEST(test_list_and_callbacks_keep_order)
{
	struct vals v = { 0 };

	CHECK_INT(parse(&v, ARGS("--set", "a=1", "--from=x", "--overlay", "y", "--set=b=2",
				 "--from", "z")),
		  0);
	CHECK_INT(v.sets.n, 2);
	CHECK_STR(v.sets.v[0], "a=1");
	CHECK_STR(v.sets.v[1], "b=2");
	CHECK_STR(strbuf_str(&v.order), "f:x o:y f:z ");
	opt_list_release(&v.sets);
	strbuf_release(&v.order);
}

/* Parse args, expect a usage error, and return its message (the caller frees). */
static char *parse_error(const char *const *args)
{
	struct vals v = { 0 };
	int r = parse(&v, args);

	CHECK_INT(r, OPT_ERROR);
	opt_list_release(&v.sets);
	strbuf_release(&v.order);
	return err_text();
}

TEST(test_errors)
{
	const struct {
		const char *const *args;
		const char *want; /* NULL: any message */
	} cases[] = {
		{ ARGS("--size", "lots"),
		  "error: t: invalid --size 'lots': give a size such as 512M or 2G\n" },
		{ ARGS("--cpus=0"), "error: t: invalid --cpus '0': give a whole number from 1 to 255\n" },
		{ ARGS("--cpus=256"), NULL },
		{ ARGS("--cpus=-1"), NULL },
		{ ARGS("--cpus=2x"), NULL },
		{ ARGS("--fw", "efi"), "error: t: --fw takes uefi, bios or coreboot, not 'efi'\n" },
		{ ARGS("--from", "bad"), "error: t: --from takes anything but 'bad'\n" },
		{ ARGS("x", "--output"), "error: t: option '--output' needs a value\n" },
		{ ARGS("-o"), "error: t: option '-o' needs a value\n" },
		{ ARGS("--json=1"), "error: t: option '--json' takes no value\n" },
		{ ARGS("--ouptut=x"), "error: unknown option '--ouptut' for 'imgforge t' (did you mean "
				      "'--output'?); see 'imgforge t --help'\n" },
		{ ARGS("--frobnicate"),
		  "error: unknown option '--frobnicate' for 'imgforge t'; see 'imgforge t --help'\n" },
		{ ARGS("x", "-v"),
		  "error: '-v' is a global option, put it before the command: imgforge -v t ...\n" },
		{ ARGS("--quiet"), "error: '--quiet' is a global option, put it before the command: "
				   "imgforge --quiet t ...\n" },
		{ ARGS("-az"), "error: unknown option '-z' for 'imgforge t'; see 'imgforge t --help'\n" },
		/* A hidden option is never suggested. */
		{ ARGS("--hiden"),
		  "error: unknown option '--hiden' for 'imgforge t'; see 'imgforge t --help'\n" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *e = parse_error(cases[i].args);

		if (cases[i].want)
			CHECK_STR(e, cases[i].want);
		else
			CHECK(str_startswith(e, "error: t: invalid --cpus"));
	}
}

TEST(test_hidden_option)
{
	struct vals v = { 0 };

	CHECK_INT(parse(&v, ARGS("--hidden", "h")), 0);
	CHECK_STR(v.out, "h");
}

TEST(test_help_from_the_table)
{
	struct vals v = { 0 };
	static const char help[] = "usage: imgforge t [options] ARG...\n"
				   "\n"
				   "   --json               print JSON\n"
				   "   -a                   flag a\n"
				   "   -b, --bee            flag b\n"
				   "   -o, --output DIR     where to write\n"
				   "   --size SIZE          a size\n"
				   "   --cpus N             a count\n"
				   "   --set K=V            repeatable\n"
				   "                        second line\n"
				   "   --fw F               a firmware\n"
				   "   --from SRC           a source\n"
				   "   --overlay DIR        an overlay\n"
				   "\n"
				   "footer\n";
	struct strbuf want = STRBUF_INIT;
	_cleanup_free_ char *out = NULL;
	size_t len;

	/* Printed twice: for --help among other arguments, and for -h. */
	strbuf_addf(&want, "%s%s", help, help);
	fflush(stdout);
	CHECK(freopen("out", "w", stdout) != NULL);
	CHECK_INT(parse(&v, ARGS("x", "--help", "--bogus")), OPT_HELP);
	CHECK_INT(opt_exit_status(OPT_HELP), 0);
	CHECK_INT(opt_exit_status(OPT_ERROR), EXIT_USAGE);
	CHECK_INT(parse(&v, ARGS("-h")), OPT_HELP);
	fflush(stdout);
	CHECK_INT(read_file("out", 1 << 20, &out, &len), 0);
	CHECK_STR(out, strbuf_str(&want));
	strbuf_release(&want);
}

int main(void)
{
	RUN(test_long_both_spellings);
	RUN(test_short_spellings);
	RUN(test_dashdash_and_dash);
	RUN(test_list_and_callbacks_keep_order);
	RUN(test_errors);
	RUN(test_hidden_option);
	RUN(test_help_from_the_table);
	return tap_done();
}
