#include "history.h"

#include "exitcode.h"
#include "log.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Enough to amortise the insert; well under a 16 MiB message. */
#define HISTORY_BATCH_MAX 500

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static bson_t *pending[HISTORY_BATCH_MAX]; /* under mu */
static size_t npending;                    /* under mu */
static int64_t oldest_ms;                  /* under mu: now_ms() of pending[0] */

static bson_t *history_doc(const struct config *c, const struct history_rec *r)
{
	char host[256];
	util_hostname(host, sizeof host);
	bson_t *doc = bson_new();
	if (r->version <= INT64_MAX)
		BSON_APPEND_INT64(doc, "version", (int64_t)r->version);
	BSON_APPEND_UTF8(doc, "name", r->name ? r->name : "");
	BSON_APPEND_UTF8(doc, "direction", r->direction);
	if (r->sha256)
		BSON_APPEND_UTF8(doc, "sha256", r->sha256);
	else
		BSON_APPEND_NULL(doc, "sha256");
	BSON_APPEND_DATE_TIME(doc, "started_at", r->started_at);
	BSON_APPEND_DATE_TIME(doc, "finished_at", r->finished_at);
	BSON_APPEND_INT64(doc, "duration_ms", r->finished_at - r->started_at);
	BSON_APPEND_UTF8(doc, "outcome", r->outcome);
	if (r->error) {
		char *red = log_redact(r->error);
		BSON_APPEND_UTF8(doc, "error", red);
		bson_free(red);
	}
	BSON_APPEND_UTF8(doc, "owner", c->owner);
	BSON_APPEND_UTF8(doc, "host", host);
	BSON_APPEND_UTF8(doc, "tool", "migrate-init");
	BSON_APPEND_UTF8(doc, "tool_version", MI_VERSION);
	return doc;
}

/* Takes the buffer out under mu: whoever takes it sends it, so a record
 * goes out once even when the watchdog and the main thread both flush. */
static size_t take(bson_t **out)
{
	pthread_mutex_lock(&mu);
	size_t n = npending;
	memcpy(out, pending, n * sizeof *out);
	npending = 0;
	pthread_mutex_unlock(&mu);
	return n;
}

static void send_docs(struct db *d, const struct config *c, bson_t **docs, size_t n)
{
	if (n == 0)
		return;
	mongoc_collection_t *coll = mongoc_database_get_collection(d->db, c->history_collection);
	bson_error_t err;
	if (!mongoc_collection_insert_many(coll, (const bson_t **)docs, n, NULL, NULL, &err))
		log_warn("cannot write the history records",
		         F_STR("collection", c->history_collection), F_INT("records", (int64_t)n),
		         F_STR("error", err.message));
	mongoc_collection_destroy(coll);
	for (size_t i = 0; i < n; i++)
		bson_destroy(docs[i]);
}

void history_flush(struct db *d, const struct config *c)
{
	bson_t *docs[HISTORY_BATCH_MAX];
	send_docs(d, c, docs, take(docs));
}

void history_flush_detached(const struct config *c)
{
	bson_t *docs[HISTORY_BATCH_MAX];
	size_t n = take(docs);
	if (n == 0)
		return;
	struct db d;
	if (db_open(&d, &c->db, 0) == 0) {
		send_docs(&d, c, docs, n);
		db_close(&d);
		return;
	}
	log_warn("cannot write the history records on abort", F_INT("records", (int64_t)n));
	for (size_t i = 0; i < n; i++)
		bson_destroy(docs[i]);
}

/* Adds r; true when the buffer is now due. */
static bool add(const struct config *c, const struct history_rec *r)
{
	bson_t *doc = history_doc(c, r);
	int64_t now = now_ms();
	pthread_mutex_lock(&mu);
	if (npending == 0)
		oldest_ms = now;
	pending[npending++] = doc;
	bool due = npending == HISTORY_BATCH_MAX || now - oldest_ms >= c->history_flush_ms;
	pthread_mutex_unlock(&mu);
	return due;
}

void history_record(struct db *d, const struct config *c, const struct history_rec *r)
{
	if (c->history && add(c, r))
		history_flush(d, c);
}

void history_write(struct db *d, const struct config *c, const struct history_rec *r)
{
	if (!c->history)
		return;
	add(c, r);
	history_flush(d, c);
}

static int cmp_version(const void *a, const void *b)
{
	const struct history_applied *x = a, *y = b;
	return x->version < y->version ? -1 : x->version > y->version;
}

const struct history_applied *history_find(const struct history_applied *h, size_t n,
                                           uint64_t version)
{
	struct history_applied key = {.version = version};
	return n ? bsearch(&key, h, n, sizeof *h, cmp_version) : NULL;
}

int history_read(struct db *d, const struct config *c, struct history_applied **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!c->history)
		return 0;
	mongoc_collection_t *coll = mongoc_database_get_collection(d->db, c->history_collection);
	bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
	BSON_APPEND_UTF8(&filter, "outcome", "applied");
	BSON_APPEND_UTF8(&filter, "direction", "up");
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
	BSON_APPEND_INT32(&sort, "finished_at", 1);
	bson_append_document_end(&opts, &sort);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
	const bson_t *doc;
	struct history_applied *h = NULL;
	size_t cnt = 0;
	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		struct history_applied e = {0};
		if (!bson_iter_init_find(&it, doc, "version") || !BSON_ITER_HOLDS_NUMBER(&it))
			continue;
		e.version = (uint64_t)bson_iter_as_int64(&it);
		if (bson_iter_init_find(&it, doc, "finished_at") && BSON_ITER_HOLDS_DATE_TIME(&it))
			e.applied_at = bson_iter_date_time(&it);
		if (bson_iter_init_find(&it, doc, "owner") && BSON_ITER_HOLDS_UTF8(&it))
			snprintf(e.owner, sizeof e.owner, "%s", bson_iter_utf8(&it, NULL));
		if (bson_iter_init_find(&it, doc, "sha256") && BSON_ITER_HOLDS_UTF8(&it))
			snprintf(e.sha256, sizeof e.sha256, "%s", bson_iter_utf8(&it, NULL));
		/* Later records replace earlier ones for the same version. */
		size_t i;
		for (i = 0; i < cnt && h[i].version != e.version; i++)
			;
		if (i == cnt) {
			h = bson_realloc(h, (cnt + 1) * sizeof *h);
			cnt++;
		}
		h[i] = e;
	}
	bson_error_t err;
	int rc = 0;
	if (mongoc_cursor_error(cur, &err)) {
		log_error("cannot read the history", F_STR("collection", c->history_collection),
		          F_STR("error", err.message));
		rc = db_error_exit(&err);
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	bson_destroy(&opts);
	mongoc_collection_destroy(coll);
	if (cnt)
		qsort(h, cnt, sizeof *h, cmp_version);
	*out = h;
	*n = cnt;
	return rc;
}
