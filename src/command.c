#include "command.h"

#include "exitcode.h"
#include "log.h"
#include "parse.h"

#include <stdio.h>
#include <string.h>

const char *command_label(const struct command *cmd)
{
	return cmd->def->name[0] ? cmd->def->name : "entrypoint";
}

static int bad_argument(const struct command *cmd, const char *what, const char *value)
{
	char msg[96];
	snprintf(msg, sizeof msg, "%s: %s", cmd->def->name, what);
	log_error(msg, F_STR("value", value));
	return EXIT_USAGE;
}

int command_args(struct command *cmd, char **args, int nargs)
{
	enum args kind = cmd->def->args;
	uint64_t n;
	if (kind == ARGS_IGNORED)
		return 0;
	if (nargs > 1)
		return bad_argument(cmd, "too many arguments", args[1]);
	if (nargs == 0) {
		if (kind == ARGS_VERSION || kind == ARGS_FORCE)
			return bad_argument(cmd, "please specify version argument V", "");
		if (kind == ARGS_NAME) {
			log_error("please specify name"); /* golang-migrate's words */
			return EXIT_USAGE;
		}
		return 0;
	}
	cmd->has_arg = true;
	switch (kind) {
	case ARGS_LIMIT:
		if (!parse_uint(args[0], INT64_MAX, &n))
			return bad_argument(cmd, "can't read limit argument N", args[0]);
		cmd->arg = (int64_t)n;
		return 0;
	case ARGS_VERSION:
	case ARGS_OPT_VERSION:
		if (!parse_uint(args[0], INT64_MAX, &n))
			return bad_argument(cmd, "can't read version argument V", args[0]);
		cmd->arg = (int64_t)n;
		return 0;
	case ARGS_FORCE:
		if (!parse_go_int(args[0], &cmd->arg))
			return bad_argument(cmd, "can't read version argument V", args[0]);
		if (cmd->arg < -1)
			return bad_argument(cmd, "argument V must be >= -1", args[0]);
		return 0;
	case ARGS_NAME:
		cmd->name = args[0];
		return 0;
	case ARGS_IGNORED:
		break;
	}
	return 0;
}
