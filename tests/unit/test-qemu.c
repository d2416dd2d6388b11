/* SPDX-License-Identifier: MIT */
/* Unit tests for src/qemu.c: the QEMU command line and the console matcher. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vm/qemu.h"
#include "tap.h"

/* Index of the first argument equal to s, or -1. */
static int argv_find(char **argv, const char *s)
{
	int i;

	for (i = 0; argv[i]; i++)
		if (!strcmp(argv[i], s))
			return i;
	return -1;
}

/* The value after option opt (its first occurrence), or NULL. */
static const char *argv_value(char **argv, const char *opt)
{
	int i = argv_find(argv, opt);

	return i >= 0 && argv[i + 1] ? argv[i + 1] : NULL;
}

static size_t argv_count(char **argv, const char *s)
{
	size_t n = 0;

	for (; *argv; argv++)
		n += !strcmp(*argv, s);
	return n;
}

TEST(argv_bios_defaults)
{
	struct qemu_opts o = {
		.disk = "disk.img", .firmware = QEMU_FW_BIOS, .accel = QEMU_ACCEL_TCG};
	char **argv = qemu_argv_build(&o);

	CHECK_STR(argv[0], "qemu-system-x86_64");
	CHECK_STR(argv_value(argv, "-machine"), "q35");
	CHECK_STR(argv_value(argv, "-accel"), "tcg");
	CHECK_STR(argv_value(argv, "-cpu"), "max");
	CHECK_STR(argv_value(argv, "-m"), "1024");
	CHECK_STR(argv_value(argv, "-smp"), "2");
	CHECK_STR(argv_value(argv, "-display"), "none");
	CHECK_STR(argv_value(argv, "-serial"), "stdio");
	CHECK_STR(argv_value(argv, "-monitor"), "none");
	CHECK(argv_find(argv, "-nodefaults") > 0);
	CHECK(argv_find(argv, "-no-reboot") > 0);
	CHECK(argv_find(argv, "-snapshot") < 0);
	/* No firmware drives under BIOS: only the disk. */
	CHECK_INT(argv_count(argv, "-drive"), 1);
	CHECK_STR(argv_value(argv, "-drive"), "file=disk.img,if=none,id=disk0,format=raw");
	CHECK(argv_find(argv, "virtio-blk-pci,drive=disk0,bootindex=0") > 0);
	CHECK_STR(argv_value(argv, "-netdev"), "user,id=n0");
	CHECK(argv_find(argv, "virtio-net-pci,netdev=n0,romfile=") > 0);
	CHECK(argv_find(argv, "pvpanic") > 0);
	CHECK_STR(argv_value(argv, "-action"), "panic=exit-failure");
	CHECK(argv_find(argv, "-d") < 0);
	qemu_argv_free(argv);
}

TEST(argv_uefi_kvm_and_options)
{
	struct qemu_forward fw[2] = {{.host_port = 2222, .guest_port = 22},
				     {.udp = true, .host_port = 5353, .guest_port = 53}};
	const char *const cfg[] = {"imgforge/cutpoint=tls-generated", "x=a,b"};
	struct qemu_opts o = {.qemu = "/opt/q/qemu",
			      .disk = "/img/a,b.qcow2",
			      .disk_format = "qcow2",
			      .firmware = QEMU_FW_UEFI,
			      .accel = QEMU_ACCEL_KVM,
			      .ovmf_code = "/fw/CODE.fd",
			      .ovmf_vars = "/tmp/x/VARS.fd",
			      .memory_mib = 2048,
			      .cpus = 4,
			      .snapshot = true,
			      .guest_error_log = "/tmp/x/guest.log",
			      .forwards = fw,
			      .nforwards = 2,
			      .fw_cfg = cfg,
			      .nfw_cfg = 2};
	char **argv = qemu_argv_build(&o);
	int i;

	CHECK_STR(argv[0], "/opt/q/qemu");
	CHECK_STR(argv_value(argv, "-accel"), "kvm");
	CHECK_STR(argv_value(argv, "-cpu"), "host");
	CHECK_STR(argv_value(argv, "-m"), "2048");
	CHECK_STR(argv_value(argv, "-smp"), "4");
	CHECK(argv_find(argv, "-snapshot") > 0);
	CHECK_INT(argv_count(argv, "-drive"), 3);
	i = argv_find(argv, "-drive");
	CHECK(i > 0);
	CHECK_STR(argv[i + 1], "if=pflash,format=raw,unit=0,readonly=on,file=/fw/CODE.fd");
	CHECK_STR(argv[i + 2], "-drive");
	CHECK_STR(argv[i + 3], "if=pflash,format=raw,unit=1,file=/tmp/x/VARS.fd");
	CHECK_STR(argv[i + 4], "-drive");
	/* QEMU option values escape a comma by doubling it. */
	CHECK_STR(argv[i + 5], "file=/img/a,,b.qcow2,if=none,id=disk0,format=qcow2");
	CHECK_STR(argv_value(argv, "-netdev"),
		  "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=udp:127.0.0.1:5353-:53");
	CHECK_STR(argv_value(argv, "-d"), "guest_errors");
	CHECK_STR(argv_value(argv, "-D"), "/tmp/x/guest.log");
	CHECK_INT(argv_count(argv, "-fw_cfg"), 2);
	i = argv_find(argv, "-fw_cfg");
	CHECK_STR(argv[i + 1], "name=opt/imgforge/cutpoint,string=tls-generated");
	CHECK_STR(argv[i + 3], "name=opt/x,string=a,,b");
	qemu_argv_free(argv);
}

TEST(fw_cfg_check)
{
	const char *why = NULL;

	CHECK_INT(qemu_fw_cfg_check("imgforge/cutpoint=pg-initdb", &why), 0);
	CHECK_INT(qemu_fw_cfg_check("a=", &why), 0);
	CHECK_INT(qemu_fw_cfg_check("cutpoint", &why), -EINVAL);
	CHECK_STR(why, "expected NAME=STRING");
	CHECK_INT(qemu_fw_cfg_check("=x", &why), -EINVAL);
	CHECK_INT(qemu_fw_cfg_check("/etc/x=1", &why), -EINVAL);
	CHECK_INT(qemu_fw_cfg_check("a b=1", &why), -EINVAL);
	CHECK_INT(qemu_fw_cfg_check("a=line\nnext", &why), -EINVAL);
	CHECK_STR(why, "STRING has a byte that is not printable ASCII");
	CHECK_INT(qemu_fw_cfg_check("a=\x01", &why), -EINVAL);
	CHECK_INT(qemu_fw_cfg_check("0123456789012345678901234567890123456789012345678901=1", &why),
		  -EINVAL);
	CHECK_STR(why, "NAME is longer than 51 bytes");
}

TEST(forward_parse)
{
	struct qemu_forward f = {0};

	CHECK_INT(qemu_forward_parse("tcp:2222:22", &f), 0);
	CHECK(!f.udp);
	CHECK_INT(f.host_port, 2222);
	CHECK_INT(f.guest_port, 22);
	CHECK_INT(qemu_forward_parse("udp:65535:1", &f), 0);
	CHECK(f.udp);
	CHECK_INT(f.host_port, 65535);
	CHECK_INT(f.guest_port, 1);

	f = (struct qemu_forward){.host_port = 7};
	CHECK_INT(qemu_forward_parse("2222:22", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("tcp:2222", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("tcp::22", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("tcp:0:22", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("tcp:65536:22", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("tcp:22:22x", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("tcp:-1:22", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("tcp:127.0.0.1:22:22", &f), -EINVAL);
	CHECK_INT(qemu_forward_parse("sctp:1:2", &f), -EINVAL);
	/* Untouched on failure. */
	CHECK_INT(f.host_port, 7);
}

TEST(disk_format_by_magic)
{
	const char *fmt = NULL;
	FILE *f;

	f = fopen("q.img", "w");
	fwrite("QFI\xfb\0\0\0\3", 1, 8, f);
	fclose(f);
	f = fopen("r.img", "w");
	fwrite("\xeb\x63\x90", 1, 3, f);
	fseek(f, 510, SEEK_SET);
	fwrite("\x55\xaa", 1, 2, f);
	fclose(f);
	f = fopen("k.img", "w");
	fwrite("KDMV\3\0\0\0", 1, 8, f);
	fseek(f, 1023, SEEK_SET);
	fwrite("", 1, 1, f);
	fclose(f);
	f = fopen("v.img", "w");
	fwrite("conectix", 1, 8, f);
	fseek(f, 1023, SEEK_SET);
	fwrite("", 1, 1, f);
	fclose(f);
	f = fopen("empty.img", "w");
	fclose(f);
	f = fopen("zero.img", "w");
	fseek(f, 1 << 20, SEEK_SET);
	fwrite("", 1, 1, f);
	fclose(f);
	f = fopen("short.img", "w");
	fwrite("\xeb\x63\x90", 1, 3, f);
	fclose(f);

	CHECK_INT(qemu_disk_format("q.img", &fmt), 0);
	CHECK_STR(fmt, "qcow2");
	CHECK_INT(qemu_disk_format("r.img", &fmt), 0);
	CHECK_STR(fmt, "raw");
	/* What imgforge export writes: a streamOptimized VMDK, a dynamic VHD. */
	CHECK_INT(qemu_disk_format("k.img", &fmt), 0);
	CHECK_STR(fmt, "vmdk");
	CHECK_INT(qemu_disk_format("v.img", &fmt), 0);
	CHECK_STR(fmt, "vpc");
	/* Nothing a firmware could boot: refused before QEMU starts. */
	CHECK_INT(qemu_disk_format("empty.img", &fmt), -ENODATA);
	CHECK_INT(qemu_disk_format("short.img", &fmt), -ENODATA);
	CHECK_INT(qemu_disk_format("zero.img", &fmt), -ENOEXEC);
	CHECK_INT(qemu_disk_format("missing.img", &fmt), -ENOENT);
	CHECK_INT(qemu_disk_format(".", &fmt), -EISDIR);
}

static void touch(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f)
		fclose(f);
}

TEST(find_ovmf_prefers_4m_pairs)
{
	char *code = NULL, *vars = NULL;

	CHECK_INT(mkdir_p("fw", 0755), 0);
	CHECK_INT(qemu_find_ovmf("fw", &code, &vars), -ENOENT);
	CHECK(!code && !vars);
	/* A code file without its variable store is no use. */
	touch("fw/OVMF_CODE_4M.fd");
	CHECK_INT(qemu_find_ovmf("fw", &code, &vars), -ENOENT);
	touch("fw/OVMF_CODE.fd");
	touch("fw/OVMF_VARS.fd");
	CHECK_INT(qemu_find_ovmf("fw", &code, &vars), 0);
	CHECK_STR(code, "fw/OVMF_CODE.fd");
	CHECK_STR(vars, "fw/OVMF_VARS.fd");
	free(code);
	free(vars);
	touch("fw/OVMF_VARS_4M.fd");
	CHECK_INT(qemu_find_ovmf("fw", &code, &vars), 0);
	CHECK_STR(code, "fw/OVMF_CODE_4M.fd");
	CHECK_STR(vars, "fw/OVMF_VARS_4M.fd");
	free(code);
	free(vars);
}

TEST(find_program_in_path)
{
	char *p = NULL;

	CHECK_INT(mkdir_p("bin", 0755), 0);
	touch("bin/tool");
	CHECK_INT(qemu_find_program("tool", &p), -ENOENT);
	CHECK_INT(chmod("bin/tool", 0755), 0);
	setenv("PATH", "/nonexistent::bin", 1);
	CHECK_INT(qemu_find_program("tool", &p), 0);
	CHECK_STR(p, "bin/tool");
	free(p);
	CHECK_INT(qemu_find_program("./bin/tool", &p), 0);
	CHECK_STR(p, "./bin/tool");
	free(p);
	CHECK_INT(qemu_find_program("absent-tool", &p), -ENOENT);
}

/* A console as OVMF and Linux write it: escapes, \r\n, a prompt without newline. */
static const char console_text[] =
	"\x1b[2J\x1b[01;01H\x1b[=3h\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r\n"
	"\x1b[1m\x1b[33m\x1b[40mMapping table\x1b[0m\x1b[37m\x1b[40m\r\n"
	"\x1b]0;title\x07\x1b(B[    0.000000] Linux version 6.1.0\r\n"
	"Welcome to \x1b[1mDebian GNU/Linux 12\x1b[0m!\r\n"
	"\r\n"
	"atarys login: ";

static const char *const console_patterns[] = {
	"^atarys login: $",	 /* the prompt, no newline */
	"^Mapping table$",	 /* colour codes around it */
	"Welcome to Debian",	 /* bold in the middle */
	"^BdsDxe: loading",	 /* after screen clearing */
	"^\\[ +0\\.0+\\] Linux", /* after a title (OSC) and a charset escape */
};

/* Feed console_text in pieces of every size: the outcome must not depend on it. */
TEST(console_matches_across_any_split)
{
	size_t len = sizeof(console_text) - 1, step;

	for (step = 1; step <= len; step++) {
		struct qemu_console *c = NULL;
		size_t off, i;

		CHECK_INT(
			qemu_console_new(console_patterns, ARRAY_SIZE(console_patterns), &c, NULL),
			0);
		for (off = 0; off < len; off += step)
			qemu_console_feed(c, console_text + off,
					  len - off < step ? len - off : step);
		/* Only the quiet console ends the prompt's line, for `$`. */
		CHECK(!qemu_console_matched(c, 0));
		CHECK(qemu_console_pending(c));
		qemu_console_idle(c);
		CHECK(!qemu_console_pending(c));
		for (i = 0; i < ARRAY_SIZE(console_patterns); i++)
			if (!qemu_console_matched(c, i))
				printf("#   step %zu: pattern %zu '%s' did not match\n", step, i,
				       console_patterns[i]);
		CHECK(qemu_console_all_matched(c));
		CHECK(qemu_console_waiting_for(c) == NULL);
		CHECK(!qemu_console_panicked(c));
		qemu_console_free(c);
	}
}

TEST(console_lines_are_cleaned)
{
	const char *lines[QEMU_CONSOLE_LINES];
	struct qemu_console *c = NULL;
	size_t n;

	CHECK_INT(qemu_console_new(NULL, 0, &c, NULL), 0);
	qemu_console_feed(c, console_text, sizeof(console_text) - 1);
	n = qemu_console_last_lines(c, lines);
	/* The empty line between Welcome and login is not kept. */
	CHECK_INT(n, 5);
	CHECK_STR(lines[0], "BdsDxe: loading Boot0001");
	CHECK_STR(lines[1], "Mapping table");
	CHECK_STR(lines[2], "[    0.000000] Linux version 6.1.0");
	CHECK_STR(lines[3], "Welcome to Debian GNU/Linux 12!");
	CHECK_STR(lines[4], "atarys login: ");
	/* Other control characters go too; tabs stay. */
	qemu_console_feed(c,
			  "\na\tb\x07\x08\x7f"
			  "c\r\n",
			  10);
	n = qemu_console_last_lines(c, lines);
	CHECK_STR(lines[n - 1], "a\tbc");
	qemu_console_free(c);
}

TEST(console_patterns_in_any_order)
{
	static const char *const pats[] = {"second", "first"};
	struct qemu_console *c = NULL;

	CHECK_INT(qemu_console_new(pats, 2, &c, NULL), 0);
	CHECK_STR(qemu_console_waiting_for(c), "second");
	CHECK_INT(qemu_console_feed(c, "the first line\n", 15), 1);
	CHECK(qemu_console_matched(c, 1));
	CHECK(!qemu_console_matched(c, 0));
	CHECK_STR(qemu_console_waiting_for(c), "second");
	CHECK(!qemu_console_all_matched(c));
	CHECK_INT(qemu_console_feed(c, "the second line\n", 16), 2);
	CHECK(qemu_console_all_matched(c));
	/* A match stays a match. */
	CHECK_INT(qemu_console_feed(c, "other\n", 6), 2);
	qemu_console_free(c);
}

/*
 * `$` matches where a line ends, never at the end of the part of a line
 * that has come so far: "MARKER 4" is not the line "MARKER 42".
 */
TEST(console_dollar_needs_the_end_of_the_line)
{
	static const char *const pats[] = {"^MARKER [0-9]+$", "^MARKER 4$", "MARK"};
	struct qemu_console *c = NULL;

	CHECK_INT(qemu_console_new(pats, 3, &c, NULL), 0);
	/* Without `$`, a pattern matches as soon as its text has come. */
	CHECK_INT(qemu_console_feed(c, "MARKER 4", 8), 1);
	CHECK(qemu_console_matched(c, 2));
	CHECK_INT(qemu_console_feed(c, "2\r\n", 3), 2);
	CHECK(qemu_console_matched(c, 0));
	CHECK(!qemu_console_matched(c, 1));
	CHECK(!qemu_console_pending(c));
	/* A line that stopped growing is whole: idle matches it, `$` included. */
	CHECK_INT(qemu_console_feed(c, "MARKER 4", 8), 2);
	CHECK(qemu_console_pending(c));
	CHECK_INT(qemu_console_idle(c), 3);
	/* Idle twice, or with nothing pending, changes nothing. */
	CHECK_INT(qemu_console_idle(c), 3);
	qemu_console_free(c);
}

/* Each line is matched on its own: a pattern does not span a line break. */
TEST(console_matches_per_line)
{
	static const char *const pats[] = {"foo.*bar"};
	struct qemu_console *c = NULL;

	CHECK_INT(qemu_console_new(pats, 1, &c, NULL), 0);
	qemu_console_feed(c, "foo\nbar\n", 8);
	CHECK(!qemu_console_all_matched(c));
	qemu_console_feed(c, "foo \x1b[1mbar\n", 12);
	CHECK(qemu_console_all_matched(c));
	qemu_console_free(c);
}

TEST(console_bad_regex)
{
	static const char *const pats[] = {"ok", "(unclosed"};
	struct qemu_console *c = NULL;
	char *err = NULL;

	CHECK_INT(qemu_console_new(pats, 2, &c, &err), -EINVAL);
	CHECK(c == NULL);
	CHECK(err && strstr(err, "'(unclosed'"));
	free(err);
}

TEST(console_panic)
{
	struct qemu_console *c = NULL;
	static const char text[] = "[    1.2] Kernel pa";

	CHECK_INT(qemu_console_new(NULL, 0, &c, NULL), 0);
	qemu_console_feed(c, "[    1.1] kernel: panic=0\n", 26);
	CHECK(!qemu_console_panicked(c));
	qemu_console_feed(c, text, sizeof(text) - 1);
	CHECK(!qemu_console_panicked(c));
	qemu_console_feed(c, "nic - not syncing: VFS\r\n", 24);
	CHECK(qemu_console_panicked(c));
	qemu_console_free(c);
}

TEST(console_ring_keeps_last_30)
{
	const char *lines[QEMU_CONSOLE_LINES];
	struct qemu_console *c = NULL;
	char buf[64];
	size_t n, i;

	CHECK_INT(qemu_console_new(NULL, 0, &c, NULL), 0);
	CHECK_INT(qemu_console_last_lines(c, lines), 0);
	for (i = 1; i <= 10; i++) {
		snprintf(buf, sizeof(buf), "line %zu\r\n", i);
		qemu_console_feed(c, buf, strlen(buf));
	}
	n = qemu_console_last_lines(c, lines);
	CHECK_INT(n, 10);
	CHECK_STR(lines[0], "line 1");
	CHECK_STR(lines[9], "line 10");
	for (i = 11; i <= 75; i++) {
		snprintf(buf, sizeof(buf), "line %zu\r\n", i);
		qemu_console_feed(c, buf, strlen(buf));
	}
	n = qemu_console_last_lines(c, lines);
	CHECK_INT(n, QEMU_CONSOLE_LINES);
	CHECK_STR(lines[0], "line 46");
	CHECK_STR(lines[29], "line 75");
	/* The incomplete line counts as the newest of the 30. */
	qemu_console_feed(c, "login: ", 7);
	n = qemu_console_last_lines(c, lines);
	CHECK_INT(n, QEMU_CONSOLE_LINES);
	CHECK_STR(lines[0], "line 47");
	CHECK_STR(lines[28], "line 75");
	CHECK_STR(lines[29], "login: ");
	qemu_console_free(c);
}

TEST(console_long_lines_are_cut)
{
	static const char *const pats[] = {"^END$"};
	const char *lines[QEMU_CONSOLE_LINES];
	struct qemu_console *c = NULL;
	char *big = xmalloc(10000);
	size_t n;

	memset(big, 'x', 10000);
	CHECK_INT(qemu_console_new(pats, 1, &c, NULL), 0);
	qemu_console_feed(c, big, 10000);
	qemu_console_feed(c, "\nEND\n", 5);
	CHECK(qemu_console_all_matched(c));
	n = qemu_console_last_lines(c, lines);
	CHECK_INT(n, 4);
	CHECK_INT(strlen(lines[0]), 4096);
	CHECK_INT(strlen(lines[2]), 10000 - 2 * 4096);
	qemu_console_free(c);
	free(big);
}

int main(void)
{
	RUN(argv_bios_defaults);
	RUN(argv_uefi_kvm_and_options);
	RUN(forward_parse);
	RUN(fw_cfg_check);
	RUN(disk_format_by_magic);
	RUN(find_ovmf_prefers_4m_pairs);
	RUN(find_program_in_path);
	RUN(console_matches_across_any_split);
	RUN(console_lines_are_cleaned);
	RUN(console_patterns_in_any_order);
	RUN(console_dollar_needs_the_end_of_the_line);
	RUN(console_matches_per_line);
	RUN(console_bad_regex);
	RUN(console_panic);
	RUN(console_ring_keeps_last_30);
	RUN(console_long_lines_are_cut);
	return tap_done();
}
