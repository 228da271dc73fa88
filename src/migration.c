#include "migration.h"

#include "yamljson.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bson_t *parse_json(struct migration_parser *p, const uint8_t *data, size_t len, char *err,
                          size_t errlen);
static bson_t *parse_yaml(struct migration_parser *p, const uint8_t *data, size_t len, char *err,
                          size_t errlen);

bson_t *migration_parse(struct migration_parser *p, const char *ext, const uint8_t *data,
                        size_t len, char *err, size_t errlen)
{
	if (strcmp(ext, "yaml") == 0 || strcmp(ext, "yml") == 0)
		return parse_yaml(p, data, len, err, errlen);
	/* golang-migrate feeds every other body, whatever its extension, to the
	 * Extended JSON parser; so do we. */
	return parse_json(p, data, len, err, errlen);
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

/* Whether "$type" appears in d at all: most bodies have none, and then
 * there is nothing to scan for. */
static bool mentions_type_key(const uint8_t *d, size_t len)
{
	for (const uint8_t *q = d, *end = d + len;
	     (q = memchr(q, '"', (size_t)(end - q))) != NULL && (size_t)(end - q) >= 7; q++)
		if (memcmp(q, TYPE_KEY, 7) == 0)
			return true;
	return false;
}

static void scan_type_keys(const uint8_t *d, size_t len, struct type_scan *out)
{
	struct frame {
		bool object, has_binary;
		size_t first; /* index of this frame's first candidate in cand */
	} local[64], *stack = local;
	/* The stack starts on the C stack and moves to the heap only for deeper
	 * nesting: a 64 KiB block per file was, with musl, an mmap and a munmap
	 * per file. */
	size_t depth = 0, nframes = 64, *cand = NULL, ncand = 0, cap = 0;
	out->pos = NULL;
	out->n = 0;
	if (!mentions_type_key(d, len))
		return;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = d[i];
		if (c == '{' || c == '[') {
			if (depth == nframes) {
				if (nframes == MAX_FRAMES)
					break; /* libbson refuses such nesting anyway */
				nframes *= 2;
				if (stack == local) {
					stack = bson_malloc(nframes * sizeof *stack);
					memcpy(stack, local, sizeof local);
				} else {
					stack = bson_realloc(stack, nframes * sizeof *stack);
				}
			}
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
	if (stack != local)
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

/*
 * One libbson JSON reader for many bodies. bson_new_from_json makes a reader
 * per call, about 27 KiB zeroed (a 100-frame stack of bson_t) plus a 16 KiB
 * buffer and the tokenizer's stack; musl's allocator maps a block that size
 * for each call and unmaps it at the free, so with 1000 migrations the
 * static build spent most of its start-up in mmap, munmap and page faults.
 *
 * A reader is made to read a stream of concatenated JSON documents, so the
 * parser feeds it each body as {"b":BODY} and takes the array "b" out: the
 * same bytes libbson makes of BODY alone, as long as the document the
 * reader returns is BODY's whole text and nothing else. That is only tried
 * when a lexer (strings and brackets) says BODY is one array with nothing
 * but white space after it, and shallow enough that the extra level cannot
 * bring it near libbson's nesting limits (100 levels); the reader's
 * document must then hold exactly one element, the array "b", and every
 * byte fed must have been consumed. Anything else, and every error, goes
 * to bson_new_from_json on BODY alone, so results and error messages
 * (their positions included) are exactly those of a reader per body. The
 * next document's "{" is fed right after each body: the reader ends a
 * document when it sees the next one begin.
 */
#define STREAM_MAX_DEPTH 32

struct migration_parser {
	bson_json_reader_t *reader; /* NULL before the first body and after a failure */
	bool started;               /* the reader holds the "{" of the next document */
	bson_t *doc;                /* what the reader returns, reused */
	/* What the reader's callback hands out: the pieces of one wrapped body. */
	const uint8_t *piece[3];
	size_t piece_len[3];
	int npieces, at;
	size_t off;
};

struct migration_parser *migration_parser_new(void)
{
	return bson_malloc0(sizeof(struct migration_parser));
}

void migration_parser_free(struct migration_parser *p)
{
	if (!p)
		return;
	bson_json_reader_destroy(p->reader);
	if (p->doc)
		bson_destroy(p->doc);
	bson_free(p);
}

static ssize_t feed(void *handle, uint8_t *buf, size_t count)
{
	struct migration_parser *p = handle;
	size_t n = 0;
	while (n < count && p->at < p->npieces) {
		size_t k = p->piece_len[p->at] - p->off;
		if (k > count - n)
			k = count - n;
		memcpy(buf + n, p->piece[p->at] + p->off, k);
		n += k;
		p->off += k;
		if (p->off == p->piece_len[p->at]) {
			p->at++;
			p->off = 0;
		}
	}
	return (ssize_t)n;
}

static bool json_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether d is one array, brackets balanced outside strings, at most
 * STREAM_MAX_DEPTH deep, followed by white space only. Whether it is valid
 * JSON is libbson's business. */
static bool one_shallow_array(const uint8_t *d, size_t len)
{
	size_t i = 0, depth = 0;
	while (i < len && json_space(d[i]))
		i++;
	if (i == len || d[i] != '[')
		return false;
	for (; i < len; i++) {
		uint8_t c = d[i];
		if (c == '"') {
			for (i++; i < len && d[i] != '"'; i++)
				if (d[i] == '\\')
					i++;
			if (i >= len)
				return false;
		} else if (c == '[' || c == '{') {
			if (++depth > STREAM_MAX_DEPTH)
				return false;
		} else if (c == ']' || c == '}') {
			if (--depth == 0)
				break;
		}
	}
	if (i >= len)
		return false;
	for (i++; i < len; i++)
		if (!json_space(d[i]))
			return false;
	return true;
}

/* BODY through the shared reader; NULL when it cannot tell (see above). */
static bson_t *read_streamed(struct migration_parser *p, const uint8_t *data, size_t len)
{
	static const uint8_t open[] = "{\"b\":", close[] = "}{";
	if (!p->reader) {
		p->reader = bson_json_reader_new(p, feed, NULL, true, 0);
		p->started = false;
	}
	if (!p->doc)
		p->doc = bson_new();
	bson_reinit(p->doc);
	/* After the first body the reader already holds the "{". */
	p->piece[0] = p->started ? open + 1 : open;
	p->piece_len[0] = p->started ? sizeof open - 2 : sizeof open - 1;
	p->piece[1] = data;
	p->piece_len[1] = len;
	p->piece[2] = close;
	p->piece_len[2] = sizeof close - 1;
	p->npieces = 3;
	p->at = 0;
	p->off = 0;
	bson_error_t e;
	bson_t *out = NULL;
	bson_iter_t it;
	if (bson_json_reader_read(p->reader, p->doc, &e) == 1 && p->at == p->npieces &&
	    bson_iter_init(&it, p->doc) && bson_iter_next(&it) &&
	    strcmp(bson_iter_key(&it), "b") == 0 && BSON_ITER_HOLDS_ARRAY(&it)) {
		uint32_t alen;
		const uint8_t *adata;
		bson_iter_array(&it, &alen, &adata);
		if (!bson_iter_next(&it))
			out = bson_new_from_data(adata, alen);
	}
	if (out) {
		p->started = true;
		return out;
	}
	/* Their state is unknown now (a document left half-built, with a child
	 * open): the next body gets a new reader and a new document. */
	bson_json_reader_destroy(p->reader);
	p->reader = NULL;
	bson_destroy(p->doc);
	p->doc = NULL;
	return NULL;
}

/* bson_new_from_json, through p's reader when it can be. */
static bson_t *json_to_bson(struct migration_parser *p, const uint8_t *data, size_t len,
                            bson_error_t *e)
{
	if (p && one_shallow_array(data, len)) {
		bson_t *b = read_streamed(p, data, len);
		if (b)
			return b;
	}
	return bson_new_from_json(data, (ssize_t)len, e);
}

static bson_t *parse_with_type_keys(struct migration_parser *p, const uint8_t *data, size_t len,
                                    bson_error_t *e)
{
	struct type_scan ts;
	scan_type_keys(data, len, &ts);
	if (ts.n == 0)
		return json_to_bson(p, data, len, e);
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
	bson_t *raw = json_to_bson(p, (const uint8_t *)b->str, b->len, e);
	bson_string_free(b, true);
	if (!raw)
		return NULL;
	bson_t *out = bson_new();
	restore_type_keys(raw, out, true);
	bson_destroy(raw);
	return out;
}

static bson_t *parse_json(struct migration_parser *p, const uint8_t *data, size_t len, char *err,
                          size_t errlen)
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
	bson_t *b = parse_with_type_keys(p, data, len, &e);
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

bson_t *migration_parse_json(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	return parse_json(NULL, data, len, err, errlen);
}

/* YAML goes through its JSON text (yaml.h), so that it means exactly what
 * that JSON means. */
static bson_t *parse_yaml(struct migration_parser *p, const uint8_t *data, size_t len, char *err,
                          size_t errlen)
{
	size_t jlen = 0;
	char *json = yaml_to_json(data, len, false, MIGRATION_MAX_BYTES, &jlen, err, errlen);
	if (!json)
		return NULL;
	char jerr[256];
	bson_t *b = parse_json(p, (const uint8_t *)json, jlen, jerr, sizeof jerr);
	if (!b)
		snprintf(err, errlen, "%s", jerr);
	bson_free(json);
	return b;
}

bson_t *migration_parse_yaml(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	return parse_yaml(NULL, data, len, err, errlen);
}

bson_t *yaml_parse_mapping(const uint8_t *data, size_t len, char *err, size_t errlen)
{
	size_t jlen = 0;
	char *json = yaml_to_json(data, len, true, MIGRATION_MAX_BYTES, &jlen, err, errlen);
	if (!json)
		return NULL;
	bson_error_t e;
	bson_t *b = parse_with_type_keys(NULL, (const uint8_t *)json, jlen, &e);
	if (!b)
		snprintf(err, errlen, "%s", e.message);
	bson_free(json);
	return b;
}

void migration_each_command(const bson_t *body,
                            void (*fn)(const bson_t *cmd, uint32_t index, void *arg), void *arg)
{
	bson_iter_t it;
	if (!body || !bson_iter_init(&it, body))
		return;
	for (uint32_t i = 0; bson_iter_next(&it); i++) {
		uint32_t len;
		const uint8_t *data;
		bson_t cmd;
		if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
			bson_iter_document(&it, &len, &data);
			if (bson_init_static(&cmd, data, len))
				fn(&cmd, i, arg);
		}
	}
}
