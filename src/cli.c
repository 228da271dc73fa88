#include "cli.h"

#include "exitcode.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

struct flag {
	const char *name;
	bool *b;          /* a bool flag, or */
	const char **str; /* a flag with a value */
};

/*
 * Go's flag.Parse: consumes flags from argv[*i] on, stops at the first
 * non-flag or after "--". Bool flags take no separate value ("-all=false"
 * works, "-all false" does not), as in Go.
 */
static int parse_flags(int argc, char **argv, int *i, const struct flag *flags, size_t n,
                       const char *ctx)
{
	while (*i < argc) {
		const char *a = argv[*i];
		if (a[0] != '-' || a[1] == '\0')
			return 0;
		/* Go would take "force -1" for an unknown flag -1; a negative
		 * number is never a flag of ours, so let it through. */
		if (strspn(a + 1, "0123456789") == strlen(a + 1))
			return 0;
		if (strcmp(a, "--") == 0) {
			(*i)++;
			return 0;
		}
		const char *name = a + 1;
		if (*name == '-')
			name++;
		if (*name == '-' || *name == '=') {
			log_error("bad flag syntax", F_STR("flag", a), F_STR("command", ctx));
			return EXIT_USAGE;
		}
		const char *eq = strchr(name, '=');
		size_t len = eq ? (size_t)(eq - name) : strlen(name);
		const struct flag *f = NULL;
		for (size_t k = 0; k < n; k++)
			if (strlen(flags[k].name) == len && strncmp(flags[k].name, name, len) == 0)
				f = &flags[k];
		if (!f) {
			log_error("flag provided but not defined", F_STR("flag", a),
			          F_STR("command", ctx), F_STR("hint", "see migrate-init -help"));
			return EXIT_USAGE;
		}
		(*i)++;
		if (f->b) {
			if (!eq || strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "1") == 0) {
				*f->b = true;
			} else if (strcmp(eq + 1, "false") == 0 || strcmp(eq + 1, "0") == 0) {
				*f->b = false;
			} else {
				log_error("invalid boolean value for flag", F_STR("flag", a),
				          F_STR("command", ctx));
				return EXIT_USAGE;
			}
			continue;
		}
		if (eq) {
			*f->str = eq + 1;
		} else if (*i < argc) {
			*f->str = argv[(*i)++];
		} else {
			log_error("flag needs an argument", F_STR("flag", a),
			          F_STR("command", ctx));
			return EXIT_USAGE;
		}
	}
	return 0;
}

static const struct {
	const char *name;
	enum command cmd;
	const char *usage;
} commands[] = {
    {"up", CMD_UP, "up [N]       Apply all or N up migrations"},
    {"down", CMD_DOWN,
     "down [N] [-all]    Apply all or N down migrations\n"
     "\tUse -all to apply all down migrations"},
    {"goto", CMD_GOTO, "goto V       Migrate to version V"},
    {"force", CMD_FORCE,
     "force V      Set version V but don't run migration (ignores dirty state)"},
    {"version", CMD_VERSION, "version      Print current migration version"},
    {"drop", CMD_DROP,
     "drop [-f]    Drop everything inside database\n\tUse -f to bypass confirmation"},
    {"create", CMD_CREATE,
     "create [-ext E] [-dir D] [-seq] [-digits N] [-format F] [-tz TZ] NAME\n"
     "\t   Create a set of timestamped up/down migrations titled NAME, in directory D "
     "with extension E.\n"
     "\t   Use -seq option to generate sequential up/down migrations with N digits.\n"
     "\t   Use -format option to specify a Go time format string.\n"
     "\t   Use -tz option to specify the timezone used for timestamps (default: UTC)."},
    {"unlock", CMD_UNLOCK,
     "unlock [-force]    Remove an expired lock (a dead runner's)\n"
     "\tUse -force to remove the lock even if it has not expired"},
    {"validate", CMD_VALIDATE,
     "validate [-db] Check every file's name, pair and body offline; exit 3 on problems\n"
     "\tUse -db to also compare applied migrations' checksums with the files"},
    {"status", CMD_STATUS, "status [-json] Applied (when, by whom) and pending migrations"},
    {"wait", CMD_WAIT,
     "wait [V]     Block until the database is at version V (default: the newest "
     "migration) and clean"},
    {"plan", CMD_PLAN,
     "plan [V]     What up (or goto V, or goto $TARGET_VERSION) would run; exit 10 if "
     "anything"},
};

const char *cli_command_usage(enum command cmd)
{
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (commands[i].cmd == cmd)
			return commands[i].usage;
	return "";
}

void cli_usage(void *stream)
{
	FILE *f = stream;
	fprintf(f,
	        "Usage: migrate-init OPTIONS [COMMAND [arg...]]\n"
	        "       migrate-init [ -version | -help ]\n\n"
	        "Options:\n"
	        "  -source          Location of the migrations (file://DIR)\n"
	        "  -path            Shorthand for -source=file://path\n"
	        "  -database        Run migrations against this database (mongodb:// or "
	        "mongodb+srv://)\n"
	        "  -prefetch N      Accepted for compatibility; every file is read before the run\n"
	        "  -lock-timeout N  Allow N seconds to acquire database lock (default 15)\n"
	        "  -verbose         Print verbose logging (LOG_LEVEL=debug)\n"
	        "  -version         Print version\n"
	        "  -help            Print usage\n"
	        "  -allow-breaking  Apply versions the registry marks breaking\n\n"
	        "Commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %s\n", commands[i].usage);
	fprintf(f,
	        "\nWith no command, run as a container entrypoint: up, or goto $TARGET_VERSION.\n\n"
	        "Environment (flags win):\n"
	        "  DATABASE_URL, DATABASE_URL_FILE  the database URL, or a file holding it\n"
	        "  MIGRATION_DIR                    migrations directory (default /migrations)\n"
	        "  TARGET_VERSION                   entrypoint mode: goto this version\n"
	        "  LOCK_TIMEOUT                     like -lock-timeout; a duration such as 30s\n"
	        "  LOCK_LEASE                       lease of our lock, renewed every third (30s)\n"
	        "  LOCK_STALE_AFTER                 when a golang-migrate lock is abandoned (10m)\n"
	        "  MAX_RETRIES, RETRY_INTERVAL      waiting for the database (default 30, 2s)\n"
	        "  RETRY_MAX_INTERVAL, WAIT_TIMEOUT backoff cap (10s), overall deadline (none)\n"
	        "  STOP_GRACE_PERIOD                after SIGTERM, before aborting (20s)\n"
	        "  ALLOW_BREAKING                   like -allow-breaking\n"
	        "  DEPENDENCY_TIMEOUT               waiting for other services (5m)\n"
	        "  POD_NAME                         owner in the lock and history (hostname)\n"
	        "  TERMINATION_MESSAGE_PATH         (default /dev/termination-log)\n"
	        "  LOG_FORMAT (json|text), LOG_LEVEL (debug|info|warn|error)\n\n");
	exit_print_table(f);
}

static int parse_command_flags(int argc, char **argv, int *i, struct cli *c)
{
	struct flag f[8];
	size_t n = 0;
	f[n++] = (struct flag){"help", &c->cmd_help, NULL};
	f[n++] = (struct flag){"h", &c->cmd_help, NULL};
	switch (c->cmd) {
	case CMD_DOWN:
		f[n++] = (struct flag){"all", &c->down_all, NULL};
		break;
	case CMD_DROP:
		f[n++] = (struct flag){"f", &c->drop_force, NULL};
		break;
	case CMD_UNLOCK:
		f[n++] = (struct flag){"force", &c->unlock_force, NULL};
		break;
	case CMD_VALIDATE:
		f[n++] = (struct flag){"db", &c->validate_db, NULL};
		break;
	case CMD_STATUS:
		f[n++] = (struct flag){"json", &c->json, NULL};
		break;
	case CMD_CREATE:
		f[n++] = (struct flag){"ext", NULL, &c->ext};
		f[n++] = (struct flag){"dir", NULL, &c->dir};
		f[n++] = (struct flag){"format", NULL, &c->format};
		f[n++] = (struct flag){"tz", NULL, &c->tz};
		f[n++] = (struct flag){"digits", NULL, &c->digits};
		f[n++] = (struct flag){"seq", &c->seq, NULL};
		break;
	case CMD_VERSION:
		/* golang-migrate's version takes no flags and ignores its arguments. */
		return 0;
	default:
		break;
	}
	return parse_flags(argc, argv, i, f, n, c->cmd_name);
}

int cli_parse(int argc, char **argv, struct cli *c)
{
	memset(c, 0, sizeof *c);
	const struct flag global[] = {
	    {"help", &c->help, NULL},
	    {"h", &c->help, NULL},
	    {"version", &c->show_version, NULL},
	    {"verbose", &c->verbose, NULL},
	    {"prefetch", NULL, &c->prefetch},
	    {"lock-timeout", NULL, &c->lock_timeout},
	    {"path", NULL, &c->path},
	    {"database", NULL, &c->database},
	    {"source", NULL, &c->source},
	    {"allow-breaking", &c->allow_breaking, NULL},
	};
	int i = 1;
	int rc = parse_flags(argc, argv, &i, global, sizeof global / sizeof global[0], "");
	if (rc)
		return rc;
	c->cmd = CMD_ENTRYPOINT;
	c->cmd_name = "";
	if (i < argc) {
		const char *name = argv[i++];
		size_t k;
		for (k = 0; k < sizeof commands / sizeof commands[0]; k++)
			if (strcmp(commands[k].name, name) == 0)
				break;
		if (k == sizeof commands / sizeof commands[0]) {
			log_error("unknown command", F_STR("command", name),
			          F_STR("hint", "see migrate-init -help"));
			return EXIT_USAGE;
		}
		c->cmd = commands[k].cmd;
		c->cmd_name = commands[k].name;
		rc = parse_command_flags(argc, argv, &i, c);
		if (rc)
			return rc;
	}
	c->args = argv + i;
	c->nargs = argc - i;
	return 0;
}
