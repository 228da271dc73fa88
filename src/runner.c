#include "runner.h"

#include "apply.h"
#include "backup.h"
#include "db.h"
#include "exitcode.h"
#include "fault.h"
#include "history.h"
#include "inspect.h"
#include "lint.h"
#include "lock.h"
#include "log.h"
#include "parse.h"
#include "plan.h"
#include "progress.h"
#include "registry.h"
#include "services.h"
#include "stop.h"
#include "termination.h"
#include "util.h"
#include "wait.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

_Static_assert(sizeof(((struct lock *)0)->token) == PROGRESS_TOKEN,
               "progress.h keeps a copy of the lock token");

/* One run: the main thread's alone (the watchdog reads progress.h). */
struct run {
	const struct command *cmd;
	struct config *c;
	struct source src;
	struct registry reg;
	struct db d;
	struct lock l;
	struct apply a;
	int64_t from; /* the version as read before the work */
	int64_t started;
	const struct service *svc; /* a central layout's service; NULL: the one set */
};

static void set_from(struct run *r, int64_t v, bool dirty)
{
	r->from = v;
	progress_state(v, dirty);
}

static void locked(struct run *r)
{
	progress_lock(r->l.held, r->l.token);
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

/* Which plan the command asks for: up [N], down [N], goto V, and plan [V]
 * or the entrypoint, which follow TARGET_VERSION. */
static int plan_request(const struct run *r, enum run_kind *kind, int64_t *arg)
{
	const struct command *cmd = r->cmd;
	const char *name = cmd->def->name;
	*arg = cmd->has_arg ? cmd->arg : -1;
	if (strcmp(name, "up") == 0) {
		*kind = RUN_UP;
	} else if (strcmp(name, "down") == 0) {
		*kind = RUN_DOWN;
		if (cmd->all && cmd->has_arg) {
			log_error("down: -all cannot be used with other arguments");
			return EXIT_USAGE;
		}
		if (!cmd->all && !cmd->has_arg &&
		    !confirm("Are you sure you want to apply all down migrations?")) {
			log_error("refusing to apply all down migrations without confirmation: "
			          "use down -all (or down N)");
			return EXIT_USAGE;
		}
	} else if (strcmp(name, "goto") == 0 || cmd->has_arg) {
		*kind = RUN_GOTO;
	} else {
		*kind = r->c->has_target ? RUN_GOTO : RUN_UP;
		*arg = r->c->has_target ? r->c->target : -1;
	}
	return 0;
}

static int open_database(struct run *r)
{
	/* A reply that does not come within MIGRATION_TIMEOUT (and a little)
	 * is given up on: the client side of the bound. */
	int64_t t = r->c->migration_timeout_ms;
	int rc = db_open(&r->d, &r->c->db,
	                 t > 0 ? (int32_t)(t < INT32_MAX - 1000 ? t + 1000 : INT32_MAX) : 0);
	/* EXIT_UNREACHABLE: a mongodb+srv name that does not resolve yet, the
	 * wait's first failed attempt. */
	if (rc && rc != EXIT_UNREACHABLE)
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

/* Warnings only, about the files this plan runs, from the plan made before
 * the lock: nothing has been written yet. */
static void lint_plan(struct run *r, const struct plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		lint_file(p->steps[i].m, p->steps[i].dir, r->a.reg);
}

/* The registry beside the migrations; a central layout's service has its
 * own already, with its dependencies completed (services.h). */
static int load_registry(struct run *r)
{
	if (r->svc) {
		r->a.reg = &r->svc->reg;
		return 0;
	}
	return registry_load(&r->reg, r->c->source_dir);
}

int runner_migrate(struct run *r)
{
	enum run_kind kind;
	int64_t arg;
	int rc = plan_request(r, &kind, &arg);
	if (rc)
		return rc;
	if ((rc = source_load(&r->src, r->c->source_dir)))
		return rc;
	if ((rc = load_registry(r)))
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
	set_from(r, r->from, dirty);
	if (!dirty) {
		if ((rc = plan_build(&r->src, r->from, kind, arg, &p)))
			return rc;
		bool nothing = p.n == 0;
		lint_plan(r, &p);
		rc = apply_check_files(&r->a, &p);
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
	locked(r);
	FAULT("locked");
	if ((rc = lock_claim_state(&r->l, &r->from, &dirty)))
		return rc;
	set_from(r, r->from, dirty);
	if (dirty)
		return dirty_refusal(r->from);
	r->a.from = r->from;
	rc = plan_build(&r->src, r->from, kind, arg, &p);
	if (rc == 0 && (rc = apply_check_files(&r->a, &p)) == 0 &&
	    (rc = backup_take(&r->d, &r->l, r->c, &p, r->from)) == 0)
		rc = apply_plan(&r->a, &p);
	plan_free(&p);
	return rc;
}

/* Database, lock, and the state claimed for it: what the commands that
 * write the state without a plan (force, restore) start with. */
static int open_and_claim(struct run *r, bool *dirty)
{
	int rc;
	if ((rc = open_database(r)) || (rc = lock_acquire(&r->l, &r->d, r->c)))
		return rc;
	locked(r);
	if ((rc = lock_claim_state(&r->l, &r->from, dirty)))
		return rc;
	set_from(r, r->from, *dirty);
	return 0;
}

int runner_force(struct run *r)
{
	int64_t v = r->cmd->arg;
	bool dirty;
	int rc = open_and_claim(r, &dirty);
	if (rc || (rc = lock_check(&r->l)) || (rc = db_set_version(&r->d, v, false)))
		return rc;
	progress_state(v, false);
	log_info("version forced", F_INT("version", v), F_INT("previous_version", r->from),
	         F_BOOL("previous_dirty", dirty));
	return 0;
}

int runner_drop(struct run *r)
{
	if (!r->cmd->force &&
	    !confirm("Are you sure you want to drop the entire database schema?")) {
		log_error("refusing to drop the database without confirmation: use drop -f");
		return EXIT_USAGE;
	}
	int rc;
	if ((rc = open_database(r)) || (rc = lock_acquire(&r->l, &r->d, r->c)))
		return rc;
	locked(r);
	if ((rc = db_drop(&r->d)))
		return rc;
	lock_forget(&r->l); /* the lock collection went with the database */
	locked(r);
	progress_state(VERSION_NIL, false);
	log_info("database dropped", F_STR("database", r->c->db.name));
	return 0;
}

/* Source, database, version: what the read-only commands share. */
static int load_all(struct run *r, bool *dirty)
{
	int rc;
	if ((rc = source_load(&r->src, r->c->source_dir)) || (rc = open_database(r)) ||
	    (rc = db_get_version(&r->d, &r->from, dirty)))
		return rc;
	set_from(r, r->from, *dirty);
	return 0;
}

int runner_plan(struct run *r)
{
	enum run_kind kind;
	int64_t arg;
	bool dirty;
	int rc = plan_request(r, &kind, &arg);
	if (rc || (rc = load_all(r, &dirty)))
		return rc;
	if (dirty)
		return dirty_refusal(r->from);
	struct plan p;
	if ((rc = plan_build(&r->src, r->from, kind, arg, &p)))
		return rc;
	if ((rc = apply_check_files(&r->a, &p))) {
		plan_free(&p);
		return rc;
	}
	inspect_print_plan(&p);
	rc = p.n > 0 ? EXIT_PENDING : 0;
	plan_free(&p);
	return rc;
}

int runner_status(struct run *r)
{
	bool dirty;
	int rc = load_all(r, &dirty);
	if (rc)
		return rc;
	struct plan none = {0};
	apply_check_files(&r->a, &none); /* status reads no body: broken ones are warnings */
	return inspect_status(&r->d, r->c, &r->src, r->from, dirty, r->cmd->json,
	                      r->svc ? r->svc->name : NULL);
}

static int load_database(struct run *r);

int runner_validate(struct run *r)
{
	int rc = source_load(&r->src, r->c->source_dir);
	int reg = load_registry(r);
	if (reg == 0)
		reg = registry_validate(r->a.reg, &r->src);
	if (rc == 0)
		rc = source_report_all(&r->src);
	if (rc == 0)
		rc = inspect_validate(&r->src);
	if (rc == 0)
		rc = reg;
	size_t findings = rc == 0 ? lint_source(&r->src, r->a.reg) : 0;
	if (findings) {
		printf("lint: %zu warning%s: commands that may lose data (see the log)\n", findings,
		       findings == 1 ? "" : "s");
		if (r->cmd->strict) {
			log_error("validate -strict: lint warnings fail validation",
			          F_INT("warnings", (int64_t)findings));
			rc = EXIT_SOURCE;
		}
	}
	if (rc == 0 && r->cmd->db) {
		bool dirty;
		if ((rc = load_database(r)) || (rc = open_database(r)) ||
		    (rc = db_get_version(&r->d, &r->from, &dirty)))
			return rc;
		set_from(r, r->from, dirty);
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
		set_from(r, r->from, *dirty);
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
		set_from(r, r->from, again);
		if (again && r->from == v && strcmp(fence, r->d.seen_fence) == 0)
			return 0;
	}
}

/*
 * For app pods when a Job migrates: wait until the database reaches the
 * target and is clean. A dirty version under a live lock is a migration in
 * progress; without one it is a failure someone must fix.
 */
int runner_wait(struct run *r)
{
	int64_t target = r->cmd->arg;
	int rc;
	if (!r->cmd->has_arg) {
		if ((rc = source_load(&r->src, r->c->source_dir)))
			return rc;
		if (r->src.n == 0) {
			log_error("wait: no migrations in the migration directory to wait for",
			          F_STR("dir", r->c->source_dir));
			return EXIT_SOURCE;
		}
		target = (int64_t)r->src.m[r->src.n - 1].version;
	}
	if ((rc = open_database(r)))
		return rc;
	int64_t start = now_ms();
	for (int64_t attempt = 1;; attempt++) {
		bool dirty, live = false;
		if ((rc = observe(r, &dirty, &live)))
			return rc;
		if (!dirty && r->from >= target) {
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

int runner_unlock(struct run *r)
{
	int rc = open_database(r);
	return rc ? rc : lock_unlock_command(&r->d, r->c, r->cmd->force);
}

int runner_version(struct run *r)
{
	int rc;
	bool dirty;
	if ((rc = open_database(r)) || (rc = db_get_version(&r->d, &r->from, &dirty)))
		return rc;
	set_from(r, r->from, dirty);
	if (r->from == VERSION_NIL)
		printf("no migration\n");
	else
		printf("%" PRId64 "%s\n", r->from, dirty ? " (dirty)" : "");
	fflush(stdout);
	return 0;
}

int runner_restore(struct run *r)
{
	bool dirty;
	int64_t to;
	int rc = open_and_claim(r, &dirty);
	return rc ? rc : backup_restore(&r->d, &r->l, r->c, (uint64_t)r->cmd->arg, &to);
}

int runner_backups(struct run *r)
{
	uint64_t keep = 0;
	int rc;
	if (r->cmd->prune && !parse_uint(r->cmd->prune, INT64_MAX, &keep)) {
		log_error("backups: can't read -prune N", F_STR("value", r->cmd->prune));
		return EXIT_USAGE;
	}
	if ((rc = open_database(r)))
		return rc;
	/* Pruning drops collections: one runner at a time. */
	if (r->cmd->prune && (rc = lock_acquire(&r->l, &r->d, r->c)))
		return rc;
	locked(r);
	return backup_list(&r->d, r->c, r->cmd->prune ? (int64_t)keep : -1);
}

static void summary(const struct run *r, int rc, char *status, size_t len)
{
	struct progress p = progress_get();
	char state[96], code[24] = "";
	progress_describe(&p, state, sizeof state);
	if (r->svc && rc)
		snprintf(code, sizeof code, "exit %d, ", rc);
	snprintf(status, len, "%s%zu migration(s) applied%s %s", code, p.applied,
	         r->svc ? "," : ";", state);
	/* plan's 10 is an answer, not a failure; wait's 10 is a failure */
	bool fine = rc == 0 || (rc == EXIT_PENDING && r->cmd->def->run == runner_plan);
	log_summary(
	    fine ? LOG_INFO : LOG_ERROR, r->svc ? "service finished" : "run finished",
	    F_STR("command", command_label(r->cmd)), F_STR("service", r->svc ? r->svc->name : NULL),
	    F_INT("from_version", r->from), F_INT("to_version", p.to), F_BOOL("dirty", p.dirty),
	    F_INT("applied", (int64_t)p.applied), F_INT("duration_ms", now_ms() - r->started),
	    F_STR("result", rc == 0 ? "ok" : exit_meaning(rc)), F_INT("exit_code", rc), F_END);
}

/*
 * The watchdog's last resort: the grace period after SIGTERM ended with a
 * migration still running, or a stop came while the main thread was stuck
 * outside one (a connection attempt). Release our lock over a connection of
 * our own, so that the next pod need not wait, and leave word of what
 * happened. Runs on the watchdog thread: it reads only the configuration
 * (read-only once loaded) and a snapshot of the progress.
 */
static void abort_run(void *arg, int sig, bool mid_work)
{
	const struct config *c = arg;
	struct progress v = progress_get();
	char state[96], text[512];
	progress_describe(&v, state, sizeof state);
	snprintf(text, sizeof text,
	         "migrate-init %s: stopped by signal %d; %s (exit %d, retry can help: yes); %s\n",
	         v.command ? v.command : "entrypoint", sig,
	         mid_work ? "the grace period ended while a migration was running"
	                  : "no migration was running",
	         EXIT_SIGNAL_BASE + sig, state);
	termination_write(c->termination_path, text);
	log_summary(LOG_ERROR,
	            mid_work ? "aborted: grace period over with a migration running"
	                     : "stopped by signal while no migration was running",
	            F_INT("signal", sig), F_INT("to_version", v.to), F_BOOL("dirty", v.dirty),
	            F_INT("exit_code", EXIT_SIGNAL_BASE + sig), F_END);
	/* Last: with the database gone this may wait for its timeouts, and
	 * the word above must be out before anyone SIGKILLs us. */
	if (v.held)
		lock_release_detached(c, v.token);
	history_flush_detached(c);
}

/* The flags runner_main was given, for validate -db's late load. */
static const struct flag_value *given_flags;
static size_t given_nflags;

static int load_database(struct run *r)
{
	if (r->svc)
		return config_load_service_database(r->c, given_flags, given_nflags,
		                                    r->svc->reg.url_env, r->svc->reg.database);
	return config_load_database(r->c, given_flags, given_nflags);
}

static void init_run(struct run *r, const struct command *cmd, struct config *c,
                     const struct service *svc, int64_t started)
{
	*r = (struct run){.cmd = cmd, .c = c, .from = VERSION_NIL, .started = now_ms(), .svc = svc};
	r->a = (struct apply){.d = &r->d, .l = &r->l, .c = c, .src = &r->src, .reg = &r->reg};
	/* RUN_TIMEOUT bounds the whole run, every service of it. */
	if (c->run_timeout_ms > 0)
		r->a.run_deadline = started + c->run_timeout_ms;
}

/*
 * One set of migrations: the row's run function with the database part of
 * the configuration loaded (unless offline), and the end of every run:
 * history written, then the lock released, then the connection closed.
 * Leaves the stop handling in its critical section (the end of the run).
 */
static int run_set(struct run *r, const char *label)
{
	progress_start(label);
	int rc = r->cmd->def->offline ? 0 : load_database(r);
	stop_set_abort(abort_run, r->c);
	if (rc == 0)
		rc = r->cmd->def->run(r);
	if (rc == 0 && stop_requested())
		rc = EXIT_SIGNAL_BASE + stop_requested();
	/* Releasing the lock and closing are part of the work a stop lets
	 * finish (within the grace period). A lock we could not delete expires
	 * after its lease: a warning (logged by lock_release), not a failure. */
	stop_critical(true);
	/* Before the lock goes: the next holder finds the history complete. */
	history_flush(&r->d, r->c);
	lock_release(&r->l);
	db_close(&r->d);
	return rc;
}

static void free_run(struct run *r)
{
	source_free(&r->src);
	registry_free(&r->reg);
}

/* The commands that run for every service of a central layout at once;
 * the others (and a version argument or TARGET_VERSION, which mean one
 * service's versions) need exactly one service chosen. */
static int central_allowed(const struct command *cmd, const struct config *c, size_t nsel)
{
	static const char *const many[] = {"", "up", "plan", "status", "validate", "wait", NULL};
	bool ok = nsel == 1;
	for (size_t i = 0; !ok && many[i]; i++)
		ok =
		    strcmp(cmd->def->name, many[i]) == 0 &&
		    !(cmd->has_arg && cmd->def->args != ARGS_LIMIT) &&
		    !(c->has_target && (!cmd->def->name[0] || strcmp(cmd->def->name, "plan") == 0));
	if (ok)
		return 0;
	log_error("in a central layout this command runs for one service: choose it with "
	          "-service NAME (or SERVICES=NAME)",
	          F_STR("command", command_label(cmd)), F_INT("services", (int64_t)nsel),
	          F_STR("hint",
	                "entrypoint, up [N], plan, status, validate and wait run for "
	                "several; a version (argument or TARGET_VERSION) is one service's"));
	return EXIT_USAGE;
}

/* Appends sep and text to out (of len bytes), as far as they fit. */
static void append(char *out, size_t len, const char *sep, const char *text)
{
	size_t n = strlen(out);
	if (n < len)
		snprintf(out + n, len - n, "%s%s", sep, text);
}

/* A service that could not run (a service it depends on failed, or a stop
 * came first): its summary line and its part of the status. */
static int not_run(const struct service *s, const char *why, const char *blocker, int rc,
                   char *status, size_t len)
{
	log_summary(LOG_ERROR, "service not run", F_STR("service", s->name), F_STR("reason", why),
	            F_STR("failed_dependency", blocker), F_INT("exit_code", rc), F_END);
	char part[256];
	snprintf(part, sizeof part, "%s: not run, %s", s->name, why);
	append(status, len, "; ", part);
	return rc;
}

/*
 * A central layout (services.h): every chosen service, dependencies first,
 * each the one-set run with its own directory, database, state and lock.
 * A service whose dependency failed in this run is not run (11); the
 * others go on. The exit code is the worst (exit_worst); the summary and
 * the status name each service, the failed ones first.
 */
static int run_services(const struct command *cmd, struct config *c, int64_t started, char *status,
                        size_t len)
{
	struct services sv;
	char parts[2048] = "", failed[512] = "";
	int rc = services_load(&sv, c->source_dir);
	size_t nsel = 0, nfailed = 0;
	if (rc == 0)
		rc = services_select(&sv, c->services);
	for (size_t i = 0; rc == 0 && i < sv.n; i++)
		nsel += sv.s[i].selected;
	if (rc == 0)
		rc = central_allowed(cmd, c, nsel);
	/* Every chosen service's database settings before anything runs, so
	 * that a missing url-env variable or a bad URL writes nothing. */
	for (size_t i = 0; rc == 0 && !cmd->def->offline && i < sv.n; i++) {
		struct config sc = *c;
		sc.url = NULL;
		sc.db = (struct db_options){0};
		sc.lock_collection = sc.history_collection = NULL;
		if (sv.s[i].selected)
			rc =
			    config_load_service_database(&sc, given_flags, given_nflags,
			                                 sv.s[i].reg.url_env, sv.s[i].reg.database);
		config_free_database(&sc);
	}
	int worst = rc;
	/* A failure stops the services that depend on it when the command
	 * migrates; read-only commands look at every service. */
	bool migrating = cmd->def->run == runner_migrate;
	bool listing = cmd->def->run == runner_status || cmd->def->run == runner_plan ||
	               cmd->def->run == runner_validate;
	int *codes = bson_malloc0((sv.n + 1) * sizeof *codes);
	/* What the abort path calls the run ("up, service orders"): written
	 * before any service runs, never again, since the watchdog may read
	 * one at any time. */
	char **labels = bson_malloc0((sv.n + 1) * sizeof *labels);
	for (size_t i = 0; i < sv.n; i++)
		labels[i] = bson_strdup_printf("%s, service %s", command_label(cmd), sv.s[i].name);
	for (size_t k = 0; rc == 0 && k < sv.n; k++) {
		size_t i = sv.order[k];
		struct service *s = &sv.s[i];
		if (!s->selected)
			continue;
		const char *blocker = NULL;
		for (size_t j = 0; migrating && !blocker && j < sv.n; j++)
			if (codes[j] && services_depends(&sv, i, j))
				blocker = sv.s[j].name;
		if (stop_requested()) {
			codes[i] =
			    not_run(s, "stopped by a signal", NULL,
			            EXIT_SIGNAL_BASE + stop_requested(), parts, sizeof parts);
		} else if (blocker) {
			char why[160];
			snprintf(why, sizeof why, "%s, which it depends on, failed", blocker);
			codes[i] = not_run(s, why, blocker, EXIT_DEPENDENCY, parts, sizeof parts);
		} else {
			if (listing && !cmd->json) {
				printf("== service %s (%s)\n", s->name, s->dir);
				fflush(stdout);
			}
			log_info("service starting", F_STR("service", s->name),
			         F_STR("dir", s->dir), F_STR("database", s->reg.database),
			         F_STR("url_env", s->reg.url_env));
			struct config sc = *c;
			sc.source_dir = s->dir;
			sc.url = NULL;
			sc.db = (struct db_options){0};
			sc.lock_collection = sc.history_collection = NULL;
			struct run r;
			init_run(&r, cmd, &sc, s, started);
			codes[i] = run_set(&r, labels[i]);
			/* Between services nothing runs that a stop should let
			 * finish, and we hold no lock. */
			progress_lock(false, "");
			stop_critical(false);
			char one[256], part[400];
			summary(&r, codes[i], one, sizeof one);
			snprintf(part, sizeof part, "%s: %s", s->name, one);
			append(parts, sizeof parts, "; ", part);
			free_run(&r);
			config_free_database(&sc);
		}
		bool fine =
		    codes[i] == 0 || (codes[i] == EXIT_PENDING && cmd->def->run == runner_plan);
		if (!fine) {
			nfailed++;
			char one[160];
			snprintf(one, sizeof one, "%s (exit %d)", s->name, codes[i]);
			append(failed, sizeof failed, failed[0] ? ", " : "", one);
		}
		worst = exit_worst(worst, codes[i]);
	}
	stop_finish();
	bool fine = worst == 0 || (worst == EXIT_PENDING && cmd->def->run == runner_plan);
	log_summary(fine ? LOG_INFO : LOG_ERROR, "run finished",
	            F_STR("command", command_label(cmd)), F_INT("services", (int64_t)nsel),
	            F_INT("failed", (int64_t)nfailed),
	            F_STR("failed_services", failed[0] ? failed : NULL),
	            F_INT("duration_ms", now_ms() - started),
	            F_STR("result", worst == 0 ? "ok" : exit_meaning(worst)),
	            F_INT("exit_code", worst), F_END);
	if (failed[0])
		snprintf(status, len, "service %s failed%s", failed, parts);
	else
		snprintf(status, len, "%zu service(s)%s", nsel, parts);
	bson_free(codes);
	for (size_t i = 0; i < sv.n; i++)
		bson_free(labels[i]);
	bson_free(labels);
	services_free(&sv);
	return worst;
}

int runner_main(const struct command *cmd, struct config *c, const struct flag_value *flags,
                size_t nflags, char *status, size_t len)
{
	int64_t started = now_ms();
	given_flags = flags;
	given_nflags = nflags;
	stop_install(c->stop_grace_ms);
	if (services_detect(c->source_dir))
		return run_services(cmd, c, started, status, len);
	struct run r;
	init_run(&r, cmd, c, NULL, started);
	int rc = 0;
	if (c->services) {
		log_error("-service and SERVICES need a central layout: a migration directory "
		          "of service directories, each with its .migration-registry.yaml",
		          F_STR("dir", c->source_dir), F_STR("services", c->services));
		rc = EXIT_USAGE;
	}
	if (rc == 0)
		rc = run_set(&r, command_label(cmd));
	/* No network I/O past this point: from here on we finish by ourselves. */
	stop_finish();
	summary(&r, rc, status, len);
	free_run(&r);
	return rc;
}
