#include "plan.h"

#include "db.h"
#include "exitcode.h"
#include "log.h"

#include <string.h>

static int missing_version(int64_t v, const char *why, int code)
{
	log_error("no migration found for version", F_INT("version", v), F_STR("error", why));
	return code;
}

static void add_step(struct plan *p, const struct source *src, size_t i, int64_t target,
                     enum direction dir)
{
	p->steps = bson_realloc(p->steps, (p->n + 1) * sizeof *p->steps);
	p->steps[p->n++] = (struct step){src->m[i].version, target, dir, &src->m[i]};
}

/* The index of cur in the source, or -1 for "no version". */
static int find_current(const struct source *src, int64_t cur, long *idx)
{
	*idx = -1;
	if (cur < 0)
		return 0;
	*idx = source_find(src, (uint64_t)cur);
	if (*idx < 0)
		return missing_version(cur,
		                       "the database is at a version the migration source "
		                       "does not have",
		                       EXIT_SOURCE);
	return 0;
}

int plan_build(const struct source *src, int64_t cur, enum run_kind kind, int64_t arg,
               struct plan *p)
{
	memset(p, 0, sizeof *p);
	long idx;
	int rc = find_current(src, cur, &idx);
	if (rc)
		return rc;
	if (kind == RUN_UP) {
		if (arg == 0)
			return 0;
		size_t start = (size_t)(idx + 1), avail = src->n - start;
		if (avail == 0 && arg > 0) {
			log_error("file does not exist: no migration to apply after the current "
			          "version",
			          F_INT("version", cur));
			return EXIT_USAGE;
		}
		size_t count = arg < 0 || (uint64_t)arg > avail ? avail : (size_t)arg;
		for (size_t i = start; i < start + count; i++)
			add_step(p, src, i, (int64_t)src->m[i].version, DIR_UP);
		if (arg > 0 && (uint64_t)arg > avail)
			p->short_by = (uint64_t)arg - avail;
		return 0;
	}
	if (kind == RUN_DOWN) {
		if (arg == 0 || (idx < 0 && arg < 0))
			return 0;
		if (idx < 0) {
			log_error("file does not exist: no migration to undo, the database has no "
			          "version");
			return EXIT_USAGE;
		}
		size_t avail = (size_t)idx + 1;
		size_t count = arg < 0 || (uint64_t)arg > avail ? avail : (size_t)arg;
		for (size_t k = 0; k < count; k++) {
			size_t i = (size_t)idx - k;
			add_step(p, src, i, i > 0 ? (int64_t)src->m[i - 1].version : VERSION_NIL,
			         DIR_DOWN);
		}
		if (arg > 0 && (uint64_t)arg > avail)
			p->short_by = (uint64_t)arg - avail;
		return 0;
	}
	long t = source_find(src, (uint64_t)arg);
	if (t < 0)
		return missing_version(arg, "goto: the migration source has no such version",
		                       EXIT_USAGE);
	if (t > idx) {
		for (long i = idx + 1; i <= t; i++)
			add_step(p, src, (size_t)i, (int64_t)src->m[i].version, DIR_UP);
	} else {
		for (long i = idx; i > t; i--)
			add_step(p, src, (size_t)i, (int64_t)src->m[i - 1].version, DIR_DOWN);
	}
	return 0;
}

void plan_free(struct plan *p)
{
	bson_free(p->steps);
	memset(p, 0, sizeof *p);
}
