#include "lint.h"

#include "log.h"
#include "migration.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

enum {
	R_OUT,
	R_MERGE,
	R_DROP,
	R_DROP_DB,
	R_DROP_INDEXES,
	R_DELETE_ALL,
	R_REPLACE_ALL,
	R_RENAME,
	R_NO_DOWN,
};

const struct lint_rule lint_rules[] = {
    [R_OUT] = {"out-replaces-collection",
               "$out into the aggregated collection replaces it with the pipeline's output: "
               "documents an earlier stage filtered, limited or reshaped away are lost"},
    [R_MERGE] = {"merge-replace-loses-fields",
                 "$merge with whenMatched replace into the aggregated collection after a stage "
                 "that reshapes documents replaces each one with the reshaped version"},
    [R_DROP] = {"drop-collection", "drop in an up migration deletes the collection and its data"},
    [R_DROP_DB] = {"drop-database", "dropDatabase in an up migration deletes every collection"},
    [R_DROP_INDEXES] = {"drop-all-indexes",
                        "dropIndexes \"*\" in an up migration drops every index, unique ones "
                        "(constraints) included"},
    [R_DELETE_ALL] = {"delete-all", "delete with an empty filter deletes every document"},
    [R_REPLACE_ALL] = {"replace-all",
                       "update with multi and an empty filter whose update is a replacement "
                       "document overwrites every document"},
    [R_RENAME] = {"rename-drop-target",
                  "renameCollection with dropTarget deletes the target collection if it exists"},
    [R_NO_DOWN] = {"destructive-without-down",
                   "an up migration that loses data and has no down file cannot be reverted"},
};
const size_t lint_nrules = sizeof lint_rules / sizeof lint_rules[0];

struct found {
	struct lint_finding *out;
	size_t max, n;
	uint32_t command;
};

static void add(struct found *f, int rule, const char *detail)
{
	if (f->n < f->max)
		f->out[f->n] = (struct lint_finding){&lint_rules[rule], f->command, detail};
	f->n++;
}

/* The string under key in doc, or NULL. */
static const char *utf8_of(const bson_iter_t *doc, const char *key)
{
	bson_iter_t it;
	if (!BSON_ITER_HOLDS_DOCUMENT(doc) || !bson_iter_recurse(doc, &it) ||
	    !bson_iter_find(&it, key) || !BSON_ITER_HOLDS_UTF8(&it))
		return NULL;
	return bson_iter_utf8(&it, NULL);
}

static bool empty_doc(const bson_iter_t *it)
{
	uint32_t len;
	const uint8_t *data;
	if (!BSON_ITER_HOLDS_DOCUMENT(it))
		return false;
	bson_iter_document(it, &len, &data);
	return len <= 5; /* a BSON document with no element */
}

/* A $out or $merge target that is coll in the same database: a name, or
 * {coll: name} without a db (with one we cannot tell: not flagged). */
static bool targets(const bson_iter_t *v, const char *coll, const char *name_key)
{
	if (BSON_ITER_HOLDS_UTF8(v))
		return strcmp(bson_iter_utf8(v, NULL), coll) == 0;
	if (!BSON_ITER_HOLDS_DOCUMENT(v) || utf8_of(v, "db"))
		return false;
	const char *t = utf8_of(v, name_key);
	return t && strcmp(t, coll) == 0;
}

/* A stage that drops documents: what $out would then delete. */
static bool filters(const char *stage, const bson_iter_t *v)
{
	static const char *const lossy[] = {"$match", "$limit", "$sample",
	                                    "$skip",  "$group", "$project"};
	for (size_t i = 0; i < sizeof lossy / sizeof *lossy; i++)
		if (strcmp(stage, lossy[i]) == 0)
			return true;
	if (strcmp(stage, "$unwind") == 0) {
		bson_iter_t it;
		/* Only {preserveNullAndEmptyArrays: true} keeps the documents
		 * whose array is missing or empty. */
		return !(BSON_ITER_HOLDS_DOCUMENT(v) && bson_iter_recurse(v, &it) &&
		         bson_iter_find(&it, "preserveNullAndEmptyArrays") &&
		         bson_iter_as_bool(&it));
	}
	return false;
}

/* A stage after which a document is not the one that came in: what a
 * replacing $merge would then write back. */
static bool reshapes(const char *stage)
{
	return strcmp(stage, "$project") == 0 || strcmp(stage, "$group") == 0 ||
	       strcmp(stage, "$unwind") == 0;
}

static void aggregate(struct found *f, const char *coll, const bson_t *cmd)
{
	bson_iter_t it, stages;
	if (!bson_iter_init_find(&it, cmd, "pipeline") || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &stages))
		return;
	const char *filtered = NULL, *reshaped = NULL;
	while (bson_iter_next(&stages)) {
		bson_iter_t st;
		if (!BSON_ITER_HOLDS_DOCUMENT(&stages) || !bson_iter_recurse(&stages, &st) ||
		    !bson_iter_next(&st))
			continue;
		const char *name = bson_iter_key(&st);
		if (strcmp(name, "$out") == 0) {
			if (filtered && targets(&st, coll, "coll"))
				add(f, R_OUT, filtered);
		} else if (strcmp(name, "$merge") == 0) {
			const char *when = utf8_of(&st, "whenMatched");
			bson_iter_t into;
			if (reshaped && when && strcmp(when, "replace") == 0 &&
			    BSON_ITER_HOLDS_DOCUMENT(&st) && bson_iter_recurse(&st, &into) &&
			    bson_iter_find(&into, "into") && targets(&into, coll, "coll"))
				add(f, R_MERGE, reshaped);
		} else {
			if (!filtered && filters(name, &st))
				filtered = name;
			if (!reshaped && reshapes(name))
				reshaped = name;
		}
	}
}

/* Each element of cmd's array under key that pred accepts. */
static bool any_entry(const bson_t *cmd, const char *key, bool (*pred)(const bson_iter_t *))
{
	bson_iter_t it, list;
	if (!bson_iter_init_find(&it, cmd, key) || !BSON_ITER_HOLDS_ARRAY(&it) ||
	    !bson_iter_recurse(&it, &list))
		return false;
	while (bson_iter_next(&list))
		if (pred(&list))
			return true;
	return false;
}

static bool deletes_all(const bson_iter_t *d)
{
	bson_iter_t q;
	return BSON_ITER_HOLDS_DOCUMENT(d) && bson_iter_recurse(d, &q) && bson_iter_find(&q, "q") &&
	       empty_doc(&q);
}

static bool replaces_all(const bson_iter_t *d)
{
	bson_iter_t it, u;
	if (!BSON_ITER_HOLDS_DOCUMENT(d) || !bson_iter_recurse(d, &it) ||
	    !bson_iter_find(&it, "multi") || !bson_iter_as_bool(&it))
		return false;
	if (!bson_iter_recurse(d, &it) || !bson_iter_find(&it, "q") || !empty_doc(&it))
		return false;
	/* A replacement: a document whose keys are not update operators (an
	 * array is an update pipeline). */
	if (!bson_iter_recurse(d, &it) || !bson_iter_find(&it, "u") ||
	    !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &u))
		return false;
	return !bson_iter_next(&u) || bson_iter_key(&u)[0] != '$';
}

static void command(struct found *f, const bson_t *cmd, enum direction dir)
{
	bson_iter_t it;
	if (!bson_iter_init(&it, cmd) || !bson_iter_next(&it))
		return;
	const char *name = bson_iter_key(&it);
	const char *coll = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "";
	bool up = dir == DIR_UP;
	if (strcmp(name, "aggregate") == 0 && *coll)
		aggregate(f, coll, cmd);
	else if (up && strcmp(name, "drop") == 0)
		add(f, R_DROP, coll);
	else if (up && strcmp(name, "dropDatabase") == 0)
		add(f, R_DROP_DB, "");
	else if (up && strcmp(name, "dropIndexes") == 0) {
		bson_iter_t ix;
		if (bson_iter_init_find(&ix, cmd, "index") && BSON_ITER_HOLDS_UTF8(&ix) &&
		    strcmp(bson_iter_utf8(&ix, NULL), "*") == 0)
			add(f, R_DROP_INDEXES, coll);
	} else if (strcmp(name, "delete") == 0 && any_entry(cmd, "deletes", deletes_all))
		add(f, R_DELETE_ALL, coll);
	else if (strcmp(name, "update") == 0 && any_entry(cmd, "updates", replaces_all))
		add(f, R_REPLACE_ALL, coll);
	else if (strcmp(name, "renameCollection") == 0) {
		bson_iter_t dt;
		if (bson_iter_init_find(&dt, cmd, "dropTarget") && bson_iter_as_bool(&dt))
			add(f, R_RENAME, coll);
	}
}

struct walk {
	struct found *f;
	enum direction dir;
};

static void lint_command(const bson_t *cmd, uint32_t index, void *arg)
{
	struct walk *w = arg;
	w->f->command = index;
	command(w->f, cmd, w->dir);
}

size_t lint_body(const bson_t *body, enum direction dir, bool has_down, struct lint_finding *out,
                 size_t max)
{
	struct found f = {.out = out, .max = max};
	struct walk w = {&f, dir};
	migration_each_command(body, lint_command, &w);
	if (f.n && dir == DIR_UP && !has_down) {
		f.command = 0;
		add(&f, R_NO_DOWN, "");
	}
	return f.n;
}

/* rule among the words of list (spaces or commas between them). */
static bool listed(const char *list, const char *rule)
{
	size_t n = strlen(rule);
	for (const char *p = list; *p;) {
		p += strspn(p, " \t,");
		size_t w = strcspn(p, " \t,\r\n");
		if (w == n && strncmp(p, rule, n) == 0)
			return true;
		if (w == 0)
			break;
		p += w;
	}
	return false;
}

#define ALLOW_MARK "migrate-init: allow"

static bool yaml_allows(const char *path, const char *rule)
{
	if (!util_ends_with(path, ".yaml") && !util_ends_with(path, ".yml"))
		return false;
	FILE *fp = fopen(path, "r");
	if (!fp)
		return false;
	char line[1024];
	bool yes = false;
	while (!yes && fgets(line, sizeof line, fp)) {
		const char *hash = strchr(line, '#');
		const char *mark = hash ? strstr(hash, ALLOW_MARK) : NULL;
		yes = mark && listed(mark + strlen(ALLOW_MARK), rule);
	}
	fclose(fp);
	return yes;
}

static bool registry_allows(const struct registry *reg, const char *path, const char *rule)
{
	if (!reg || !reg->lint)
		return false;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	bson_iter_t it, list;
	if (!bson_iter_init_find(&it, reg->lint, base) || !bson_iter_recurse(&it, &list))
		return false;
	while (bson_iter_next(&list))
		if (BSON_ITER_HOLDS_UTF8(&list) && strcmp(bson_iter_utf8(&list, NULL), rule) == 0)
			return true;
	return false;
}

bool lint_allowed(const struct mfile *f, const struct registry *reg, const char *rule)
{
	return registry_allows(reg, f->path, rule) || yaml_allows(f->path, rule);
}

#define LINT_MAX 64

size_t lint_file(const struct migration *m, enum direction dir, const struct registry *reg)
{
	const struct mfile *f = m->file[dir];
	if (!f || !f->body)
		return 0;
	struct lint_finding out[LINT_MAX];
	size_t count = 0, n = lint_body(f->body, dir, m->file[DIR_DOWN] != NULL, out, LINT_MAX);
	for (size_t k = 0; k < n && k < LINT_MAX; k++) {
		if (lint_allowed(f, reg, out[k].rule->id))
			continue;
		log_warn("this migration may lose data", F_STR("file", f->path),
		         F_INT("command", out[k].command), F_STR("rule", out[k].rule->id),
		         F_STR("detail", out[k].detail), F_STR("why", out[k].rule->why));
		count++;
	}
	return count;
}

size_t lint_source(const struct source *s, const struct registry *reg)
{
	size_t count = 0;
	for (size_t i = 0; i < s->n; i++)
		for (int d = DIR_UP; d <= DIR_DOWN; d++)
			count += lint_file(&s->m[i], (enum direction)d, reg);
	return count;
}
