/*
 * Configuration from the command line and the environment (flags win),
 * validated in one place: every bad value is a usage error that names the
 * variable or flag and the value (secrets redacted), before any I/O.
 */
#ifndef MI_CONFIG_H
#define MI_CONFIG_H

#include "cli.h"

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>

struct config {
	char *source_dir;

	/* Database; only filled by config_load_database(). */
	char *url;       /* as given: a secret */
	char *mongo_uri; /* with golang-migrate's x- options removed */
	char *db_name;
	char *migrations_collection;
	char *lock_collection;
	char *history_collection;
	bool history;
	bool transaction_mode;
	bool advisory_locking;
	bool tls;                    /* the URL turns TLS on */
	int64_t lock_timeout_ms;     /* min of -lock-timeout and x-advisory-lock-timeout */
	int64_t lock_interval_ms;    /* x-advisory-lock-timeout-interval, accepted */
	int64_t lock_lease_ms;       /* LOCK_LEASE */
	int64_t lock_stale_after_ms; /* LOCK_STALE_AFTER: a golang-migrate lock; 0 never */

	/* Waiting for the database. */
	int64_t max_retries;
	int64_t retry_interval_ms;
	int64_t retry_max_interval_ms;
	int64_t wait_timeout_ms; /* 0: no overall deadline */

	bool allow_breaking;           /* ALLOW_BREAKING, -allow-breaking */
	int64_t dependency_timeout_ms; /* DEPENDENCY_TIMEOUT */

	bool has_target; /* TARGET_VERSION, entrypoint mode */
	uint64_t target;

	int64_t stop_grace_ms; /* after SIGTERM, before aborting a running migration */
	char *owner;           /* POD_NAME, else the hostname */
};

/* Logging and everything but the database. 0 or EXIT_USAGE. */
int config_load(struct config *c, const struct cli *cli);

/* The database URL and its options. 0 or EXIT_USAGE. */
int config_load_database(struct config *c, const struct cli *cli);

void config_free(struct config *c);

/* Parsers, exposed for the unit tests and the fuzzers. All return false on
 * anything but a complete, in-range value. */
bool parse_uint(const char *s, uint64_t max, uint64_t *out);
bool parse_duration_ms(const char *s, int64_t *out); /* "2" is 2s; "500ms", "1m30s" */
bool parse_go_bool(const char *s, bool *out);        /* Go's strconv.ParseBool */
bool parse_go_int(const char *s, int64_t *out);      /* Go's strconv.Atoi */

/*
 * Removes every x- option from url's query. Each removed option is passed
 * to fn with its percent-decoded value (NULL when the escapes are bad) and
 * its text as written; a non-zero return stops and is returned. *out is a
 * new string.
 */
int url_take_x_options(const char *url, char **out,
                       int (*fn)(void *arg, const char *key, const char *value, const char *raw),
                       void *arg);

/* url with the options golang-migrate's Go driver takes rewritten for
 * libmongoc (README: "URL options"): connect=direct becomes
 * directConnection=true, options libmongoc has no equivalent for are
 * dropped with a warning, and TLS stays off when only options the Go
 * driver does not take as "use TLS" (tlsInsecure, tlsAllowInvalid*) ask
 * for it. A new string. */
char *url_go_options(const char *url);

/* A URL we do not configure from (a registry dependency's) as libmongoc
 * should get it: x- options removed (ignored), then url_go_options. */
char *url_for_driver(const char *url);

/* Registers the userinfo and password of url as secrets for the logger,
 * for every '@' that could end the userinfo. A password shorter than 4
 * bytes is registered only inside "://userinfo@" (a bare "ab" would blank
 * every ab of every line): no message may echo it out of the URL, so
 * driver messages about a URL go through url_error_text. */
void url_register_secrets(const char *url);

/* A driver message about a URL it could not parse, with every quoted value
 * replaced by *** (it quotes the password it choked on, and option
 * values); an option's name before '=' is kept. Free with bson_free. */
char *url_error_text(const char *msg);

/* Parses url with libmongoc, quietly: secrets registered first, the
 * driver's warnings (which quote values) not logged, its error passed
 * through url_error_text, an unknown option refused. NULL after logging
 * why, naming `variable` (where the URL came from). */
mongoc_uri_t *url_parse(const char *url, const char *variable);

#endif
