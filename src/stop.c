#include "stop.h"

#include "exitcode.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* stop_signal is written by the signal handler and read by every thread;
 * critical by the main thread, read by the watchdog; abort_fn/abort_arg
 * under abort_mu, which the watchdog holds from the moment it aborts and
 * stop_finish holds for good: exactly one of them ends the process. */
static volatile sig_atomic_t stop_signal;
static int wake_pipe[2] = {-1, -1};
static int64_t grace;
static atomic_bool critical;
static pthread_mutex_t abort_mu = PTHREAD_MUTEX_INITIALIZER;
static void (*abort_fn)(void *, int, bool);
static void *abort_arg;

/* Outside a critical section a stop needs no grace: nothing is running
 * that should finish. This is only the time main gets to notice by itself. */
#define STOP_SETTLE_MS 200

static void on_signal(int sig)
{
	int saved = errno;
	if (!stop_signal)
		stop_signal = sig;
	if (wake_pipe[1] >= 0) {
		char c = 1;
		ssize_t n = write(wake_pipe[1], &c, 1);
		(void)n;
	}
	errno = saved;
}

static void *watchdog(void *unused)
{
	(void)unused;
	char c;
	while (read(wake_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	/* Wait out the grace period while a migration runs, or until a second
	 * signal; outside one, main only gets a moment to finish by itself (a
	 * connection attempt to a blackholed address would not return for
	 * connectTimeoutMS). */
	int64_t start = now_ms(), end = start + grace, busy = start;
	for (;;) {
		int64_t now = now_ms(), left = end - now;
		/* The moment comes after the signal, or after the migration that
		 * was running then ended: main is about to notice by itself. */
		if (atomic_load(&critical))
			busy = now;
		else if (now - busy >= STOP_SETTLE_MS) {
			/* Decide under abort_mu: stop_critical(true) takes it too, so
			 * a migration either starts before we abort or never. */
			pthread_mutex_lock(&abort_mu);
			if (!atomic_load(&critical))
				goto abort; /* still holding abort_mu */
			pthread_mutex_unlock(&abort_mu);
			busy = now;
			continue;
		}
		if (left <= 0)
			break;
		struct pollfd p = {.fd = wake_pipe[0], .events = POLLIN};
		if (poll(&p, 1, (int)(left > 50 ? 50 : left)) > 0)
			break;
	}
	pthread_mutex_lock(&abort_mu);
abort:;
	bool mid_work = atomic_load(&critical);
	if (abort_fn)
		abort_fn(abort_arg, stop_signal, mid_work);
	_exit(EXIT_SIGNAL_BASE + stop_signal);
	return NULL;
}

void stop_install(int64_t grace_ms)
{
	grace = grace_ms;
	if (pipe(wake_pipe) == 0) {
		fcntl(wake_pipe[0], F_SETFD, FD_CLOEXEC);
		fcntl(wake_pipe[1], F_SETFD, FD_CLOEXEC);
		fcntl(wake_pipe[1], F_SETFL, O_NONBLOCK);
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		/* The watchdog must not take a signal meant for the main thread's
		 * sleeps; block them while it is created so it inherits the mask. */
		sigset_t all, old;
		sigemptyset(&all);
		sigaddset(&all, SIGTERM);
		sigaddset(&all, SIGINT);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		pthread_create(&t, &attr, watchdog, NULL);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&attr);
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a sleep or a blocking wait returns EINTR at once. */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

void stop_set_abort(void (*fn)(void *arg, int sig, bool mid_work), void *arg)
{
	pthread_mutex_lock(&abort_mu);
	abort_fn = fn;
	abort_arg = arg;
	pthread_mutex_unlock(&abort_mu);
}

bool stop_critical(bool on)
{
	if (!on) {
		atomic_store(&critical, false);
		return true;
	}
	pthread_mutex_lock(&abort_mu); /* blocks for good if the watchdog is aborting */
	atomic_store(&critical, true);
	pthread_mutex_unlock(&abort_mu);
	return !stop_signal;
}

void stop_finish(void)
{
	pthread_mutex_lock(&abort_mu);
	abort_fn = NULL;
	abort_arg = NULL;
	/* Held for good: the watchdog, if it wakes now, waits for our exit. */
}

int stop_requested(void)
{
	return stop_signal;
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
