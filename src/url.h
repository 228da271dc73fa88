/*
 * Database URLs: the text a user gives (DATABASE_URL, a registry
 * dependency's variable) on its way to libmongoc. golang-migrate's x-
 * options are taken out, the Go driver's options rewritten, every reading
 * of the password registered with the logger before anything can echo it,
 * and libmongoc's own complaints (which quote values) redacted.
 */
#ifndef MI_URL_H
#define MI_URL_H

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stddef.h>

/* %XX decoding of s[0..len); '+' is a space in a query (Go's
 * QueryUnescape) when plus_is_space, not in a path. NULL on a bad or NUL
 * escape. Free with bson_free. */
char *url_unescape(const char *s, size_t len, bool plus_is_space);

/*
 * Removes every x- option from url's query. Each removed option is passed
 * to fn with its percent-decoded value (NULL when the escapes are bad) and
 * its text as written; a non-zero return stops and is returned. *out is a
 * new string.
 */
int url_take_x_options(const char *url, char **out,
                       int (*fn)(void *arg, const char *key, const char *value, const char *raw),
                       void *arg);

/* url with the options golang-migrate's Go driver takes rewritten for
 * libmongoc (README: "URL options"): connect=direct becomes
 * directConnection=true, options libmongoc has no equivalent for are
 * dropped with a warning, and TLS stays off when only options the Go
 * driver does not take as "use TLS" (tlsInsecure, tlsAllowInvalid*) ask
 * for it. A new string. */
char *url_go_options(const char *url);

/* A URL we do not configure from (a registry dependency's) as libmongoc
 * should get it: x- options removed (ignored), then url_go_options. */
char *url_for_driver(const char *url);

/* Registers the userinfo and password of url as secrets for the logger,
 * for every '@' that could end the userinfo. A password shorter than 4
 * bytes is registered only inside "://userinfo@" (a bare "ab" would blank
 * every ab of every line): no message may echo it out of the URL, so
 * driver messages about a URL go through url_error_text. */
void url_register_secrets(const char *url);

/* A driver message about a URL it could not parse, with every quoted value
 * replaced by *** (it quotes the password it choked on, and option
 * values); an option's name before '=' is kept. Free with bson_free. */
char *url_error_text(const char *msg);

/* Parses url with libmongoc, quietly: secrets registered first, the
 * driver's warnings (which quote values) not logged, its error passed
 * through url_error_text, an unknown option refused. NULL after logging
 * why, naming `variable` (where the URL came from). */
mongoc_uri_t *url_parse(const char *url, const char *variable);

#endif
