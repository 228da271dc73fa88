/* Unit tests: database URLs (url): x- options, the Go driver's options,
 * secrets and redaction (with the logger, log). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "log.h"
#include "url.h"

#include <bson/bson.h>
#include <stdio.h>
#include <string.h>

struct seen {
	char keys[8][64];
	char vals[8][64];
	int n;
};

static int collect(void *arg, const char *key, const char *value, const char *raw)
{
	(void)raw;
	struct seen *s = arg;
	snprintf(s->keys[s->n], 64, "%s", key);
	snprintf(s->vals[s->n], 64, "%s", value ? value : "(bad)");
	s->n++;
	return 0;
}

static int refuse(void *arg, const char *key, const char *value, const char *raw)
{
	(void)raw;
	(void)arg;
	(void)key;
	(void)value;
	return 2;
}

static void test_x_options(void **state)
{
	(void)state;
	struct seen s = {0};
	char *out = NULL;
	assert_int_equal(url_take_x_options("mongodb://h/db?x-migrations-collection=my%20mig&w=1&"
	                                    "X-Transaction-Mode=true&appname=a",
	                                    &out, collect, &s),
	                 0);
	assert_string_equal(out, "mongodb://h/db?w=1&appname=a");
	assert_int_equal(s.n, 2);
	assert_string_equal(s.keys[0], "x-migrations-collection");
	assert_string_equal(s.vals[0], "my mig");
	assert_string_equal(s.keys[1], "x-transaction-mode");
	bson_free(out);

	memset(&s, 0, sizeof s);
	assert_int_equal(url_take_x_options("mongodb://h/db?x-a=1", &out, collect, &s), 0);
	assert_string_equal(out, "mongodb://h/db");
	bson_free(out);

	memset(&s, 0, sizeof s);
	assert_int_equal(url_take_x_options("mongodb://h/db?x-a=%zz", &out, collect, &s), 0);
	assert_string_equal(s.vals[0], "(bad)");
	bson_free(out);

	assert_int_equal(url_take_x_options("mongodb://h/db", &out, collect, &s), 0);
	assert_string_equal(out, "mongodb://h/db");
	bson_free(out);

	out = NULL;
	assert_int_equal(url_take_x_options("mongodb://h/db?x-a=1", &out, refuse, NULL), 2);
	assert_null(out);
}

static void test_redaction(void **state)
{
	(void)state;
	url_register_secrets("mongodb://admin:p%40ss/w0rd@db.example:27017/app?authSource=admin");
	char *r = log_redact("failed: mongodb://admin:p%40ss/w0rd@db.example:27017/app p@ss/w0rd");
	assert_null(strstr(r, "p%40ss"));
	assert_null(strstr(r, "p@ss/w0rd"));
	assert_non_null(strstr(r, "db.example"));
	bson_free(r);
	log_shutdown();
	r = log_redact("nothing registered");
	assert_string_equal(r, "nothing registered");
	bson_free(r);

	/* A one-letter password is hidden inside the URL, not everywhere. */
	url_register_secrets("mongodb://u:p@h/db");
	r = log_redact("entrypoint: cannot reach mongodb://u:p@h/db");
	assert_string_equal(r, "entrypoint: cannot reach mongodb***h/db");
	bson_free(r);
	log_shutdown();
}

static void test_redaction_every_at(void **state)
{
	(void)state;
	/* libmongoc ends the userinfo at the first '@', a person at the last. */
	url_register_secrets("mongodb://migrator:hunter2:xyz@abc@host/db");
	char *r = log_redact("Password \"hunter2:xyz\" must not; hunter2:xyz@abc");
	assert_null(strstr(r, "hunter2"));
	bson_free(r);
	log_shutdown();
	/* Each reading of a userinfo with '@' in it: the longer ones first. */
	url_register_secrets("mongodb://user:p@ss@host/db");
	r = log_redact("a mongodb://user:p@ss@host/db b user:p@ss c");
	assert_null(strstr(r, "p@ss"));
	assert_null(strstr(r, "user:p"));
	bson_free(r);
	log_shutdown();
	/* No cap: the 40th URL's password is as secret as the first's. */
	for (int i = 0; i < 40; i++) {
		char url[64];
		snprintf(url, sizeof url, "mongodb://u:secret-%02d@h/db", i);
		url_register_secrets(url);
	}
	r = log_redact("secret-00 secret-39");
	assert_string_equal(r, "*** ***");
	bson_free(r);
	log_shutdown();
}

static void test_url_error_text(void **state)
{
	(void)state;
	char *t = url_error_text("Password \"a:b\" must not have unescaped chars. Percent-encode");
	assert_string_equal(t, "Password \"***\" must not have unescaped chars. Percent-encode");
	bson_free(t);
	t = url_error_text("Unknown option or value for 'tls=maybe'");
	assert_string_equal(t, "Unknown option or value for 'tls=***'");
	bson_free(t);
	t = url_error_text("Invalid host string in URI");
	assert_string_equal(t, "Invalid host string in URI");
	bson_free(t);
	t = url_error_text("unterminated \"quote");
	assert_string_equal(t, "unterminated \"quote");
	bson_free(t);
}

static void rewrites_to(const char *url, const char *want)
{
	char *got = url_go_options(url);
	assert_string_equal(got, want);
	bson_free(got);
}

static void test_go_driver_options(void **state)
{
	(void)state;
	log_set_level(LOG_ERROR); /* the dropped options warn */
	rewrites_to("mongodb://h/db?connect=direct", "mongodb://h/db?directConnection=true");
	rewrites_to("mongodb://h/db?w=1&connect=automatic&appname=x",
	            "mongodb://h/db?w=1&appname=x");
	rewrites_to("mongodb://h/db?timeoutMS=5&maxConnecting=2", "mongodb://h/db");
	rewrites_to("mongodb://h/db?sslInsecure=false",
	            "mongodb://h/db?tlsInsecure=false&tls=false");
	rewrites_to("mongodb://h/db?tlsInsecure=true", "mongodb://h/db?tlsInsecure=true&tls=false");
	rewrites_to("mongodb://h/db?tls=true&tlsInsecure=true",
	            "mongodb://h/db?tls=true&tlsInsecure=true");
	rewrites_to("mongodb://h/db?tlsCAFile=/ca&tlsAllowInvalidHostnames=true",
	            "mongodb://h/db?tlsCAFile=/ca&tlsAllowInvalidHostnames=true");
	rewrites_to("mongodb+srv://h/db?tlsInsecure=true", "mongodb+srv://h/db?tlsInsecure=true");
	rewrites_to("mongodb://h/db?&&connect=direct&", "mongodb://h/db?directConnection=true");
	rewrites_to("mongodb://h/db", "mongodb://h/db");
	log_set_level(LOG_INFO);
}

static void test_escape_controls(void **state)
{
	(void)state;
	char *t = log_escape_controls("3_x\x1b[31m.up.json\ttab\x7f");
	assert_string_equal(t, "3_x\\x1b[31m.up.json\\x09tab\\x7f");
	bson_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_x_options),          cmocka_unit_test(test_redaction),
	    cmocka_unit_test(test_redaction_every_at), cmocka_unit_test(test_url_error_text),
	    cmocka_unit_test(test_escape_controls),    cmocka_unit_test(test_go_driver_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
