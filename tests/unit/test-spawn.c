/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <time.h>

#include "core/spawn.h"
#include "tap.h"
#include "core/util.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A zombie is dead: only its parent's wait is missing. */
static bool alive(pid_t pid)
{
	char path[64], *buf = NULL, *p;
	size_t len;
	bool r;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_file(path, 4096, &buf, &len) < 0)
		return false;
	p = strrchr(buf, ')');
	r = !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
	free(buf);
	return r;
}

/* Whether pid is gone within ms, reaping what this process inherited meanwhile. */
static bool gone_within(pid_t pid, int ms)
{
	int64_t end = now_ms() + ms;

	while (alive(pid) && now_ms() < end) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		usleep(20000);
	}
	return !alive(pid);
}

static pid_t read_pid(const char *path, int line)
{
	char *buf = NULL, *p;
	size_t len;
	pid_t pid = -1;

	if (read_file(path, 4096, &buf, &len) < 0)
		return -1;
	for (p = buf; line > 0 && p; line--) {
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	if (p && *p)
		pid = (pid_t)atoi(p);
	free(buf);
	return pid;
}

static int run_sh(const char *script, struct spawn_status *st)
{
	char *argv[] = {(char *)"sh", (char *)"-c", (char *)script, NULL};
	struct spawn_opts o = {.log_fd = -1};

	return spawn_run(argv, &o, st);
}

TEST(test_exit_status)
{
	struct spawn_status st = {0};
	char buf[128];

	CHECK_INT(run_sh("exit 0", &st), 0);
	CHECK(spawn_status_ok(&st));
	CHECK_INT(run_sh("exit 3", &st), 0);
	CHECK(st.exited);
	CHECK_INT(st.code, 3);
	CHECK(!spawn_status_ok(&st));
	CHECK_STR(spawn_status_describe(&st, buf, sizeof(buf)), "exited with status 3");
}

TEST(test_signal_death)
{
	struct spawn_status st = {0};
	char buf[128];

	CHECK_INT(run_sh("kill -9 $$", &st), 0);
	CHECK(!st.exited);
	CHECK_INT(st.signal, SIGKILL);
	CHECK(!spawn_status_ok(&st));
	CHECK(str_startswith(spawn_status_describe(&st, buf, sizeof(buf)),
			     "was killed by signal 9 ("));
}

TEST(test_not_found)
{
	char *argv[] = {(char *)"imgforge-no-such-program", NULL};
	struct spawn_opts o = {.log_fd = -1};
	struct spawn_status st = {0};

	CHECK_INT(spawn_run(argv, &o, &st), -ENOENT);
}

struct lines {
	char *v[8];
	int n;
};

static void on_line(const char *line, void *userdata)
{
	struct lines *l = userdata;

	if (l->n < 8)
		l->v[l->n++] = xstrdup(line);
}

TEST(test_capture)
{
	char *argv[] = {(char *)"sh", (char *)"-c",
			(char *)"echo one; echo two >&2; printf three; test -t 0 || read x", NULL};
	struct lines l = {0};
	struct spawn_opts o = {.on_line = on_line, .userdata = &l};
	struct spawn_status st = {0};
	char *log = NULL;
	size_t len = 0;
	int i;

	o.log_fd = open("log", O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(o.log_fd >= 0);
	CHECK_INT(spawn_run(argv, &o, &st), 0);
	/* stdin is /dev/null: read gets EOF and fails. */
	CHECK_INT(st.code, 1);
	close(o.log_fd);
	CHECK_INT(read_file("log", 4096, &log, &len), 0);
	CHECK_STR(log, "one\ntwo\nthree");
	CHECK_INT(l.n, 3);
	if (l.n == 3) {
		CHECK_STR(l.v[0], "one");
		CHECK_STR(l.v[1], "two");
		CHECK_STR(l.v[2], "three");
	}
	for (i = 0; i < l.n; i++)
		free(l.v[i]);
	free(log);
}

/* A daemon that keeps the output open: the run ends with the child, not with EOF. */
TEST(test_grandchild_keeps_output_open)
{
	struct spawn_status st = {0};
	int64_t t0 = now_ms();
	pid_t gc;

	CHECK_INT(run_sh("sleep 1000 & echo $! >gc.pid; echo started", &st), 0);
	CHECK(now_ms() - t0 < 5000);
	CHECK(spawn_status_ok(&st));
	gc = read_pid("gc.pid", 0);
	CHECK(gc > 0);
	/* Left behind in the child's group, it is killed with it. */
	if (gc > 0)
		CHECK(gone_within(gc, 5000));
}

/* SIGTERM to imgforge stops every process of the child's group, then ends imgforge. */
TEST(test_group_killed_on_sigterm)
{
	pid_t imgforge, pids[2] = {-1, -1};
	int64_t end;
	int status = 0, i;

	/* Orphans come back here: their end can be seen (and reaped). */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	imgforge = fork();
	if (imgforge == 0) {
		struct spawn_status st;
		run_sh("sleep 1000 & echo $! >pids; sleep 1000 & echo $! >>pids; wait", &st);
		_exit(0);
	}
	CHECK(imgforge > 0);
	end = now_ms() + 5000;
	while ((pids[1] = read_pid("pids", 1)) <= 0 && now_ms() < end)
		usleep(20000);
	pids[0] = read_pid("pids", 0);
	CHECK(pids[0] > 0 && pids[1] > 0);
	kill(imgforge, SIGTERM);
	CHECK_INT(waitpid(imgforge, &status, 0), imgforge);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
	for (i = 0; i < 2; i++)
		if (pids[i] > 0)
			CHECK(gone_within(pids[i], 5000));
}

int main(void)
{
	RUN(test_exit_status);
	RUN(test_signal_death);
	RUN(test_not_found);
	RUN(test_capture);
	RUN(test_grandchild_keeps_output_open);
	RUN(test_group_killed_on_sigterm);
	return tap_done();
}
