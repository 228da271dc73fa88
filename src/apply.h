/*
 * golang-migrate's protocol for running a plan, migration by migration:
 * dirty mark, body, clean mark; then our history record. Every write is
 * fenced by the lock (db.h) and preceded by lock_check (lock.h), so a
 * runner that lost its lock sends nothing more. From the dirty mark to the
 * history record a stop waits out the grace period (stop.h). Progress is
 * published as it happens (progress.h).
 */
#ifndef MI_APPLY_H
#define MI_APPLY_H

#include "config.h"
#include "db.h"
#include "lock.h"
#include "plan.h"
#include "registry.h"
#include "source.h"

#include <stdbool.h>

struct apply {
	struct db *d;
	struct lock *l;
	const struct config *c;
	const struct source *src;
	const struct registry *reg;
	int64_t from;         /* the version the plan starts from */
	int64_t cur;          /* the version recorded clean last */
	int64_t run_deadline; /* RUN_TIMEOUT on the now_ms clock; 0: none */
	bool warned;          /* about broken files the run does not need: once */
};

/* A run fails for a broken file only when it would run it (golang-migrate
 * never reads the others); every other broken file is a warning, once per
 * struct apply. 0 or EXIT_SOURCE, logged. */
int apply_check_files(struct apply *a, const struct plan *p);

/* Runs the plan under our lock: the registry's policy and dependencies
 * first, then each step, each bounded by MIGRATION_TIMEOUT and, when it
 * fails, rolled back per ON_FAILURE. 0, or the exit code of the first
 * failure (logged); 128+n when a stop came between migrations; EXIT_PENDING
 * when RUN_TIMEOUT left no time for the next. */
int apply_plan(struct apply *a, const struct plan *p);

#endif
