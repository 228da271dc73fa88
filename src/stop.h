/*
 * SIGTERM and SIGINT ask for a stop: no new migration starts and the one
 * running may finish. If it has not finished when the grace period ends (or
 * a second signal comes), a watchdog thread calls the abort handler, which
 * must make things as safe as it can without the main thread (release the
 * lock over a connection of its own, write the termination message), and
 * the process exits 128+n.
 */
#ifndef MI_STOP_H
#define MI_STOP_H

#include <stdint.h>

#define STOP_GRACE_DEFAULT_MS 20000

/* Installs the handlers and starts the watchdog. */
void stop_install(int64_t grace_ms);

/* What the watchdog calls before exiting; NULL for nothing. */
void stop_set_abort(void (*fn)(void *arg, int sig), void *arg);

/* The signal that asked for a stop, or 0. */
int stop_requested(void);

/* Sleeps ms milliseconds, returning early when a stop is requested. */
void stop_sleep_ms(int64_t ms);

/* Milliseconds on a monotonic clock. */
int64_t now_ms(void);

/* Milliseconds since the epoch, for records people read. */
int64_t wall_ms(void);

#endif
