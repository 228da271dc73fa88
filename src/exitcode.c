#include "exitcode.h"

#include <stdio.h>

struct exit_row {
	int code;
	const char *meaning;
	const char *retry;
};

static const struct exit_row table[] = {
    {EXIT_OK, "success, or nothing to do", "-"},
    {EXIT_INTERNAL, "unexpected internal error", "maybe"},
    {EXIT_USAGE, "usage or configuration error (flags, environment, URL)", "no"},
    {EXIT_SOURCE, "invalid migration source (names, duplicates, unparseable body)", "no"},
    {EXIT_UNREACHABLE, "database unreachable: retries or deadline exhausted", "yes"},
    {EXIT_AUTH, "authentication or TLS failure", "no"},
    {EXIT_LOCK_TIMEOUT, "lock not acquired in time", "yes"},
    {EXIT_MIGRATION, "a migration failed; the database is dirty (or rolled back)", "no"},
    {EXIT_DIRTY, "the database was already dirty; nothing was run", "no"},
    {EXIT_LOCK_LOST, "the lock was lost during the run; stopped safely", "yes"},
    {EXIT_PENDING, "pending work (plan), target not reached (wait), RUN_TIMEOUT reached", "-"},
    {EXIT_DEPENDENCY, "a dependency or policy of the migration registry is not met", "maybe"},
};

static const struct exit_row *find(int code)
{
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		if (table[i].code == code)
			return &table[i];
	return NULL;
}

const char *exit_meaning(int code)
{
	const struct exit_row *r = find(code);
	if (r)
		return r->meaning;
	if (code > EXIT_SIGNAL_BASE)
		return "stopped by a signal";
	return "unknown";
}

const char *exit_retry(int code)
{
	const struct exit_row *r = find(code);
	if (r)
		return r->retry;
	return code > EXIT_SIGNAL_BASE ? "yes" : "maybe";
}

void exit_print_table(void *stream)
{
	FILE *f = stream;
	fprintf(f, "Exit codes:\n  code  retry  meaning\n");
	for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
		fprintf(f, "  %-4d  %-5s  %s\n", table[i].code, table[i].retry, table[i].meaning);
	fprintf(f, "  %-4s  %-5s  %s\n", "128+n", "yes", "stopped by signal n");
}

/* Higher is worse; see exit_worst. */
static int severity(int code)
{
	static const int order[] = {
	    EXIT_MIGRATION,  EXIT_DIRTY,       EXIT_AUTH,      EXIT_SOURCE,       EXIT_USAGE,
	    EXIT_INTERNAL,   EXIT_SIGNAL_BASE, EXIT_LOCK_LOST, EXIT_LOCK_TIMEOUT, EXIT_UNREACHABLE,
	    EXIT_DEPENDENCY, EXIT_PENDING,     EXIT_OK};
	const int n = (int)(sizeof order / sizeof order[0]);
	if (code > EXIT_SIGNAL_BASE)
		code = EXIT_SIGNAL_BASE;
	for (int i = 0; i < n; i++)
		if (order[i] == code)
			return n - i;
	return n - 5; /* an unknown code: as an internal error */
}

int exit_worst(int a, int b)
{
	return severity(b) > severity(a) ? b : a;
}
