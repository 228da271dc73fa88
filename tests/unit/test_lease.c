/*
 * Unit tests: the lock's lease arithmetic (src/lease.h) and the holder's
 * own check of its lease (lock_check). A waiter takes over a lock it judges
 * expired, so an off-by-one here is two runners migrating at once, and a
 * lock document is written by another process: its times can be anything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exitcode.h"
#include "lease.h"
#include "lock.h"
#include "log.h"
#include "util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

/* A server time: 2023-11-14T22:13:20Z. */
#define T INT64_C(1700000000000)
#define LEASE INT64_C(30000)
#define STALE INT64_C(600000) /* LOCK_STALE_AFTER's default, 10 minutes */
#define NEVER INT64_MAX

struct lease_case {
	const char *why;
	bool ours;
	int64_t renewed_at, lease_ms, created_at, stale_after_ms, now;
	int64_t expires_at;  /* lease_expires_at */
	int64_t expired_for; /* lease_expired_for: >= 0 expired */
};

static const struct lease_case cases[] = {
    /* Ours: lease_ms after the last renewal. */
    {"ours, just renewed", true, T, LEASE, T - 5000, STALE, T, T + LEASE, -LEASE},
    {"ours, one ms before the end: still held", true, T, LEASE, T, STALE, T + LEASE - 1, T + LEASE,
     -1},
    {"ours, at the end: expired, the end is not part of the lease", true, T, LEASE, T, STALE,
     T + LEASE, T + LEASE, 0},
    {"ours, one ms after the end", true, T, LEASE, T, STALE, T + LEASE + 1, T + LEASE, 1},
    {"ours, long dead", true, T, LEASE, T, STALE, T + 3600000, T + LEASE, 3600000 - LEASE},
    {"ours, the shortest lease the configuration allows", true, T, 300, T, STALE, T + 300, T + 300,
     0},
    /* The server's clock before the renewal it recorded (another
     * primary after a failover, its clock behind): not expired. */
    {"ours, now before renewed_at", true, T, LEASE, T, STALE, T - 5000, T + LEASE, -LEASE - 5000},
    /* A lease is renewed; created_at only tells how long it has been
     * held, and LOCK_STALE_AFTER is for golang-migrate's locks. */
    {"ours, an old created_at does not make it stale", true, T, LEASE, T - 86400000, STALE, T,
     T + LEASE, -LEASE},
    {"ours, LOCK_STALE_AFTER=0 does not make it eternal", true, T, LEASE, T, 0, T + LEASE,
     T + LEASE, 0},

    /* golang-migrate's: no lease, stale LOCK_STALE_AFTER after created_at. */
    {"golang-migrate, one ms before stale", false, 0, 0, T, STALE, T + STALE - 1, T + STALE, -1},
    {"golang-migrate, at stale", false, 0, 0, T, STALE, T + STALE, T + STALE, 0},
    {"golang-migrate, one ms after stale", false, 0, 0, T, STALE, T + STALE + 1, T + STALE, 1},
    {"golang-migrate, LOCK_STALE_AFTER=0: never, however old", false, 0, 0, T, 0, T + 1000 * STALE,
     NEVER, -1},
    {"golang-migrate, no created_at: never (nothing to count from)", false, 0, 0, 0, STALE,
     T + STALE, NEVER, -1},
    /* A document with lease fields but no token is not ours (read_holder):
     * its renewed_at and lease_ms mean nothing. */
    {"not ours, lease fields ignored", false, T, 1, T, STALE, T + 1, T + STALE, 1 - STALE},
    {"golang-migrate, created_at before 1970", false, 0, 0, -1000, STALE, T, STALE - 1000,
     T - STALE + 1000},
    {"golang-migrate, the longest LOCK_STALE_AFTER (9e15 ms)", false, 0, 0, T,
     INT64_C(9000000000000000), T, T + INT64_C(9000000000000000), INT64_C(-9000000000000000)},

    /* Hostile documents: every sum saturates, none overflows. An end at or
     * past INT64_MAX is never (292 million years from 1970); one below
     * INT64_MIN expired INT64_MAX ms ago at most. */
    {"renewed_at INT64_MAX: never", true, INT64_MAX, LEASE, T, STALE, T, NEVER, -1},
    {"lease_ms INT64_MAX: never", true, T, INT64_MAX, T, STALE, T, NEVER, -1},
    {"the end exactly INT64_MAX: never", true, INT64_MAX - LEASE, LEASE, T, STALE, INT64_MAX, NEVER,
     -1},
    {"the end one below INT64_MAX: a real time, far off", true, INT64_MAX - LEASE - 1, LEASE, T,
     STALE, T, INT64_MAX - 1, T - (INT64_MAX - 1)},
    {"... and reached at now = INT64_MAX", true, INT64_MAX - LEASE - 1, LEASE, T, STALE, INT64_MAX,
     INT64_MAX - 1, 1},
    {"renewed_at INT64_MIN: now - end overflows, saturates", true, INT64_MIN, 1, T, STALE, T,
     INT64_MIN + 1, INT64_MAX},
    {"renewed_at INT64_MIN, a negative lease: the sum saturates low", true, INT64_MIN, -1, T, STALE,
     T, INT64_MIN, INT64_MAX},
    {"created_at INT64_MAX: never", false, 0, 0, INT64_MAX, STALE, T, NEVER, -1},
    {"created_at INT64_MIN: long stale, saturated", false, 0, 0, INT64_MIN, STALE, T,
     INT64_MIN + STALE, INT64_MAX},
    {"now INT64_MIN (a hostile server clock): not expired, saturated", true, T, LEASE, T, STALE,
     INT64_MIN, T + LEASE, INT64_MIN},
};

static void test_lease_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct lease_case *c = &cases[i];
		int64_t end = lease_expires_at(c->ours, c->renewed_at, c->lease_ms, c->created_at,
		                               c->stale_after_ms);
		int64_t ago = lease_expired_for(c->ours, c->renewed_at, c->lease_ms, c->created_at,
		                                c->stale_after_ms, c->now);
		if (end != c->expires_at || ago != c->expired_for)
			fail_msg("%s: expires at %" PRId64 ", expired for %" PRId64
			         "; want %" PRId64 ", %" PRId64,
			         c->why, end, ago, c->expires_at, c->expired_for);
	}
}

/*
 * Every combination of extreme values: no overflow (UBSan aborts the test
 * on one), and the two functions agree: expired exactly when now has
 * reached a real end, never when the end is NEVER; and being expired only
 * grows with now.
 */
static void test_lease_extremes(void **state)
{
	(void)state;
	static const int64_t v[] = {INT64_MIN, INT64_MIN + 1, -LEASE,   -1, 0, 1,
	                            T,         INT64_MAX - 1, INT64_MAX};
	const size_t n = sizeof v / sizeof v[0];
	/* Combination k: its base-n digits pick renewed_at, lease_ms,
	 * created_at and stale_after_ms; now runs through v in order. */
	for (size_t k = 0; k < 2 * n * n * n * n; k++) {
		bool ours = k % 2;
		int64_t r = v[k / 2 % n], l = v[k / 2 / n % n], c = v[k / 2 / n / n % n],
		        st = v[k / 2 / n / n / n % n];
		int64_t end = lease_expires_at(ours, r, l, c, st);
		bool was = false;
		for (size_t e = 0; e < n; e++) {
			int64_t ago = lease_expired_for(ours, r, l, c, st, v[e]);
			bool expired = ago >= 0;
			if (expired != (end != NEVER && v[e] >= end) || (was && !expired))
				fail_msg("ours %d renewed_at %" PRId64 " lease %" PRId64
				         " created_at %" PRId64 " stale %" PRId64 " now %" PRId64
				         ": expired for %" PRId64 ", end %" PRId64,
				         ours, r, l, c, st, v[e], ago, end);
			was = expired;
		}
	}
}

/*
 * The heartbeat's first renewal: a third of the lease after the send that
 * set valid_until, rounded down (earlier, never later). The next comes a
 * third later, still a third of the lease before its end; a third one
 * would start at most 2 ms before the end (the rounding), too late for any
 * round trip: one failed renewal is survived, two are not.
 */
static void test_renewal_due(void **state)
{
	(void)state;
	static const struct {
		int64_t sent, lease, due;
	} due[] = {
	    {1000, 30000, 11000},
	    {1000, 300, 1100}, /* the shortest lease allowed */
	    {0, 1000, 333},    /* rounded down */
	    {0, 1001, 333},
	    {0, 1002, 334},
	    {T, INT64_C(9000000000000000), T + INT64_C(3000000000000000)}, /* the longest */
	};
	for (size_t i = 0; i < sizeof due / sizeof due[0]; i++) {
		int64_t valid_until = due[i].sent + due[i].lease;
		assert_int_equal(lease_renewal_due(valid_until, due[i].lease), due[i].due);
	}
	for (int64_t lease = 300; lease <= 5000; lease++) {
		int64_t sent = 123456, valid_until = sent + lease;
		int64_t first = lease_renewal_due(valid_until, lease), period = lease / 3;
		assert_true(first > sent && first - sent == period);
		assert_true(first + period < valid_until);          /* the second, in time */
		assert_true(first + 2 * period >= valid_until - 2); /* the third, too late */
		assert_true(valid_until - first >= 2 * lease / 3);
	}
}

/* lock_check with its log line kept off the test output. */
static int quiet_check(struct lock *l)
{
	fflush(stderr);
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && null >= 0);
	dup2(null, STDERR_FILENO);
	close(null);
	int rc = lock_check(l);
	dup2(saved, STDERR_FILENO);
	close(saved);
	return rc;
}

/*
 * The holder's own judgement, on its monotonic clock, before every command:
 * held while now < valid_until; at valid_until it is lost, the same
 * boundary a waiter uses on the server's clock (expired at the end), and
 * lost stays lost: a renewal that lands late does not revive it, since a
 * waiter may already have taken over.
 */
static void test_lock_check(void **state)
{
	(void)state;
	struct config c = {0};
	c.lock_lease_ms = LEASE;
	struct lock l = {0};
	l.c = &c;
	l.held = true;
	atomic_store(&l.lost, false);
	atomic_store(&l.valid_until, now_ms() + 60000);
	assert_int_equal(quiet_check(&l), 0);
	assert_false(atomic_load(&l.lost));

	/* now_ms() only grows: by the check it is at or past this. */
	atomic_store(&l.valid_until, now_ms());
	assert_int_equal(quiet_check(&l), EXIT_LOCK_LOST);
	assert_true(atomic_load(&l.lost));

	atomic_store(&l.valid_until, now_ms() + 60000);
	assert_int_equal(quiet_check(&l), EXIT_LOCK_LOST);

	/* The heartbeat's verdict counts even with time left. */
	struct lock hb_lost = {0};
	hb_lost.c = &c;
	hb_lost.held = true;
	atomic_store(&hb_lost.lost, true);
	atomic_store(&hb_lost.valid_until, now_ms() + 60000);
	assert_int_equal(quiet_check(&hb_lost), EXIT_LOCK_LOST);

	/* x-advisory-locking=false: nothing held, nothing to lose. */
	struct lock none = {0};
	none.c = &c;
	atomic_store(&none.lost, true);
	assert_int_equal(quiet_check(&none), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lease_cases),
	    cmocka_unit_test(test_lease_extremes),
	    cmocka_unit_test(test_renewal_due),
	    cmocka_unit_test(test_lock_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
