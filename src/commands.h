/*
 * The commands, one table (commands.c): each row is a command's name, its
 * synopsis and help, its own flags, how its arguments are read and which
 * function runs it. The table drives argv parsing (cli.c), -help, dispatch
 * (main.c) and README's command table (tests/unit/test_readme.c).
 */
#ifndef MI_COMMANDS_H
#define MI_COMMANDS_H

#include "command.h"

#include <stddef.h>

/* The row named name ("" for the entrypoint); NULL when there is none. */
const struct command_def *command_find(const char *name);

/* Row i, or NULL past the end; the entrypoint is row 0. */
const struct command_def *command_at(size_t i);

#endif
