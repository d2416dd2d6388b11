/* SPDX-License-Identifier: MIT */
#ifndef IMGFORGE_STOPPOINT_H
#define IMGFORGE_STOPPOINT_H

/*
 * Named points in a durable sequence of writes, for the power-cut tests
 * (docs/update.md, "Power cuts"). Without IMGFORGE_STOP_AT in the
 * environment a stop point does nothing at all.
 *
 * IMGFORGE_STOP_AT=NAME[#N] makes the N-th (default first) passage through
 * the point NAME print "stop-point: NAME#N: stopped" to standard error and
 * then wait forever (pause()): the test sees the line and cuts the power
 * (SIGKILL of the virtual machine) at exactly that place. With
 * IMGFORGE_STOP_AT=trace every passage prints "stop-point: NAME#N" and
 * goes on, so a test can cut the power a chosen time after a point.
 *
 * Nothing else changes: no write is added, removed or reordered.
 */
void stop_point(const char *name);

#endif
