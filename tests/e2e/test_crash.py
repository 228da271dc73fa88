"""Reliability: a runner SIGKILLed at every step of a run.

The crash-injection build (bin/faults/migrate-init, `make faults`) kills
itself with SIGKILL the Nth time it passes a named point (src/fault.h,
MI_FAULT=NAME@N). For every point, and for several hit counts, a run is
crashed there (LOCK_LEASE=1s), then the normal binary runs again and must:

  * never run anything twice: proved from the data. Every command of every
    migration leaves its own mark (fixed-_id inserts, so a second run of a
    migration fails loudly with a duplicate key, and a $inc counter per
    migration, so a silent re-run would show as n=2). Right after the crash
    the marks are exactly the first K commands of the set, in order, where
    K is what the crash point implies;
  * not wait for the dead runner's lock longer than its lease plus a
    margin (waited_ms of its own "lock acquired" record, and wall time);
  * exit 8 with golang-migrate's "Dirty database version N. Fix and force
    version." exactly when the crash left the state dirty (after_dirty,
    after_command, before_clean), changing nothing; else (before_lock,
    locked, releasing) finish the remaining migrations with exit 0.

After an 8, the operator's repair (undo a partly applied body, then
`force` the last fully applied version) and `up` complete the set with each
migration applied once.

The crash build is built by a session fixture (`make -s faults`); if it
cannot be built that is a failure, never a skip. Lease waits are judged
with generous bounds: other heavy jobs share this machine.
"""

import os
import time

import pytest

from conftest import (
    settled,
    MI_BIN,
    REPO,
    applied_logs,
    lock_free,
    run_faults,
    run_mi,
    user_collections,
    version_of,
    write_migrations,
)

LOCK = "migrate_advisory_lock"
LEASE_MS = 1000
# The next run may wait for the dead runner's lease: its lease, plus the
# waiter's poll step (250 ms), plus slack for a loaded 2-core machine.
WAIT_MARGIN_MS = 4000
HANG = 60  # seconds: hang guard only
DIRTY_MSG = "Dirty database version {}. Fix and force version."

VERSIONS = (1, 2, 3)
CMDS_PER_MIGRATION = 3
TOTAL_CMDS = len(VERSIONS) * CMDS_PER_MIGRATION


# --------------------------------------------------------------------------
# The crash-injection build


def mi(args, env, **kw):
    """run_mi, after waiting out a concurrent relink of bin/migrate-init."""
    settled(MI_BIN)
    return run_mi(args, env=env, **kw)


# --------------------------------------------------------------------------
# Migrations whose every command leaves evidence


def body(v):
    return [
        {"insert": "marks", "documents": [{"_id": f"v{v}-a"}]},
        {"update": "counters", "updates": [{"q": {"_id": v}, "u": {"$inc": {"n": 1}}, "upsert": True}]},
        {"insert": "marks", "documents": [{"_id": f"v{v}-b"}]},
    ]


def write_set(migdir):
    files = {}
    for v in VERSIONS:
        files[f"{v}_step{v}.up.json"] = body(v)
        files[f"{v}_step{v}.down.json"] = []
    write_migrations(migdir, files)


def effects(db):
    """The list of (version, command index) whose effect is in the database,
    checking on the way that no command's effect is there twice."""
    marks = {d["_id"] for d in db["marks"].find()}
    counters = {d["_id"]: d["n"] for d in db["counters"].find()}
    for v, n in counters.items():
        assert n == 1, f"migration {v}'s counter is {n}: its body ran more than once"
    out = []
    for v in VERSIONS:
        if f"v{v}-a" in marks:
            out.append((v, 0))
        if v in counters:
            out.append((v, 1))
        if f"v{v}-b" in marks:
            out.append((v, 2))
    return out


def first_k(k):
    """The effects of the first k commands of the set, in order."""
    return [(v, i) for v in VERSIONS for i in range(CMDS_PER_MIGRATION)][:k]


def lock_doc(db):
    return db[LOCK].find_one({"locking_key": 0})


# --------------------------------------------------------------------------
# What each crash must leave behind


class Expect:
    """After a crash at POINT@N: how many commands took effect, the state,
    whether the dead runner's lock is left behind, and the repair."""

    def __init__(self, point, n):
        self.point, self.n = point, n
        per = CMDS_PER_MIGRATION
        if point == "before_lock":
            self.k, self.state, self.lock_left = 0, None, False
        elif point == "locked":
            self.k, self.state, self.lock_left = 0, None, True
        elif point == "releasing":
            self.k, self.state, self.lock_left = TOTAL_CMDS, (VERSIONS[-1], False), True
        elif point == "after_dirty":  # migration n marked dirty, no command yet
            self.k, self.state, self.lock_left = per * (n - 1), (n, True), True
        elif point == "before_clean":  # migration n's body done, not marked clean
            self.k, self.state, self.lock_left = per * n, (n, True), True
        elif point == "after_command":  # the nth command overall has run
            v = (n - 1) // per + 1
            self.k, self.state, self.lock_left = n, (v, True), True
        else:
            raise AssertionError(point)
        self.dirty = bool(self.state and self.state[1])

    def repair(self, db):
        """What an operator does after the 8: undo the partly applied body
        (if any) and return the version to force."""
        v = self.state[0]
        done_in_v = self.k - CMDS_PER_MIGRATION * (v - 1)
        if done_in_v == CMDS_PER_MIGRATION:
            return v  # the body ran to its end: only the clean mark is missing
        if done_in_v >= 1:
            db["marks"].delete_one({"_id": f"v{v}-a"})
        if done_in_v >= 2:
            db["counters"].delete_one({"_id": v})
        return v - 1 if v > 1 else -1


CASES = (
    [("before_lock", 1), ("locked", 1), ("releasing", 1)]
    + [("after_dirty", n) for n in (1, 2, 3)]
    + [("before_clean", n) for n in (1, 2, 3)]
    + [("after_command", n) for n in range(1, TOTAL_CMDS + 1)]
)
# Repeated: the points right around the first writes, where an ordering
# mistake would show.
REPEATED = {("locked", 1), ("after_dirty", 1), ("after_command", 1), ("after_command", 2),
            ("after_command", 3), ("before_clean", 1), ("releasing", 1)}
PARAMS = [(p, n, r) for p, n in CASES for r in range(2 if (p, n) in REPEATED else 1)]


def waited_ms(res):
    recs = [r for r in res.logs if r.get("msg") == "lock acquired"]
    assert len(recs) == 1, f"expected one 'lock acquired' record (LOG_LEVEL=debug): {res!r}"
    return recs[0]["waited_ms"]


@pytest.mark.parametrize("point,n,rep", PARAMS,
                         ids=[f"{p}@{n}" + (f"-r{r}" if r else "") for p, n, r in PARAMS])
def test_crash_then_rerun(point, n, rep, faults_bin, db_url, db, migdir):
    write_set(migdir)
    exp = Expect(point, n)
    base = {"DATABASE_URL": db_url, "MIGRATION_DIR": migdir, "LOCK_LEASE": f"{LEASE_MS}ms",
            "POD_NAME": "crashed-runner"}

    # 1. The crash.
    crash = run_faults(faults_bin, ["up"], dict(base, MI_FAULT=f"{point}@{n}"))
    assert crash.returncode == -9, f"the fault {point}@{n} did not fire: {crash!r}"
    if exp.state is None:
        fully = 0
    else:
        fully = exp.state[0] - 1 if exp.dirty else exp.state[0]
    assert [r["version"] for r in applied_logs(crash)] == list(VERSIONS[:fully]), crash
    assert effects(db) == first_k(exp.k), (
        f"after a crash at {point}@{n} exactly the first {exp.k} commands must have run")
    assert version_of(db) == exp.state, crash
    held = lock_doc(db)
    if exp.lock_left:
        assert held is not None and held.get("owner") == "crashed-runner", held
    else:
        assert held is None, held

    # 2. The next run, with the normal binary.
    settled(MI_BIN)
    if point == "releasing":
        check_release_crash(base, db)
        return
    t0 = time.monotonic()
    nxt = run_mi(["up"], env=dict(base, POD_NAME="next-runner", LOCK_TIMEOUT="60s",
                                  LOG_LEVEL="debug"), timeout=HANG)
    wall_ms = (time.monotonic() - t0) * 1000
    w = waited_ms(nxt)
    assert w <= LEASE_MS + WAIT_MARGIN_MS, f"waited {w} ms for a dead runner's lock: {nxt!r}"
    assert wall_ms <= LEASE_MS + WAIT_MARGIN_MS + 15000, (wall_ms, nxt)
    took_over = [r for r in nxt.logs if r.get("msg") == "took over an expired lock"]
    if exp.lock_left:
        assert len(took_over) == 1 and took_over[0]["holder"] == "crashed-runner", nxt
    else:
        assert not took_over and w < LEASE_MS, nxt
    assert lock_free(db), f"the next run must release the lock: {lock_doc(db)}"

    if exp.dirty:
        v = exp.state[0]
        assert nxt.returncode == 8, nxt
        assert DIRTY_MSG.format(v) in nxt.stderr, nxt
        assert applied_logs(nxt) == [], nxt
        assert effects(db) == first_k(exp.k), "a dirty refusal must change nothing"
        assert version_of(db) == exp.state

        # 3. Repair, force, up.
        forced = exp.repair(db)
        f = mi(["force", forced], base)
        assert f.returncode == 0, f
        assert version_of(db) == (forced, False)
        up = mi(["up"], base)
        assert up.returncode == 0, up
        start = max(forced, 0)
        assert [r["version"] for r in applied_logs(up)] == list(VERSIONS[start:]), up
    else:
        assert nxt.returncode == 0, nxt
        expected = [] if point == "releasing" else list(VERSIONS)
        assert [r["version"] for r in applied_logs(nxt)] == expected, nxt

    # Whatever the path: the whole set, every command exactly once.
    assert effects(db) == first_k(TOTAL_CMDS)
    assert version_of(db) == (VERSIONS[-1], False)
    assert lock_free(db)
    # The history collection may be missing: a crashed run's buffered records
    # die with it (README, History), and a repaired run may apply nothing.
    assert sorted(c for c in user_collections(db) if c != "schema_migrations_history") == sorted(
        ["marks", "counters", "schema_migrations", LOCK])


def check_release_crash(base, db):
    """Killed while releasing, after all the work: the next run has nothing
    to do and says so from one read, without waiting for the dead runner's
    still-live lease; once the lease is over, a run takes the expired lock
    over and removes it (it would block golang-migrate, which knows no
    leases)."""
    env = dict(base, POD_NAME="next-runner", LOG_LEVEL="debug")
    nxt = run_mi(["up"], env=env, timeout=HANG)
    assert nxt.returncode == 0 and applied_logs(nxt) == [], nxt
    if not [r for r in nxt.logs if r.get("msg") == "took over an expired lock"]:
        assert not [r for r in nxt.logs if r.get("msg") == "lock acquired"], nxt
        deadline = time.monotonic() + (LEASE_MS + WAIT_MARGIN_MS) / 1000 + 15
        while lock_doc(db) is not None:
            assert time.monotonic() < deadline, f"expired lock never removed: {lock_doc(db)}"
            time.sleep(0.1)
            res = run_mi(["up"], env=env, timeout=HANG)
            assert res.returncode == 0 and applied_logs(res) == [], res
    assert lock_free(db)
    assert effects(db) == first_k(TOTAL_CMDS)
    assert version_of(db) == (VERSIONS[-1], False)


def test_crash_build_is_not_the_release_build(faults_bin, db_url, db, migdir):
    """MI_FAULT means nothing to the normal binary: it runs to the end."""
    write_set(migdir)
    res = mi(["up"], {"DATABASE_URL": db_url, "MIGRATION_DIR": migdir,
                              "MI_FAULT": "after_dirty@1"})
    assert res.returncode == 0, res
    assert effects(db) == first_k(TOTAL_CMDS)


def test_a_fault_that_never_fires_changes_nothing(faults_bin, db_url, db, migdir):
    """The crash build with a point passed fewer times than N behaves as
    the normal one (the harness itself is sound)."""
    write_set(migdir)
    res = run_faults(faults_bin, ["up"], {"DATABASE_URL": db_url, "MIGRATION_DIR": migdir,
                                          "MI_FAULT": f"after_command@{TOTAL_CMDS + 1}"})
    assert res.returncode == 0, res
    assert effects(db) == first_k(TOTAL_CMDS)
    assert version_of(db) == (VERSIONS[-1], False)
