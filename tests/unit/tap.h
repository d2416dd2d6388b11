/* SPDX-License-Identifier: MIT */
/*
 * A tiny TAP harness for unit tests. Each test runs in a forked child, in a
 * fresh temporary directory, so a crash or a sanitizer report fails that
 * test only and leaves files of no other test behind.
 *
 *	TEST(name) { CHECK(x == 1); CHECK_STR(a, "b"); }
 *	int main(void) { RUN(name); return tap_done(); }
 */
#ifndef IMGFORGE_TAP_H
#define IMGFORGE_TAP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"

static int tap_count, tap_failed, tap_child_failures;
static char tap_origin[4096];

#define TEST(name) static void name(void)

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);         \
			tap_child_failures++;                                                      \
		}                                                                                  \
	} while (0)

#define CHECK_STR(a, b)                                                                            \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || !_b || strcmp(_a, _b)) {                                                \
			printf("#   %s:%d: '%s' != '%s'\n", __FILE__, __LINE__, _a ? _a : "(null)",   \
			       _b ? _b : "(null)");                                                \
			tap_child_failures++;                                                      \
		}                                                                                  \
	} while (0)

#define CHECK_INT(a, b)                                                                            \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			printf("#   %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a,  \
			       _b);                                                                \
			tap_child_failures++;                                                      \
		}                                                                                  \
	} while (0)

/* Path of a file in the source tree, for fixtures (tests run in a temp dir). */
static inline const char *tap_srcpath(const char *rel)
{
	static char buf[8192];
	snprintf(buf, sizeof(buf), "%s/%s", tap_origin, rel);
	return buf;
}

static inline void tap_run(void (*fn)(void), const char *name)
{
	char dir[] = "/tmp/imgforge-unit-XXXXXX";
	pid_t pid;
	int status = 0;

	if (!tap_origin[0] && !getcwd(tap_origin, sizeof(tap_origin)))
		tap_origin[0] = '\0';
	tap_count++;
	fflush(stdout);
	if (!mkdtemp(dir)) {
		printf("not ok %d - %s # cannot create temp dir\n", tap_count, name);
		tap_failed++;
		return;
	}
	pid = fork();
	if (pid == 0) {
		if (chdir(dir) < 0)
			_exit(99);
		fn();
		fflush(stdout);
		exit(tap_child_failures ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		printf("not ok %d - %s", tap_count, name);
		if (WIFSIGNALED(status))
			printf(" # killed by signal %d", WTERMSIG(status));
		printf("\n");
		tap_failed++;
	} else {
		printf("ok %d - %s\n", tap_count, name);
	}
	rm_rf(dir);
}

#define RUN(fn) tap_run(fn, #fn)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
