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

static int run_body(struct apply *a, const struct step *s)
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
		bson_iter_document(&it, &len, &data);
		bson_init_static(&cmd, data, len);
		if (!db_run_command(a->d, &cmd, sess, &err))
			rc = command_failed(s, index, &cmd, &err);
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

static void record(struct apply *a, const struct step *s, int64_t started, const char *error)
{
	const struct mfile *f = s->m->file[s->dir];
	struct history_rec h = {.version = s->version,
	                        .name = s->m->name,
	                        .direction = dir_name(s->dir),
	                        .sha256 = f ? f->sha256 : NULL,
	                        .started_at = started,
	                        .finished_at = wall_ms(),
	                        .outcome = error ? "failed" : "applied",
	                        .error = error};
	history_write(a->d, a->c, &h);
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
	rc = run_body(a, s);
	if (rc) {
		/* Only while we hold the lock: a runner that lost it sends nothing. */
		char *err = rc != EXIT_LOCK_LOST && lock_check(a->l) == 0 ? log_last_error() : NULL;
		if (err)
			record(a, s, started, err);
		bson_free(err);
		return rc;
	}
	FAULT("before_clean");
	if ((rc = lock_check(a->l)) || (rc = db_set_version(a->d, s->target, false)))
		return rc;
	progress_state(s->target, false);
	progress_applied();
	FAULT("before_history");
	if ((rc = lock_check(a->l)))
		return rc;
	record(a, s, started, NULL);
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
	for (size_t i = 0; i < p->n; i++) {
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
