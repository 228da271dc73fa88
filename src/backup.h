/*
 * BACKUP=touched: before a run's first migration, every collection its
 * migrations' commands name is copied to NAME__bak_V_TIMESTAMP in the same
 * database (options, indexes, documents batch by batch through a cursor, so
 * memory stays flat), V being the first migration the run applies. Each
 * backup is a document in the backups collection (the migrations
 * collection's name + "_backups"): inserted incomplete before the first
 * copy, marked complete after the last, so a crash in between leaves a
 * backup that lists as incomplete and never restores. `restore V` puts the
 * collections saved before V back and records the version the backup was
 * taken at (a named collection that did not exist then is dropped);
 * `backups` lists them, `backups -prune N` keeps the newest N.
 * All of it runs under our lock (the caller holds it).
 */
#ifndef MI_BACKUP_H
#define MI_BACKUP_H

#include "config.h"
#include "db.h"
#include "lock.h"
#include "plan.h"

#include <bson/bson.h>
#include <stddef.h>
#include <stdint.h>

/* The collections one migration command names (its target, renameCollection's
 * source and target in db, and $out, $merge and $lookup targets of any
 * pipeline inside it), each passed to fn once per mention. Pure: for the
 * unit tests too. */
void backup_named(const bson_t *cmd, const char *db, void (*fn)(void *arg, const char *collection),
                  void *arg);

/* Takes the backup of what plan p touches, at_version being the state it
 * starts from. Nothing to copy (no named collection exists) is no backup.
 * 0; EXIT_USAGE when the collections add up to more than BACKUP_MAX_BYTES
 * (logged with their names and sizes, nothing copied); another exit code
 * when a copy fails (logged; the run stops before any migration). */
int backup_take(struct db *d, struct lock *l, const struct config *c, const struct plan *p,
                int64_t at_version);

/* restore V: the newest complete backup taken before version V ran, each
 * collection dropped and copied back, then the state recorded clean at the
 * version the backup was taken at. The state reads dirty while the copies
 * run, so a crash half way is refused by the next run (8) and restore can
 * simply be run again. *to gets that version. 0, or an exit code after
 * logging why (EXIT_USAGE: no such backup). */
int backup_restore(struct db *d, struct lock *l, const struct config *c, uint64_t version,
                   int64_t *to);

/* Lists the backups on stdout, newest first; keep >= 0 drops every backup
 * but the newest keep (collections and records). 0, or an exit code. */
int backup_list(struct db *d, const struct config *c, int64_t keep);

#endif
