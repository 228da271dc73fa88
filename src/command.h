/*
 * What a command is: a row of the command table (commands.h) and, parsed
 * from the command line by that row, a struct command, which is what the
 * runner receives: a command with its arguments already read and checked,
 * never the command line itself.
 */
#ifndef MI_COMMAND_H
#define MI_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct run; /* runner.c's: the state of one run, for the run functions */
struct command;

/* How a command's arguments are read; errors name the command. */
enum args {
	ARGS_IGNORED,     /* none taken, any given ignored (as golang-migrate does) */
	ARGS_LIMIT,       /* [N]: a whole number */
	ARGS_VERSION,     /* V: a whole number, required */
	ARGS_OPT_VERSION, /* [V] */
	ARGS_FORCE,       /* V: -1 or more (Go's Atoi) */
	ARGS_NAME,        /* NAME, required */
};

struct command_flag {
	const char *name;
	bool is_bool;
	size_t field; /* offset in struct command: bool, or const char * */
};

struct command_def {
	const char *name; /* "" for the entrypoint (no command) */
	const char *synopsis;
	const char *help; /* indented continuation lines start with \t */
	enum args args;
	struct command_flag flags[6];
	/* Exactly one: run inside the runner (database, lock, summary,
	 * termination message), or main alone (create: local files only). */
	int (*run)(struct run *r);
	int (*main)(const struct command *cmd);
	bool offline; /* run without a database URL (validate; -db loads it) */
};

struct command {
	const struct command_def *def;
	bool help; /* COMMAND -help */
	bool has_arg;
	int64_t arg;      /* N or V */
	const char *name; /* NAME (create) */
	/* The commands' own flags. */
	bool all;          /* down -all */
	bool force;        /* drop -f, unlock -force */
	bool db;           /* validate -db */
	bool strict;       /* validate -strict */
	bool json;         /* status -json */
	const char *prune; /* backups -prune N */
	const char *ext, *dir, *format, *tz, *digits;
	bool seq; /* create */
};

/* Reads the command's arguments into cmd by its row's rule. 0, or
 * EXIT_USAGE after logging why. */
int command_args(struct command *cmd, char **args, int nargs);

/* "entrypoint" or the command's name, for logs and messages. */
const char *command_label(const struct command *cmd);

#endif
