/*
 * The lock's lease arithmetic (lock.h), pure: no clock is read here and
 * nothing touches the database, so the tests can put every boundary to it.
 */
#ifndef MI_LEASE_H
#define MI_LEASE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * When a lock holder's lock runs out, in server-clock ms since the epoch.
 * ours (a lock migrate-init wrote: a token, renewed_at and lease_ms > 0):
 * lease_ms after renewed_at. Otherwise a golang-migrate lock, which has no
 * lease: stale stale_after_ms (LOCK_STALE_AFTER) after created_at, and
 * never when stale_after_ms is 0 or created_at is 0 (absent). INT64_MAX
 * stands for never.
 *
 * renewed_at, lease_ms and created_at come from a document another process
 * wrote, so they can be any int64: the sum saturates instead of
 * overflowing. An end past INT64_MAX is never, as it would be on any real
 * clock anyway.
 */
int64_t lease_expires_at(bool ours, int64_t renewed_at, int64_t lease_ms, int64_t created_at,
                         int64_t stale_after_ms);

/*
 * How long ago, at server time now, that lock ran out (lease_expires_at):
 * >= 0 expired, and a waiter may take it over; 0 is the very millisecond
 * it runs out, so a lease's last valid millisecond is its end - 1. < 0:
 * not yet; -1 for never. Saturates: an end before any real time (a
 * hostile renewed_at near INT64_MIN) is INT64_MAX ago at most.
 */
int64_t lease_expired_for(bool ours, int64_t renewed_at, int64_t lease_ms, int64_t created_at,
                          int64_t stale_after_ms, int64_t now);

/*
 * When the heartbeat first renews, on our own monotonic clock (now_ms()),
 * given valid_until: the send time of the insert (or of the last good
 * renewal) plus the lease, which therefore comes no later in real time
 * than the end the server judges by (its renewed_at, read after that send,
 * plus the lease). A third of the lease after that send, rounded down;
 * renewals then follow every third of it, so one can fail and the next
 * still lands a third of the lease before the end. Both values are our
 * clock's and the configuration's (a lease of at most MAX_DURATION_MS,
 * config.c): far from overflow.
 */
int64_t lease_renewal_due(int64_t valid_until, int64_t lease_ms);

#endif
