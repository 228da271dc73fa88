/*
 * Command-line parsing with golang-migrate's rules (Go's flag package):
 * global flags, then a command, then that command's own flags, then its
 * arguments. "-f", "--f", "-f=v" and "-f v" are all accepted; flag parsing
 * stops at the first argument that is not a flag.
 */
#ifndef MI_CLI_H
#define MI_CLI_H

#include <stdbool.h>

enum command {
	CMD_ENTRYPOINT, /* no command: up, or goto $TARGET_VERSION */
	CMD_UP,
	CMD_DOWN,
	CMD_GOTO,
	CMD_FORCE,
	CMD_VERSION,
	CMD_DROP,
	CMD_CREATE,
	CMD_UNLOCK,
	CMD_VALIDATE,
	CMD_STATUS,
	CMD_PLAN,
	CMD_WAIT,
};

struct cli {
	/* Global flags; NULL when not given. */
	const char *path;
	const char *source;
	const char *database;
	const char *lock_timeout;
	const char *prefetch;
	bool verbose;
	bool help;
	bool show_version;
	bool allow_breaking;

	enum command cmd;
	const char *cmd_name;
	bool cmd_help; /* "COMMAND -help" */

	/* The command's arguments after its flags. */
	char **args;
	int nargs;

	bool down_all;     /* down -all */
	bool drop_force;   /* drop -f */
	bool unlock_force; /* unlock -force */
	bool validate_db;  /* validate -db */
	bool json;         /* status -json */

	/* create */
	const char *ext;
	const char *dir;
	const char *format;
	const char *tz;
	const char *digits;
	bool seq;
};

/* Fills c from argv. Returns 0, or EXIT_USAGE after logging why. */
int cli_parse(int argc, char **argv, struct cli *c);

/* Writes the usage text to stream (a FILE *). */
void cli_usage(void *stream);

/* The usage of one command, for "COMMAND -help". */
const char *cli_command_usage(enum command cmd);

#endif
