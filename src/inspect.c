#include "inspect.h"

#include "exitcode.h"
#include "history.h"
#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int inspect_validate(const struct source *s)
{
	size_t ups = 0, downs = 0;
	if (s->n == 0) {
		/* As up says: an empty directory is a packaging mistake. */
		log_error("no migrations found in the migration directory", F_STR("dir", s->dir));
		return EXIT_SOURCE;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct migration *m = &s->m[i];
		ups += m->file[DIR_UP] != NULL;
		downs += m->file[DIR_DOWN] != NULL;
		if (!m->file[DIR_UP])
			log_warn("a down migration without an up: going up past it only records "
			         "the version",
			         F_INT("version", m->version), F_STR("name", m->name));
		if (!m->file[DIR_DOWN])
			log_warn("no down migration: going down past it only records the version",
			         F_INT("version", m->version), F_STR("name", m->name));
	}
	char *dir = log_escape_controls(s->dir);
	printf("ok: %zu migrations (%zu up, %zu down files) in %s\n", s->n, ups, downs, dir);
	bson_free(dir);
	return 0;
}

int inspect_drift(struct db *d, const struct config *c, const struct source *s, int64_t version)
{
	struct history_applied *h;
	size_t n;
	int rc = history_read(d, c, &h, &n);
	if (rc)
		return rc;
	size_t drift = 0, unknown = 0, checked = 0;
	for (size_t i = 0; i < s->n && version >= 0 && s->m[i].version <= (uint64_t)version; i++) {
		const struct migration *m = &s->m[i];
		const struct history_applied *e = history_find(h, n, m->version);
		const struct mfile *f = m->file[DIR_UP];
		if (!e || !e->sha256[0] || !f) {
			unknown++;
			log_info("applied migration without a checksum in the history (applied by "
			         "golang-migrate, or before history was kept)",
			         F_INT("version", m->version), F_STR("name", m->name));
			continue;
		}
		checked++;
		if (strcmp(e->sha256, f->sha256) != 0) {
			drift++;
			log_error("drift: the file changed after it was applied",
			          F_INT("version", m->version), F_STR("file", f->path),
			          F_STR("applied_sha256", e->sha256),
			          F_STR("file_sha256", f->sha256));
		}
	}
	bson_free(h);
	printf("%s: %zu applied migrations checked, %zu changed since, %zu without checksum\n",
	       drift ? "drift" : "ok", checked, drift, unknown);
	return drift ? EXIT_SOURCE : 0;
}

static const char *state_of(const struct migration *m, int64_t version, bool dirty)
{
	if (version < 0 || m->version > (uint64_t)version)
		return "pending";
	if (m->version == (uint64_t)version && dirty)
		return "dirty";
	return "applied";
}

int inspect_status(struct db *d, const struct config *c, const struct source *s, int64_t version,
                   bool dirty, bool json, const char *service)
{
	struct history_applied *h;
	size_t n, pending = 0;
	int rc = history_read(d, c, &h, &n);
	if (rc)
		return rc;
	bson_t out = BSON_INITIALIZER, arr;
	if (json) {
		if (service)
			BSON_APPEND_UTF8(&out, "service", service);
		if (version >= 0)
			BSON_APPEND_INT64(&out, "version", version);
		else
			BSON_APPEND_NULL(&out, "version");
		BSON_APPEND_BOOL(&out, "dirty", dirty);
		BSON_APPEND_ARRAY_BEGIN(&out, "migrations", &arr);
	} else {
		printf("%-20s %-8s %-40s %-21s %s\n", "VERSION", "STATE", "NAME", "APPLIED AT",
		       "BY");
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct migration *m = &s->m[i];
		const char *state = state_of(m, version, dirty);
		const struct history_applied *e = history_find(h, n, m->version);
		bool applied = strcmp(state, "pending") != 0;
		char when[32] = "", key[24];
		pending += !applied;
		if (applied && e)
			util_iso_time(e->applied_at, when, sizeof when);
		bool drift = applied && e && e->sha256[0] && m->file[DIR_UP] &&
		             strcmp(e->sha256, m->file[DIR_UP]->sha256) != 0;
		if (!json) {
			/* Names and owners are anyone's bytes: no terminal escapes. */
			char *name = log_escape_controls(m->name);
			char *owner = log_escape_controls(applied && e ? e->owner : "-");
			printf("%-20" PRIu64 " %-8s %-40s %-21s %s%s\n", m->version, state, name,
			       when[0] ? when : "-", owner,
			       drift ? "  (file changed since applied)" : "");
			bson_free(name);
			bson_free(owner);
			continue;
		}
		bson_t item;
		snprintf(key, sizeof key, "%zu", i);
		BSON_APPEND_DOCUMENT_BEGIN(&arr, key, &item);
		BSON_APPEND_INT64(&item, "version", (int64_t)m->version);
		BSON_APPEND_UTF8(&item, "name", m->name);
		BSON_APPEND_UTF8(&item, "state", state);
		if (applied && e) {
			BSON_APPEND_UTF8(&item, "applied_at", when);
			BSON_APPEND_UTF8(&item, "applied_by", e->owner);
			BSON_APPEND_UTF8(&item, "applied_sha256", e->sha256);
		}
		if (m->file[DIR_UP])
			BSON_APPEND_UTF8(&item, "sha256", m->file[DIR_UP]->sha256);
		BSON_APPEND_BOOL(&item, "drift", drift);
		bson_append_document_end(&arr, &item);
	}
	if (json) {
		bson_append_array_end(&out, &arr);
		BSON_APPEND_INT64(&out, "pending", (int64_t)pending);
		char *text = bson_as_relaxed_extended_json(&out, NULL);
		printf("%s\n", text);
		bson_free(text);
	} else {
		if (version >= 0)
			printf("database version: %" PRId64 "%s; %zu pending\n", version,
			       dirty ? " (dirty)" : "", pending);
		else
			printf("database version: none; %zu pending\n", pending);
	}
	bson_destroy(&out);
	bson_free(h);
	return 0;
}

void inspect_print_plan(const struct plan *p)
{
	for (size_t i = 0; i < p->n; i++) {
		char *name = log_escape_controls(p->steps[i].m->name);
		printf("%s %" PRIu64 " %s\n", p->steps[i].dir == DIR_UP ? "up" : "down",
		       p->steps[i].version, name);
		bson_free(name);
	}
	if (p->n == 0)
		printf("nothing to do\n");
	fflush(stdout);
}
