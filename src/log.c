#include "log.h"

#include <bson/bson.h>
#include <mongoc/mongoc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_JSON;

/* Any thread may log (the heartbeat, the abort watchdog, libmongoc's
 * threads) and register secrets (the registry opens databases mid-run):
 * mu guards the secrets, the last error, and each line's write, so lines
 * never interleave. Level and format are set once, before any thread. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static char **secrets;
static size_t nsecrets, secrets_cap;
static char *last_error;

static const char *level_name[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_level(enum log_level level)
{
	min_level = level;
}

void log_set_format(enum log_format f)
{
	format = f;
}

bool log_parse_level(const char *s, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {{"debug", LOG_DEBUG},
	             {"info", LOG_INFO},
	             {"warn", LOG_WARN},
	             {"warning", LOG_WARN},
	             {"error", LOG_ERROR}};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcasecmp(s, names[i].name) == 0) {
			*out = names[i].level;
			return true;
		}
	}
	return false;
}

bool log_parse_format(const char *s, enum log_format *out)
{
	if (strcasecmp(s, "json") == 0)
		*out = LOG_JSON;
	else if (strcasecmp(s, "text") == 0)
		*out = LOG_TEXT;
	else
		return false;
	return true;
}

void log_add_secret_n(const char *secret, size_t len)
{
	if (!secret || len == 0)
		return;
	pthread_mutex_lock(&mu);
	bool known = false;
	for (size_t i = 0; i < nsecrets && !known; i++)
		known = strlen(secrets[i]) == len && memcmp(secrets[i], secret, len) == 0;
	if (!known) {
		/* No cap: a table that fills up would fail open. */
		if (nsecrets == secrets_cap) {
			secrets_cap = secrets_cap ? 2 * secrets_cap : 16;
			secrets = bson_realloc(secrets, secrets_cap * sizeof *secrets);
		}
		/* Longest first: a shorter secret inside a longer one (each
		 * reading of a userinfo with '@' in it) must not break the
		 * longer one up before it is matched. */
		size_t at = 0;
		while (at < nsecrets && strlen(secrets[at]) >= len)
			at++;
		memmove(secrets + at + 1, secrets + at, (nsecrets - at) * sizeof *secrets);
		secrets[at] = bson_strndup(secret, len);
		nsecrets++;
	}
	pthread_mutex_unlock(&mu);
}

void log_add_secret(const char *secret)
{
	if (secret)
		log_add_secret_n(secret, strlen(secret));
}

/* log_redact with mu held. */
static char *redact_locked(const char *s)
{
	char *out = bson_strdup(s);
	/* The table is longest first (see log_add_secret_n). */
	for (size_t i = 0; i < nsecrets; i++) {
		const char *sec = secrets[i];
		size_t slen = strlen(sec);
		char *hit = strstr(out, sec);
		if (!hit)
			continue;
		bson_string_t *b = bson_string_new(NULL);
		const char *p = out;
		while ((hit = strstr(p, sec)) != NULL) {
			bson_string_append_printf(b, "%.*s***", (int)(hit - p), p);
			p = hit + slen;
		}
		bson_string_append(b, p);
		bson_free(out);
		out = bson_string_free(b, false);
	}
	return out;
}

char *log_redact(const char *s)
{
	if (!s)
		return NULL;
	pthread_mutex_lock(&mu);
	char *out = redact_locked(s);
	pthread_mutex_unlock(&mu);
	return out;
}

char *log_escape_controls(const char *s)
{
	bson_string_t *b = bson_string_new(NULL);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			bson_string_append_printf(b, "\\x%02x", *p);
		else
			bson_string_append_c(b, (char)*p);
	}
	return bson_string_free(b, false);
}

char *log_last_error(void)
{
	pthread_mutex_lock(&mu);
	char *copy = last_error ? bson_strdup(last_error) : NULL;
	pthread_mutex_unlock(&mu);
	return copy;
}

static void append_time(bson_string_t *b)
{
	struct timespec ts;
	struct tm tm;
	char buf[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	bson_string_append_printf(b, "%s.%03ldZ", buf, ts.tv_nsec / 1000000L);
}

/* JSON-escapes s (already redacted); bytes that are not UTF-8 become '?'. */
static void append_json_string(bson_string_t *b, const char *s)
{
	char *tmp = NULL;
	if (!bson_utf8_validate(s, strlen(s), false)) {
		tmp = bson_strdup(s);
		for (char *p = tmp; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		s = tmp;
	}
	char *esc = bson_utf8_escape_for_json(s, -1);
	bson_string_append_c(b, '"');
	bson_string_append(b, esc ? esc : "");
	bson_string_append_c(b, '"');
	bson_free(esc);
	bson_free(tmp);
}

static bool plain_text(const char *s)
{
	if (!*s)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '=')
			return false;
	return true;
}

/* A text-format value: as is when that is unambiguous, else quoted and
 * escaped like JSON, so no control character reaches a terminal raw. */
static void append_text_value(bson_string_t *b, const char *s)
{
	if (plain_text(s))
		bson_string_append(b, s);
	else
		append_json_string(b, s);
}

static void append_field(bson_string_t *b, const struct log_field *f, enum log_format fmt)
{
	char num[64];
	const char *plain = NULL;
	char *red = NULL;

	switch (f->type) {
	case LF_STR:
		if (!f->s)
			return; /* an optional field with nothing to say */
		red = redact_locked(f->s);
		break;
	case LF_INT:
		snprintf(num, sizeof num, "%lld", f->i);
		plain = num;
		break;
	case LF_BOOL:
		plain = f->i ? "true" : "false";
		break;
	case LF_DOUBLE:
		snprintf(num, sizeof num, "%.17g", f->d);
		plain = num;
		break;
	case LF_END:
		return;
	}
	if (fmt == LOG_JSON) {
		bson_string_append_printf(b, ",\"%s\":", f->key);
		if (red)
			append_json_string(b, red);
		else
			bson_string_append(b, plain);
	} else {
		bson_string_append_printf(b, " %s=", f->key);
		append_text_value(b, red ? red : plain);
	}
	bson_free(red);
}

static void write_all(const char *s, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDERR_FILENO, s, len);
		if (n <= 0)
			return;
		s += n;
		len -= (size_t)n;
	}
}

/* msg and fields as text, without time and level: the last error. */
static void remember_error(const char *rmsg, const struct log_field *fields, size_t nfields)
{
	bson_string_t *b = bson_string_new(rmsg);
	for (size_t i = 0; i < nfields; i++)
		append_field(b, &fields[i], LOG_TEXT);
	bson_free(last_error);
	last_error = bson_string_free(b, false);
}

static void emit(enum log_level level, const char *msg, const struct log_field *fields,
                 size_t nfields, bool remember)
{
	if (level < min_level)
		return;
	pthread_mutex_lock(&mu);
	char *rmsg = redact_locked(msg);
	bson_string_t *b = bson_string_new(NULL);
	if (format == LOG_JSON) {
		bson_string_append(b, "{\"time\":\"");
		append_time(b);
		bson_string_append_printf(b, "\",\"level\":\"%s\",\"msg\":", level_name[level]);
		append_json_string(b, rmsg);
	} else {
		char *esc = log_escape_controls(rmsg);
		append_time(b);
		bson_string_append_printf(b, " %-5s %s", level_name[level], esc);
		bson_free(esc);
	}
	for (size_t i = 0; i < nfields; i++)
		append_field(b, &fields[i], format);
	bson_string_append(b, format == LOG_JSON ? "}\n" : "\n");
	write_all(b->str, b->len);
	bson_string_free(b, true);
	if (remember && level == LOG_ERROR)
		remember_error(rmsg, fields, nfields);
	bson_free(rmsg);
	pthread_mutex_unlock(&mu);
}

#define MAX_FIELDS 24

static void emit_va(enum log_level level, const char *msg, va_list ap, bool remember)
{
	struct log_field fields[MAX_FIELDS];
	size_t n = 0;
	for (;;) {
		struct log_field f = va_arg(ap, struct log_field);
		if (f.type == LF_END || n == MAX_FIELDS)
			break;
		fields[n++] = f;
	}
	emit(level, msg, fields, n, remember);
}

void log_summary(enum log_level level, const char *msg, ...)
{
	va_list ap;
	va_start(ap, msg);
	emit_va(level, msg, ap, false);
	va_end(ap);
}

void log_emit(enum log_level level, const char *msg, ...)
{
	va_list ap;
	va_start(ap, msg);
	emit_va(level, msg, ap, true);
	va_end(ap);
}

static void mongoc_handler(mongoc_log_level_t level, const char *domain, const char *message,
                           void *data)
{
	(void)data;
	enum log_level l;
	switch (level) {
	case MONGOC_LOG_LEVEL_ERROR:
	case MONGOC_LOG_LEVEL_CRITICAL:
		l = LOG_ERROR;
		break;
	case MONGOC_LOG_LEVEL_WARNING:
		l = LOG_WARN;
		break;
	case MONGOC_LOG_LEVEL_MESSAGE:
	case MONGOC_LOG_LEVEL_INFO:
		l = LOG_INFO;
		break;
	default:
		l = LOG_DEBUG;
	}
	/* Servers without sessions (FerretDB) refuse the endSessions that
	 * libmongoc sends at shutdown; harmless, and noise at WARN. */
	if (l == LOG_WARN && strstr(message, "Couldn't send \"endSessions\""))
		l = LOG_DEBUG;
	struct log_field f[] = {F_STR("component", "libmongoc"), F_STR("domain", domain)};
	emit(l, message, f, 2, false);
}

void log_capture_mongoc(void)
{
	mongoc_log_trace_disable();
	mongoc_log_set_handler(mongoc_handler, NULL);
}

void log_shutdown(void)
{
	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nsecrets; i++)
		bson_free(secrets[i]);
	bson_free(secrets);
	secrets = NULL;
	nsecrets = secrets_cap = 0;
	bson_free(last_error);
	last_error = NULL;
	pthread_mutex_unlock(&mu);
}
