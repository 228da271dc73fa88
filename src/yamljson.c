/*
 * The YAML-to-JSON converter, apart from the JSON parsing (migration.c) so
 * that both YAML readers, migration bodies and the registry's configuration
 * file, share one copy of it, and so that it can be fuzzed and read on its
 * own. yamljson.h is its contract.
 */
#include "yamljson.h"

#include <yaml.h> /* libyaml's */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	size_t max_len;
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
			if (y->out->len + strlen(y->anchors[i].json) > y->max_len) {
				char msg[80];
				snprintf(msg, sizeof msg,
				         "aliases expand the body past the %zu MiB limit",
				         y->max_len / (1024 * 1024));
				return yerr(y, &e->start_mark, msg);
			}
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

static bool convert_events(struct yconv *y)
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

char *yaml_to_json(const uint8_t *data, size_t len, bool mapping_root, size_t max_len,
                   size_t *json_len, char *err, size_t errlen)
{
	struct yconv *y = bson_malloc0(sizeof *y);
	y->err = err;
	y->errlen = errlen;
	y->mapping_root = mapping_root;
	y->max_len = max_len;
	err[0] = '\0';
	y->out = bson_string_new(NULL);
	yaml_parser_initialize(&y->p);
	yaml_parser_set_input_string(&y->p, data, len);
	char *json = NULL;
	if (convert_events(y)) {
		if (!y->seen_root) {
			snprintf(err, errlen, "the file is empty%s",
			         mapping_root ? ""
			                      : ": a migration is a list of command documents "
			                        "([] for none)");
		} else {
			*json_len = y->out->len;
			json = bson_string_free(y->out, false);
			y->out = NULL;
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
	if (y->out)
		bson_string_free(y->out, true);
	bson_free(y);
	return json;
}
