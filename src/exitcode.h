/*
 * The exit-code contract. Scripts, Kubernetes podFailurePolicy rules and
 * people at 3 a.m. depend on these numbers: never renumber, only append.
 */
#ifndef MI_EXITCODE_H
#define MI_EXITCODE_H

#include <stdbool.h>

enum exit_code {
	EXIT_OK = 0,            /* success, or nothing to do */
	EXIT_INTERNAL = 1,      /* unexpected internal error */
	EXIT_USAGE = 2,         /* usage or configuration error */
	EXIT_SOURCE = 3,        /* invalid migration source */
	EXIT_UNREACHABLE = 4,   /* database unreachable: retries or deadline exhausted */
	EXIT_AUTH = 5,          /* authentication or TLS failure */
	EXIT_LOCK_TIMEOUT = 6,  /* lock not acquired in time */
	EXIT_MIGRATION = 7,     /* a migration failed; dirty, or rolled back (ON_FAILURE) */
	EXIT_DIRTY = 8,         /* the database was already dirty; nothing was run */
	EXIT_LOCK_LOST = 9,     /* the lock was lost during the run; stopped safely */
	EXIT_PENDING = 10,      /* pending work (plan), target not reached (wait), RUN_TIMEOUT */
	EXIT_DEPENDENCY = 11,   /* a dependency or policy of the migration registry is not met */
	EXIT_SIGNAL_BASE = 128, /* 128+n: stopped by signal n */
};

/* One line describing code, for logs and the termination message. */
const char *exit_meaning(int code);

/* "yes", "no", "maybe" or "-": whether running again can help. */
const char *exit_retry(int code);

/* Of two runs' codes, the one a run of several (a central layout's
 * services) exits with. Worst first: 7, 8, 5, 3, 2 (no retry helps: a
 * person must act, so a Job stops at once), 1, 128+n, 9, 6, 4 (a retry
 * may help), 11 (in such a run, usually the consequence of another
 * service's failure), 10, 0. EXIT_ORDER is that order as text. */
int exit_worst(int a, int b);
#define EXIT_ORDER "7, 8, 5, 3, 2, 1, 128+n, 9, 6, 4, 11, 10, 0"

/* Writes the whole table, as -help prints it. */
void exit_print_table(void *stream);

#endif
