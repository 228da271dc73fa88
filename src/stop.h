/*
 * SIGTERM and SIGINT ask for a stop: no new migration starts, the running
 * one may finish, the lock is released, and the exit code is 128+n.
 */
#ifndef MI_STOP_H
#define MI_STOP_H

#include <stdint.h>

void stop_install(void);

/* The signal that asked for a stop, or 0. */
int stop_requested(void);

/* Sleeps ms milliseconds, returning early when a stop is requested. */
void stop_sleep_ms(int64_t ms);

/* Milliseconds on a monotonic clock. */
int64_t now_ms(void);

#endif
