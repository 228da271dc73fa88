/* migrate-init: golang-migrate for MongoDB, as one small init-container binary. */
#include "cli.h"
#include "config.h"
#include "create.h"
#include "exitcode.h"
#include "log.h"
#include "runner.h"
#include "stop.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef MI_VERSION
#define MI_VERSION "dev"
#endif

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

static int run(int argc, char **argv)
{
	struct cli cli;
	struct config c;
	int rc = setup_logging();
	if (rc)
		return rc;
	if ((rc = cli_parse(argc, argv, &cli)))
		return rc;
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
	if (rc == 0)
		rc = cli.cmd == CMD_CREATE ? create_main(&cli) : runner_main(&cli, &c);
	config_free(&c);
	return rc;
}

int main(int argc, char **argv)
{
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	stop_install();
	mongoc_init();
	log_capture_mongoc();
	int rc = run(argc, argv);
	mongoc_cleanup();
	log_shutdown();
	return rc;
}
