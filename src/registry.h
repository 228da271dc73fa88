/*
 * .migration-registry.yaml, beside the migrations (optional): the service's
 * name and database, and per version a description, whether it is breaking,
 * and its dependencies on other services' minimum versions.
 *
 *   service: order-service
 *   database: orders
 *   migrations:
 *     - version: 2
 *       description: move items to the new shape
 *       breaking: true
 *       dependencies:
 *         - service: user-service
 *           min-version: 3
 *           database: users                # that service's database
 *           collection: schema_migrations  # optional: its state collection
 *           url-env: USERS_DATABASE_URL    # optional: env var with its URL
 *   lint:                                  # optional: data-loss rules allowed
 *     000002_move_items.up.json: [out-replaces-collection]   # per file (lint.h)
 *
 * A dependency without url-env lives on our cluster, in its database.
 *
 * In a central layout (services.h) the registry also says where the service
 * itself lives: database on DATABASE_URL's cluster, or url-env (an env var
 * holding its own URL), and a dependency may leave out database and url-env:
 * they are the named service's (services_load fills them in).
 *
 * Database names are checked as MongoDB would (non-empty, under 64 bytes,
 * none of / \ . space " $ * < > : | ? or control characters).
 */
#ifndef MI_REGISTRY_H
#define MI_REGISTRY_H

#include "config.h"
#include "plan.h"
#include "source.h"

#include <bson/bson.h>

#include <stdbool.h>
#include <stdint.h>

#define REGISTRY_FILE ".migration-registry.yaml"

struct reg_dep {
	char *service;
	uint64_t min_version;
	char *database;
	char *collection;
	char *url_env;
};

struct reg_version {
	uint64_t version;
	char *description;
	bool breaking;
	struct reg_dep *deps;
	size_t ndeps;
};

struct registry {
	bool present;
	char *service;
	char *database;
	char *url_env; /* the service's own URL (central layout) */
	struct reg_version *v;
	size_t n;
	bson_t *lint; /* {file name: [rule id, ...]}, checked to be that shape; or NULL */
};

/* Reads dir/.migration-registry.yaml if it exists. 0, or EXIT_SOURCE after
 * logging what is wrong with it. */
int registry_load(struct registry *r, const char *dir);

/* The same for one service of a central layout: dependencies may leave out
 * database and url-env (services_load fills them in). */
int registry_load_service(struct registry *r, const char *dir);

/* Whether name is a database name MongoDB accepts. */
bool registry_database_name_ok(const char *name);
void registry_free(struct registry *r);

const struct reg_version *registry_find(const struct registry *r, uint64_t version);

/* For validate: versions that exist in the source, dependencies on other
 * services only. 0 or EXIT_SOURCE, every problem logged. */
int registry_validate(const struct registry *r, const struct source *s);

/* Refuses a plan with a breaking up migration unless allowed: 0 or
 * EXIT_DEPENDENCY, before anything runs. */
int registry_check_breaking(const struct registry *r, const struct plan *p, bool allow);

/* Waits, up to DEPENDENCY_TIMEOUT, until every dependency of v is at or past
 * its minimum version and clean. 0, EXIT_DEPENDENCY, or 128+n. */
int registry_wait_dependencies(const struct registry *r, const struct reg_version *v,
                               const struct config *c);

#endif
