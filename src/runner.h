/*
 * Running the commands: up, down, goto, force, drop, version, and the
 * read-only ones (status, plan, validate, wait, unlock), with our order of
 * work (source, then database, then lock) and our exit codes. Which
 * migrations run is plan.h's; how one runs (dirty mark, body, clean mark,
 * history) is here, each write fenced by the lock (lock.h, db.h).
 */
#ifndef MI_RUNNER_H
#define MI_RUNNER_H

#include "cli.h"
#include "config.h"

/* Runs the parsed command line. Returns the process exit code; status gets
 * what was applied and the state left, for the termination message. */
int runner_main(const struct cli *cli, struct config *c, char *status, size_t len);

#endif
