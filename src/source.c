#include "source.h"

#include "exitcode.h"
#include "log.h"
#include "util.h"
#include "migration.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <sys/stat.h>
#include <unistd.h>

/* golang-migrate's ^([0-9]+)_(.*)\.(down|up)\.(.*)$ : the identifier is
 * greedy, so the direction is the last ".up." or ".down." in the name. */
bool source_parse_name(const char *fname, struct fname_parts *out)
{
	const char *p = fname;
	uint64_t v = 0;
	bool overflow = false;
	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			overflow = true;
		v = v * 10 + d;
		p++;
	}
	if (p == fname || *p != '_')
		return false;
	const char *name = p + 1;
	const char *best = NULL;
	enum direction dir = DIR_UP;
	for (const char *q = name; (q = strchr(q, '.')) != NULL; q++) {
		if (strncmp(q, ".up.", 4) == 0) {
			best = q;
			dir = DIR_UP;
		} else if (strncmp(q, ".down.", 6) == 0) {
			best = q;
			dir = DIR_DOWN;
		}
	}
	/* golang-migrate's ParseUint fails on overflow and the file is skipped. */
	if (!best || overflow)
		return false;
	out->version = v;
	out->name = name;
	out->name_len = (size_t)(best - name);
	out->dir = dir;
	out->ext = best + (dir == DIR_UP ? 4 : 6);
	return true;
}

struct entry {
	struct fname_parts parts;
	char *fname;
};

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->parts.version != y->parts.version)
		return x->parts.version < y->parts.version ? -1 : 1;
	if (x->parts.dir != y->parts.dir)
		return x->parts.dir < y->parts.dir ? -1 : 1;
	return strcmp(x->fname, y->fname);
}

/* Records why mf is broken; reported when we know whether the run needs it. */
static int broken(struct mfile *mf, const char *problem, const char *why)
{
	mf->problem = bson_strdup(problem);
	mf->why = bson_strdup(why);
	return EXIT_SOURCE;
}

void source_report(const struct mfile *f, bool needed)
{
	if (!f || !f->problem)
		return;
	if (needed)
		log_error(f->problem, F_STR("file", f->path), F_STR("error", f->why));
	else
		log_warn("a migration file this run does not need is broken; not read further",
		         F_STR("file", f->path), F_STR("problem", f->problem),
		         F_STR("error", f->why));
}

int source_report_all(const struct source *s)
{
	int rc = 0;
	for (size_t i = 0; i < s->n; i++)
		for (int d = 0; d < 2; d++)
			if (s->m[i].file[d] && s->m[i].file[d]->problem) {
				source_report(s->m[i].file[d], true);
				rc = EXIT_SOURCE;
			}
	return rc;
}

/*
 * What every file's read shares: one buffer that grows to the largest file,
 * one SHA-256 context and one body parser. Per file, these were large
 * blocks allocated and freed, and musl's allocator (the static build) maps
 * such a block for each allocation and unmaps it at the free: with 1000
 * migrations (2000 files), thousands of mmap/munmap pairs and page faults
 * before the first byte went out. Fetching SHA-256 once also spares
 * OpenSSL 3 its implicit fetch (a provider lookup under a lock) per file.
 */
struct reader {
	int dirfd; /* the directory, for openat: no walk of its path per file; -1 */
	struct migration_parser *parser;
	uint8_t *buf;
	size_t cap; /* bytes buf holds, its terminating NUL included */
	EVP_MD *sha256;
	EVP_MD_CTX *md;
};

static void reader_free(struct reader *r)
{
	if (r->dirfd >= 0)
		close(r->dirfd);
	migration_parser_free(r->parser);
	bson_free(r->buf);
	EVP_MD_CTX_free(r->md);
	EVP_MD_free(r->sha256);
	memset(r, 0, sizeof *r);
}

/* Room for want bytes and a NUL; false past the size limit. Doubles, so a
 * run of ever larger files costs few reallocations. */
static bool reader_reserve(struct reader *r, size_t want)
{
	if (want < r->cap)
		return true;
	if (want > MIGRATION_MAX_BYTES)
		return false;
	size_t cap = r->cap ? r->cap : 4096;
	while (cap <= want)
		cap *= 2;
	if (cap > (size_t)MIGRATION_MAX_BYTES + 1)
		cap = (size_t)MIGRATION_MAX_BYTES + 1;
	r->buf = bson_realloc(r->buf, cap);
	r->cap = cap;
	return true;
}

static void hex_sha256(struct reader *r, const uint8_t *data, size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (!r->md)
		r->md = EVP_MD_CTX_new();
	if (!r->sha256)
		r->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	/* Should the explicit fetch be unavailable, the one-shot call still
	 * gives the same digest, only slower. */
	if (!r->md || !r->sha256 || !EVP_DigestInit_ex2(r->md, r->sha256, NULL) ||
	    !EVP_DigestUpdate(r->md, data, len) || !EVP_DigestFinal_ex(r->md, md, &mdlen))
		EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
	static const char hex[] = "0123456789abcdef";
	for (unsigned int i = 0; i < mdlen && i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[2 * (mdlen < 32 ? mdlen : 32)] = '\0';
}

/* path is dir/fname, for when the directory could not be opened. */
static int read_body(struct reader *r, const char *path, const char *fname, const char *ext,
                     struct mfile *mf)
{
	char err[512];
	int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK;
	int fd = r->dirfd >= 0 ? openat(r->dirfd, fname, flags) : open(path, flags);
	if (fd < 0)
		return broken(mf, "cannot read migration file", strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return broken(mf, "cannot read migration file", "not a regular file");
	}
	if ((uint64_t)st.st_size > MIGRATION_MAX_BYTES) {
		close(fd);
		snprintf(err, sizeof err, "the file is %lld bytes; the limit is %u",
		         (long long)st.st_size, MIGRATION_MAX_BYTES);
		return broken(mf, "migration file too large", err);
	}
	/* Room for one byte more than fstat said, so that the read that finds
	 * the end needs no growing first. */
	size_t len = 0, size = (size_t)st.st_size;
	reader_reserve(r, size < MIGRATION_MAX_BYTES ? size + 1 : size);
	for (;;) {
		/* Full: the file grew since fstat; read what is there, up to the
		 * limit. */
		if (len + 1 >= r->cap && !reader_reserve(r, len + 1)) {
			close(fd);
			return broken(mf, "migration file too large", "grew past the limit");
		}
		ssize_t n = read(fd, r->buf + len, r->cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return broken(mf, "cannot read migration file", strerror(e));
		}
		if (n == 0)
			break;
		len += (size_t)n;
		/* Exactly what fstat said, and less than we asked for: the end.
		 * Spares the read that would return 0, one system call per file. */
		if (len == size && len + 1 < r->cap)
			break;
	}
	close(fd);
	r->buf[len] = '\0';
	hex_sha256(r, r->buf, len, mf->sha256);
	if (!r->parser)
		r->parser = migration_parser_new();
	mf->body = migration_parse(r->parser, ext, r->buf, len, err, sizeof err);
	if (!mf->body)
		return broken(mf, "invalid migration file", err);
	mf->ncmds = bson_count_keys(mf->body);
	return 0;
}

/* A name golang-migrate ignores but someone probably meant as a migration
 * ("1-init.up.json", "1_init.UP.json", "init.up.json") is silently skipped
 * by golang-migrate; we at least say so. */
static void warn_if_meant(const char *name, const char *dir)
{
	if (name[0] == '.')
		return;
	char *lower = bson_strdup(name);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	bool meant = strstr(lower, ".up.") || strstr(lower, ".down.") ||
	             util_ends_with(lower, ".json") || util_ends_with(lower, ".yaml") ||
	             util_ends_with(lower, ".yml");
	bson_free(lower);
	if (meant)
		log_warn("ignoring a file whose name does not match NNN_name.up.ext or "
		         "NNN_name.down.ext",
		         F_STR("file", name), F_STR("dir", dir));
}

static int scan(const char *dir, struct entry **out, size_t *nout)
{
	DIR *d = opendir(dir);
	if (!d) {
		log_error("cannot open migration directory", F_STR("dir", dir),
		          F_STR("error", strerror(errno)));
		return EXIT_SOURCE;
	}
	struct entry *e = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d)) != NULL) {
		struct fname_parts parts;
		if (!source_parse_name(de->d_name, &parts)) {
			warn_if_meant(de->d_name, dir);
			continue;
		}
		/* golang-migrate skips directories (a link to one too). The entry's
		 * type, when the file system gives it, spares a stat per file. */
		if (de->d_type == DT_DIR)
			continue;
		if (de->d_type != DT_REG) {
			char *path = bson_strdup_printf("%s/%s", dir, de->d_name);
			struct stat st;
			bool is_dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
			bson_free(path);
			if (is_dir)
				continue;
		}
		/* The state stores a signed 64-bit version (-1 is "none"): a
		 * larger one would wrap to a negative number and every later run
		 * would misread it (golang-migrate panics or re-runs all). */
		if (parts.version > (uint64_t)INT64_MAX) {
			char *path = bson_strdup_printf("%s/%s", dir, de->d_name);
			log_error(
			    "migration version is larger than 9223372036854775807, the largest "
			    "the migration state can hold",
			    F_STR("file", path));
			bson_free(path);
			rc = EXIT_SOURCE;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			e = bson_realloc(e, cap * sizeof *e);
		}
		e[n].fname = bson_strdup(de->d_name);
		source_parse_name(e[n].fname, &e[n].parts); /* point into our copy */
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(e, n, sizeof *e, cmp_entry);
	for (size_t i = 1; i < n && rc == 0; i++) {
		if (e[i].parts.version == e[i - 1].parts.version &&
		    e[i].parts.dir == e[i - 1].parts.dir) {
			char *both = bson_strdup_printf("%s and %s", e[i - 1].fname, e[i].fname);
			log_error("duplicate migration: two files for one version and direction",
			          F_INT("version", e[i].parts.version), F_STR("files", both),
			          F_STR("dir", dir));
			bson_free(both);
			rc = EXIT_SOURCE;
		}
	}
	if (rc) {
		for (size_t i = 0; i < n; i++)
			bson_free(e[i].fname);
		bson_free(e);
		return rc;
	}
	*out = e;
	*nout = n;
	return 0;
}

/* dir/fname without printf, which was a measurable part of loading 2000
 * files in the static build. */
static char *join_path(const char *dir, size_t dlen, const char *fname)
{
	size_t flen = strlen(fname);
	char *path = bson_malloc(dlen + flen + 2);
	memcpy(path, dir, dlen);
	path[dlen] = '/';
	memcpy(path + dlen + 1, fname, flen + 1);
	return path;
}

int source_load(struct source *s, const char *dir)
{
	memset(s, 0, sizeof *s);
	s->dir = bson_strdup(dir);
	struct entry *e = NULL;
	size_t n = 0;
	int rc = scan(dir, &e, &n);
	if (rc)
		return rc;
	s->m = bson_malloc0((n ? n : 1) * sizeof *s->m);
	struct reader r = {.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
	size_t dlen = strlen(dir);
	for (size_t i = 0; i < n; i++) {
		if (s->n == 0 || s->m[s->n - 1].version != e[i].parts.version) {
			struct migration *m = &s->m[s->n++];
			m->version = e[i].parts.version;
			m->name = bson_strndup(e[i].parts.name, e[i].parts.name_len);
		}
		struct mfile *mf = bson_malloc0(sizeof *mf);
		mf->path = join_path(dir, dlen, e[i].fname);
		s->m[s->n - 1].file[e[i].parts.dir] = mf;
		/* A broken one is kept. */
		read_body(&r, mf->path, e[i].fname, e[i].parts.ext, mf);
		bson_free(e[i].fname);
	}
	reader_free(&r);
	bson_free(e);
	if (rc == 0)
		log_debug("migration source read", F_STR("dir", dir), F_INT("migrations", s->n));
	return rc;
}

void source_free(struct source *s)
{
	for (size_t i = 0; i < s->n; i++) {
		for (int d = 0; d < 2; d++) {
			struct mfile *mf = s->m[i].file[d];
			if (!mf)
				continue;
			bson_free(mf->path);
			bson_free(mf->problem);
			bson_free(mf->why);
			if (mf->body)
				bson_destroy(mf->body);
			bson_free(mf);
		}
		bson_free(s->m[i].name);
	}
	bson_free(s->m);
	bson_free(s->dir);
	memset(s, 0, sizeof *s);
}

long source_find(const struct source *s, uint64_t version)
{
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->m[mid].version == version)
			return (long)mid;
		if (s->m[mid].version < version)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}
