"""When a migration fails, and how long one may take (README: "When a
migration fails"): ON_FAILURE=rollback runs the failed migration's down
file and records the previous version clean; MIGRATION_TIMEOUT bounds one
migration (maxTimeMS on the commands that take it, and the client's own
reply timeout); RUN_TIMEOUT stops a run between migrations, exit 10.

Slow commands are made by the pausing relay (conftest.PauseRelay), which
holds a chosen command with its connection open, never by sleeps in the
migrations; golang-migrate checks what the state reads afterwards.
"""

import threading
import time

import bson
import pytest

from conftest import (
    RecordingRelay,
    applied_logs,
    lock_free,
    msgs,
    on_command,
    relay_factory_of,
    run_faults,
    run_gm,
    run_mi,
    version_of,
    write_migrations,
)

HISTORY = "schema_migrations_history"
DUP = {"insert": "items", "documents": [{"_id": 1}]}  # fails: _id 1 exists


def ins(*ids):
    return {"insert": "items", "documents": [{"_id": i} for i in ids]}


def dele(*ids):
    return {"delete": "items", "deletes": [{"q": {"_id": i}, "limit": 1} for i in ids]}


def files(two_up, two_down=(dele(2, 20),)):
    """1 creates items with _id 1; 2 is given (None: no such file); 3 and 4 insert."""
    f = {
        "1_one.up.json": [{"create": "items"}, ins(1)],
        "1_one.down.json": [{"drop": "items"}],
        "2_two.up.json": list(two_up),
        "3_three.up.json": [ins(3)],
        "3_three.down.json": [dele(3)],
        "4_four.up.json": [ins(4)],
        "4_four.down.json": [dele(4)],
    }
    if two_down is not None:
        f["2_two.down.json"] = list(two_down)
    return f


def ids(db):
    return sorted(d["_id"] for d in db["items"].find())


def history(db):
    return [(h["version"], h["direction"], h["outcome"])
            for h in db[HISTORY].find().sort([("finished_at", 1), ("_id", 1)])]


def env_for(db_url, migdir, **extra):
    return dict({"DATABASE_URL": db_url, "MIGRATION_DIR": str(migdir)}, **extra)


# --------------------------------------------------------------------------
# ON_FAILURE=rollback


def test_rollback_undoes_the_failed_migration_only(db_url, db, migdir, tmp_path):
    """2 fails half way (two documents in, then a duplicate key): its down
    takes them out, 1 stays applied, the state reads 1 clean, history has
    both, the run still fails (7) and says why in the termination message;
    golang-migrate reads 1 and, once 2 is fixed, applies it."""
    write_migrations(migdir, files([ins(2, 20), DUP]))
    term = tmp_path / "term"
    res = run_mi(["up"], env_for(db_url, migdir, ON_FAILURE="rollback",
                                 TERMINATION_MESSAGE_PATH=str(term)))
    assert res.returncode == 7, res
    assert "migration failed and was rolled back" in msgs(res), res
    assert version_of(db) == (1, False)
    assert ids(db) == [1]
    assert history(db) == [(1, "up", "applied"), (2, "up", "failed"), (2, "down", "rolled_back")]
    assert lock_free(db)
    text = term.read_text()
    assert "exit 7" in text and "rolled back" in text and "duplicate key" in text.lower(), text
    assert "database at version 1 (clean)" in text, text

    gm = run_gm(["-path", migdir, "-database", db_url, "version"])
    assert gm.returncode == 0 and gm.output.strip().endswith("1"), gm
    write_migrations(migdir, files([ins(2, 20)]))
    gm = run_gm(["-path", migdir, "-database", db_url, "up"])
    assert gm.returncode == 0, gm
    assert version_of(db) == (4, False)
    assert ids(db) == [1, 2, 3, 4, 20]


def test_rollback_by_flag_and_of_the_first_migration(db_url, db, migdir):
    """-on-failure rollback; when 1 fails the database goes back to no
    version, as golang-migrate would have it had 1 never run."""
    write_migrations(migdir, {"1_one.up.json": [ins(7), {"insert": "items", "documents": [{"_id": 7}]}],
                              "1_one.down.json": [dele(7)]})
    res = run_mi(["-on-failure", "rollback", "up"], env_for(db_url, migdir))
    assert res.returncode == 7, res
    assert version_of(db) == (-1, False)
    assert ids(db) == []
    gm = run_gm(["-path", migdir, "-database", db_url, "version"])
    assert "no migration" in gm.output, gm


def test_without_rollback_the_database_stays_dirty(db_url, db, migdir):
    """The default is golang-migrate's: dirty at the failed version."""
    write_migrations(migdir, files([ins(2, 20), DUP]))
    res = run_mi(["up"], env_for(db_url, migdir))
    assert res.returncode == 7, res
    assert version_of(db) == (2, True)
    assert ids(db) == [1, 2, 20]
    assert "rolling back the failed migration with its down file" not in msgs(res)


@pytest.mark.parametrize("down, reason", [
    (None, "the migration has no down file"),
    ("{broken", "its down file is broken"),
])
def test_no_usable_down_file_stays_dirty(down, reason, db_url, db, migdir):
    f = files([ins(2, 20), DUP], two_down=None)
    if down is not None:
        f["2_two.down.json"] = down
    write_migrations(migdir, f)
    res = run_mi(["up"], env_for(db_url, migdir, ON_FAILURE="rollback"))
    assert res.returncode == 7, res
    rec = [r for r in res.logs if r.get("msg", "").startswith("migration failed and cannot be rolled back")]
    assert rec and rec[0]["reason"] == reason, res
    assert version_of(db) == (2, True)
    assert ids(db) == [1, 2, 20]


def test_a_down_that_fails_too_leaves_dirty_with_both_errors(db_url, db, migdir, tmp_path):
    down = [dele(20), {"insert": "items", "documents": [{"_id": 1}]}]  # 1 still exists
    write_migrations(migdir, files([ins(2, 20), {"insert": "nope", "documents": [{"_id": "x"}, {"_id": "x"}]}],
                                   two_down=down))
    term = tmp_path / "term"
    res = run_mi(["up"], env_for(db_url, migdir, ON_FAILURE="rollback",
                                 TERMINATION_MESSAGE_PATH=str(term)))
    assert res.returncode == 7, res
    both = [r for r in res.logs if r.get("msg") == "migration failed and so did its rollback; the database stays dirty"]
    assert both and both[0]["error"] and both[0]["rollback_error"], res
    assert both[0]["error"] != both[0]["rollback_error"]
    assert version_of(db) == (2, True)
    assert history(db)[-2:] == [(2, "up", "failed"), (2, "down", "failed")]
    text = term.read_text()
    assert "so did its rollback" in text and "exit 7" in text, text
    # The next run refuses the dirty version, as after any failure.
    again = run_mi(["up"], env_for(db_url, migdir, ON_FAILURE="rollback"))
    assert again.returncode == 8, again


def test_a_bad_value_is_a_usage_error(db_url, migdir):
    write_migrations(migdir, files([ins(2)]))
    res = run_mi(["up"], env_for(db_url, migdir, ON_FAILURE="undo"))
    assert res.returncode == 2 and '"variable":"ON_FAILURE"' in res.stderr, res
    res = run_mi(["-on-failure=maybe", "up"], env_for(db_url, migdir))
    assert res.returncode == 2 and '"variable":"-on-failure"' in res.stderr, res


@pytest.mark.parametrize("point", ["rollback_body", "rollback_clean"])
def test_killed_while_rolling_back(point, faults_bin, db_url, db, migdir):
    """SIGKILL in the rollback leaves 2 dirty (the down may have run, the
    clean mark not): the next run refuses it, nothing reads as rolled back."""
    write_migrations(migdir, files([ins(2, 20), DUP]))
    crash = run_faults(faults_bin, ["up"], env_for(db_url, migdir, ON_FAILURE="rollback",
                                                   MI_FAULT=f"{point}@1", LOCK_LEASE="1s"))
    assert crash.returncode == -9, crash
    assert version_of(db) == (2, True)
    assert (2, "down", "rolled_back") not in history(db)
    time.sleep(1.2)  # the dead runner's lease
    res = run_mi(["up"], env_for(db_url, migdir, ON_FAILURE="rollback"))
    assert res.returncode == 8, res


# --------------------------------------------------------------------------
# MIGRATION_TIMEOUT


@pytest.fixture
def recording(ferretdb):
    yield from relay_factory_of(RecordingRelay, ferretdb)


def test_commands_get_max_time_for_the_time_left(recording, dbname, db, migdir):
    """maxTimeMS on the commands that take it, no more than the timeout;
    one the file sets stays; create takes none."""
    relay = recording()
    write_migrations(migdir, {
        "1_one.up.json": [{"create": "items"}, ins(1),
                          {"find": "items", "filter": {}, "maxTimeMS": 123456}],
        "1_one.down.json": [],
    })
    res = run_mi(["up"], env_for(relay.url(dbname), migdir, MIGRATION_TIMEOUT="5s"))
    assert res.returncode == 0, res
    sent = [decode_op_msg_sections(s) for s in relay.commands]
    body = [c for c in sent if c and c["_coll"] == "items"]
    by_name = {c["_name"]: c for c in body}
    assert "maxTimeMS" not in by_name["create"], by_name["create"]
    assert 0 < by_name["insert"]["maxTimeMS"] <= 5000, by_name["insert"]
    assert by_name["find"]["maxTimeMS"] == 123456
    # The state and the lock are ours, not the migration's: no maxTimeMS.
    assert all("maxTimeMS" not in c for c in sent if c and c["_coll"] == "schema_migrations")


def decode_op_msg_sections(sections):
    """A recorded command's body, with _name and _coll (kind-1 sequences left out)."""
    body, _ = sections
    doc = dict(bson.decode(body))
    if not doc:
        return None
    name = next(iter(doc))
    doc["_name"], doc["_coll"] = name, doc[name] if isinstance(doc[name], str) else None
    return doc


@pytest.mark.parametrize("on_failure, want", [("dirty", (2, True)), ("rollback", (1, False))])
def test_a_reply_that_never_comes_fails_the_migration_in_time(on_failure, want, relays, dbname, db, migdir):
    """The body's insert is held (the server never sees it): the client gives
    up after MIGRATION_TIMEOUT and a little, the migration has failed (7),
    dirty or rolled back; nothing of it ran."""
    write_migrations(migdir, files([{"insert": "slow", "documents": [{"_id": 1}]}], two_down=[dele(2)]))
    relay = relays()
    held = relay.hold(on_command("insert", "slow"))
    t0 = time.monotonic()
    res = run_mi(["up"], env_for(relay.url(dbname), migdir, MIGRATION_TIMEOUT="1s", ON_FAILURE=on_failure))
    took = time.monotonic() - t0
    held.drop()
    assert res.returncode == 7, res
    assert "migration timed out: MIGRATION_TIMEOUT passed" in msgs(res), res
    assert took < 10, took
    assert version_of(db) == want
    assert "slow" not in db.list_collection_names()


def test_the_server_stops_a_command_past_the_deadline(db_url, db, migdir):
    """A full scan of 40000 documents (over a second on FerretDB) with a
    50 ms budget: the server itself stops it (MaxTimeMSExpired, code 50),
    nothing is left running, the migration has failed."""
    for i in range(0, 40000, 4000):
        db["big"].insert_many([{"_id": j, "s": f"abc{j:06d}"} for j in range(i, i + 4000)])
    write_migrations(migdir, {"1_scan.up.json": [{"find": "big", "filter": {"s": {"$regex": "zzz"}}}]})
    res = run_mi(["up"], env_for(db_url, migdir, MIGRATION_TIMEOUT="50ms"))
    assert res.returncode == 7, res
    failed = [r for r in res.logs if r.get("msg") == "migration failed"]
    assert failed and failed[0]["code"] == 50, res
    assert "migration timed out: MIGRATION_TIMEOUT passed" in msgs(res), res
    assert version_of(db) == (1, True)


# --------------------------------------------------------------------------
# RUN_TIMEOUT


@pytest.mark.parametrize("migration_timeout", ["2s", None])
def test_run_timeout_stops_between_migrations(migration_timeout, relays, dbname, db_url, db, migdir):
    """2's body is held 1.5 s. With MIGRATION_TIMEOUT=2s and RUN_TIMEOUT=3s,
    3 could end past the deadline: not started. With no MIGRATION_TIMEOUT
    and RUN_TIMEOUT=1s, 2 (started in time) runs to its end, then the run
    stops. Either way: exit 10, clean at 2, lock released; the next run
    continues."""
    write_migrations(migdir, files([ins(2)]))
    relay = relays()
    held = relay.hold(lambda conn, cmd: cmd["_name"] == "insert" and cmd["_coll"] == "items"
                      and any(d.get("_id") == 2 for d in cmd.get("documents", [])))
    env = env_for(relay.url(dbname), migdir, RUN_TIMEOUT="3s" if migration_timeout else "1s")
    if migration_timeout:
        env["MIGRATION_TIMEOUT"] = migration_timeout
    threading.Timer(1.5, held.resume).start()
    res = run_mi(["up"], env)
    assert res.returncode == 10, res
    stop = [r for r in res.logs if r.get("msg", "").startswith("RUN_TIMEOUT: not starting the next migration")]
    assert stop and stop[0]["version"] == 2 and stop[0]["next_version"] == 3, res
    assert [r["version"] for r in applied_logs(res)] == [1, 2]
    assert version_of(db) == (2, False)
    assert lock_free(db)
    again = run_mi(["up"], env_for(db_url, migdir))
    assert again.returncode == 0, again
    assert version_of(db) == (4, False)
