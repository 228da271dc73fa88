#include "db.h"

#include "exitcode.h"
#include "log.h"
#include "url.h"

#include <string.h>

static void forget_state(struct db *d);

int db_open(struct db *d, const struct db_options *o, int32_t reply_timeout_ms)
{
	memset(d, 0, sizeof *d);
	d->opt = o;
	bson_error_t err;
	mongoc_uri_t *uri = mongoc_uri_new_with_error(o->uri, &err);
	if (!uri) {
		char *text = url_error_text(err.message);
		log_error("invalid database URL", F_STR("error", text));
		bson_free(text);
		return EXIT_USAGE;
	}
	if (!mongoc_uri_get_appname(uri))
		mongoc_uri_set_appname(uri, "migrate-init");
	if (o->connect_timeout_ms > 0 && !mongoc_uri_has_option(uri, MONGOC_URI_CONNECTTIMEOUTMS))
		mongoc_uri_set_option_as_int32(
		    uri, MONGOC_URI_CONNECTTIMEOUTMS,
		    (int32_t)(o->connect_timeout_ms < 100 ? 100 : o->connect_timeout_ms));
	if (reply_timeout_ms > 0 && mongoc_uri_get_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS,
	                                                           INT32_MAX) > reply_timeout_ms)
		mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, reply_timeout_ms);
	d->client = mongoc_client_new_from_uri_with_error(uri, &err);
	mongoc_uri_destroy(uri);
	if (!d->client && err.domain == MONGOC_ERROR_STREAM) {
		/* The SRV lookup of a mongodb+srv URL failed: libmongoc reports
		 * it as a stream error (name resolution), as it does a host name
		 * that does not resolve in mongodb://. Both mean the same. */
		d->open_err = err;
		return EXIT_UNREACHABLE;
	}
	if (!d->client) {
		log_error("cannot create database client", F_STR("error", err.message));
		return EXIT_USAGE;
	}
	mongoc_client_set_error_api(d->client, MONGOC_ERROR_API_VERSION_2);
	d->db = mongoc_client_get_database(d->client, o->name);
	d->state = mongoc_database_get_collection(d->db, o->migrations_collection);
	return 0;
}

void db_close(struct db *d)
{
	forget_state(d);
	if (d->state)
		mongoc_collection_destroy(d->state);
	if (d->db)
		mongoc_database_destroy(d->db);
	if (d->client)
		mongoc_client_destroy(d->client);
	memset(d, 0, sizeof *d);
}

bool db_ping(struct db *d, bson_error_t *err)
{
	bson_t cmd = BSON_INITIALIZER;
	BSON_APPEND_INT32(&cmd, "ping", 1);
	bool ok = mongoc_client_command_simple(d->client, "admin", &cmd, NULL, NULL, err);
	bson_destroy(&cmd);
	return ok;
}

bool db_server_time(struct db *d, int64_t *ms, bson_error_t *err)
{
	bson_t cmd = BSON_INITIALIZER, reply;
	BSON_APPEND_INT32(&cmd, "hello", 1);
	bool ok = mongoc_client_command_simple(d->client, "admin", &cmd, NULL, &reply, err);
	bson_iter_t it;
	if (ok && bson_iter_init_find(&it, &reply, "localTime") && BSON_ITER_HOLDS_DATE_TIME(&it)) {
		*ms = bson_iter_date_time(&it);
	} else if (ok) {
		bson_set_error(err, MONGOC_ERROR_SERVER, 0, "hello reply has no localTime");
		ok = false;
	}
	bson_destroy(&reply);
	bson_destroy(&cmd);
	return ok;
}

static bool has_substr(const char *s, const char *const *needles)
{
	for (; *needles; needles++)
		if (strstr(s, *needles))
			return true;
	return false;
}

static const char *const auth_words[] = {
    "Authentication failed",     "auth failed",   "TLS handshake failed",
    "certificate verify failed", "certificate",   "SSL",
    "Unable to authenticate",    "SCRAM Failure", NULL};

int db_error_exit(const bson_error_t *err)
{
	if (err->domain == MONGOC_ERROR_CLIENT && err->code == MONGOC_ERROR_CLIENT_AUTHENTICATE)
		return EXIT_AUTH;
	if (err->domain == MONGOC_ERROR_SERVER)
		/* AuthenticationFailed, Unauthorized */
		return err->code == 18 || err->code == 13 ? EXIT_AUTH : EXIT_INTERNAL;
	if (has_substr(err->message, auth_words))
		return EXIT_AUTH;
	if (err->domain == MONGOC_ERROR_STREAM || err->domain == MONGOC_ERROR_SERVER_SELECTION)
		return EXIT_UNREACHABLE;
	return EXIT_INTERNAL;
}

#define DUPLICATE_KEY 11000
/* The _id of a state document we create; golang-migrate's own are ObjectIds. */
#define STATE_ID "migrate-init"
#define REVOKE_ATTEMPTS 10

static int state_error(const struct db *d, const char *msg, const bson_error_t *err)
{
	log_error(msg, F_STR("collection", d->opt->migrations_collection),
	          F_STR("error", err->message), F_INT("code", err->code));
	return db_error_exit(err);
}

static void forget_state(struct db *d)
{
	if (d->exists)
		bson_value_destroy(&d->id);
	d->exists = false;
	d->extra = false;
	d->seen_fence[0] = '\0';
}

int db_get_version(struct db *d, int64_t *version, bool *dirty)
{
	bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
	/* Two, to see a second document someone else left (golang-migrate
	 * reads the first and leaves one). */
	BSON_APPEND_INT64(&opts, "limit", 2);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(d->state, &filter, &opts, NULL);
	const bson_t *doc;
	bson_error_t err;
	int rc = 0;
	*version = VERSION_NIL;
	*dirty = false;
	forget_state(d);
	if (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		if (bson_iter_init_find(&it, doc, "_id")) {
			bson_value_copy(bson_iter_value(&it), &d->id);
			d->exists = true;
		}
		if (bson_iter_init_find(&it, doc, STATE_FENCE_FIELD) && BSON_ITER_HOLDS_UTF8(&it))
			snprintf(d->seen_fence, sizeof d->seen_fence, "%s",
			         bson_iter_utf8(&it, NULL));
		if (bson_iter_init_find(&it, doc, "version") &&
		    (BSON_ITER_HOLDS_INT32(&it) || BSON_ITER_HOLDS_INT64(&it) ||
		     BSON_ITER_HOLDS_DOUBLE(&it))) {
			*version = bson_iter_as_int64(&it);
		} else {
			log_error("the migrations collection holds a document without a numeric "
			          "version",
			          F_STR("collection", d->opt->migrations_collection));
			rc = EXIT_INTERNAL;
		}
		if (bson_iter_init_find(&it, doc, "dirty"))
			*dirty = bson_iter_as_bool(&it);
		if (*version < VERSION_NIL) {
			log_error("the migrations collection holds a version below -1",
			          F_INT("version", *version));
			rc = EXIT_INTERNAL;
		}
		d->extra = mongoc_cursor_next(cur, &doc);
	}
	if (rc == 0 && mongoc_cursor_error(cur, &err))
		rc = state_error(d, "cannot read the migration version", &err);
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	bson_destroy(&opts);
	return rc;
}

/* {_id: the document's} as read, or our fixed one for a document to create. */
static void append_state_id(bson_t *filter, const struct db *d)
{
	if (d->exists)
		BSON_APPEND_VALUE(filter, "_id", &d->id);
	else
		BSON_APPEND_UTF8(filter, "_id", STATE_ID);
}

static void append_version(bson_t *doc, int64_t version)
{
	/* golang-migrate stores a Go int: int32 when it fits. */
	if (version >= INT32_MIN && version <= INT32_MAX)
		BSON_APPEND_INT32(doc, "version", (int32_t)version);
	else
		BSON_APPEND_INT64(doc, "version", version);
}

static bool reply_count(const bson_t *reply, const char *field, int64_t want)
{
	bson_iter_t it;
	return bson_iter_init_find(&it, reply, field) && bson_iter_as_int64(&it) == want;
}

/* One claim write: the state as we just read it, fenced to token. false
 * with err set only on an error other than losing a race. */
static bool claim_once(struct db *d, const char *token, bson_error_t *err)
{
	bool ok;
	if (!d->exists) {
		bson_t doc = BSON_INITIALIZER;
		BSON_APPEND_UTF8(&doc, "_id", STATE_ID);
		append_version(&doc, VERSION_NIL);
		BSON_APPEND_BOOL(&doc, "dirty", false);
		BSON_APPEND_UTF8(&doc, STATE_FENCE_FIELD, token);
		ok = mongoc_collection_insert_one(d->state, &doc, NULL, NULL, err);
		bson_destroy(&doc);
		/* Someone created it first: read it again and claim that. */
		return ok || err->code == DUPLICATE_KEY;
	}
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, exists, reply;
	append_state_id(&filter, d);
	if (d->seen_fence[0]) {
		BSON_APPEND_UTF8(&filter, STATE_FENCE_FIELD, d->seen_fence);
	} else {
		BSON_APPEND_DOCUMENT_BEGIN(&filter, STATE_FENCE_FIELD, &exists);
		BSON_APPEND_BOOL(&exists, "$exists", false);
		bson_append_document_end(&filter, &exists);
	}
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	BSON_APPEND_UTF8(&set, STATE_FENCE_FIELD, token);
	bson_append_document_end(&update, &set);
	ok = mongoc_collection_update_one(d->state, &filter, &update, NULL, &reply, err);
	bson_destroy(&reply);
	bson_destroy(&filter);
	bson_destroy(&update);
	return ok;
}

/* More than one state document (written by hand, or by another tool): the
 * first is the state, as golang-migrate reads it, and its next write would
 * leave only one; so do we, now that the state is ours. */
static int remove_extra(struct db *d)
{
	bson_t filter = BSON_INITIALIZER, ne, reply;
	BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &ne);
	BSON_APPEND_VALUE(&ne, "$ne", &d->id);
	bson_append_document_end(&filter, &ne);
	bson_error_t err;
	bool ok = mongoc_collection_delete_many(d->state, &filter, NULL, &reply, &err);
	bson_iter_t it;
	int64_t n =
	    ok && bson_iter_init_find(&it, &reply, "deletedCount") ? bson_iter_as_int64(&it) : 0;
	bson_destroy(&reply);
	bson_destroy(&filter);
	if (!ok)
		return state_error(
		    d, "cannot remove the extra documents of the migrations collection", &err);
	log_warn("the migrations collection held more than one document: kept the first, as "
	         "golang-migrate reads it, and removed the others",
	         F_STR("collection", d->opt->migrations_collection), F_INT("removed", n));
	d->extra = false;
	return 0;
}

int db_claim_state(struct db *d, const char *token, int64_t *version, bool *dirty, bool *claimed)
{
	d->fence[0] = '\0';
	*claimed = false;
	int rc = db_get_version(d, version, dirty);
	if (rc)
		return rc;
	/* Confirmed by a read, not by the claim's reply: a conditional update
	 * racing ours may not be atomic on every server. */
	if (!token || (d->exists && strcmp(d->seen_fence, token) == 0)) {
		snprintf(d->fence, sizeof d->fence, "%s", token ? token : "");
		*claimed = true;
		return d->extra && d->exists ? remove_extra(d) : 0;
	}
	bson_error_t err;
	if (!claim_once(d, token, &err))
		return state_error(d, "cannot claim the migration state for our lock", &err);
	return 0;
}

int db_revoke_fence(struct db *d, const char *token)
{
	for (int attempt = 0; attempt < REVOKE_ATTEMPTS; attempt++) {
		bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
		BSON_APPEND_UTF8(&filter, STATE_FENCE_FIELD, token);
		BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
		BSON_APPEND_UTF8(&set, STATE_FENCE_FIELD, STATE_FENCE_REVOKED);
		bson_append_document_end(&update, &set);
		bson_error_t err;
		bool ok =
		    mongoc_collection_update_many(d->state, &filter, &update, NULL, &reply, &err);
		bson_destroy(&reply);
		bson_destroy(&update);
		if (!ok) {
			bson_destroy(&filter);
			return state_error(
			    d, "cannot revoke the expired holder's claim on the state", &err);
		}
		bson_t opts = BSON_INITIALIZER;
		BSON_APPEND_INT64(&opts, "limit", 1);
		mongoc_cursor_t *cur =
		    mongoc_collection_find_with_opts(d->state, &filter, &opts, NULL);
		const bson_t *doc;
		bool left = mongoc_cursor_next(cur, &doc);
		ok = !mongoc_cursor_error(cur, &err);
		mongoc_cursor_destroy(cur);
		bson_destroy(&opts);
		bson_destroy(&filter);
		if (!ok)
			return state_error(d, "cannot read the migration state", &err);
		if (!left)
			return 0;
	}
	log_error("cannot revoke the expired holder's claim on the state: it keeps writing",
	          F_STR("collection", d->opt->migrations_collection));
	return EXIT_LOCK_LOST;
}

int db_set_version(struct db *d, int64_t version, bool dirty)
{
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, opts = BSON_INITIALIZER, set,
	       reply;
	append_state_id(&filter, d);
	if (d->fence[0])
		BSON_APPEND_UTF8(&filter, STATE_FENCE_FIELD, d->fence);
	else if (!d->exists)
		BSON_APPEND_BOOL(&opts, "upsert", true); /* no lock: nothing to fence */
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	append_version(&set, version);
	BSON_APPEND_BOOL(&set, "dirty", dirty);
	bson_append_document_end(&update, &set);
	bson_error_t err;
	bool ok = mongoc_collection_update_one(d->state, &filter, &update, &opts, &reply, &err);
	bool written = ok && (reply_count(&reply, "matchedCount", 1) ||
	                      reply_count(&reply, "upsertedCount", 1));
	bson_destroy(&reply);
	bson_destroy(&filter);
	bson_destroy(&update);
	bson_destroy(&opts);
	if (!ok)
		return state_error(d, "cannot write the migration version", &err);
	if (!written) {
		log_error("the server refused our version write: the lock was taken over and our "
		          "claim on the state revoked; stopping",
		          F_INT("version", version), F_BOOL("dirty", dirty));
		return EXIT_LOCK_LOST;
	}
	if (!d->exists) {
		bson_value_t id = {.value_type = BSON_TYPE_UTF8};
		id.value.v_utf8.str = (char *)STATE_ID;
		id.value.v_utf8.len = (uint32_t)strlen(STATE_ID);
		bson_value_copy(&id, &d->id);
		d->exists = true;
	}
	return 0;
}

/* Copies the first write error or the write concern error into err. */
static bool reply_failed(const bson_t *reply, bson_error_t *err)
{
	bson_iter_t it, sub;
	const char *which = NULL;
	if (bson_iter_init_find(&it, reply, "writeErrors") && BSON_ITER_HOLDS_ARRAY(&it) &&
	    bson_iter_recurse(&it, &sub) && bson_iter_next(&sub) && BSON_ITER_HOLDS_DOCUMENT(&sub))
		which = "write error";
	else if (bson_iter_init_find(&it, reply, "writeConcernError") &&
	         BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub))
		which = "write concern error";
	else
		return false;
	if (BSON_ITER_HOLDS_DOCUMENT(&sub))
		bson_iter_recurse(&sub, &sub);
	uint32_t code = 0;
	const char *msg = "(no message)";
	while (bson_iter_next(&sub)) {
		if (strcmp(bson_iter_key(&sub), "code") == 0)
			code = (uint32_t)bson_iter_as_int64(&sub);
		else if (strcmp(bson_iter_key(&sub), "errmsg") == 0 && BSON_ITER_HOLDS_UTF8(&sub))
			msg = bson_iter_utf8(&sub, NULL);
	}
	bson_set_error(err, MONGOC_ERROR_SERVER, code, "%s: %s", which, msg);
	return true;
}

bool db_run_command(struct db *d, const bson_t *cmd, mongoc_client_session_t *session,
                    bson_error_t *err)
{
	bson_t opts = BSON_INITIALIZER, reply;
	if (session && !mongoc_client_session_append(session, &opts, err)) {
		bson_destroy(&opts);
		return false;
	}
	bool ok = mongoc_database_command_with_opts(d->db, cmd, NULL, &opts, &reply, err);
	if (ok && reply_failed(&reply, err))
		ok = false;
	bson_destroy(&reply);
	bson_destroy(&opts);
	return ok;
}

int db_check_transactions(struct db *d)
{
	bson_error_t err;
	mongoc_client_session_t *s = mongoc_client_start_session(d->client, NULL, &err);
	bool ok = s != NULL;
	if (ok)
		ok = mongoc_client_session_start_transaction(s, NULL, &err);
	if (ok) {
		bson_t cmd = BSON_INITIALIZER;
		BSON_APPEND_UTF8(&cmd, "find", d->opt->migrations_collection);
		BSON_APPEND_INT32(&cmd, "limit", 1);
		ok = db_run_command(d, &cmd, s, &err);
		bson_destroy(&cmd);
		bson_error_t ignored;
		mongoc_client_session_abort_transaction(s, &ignored);
	}
	if (s)
		mongoc_client_session_destroy(s);
	if (!ok) {
		log_error("x-transaction-mode=true but the server cannot run transactions; nothing "
		          "was applied",
		          F_STR("error", err.message), F_INT("code", err.code));
		int code = db_error_exit(&err);
		return code == EXIT_INTERNAL ? EXIT_USAGE : code;
	}
	return 0;
}

int db_drop(struct db *d)
{
	bson_error_t err;
	if (!mongoc_database_drop_with_opts(d->db, NULL, &err)) {
		log_error("cannot drop the database", F_STR("database", d->opt->name),
		          F_STR("error", err.message), F_INT("code", err.code));
		return db_error_exit(&err);
	}
	return 0;
}
