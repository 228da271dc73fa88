#include "backup.h"

#include "exitcode.h"
#include "fault.h"
#include "history.h"
#include "log.h"
#include "migration.h"
#include "progress.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* A copy reads documents CURSOR_BATCH at a time and sends them in batches
 * of at most BATCH_DOCS documents or BATCH_BYTES, so memory stays flat and
 * small whatever the collection's size (libmongoc holds a reply and a
 * batch, and the batch once more as the message it sends). */
#define CURSOR_BATCH 128
#define BATCH_DOCS 1000
#define BATCH_BYTES (2 * 1024 * 1024)
#define BAK_INFIX "__bak_"

/* ------------------------------------------------------------------ names */

typedef void (*name_fn)(void *arg, const char *collection);

/* $out: "coll" or {db, coll}; $merge: "coll" or {into: "coll" | {db, coll}};
 * $lookup: {from: "coll"}. Any depth: pipelines nest ($lookup, $facet). */
static void scan(bson_iter_t *it, name_fn fn, void *arg)
{
	while (bson_iter_next(it)) {
		const char *key = bson_iter_key(it);
		bson_iter_t sub;
		if (BSON_ITER_HOLDS_UTF8(it) &&
		    (strcmp(key, "$out") == 0 || strcmp(key, "$merge") == 0)) {
			fn(arg, bson_iter_utf8(it, NULL));
			continue;
		}
		if (!BSON_ITER_HOLDS_DOCUMENT(it) && !BSON_ITER_HOLDS_ARRAY(it))
			continue;
		bool stage = strcmp(key, "$out") == 0 || strcmp(key, "$merge") == 0 ||
		             strcmp(key, "$lookup") == 0;
		if (stage && BSON_ITER_HOLDS_DOCUMENT(it) && bson_iter_recurse(it, &sub)) {
			bson_iter_t f;
			const char *field = strcmp(key, "$lookup") == 0  ? "from"
			                    : strcmp(key, "$merge") == 0 ? "into"
			                                                 : "coll";
			if (bson_iter_find(&sub, field) && BSON_ITER_HOLDS_UTF8(&sub))
				fn(arg, bson_iter_utf8(&sub, NULL));
			else if (bson_iter_recurse(it, &sub) && bson_iter_find(&sub, "into") &&
			         BSON_ITER_HOLDS_DOCUMENT(&sub) && bson_iter_recurse(&sub, &f) &&
			         bson_iter_find(&f, "coll") && BSON_ITER_HOLDS_UTF8(&f))
				fn(arg, bson_iter_utf8(&f, NULL));
		}
		if (bson_iter_recurse(it, &sub))
			scan(&sub, fn, arg);
	}
}

/* "db.coll" to "coll" when db is ours; NULL for another database's. */
static const char *in_db(const char *ns, const char *db)
{
	size_t n = strlen(db);
	return strncmp(ns, db, n) == 0 && ns[n] == '.' ? ns + n + 1 : NULL;
}

void backup_named(const bson_t *cmd, const char *db, name_fn fn, void *arg)
{
	bson_iter_t it;
	if (!bson_iter_init(&it, cmd) || !bson_iter_next(&it))
		return;
	if (strcmp(bson_iter_key(&it), "renameCollection") == 0) {
		const char *from =
		    BSON_ITER_HOLDS_UTF8(&it) ? in_db(bson_iter_utf8(&it, NULL), db) : NULL;
		if (from)
			fn(arg, from);
		if (bson_iter_find(&it, "to") && BSON_ITER_HOLDS_UTF8(&it) &&
		    (from = in_db(bson_iter_utf8(&it, NULL), db)))
			fn(arg, from);
		return;
	}
	if (BSON_ITER_HOLDS_UTF8(&it))
		fn(arg, bson_iter_utf8(&it, NULL));
	bson_iter_init(&it, cmd);
	scan(&it, fn, arg);
}

struct names {
	const struct config *c;
	char **v;
	size_t n;
};

/* Ours and the server's are never backed up, nor earlier backups. */
static bool skipped(const struct config *c, const char *name)
{
	return !*name || strncmp(name, "system.", 7) == 0 || strstr(name, BAK_INFIX) ||
	       strcmp(name, c->db.migrations_collection) == 0 ||
	       strcmp(name, c->lock_collection) == 0 || strcmp(name, c->history_collection) == 0 ||
	       (strncmp(name, c->db.migrations_collection, strlen(c->db.migrations_collection)) ==
	            0 &&
	        strcmp(name + strlen(c->db.migrations_collection), "_backups") == 0);
}

static void add_name(void *arg, const char *name)
{
	struct names *ns = arg;
	if (skipped(ns->c, name))
		return;
	for (size_t i = 0; i < ns->n; i++)
		if (strcmp(ns->v[i], name) == 0)
			return;
	ns->v = bson_realloc(ns->v, (ns->n + 1) * sizeof *ns->v);
	ns->v[ns->n++] = bson_strdup(name);
}

static void free_names(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		bson_free(ns->v[i]);
	bson_free(ns->v);
}

/* ------------------------------------------------------------ the database */

static mongoc_collection_t *records(struct db *d, const struct config *c)
{
	char name[256];
	snprintf(name, sizeof name, "%s_backups", c->db.migrations_collection);
	return mongoc_database_get_collection(d->db, name);
}

/* A server's refusal is exit 1 (nothing was run; a restore cut short
 * leaves the state dirty for the next run to refuse), a lost connection
 * 4, as anywhere else. */
static int failed(const char *what, const char *collection, const bson_error_t *err)
{
	log_error(what, F_STR("collection", collection), F_STR("error", err->message));
	return db_error_exit(err);
}

/* Whether collection exists; *options gets its creation options. */
static bool find_collection(struct db *d, const char *name, bson_t *options, bson_error_t *err)
{
	bson_t opts = BSON_INITIALIZER, filter;
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
	BSON_APPEND_UTF8(&filter, "name", name);
	bson_append_document_end(&opts, &filter);
	mongoc_cursor_t *cur = mongoc_database_find_collections_with_opts(d->db, &opts);
	const bson_t *doc;
	bool found = false;
	bson_init(options);
	if (cur && mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		found = true;
		if (bson_iter_init_find(&it, doc, "options") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
			uint32_t len;
			const uint8_t *data;
			bson_t view;
			bson_iter_document(&it, &len, &data);
			if (bson_init_static(&view, data, len)) {
				bson_destroy(options);
				bson_copy_to(&view, options);
			}
		}
	}
	if (cur && mongoc_cursor_error(cur, err))
		found = false;
	if (cur)
		mongoc_cursor_destroy(cur);
	bson_destroy(&opts);
	return found;
}

static int64_t collection_bytes(struct db *d, const char *name)
{
	bson_t cmd = BSON_INITIALIZER, reply;
	bson_error_t err;
	BSON_APPEND_UTF8(&cmd, "collStats", name);
	int64_t size = -1;
	bson_iter_t it;
	if (mongoc_database_command_simple(d->db, &cmd, NULL, &reply, &err) &&
	    bson_iter_init_find(&it, &reply, "size") && BSON_ITER_HOLDS_NUMBER(&it))
		size = bson_iter_as_int64(&it);
	bson_destroy(&reply);
	bson_destroy(&cmd);
	return size;
}

/* The documents of one batch, sent. */
static bool flush(mongoc_bulk_operation_t **bulk, mongoc_collection_t *to, size_t *n, size_t *bytes,
                  bson_error_t *err)
{
	bool ok = true;
	if (*n) {
		bson_t reply;
		ok = mongoc_bulk_operation_execute(*bulk, &reply, err) != 0;
		bson_destroy(&reply);
	}
	mongoc_bulk_operation_destroy(*bulk);
	*bulk = mongoc_collection_create_bulk_operation_with_opts(to, NULL);
	*n = *bytes = 0;
	return ok;
}

/* from -> to (which must not exist): options, indexes, documents. */
static int copy_collection(struct db *d, struct lock *l, const char *from, const char *to,
                           int64_t *docs)
{
	bson_error_t err = {0};
	bson_t options;
	*docs = 0;
	if (!find_collection(d, from, &options, &err)) {
		bson_destroy(&options);
		if (!err.message[0])
			bson_set_error(&err, 0, 0, "the collection does not exist");
		return failed("cannot read the collection to copy", from, &err);
	}
	bson_t cmd = BSON_INITIALIZER;
	BSON_APPEND_UTF8(&cmd, "create", to);
	bson_concat(&cmd, &options);
	bson_destroy(&options);
	bool ok = db_run_command(d, &cmd, NULL, &err);
	bson_destroy(&cmd);
	if (!ok)
		return failed("cannot create the copy", to, &err);

	mongoc_collection_t *src = mongoc_database_get_collection(d->db, from);
	mongoc_collection_t *dst = mongoc_database_get_collection(d->db, to);
	/* Indexes, but _id's (every collection has it). */
	mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(src, NULL);
	const bson_t *doc;
	bson_t create = BSON_INITIALIZER, list;
	BSON_APPEND_UTF8(&create, "createIndexes", to);
	BSON_APPEND_ARRAY_BEGIN(&create, "indexes", &list);
	int nidx = 0;
	while (mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it;
		if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
		    strcmp(bson_iter_utf8(&it, NULL), "_id_") == 0)
			continue;
		char key[16];
		const char *k;
		bson_uint32_to_string((uint32_t)nidx++, &k, key, sizeof key);
		bson_t spec;
		BSON_APPEND_DOCUMENT_BEGIN(&list, k, &spec);
		bson_copy_to_excluding_noinit(doc, &spec, "v", "ns", NULL);
		bson_append_document_end(&list, &spec);
	}
	bson_append_array_end(&create, &list);
	ok = !mongoc_cursor_error(cur, &err);
	mongoc_cursor_destroy(cur);
	if (ok && nidx > 0)
		ok = db_run_command(d, &create, NULL, &err);
	bson_destroy(&create);
	int rc = ok ? 0 : failed("cannot copy the indexes", from, &err);

	/* The documents, in _id order, batch by batch. */
	bson_t opts = BSON_INITIALIZER, filter = BSON_INITIALIZER;
	BSON_APPEND_INT32(&opts, "batchSize", CURSOR_BATCH);
	mongoc_bulk_operation_t *bulk =
	    mongoc_collection_create_bulk_operation_with_opts(dst, NULL);
	size_t n = 0, bytes = 0;
	cur = rc ? NULL : mongoc_collection_find_with_opts(src, &filter, &opts, NULL);
	while (cur && rc == 0 && mongoc_cursor_next(cur, &doc)) {
		mongoc_bulk_operation_insert(bulk, doc);
		n++;
		bytes += doc->len;
		(*docs)++;
		if ((n >= BATCH_DOCS || bytes >= BATCH_BYTES) &&
		    ((rc = lock_check(l)) || !flush(&bulk, dst, &n, &bytes, &err)))
			rc = rc ? rc : failed("cannot write the copy", to, &err);
		FAULT("backup_batch");
	}
	if (cur && rc == 0 && mongoc_cursor_error(cur, &err))
		rc = failed("cannot read the collection to copy", from, &err);
	if (rc == 0 && ((rc = lock_check(l)) || !flush(&bulk, dst, &n, &bytes, &err)))
		rc = rc ? rc : failed("cannot write the copy", to, &err);
	if (cur)
		mongoc_cursor_destroy(cur);
	mongoc_bulk_operation_destroy(bulk);
	bson_destroy(&opts);
	bson_destroy(&filter);
	mongoc_collection_destroy(src);
	mongoc_collection_destroy(dst);
	return rc;
}

static bool drop_collection(struct db *d, const char *name, bson_error_t *err)
{
	mongoc_collection_t *coll = mongoc_database_get_collection(d->db, name);
	bool ok = mongoc_collection_drop(coll, err);
	mongoc_collection_destroy(coll);
	/* 26: NamespaceNotFound: gone already is what we wanted. */
	return ok || err->code == 26 || strstr(err->message, "ns not found");
}

static void history_note(struct db *d, const struct config *c, uint64_t version,
                         const char *outcome, const char *name)
{
	int64_t now = wall_ms();
	struct history_rec h = {.version = version,
	                        .name = name,
	                        .direction = "-",
	                        .started_at = now,
	                        .finished_at = now,
	                        .outcome = outcome};
	history_write(d, c, &h);
}

/* -------------------------------------------------------------- the backup */

static void name_command(const bson_t *cmd, uint32_t index, void *arg)
{
	struct names *ns = arg;
	(void)index;
	backup_named(cmd, ns->c->db.name, add_name, ns);
}

int backup_take(struct db *d, struct lock *l, const struct config *c, const struct plan *p,
                int64_t at_version)
{
	if (c->backup != BACKUP_TOUCHED || p->n == 0)
		return 0;
	struct names ns = {.c = c};
	for (size_t i = 0; i < p->n; i++) {
		const struct mfile *f = p->steps[i].m->file[p->steps[i].dir];
		if (f)
			migration_each_command(f->body, name_command, &ns);
	}
	/* Only what exists has anything to save; what does not is recorded
	 * too: restore drops it (it did not exist before V). */
	bson_string_t *list = bson_string_new(NULL);
	struct names absent = {.c = c};
	int64_t total = 0;
	size_t keep = 0;
	for (size_t i = 0; i < ns.n; i++) {
		bson_t options;
		bson_error_t err;
		bool exists = find_collection(d, ns.v[i], &options, &err);
		bson_destroy(&options);
		if (!exists) {
			add_name(&absent, ns.v[i]);
			bson_free(ns.v[i]);
			continue;
		}
		int64_t size = collection_bytes(d, ns.v[i]);
		total += size > 0 ? size : 0;
		bson_string_append_printf(list, "%s%s (%" PRId64 " bytes)", keep ? ", " : "",
		                          ns.v[i], size);
		ns.v[keep++] = ns.v[i];
	}
	ns.n = keep;
	int rc = 0;
	if (ns.n == 0) {
		log_info("backup: no collection the pending migrations name exists yet; nothing to "
		         "save");
	} else if (total > c->backup_max_bytes) {
		log_error("backup: the collections the pending migrations name are larger than "
		          "BACKUP_MAX_BYTES; nothing was run (raise it, or migrate without "
		          "BACKUP)",
		          F_INT("bytes", total), F_INT("max_bytes", c->backup_max_bytes),
		          F_STR("collections", list->str));
		rc = EXIT_USAGE;
	}
	bson_string_free(list, true);
	if (rc || ns.n == 0) {
		free_names(&ns);
		free_names(&absent);
		return rc;
	}

	uint64_t version = p->steps[0].version;
	char stamp[32], id[64];
	time_t t = (time_t)(wall_ms() / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
	snprintf(id, sizeof id, "%" PRIu64 "_%s", version, stamp);

	bson_t rec = BSON_INITIALIZER, arr;
	BSON_APPEND_UTF8(&rec, "_id", id);
	BSON_APPEND_INT64(&rec, "version", (int64_t)version);
	BSON_APPEND_INT64(&rec, "at_version", at_version);
	BSON_APPEND_DATE_TIME(&rec, "taken_at", wall_ms());
	BSON_APPEND_UTF8(&rec, "owner", c->owner);
	BSON_APPEND_BOOL(&rec, "complete", false);
	BSON_APPEND_ARRAY_BEGIN(&rec, "collections", &arr);
	for (size_t i = 0; i < ns.n; i++) {
		char key[16], bak[256];
		const char *k;
		bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
		snprintf(bak, sizeof bak, "%s" BAK_INFIX "%s", ns.v[i], id);
		bson_t e;
		BSON_APPEND_DOCUMENT_BEGIN(&arr, k, &e);
		BSON_APPEND_UTF8(&e, "name", ns.v[i]);
		BSON_APPEND_UTF8(&e, "backup", bak);
		bson_append_document_end(&arr, &e);
	}
	bson_append_array_end(&rec, &arr);
	BSON_APPEND_ARRAY_BEGIN(&rec, "absent", &arr);
	for (size_t i = 0; i < absent.n; i++) {
		char key[16];
		const char *k;
		bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
		BSON_APPEND_UTF8(&arr, k, absent.v[i]);
	}
	bson_append_array_end(&rec, &arr);
	free_names(&absent);
	mongoc_collection_t *coll = records(d, c);
	bson_error_t err;
	if ((rc = lock_check(l)) == 0 &&
	    !mongoc_collection_insert_one(coll, &rec, NULL, NULL, &err))
		rc = failed("backup: cannot record the backup", id, &err);
	bson_destroy(&rec);
	int64_t docs_total = 0;
	for (size_t i = 0; i < ns.n && rc == 0; i++) {
		char bak[256];
		int64_t docs = 0;
		snprintf(bak, sizeof bak, "%s" BAK_INFIX "%s", ns.v[i], id);
		if ((rc = lock_check(l)) == 0 &&
		    (rc = copy_collection(d, l, ns.v[i], bak, &docs)) == 0)
			log_info("backup: collection saved", F_STR("collection", ns.v[i]),
			         F_STR("backup", bak), F_INT("documents", docs));
		docs_total += docs;
	}
	if (rc == 0) {
		bson_t q = BSON_INITIALIZER, u = BSON_INITIALIZER, set;
		BSON_APPEND_UTF8(&q, "_id", id);
		BSON_APPEND_DOCUMENT_BEGIN(&u, "$set", &set);
		BSON_APPEND_BOOL(&set, "complete", true);
		BSON_APPEND_INT64(&set, "documents", docs_total);
		bson_append_document_end(&u, &set);
		if ((rc = lock_check(l)) == 0 &&
		    !mongoc_collection_update_one(coll, &q, &u, NULL, NULL, &err))
			rc = failed("backup: cannot record the backup", id, &err);
		bson_destroy(&q);
		bson_destroy(&u);
	}
	mongoc_collection_destroy(coll);
	if (rc == 0) {
		history_note(d, c, version, "backup", id);
		log_info("backup taken before the first migration", F_STR("backup", id),
		         F_INT("version", version), F_INT("at_version", at_version),
		         F_INT("collections", (int64_t)ns.n), F_INT("documents", docs_total));
	} else {
		log_error("backup failed: nothing was run", F_STR("backup", id));
	}
	free_names(&ns);
	return rc;
}

/* ------------------------------------------------------------- the restore */

int backup_restore(struct db *d, struct lock *l, const struct config *c, uint64_t version,
                   int64_t *to)
{
	mongoc_collection_t *coll = records(d, c);
	bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
	BSON_APPEND_INT64(&filter, "version", (int64_t)version);
	BSON_APPEND_BOOL(&filter, "complete", true);
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
	BSON_APPEND_INT32(&sort, "taken_at", -1);
	bson_append_document_end(&opts, &sort);
	BSON_APPEND_INT32(&opts, "limit", 1);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
	const bson_t *found;
	bson_t *rec = mongoc_cursor_next(cur, &found) ? bson_copy(found) : NULL;
	bson_error_t err;
	int rc = mongoc_cursor_error(cur, &err) ? failed("cannot read the backups", "", &err) : 0;
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	bson_destroy(&opts);
	mongoc_collection_destroy(coll);
	if (rc == 0 && !rec) {
		log_error("no complete backup was taken before this version ran",
		          F_INT("version", version),
		          F_STR("hint", "migrate-init backups lists them"));
		rc = EXIT_USAGE;
	}
	if (rc) {
		if (rec)
			bson_destroy(rec);
		return rc;
	}
	bson_iter_t it, arr;
	const char *id = bson_iter_init_find(&it, rec, "_id") ? bson_iter_utf8(&it, NULL) : "";
	*to = bson_iter_init_find(&it, rec, "at_version") ? bson_iter_as_int64(&it) : -1;
	/* Dirty while the copies run: a crash half way is refused, not taken
	 * for a restored database. */
	if ((rc = lock_check(l)) || (rc = db_set_version(d, *to, true))) {
		bson_destroy(rec);
		return rc;
	}
	progress_state(*to, true);
	if (bson_iter_init_find(&it, rec, "collections") && bson_iter_recurse(&it, &arr)) {
		while (rc == 0 && bson_iter_next(&arr)) {
			bson_iter_t e, f;
			if (!bson_iter_recurse(&arr, &e))
				continue;
			const char *name =
			    bson_iter_find(&e, "name") ? bson_iter_utf8(&e, NULL) : NULL;
			const char *bak =
			    bson_iter_recurse(&arr, &f) && bson_iter_find(&f, "backup")
			        ? bson_iter_utf8(&f, NULL)
			        : NULL;
			int64_t docs;
			if (!name || !bak)
				continue;
			if ((rc = lock_check(l)))
				break;
			if (!drop_collection(d, name, &err)) {
				rc = failed("restore: cannot drop the collection", name, &err);
				break;
			}
			FAULT("restore_copy");
			if ((rc = copy_collection(d, l, bak, name, &docs)) == 0)
				log_info("restore: collection put back", F_STR("collection", name),
				         F_STR("backup", bak), F_INT("documents", docs));
		}
	}
	/* What the migrations created did not exist before them. */
	if (rc == 0 && bson_iter_init_find(&it, rec, "absent") && bson_iter_recurse(&it, &arr))
		while (rc == 0 && bson_iter_next(&arr))
			if (BSON_ITER_HOLDS_UTF8(&arr) && (rc = lock_check(l)) == 0 &&
			    !drop_collection(d, bson_iter_utf8(&arr, NULL), &err))
				rc = failed(
				    "restore: cannot drop a collection created after the backup",
				    bson_iter_utf8(&arr, NULL), &err);
	if (rc == 0 && (rc = lock_check(l)) == 0 && (rc = db_set_version(d, *to, false)) == 0) {
		progress_state(*to, false);
		history_note(d, c, version, "restored", id);
		log_info("restored", F_STR("backup", id), F_INT("version", *to));
	}
	bson_destroy(rec);
	return rc;
}

/* ---------------------------------------------------------------- the list */

int backup_list(struct db *d, const struct config *c, int64_t keep)
{
	mongoc_collection_t *coll = records(d, c);
	bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
	BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
	BSON_APPEND_INT32(&sort, "taken_at", -1);
	bson_append_document_end(&opts, &sort);
	mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
	const bson_t *doc;
	int64_t i = 0;
	int rc = 0;
	bson_error_t err;
	while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
		bson_iter_t it, arr;
		const char *id = bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it)
		                     ? bson_iter_utf8(&it, NULL)
		                     : "?";
		int64_t v = bson_iter_init_find(&it, doc, "version") ? bson_iter_as_int64(&it) : -1;
		int64_t at =
		    bson_iter_init_find(&it, doc, "at_version") ? bson_iter_as_int64(&it) : -1;
		bool complete = bson_iter_init_find(&it, doc, "complete") && bson_iter_as_bool(&it);
		bool drop = keep >= 0 && i++ >= keep;
		char *safe = log_escape_controls(id);
		printf("%s%s  before version %" PRId64 ", taken at version %" PRId64 "%s:",
		       drop ? "pruned " : "", safe, v, at, complete ? "" : " (incomplete)");
		bson_free(safe);
		if (bson_iter_init_find(&it, doc, "collections") && bson_iter_recurse(&it, &arr))
			while (bson_iter_next(&arr)) {
				bson_iter_t e;
				if (bson_iter_recurse(&arr, &e) && bson_iter_find(&e, "name") &&
				    BSON_ITER_HOLDS_UTF8(&e)) {
					char *n = log_escape_controls(bson_iter_utf8(&e, NULL));
					printf(" %s", n);
					bson_free(n);
				}
				if (drop && bson_iter_recurse(&arr, &e) &&
				    bson_iter_find(&e, "backup") && BSON_ITER_HOLDS_UTF8(&e) &&
				    !drop_collection(d, bson_iter_utf8(&e, NULL), &err))
					rc = failed("cannot drop a backup",
					            bson_iter_utf8(&e, NULL), &err);
			}
		printf("\n");
		if (drop && rc == 0) {
			bson_t q = BSON_INITIALIZER;
			BSON_APPEND_UTF8(&q, "_id", id);
			if (!mongoc_collection_delete_one(coll, &q, NULL, NULL, &err))
				rc = failed("cannot delete a backup's record", id, &err);
			bson_destroy(&q);
		}
	}
	if (rc == 0 && mongoc_cursor_error(cur, &err))
		rc = failed("cannot read the backups", "", &err);
	fflush(stdout);
	mongoc_cursor_destroy(cur);
	bson_destroy(&filter);
	bson_destroy(&opts);
	mongoc_collection_destroy(coll);
	return rc;
}
