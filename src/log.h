/*
 * Structured logging to stderr: JSON lines with the field names of Go's
 * log/slog JSON handler (time, level, msg), or plain text for a terminal.
 *
 * Every string value passes through the redactor first, so a secret that
 * was registered with log_add_secret() cannot reach a log line, however the
 * text that carries it was built (our errors, libmongoc's, the server's).
 * In text format, control characters are escaped (no terminal escapes from
 * a file name); JSON escapes them anyway.
 *
 * Threads: every function may be called from any thread once
 * log_set_level/log_set_format (main thread, before any other thread
 * starts) are done; one mutex guards the secrets, the last error and each
 * line's write.
 */
#ifndef MI_LOG_H
#define MI_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_JSON, LOG_TEXT };

enum log_type { LF_END, LF_STR, LF_INT, LF_BOOL, LF_DOUBLE };

struct log_field {
	const char *key;
	enum log_type type;
	const char *s;
	long long i;
	double d;
};

/* F_STR with a NULL value leaves the field out. */
#define F_STR(k, v) ((struct log_field){.key = (k), .type = LF_STR, .s = (v)})
#define F_INT(k, v) ((struct log_field){.key = (k), .type = LF_INT, .i = (long long)(v)})
#define F_BOOL(k, v) ((struct log_field){.key = (k), .type = LF_BOOL, .i = !!(v)})
#define F_DOUBLE(k, v) ((struct log_field){.key = (k), .type = LF_DOUBLE, .d = (double)(v)})
#define F_END ((struct log_field){.key = NULL, .type = LF_END})

/* log_info("msg", F_INT("version", 3), F_STR("name", n)); */
#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__, F_END)
#define log_info(...) log_emit(LOG_INFO, __VA_ARGS__, F_END)
#define log_warn(...) log_emit(LOG_WARN, __VA_ARGS__, F_END)
#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__, F_END)

/* Fields end with F_END; the macros above add it. */
void log_emit(enum log_level level, const char *msg, ...);

/* Like log_emit, but never becomes the last error: for summaries that
 * repeat an error already logged. Fields end with F_END. */
void log_summary(enum log_level level, const char *msg, ...);

void log_set_level(enum log_level level);
void log_set_format(enum log_format format);

/* Parses "debug", "info", "warn"/"warning", "error" (any case). */
bool log_parse_level(const char *s, enum log_level *out);
/* Parses "json" or "text". */
bool log_parse_format(const char *s, enum log_format *out);

/* Registers a secret to be replaced by "***" wherever it appears; no limit
 * on how many. */
void log_add_secret(const char *secret);
void log_add_secret_n(const char *secret, size_t len);

/* A newly allocated copy of s with every registered secret replaced. */
char *log_redact(const char *s);

/* A newly allocated copy of s with every control character (and DEL) as
 * \xNN: for text meant for a terminal or a file people read. */
char *log_escape_controls(const char *s);

/* A copy of the last ERROR line we logged, as "msg key=value ...",
 * redacted; or NULL. Free it with bson_free. */
char *log_last_error(void);

/* Sends libmongoc's own log output through this logger. */
void log_capture_mongoc(void);

/* Frees the secrets and the last error; for leak checkers. */
void log_shutdown(void);

#endif
