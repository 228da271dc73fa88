#include "commands.h"

#include "create.h"
#include "runner.h"

#include <string.h>

#define BOOL_FLAG(n, f)                                                                            \
	{                                                                                          \
		n, true, offsetof(struct command, f)                                               \
	}
#define TEXT_FLAG(n, f)                                                                            \
	{                                                                                          \
		n, false, offsetof(struct command, f)                                              \
	}

/* golang-migrate's commands (same names, arguments and flags) and ours. */
static const struct command_def commands[] = {
    {"",
     "(none)",
     "up, or goto $TARGET_VERSION when that is set",
     ARGS_IGNORED,
     {{0}},
     runner_migrate,
     NULL,
     false},
    {"up",
     "up [N]",
     "Apply all or N up migrations",
     ARGS_LIMIT,
     {{0}},
     runner_migrate,
     NULL,
     false},
    {"down",
     "down [N] [-all]",
     "Apply all or N down migrations\n\tUse -all to apply all down migrations (plain down "
     "asks on a terminal and refuses without one)",
     ARGS_LIMIT,
     {BOOL_FLAG("all", all)},
     runner_migrate,
     NULL,
     false},
    {"goto", "goto V", "Migrate to version V", ARGS_VERSION, {{0}}, runner_migrate, NULL, false},
    {"force",
     "force V",
     "Set version V but don't run migration (ignores dirty state)",
     ARGS_FORCE,
     {{0}},
     runner_force,
     NULL,
     false},
    {"version",
     "version",
     "Print current migration version (N, N (dirty) or no migration, on stdout)",
     ARGS_IGNORED,
     {{0}},
     runner_version,
     NULL,
     false},
    {"drop",
     "drop [-f]",
     "Drop everything inside database\n\tUse -f to bypass confirmation (without it: asks "
     "on a terminal, refuses without one)",
     ARGS_IGNORED,
     {BOOL_FLAG("f", force)},
     runner_drop,
     NULL,
     false},
    {"create",
     "create [-ext E] [-dir D] [-seq] [-digits N] [-format F] [-tz TZ] NAME",
     "Create a set of timestamped up/down migrations titled NAME, in directory D with "
     "extension E.\n"
     "\tUse -seq option to generate sequential up/down migrations with N digits.\n"
     "\tUse -format option to specify a Go time format string.\n"
     "\tUse -tz option to specify the timezone used for timestamps (default: UTC).",
     ARGS_NAME,
     {TEXT_FLAG("ext", ext), TEXT_FLAG("dir", dir), TEXT_FLAG("format", format),
      TEXT_FLAG("tz", tz), TEXT_FLAG("digits", digits), BOOL_FLAG("seq", seq)},
     NULL,
     create_main,
     true},
    {"unlock",
     "unlock [-force]",
     "Remove an expired lock (a dead runner's)\n\tUse -force to remove the lock even if it "
     "has not expired (logs whose it was)",
     ARGS_IGNORED,
     {BOOL_FLAG("force", force)},
     runner_unlock,
     NULL,
     false},
    {"validate",
     "validate [-db] [-strict]",
     "Check every file's name, pair and body offline (duplicates, versions past "
     "9223372036854775807, the registry); exit 3 on problems, an empty directory too; warn "
     "about commands that lose data (README, Lint)\n"
     "\tUse -db to also compare applied migrations' checksums with the files (drift: "
     "exit 3)\n"
     "\tUse -strict to exit 3 on lint warnings too",
     ARGS_IGNORED,
     {BOOL_FLAG("db", db), BOOL_FLAG("strict", strict)},
     runner_validate,
     NULL,
     true},
    {"status",
     "status [-json]",
     "Applied (when, by whom, from the history) and pending migrations\n\tUse -json for "
     "machines",
     ARGS_IGNORED,
     {BOOL_FLAG("json", json)},
     runner_status,
     NULL,
     false},
    {"restore",
     "restore V",
     "Put back the collections saved by the backup taken before version V ran (BACKUP=touched), "
     "and record the version it was taken at",
     ARGS_VERSION,
     {{0}},
     runner_restore,
     NULL,
     false},
    {"backups",
     "backups [-prune N]",
     "List the backups (BACKUP=touched), newest first\n\tUse -prune N to drop all but the "
     "newest N",
     ARGS_IGNORED,
     {TEXT_FLAG("prune", prune)},
     runner_backups,
     NULL,
     false},
    {"wait",
     "wait [V]",
     "Block until the database is at version V (default: the newest migration) and "
     "clean: 0 reached, 8 dirty, 10 deadline passed",
     ARGS_OPT_VERSION,
     {{0}},
     runner_wait,
     NULL,
     false},
    {"plan",
     "plan [V]",
     "What up (or goto V, or goto $TARGET_VERSION) would run; exit 10 when anything is "
     "pending, 0 when not",
     ARGS_OPT_VERSION,
     {{0}},
     runner_plan,
     NULL,
     false},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

const struct command_def *command_find(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

const struct command_def *command_at(size_t i)
{
	return i < NCOMMANDS ? &commands[i] : NULL;
}
