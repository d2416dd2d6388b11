/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_CLOCK_H
#define IMGFORGE_CLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SOURCE_DATE_EPOCH if set and valid, else fallback. */
int64_t source_date_epoch(int64_t fallback);

/* Milliseconds on the monotonic clock: for durations and deadlines, never dates. */
int64_t monotonic_ms(void);
/* Seconds since start_ms, a monotonic_ms() value. */
double seconds_since(int64_t start_ms);

/*
 * Format a Unix time as "2023-11-14 22:13:20" in UTC (with " UTC" after it
 * when zone is true) into buf; the plain number if it is out of range.
 */
const char *format_time(int64_t t, bool zone, char *buf, size_t len);

#endif
