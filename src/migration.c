#include "migration.h"

#include "yaml.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bson_t *migration_parse(const char *ext, const uint8_t *data, size_t len, char *err, size_t errlen)
{
	if (strcmp(ext, "yaml") == 0 || strcmp(ext, "yml") == 0)
		return migration_parse_yaml(data, len, err, errlen);
	/* golang-migrate feeds every other body, whatever its extension, to the
	 * Extended JSON parser; so do we. */
	return migration_parse_json(data, len, err, errlen);
}

int migration_check_commands(const bson_t *body, char *err, size_t errlen)
{
	bson_iter_t it;
	uint32_t i = 0;
	if (!bson_iter_init(&it, body)) {
		snprintf(err, errlen, "corrupt BSON");
		return -1;
	}
	for (; bson_iter_next(&it); i++) {
		if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
			snprintf(err, errlen,
			         "element %u is not a document: a migration is an array of command "
			         "documents such as {\"insert\": \"users\", \"documents\": [...]}",
			         i);
			return -1;
		}
		uint32_t dlen;
		const uint8_t *d;
		bson_iter_document(&it, &dlen, &d);
		if (dlen <= 5) {
			snprintf(err, errlen, "command %u is an empty document", i);
			return -1;
		}
		if (dlen > MIGRATION_MAX_COMMAND) {
			snprintf(
			    err, errlen,
			    "command %u is %u bytes of BSON; a MongoDB command is at most 16 MiB",
			    i, dlen);
			return -1;
		}
	}
	return 0;
}

/*
 * libbson 1.23 reads {"$type": ...} as the start of a legacy binary
 * ({"$binary": "...", "$type": "00"}) and rejects the $type query and
 * update operator ({"$currentDate": {"at": {"$type": "date"}}}, {"$type": 2})
 * that golang-migrate passes through. So before parsing, every "$type" key
 * of an object without a "$binary" key is renamed to a placeholder, and
 * renamed back in the BSON. Finding those keys needs only a lexer: strings,
 * brackets and colons; libbson still does all the parsing.
 */
#define TYPE_KEY "\"$type\""
#define PLACEHOLDER "__migrate_init_$type__"
#define MAX_FRAMES 4096

struct type_scan {
	size_t *pos; /* offsets of "$type" keys to rename */
	size_t n;
};

static void scan_type_keys(const uint8_t *d, size_t len, struct type_scan *out)
{
	struct frame {
		bool object, has_binary;
		size_t first; /* index of this frame's first candidate in cand */
	} *stack = bson_malloc(MAX_FRAMES * sizeof *stack);
	size_t depth = 0, *cand = NULL, ncand = 0, cap = 0;
	out->pos = NULL;
	out->n = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = d[i];
		if (c == '{' || c == '[') {
			if (depth == MAX_FRAMES)
				break; /* libbson refuses such nesting anyway */
			stack[depth++] = (struct frame){c == '{', false, ncand};
		} else if ((c == '}' || c == ']') && depth > 0) {
			struct frame *f = &stack[--depth];
			if (f->object && !f->has_binary) {
				for (size_t k = f->first; k < ncand; k++) {
					out->pos =
					    bson_realloc(out->pos, (out->n + 1) * sizeof(size_t));
					out->pos[out->n++] = cand[k];
				}
			}
			ncand = f->first;
		} else if (c == '"') {
			size_t start = i++;
			while (i < len && d[i] != '"')
				i += d[i] == '\\' ? 2 : 1;
			if (i >= len || depth == 0 || !stack[depth - 1].object)
				continue;
			size_t j = i + 1;
			while (j < len && strchr(" \t\r\n", d[j]) && d[j])
				j++;
			if (j >= len || d[j] != ':')
				continue;
			size_t klen = i + 1 - start;
			if (klen == 7 && memcmp(d + start, TYPE_KEY, 7) == 0) {
				if (ncand == cap) {
					cap = cap ? cap * 2 : 16;
					cand = bson_realloc(cand, cap * sizeof *cand);
				}
				cand[ncand++] = start;
			} else if (klen == 9 && memcmp(d + start, "\"$binary\"", 9) == 0) {
				stack[depth - 1].has_binary = true;
			}
		}
	}
	bson_free(cand);
	bson_free(stack);
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;
	return x < y ? -1 : x > y;
}

/* Copies src into dst with the placeholder key turned back into "$type". */
static void restore_type_keys(const bson_t *src, bson_t *dst, bool array)
{
	bson_iter_t it;
	if (!bson_iter_init(&it, src))
		return;
	while (bson_iter_next(&it)) {
		const char *key = bson_iter_key(&it);
		if (!array && strcmp(key, PLACEHOLDER) == 0)
			key = "$type";
		if (BSON_ITER_HOLDS_DOCUMENT(&it) || BSON_ITER_HOLDS_ARRAY(&it)) {
			bool sub_array = BSON_ITER_HOLDS_ARRAY(&it);
			uint32_t len;
			const uint8_t *data;
			bson_t sub, child;
			if (sub_array)
				bson_iter_array(&it, &len, &data);
			else
				bson_iter_document(&it, &len, &data);
			bson_init_static(&sub, data, len);
			if (sub_array)
				bson_append_array_begin(dst, key, -1, &child);
			else
				bson_append_document_begin(dst, key, -1, &child);
			restore_type_keys(&sub, &child, sub_array);
			if (sub_array)
				bson_append_array_end(dst, &child);
			else
				bson_append_document_end(dst, &child);
		} else {
			bson_append_value(dst, key, -1, bson_iter_value(&it));
		}
	}
}

static bson_t *parse_with_type_keys(const uint8_t *data, size_t len, bson_error_t *e)
{
	struct type_scan ts;
	scan_type_keys(data, len, &ts);
	if (ts.n == 0)
		return bson_new_from_json(data, (ssize_t)len, e);
	qsort(ts.pos, ts.n, sizeof *ts.pos, cmp_size);
	bson_string_t *b = bson_string_new(NULL);
	size_t at = 0;
	for (size_t k = 0; k < ts.n; k++) {
		bson_string_append_printf(b, "%.*s\"" PLACEHOLDER "\"", (int)(ts.pos[k] - at),
		                          (const char *)data + at);
		at = ts.pos[k] + 7;
	}
	bson_string_append_printf(b, "%.*s", (int)(len - at), (const char *)data + at);
	bson_free(ts.pos);
	bson_t *raw = bson_new_from_json((const uint8_t *)b->str, b->len, e);
	bson_string_free(b, true);
	if (!raw)
		return NULL;
	bson_t *out = bson_new();
	restore_type_keys(raw, out, true);
	bson_destroy(raw);
	return out;
}

bson_t *migration_parse_json(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	size_t i = 0;
	while (i < len && strchr(" \t\r\n", data[i]) && data[i])
		i++;
	if (i == len) {
		snprintf(err, errlen,
		         "the file is empty: a migration is a JSON array of command "
		         "documents ([] for none)");
		return NULL;
	}
	if (len - i >= 3 && memcmp(data + i, "\xEF\xBB\xBF", 3) == 0) {
		snprintf(err, errlen,
		         "the file starts with a UTF-8 byte-order mark: save it without "
		         "one (golang-migrate rejects it too)");
		return NULL;
	}
	/* libbson turns a top-level array into a document with keys "0", "1"...,
	 * so an object and an array would look alike afterwards. */
	if (data[i] != '[') {
		snprintf(err, errlen, "%s: a migration is a JSON array of command documents",
		         data[i] == '{' ? "the body is a JSON object, not an array"
		                        : "the body is not a JSON array");
		return NULL;
	}
	if (memchr(data, '\0', len)) {
		snprintf(err, errlen, "the file holds a NUL byte: not JSON");
		return NULL;
	}
	bson_error_t e;
	bson_t *b = parse_with_type_keys(data, len, &e);
	if (!b) {
		bool nul = false;
		for (size_t k = 0; k + 6 <= len && !nul; k++)
			nul = memcmp(data + k, "\\u0000", 6) == 0;
		snprintf(err, errlen, "invalid JSON: %s%s", e.message,
		         nul ? " (a \\u0000 escape: BSON keys and many strings cannot hold NUL)"
		             : "");
		return NULL;
	}
	if (migration_check_commands(b, err, errlen) != 0) {
		bson_destroy(b);
		return NULL;
	}
	return b;
}

/* YAML goes through its JSON text (yaml.h), so that it means exactly what
 * that JSON means. */
bson_t *migration_parse_yaml(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	size_t jlen = 0;
	char *json = yaml_to_json(data, len, false, MIGRATION_MAX_BYTES, &jlen, err, errlen);
	if (!json)
		return NULL;
	char jerr[256];
	bson_t *b = migration_parse_json((const uint8_t *)json, jlen, jerr, sizeof jerr);
	if (!b)
		snprintf(err, errlen, "%s", jerr);
	bson_free(json);
	return b;
}

bson_t *yaml_parse_mapping(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	size_t jlen = 0;
	char *json = yaml_to_json(data, len, true, MIGRATION_MAX_BYTES, &jlen, err, errlen);
	if (!json)
		return NULL;
	bson_error_t e;
	bson_t *b = parse_with_type_keys((const uint8_t *)json, jlen, &e);
	if (!b)
		snprintf(err, errlen, "%s", e.message);
	bson_free(json);
	return b;
}
