#include "stop.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	if (!stop_signal)
		stop_signal = sig;
}

void stop_install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a sleep or a blocking wait returns EINTR at once. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* A reset connection must be an error we report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);
}

int stop_requested(void)
{
	return stop_signal;
}

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void stop_sleep_ms(int64_t ms)
{
	int64_t end = now_ms() + ms;
	while (!stop_signal) {
		int64_t left = end - now_ms();
		if (left <= 0)
			return;
		struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
}
