#include "create.h"

#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "util.h"

#include <bson/bson.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_FORMAT "20060102150405"

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

static int usage_error(const char *msg, const char *value)
{
	log_error(msg, F_STR("value", value ? value : ""), F_STR("command", "create"));
	return EXIT_USAGE;
}

static int set_zone(const char *tz)
{
	if (strcmp(tz, "UTC") == 0 || strcmp(tz, "Local") == 0) {
		if (strcmp(tz, "UTC") == 0)
			setenv("TZ", "UTC0", 1);
		tzset();
		return 0;
	}
	const char *tzdir = getenv("TZDIR");
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", tzdir && *tzdir ? tzdir : "/usr/share/zoneinfo", tz);
	struct stat st;
	if (strstr(tz, "..") || tz[0] == '/' || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return usage_error("unknown time zone", tz);
	setenv("TZ", tz, 1);
	tzset();
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in dir that start with prefix and end with suffix, sorted. */
static char **glob_names(const char *dir, const char *prefix, const char *suffix, size_t *n)
{
	char **v = NULL;
	*n = 0;
	DIR *d = opendir(dir);
	if (!d)
		return NULL;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 ||
		    strlen(de->d_name) < strlen(prefix) + strlen(suffix) ||
		    !util_ends_with(de->d_name, suffix))
			continue;
		v = bson_realloc(v, (*n + 1) * sizeof *v);
		v[(*n)++] = bson_strdup(de->d_name);
	}
	closedir(d);
	if (*n)
		qsort(v, *n, sizeof *v, cmp_str);
	return v;
}

static void free_names(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		bson_free(v[i]);
	bson_free(v);
}

static int next_seq(const char *dir, const char *ext, int64_t digits, char *out, size_t outlen)
{
	if (digits <= 0)
		return usage_error("digits must be positive", "");
	size_t n;
	char **names = glob_names(dir, "", ext, &n);
	uint64_t next = 1;
	int rc = 0;
	if (n > 0) {
		const char *last = names[n - 1];
		const char *us = strchr(last, '_');
		char num[32];
		if (!us || us == last) {
			log_error("malformed migration filename", F_STR("file", last));
			rc = EXIT_SOURCE;
		} else if ((size_t)(us - last) >= sizeof num ||
		           (snprintf(num, sizeof num, "%.*s", (int)(us - last), last),
		            !parse_uint(num, UINT64_MAX - 1, &next))) {
			log_error("malformed migration filename: its prefix is not a number",
			          F_STR("file", last));
			rc = EXIT_SOURCE;
		} else {
			next++;
		}
	}
	free_names(names, n);
	if (rc)
		return rc;
	snprintf(out, outlen, "%0*" PRIu64, digits > 64 ? 64 : (int)digits, next);
	if ((int64_t)strlen(out) > digits) {
		log_error("next sequence number too large", F_STR("next", out),
		          F_INT("digits", digits));
		return EXIT_USAGE;
	}
	return 0;
}

static int mkdir_all(const char *dir)
{
	char *p = bson_strdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST)
			break;
		*s = '/';
	}
	bson_free(p);
	if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
		log_error("cannot create directory", F_STR("dir", dir),
		          F_STR("error", strerror(errno)));
		return EXIT_INTERNAL;
	}
	return 0;
}

int create_main(const struct cli *cli)
{
	/* create -help never gets here: main answers every command's -help. */
	if (cli->nargs == 0)
		return usage_error("please specify name", "");
	if (cli->nargs > 1)
		return usage_error("create: too many arguments", cli->args[1]);
	const char *name = cli->args[0];
	if (!*name || strchr(name, '/'))
		return usage_error("create: NAME must be non-empty and hold no '/'", name);
	if (!cli->ext || !*cli->ext)
		return usage_error("-ext flag must be specified", "");
	const char *format = cli->format ? cli->format : DEFAULT_FORMAT;
	int64_t digits = 6;
	if (cli->digits && !parse_go_int(cli->digits, &digits))
		return usage_error("invalid value for flag -digits", cli->digits);
	if (cli->seq && strcmp(format, DEFAULT_FORMAT) != 0)
		return usage_error("the seq and format options are mutually exclusive", format);

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int rc = set_zone(cli->tz ? cli->tz : "UTC");
	if (rc)
		return rc;

	const char *dir = cli->dir && *cli->dir ? cli->dir : ".";
	char ext[256];
	snprintf(ext, sizeof ext, ".%s", cli->ext[0] == '.' ? cli->ext + 1 : cli->ext);

	char version[128];
	if (cli->seq) {
		if ((rc = next_seq(dir, ext, digits, version, sizeof version)))
			return rc;
	} else if (!*format) {
		return usage_error("time format may not be empty", "");
	} else if (strcmp(format, "unix") == 0) {
		snprintf(version, sizeof version, "%lld", (long long)now.tv_sec);
	} else if (strcmp(format, "unixNano") == 0) {
		snprintf(version, sizeof version, "%lld%09ld", (long long)now.tv_sec, now.tv_nsec);
	} else {
		struct tm tm;
		localtime_r(&now.tv_sec, &tm);
		go_time_format(format, &tm, now.tv_nsec, version, sizeof version);
	}

	char prefix[160];
	snprintf(prefix, sizeof prefix, "%s_", version);
	size_t n;
	char **dups = glob_names(dir, prefix, ext, &n);
	free_names(dups, n);
	if (n > 0) {
		log_error("duplicate migration version", F_STR("version", version),
		          F_STR("dir", dir));
		return EXIT_SOURCE;
	}
	if ((rc = mkdir_all(dir)))
		return rc;
	char absdir[PATH_MAX];
	if (!realpath(dir, absdir))
		snprintf(absdir, sizeof absdir, "%s", dir);
	static const char *const dirs[] = {"up", "down"};
	for (int i = 0; i < 2; i++) {
		char *path =
		    bson_strdup_printf("%s/%s_%s.%s%s", absdir, version, name, dirs[i], ext);
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
		if (fd < 0) {
			log_error("cannot create migration file", F_STR("file", path),
			          F_STR("error", strerror(errno)));
			bson_free(path);
			return EXIT_INTERNAL;
		}
		close(fd);
		printf("%s\n", path);
		bson_free(path);
	}
	return 0;
}
