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
		OPT_CALLBACK_DATA(0, "from", v, "SRC", "a source", pick_cb, 'f'),
		OPT_CALLBACK_DATA(0, "overlay", v, "DIR", "an overlay", pick_cb, 'o'),
		OPT_STRING(0, "hidden", &v->out, "X", NULL),
		OPT_END(),
	};
	const struct opt_cmd cmd = { "t", usage, opts, "footer\n" };
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

TEST(test_bad_values)
{
	struct vals v = { 0 };
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL;

	CHECK_INT(parse(&v, ARGS("--size", "lots")), OPT_ERROR);
	e1 = err_text();
	CHECK_STR(e1, "error: t: invalid --size 'lots': give a size such as 512M or 2G\n");
	CHECK_INT(parse(&v, ARGS("--cpus=0")), OPT_ERROR);
	e2 = err_text();
	CHECK_STR(e2, "error: t: invalid --cpus '0': give a whole number from 1 to 255\n");
	CHECK_INT(parse(&v, ARGS("--cpus=256")), OPT_ERROR);
	CHECK_INT(parse(&v, ARGS("--cpus=-1")), OPT_ERROR);
	CHECK_INT(parse(&v, ARGS("--cpus=2x")), OPT_ERROR);
	CHECK_INT(parse(&v, ARGS("--from", "bad")), OPT_ERROR);
	e3 = err_text();
	CHECK_STR(e3, "error: t: --from takes anything but 'bad'\n");
	CHECK_INT(parse(&v, ARGS("x", "--output")), OPT_ERROR);
	e4 = err_text();
	CHECK_STR(e4, "error: t: option '--output' needs a value\n");
	CHECK_INT(parse(&v, ARGS("-o")), OPT_ERROR);
	CHECK_INT(parse(&v, ARGS("--json=1")), OPT_ERROR);
	free(e4);
	e4 = err_text();
	CHECK_STR(e4, "error: t: option '--json' takes no value\n");
	strbuf_release(&v.order);
}

TEST(test_unknown_options)
{
	struct vals v = { 0 };
	_cleanup_free_ char *e1 = NULL, *e2 = NULL, *e3 = NULL, *e4 = NULL, *e5 = NULL;

	CHECK_INT(parse(&v, ARGS("--ouptut=x")), OPT_ERROR);
	e1 = err_text();
	CHECK_STR(e1, "error: unknown option '--ouptut' for 'imgforge t' (did you mean "
		      "'--output'?); see 'imgforge t --help'\n");
	CHECK_INT(parse(&v, ARGS("--frobnicate")), OPT_ERROR);
	e2 = err_text();
	CHECK_STR(e2, "error: unknown option '--frobnicate' for 'imgforge t'; see 'imgforge t "
		      "--help'\n");
	CHECK_INT(parse(&v, ARGS("x", "-v")), OPT_ERROR);
	e3 = err_text();
	CHECK_STR(e3, "error: '-v' is a global option, put it before the command: imgforge -v t "
		      "...\n");
	CHECK_INT(parse(&v, ARGS("--quiet")), OPT_ERROR);
	e4 = err_text();
	CHECK_STR(e4, "error: '--quiet' is a global option, put it before the command: imgforge "
		      "--quiet t ...\n");
	CHECK_INT(parse(&v, ARGS("-az")), OPT_ERROR);
	e5 = err_text();
	CHECK_STR(e5, "error: unknown option '-z' for 'imgforge t'; see 'imgforge t --help'\n");
	/* A hidden option is taken but never suggested. */
	CHECK_INT(parse(&v, ARGS("--hidden", "h")), 0);
	CHECK_STR(v.out, "h");
	CHECK_INT(parse(&v, ARGS("--hiden")), OPT_ERROR);
	free(e5);
	e5 = err_text();
	CHECK(!strstr(e5, "did you mean"));
}

TEST(test_help_from_the_table)
{
	struct vals v = { 0 };
	_cleanup_free_ char *out = NULL;
	size_t len;

	fflush(stdout);
	CHECK(freopen("out", "w", stdout) != NULL);
	CHECK_INT(parse(&v, ARGS("x", "--help", "--bogus")), OPT_HELP);
	CHECK_INT(opt_exit_status(OPT_HELP), 0);
	CHECK_INT(opt_exit_status(OPT_ERROR), EXIT_USAGE);
	CHECK_INT(parse(&v, ARGS("-h")), OPT_HELP);
	fflush(stdout);
	CHECK_INT(read_file("out", 1 << 20, &out, &len), 0);
	CHECK_STR(out, "usage: imgforge t [options] ARG...\n"
		       "\n"
		       "   --json               print JSON\n"
		       "   -a                   flag a\n"
		       "   -b, --bee            flag b\n"
		       "   -o, --output DIR     where to write\n"
		       "   --size SIZE          a size\n"
		       "   --cpus N             a count\n"
		       "   --set K=V            repeatable\n"
		       "                        second line\n"
		       "   --from SRC           a source\n"
		       "   --overlay DIR        an overlay\n"
		       "\n"
		       "footer\n"
		       "usage: imgforge t [options] ARG...\n"
		       "\n"
		       "   --json               print JSON\n"
		       "   -a                   flag a\n"
		       "   -b, --bee            flag b\n"
		       "   -o, --output DIR     where to write\n"
		       "   --size SIZE          a size\n"
		       "   --cpus N             a count\n"
		       "   --set K=V            repeatable\n"
		       "                        second line\n"
		       "   --from SRC           a source\n"
		       "   --overlay DIR        an overlay\n"
		       "\n"
		       "footer\n");
}

int main(void)
{
	RUN(test_long_both_spellings);
	RUN(test_short_spellings);
	RUN(test_dashdash_and_dash);
	RUN(test_list_and_callbacks_keep_order);
	RUN(test_bad_values);
	RUN(test_unknown_options);
	RUN(test_help_from_the_table);
	return tap_done();
}
