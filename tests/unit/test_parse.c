/* Unit tests: the number, bool and duration parsers (parse). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "parse.h"

#include <string.h>

static void test_parse_uint(void **state)
{
	(void)state;
	uint64_t v;
	assert_true(parse_uint("0", 10, &v));
	assert_int_equal(v, 0);
	assert_true(parse_uint("18446744073709551615", UINT64_MAX, &v));
	assert_true(v == UINT64_MAX);
	assert_false(parse_uint("18446744073709551616", UINT64_MAX, &v));
	assert_false(parse_uint("11", 10, &v));
	assert_false(parse_uint("", 10, &v));
	assert_false(parse_uint("-1", 10, &v));
	assert_false(parse_uint("+1", 10, &v));
	assert_false(parse_uint("1e9", UINT64_MAX, &v));
	assert_false(parse_uint("abc", 10, &v));
	assert_false(parse_uint("1 ", 10, &v));
}

static void test_parse_duration(void **state)
{
	(void)state;
	int64_t ms;
	assert_true(parse_duration_ms("2", &ms));
	assert_int_equal(ms, 2000);
	assert_true(parse_duration_ms("1.5", &ms));
	assert_int_equal(ms, 1500);
	assert_true(parse_duration_ms("500ms", &ms));
	assert_int_equal(ms, 500);
	assert_true(parse_duration_ms("2s", &ms));
	assert_int_equal(ms, 2000);
	assert_true(parse_duration_ms("1m30s", &ms));
	assert_int_equal(ms, 90000);
	assert_true(parse_duration_ms("1h", &ms));
	assert_int_equal(ms, 3600000);
	assert_true(parse_duration_ms("0", &ms));
	assert_int_equal(ms, 0);
	const char *bad[] = {"",    "-1",  "1e99", "abc",   "2x",
	                     "s",   "1s2", ".",    "1..5s", "99999999999999999999",
	                     "1 s", "2S"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(parse_duration_ms(bad[i], &ms));
}

static void test_parse_go(void **state)
{
	(void)state;
	bool b;
	int64_t n;
	assert_true(parse_go_bool("true", &b) && b);
	assert_true(parse_go_bool("T", &b) && b);
	assert_true(parse_go_bool("0", &b) && !b);
	assert_true(parse_go_bool("False", &b) && !b);
	assert_false(parse_go_bool("yes", &b));
	assert_false(parse_go_bool("", &b));
	assert_true(parse_go_int("-15", &n) && n == -15);
	assert_true(parse_go_int("+7", &n) && n == 7);
	assert_true(parse_go_int("-9223372036854775808", &n) && n == INT64_MIN);
	assert_false(parse_go_int("9223372036854775808", &n));
	assert_false(parse_go_int("1.5", &n));
	assert_false(parse_go_int("", &n));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_uint),
	    cmocka_unit_test(test_parse_duration),
	    cmocka_unit_test(test_parse_go),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
