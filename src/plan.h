/*
 * The plan: which migrations a command runs, in which order, and what the
 * state records after each, as golang-migrate's migrate.go decides it
 * (read, readUp, readDown). A pure function of the source and the current
 * version; nothing here touches the database.
 */
#ifndef MI_PLAN_H
#define MI_PLAN_H

#include "source.h"

#include <stddef.h>
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
int plan_build(const struct source *src, int64_t cur, enum run_kind kind, int64_t arg,
               struct plan *p);
void plan_free(struct plan *p);

#endif
