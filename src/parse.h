/*
 * The text-to-number parsers every setting, flag and argument goes through,
 * one copy each. They accept only a complete, in-range value (no spaces,
 * no signs where none belong, no trailing text) and return false on
 * anything else, leaving *out untouched.
 */
#ifndef MI_PARSE_H
#define MI_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* Decimal digits only, at most max. */
bool parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Go's strconv.Atoi on 64 bits: an optional sign, then digits. */
bool parse_go_int(const char *s, int64_t *out);

/* Go's strconv.ParseBool: 1 t T TRUE true True, 0 f F FALSE false False. */
bool parse_go_bool(const char *s, bool *out);

/* A duration in ms: a plain number is seconds ("2", as the seed's script
 * reads RETRY_INTERVAL), else Go-style parts ("500ms", "1m30s", "1.5h"). */
bool parse_duration_ms(const char *s, int64_t *out);

#endif
