#include "lock.h"

#include "exitcode.h"
#include "fault.h"
#include "lease.h"
#include "log.h"
#include "stop.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOCK_INDEX "lock_unique_key"
#define DUPLICATE_KEY 11000
#define POLL_FIRST_MS 25
#define POLL_CAP_MS 250

static void random_token(char out[33])
{
	unsigned char raw[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
		/* Uniqueness, not secrecy, is what the token is for. */
		for (size_t i = 0; i < sizeof raw; i++)
			raw[i] = (unsigned char)random();
	}
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static int ensure_index(struct db *d, const struct config *c)
{
	bson_t cmd = BSON_INITIALIZER, indexes, index, key;
	BSON_APPEND_UTF8(&cmd, "createIndexes", c->lock_collection);
	BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &indexes);
	BSON_APPEND_DOCUMENT_BEGIN(&indexes, "0", &index);
	BSON_APPEND_DOCUMENT_BEGIN(&index, "key", &key);
	BSON_APPEND_INT32(&key, "locking_key", -1);
	bson_append_document_end(&index, &key);
	BSON_APPEND_UTF8(&index, "name", LOCK_INDEX);
	BSON_APPEND_BOOL(&index, "unique", true);
	bson_append_document_end(&indexes, &index);
	bson_append_array_end(&cmd, &indexes);
	bson_error_t err;
	bool ok = db_run_command(d, &cmd, NULL, &err);
	bson_destroy(&cmd);
	if (!ok) {
		log_error("cannot create the lock index", F_STR("collection", c->lock_collection),
		          F_STR("error", err.message), F_INT("code", err.code));
		return db_error_exit(&err);
	}
	return 0;
}

/* What we know of the lock document someone holds. */
struct holder {
	bool found;
	bson_oid_t id;
	bool has_id;
	char who[128], host[128], token[33];
	int64_t pid;
	int64_t created_at, renewed_at, lease_ms; /* server-clock ms; 0 when absent */
	bool ours;                                /* written by migrate-init (has a lease) */
};

static void copy_utf8(bson_iter_t *it, char *out, size_t len)
{
	if (BSON_ITER_HOLDS_UTF8(it))
		snprintf(out, len, "%s", bson_iter_utf8(it, NULL));
}

static bool read_holder(mongoc_collection_t *coll, struct holder *h, bson_error_t *err)
{
	memset(h, 0, sizeof *h);
	bson_t filter = BSON_INITIALIZER;
	BSON_APPEND_INT32(&filter, "locking_key", 0);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
	const bson_t *doc;
	bson_iter_t it;
	if (mongoc_cursor_next(cur, &doc) && bson_iter_init(&it, doc)) {
		h->found = true;
		while (bson_iter_next(&it)) {
			const char *k = bson_iter_key(&it);
			if (strcmp(k, "_id") == 0 && BSON_ITER_HOLDS_OID(&it)) {
				bson_oid_copy(bson_iter_oid(&it), &h->id);
				h->has_id = true;
			} else if (strcmp(k, "hostname") == 0) {
				copy_utf8(&it, h->host, sizeof h->host);
			} else if (strcmp(k, "owner") == 0) {
				copy_utf8(&it, h->who, sizeof h->who);
			} else if (strcmp(k, "token") == 0) {
				copy_utf8(&it, h->token, sizeof h->token);
			} else if (strcmp(k, "pid") == 0 && BSON_ITER_HOLDS_NUMBER(&it)) {
				h->pid = bson_iter_as_int64(&it);
			} else if (strcmp(k, "created_at") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) {
				h->created_at = bson_iter_date_time(&it);
			} else if (strcmp(k, "renewed_at") == 0 && BSON_ITER_HOLDS_DATE_TIME(&it)) {
				h->renewed_at = bson_iter_date_time(&it);
			} else if (strcmp(k, "lease_ms") == 0 && BSON_ITER_HOLDS_NUMBER(&it)) {
				h->lease_ms = bson_iter_as_int64(&it);
			}
		}
		h->ours = h->token[0] && h->renewed_at && h->lease_ms > 0;
		if (!h->who[0])
			snprintf(h->who, sizeof h->who, "%s", h->host[0] ? h->host : "unknown");
	}
	bool ok = !mongoc_cursor_error(cur, err);
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	return ok;
}

/* How long ago (server clock) the holder's lease ran out; < 0: not yet,
 * or never for a golang-migrate lock when LOCK_STALE_AFTER is 0. */
static int64_t expired_for(const struct holder *h, const struct config *c, int64_t now)
{
	return lease_expired_for(h->ours, h->renewed_at, h->lease_ms, h->created_at,
	                         c->lock_stale_after_ms, now);
}

static void log_holder(const struct holder *h, const struct config *c, const char *msg)
{
	int64_t expires = lease_expires_at(h->ours, h->renewed_at, h->lease_ms, h->created_at,
	                                   c->lock_stale_after_ms);
	char since[40] = "", until[40] = "never";
	if (h->created_at)
		util_iso_time(h->created_at, since, sizeof since);
	if (expires != INT64_MAX)
		util_iso_time(expires, until, sizeof until);
	log_info(msg, F_STR("holder", h->who), F_STR("holder_host", h->host),
	         F_INT("holder_pid", h->pid), F_STR("since", since), F_STR("expires", until),
	         F_STR("holder_tool", h->ours ? "migrate-init" : "golang-migrate"));
}

static void append_lock_fields(bson_t *doc, const struct lock *l, int64_t now)
{
	char host[256];
	util_hostname(host, sizeof host);
	BSON_APPEND_INT32(doc, "locking_key", 0);
	BSON_APPEND_INT32(doc, "pid", (int32_t)getpid());
	BSON_APPEND_UTF8(doc, "hostname", host);
	BSON_APPEND_DATE_TIME(doc, "created_at", now);
	BSON_APPEND_UTF8(doc, "owner", l->c->owner);
	BSON_APPEND_UTF8(doc, "token", l->token);
	BSON_APPEND_UTF8(doc, "tool", "migrate-init");
	BSON_APPEND_INT64(doc, "lease_ms", l->c->lock_lease_ms);
	BSON_APPEND_DATE_TIME(doc, "renewed_at", now);
	BSON_APPEND_DATE_TIME(doc, "expires_at", now + l->c->lock_lease_ms);
}

/* Removes the expired holder's document, if it is still the one we judged
 * expired (same _id and renewal): a renewal that landed first wins. The
 * count is the server's rows deleted, so of racing waiters at most one
 * removes it; the insert that follows decides who holds the lock anyway. */
static bool remove_expired(struct lock *l, const struct holder *h, bson_error_t *err)
{
	bson_t filter = BSON_INITIALIZER, reply;
	if (h->has_id)
		BSON_APPEND_OID(&filter, "_id", &h->id);
	BSON_APPEND_INT32(&filter, "locking_key", 0);
	if (h->ours) {
		BSON_APPEND_UTF8(&filter, "token", h->token);
		BSON_APPEND_DATE_TIME(&filter, "renewed_at", h->renewed_at);
	} else {
		BSON_APPEND_DATE_TIME(&filter, "created_at", h->created_at);
	}
	bool ok = mongoc_collection_delete_one(l->coll, &filter, NULL, &reply, err);
	bson_iter_t it;
	bool removed =
	    ok && bson_iter_init_find(&it, &reply, "deletedCount") && bson_iter_as_int64(&it) == 1;
	bson_destroy(&reply);
	bson_destroy(&filter);
	return removed;
}

/* {locking_key: 0, token: token}: the lock document of the holder of token. */
static void append_lock_of(bson_t *filter, const char *token)
{
	BSON_APPEND_INT32(filter, "locking_key", 0);
	BSON_APPEND_UTF8(filter, "token", token);
}

/* Renews our lease. 1: renewed; 0: the document is no longer ours; -1: error. */
static int renew(struct db *d, mongoc_collection_t *coll, struct lock *l)
{
	bson_error_t err;
	int64_t now, sent = now_ms();
	if (!db_server_time(d, &now, &err))
		return -1;
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
	append_lock_of(&filter, l->token);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	BSON_APPEND_DATE_TIME(&set, "renewed_at", now);
	BSON_APPEND_DATE_TIME(&set, "expires_at", now + l->c->lock_lease_ms);
	bson_append_document_end(&update, &set);
	bool ok = mongoc_collection_update_one(coll, &filter, &update, NULL, &reply, &err);
	bson_iter_t it;
	int rc = !ok ? -1
	             : (bson_iter_init_find(&it, &reply, "matchedCount") &&
	                bson_iter_as_int64(&it) == 1);
	if (!ok)
		log_warn("lock heartbeat failed", F_STR("error", err.message));
	if (rc == 1)
		atomic_store(&l->valid_until, sent + l->c->lock_lease_ms);
	bson_destroy(&reply);
	bson_destroy(&filter);
	bson_destroy(&update);
	return rc;
}

/*
 * The heartbeat runs on its own connection, so a long command on the main
 * connection does not stop it. If renewals keep failing until the lease
 * (measured on our own monotonic clock, from before the last good renewal
 * was sent) is gone, the lock counts as lost: a waiter may have taken it.
 */
static void *heartbeat(void *arg)
{
	struct lock *l = arg;
	struct db *d = &l->hb_db;
	mongoc_collection_t *coll =
	    d->client ? mongoc_database_get_collection(d->db, l->c->lock_collection) : NULL;
	int64_t period = l->c->lock_lease_ms / 3;
	/* Renewals are spaced from one send to the next, so a slow round trip
	 * does not push the next renewal past the lease. */
	int64_t due = lease_renewal_due(atomic_load(&l->valid_until), l->c->lock_lease_ms);
	pthread_mutex_lock(&l->mu);
	while (!l->hb_stop) {
		int64_t wait = due - now_ms();
		if (wait > 0) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ns = ts.tv_nsec + (wait % 1000) * 1000000;
			ts.tv_sec += wait / 1000 + ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&l->cv, &l->mu, &ts);
			if (l->hb_stop)
				break;
			if (now_ms() < due)
				continue; /* woken early */
		}
		pthread_mutex_unlock(&l->mu);
		due = now_ms() + period;
		int r = coll ? renew(d, coll, l) : -1;
		if (r == 0 || now_ms() >= atomic_load(&l->valid_until)) {
			atomic_store(&l->lost, true);
			log_warn(r == 0 ? "lock lost: our lock document was taken over or removed"
			                : "lock lost: no renewal succeeded within the lease",
			         F_INT("lease_ms", l->c->lock_lease_ms));
			pthread_mutex_lock(&l->mu);
			break;
		}
		pthread_mutex_lock(&l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	if (coll)
		mongoc_collection_destroy(coll);
	db_close(d);
	return NULL;
}

static void start_heartbeat(struct lock *l)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);
	l->hb_stop = false;
	/* Signals are for the main thread's sleeps. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	l->hb_running = pthread_create(&l->hb, NULL, heartbeat, l) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!l->hb_running) {
		db_close(&l->hb_db);
		log_warn("cannot start the lock heartbeat; the lease will not be renewed");
	}
}

static void stop_heartbeat(struct lock *l)
{
	if (l->hb_running) {
		pthread_mutex_lock(&l->mu);
		l->hb_stop = true;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->hb, NULL);
		pthread_cond_destroy(&l->cv);
		pthread_mutex_destroy(&l->mu);
		l->hb_running = false;
	}
	db_close(&l->hb_db); /* a connection opened for a lock we never got */
}

static int lock_error(const char *msg, const bson_error_t *err)
{
	log_error(msg, F_STR("error", err->message), F_INT("code", err->code));
	int code = db_error_exit(err);
	return code == EXIT_INTERNAL ? EXIT_LOCK_TIMEOUT : code;
}

/* Removes the expired holder's document: true when we removed it (so the
 * insert that follows is a takeover); false when it had changed, or on an
 * error (*rc set). Waiters write nothing to the state: only the runner whose
 * insert wins goes on to claim it, and that claim, a compare-and-set of the
 * token, is what revokes the old holder. A waiter's own write to the state
 * could be read before the winner's claim and written after it on a server
 * whose conditional updates read, then write (FerretDB v1): it would
 * overwrite the winner's token, or its version. */
static bool take_over(struct lock *l, const struct holder *h, int *rc)
{
	bson_error_t err;
	*rc = 0;
	FAULT("takeover_removing");
	if (remove_expired(l, h, &err))
		return true;
	if (err.code)
		*rc = lock_error("cannot remove the expired lock", &err);
	return false;
}

int lock_acquire(struct lock *l, struct db *d, const struct config *c)
{
	memset(l, 0, sizeof *l);
	l->d = d;
	l->c = c;
	if (!c->advisory_locking)
		return 0;
	l->coll = mongoc_database_get_collection(d->db, c->lock_collection);
	int rc = ensure_index(d, c);
	if (rc)
		return rc;
	random_token(l->token);
	/* The heartbeat's own connection, made before we hold anything: on a
	 * slow network its handshake alone could eat much of the lease. A
	 * failure here shows at the first renewal. A renewal whose reply takes
	 * longer than a lease is worthless, and a heartbeat stuck on a held
	 * connection would keep a runner that lost its lock from exiting. */
	bson_error_t ignored;
	if (db_open(&l->hb_db, &c->db,
	            c->lock_lease_ms < INT32_MAX ? (int32_t)c->lock_lease_ms : INT32_MAX) == 0)
		db_ping(&l->hb_db, &ignored);

	int64_t start = now_ms(), delay = POLL_FIRST_MS;
	struct holder removed = {0}; /* the expired holder we just removed */
	for (;;) {
		bson_error_t err = {0};
		int64_t now, sent = now_ms();
		if (!db_server_time(d, &now, &err))
			return lock_error("cannot read the server's clock", &err);
		bson_t doc = BSON_INITIALIZER;
		append_lock_fields(&doc, l, now);
		bool ok = mongoc_collection_insert_one(l->coll, &doc, NULL, NULL, &err);
		bson_destroy(&doc);
		if (ok) {
			atomic_store(&l->valid_until, sent + c->lock_lease_ms);
			if (removed.found) {
				log_holder(&removed, c, "took over an expired lock");
				log_warn("the previous holder's lock had expired",
				         F_STR("previous_holder", removed.who),
				         F_INT("expired_for_ms", expired_for(&removed, c, now)));
			}
			break;
		}
		if (err.code != DUPLICATE_KEY)
			return lock_error("cannot take the lock", &err);
		if (removed.found)
			log_info("removed an expired lock, but another runner took the lock first",
			         F_STR("previous_holder", removed.who));
		removed.found = false;

		struct holder h;
		if (!read_holder(l->coll, &h, &err))
			return lock_error("cannot read the lock", &err);
		if (!h.found)
			continue; /* released between our insert and our read */
		if (expired_for(&h, c, now) >= 0) {
			l->saw_expired = true;
			if (take_over(l, &h, &rc)) {
				removed = h;
				continue;
			}
			if (rc)
				return rc;
			/* It changed under us (renewed, or another waiter was
			 * first): wait like everyone else. */
		}
		if (!l->waited)
			log_holder(&h, c, "lock held by another runner; waiting");
		l->waited = true;
		int64_t elapsed = now_ms() - start;
		if (elapsed >= c->lock_timeout_ms) {
			log_holder(&h, c, "lock still held");
			log_error("timeout: can't acquire database lock",
			          F_INT("lock_timeout_ms", c->lock_timeout_ms),
			          F_STR("collection", c->lock_collection));
			return EXIT_LOCK_TIMEOUT;
		}
		if (delay > c->lock_timeout_ms - elapsed)
			delay = c->lock_timeout_ms - elapsed;
		stop_sleep_ms(delay);
		if (stop_requested())
			return EXIT_SIGNAL_BASE + stop_requested();
		delay = delay * 2 > POLL_CAP_MS ? POLL_CAP_MS : delay * 2;
	}
	l->held = true;
	log_debug("lock acquired", F_STR("collection", c->lock_collection),
	          F_INT("waited_ms", now_ms() - start), F_INT("lease_ms", c->lock_lease_ms));
	start_heartbeat(l);
	return 0;
}

int lock_check(struct lock *l)
{
	if (!l->held)
		return 0;
	if (atomic_load(&l->lost))
		log_error("the lock was lost during the run; stopping before the next command");
	else if (now_ms() >= atomic_load(&l->valid_until)) {
		/* Paused (SIGSTOP, a frozen node) or starved past the lease:
		 * a waiter may already have taken over. */
		atomic_store(&l->lost, true);
		log_error("the lock's lease ran out before it could be renewed; stopping before "
		          "the next command",
		          F_INT("lease_ms", l->c->lock_lease_ms));
	} else {
		return 0;
	}
	return EXIT_LOCK_LOST;
}

#define CLAIM_ATTEMPTS 10
/* After a takeover, the old holder may still have a version write in
 * flight (sent just before its lease ran out). FerretDB v1 applies a
 * conditional update as read-then-write, so one that read the state before
 * our claim can land after it and overwrite our token: we would then stop
 * at our first write (exit 9, safe, but for nothing). Such a write lands
 * within one update's time: a claim after a takeover is confirmed twice,
 * this far apart. */
#define CLAIM_SETTLE_MS 50

int lock_claim_state(struct lock *l, int64_t *version, bool *dirty)
{
	bool confirmed_once = false;
	for (int attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
		bool claimed;
		/* A runner whose lease ran out must not claim over its successor. */
		int rc = lock_check(l);
		if (rc || (rc = db_claim_state(l->d, l->held ? l->token : NULL, version, dirty,
		                               &claimed)))
			return rc;
		if (claimed && (!l->held || !l->saw_expired || confirmed_once))
			return 0;
		confirmed_once = claimed;
		if (claimed)
			stop_sleep_ms(CLAIM_SETTLE_MS);
	}
	log_error("cannot claim the migration state: it keeps changing under us; something "
	          "writes it without holding the lock",
	          F_STR("collection", l->c->db.migrations_collection));
	return EXIT_LOCK_LOST;
}

int lock_release(struct lock *l)
{
	int rc = 0;
	stop_heartbeat(l);
	if (l->held)
		FAULT("releasing");
	if (l->held && !atomic_load(&l->lost)) {
		bson_t filter = BSON_INITIALIZER, reply;
		append_lock_of(&filter, l->token);
		bson_error_t err;
		if (!mongoc_collection_delete_one(l->coll, &filter, NULL, &reply, &err)) {
			log_warn("cannot release the lock; it expires after the lease",
			         F_STR("error", err.message), F_INT("code", err.code),
			         F_INT("lease_ms", l->c->lock_lease_ms));
			rc = db_error_exit(&err);
		} else {
			bson_iter_t it;
			if (bson_iter_init_find(&it, &reply, "deletedCount") &&
			    bson_iter_as_int64(&it) == 0)
				log_warn("our lock was already gone when we released it");
			else
				log_debug("lock released");
		}
		bson_destroy(&reply);
		bson_destroy(&filter);
	}
	l->held = false;
	if (l->coll)
		mongoc_collection_destroy(l->coll);
	l->coll = NULL;
	return rc;
}

void lock_forget(struct lock *l)
{
	stop_heartbeat(l);
	l->held = false;
}

void lock_release_detached(const struct config *c, const char *token)
{
	struct db d;
	if (db_open(&d, &c->db, 0) != 0)
		return;
	mongoc_collection_t *coll = mongoc_database_get_collection(d.db, c->lock_collection);
	bson_t filter = BSON_INITIALIZER;
	append_lock_of(&filter, token);
	bson_error_t err;
	if (mongoc_collection_delete_one(coll, &filter, NULL, NULL, &err))
		log_warn("lock released by the abort path");
	else
		log_warn("cannot release the lock on abort; it expires after the lease",
		         F_STR("error", err.message));
	bson_destroy(&filter);
	mongoc_collection_destroy(coll);
	db_close(&d);
}

int lock_unlock_command(struct db *d, const struct config *c, bool force)
{
	mongoc_collection_t *coll = mongoc_database_get_collection(d->db, c->lock_collection);
	struct holder h;
	bson_error_t err;
	int64_t now;
	int rc = 0;
	if (!db_server_time(d, &now, &err) || !read_holder(coll, &h, &err)) {
		rc = lock_error("cannot read the lock", &err);
	} else if (!h.found) {
		log_info("no lock is held", F_STR("collection", c->lock_collection));
	} else if (!force && expired_for(&h, c, now) < 0) {
		log_holder(&h, c, "lock is held and not expired");
		log_error("refusing to remove a live lock: use unlock -force if its holder is "
		          "really gone");
		rc = EXIT_LOCK_TIMEOUT;
	} else if (h.token[0] && (rc = db_revoke_fence(d, h.token))) {
		/* logged; a holder still running could write again */
	} else {
		bson_t filter = BSON_INITIALIZER;
		if (h.has_id)
			BSON_APPEND_OID(&filter, "_id", &h.id);
		BSON_APPEND_INT32(&filter, "locking_key", 0);
		if (!mongoc_collection_delete_one(coll, &filter, NULL, NULL, &err))
			rc = lock_error("cannot remove the lock", &err);
		else
			log_holder(&h, c, force ? "lock removed by force" : "expired lock removed");
		bson_destroy(&filter);
	}
	mongoc_collection_destroy(coll);
	return rc;
}

enum lock_seen lock_probe(struct db *d, const struct config *c)
{
	if (!c->advisory_locking)
		return LOCK_NONE;
	mongoc_collection_t *coll = mongoc_database_get_collection(d->db, c->lock_collection);
	struct holder h;
	bson_error_t err;
	int64_t now;
	enum lock_seen seen = LOCK_UNKNOWN;
	/* The server's clock is asked only when there is a lock to judge. */
	if (read_holder(coll, &h, &err)) {
		if (!h.found)
			seen = LOCK_NONE;
		else if (db_server_time(d, &now, &err))
			seen = expired_for(&h, c, now) < 0 ? LOCK_LIVE : LOCK_EXPIRED;
	}
	mongoc_collection_destroy(coll);
	return seen;
}
