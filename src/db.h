/*
 * The database and the migration state. The state is golang-migrate's:
 * one document {version, dirty} in the migrations collection, version -1
 * (or no document) meaning "no version". Unlike golang-migrate we write it
 * with one upserting replace, never dropping or creating a collection per
 * write, and still leave exactly the one document its FindOne({}) reads.
 */
#ifndef MI_DB_H
#define MI_DB_H

#include "config.h"

#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdint.h>

#define VERSION_NIL (-1)

struct db {
	mongoc_client_t *client;
	mongoc_database_t *db;
	mongoc_collection_t *state;
	const struct config *cfg;
	/* The state as we last read or wrote it: every write is a
	 * compare-and-set against it (see db_set_version). */
	bool known;
	bool exists;
	int64_t version;
	bool dirty;
};

/* Creates the client; no I/O yet. 0 or EXIT_USAGE. */
int db_open(struct db *d, const struct config *c);
void db_close(struct db *d);

/* One connection attempt and ping. */
bool db_ping(struct db *d, bson_error_t *err);

/* The server's clock (hello.localTime), in ms since the epoch: the one
 * clock every runner agrees on. */
bool db_server_time(struct db *d, int64_t *ms, bson_error_t *err);

/* Reads the state. 0, or an exit code after logging why. */
int db_get_version(struct db *d, int64_t *version, bool *dirty);

/* Writes the state, only if it is still what we last read or wrote: a
 * write delayed past our lock's lease (a stalled connection) must not undo
 * what a runner that took over has done since. EXIT_LOCK_LOST if it was
 * changed under us. */
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

/* Whether retrying the same operation could succeed. */
bool db_error_transient(const bson_error_t *err);

#endif
