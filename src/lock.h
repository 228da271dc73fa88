/*
 * The cluster-wide lock: golang-migrate's advisory lock with a lease.
 *
 * The lock is a document {locking_key: 0, ...} under the unique index
 * lock_unique_key; whoever inserts it holds the lock, and a duplicate-key
 * error means someone else does, golang-migrate or us, so each excludes the
 * other. Ours also records the owner, pid, a random token and a lease: a
 * heartbeat thread renews it every third of LOCK_LEASE.
 *
 * Exclusivity rests on the unique index alone, never on a conditional
 * update being atomic (FerretDB v1's are not). A waiter that sees a lease
 * unrenewed past its end deletes that exact expired document (by _id and
 * the renewal it saw), then inserts its own like any runner: if several
 * waiters race, the index lets exactly one in. Only that one writes the
 * state: it claims it (db_claim_state), a compare-and-set of the token that
 * revokes the old holder's, so from then on no state write of the old
 * holder lands. Waiters that lost write nothing anywhere. A renewal that
 * lands before the waiter's delete keeps the document (so the lock never
 * has two documents) and the holder keeps the lock, if its own clock still
 * allows it (below).
 *
 * Between the commands it sends, the holder also judges its lease on its
 * own monotonic clock (lock_check): when the last renewal is a lease old,
 * it stops without waiting for the server to tell it, so a process that
 * was paused sends nothing once it wakes.
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
#include <stdint.h>

/*
 * Threads: lock_acquire, lock_check, lock_release and lock_forget are the
 * main thread's; the heartbeat thread they start shares only `lost` and
 * `valid_until` (atomics) and hb_stop (under mu) with it. lock_release_detached
 * is the abort watchdog's: it touches nothing of the struct but the token it
 * is handed.
 */
struct lock {
	struct db *d;
	const struct config *c;
	mongoc_collection_t *coll;
	char token[33];
	bool held;
	bool waited;      /* someone else held it when we first tried */
	bool saw_expired; /* ... and it was an expired holder's (a takeover) */

	/* The heartbeat thread and what it shares with the main thread. */
	struct db hb_db; /* the heartbeat's connection: the thread's once started */
	pthread_t hb;
	bool hb_running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool hb_stop;
	atomic_bool lost;
	/* now_ms() by which the lease has surely run out on the server: the
	 * lease counted from before the last successful renewal was sent. */
	_Atomic int64_t valid_until;
};

/* Waits for the lock up to the configured timeout and starts the
 * heartbeat. 0, EXIT_LOCK_TIMEOUT, another exit code after logging why, or
 * 128+n when stopped by a signal. With x-advisory-locking=false it succeeds
 * at once and holds nothing. */
int lock_acquire(struct lock *l, struct db *d, const struct config *c);

/* Before every command the holder sends: 0 while the heartbeat has not
 * lost the lock and the lease is still valid on our clock, else
 * EXIT_LOCK_LOST (logged). No round trip: the server fences the state
 * writes themselves (db.h); this keeps a runner that lost the lock from
 * sending anything else, a migration's commands included. */
int lock_check(struct lock *l);

/* Right after lock_acquire: fences the migration state to our lock (see
 * db.h) and reads it. With no lock held (x-advisory-locking=false) only
 * reads. 0, EXIT_LOCK_LOST if our lease ran out or the state keeps
 * changing under us, or an exit code after logging why. */
int lock_claim_state(struct lock *l, int64_t *version, bool *dirty);

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

/* The unlock command: removes an expired lock, or with force any lock,
 * revoking its holder's claim on the state first. */
int lock_unlock_command(struct db *d, const struct config *c, bool force);

#endif
