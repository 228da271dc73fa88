/*
 * Waiting for the database before anything else: connect and ping, with
 * exponential backoff and full jitter, until it answers, a permanent error
 * (authentication, TLS) shows that waiting cannot help, or the attempts or
 * the deadline run out.
 */
#ifndef MI_WAIT_H
#define MI_WAIT_H

#include "config.h"
#include "db.h"

#include <stdint.h>

/* 0, EXIT_UNREACHABLE, EXIT_AUTH, or 128+n when stopped by a signal. */
int wait_for_database(struct db *d, const struct config *c);

/* Full jitter: a random delay in [0, min(cap, base * 2^attempt)]. attempt
 * counts from 0; rnd is a uniform random number in [0, 1). */
int64_t backoff_full_jitter(unsigned attempt, int64_t base_ms, int64_t cap_ms, double rnd);

/* The next delay of a wait with the configured backoff (RETRY_INTERVAL,
 * RETRY_MAX_INTERVAL), never past deadline_ms (0: none) given elapsed. */
int64_t wait_next_delay(const struct config *c, unsigned attempt, int64_t elapsed,
                        int64_t deadline_ms);

#endif
