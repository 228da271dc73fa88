#include "version.h"

#include "util.h"

#include <mongoc/mongoc.h>
#include <openssl/crypto.h>
#include <string.h>
#include <yaml.h>
#ifdef __GLIBC__
#include <gnu/libc-version.h>
#endif

#ifndef MI_COMMIT
#define MI_COMMIT "unknown"
#endif
/* "openssl=3.0.20-1~deb12u2 mongo-c-driver=... libyaml=... musl=..." (or
 * glibc=): Debian source packages and versions, as the build found them. */
#ifndef MI_COMPONENTS
#define MI_COMPONENTS ""
#endif

struct component {
	const char *name;
	const char *source; /* Debian source package */
	const char *(*upstream)(void);
};

static const char *openssl_version(void)
{
	return OpenSSL_version(OPENSSL_VERSION_STRING);
}

static const char *yaml_version(void)
{
	return yaml_get_version_string();
}

/* The Debian version of source in MI_COMPONENTS into out; "" if unknown. */
static void debian_version(const char *source, char *out, size_t len)
{
	size_t n = strlen(source);
	out[0] = '\0';
	for (const char *p = MI_COMPONENTS; *p;) {
		p += strspn(p, " ");
		size_t w = strcspn(p, " ");
		if (w > n && strncmp(p, source, n) == 0 && p[n] == '=') {
			snprintf(out, len, "%.*s", (int)(w - n - 1), p + n + 1);
			return;
		}
		p += w;
	}
}

/* musl has no version call: Debian's version without its revision. */
static const char *libc_version(void)
{
#ifdef __GLIBC__
	return gnu_get_libc_version();
#else
	static char libc_upstream[64]; /* the main thread's: -version only */
	debian_version("musl", libc_upstream, sizeof libc_upstream);
	libc_upstream[strcspn(libc_upstream, "-")] = '\0';
	return libc_upstream[0] ? libc_upstream : "unknown";
#endif
}

static const struct component components[] = {
#ifdef __GLIBC__
    {"glibc", "glibc", libc_version},
#else
    {"musl", "musl", libc_version},
#endif
    {"openssl", "openssl", openssl_version},
    {"libmongoc", "mongo-c-driver", mongoc_get_version},
    {"libbson", "mongo-c-driver", bson_get_version},
    {"libyaml", "libyaml", yaml_version},
};

void version_print(FILE *f, bool json)
{
	size_t n = sizeof components / sizeof components[0];
	char deb[64];
	if (!json) {
		fprintf(f, "%s\ncommit %s\n", MI_VERSION, MI_COMMIT);
		for (size_t i = 0; i < n; i++) {
			debian_version(components[i].source, deb, sizeof deb);
			fprintf(f, "%s %s (Debian source %s %s)\n", components[i].name,
			        components[i].upstream(), components[i].source,
			        deb[0] ? deb : "unknown");
		}
		return;
	}
	bson_t doc = BSON_INITIALIZER, list, item;
	BSON_APPEND_UTF8(&doc, "version", MI_VERSION);
	BSON_APPEND_UTF8(&doc, "commit", MI_COMMIT);
	BSON_APPEND_ARRAY_BEGIN(&doc, "components", &list);
	for (size_t i = 0; i < n; i++) {
		char key[16];
		snprintf(key, sizeof key, "%zu", i);
		debian_version(components[i].source, deb, sizeof deb);
		BSON_APPEND_DOCUMENT_BEGIN(&list, key, &item);
		BSON_APPEND_UTF8(&item, "name", components[i].name);
		BSON_APPEND_UTF8(&item, "version", components[i].upstream());
		BSON_APPEND_UTF8(&item, "debian_source", components[i].source);
		BSON_APPEND_UTF8(&item, "debian_version", deb);
		bson_append_document_end(&list, &item);
	}
	bson_append_array_end(&doc, &list);
	char *s = bson_as_relaxed_extended_json(&doc, NULL);
	fprintf(f, "%s\n", s);
	bson_free(s);
	bson_destroy(&doc);
}
