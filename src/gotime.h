/*
 * Go's time layouts (the reference time Mon Jan 2 15:04:05 MST 2006), for
 * create -format: golang-migrate names timestamped migrations with
 * time.Format, so the same layout must give the same name here.
 */
#ifndef MI_GOTIME_H
#define MI_GOTIME_H

#include <stddef.h>
#include <time.h>

/* Formats tm (broken down in its zone, with nsec) with a Go layout; out is
 * always NUL-terminated, truncated to outlen. */
void go_time_format(const char *layout, const struct tm *tm, long nsec, char *out, size_t outlen);

#endif
