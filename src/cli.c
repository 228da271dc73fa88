#include "cli.h"

#include "exitcode.h"
#include "log.h"
#include "parse.h"

#include <stdio.h>
#include <string.h>

/* A flag as the parser sees it: where its value goes. */
struct flag {
	const char *name; /* without the dash */
	bool is_bool;
	bool *b;             /* a bool of ours, or */
	const char **text;   /* a text of ours, or */
	struct cli *given;   /* a setting: appended to given->flags */
	const char *setting; /* its name there ("-path") */
};

static int store(const struct flag *f, const char *value, const char *arg, const char *ctx)
{
	bool b = true;
	if (f->is_bool && value && !parse_go_bool(value, &b)) {
		log_error("invalid boolean value for flag", F_STR("flag", arg),
		          F_STR("command", ctx));
		return EXIT_USAGE;
	}
	if (f->b) {
		*f->b = b;
	} else if (f->text) {
		*f->text = value;
	} else if (f->given->nflags == CLI_MAX_FLAGS) {
		log_error("too many flags", F_STR("flag", arg));
		return EXIT_USAGE;
	} else {
		f->given->flags[f->given->nflags++] =
		    (struct flag_value){f->setting, f->is_bool ? (b ? "true" : "false") : value};
	}
	return 0;
}

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
		const char *value = eq ? eq + 1 : NULL;
		if (!f->is_bool && !value) {
			if (*i == argc) {
				log_error("flag needs an argument", F_STR("flag", a),
				          F_STR("command", ctx));
				return EXIT_USAGE;
			}
			value = argv[(*i)++];
		}
		int rc = store(f, value, a, ctx);
		if (rc)
			return rc;
	}
	return 0;
}

void cli_command_usage(const struct command_def *def, void *stream)
{
	/* golang-migrate's layout: a long synopsis gets its help on the next
	 * line. */
	if (strlen(def->synopsis) > 12)
		fprintf(stream, "%s\n\t   %s\n", def->synopsis, def->help);
	else
		fprintf(stream, "%-12s %s\n", def->synopsis, def->help);
}

void cli_usage(void *stream)
{
	FILE *f = stream;
	fprintf(f, "Usage: migrate-init OPTIONS [COMMAND [arg...]]\n"
	           "       migrate-init [ -version [-json] | -help ]\n\n"
	           "Options:\n");
	const char *name, *help;
	bool is_bool;
	for (size_t i = 0; config_flag(i, &name, &is_bool, &help); i++)
		fprintf(f, "  %-17s %s\n", name, help);
	fprintf(f, "  %-17s %s\n  %-17s %s\n  %-17s %s\n\nCommands:\n", "-verbose",
	        "Print verbose logging (LOG_LEVEL=debug)", "-version",
	        "Print version; -json adds the commit and the C libraries inside", "-help",
	        "Print usage");
	const struct command_def *def;
	for (size_t i = 1; (def = command_at(i)); i++) {
		fprintf(f, "  ");
		cli_command_usage(def, f);
	}
	fprintf(f, "\nWith no command, run as a container entrypoint: %s.\n\n",
	        command_at(0)->help);
	config_print_env(f);
	fprintf(f, "\n");
	exit_print_table(f);
}

/* golang-migrate's version takes no flags and ignores its arguments: a
 * command with no flags and no arguments of its own parses none. */
static bool takes_flags(const struct command_def *def)
{
	return def->flags[0].name || def->args != ARGS_IGNORED;
}

static int parse_command(int argc, char **argv, int *i, struct command *cmd)
{
	const struct command_def *def = cmd->def;
	struct flag f[8] = {{"help", true, &cmd->help, NULL, NULL, NULL},
	                    {"h", true, &cmd->help, NULL, NULL, NULL}};
	size_t n = 2;
	for (size_t k = 0; k < sizeof def->flags / sizeof def->flags[0] && def->flags[k].name;
	     k++) {
		const struct command_flag *cf = &def->flags[k];
		char *field = (char *)cmd + cf->field;
		f[n++] = (struct flag){cf->name,
		                       cf->is_bool,
		                       cf->is_bool ? (bool *)field : NULL,
		                       cf->is_bool ? NULL : (const char **)field,
		                       NULL,
		                       NULL};
	}
	if (!takes_flags(def))
		return 0;
	int rc = parse_flags(argc, argv, i, f, n, def->name);
	if (rc || cmd->help)
		return rc;
	return command_args(cmd, argv + *i, argc - *i);
}

int cli_parse(int argc, char **argv, struct cli *c)
{
	memset(c, 0, sizeof *c);
	struct flag global[CLI_MAX_FLAGS] = {
	    {"help", true, &c->help, NULL, NULL, NULL},
	    {"h", true, &c->help, NULL, NULL, NULL},
	    {"version", true, &c->show_version, NULL, NULL, NULL},
	    {"verbose", true, &c->verbose, NULL, NULL, NULL},
	    {"json", true, &c->version_json, NULL, NULL, NULL},
	};
	size_t n = 5;
	const char *name, *help;
	bool is_bool;
	for (size_t k = 0; n < CLI_MAX_FLAGS && config_flag(k, &name, &is_bool, &help); k++)
		global[n++] = (struct flag){name + 1, is_bool, NULL, NULL, c, name};
	int i = 1;
	int rc = parse_flags(argc, argv, &i, global, n, "");
	if (rc)
		return rc;
	c->cmd.def = command_find("");
	if (c->version_json && !c->show_version) {
		log_error("-json goes with -version (a command's own -json comes after it)");
		return EXIT_USAGE;
	}
	if (i == argc)
		return 0;
	const char *cmd = argv[i++];
	if (!*cmd || !(c->cmd.def = command_find(cmd))) {
		c->cmd.def = command_find("");
		log_error("unknown command", F_STR("command", cmd),
		          F_STR("hint", "see migrate-init -help"));
		return EXIT_USAGE;
	}
	return parse_command(argc, argv, &i, &c->cmd);
}
