/* libFuzzer: JSON migration bodies, each alone and through one parser shared
 * by every input (how source_load reads a directory): both must give the
 * same bytes or the same error. Whatever parses is also linted (lint.h
 * walks any command shape a file can hold). */
#include "lint.h"
#include "migration.h"

#include <string.h>

static struct migration_parser *shared;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512], err2[512];
	bson_t *b = migration_parse_json(data, size, err, sizeof err);
	if (!shared)
		shared = migration_parser_new();
	bson_t *s = migration_parse(shared, "json", data, size, err2, sizeof err2);
	if (!b != !s)
		__builtin_trap();
	if (b) {
		/* Whatever is accepted must be an array of documents. */
		if (migration_check_commands(b, err, sizeof err) != 0)
			__builtin_trap();
		if (b->len != s->len || memcmp(bson_get_data(b), bson_get_data(s), b->len) != 0)
			__builtin_trap();
		struct lint_finding out[4];
		for (int d = DIR_UP; d <= DIR_DOWN; d++)
			if (lint_body(b, (enum direction)d, d == DIR_UP, out, 4) > 1000000)
				__builtin_trap();
		bson_destroy(b);
		bson_destroy(s);
	} else if (strcmp(err, err2) != 0) {
		__builtin_trap();
	}
	return 0;
}
