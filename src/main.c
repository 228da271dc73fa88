/* migrate-init: golang-migrate for MongoDB, as one small init-container binary. */
#include "cli.h"
#include "config.h"
#include "exitcode.h"
#include "log.h"
#include "runner.h"
#include "termination.h"
#include "util.h"
#include "version.h"

#include <mongoc/mongoc.h>
#include <signal.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* What kubectl describe pod shows: the command, the outcome, and the state. */
static void write_termination(const struct config *c, const struct command *cmd, int rc,
                              const char *status)
{
	char text[TERMINATION_MAX + 1];
	char *err = log_last_error();
	snprintf(text, sizeof text, "migrate-init %s: %s (exit %d, retry can help: %s)%s%s%s%s\n",
	         command_label(cmd), exit_meaning(rc), rc, exit_retry(rc), rc && err ? ": " : "",
	         rc && err ? err : "", status[0] ? "; " : "", status);
	bson_free(err);
	termination_write(c->termination_path, text);
}

static int run(int argc, char **argv)
{
	struct cli cli;
	struct config c;
	char status[2048] = ""; /* a central layout's: a part per service */
	/* Logging first, so that every later error honours it. */
	int rc = config_early(&c);
	if (rc == 0)
		rc = cli_parse(argc, argv, &cli);
	if (rc) {
		cli.cmd.def = command_find("");
		write_termination(&c, &cli.cmd, rc, status);
	} else if (cli.help) {
		cli_usage(stdout);
	} else if (cli.show_version) {
		version_print(stdout, cli.version_json);
	} else if (cli.cmd.help) {
		cli_command_usage(cli.cmd.def, stdout);
	} else {
		if (cli.verbose)
			log_set_level(LOG_DEBUG);
		rc = config_load(&c, cli.flags, cli.nflags);
		if (cli.cmd.def->main) {
			/* Local files only (create): no termination message. */
			rc = rc ? rc : cli.cmd.def->main(&cli.cmd);
		} else {
			if (rc == 0)
				rc = runner_main(&cli.cmd, &c, cli.flags, cli.nflags, status,
				                 sizeof status);
			write_termination(&c, &cli.cmd, rc, status);
		}
	}
	config_free(&c);
	return rc;
}

int main(int argc, char **argv)
{
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	signal(SIGPIPE, SIG_IGN);
	/* Debian's libmongoc keeps performance counters in /dev/shm/mongoc-PID,
	 * created by its load-time constructor. A file left by a killed run
	 * makes the next process with that PID (PID 1 in every container) warn
	 * in plain text, before main() can capture libmongoc's log. We never
	 * read the counters, so unlink the file now: the mapping stays valid
	 * and nothing is left behind, however we die. (The static build has
	 * the counters compiled out.) */
	char shm[32];
	snprintf(shm, sizeof shm, "/mongoc-%ld", (long)getpid());
	shm_unlink(shm);
	log_capture_mongoc();
	mongoc_init();
	int rc = run(argc, argv);
	mongoc_cleanup();
	log_shutdown();
	return rc;
}
