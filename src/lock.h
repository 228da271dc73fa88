/*
 * The cluster-wide lock: golang-migrate's advisory lock with a lease.
 *
 * The lock is a document {locking_key: 0, ...} under the unique index
 * lock_unique_key; whoever inserts it holds the lock, and a duplicate-key
 * error means someone else does, golang-migrate or us, so each excludes the
 * other. Ours also records the owner, pid, a random token and a lease: a
 * heartbeat thread renews it every third of LOCK_LEASE, and a waiter that
 * sees it unrenewed past the lease takes it over with one compare-and-set.
 *
 * Every lease time is the database server's clock (hello.localTime), never
 * a pod's, so clock differences between pods do not matter. A golang-migrate
 * lock has no lease: it is stale LOCK_STALE_AFTER after its created_at,
 * which golang-migrate wrote with its own host's clock; that threshold must
 * be far larger than any clock difference (default 10 minutes; 0: never).
 */
#ifndef MI_LOCK_H
#define MI_LOCK_H

#include "config.h"
#include "db.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct lock {
	struct db *d;
	const struct config *c;
	mongoc_collection_t *coll;
	char token[33];
	bool held;
	bool waited; /* someone else held it when we first tried */

	/* The heartbeat thread and what it shares with the main thread. */
	pthread_t hb;
	bool hb_running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool hb_stop;
	atomic_bool lost;
};

/* Waits for the lock up to the configured timeout and starts the
 * heartbeat. 0, EXIT_LOCK_TIMEOUT, another exit code after logging why, or
 * 128+n when stopped by a signal. With x-advisory-locking=false it succeeds
 * at once and holds nothing. */
int lock_acquire(struct lock *l, struct db *d, const struct config *c);

/* Fencing: 0 if we still hold the lock (or locking is off), else
 * EXIT_LOCK_LOST after logging why. Checks the database, not a cache. */
int lock_check(struct lock *l);

/* The heartbeat's verdict only, without a round trip: for between the
 * commands of a migration. 0 or EXIT_LOCK_LOST (logged). */
int lock_check_cached(struct lock *l);

/* Stops the heartbeat and deletes our lock document if we hold it. */
int lock_release(struct lock *l);

/* Forgets the lock without deleting anything (it went with the database). */
void lock_forget(struct lock *l);

/* Deletes the lock with this token over a new connection: for the abort
 * path, while the main thread may be blocked in the old one. */
void lock_release_detached(const struct config *c, const char *token);

enum lock_seen { LOCK_NONE, LOCK_LIVE, LOCK_EXPIRED, LOCK_UNKNOWN };

/* What the lock looks like, without taking it: a dirty version under a live
 * lock is a migration in progress, not a failure; an expired lock is left
 * by a dead runner and wants taking over. */
enum lock_seen lock_probe(struct db *d, const struct config *c);

/* The unlock command: removes an expired lock, or with force any lock. */
int lock_unlock_command(struct db *d, const struct config *c, bool force);

#endif
