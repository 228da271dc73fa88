/*
 * Configuration: the environment and the global flags, one table of
 * settings (config.c) that drives parsing, validation, the -help text and
 * README's environment table (tests/unit/test_readme.c holds them
 * together). Every bad value is a usage error that names the variable or
 * flag and the value (secrets redacted), before any I/O. This is the only
 * module that reads the environment (config_env is the door for the
 * variables a migration registry names).
 */
#ifndef MI_CONFIG_H
#define MI_CONFIG_H

#include "db.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum on_failure { ON_FAILURE_DIRTY, ON_FAILURE_ROLLBACK };
enum backup { BACKUP_OFF, BACKUP_TOUCHED };

struct config {
	/* config_early: what must hold before anything is logged. */
	int log_format; /* enum log_format */
	int log_level;  /* enum log_level */
	char *termination_path;

	/* config_load */
	char *source_dir;
	int64_t max_retries;
	int64_t retry_interval_ms;
	int64_t retry_max_interval_ms; /* never below retry_interval_ms */
	int64_t wait_timeout_ms;       /* 0: no overall deadline */
	int64_t lock_timeout_ms;       /* min of -lock-timeout and x-advisory-lock-timeout */
	int64_t lock_lease_ms;         /* LOCK_LEASE */
	int64_t lock_stale_after_ms;   /* LOCK_STALE_AFTER: a golang-migrate lock; 0 never */
	int64_t stop_grace_ms;         /* after SIGTERM, before aborting a running migration */
	bool allow_breaking;           /* ALLOW_BREAKING, -allow-breaking */
	int64_t dependency_timeout_ms; /* DEPENDENCY_TIMEOUT */
	int on_failure;                /* enum on_failure */
	int64_t migration_timeout_ms;  /* 0: none */
	int64_t run_timeout_ms;        /* 0: none */
	int backup;                    /* enum backup */
	int64_t backup_max_bytes;
	int64_t history_flush_ms; /* HISTORY_FLUSH_INTERVAL; 0: each record at once */
	bool has_target;          /* TARGET_VERSION, entrypoint mode */
	int64_t target;
	char *owner;    /* POD_NAME, else the hostname */
	char *services; /* SERVICES, -service (repeatable): comma-separated; NULL: all */

	/* config_load_database: the URL and golang-migrate's x- options. */
	char *url;            /* as given: a secret */
	struct db_options db; /* what db_open needs */
	char *lock_collection;
	char *history_collection;
	bool history;
	bool transaction_mode;
	bool advisory_locking;
	bool tls;                 /* the URL turns TLS on */
	int64_t lock_interval_ms; /* x-advisory-lock-timeout-interval, accepted */
};

/* A global flag as given: its name as the settings table spells it
 * ("-path") and its text ("true" for a bool flag given bare). */
struct flag_value {
	const char *name;
	const char *value;
};

/* The settings that are flags, for the argv parser: name ("-path") and
 * whether it is a bool flag (takes no separate value). i from 0 until it
 * returns false. */
bool config_flag(size_t i, const char **name, bool *is_bool, const char **help);

/* LOG_FORMAT, LOG_LEVEL and TERMINATION_MESSAGE_PATH, applied to the
 * logger at once, so that every later error honours them. 0 or EXIT_USAGE;
 * on a bad value c still holds usable defaults. */
int config_early(struct config *c);

/* Everything but the database, flags over the environment. 0 or
 * EXIT_USAGE. */
int config_load(struct config *c, const struct flag_value *flags, size_t nflags);

/* The database URL and its options. 0, EXIT_USAGE, or EXIT_AUTH for a TLS
 * file the URL names that cannot be read. */
int config_load_database(struct config *c, const struct flag_value *flags, size_t nflags);

/* For one service of a central layout (services.h): the URL in the
 * variable url_env (NULL: the one config_load_database reads, whose path
 * then need not name a database), with database (NULL: the URL's) as the
 * database. Replaces the database part c held. 0, EXIT_USAGE, or EXIT_AUTH
 * as config_load_database. */
int config_load_service_database(struct config *c, const struct flag_value *flags, size_t nflags,
                                 const char *url_env, const char *database);

/* Frees the database part (config_load_database's) only. */
void config_free_database(struct config *c);

/* A variable the settings table does not list, by a name the migration
 * registry gives (a dependency's url-env). NULL when unset or empty. */
const char *config_env(const char *name);

/* The environment section of -help, from the table. */
void config_print_env(void *stream);

/* The settings table, for the README test: row i's name, default as the
 * user would write it (NULL: none), the flags that set the same value
 * (comma-separated, "" for none), and its help line. False past the end. */
bool config_setting(size_t i, const char **name, const char **def, char *flags, size_t flen,
                    const char **help);

void config_free(struct config *c);

#endif
