/*
 * The migration source: a directory read with golang-migrate's file-name
 * rules. NNN_name.up.EXT / NNN_name.down.EXT with a uint64 version; other
 * names are ignored; two files for one version and direction are an error.
 * Every body is read and parsed here, before the database is touched; a
 * body that cannot be is kept as an error on its file (source_report), so
 * that only a run that needs the file fails for it, as in golang-migrate,
 * which never reads a file it does not run.
 */
#ifndef MI_SOURCE_H
#define MI_SOURCE_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

enum direction { DIR_UP, DIR_DOWN };

struct mfile {
	char *path;   /* directory/file name */
	bson_t *body; /* array document of command documents; NULL when broken */
	uint32_t ncmds;
	char sha256[65]; /* of the file's bytes, hex */
	char *problem;   /* when broken: what is wrong, and why */
	char *why;
};

struct migration {
	uint64_t version;
	char *name;            /* the identifier between '_' and ".up." */
	struct mfile *file[2]; /* indexed by enum direction; NULL when absent */
};

struct source {
	char *dir;
	struct migration *m; /* sorted by version */
	size_t n;
};

/* The parts of a migration file name; false when golang-migrate would
 * ignore the name. name points into fname; ext too. */
struct fname_parts {
	uint64_t version;
	const char *name;
	size_t name_len;
	enum direction dir;
	const char *ext;
};
bool source_parse_name(const char *fname, struct fname_parts *out);

/* Reads dir and parses every body. 0, or EXIT_SOURCE after logging every
 * problem with the directory itself (unreadable, duplicate versions,
 * versions past int64). Broken bodies do not fail it: see source_report. */
int source_load(struct source *s, const char *dir);

/* Logs what is wrong with a broken file: an error when the run needs it,
 * else a warning (the run goes on). Nothing for a good file. */
void source_report(const struct mfile *f, bool needed);

/* Every broken file, as errors (validate). 0, or EXIT_SOURCE. */
int source_report_all(const struct source *s);
void source_free(struct source *s);

/* Index of version in s->m, or -1. */
long source_find(const struct source *s, uint64_t version);

#endif
