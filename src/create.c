#include "create.h"

#include "config.h"
#include "exitcode.h"
#include "gotime.h"
#include "log.h"
#include "parse.h"
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
	const char *tzdir = config_env("TZDIR");
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

int create_main(const struct command *cmd)
{
	const char *name = cmd->name; /* required: command_args checked */
	if (!*name || strchr(name, '/'))
		return usage_error("create: NAME must be non-empty and hold no '/'", name);
	if (!cmd->ext || !*cmd->ext)
		return usage_error("-ext flag must be specified", "");
	const char *format = cmd->format ? cmd->format : DEFAULT_FORMAT;
	int64_t digits = 6;
	if (cmd->digits && !parse_go_int(cmd->digits, &digits))
		return usage_error("invalid value for flag -digits", cmd->digits);
	if (cmd->seq && strcmp(format, DEFAULT_FORMAT) != 0)
		return usage_error("the seq and format options are mutually exclusive", format);

	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int rc = set_zone(cmd->tz ? cmd->tz : "UTC");
	if (rc)
		return rc;

	const char *dir = cmd->dir && *cmd->dir ? cmd->dir : ".";
	char ext[256];
	snprintf(ext, sizeof ext, ".%s", cmd->ext[0] == '.' ? cmd->ext + 1 : cmd->ext);

	char version[128];
	if (cmd->seq) {
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
