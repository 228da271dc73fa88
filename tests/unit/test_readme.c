/*
 * README's three reference tables (commands, environment, exit codes) are
 * the tables in the code (command.c, config.c, exitcode.c), rendered: each
 * must appear in README.md verbatim. On a mismatch the test prints the
 * block README should hold; scripts/readme-tables.py pastes it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "commands.h"
#include "config.h"
#include "exitcode.h"

#include <bson/bson.h>
#include <stdio.h>
#include <string.h>

static char *readme;

static int load(void **state)
{
	(void)state;
	FILE *f = fopen("README.md", "r"); /* make unit runs from the top */
	if (!f)
		return -1;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	readme = buf;
	return 0;
}

/* s with each "\n\t" continuation made a new sentence: one table cell. */
static void cell(bson_string_t *b, const char *text)
{
	for (const char *s = text; *s; s++) {
		if (s[0] == '\n' && s[1] == '\t') {
			bson_string_append(b, s > text && s[-1] == '.' ? " " : ". ");
			s++;
		} else {
			bson_string_append_c(b, *s);
		}
	}
}

static void expect_block(const char *what, bson_string_t *b)
{
	bool ok = strstr(readme, b->str) != NULL;
	if (!ok)
		printf("README.md should hold this %s table:\n\n%s\n", what, b->str);
	bson_string_free(b, true);
	if (!ok)
		fail_msg("README.md lacks the %s table as the code has it", what);
}

static void test_commands(void **state)
{
	(void)state;
	bson_string_t *b = bson_string_new("| command | meaning |\n|---|---|\n");
	const struct command_def *d;
	for (size_t i = 0; (d = command_at(i)); i++) {
		if (d->name[0])
			bson_string_append_printf(b, "| `%s` | ", d->synopsis);
		else
			bson_string_append(b, "| *(none)* | entrypoint mode: ");
		cell(b, d->help);
		bson_string_append(b, " |\n");
	}
	expect_block("command", b);
}

static void test_environment(void **state)
{
	(void)state;
	bson_string_t *b =
	    bson_string_new("| variable | default | flag | meaning |\n|---|---|---|---|\n");
	const char *name, *def, *help;
	char flags[128];
	for (size_t i = 0; config_setting(i, &name, &def, flags, sizeof flags, &help); i++) {
		bson_string_append_printf(b, "| `%s` | %s%s%s | ", name, def ? "`" : "",
		                          def ? def : "-", def ? "`" : "");
		if (!flags[0]) {
			bson_string_append(b, "-");
		} else {
			/* "-path, -source" as "`-path`, `-source`" */
			bson_string_append_c(b, '`');
			for (const char *p = flags; *p; p++) {
				if (p[0] == ',' && p[1] == ' ') {
					bson_string_append(b, "`, `");
					p++;
				} else {
					bson_string_append_c(b, *p);
				}
			}
			bson_string_append_c(b, '`');
		}
		bson_string_append_printf(b, " | %s |\n", help);
	}
	expect_block("environment", b);
}

static void test_exit_codes(void **state)
{
	(void)state;
	bson_string_t *b = bson_string_new("| code | meaning | retry can help |\n|---|---|---|\n");
	for (int code = 0; code < EXIT_SIGNAL_BASE; code++) {
		const char *meaning = exit_meaning(code);
		if (strcmp(meaning, exit_meaning(EXIT_SIGNAL_BASE - 1)) == 0)
			break; /* past the table: the "unknown" text */
		bson_string_append_printf(b, "| %d | %s | %s |\n", code, meaning, exit_retry(code));
	}
	bson_string_append_printf(b, "| 128+n | stopped by signal n | %s |\n",
	                          exit_retry(EXIT_SIGNAL_BASE + 15));
	expect_block("exit-code", b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commands),
	    cmocka_unit_test(test_environment),
	    cmocka_unit_test(test_exit_codes),
	};
	return cmocka_run_group_tests(tests, load, NULL);
}
