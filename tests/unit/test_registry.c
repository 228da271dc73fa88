/* Unit tests: the registry parser (.migration-registry.yaml) and its checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exitcode.h"
#include "log.h"
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh directory holding the registry text; freed by the caller. */
static char *dir_with(const char *yaml)
{
	char *dir = strdup("/tmp/mi-unit-registry-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, REGISTRY_FILE);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(yaml, f);
	fclose(f);
	return dir;
}

static void drop(char *dir)
{
	char path[256];
	snprintf(path, sizeof path, "%s/%s", dir, REGISTRY_FILE);
	unlink(path);
	rmdir(dir);
	free(dir);
}

static void test_full_registry(void **state)
{
	(void)state;
	char *dir = dir_with("service: order-service   # comments allowed\n"
	                     "database: orders\n"
	                     "migrations:\n"
	                     "  - version: 2\n"
	                     "    description: move items\n"
	                     "    breaking: true\n"
	                     "    dependencies:\n"
	                     "      - service: user-service\n"
	                     "        min-version: 3\n"
	                     "        database: users\n"
	                     "      - service: billing\n"
	                     "        min-version: 1\n"
	                     "        url-env: BILLING_URL\n"
	                     "        collection: my_migrations\n"
	                     "  - version: 5\n");
	struct registry r;
	assert_int_equal(registry_load(&r, dir), 0);
	assert_true(r.present);
	assert_string_equal(r.service, "order-service");
	assert_int_equal(r.n, 2);
	const struct reg_version *v = registry_find(&r, 2);
	assert_non_null(v);
	assert_true(v->breaking);
	assert_int_equal(v->ndeps, 2);
	assert_string_equal(v->deps[0].service, "user-service");
	assert_int_equal(v->deps[0].min_version, 3);
	assert_string_equal(v->deps[0].database, "users");
	assert_string_equal(v->deps[1].url_env, "BILLING_URL");
	assert_string_equal(v->deps[1].collection, "my_migrations");
	assert_null(registry_find(&r, 3));
	assert_false(registry_find(&r, 5)->breaking);
	registry_free(&r);
	drop(dir);
}

static void test_absent_registry_is_fine(void **state)
{
	(void)state;
	struct registry r;
	assert_int_equal(registry_load(&r, "/nonexistent-dir-for-unit-tests"), 0);
	assert_false(r.present);
	registry_free(&r);
}

static void test_bad_registries(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "service: a\nmigrations: 5\n",
	    "service: a\nbogus: 1\n",
	    "service: a\nmigrations:\n  - version: -1\n",
	    "service: a\nmigrations:\n  - version: 2\n    breaking: maybe\n",
	    "service: a\nmigrations:\n  - version: 2\n    dependencies:\n      - min-version: 1\n",
	    "service: a\nmigrations:\n  - version: 2\n    dependencies:\n      - service: b\n"
	    "        min-version: 1\n        unknown: x\n",
	    "[not, a, mapping]\n",
	    "service: a\ndatabase: bad.name\n",
	    "service: a\ndatabase: \"has space\"\n",
	    "service: a\nurl-env: \"\"\n",
	    "service: a\nmigrations:\n  - version: 2\n    dependencies:\n      - service: b\n"
	    "        min-version: 1\n        database: x/y\n",
	    "service: [unclosed\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *dir = dir_with(bad[i]);
		struct registry r;
		int rc = registry_load(&r, dir);
		if (rc != EXIT_SOURCE)
			fail_msg("registry %zu accepted:\n%s", i, bad[i]);
		registry_free(&r);
		drop(dir);
	}
}

/* In a central layout a dependency may leave out where the service lives
 * (it is the named service's), and the service may have its own url-env. */
static void test_service_registry(void **state)
{
	(void)state;
	char *dir = dir_with("service: orders\n"
	                     "url-env: ORDERS_URL\n"
	                     "migrations:\n"
	                     "  - version: 2\n"
	                     "    dependencies:\n"
	                     "      - service: users\n"
	                     "        min-version: 3\n");
	struct registry r;
	assert_int_equal(registry_load(&r, dir), EXIT_SOURCE);
	registry_free(&r);
	assert_int_equal(registry_load_service(&r, dir), 0);
	assert_string_equal(r.url_env, "ORDERS_URL");
	assert_null(r.database);
	assert_null(r.v[0].deps[0].database);
	registry_free(&r);
	drop(dir);
	assert_true(registry_database_name_ok("orders_2"));
	assert_false(registry_database_name_ok(""));
	assert_false(registry_database_name_ok("a$b"));
	assert_false(registry_database_name_ok(
	    "0123456789012345678901234567890123456789012345678901234567890123"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_registry),
	    cmocka_unit_test(test_absent_registry_is_fine),
	    cmocka_unit_test(test_bad_registries),
	    cmocka_unit_test(test_service_registry),
	};
	log_set_level(LOG_ERROR);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_shutdown();
	return rc;
}
