#include "apply.h"

#include "exitcode.h"
#include "fault.h"
#include "history.h"
#include "log.h"
#include "progress.h"
#include "stop.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const char *dir_name(enum direction d)
{
	return d == DIR_UP ? "up" : "down";
}

/* The command's name and, when it names one, its collection. */
static void describe_command(const bson_t *cmd, const char **name, const char **coll)
{
	bson_iter_t it;
	*name = "(empty)";
	*coll = "";
	if (bson_iter_init(&it, cmd) && bson_iter_next(&it)) {
		*name = bson_iter_key(&it);
		if (BSON_ITER_HOLDS_UTF8(&it))
			*coll = bson_iter_utf8(&it, NULL);
	}
}

static int command_failed(const struct step *s, uint32_t index, const bson_t *cmd,
                          const bson_error_t *err)
{
	const char *name, *coll;
	describe_command(cmd, &name, &coll);
	log_error("migration failed", F_INT("version", s->version), F_STR("name", s->m->name),
	          F_STR("direction", dir_name(s->dir)), F_STR("file", s->m->file[s->dir]->path),
	          F_INT("command_index", index), F_STR("command", name), F_STR("collection", coll),
	          F_INT("code", err->code), F_STR("error", err->message));
	return EXIT_MIGRATION;
}

/* Commands that take maxTimeMS, as MongoDB documents them (and FerretDB
 * accepts it on, honouring it on find, aggregate and findAndModify and
 * ignoring it on the rest). Any other command is bounded by the client
 * alone (socketTimeoutMS): the server may go on with it after we gave up. */
static const char *const max_time_commands[] = {
    "aggregate", "count",         "createIndexes", "delete", "distinct",
    "find",      "findAndModify", "insert",        "update", NULL,
};

static bool takes_max_time(const char *name)
{
	for (const char *const *c = max_time_commands; *c; c++)
		if (strcmp(*c, name) == 0)
			return true;
	return false;
}

/* The migration's deadline (now_ms clock), or 0 with no MIGRATION_TIMEOUT. */
static int64_t migration_deadline(const struct apply *a)
{
	return a->c->migration_timeout_ms > 0 ? now_ms() + a->c->migration_timeout_ms : 0;
}

/* cmd with maxTimeMS for the time left before deadline, when it takes one
 * and the file did not set its own; else cmd itself, unchanged. */
static const bson_t *bounded(const bson_t *cmd, int64_t deadline, bson_t *copy)
{
	const char *name, *coll;
	describe_command(cmd, &name, &coll);
	if (!deadline || !takes_max_time(name) || bson_has_field(cmd, "maxTimeMS"))
		return cmd;
	int64_t left = deadline - now_ms();
	bson_copy_to(cmd, copy);
	BSON_APPEND_INT64(copy, "maxTimeMS", left > 0 ? left : 1);
	return copy;
}

static int timed_out(const struct step *s, uint32_t index, int64_t timeout)
{
	log_error("migration timed out: MIGRATION_TIMEOUT passed", F_INT("version", s->version),
	          F_STR("name", s->m->name), F_STR("direction", dir_name(s->dir)),
	          F_INT("command_index", index), F_INT("timeout_ms", timeout));
	return EXIT_MIGRATION;
}

/* The body of the step's file, command by command, each after lock_check
 * and before the deadline (0: none). */
static int run_body(struct apply *a, const struct step *s, int64_t deadline)
{
	const struct mfile *f = s->m->file[s->dir];
	if (!f)
		return 0;
	bson_error_t err;
	mongoc_client_session_t *sess = NULL;
	if (a->c->transaction_mode) {
		sess = mongoc_client_start_session(a->d->client, NULL, &err);
		if (!sess || !mongoc_client_session_start_transaction(sess, NULL, &err)) {
			if (sess)
				mongoc_client_session_destroy(sess);
			log_error("cannot start a transaction", F_STR("error", err.message));
			return EXIT_MIGRATION;
		}
	}
	bson_iter_t it;
	uint32_t index = 0;
	int rc = 0;
	bson_iter_init(&it, f->body);
	while (rc == 0 && bson_iter_next(&it)) {
		uint32_t len;
		const uint8_t *data;
		bson_t cmd;
		/* The lock may have been lost during the last command: another
		 * runner may be working now, so send nothing more. */
		if ((rc = lock_check(a->l)))
			break;
		if (deadline && now_ms() >= deadline) {
			rc = timed_out(s, index, a->c->migration_timeout_ms);
			break;
		}
		bson_iter_document(&it, &len, &data);
		bson_init_static(&cmd, data, len);
		bson_t copy = BSON_INITIALIZER;
		if (!db_run_command(a->d, bounded(&cmd, deadline, &copy), sess, &err)) {
			rc = command_failed(s, index, &cmd, &err);
			/* The reply that never came in time (socketTimeoutMS, set
			 * from MIGRATION_TIMEOUT), or the server's maxTimeMS. */
			if (deadline && now_ms() >= deadline)
				timed_out(s, index, a->c->migration_timeout_ms);
		}
		bson_destroy(&copy);
		index++;
		FAULT("after_command");
	}
	if (sess) {
		if (rc == 0 && !mongoc_client_session_commit_transaction(sess, NULL, &err)) {
			log_error("cannot commit the migration's transaction",
			          F_INT("version", s->version), F_STR("error", err.message));
			rc = EXIT_MIGRATION;
		}
		if (rc)
			mongoc_client_session_abort_transaction(sess, &err);
		mongoc_client_session_destroy(sess);
	}
	return rc;
}

/* The history record of a step: outcome "applied", "failed" (error says
 * why) or "rolled_back" (a failed migration's down, run by ON_FAILURE). */
static void record(struct apply *a, const struct step *s, int64_t started, const char *outcome,
                   const char *error)
{
	const struct mfile *f = s->m->file[s->dir];
	struct history_rec h = {.version = s->version,
	                        .name = s->m->name,
	                        .direction = dir_name(s->dir),
	                        .sha256 = f ? f->sha256 : NULL,
	                        .started_at = started,
	                        .finished_at = wall_ms(),
	                        .outcome = outcome,
	                        .error = error};
	/* A failure goes out at once, with what is buffered before it. */
	if (strcmp(outcome, "applied") == 0)
		history_record(a->d, a->c, &h);
	else
		history_write(a->d, a->c, &h);
}

/*
 * ON_FAILURE=rollback, after the body of up migration s failed (why): its
 * down file takes the database back, then the version before s is recorded
 * clean, as if s had never run. Only s: what the run applied before it
 * stays. Still exit 7 (the run failed); with no down file, a broken one, or
 * a down that fails too, the database stays dirty at s.
 */
static int roll_back(struct apply *a, const struct step *s, const char *why)
{
	const struct mfile *down = s->m->file[DIR_DOWN];
	const char *cannot = s->dir != DIR_UP         ? "a failed down migration is not rolled back"
	                     : a->c->transaction_mode ? NULL
	                     : !down                  ? "the migration has no down file"
	                     : down->problem          ? "its down file is broken"
	                                              : NULL;
	if (cannot) {
		log_error("migration failed and cannot be rolled back; the database stays dirty",
		          F_INT("version", s->version), F_STR("reason", cannot),
		          F_STR("error", why));
		return EXIT_MIGRATION;
	}
	struct step back = {.version = s->version, .target = a->cur, .dir = DIR_DOWN, .m = s->m};
	int64_t started = wall_ms();
	int rc = 0;
	/* A failed transaction was aborted: nothing of s is left to undo. */
	if (!a->c->transaction_mode) {
		log_warn("rolling back the failed migration with its down file",
		         F_INT("version", s->version), F_INT("to_version", a->cur));
		FAULT("rollback_body");
		rc = run_body(a, &back, migration_deadline(a));
	}
	if (rc) {
		char *second =
		    rc != EXIT_LOCK_LOST && lock_check(a->l) == 0 ? log_last_error() : NULL;
		if (second)
			record(a, &back, started, "failed", second);
		log_error("migration failed and so did its rollback; the database stays dirty",
		          F_INT("version", s->version), F_STR("error", why),
		          F_STR("rollback_error", second));
		bson_free(second);
		return rc == EXIT_LOCK_LOST ? rc : EXIT_MIGRATION;
	}
	FAULT("rollback_clean");
	if ((rc = lock_check(a->l)) || (rc = db_set_version(a->d, a->cur, false)))
		return rc;
	progress_state(a->cur, false);
	if (lock_check(a->l) == 0)
		record(a, &back, started, "rolled_back", NULL);
	log_error("migration failed and was rolled back", F_INT("version", s->version),
	          F_INT("to_version", a->cur), F_STR("error", why));
	return EXIT_MIGRATION;
}

/* golang-migrate's protocol for one migration: dirty mark, body, clean
 * mark; then our history record. Each write fenced (lock.h, db.h). */
static int apply(struct apply *a, const struct step *s, int64_t started)
{
	FAULT("before_dirty");
	int rc = lock_check(a->l);
	if (rc || (rc = db_set_version(a->d, s->target, true)))
		return rc;
	progress_state(s->target, true);
	FAULT("after_dirty");
	rc = run_body(a, s, migration_deadline(a));
	if (rc) {
		/* Only while we hold the lock: a runner that lost it sends nothing. */
		char *err = rc != EXIT_LOCK_LOST && lock_check(a->l) == 0 ? log_last_error() : NULL;
		if (err)
			record(a, s, started, "failed", err);
		if (err && rc == EXIT_MIGRATION && a->c->on_failure == ON_FAILURE_ROLLBACK)
			rc = roll_back(a, s, err);
		bson_free(err);
		return rc;
	}
	FAULT("before_clean");
	if ((rc = lock_check(a->l)) || (rc = db_set_version(a->d, s->target, false)))
		return rc;
	progress_state(s->target, false);
	progress_applied();
	a->cur = s->target;
	FAULT("before_history");
	if ((rc = lock_check(a->l)))
		return rc;
	record(a, s, started, "applied", NULL);
	return 0;
}

static int run_step(struct apply *a, const struct step *s)
{
	const struct reg_version *rv = s->dir == DIR_UP ? registry_find(a->reg, s->version) : NULL;
	if (rv && rv->ndeps > 0) {
		int drc = registry_wait_dependencies(a->reg, rv, a->c);
		if (drc)
			return drc;
	}
	int64_t t0 = now_ms(), started = wall_ms();
	/* From the dirty mark to the history record a stop waits out the grace
	 * period: the migration may finish. */
	if (!stop_critical(true)) {
		stop_critical(false);
		log_warn("stopping before the next migration: signal received",
		         F_INT("signal", stop_requested()), F_INT("next_version", s->version));
		return EXIT_SIGNAL_BASE + stop_requested();
	}
	int rc = apply(a, s, started);
	stop_critical(false);
	if (rc)
		return rc;
	log_info("migration applied", F_INT("version", s->version), F_STR("name", s->m->name),
	         F_STR("direction", dir_name(s->dir)), F_INT("duration_ms", now_ms() - t0),
	         F_INT("commands", s->m->file[s->dir] ? s->m->file[s->dir]->ncmds : 0));
	return 0;
}

/*
 * A run fails for a broken file only when it would run it (golang-migrate
 * never reads the others; an empty down file next to a filled-in up file is
 * the first day of every project): the plan's files must be good, before
 * anything is written; every other broken file is a warning, once.
 */
int apply_check_files(struct apply *a, const struct plan *p)
{
	int rc = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct mfile *f = p->steps[i].m->file[p->steps[i].dir];
		if (f && f->problem) {
			source_report(f, true);
			rc = EXIT_SOURCE;
		}
	}
	if (a->warned)
		return rc;
	a->warned = true;
	for (size_t i = 0; i < a->src->n; i++)
		for (int d = 0; d < 2; d++) {
			const struct mfile *f = a->src->m[i].file[d];
			bool planned = false;
			for (size_t k = 0; k < p->n && !planned; k++)
				planned = p->steps[k].m->file[p->steps[k].dir] == f;
			if (f && !planned)
				source_report(f, false);
		}
	return rc;
}

int apply_plan(struct apply *a, const struct plan *p)
{
	if (p->n == 0) {
		if (a->l->waited)
			log_info("no change: another runner applied the migrations while we waited "
			         "for the lock",
			         F_INT("version", a->from));
		else
			log_info("no change", F_INT("version", a->from));
		return 0;
	}
	int rc = registry_check_breaking(a->reg, p, a->c->allow_breaking);
	if (rc)
		return rc;
	if (a->c->transaction_mode && (rc = db_check_transactions(a->d)))
		return rc;
	a->cur = a->from;
	for (size_t i = 0; i < p->n; i++) {
		/* RUN_TIMEOUT: start only what MIGRATION_TIMEOUT says ends in time
		 * (with none, whatever starts before the deadline). */
		if (a->run_deadline && now_ms() + a->c->migration_timeout_ms > a->run_deadline) {
			log_error("RUN_TIMEOUT: not starting the next migration, it could end past "
			          "the run's deadline; the next run continues from here",
			          F_INT("version", a->cur),
			          F_INT("next_version", p->steps[i].version),
			          F_INT("applied", (int64_t)progress_get().applied),
			          F_INT("left", (int64_t)(p->n - i)));
			return EXIT_PENDING;
		}
		if (stop_requested()) {
			log_warn("stopping before the next migration: signal received",
			         F_INT("signal", stop_requested()),
			         F_INT("next_version", p->steps[i].version));
			return EXIT_SIGNAL_BASE + stop_requested();
		}
		if ((rc = run_step(a, &p->steps[i])))
			return rc;
	}
	if (p->short_by) {
		log_error("limit short: fewer migrations than asked for were available",
		          F_INT("short_by", p->short_by),
		          F_INT("applied", (int64_t)progress_get().applied));
		return EXIT_USAGE;
	}
	return 0;
}
