"""The cluster-wide lock, end to end: real FerretDB, real golang-migrate CLI.

What is proved here (src/lock.h is the contract):
  * many runners started at once: every migration runs exactly once;
  * a holder killed mid-migration or between migrations: the next runner takes
    over only after the dead holder's lease ran out (server clock), then
    refuses a dirty database (8) or finishes the work (0);
  * a takeover removes exactly the document it judged expired (a renewal
    that lands first keeps it, and its holder keeps the lock); waiters write
    nothing to the state, only the runner that got in claims it;
  * golang-migrate and migrate-init exclude each other; a golang-migrate lock
    left by a killed process is stale after LOCK_STALE_AFTER, never with 0;
  * a runner that loses the database (heartbeat cut) stops with 9 or 4, and
    nobody works alongside it before its lease is gone; a write of its that
    stalls past the lease must neither redo work nor move the state back;
  * handoff to a waiter, `unlock [-force]`, release on every exit path, the
    lock document's fields (POD_NAME as owner, lease renewed), and nothing
    left in /dev/shm by a killed runner.

Runs in progress are held at exact points by a pausing TCP relay (below):
every byte goes to the real FerretDB, the relay only delays or drops chosen
commands, or cuts connections. No sleeps decide an outcome: the tests poll the
database or the runners' logs; timeouts are hang guards only. Lease timings
are compared on the server's clock (FerretDB runs on this host; checked).
"""

import calendar
import datetime
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time

import bson
import pytest
from bson.codec_options import CodecOptions

from conftest import (
    after_version_write,
    applied_logs,
    applied_versions,
    assert_took_over_after_expiry,
    bulk_inserts,
    check_mi_output,
    clean_env,
    Conn,
    counted,
    counted_set,
    counters,
    decode_op_msg,
    DIRTY_MSG,
    dt_ms,
    FENCE,
    GM_BIN,
    HANG,
    Hold,
    item_ids,
    LOCK,
    lock_doc,
    lock_free,
    log_ms,
    MI_BIN,
    mi_binary_problem,
    msgs,
    NO_CHANGE_WAITED,
    on_command,
    on_version_write,
    one_log,
    PauseRelay,
    Proc,
    Result,
    server_ms,
    settled_count,
    settled_lock,
    state,
    TOOK_OVER,
    wait_for,
    WAITING,
    write_migrations,
    written_state,
)

# ==========================================================================
# 1. Twenty runners at once


def test_twenty_concurrent_runners_apply_each_migration_once(procs, db_url, db, migdir):
    n = 5
    # Migration 1 takes a moment (20 x 1000 documents), so the others queue up
    # behind the lock instead of finding the work done.
    write_migrations(migdir, counted_set(n, slow={1: bulk_inserts("bulk", 20, 1000)}))
    env = {"LOCK_TIMEOUT": "60s"}
    url = db_url + "?x-advisory-lock-timeout=60"
    runners = [procs.mi(migdir, url, "up", POD_NAME=f"runner-{i}", **env) for i in range(20)]
    results = [p.finish(timeout=90) for p in runners]

    for res in results:
        assert res.returncode == 0, res
    applied = [applied_versions(r) for r in results]
    workers = [a for a in applied if a]
    assert workers == [list(range(1, n + 1))], f"one runner must apply all, the others none: {applied}"
    waited = [r for r in results if NO_CHANGE_WAITED in msgs(r)]
    assert waited, "no runner waited for the lock: the test did not exercise contention"
    for r in results:
        if not applied_versions(r):
            assert any(m.startswith("no change") for m in msgs(r)), r

    assert counters(db) == {v: 1 for v in range(1, n + 1)}, "a migration ran more or less than once"
    assert item_ids(db) == list(range(1, n + 1))
    assert db["bulk"].count_documents({}) == 20 * 1000
    assert state(db) == [{"version": n, "dirty": False}]
    assert lock_free(db)


# ==========================================================================
# 2. Holder SIGKILLed mid-migration: the next runner waits out the lease, exits 8


def test_holder_killed_mid_migration_next_runner_waits_for_lease_then_refuses_dirty(procs, db_url, db, migdir):
    # 200 inserts of 1000 documents: several seconds on FerretDB; we kill it
    # as soon as it is under way and check below that it had not finished.
    write_migrations(
        migdir,
        {
            "1_slow.up.json": bulk_inserts("bulk", 200, 1000),
            "1_slow.down.json": [{"drop": "bulk"}],
            "2_next.up.json": counted(2),
        },
    )
    holder = procs.mi(migdir, db_url, "up", LOCK_LEASE="2s", POD_NAME="dead-holder")
    wait_for(lambda: state(db) == [{"version": 1, "dirty": True}], "the slow migration to start", interval=0.005)
    wait_for(lambda: db["bulk"].count_documents({}) > 0, "the slow migration's first insert", interval=0.005)
    holder.kill()
    assert holder.finish().returncode == -signal.SIGKILL
    done = settled_count(db["bulk"])
    assert done < 200 * 1000, "the slow migration finished before the kill: make it slower"
    dead = settled_lock(db)
    assert dead is not None and dead["owner"] == "dead-holder", dead
    expires = dt_ms(dead["renewed_at"]) + dead["lease_ms"]
    assert dt_ms(dead["expires_at"]) == expires, dead
    assert server_ms(db) < expires, "the lease ran out before the next runner could start: too slow a machine?"

    res = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="10s", POD_NAME="next").finish()
    assert res.returncode == 8, res
    assert DIRTY_MSG.format(1) in msgs(res), res
    took = assert_took_over_after_expiry(res, expires, db)
    assert took["holder"] == "dead-holder" and took["holder_tool"] == "migrate-init", took
    assert applied_versions(res) == []
    # nothing ran: the data and the state are as the dead holder left them
    assert db["bulk"].count_documents({}) == done
    assert "counters" not in db.list_collection_names()
    assert state(db) == [{"version": 1, "dirty": True}]
    assert lock_free(db)


# ==========================================================================
# 3. Holder SIGKILLed between migrations: the next runner finishes the work


def test_holder_killed_between_migrations_next_runner_finishes(procs, relays, dbname, db_url, db, migdir):
    write_migrations(migdir, counted_set(3))
    relay = relays()
    h = relay.hold(after_version_write(1, False))
    holder = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE="2s", POD_NAME="dead-holder")
    h.wait(holder)
    assert state(db) == [{"version": 1, "dirty": False}]
    assert counters(db) == {1: 1}
    holder.kill()
    assert holder.finish().returncode == -signal.SIGKILL
    h.drop()
    dead = settled_lock(db)
    assert dead is not None and dead["owner"] == "dead-holder", dead
    expires = dt_ms(dead["renewed_at"]) + dead["lease_ms"]

    res = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="10s").finish()
    assert res.returncode == 0, res
    assert_took_over_after_expiry(res, expires, db)
    assert applied_versions(res) == [2, 3], res
    assert counters(db) == {1: 1, 2: 1, 3: 1}
    assert item_ids(db) == [1, 2, 3]
    assert state(db) == [{"version": 3, "dirty": False}]
    assert lock_free(db)


def is_takeover(conn, cmd):
    """A waiter's removal of an expired lock document (by its _id and the renewal it saw)."""
    return (
        cmd["_name"] == "delete"
        and cmd["_coll"] == LOCK
        and any("renewed_at" in d.get("q", {}) for d in cmd.get("deletes", []))
    )


def test_a_late_renewal_keeps_the_document_and_the_lock(procs, relays, dbname, db, migdir):
    """The holder's renewal is delayed past its lease; a waiter sees the lease
    expired and sends its removal of the lock document; the renewal lands
    first. The removal must then fail (it names the renewal it saw), so the
    lock document never has two owners, and the waiter keeps waiting,
    having written nothing to the state. The holder, renewed, still holds the
    lock: once its heartbeat has renewed again, it finishes (0); the waiter
    then finds nothing to do. Each migration once."""
    write_migrations(migdir, counted_set(2))
    ra, rb = relays(), relays()
    # The holder's main connection stops before migration 2's dirty mark.
    main = ra.hold(on_version_write(2, True))
    holder = procs.mi(migdir, ra.url(dbname), "up", LOCK_LEASE="1s", POD_NAME="slow-renewer")
    main.wait(holder)
    # ... and its heartbeat's next command is held too.
    beat = ra.hold(lambda conn, cmd: conn is not main.conn)
    beat.wait(holder)
    seen = lock_doc(db)
    grab = rb.hold(is_takeover)
    waiter = procs.mi(migdir, rb.url(dbname), "up", LOCK_TIMEOUT="15s", POD_NAME="waiter")
    grab.wait(waiter)  # sent only once the lease it saw had run out
    assert server_ms(db) >= dt_ms(seen["renewed_at"]) + seen["lease_ms"]
    assert WAITING in [r.get("msg") for r in waiter.records()]
    assert db["schema_migrations"].find_one()[FENCE] == seen["token"], "a waiter wrote the state"

    beat.resume()
    wait_for(lambda: (d := lock_doc(db)) and d["renewed_at"] > seen["renewed_at"], "the late renewal to land")
    late = lock_doc(db)["renewed_at"]
    grab.resume()
    grab.wait_answered(waiter)
    now = lock_doc(db)
    assert now is not None and now["token"] == seen["token"] and now["owner"] == "slow-renewer", f"the waiter removed a renewed lock: {now}"
    assert waiter.p.poll() is None and TOOK_OVER not in [r.get("msg") for r in waiter.records()], waiter.stderr()
    assert db["schema_migrations"].find_one()[FENCE] == seen["token"], "a waiter wrote the state"

    # Two renewals on time after the late one: the holder has seen the first
    # one's reply, so its own clock gives it a fresh lease.
    renewals = [late]
    def renewed_again():
        r = lock_doc(db)["renewed_at"]
        if r > renewals[-1]:
            renewals.append(r)
        return len(renewals) >= 3
    wait_for(renewed_again, "two renewals after the late one")
    main.resume()
    res1 = holder.finish()
    assert res1.returncode == 0, res1
    assert applied_versions(res1) == [1, 2]
    res2 = waiter.finish()
    assert res2.returncode == 0, res2
    assert TOOK_OVER not in msgs(res2), res2
    assert applied_versions(res2) == []
    assert counters(db) == {1: 1, 2: 1}
    assert state(db) == [{"version": 2, "dirty": False}]
    assert lock_free(db)


# ==========================================================================
# 4. golang-migrate and migrate-init exclude each other


SLOW1 = {
    "1_slow.up.json": [{"insert": "slow", "documents": [{"_id": 1}]}],
    "1_slow.down.json": [{"drop": "slow"}],
}
# golang-migrate's driver takes the lock once more while it connects, bounded by
# x-advisory-lock-timeout (15 s by default), not by -lock-timeout.
GM_SHORT_LOCK = {"x-advisory-lock-timeout": "1", "x-advisory-lock-timeout-interval": "1"}


def test_golang_migrate_holding_the_lock_makes_us_time_out(procs, relays, dbname, db_url, db, migdir):
    write_migrations(migdir, SLOW1)
    relay = relays()
    h = relay.hold(on_command("insert", "slow"))
    gm = procs.gm(migdir, relay.url(dbname), "up")
    h.wait(gm)
    held = lock_doc(db)
    assert held is not None and "token" not in held, held  # golang-migrate's own document

    t0 = time.monotonic()
    res = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="1s").finish()
    took = time.monotonic() - t0
    assert res.returncode == 6, res
    assert 1.0 <= took < 10, f"LOCK_TIMEOUT=1s but gave up after {took:.2f}s"
    waiting = one_log(res, WAITING)
    assert waiting["holder_tool"] == "golang-migrate" and waiting["holder"] == held["hostname"], waiting
    assert lock_doc(db) == held, "a waiter must not touch golang-migrate's lock"
    assert "slow" not in db.list_collection_names()

    h.resume()
    res = gm.finish()
    assert res.returncode == 0, res
    assert state(db) == [{"version": 1, "dirty": False}]
    assert lock_free(db)


def test_our_lock_makes_golang_migrate_fail(procs, relays, dbname, ferret_url, db, migdir):
    write_migrations(migdir, SLOW1)
    relay = relays()
    h = relay.hold(on_command("insert", "slow"))
    holder = procs.mi(migdir, relay.url(dbname), "up")
    h.wait(holder)
    ours = lock_doc(db)
    assert ours["tool"] == "migrate-init", ours

    res = procs.gm(migdir, ferret_url(dbname, **GM_SHORT_LOCK), "-lock-timeout", "1", "up").finish()
    assert res.returncode != 0, res
    assert "lock" in res.stderr, res
    assert lock_doc(db) == ours, "golang-migrate must not have touched our lock"
    assert "slow" not in db.list_collection_names()
    assert state(db) == [{"version": 1, "dirty": True}]

    h.resume()
    res = holder.finish()
    assert res.returncode == 0, res
    assert state(db) == [{"version": 1, "dirty": False}]
    assert lock_free(db)


def test_leftover_golang_migrate_lock_is_stale_after_lock_stale_after(procs, relays, dbname, db_url, db, migdir):
    write_migrations(migdir, counted_set(2))
    relay = relays()
    # golang-migrate holds the lock for `up` and is about to write the first
    # version (its SetVersion drops schema_migrations first): kill it there.
    h = relay.hold(on_command("drop", "schema_migrations"))
    gm = procs.gm(migdir, relay.url(dbname), "up")
    h.wait(gm)
    gm.kill()
    gm.finish()
    h.drop()
    left = settled_lock(db)
    assert left is not None and set(left) == {"_id", "locking_key", "pid", "hostname", "created_at"}, left
    assert left["pid"] == gm.pid
    assert state(db) == []

    # LOCK_STALE_AFTER=0: a golang-migrate lock is never stale
    res = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="1s", LOCK_STALE_AFTER="0").finish()
    assert res.returncode == 6, res
    assert one_log(res, WAITING)["expires"] == "never", res
    assert lock_doc(db) == left
    assert "counters" not in db.list_collection_names()

    # LOCK_STALE_AFTER=1s: stale one second after its created_at (server clock)
    res = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="10s", LOCK_STALE_AFTER="1s").finish()
    assert res.returncode == 0, res
    took = one_log(res, TOOK_OVER)
    assert took["holder_tool"] == "golang-migrate" and took["holder_pid"] == gm.pid, took
    assert log_ms(took) >= dt_ms(left["created_at"]) + 1000, took
    assert applied_versions(res) == [1, 2]
    assert counters(db) == {1: 1, 2: 1}
    assert state(db) == [{"version": 2, "dirty": False}]
    assert lock_free(db)


# ==========================================================================
# 5. The database cut away from a running holder


@pytest.mark.parametrize("cut", ["heartbeat", "everything"])
def test_holder_cut_from_database_stops_and_nobody_works_alongside(cut, procs, relays, dbname, db_url, db, migdir):
    """heartbeat: the holder's heartbeat (and any new connection) loses the
    database while its main connection is stalled between migrations 1 and 2;
    everything: all its connections are cut there. A second runner, started
    meanwhile on the database directly, may start only once the holder's
    lease has run out; the holder must stop (9 or 4), never write again."""
    write_migrations(migdir, counted_set(3))
    relay = relays()
    h = relay.hold(after_version_write(1, False))
    holder = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE="1s", POD_NAME="cut-holder")
    h.wait(holder)
    assert state(db) == [{"version": 1, "dirty": False}]

    second = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="15s", POD_NAME="second")
    second.wait_log(WAITING)
    assert lock_doc(db)["owner"] == "cut-holder"

    relay.cut(keep=h if cut == "heartbeat" else None)
    last = settled_lock(db)
    assert last is not None and last["owner"] == "cut-holder", last
    expires = dt_ms(last["renewed_at"]) + last["lease_ms"]

    if cut == "heartbeat":
        holder.wait_log("lock lost: no renewal succeeded within the lease")
    res2 = second.finish()
    assert res2.returncode == 0, res2
    took = assert_took_over_after_expiry(res2, expires, db)
    assert took["holder"] == "cut-holder", took
    assert applied_versions(res2) == [2, 3], res2

    if cut == "heartbeat":
        h.resume()  # the stalled command finally goes through
    res1 = holder.finish()
    assert res1.returncode in (9, 4), res1
    assert applied_versions(res1) == [1], res1
    if cut == "heartbeat":
        assert res1.returncode == 9, res1

    assert counters(db) == {1: 1, 2: 1, 3: 1}
    assert item_ids(db) == [1, 2, 3]
    assert state(db) == [{"version": 3, "dirty": False}]
    assert lock_free(db)


def test_write_stalled_past_the_lease_does_not_undo_or_redo_work(procs, relays, dbname, db_url, db, migdir):
    """The holder has checked its lock and sent migration 2's dirty write; that
    write stalls (network partition, or the process frozen between check and
    send) while its heartbeat cannot reach the database either. The lease runs
    out (the holder itself logs "lock lost"), a second runner takes over and
    applies 2 and 3. Then the stalled write arrives. Nothing may run twice,
    the holder must stop (9 or 4), and the state must stay what the second
    runner left (3, clean): a stale write must not move it back."""
    write_migrations(migdir, counted_set(3))
    relay = relays()
    h = relay.hold(on_version_write(2, True))
    holder = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE="1s", POD_NAME="partitioned")
    h.wait(holder)
    relay.cut(keep=h)
    holder.wait_log("lock lost: no renewal succeeded within the lease")
    res2 = procs.mi(migdir, db_url, "up", LOCK_TIMEOUT="15s").finish()
    assert res2.returncode == 0, res2
    assert applied_versions(res2) == [2, 3], res2
    assert counters(db) == {1: 1, 2: 1, 3: 1}
    assert state(db) == [{"version": 3, "dirty": False}]

    h.resume()  # the stalled write finally reaches the database
    res1 = holder.finish()
    assert counters(db) == {1: 1, 2: 1, 3: 1}, f"a migration ran twice:\n{res1!r}"
    assert res1.returncode in (9, 4), res1
    assert state(db) == [{"version": 3, "dirty": False}], f"a stale write moved the state back:\n{res1!r}"
    assert lock_free(db)


# ==========================================================================
# 6. Handoff to a waiter


def test_waiter_proceeds_soon_after_release(procs, relays, dbname, db_url, db, migdir, capsys):
    write_migrations(migdir, {**SLOW1, **{f"{v}_m{v}.up.json": counted(v) for v in (2, 3)}})
    relay = relays()
    h = relay.hold(on_command("insert", "slow"))
    holder = procs.mi(migdir, relay.url(dbname), "up", LOG_LEVEL="debug")
    h.wait(holder)
    waiter = procs.mi(migdir, db_url, "up", LOG_LEVEL="debug", LOCK_TIMEOUT="15s")
    waiter.wait_log(WAITING)
    h.resume()

    res1 = holder.finish()
    res2 = waiter.finish()
    assert res1.returncode == 0, res1
    assert res2.returncode == 0, res2
    assert applied_versions(res1) == [1, 2, 3]
    assert applied_versions(res2) == []
    assert NO_CHANGE_WAITED in msgs(res2)
    released = log_ms(one_log(res1, "lock released"))
    acquired = log_ms(one_log(res2, "lock acquired"))
    handoff = acquired - released
    with capsys.disabled():
        print(f"\n[lock handoff] holder released -> waiter acquired: {handoff} ms")
    assert -50 <= handoff < 2000, f"handoff took {handoff} ms"
    assert counters(db) == {2: 1, 3: 1}
    assert lock_free(db)


# ==========================================================================
# 7. unlock


def test_unlock_live_expired_and_absent(procs, relays, dbname, db_url, db, ferret_url, migdir):
    write_migrations(migdir, SLOW1)

    # no lock at all (not even the collection)
    res = procs.mi(migdir, db_url, "unlock").finish()
    assert res.returncode == 0, res
    assert "no lock is held" in msgs(res)

    # a live lock: a holder stalled mid-migration with a long lease
    relay = relays()
    h = relay.hold(on_command("insert", "slow"))
    holder = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE="60s", POD_NAME="live-pod-7")
    h.wait(holder)
    live = lock_doc(db)
    res = procs.mi(migdir, db_url, "unlock").finish()
    assert res.returncode == 6, res
    assert one_log(res, "lock is held and not expired")["holder"] == "live-pod-7"
    assert lock_doc(db)["token"] == live["token"], "unlock without -force removed a live lock"

    res = procs.mi(migdir, db_url, "unlock", "-force").finish()
    assert res.returncode == 0, res
    removed = one_log(res, "lock removed by force")
    assert removed["holder"] == "live-pod-7" and removed["holder_pid"] == holder.pid, removed
    assert lock_free(db)

    # the holder, robbed of its lock, must not write its version (fencing)
    h.resume()
    res = holder.finish()
    assert res.returncode == 9, res
    assert state(db) == [{"version": 1, "dirty": True}]
    assert lock_free(db)

    # an expired lock: a killed holder's, once its lease has run out
    db2 = db.client[dbname + "_x"]
    url2 = ferret_url(dbname + "_x")
    h = relay.hold(on_command("insert", "slow"))
    dead = procs.mi(migdir, relay.url(dbname + "_x"), "up", LOCK_LEASE="500ms", POD_NAME="dead-pod-7")
    h.wait(dead)
    dead.kill()
    dead.finish()
    h.drop()
    doc = settled_lock(db2)
    assert doc["owner"] == "dead-pod-7", doc
    wait_for(lambda: server_ms(db2) > dt_ms(doc["expires_at"]), "the dead holder's lease to run out")
    res = procs.mi(migdir, url2, "unlock").finish()
    assert res.returncode == 0, res
    assert one_log(res, "expired lock removed")["holder"] == "dead-pod-7"
    assert lock_free(db2)
    db.client.drop_database(db2.name)


# ==========================================================================
# 8. The lock is released on every exit path


def test_lock_released_after_success(procs, db_url, db, migdir):
    write_migrations(migdir, counted_set(2))
    res = procs.mi(migdir, db_url, "up").finish()
    assert res.returncode == 0, res
    assert "lock_unique_key" in {ix["name"] for ix in db[LOCK].list_indexes()}
    assert lock_free(db)


def test_lock_released_after_failing_migration(procs, db_url, db, migdir):
    write_migrations(migdir, {**counted_set(1), "2_bad.up.json": [{"bogusCommand": 1}]})
    res = procs.mi(migdir, db_url, "up").finish()
    assert res.returncode == 7, res
    assert state(db) == [{"version": 2, "dirty": True}]
    assert lock_free(db)


def _signal_handled(pid, sig):
    """True once sig is no longer pending for the process (its handler has run)."""
    bit = 1 << (sig - 1)
    with open(f"/proc/{pid}/status") as f:
        fields = dict(l.split(":", 1) for l in f if ":" in l)
    return not any(int(fields[k].strip(), 16) & bit for k in ("SigPnd", "ShdPnd"))


def test_lock_released_after_sigterm_between_migrations(procs, relays, dbname, db, migdir):
    write_migrations(migdir, counted_set(3))
    relay = relays()
    h = relay.hold(on_version_write(1, False))  # migration 1's clean write, in flight
    p = procs.mi(migdir, relay.url(dbname), "up", STOP_GRACE_PERIOD="30s")
    h.wait(p)
    p.kill(signal.SIGTERM)
    wait_for(lambda: _signal_handled(p.pid, signal.SIGTERM), "SIGTERM to be handled")
    time.sleep(0.05)
    h.resume()
    res = p.finish()
    assert res.returncode == 128 + signal.SIGTERM, res
    assert "stopping before the next migration: signal received" in msgs(res), res
    assert applied_versions(res) == [1]
    assert counters(db) == {1: 1}
    assert state(db) == [{"version": 1, "dirty": False}]
    assert lock_free(db)


# ==========================================================================
# 9. The lock document


def test_lock_document_records_pod_name_and_lease(procs, relays, dbname, db, migdir):
    write_migrations(migdir, SLOW1)
    relay = relays()
    h = relay.hold(on_command("insert", "slow"))
    p = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE="900ms", POD_NAME="pod-abc-123")
    h.wait(p)
    doc = lock_doc(db)
    assert doc["owner"] == "pod-abc-123", doc
    assert doc["tool"] == "migrate-init"
    assert doc["locking_key"] == 0
    assert doc["pid"] == p.pid
    assert doc["hostname"] == socket.gethostname()
    assert re.fullmatch(r"[0-9a-f]{32}", doc["token"]), doc
    assert doc["lease_ms"] == 900
    assert dt_ms(doc["expires_at"]) == dt_ms(doc["renewed_at"]) + 900
    assert abs(dt_ms(doc["created_at"]) - server_ms(db)) < 10_000
    # the heartbeat renews it while the main connection is busy in a migration
    renewed = wait_for(
        lambda: (d := lock_doc(db)) and d["renewed_at"] > doc["renewed_at"] and d,
        "the heartbeat to renew the lease",
        timeout=10,
    )
    assert renewed["token"] == doc["token"] and renewed["created_at"] == doc["created_at"], renewed
    assert dt_ms(renewed["expires_at"]) == dt_ms(renewed["renewed_at"]) + 900
    h.resume()
    res = p.finish()
    assert res.returncode == 0, res
    assert lock_free(db)


# ==========================================================================
# 10. A SIGKILLed runner leaves nothing behind for its replacement
#
# Debian's libmongoc keeps counters in /dev/shm/mongoc-<pid>. A run killed
# with SIGKILL (OOM kill, kubectl delete --force) used to leave that file; its
# replacement often gets the same pid (PID 1 in a container; under containerd
# the pod's /dev/shm survives a container restart) and libmongoc then printed
# a plain-text warning before any JSON log. Found by the kills in this file.


def shm_segment(pid):
    return f"/dev/shm/mongoc-{pid}"


def test_killed_runner_leaves_no_shm_segment(procs, relays, dbname, db_url, db, migdir):
    write_migrations(migdir, SLOW1)
    relay = relays()
    h = relay.hold(on_command("insert", "slow"))
    dead = procs.mi(migdir, relay.url(dbname), "up", LOCK_LEASE="500ms")
    h.wait(dead)
    dead.kill()
    dead.finish()
    h.drop()
    seg = shm_segment(dead.pid)
    pid_reused = os.path.exists(f"/proc/{dead.pid}")  # then the file, if any, is its new owner's
    assert pid_reused or not os.path.exists(seg), f"a SIGKILLed runner left {seg}"
