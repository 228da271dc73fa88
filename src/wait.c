#include "wait.h"

#include "exitcode.h"
#include "log.h"
#include "stop.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

int64_t backoff_full_jitter(unsigned attempt, int64_t base_ms, int64_t cap_ms, double rnd)
{
	int64_t ceiling = base_ms;
	for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
		ceiling *= 2;
	if (ceiling > cap_ms)
		ceiling = cap_ms;
	return (int64_t)(rnd * (double)(ceiling + 1));
}

int64_t wait_next_delay(const struct config *c, unsigned attempt, int64_t elapsed,
                        int64_t deadline_ms)
{
	int64_t delay = backoff_full_jitter(attempt, c->retry_interval_ms, c->retry_max_interval_ms,
	                                    (double)random() / ((double)RAND_MAX + 1.0));
	if (deadline_ms > 0 && elapsed + delay > deadline_ms)
		delay = deadline_ms > elapsed ? deadline_ms - elapsed : 0;
	return delay;
}

/* A TLS client talking to a plain listener sees only a timeout: the server
 * waits for the rest of a "message" its first bytes announced. */
static const char *hint(const struct config *c, const bson_error_t *err)
{
	if (c->tls && strstr(err->message, "timeout"))
		return "with tls=true, a timeout on the first exchange usually means the server "
		       "does not speak TLS on this port";
	return NULL;
}

/* One attempt: the client db_open made (none when its SRV lookup failed:
 * that failure is the attempt's), then a ping. */
static bool attempt_ping(struct db *d, bson_error_t *err)
{
	if (!d->client) {
		*err = d->open_err;
		return false;
	}
	return db_ping(d, err);
}

int wait_for_database(struct db *d, const struct config *c)
{
	int64_t start = now_ms();
	for (int64_t attempt = 1;; attempt++) {
		bson_error_t err;
		/* A single-threaded libmongoc client will not try a server again
		 * within 5 s of a failed check ("No servers yet eligible for
		 * rescan"): a fresh client makes every attempt a real one. */
		if (attempt > 1) {
			/* No attempt may outlast WAIT_TIMEOUT: its connect timeout
			 * is what is left of it (a dropped SYN waits it out). */
			struct db_options o = c->db;
			int64_t left = c->wait_timeout_ms - (now_ms() - start);
			if (c->wait_timeout_ms > 0 && left < o.connect_timeout_ms)
				o.connect_timeout_ms = left > 0 ? left : 1;
			db_close(d);
			int rc = db_open(d, &o, 0);
			if (rc != 0 && rc != EXIT_UNREACHABLE)
				return EXIT_USAGE;
			d->opt = &c->db; /* o was for the client's options only */
		}
		if (attempt_ping(d, &err)) {
			if (attempt > 1)
				log_info("database is ready", F_INT("attempt", attempt),
				         F_INT("waited_ms", now_ms() - start));
			return 0;
		}
		int code = db_error_exit(&err);
		if (code == EXIT_AUTH) {
			log_error("cannot connect: authentication or TLS failure (not retried)",
			          F_STR("error", err.message), F_INT("attempt", attempt));
			return EXIT_AUTH;
		}
		int64_t elapsed = now_ms() - start;
		bool out_of_time = c->wait_timeout_ms > 0 && elapsed >= c->wait_timeout_ms;
		if (attempt >= c->max_retries || out_of_time) {
			log_error("database unreachable: giving up", F_STR("error", err.message),
			          F_INT("attempts", attempt), F_INT("waited_ms", elapsed),
			          F_STR("hint", hint(c, &err)));
			return EXIT_UNREACHABLE;
		}
		int64_t delay =
		    wait_next_delay(c, (unsigned)(attempt - 1), elapsed, c->wait_timeout_ms);
		log_warn("database not ready", F_INT("attempt", attempt),
		         F_INT("max_attempts", c->max_retries), F_INT("delay_ms", delay),
		         F_STR("error", err.message), F_STR("hint", hint(c, &err)));
		stop_sleep_ms(delay);
		if (stop_requested())
			return EXIT_SIGNAL_BASE + stop_requested();
	}
}
