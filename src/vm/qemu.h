/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_QEMU_H
#define IMGFORGE_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/*
 * Boot a disk image in QEMU and watch its serial console: the module behind
 * `imgforge boot` (docs/boot.md), usable by any test that needs to boot an
 * image. Three layers, each usable alone:
 *
 *   qemu_argv_build()  the QEMU command line for a struct qemu_opts (pure);
 *   qemu_console_*     a console matcher fed with raw serial bytes: strips
 *                      \r and ANSI escapes, matches regexes per line, spots
 *                      kernel panics, keeps the last lines (pure);
 *   qemu_boot()        runs QEMU, streams the console, waits for the
 *                      patterns or a timeout, and stops QEMU.
 *
 * No function here logs: failures come back as -errno with a message in
 * the result for the caller to print once.
 */

enum qemu_firmware { QEMU_FW_UEFI, QEMU_FW_BIOS };
enum qemu_accel { QEMU_ACCEL_AUTO, QEMU_ACCEL_KVM, QEMU_ACCEL_TCG };

/* Keep this many console lines for error reports. */
#define QEMU_CONSOLE_LINES 30

struct qemu_forward {
	bool udp;	    /* false: tcp */
	uint16_t host_port; /* bound on 127.0.0.1 only */
	uint16_t guest_port;
};

struct qemu_opts {
	const char *qemu;	 /* binary; NULL: "qemu-system-x86_64" */
	const char *disk;	 /* image path */
	const char *disk_format; /* "raw" or "qcow2"; NULL: raw (see qemu_disk_format) */
	enum qemu_firmware firmware;
	enum qemu_accel accel;	     /* qemu_argv_build needs KVM or TCG, not AUTO */
	const char *ovmf_code;	     /* UEFI: read-only firmware (pflash unit 0) */
	const char *ovmf_vars;	     /* UEFI: a writable copy of the variable store (unit 1) */
	uint64_t memory_mib;	     /* 0: 1024 */
	unsigned cpus;		     /* 0: 2 */
	bool snapshot;		     /* discard disk writes (-snapshot) */
	const char *seed;	     /* a raw volume given read-only as a second disk (a
					cloud-init NoCloud seed), or NULL */
	const char *guest_error_log; /* QEMU's -d guest_errors log (-D), or NULL */
	const struct qemu_forward *forwards;
	size_t nforwards;
	/* "NAME=STRING" each: -fw_cfg name=opt/NAME,string=STRING (checked by qemu_fw_cfg_check) */
	const char *const *fw_cfg;
	size_t nfw_cfg;
};

/*
 * Build QEMU's argv for o: NULL-terminated, every string malloc'd; the caller
 * frees it with qemu_argv_free(). The serial console goes to QEMU's stdout.
 */
char **qemu_argv_build(const struct qemu_opts *o);

/*
 * Check one --fw-cfg argument, "NAME=STRING": NAME of letters, digits and
 * ". _ - /", at most 51 bytes (QEMU's item names are 55 with "opt/"), not
 * starting with '/'; STRING printable ASCII. On failure returns -EINVAL and
 * sets *ret_why to a static explanation.
 */
int qemu_fw_cfg_check(const char *arg, const char **ret_why);
void qemu_argv_free(char **argv);

/* "tcp:HOSTPORT:GUESTPORT" (or udp:) into *ret. -EINVAL on anything else. */
int qemu_forward_parse(const char *s, struct qemu_forward *ret);

/*
 * "qcow2" when the file starts with the qcow2 magic, "raw" when its first
 * sector ends with the MBR signature (as an MBR and GPT's protective MBR do).
 * -ENODATA for a file shorter than a sector, -ENOEXEC for one that is neither
 * (no firmware boots it), other -errno when it cannot be read.
 */
int qemu_disk_format(const char *path, const char **ret_format);

/* Whether /dev/kvm can be opened read-write (what -accel kvm needs). */
bool qemu_kvm_usable(void);

/*
 * The first OVMF firmware found and its matching variable store template
 * (not to be written: copy it). Both malloc'd, the caller's. -ENOENT when
 * the ovmf package is not installed; dir NULL means /usr/share/OVMF.
 */
int qemu_find_ovmf(const char *dir, char **ret_code, char **ret_vars);

/* Full path of a program found in $PATH, malloc'd; -ENOENT if absent. */
int qemu_find_program(const char *name, char **ret_path);

/* --- console matcher ------------------------------------------------------ */
struct qemu_console;

/*
 * A matcher for the POSIX extended regexes patterns[0..n-1] (the array and
 * strings must outlive it). On a bad regex returns -EINVAL and, if ret_err
 * is not NULL, a malloc'd message naming the pattern. Free with
 * qemu_console_free() (NULL is fine).
 */
int qemu_console_new(const char *const *patterns, size_t n, struct qemu_console **ret,
		     char **ret_err);
void qemu_console_free(struct qemu_console *c);

/*
 * Feed raw serial bytes, split anywhere (escape sequences and lines may
 * straddle calls). Each complete line is matched without \r, ANSI escapes
 * and other control characters. The incomplete last line is matched as it
 * grows, but `$` cannot match at its end: it may be half of a line
 * ("MARKER 4" of "MARKER 42"). Returns the number of patterns matched so far.
 */
size_t qemu_console_feed(struct qemu_console *c, const char *data, size_t len);
/*
 * The console went quiet: an incomplete last line has stopped growing (a
 * login prompt waits without a newline), so it is matched as a whole line,
 * `$` included. Returns the number of patterns matched so far.
 */
size_t qemu_console_idle(struct qemu_console *c);
/* Whether there is an incomplete line that qemu_console_idle() would match. */
bool qemu_console_pending(const struct qemu_console *c);

bool qemu_console_all_matched(const struct qemu_console *c);
bool qemu_console_matched(const struct qemu_console *c, size_t i);
/* The first pattern not matched yet, NULL when all did. Owned by the caller of _new. */
const char *qemu_console_waiting_for(const struct qemu_console *c);
/* Whether a "Kernel panic" line was seen. */
bool qemu_console_panicked(const struct qemu_console *c);

/*
 * The last lines seen, oldest first, cleaned as for matching, the current
 * incomplete line last; at most QEMU_CONSOLE_LINES. Pointers are owned by c
 * and valid until the next feed. Returns how many were stored in ret.
 */
size_t qemu_console_last_lines(const struct qemu_console *c, const char *ret[QEMU_CONSOLE_LINES]);

/* --- running ------------------------------------------------------------------ */
enum qemu_outcome {
	QEMU_MATCHED,	  /* every pattern appeared */
	QEMU_EXITED,	  /* QEMU exited by itself: see exit_status */
	QEMU_TIMEOUT,	  /* the timeout passed first */
	QEMU_PANIC,	  /* guest kernel panic */
	QEMU_INTERRUPTED, /* imgforge got SIGINT or SIGTERM */
};

struct qemu_boot_opts {
	struct qemu_opts vm;	   /* ovmf_vars: the template, copied privately */
	const char *const *expect; /* regexes, all of which must appear */
	size_t nexpect;
	unsigned timeout_sec; /* 0: none */
	FILE *echo;	      /* raw console copy (stdout), or NULL */
	FILE *log;	      /* raw console copy (the log file), or NULL */
	FILE *qemu_stderr;    /* live copy of QEMU's own messages, or NULL */
	bool keep;	      /* after a match, leave QEMU running */
	/*
	 * Called as QEMU starts with accel (never AUTO); again with TCG and the
	 * reason (QEMU's first message) when KVM failed before the guest printed
	 * anything and AUTO falls back to TCG. May be NULL.
	 */
	void (*on_start)(enum qemu_accel accel, const char *kvm_failure, void *userdata);
	void *userdata;
};

struct qemu_result {
	enum qemu_outcome outcome;
	enum qemu_accel accel;	      /* what QEMU ran with in the end */
	int exit_status;	      /* QEMU_EXITED: exit code, or 128 + signal */
	pid_t pid;		      /* keep: the QEMU left running */
	double seconds;		      /* from start to the outcome */
	struct qemu_console *console; /* for the last lines; owned here */
	char *qemu_stderr;	      /* QEMU's own messages (capped), never NULL */
	char *error;		      /* when qemu_boot returns < 0: what went wrong */
};

/*
 * Run QEMU for o and wait for an outcome. QEMU runs in its own process
 * group and dies with imgforge (PR_SET_PDEATHSIG), except after a match with
 * o->keep. SIGINT and SIGTERM are caught for the duration and stop QEMU.
 * With QEMU_ACCEL_AUTO, KVM is used when /dev/kvm is usable, and TCG when
 * not or when QEMU fails under KVM before the guest printed anything.
 * Returns 0 with the outcome in ret (release with qemu_result_release), or
 * -errno with ret->error set when QEMU could not be started at all.
 */
int qemu_boot(const struct qemu_boot_opts *o, struct qemu_result *ret);
void qemu_result_release(struct qemu_result *r);

#endif
