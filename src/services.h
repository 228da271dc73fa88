/*
 * A central repository: one migrations directory holding no migrations
 * itself but one subdirectory per service, each with its own
 * .migration-registry.yaml (registry.h) naming the service and where it
 * lives (its database on DATABASE_URL's cluster, or its own url-env).
 *
 *   MIGRATION_DIR/users/.migration-registry.yaml   service: users
 *   MIGRATION_DIR/orders/.migration-registry.yaml  service: orders,
 *                                                  depends on users
 *
 * This module finds the services, checks the layout as a whole (unique
 * names and databases, every dependency naming a service of the layout, no
 * cycle) and orders them so that a service comes after every service it
 * depends on. Running them is the runner's; nothing here does I/O but
 * reading the directory and the registries.
 */
#ifndef MI_SERVICES_H
#define MI_SERVICES_H

#include "registry.h"

#include <stdbool.h>
#include <stddef.h>

struct service {
	char *dir;  /* MIGRATION_DIR/subdir */
	char *name; /* the registry's service */
	struct registry reg;
	size_t *deps; /* indexes of the services it depends on */
	size_t ndeps;
	bool selected; /* in this run (-service, SERVICES) */
};

struct services {
	struct service *s; /* sorted by directory name */
	size_t n;
	size_t *order; /* indexes into s: dependencies first */
};

/* Whether dir is a central layout: no migration file of its own, and at
 * least one subdirectory with a registry. */
bool services_detect(const char *dir);

/* Reads every service of the layout in dir, checks it and orders it. 0, or
 * EXIT_SOURCE after logging every problem (a cycle is named, as
 * "a -> b -> a"). */
int services_load(struct services *sv, const char *dir);

/* Builds the graph and the order of services whose registries are already
 * in sv->s (services_load's second half; the unit tests call it alone).
 * 0 or EXIT_SOURCE. */
int services_order(struct services *sv);

/* Selects the services named in list (comma-separated registry service or
 * directory names; NULL: all). 0, or EXIT_USAGE naming an unknown one. */
int services_select(struct services *sv, const char *list);

/* The index of the service named name, or -1. */
long services_find(const struct services *sv, const char *name);

/* Whether service i depends on service j, directly or through others. */
bool services_depends(const struct services *sv, size_t i, size_t j);

void services_free(struct services *sv);

#endif
