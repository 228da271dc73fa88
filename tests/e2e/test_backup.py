"""BACKUP=touched, restore V, backups [-prune N] (README: "Backup and
restore"), against FerretDB: a destructive migration undone by restore
gives back the same documents, byte for byte, and the same indexes; a
backup over BACKUP_MAX_BYTES refuses before anything runs; a SIGKILL in
the backup or the restore leaves nothing that reads as done."""

import time

import bson
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from conftest import (
    lock_free,
    msgs,
    run_faults,
    run_gm,
    run_mi,
    version_of,
    write_migrations,
)

BACKUPS = "schema_migrations_backups"

SEED = [{"create": "items"},
        {"createIndexes": "items", "indexes": [{"key": {"name": 1}, "name": "by_name", "unique": True},
                                               {"key": {"n": -1, "name": 1}, "name": "by_n"}]},
        {"insert": "items", "documents": [
            {"_id": i, "name": f"item-{i}", "n": i * 7 % 13, "tags": ["a", {"b": i}], "price": {"$numberDouble": "1.5"},
             "when": {"$date": {"$numberLong": str(1700000000000 + i)}}} for i in range(2500)]},
        {"insert": "notes", "documents": [{"_id": "n1", "text": "kept"}]}]

DESTROY = [{"delete": "items", "deletes": [{"q": {"n": {"$gt": 3}}, "limit": 0}]},
           {"dropIndexes": "items", "index": "by_name"},
           {"update": "items", "updates": [{"q": {"n": 0}, "u": {"$set": {"name": "gone"}}, "multi": True}]},
           {"delete": "notes", "deletes": [{"q": {}, "limit": 0}]},
           {"insert": "notes_new", "documents": [{"_id": 1}]}]


def files(two=DESTROY):
    return {"1_seed.up.json": SEED, "1_seed.down.json": [{"drop": "items"}],
            "2_destroy.up.json": two, "2_destroy.down.json": []}


def raw_docs(db, coll):
    opts = CodecOptions(document_class=RawBSONDocument)
    return [d.raw for d in db.get_collection(coll, codec_options=opts).find().sort("_id", 1)]


def index_specs(db, coll):
    return sorted((i["name"], tuple(i["key"].items()), bool(i.get("unique")))
                  for i in db[coll].list_indexes())


def bak_collections(db):
    return sorted(n for n in db.list_collection_names() if "__bak_" in n)


def env_for(db_url, migdir, **extra):
    return dict({"DATABASE_URL": db_url, "MIGRATION_DIR": str(migdir)}, **extra)


def seeded(db_url, db, migdir):
    write_migrations(migdir, files())
    res = run_mi(["up", "1"], env_for(db_url, migdir))
    assert res.returncode == 0, res
    return raw_docs(db, "items"), index_specs(db, "items"), raw_docs(db, "notes")


def test_backup_destroy_restore_gives_back_the_same(db_url, db, migdir):
    items, indexes, notes = seeded(db_url, db, migdir)
    res = run_mi(["up"], env_for(db_url, migdir, BACKUP="touched"))
    assert res.returncode == 0, res
    assert "backup taken before the first migration" in msgs(res), res
    assert version_of(db) == (2, False)
    assert raw_docs(db, "items") != items and index_specs(db, "items") != indexes
    rec = db[BACKUPS].find_one()
    assert rec["complete"] and rec["version"] == 2 and rec["at_version"] == 1, rec
    # items and notes are named and exist; notes_new did not exist yet.
    assert sorted(c["name"] for c in rec["collections"]) == ["items", "notes"], rec
    assert rec["absent"] == ["notes_new"], rec
    assert raw_docs(db, rec["collections"][0]["backup"]) in (items, notes)

    listed = run_mi(["backups"], env_for(db_url, migdir))
    assert listed.returncode == 0 and rec["_id"] in listed.stdout, listed

    back = run_mi(["restore", "2"], env_for(db_url, migdir))
    assert back.returncode == 0, back
    assert version_of(db) == (1, False)
    assert raw_docs(db, "items") == items
    assert index_specs(db, "items") == indexes
    assert raw_docs(db, "notes") == notes
    assert "notes_new" not in db.list_collection_names()  # made by 2: gone with it
    assert lock_free(db)
    # Version 2's records in the order written (ObjectIds of different
    # processes within one second do not order them).
    hist = db["schema_migrations_history"].find({"version": 2}).sort([("finished_at", 1), ("_id", 1)])
    outcomes = [h["outcome"] for h in hist]
    assert outcomes == ["backup", "applied", "restored"], outcomes
    gm = run_gm(["-path", migdir, "-database", db_url, "version"])
    assert gm.returncode == 0 and gm.output.strip().endswith("1"), gm


def test_over_the_limit_nothing_runs(db_url, db, migdir):
    seeded(db_url, db, migdir)
    res = run_mi(["up"], env_for(db_url, migdir, BACKUP="touched", BACKUP_MAX_BYTES="1000"))
    assert res.returncode == 2, res
    rec = [r for r in res.logs if "larger than BACKUP_MAX_BYTES" in r.get("msg", "")]
    assert rec and "items (" in rec[0]["collections"] and rec[0]["max_bytes"] == 1000, res
    assert version_of(db) == (1, False)
    assert bak_collections(db) == [] and db[BACKUPS].count_documents({}) == 0
    assert lock_free(db)


def test_nothing_to_save_is_no_backup(db_url, db, migdir):
    write_migrations(migdir, {"1_new.up.json": [{"insert": "fresh", "documents": [{"_id": 1}]}]})
    res = run_mi(["up"], env_for(db_url, migdir, BACKUP="touched"))
    assert res.returncode == 0, res
    assert db[BACKUPS].count_documents({}) == 0


def test_restore_without_a_backup_is_refused(db_url, db, migdir):
    seeded(db_url, db, migdir)
    res = run_mi(["restore", "2"], env_for(db_url, migdir))
    assert res.returncode == 2, res
    assert "no complete backup was taken before this version ran" in msgs(res)
    assert version_of(db) == (1, False)


def test_prune_keeps_the_newest(db_url, db, migdir):
    seeded(db_url, db, migdir)
    env = env_for(db_url, migdir, BACKUP="touched")
    for _ in range(3):
        assert run_mi(["up"], env).returncode == 0
        assert run_mi(["restore", "2"], env_for(db_url, migdir)).returncode == 0
        time.sleep(1.1)  # backup ids carry the second they were taken
    assert db[BACKUPS].count_documents({}) == 3
    newest = db[BACKUPS].find().sort("taken_at", -1).limit(1)[0]
    res = run_mi(["backups", "-prune", "1"], env_for(db_url, migdir))
    assert res.returncode == 0, res
    assert [r["_id"] for r in db[BACKUPS].find()] == [newest["_id"]]
    assert bak_collections(db) == sorted(c["backup"] for c in newest["collections"])
    assert run_mi(["backups", "-prune", "x"], env_for(db_url, migdir)).returncode == 2


def test_killed_during_the_backup(faults_bin, db_url, db, migdir):
    """A backup cut short is listed incomplete, never restored, and no
    migration ran."""
    seeded(db_url, db, migdir)
    crash = run_faults(faults_bin, ["up"], env_for(db_url, migdir, BACKUP="touched",
                                                   MI_FAULT="backup_batch@2", LOCK_LEASE="1s"))
    assert crash.returncode == -9, crash
    assert version_of(db) == (1, False)
    rec = db[BACKUPS].find_one()
    assert rec and not rec["complete"], rec
    time.sleep(1.2)
    listed = run_mi(["backups"], env_for(db_url, migdir))
    assert "(incomplete)" in listed.stdout, listed
    res = run_mi(["restore", "2"], env_for(db_url, migdir))
    assert res.returncode == 2, res


def test_killed_during_the_restore(faults_bin, db_url, db, migdir):
    """A restore cut short leaves the state dirty: up refuses it (8); the
    restore run again finishes it."""
    items, indexes, _ = seeded(db_url, db, migdir)
    assert run_mi(["up"], env_for(db_url, migdir, BACKUP="touched")).returncode == 0
    crash = run_faults(faults_bin, ["restore", "2"], env_for(db_url, migdir, MI_FAULT="restore_copy@1",
                                                             LOCK_LEASE="1s"))
    assert crash.returncode == -9, crash
    assert version_of(db) == (1, True)
    time.sleep(1.2)
    assert run_mi(["up"], env_for(db_url, migdir)).returncode == 8
    again = run_mi(["restore", "2"], env_for(db_url, migdir))
    assert again.returncode == 0, again
    assert version_of(db) == (1, False)
    assert raw_docs(db, "items") == items and index_specs(db, "items") == indexes
