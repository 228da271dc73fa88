/*
 * Migration bodies to BSON: a JSON array of MongoDB command documents in
 * Extended JSON (canonical or relaxed), as golang-migrate reads them.
 * The result is an array document ("0", "1", ...) of non-empty documents.
 */
#ifndef MI_MIGRATION_H
#define MI_MIGRATION_H

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

/* Largest body we read; a command document is at most 16 MiB anyway. */
#define MIGRATION_MAX_BYTES (64u * 1024 * 1024)

/* A command document must fit in the server's maxBsonObjectSize. */
#define MIGRATION_MAX_COMMAND (16u * 1024 * 1024)

/* Parses many bodies one after another (a directory's files): one libbson
 * JSON reader for all of them instead of one per body, which costs a large
 * allocation and its page faults per body. The results are exactly those of
 * parsing each body alone. Not thread-safe: one parser per thread. */
struct migration_parser;
struct migration_parser *migration_parser_new(void);
void migration_parser_free(struct migration_parser *p);

/* Parses by extension: YAML for .yaml and .yml, Extended JSON for any other.
 * p may be NULL (the body alone). NULL on error, with the reason in err. */
bson_t *migration_parse(struct migration_parser *p, const char *ext, const uint8_t *data,
                        size_t len, char *err, size_t errlen);

bson_t *migration_parse_json(const uint8_t *data, size_t len, char *err, size_t errlen);

/* A YAML list of command documents (comments allowed), as the JSON text
 * yaml.h turns it into; errors start with "line:column:". */
bson_t *migration_parse_yaml(const uint8_t *data, size_t len, char *err, size_t errlen);

/* A YAML mapping (a configuration file) with the same typing rules. */
bson_t *yaml_parse_mapping(const uint8_t *data, size_t len, char *err, size_t errlen);

/* Checks that body is an array document of non-empty documents. */
int migration_check_commands(const bson_t *body, char *err, size_t errlen);

/* Calls fn on each command document of body, in order, with its index;
 * elements that are not documents are skipped (a checked body has none). */
void migration_each_command(const bson_t *body,
                            void (*fn)(const bson_t *cmd, uint32_t index, void *arg), void *arg);

#endif
