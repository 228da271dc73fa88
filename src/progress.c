#include "progress.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct progress now = {.to = -1};

void progress_start(const char *command)
{
	pthread_mutex_lock(&mu);
	memset(&now, 0, sizeof now);
	now.command = command;
	now.to = -1;
	pthread_mutex_unlock(&mu);
}

void progress_state(int64_t to, bool dirty)
{
	pthread_mutex_lock(&mu);
	now.known = true;
	now.to = to;
	now.dirty = dirty;
	pthread_mutex_unlock(&mu);
}

void progress_applied(void)
{
	pthread_mutex_lock(&mu);
	now.applied++;
	pthread_mutex_unlock(&mu);
}

void progress_lock(bool held, const char *token)
{
	pthread_mutex_lock(&mu);
	now.held = held;
	snprintf(now.token, sizeof now.token, "%s", held && token ? token : "");
	pthread_mutex_unlock(&mu);
}

struct progress progress_get(void)
{
	pthread_mutex_lock(&mu);
	struct progress p = now;
	pthread_mutex_unlock(&mu);
	return p;
}

void progress_describe(const struct progress *p, char *out, size_t len)
{
	if (!p->known)
		snprintf(out, len, "database version unknown");
	else if (p->to == -1)
		snprintf(out, len, "database has no version%s", p->dirty ? " (dirty)" : "");
	else
		snprintf(out, len, "database at version %" PRId64 " (%s)", p->to,
		         p->dirty ? "dirty" : "clean");
}
