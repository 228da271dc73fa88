#include "parse.h"

#include <ctype.h>
#include <string.h>

bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return false;
	uint64_t v = 0;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

bool parse_go_int(const char *s, int64_t *out)
{
	bool neg = false;
	uint64_t v;
	if (!s)
		return false;
	if (*s == '+' || *s == '-')
		neg = *s++ == '-';
	if (!parse_uint(s, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v))
		return false;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return true;
}

bool parse_go_bool(const char *s, bool *out)
{
	static const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
	static const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
	for (size_t i = 0; i < 6; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* At most ~292 years in ms; far above anything sane, far below overflow. */
#define MAX_DURATION_MS ((int64_t)9000000000000000LL)

bool parse_duration_ms(const char *s, int64_t *out)
{
	static const struct {
		const char *unit;
		double ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	if (!s || !*s)
		return false;
	double total = 0;
	bool bare = true;
	const char *p = s;
	while (*p) {
		if (!isdigit((unsigned char)*p) && *p != '.')
			return false;
		double whole = 0, frac = 0, scale = 1;
		int digits = 0;
		for (; isdigit((unsigned char)*p); p++, digits++)
			whole = whole * 10 + (*p - '0');
		if (*p == '.')
			for (p++; isdigit((unsigned char)*p); p++, digits++)
				frac += (*p - '0') * (scale /= 10);
		if (digits == 0 || digits > 18)
			return false;
		double mult = 0;
		if (*p == '\0' && p == s + strlen(s) && bare) {
			mult = 1000; /* a plain number: seconds, as in the seed's script */
		} else {
			for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
				size_t len = strlen(units[i].unit);
				if (strncmp(p, units[i].unit, len) == 0 &&
				    !isalpha((unsigned char)p[len])) {
					mult = units[i].ms;
					p += len;
					break;
				}
			}
			if (mult == 0)
				return false;
		}
		bare = false;
		total += (whole + frac) * mult;
		if (total > (double)MAX_DURATION_MS)
			return false;
	}
	*out = (int64_t)total;
	return true;
}
