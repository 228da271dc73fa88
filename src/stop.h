/*
 * SIGTERM and SIGINT ask for a stop: no new migration starts and the one
 * running (the main thread marks it with stop_critical) may finish. If it
 * has not finished when the grace period ends (or a second signal comes),
 * a watchdog thread calls the abort handler, which must make things as safe
 * as it can without the main thread (release the lock over a connection of
 * its own, write the termination message), and the process exits 128+n.
 * Outside a critical section there is nothing to finish: the watchdog
 * aborts after a moment even if the main thread is stuck in a connection
 * attempt.
 *
 * Threads: stop_install, stop_set_abort, stop_critical and stop_finish are
 * the main thread's; the abort handler runs on the watchdog thread and may
 * only touch what it was handed for that purpose.
 */
#ifndef MI_STOP_H
#define MI_STOP_H

#include <stdbool.h>
#include <stdint.h>

#define STOP_GRACE_DEFAULT_MS 20000

/* Installs the handlers and starts the watchdog. */
void stop_install(int64_t grace_ms);

/* What the watchdog calls before exiting (mid_work: a critical section
 * outlasted the grace period); NULL for nothing. */
void stop_set_abort(void (*fn)(void *arg, int sig, bool mid_work), void *arg);

/* Marks the start and end of work a stop should let finish (a migration).
 * Starting one returns false when a stop was already asked for: then do
 * not start it (and end the section). Never after stop_finish. */
bool stop_critical(bool on);

/* The main thread is about to finish on its own: from now on the watchdog
 * never aborts (it waits for our exit). Call once no network I/O is left. */
void stop_finish(void);

/* The signal that asked for a stop, or 0. */
int stop_requested(void);

/* Sleeps ms milliseconds, returning early when a stop is requested. */
void stop_sleep_ms(int64_t ms);

#endif
