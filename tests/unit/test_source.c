/* Unit tests: file names, migration bodies, Go time layouts (plans: test_plan.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gotime.h"
#include "migration.h"
#include "source.h"

#include <string.h>

static void test_names(void **state)
{
	(void)state;
	struct fname_parts p;
	assert_true(source_parse_name("000001_init.up.json", &p));
	assert_true(p.version == 1 && p.dir == DIR_UP);
	assert_int_equal(p.name_len, 4);
	assert_string_equal(p.ext, "json");
	assert_true(source_parse_name("20240620120000_a.b.down.yaml", &p));
	assert_true(p.version == 20240620120000ULL && p.dir == DIR_DOWN);
	assert_int_equal(p.name_len, 3);
	/* Greedy identifier: the last direction wins. */
	assert_true(source_parse_name("1_x.up.down.json", &p));
	assert_true(p.dir == DIR_DOWN && p.name_len == 4);
	assert_true(source_parse_name("1_.up.", &p));
	assert_true(p.name_len == 0 && p.ext[0] == '\0');
	assert_true(source_parse_name("18446744073709551615_max.up.json", &p));
	const char *ignored[] = {"README.md",
	                         "1.up.json",
	                         "_1_a.up.json",
	                         "a1_a.up.json",
	                         "1_a.json",
	                         "1_a.upx.json",
	                         "18446744073709551616_big.up.json",
	                         "1_a.UP.json",
	                         ""};
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		assert_false(source_parse_name(ignored[i], &p));
}

static bson_t *parse(const char *s, char *err)
{
	return migration_parse_json((const uint8_t *)s, strlen(s), err, 256);
}

static void test_bodies(void **state)
{
	(void)state;
	char err[256];
	bson_t *b = parse(
	    " [ {\"ping\": 1}, {\"insert\": \"t\", \"documents\": [{\"n\": 3000000000}]} ]", err);
	assert_non_null(b);
	assert_int_equal(bson_count_keys(b), 2);
	bson_destroy(b);
	b = parse("[]", err);
	assert_non_null(b);
	assert_int_equal(bson_count_keys(b), 0);
	bson_destroy(b);

	const char *bad[] = {"",
	                     "  \n",
	                     "{\"ping\": 1}",
	                     "[1, 2]",
	                     "[{}]",
	                     "[{\"a\": 1}",
	                     "[{\"a\": 1}] [",
	                     "\"x\"",
	                     "[[{\"a\": 1}]]",
	                     "[{\"a\": 1}, null]"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		b = parse(bad[i], err);
		if (b)
			fail_msg("accepted: %s", bad[i]);
		assert_true(strlen(err) > 0);
	}
	assert_non_null(strstr((parse("{\"a\":1}", err), err), "object"));
}

/* The $type operator must survive, and legacy binary must still work. */
static void test_type_operator(void **state)
{
	(void)state;
	char err[256];
	bson_t *b = parse("[{\"update\": \"u\", \"updates\": [{\"q\": {\"a\": {\"$type\": 2}}, "
	                  "\"u\": {\"$currentDate\": {\"at\": {\"$type\": \"date\"}}}}]},"
	                  "{\"insert\": \"t\", \"documents\": [{\"b\": {\"$binary\": \"AAEC\", "
	                  "\"$type\": \"00\"}, \"s\": \"\\\"$type\\\": 1\"}]}]",
	                  err);
	if (!b)
		fail_msg("%s", err);
	char *json = bson_as_canonical_extended_json(b, NULL);
	assert_non_null(strstr(json, "{ \"$type\" : { \"$numberInt\" : \"2\" } }"));
	assert_non_null(strstr(json, "{ \"$type\" : \"date\" }"));
	assert_non_null(
	    strstr(json, "\"$binary\" : { \"base64\" : \"AAEC\", \"subType\" : \"00\" }"));
	assert_null(strstr(json, "__migrate_init"));
	bson_free(json);
	bson_destroy(b);
}

/* One parser for many bodies (source_load) must give, body after body, what
 * each body alone gives: the same bytes or the same error, also after a
 * broken body, and for bodies that would end the shared reader's document
 * early or add elements to it. */
static void test_shared_parser(void **state)
{
	(void)state;
	char deep[400], deep_ok[300];
	size_t d = 0;
	for (int i = 0; i < 120; i++)
		deep[d++] = '[';
	deep[d++] = '1';
	for (int i = 0; i < 120; i++)
		deep[d++] = ']';
	deep[d] = '\0';
	/* 40 levels: past the shared reader's depth bound, within libbson's. */
	d = 0;
	deep_ok[d++] = '[';
	for (int i = 0; i < 39; i++)
		deep_ok[d++] = '{', deep_ok[d++] = '"', deep_ok[d++] = 'a', deep_ok[d++] = '"',
		deep_ok[d++] = ':';
	deep_ok[d++] = '1';
	for (int i = 0; i < 39; i++)
		deep_ok[d++] = '}';
	deep_ok[d++] = ']';
	deep_ok[d] = '\0';
	const char *bodies[] = {
	    "[{\"ping\": 1}]",
	    " [ {\"insert\": \"t\", \"documents\": [{\"n\": 3000000000, \"s\": \"]}{\\\"\"}]} ]\n",
	    "[{\"a\": 1}",
	    "[{\"ping\": 1}]",
	    "[{\"a\": 1}]} {\"b\": [{\"c\": 2}]",
	    "[{\"ping\": 1}]",
	    "[{\"a\": 1}], \"c\": [{\"d\": 1}]",
	    "[{\"a\": 1}] {",
	    "[{\"a\": 1}] x",
	    "[{\"a\": {\"$date\": {\"$numberLong\": \"5\"}}, \"b\": {\"$oid\": "
	    "\"5f0000000000000000000000\"}}]",
	    "[{\"a\": {\"$numberLong\": \"x\"}}]",
	    "[{\"q\": {\"a\": {\"$type\": 2}}}, {\"b\": {\"$binary\": \"AAEC\", \"$type\": "
	    "\"00\"}}]",
	    "[{\"a\": \"\\u0000\"}]",
	    "[]",
	    "[1, 2]",
	    deep,
	    deep_ok,
	    "[{\"ping\": 1}]\t\r\n ",
	    "[{\"ping\": 1}]\f",
	    "[{\"a\": [1, 2, {\"b\": null}]}]",
	};
	struct migration_parser *p = migration_parser_new();
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
			char e1[256] = "", e2[256] = "";
			const uint8_t *data = (const uint8_t *)bodies[i];
			size_t len = strlen(bodies[i]);
			bson_t *alone = migration_parse_json(data, len, e1, sizeof e1);
			bson_t *shared = migration_parse(p, "json", data, len, e2, sizeof e2);
			if (!alone != !shared)
				fail_msg("body %zu: alone %s, shared %s", i, alone ? "ok" : e1,
				         shared ? "ok" : e2);
			if (alone) {
				assert_int_equal(alone->len, shared->len);
				assert_memory_equal(bson_get_data(alone), bson_get_data(shared),
				                    alone->len);
				bson_destroy(alone);
				bson_destroy(shared);
			} else {
				assert_string_equal(e1, e2);
			}
		}
	}
	migration_parser_free(p);
}

static bson_t *yaml(const char *s, char *err)
{
	return migration_parse_yaml((const uint8_t *)s, strlen(s), err, 256);
}

/* A YAML body and its JSON twin give the same bytes. */
static void test_yaml_twin(void **state)
{
	(void)state;
	char err[256];
	bson_t *y =
	    yaml("# a comment\n"
	         "- insert: users  # another\n"
	         "  documents:\n"
	         "    - {_id: 1, zip: 007, on: yes, big: 3000000000, f: 1.5, g: .5, h: 1e3,\n"
	         "       t: true, n: ~, s: '12', w: !!str 7, d: {$date: {$numberLong: '5'}}}\n"
	         "    - &x {a: [1, -2]}\n"
	         "    - *x\n",
	         err);
	if (!y)
		fail_msg("%s", err);
	bson_t *j =
	    parse("[{\"insert\": \"users\", \"documents\": [{\"_id\": 1, \"zip\": \"007\", "
	          "\"on\": \"yes\", \"big\": 3000000000, \"f\": 1.5, \"g\": 0.5, \"h\": 1e3, "
	          "\"t\": true, \"n\": null, \"s\": \"12\", \"w\": \"7\", "
	          "\"d\": {\"$date\": {\"$numberLong\": \"5\"}}}, {\"a\": [1, -2]}, "
	          "{\"a\": [1, -2]}]}]",
	          err);
	assert_non_null(j);
	assert_int_equal(y->len, j->len);
	assert_memory_equal(bson_get_data(y), bson_get_data(j), y->len);
	bson_destroy(y);
	bson_destroy(j);

	const char *bad[][2] = {{"- insert: x\n  documents: [\n", "3:1:"},
	                        {"insert: x\n", "mapping"},
	                        {"- a: 1\n---\n- b: 2\n", "one YAML document"},
	                        {"- a: !!int 5\n", "!!str"},
	                        {"- a: *nope\n", "alias"},
	                        {"# nothing\n", "empty"},
	                        {"- a: 1\n   b: 2\n", "2:5:"},
	                        {"- 1\n", "not a document"}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		bson_t *b = yaml(bad[i][0], err);
		if (b || !strstr(err, bad[i][1]))
			fail_msg("case %zu: got '%s', want '%s'", i, b ? "(accepted)" : err,
			         bad[i][1]);
	}
}

static void test_go_layout(void **state)
{
	(void)state;
	struct tm tm = {.tm_year = 124,
	                .tm_mon = 5,
	                .tm_mday = 2,
	                .tm_hour = 15,
	                .tm_min = 4,
	                .tm_sec = 5,
	                .tm_wday = 0,
	                .tm_yday = 153,
	                .tm_gmtoff = 0,
	                .tm_zone = "UTC"};
	char out[128];
	go_time_format("20060102150405", &tm, 0, out, sizeof out);
	assert_string_equal(out, "20240602150405");
	go_time_format("2006-01-02T15:04:05Z07:00", &tm, 0, out, sizeof out);
	assert_string_equal(out, "2024-06-02T15:04:05Z");
	go_time_format("Mon Jan _2 3:4:5 PM 06 002 .000", &tm, 123456789, out, sizeof out);
	assert_string_equal(out, "Sun Jun  2 3:4:5 PM 24 154 .123");
	tm.tm_gmtoff = -(7 * 3600 + 30 * 60);
	go_time_format("-0700 -07:00 x", &tm, 0, out, sizeof out);
	assert_string_equal(out, "-0730 -07:30 x");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),         cmocka_unit_test(test_bodies),
	    cmocka_unit_test(test_type_operator), cmocka_unit_test(test_yaml_twin),
	    cmocka_unit_test(test_shared_parser), cmocka_unit_test(test_go_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
