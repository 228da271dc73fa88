/*
 * Small helpers more than one module needs, one copy each: clocks, the
 * host name, ISO times, suffixes. Thread-safe, no state.
 */
#ifndef MI_UTIL_H
#define MI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The version the Makefile stamps in; "dev" for a build without it. */
#ifndef MI_VERSION
#define MI_VERSION "dev"
#endif

/* Milliseconds on a monotonic clock: for durations and deadlines. */
int64_t now_ms(void);

/* Milliseconds since the epoch, for records people read. */
int64_t wall_ms(void);

/* This host's name, or "unknown". */
void util_hostname(char *out, size_t len);

/* ms since the epoch as 2006-01-02T15:04:05Z (UTC, whole seconds). */
void util_iso_time(int64_t ms, char *out, size_t len);

bool util_ends_with(const char *s, const char *suffix);

#endif
