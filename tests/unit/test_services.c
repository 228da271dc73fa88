/* Unit tests: a central layout's services, their order and cycles
 * (services.c), and the worst of several exit codes (exitcode.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "exitcode.h"
#include "log.h"
#include "services.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* services from "name:dep,dep" specs, each dependency on version 1. */
static void build(struct services *sv, const char *const *spec, size_t n)
{
	memset(sv, 0, sizeof *sv);
	sv->s = bson_malloc0(n * sizeof *sv->s);
	sv->n = n;
	for (size_t i = 0; i < n; i++) {
		struct service *s = &sv->s[i];
		const char *colon = strchr(spec[i], ':');
		s->name =
		    bson_strndup(spec[i], colon ? (size_t)(colon - spec[i]) : strlen(spec[i]));
		s->dir = bson_strdup_printf("/x/%s", s->name);
		s->reg.present = true;
		s->reg.service = bson_strdup(s->name);
		s->reg.database = bson_strdup(s->name);
		s->reg.n = 1;
		s->reg.v = bson_malloc0(sizeof *s->reg.v);
		s->reg.v[0].version = 1;
		for (const char *p = colon ? colon + 1 : ""; *p;) {
			size_t len = strcspn(p, ",");
			struct reg_version *v = &s->reg.v[0];
			v->deps = bson_realloc(v->deps, (v->ndeps + 1) * sizeof *v->deps);
			memset(&v->deps[v->ndeps], 0, sizeof *v->deps);
			v->deps[v->ndeps].service = bson_strndup(p, len);
			v->deps[v->ndeps].min_version = 1;
			v->ndeps++;
			p += len + (p[len] == ',');
		}
	}
}

static size_t position(const struct services *sv, const char *name)
{
	long i = services_find(sv, name);
	assert_true(i >= 0);
	for (size_t k = 0; k < sv->n; k++)
		if (sv->order[k] == (size_t)i)
			return k;
	fail_msg("%s is not in the order", name);
	return 0;
}

static void test_dependencies_first(void **state)
{
	(void)state;
	static const char *const spec[] = {"billing:orders", "orders:users", "search:orders,users",
	                                   "users", "audit"};
	struct services sv;
	build(&sv, spec, 5);
	assert_int_equal(services_order(&sv), 0);
	assert_true(position(&sv, "users") < position(&sv, "orders"));
	assert_true(position(&sv, "orders") < position(&sv, "billing"));
	assert_true(position(&sv, "orders") < position(&sv, "search"));
	/* Every service once. */
	int seen[5] = {0};
	for (size_t k = 0; k < sv.n; k++)
		seen[sv.order[k]]++;
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(seen[i], 1);
	assert_true(services_depends(&sv, 0, 3));  /* billing -> orders -> users */
	assert_false(services_depends(&sv, 3, 0)); /* users does not depend on billing */
	assert_false(services_depends(&sv, 4, 3));
	/* A dependency that says nothing of where it lives gets the named
	 * service's database. */
	assert_string_equal(sv.s[0].reg.v[0].deps[0].database, "orders");
	services_free(&sv);
}

/* The cycle is named in the log line, in dependency order. */
static char *last_error(void)
{
	char *e = log_last_error();
	assert_non_null(e);
	return e;
}

static void test_cycle_named(void **state)
{
	(void)state;
	static const char *const spec[] = {"a:c", "b:a", "c:b", "d"};
	struct services sv;
	build(&sv, spec, 4);
	assert_int_equal(services_order(&sv), EXIT_SOURCE);
	char *e = last_error();
	assert_non_null(strstr(e, "cycle"));
	assert_non_null(strstr(e, "a -> c -> b -> a"));
	bson_free(e);
	services_free(&sv);

	static const char *const self[] = {"a", "b:b"};
	build(&sv, self, 2);
	assert_int_equal(services_order(&sv), EXIT_SOURCE);
	e = last_error();
	assert_non_null(strstr(e, "b -> b"));
	bson_free(e);
	services_free(&sv);
}

static void test_unknown_dependency(void **state)
{
	(void)state;
	static const char *const spec[] = {"a", "b:nobody"};
	struct services sv;
	build(&sv, spec, 2);
	assert_int_equal(services_order(&sv), EXIT_SOURCE);
	char *e = last_error();
	assert_non_null(strstr(e, "nobody"));
	bson_free(e);
	services_free(&sv);
}

static void test_select(void **state)
{
	(void)state;
	static const char *const spec[] = {"a", "b:a", "c"};
	struct services sv;
	build(&sv, spec, 3);
	assert_int_equal(services_order(&sv), 0);
	assert_int_equal(services_select(&sv, NULL), 0); /* all: nothing to check */
	assert_int_equal(services_select(&sv, "c,b"), 0);
	assert_false(sv.s[0].selected);
	assert_true(sv.s[1].selected);
	assert_true(sv.s[2].selected);
	assert_int_equal(services_select(&sv, "c,zz"), EXIT_USAGE);
	assert_int_equal(services_select(&sv, "c,,b"), EXIT_USAGE);
	services_free(&sv);
}

/* A directory is a central layout only without migration files of its own. */
static void test_detect(void **state)
{
	(void)state;
	char dir[] = "/tmp/mi-unit-services-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/users", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_false(services_detect(dir)); /* no registry yet */
	snprintf(path, sizeof path, "%s/users/%s", dir, REGISTRY_FILE);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("service: users\ndatabase: users\n", f);
	fclose(f);
	assert_true(services_detect(dir));
	struct services sv;
	assert_int_equal(services_load(&sv, dir), 0);
	assert_int_equal(sv.n, 1);
	assert_string_equal(sv.s[0].name, "users");
	services_free(&sv);
	snprintf(path, sizeof path, "%s/1_x.up.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("[]", f);
	fclose(f);
	assert_false(services_detect(dir)); /* a set of its own: the one-set layout */
	unlink(path);
	snprintf(path, sizeof path, "%s/users/%s", dir, REGISTRY_FILE);
	unlink(path);
	snprintf(path, sizeof path, "%s/users", dir);
	rmdir(path);
	rmdir(dir);
}

static void test_worst_exit_code(void **state)
{
	(void)state;
	/* EXIT_ORDER, worst first. */
	static const int order[] = {7, 8, 5, 3, 2, 1, 143, 9, 6, 4, 11, 10, 0};
	size_t n = sizeof order / sizeof order[0];
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			int want = order[i < j ? i : j];
			if (exit_worst(order[i], order[j]) != want)
				fail_msg("worst of %d and %d: got %d, want %d", order[i], order[j],
				         exit_worst(order[i], order[j]), want);
		}
	assert_string_equal(EXIT_ORDER, "7, 8, 5, 3, 2, 1, 128+n, 9, 6, 4, 11, 10, 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dependencies_first),
	    cmocka_unit_test(test_cycle_named),
	    cmocka_unit_test(test_unknown_dependency),
	    cmocka_unit_test(test_select),
	    cmocka_unit_test(test_detect),
	    cmocka_unit_test(test_worst_exit_code),
	};
	log_set_level(LOG_ERROR);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_shutdown();
	return rc;
}
