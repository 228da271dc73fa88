/*
 * The database and the migration state. The state is golang-migrate's:
 * one document {version, dirty} in the migrations collection, version -1
 * (or no document) meaning "no version". Unlike golang-migrate we update it
 * in place, never dropping or creating a collection per write, and still
 * leave exactly the one document its FindOne({}) reads.
 *
 * Fencing. While we hold the lock the state document also carries our lock
 * token (STATE_FENCE_FIELD; golang-migrate ignores it and its own writes
 * drop it). Every state write we send filters on that token, so the server
 * itself refuses a write from a runner whose lock was taken over, however
 * late the write arrives: the runner that took over an expired lock
 * claims the state with its own token (db_claim_state), which revokes the
 * old one. `unlock -force` revokes a holder's token (db_revoke_fence). On a fresh database the
 * claim inserts the document under a fixed _id, so a stale runner's claim fails on the unique _id
 * index.
 *
 * Threads: the struct belongs to the thread that opened it; libmongoc's
 * client is not thread-safe. The heartbeat and the abort path open their own.
 */
#ifndef MI_DB_H
#define MI_DB_H

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>

#define VERSION_NIL (-1)

/* What opening a database needs: the configured one (config.h) or a
 * registry dependency's. */
struct db_options {
	char *uri;  /* for libmongoc: no x- options, the Go driver's rewritten (url.h) */
	char *name; /* the database */
	char *migrations_collection;
	int64_t connect_timeout_ms; /* > 0: caps the URL's connectTimeoutMS default */
};

struct db {
	mongoc_client_t *client;
	mongoc_database_t *db;
	mongoc_collection_t *state;
	const struct db_options *opt;
	bson_error_t open_err; /* why db_open returned EXIT_UNREACHABLE */
	/* The state document as last read: its _id, and the lock token it
	 * carried (seen_fence, "" when none). */
	bool exists;
	bool extra; /* a second document follows it */
	bson_value_t id;
	char seen_fence[40];
	/* Our lock token, once we claimed the state with it: every state
	 * write filters on it. "" when we hold no lock. */
	char fence[40];
};

/* The field of the state document that holds the lock token it is fenced
 * to, and what unlock leaves there for a token it revoked. */
#define STATE_FENCE_FIELD "lock_token"
#define STATE_FENCE_REVOKED "revoked"

/* Creates the client; no I/O yet, except for a mongodb+srv URL, whose SRV
 * and TXT records libmongoc looks up right here. reply_timeout_ms > 0 caps
 * how long a command waits for its reply (socketTimeoutMS), for connections
 * whose commands are useless past a deadline (the heartbeat's); 0 leaves
 * the URL's. 0, EXIT_USAGE, or EXIT_UNREACHABLE when that lookup failed
 * (NXDOMAIN, no answer: a Service not created yet is a rollout's normal
 * state, so this is the database not being there yet, never a usage
 * error); then d->open_err says why, d has no client, and db_close is
 * still safe. */
int db_open(struct db *d, const struct db_options *o, int32_t reply_timeout_ms);
void db_close(struct db *d);

/* One connection attempt and ping. */
bool db_ping(struct db *d, bson_error_t *err);

/* The server's clock (hello.localTime), in ms since the epoch: the one
 * clock every runner agrees on. */
bool db_server_time(struct db *d, int64_t *ms, bson_error_t *err);

/* Reads the state. 0, or an exit code after logging why. A document with
 * no dirty field (or null, 0, false) is clean, as golang-migrate reads it. */
int db_get_version(struct db *d, int64_t *version, bool *dirty);

/* One step of claiming the state for our lock (lock_claim_state loops
 * over it): reads the state and, unless it is already fenced to token,
 * writes the claim (on a fresh database: inserts {version: -1, dirty:
 * false}, golang-migrate's "no version"). *claimed when the read showed
 * it ours; token NULL (x-advisory-locking=false) only reads. 0, or an exit
 * code after logging why. */
int db_claim_state(struct db *d, const char *token, int64_t *version, bool *dirty, bool *claimed);

/* Revokes token in the state, so that no write of its holder lands any
 * more; checked by reading back, since a conditional update racing it may
 * not be atomic (FerretDB). For unlock. 0, or an exit
 * code after logging why. */
int db_revoke_fence(struct db *d, const char *token);

/* Writes the state; once claimed, only while it is still fenced to our
 * token. EXIT_LOCK_LOST (logged) when the server refused: our lock was
 * taken over and the new holder revoked us. */
int db_set_version(struct db *d, int64_t version, bool dirty);

/* runCommand against the URL's database. A reply with writeErrors or a
 * writeConcernError counts as a failure, as in the Go driver. */
bool db_run_command(struct db *d, const bson_t *cmd, mongoc_client_session_t *session,
                    bson_error_t *err);

/* Checks that the server can run commands in a transaction, without
 * writing anything. 0, or EXIT_USAGE after logging why. */
int db_check_transactions(struct db *d);

/* dropDatabase. 0, or an exit code after logging why. */
int db_drop(struct db *d);

/* Maps a driver error to an exit code: EXIT_AUTH for authentication and
 * TLS failures, EXIT_UNREACHABLE for network ones, else EXIT_INTERNAL. */
int db_error_exit(const bson_error_t *err);

#endif
