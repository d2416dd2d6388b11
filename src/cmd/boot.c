/* SPDX-License-Identifier: MIT */
/* imgforge boot: boot a disk image in QEMU and wait for console patterns. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "vm/qemu.h"
#include "core/util.h"

static const char boot_usage[] =
	"usage: imgforge boot DISK [--firmware uefi|bios] [--memory M] [--cpus N]\n"
	"                     [--expect REGEX]... [--timeout S] [--forward tcp|udp:HOST:GUEST]...\n"
	"                     [--snapshot] [--log FILE] [--keep] [--quiet] [--accel auto|kvm|tcg]\n"
	"\n"
	"Boot DISK (raw, or qcow2 by its header) in qemu-system-x86_64 with a virtio\n"
	"disk and network, the serial console streamed to the terminal. With\n"
	"--expect, exit 0 as soon as every pattern has appeared on the console (in\n"
	"any order) and stop the VM; exit 1 with the last console lines on timeout,\n"
	"guest kernel panic or QEMU failure. Without --expect, run until QEMU exits\n"
	"and exit with its status.\n"
	"\n"
	"   --firmware F      uefi (OVMF, default) or bios (SeaBIOS)\n"
	"   --memory M        guest memory: MiB, or with a unit (1G, 1536M); default 1024\n"
	"   --cpus N          virtual CPUs (default 2)\n"
	"   --expect REGEX    POSIX extended regex matched against each console line,\n"
	"                     without \\r and escape sequences; repeatable\n"
	"   --timeout S       give up after S seconds (default 300 with --expect, 0: never)\n"
	"   --forward tcp:HOSTPORT:GUESTPORT, --forward udp:HOSTPORT:GUESTPORT\n"
	"                     forward 127.0.0.1:HOSTPORT to the guest's GUESTPORT; repeatable\n"
	"   --snapshot        discard every write to DISK\n"
	"   --log FILE        also write the console to FILE\n"
	"   --keep            once the patterns appeared, leave the VM running (prints its pid)\n"
	"   --quiet           do not copy the console to standard output\n"
	"   --accel A         auto (default: KVM when /dev/kvm is usable, else TCG), kvm, tcg\n";

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end || errno || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* Plain numbers are MiB (as QEMU's -m takes them); "1G", "1536M" carry a unit. */
static int parse_memory(const char *s, uint64_t *ret_mib)
{
	unsigned long mib;
	uint64_t bytes;

	if (parse_uint(s, 1UL << 24, &mib) == 0) {
		bytes = (uint64_t)mib << 20;
	} else if (parse_size(s, &bytes) < 0) {
		return -EINVAL;
	}
	if (bytes % (1 << 20) || bytes < (16 << 20) || bytes > ((uint64_t)1 << 44))
		return -EINVAL;
	*ret_mib = bytes >> 20;
	return 0;
}

static void print_last_lines(const struct qemu_result *res)
{
	const char *lines[QEMU_CONSOLE_LINES];
	size_t n = qemu_console_last_lines(res->console, lines), i;

	if (res->qemu_stderr[0]) {
		fputs(res->qemu_stderr, stderr);
		if (!str_endswith(res->qemu_stderr, "\n"))
			fputc('\n', stderr);
	}
	if (!n) {
		fputs("boot: the console stayed silent\n", stderr);
		return;
	}
	fprintf(stderr, "boot: last %zu console line%s:\n", n, n == 1 ? "" : "s");
	for (i = 0; i < n; i++)
		fprintf(stderr, "    %s\n", lines[i]);
}

static void boot_on_start(enum qemu_accel accel, const char *kvm_failure, void *userdata)
{
	(void)userdata;
	if (kvm_failure)
		warning("boot: QEMU failed under KVM (%s); trying again with TCG", kvm_failure);
	if (accel == QEMU_ACCEL_KVM)
		info("boot: KVM");
	else
		info("boot: TCG (%s): expect a slow boot", kvm_failure	       ? "KVM failed"
							   : qemu_kvm_usable() ? "as asked"
									       : "no KVM");
}

int cmd_boot(int argc, char **argv)
{
	struct qemu_boot_opts o = {0};
	struct qemu_result res = {0};
	const char **expect = NULL;
	struct qemu_forward *fwd = NULL;
	size_t expect_alloc = 0, fwd_alloc = 0;
	const char *v, *log_path = NULL, *timeout_arg = NULL;
	_cleanup_fclose_ FILE *log = NULL;
	bool quiet = false;
	unsigned long n;
	int i, k, ret = EXIT_USAGE;

	o.vm.firmware = QEMU_FW_UEFI;
	o.vm.memory_mib = 1024;
	o.vm.cpus = 2;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			ret = usage_print(boot_usage, true);
			goto out;
		} else if (!strcmp(a, "--snapshot")) {
			o.vm.snapshot = true;
		} else if (!strcmp(a, "--keep")) {
			o.keep = true;
		} else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
			quiet = true;
		} else if ((k = cmd_opt_value("boot", "--firmware", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			if (!strcmp(v, "uefi")) {
				o.vm.firmware = QEMU_FW_UEFI;
			} else if (!strcmp(v, "bios")) {
				o.vm.firmware = QEMU_FW_BIOS;
			} else {
				error("boot: --firmware takes uefi or bios, not '%s'", v);
				goto out;
			}
		} else if ((k = cmd_opt_value("boot", "--accel", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			if (!strcmp(v, "auto")) {
				o.vm.accel = QEMU_ACCEL_AUTO;
			} else if (!strcmp(v, "kvm")) {
				o.vm.accel = QEMU_ACCEL_KVM;
			} else if (!strcmp(v, "tcg")) {
				o.vm.accel = QEMU_ACCEL_TCG;
			} else {
				error("boot: --accel takes auto, kvm or tcg, not '%s'", v);
				goto out;
			}
		} else if ((k = cmd_opt_value("boot", "--memory", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			if (parse_memory(v, &o.vm.memory_mib) < 0) {
				error("boot: bad --memory '%s': give MiB or a size such as 1G or "
				      "1536M (at least 16M)",
				      v);
				goto out;
			}
		} else if ((k = cmd_opt_value("boot", "--cpus", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			if (parse_uint(v, 255, &n) < 0 || n == 0) {
				error("boot: bad --cpus '%s': give a number from 1 to 255", v);
				goto out;
			}
			o.vm.cpus = (unsigned)n;
		} else if ((k = cmd_opt_value("boot", "--timeout", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			if (parse_uint(v, 7 * 24 * 3600, &n) < 0) {
				error("boot: bad --timeout '%s': give whole seconds", v);
				goto out;
			}
			o.timeout_sec = (unsigned)n;
			timeout_arg = v;
		} else if ((k = cmd_opt_value("boot", "--expect", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			GROW(expect, expect_alloc, o.nexpect + 1);
			expect[o.nexpect++] = v;
		} else if ((k = cmd_opt_value("boot", "--forward", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			GROW(fwd, fwd_alloc, o.vm.nforwards + 1);
			if (qemu_forward_parse(v, &fwd[o.vm.nforwards]) < 0) {
				error("boot: bad --forward '%s': expected tcp:HOSTPORT:GUESTPORT "
				      "or udp:HOSTPORT:GUESTPORT",
				      v);
				goto out;
			}
			o.vm.nforwards++;
		} else if ((k = cmd_opt_value("boot", "--log", argc, argv, &i, &v))) {
			if (k < 0)
				goto out;
			log_path = v;
		} else if (a[0] == '-' && a[1]) {
			error("boot: unknown option '%s'; see 'imgforge boot --help'", a);
			goto out;
		} else if (o.vm.disk) {
			error("boot: more than one disk given ('%s' and '%s')", o.vm.disk, a);
			goto out;
		} else {
			o.vm.disk = a;
		}
	}
	if (!o.vm.disk) {
		ret = usage_print(boot_usage, false);
		goto out;
	}
	if (o.keep && !o.nexpect) {
		error("boot: --keep needs --expect (it keeps the VM once the patterns appeared)");
		goto out;
	}
	o.expect = expect;
	o.vm.forwards = fwd;
	if (o.nexpect) {
		struct qemu_console *check = NULL;
		_cleanup_free_ char *msg = NULL;

		if (qemu_console_new(expect, o.nexpect, &check, &msg) < 0) {
			error("boot: --expect: %s", msg);
			goto out;
		}
		qemu_console_free(check);
	}
	if (!timeout_arg && o.nexpect)
		o.timeout_sec = 300;

	ret = 1;
	if (log_path) {
		log = fopen(log_path, "we");
		if (!log) {
			error("boot: cannot write '%s': %s", log_path, strerror(errno));
			goto out;
		}
	}
	if (o.vm.accel == QEMU_ACCEL_KVM && !qemu_kvm_usable()) {
		error("boot: /dev/kvm cannot be opened read-write: use --accel tcg (slow) or "
		      "get access to /dev/kvm");
		goto out;
	}
	o.echo = quiet ? NULL : stdout;
	o.log = log;
	o.qemu_stderr = log_get_level() >= LOG_VERBOSE ? stderr : NULL;

	o.on_start = boot_on_start;
	if (qemu_boot(&o, &res) < 0) {
		error("boot: %s", res.error);
		goto out;
	}
	switch (res.outcome) {
	case QEMU_MATCHED:
		info("boot: %zu pattern%s seen after %.1f s", o.nexpect, o.nexpect == 1 ? "" : "s",
		     res.seconds);
		if (res.pid > 0)
			fprintf(stderr,
				"boot: the VM keeps running as pid %d; stop it with 'kill %d'\n",
				(int)res.pid, (int)res.pid);
		ret = 0;
		break;
	case QEMU_TIMEOUT:
		if (o.nexpect)
			error("boot: timed out after %u s waiting for '%s'", o.timeout_sec,
			      qemu_console_waiting_for(res.console));
		else
			error("boot: timed out after %u s; QEMU stopped", o.timeout_sec);
		print_last_lines(&res);
		break;
	case QEMU_PANIC:
		error("boot: guest kernel panic after %.1f s", res.seconds);
		print_last_lines(&res);
		break;
	case QEMU_EXITED:
		if (!o.nexpect && res.exit_status == 0) {
			ret = 0;
			break;
		}
		if (o.nexpect)
			error("boot: QEMU exited with status %d before '%s' appeared",
			      res.exit_status, qemu_console_waiting_for(res.console));
		else
			error("boot: QEMU exited with status %d", res.exit_status);
		print_last_lines(&res);
		if (!o.nexpect && res.exit_status > 0 && res.exit_status < 126)
			ret = res.exit_status;
		break;
	case QEMU_INTERRUPTED:
		error("boot: interrupted; QEMU stopped");
		ret = res.exit_status;
		break;
	}
	if (log && fflush(log) != 0) {
		error("boot: cannot write '%s': %s", log_path, strerror(errno));
		ret = 1;
	}
out:
	qemu_result_release(&res);
	free(expect);
	free(fwd);
	return ret;
}
