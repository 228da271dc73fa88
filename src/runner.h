/*
 * Running a command against the database: the order of work (source, then
 * database, then lock), the exit codes, the end of every run (release,
 * close, summary) and what the abort path may know of it. Which migrations
 * run is plan.h's; how one runs (dirty mark, body, clean mark, history,
 * each write fenced) is apply.h's. The runner receives a command (command.h),
 * never the command line.
 */
#ifndef MI_RUNNER_H
#define MI_RUNNER_H

#include "command.h"
#include "config.h"

/* Runs cmd with its row's run function: loads the database part of the
 * configuration (from flags and the environment) unless the command is
 * offline, installs the stop handling, and always releases and closes.
 * Returns the process exit code; status gets what was applied and the
 * state left, for the termination message. */
int runner_main(const struct command *cmd, struct config *c, const struct flag_value *flags,
                size_t nflags, char *status, size_t len);

/* The run functions of the command table. */
int runner_migrate(struct run *r); /* entrypoint, up, down, goto */
int runner_force(struct run *r);
int runner_version(struct run *r);
int runner_drop(struct run *r);
int runner_unlock(struct run *r);
int runner_validate(struct run *r);
int runner_status(struct run *r);
int runner_plan(struct run *r);
int runner_wait(struct run *r);
int runner_restore(struct run *r);
int runner_backups(struct run *r);

#endif
