#include "config.h"

#include "exitcode.h"
#include "log.h"
#include "util.h"

#include <bson/bson.h>
#include <ctype.h>
#include <errno.h>
#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_SOURCE_DIR "/migrations"
#define MAX_URL_FILE 65536

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

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes %XX and '+' as Go's url.QueryUnescape does; NULL on bad escapes. */
/* %XX decoding; '+' is a space in a query (Go's QueryUnescape), not in a
 * path (PathUnescape). NULL on a bad or NUL escape. */
static char *percent_decode(const char *s, size_t len, bool plus_is_space)
{
	char *out = bson_malloc(len + 1), *o = out;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;
			if (i + 2 >= len) {
				bson_free(out);
				return NULL;
			}
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0) {
				bson_free(out);
				return NULL;
			}
			if (hi == 0 && lo == 0) {
				bson_free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i] == '+' && plus_is_space ? ' ' : s[i];
		}
	}
	*o = '\0';
	return out;
}

static char *query_unescape(const char *s, size_t len)
{
	return percent_decode(s, len, true);
}

int url_take_x_options(const char *url, char **out,
                       int (*fn)(void *arg, const char *key, const char *value, const char *raw),
                       void *arg)
{
	const char *q = strchr(url, '?');
	if (!q) {
		*out = bson_strdup(url);
		return 0;
	}
	bson_string_t *b = bson_string_new(NULL);
	bson_string_append_printf(b, "%.*s", (int)(q - url), url);
	bool first = true;
	int rc = 0;
	const char *p = q + 1;
	while (*p && rc == 0) {
		size_t len = strcspn(p, "&;");
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		if (klen >= 2 && strncasecmp(p, "x-", 2) == 0) {
			char *key = bson_strndup(p, klen);
			for (char *k = key; *k; k++)
				*k = (char)tolower((unsigned char)*k);
			char *val = eq ? query_unescape(eq + 1, len - klen - 1) : bson_strdup("");
			if (!val) {
				/* Undecodable: say so, showing the text as written. */
				char *raw =
				    eq ? bson_strndup(eq + 1, len - klen - 1) : bson_strdup("");
				rc = fn(arg, key, NULL, raw);
				bson_free(raw);
			} else {
				rc = fn(arg, key, val, val);
			}
			bson_free(key);
			bson_free(val);
		} else if (len > 0) {
			bson_string_append_printf(b, "%c%.*s", first ? '?' : '&', (int)len, p);
			first = false;
		}
		p += len;
		if (*p)
			p++;
	}
	if (rc) {
		bson_string_free(b, true);
		return rc;
	}
	*out = bson_string_free(b, false);
	return 0;
}

/*
 * URL options the Go driver (so golang-migrate) takes and libmongoc does not
 * take the same way: one row each. becomes: what libmongoc gets instead
 * ("" drops it); why: logged when it is dropped (NULL: dropped silently).
 */
static const struct go_option {
	const char *key;   /* lower case, as both drivers match */
	const char *value; /* NULL: any value */
	const char *becomes;
	const char *why;
} go_options[] = {
    {"connect", "direct", "directConnection=true", NULL},
    {"connect", "automatic", "", NULL},
    {"timeoutms", NULL, "",
     "libmongoc 1.23 has no client-side operation timeout: socketTimeoutMS and "
     "connectTimeoutMS bound what it waits for"},
    {"maxconnecting", NULL, "", "a connection-pool setting; migrate-init opens no pool"},
    {"slaveok", NULL, "", "the Go driver ignores it too"},
    {"uuidrepresentation", NULL, "",
     "the Go driver ignores it too; migrations write UUIDs as Extended JSON says"},
    {"sslinsecure", NULL, "tlsInsecure=", NULL}, /* value appended */
};

/* Options that make libmongoc use TLS but not the Go driver: alone, they
 * leave golang-migrate in plain text, so they must leave us there too. */
static const char *const tls_quiet[] = {"tlsinsecure",
                                        "sslinsecure",
                                        "tlsallowinvalidcertificates",
                                        "tlsallowinvalidhostnames",
                                        "sslallowinvalidcertificates",
                                        "sslallowinvalidhostnames",
                                        NULL};
/* Options that turn TLS on (or off) for both. */
static const char *const tls_loud[] = {"tls",
                                       "ssl",
                                       "tlscafile",
                                       "sslcertificateauthorityfile",
                                       "tlscertificatekeyfile",
                                       "sslclientcertificatekeyfile",
                                       "tlsdisableocspendpointcheck",
                                       NULL};

static bool in_list(const char *const *list, const char *key, size_t klen)
{
	for (; *list; list++)
		if (strlen(*list) == klen && strncasecmp(*list, key, klen) == 0)
			return true;
	return false;
}

static int ignore_x_option(void *arg, const char *key, const char *value, const char *raw)
{
	(void)arg;
	(void)value;
	(void)raw;
	log_debug("ignoring an x- option of a dependency's URL", F_STR("option", key));
	return 0;
}

char *url_for_driver(const char *url)
{
	char *without_x = NULL;
	url_take_x_options(url, &without_x, ignore_x_option, NULL);
	char *out = url_go_options(without_x);
	bson_free(without_x);
	return out;
}

char *url_go_options(const char *url)
{
	const char *q = strchr(url, '?');
	if (!q)
		return bson_strdup(url);
	bson_string_t *b = bson_string_new(NULL);
	bson_string_append_printf(b, "%.*s", (int)(q - url), url);
	bool first = true, quiet = false, loud = false;
	for (const char *p = q + 1; *p;) {
		size_t len = strcspn(p, "&;");
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		const char *val = eq ? eq + 1 : p + len;
		size_t vlen = eq ? len - klen - 1 : 0;
		quiet |= in_list(tls_quiet, p, klen);
		loud |= in_list(tls_loud, p, klen);
		const struct go_option *o = NULL;
		for (size_t i = 0; i < sizeof go_options / sizeof go_options[0] && !o; i++)
			if (strlen(go_options[i].key) == klen &&
			    strncasecmp(go_options[i].key, p, klen) == 0 &&
			    (!go_options[i].value ||
			     (strlen(go_options[i].value) == vlen &&
			      strncasecmp(go_options[i].value, val, vlen) == 0)))
				o = &go_options[i];
		if (o && o->why) {
			char *key = bson_strndup(p, klen);
			log_warn(
			    "ignoring a URL option golang-migrate's driver takes and libmongoc has "
			    "no equivalent for",
			    F_STR("option", key), F_STR("why", o->why));
			bson_free(key);
		}
		const char *add = p;
		size_t addlen = len;
		char *tmp = NULL;
		if (o) {
			tmp = bson_strdup_printf(
			    "%s%.*s", o->becomes,
			    o->becomes[0] && o->becomes[strlen(o->becomes) - 1] == '=' ? (int)vlen
			                                                               : 0,
			    val);
			add = tmp;
			addlen = strlen(tmp);
		}
		if (addlen > 0) {
			bson_string_append_printf(b, "%c%.*s", first ? '?' : '&', (int)addlen, add);
			first = false;
		}
		bson_free(tmp);
		p += len;
		if (*p)
			p++;
	}
	if (quiet && !loud && strncmp(url, "mongodb+srv://", 14) != 0)
		bson_string_append_printf(b, "%ctls=false", first ? '?' : '&');
	return bson_string_free(b, false);
}

/* Shorter secrets are registered only inside the URL's own text: a bare
 * "p" would blank every p of every log line without protecting anything. */
#define MIN_BARE_SECRET 4

static void add_bare_secret(const char *s, size_t len)
{
	if (len >= MIN_BARE_SECRET)
		log_add_secret_n(s, len);
}

/* One reading of the userinfo: start up to the '@' at `at`. */
static void register_userinfo(const char *start, const char *at)
{
	/* "://userinfo@" catches the URL wherever it is echoed, whatever the
	 * password's length. */
	log_add_secret_n(start - 3, (size_t)(at - start) + 4);
	add_bare_secret(start, (size_t)(at - start));
	const char *colon = memchr(start, ':', (size_t)(at - start));
	if (colon && colon + 1 < at) {
		size_t plen = (size_t)(at - colon - 1);
		add_bare_secret(colon + 1, plen);
		char *dec = query_unescape(colon + 1, plen);
		if (dec) {
			add_bare_secret(dec, strlen(dec));
			bson_free(dec);
		}
	}
}

void url_register_secrets(const char *url)
{
	const char *start = strstr(url, "://");
	if (!start)
		return;
	start += 3;
	/* Where the userinfo ends depends on who reads it: libmongoc stops at
	 * the first '@', a password with an unescaped '@' (or '/', '?') makes
	 * a person mean the last. Every '@' may end it: register each reading. */
	for (const char *at = strchr(start, '@'); at; at = strchr(at + 1, '@'))
		register_userinfo(start, at);
}

char *url_error_text(const char *msg)
{
	bson_string_t *b = bson_string_new(NULL);
	for (const char *p = msg; *p; p++) {
		const char *end = (*p == '"' || *p == '\'') ? strchr(p + 1, *p) : NULL;
		if (!end) {
			bson_string_append_c(b, *p);
			continue;
		}
		/* 'key=value': the option's name is no secret, its value may be. */
		const char *eq = memchr(p + 1, '=', (size_t)(end - p - 1));
		bson_string_append_printf(b, "%c%.*s***%c", *p, eq ? (int)(eq - p) : 0, p + 1, *p);
		p = end;
	}
	return bson_string_free(b, false);
}

/* libmongoc's log while it parses a URL: its warnings may quote values
 * (the password among them), so none is logged; the first unknown option
 * is kept, since libmongoc drops those silently. */
static void note_unknown_option(mongoc_log_level_t level, const char *domain, const char *msg,
                                void *arg)
{
	(void)level;
	(void)domain;
	const char *prefix = "Unsupported URI option \"";
	char *unknown = arg;
	if (strncmp(msg, prefix, strlen(prefix)) == 0 && !unknown[0])
		snprintf(unknown, 128, "%.*s", (int)strcspn(msg + strlen(prefix), "\""),
		         msg + strlen(prefix));
}

/* A second '@' before the host list ends: both drivers take the first as
 * the end of the userinfo and would read the rest of the password as a
 * host, quoting it in their errors. */
static bool unescaped_at(const char *url)
{
	const char *start = strstr(url, "://");
	const char *at = start ? strchr(start + 3, '@') : NULL;
	if (!at)
		return false;
	size_t hosts = strcspn(at + 1, "/?");
	return memchr(at + 1, '@', hosts) != NULL;
}

mongoc_uri_t *url_parse(const char *url, const char *variable)
{
	url_register_secrets(url);
	if (unescaped_at(url)) {
		log_error("invalid database URL: an unescaped @ in the user info (percent-encode "
		          "it in the password as %40)",
		          F_STR("variable", variable));
		return NULL;
	}
	bson_error_t err;
	char unknown[128] = "";
	mongoc_log_set_handler(note_unknown_option, unknown);
	mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &err);
	log_capture_mongoc();
	if (!uri) {
		char *text = url_error_text(err.message);
		log_error("invalid database URL", F_STR("variable", variable),
		          F_STR("error", text));
		bson_free(text);
		return NULL;
	}
	/* A misspelt option (tlsCAfile) would silently change what we
	 * connect with: a configuration error here. */
	if (unknown[0]) {
		mongoc_uri_destroy(uri);
		log_error("unknown option in the database URL", F_STR("variable", variable),
		          F_STR("option", unknown));
		return NULL;
	}
	/* libmongoc may have decoded the password differently from us. */
	const char *pw = mongoc_uri_get_password(uri);
	if (pw && strlen(pw) >= MIN_BARE_SECRET)
		log_add_secret(pw);
	return uri;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

static int bad_value(const char *what, const char *value, const char *why)
{
	log_error("invalid configuration value", F_STR("variable", what), F_STR("value", value),
	          F_STR("error", why));
	return EXIT_USAGE;
}

static int load_duration(const char *name, int64_t *out, bool allow_zero)
{
	const char *v = env(name);
	if (!v)
		return 0;
	if (!parse_duration_ms(v, out))
		return bad_value(name, v, "expected seconds or a duration such as 500ms, 2s, 1m");
	if (!allow_zero && *out == 0)
		return bad_value(name, v, "must be greater than zero");
	return 0;
}

static char *source_from_flags(const struct cli *cli, int *rc)
{
	*rc = 0;
	if (cli->source) {
		if (strncmp(cli->source, "file://", 7) != 0) {
			*rc = bad_value("-source", cli->source,
			                "only file:// sources are supported (or use -path DIR)");
			return NULL;
		}
		/* As golang-migrate's file source: the path percent-decoded, and
		 * none at all is the working directory. */
		const char *p = cli->source + 7;
		size_t len = strcspn(p, "?#");
		if (len == 0)
			return bson_strdup(".");
		char *dir = percent_decode(p, len, false);
		if (!dir)
			*rc = bad_value("-source", cli->source,
			                "bad percent-encoding in the file:// URL");
		return dir;
	}
	if (cli->path)
		return bson_strdup(cli->path);
	const char *dir = env("MIGRATION_DIR");
	return bson_strdup(dir ? dir : DEFAULT_SOURCE_DIR);
}

int config_load(struct config *c, const struct cli *cli)
{
	int rc;
	memset(c, 0, sizeof *c);
	c->max_retries = 30;
	c->retry_interval_ms = 2000;
	c->retry_max_interval_ms = 10000;
	c->lock_timeout_ms = 15000;
	c->lock_interval_ms = 10000;
	c->lock_lease_ms = 30000;
	c->lock_stale_after_ms = 600000;
	c->migrations_collection = bson_strdup("schema_migrations");
	c->lock_collection = bson_strdup("migrate_advisory_lock");
	c->advisory_locking = true;
	c->history_collection = bson_strdup("schema_migrations_history");
	c->history = true;

	const char *v;
	c->stop_grace_ms = 20000;
	c->dependency_timeout_ms = 300000;

	c->source_dir = source_from_flags(cli, &rc);
	if (rc)
		return rc;

	if ((v = env("MAX_RETRIES"))) {
		uint64_t n;
		if (!parse_uint(v, 1000000, &n) || n == 0)
			return bad_value("MAX_RETRIES", v,
			                 "expected a whole number of attempts, 1 to 1000000");
		c->max_retries = (int64_t)n;
	}
	if ((rc = load_duration("RETRY_INTERVAL", &c->retry_interval_ms, false)) ||
	    (rc = load_duration("RETRY_MAX_INTERVAL", &c->retry_max_interval_ms, false)) ||
	    (rc = load_duration("WAIT_TIMEOUT", &c->wait_timeout_ms, true)) ||
	    (rc = load_duration("STOP_GRACE_PERIOD", &c->stop_grace_ms, true)) ||
	    (rc = load_duration("DEPENDENCY_TIMEOUT", &c->dependency_timeout_ms, true)))
		return rc;
	if (c->retry_max_interval_ms < c->retry_interval_ms)
		c->retry_max_interval_ms = c->retry_interval_ms;

	if ((rc = load_duration("LOCK_TIMEOUT", &c->lock_timeout_ms, true)) ||
	    (rc = load_duration("LOCK_LEASE", &c->lock_lease_ms, false)) ||
	    (rc = load_duration("LOCK_STALE_AFTER", &c->lock_stale_after_ms, true)))
		return rc;
	if (c->lock_lease_ms < 300)
		return bad_value("LOCK_LEASE", env("LOCK_LEASE"),
		                 "must be at least 300ms: the heartbeat renews every third of it");
	if (cli->lock_timeout) {
		uint64_t n;
		if (!parse_uint(cli->lock_timeout, UINT32_MAX, &n))
			return bad_value("-lock-timeout", cli->lock_timeout,
			                 "expected a whole number of seconds");
		c->lock_timeout_ms = (int64_t)n * 1000;
	}
	if (cli->prefetch) {
		uint64_t n;
		if (!parse_uint(cli->prefetch, UINT32_MAX, &n))
			return bad_value("-prefetch", cli->prefetch, "expected a whole number");
	}

	c->allow_breaking = cli->allow_breaking;
	if ((v = env("ALLOW_BREAKING")) && !cli->allow_breaking &&
	    !parse_go_bool(v, &c->allow_breaking))
		return bad_value("ALLOW_BREAKING", v, "expected true or false");

	if ((v = env("TARGET_VERSION"))) {
		if (!parse_uint(v, UINT64_MAX, &c->target))
			return bad_value("TARGET_VERSION", v,
			                 "expected a migration version (a whole number)");
		c->has_target = true;
	}

	v = env("POD_NAME");
	if (v) {
		c->owner = bson_strdup(v);
	} else {
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
			bson_free(c->migrations_collection);
			c->migrations_collection = bson_strdup(value);
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

int config_load_database(struct config *c, const struct cli *cli)
{
	int rc = 0;
	const char *v = cli->database;
	const char *file = env("DATABASE_URL_FILE");
	if (!v) {
		const char *direct = env("DATABASE_URL");
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
	url_register_secrets(c->url);

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
		c->mongo_uri = url_go_options(without_x);
		bson_free(without_x);
	}
	if (rc == 0)
		rc = apply_lock_options(&x);
	bson_free(x.interval_buf);
	bson_free(x.typo_buf);
	if (rc)
		return rc;

	mongoc_uri_t *uri = url_parse(c->mongo_uri, url_source);
	if (!uri)
		return EXIT_USAGE;
	if ((rc = check_tls_files(uri))) {
		mongoc_uri_destroy(uri);
		return rc;
	}
	const char *db = mongoc_uri_get_database(uri);
	if (!db || !*db) {
		mongoc_uri_destroy(uri);
		log_error("no database name in the database URL: add it as the path, "
		          "as in mongodb://host:27017/mydb",
		          F_STR("variable", url_source));
		return EXIT_USAGE;
	}
	c->db_name = bson_strdup(db);
	c->tls = mongoc_uri_get_tls(uri);
	mongoc_uri_destroy(uri);
	return 0;
}

void config_free(struct config *c)
{
	bson_free(c->source_dir);
	bson_free(c->url);
	bson_free(c->mongo_uri);
	bson_free(c->db_name);
	bson_free(c->migrations_collection);
	bson_free(c->lock_collection);
	bson_free(c->history_collection);
	bson_free(c->owner);
	memset(c, 0, sizeof *c);
}
