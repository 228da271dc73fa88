#include "services.h"

#include "exitcode.h"
#include "log.h"
#include "source.h"

#include <bson/bson.h>
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_registry(const char *dir)
{
	char *path = bson_strdup_printf("%s/%s", dir, REGISTRY_FILE);
	struct stat st;
	bool yes = stat(path, &st) == 0 && S_ISREG(st.st_mode);
	bson_free(path);
	return yes;
}

bool services_detect(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool files = false, service = false;
	struct dirent *e;
	while (!files && (e = readdir(d))) {
		struct fname_parts parts;
		if (e->d_name[0] == '.')
			continue;
		if (source_parse_name(e->d_name, &parts)) {
			files = true;
			break;
		}
		char *sub = bson_strdup_printf("%s/%s", dir, e->d_name);
		service = service || (is_dir(sub) && has_registry(sub));
		bson_free(sub);
	}
	closedir(d);
	return service && !files;
}

long services_find(const struct services *sv, const char *name)
{
	for (size_t i = 0; i < sv->n; i++)
		if (strcmp(sv->s[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void add_dep(struct service *s, size_t j)
{
	for (size_t k = 0; k < s->ndeps; k++)
		if (s->deps[k] == j)
			return;
	s->deps = bson_realloc(s->deps, (s->ndeps + 1) * sizeof *s->deps);
	s->deps[s->ndeps++] = j;
}

/* The edges: each service's dependencies on the others, by name. A
 * dependency that says nowhere where the service lives gets the named
 * service's place. */
static int edges(struct services *sv)
{
	int rc = 0;
	for (size_t i = 0; i < sv->n; i++) {
		struct service *s = &sv->s[i];
		for (size_t v = 0; v < s->reg.n; v++)
			for (size_t k = 0; k < s->reg.v[v].ndeps; k++) {
				struct reg_dep *d = &s->reg.v[v].deps[k];
				long j = services_find(sv, d->service);
				if (j < 0) {
					log_error("a dependency names a service that is not in the "
					          "central layout",
					          F_STR("service", s->name),
					          F_INT("version", s->reg.v[v].version),
					          F_STR("dependency", d->service),
					          F_STR("dir", s->dir));
					rc = EXIT_SOURCE;
					continue;
				}
				if (!d->database && !d->url_env) {
					const struct registry *o = &sv->s[j].reg;
					d->database = o->database ? bson_strdup(o->database) : NULL;
					d->url_env = o->url_env ? bson_strdup(o->url_env) : NULL;
				}
				add_dep(s, (size_t)j);
			}
	}
	return rc;
}

enum mark { WHITE, GREY, BLACK };

/* Depth first, dependencies before the service: the post-order is the run
 * order. A grey service reached again closes a cycle: name it. */
static int visit(struct services *sv, size_t i, enum mark *mark, size_t *path, size_t depth,
                 size_t *n)
{
	if (mark[i] == BLACK)
		return 0;
	if (mark[i] == GREY) {
		size_t from = 0;
		while (path[from] != i)
			from++;
		char *cycle = bson_strdup("");
		for (size_t k = from; k < depth; k++) {
			char *next = bson_strdup_printf("%s%s -> ", cycle, sv->s[path[k]].name);
			bson_free(cycle);
			cycle = next;
		}
		char *text = bson_strdup_printf("%s%s", cycle, sv->s[i].name);
		log_error("the services' dependencies form a cycle", F_STR("cycle", text));
		bson_free(text);
		bson_free(cycle);
		return EXIT_SOURCE;
	}
	mark[i] = GREY;
	path[depth] = i;
	for (size_t k = 0; k < sv->s[i].ndeps; k++) {
		int rc = visit(sv, sv->s[i].deps[k], mark, path, depth + 1, n);
		if (rc)
			return rc;
	}
	mark[i] = BLACK;
	sv->order[(*n)++] = i;
	return 0;
}

int services_order(struct services *sv)
{
	int rc = edges(sv);
	if (rc)
		return rc;
	bson_free(sv->order);
	sv->order = bson_malloc0((sv->n + 1) * sizeof *sv->order);
	enum mark *mark = bson_malloc0((sv->n + 1) * sizeof *mark);
	size_t *path = bson_malloc0((sv->n + 1) * sizeof *path);
	size_t n = 0;
	for (size_t i = 0; rc == 0 && i < sv->n; i++)
		rc = visit(sv, i, mark, path, 0, &n);
	bson_free(mark);
	bson_free(path);
	return rc;
}

/* What must hold of each service before any of them runs. */
static int check(const struct services *sv)
{
	int rc = 0;
	for (size_t i = 0; i < sv->n; i++) {
		const struct service *s = &sv->s[i];
		if (!s->reg.database && !s->reg.url_env) {
			log_error(
			    "a service of a central layout needs its database (or url-env) in "
			    "its registry",
			    F_STR("service", s->name), F_STR("dir", s->dir));
			rc = EXIT_SOURCE;
		}
		for (size_t k = 0; k < i; k++) {
			const struct service *o = &sv->s[k];
			if (strcmp(o->name, s->name) == 0) {
				log_error(
				    "two directories of the central layout name the same service",
				    F_STR("service", s->name), F_STR("dir", o->dir),
				    F_STR("other_dir", s->dir));
				rc = EXIT_SOURCE;
			}
			/* On one cluster, one database is one state and one lock:
			 * two services there would take each other's versions. */
			if (!s->reg.url_env && !o->reg.url_env && s->reg.database &&
			    o->reg.database && strcmp(s->reg.database, o->reg.database) == 0) {
				log_error("two services of the central layout share a database",
				          F_STR("database", s->reg.database),
				          F_STR("service", o->name),
				          F_STR("other_service", s->name));
				rc = EXIT_SOURCE;
			}
		}
	}
	return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* The newest version among dir's migration file names (golang-migrate's
 * rules); false when it has none. */
static bool newest_version(const char *dir, uint64_t *out)
{
	DIR *d = opendir(dir);
	bool any = false;
	struct dirent *e;
	struct fname_parts parts;
	*out = 0;
	while (d && (e = readdir(d)))
		if (source_parse_name(e->d_name, &parts) && (!any || parts.version > *out)) {
			*out = parts.version;
			any = true;
		}
	if (d)
		closedir(d);
	return any;
}

/* A dependency on a version its service does not have would only be found
 * out after DEPENDENCY_TIMEOUT of waiting: a source error now. */
static int check_min_versions(const struct services *sv)
{
	int rc = 0;
	for (size_t i = 0; i < sv->n; i++)
		for (size_t v = 0; v < sv->s[i].reg.n; v++)
			for (size_t k = 0; k < sv->s[i].reg.v[v].ndeps; k++) {
				const struct reg_dep *dep = &sv->s[i].reg.v[v].deps[k];
				long j = services_find(sv, dep->service);
				uint64_t newest;
				if (j < 0)
					continue; /* check() reported it */
				bool any = newest_version(sv->s[j].dir, &newest);
				if (!any || dep->min_version > newest) {
					log_error("a dependency's min-version is past the newest "
					          "migration "
					          "of that service",
					          F_STR("service", sv->s[i].name),
					          F_INT("version", sv->s[i].reg.v[v].version),
					          F_STR("depends_on", dep->service),
					          F_INT("min_version", dep->min_version),
					          F_INT("newest", any ? (int64_t)newest : -1));
					rc = EXIT_SOURCE;
				}
			}
	return rc;
}

int services_load(struct services *sv, const char *dir)
{
	memset(sv, 0, sizeof *sv);
	struct dirent **list;
	int n = scandir(dir, &list, NULL, by_name);
	if (n < 0) {
		log_error("cannot read the migration directory", F_STR("dir", dir));
		return EXIT_SOURCE;
	}
	int rc = 0;
	for (int i = 0; i < n; i++) {
		const char *name = list[i]->d_name;
		char *sub = bson_strdup_printf("%s/%s", dir, name);
		if (name[0] == '.' || !is_dir(sub)) {
			bson_free(sub);
		} else if (!has_registry(sub)) {
			log_warn("central layout: ignoring a subdirectory without a registry",
			         F_STR("dir", sub), F_STR("file", REGISTRY_FILE));
			bson_free(sub);
		} else {
			sv->s = bson_realloc(sv->s, (sv->n + 1) * sizeof *sv->s);
			struct service *s = &sv->s[sv->n++];
			memset(s, 0, sizeof *s);
			s->dir = sub;
			s->selected = true;
			int r = registry_load_service(&s->reg, sub);
			if (r)
				rc = r;
			s->name = bson_strdup(s->reg.service ? s->reg.service : name);
		}
		free(list[i]);
	}
	free(list);
	if (rc == 0 && sv->n == 0) {
		log_error("no service directories in the migration directory", F_STR("dir", dir));
		rc = EXIT_SOURCE;
	}
	if (rc == 0)
		rc = check(sv);
	if (rc == 0)
		rc = services_order(sv);
	if (rc == 0)
		rc = check_min_versions(sv);
	return rc;
}

static long find_selectable(const struct services *sv, const char *name)
{
	long i = services_find(sv, name);
	for (size_t k = 0; i < 0 && k < sv->n; k++) {
		const char *base = strrchr(sv->s[k].dir, '/');
		if (strcmp(base ? base + 1 : sv->s[k].dir, name) == 0)
			i = (long)k;
	}
	return i;
}

int services_select(struct services *sv, const char *list)
{
	if (!list)
		return 0;
	for (size_t i = 0; i < sv->n; i++)
		sv->s[i].selected = false;
	int rc = 0;
	const char *p = list;
	for (;;) {
		size_t len = strcspn(p, ",");
		char *name = bson_strndup(p, len);
		long i = len ? find_selectable(sv, name) : -1;
		if (i < 0) {
			char *known = bson_strdup("");
			for (size_t k = 0; k < sv->n; k++) {
				char *next = bson_strdup_printf("%s%s%s", known, k ? ", " : "",
				                                sv->s[k].name);
				bson_free(known);
				known = next;
			}
			log_error("no such service in the central layout (-service, SERVICES)",
			          F_STR("service", name), F_STR("services", known));
			bson_free(known);
			rc = EXIT_USAGE;
		} else {
			sv->s[i].selected = true;
		}
		bson_free(name);
		if (!p[len])
			break;
		p += len + 1;
	}
	return rc;
}

bool services_depends(const struct services *sv, size_t i, size_t j)
{
	for (size_t k = 0; k < sv->s[i].ndeps; k++) {
		size_t d = sv->s[i].deps[k];
		/* Acyclic once ordered: the recursion ends. */
		if (d == j || services_depends(sv, d, j))
			return true;
	}
	return false;
}

void services_free(struct services *sv)
{
	for (size_t i = 0; i < sv->n; i++) {
		bson_free(sv->s[i].dir);
		bson_free(sv->s[i].name);
		bson_free(sv->s[i].deps);
		registry_free(&sv->s[i].reg);
	}
	bson_free(sv->s);
	bson_free(sv->order);
	memset(sv, 0, sizeof *sv);
}
