"""Interop with the real golang-migrate v4 CLI on one database, both ways.

golang-migrate prints `version` on stderr and exits 1 on "no migration";
migrate-init prints on stdout and exits 0: semantics are compared, not streams.
"""

import datetime

from conftest import (
    applied_logs,
    finish,
    popen_gm,
    popen_mi,
    items,
    lock_free,
    raw_collection,
    run_gm,
    run_mi,
    state,
    write_migrations,
    write_standard,
)

DIRTY_MSG = "Dirty database version {}. Fix and force version."


def gm(migdir, url, *args):
    return run_gm(["-path", migdir, "-database", url, *args])


def mi(migdir, url, *args):
    return run_mi(["-path", migdir, "-database", url, *args])


def ok(res):
    assert res.returncode == 0, res
    return res


def gm_version(migdir, url):
    """'N', 'N (dirty)' or None (no migration), as golang-migrate reports it."""
    res = gm(migdir, url, "version")
    last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""
    if res.returncode == 1 and last == "error: no migration":
        return None
    assert res.returncode == 0, res
    return last


def mi_version(migdir, url):
    res = ok(mi(migdir, url, "version"))
    assert res.stdout.endswith("\n") and res.stdout.count("\n") == 1, res
    out = res.stdout.strip()
    return None if out == "no migration" else out


def failing3(migdir):
    write_standard(
        migdir,
        {"003_third.up.json": [{"insert": "items", "documents": [{"_id": 3}]}, {"bogusCommand": 1}]},
    )


# --------------------------------------------------------------------------
# Baseline: the facts about golang-migrate the other tests rely on.


def test_golang_migrate_baseline(db_url, db, migdir):
    write_standard(migdir)
    assert gm_version(migdir, db_url) is None
    ok(gm(migdir, db_url, "up"))
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]
    assert gm_version(migdir, db_url) == "4"
    assert lock_free(db)
    ixs = {ix["name"]: ix for ix in db["migrate_advisory_lock"].list_indexes()}
    assert dict(ixs["lock_unique_key"]["key"]) == {"locking_key": -1}
    ok(gm(migdir, db_url, "down", "-all"))
    assert state(db) == [{"version": -1, "dirty": False}]
    assert gm_version(migdir, db_url) is None


# --------------------------------------------------------------------------
# Clean states


def test_gm_then_mi_then_gm_down(db_url, db, migdir):
    write_standard(migdir)
    ok(gm(migdir, db_url, "up", "2"))
    assert mi_version(migdir, db_url) == "2"

    res = ok(mi(migdir, db_url, "up"))
    assert [r["version"] for r in applied_logs(res)] == [3, 4]
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]
    assert gm_version(migdir, db_url) == "4"

    # golang-migrate continues from where migrate-init stopped
    ok(gm(migdir, db_url, "down", "1"))
    assert items(db) == [1, 2, 3]
    assert state(db) == [{"version": 3, "dirty": False}]
    assert mi_version(migdir, db_url) == "3"

    ok(mi(migdir, db_url, "down", "1"))
    assert state(db) == [{"version": 2, "dirty": False}]
    ok(gm(migdir, db_url, "down", "-all"))
    assert "items" not in db.list_collection_names()
    assert state(db) == [{"version": -1, "dirty": False}]
    assert mi_version(migdir, db_url) is None
    assert lock_free(db)


def test_mi_then_gm(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "3"))
    assert gm_version(migdir, db_url) == "3"
    ok(gm(migdir, db_url, "up"))
    assert items(db) == [1, 2, 3, 4]
    assert mi_version(migdir, db_url) == "4"
    ok(gm(migdir, db_url, "goto", "1"))
    assert items(db) == [1]
    ok(mi(migdir, db_url, "goto", "3"))
    assert gm_version(migdir, db_url) == "3"
    ok(mi(migdir, db_url, "down", "-all"))
    assert gm_version(migdir, db_url) is None
    ok(gm(migdir, db_url, "up"))
    assert state(db) == [{"version": 4, "dirty": False}]


def test_force_interop(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "force", "3"))
    assert gm_version(migdir, db_url) == "3"
    ok(gm(migdir, db_url, "force", "2"))
    assert mi_version(migdir, db_url) == "2"
    assert state(db) == [{"version": 2, "dirty": False}]


def test_timestamp_versions_int64(db_url, db, migdir):
    """Versions above 2^31 (timestamps) are int64 in both tools, read by both."""
    write_migrations(
        migdir,
        {
            "20240620120000_a.up.json": [{"insert": "items", "documents": [{"_id": 1}]}],
            "20240620120000_a.down.json": [{"delete": "items", "deletes": [{"q": {"_id": 1}, "limit": 1}]}],
            "20240621120000_b.up.json": [{"insert": "items", "documents": [{"_id": 2}]}],
            "20240621120000_b.down.json": [{"delete": "items", "deletes": [{"q": {"_id": 2}, "limit": 1}]}],
            "20240622120000_c.up.json": [{"insert": "items", "documents": [{"_id": 3}]}],
            "20240622120000_c.down.json": [{"delete": "items", "deletes": [{"q": {"_id": 3}, "limit": 1}]}],
        },
    )
    ok(gm(migdir, db_url, "up", "1"))
    raw_gm = bytes(list(raw_collection(db, "schema_migrations").find())[0].raw)
    assert mi_version(migdir, db_url) == "20240620120000"
    ok(mi(migdir, db_url, "up", "1"))
    raw_mi = bytes(list(raw_collection(db, "schema_migrations").find())[0].raw)
    assert state(db) == [{"version": 20240621120000, "dirty": False}]
    assert gm_version(migdir, db_url) == "20240621120000"
    # same BSON type for the version field (int64, 0x12) as golang-migrate
    assert b"\x12version\x00" in raw_gm, raw_gm.hex()
    assert b"\x12version\x00" in raw_mi, raw_mi.hex()
    ok(gm(migdir, db_url, "up"))
    ok(mi(migdir, db_url, "goto", "20240620120000"))
    assert items(db) == [1]
    assert gm_version(migdir, db_url) == "20240620120000"


def test_custom_collection_interop(ferret_url, dbname, db, migdir):
    write_standard(migdir)
    url = ferret_url(dbname, **{"x-migrations-collection": "custom_versions",
                                "x-advisory-lock-collection": "custom_lock"})
    ok(mi(migdir, url, "up", "2"))
    assert gm_version(migdir, url) == "2"
    ok(gm(migdir, url, "up", "1"))
    assert mi_version(migdir, url) == "3"
    assert state(db, "custom_versions") == [{"version": 3, "dirty": False}]
    assert "schema_migrations" not in db.list_collection_names()


# --------------------------------------------------------------------------
# Dirty states


def test_dirty_left_by_golang_migrate(db_url, db, migdir):
    failing3(migdir)
    res = gm(migdir, db_url, "up")
    assert res.returncode == 1, res
    assert state(db) == [{"version": 3, "dirty": True}]
    assert mi_version(migdir, db_url) == "3 (dirty)"

    for args in (["up"], ["down", "1"], ["goto", "1"]):
        res = mi(migdir, db_url, *args)
        assert res.returncode == 8, (args, res)
        assert DIRTY_MSG.format(3) in res.stderr
        assert state(db) == [{"version": 3, "dirty": True}]
    assert items(db) == [1, 2, 3]

    ok(mi(migdir, db_url, "force", "2"))
    assert gm_version(migdir, db_url) == "2"
    ok(gm(migdir, db_url, "down", "1"))
    assert items(db) == [1, 3]
    assert state(db) == [{"version": 1, "dirty": False}]


def test_dirty_left_by_migrate_init(db_url, db, migdir):
    failing3(migdir)
    res = mi(migdir, db_url, "up")
    assert res.returncode == 7, res
    assert state(db) == [{"version": 3, "dirty": True}]
    assert gm_version(migdir, db_url) == "3 (dirty)"

    res = gm(migdir, db_url, "up")
    assert res.returncode == 1, res
    assert DIRTY_MSG.format(3) in res.stderr
    assert state(db) == [{"version": 3, "dirty": True}]

    ok(gm(migdir, db_url, "force", "2"))
    assert mi_version(migdir, db_url) == "2"
    ok(mi(migdir, db_url, "down", "1"))
    assert items(db) == [1, 3]
    assert state(db) == [{"version": 1, "dirty": False}]
    assert gm_version(migdir, db_url) == "1"


# --------------------------------------------------------------------------
# Locks


def test_golang_migrate_runs_after_migrate_init_created_lock_collection(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "1"))
    assert "migrate_advisory_lock" in db.list_collection_names()
    ok(gm(migdir, db_url, "up", "1"))  # gm's index creation accepts ours
    ok(mi(migdir, db_url, "up", "1"))
    assert state(db) == [{"version": 3, "dirty": False}]
    assert lock_free(db)


def test_stale_lock_blocks_both_tools(ferret_url, dbname, db, migdir):
    """The same lock document excludes golang-migrate and migrate-init alike."""
    write_standard(migdir)
    db["migrate_advisory_lock"].insert_one(
        {"locking_key": 0, "pid": 1, "hostname": "h", "created_at": datetime.datetime.utcnow()}
    )
    url = ferret_url(dbname, **{"x-advisory-lock-timeout": "1", "x-advisory-lock-timeout-interval": "1"})
    res = run_gm(["-path", migdir, "-database", url, "-lock-timeout", "2", "up"], timeout=40)
    assert res.returncode != 0, res
    res = run_mi(["-path", migdir, "-database", url, "-lock-timeout", "1", "up"], timeout=40)
    assert res.returncode == 6, res
    assert "items" not in db.list_collection_names()
    assert state(db) == []
    db["migrate_advisory_lock"].delete_many({"locking_key": 0})
    ok(mi(migdir, url, "up"))
    ok(gm(migdir, url, "down", "1"))
    assert state(db) == [{"version": 3, "dirty": False}]


# A real run holding the lock: a relay holds the run's first insert into
# "slow" (a migration command, after the lock is taken and the state set to
# dirty) while the other tool tries to run against FerretDB directly.

SLOW = {
    "1_slow.up.json": [{"insert": "slow", "documents": [{"_id": 1}]}],
    "1_slow.down.json": [{"drop": "slow"}],
}
SHORT_LOCK = {"x-advisory-lock-timeout": "1", "x-advisory-lock-timeout-interval": "1"}


def test_migrate_init_lock_excludes_golang_migrate(relay_factory, ferret_url, dbname, db, migdir):
    write_migrations(migdir, SLOW)
    relay = relay_factory(stall_insert_into="slow")
    p = popen_mi(["-path", migdir, "-database", relay.url(dbname), "up"])
    try:
        assert relay.stalled.wait(20), "migrate-init never reached the migration's insert"
        held = list(db["migrate_advisory_lock"].find({"locking_key": 0}))
        assert len(held) == 1, held
        assert state(db) == [{"version": 1, "dirty": True}]

        url = ferret_url(dbname, **SHORT_LOCK)
        res = run_gm(["-path", migdir, "-database", url, "-lock-timeout", "2", "up"], timeout=40)
        assert res.returncode != 0, res
        assert "can't acquire lock" in res.stderr, res
        assert "slow" not in db.list_collection_names()
        assert state(db) == [{"version": 1, "dirty": True}]
    finally:
        relay.release.set()
        res = finish(p, check_mi=True)
    assert res.returncode == 0, res
    assert state(db) == [{"version": 1, "dirty": False}]
    assert [d["_id"] for d in db["slow"].find()] == [1]
    assert lock_free(db)


def test_golang_migrate_lock_excludes_migrate_init(relay_factory, ferret_url, dbname, db, migdir):
    write_migrations(migdir, SLOW)
    relay = relay_factory(stall_insert_into="slow")
    p = popen_gm(["-path", migdir, "-database", relay.url(dbname), "up"])
    try:
        assert relay.stalled.wait(20), "golang-migrate never reached the migration's insert"
        assert db["migrate_advisory_lock"].count_documents({"locking_key": 0}) == 1

        url = ferret_url(dbname, **SHORT_LOCK)
        res = run_mi(["-path", migdir, "-database", url, "-lock-timeout", "1", "up"], timeout=40)
        assert res.returncode == 6, res
        assert "slow" not in db.list_collection_names()
        assert state(db) == [{"version": 1, "dirty": True}]
        # we must not have removed golang-migrate's lock
        assert db["migrate_advisory_lock"].count_documents({"locking_key": 0}) == 1
    finally:
        relay.release.set()
        res = finish(p)
    assert res.returncode == 0, res
    assert state(db) == [{"version": 1, "dirty": False}]
    res = run_mi(["-path", migdir, "-database", ferret_url(dbname), "up"])
    assert res.returncode == 0, res
    assert lock_free(db)
