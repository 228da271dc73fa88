/*
 * Unit tests: the data-loss lint (src/lint.c). Each rule has at least one
 * body that must raise it and one close to it that must not; bodies are
 * migration files as users write them (Extended JSON arrays of commands).
 * Also: silencing by a YAML comment and by the registry's lint key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "lint.h"
#include "migration.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct lcase {
	const char *body;
	enum direction dir;
	bool has_down;
	const char *rules; /* the findings' rule ids, space-separated, in order; "" none */
};

#define UP DIR_UP
#define DOWN DIR_DOWN

static const struct lcase cases[] = {
    /* $out into itself after a filtering stage: the seed's bug. */
    {"[{\"aggregate\":\"users\",\"pipeline\":[{\"$match\":{\"a\":1}},{\"$out\":\"users\"}],"
     "\"cursor\":{}}]",
     UP, true, "out-replaces-collection"},
    {"[{\"aggregate\":\"users\",\"pipeline\":[{\"$limit\":5},{\"$out\":{\"coll\":\"users\"}}]}]",
     UP, true, "out-replaces-collection"},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$unwind\":\"$tags\"},{\"$out\":\"u\"}]}]", DOWN, true,
     "out-replaces-collection"},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$group\":{\"_id\":\"$k\"}},{\"$out\":\"u\"}]}]", UP,
     true, "out-replaces-collection"},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$project\":{\"a\":1}},{\"$out\":\"u\"}]}]", UP, true,
     "out-replaces-collection"},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$sample\":{\"size\":3}},{\"$out\":\"u\"}]}]", UP, true,
     "out-replaces-collection"},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$skip\":1},{\"$out\":\"u\"}]}]", UP, true,
     "out-replaces-collection"},
    /* ... not: into another collection, another database, no lossy stage,
     * an $unwind that preserves, a lossy stage after nothing to write. */
    {"[{\"aggregate\":\"users\",\"pipeline\":[{\"$match\":{\"a\":1}},{\"$out\":\"users_v2\"}]}]",
     UP, true, ""},
    {"[{\"aggregate\":\"users\",\"pipeline\":[{\"$match\":{}},{\"$out\":{\"db\":\"x\",\"coll\":"
     "\"users\"}}]}]",
     UP, true, ""},
    {"[{\"aggregate\":\"users\",\"pipeline\":[{\"$addFields\":{\"b\":1}},{\"$out\":\"users\"}]}]",
     UP, true, ""},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$unwind\":{\"path\":\"$t\","
     "\"preserveNullAndEmptyArrays\":true}},{\"$out\":\"u\"}]}]",
     UP, true, ""},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$match\":{\"a\":1}}],\"cursor\":{}}]", UP, true, ""},
    /* $merge replace into itself after a reshaping stage. */
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$project\":{\"a\":1}},{\"$merge\":{\"into\":\"u\","
     "\"on\":\"_id\",\"whenMatched\":\"replace\"}}]}]",
     UP, true, "merge-replace-loses-fields"},
    /* ... not: the README's fix of the seed ($match, then $merge replace:
     * nothing unmatched is deleted), whenMatched merge, another target. */
    {"[{\"aggregate\":\"users\",\"pipeline\":[{\"$match\":{\"p\":{\"$exists\":false}}},"
     "{\"$addFields\":{\"p\":1}},{\"$merge\":{\"into\":\"users\",\"on\":\"_id\","
     "\"whenMatched\":\"replace\"}}]}]",
     UP, true, ""},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$project\":{\"a\":1}},{\"$merge\":{\"into\":\"u\","
     "\"whenMatched\":\"merge\"}}]}]",
     UP, true, ""},
    {"[{\"aggregate\":\"u\",\"pipeline\":[{\"$project\":{\"a\":1}},{\"$merge\":{\"into\":\"v\","
     "\"whenMatched\":\"replace\"}}]}]",
     UP, true, ""},
    /* Drops: in an up file only. */
    {"[{\"drop\":\"legacy\"}]", UP, true, "drop-collection"},
    {"[{\"drop\":\"legacy\"}]", DOWN, true, ""},
    {"[{\"dropDatabase\":1}]", UP, true, "drop-database"},
    {"[{\"dropDatabase\":1}]", DOWN, true, ""},
    {"[{\"dropIndexes\":\"u\",\"index\":\"*\"}]", UP, true, "drop-all-indexes"},
    {"[{\"dropIndexes\":\"u\",\"index\":\"email_1\"}]", UP, true, ""},
    {"[{\"dropIndexes\":\"u\",\"index\":\"*\"}]", DOWN, true, ""},
    /* Deletes and replacements with an empty filter. */
    {"[{\"delete\":\"u\",\"deletes\":[{\"q\":{\"a\":1},\"limit\":0},{\"q\":{},\"limit\":0}]}]",
     DOWN, true, "delete-all"},
    {"[{\"delete\":\"u\",\"deletes\":[{\"q\":{\"a\":1},\"limit\":0}]}]", UP, true, ""},
    {"[{\"update\":\"u\",\"updates\":[{\"q\":{},\"u\":{\"a\":1},\"multi\":true}]}]", UP, true,
     "replace-all"},
    {"[{\"update\":\"u\",\"updates\":[{\"q\":{},\"u\":{\"$set\":{\"a\":1}},\"multi\":true}]}]", UP,
     true, ""},
    {"[{\"update\":\"u\",\"updates\":[{\"q\":{},\"u\":{\"a\":1}}]}]", UP, true, ""},
    {"[{\"update\":\"u\",\"updates\":[{\"q\":{\"k\":2},\"u\":{\"a\":1},\"multi\":true}]}]", UP,
     true, ""},
    {"[{\"update\":\"u\",\"updates\":[{\"q\":{},\"u\":[{\"$set\":{\"a\":1}}],\"multi\":true}]}]",
     UP, true, ""},
    /* renameCollection over a target. */
    {"[{\"renameCollection\":\"d.a\",\"to\":\"d.b\",\"dropTarget\":true}]", UP, true,
     "rename-drop-target"},
    {"[{\"renameCollection\":\"d.a\",\"to\":\"d.b\"}]", UP, true, ""},
    /* Destructive and no down file; harmless and no down file. */
    {"[{\"insert\":\"u\",\"documents\":[{}]},{\"drop\":\"legacy\"}]", UP, false,
     "drop-collection destructive-without-down"},
    {"[{\"insert\":\"u\",\"documents\":[{}]}]", UP, false, ""},
};

static void test_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		const struct lcase *c = &cases[i];
		char err[256];
		bson_t *body = migration_parse_json((const uint8_t *)c->body, strlen(c->body), err,
		                                    sizeof err);
		if (!body)
			fail_msg("case %zu: %s", i, err);
		struct lint_finding out[8];
		size_t n = lint_body(body, c->dir, c->has_down, out, 8);
		char got[256] = "";
		for (size_t k = 0; k < n && k < 8; k++)
			snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", k ? " " : "",
			         out[k].rule->id);
		if (strcmp(got, c->rules) != 0)
			fail_msg("case %zu (%s): want \"%s\", got \"%s\"", i, c->body, c->rules,
			         got);
		bson_destroy(body);
	}
}

static void test_command_index_and_detail(void **state)
{
	(void)state;
	const char *b = "[{\"insert\":\"u\",\"documents\":[{}]},{\"drop\":\"legacy\"}]";
	char err[256];
	bson_t *body = migration_parse_json((const uint8_t *)b, strlen(b), err, sizeof err);
	assert_non_null(body);
	struct lint_finding out[4];
	assert_int_equal(lint_body(body, DIR_UP, true, out, 4), 1);
	assert_int_equal(out[0].command, 1);
	assert_string_equal(out[0].detail, "legacy");
	bson_destroy(body);
}

static void test_rule_ids_are_unique(void **state)
{
	(void)state;
	assert_true(lint_nrules >= 9);
	for (size_t i = 0; i < lint_nrules; i++)
		for (size_t k = i + 1; k < lint_nrules; k++)
			assert_string_not_equal(lint_rules[i].id, lint_rules[k].id);
}

static void test_yaml_comment_allows(void **state)
{
	(void)state;
	char dir[] = "/tmp/mi-lint-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/1_x.up.yaml", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("# keeps nothing of the old shape\n"
	      "- drop: legacy  # migrate-init: allow drop-collection, delete-all\n",
	      f);
	fclose(f);
	struct mfile m = {.path = path};
	assert_true(lint_allowed(&m, NULL, "drop-collection"));
	assert_true(lint_allowed(&m, NULL, "delete-all"));
	assert_false(lint_allowed(&m, NULL, "drop-database"));
	assert_false(lint_allowed(&m, NULL, "drop"));
	/* The same words in JSON are no comment. */
	snprintf(path, sizeof path, "%s/2_x.up.json", dir);
	f = fopen(path, "w");
	fputs("[{\"drop\": \"a\", \"comment\": \"# migrate-init: allow drop-collection\"}]\n", f);
	fclose(f);
	assert_false(lint_allowed(&m, NULL, "drop-collection"));
	unlink(path);
	snprintf(path, sizeof path, "%s/1_x.up.yaml", dir);
	unlink(path);
	rmdir(dir);
}

static void test_registry_allows(void **state)
{
	(void)state;
	struct registry r = {0};
	r.lint = BCON_NEW("3_drop.up.json", "[", "drop-collection", "]");
	struct mfile m = {.path = "migrations/3_drop.up.json"};
	struct mfile other = {.path = "migrations/4_drop.up.json"};
	assert_true(lint_allowed(&m, &r, "drop-collection"));
	assert_false(lint_allowed(&m, &r, "delete-all"));
	assert_false(lint_allowed(&other, &r, "drop-collection"));
	bson_destroy(r.lint);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_command_index_and_detail),
	    cmocka_unit_test(test_rule_ids_are_unique),
	    cmocka_unit_test(test_yaml_comment_allows),
	    cmocka_unit_test(test_registry_allows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
