/*
 * Unit tests: the plan (src/plan.c), golang-migrate's migrate.go read,
 * readUp and readDown as a pure function of the source and the current
 * version. Each case says what golang-migrate does and where; the sources
 * are built in memory, with or without the up and down file of each
 * version, since a version with one file only is legal in golang-migrate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "db.h"
#include "exitcode.h"
#include "log.h"
#include "plan.h"
#include "source.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * A source from a spec such as "1 3u 7d": versions in order, each with
 * both files, or with the up file only ("u") or the down file only ("d").
 * The files have a path and nothing else: the plan never reads them.
 */
static struct source source_of(const char *spec)
{
	struct source s = {0};
	const char *p = spec;
	while (*p) {
		char *end;
		uint64_t v = strtoull(p, &end, 10);
		assert_true(end != p);
		bool up = *end != 'd', down = *end != 'u';
		if (*end == 'u' || *end == 'd')
			end++;
		s.m = bson_realloc(s.m, (s.n + 1) * sizeof *s.m);
		struct migration *m = &s.m[s.n++];
		memset(m, 0, sizeof *m);
		m->version = v;
		m->name = bson_strdup_printf("m%" PRIu64, v);
		for (int d = 0; d < 2; d++)
			if (d == DIR_UP ? up : down) {
				m->file[d] = bson_malloc0(sizeof *m->file[d]);
				m->file[d]->path =
				    bson_strdup_printf("%" PRIu64 "_%s.%s.json", v, m->name,
				                       d == DIR_UP ? "up" : "down");
			}
		p = end + strspn(end, " ");
	}
	return s;
}

static void source_drop(struct source *s)
{
	for (size_t i = 0; i < s->n; i++) {
		for (int d = 0; d < 2; d++)
			if (s->m[i].file[d]) {
				bson_free(s->m[i].file[d]->path);
				bson_free(s->m[i].file[d]);
			}
		bson_free(s->m[i].name);
	}
	bson_free(s->m);
	memset(s, 0, sizeof *s);
}

/* plan_build with its log lines kept off the test output; *err gets the
 * error it logged, or NULL (a sentinel error first tells a fresh one from
 * an earlier case's). */
static int quiet_plan_build(const struct source *s, int64_t cur, enum run_kind kind, int64_t arg,
                            struct plan *p, char **err)
{
	fflush(stderr);
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
	assert_true(saved >= 0 && null >= 0);
	dup2(null, STDERR_FILENO);
	close(null);
	log_error("unit: sentinel");
	int rc = plan_build(s, cur, kind, arg, p);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	*err = log_last_error();
	if (*err && strcmp(*err, "unit: sentinel") == 0) {
		bson_free(*err);
		*err = NULL;
	}
	return rc;
}

struct plan_case {
	const char *why;
	const char *source; /* as source_of */
	int64_t cur;        /* the database's version; -1: none */
	enum run_kind kind;
	int64_t arg; /* up/down: N, -1 for all; goto: the target */
	int rc;
	/* The steps, "u3>3 d3>1 d1>-1!": direction, the version whose file
	 * runs, the version recorded after it, and "!" when that file is
	 * absent (golang-migrate's "empty" migration: the version is
	 * recorded, nothing runs). */
	const char *steps;
	uint64_t short_by;
	const char *error; /* part of the error logged when rc != 0 */
};

#define GAPS "1 3 7"

static const struct plan_case cases[] = {
    /* up: readUp. */
    {"up from nil runs every migration, from First()", GAPS, -1, RUN_UP, -1, 0, "u1>1 u3>3 u7>7", 0,
     NULL},
    {"up from the middle runs the rest, Next() skipping the gaps", GAPS, 1, RUN_UP, -1, 0,
     "u3>3 u7>7", 0, NULL},
    {"up from the last: ErrNoChange (Next is ErrNotExist, limit -1, count 0)", GAPS, 7, RUN_UP, -1,
     0, "", 0, NULL},
    {"up N stops after N", GAPS, -1, RUN_UP, 2, 0, "u1>1 u3>3", 0, NULL},
    {"up N with exactly N left is not short", GAPS, 1, RUN_UP, 2, 0, "u3>3 u7>7", 0, NULL},
    {"up N with fewer left runs them, then ErrShortLimit{N - count}", GAPS, 1, RUN_UP, 5, 0,
     "u3>3 u7>7", 3, NULL},
    {"up N from nil with fewer than N in all: short too", GAPS, -1, RUN_UP, 4, 0, "u1>1 u3>3 u7>7",
     1, NULL},
    {"up N from the last: os.ErrNotExist (limit > 0, count 0), not a short limit", GAPS, 7, RUN_UP,
     1, EXIT_USAGE, "", 0, "file does not exist"},
    {"up 0: ErrNoChange before anything is read", GAPS, 1, RUN_UP, 0, 0, "", 0, NULL},
    /* An empty source: golang-migrate's First() fails on it whatever the
     * command; the runner refuses an empty source before planning (runner.c,
     * do_migrate), so up (all) here only has to stay harmless. */
    {"up on an empty source: nothing to run", "", -1, RUN_UP, -1, 0, "", 0, NULL},
    {"up N on an empty source: os.ErrNotExist", "", -1, RUN_UP, 1, EXIT_USAGE, "", 0,
     "file does not exist"},

    /* down: readDown. The target is Prev(from), and -1 below First(). */
    {"down from the last runs every down file, each recording the previous version", GAPS, 7,
     RUN_DOWN, -1, 0, "d7>3 d3>1 d1>-1", 0, NULL},
    {"down from the middle", GAPS, 3, RUN_DOWN, -1, 0, "d3>1 d1>-1", 0, NULL},
    {"down N stops after N", GAPS, 7, RUN_DOWN, 1, 0, "d7>3", 0, NULL},
    {"down N with exactly N applied is not short", GAPS, 7, RUN_DOWN, 3, 0, "d7>3 d3>1 d1>-1", 0,
     NULL},
    {"down N past the first: the nil migration, then ErrShortLimit", GAPS, 3, RUN_DOWN, 4, 0,
     "d3>1 d1>-1", 2, NULL},
    {"down from nil: ErrNoChange", GAPS, -1, RUN_DOWN, -1, 0, "", 0, NULL},
    {"down N from nil: os.ErrNotExist", GAPS, -1, RUN_DOWN, 1, EXIT_USAGE, "", 0,
     "file does not exist"},
    {"down 0: ErrNoChange", GAPS, 3, RUN_DOWN, 0, 0, "", 0, NULL},

    /* goto: read(from, to). to is a uint, so goto never records -1. */
    {"goto up from nil: First(), then Next() up to the target", GAPS, -1, RUN_GOTO, 3, 0,
     "u1>1 u3>3", 0, NULL},
    {"goto up from the middle", GAPS, 1, RUN_GOTO, 7, 0, "u3>3 u7>7", 0, NULL},
    {"goto down: down files from the current version, stopping above the target", GAPS, 7, RUN_GOTO,
     1, 0, "d7>3 d3>1", 0, NULL},
    {"goto one down", GAPS, 3, RUN_GOTO, 1, 0, "d3>1", 0, NULL},
    {"goto the current version: ErrNoChange", GAPS, 3, RUN_GOTO, 3, 0, "", 0, NULL},
    {"goto a version in a gap: versionExists(to) fails, nothing runs", GAPS, 3, RUN_GOTO, 4,
     EXIT_USAGE, "", 0, "no migration found for version"},
    {"goto below the first version", GAPS, -1, RUN_GOTO, 0, EXIT_USAGE, "", 0,
     "no migration found for version"},
    {"goto past the last version", GAPS, 1, RUN_GOTO, 8, EXIT_USAGE, "", 0,
     "no migration found for version"},

    /* The database at a version the source lacks: versionExists(from)
     * fails first in read, readUp and readDown, before the limit or the
     * target is looked at. A source error: the image and the database
     * disagree. */
    {"up from a version in a gap", GAPS, 5, RUN_UP, -1, EXIT_SOURCE, "", 0,
     "no migration found for version"},
    {"up 0 from a version in a gap: the version is checked before the limit", GAPS, 5, RUN_UP, 0,
     EXIT_SOURCE, "", 0, "no migration found for version"},
    {"down from a version past the last", GAPS, 8, RUN_DOWN, -1, EXIT_SOURCE, "", 0,
     "no migration found for version"},
    {"goto an existing version from a version in a gap", GAPS, 5, RUN_GOTO, 7, EXIT_SOURCE, "", 0,
     "no migration found for version"},
    {"goto from a missing version to a missing one: from is checked first", GAPS, 5, RUN_GOTO, 4,
     EXIT_SOURCE, "", 0, "no migration found for version"},

    /* Missing files: newMigration makes an "empty" migration (nil body)
     * when the file for the direction is absent; runMigrations still
     * records its target. versionExists accepts either file. */
    {"down through a version with no down file records it without running anything", "1 2u 3", 3,
     RUN_DOWN, -1, 0, "d3>2 d2>1! d1>-1", 0, NULL},
    {"down N stopping on a version with no down file", "1 2u 3", 2, RUN_DOWN, 1, 0, "d2>1!", 0,
     NULL},
    {"up through a version with only a down file", "1d 2 3", -1, RUN_UP, -1, 0, "u1>1! u2>2 u3>3",
     0, NULL},
    {"no down file at all: down still walks every version", "1u 2u", 2, RUN_DOWN, -1, 0,
     "d2>1! d1>-1!", 0, NULL},
    {"goto a version that has only a down file", "1 2d 3", 1, RUN_GOTO, 2, 0, "u2>2!", 0, NULL},
    {"goto down from a version that has only an up file", "1 2u 3", 2, RUN_GOTO, 1, 0, "d2>1!", 0,
     NULL},

    /* Version 0 is a version (uint), distinct from nil (-1). */
    {"up from nil starts at version 0", "0 1", -1, RUN_UP, -1, 0, "u0>0 u1>1", 0, NULL},
    {"down to version 0 records 0, below it -1", "0 1", 1, RUN_DOWN, -1, 0, "d1>0 d0>-1", 0, NULL},
    {"goto 0", "0 1", 1, RUN_GOTO, 0, 0, "d1>0", 0, NULL},
    {"goto 0 from nil", "0 1", -1, RUN_GOTO, 0, 0, "u0>0", 0, NULL},

    /* Timestamp versions and the largest one the source accepts (int64). */
    {"timestamp versions", "20240101120000 20240615090000", 20240101120000, RUN_UP, -1, 0,
     "u20240615090000>20240615090000", 0, NULL},
    {"the largest version is recorded as itself", "1 9223372036854775807", 1, RUN_UP, -1, 0,
     "u9223372036854775807>9223372036854775807", 0, NULL},
    {"down from the largest version", "1 9223372036854775807", INT64_MAX, RUN_DOWN, 1, 0,
     "d9223372036854775807>1", 0, NULL},
};

/* Checks p against a step spec (see struct plan_case). */
static void expect_steps(const struct plan_case *c, const struct source *s, const struct plan *p)
{
	const char *q = c->steps;
	size_t i = 0;
	while (*q) {
		char dir;
		uint64_t version;
		int64_t target;
		int used;
		if (sscanf(q, " %c%" SCNu64 ">%" SCNd64 "%n", &dir, &version, &target, &used) != 3)
			fail_msg("bad step spec '%s'", c->steps);
		q += used;
		bool absent = *q == '!';
		q += absent;
		q += strspn(q, " ");
		if (i >= p->n)
			fail_msg("%s: %zu steps, want more ('%s')", c->why, p->n, c->steps);
		const struct step *st = &p->steps[i];
		enum direction want = dir == 'u' ? DIR_UP : DIR_DOWN;
		if (st->version != version || st->target != target || st->dir != want)
			fail_msg("%s: step %zu is %c%" PRIu64 ">%" PRId64 ", want %c%" PRIu64
			         ">%" PRId64,
			         c->why, i, st->dir == DIR_UP ? 'u' : 'd', st->version, st->target,
			         dir, version, target);
		/* The step points at the source's own migration, whose file
		 * for the direction the runner runs (or skips when absent). */
		long at = source_find(s, version);
		assert_true(at >= 0);
		assert_ptr_equal(st->m, &s->m[at]);
		if ((st->m->file[st->dir] == NULL) != absent)
			fail_msg("%s: step %zu: file %s, want %s", c->why, i,
			         st->m->file[st->dir] ? "present" : "absent",
			         absent ? "absent" : "present");
		i++;
	}
	if (i != p->n)
		fail_msg("%s: %zu steps, want %zu ('%s')", c->why, p->n, i, c->steps);
}

static void test_plan_cases(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		const struct plan_case *c = &cases[k];
		struct source s = source_of(c->source);
		struct plan p;
		char *err;
		int rc = quiet_plan_build(&s, c->cur, c->kind, c->arg, &p, &err);
		if (rc != c->rc)
			fail_msg("%s: exit code %d, want %d (%s)", c->why, rc, c->rc,
			         err ? err : "nothing logged");
		if (c->error) {
			if (!err || !strstr(err, c->error))
				fail_msg("%s: logged '%s', want '%s'", c->why,
				         err ? err : "nothing", c->error);
		} else if (err) {
			fail_msg("%s: unexpected error '%s'", c->why, err);
		}
		/* An error leaves an empty plan: nothing of it may run. */
		if (rc)
			assert_true(p.n == 0 && p.steps == NULL);
		expect_steps(c, &s, &p);
		if (p.short_by != c->short_by)
			fail_msg("%s: short by %" PRIu64 ", want %" PRIu64, c->why, p.short_by,
			         c->short_by);
		bson_free(err);
		plan_free(&p);
		assert_true(p.n == 0 && p.steps == NULL);
		source_drop(&s);
	}
}

/*
 * Walking the whole source up one step at a time and back down one at a
 * time visits every version and ends where it started, each step's target
 * being the next step's current version: the recorded targets chain.
 */
static void test_steps_chain(void **state)
{
	(void)state;
	struct source s = source_of("2 4u 5 9d 11");
	int64_t cur = VERSION_NIL;
	for (size_t i = 0; i < s.n; i++) {
		struct plan p;
		assert_int_equal(plan_build(&s, cur, RUN_UP, 1, &p), 0);
		assert_int_equal(p.n, 1);
		assert_true(p.steps[0].version == s.m[i].version);
		cur = p.steps[0].target;
		plan_free(&p);
	}
	assert_int_equal(cur, 11);
	for (size_t i = s.n; i-- > 0;) {
		struct plan p;
		assert_int_equal(plan_build(&s, cur, RUN_DOWN, 1, &p), 0);
		assert_int_equal(p.n, 1);
		assert_true(p.steps[0].version == s.m[i].version);
		assert_int_equal(p.steps[0].target, i ? (int64_t)s.m[i - 1].version : VERSION_NIL);
		cur = p.steps[0].target;
		plan_free(&p);
	}
	assert_int_equal(cur, VERSION_NIL);
	/* And one plan for all of it is the same steps as the walk. */
	struct plan all;
	assert_int_equal(plan_build(&s, VERSION_NIL, RUN_GOTO, 11, &all), 0);
	assert_int_equal(all.n, s.n);
	for (size_t i = 0; i < s.n; i++)
		assert_int_equal(all.steps[i].target, (int64_t)s.m[i].version);
	plan_free(&all);
	source_drop(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_cases),
	    cmocka_unit_test(test_steps_chain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
