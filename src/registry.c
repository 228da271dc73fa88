#include "registry.h"

#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "migration.h"
#include "stop.h"
#include "url.h"
#include "util.h"
#include "wait.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_MAX_BYTES (1024 * 1024)

static int bad(const char *path, const char *msg, const char *detail)
{
	log_error("invalid migration registry", F_STR("file", path), F_STR("error", msg),
	          F_STR("detail", detail ? detail : ""));
	return EXIT_SOURCE;
}

static bool key_is(const bson_iter_t *it, const char *a, const char *b)
{
	const char *k = bson_iter_key(it);
	return strcmp(k, a) == 0 || (b && strcmp(k, b) == 0);
}

static int get_version(const bson_iter_t *it, uint64_t *out)
{
	if (!BSON_ITER_HOLDS_INT32(it) && !BSON_ITER_HOLDS_INT64(it))
		return -1;
	int64_t v = bson_iter_as_int64(it);
	if (v < 0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

bool registry_database_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n >= 64)
		return false;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || strchr("/\\. \"$*<>:|?", *p))
			return false;
	return true;
}

static int check_database(const char *path, const char *name)
{
	if (!name || registry_database_name_ok(name))
		return 0;
	return bad(path,
	           "not a database name MongoDB accepts (1 to 63 bytes; no space, control "
	           "character or any of /\\.\"$*<>:|?)",
	           name);
}

static int parse_dep(const char *path, bson_iter_t *it, struct reg_dep *d, bool central)
{
	bson_iter_t f;
	bool has_min = false;
	if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &f))
		return bad(path, "a dependency must be a mapping", NULL);
	while (bson_iter_next(&f)) {
		char **dst = NULL;
		if (key_is(&f, "service", NULL))
			dst = &d->service;
		else if (key_is(&f, "database", NULL))
			dst = &d->database;
		else if (key_is(&f, "collection", NULL))
			dst = &d->collection;
		else if (key_is(&f, "url-env", "url_env"))
			dst = &d->url_env;
		else if (key_is(&f, "min-version", "min_version")) {
			if (get_version(&f, &d->min_version) != 0)
				return bad(path, "min-version must be a whole number", NULL);
			has_min = true;
			continue;
		} else
			return bad(path, "unknown key in a dependency", bson_iter_key(&f));
		if (!BSON_ITER_HOLDS_UTF8(&f) || !*bson_iter_utf8(&f, NULL))
			return bad(path, "must be a non-empty string", bson_iter_key(&f));
		bson_free(*dst);
		*dst = bson_strdup(bson_iter_utf8(&f, NULL));
	}
	if (!d->service || !has_min)
		return bad(path, "a dependency needs service and min-version", d->service);
	if (!d->database && !d->url_env && !central)
		return bad(path, "a dependency needs its database (or url-env)", d->service);
	return check_database(path, d->database);
}

static int parse_version(const char *path, bson_iter_t *it, struct reg_version *v, bool central)
{
	bson_iter_t f, deps;
	bool has_version = false;
	if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &f))
		return bad(path, "each entry of migrations must be a mapping", NULL);
	while (bson_iter_next(&f)) {
		if (key_is(&f, "version", NULL)) {
			if (get_version(&f, &v->version) != 0)
				return bad(path, "version must be a whole number", NULL);
			has_version = true;
		} else if (key_is(&f, "description", NULL)) {
			if (!BSON_ITER_HOLDS_UTF8(&f))
				return bad(path, "description must be a string", NULL);
			bson_free(v->description);
			v->description = bson_strdup(bson_iter_utf8(&f, NULL));
		} else if (key_is(&f, "breaking", NULL)) {
			if (!BSON_ITER_HOLDS_BOOL(&f))
				return bad(path, "breaking must be true or false", NULL);
			v->breaking = bson_iter_bool(&f);
		} else if (key_is(&f, "dependencies", NULL)) {
			if (!BSON_ITER_HOLDS_ARRAY(&f) || !bson_iter_recurse(&f, &deps))
				return bad(path, "dependencies must be a list", NULL);
			while (bson_iter_next(&deps)) {
				v->deps = bson_realloc(v->deps, (v->ndeps + 1) * sizeof *v->deps);
				memset(&v->deps[v->ndeps], 0, sizeof *v->deps);
				v->ndeps++;
				int rc = parse_dep(path, &deps, &v->deps[v->ndeps - 1], central);
				if (rc)
					return rc;
			}
		} else {
			return bad(path, "unknown key in a migrations entry", bson_iter_key(&f));
		}
	}
	return has_version ? 0 : bad(path, "a migrations entry needs a version", NULL);
}

/* lint: {file name: [rule id, ...]}; which ids exist is lint.h's to say. */
static int parse_lint(const char *path, const bson_iter_t *it, struct registry *r)
{
	bson_iter_t files, rules;
	uint32_t len;
	const uint8_t *data;
	if (!BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &files))
		return bad(path, "lint must map file names to lists of rules", NULL);
	while (bson_iter_next(&files)) {
		if (!BSON_ITER_HOLDS_ARRAY(&files) || !bson_iter_recurse(&files, &rules))
			return bad(path, "lint: a file's rules must be a list",
			           bson_iter_key(&files));
		while (bson_iter_next(&rules))
			if (!BSON_ITER_HOLDS_UTF8(&rules))
				return bad(path, "lint: a rule must be a string",
				           bson_iter_key(&files));
	}
	bson_iter_document(it, &len, &data);
	if (r->lint)
		bson_destroy(r->lint);
	r->lint = bson_new_from_data(data, len);
	return 0;
}

static int parse(const char *path, const bson_t *doc, struct registry *r, bool central)
{
	bson_iter_t it, list;
	if (!bson_iter_init(&it, doc))
		return bad(path, "corrupt document", NULL);
	while (bson_iter_next(&it)) {
		if (key_is(&it, "service", "database") || key_is(&it, "url-env", "url_env")) {
			char **dst = key_is(&it, "service", NULL)    ? &r->service
			             : key_is(&it, "database", NULL) ? &r->database
			                                             : &r->url_env;
			if (!BSON_ITER_HOLDS_UTF8(&it) || !*bson_iter_utf8(&it, NULL))
				return bad(path, "must be a non-empty string", bson_iter_key(&it));
			bson_free(*dst);
			*dst = bson_strdup(bson_iter_utf8(&it, NULL));
		} else if (key_is(&it, "migrations", NULL)) {
			if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &list))
				return bad(path, "migrations must be a list", NULL);
			while (bson_iter_next(&list)) {
				r->v = bson_realloc(r->v, (r->n + 1) * sizeof *r->v);
				memset(&r->v[r->n], 0, sizeof *r->v);
				r->n++;
				int rc = parse_version(path, &list, &r->v[r->n - 1], central);
				if (rc)
					return rc;
			}
		} else if (key_is(&it, "lint", NULL)) {
			int rc = parse_lint(path, &it, r);
			if (rc)
				return rc;
		} else {
			return bad(path, "unknown top-level key", bson_iter_key(&it));
		}
	}
	if (!r->service)
		return bad(path, "the registry needs a service name", NULL);
	return check_database(path, r->database);
}

static int load(struct registry *r, const char *dir, bool central)
{
	memset(r, 0, sizeof *r);
	char *path = bson_strdup_printf("%s/%s", dir, REGISTRY_FILE);
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		int rc = e == ENOENT ? 0 : bad(path, "cannot read the registry", strerror(e));
		bson_free(path);
		return rc;
	}
	uint8_t *buf = bson_malloc(REGISTRY_MAX_BYTES + 1);
	size_t n = fread(buf, 1, REGISTRY_MAX_BYTES + 1, f);
	fclose(f);
	int rc = 0;
	char err[256];
	if (n > REGISTRY_MAX_BYTES) {
		rc = bad(path, "the registry is larger than 1 MiB", NULL);
	} else {
		bson_t *doc = yaml_parse_mapping(buf, n, err, sizeof err);
		if (!doc) {
			rc = bad(path, "cannot parse the registry", err);
		} else {
			r->present = true;
			rc = parse(path, doc, r, central);
			bson_destroy(doc);
		}
	}
	bson_free(buf);
	bson_free(path);
	/* Every URL a dependency names is a secret from the start, before
	 * anything (a heartbeat's warning, say) could log it. */
	const char *own = rc == 0 && r->url_env ? config_env(r->url_env) : NULL;
	if (own)
		url_register_secrets(own);
	for (size_t i = 0; rc == 0 && i < r->n; i++)
		for (size_t j = 0; j < r->v[i].ndeps; j++) {
			const char *url =
			    r->v[i].deps[j].url_env ? config_env(r->v[i].deps[j].url_env) : NULL;
			if (url)
				url_register_secrets(url);
		}
	return rc;
}

int registry_load(struct registry *r, const char *dir)
{
	return load(r, dir, false);
}

int registry_load_service(struct registry *r, const char *dir)
{
	return load(r, dir, true);
}

void registry_free(struct registry *r)
{
	for (size_t i = 0; i < r->n; i++) {
		for (size_t k = 0; k < r->v[i].ndeps; k++) {
			struct reg_dep *d = &r->v[i].deps[k];
			bson_free(d->service);
			bson_free(d->database);
			bson_free(d->collection);
			bson_free(d->url_env);
		}
		bson_free(r->v[i].deps);
		bson_free(r->v[i].description);
	}
	bson_free(r->v);
	bson_free(r->service);
	bson_free(r->database);
	if (r->lint)
		bson_destroy(r->lint);
	bson_free(r->url_env);
	memset(r, 0, sizeof *r);
}

const struct reg_version *registry_find(const struct registry *r, uint64_t version)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].version == version)
			return &r->v[i];
	return NULL;
}

int registry_validate(const struct registry *r, const struct source *s)
{
	int rc = 0;
	for (size_t i = 0; i < r->n; i++) {
		const struct reg_version *v = &r->v[i];
		if (source_find(s, v->version) < 0) {
			log_error("the registry names a version with no migration files",
			          F_INT("version", v->version), F_STR("file", REGISTRY_FILE));
			rc = EXIT_SOURCE;
		}
		for (size_t k = 0; k < i; k++)
			if (r->v[k].version == v->version) {
				log_error("the registry lists a version twice",
				          F_INT("version", v->version));
				rc = EXIT_SOURCE;
			}
		for (size_t k = 0; k < v->ndeps; k++)
			if (strcmp(v->deps[k].service, r->service) == 0) {
				log_error("a migration depends on its own service",
				          F_INT("version", v->version),
				          F_STR("service", r->service));
				rc = EXIT_SOURCE;
			}
	}
	if (rc == 0 && r->present)
		printf("ok: registry for %s, %zu versions described\n", r->service, r->n);
	return rc;
}

int registry_check_breaking(const struct registry *r, const struct plan *p, bool allow)
{
	for (size_t i = 0; i < p->n; i++) {
		if (p->steps[i].dir != DIR_UP)
			continue;
		const struct reg_version *v = registry_find(r, p->steps[i].version);
		if (!v || !v->breaking)
			continue;
		if (allow) {
			log_warn("applying a breaking migration (allowed)",
			         F_INT("version", v->version),
			         F_STR("description", v->description ? v->description : ""));
			continue;
		}
		log_error("refusing a breaking migration: set ALLOW_BREAKING=true or pass "
		          "-allow-breaking; nothing was run",
		          F_INT("version", v->version),
		          F_STR("description", v->description ? v->description : ""));
		return EXIT_DEPENDENCY;
	}
	return 0;
}

/* The dependency's URL: its own variable, or ours with its database. */
static char *dep_uri(const struct reg_dep *d, const struct config *c, char **db_name)
{
	const char *env = d->url_env ? config_env(d->url_env) : NULL;
	mongoc_uri_t *uri;
	if (d->url_env) {
		if (!env) {
			log_error("the dependency's URL variable is not set",
			          F_STR("service", d->service), F_STR("variable", d->url_env));
			return NULL;
		}
		/* As DATABASE_URL: golang-migrate's x- options and the Go
		 * driver's options are for us to take, not libmongoc. */
		char *driver = url_for_driver(env);
		uri = url_parse(driver, d->url_env);
		bson_free(driver);
	} else {
		uri = url_parse(c->db.uri, "DATABASE_URL");
	}
	if (!uri) {
		log_error("invalid URL for a dependency", F_STR("service", d->service));
		return NULL;
	}
	if (d->database)
		mongoc_uri_set_database(uri, d->database);
	const char *name = mongoc_uri_get_database(uri);
	if (!name || !*name) {
		mongoc_uri_destroy(uri);
		log_error("no database for a dependency", F_STR("service", d->service));
		return NULL;
	}
	*db_name = bson_strdup(name);
	char *s = bson_strdup(mongoc_uri_get_string(uri));
	mongoc_uri_destroy(uri);
	return s;
}

/* 1: met; 0: not yet; -1: cannot tell (logged as the reason). */
static int dep_met(const struct reg_dep *d, const struct config *c, char *why, size_t len)
{
	struct db_options o = {.connect_timeout_ms = c->db.connect_timeout_ms};
	o.uri = dep_uri(d, c, &o.name);
	if (!o.uri)
		return -1;
	o.migrations_collection = bson_strdup(d->collection ? d->collection : "schema_migrations");
	struct db db;
	int met = -1;
	int rc = db_open(&db, &o, 0);
	if (rc == EXIT_UNREACHABLE) {
		/* Its mongodb+srv name does not resolve (yet): as unreachable. */
		snprintf(why, len, "unreachable: %.400s", db.open_err.message);
		met = 0;
	} else if (rc == 0) {
		int64_t v;
		bool dirty;
		bson_error_t err;
		if (!db_ping(&db, &err)) {
			snprintf(why, len, "unreachable: %.400s", err.message);
			met = 0;
		} else if (db_get_version(&db, &v, &dirty) == 0) {
			met = v >= 0 && (uint64_t)v >= d->min_version && !dirty;
			snprintf(why, len, "at version %lld%s, needs %llu", (long long)v,
			         dirty ? " (dirty)" : "", (unsigned long long)d->min_version);
		} else {
			snprintf(why, len, "cannot read its version");
			met = 0;
		}
		db_close(&db);
	}
	bson_free(o.uri);
	bson_free(o.name);
	bson_free(o.migrations_collection);
	return met;
}

int registry_wait_dependencies(const struct registry *r, const struct reg_version *v,
                               const struct config *c)
{
	(void)r;
	int64_t start = now_ms();
	for (size_t k = 0; k < v->ndeps; k++) {
		const struct reg_dep *d = &v->deps[k];
		for (unsigned attempt = 0;; attempt++) {
			char why[512] = "";
			int met = dep_met(d, c, why, sizeof why);
			if (met < 0)
				return EXIT_DEPENDENCY;
			if (met) {
				log_info("dependency met", F_INT("version", v->version),
				         F_STR("service", d->service), F_STR("state", why));
				break;
			}
			int64_t elapsed = now_ms() - start;
			if (elapsed >= c->dependency_timeout_ms) {
				log_error("dependency not met in time; nothing more was run",
				          F_INT("version", v->version),
				          F_STR("service", d->service),
				          F_INT("min_version", d->min_version), F_STR("state", why),
				          F_INT("waited_ms", elapsed));
				return EXIT_DEPENDENCY;
			}
			int64_t delay =
			    wait_next_delay(c, attempt, elapsed, c->dependency_timeout_ms);
			log_info("waiting for a dependency", F_INT("version", v->version),
			         F_STR("service", d->service), F_INT("min_version", d->min_version),
			         F_STR("state", why), F_INT("delay_ms", delay));
			stop_sleep_ms(delay);
			if (stop_requested())
				return EXIT_SIGNAL_BASE + stop_requested();
		}
	}
	return 0;
}
