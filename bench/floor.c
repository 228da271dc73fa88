/*
 * bench/floor.c: the floors for `make bench`. The least any tool can do to
 * apply a directory of golang-migrate MongoDB migrations: connect once, read
 * every NNN_name.up.json in version order, parse its body (a JSON array of
 * command documents) and run each command with runCommand against the URL's
 * database. No state document, no lock, no history, no logging.
 *
 * With -compat, the least a golang-migrate-compatible runner can do: the
 * same, with the migration state golang-migrate reads (schema_migrations,
 * one {version, dirty} document) marked dirty before each body and clean
 * after it, so that a crash in between leaves it dirty. Each mark is one
 * update with upsert of the state document, the shape of migrate-init's
 * version write (src/db.c db_set_version: {_id: "migrate-init"}, $set of
 * version (int32 when it fits) and dirty) without its lock token in the
 * filter, since there is no lock to fence to.
 *
 *   floor [-compat] URL DIR      exit 0 when every command succeeded
 *
 * Built by bench/bench.py with `cc bench/floor.c $(pkg-config --cflags --libs
 * libmongoc-1.0)`; not part of migrate-init.
 */
#include <mongoc/mongoc.h>

#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct up {
	uint64_t version;
	char *path;
};

static int by_version(const void *a, const void *b)
{
	const struct up *x = a, *y = b;
	return x->version < y->version ? -1 : x->version > y->version;
}

/* NNN_name.up.json -> NNN; 0 when the name is not an up migration. */
static int parse_name(const char *name, uint64_t *version)
{
	char *end;
	size_t n = strlen(name);
	if (n < 9 || strcmp(name + n - 8, ".up.json") != 0 || name[0] < '0' || name[0] > '9')
		return 0;
	*version = strtoull(name, &end, 10);
	return *end == '_';
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t r;
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	fclose(f);
	*len = n;
	return buf;
}

/* The dirty or clean mark of -compat; false after printing why. */
static bool set_version(mongoc_collection_t *state, uint64_t version, bool dirty)
{
	bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, opts = BSON_INITIALIZER, set,
	       reply;
	bson_error_t err;
	BSON_APPEND_UTF8(&filter, "_id", "migrate-init");
	BSON_APPEND_BOOL(&opts, "upsert", true);
	BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
	if (version <= INT32_MAX)
		BSON_APPEND_INT32(&set, "version", (int32_t)version);
	else
		BSON_APPEND_INT64(&set, "version", (int64_t)version);
	BSON_APPEND_BOOL(&set, "dirty", dirty);
	bson_append_document_end(&update, &set);
	bool ok = mongoc_collection_update_one(state, &filter, &update, &opts, &reply, &err);
	if (!ok)
		fprintf(stderr, "floor: version %" PRIu64 ": %s\n", version, err.message);
	bson_destroy(&reply);
	bson_destroy(&filter);
	bson_destroy(&update);
	bson_destroy(&opts);
	return ok;
}

int main(int argc, char **argv)
{
	bool compat = argc > 1 && strcmp(argv[1], "-compat") == 0;
	if (compat) {
		argv++;
		argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: floor [-compat] URL DIR\n");
		return 2;
	}
	DIR *d = opendir(argv[2]);
	if (!d) {
		perror(argv[2]);
		return 2;
	}
	struct up *ups = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		uint64_t v;
		if (!parse_name(e->d_name, &v))
			continue;
		if (n == cap)
			ups = realloc(ups, (cap = cap ? cap * 2 : 64) * sizeof *ups);
		ups[n].version = v;
		ups[n].path = malloc(strlen(argv[2]) + strlen(e->d_name) + 2);
		sprintf(ups[n].path, "%s/%s", argv[2], e->d_name);
		n++;
	}
	closedir(d);
	qsort(ups, n, sizeof *ups, by_version);

	mongoc_init();
	/* Quiet: FerretDB refuses the endSessions libmongoc sends at the end. */
	mongoc_log_set_handler(NULL, NULL);
	bson_error_t err;
	mongoc_uri_t *uri = mongoc_uri_new_with_error(argv[1], &err);
	if (!uri) {
		fprintf(stderr, "floor: %s\n", err.message);
		return 2;
	}
	mongoc_client_t *client = mongoc_client_new_from_uri(uri);
	mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
	const char *dbname = mongoc_uri_get_database(uri);
	mongoc_database_t *db = mongoc_client_get_database(client, dbname ? dbname : "test");
	mongoc_collection_t *state = mongoc_database_get_collection(db, "schema_migrations");
	int rc = 0;
	size_t commands = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		size_t len;
		char *text = read_file(ups[i].path, &len);
		if (!text) {
			fprintf(stderr, "floor: %s: unreadable\n", ups[i].path);
			rc = 3;
			break;
		}
		bson_t *body = bson_new_from_json((const uint8_t *)text, (ssize_t)len, &err);
		free(text);
		if (!body) {
			fprintf(stderr, "floor: %s: %s\n", ups[i].path, err.message);
			rc = 3;
			break;
		}
		if (compat && !set_version(state, ups[i].version, true))
			rc = 7;
		bson_iter_t it;
		bson_iter_init(&it, body);
		while (rc == 0 && bson_iter_next(&it)) {
			uint32_t dlen;
			const uint8_t *data;
			bson_t cmd, reply;
			if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
				rc = 3;
				break;
			}
			bson_iter_document(&it, &dlen, &data);
			bson_init_static(&cmd, data, dlen);
			if (!mongoc_database_command_with_opts(db, &cmd, NULL, NULL, &reply, &err)) {
				fprintf(stderr, "floor: %s: %s\n", ups[i].path, err.message);
				rc = 7;
			} else {
				bson_iter_t w;
				if (bson_iter_init_find(&w, &reply, "writeErrors")) {
					fprintf(stderr, "floor: %s: write error\n", ups[i].path);
					rc = 7;
				}
			}
			bson_destroy(&reply);
			commands++;
		}
		bson_destroy(body);
		if (rc == 0 && compat && !set_version(state, ups[i].version, false))
			rc = 7;
	}
	for (size_t i = 0; i < n; i++)
		free(ups[i].path);
	free(ups);
	mongoc_collection_destroy(state);
	mongoc_database_destroy(db);
	mongoc_client_destroy(client);
	mongoc_uri_destroy(uri);
	mongoc_cleanup();
	if (rc == 0)
		fprintf(stderr, "floor: %zu migrations, %zu commands\n", n, commands);
	return rc;
}
