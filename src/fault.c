#include "fault.h"

#ifdef MI_FAULTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Whether spec ("NAME" or "NAME@N") names this point on this hit. */
static int hit(const char *spec, const char *name, long *hits)
{
	if (!spec)
		return 0;
	size_t len = strcspn(spec, "@");
	if (strlen(name) != len || strncmp(spec, name, len) != 0)
		return 0;
	long want = spec[len] == '@' ? strtol(spec + len + 1, NULL, 10) : 1;
	return ++*hits == want;
}

void fault_point(const char *name)
{
	static long kills, pauses;
	if (hit(getenv("MI_FAULT"), name, &kills))
		kill(getpid(), SIGKILL);
	if (hit(getenv("MI_PAUSE"), name, &pauses))
		kill(getpid(), SIGSTOP);
}
#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int fault_unused;
#endif
