/*
 * YAML to the JSON text it stands for. Migration bodies and the registry's
 * configuration file are written in YAML by people but parsed as Extended
 * JSON by libbson (migration.c), so that $date, $oid and the like, and the
 * number types, are libbson's, and a YAML file and its JSON twin give
 * byte-identical BSON. The typing rules for plain (unquoted) scalars:
 *   null, Null, NULL, ~ and empty   null
 *   true, True, TRUE, false, ...    booleans (YAML 1.1's yes/no/on/off stay strings)
 *   -12, 42                         integers: int32 when they fit, else int64
 *   1.5, 1e3, .5, -.inf, .nan       doubles
 *   anything else (007, 0x1F, 1_000, 2024-01-01, yes)   strings
 * Quoted scalars and those tagged !!str are always strings; other tags,
 * non-string keys, aliases to later anchors and more than one document are
 * refused. Anchors and aliases are expanded.
 *
 * Include it with quotes: libyaml's own header is also called yaml.h.
 */
#ifndef MI_YAMLJSON_H
#define MI_YAMLJSON_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The JSON text of data: its root must be a sequence (a migration: a list
 * of command documents) or, with mapping_root, a mapping (a configuration
 * file). Aliases may not expand the text past max_len bytes ("billion
 * laughs"). Returns the text, NUL-terminated, its length in *json_len, to
 * be freed with bson_free; NULL on error, with the reason in err (starting
 * with "line:column: " when it is at a place in the file). */
char *yaml_to_json(const uint8_t *data, size_t len, bool mapping_root, size_t max_len,
                   size_t *json_len, char *err, size_t errlen);

#endif
