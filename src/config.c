#include "config.h"

#include "exitcode.h"
#include "log.h"
#include "parse.h"
#include "termination.h"
#include "url.h"
#include "util.h"

#include <bson/bson.h>
#include <errno.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_URL_FILE 65536

enum kind {
	K_DURATION,   /* int64_t ms: "2" (seconds), "500ms", "1m30s" */
	K_SECONDS,    /* int64_t ms from whole seconds: golang-migrate's uint flags */
	K_COUNT,      /* int64_t: a whole number */
	K_VERSION,    /* int64_t migration version; sets has_target */
	K_BOOL,       /* bool: Go's ParseBool; as a flag, given bare means true */
	K_TEXT,       /* char *: any non-empty text */
	K_FILE_URL,   /* char *: the directory of a file:// URL */
	K_LIST,       /* char *: comma-separated names; a flag may be repeated */
	K_LOG_FORMAT, /* int: json or text */
	K_LOG_LEVEL,  /* int: debug, info, warn, error */
	K_CHOICE,     /* int: the index of the value in the row's choices */
	K_URL,        /* the database URL; config_load_database */
	K_URL_FILE,   /* a file holding it; config_load_database */
};

enum phase { EARLY, MAIN, DATABASE };

/* In the order of enum on_failure. */
static const char *const on_failure_choices[] = {"dirty", "rollback", NULL};
/* In the order of enum backup. */
static const char *const backup_choices[] = {"off", "touched", NULL};

#define NO_FIELD ((size_t)-1)
#define AT(field) offsetof(struct config, field)

/*
 * Every setting, one row each: an environment variable (NAME) or a global
 * flag (-name). Rows apply in order and a later row that is set overrides
 * an earlier one writing the same field: flags come after the variable
 * they override; the termination message's path comes first, so that a
 * bad value of any other is reported there. def is parsed like a value the
 * user gave, so the help text and the behaviour cannot disagree. min/max
 * bound numbers (ms for durations).
 */
static const struct setting {
	const char *name;
	enum kind kind;
	enum phase phase;
	size_t field;
	const char *def;
	int64_t min, max;
	const char *help;
	const char *const *choices; /* K_CHOICE: the values, NULL-terminated */
} settings[] = {
    {"TERMINATION_MESSAGE_PATH", K_TEXT, EARLY, AT(termination_path), TERMINATION_DEFAULT_PATH, 0,
     0, "where the termination message goes", NULL},
    {"LOG_FORMAT", K_LOG_FORMAT, EARLY, AT(log_format), "json", 0, 0,
     "json (slog field names: time, level, msg, ...) or text", NULL},
    {"LOG_LEVEL", K_LOG_LEVEL, EARLY, AT(log_level), "info", 0, 0,
     "debug, info, warn or error; -verbose means debug", NULL},
    {"DATABASE_URL", K_URL, DATABASE, AT(url), NULL, 0, 0,
     "mongodb:// or mongodb+srv:// URL; the path names the database", NULL},
    {"DATABASE_URL_FILE", K_URL_FILE, DATABASE, AT(url), NULL, 0, 0,
     "read the URL from this file (a mounted Secret); trailing newline trimmed; setting "
     "both is an error",
     NULL},
    {"-database", K_URL, DATABASE, AT(url), NULL, 0, 0,
     "Run migrations against this database (mongodb:// or mongodb+srv://)", NULL},
    {"MIGRATION_DIR", K_TEXT, MAIN, AT(source_dir), "/migrations", 0, 0, "the migrations directory",
     NULL},
    {"-path", K_TEXT, MAIN, AT(source_dir), NULL, 0, 0, "Shorthand for -source=file://path", NULL},
    {"-source", K_FILE_URL, MAIN, AT(source_dir), NULL, 0, 0,
     "Location of the migrations (file://DIR)", NULL},
    {"TARGET_VERSION", K_VERSION, MAIN, AT(target), NULL, 0, INT64_MAX,
     "entrypoint mode: goto this version instead of up", NULL},
    {"LOCK_TIMEOUT", K_DURATION, MAIN, AT(lock_timeout_ms), "15s", 0, INT64_MAX,
     "how long to wait for the lock; -lock-timeout takes whole seconds", NULL},
    {"-lock-timeout", K_SECONDS, MAIN, AT(lock_timeout_ms), NULL, 0, (int64_t)UINT32_MAX * 1000,
     "Allow N seconds to acquire database lock", NULL},
    {"LOCK_LEASE", K_DURATION, MAIN, AT(lock_lease_ms), "30s", 300, INT64_MAX,
     "lease of our lock (at least 300ms); the heartbeat renews it every third", NULL},
    {"LOCK_STALE_AFTER", K_DURATION, MAIN, AT(lock_stale_after_ms), "10m", 0, INT64_MAX,
     "when a golang-migrate lock (no lease) counts as abandoned; 0: never", NULL},
    {"STOP_GRACE_PERIOD", K_DURATION, MAIN, AT(stop_grace_ms), "20s", 0, INT64_MAX,
     "after SIGTERM/SIGINT, how long a running migration may go on before the run is "
     "aborted; with no migration running the run stops at once",
     NULL},
    {"MAX_RETRIES", K_COUNT, MAIN, AT(max_retries), "30", 1, 1000000,
     "attempts to reach the database (1 to 1000000)", NULL},
    {"RETRY_INTERVAL", K_DURATION, MAIN, AT(retry_interval_ms), "2s", 1, INT64_MAX,
     "first backoff delay; plain numbers are seconds, or 500ms, 2s, 1m", NULL},
    {"RETRY_MAX_INTERVAL", K_DURATION, MAIN, AT(retry_max_interval_ms), "10s", 1, INT64_MAX,
     "cap of the backoff delay (raised to RETRY_INTERVAL when below it)", NULL},
    {"WAIT_TIMEOUT", K_DURATION, MAIN, AT(wait_timeout_ms), "0", 0, INT64_MAX,
     "overall deadline for reaching the database; 0: none", NULL},
    {"HISTORY_FLUSH_INTERVAL", K_DURATION, MAIN, AT(history_flush_ms), "1s", 0, INT64_MAX,
     "history records of applied migrations are written together, at most this long after "
     "the first of them, and all at the end of a run; 0: each right after its migration",
     NULL},
    {"POD_NAME", K_TEXT, MAIN, AT(owner), NULL, 0, 0,
     "the owner recorded in the lock and the history (default: the host name)", NULL},
    {"ALLOW_BREAKING", K_BOOL, MAIN, AT(allow_breaking), "false", 0, 0,
     "allow versions the registry marks breaking: true", NULL},
    {"-allow-breaking", K_BOOL, MAIN, AT(allow_breaking), NULL, 0, 0,
     "Apply versions the registry marks breaking", NULL},
    {"ON_FAILURE", K_CHOICE, MAIN, AT(on_failure), "dirty", 0, 0,
     "when a migration fails: dirty (golang-migrate's: stay dirty at its version) or "
     "rollback (run its down file, record the previous version clean)",
     on_failure_choices},
    {"-on-failure", K_CHOICE, MAIN, AT(on_failure), NULL, 0, 0,
     "What to do when a migration fails: dirty or rollback", on_failure_choices},
    {"MIGRATION_TIMEOUT", K_DURATION, MAIN, AT(migration_timeout_ms), "0", 0, INT64_MAX,
     "a bound on one migration (each command gets maxTimeMS for the time left); past it "
     "the migration has failed; 0: none",
     NULL},
    {"RUN_TIMEOUT", K_DURATION, MAIN, AT(run_timeout_ms), "0", 0, INT64_MAX,
     "a deadline for the whole run: no migration starts that MIGRATION_TIMEOUT says could "
     "end past it; the run stops between migrations, exit 10; 0: none",
     NULL},
    {"BACKUP", K_CHOICE, MAIN, AT(backup), "off", 0, 0,
     "touched: before the first pending migration, copy every collection the pending "
     "migrations name to NAME__bak_V_TIME (restore V puts them back)",
     backup_choices},
    {"BACKUP_MAX_BYTES", K_COUNT, MAIN, AT(backup_max_bytes), "268435456", 0, INT64_MAX,
     "over this many bytes in the collections to copy, refuse before any migration runs", NULL},
    {"DEPENDENCY_TIMEOUT", K_DURATION, MAIN, AT(dependency_timeout_ms), "5m", 0, INT64_MAX,
     "how long to wait for another service's version (registry)", NULL},
    {"SERVICES", K_LIST, MAIN, AT(services), NULL, 0, 0,
     "central layout: run only these services (comma-separated); default: all", NULL},
    {"-service", K_LIST, MAIN, AT(services), NULL, 0, 0,
     "Run only service NAME of a central layout (repeatable)", NULL},
    {"-prefetch", K_COUNT, MAIN, NO_FIELD, NULL, 0, UINT32_MAX,
     "Accepted for compatibility; every file is read before the run", NULL}};

#define NSETTINGS (sizeof settings / sizeof settings[0])

const char *config_env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static bool is_flag(const struct setting *s)
{
	return s->name[0] == '-';
}

bool config_flag(size_t i, const char **name, bool *is_bool, const char **help)
{
	for (size_t k = 0; k < NSETTINGS; k++) {
		if (!is_flag(&settings[k]) || i-- > 0)
			continue;
		*name = settings[k].name;
		*is_bool = settings[k].kind == K_BOOL;
		*help = settings[k].help;
		return true;
	}
	return false;
}

static void join_flags(const struct setting *s, char *out, size_t len)
{
	out[0] = '\0';
	for (size_t k = 0; k < NSETTINGS; k++)
		if (is_flag(&settings[k]) && settings[k].field == s->field && s->field != NO_FIELD)
			snprintf(out + strlen(out), len - strlen(out), "%s%s", out[0] ? ", " : "",
			         settings[k].name);
}

bool config_setting(size_t i, const char **name, const char **def, char *flags, size_t flen,
                    const char **help)
{
	for (size_t k = 0; k < NSETTINGS; k++) {
		if (is_flag(&settings[k]) || i-- > 0)
			continue;
		*name = settings[k].name;
		*def = settings[k].def;
		*help = settings[k].help;
		join_flags(&settings[k], flags, flen);
		return true;
	}
	return false;
}

void config_print_env(void *stream)
{
	FILE *f = stream;
	fprintf(f, "Environment (flags win; a variable set to \"\" counts as unset):\n");
	for (size_t k = 0; k < NSETTINGS; k++) {
		const struct setting *s = &settings[k];
		if (is_flag(s))
			continue;
		char flags[64];
		join_flags(s, flags, sizeof flags);
		fprintf(f, "  %-25s %s", s->name, s->help);
		if (s->def)
			fprintf(f, " (default %s)", s->def);
		if (flags[0])
			fprintf(f, " [%s]", flags);
		fprintf(f, "\n");
	}
}

static int bad_value(const char *what, const char *value, const char *why)
{
	log_error("invalid configuration value", F_STR("variable", what), F_STR("value", value),
	          F_STR("error", why));
	return EXIT_USAGE;
}

/* "must be at least 300ms", "must be greater than zero", with the bound as
 * a person would write it. */
static int out_of_bounds(const struct setting *s, const char *v, int64_t n)
{
	char why[128];
	bool ms = s->kind == K_DURATION || s->kind == K_SECONDS;
	if (n < s->min && s->min == 1)
		snprintf(why, sizeof why, "must be greater than zero");
	else if (n < s->min)
		snprintf(why, sizeof why, "must be at least %" PRId64 "%s", s->min, ms ? "ms" : "");
	else
		snprintf(why, sizeof why, "too large: at most %" PRId64 "%s",
		         ms ? s->max / 1000 : s->max, ms ? "s" : "");
	return bad_value(s->name, v, why);
}

/* One row's text into its field. 0 or EXIT_USAGE (logged). */
static int apply(struct config *c, const struct setting *s, const char *v)
{
	void *field = s->field == NO_FIELD ? NULL : (char *)c + s->field;
	int64_t n = 0;
	uint64_t u;
	bool b;
	switch (s->kind) {
	case K_DURATION:
		if (!parse_duration_ms(v, &n))
			return bad_value(s->name, v,
			                 "expected seconds or a duration such as 500ms, 2s, 1m");
		break;
	case K_SECONDS:
		if (!parse_uint(v, UINT32_MAX, &u))
			return bad_value(s->name, v, "expected a whole number of seconds");
		n = (int64_t)u * 1000;
		break;
	case K_COUNT:
	case K_VERSION:
		if (!parse_uint(v, UINT64_MAX, &u))
			return bad_value(s->name, v,
			                 s->kind == K_VERSION
			                     ? "expected a migration version (a whole number)"
			                     : "expected a whole number");
		if (u > (uint64_t)s->max)
			return out_of_bounds(s, v, s->max);
		n = (int64_t)u;
		break;
	case K_BOOL:
		if (!parse_go_bool(v, &b))
			return bad_value(s->name, v, "expected true or false");
		*(bool *)field = b;
		return 0;
	case K_LIST:
		for (const char *p = v;; p += strcspn(p, ",") + 1) {
			if (strcspn(p, ",") == 0)
				return bad_value(s->name, v, "expected names separated by commas");
			if (!p[strcspn(p, ",")])
				break;
		}
		/* fall through */
	case K_TEXT:
		bson_free(*(char **)field);
		*(char **)field = bson_strdup(v);
		return 0;
	case K_FILE_URL: {
		if (strncmp(v, "file://", 7) != 0)
			return bad_value(s->name, v,
			                 "only file:// sources are supported (or use -path DIR)");
		/* As golang-migrate's file source: the path percent-decoded, and
		 * none at all is the working directory. */
		size_t len = strcspn(v + 7, "?#");
		char *dir = len ? url_unescape(v + 7, len, false) : bson_strdup(".");
		if (!dir)
			return bad_value(s->name, v, "bad percent-encoding in the file:// URL");
		bson_free(*(char **)field);
		*(char **)field = dir;
		return 0;
	}
	case K_LOG_FORMAT: {
		enum log_format f;
		if (!log_parse_format(v, &f))
			return bad_value(s->name, v, "expected json or text");
		*(int *)field = (int)f;
		log_set_format(f); /* at once: the next row's error honours it */
		return 0;
	}
	case K_LOG_LEVEL: {
		enum log_level l;
		if (!log_parse_level(v, &l))
			return bad_value(s->name, v, "expected debug, info, warn or error");
		*(int *)field = (int)l;
		log_set_level(l);
		return 0;
	}
	case K_CHOICE:
		for (int i = 0; s->choices[i]; i++)
			if (strcmp(v, s->choices[i]) == 0) {
				*(int *)field = i;
				return 0;
			}
		return bad_value(s->name, v, "not one of the values -help lists");
	case K_URL:
	case K_URL_FILE:
		return 0; /* config_load_database reads these itself */
	}
	if (n < s->min || n > s->max)
		return out_of_bounds(s, v, n);
	if (s->kind == K_VERSION)
		c->has_target = true;
	if (field)
		*(int64_t *)field = n;
	return 0;
}

/* The last one given, as Go's flag package; a list flag's values joined
 * (*joined, to free). */
static const char *flag_given(const struct setting *s, const struct flag_value *flags,
                              size_t nflags, char **joined)
{
	const char *v = NULL;
	*joined = NULL;
	for (size_t i = 0; i < nflags; i++) {
		if (strcmp(flags[i].name, s->name) != 0)
			continue;
		if (s->kind == K_LIST && v) {
			char *both = bson_strdup_printf("%s,%s", v, flags[i].value);
			bson_free(*joined);
			v = *joined = both;
		} else {
			v = flags[i].value;
		}
	}
	return v;
}

/* The rows of one phase: defaults first, then what was given, in order. */
static int load_phase(struct config *c, enum phase phase, const struct flag_value *flags,
                      size_t nflags)
{
	int rc;
	for (size_t k = 0; k < NSETTINGS; k++)
		if (settings[k].phase == phase && settings[k].def &&
		    (rc = apply(c, &settings[k], settings[k].def)))
			return rc;
	for (size_t k = 0; k < NSETTINGS; k++) {
		const struct setting *s = &settings[k];
		char *joined = NULL;
		const char *v =
		    is_flag(s) ? flag_given(s, flags, nflags, &joined) : config_env(s->name);
		rc = s->phase == phase && v ? apply(c, s, v) : 0;
		bson_free(joined);
		if (rc)
			return rc;
	}
	return 0;
}

int config_early(struct config *c)
{
	memset(c, 0, sizeof *c);
	int rc = load_phase(c, EARLY, NULL, 0);
	if (!c->termination_path)
		c->termination_path = bson_strdup(TERMINATION_DEFAULT_PATH);
	return rc;
}

int config_load(struct config *c, const struct flag_value *flags, size_t nflags)
{
	int rc = load_phase(c, MAIN, flags, nflags);
	if (rc)
		return rc;
	if (c->retry_max_interval_ms < c->retry_interval_ms)
		c->retry_max_interval_ms = c->retry_interval_ms;
	if (!c->owner) {
		char host[256];
		util_hostname(host, sizeof host);
		c->owner = bson_strdup(host);
	}
	return 0;
}

static char *read_url_file(const char *path, int *rc)
{
	*rc = 0;
	FILE *f = fopen(path, "r");
	if (!f) {
		*rc = bad_value("DATABASE_URL_FILE", path, strerror(errno));
		return NULL;
	}
	char *buf = bson_malloc(MAX_URL_FILE + 1);
	size_t n = fread(buf, 1, MAX_URL_FILE + 1, f);
	fclose(f);
	if (n > MAX_URL_FILE) {
		bson_free(buf);
		*rc = bad_value("DATABASE_URL_FILE", path, "file is larger than 64 KiB");
		return NULL;
	}
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
	                 buf[n - 1] == '\t'))
		buf[--n] = '\0';
	/* Register before any check can log it. */
	url_register_secrets(buf);
	if (n == 0 || strlen(buf) != n) {
		bson_free(buf);
		*rc = bad_value("DATABASE_URL_FILE", path, "file is empty or holds a NUL byte");
		return NULL;
	}
	return buf;
}

/* Where the URL came from, for errors that must name it. */
static const char *url_source = "DATABASE_URL";

static int bad_option(const char *key, const char *value, const char *why)
{
	log_error("invalid database URL option", F_STR("variable", url_source),
	          F_STR("option", key), F_STR("value", value), F_STR("error", why));
	return EXIT_USAGE;
}

struct xopts {
	struct config *c;
	const char *interval, *interval_typo;
	int64_t lock_timeout_s;
	char *interval_buf, *typo_buf;
};

static int take_x_option(void *arg, const char *key, const char *value, const char *raw)
{
	struct xopts *x = arg;
	struct config *c = x->c;
	int64_t n;
	if (!value)
		return bad_option(key, raw, "bad percent-encoding");
	if (strcmp(key, "x-migrations-collection") == 0) {
		if (*value) {
			bson_free(c->db.migrations_collection);
			c->db.migrations_collection = bson_strdup(value);
		}
	} else if (strcmp(key, "x-advisory-lock-collection") == 0) {
		if (*value) {
			bson_free(c->lock_collection);
			c->lock_collection = bson_strdup(value);
		}
	} else if (strcmp(key, "x-history-collection") == 0) {
		if (*value) {
			bson_free(c->history_collection);
			c->history_collection = bson_strdup(value);
		}
	} else if (strcmp(key, "x-history") == 0) {
		if (*value && !parse_go_bool(value, &c->history))
			return bad_option(key, value, "expected a boolean (true or false)");
	} else if (strcmp(key, "x-transaction-mode") == 0) {
		if (*value && !parse_go_bool(value, &c->transaction_mode))
			return bad_option(key, value, "expected a boolean (true or false)");
	} else if (strcmp(key, "x-advisory-locking") == 0) {
		if (*value && !parse_go_bool(value, &c->advisory_locking))
			return bad_option(key, value, "expected a boolean (true or false)");
	} else if (strcmp(key, "x-advisory-lock-timeout") == 0) {
		if (*value && !parse_go_int(value, &n))
			return bad_option(key, value, "expected a whole number of seconds");
		if (*value)
			x->lock_timeout_s = n;
	} else if (strcmp(key, "x-advisory-lock-timeout-interval") == 0) {
		bson_free(x->interval_buf);
		x->interval = x->interval_buf = bson_strdup(value);
	} else if (strcmp(key, "x-advisory-lock-timout-interval") == 0) {
		bson_free(x->typo_buf);
		x->interval_typo = x->typo_buf = bson_strdup(value);
	} else {
		log_warn("ignoring unknown x- option in the database URL", F_STR("option", key));
	}
	return 0;
}

static int apply_lock_options(struct xopts *x)
{
	struct config *c = x->c;
	const char *iv = x->interval && *x->interval ? x->interval : NULL;
	const char *typo = x->interval_typo && *x->interval_typo ? x->interval_typo : NULL;
	if (iv && typo)
		return bad_option("x-advisory-lock-timeout-interval", iv,
		                  "both x-advisory-lock-timeout-interval and "
		                  "x-advisory-lock-timout-interval were specified");
	if (!iv)
		iv = typo;
	if (iv) {
		int64_t n;
		if (!parse_go_int(iv, &n))
			return bad_option("x-advisory-lock-timeout-interval", iv,
			                  "expected a whole number of seconds");
		if (n > 0)
			c->lock_interval_ms = n * 1000;
	}
	/* golang-migrate bounds the lock wait twice: the CLI's -lock-timeout and
	 * the driver's x-advisory-lock-timeout (<= 0 means the default 15 s);
	 * the shorter one wins, so do the same. */
	if (x->lock_timeout_s > 0 && x->lock_timeout_s * 1000 < c->lock_timeout_ms)
		c->lock_timeout_ms = x->lock_timeout_s * 1000;
	return 0;
}

/* A TLS file the URL names but we cannot read is a configuration error no
 * retry fixes: say so now, not after MAX_RETRIES failed handshakes. */
static int check_tls_files(const mongoc_uri_t *uri)
{
	static const char *const options[][2] = {
	    {MONGOC_URI_TLSCAFILE, "tlsCAFile"},
	    {MONGOC_URI_TLSCERTIFICATEKEYFILE, "tlsCertificateKeyFile"},
	    {MONGOC_URI_SSLCERTIFICATEAUTHORITYFILE, "sslCertificateAuthorityFile"},
	    {MONGOC_URI_SSLCLIENTCERTIFICATEKEYFILE, "sslClientCertificateKeyFile"},
	};
	for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
		const char *path = mongoc_uri_get_option_as_utf8(uri, options[i][0], NULL);
		if (!path)
			continue;
		struct stat st;
		FILE *f = fopen(path, "r");
		const char *why = !f                             ? strerror(errno)
		                  : fstat(fileno(f), &st) != 0   ? strerror(errno)
		                  : !S_ISREG(st.st_mode)         ? "not a regular file"
		                  : fgetc(f) == EOF && ferror(f) ? strerror(errno)
		                                                 : NULL;
		if (f)
			fclose(f);
		if (!why)
			continue;
		log_error("cannot read the file a TLS option of the database URL names",
		          F_STR("variable", url_source), F_STR("option", options[i][1]),
		          F_STR("path", path), F_STR("error", why));
		return EXIT_AUTH;
	}
	return 0;
}

/* Which URL: -database, else DATABASE_URL or DATABASE_URL_FILE. */
static int pick_url(struct config *c, const struct flag_value *flags, size_t nflags)
{
	int rc = 0;
	const char *v = NULL, *file = config_env("DATABASE_URL_FILE");
	for (size_t i = 0; i < nflags; i++)
		if (strcmp(flags[i].name, "-database") == 0)
			v = flags[i].value;
	if (!v) {
		const char *direct = config_env("DATABASE_URL");
		if (direct)
			url_register_secrets(direct);
		if (direct && file) {
			log_error("DATABASE_URL and DATABASE_URL_FILE are both set; set only one",
			          F_STR("variable", "DATABASE_URL_FILE"));
			return EXIT_USAGE;
		}
		url_source = file ? "DATABASE_URL_FILE" : "DATABASE_URL";
		if (file) {
			c->url = read_url_file(file, &rc);
			if (rc)
				return rc;
		} else if (direct) {
			c->url = bson_strdup(direct);
		} else {
			log_error("no database URL: pass -database URL, or set DATABASE_URL or "
			          "DATABASE_URL_FILE");
			return EXIT_USAGE;
		}
	} else {
		url_source = "-database";
		c->url = bson_strdup(v);
	}
	return 0;
}

/* c->url, named url_source, into the options; database (NULL: the URL's
 * path, then required) names the database. */
static int load_url(struct config *c, const char *database)
{
	int rc;
	url_register_secrets(c->url);
	c->db.migrations_collection = bson_strdup("schema_migrations");
	c->lock_collection = bson_strdup("migrate_advisory_lock");
	c->history_collection = bson_strdup("schema_migrations_history");
	c->history = true;
	c->advisory_locking = true;
	c->lock_interval_ms = 10000;
	/* One connection attempt must not outlast WAIT_TIMEOUT on its own. */
	if (c->wait_timeout_ms > 0)
		c->db.connect_timeout_ms = c->wait_timeout_ms < 10000 ? c->wait_timeout_ms : 10000;

	if (strncmp(c->url, "mongodb://", 10) != 0 && strncmp(c->url, "mongodb+srv://", 14) != 0) {
		const char *colon = strstr(c->url, "://");
		char *scheme = colon ? bson_strndup(c->url, (size_t)(colon - c->url)) : NULL;
		log_error("unsupported database URL scheme: expected mongodb:// or mongodb+srv://",
		          F_STR("variable", url_source),
		          F_STR("scheme", scheme ? scheme : "(none)"));
		bson_free(scheme);
		return EXIT_USAGE;
	}

	struct xopts x = {.c = c, .lock_timeout_s = 15};
	char *without_x = NULL;
	rc = url_take_x_options(c->url, &without_x, take_x_option, &x);
	if (rc == 0) {
		c->db.uri = url_go_options(without_x);
		bson_free(without_x);
	}
	if (rc == 0)
		rc = apply_lock_options(&x);
	bson_free(x.interval_buf);
	bson_free(x.typo_buf);
	if (rc)
		return rc;

	mongoc_uri_t *uri = url_parse(c->db.uri, url_source);
	if (!uri)
		return EXIT_USAGE;
	if ((rc = check_tls_files(uri))) {
		mongoc_uri_destroy(uri);
		return rc;
	}
	const char *db = database ? database : mongoc_uri_get_database(uri);
	if (!db || !*db) {
		mongoc_uri_destroy(uri);
		log_error("no database name in the database URL: add it as the path, "
		          "as in mongodb://host:27017/mydb",
		          F_STR("variable", url_source));
		return EXIT_USAGE;
	}
	c->db.name = bson_strdup(db);
	c->tls = mongoc_uri_get_tls(uri);
	mongoc_uri_destroy(uri);
	return 0;
}

int config_load_database(struct config *c, const struct flag_value *flags, size_t nflags)
{
	int rc = pick_url(c, flags, nflags);
	return rc ? rc : load_url(c, NULL);
}

int config_load_service_database(struct config *c, const struct flag_value *flags, size_t nflags,
                                 const char *url_env, const char *database)
{
	config_free_database(c);
	if (!url_env) {
		int rc = pick_url(c, flags, nflags);
		return rc ? rc : load_url(c, database);
	}
	const char *v = config_env(url_env);
	if (!v) {
		log_error("the variable a service's registry names as its url-env is not set",
		          F_STR("variable", url_env));
		return EXIT_USAGE;
	}
	url_source = url_env;
	c->url = bson_strdup(v);
	return load_url(c, database);
}

void config_free_database(struct config *c)
{
	bson_free(c->url);
	bson_free(c->db.uri);
	bson_free(c->db.name);
	bson_free(c->db.migrations_collection);
	bson_free(c->lock_collection);
	bson_free(c->history_collection);
	c->url = NULL;
	c->db = (struct db_options){0};
	c->lock_collection = c->history_collection = NULL;
}

void config_free(struct config *c)
{
	bson_free(c->termination_path);
	bson_free(c->source_dir);
	bson_free(c->owner);
	bson_free(c->services);
	config_free_database(c);
	memset(c, 0, sizeof *c);
}
