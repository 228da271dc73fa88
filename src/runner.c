#include "runner.h"

#include "db.h"
#include "exitcode.h"
#include "fault.h"
#include "history.h"
#include "inspect.h"
#include "lock.h"
#include "plan.h"
#include "log.h"
#include "registry.h"
#include "stop.h"
#include "util.h"
#include "termination.h"
#include "wait.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct run {
	const struct cli *cli;
	struct config *c;
	struct source src;
	struct registry reg;
	struct db d;
	struct lock l;
	int64_t from, to;
	bool known; /* from and to were read from the database */
	bool dirty;
	size_t applied;
	int64_t started;
	bool warned; /* about broken files the run does not need */
};

/*
 * What the abort path may know of the run. The watchdog must not read the
 * live struct run (the main thread changes it as it goes): the main thread
 * publishes a copy here, under view_mu, whenever the state or the lock
 * changes; abort_run reads only this.
 */
struct abort_view {
	bool held;
	char token[sizeof((struct lock *)0)->token];
	bool known, dirty;
	int64_t to;
	const char *command; /* static storage: the cli's */
};
static pthread_mutex_t view_mu = PTHREAD_MUTEX_INITIALIZER;
static struct abort_view view;

static const char *command_name(const struct run *r);

/* The state we now know the database is in; also published for abort_run. */
/* What abort_run may know: published after the lock is taken and at every
 * change of state. */
static void publish(const struct run *r)
{
	pthread_mutex_lock(&view_mu);
	view.held = r->l.held;
	memcpy(view.token, r->l.token, sizeof view.token);
	view.known = r->known;
	view.to = r->to;
	view.dirty = r->dirty;
	view.command = command_name(r);
	pthread_mutex_unlock(&view_mu);
}

static void set_state(struct run *r, int64_t to, bool dirty)
{
	r->known = true;
	r->to = to;
	r->dirty = dirty;
	publish(r);
}

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

static int run_body(struct run *r, const struct step *s)
{
	const struct mfile *f = s->m->file[s->dir];
	if (!f)
		return 0;
	bson_error_t err;
	mongoc_client_session_t *sess = NULL;
	if (r->c->transaction_mode) {
		sess = mongoc_client_start_session(r->d.client, NULL, &err);
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
		if ((rc = lock_check(&r->l)))
			break;
		bson_iter_document(&it, &len, &data);
		bson_init_static(&cmd, data, len);
		if (!db_run_command(&r->d, &cmd, sess, &err))
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

static void record(struct run *r, const struct step *s, int64_t started, const char *error)
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
	history_write(&r->d, r->c, &h);
}

/* golang-migrate's protocol for one migration: dirty mark, body, clean
 * mark; then our history record. Each write fenced (lock.h, db.h). */
static int apply(struct run *r, const struct step *s, int64_t started)
{
	FAULT("before_dirty");
	int rc = lock_check(&r->l);
	if (rc || (rc = db_set_version(&r->d, s->target, true)))
		return rc;
	set_state(r, s->target, true);
	FAULT("after_dirty");
	rc = run_body(r, s);
	if (rc) {
		/* Only while we hold the lock: a runner that lost it sends nothing. */
		char *err =
		    rc != EXIT_LOCK_LOST && lock_check(&r->l) == 0 ? log_last_error() : NULL;
		if (err)
			record(r, s, started, err);
		bson_free(err);
		return rc;
	}
	FAULT("before_clean");
	if ((rc = lock_check(&r->l)) || (rc = db_set_version(&r->d, s->target, false)))
		return rc;
	set_state(r, r->to, false);
	r->applied++;
	FAULT("before_history");
	if ((rc = lock_check(&r->l)))
		return rc;
	record(r, s, started, NULL);
	return 0;
}

static int run_step(struct run *r, const struct step *s)
{
	const struct reg_version *rv = s->dir == DIR_UP ? registry_find(&r->reg, s->version) : NULL;
	if (rv && rv->ndeps > 0) {
		int drc = registry_wait_dependencies(&r->reg, rv, r->c);
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
	int rc = apply(r, s, started);
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
static int check_files(struct run *r, const struct plan *p)
{
	int rc = 0;
	for (size_t i = 0; i < p->n; i++) {
		const struct mfile *f = p->steps[i].m->file[p->steps[i].dir];
		if (f && f->problem) {
			source_report(f, true);
			rc = EXIT_SOURCE;
		}
	}
	if (r->warned)
		return rc;
	r->warned = true;
	for (size_t i = 0; i < r->src.n; i++)
		for (int d = 0; d < 2; d++) {
			const struct mfile *f = r->src.m[i].file[d];
			bool planned = false;
			for (size_t k = 0; k < p->n && !planned; k++)
				planned = p->steps[k].m->file[p->steps[k].dir] == f;
			if (f && !planned)
				source_report(f, false);
		}
	return rc;
}

static int run_plan(struct run *r, const struct plan *p)
{
	if (p->n == 0) {
		if (r->l.waited)
			log_info("no change: another runner applied the migrations while we waited "
			         "for the lock",
			         F_INT("version", r->from));
		else
			log_info("no change", F_INT("version", r->from));
		return 0;
	}
	int rc = registry_check_breaking(&r->reg, p, r->c->allow_breaking);
	if (rc)
		return rc;
	if (r->c->transaction_mode && (rc = db_check_transactions(&r->d)))
		return rc;
	for (size_t i = 0; i < p->n; i++) {
		if (stop_requested()) {
			log_warn("stopping before the next migration: signal received",
			         F_INT("signal", stop_requested()),
			         F_INT("next_version", p->steps[i].version));
			return EXIT_SIGNAL_BASE + stop_requested();
		}
		if ((rc = run_step(r, &p->steps[i])))
			return rc;
	}
	if (p->short_by) {
		log_error("limit short: fewer migrations than asked for were available",
		          F_INT("short_by", p->short_by), F_INT("applied", r->applied));
		return EXIT_USAGE;
	}
	return 0;
}

static bool confirm(const char *question)
{
	if (!isatty(STDIN_FILENO))
		return false;
	fprintf(stderr, "%s [y/N]\n", question);
	char line[16];
	if (!fgets(line, sizeof line, stdin))
		return false;
	return (line[0] == 'y' || line[0] == 'Y') && (line[1] == '\n' || line[1] == '\0');
}

static int bad_argument(const char *what, const char *value)
{
	log_error(what, F_STR("value", value ? value : ""));
	return EXIT_USAGE;
}

/* The run's kind and argument from the command line. */
static int parse_run_args(const struct cli *cli, const struct config *c, enum run_kind *kind,
                          int64_t *arg)
{
	uint64_t n;
	*arg = -1;
	switch (cli->cmd) {
	case CMD_ENTRYPOINT:
		*kind = c->has_target ? RUN_GOTO : RUN_UP;
		if (c->has_target) {
			if (c->target > INT64_MAX)
				return bad_argument("TARGET_VERSION is too large",
				                    getenv("TARGET_VERSION"));
			*arg = (int64_t)c->target;
		}
		return 0;
	case CMD_UP:
		*kind = RUN_UP;
		if (cli->nargs > 1)
			return bad_argument("up: too many arguments", cli->args[1]);
		if (cli->nargs == 1) {
			if (!parse_uint(cli->args[0], INT64_MAX, &n))
				return bad_argument("up: can't read limit argument N",
				                    cli->args[0]);
			*arg = (int64_t)n;
		}
		return 0;
	case CMD_DOWN:
		*kind = RUN_DOWN;
		if (cli->down_all && cli->nargs > 0)
			return bad_argument("down: -all cannot be used with other arguments",
			                    cli->args[0]);
		if (cli->nargs > 1)
			return bad_argument("down: too many arguments", cli->args[1]);
		if (cli->nargs == 1) {
			if (!parse_uint(cli->args[0], INT64_MAX, &n))
				return bad_argument("down: can't read limit argument N",
				                    cli->args[0]);
			*arg = (int64_t)n;
		} else if (!cli->down_all &&
		           !confirm("Are you sure you want to apply all down migrations?")) {
			log_error("refusing to apply all down migrations without confirmation: "
			          "use down -all (or down N)");
			return EXIT_USAGE;
		}
		return 0;
	case CMD_PLAN:
		if (cli->nargs == 0) {
			*kind = c->has_target ? RUN_GOTO : RUN_UP;
			*arg = c->has_target ? (int64_t)c->target : -1;
			return c->has_target && c->target > INT64_MAX
			           ? bad_argument("TARGET_VERSION is too large",
			                          getenv("TARGET_VERSION"))
			           : 0;
		}
		/* plan V is goto V */
		/* fall through */
	case CMD_GOTO:
		*kind = RUN_GOTO;
		if (cli->nargs == 0)
			return bad_argument("goto: please specify version argument V", "");
		if (cli->nargs > 1)
			return bad_argument("goto: too many arguments", cli->args[1]);
		if (!parse_uint(cli->args[0], INT64_MAX, &n))
			return bad_argument("goto: can't read version argument V", cli->args[0]);
		*arg = (int64_t)n;
		return 0;
	default:
		return EXIT_INTERNAL;
	}
}

static int open_database(struct run *r)
{
	int rc = db_open(&r->d, r->c, 0);
	if (rc)
		return rc;
	return wait_for_database(&r->d, r->c);
}

static int dirty_refusal(int64_t v)
{
	char msg[96];
	snprintf(msg, sizeof msg, "Dirty database version %" PRId64 ". Fix and force version.", v);
	log_error(msg, F_INT("version", v),
	          F_STR("hint", "a migration failed part way: repair the data, then run force V"));
	return EXIT_DIRTY;
}

static int do_migrate(struct run *r)
{
	enum run_kind kind;
	int64_t arg;
	int rc = parse_run_args(r->cli, r->c, &kind, &arg);
	if (rc)
		return rc;
	if ((rc = source_load(&r->src, r->c->source_dir)))
		return rc;
	if ((rc = registry_load(&r->reg, r->c->source_dir)))
		return rc;
	if (r->src.n == 0) {
		/* An empty /migrations is a packaging mistake far more often than
		 * an intent; golang-migrate fails here too. */
		log_error("no migrations found in the migration directory",
		          F_STR("dir", r->c->source_dir));
		return EXIT_SOURCE;
	}
	if ((rc = open_database(r)))
		return rc;
	bool dirty;
	struct plan p;
	/* Every pod restart runs us against a database that is already up to
	 * date: answer that from one read, without taking the lock. A dirty
	 * state may be a migration in progress, so it goes the long way. */
	if ((rc = db_get_version(&r->d, &r->from, &dirty)))
		return rc;
	set_state(r, r->from, dirty);
	if (!dirty) {
		if ((rc = plan_build(&r->src, r->from, kind, arg, &p)))
			return rc;
		bool nothing = p.n == 0;
		rc = check_files(r, &p);
		plan_free(&p);
		if (rc)
			return rc;
		/* A dead runner's expired lock would block golang-migrate, which
		 * knows no leases: the long way takes it over and removes it. */
		if (nothing && lock_probe(&r->d, r->c) != LOCK_EXPIRED) {
			log_info("no change", F_INT("version", r->from));
			return 0;
		}
	}
	FAULT("before_lock");
	if ((rc = lock_acquire(&r->l, &r->d, r->c)))
		return rc;
	publish(r);
	FAULT("locked");
	if ((rc = lock_claim_state(&r->l, &r->from, &dirty)))
		return rc;
	set_state(r, r->from, dirty);
	if (dirty)
		return dirty_refusal(r->from);
	rc = plan_build(&r->src, r->from, kind, arg, &p);
	if (rc == 0 && (rc = check_files(r, &p)) == 0)
		rc = run_plan(r, &p);
	plan_free(&p);
	return rc;
}

static int do_force(struct run *r)
{
	int64_t v;
	if (r->cli->nargs == 0)
		return bad_argument("force: please specify version argument V", "");
	if (r->cli->nargs > 1)
		return bad_argument("force: too many arguments", r->cli->args[1]);
	if (!parse_go_int(r->cli->args[0], &v))
		return bad_argument("force: can't read version argument V", r->cli->args[0]);
	if (v < VERSION_NIL)
		return bad_argument("force: argument V must be >= -1", r->cli->args[0]);
	int rc;
	bool dirty;
	if ((rc = open_database(r)) || (rc = lock_acquire(&r->l, &r->d, r->c)))
		return rc;
	publish(r);
	if ((rc = lock_claim_state(&r->l, &r->from, &dirty)))
		return rc;
	set_state(r, r->from, dirty);
	if ((rc = lock_check(&r->l)) || (rc = db_set_version(&r->d, v, false)))
		return rc;
	set_state(r, v, false);
	log_info("version forced", F_INT("version", v), F_INT("previous_version", r->from),
	         F_BOOL("previous_dirty", dirty));
	return 0;
}

static int do_drop(struct run *r)
{
	if (!r->cli->drop_force &&
	    !confirm("Are you sure you want to drop the entire database schema?")) {
		log_error("refusing to drop the database without confirmation: use drop -f");
		return EXIT_USAGE;
	}
	int rc;
	if ((rc = open_database(r)) || (rc = lock_acquire(&r->l, &r->d, r->c)))
		return rc;
	publish(r);
	if ((rc = db_drop(&r->d)))
		return rc;
	lock_forget(&r->l); /* the lock collection went with the database */
	set_state(r, VERSION_NIL, false);
	log_info("database dropped", F_STR("database", r->c->db_name));
	return 0;
}

/* Source, database, version: what the read-only commands share. */
static int load_all(struct run *r, bool *dirty)
{
	int rc;
	if ((rc = source_load(&r->src, r->c->source_dir)) || (rc = open_database(r)) ||
	    (rc = db_get_version(&r->d, &r->from, dirty)))
		return rc;
	set_state(r, r->from, *dirty);
	return 0;
}

static int do_plan(struct run *r)
{
	enum run_kind kind;
	int64_t arg;
	bool dirty;
	int rc = parse_run_args(r->cli, r->c, &kind, &arg);
	if (rc || (rc = load_all(r, &dirty)))
		return rc;
	if (dirty)
		return dirty_refusal(r->from);
	struct plan p;
	if ((rc = plan_build(&r->src, r->from, kind, arg, &p)))
		return rc;
	if ((rc = check_files(r, &p))) {
		plan_free(&p);
		return rc;
	}
	inspect_print_plan(&p);
	rc = p.n > 0 ? EXIT_PENDING : 0;
	plan_free(&p);
	return rc;
}

static int do_status(struct run *r)
{
	bool dirty;
	int rc = load_all(r, &dirty);
	if (rc)
		return rc;
	struct plan none = {0};
	check_files(r, &none); /* status reads no body: broken ones are warnings */
	return inspect_status(&r->d, r->c, &r->src, r->from, dirty, r->cli->json);
}

static int do_validate(struct run *r)
{
	int rc = source_load(&r->src, r->c->source_dir);
	int reg = registry_load(&r->reg, r->c->source_dir);
	if (reg == 0)
		reg = registry_validate(&r->reg, &r->src);
	if (rc == 0)
		rc = source_report_all(&r->src);
	if (rc == 0)
		rc = inspect_validate(&r->src);
	if (rc == 0)
		rc = reg;
	if (rc == 0 && r->cli->validate_db) {
		bool dirty;
		if ((rc = open_database(r)) || (rc = db_get_version(&r->d, &r->from, &dirty)))
			return rc;
		set_state(r, r->from, dirty);
		rc = inspect_drift(&r->d, r->c, &r->src, r->from);
	}
	return rc;
}

/*
 * The state, and for a dirty one whether a live lock covers it, as one
 * consistent observation: the state read again after the lock must be the
 * same, else a runner that wrote clean and released between our two reads
 * would look like "dirty, no lock". Re-reads until two agree.
 */
static int observe(struct run *r, bool *dirty, bool *live)
{
	for (;;) {
		int rc = db_get_version(&r->d, &r->from, dirty);
		if (rc)
			return rc;
		set_state(r, r->from, *dirty);
		*live = false;
		if (!*dirty)
			return 0;
		char fence[sizeof r->d.seen_fence];
		int64_t v = r->from;
		snprintf(fence, sizeof fence, "%s", r->d.seen_fence);
		FAULT("wait_probe");
		/* A lock we could not read (a blip) is no proof of a failure:
		 * wait, as for a live one. */
		enum lock_seen seen = lock_probe(&r->d, r->c);
		*live = seen == LOCK_LIVE || seen == LOCK_UNKNOWN;
		bool again;
		if ((rc = db_get_version(&r->d, &r->from, &again)))
			return rc;
		set_state(r, r->from, again);
		if (again && r->from == v && strcmp(fence, r->d.seen_fence) == 0)
			return 0;
	}
}

/*
 * For app pods when a Job migrates: wait until the database reaches the
 * target and is clean. A dirty version under a live lock is a migration in
 * progress; without one it is a failure someone must fix.
 */
static int do_wait(struct run *r)
{
	uint64_t target;
	int rc;
	if (r->cli->nargs > 1)
		return bad_argument("wait: too many arguments", r->cli->args[1]);
	if (r->cli->nargs == 1) {
		if (!parse_uint(r->cli->args[0], INT64_MAX, &target))
			return bad_argument("wait: can't read version argument V", r->cli->args[0]);
	} else {
		if ((rc = source_load(&r->src, r->c->source_dir)))
			return rc;
		if (r->src.n == 0) {
			log_error("wait: no migrations in the migration directory to wait for",
			          F_STR("dir", r->c->source_dir));
			return EXIT_SOURCE;
		}
		target = r->src.m[r->src.n - 1].version;
	}
	if ((rc = open_database(r)))
		return rc;
	int64_t start = now_ms();
	for (int64_t attempt = 1;; attempt++) {
		bool dirty, live = false;
		if ((rc = observe(r, &dirty, &live)))
			return rc;
		if (!dirty && r->from >= 0 && (uint64_t)r->from >= target) {
			log_info("target version reached", F_INT("version", r->from),
			         F_INT("target", target), F_INT("waited_ms", now_ms() - start));
			return 0;
		}
		if (dirty && !live)
			return dirty_refusal(r->from);
		int64_t elapsed = now_ms() - start;
		if (attempt >= r->c->max_retries ||
		    (r->c->wait_timeout_ms > 0 && elapsed >= r->c->wait_timeout_ms)) {
			log_error("target version not reached in time", F_INT("version", r->from),
			          F_INT("target", target), F_INT("attempts", attempt),
			          F_INT("waited_ms", elapsed));
			return EXIT_PENDING;
		}
		int64_t delay =
		    wait_next_delay(r->c, (unsigned)(attempt - 1), elapsed, r->c->wait_timeout_ms);
		log_info(
		    live ? "waiting: a migration is in progress" : "waiting for the target version",
		    F_INT("version", r->from), F_INT("target", target), F_INT("attempt", attempt),
		    F_INT("max_attempts", r->c->max_retries), F_INT("delay_ms", delay));
		stop_sleep_ms(delay);
		if (stop_requested())
			return EXIT_SIGNAL_BASE + stop_requested();
	}
}

static int do_unlock(struct run *r)
{
	int rc = open_database(r);
	return rc ? rc : lock_unlock_command(&r->d, r->c, r->cli->unlock_force);
}

static int do_version(struct run *r)
{
	int rc;
	bool dirty;
	if ((rc = open_database(r)) || (rc = db_get_version(&r->d, &r->from, &dirty)))
		return rc;
	set_state(r, r->from, dirty);
	if (r->from == VERSION_NIL)
		printf("no migration\n");
	else
		printf("%" PRId64 "%s\n", r->from, dirty ? " (dirty)" : "");
	fflush(stdout);
	return 0;
}

static const char *command_name(const struct run *r)
{
	return r->cli->cmd_name[0] ? r->cli->cmd_name : "entrypoint";
}

/* "database at version 3 (dirty)", for the summary and termination message. */
static void describe(bool known, int64_t to, bool dirty, char *out, size_t len)
{
	if (!known)
		snprintf(out, len, "database version unknown");
	else if (to == VERSION_NIL)
		snprintf(out, len, "database has no version%s", dirty ? " (dirty)" : "");
	else
		snprintf(out, len, "database at version %" PRId64 " (%s)", to,
		         dirty ? "dirty" : "clean");
}

static void summary(const struct run *r, int rc, char *status, size_t len)
{
	char state[96];
	describe(r->known, r->to, r->dirty, state, sizeof state);
	snprintf(status, len, "%zu migration(s) applied; %s", r->applied, state);
	/* plan's 10 is an answer, not a failure; wait's 10 is a failure */
	bool fine = rc == 0 || (rc == EXIT_PENDING && r->cli->cmd == CMD_PLAN);
	log_summary(
	    fine ? LOG_INFO : LOG_ERROR, "run finished", F_STR("command", command_name(r)),
	    F_INT("from_version", r->from), F_INT("to_version", r->to), F_BOOL("dirty", r->dirty),
	    F_INT("applied", r->applied), F_INT("duration_ms", now_ms() - r->started),
	    F_STR("result", rc == 0 ? "ok" : exit_meaning(rc)), F_INT("exit_code", rc), F_END);
}

/*
 * The watchdog's last resort: the grace period after SIGTERM ended with a
 * migration still running, or a stop came while the main thread was stuck
 * outside one (a connection attempt). Release our lock over a connection of
 * our own, so that the next pod need not wait, and leave word of what
 * happened. Runs on the watchdog thread: it reads only the published view.
 */
static void abort_run(void *arg, int sig, bool mid_work)
{
	const struct config *c = arg; /* read-only once loaded */
	struct abort_view v;
	pthread_mutex_lock(&view_mu);
	v = view;
	pthread_mutex_unlock(&view_mu);
	char state[96], text[512];
	describe(v.known, v.to, v.dirty, state, sizeof state);
	snprintf(text, sizeof text,
	         "migrate-init %s: stopped by signal %d; %s (exit %d, retry can help: yes); %s\n",
	         v.command ? v.command : "entrypoint", sig,
	         mid_work ? "the grace period ended while a migration was running"
	                  : "no migration was running",
	         EXIT_SIGNAL_BASE + sig, state);
	termination_write(getenv("TERMINATION_MESSAGE_PATH") ? getenv("TERMINATION_MESSAGE_PATH")
	                                                     : TERMINATION_DEFAULT_PATH,
	                  text);
	log_summary(LOG_ERROR,
	            mid_work ? "aborted: grace period over with a migration running"
	                     : "stopped by signal while no migration was running",
	            F_INT("signal", sig), F_INT("to_version", v.to), F_BOOL("dirty", v.dirty),
	            F_INT("exit_code", EXIT_SIGNAL_BASE + sig), F_END);
	/* Last: with the database gone this may wait for its timeouts, and
	 * the word above must be out before anyone SIGKILLs us. */
	if (v.held)
		lock_release_detached(c, v.token);
}

int runner_main(const struct cli *cli, struct config *c, char *status, size_t len)
{
	struct run r = {
	    .cli = cli, .c = c, .from = VERSION_NIL, .to = VERSION_NIL, .started = now_ms()};
	bool offline = cli->cmd == CMD_VALIDATE && !cli->validate_db;
	int rc = offline ? 0 : config_load_database(c, cli);
	pthread_mutex_lock(&view_mu);
	view.command = command_name(&r);
	pthread_mutex_unlock(&view_mu);
	stop_set_abort(abort_run, c);
	static int (*const handlers[])(struct run *) = {
	    [CMD_ENTRYPOINT] = do_migrate, [CMD_UP] = do_migrate,    [CMD_DOWN] = do_migrate,
	    [CMD_GOTO] = do_migrate,       [CMD_FORCE] = do_force,   [CMD_VERSION] = do_version,
	    [CMD_DROP] = do_drop,          [CMD_UNLOCK] = do_unlock, [CMD_VALIDATE] = do_validate,
	    [CMD_STATUS] = do_status,      [CMD_PLAN] = do_plan,     [CMD_WAIT] = do_wait,
	};
	if (rc == 0)
		rc = cli->cmd < sizeof handlers / sizeof handlers[0] && handlers[cli->cmd]
		         ? handlers[cli->cmd](&r)
		         : EXIT_INTERNAL;
	if (rc == 0 && stop_requested())
		rc = EXIT_SIGNAL_BASE + stop_requested();
	/* Releasing the lock and closing are part of the work a stop lets
	 * finish (within the grace period). A lock we could not delete expires
	 * after its lease: a warning (logged by lock_release), not a failure. */
	stop_critical(true);
	lock_release(&r.l);
	db_close(&r.d);
	/* No network I/O past this point: from here on we finish by ourselves. */
	stop_finish();
	summary(&r, rc, status, len);
	source_free(&r.src);
	registry_free(&r.reg);
	return rc;
}
