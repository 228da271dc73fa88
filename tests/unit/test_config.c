/*
 * Unit tests: the settings table (config): defaults, bounds, flags over the
 * environment, "" as unset, and the cross-field rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "config.h"
#include "exitcode.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static const char *const vars[] = {
    "LOG_FORMAT",         "LOG_LEVEL",        "TERMINATION_MESSAGE_PATH",
    "MIGRATION_DIR",      "TARGET_VERSION",   "LOCK_TIMEOUT",
    "LOCK_LEASE",         "LOCK_STALE_AFTER", "STOP_GRACE_PERIOD",
    "MAX_RETRIES",        "RETRY_INTERVAL",   "RETRY_MAX_INTERVAL",
    "WAIT_TIMEOUT",       "POD_NAME",         "ALLOW_BREAKING",
    "DEPENDENCY_TIMEOUT", "DATABASE_URL",     "DATABASE_URL_FILE",
};

static int clean_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		unsetenv(vars[i]);
	return 0;
}

/* config_early + config_load, as main runs them. */
static int load(struct config *c, const struct flag_value *flags, size_t n)
{
	int rc = config_early(c);
	return rc ? rc : config_load(c, flags, n);
}

static void test_defaults_are_the_tables(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(load(&c, NULL, 0), 0);
	assert_string_equal(c.source_dir, "/migrations");
	assert_string_equal(c.termination_path, "/dev/termination-log");
	assert_int_equal(c.max_retries, 30);
	assert_int_equal(c.retry_interval_ms, 2000);
	assert_int_equal(c.retry_max_interval_ms, 10000);
	assert_int_equal(c.wait_timeout_ms, 0);
	assert_int_equal(c.lock_timeout_ms, 15000);
	assert_int_equal(c.lock_lease_ms, 30000);
	assert_int_equal(c.lock_stale_after_ms, 600000);
	assert_int_equal(c.stop_grace_ms, 20000);
	assert_int_equal(c.dependency_timeout_ms, 300000);
	assert_false(c.allow_breaking);
	assert_false(c.has_target);
	assert_non_null(c.owner); /* the host name */
	assert_int_equal(c.log_level, LOG_INFO);
	config_free(&c);
}

static void test_flags_win_in_table_order(void **state)
{
	(void)state;
	struct config c;
	setenv("MIGRATION_DIR", "/env", 1);
	setenv("LOCK_TIMEOUT", "1m", 1);
	setenv("ALLOW_BREAKING", "true", 1);
	struct flag_value f[] = {{"-source", "file:///a%20b"},
	                         {"-path", "/p"}, /* -source wins, as in golang-migrate */
	                         {"-lock-timeout", "7"},
	                         {"-allow-breaking", "false"}};
	assert_int_equal(load(&c, f, 4), 0);
	assert_string_equal(c.source_dir, "/a b");
	assert_int_equal(c.lock_timeout_ms, 7000);
	assert_false(c.allow_breaking);
	config_free(&c);
	/* Without flags the environment holds. */
	assert_int_equal(load(&c, NULL, 0), 0);
	assert_string_equal(c.source_dir, "/env");
	assert_int_equal(c.lock_timeout_ms, 60000);
	assert_true(c.allow_breaking);
	config_free(&c);
	/* "file://" alone is the working directory. */
	struct flag_value here[] = {{"-source", "file://"}};
	assert_int_equal(load(&c, here, 1), 0);
	assert_string_equal(c.source_dir, ".");
	config_free(&c);
}

static void test_empty_is_unset(void **state)
{
	(void)state;
	struct config c;
	for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
		setenv(vars[i], "", 1);
	assert_int_equal(load(&c, NULL, 0), 0);
	assert_int_equal(c.max_retries, 30);
	assert_string_equal(c.source_dir, "/migrations");
	assert_false(c.has_target);
	config_free(&c);
}

static void test_bounds_and_bad_values(void **state)
{
	(void)state;
	const struct {
		const char *var, *value;
		int rc;
	} rows[] = {
	    {"MAX_RETRIES", "1", 0},
	    {"MAX_RETRIES", "1000000", 0},
	    {"MAX_RETRIES", "0", EXIT_USAGE},
	    {"MAX_RETRIES", "1000001", EXIT_USAGE},
	    {"MAX_RETRIES", "3.5", EXIT_USAGE},
	    {"LOCK_LEASE", "300ms", 0},
	    {"LOCK_LEASE", "299ms", EXIT_USAGE},
	    {"RETRY_INTERVAL", "0", EXIT_USAGE},
	    {"WAIT_TIMEOUT", "0", 0},
	    {"WAIT_TIMEOUT", "-5s", EXIT_USAGE},
	    {"TARGET_VERSION", "9223372036854775807", 0},
	    {"TARGET_VERSION", "9223372036854775808", EXIT_USAGE},
	    {"TARGET_VERSION", "0x10", EXIT_USAGE},
	    {"ALLOW_BREAKING", "T", 0},
	    {"ALLOW_BREAKING", "yes", EXIT_USAGE},
	    {"LOG_FORMAT", "xml", EXIT_USAGE},
	    {"LOG_LEVEL", "trace", EXIT_USAGE},
	};
	log_set_level(LOG_ERROR);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct config c;
		clean_env(NULL);
		setenv(rows[i].var, rows[i].value, 1);
		int rc = load(&c, NULL, 0);
		config_free(&c);
		if (rc != rows[i].rc)
			fail_msg("%s=%s: rc %d, want %d", rows[i].var, rows[i].value, rc,
			         rows[i].rc);
	}
	struct config c;
	clean_env(NULL);
	struct flag_value bad[] = {{"-lock-timeout", "1.5"}};
	assert_int_equal(load(&c, bad, 1), EXIT_USAGE);
	config_free(&c);
	struct flag_value prefetch[] = {{"-prefetch", "4294967296"}};
	assert_int_equal(load(&c, prefetch, 1), EXIT_USAGE);
	config_free(&c);
	struct flag_value source[] = {{"-source", "s3://bucket"}};
	assert_int_equal(load(&c, source, 1), EXIT_USAGE);
	config_free(&c);
	log_set_level(LOG_INFO);
}

static void test_cross_field_rules(void **state)
{
	(void)state;
	struct config c;
	setenv("RETRY_INTERVAL", "30s", 1);
	setenv("TARGET_VERSION", "4", 1);
	assert_int_equal(load(&c, NULL, 0), 0);
	assert_int_equal(c.retry_max_interval_ms, 30000); /* raised to the interval */
	assert_true(c.has_target);
	assert_int_equal(c.target, 4);
	config_free(&c);
}

static void test_database_url(void **state)
{
	(void)state;
	struct config c;
	log_set_level(LOG_ERROR);
	assert_int_equal(load(&c, NULL, 0), 0);
	assert_int_equal(config_load_database(&c, NULL, 0), EXIT_USAGE); /* none */
	config_free(&c);
	setenv("DATABASE_URL", "mongodb://h/db?x-migrations-collection=m&x-history=false", 1);
	setenv("WAIT_TIMEOUT", "3s", 1);
	assert_int_equal(load(&c, NULL, 0), 0);
	assert_int_equal(config_load_database(&c, NULL, 0), 0);
	assert_string_equal(c.db.name, "db");
	assert_string_equal(c.db.uri, "mongodb://h/db");
	assert_string_equal(c.db.migrations_collection, "m");
	assert_false(c.history);
	assert_int_equal(c.db.connect_timeout_ms, 3000);
	config_free(&c);
	/* -database wins over both variables, even when both are set. */
	setenv("DATABASE_URL_FILE", "/nonexistent", 1);
	struct flag_value f[] = {{"-database", "mongodb://other/x"}};
	assert_int_equal(load(&c, f, 1), 0);
	assert_int_equal(config_load_database(&c, f, 1), 0);
	assert_string_equal(c.db.name, "x");
	config_free(&c);
	/* Both variables and no flag: refused. */
	assert_int_equal(load(&c, NULL, 0), 0);
	assert_int_equal(config_load_database(&c, NULL, 0), EXIT_USAGE);
	config_free(&c);
	log_set_level(LOG_INFO);
}

static void test_flags_listed(void **state)
{
	(void)state;
	const char *name, *help;
	bool is_bool;
	size_t n = 0;
	bool saw_allow = false;
	for (size_t i = 0; config_flag(i, &name, &is_bool, &help); i++, n++) {
		assert_true(name[0] == '-');
		if (strcmp(name, "-allow-breaking") == 0)
			saw_allow = is_bool;
	}
	assert_true(n >= 6);
	assert_true(saw_allow);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_defaults_are_the_tables, clean_env),
	    cmocka_unit_test_setup(test_flags_win_in_table_order, clean_env),
	    cmocka_unit_test_setup(test_empty_is_unset, clean_env),
	    cmocka_unit_test_setup(test_bounds_and_bad_values, clean_env),
	    cmocka_unit_test_setup(test_cross_field_rules, clean_env),
	    cmocka_unit_test_setup(test_database_url, clean_env),
	    cmocka_unit_test_setup(test_flags_listed, clean_env),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_shutdown();
	return rc;
}
