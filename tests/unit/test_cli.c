/* Unit tests: argv parsing (cli), backoff with full jitter (wait). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cli.h"
#include "exitcode.h"
#include "log.h"
#include "wait.h"

#include <string.h>

/* cli_parse over a literal argv. */
static int parse(struct cli *c, int argc, const char **argv)
{
	return cli_parse(argc, (char **)argv, c);
}

static void test_global_flags_every_spelling(void **state)
{
	(void)state;
	struct cli c;
	const char *a[] = {
	    "mi",        "-path", "/m", "--database=mongodb://h/db", "-lock-timeout", "7",
	    "--verbose", "up",    "2"};
	assert_int_equal(parse(&c, 9, a), 0);
	assert_string_equal(c.path, "/m");
	assert_string_equal(c.database, "mongodb://h/db");
	assert_string_equal(c.lock_timeout, "7");
	assert_true(c.verbose);
	assert_int_equal(c.cmd, CMD_UP);
	assert_int_equal(c.nargs, 1);
	assert_string_equal(c.args[0], "2");
}

static void test_no_command_is_the_entrypoint(void **state)
{
	(void)state;
	struct cli c;
	const char *a[] = {"mi", "-path", "/m"};
	assert_int_equal(parse(&c, 3, a), 0);
	assert_int_equal(c.cmd, CMD_ENTRYPOINT);
	assert_string_equal(c.cmd_name, "");
	assert_int_equal(c.nargs, 0);
}

static void test_command_flags(void **state)
{
	(void)state;
	struct cli c;
	const char *down[] = {"mi", "down", "-all"};
	assert_int_equal(parse(&c, 3, down), 0);
	assert_true(c.down_all);
	const char *drop[] = {"mi", "drop", "-f=true"};
	assert_int_equal(parse(&c, 3, drop), 0);
	assert_true(c.drop_force);
	const char *create[] = {"mi", "create", "-ext", "json", "-dir", "m", "-seq", "init"};
	assert_int_equal(parse(&c, 8, create), 0);
	assert_int_equal(c.cmd, CMD_CREATE);
	assert_string_equal(c.ext, "json");
	assert_string_equal(c.dir, "m");
	assert_true(c.seq);
	assert_string_equal(c.args[0], "init");
	/* Go's bool flags take no separate value: "-all false" is -all and an argument. */
	const char *all[] = {"mi", "down", "-all", "false"};
	assert_int_equal(parse(&c, 4, all), 0);
	assert_true(c.down_all);
	assert_int_equal(c.nargs, 1);
}

static void test_negative_numbers_and_double_dash(void **state)
{
	(void)state;
	struct cli c;
	const char *bare[] = {"mi", "force", "-1"};
	assert_int_equal(parse(&c, 3, bare), 0);
	assert_string_equal(c.args[0], "-1");
	const char *dashed[] = {"mi", "force", "--", "-1"};
	assert_int_equal(parse(&c, 4, dashed), 0);
	assert_int_equal(c.nargs, 1);
	assert_string_equal(c.args[0], "-1");
}

static void test_bad_command_lines(void **state)
{
	(void)state;
	struct cli c;
	const char *unknown[] = {"mi", "upp"};
	assert_int_equal(parse(&c, 2, unknown), EXIT_USAGE);
	const char *flag[] = {"mi", "-nope"};
	assert_int_equal(parse(&c, 2, flag), EXIT_USAGE);
	const char *missing[] = {"mi", "-path"};
	assert_int_equal(parse(&c, 2, missing), EXIT_USAGE);
	const char *boolval[] = {"mi", "drop", "-f=maybe"};
	assert_int_equal(parse(&c, 3, boolval), EXIT_USAGE);
	const char *triple[] = {"mi", "---path", "/m"};
	assert_int_equal(parse(&c, 3, triple), EXIT_USAGE);
	const char *cmdflag[] = {"mi", "up", "-all"};
	assert_int_equal(parse(&c, 3, cmdflag), EXIT_USAGE);
}

static void test_backoff_full_jitter(void **state)
{
	(void)state;
	/* The ceiling doubles from base up to cap; the delay is rnd of it. */
	assert_int_equal(backoff_full_jitter(0, 100, 1000, 0.0), 0);
	assert_int_equal(backoff_full_jitter(0, 100, 1000, 0.999999), 100);
	assert_int_equal(backoff_full_jitter(1, 100, 1000, 0.999999), 200);
	assert_int_equal(backoff_full_jitter(3, 100, 1000, 0.999999), 800);
	assert_int_equal(backoff_full_jitter(4, 100, 1000, 0.999999), 1000);
	assert_int_equal(backoff_full_jitter(60, 100, 1000, 0.999999), 1000); /* no overflow */
	assert_int_equal(backoff_full_jitter(2, 100, 1000, 0.5), 200);
	for (unsigned a = 0; a < 70; a++) {
		int64_t d = backoff_full_jitter(a, 2000, 10000, 0.75);
		assert_true(d >= 0 && d <= 10000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_global_flags_every_spelling),
	    cmocka_unit_test(test_no_command_is_the_entrypoint),
	    cmocka_unit_test(test_command_flags),
	    cmocka_unit_test(test_negative_numbers_and_double_dash),
	    cmocka_unit_test(test_bad_command_lines),
	    cmocka_unit_test(test_backoff_full_jitter),
	};
	log_set_level(LOG_ERROR);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_shutdown();
	return rc;
}
