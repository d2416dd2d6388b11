/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_SPAWN_H
#define IMGFORGE_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Running other programs (mmdebstrap, grub-mkimage, QEMU): the one place
 * imgforge forks and execs. Every child:
 *
 *   - runs in a process group of its own (a session of its own on request),
 *     so that it and everything it starts can be stopped together;
 *   - dies with imgforge (PR_SET_PDEATHSIG), unless asked to outlive it;
 *   - starts with stdin on /dev/null, default signal handlers and an
 *     empty signal mask.
 *
 * A program that cannot be executed is reported by spawn_start() itself as
 * -errno (-ENOENT: not installed), never as an exit status of 127.
 */

struct spawn_start_opts {
	int stdout_fd;	  /* the child's stdout; -1: /dev/null */
	int stderr_fd;	  /* the child's stderr; -1: /dev/null */
	bool new_session; /* setsid() (no controlling terminal) instead of a new group */
	bool outlive;	  /* no PR_SET_PDEATHSIG: the child may outlive imgforge */
	int death_signal; /* sent when imgforge dies; 0: SIGKILL */
	bool search_path; /* look argv[0] up in $PATH */
};

/*
 * Start argv[0] with argv. On success the child's pid, which is also its
 * process group id, is stored in *ret_pid: the caller reaps it (waitpid)
 * and may signal the group with kill(-pid, sig). Returns -errno when the
 * program could not be started or executed (the child is reaped then).
 */
int spawn_start(char *const argv[], const struct spawn_start_opts *o, pid_t *ret_pid);

/* How a child ended. */
struct spawn_status {
	bool exited; /* true: exit code in code; false: killed by signal */
	int code;
	int signal;
};

/* "exited with status 1", "was killed by signal 9 (Killed)", into buf. */
const char *spawn_status_describe(const struct spawn_status *st, char *buf, size_t len);

/* Whether st is a clean exit with status 0. */
bool spawn_status_ok(const struct spawn_status *st);

struct spawn_opts {
	int log_fd; /* every byte of the child's stdout and stderr, or -1 */
	/* Each complete output line (without '\n'; the last one even without). May be NULL. */
	void (*on_line)(const char *line, void *userdata);
	void *userdata;
};

/*
 * How long a stopped child gets between SIGTERM and SIGKILL: mmdebstrap
 * unmounts and removes its chroot then, which took about 10 s on a loaded
 * 2-CPU machine.
 */
#define SPAWN_GRACE_MS 30000

/*
 * Run argv to completion (found in $PATH), its stdout and stderr merged and
 * handed to o. The end is the child's exit, not the end of its output: a
 * process it left behind holding the output open does not hold the caller;
 * what is left in the child's group when it exits is killed.
 *
 * If imgforge gets SIGINT, SIGTERM or SIGHUP meanwhile, the child's whole group gets
 * SIGTERM, then SIGKILL after SPAWN_GRACE_MS; once it is gone the signal is
 * delivered again to imgforge with the handlers it had before the call (the
 * default ends the process). Returns 0 with the status in *ret_status, -EINTR
 * if that signal was ignored, or -errno if the program could not be run
 * (-ENOENT: not found).
 */
int spawn_run(char *const argv[], const struct spawn_opts *o, struct spawn_status *ret_status);

#endif
