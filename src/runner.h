/*
 * Running the commands that touch the database: up, down, goto, force,
 * drop and version, with golang-migrate's semantics (which migrations run,
 * in which order, what the state says before, during and after each), our
 * order of work (source, then database, then lock) and our exit codes.
 */
#ifndef MI_RUNNER_H
#define MI_RUNNER_H

#include "cli.h"
#include "config.h"
#include "source.h"

#include <stdint.h>

enum run_kind { RUN_UP, RUN_DOWN, RUN_GOTO };

struct step {
	uint64_t version; /* the migration whose file runs */
	int64_t target;   /* the version recorded once it ran */
	enum direction dir;
	const struct migration *m;
};

struct plan {
	struct step *steps;
	size_t n;
	uint64_t short_by; /* "up N"/"down N" asked for this many more than exist */
};

/*
 * Which steps take the database from version cur (-1: none) in the given
 * direction. arg is the limit N for up/down (-1: all) or the target of
 * goto. 0 with an empty plan means "no change"; otherwise an exit code,
 * logged.
 */
int runner_plan(const struct source *src, int64_t cur, enum run_kind kind, int64_t arg,
                struct plan *p);
void plan_free(struct plan *p);

/* Runs the parsed command line. Returns the process exit code; status gets
 * what was applied and the state left, for the termination message. */
int runner_main(const struct cli *cli, struct config *c, char *status, size_t len);

#endif
