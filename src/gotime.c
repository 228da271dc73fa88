#include "gotime.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const months[] = {"January",   "February", "March",    "April",
                                     "May",       "June",     "July",     "August",
                                     "September", "October",  "November", "December"};
static const char *const days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                   "Thursday", "Friday", "Saturday"};

static void put(char **o, char *end, const char *s, size_t n)
{
	while (n-- && *o < end)
		*(*o)++ = *s++;
}

/* v, zero-padded (pad '0') or space-padded (pad ' ') to width. */
static void putf(char **o, char *end, int width, char pad, long v)
{
	char buf[32];
	int n = pad == '0' ? snprintf(buf, sizeof buf, "%0*ld", width, v)
	                   : snprintf(buf, sizeof buf, "%*ld", width, v);
	put(o, end, buf, (size_t)n);
}

static bool starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* Zone offsets: -0700, -07:00, -07, and the Z forms that print Z for UTC. */
static size_t zone(const char *l, const struct tm *tm, char **o, char *end)
{
	static const char *const forms[] = {"070000", "07:00:00", "0700", "07:00", "07"};
	if (*l != '-' && *l != 'Z')
		return 0;
	for (size_t i = 0; i < 5; i++) {
		if (!starts(l + 1, forms[i]))
			continue;
		long off = tm->tm_gmtoff;
		if (*l == 'Z' && off == 0) {
			put(o, end, "Z", 1);
			return 1 + strlen(forms[i]);
		}
		char sign = off < 0 ? '-' : '+';
		off = off < 0 ? -off : off;
		put(o, end, &sign, 1);
		putf(o, end, 2, '0', off / 3600);
		bool colon = strchr(forms[i], ':') != NULL;
		if (strlen(forms[i]) > 2) {
			if (colon)
				put(o, end, ":", 1);
			putf(o, end, 2, '0', off / 60 % 60);
		}
		if (strlen(forms[i]) > 5) {
			if (colon)
				put(o, end, ":", 1);
			putf(o, end, 2, '0', off % 60);
		}
		return 1 + strlen(forms[i]);
	}
	return 0;
}

void go_time_format(const char *l, const struct tm *tm, long nsec, char *out, size_t outlen)
{
	char *o = out, *end = out + outlen - 1;
	int h12 = tm->tm_hour % 12 == 0 ? 12 : tm->tm_hour % 12;
	while (*l) {
		size_t n;
		if (starts(l, "January")) {
			put(&o, end, months[tm->tm_mon], strlen(months[tm->tm_mon]));
			l += 7;
		} else if (starts(l, "Jan")) {
			put(&o, end, months[tm->tm_mon], 3);
			l += 3;
		} else if (starts(l, "Monday")) {
			put(&o, end, days[tm->tm_wday], strlen(days[tm->tm_wday]));
			l += 6;
		} else if (starts(l, "Mon")) {
			put(&o, end, days[tm->tm_wday], 3);
			l += 3;
		} else if (starts(l, "MST")) {
			put(&o, end, tm->tm_zone, strlen(tm->tm_zone));
			l += 3;
		} else if (starts(l, "2006")) {
			putf(&o, end, 4, '0', tm->tm_year + 1900L);
			l += 4;
		} else if (starts(l, "002")) {
			putf(&o, end, 3, '0', tm->tm_yday + 1L);
			l += 3;
		} else if (starts(l, "__2")) {
			putf(&o, end, 3, ' ', tm->tm_yday + 1L);
			l += 3;
		} else if (starts(l, "_2") && !starts(l, "_2006")) {
			putf(&o, end, 2, ' ', (long)tm->tm_mday);
			l += 2;
		} else if (l[0] == '0' && l[1] >= '1' && l[1] <= '6') {
			long v[] = {tm->tm_mon + 1L, tm->tm_mday, h12,
			            tm->tm_min,      tm->tm_sec,  (tm->tm_year + 1900L) % 100};
			putf(&o, end, 2, '0', v[l[1] - '1']);
			l += 2;
		} else if (starts(l, "15")) {
			putf(&o, end, 2, '0', (long)tm->tm_hour);
			l += 2;
		} else if (*l >= '1' && *l <= '5') {
			long v[] = {tm->tm_mon + 1L, tm->tm_mday, h12, tm->tm_min, tm->tm_sec};
			putf(&o, end, 0, '0', v[*l - '1']);
			l++;
		} else if (starts(l, "PM") || starts(l, "pm")) {
			const char *s = tm->tm_hour >= 12 ? "PM" : "AM";
			put(&o, end, *l == 'p' ? (tm->tm_hour >= 12 ? "pm" : "am") : s, 2);
			l += 2;
		} else if ((n = zone(l, tm, &o, end)) > 0) {
			l += n;
		} else if ((*l == '.' || *l == ',') && (l[1] == '0' || l[1] == '9')) {
			size_t k = 1;
			while (l[k] == l[1])
				k++;
			if (l[k] >= '0' && l[k] <= '9') {
				put(&o, end, l, 1);
				l++;
				continue;
			}
			char frac[16];
			snprintf(frac, sizeof frac, "%09ld", nsec);
			size_t digits = k - 1 > 9 ? 9 : k - 1;
			if (l[1] == '9') {
				while (digits > 0 && frac[digits - 1] == '0')
					digits--;
				if (digits > 0)
					put(&o, end, l, 1);
			} else {
				put(&o, end, l, 1);
			}
			put(&o, end, frac, digits);
			l += k;
		} else {
			put(&o, end, l, 1);
			l++;
		}
	}
	*o = '\0';
}
