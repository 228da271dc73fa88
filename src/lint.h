/*
 * Data-loss lint: reads a migration's commands, never runs them, for the
 * hazards that lose data without an error: an aggregation that writes its
 * own collection back after a stage that filters or reshapes it (the seed
 * article's own `$match ... $out: "users"` deletes every user the $match
 * left out), drops in an up file, deletes and replacements with an empty
 * filter, renames over an existing collection, and any of those in an up
 * file with no down file.
 *
 * A finding is a warning: `validate` reports every file's, `up` (and every
 * command that applies migrations) the ones of the files its plan runs,
 * before it writes anything; `validate -strict` exits 3 on any. A rule is
 * silenced for one file by a YAML comment in it,
 *
 *     # migrate-init: allow drop-collection delete-all
 *
 * or, for any file (JSON has no comments), by the registry's `lint` key:
 *
 *     lint:
 *       000003_drop_legacy.up.json: [drop-collection]
 *
 * Pure but for the YAML comment, which is read from the file only when it
 * has a finding to silence.
 */
#ifndef MI_LINT_H
#define MI_LINT_H

#include "registry.h"
#include "source.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lint_rule {
	const char *id;
	const char *why; /* one line */
};

/* Every rule, for README and for checking the names an allow gives. */
extern const struct lint_rule lint_rules[];
extern const size_t lint_nrules;

struct lint_finding {
	const struct lint_rule *rule;
	uint32_t command;   /* index in the file's command array */
	const char *detail; /* the collection, or the stage; static or in body */
};

/* The findings of one body (its direction, whether its version has a down
 * file), silenced rules included; at most max stored, the count returned. */
size_t lint_body(const bson_t *body, enum direction dir, bool has_down, struct lint_finding *out,
                 size_t max);

/* Whether rule is allowed for file f: its YAML comment, or reg's lint key
 * (reg may be NULL). */
bool lint_allowed(const struct mfile *f, const struct registry *reg, const char *rule);

/* Lints file dir of m; logs each finding not allowed as a warning (file,
 * command, rule, why) and returns their count. */
size_t lint_file(const struct migration *m, enum direction dir, const struct registry *reg);

/* lint_file for every file of s. */
size_t lint_source(const struct source *s, const struct registry *reg);

#endif
