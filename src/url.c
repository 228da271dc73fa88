#include "url.h"

#include "log.h"

#include <bson/bson.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

char *url_unescape(const char *s, size_t len, bool plus_is_space)
{
	char *out = bson_malloc(len + 1), *o = out;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			int hi, lo;
			if (i + 2 >= len) {
				bson_free(out);
				return NULL;
			}
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0) {
				bson_free(out);
				return NULL;
			}
			if (hi == 0 && lo == 0) {
				bson_free(out);
				return NULL;
			}
			*o++ = (char)(hi * 16 + lo);
			i += 2;
		} else {
			*o++ = s[i] == '+' && plus_is_space ? ' ' : s[i];
		}
	}
	*o = '\0';
	return out;
}

static char *query_unescape(const char *s, size_t len)
{
	return url_unescape(s, len, true);
}

int url_take_x_options(const char *url, char **out,
                       int (*fn)(void *arg, const char *key, const char *value, const char *raw),
                       void *arg)
{
	const char *q = strchr(url, '?');
	if (!q) {
		*out = bson_strdup(url);
		return 0;
	}
	bson_string_t *b = bson_string_new(NULL);
	bson_string_append_printf(b, "%.*s", (int)(q - url), url);
	bool first = true;
	int rc = 0;
	const char *p = q + 1;
	while (*p && rc == 0) {
		size_t len = strcspn(p, "&;");
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		if (klen >= 2 && strncasecmp(p, "x-", 2) == 0) {
			char *key = bson_strndup(p, klen);
			for (char *k = key; *k; k++)
				*k = (char)tolower((unsigned char)*k);
			char *val = eq ? query_unescape(eq + 1, len - klen - 1) : bson_strdup("");
			if (!val) {
				/* Undecodable: say so, showing the text as written. */
				char *raw =
				    eq ? bson_strndup(eq + 1, len - klen - 1) : bson_strdup("");
				rc = fn(arg, key, NULL, raw);
				bson_free(raw);
			} else {
				rc = fn(arg, key, val, val);
			}
			bson_free(key);
			bson_free(val);
		} else if (len > 0) {
			bson_string_append_printf(b, "%c%.*s", first ? '?' : '&', (int)len, p);
			first = false;
		}
		p += len;
		if (*p)
			p++;
	}
	if (rc) {
		bson_string_free(b, true);
		return rc;
	}
	*out = bson_string_free(b, false);
	return 0;
}

/*
 * URL options the Go driver (so golang-migrate) takes and libmongoc does not
 * take the same way: one row each. becomes: what libmongoc gets instead
 * ("" drops it); why: logged when it is dropped (NULL: dropped silently).
 */
static const struct go_option {
	const char *key;   /* lower case, as both drivers match */
	const char *value; /* NULL: any value */
	const char *becomes;
	const char *why;
} go_options[] = {
    {"connect", "direct", "directConnection=true", NULL},
    {"connect", "automatic", "", NULL},
    {"timeoutms", NULL, "",
     "libmongoc 1.23 has no client-side operation timeout: socketTimeoutMS and "
     "connectTimeoutMS bound what it waits for"},
    {"maxconnecting", NULL, "", "a connection-pool setting; migrate-init opens no pool"},
    {"slaveok", NULL, "", "the Go driver ignores it too"},
    {"uuidrepresentation", NULL, "",
     "the Go driver ignores it too; migrations write UUIDs as Extended JSON says"},
    {"sslinsecure", NULL, "tlsInsecure=", NULL}, /* value appended */
};

/* Options that make libmongoc use TLS but not the Go driver: alone, they
 * leave golang-migrate in plain text, so they must leave us there too. */
static const char *const tls_quiet[] = {"tlsinsecure",
                                        "sslinsecure",
                                        "tlsallowinvalidcertificates",
                                        "tlsallowinvalidhostnames",
                                        "sslallowinvalidcertificates",
                                        "sslallowinvalidhostnames",
                                        NULL};
/* Options that turn TLS on (or off) for both. */
static const char *const tls_loud[] = {"tls",
                                       "ssl",
                                       "tlscafile",
                                       "sslcertificateauthorityfile",
                                       "tlscertificatekeyfile",
                                       "sslclientcertificatekeyfile",
                                       "tlsdisableocspendpointcheck",
                                       NULL};

static bool in_list(const char *const *list, const char *key, size_t klen)
{
	for (; *list; list++)
		if (strlen(*list) == klen && strncasecmp(*list, key, klen) == 0)
			return true;
	return false;
}

static int ignore_x_option(void *arg, const char *key, const char *value, const char *raw)
{
	(void)arg;
	(void)value;
	(void)raw;
	log_debug("ignoring an x- option of a dependency's URL", F_STR("option", key));
	return 0;
}

char *url_for_driver(const char *url)
{
	char *without_x = NULL;
	url_take_x_options(url, &without_x, ignore_x_option, NULL);
	char *out = url_go_options(without_x);
	bson_free(without_x);
	return out;
}

char *url_go_options(const char *url)
{
	const char *q = strchr(url, '?');
	if (!q)
		return bson_strdup(url);
	bson_string_t *b = bson_string_new(NULL);
	bson_string_append_printf(b, "%.*s", (int)(q - url), url);
	bool first = true, quiet = false, loud = false;
	for (const char *p = q + 1; *p;) {
		size_t len = strcspn(p, "&;");
		const char *eq = memchr(p, '=', len);
		size_t klen = eq ? (size_t)(eq - p) : len;
		const char *val = eq ? eq + 1 : p + len;
		size_t vlen = eq ? len - klen - 1 : 0;
		quiet |= in_list(tls_quiet, p, klen);
		loud |= in_list(tls_loud, p, klen);
		const struct go_option *o = NULL;
		for (size_t i = 0; i < sizeof go_options / sizeof go_options[0] && !o; i++)
			if (strlen(go_options[i].key) == klen &&
			    strncasecmp(go_options[i].key, p, klen) == 0 &&
			    (!go_options[i].value ||
			     (strlen(go_options[i].value) == vlen &&
			      strncasecmp(go_options[i].value, val, vlen) == 0)))
				o = &go_options[i];
		if (o && o->why) {
			char *key = bson_strndup(p, klen);
			log_warn(
			    "ignoring a URL option golang-migrate's driver takes and libmongoc has "
			    "no equivalent for",
			    F_STR("option", key), F_STR("why", o->why));
			bson_free(key);
		}
		const char *add = p;
		size_t addlen = len;
		char *tmp = NULL;
		if (o) {
			tmp = bson_strdup_printf(
			    "%s%.*s", o->becomes,
			    o->becomes[0] && o->becomes[strlen(o->becomes) - 1] == '=' ? (int)vlen
			                                                               : 0,
			    val);
			add = tmp;
			addlen = strlen(tmp);
		}
		if (addlen > 0) {
			bson_string_append_printf(b, "%c%.*s", first ? '?' : '&', (int)addlen, add);
			first = false;
		}
		bson_free(tmp);
		p += len;
		if (*p)
			p++;
	}
	if (quiet && !loud && strncmp(url, "mongodb+srv://", 14) != 0)
		bson_string_append_printf(b, "%ctls=false", first ? '?' : '&');
	return bson_string_free(b, false);
}

/* Shorter secrets are registered only inside the URL's own text: a bare
 * "p" would blank every p of every log line without protecting anything. */
#define MIN_BARE_SECRET 4

static void add_bare_secret(const char *s, size_t len)
{
	if (len >= MIN_BARE_SECRET)
		log_add_secret_n(s, len);
}

/* One reading of the userinfo: start up to the '@' at `at`. */
static void register_userinfo(const char *start, const char *at)
{
	/* "://userinfo@" catches the URL wherever it is echoed, whatever the
	 * password's length. */
	log_add_secret_n(start - 3, (size_t)(at - start) + 4);
	add_bare_secret(start, (size_t)(at - start));
	const char *colon = memchr(start, ':', (size_t)(at - start));
	if (colon && colon + 1 < at) {
		size_t plen = (size_t)(at - colon - 1);
		add_bare_secret(colon + 1, plen);
		char *dec = query_unescape(colon + 1, plen);
		if (dec) {
			add_bare_secret(dec, strlen(dec));
			bson_free(dec);
		}
	}
}

void url_register_secrets(const char *url)
{
	const char *start = strstr(url, "://");
	if (!start)
		return;
	start += 3;
	/* Where the userinfo ends depends on who reads it: libmongoc stops at
	 * the first '@', a password with an unescaped '@' (or '/', '?') makes
	 * a person mean the last. Every '@' may end it: register each reading. */
	for (const char *at = strchr(start, '@'); at; at = strchr(at + 1, '@'))
		register_userinfo(start, at);
}

char *url_error_text(const char *msg)
{
	bson_string_t *b = bson_string_new(NULL);
	for (const char *p = msg; *p; p++) {
		const char *end = (*p == '"' || *p == '\'') ? strchr(p + 1, *p) : NULL;
		if (!end) {
			bson_string_append_c(b, *p);
			continue;
		}
		/* 'key=value': the option's name is no secret, its value may be. */
		const char *eq = memchr(p + 1, '=', (size_t)(end - p - 1));
		bson_string_append_printf(b, "%c%.*s***%c", *p, eq ? (int)(eq - p) : 0, p + 1, *p);
		p = end;
	}
	return bson_string_free(b, false);
}

/* libmongoc's log while it parses a URL: its warnings may quote values
 * (the password among them), so none is logged; the first unknown option
 * is kept, since libmongoc drops those silently. */
static void note_unknown_option(mongoc_log_level_t level, const char *domain, const char *msg,
                                void *arg)
{
	(void)level;
	(void)domain;
	const char *prefix = "Unsupported URI option \"";
	char *unknown = arg;
	if (strncmp(msg, prefix, strlen(prefix)) == 0 && !unknown[0])
		snprintf(unknown, 128, "%.*s", (int)strcspn(msg + strlen(prefix), "\""),
		         msg + strlen(prefix));
}

/* A second '@' before the host list ends: both drivers take the first as
 * the end of the userinfo and would read the rest of the password as a
 * host, quoting it in their errors. */
static bool unescaped_at(const char *url)
{
	const char *start = strstr(url, "://");
	const char *at = start ? strchr(start + 3, '@') : NULL;
	if (!at)
		return false;
	size_t hosts = strcspn(at + 1, "/?");
	return memchr(at + 1, '@', hosts) != NULL;
}

mongoc_uri_t *url_parse(const char *url, const char *variable)
{
	url_register_secrets(url);
	if (unescaped_at(url)) {
		log_error("invalid database URL: an unescaped @ in the user info (percent-encode "
		          "it in the password as %40)",
		          F_STR("variable", variable));
		return NULL;
	}
	bson_error_t err;
	char unknown[128] = "";
	mongoc_log_set_handler(note_unknown_option, unknown);
	mongoc_uri_t *uri = mongoc_uri_new_with_error(url, &err);
	log_capture_mongoc();
	if (!uri) {
		char *text = url_error_text(err.message);
		log_error("invalid database URL", F_STR("variable", variable),
		          F_STR("error", text));
		bson_free(text);
		return NULL;
	}
	/* A misspelt option (tlsCAfile) would silently change what we
	 * connect with: a configuration error here. */
	if (unknown[0]) {
		mongoc_uri_destroy(uri);
		log_error("unknown option in the database URL", F_STR("variable", variable),
		          F_STR("option", unknown));
		return NULL;
	}
	/* libmongoc may have decoded the password differently from us. */
	const char *pw = mongoc_uri_get_password(uri);
	if (pw && strlen(pw) >= MIN_BARE_SECRET)
		log_add_secret(pw);
	return uri;
}
