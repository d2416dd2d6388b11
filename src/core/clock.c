/* SPDX-License-Identifier: MIT */
/* Clocks and timestamps. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/util.h"

int64_t source_date_epoch(int64_t fallback)
{
	const char *s = getenv("SOURCE_DATE_EPOCH");
	char *end;
	long long v;

	if (!s || !*s)
		return fallback;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < 0)
		return fallback;
	return v;
}

int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double seconds_since(int64_t start_ms)
{
	return (double)(monotonic_ms() - start_ms) / 1000.0;
}

const char *format_time(int64_t t, bool zone, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) ||
	    !strftime(buf, len, zone ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "%" PRId64, t);
	return buf;
}
