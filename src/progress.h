/*
 * Where the run is: the database's state as we last knew it, how many
 * migrations we applied, and the lock we hold. The main thread writes it as
 * it goes; the summary reads it at the end and the abort watchdog (stop.h)
 * reads a snapshot of it, never the live run: one mutex, copies out.
 */
#ifndef MI_PROGRESS_H
#define MI_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROGRESS_TOKEN 33 /* struct lock's token, with its NUL */

struct progress {
	const char *command; /* static storage: the command table's */
	bool known;          /* to and dirty were read from the database */
	int64_t to;
	bool dirty;
	size_t applied;
	bool held;
	char token[PROGRESS_TOKEN];
};

/* A new run of command: nothing known, nothing applied, no lock. */
void progress_start(const char *command);

/* The state we now know the database is in. */
void progress_state(int64_t to, bool dirty);

/* One more migration applied (its clean mark written). */
void progress_applied(void);

/* The lock we hold (held false: none). */
void progress_lock(bool held, const char *token);

/* A consistent copy. */
struct progress progress_get(void);

/* "database at version 3 (dirty)", for the summary and the termination
 * message. */
void progress_describe(const struct progress *p, char *out, size_t len);

#endif
