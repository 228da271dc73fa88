#include "fault.h"

#ifdef MI_FAULTS
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fault_point(const char *name)
{
	static long hits;
	const char *spec = getenv("MI_FAULT");
	if (!spec)
		return;
	size_t len = strcspn(spec, "@");
	if (strlen(name) != len || strncmp(spec, name, len) != 0)
		return;
	long want = spec[len] == '@' ? strtol(spec + len + 1, NULL, 10) : 1;
	if (++hits == want)
		kill(getpid(), SIGKILL);
}
#else
/* ISO C wants at least one declaration in a translation unit. */
typedef int fault_unused;
#endif
