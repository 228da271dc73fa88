/* migrate-init: golang-migrate for MongoDB, as one small init-container binary. */
#include "cli.h"
#include "config.h"
#include "create.h"
#include "exitcode.h"
#include "log.h"
#include "runner.h"
#include "stop.h"
#include "termination.h"
#include "util.h"

#include <mongoc/mongoc.h>
#include <signal.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* LOG_FORMAT and LOG_LEVEL come first, so every later error honours them. */
static int setup_logging(void)
{
	const char *f = getenv("LOG_FORMAT"), *l = getenv("LOG_LEVEL");
	enum log_format format;
	enum log_level level;
	if (f && *f) {
		if (!log_parse_format(f, &format)) {
			log_error("invalid configuration value", F_STR("variable", "LOG_FORMAT"),
			          F_STR("value", f), F_STR("error", "expected json or text"));
			return EXIT_USAGE;
		}
		log_set_format(format);
	}
	if (l && *l) {
		if (!log_parse_level(l, &level)) {
			log_error("invalid configuration value", F_STR("variable", "LOG_LEVEL"),
			          F_STR("value", l),
			          F_STR("error", "expected debug, info, warn or error"));
			return EXIT_USAGE;
		}
		log_set_level(level);
	}
	return 0;
}

/* What kubectl describe pod shows: the command, the outcome, and the state. */
static void write_termination(const struct cli *cli, int rc, const char *status)
{
	const char *path = getenv("TERMINATION_MESSAGE_PATH");
	char text[TERMINATION_MAX + 1];
	char *err = log_last_error();
	snprintf(text, sizeof text, "migrate-init %s: %s (exit %d, retry can help: %s)%s%s%s%s\n",
	         cli && cli->cmd_name[0] ? cli->cmd_name : "entrypoint", exit_meaning(rc), rc,
	         exit_retry(rc), rc && err ? ": " : "", rc && err ? err : "", status[0] ? "; " : "",
	         status);
	bson_free(err);
	termination_write(path && *path ? path : TERMINATION_DEFAULT_PATH, text);
}

static int run(int argc, char **argv)
{
	struct cli cli;
	struct config c;
	char status[256] = "";
	int rc = setup_logging();
	if (rc)
		return rc;
	if ((rc = cli_parse(argc, argv, &cli))) {
		write_termination(NULL, rc, status);
		return rc;
	}
	if (cli.help) {
		cli_usage(stdout);
		return 0;
	}
	if (cli.show_version) {
		printf("%s\n", MI_VERSION);
		return 0;
	}
	if (cli.cmd_help) {
		fprintf(stdout, "%s\n", cli_command_usage(cli.cmd));
		return 0;
	}
	if (cli.verbose)
		log_set_level(LOG_DEBUG);
	rc = config_load(&c, &cli);
	if (rc == 0 && cli.cmd == CMD_CREATE) {
		rc = create_main(&cli);
	} else if (rc == 0) {
		stop_install(c.stop_grace_ms);
		rc = runner_main(&cli, &c, status, sizeof status);
	}
	if (cli.cmd != CMD_CREATE)
		write_termination(&cli, rc, status);
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
