/* Unit tests: argv parsing by the command table (cli, command), backoff
 * with full jitter (wait). */
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

/* The value of a setting flag as the parser handed it on, or NULL. */
static const char *given(const struct cli *c, const char *name)
{
	const char *v = NULL;
	for (size_t i = 0; i < c->nflags; i++)
		if (strcmp(c->flags[i].name, name) == 0)
			v = c->flags[i].value;
	return v;
}

static void test_global_flags_every_spelling(void **state)
{
	(void)state;
	struct cli c;
	const char *a[] = {
	    "mi",        "-path", "/m", "--database=mongodb://h/db", "-lock-timeout", "7",
	    "--verbose", "up",    "2"};
	assert_int_equal(parse(&c, 9, a), 0);
	assert_string_equal(given(&c, "-path"), "/m");
	assert_string_equal(given(&c, "-database"), "mongodb://h/db");
	assert_string_equal(given(&c, "-lock-timeout"), "7");
	assert_null(given(&c, "-source"));
	assert_true(c.verbose);
	assert_string_equal(c.cmd.def->name, "up");
	assert_true(c.cmd.has_arg);
	assert_int_equal(c.cmd.arg, 2);
}

static void test_no_command_is_the_entrypoint(void **state)
{
	(void)state;
	struct cli c;
	const char *a[] = {"mi", "-path", "/m", "-allow-breaking"};
	assert_int_equal(parse(&c, 4, a), 0);
	assert_string_equal(c.cmd.def->name, "");
	assert_string_equal(command_label(&c.cmd), "entrypoint");
	assert_false(c.cmd.has_arg);
	/* A bool setting flag given bare reaches config as "true". */
	assert_string_equal(given(&c, "-allow-breaking"), "true");
}

static void test_command_flags(void **state)
{
	(void)state;
	struct cli c;
	const char *down[] = {"mi", "down", "-all"};
	assert_int_equal(parse(&c, 3, down), 0);
	assert_true(c.cmd.all);
	const char *drop[] = {"mi", "drop", "-f=true"};
	assert_int_equal(parse(&c, 3, drop), 0);
	assert_true(c.cmd.force);
	const char *unlock[] = {"mi", "unlock", "--force=T"}; /* Go's ParseBool */
	assert_int_equal(parse(&c, 3, unlock), 0);
	assert_true(c.cmd.force);
	const char *create[] = {"mi", "create", "-ext", "json", "-dir", "m", "-seq", "init"};
	assert_int_equal(parse(&c, 8, create), 0);
	assert_string_equal(c.cmd.def->name, "create");
	assert_string_equal(c.cmd.ext, "json");
	assert_string_equal(c.cmd.dir, "m");
	assert_true(c.cmd.seq);
	assert_string_equal(c.cmd.name, "init");
	/* Go's bool flags take no separate value: "-all false" is -all and an
	 * argument, which down cannot read as N. */
	const char *all[] = {"mi", "down", "-all", "false"};
	assert_int_equal(parse(&c, 4, all), EXIT_USAGE);
	/* -help stops there: arguments are not read. */
	const char *help[] = {"mi", "goto", "-help"};
	assert_int_equal(parse(&c, 3, help), 0);
	assert_true(c.cmd.help);
}

static void test_arguments_by_rule(void **state)
{
	(void)state;
	struct cli c;
	const char *bare[] = {"mi", "force", "-1"};
	assert_int_equal(parse(&c, 3, bare), 0);
	assert_int_equal(c.cmd.arg, -1);
	const char *dashed[] = {"mi", "force", "--", "-1"};
	assert_int_equal(parse(&c, 4, dashed), 0);
	assert_int_equal(c.cmd.arg, -1);
	struct {
		int argc;
		const char *argv[4];
		int rc;
		int64_t arg;
	} rows[] = {
	    {3, {"mi", "up", "3"}, 0, 3},
	    {2, {"mi", "up"}, 0, 0},
	    {3, {"mi", "up", "-1"}, EXIT_USAGE, 0},
	    {4, {"mi", "up", "1", "2"}, EXIT_USAGE, 0},
	    {3, {"mi", "goto", "9223372036854775807"}, 0, INT64_MAX},
	    {3, {"mi", "goto", "9223372036854775808"}, EXIT_USAGE, 0},
	    {2, {"mi", "goto"}, EXIT_USAGE, 0},
	    {3, {"mi", "force", "-2"}, EXIT_USAGE, 0},
	    {3, {"mi", "force", "+5"}, 0, 5}, /* Go's Atoi */
	    {2, {"mi", "force"}, EXIT_USAGE, 0},
	    {3, {"mi", "wait", "x"}, EXIT_USAGE, 0},
	    {3, {"mi", "plan", "4"}, 0, 4},
	    {2, {"mi", "create"}, EXIT_USAGE, 0},
	    {4, {"mi", "create", "a", "b"}, EXIT_USAGE, 0},
	    /* golang-migrate's version ignores what follows it, flags too. */
	    {4, {"mi", "version", "-x", "y"}, 0, 0},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int rc = parse(&c, rows[i].argc, rows[i].argv);
		if (rc != rows[i].rc)
			fail_msg("row %zu (%s): rc %d, want %d", i, rows[i].argv[1], rc,
			         rows[i].rc);
		if (rc == 0 && c.cmd.has_arg)
			assert_true(c.cmd.arg == rows[i].arg);
	}
}

static void test_bad_command_lines(void **state)
{
	(void)state;
	struct cli c;
	const char *unknown[] = {"mi", "upp"};
	assert_int_equal(parse(&c, 2, unknown), EXIT_USAGE);
	const char *empty[] = {"mi", ""};
	assert_int_equal(parse(&c, 2, empty), EXIT_USAGE);
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
	/* A global flag after the command is the command's, and up has none. */
	const char *late[] = {"mi", "up", "-path", "/m"};
	assert_int_equal(parse(&c, 4, late), EXIT_USAGE);
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
	    cmocka_unit_test(test_arguments_by_rule),
	    cmocka_unit_test(test_bad_command_lines),
	    cmocka_unit_test(test_backoff_full_jitter),
	};
	log_set_level(LOG_ERROR);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	log_shutdown();
	return rc;
}
