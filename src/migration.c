#include "migration.h"

#include <math.h>
#include <yaml.h>

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

/*
 * YAML bodies are turned into the JSON text they stand for and parsed by the
 * JSON path above, so that Extended JSON wrappers ($date, $oid, ...) and
 * number typing are libbson's, and a YAML file and its JSON twin give
 * byte-identical BSON. The typing rules for plain (unquoted) scalars:
 *   null, Null, NULL, ~ and empty   null
 *   true, True, TRUE, false, ...    booleans (YAML 1.1's yes/no/on/off stay strings)
 *   -12, 42                         integers: int32 when they fit, else int64
 *   1.5, 1e3, .5, -.inf, .nan       doubles
 *   anything else (007, 0x1F, 1_000, 2024-01-01, yes)   strings
 * Quoted scalars and those tagged !!str are always strings.
 */

#define YAML_MAX_DEPTH 100

struct anchor {
	char *name;
	char *json;
};

struct yframe {
	bool mapping, want_key; /* in a mapping: is the next scalar a key */
	size_t items;           /* for the commas */
	size_t anchor_start;    /* where this node's JSON starts */
	char *anchor;
};

struct yconv {
	yaml_parser_t p;
	bson_string_t *out;
	char *err;
	size_t errlen;
	/* One frame per open collection. */
	struct yframe stack[YAML_MAX_DEPTH + 1];
	int depth;
	struct anchor *anchors;
	size_t nanchors;
	bool seen_root;
	bool mapping_root; /* a configuration file, not a migration */
};

static bool yerr(struct yconv *y, const yaml_mark_t *m, const char *msg)
{
	if (y->err[0] == '\0')
		snprintf(y->err, y->errlen, "%zu:%zu: %s", m->line + 1, m->column + 1, msg);
	return false;
}

static bool match_int(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!*s || (s[0] == '0' && s[1])) /* "007" is a string, as in JSON */
		return false;
	return strspn(s, "0123456789") == strlen(s);
}

static bool match_float(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	size_t intd = strspn(s, "0123456789");
	if (intd > 1 && s[0] == '0')
		return false;
	s += intd;
	size_t frac = 0;
	if (*s == '.') {
		s++;
		frac = strspn(s, "0123456789");
		s += frac;
	}
	if (intd + frac == 0)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		size_t e = strspn(s, "0123456789");
		if (e == 0)
			return false;
		s += e;
	}
	return *s == '\0';
}

static bool one_of(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(s, *words) == 0)
			return true;
	return false;
}

/* The JSON text of a plain scalar, per the rules above. */
static void plain_scalar(bson_string_t *b, const char *s)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
	static const char *const trues[] = {"true", "True", "TRUE", NULL};
	static const char *const falses[] = {"false", "False", "FALSE", NULL};
	static const char *const infs[] = {".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", NULL};
	static const char *const ninfs[] = {"-.inf", "-.Inf", "-.INF", NULL};
	static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
	if (one_of(s, nulls)) {
		bson_string_append(b, "null");
	} else if (one_of(s, trues)) {
		bson_string_append(b, "true");
	} else if (one_of(s, falses)) {
		bson_string_append(b, "false");
	} else if (one_of(s, infs)) {
		bson_string_append(b, "{\"$numberDouble\": \"Infinity\"}");
	} else if (one_of(s, ninfs)) {
		bson_string_append(b, "{\"$numberDouble\": \"-Infinity\"}");
	} else if (one_of(s, nans)) {
		bson_string_append(b, "{\"$numberDouble\": \"NaN\"}");
	} else if (match_int(s)) {
		bson_string_append(b, s[0] == '+' ? s + 1 : s);
	} else if (match_float(s)) {
		/* Rewritten as JSON writes doubles: "1." and ".5" are not JSON.
		 * %.17g round-trips, so the double is the same either way. */
		char num[64];
		double d = strtod(s, NULL);
		snprintf(num, sizeof num, "%.17g", d);
		if (!strpbrk(num, ".eEn"))
			strcat(num, ".0");
		bson_string_append(b, num);
	} else {
		char *esc = bson_utf8_escape_for_json(s, -1);
		bson_string_append_printf(b, "\"%s\"", esc ? esc : "");
		bson_free(esc);
	}
}

static void quoted_scalar(bson_string_t *b, const char *s, size_t len)
{
	char *esc = bson_utf8_escape_for_json(s, (ssize_t)len);
	bson_string_append_printf(b, "\"%s\"", esc ? esc : "");
	bson_free(esc);
}

/* Before a value: a comma if needed; in a mapping, check key position. */
static bool begin_value(struct yconv *y, const yaml_event_t *e, bool is_scalar)
{
	if (y->depth == 0) {
		if (y->seen_root)
			return yerr(y, &e->start_mark, "a migration holds one YAML document");
		y->seen_root = true;
		return true;
	}
	struct yframe *f = &y->stack[y->depth - 1];
	if (f->mapping && f->want_key && !is_scalar)
		return yerr(y, &e->start_mark, "a mapping key must be a plain string");
	if (f->items > 0 && (!f->mapping || f->want_key))
		bson_string_append_c(y->out, ',');
	return true;
}

static void end_value(struct yconv *y)
{
	if (y->depth == 0)
		return;
	struct yframe *f = &y->stack[y->depth - 1];
	if (f->mapping) {
		if (f->want_key)
			bson_string_append_c(y->out, ':');
		else
			f->items++;
		f->want_key = !f->want_key;
	} else {
		f->items++;
	}
}

static void save_anchor(struct yconv *y, const char *name, size_t start)
{
	y->anchors = bson_realloc(y->anchors, (y->nanchors + 1) * sizeof *y->anchors);
	y->anchors[y->nanchors].name = bson_strdup(name);
	y->anchors[y->nanchors].json = bson_strdup(y->out->str + start);
	y->nanchors++;
}

static bool on_scalar(struct yconv *y, yaml_event_t *e)
{
	const char *v = (const char *)e->data.scalar.value;
	size_t len = e->data.scalar.length;
	const char *tag = (const char *)e->data.scalar.tag;
	bool is_key =
	    y->depth > 0 && y->stack[y->depth - 1].mapping && y->stack[y->depth - 1].want_key;
	if (!begin_value(y, e, true))
		return false;
	if (y->depth == 0)
		return yerr(y, &e->start_mark,
		            y->mapping_root
		                ? "the file must be a YAML mapping"
		                : "the body is a single value: a migration is a list of "
		                  "command documents");
	if (memchr(v, '\0', len))
		return yerr(y, &e->start_mark, "a NUL character in a scalar");
	size_t start = y->out->len;
	if (tag && strcmp(tag, "!") != 0 && strcmp(tag, YAML_STR_TAG) != 0)
		return yerr(y, &e->start_mark, "only the !!str tag is supported");
	if (is_key || tag || e->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		quoted_scalar(y->out, v, len);
	else
		plain_scalar(y->out, v);
	if (e->data.scalar.anchor)
		save_anchor(y, (const char *)e->data.scalar.anchor, start);
	end_value(y);
	return true;
}

static bool on_alias(struct yconv *y, yaml_event_t *e)
{
	const char *name = (const char *)e->data.alias.anchor;
	bool is_key =
	    y->depth > 0 && y->stack[y->depth - 1].mapping && y->stack[y->depth - 1].want_key;
	if (is_key)
		return yerr(y, &e->start_mark, "an alias cannot be a mapping key");
	if (!begin_value(y, e, false))
		return false;
	for (size_t i = y->nanchors; i-- > 0;) {
		if (strcmp(y->anchors[i].name, name) == 0) {
			/* Aliases of aliases grow exponentially ("billion laughs"):
			 * a few hundred bytes can stand for gigabytes. */
			if (y->out->len + strlen(y->anchors[i].json) > MIGRATION_MAX_BYTES)
				return yerr(y, &e->start_mark,
				            "aliases expand the body past the 64 MiB limit");
			bson_string_append(y->out, y->anchors[i].json);
			end_value(y);
			return true;
		}
	}
	return yerr(y, &e->start_mark, "an alias to an anchor that is not defined before it");
}

static bool on_start(struct yconv *y, yaml_event_t *e, bool mapping)
{
	if (!begin_value(y, e, false))
		return false;
	if (y->depth == 0 && mapping && !y->mapping_root)
		return yerr(
		    y, &e->start_mark,
		    "the body is a YAML mapping: a migration is a list of command documents");
	if (y->depth == 0 && !mapping && y->mapping_root)
		return yerr(y, &e->start_mark, "the file must be a YAML mapping");
	if (y->depth == YAML_MAX_DEPTH)
		return yerr(y, &e->start_mark, "nesting deeper than 100 levels");
	const char *tag =
	    (const char *)(mapping ? e->data.mapping_start.tag : e->data.sequence_start.tag);
	if (tag && strcmp(tag, "!") != 0)
		return yerr(y, &e->start_mark, "tags on collections are not supported");
	const char *anchor =
	    (const char *)(mapping ? e->data.mapping_start.anchor : e->data.sequence_start.anchor);
	struct yframe *f = &y->stack[y->depth++];
	f->mapping = mapping;
	f->want_key = true;
	f->items = 0;
	f->anchor_start = y->out->len;
	f->anchor = anchor ? bson_strdup(anchor) : NULL;
	bson_string_append_c(y->out, mapping ? '{' : '[');
	return true;
}

static void on_end(struct yconv *y, bool mapping)
{
	struct yframe *f = &y->stack[--y->depth];
	bson_string_append_c(y->out, mapping ? '}' : ']');
	if (f->anchor) {
		save_anchor(y, f->anchor, f->anchor_start);
		bson_free(f->anchor);
		f->anchor = NULL;
	}
	end_value(y);
}

static bool yaml_to_json(struct yconv *y)
{
	for (;;) {
		yaml_event_t e;
		if (!yaml_parser_parse(&y->p, &e)) {
			yaml_mark_t m = y->p.problem_mark;
			char msg[256];
			snprintf(msg, sizeof msg, "%s%s%s",
			         y->p.problem ? y->p.problem : "invalid YAML",
			         y->p.context ? " " : "", y->p.context ? y->p.context : "");
			return yerr(y, &m, msg);
		}
		bool ok = true, done = false;
		switch (e.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_SCALAR_EVENT:
			ok = on_scalar(y, &e);
			break;
		case YAML_ALIAS_EVENT:
			ok = on_alias(y, &e);
			break;
		case YAML_SEQUENCE_START_EVENT:
			ok = on_start(y, &e, false);
			break;
		case YAML_MAPPING_START_EVENT:
			ok = on_start(y, &e, true);
			break;
		case YAML_SEQUENCE_END_EVENT:
			on_end(y, false);
			break;
		case YAML_MAPPING_END_EVENT:
			on_end(y, true);
			break;
		default:
			break;
		}
		yaml_event_delete(&e);
		if (!ok)
			return false;
		if (done)
			return true;
	}
}

static bson_t *parse_yaml(const uint8_t *data, size_t len, bool mapping_root, char *err,
                          size_t errlen)
{
	struct yconv *y = bson_malloc0(sizeof *y);
	y->err = err;
	y->errlen = errlen;
	y->mapping_root = mapping_root;
	err[0] = '\0';
	y->out = bson_string_new(NULL);
	yaml_parser_initialize(&y->p);
	yaml_parser_set_input_string(&y->p, data, len);
	bson_t *b = NULL;
	if (yaml_to_json(y)) {
		if (!y->seen_root) {
			snprintf(err, errlen, "the file is empty%s",
			         mapping_root ? ""
			                      : ": a migration is a list of command documents "
			                        "([] for none)");
		} else if (mapping_root) {
			bson_error_t e;
			b = parse_with_type_keys((const uint8_t *)y->out->str, y->out->len, &e);
			if (!b)
				snprintf(err, errlen, "%s", e.message);
		} else {
			char jerr[256];
			b = migration_parse_json((const uint8_t *)y->out->str, y->out->len, jerr,
			                         sizeof jerr);
			if (!b)
				snprintf(err, errlen, "%s", jerr);
		}
	}
	yaml_parser_delete(&y->p);
	for (int i = 0; i < y->depth; i++)
		bson_free(y->stack[i].anchor);
	for (size_t i = 0; i < y->nanchors; i++) {
		bson_free(y->anchors[i].name);
		bson_free(y->anchors[i].json);
	}
	bson_free(y->anchors);
	bson_string_free(y->out, true);
	bson_free(y);
	return b;
}

bson_t *migration_parse_yaml(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	return parse_yaml(data, len, false, err, errlen);
}

bson_t *yaml_parse_mapping(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	return parse_yaml(data, len, true, err, errlen);
}
