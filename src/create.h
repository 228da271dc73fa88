/*
 * The create command: a pair of empty up/down files named as golang-migrate's
 * create names them, sequential (-seq, -digits) or timestamped (-format, a Go
 * time layout, "unix" or "unixNano"; -tz).
 */
#ifndef MI_CREATE_H
#define MI_CREATE_H

#include "command.h"

/* Returns the process exit code. */
int create_main(const struct command *cmd);

#endif
