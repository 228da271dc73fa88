/* libFuzzer: JSON migration bodies. */
#include "migration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	bson_t *b = migration_parse_json(data, size, err, sizeof err);
	if (b) {
		/* Whatever is accepted must be an array of documents. */
		if (migration_check_commands(b, err, sizeof err) != 0)
			__builtin_trap();
		bson_destroy(b);
	}
	return 0;
}
