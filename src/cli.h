/*
 * Command-line parsing with golang-migrate's rules (Go's flag package):
 * global flags, then a command, then that command's own flags, then its
 * arguments. "-f", "--f", "-f=v" and "-f v" are all accepted; flag parsing
 * stops at the first argument that is not a flag. Which global flags exist
 * is config.h's table (plus -help, -version, -verbose); which commands and
 * their flags, command.h's.
 */
#ifndef MI_CLI_H
#define MI_CLI_H

#include "commands.h"
#include "config.h"

#include <stdbool.h>

#define CLI_MAX_FLAGS 32

struct cli {
	bool help;
	bool show_version;
	bool version_json; /* -version -json */
	bool verbose;
	/* The global flags that are settings, in the order given. */
	struct flag_value flags[CLI_MAX_FLAGS];
	size_t nflags;
	struct command cmd;
};

/* Fills c from argv (whose strings it points into). 0, or EXIT_USAGE after
 * logging why. */
int cli_parse(int argc, char **argv, struct cli *c);

/* Writes the usage text to stream (a FILE *). */
void cli_usage(void *stream);

/* Writes one command's usage, for "COMMAND -help". */
void cli_command_usage(const struct command_def *def, void *stream);

#endif
