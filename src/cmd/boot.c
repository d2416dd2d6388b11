/* SPDX-License-Identifier: MIT */
/* imgforge boot: boot a disk image in QEMU and wait for console patterns. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "core/file.h"
#include "core/hash.h"
#include "core/util.h"
#include "fs/fat.h"
#include "vm/qemu.h"

static const char boot_usage[] =
	"usage: imgforge boot DISK [--firmware uefi|bios] [--memory M] [--cpus N]\n"
	"                     [--expect REGEX]... [--timeout S] [--forward tcp|udp:HOST:GUEST]...\n"
	"                     [--fw-cfg NAME=STRING]... [--snapshot] [--log FILE] [--keep]\n"
	"                     [--quiet] [--accel auto|kvm|tcg]\n"
	"                     [--user-data FILE [--meta-data FILE] [--network-config FILE]]\n"
	"\n"
	"Boot DISK (raw, or qcow2 by its header) in qemu-system-x86_64 with a virtio\n"
	"disk and network, the serial console streamed to the terminal. With\n"
	"--expect, exit 0 as soon as every pattern has appeared on the console (in\n"
	"any order) and stop the VM; exit 1 with the last console lines on timeout,\n"
	"guest kernel panic or QEMU failure. Without --expect, run until QEMU exits\n"
	"and exit with its status. --user-data gives the guest a cloud-init NoCloud\n"
	"seed: a FAT volume labelled CIDATA holding the files given.\n";

/* The seed's files: what cloud-init's NoCloud source reads, up to 16 MiB each. */
#define SEED_FILE_MAX (16u << 20)

struct seed {
	const char *user_data, *meta_data, *network_config;
	char *dir, *path; /* the temporary directory and the volume in it */
};

/*
 * Write the NoCloud seed into a private temporary directory: user-data,
 * meta-data (given, or "instance-id: iid-imgforge-HASH" of the user-data,
 * so that other user-data is a new instance to cloud-init and the same is
 * not), network-config when given. Deterministic: the same files give the
 * same volume. One error line and -1 on failure, nothing left behind.
 */
static int seed_write(struct seed *sd)
{
	const char *paths[3] = {sd->user_data, sd->meta_data, sd->network_config};
	static const char *const names[3] = {"user-data", "meta-data", "network-config"};
	char *data[3] = {NULL, NULL, NULL};
	size_t len[3] = {0, 0, 0}, n = 0, i;
	struct fat_file files[3];
	struct fat_opts fo = {.label = "CIDATA", .long_names = true, .mtime = 0};
	struct strbuf err = STRBUF_INIT;
	char hash[SHA256_HEX_LEN];
	const char *tmp = getenv("TMPDIR");
	uint64_t total = 0;
	int fd = -1, r = -1;

	for (i = 0; i < 3; i++) {
		int k;

		if (!paths[i])
			continue;
		k = read_file(paths[i], SEED_FILE_MAX, &data[i], &len[i]);
		if (k < 0) {
			error("boot: cannot read --%s '%s': %s%s", names[i], paths[i],
			      k == -EFBIG ? "larger than 16 MiB" : strerror(-k),
			      k == -EFBIG ? ": a NoCloud seed takes small files" : "");
			goto out;
		}
		total += len[i];
	}
	sha256_hex(data[0], len[0], hash);
	if (!data[1]) {
		data[1] = xasprintf("instance-id: iid-imgforge-%.16s\n", hash);
		len[1] = strlen(data[1]);
	}
	for (i = 0; i < 3; i++)
		if (data[i])
			files[n++] = (struct fat_file){names[i], data[i], len[i]};
	fo.volume_id = (uint32_t)strtoul((char[]){hash[0], hash[1], hash[2], hash[3], hash[4],
						  hash[5], hash[6], hash[7], '\0'},
					 NULL, 16);
	/* FAT32's smallest size, or room for the files; sparse either way. */
	fo.size = total + (2u << 20) > (34u << 20) ? (total + (2u << 20) + 0xFFFFF) & ~0xFFFFFULL
						   : 34u << 20;
	sd->dir = xasprintf("%s/imgforge-seed-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(sd->dir)) {
		error("boot: cannot create a temporary directory for the seed: %s",
		      strerror(errno));
		free(sd->dir);
		sd->dir = NULL;
		goto out;
	}
	sd->path = path_join(sd->dir, "cidata.img");
	fd = open(sd->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)fo.size) < 0) {
		error("boot: cannot create '%s': %s", sd->path, strerror(errno));
		goto out;
	}
	if (fat_write(fd, 0, &fo, files, n, &err) < 0) {
		error("boot: cannot write the NoCloud seed: %s", strbuf_str(&err));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r < 0 && sd->dir)
		rm_rf(sd->dir);
	for (i = 0; i < 3; i++)
		free(data[i]);
	strbuf_release(&err);
	return r;
}

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

static int opt_memory(const struct opt *o, const char *arg, struct strbuf *err)
{
	if (parse_memory(arg, o->value) < 0) {
		strbuf_addf(err,
			    "bad --memory '%s': give MiB or a size such as 1G or 1536M "
			    "(at least 16M)",
			    arg);
		return -EINVAL;
	}
	return 0;
}

struct forwards {
	struct qemu_forward *v;
	size_t n, alloc;
};

static int opt_forward(const struct opt *o, const char *arg, struct strbuf *err)
{
	struct forwards *f = o->value;

	GROW(f->v, f->alloc, f->n + 1);
	if (qemu_forward_parse(arg, &f->v[f->n]) < 0) {
		strbuf_addf(err,
			    "bad --forward '%s': expected tcp:HOSTPORT:GUESTPORT or "
			    "udp:HOSTPORT:GUESTPORT",
			    arg);
		return -EINVAL;
	}
	f->n++;
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

/* In the order of enum qemu_firmware and enum qemu_accel. */
static const char *const firmwares[] = {"uefi", "bios", NULL};
static const char *const accels[] = {"auto", "kvm", "tcg", NULL};
_Static_assert(QEMU_FW_UEFI == 0 && QEMU_FW_BIOS == 1, "firmwares[] follows enum qemu_firmware");
_Static_assert(QEMU_ACCEL_AUTO == 0 && QEMU_ACCEL_KVM == 1 && QEMU_ACCEL_TCG == 2,
	       "accels[] follows enum qemu_accel");

int cmd_boot(int argc, char **argv)
{
	struct qemu_boot_opts o = {0};
	struct qemu_result res = {0};
	struct opt_list expect = {0};
	struct opt_list fw_cfg = {0};
	struct forwards fwd = {0};
	const char *log_path = NULL;
	struct seed seed = {0};
	_cleanup_fclose_ FILE *log = NULL;
	bool quiet = false;
	unsigned timeout = UINT_MAX; /* not given */
	const struct opt opts[] = {
		OPT_CHOICE(0, "firmware", &o.vm.firmware, "F", firmwares,
			   "uefi (OVMF, default) or bios (SeaBIOS)"),
		OPT_CALLBACK(0, "memory", &o.vm.memory_mib, "M",
			     "guest memory: MiB, or with a unit (1G, 1536M);\ndefault 1024",
			     opt_memory),
		OPT_UINT(0, "cpus", &o.vm.cpus, "N", 1, 255, "virtual CPUs (default 2)"),
		OPT_LIST(0, "expect", &expect, "REGEX",
			 "POSIX extended regex matched against each console line,\n"
			 "without \\r and escape sequences; repeatable"),
		OPT_UINT(0, "timeout", &timeout, "S", 0, 7 * 24 * 3600,
			 "give up after S seconds (default 300 with --expect,\n0: never)"),
		OPT_CALLBACK(0, "forward", &fwd, "tcp|udp:HOSTPORT:GUESTPORT",
			     "forward 127.0.0.1:HOSTPORT to the guest's GUESTPORT;\nrepeatable",
			     opt_forward),
		OPT_LIST(0, "fw-cfg", &fw_cfg, "NAME=STRING",
			 "give the guest STRING in QEMU's firmware configuration,\n"
			 "as opt/NAME (Linux: /sys/firmware/qemu_fw_cfg); repeatable"),
		OPT_FLAG(0, "snapshot", &o.vm.snapshot, "discard every write to DISK"),
		OPT_STRING(0, "log", &log_path, "FILE", "also write the console to FILE"),
		OPT_FLAG(0, "keep", &o.keep,
			 "once the patterns appeared, leave the VM running\n(prints its pid)"),
		OPT_FLAG('q', "quiet", &quiet, "do not copy the console to standard output"),
		OPT_CHOICE(0, "accel", &o.vm.accel, "A", accels,
			   "auto (default: KVM when /dev/kvm is usable, else\nTCG), kvm, tcg"),
		OPT_STRING(0, "user-data", &seed.user_data, "FILE",
			   "cloud-init user-data, given to the guest in a NoCloud\n"
			   "seed volume (docs/boot.md)"),
		OPT_STRING(
			0, "meta-data", &seed.meta_data, "FILE",
			"the seed's meta-data (default: an instance-id made\nfrom the user-data)"),
		OPT_STRING(0, "network-config", &seed.network_config, "FILE",
			   "the seed's network-config (default: none, DHCP)"),
		OPT_END(),
	};
	const struct opt_cmd cmd = {.name = "boot", .usage = boot_usage, .opts = opts};
	int n, ret = EXIT_USAGE;

	o.vm.firmware = QEMU_FW_UEFI;
	o.vm.memory_mib = 1024;
	o.vm.cpus = 2;
	n = parse_options(&cmd, argc, argv);
	if (n < 0) {
		ret = opt_exit_status(n);
		goto out;
	}
	if (n > 1) {
		error("boot: more than one disk given ('%s' and '%s')", argv[0], argv[1]);
		goto out;
	}
	o.vm.disk = argv[0];
	o.nexpect = expect.n;
	o.vm.nforwards = fwd.n;
	if (!o.vm.disk) {
		opt_print_help(&cmd, stderr);
		goto out;
	}
	if ((seed.meta_data || seed.network_config) && !seed.user_data) {
		error("boot: --%s needs --user-data (the seed is made for cloud-init's user-data)",
		      seed.meta_data ? "meta-data" : "network-config");
		goto out;
	}
	if (o.keep && !o.nexpect) {
		error("boot: --keep needs --expect (it keeps the VM once the patterns appeared)");
		goto out;
	}
	for (size_t i = 0; i < fw_cfg.n; i++) {
		const char *why = NULL;

		if (qemu_fw_cfg_check(fw_cfg.v[i], &why) < 0) {
			error("boot: --fw-cfg '%s': %s", fw_cfg.v[i], why);
			goto out;
		}
	}
	o.vm.fw_cfg = fw_cfg.v;
	o.vm.nfw_cfg = fw_cfg.n;
	o.expect = expect.v;
	o.vm.forwards = fwd.v;
	if (o.nexpect) {
		struct qemu_console *check = NULL;
		_cleanup_free_ char *msg = NULL;

		if (qemu_console_new(expect.v, o.nexpect, &check, &msg) < 0) {
			error("boot: --expect: %s", msg);
			goto out;
		}
		qemu_console_free(check);
	}
	if (timeout != UINT_MAX)
		o.timeout_sec = timeout;
	else if (o.nexpect)
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
	if (seed.user_data) {
		if (seed_write(&seed) < 0)
			goto out;
		o.vm.seed = seed.path;
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
	/* QEMU opened the seed at start-up: a kept VM does not need the path. */
	if (seed.dir)
		rm_rf(seed.dir);
	free(seed.dir);
	free(seed.path);
	qemu_result_release(&res);
	opt_list_release(&expect);
	opt_list_release(&fw_cfg);
	free(fwd.v);
	return ret;
}
