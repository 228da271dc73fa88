#include "lock.h"

#include "exitcode.h"
#include "log.h"
#include "stop.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int ensure_index(struct lock *l, const struct config *c)
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
	bool ok = db_run_command(l->d, &cmd, NULL, &err);
	bson_destroy(&cmd);
	if (!ok) {
		log_error("cannot create the lock index", F_STR("collection", c->lock_collection),
		          F_STR("error", err.message), F_INT("code", err.code));
		return db_error_exit(&err);
	}
	return 0;
}

/* Logs who holds the lock, from its document. */
static void log_holder(struct lock *l, const char *msg)
{
	bson_t filter = BSON_INITIALIZER;
	BSON_APPEND_INT32(&filter, "locking_key", 0);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(l->coll, &filter, NULL, NULL);
	const bson_t *doc;
	const char *host = "unknown", *owner = NULL;
	int64_t pid = 0, since = 0;
	if (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		if (bson_iter_init(&it, doc)) {
			while (bson_iter_next(&it)) {
				const char *k = bson_iter_key(&it);
				if (strcmp(k, "hostname") == 0 && BSON_ITER_HOLDS_UTF8(&it))
					host = bson_iter_utf8(&it, NULL);
				else if (strcmp(k, "owner") == 0 && BSON_ITER_HOLDS_UTF8(&it))
					owner = bson_iter_utf8(&it, NULL);
				else if (strcmp(k, "pid") == 0 && BSON_ITER_HOLDS_NUMBER(&it))
					pid = bson_iter_as_int64(&it);
				else if (strcmp(k, "created_at") == 0 &&
				         BSON_ITER_HOLDS_DATE_TIME(&it))
					since = bson_iter_date_time(&it);
			}
		}
	}
	log_info(msg, F_STR("holder", owner ? owner : host), F_STR("holder_host", host),
	         F_INT("holder_pid", pid), F_INT("held_since_unix_ms", since));
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
}

int lock_acquire(struct lock *l, struct db *d, const struct config *c)
{
	memset(l, 0, sizeof *l);
	l->d = d;
	if (!c->advisory_locking)
		return 0;
	l->coll = mongoc_database_get_collection(d->db, c->lock_collection);
	int rc = ensure_index(l, c);
	if (rc)
		return rc;
	random_token(l->token);
	char host[256] = "unknown";
	gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';

	int64_t start = now_ms(), delay = POLL_FIRST_MS;
	bool logged = false;
	for (;;) {
		bson_t doc = BSON_INITIALIZER;
		BSON_APPEND_INT32(&doc, "locking_key", 0);
		BSON_APPEND_INT32(&doc, "pid", (int32_t)getpid());
		BSON_APPEND_UTF8(&doc, "hostname", host);
		BSON_APPEND_DATE_TIME(&doc, "created_at", (int64_t)time(NULL) * 1000);
		BSON_APPEND_UTF8(&doc, "owner", c->owner);
		BSON_APPEND_UTF8(&doc, "token", l->token);
		BSON_APPEND_UTF8(&doc, "tool", "migrate-init");
		bson_error_t err;
		bool ok = mongoc_collection_insert_one(l->coll, &doc, NULL, NULL, &err);
		bson_destroy(&doc);
		if (ok) {
			l->held = true;
			log_debug("lock acquired", F_STR("collection", c->lock_collection),
			          F_INT("waited_ms", now_ms() - start));
			return 0;
		}
		if (err.code != DUPLICATE_KEY) {
			log_error("cannot take the lock", F_STR("error", err.message),
			          F_INT("code", err.code));
			int code = db_error_exit(&err);
			return code == EXIT_INTERNAL ? EXIT_LOCK_TIMEOUT : code;
		}
		if (!logged) {
			log_holder(l, "lock held by another runner; waiting");
			logged = true;
		}
		int64_t elapsed = now_ms() - start;
		if (elapsed >= c->lock_timeout_ms) {
			log_holder(l, "lock still held");
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
}

int lock_release(struct lock *l)
{
	int rc = 0;
	if (l->held) {
		bson_t filter = BSON_INITIALIZER;
		BSON_APPEND_INT32(&filter, "locking_key", 0);
		BSON_APPEND_UTF8(&filter, "token", l->token);
		bson_t reply;
		bson_error_t err;
		if (!mongoc_collection_delete_one(l->coll, &filter, NULL, &reply, &err)) {
			log_error("cannot release the lock", F_STR("error", err.message),
			          F_INT("code", err.code));
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
		l->held = false;
	}
	if (l->coll)
		mongoc_collection_destroy(l->coll);
	l->coll = NULL;
	return rc;
}

void lock_release_detached(const struct config *c, const char *token)
{
	struct db d;
	if (db_open(&d, c) != 0)
		return;
	mongoc_collection_t *coll = mongoc_database_get_collection(d.db, c->lock_collection);
	bson_t filter = BSON_INITIALIZER;
	BSON_APPEND_INT32(&filter, "locking_key", 0);
	BSON_APPEND_UTF8(&filter, "token", token);
	bson_error_t err;
	if (mongoc_collection_delete_one(coll, &filter, NULL, NULL, &err))
		log_warn("lock released by the abort path");
	else
		log_warn("cannot release the lock on abort; it stays until removed",
		         F_STR("error", err.message));
	bson_destroy(&filter);
	mongoc_collection_destroy(coll);
	db_close(&d);
}
