/* libFuzzer: YAML migration bodies and YAML configuration files. */
#include "migration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	bson_t *b = migration_parse_yaml(data, size, err, sizeof err);
	if (b) {
		if (migration_check_commands(b, err, sizeof err) != 0)
			__builtin_trap();
		bson_destroy(b);
	}
	b = yaml_parse_mapping(data, size, err, sizeof err);
	if (b)
		bson_destroy(b);
	return 0;
}
