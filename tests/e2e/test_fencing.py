"""Exactly-once under pauses, held connections and racing takeovers.

The promise (README, "The lock"): no migration body runs twice, and no state
is written by a runner that lost the lock; the runner that lost it exits 9
without writing; whoever took over finishes (0), or, when the one that lost
it was cut off in the middle of a migration, refuses the dirty version (8)
as it would after a crash. How (src/lock.h, src/db.h): every state write
filters on the lock token the state document is fenced to, the unique index
alone decides who holds the lock, only the runner that got in writes the
state (its claim replaces the old token: waiters that lost write nothing),
and a holder judges its lease on its own clock before every command it
sends.

Every migration here counts its runs ($inc) and inserts a fixed _id, so a
second run cannot hide. Runs are held at exact points, never by sleeps:
  * by the pausing relay (conftest.PauseRelay): the first command matching a
    rule is held, not dropped, with the connection open, and so is the
    heartbeat's next one, until the other runner has finished;
  * by the pause points of the test-only build (src/fault.h, MI_PAUSE): the
    whole process is stopped with SIGSTOP, then continued with SIGCONT.
"""

import datetime
import os
import signal
import threading
import time

import pymongo
import pytest

from conftest import (
    FENCE,
    HANG,
    LOCK,
    TOOK_OVER,
    WAITING,
    applied_versions,
    counted_set,
    counters,
    dt_ms,
    item_ids,
    lock_doc,
    lock_free,
    log_ms,
    msgs,
    on_command,
    on_version_write,
    server_ms,
    state,
    wait_for,
    write_migrations,
)

REMOVED_LOST_RACE = "removed an expired lock, but another runner took the lock first"
LEASE = "1500ms"


def history(db):
    """[(version, outcome)] in the order written."""
    return [(h["version"], h["outcome"]) for h in db["schema_migrations_history"].find().sort("_id", 1)]


def lease_over(db):
    """Until the lock document's lease has run out on the server's clock."""
    doc = lock_doc(db)
    assert doc is not None and "lease_ms" in doc, doc
    wait_for(lambda: server_ms(db) > dt_ms(doc["renewed_at"]) + doc["lease_ms"], "the lease to run out")
    return doc


def take_over(procs, migdir, db_url, db, rc, final):
    """A second runner, once the first one's lease is over: it takes over and
    exits rc, leaving the state at final. Returns that state."""
    lease_over(db)
    winner = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="20s", POD_NAME="winner").finish()
    assert winner.returncode == rc, winner
    assert TOOK_OVER in msgs(winner), winner
    after = state(db)
    assert after == [{"version": final[0], "dirty": final[1]}], winner
    return after


def is_insert_into(coll, version=None):
    def rule(conn, cmd):
        if cmd["_name"] != "insert" or cmd["_coll"] != coll:
            return False
        return version is None or any(d.get("version") == version for d in cmd.get("documents", []))

    return rule


def is_counter_update(v):
    """Migration v's first body command (counted(): the $inc of its counter)."""
    return lambda conn, cmd: (
        cmd["_name"] == "update"
        and cmd["_coll"] == "counters"
        and any(u.get("q", {}).get("_id") == v for u in cmd.get("updates", []))
    )


# ==========================================================================
# 1. A held write of the runner that lost the lock


# trigger: (rule, the winner's exit, its final state, counters after both,
# the loser's environment and exit)
ALL3 = {1: 1, 2: 1, 3: 1}
HELD = {
    # Fresh database: the first state write is the claim (an insert under a fixed _id).
    "claim-fresh": (is_insert_into("schema_migrations"), 0, (3, False), ALL3, {}, 9),
    "dirty-mark-fresh": (on_version_write(1, True), 0, (3, False), ALL3, {}, 9),
    "dirty-mark": (on_version_write(2, True), 0, (3, False), ALL3, {}, 9),
    # Cut off inside migration 2: nobody can know how much of it ran, so the
    # winner refuses the dirty version, as after a crash there.
    "body": (is_counter_update(2), 8, (2, True), {1: 1, 2: 1}, {}, 9),
    "clean-mark": (on_version_write(2, False), 8, (2, True), {1: 1, 2: 1}, {}, 9),
    # History written record by record: migration 2's record is held, then
    # the loser stops before migration 3.
    "history": (is_insert_into("schema_migrations_history", 2), 0, (3, False), ALL3,
                {"HISTORY_FLUSH_INTERVAL": "0"}, 9),
    # History in one batch at the end (the default): every migration is
    # applied and marked clean when the batch is held; the winner has nothing
    # to do; the batch lands late with true records, and the loser's work
    # was done (0; losing the lock at release is a warning).
    "history-batch": (is_insert_into("schema_migrations_history", 1), 0, (3, False), ALL3, {}, 0),
}


@pytest.mark.parametrize("trigger", list(HELD))
def test_held_write_of_the_loser_never_lands(trigger, procs, relays, dbname, db_url, db, migdir):
    rule, winner_rc, final, runs, env, loser_rc = HELD[trigger]
    write_migrations(migdir, counted_set(3))
    relay = relays()
    held = relay.hold(rule)
    loser = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE=LEASE, POD_NAME="loser", **env)
    held.wait(loser)
    # Everything else it sends is held too: its heartbeat cannot renew.
    beat = relay.hold(lambda conn, cmd: conn is not held.conn)
    beat.wait(loser)
    after_winner = take_over(procs, migdir, db_url, db, winner_rc, final)
    fenced_to = db["schema_migrations"].find_one()[FENCE]

    # The held write and the heartbeat finally reach the server.
    held.resume()
    beat.resume()
    res = loser.finish()
    assert res.returncode == loser_rc, res
    assert state(db) == after_winner, f"a write of the runner that lost the lock landed:\n{res!r}"
    assert db["schema_migrations"].find_one()[FENCE] == fenced_to
    assert counters(db) == runs, f"a migration ran twice or not at all:\n{res!r}\n{winner!r}"
    applied = [v for v, outcome in history(db) if outcome == "applied"]
    assert len(applied) == len(set(applied)), history(db)
    # The loser wrote no history once it had lost the lock (a late "applied"
    # record of a migration it did finish is the one thing that may land).
    assert all(outcome == "applied" for _, outcome in history(db)), history(db)
    assert lock_free(db)


N_SLOW = 150


def test_loser_with_held_renewal_stops_on_its_own_clock(procs, relays, dbname, db_url, db, migdir):
    """Only the heartbeat is held; the main connection works. The holder must
    stop by itself (9) once its lease is over on its own clock, and exit
    (its heartbeat, stuck on the held renewal, gives up after a lease)."""
    # Enough work to outlast the lease several times over on a fast machine
    # (40 such migrations once finished inside 1.5 s here).
    slow = [{"insert": "bulk", "documents": [{"i": i} for i in range(500)]}] * 4
    write_migrations(migdir, counted_set(N_SLOW, slow={v: slow for v in range(1, N_SLOW + 1)}))
    relay = relays()
    # the first renewal: the heartbeat's connection is the one that is not the main one
    main_conn = {}

    def first_beat(conn, cmd):
        if cmd["_name"] == "update" and cmd["_coll"] == "schema_migrations":
            main_conn.setdefault("id", conn.id)
        return "id" in main_conn and conn.id != main_conn["id"] and cmd["_name"] == "update" and cmd["_coll"] == LOCK

    beat = relay.hold(first_beat)
    loser = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE=LEASE, POD_NAME="loser")
    beat.wait(loser)
    doc = lock_doc(db)
    res = loser.finish()
    assert res.returncode == 9, res
    assert "the lock's lease ran out before it could be renewed; stopping before the next command" in msgs(res), res
    # It noticed by the end of the command it was in when the lease ran out
    # (each is a few ms here; the host's clock is the server's, FerretDB runs
    # on it). Without its own clock it would have gone on to the end.
    stop = [r for r in res.logs if r.get("msg", "").startswith("the lock's lease ran out")][0]
    assert log_ms(stop) <= dt_ms(doc["renewed_at"]) + doc["lease_ms"] + 500, (stop, doc)
    assert len(applied_versions(res)) < N_SLOW, res
    stopped_at = state(db)
    done = counters(db)
    assert done and all(n == 1 for n in done.values()), done

    winner = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="20s").finish()
    beat.resume()
    # Cut off between two commands of a migration, or between migrations.
    if stopped_at[0]["dirty"]:
        assert winner.returncode == 8, winner
    else:
        assert winner.returncode == 0, winner
        assert counters(db) == {v: 1 for v in range(1, N_SLOW + 1)}
    assert all(n == 1 for n in counters(db).values())


# ==========================================================================
# 2. The holder stopped (SIGSTOP) at each step while another runner takes over


def stopped(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "T"


# point: (winner's exit, final (version, dirty), counters, versions the paused runner applied)
PAUSES = {
    "locked": (0, (3, False), {1: 1, 2: 1, 3: 1}, []),
    "before_dirty@2": (0, (3, False), {1: 1, 2: 1, 3: 1}, [1]),
    "after_dirty@2": (8, (2, True), {1: 1}, [1]),
    "after_command@3": (8, (2, True), {1: 1, 2: 1}, [1]),  # migration 2's first command ran
    "before_clean@2": (8, (2, True), {1: 1, 2: 1}, [1]),
    "before_history@2": (0, (3, False), {1: 1, 2: 1, 3: 1}, [1]),
}


@pytest.mark.parametrize("point", list(PAUSES))
def test_paused_holder_writes_nothing_after_takeover(point, faults_bin, procs, dbname, db_url, db, migdir):
    winner_rc, final, runs, paused_applied = PAUSES[point]
    write_migrations(migdir, counted_set(3))
    paused = procs.argv([faults_bin, "-path", migdir, "-database", db_url, "up"],
                        {"LOCK_LEASE": LEASE, "POD_NAME": "paused", "MI_PAUSE": point})
    try:
        wait_for(lambda: stopped(paused.pid) or paused.p.poll() is not None, "the pause point")
        assert paused.p.poll() is None, paused.stderr()
        after_winner = take_over(procs, migdir, db_url, db, winner_rc, final)
    finally:
        os.kill(paused.pid, signal.SIGCONT)
    res = paused.finish()
    assert res.returncode == 9, res
    assert applied_versions(res) == paused_applied, res
    assert state(db) == after_winner, f"the paused runner wrote after it woke up:\n{res!r}"
    assert counters(db) == runs, res
    assert lock_free(db)


def test_waiter_paused_before_removing_the_expired_lock(faults_bin, procs, dbname, db_url, db, migdir):
    """Two waiters take over the same expired lock: the first judges it
    expired and stops before removing its document, having written nothing;
    the second does the whole takeover and the work. The first, woken, must
    find the lock changed and wait like anyone else, then find nothing to do."""
    write_migrations(migdir, counted_set(3))
    dead_lock(db, ours=True)
    first = procs.argv([faults_bin, "-path", migdir, "-database", db_url, "up"],
                       {"LOCK_TIMEOUT": "20s", "MI_PAUSE": "takeover_removing", "POD_NAME": "first"})
    try:
        wait_for(lambda: stopped(first.pid) or first.p.poll() is not None, "the pause point")
        assert first.p.poll() is None, first.stderr()
        # A waiter writes nothing to the state: the dead holder's token is still there.
        assert db["schema_migrations"].find_one()[FENCE] == "d" * 32
        assert lock_doc(db)["token"] == "d" * 32
        second = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="20s", POD_NAME="second").finish()
        assert second.returncode == 0, second
        assert TOOK_OVER in msgs(second) and applied_versions(second) == [1, 2, 3], second
    finally:
        os.kill(first.pid, signal.SIGCONT)
    res = first.finish()
    assert res.returncode == 0, res
    assert applied_versions(res) == [] and TOOK_OVER not in msgs(res), res
    assert counters(db) == {1: 1, 2: 1, 3: 1}
    assert state(db) == [{"version": 3, "dirty": False}]
    assert lock_free(db)


# ==========================================================================
# 3. Many runners racing to take over one expired lock


def dead_lock(db, ours):
    """The lock document of a holder that died long ago, and for ours its claim
    on the state, as a killed runner leaves them (its lease or LOCK_STALE_AFTER
    is long over by the server's clock)."""
    db[LOCK].create_index([("locking_key", -1)], unique=True, name="lock_unique_key")
    now = server_ms(db)
    old = datetime.datetime.utcfromtimestamp((now - 3_600_000) / 1000)
    doc = {"locking_key": 0, "pid": 4242, "hostname": "gone-pod", "created_at": old}
    if ours:
        doc.update(owner="gone-pod", token="d" * 32, tool="migrate-init", lease_ms=1000,
                   renewed_at=old, expires_at=old)
        db["schema_migrations"].insert_one({"_id": "migrate-init", "version": -1, "dirty": False, FENCE: "d" * 32})
    db[LOCK].insert_one(doc)


ROUNDS = int(os.environ.get("MI_RACE_ROUNDS", "20"))
RUNNERS = 20


@pytest.mark.parametrize("holder", ["migrate-init", "golang-migrate"])
def test_racing_takeovers_have_one_winner(holder, procs, new_db, tmp_path):
    write_migrations(tmp_path / "m", counted_set(3))
    for rnd in range(ROUNDS):
        name, url, db = new_db()
        dead_lock(db, ours=holder == "migrate-init")
        runners = [procs.mi(tmp_path / "m", url, "up", LOCK_TIMEOUT="60s", LOCK_STALE_AFTER="1m",
                            POD_NAME=f"r{rnd}-{i}") for i in range(RUNNERS)]
        results = [p.finish(timeout=120) for p in runners]
        # Waiters that lost the race write nothing, so the winner's claim
        # stands: every runner ends 0.
        for res in results:
            assert res.returncode == 0, f"round {rnd}: {res!r}\n{res.stderr}"
        removals = [r for r in results if TOOK_OVER in msgs(r) or REMOVED_LOST_RACE in msgs(r)]
        assert len(removals) == 1, f"round {rnd}: {len(removals)} runners removed the expired lock"
        applied = sorted(v for r in results for v in applied_versions(r))
        assert applied == [1, 2, 3], f"round {rnd}: {[applied_versions(r) for r in results]}"
        assert counters(db) == {1: 1, 2: 1, 3: 1}, f"round {rnd}"
        assert item_ids(db) == [1, 2, 3]
        assert state(db) == [{"version": 3, "dirty": False}]
        assert lock_free(db)
        db.client.drop_database(name)


# ==========================================================================
# 4. wait racing a runner that finishes


def test_wait_paused_between_its_reads_is_not_fooled(faults_bin, procs, relays, dbname, db_url, db, migdir):
    """wait reads "1, dirty" while a runner is inside migration 1, and stops
    right before it looks at the lock. The runner writes clean and releases
    the lock. wait, woken, sees no lock: it must read again, not report a
    dirty database with no runner (8)."""
    write_migrations(migdir, counted_set(1))
    relay = relays()
    held = relay.hold(on_version_write(1, False))
    runner = procs.mi(migdir, relay.url(dbname), "up")
    held.wait(runner)
    assert state(db) == [{"version": 1, "dirty": True}]
    waiter = procs.argv([faults_bin, "-path", migdir, "-database", db_url, "wait"],
                        {"MI_PAUSE": "wait_probe", "RETRY_INTERVAL": "50ms"})
    try:
        wait_for(lambda: stopped(waiter.pid) or waiter.p.poll() is not None, "wait's pause point")
        assert waiter.p.poll() is None, waiter.stderr()
        held.resume()
        assert runner.finish().returncode == 0
        assert lock_free(db) and state(db) == [{"version": 1, "dirty": False}]
    finally:
        os.kill(waiter.pid, signal.SIGCONT)
    res = waiter.finish()
    assert res.returncode == 0, res
    assert "target version reached" in msgs(res), res


def test_waiters_racing_a_finishing_runner_never_report_dirty(procs, new_db, tmp_path):
    slow = [{"insert": "bulk", "documents": [{"i": i} for i in range(200)]}] * 3
    write_migrations(tmp_path / "m", counted_set(5, slow={v: slow for v in range(1, 6)}))
    for rnd in range(8):
        name, url, db = new_db()
        waiters = [procs.mi(tmp_path / "m", url, "wait", RETRY_INTERVAL="5ms", RETRY_MAX_INTERVAL="20ms",
                            MAX_RETRIES="100000", WAIT_TIMEOUT="60s") for _ in range(4)]
        runner = procs.mi(tmp_path / "m", url, "up").finish()
        assert runner.returncode == 0, runner
        for w in waiters:
            res = w.finish(timeout=90)
            assert res.returncode == 0, f"round {rnd}: a waiter saw a finished, clean run as {res!r}"
        db.client.drop_database(name)
