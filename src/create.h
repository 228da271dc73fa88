/*
 * The create command: a pair of empty up/down files named as golang-migrate's
 * create names them, sequential (-seq, -digits) or timestamped (-format, a Go
 * time layout, "unix" or "unixNano"; -tz).
 */
#ifndef MI_CREATE_H
#define MI_CREATE_H

#include "cli.h"

#include <stddef.h>
#include <time.h>

/* Returns the process exit code. */
int create_main(const struct cli *cli);

/* Formats t (broken down in its zone, with nsec) with a Go layout. */
void go_time_format(const char *layout, const struct tm *tm, long nsec, char *out, size_t outlen);

#endif
