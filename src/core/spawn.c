/* SPDX-License-Identifier: MIT */
/*
 * Child processes: see spawn.h. The child is watched by its exit (a pidfd,
 * or a short poll where the kernel has none), never by the end of its
 * output, which any grandchild can keep open forever.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/spawn.h"
#include "core/util.h"

/* Where the kernel has no pidfd, look at the child this often. */
#define POLL_FALLBACK_MS 100

_noreturn_ static void child(char *const argv[], const struct spawn_start_opts *o, pid_t parent,
			     int errfd)
{
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	sigset_t none;
	int null, err;

	sigemptyset(&dfl.sa_mask);
	sigaction(SIGINT, &dfl, NULL);
	sigaction(SIGTERM, &dfl, NULL);
	sigaction(SIGHUP, &dfl, NULL);
	sigaction(SIGPIPE, &dfl, NULL);
	sigaction(SIGCHLD, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (o->new_session ? setsid() < 0 : setpgid(0, 0) < 0)
		goto fail;
	if (!o->outlive) {
		if (prctl(PR_SET_PDEATHSIG, o->death_signal ? o->death_signal : SIGKILL) < 0)
			goto fail;
		/* imgforge died before prctl(): nobody would ever stop this child. */
		if (getppid() != parent)
			_exit(127);
	}
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(o->stdout_fd >= 0 ? o->stdout_fd : null, 1) < 0 ||
	    dup2(o->stderr_fd >= 0 ? o->stderr_fd : null, 2) < 0)
		goto fail;
	if (o->search_path)
		execvp(argv[0], argv);
	else
		execv(argv[0], argv);
fail:
	err = errno;
	if (write(errfd, &err, sizeof(err)) < 0) {
		/* the parent sees a child that ended without exec: EIO */
	}
	_exit(127);
}

int spawn_start(char *const argv[], const struct spawn_start_opts *o, pid_t *ret_pid)
{
	int pipefd[2], err = 0, status;
	ssize_t n;
	pid_t pid, parent = getpid();

	/* The child reports a failed exec here; a successful exec closes it. */
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(pipefd[0]);
		close(pipefd[1]);
		return -err;
	}
	if (pid == 0) {
		close(pipefd[0]);
		child(argv, o, parent, pipefd[1]);
	}
	close(pipefd[1]);
	/* Both sides set the group, so that it exists before either uses it. */
	if (!o->new_session)
		setpgid(pid, pid);
	do
		n = read(pipefd[0], &err, sizeof(err));
	while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(err) || n != 0) {
		if (n != (ssize_t)sizeof(err) || err <= 0)
			err = EIO;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return -err;
	}
	*ret_pid = pid;
	return 0;
}

bool spawn_status_ok(const struct spawn_status *st)
{
	return st->exited && st->code == 0;
}

const char *spawn_status_describe(const struct spawn_status *st, char *buf, size_t len)
{
	if (st->exited)
		snprintf(buf, len, "exited with status %d", st->code);
	else
		snprintf(buf, len, "was killed by signal %d (%s)", st->signal,
			 strsignal(st->signal));
	return buf;
}

/* --- spawn_run ------------------------------------------------------------------- */

/* What stops a run: the child's group is stopped, then imgforge gets the signal again. */
static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};

static volatile sig_atomic_t run_signal;

static void on_signal(int sig)
{
	run_signal = sig;
}

struct run {
	const struct spawn_opts *o;
	pid_t pid;
	int out_fd; /* read end of the output pipe, -1 once closed */
	int pid_fd; /* pidfd of the child, -1 without */
	struct strbuf line;
};

static void emit_line(struct run *r)
{
	if (r->o->on_line)
		r->o->on_line(strbuf_str(&r->line), r->o->userdata);
	strbuf_reset(&r->line);
}

/* Read what the pipe holds now; at EOF or on error close it. */
static void drain(struct run *r)
{
	char buf[8192];
	ssize_t n, i;

	while (r->out_fd >= 0) {
		n = read(r->out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(r->out_fd);
			r->out_fd = -1;
			return;
		}
		if (r->o->log_fd >= 0 && write(r->o->log_fd, buf, (size_t)n) < 0) {
			/* the log is best effort: the caller still gets the lines */
		}
		for (i = 0; i < n; i++) {
			if (buf[i] == '\n')
				emit_line(r);
			else
				strbuf_addch(&r->line, buf[i]);
		}
	}
}

/* Whether the child has exited; it stays a zombie (its pid, the group id, stays taken). */
static bool exited(struct run *r)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	while (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
		if (errno != EINTR)
			return true;
	return si.si_pid == r->pid;
}

/* Wait up to ms for output, the child's exit or a signal. */
static void wait_event(struct run *r, int ms, const sigset_t *unblocked)
{
	struct pollfd p[2];
	struct timespec ts;
	nfds_t n = 0;

	if (r->out_fd >= 0)
		p[n++] = (struct pollfd){.fd = r->out_fd, .events = POLLIN};
	if (r->pid_fd >= 0)
		p[n++] = (struct pollfd){.fd = r->pid_fd, .events = POLLIN};
	if (r->pid_fd < 0 && (ms < 0 || ms > POLL_FALLBACK_MS))
		ms = POLL_FALLBACK_MS;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000;
	ppoll(p, n, ms < 0 ? NULL : &ts, unblocked);
}

int spawn_run(char *const argv[], const struct spawn_opts *o, struct spawn_status *ret_status)
{
	/*
	 * SIGTERM, not SIGKILL, when imgforge dies: mmdebstrap then still
	 * unmounts its chroot and stops what it started.
	 */
	struct spawn_start_opts so = {.search_path = true, .death_signal = SIGTERM};
	struct sigaction sa = {.sa_handler = on_signal}, old[ARRAY_SIZE(stop_signals)];
	struct run r = {.o = o, .pid = -1, .out_fd = -1, .pid_fd = -1, .line = STRBUF_INIT};
	struct spawn_status st = {0};
	sigset_t block, oldmask;
	int pipefd[2], status = 0, sig, ret = 0, w;
	size_t i;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	/* Blocked outside ppoll(): a signal is seen there, never lost between checks. */
	sigemptyset(&block);
	for (i = 0; i < ARRAY_SIZE(stop_signals); i++)
		sigaddset(&block, stop_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &oldmask);
	run_signal = 0;
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < ARRAY_SIZE(stop_signals); i++) {
		sigaction(stop_signals[i], &sa, &old[i]);
		/* An ignored signal stays ignored. */
		if (!(old[i].sa_flags & SA_SIGINFO) && old[i].sa_handler == SIG_IGN)
			sigaction(stop_signals[i], &old[i], NULL);
	}

	so.stdout_fd = so.stderr_fd = pipefd[1];
	ret = spawn_start(argv, &so, &r.pid);
	close(pipefd[1]);
	r.out_fd = pipefd[0];
	if (ret < 0)
		goto out;
	fcntl(r.out_fd, F_SETFL, O_NONBLOCK);
	r.pid_fd = (int)syscall(SYS_pidfd_open, r.pid, 0);

	while (!exited(&r) && !run_signal) {
		wait_event(&r, -1, &oldmask);
		drain(&r);
	}
	sig = run_signal;
	if (sig) {
		int64_t end = monotonic_ms() + SPAWN_GRACE_MS, left;

		kill(-r.pid, SIGTERM);
		/* The clock read once per turn: a negative wait would be no limit at all. */
		while (!exited(&r) && (left = end - monotonic_ms()) > 0) {
			wait_event(&r, (int)left, &oldmask);
			drain(&r);
		}
	}
	/* Whatever the child left in its group goes with it. */
	kill(-r.pid, SIGKILL);
	while ((w = waitpid(r.pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (w < 0) {
		/* No status (SIGCHLD ignored, say): never report one that was not seen. */
		ret = -errno;
		goto out;
	}
	drain(&r);
	if (r.line.len)
		emit_line(&r);
	if (WIFEXITED(status)) {
		st.exited = true;
		st.code = WEXITSTATUS(status);
	} else {
		st.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	}
	if (sig) {
		ret = -EINTR;
	} else {
		*ret_status = st;
		ret = 0;
	}
out:
	if (r.out_fd >= 0)
		close(r.out_fd);
	if (r.pid_fd >= 0)
		close(r.pid_fd);
	strbuf_release(&r.line);
	for (i = 0; i < ARRAY_SIZE(stop_signals); i++)
		sigaction(stop_signals[i], &old[i], NULL);
	sig = run_signal;
	if (sig)
		raise(sig);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	return ret;
}
