/*
 * The history collection: one document per applied or failed migration,
 * with the file's sha256, times, outcome and owner. golang-migrate neither
 * reads nor writes it. Its name comes from x-history-collection (default
 * schema_migrations_history); x-history=false turns it off. A failure to
 * write history is logged and does not fail the migration.
 *
 * Records are buffered and sent in one insert: one insert per migration
 * costs as much as a third state write (BENCHMARKS.md), and the history is
 * an audit trail, not state: the state document alone says where the
 * database is. The buffer goes out when its oldest record is
 * HISTORY_FLUSH_INTERVAL old (checked as records are added), with any
 * record that is not a success, and at the end of every run: success,
 * failure, a stop, and the abort watchdog's last resort. What a SIGKILL (an
 * OOM kill, a node lost) takes with it is at most that interval's records.
 *
 * Threads: the buffer is the process's (one run per process), under a
 * mutex, so that the abort watchdog can send it over its own connection
 * while the main thread is stuck in a migration.
 */
#ifndef MI_HISTORY_H
#define MI_HISTORY_H

#include "config.h"
#include "db.h"

#include <stdbool.h>
#include <stdint.h>

struct history_rec {
	uint64_t version;
	const char *name;
	const char *direction; /* "up" or "down" */
	const char *sha256;    /* NULL when the direction has no file */
	int64_t started_at;    /* ms since the epoch, our wall clock */
	int64_t finished_at;
	const char *outcome; /* "applied", "failed" or "rolled_back" (ON_FAILURE) */
	const char *error;   /* NULL unless failed */
};

/* Buffers r; sends the buffer when it is due (above). */
void history_record(struct db *d, const struct config *c, const struct history_rec *r);

/* Buffers r and sends the buffer now: for records that must not wait (a
 * failure, a backup, a restore). */
void history_write(struct db *d, const struct config *c, const struct history_rec *r);

/* Sends whatever is buffered, over d. */
void history_flush(struct db *d, const struct config *c);

/* The abort watchdog's: sends whatever is buffered over a connection of its
 * own. */
void history_flush_detached(const struct config *c);

/* The latest successful up of one version. */
struct history_applied {
	uint64_t version;
	int64_t applied_at;
	char owner[128];
	char sha256[65];
};

/* Reads every version's latest successful up. 0, or an exit code after
 * logging why. *out is sorted by version; free it with bson_free. */
int history_read(struct db *d, const struct config *c, struct history_applied **out, size_t *n);

/* The entry for version in a history_read() result, or NULL. */
const struct history_applied *history_find(const struct history_applied *h, size_t n,
                                           uint64_t version);

#endif
