/*
 * The commands that look and change nothing: validate, status and plan.
 * Results go to stdout; problems to the log.
 */
#ifndef MI_INSPECT_H
#define MI_INSPECT_H

#include "config.h"
#include "db.h"
#include "plan.h"
#include "source.h"

#include <stdbool.h>
#include <stdint.h>

/* Offline checks beyond what loading the source already did: pairs.
 * Prints a summary; returns 0 (problems that fail a run fail the load). */
int inspect_validate(const struct source *s);

/* Compares the checksums of applied migrations (history) with the files.
 * 0, or EXIT_SOURCE when any applied file changed since. */
int inspect_drift(struct db *d, const struct config *c, const struct source *s, int64_t version);

/* Applied and pending migrations, as a table or as JSON. */
/* service: a central layout's, named in the JSON (NULL: none). */
int inspect_status(struct db *d, const struct config *c, const struct source *s, int64_t version,
                   bool dirty, bool json, const char *service);

/* What a plan would run, one line a step. */
void inspect_print_plan(const struct plan *p);

#endif
