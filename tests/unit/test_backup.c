/* Unit tests: which collections a migration command names (backup), the
 * ones BACKUP=touched saves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backup.h"

#include <bson/bson.h>
#include <string.h>

static void collect(void *arg, const char *name)
{
	bson_string_t *s = arg;
	bson_string_append_printf(s, "%s%s", s->len ? "," : "", name);
}

/* The names cmd (Extended JSON) names in database "db", comma-separated. */
static void names_are(const char *json, const char *want)
{
	bson_error_t err;
	bson_t *cmd = bson_new_from_json((const uint8_t *)json, -1, &err);
	if (!cmd)
		fail_msg("bad test JSON %s: %s", json, err.message);
	bson_string_t *got = bson_string_new(NULL);
	backup_named(cmd, "db", collect, got);
	if (strcmp(got->str, want) != 0)
		fail_msg("%s names \"%s\", want \"%s\"", json, got->str, want);
	bson_string_free(got, true);
	bson_destroy(cmd);
}

static void test_named(void **state)
{
	(void)state;
	names_are("{\"insert\": \"a\", \"documents\": [{\"x\": 1}]}", "a");
	names_are("{\"createIndexes\": \"a\", \"indexes\": []}", "a");
	names_are("{\"dropDatabase\": 1}", "");
	names_are("{\"renameCollection\": \"db.a\", \"to\": \"db.b\"}", "a,b");
	/* Another database's collections are not ours to save. */
	names_are("{\"renameCollection\": \"other.a\", \"to\": \"db.b\"}", "b");
	names_are("{\"aggregate\": \"a\", \"pipeline\": [{\"$match\": {}}, {\"$out\": \"b\"}]}",
	          "a,b");
	names_are("{\"aggregate\": \"a\", \"pipeline\": [{\"$out\": {\"db\": \"db\", \"coll\": "
	          "\"b\"}}]}",
	          "a,b");
	names_are("{\"aggregate\": \"a\", \"pipeline\": [{\"$merge\": {\"into\": \"b\"}}]}", "a,b");
	names_are("{\"aggregate\": \"a\", \"pipeline\": [{\"$merge\": {\"into\": {\"db\": \"db\", "
	          "\"coll\": \"b\"}}}]}",
	          "a,b");
	/* Nested: a $lookup inside a $facet. */
	names_are("{\"aggregate\": \"a\", \"pipeline\": [{\"$facet\": {\"x\": [{\"$lookup\": "
	          "{\"from\": \"c\", \"as\": \"y\"}}]}}]}",
	          "a,c");
	names_are("{\"update\": \"a\", \"updates\": [{\"q\": {}, \"u\": {\"$set\": {\"f\": 1}}}]}",
	          "a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_named)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
