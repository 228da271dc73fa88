/*
 * The cluster-wide lock, golang-migrate's advisory lock: a document
 * {locking_key: 0, ...} in the lock collection under the unique index
 * lock_unique_key. Whoever inserts it holds the lock; a duplicate-key error
 * means someone else does, golang-migrate or us, so each excludes the other.
 * Our document also carries an owner and a random token, so that we only
 * ever delete our own lock.
 */
#ifndef MI_LOCK_H
#define MI_LOCK_H

#include "config.h"
#include "db.h"

#include <stdbool.h>

struct lock {
	struct db *d;
	mongoc_collection_t *coll;
	char token[33];
	bool held;
};

/* Waits for the lock up to the configured timeout. 0, EXIT_LOCK_TIMEOUT,
 * another exit code after logging why, or 128+n when stopped by a signal.
 * With x-advisory-locking=false it succeeds at once and holds nothing. */
int lock_acquire(struct lock *l, struct db *d, const struct config *c);

/* Deletes our lock document if we hold it. 0, or an exit code. */
int lock_release(struct lock *l);

/* Deletes the lock with this token over a new connection: for the abort
 * path, while the main thread may be blocked in the old one. */
void lock_release_detached(const struct config *c, const char *token);

#endif
