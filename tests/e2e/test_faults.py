"""Database faults during a run: the server killed and restarted, the TCP
connection cut in the middle of a command, a slow server, a hung server.

What every test here proves: the run ends (bounded time), with a documented
exit code and a log record that says what happened; the lock is released or
expires after its lease (a later run gets it within lease + margin); a later
run finishes the work or refuses a dirty database (8); and no migration ever
runs twice (fixed-_id inserts fail loudly on a second run; $inc counters
per migration must be 1).

Faults are made by a relay in this file (FaultRelay) in front of a real
FerretDB: every byte goes through unchanged except at the chosen point,
where it cuts both sides of one connection after part of a message, delays
every reply, or stops forwarding replies. Nothing here decides an outcome by
sleeping: the tests poll the database; timeouts are hang guards.

Which setting bounds which wait (measured here, see the hang tests):
  * a command whose reply never comes: socketTimeoutMS in the URL (libmongoc;
    its default is 300000 ms = 5 min; the README documents no bound of its
    own for a hung command). Measured: hang on one connection with
    socketTimeoutMS=2000 -> exit 7 after ~2.1 s, the lock released at once
    over a fresh connection;
  * a new connection whose handshake is never answered: connectTimeoutMS
    (libmongoc default 10000 ms; migrate-init lowers it to WAIT_TIMEOUT when
    WAIT_TIMEOUT is set and below 10 s); while waiting for the database the
    attempts are bounded by MAX_RETRIES / WAIT_TIMEOUT (exit 4). After a
    command timed out on a server that answers nothing at all, the history
    write costs two handshakes (2 x connectTimeoutMS), and the release is
    skipped because the heartbeat (same bounds) has declared the lock lost:
    socketTimeoutMS=2000 & connectTimeoutMS=2000 -> ~6.1 s; socketTimeoutMS
    =2000 alone -> ~22 s (2 + 2 x 10).
"""

import os
import re
import signal
import socket
import struct
import threading
import time

import bson
import pymongo
import pytest

from conftest import (
    settled,
    MI_BIN,
    applied_logs,
    finish,
    lock_free,
    popen_mi,
    run_mi,
    start_ferretdb,
    version_of,
    write_migrations,
    written_state,
    Conn,
    Listener,
    op_msg_sections,
    read_msg,
    relay_factory_of,
)

LOCK = "migrate_advisory_lock"
HANG = 60  # seconds: hang guard only
LEASE_MS = 2000
WAIT_MARGIN_MS = 5000  # the lease-wait bound's slack on a loaded machine
DIRTY_MSG = "Dirty database version {}. Fix and force version."
NETWORKISH = re.compile(
    r"socket|connect|clos|refused|reset|network|timed? ?out|timeout|stream|server selection|"
    r"suitable server|eof|unreachable|Failed to (read|send)|hang ?up|broken pipe",
    re.I,
)


# --------------------------------------------------------------------------
# Guards


def mi(args, env, **kw):
    settled()
    return run_mi(args, env=env, **kw)


def wait_for(pred, what, timeout=HANG, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Migrations that leave evidence of every command


def body(v, extra=0):
    cmds = [{"insert": "marks", "documents": [{"_id": f"v{v}-a"}]},
            {"update": "counters", "updates": [{"q": {"_id": v}, "u": {"$inc": {"n": 1}},
                                                "upsert": True}]}]
    # extra: one insert command per document, each a fixed _id (a slow body).
    cmds += [{"insert": "marks", "documents": [{"_id": f"v{v}-x{i}"}]} for i in range(extra)]
    cmds.append({"insert": "marks", "documents": [{"_id": f"v{v}-b"}]})
    return cmds


def write_set(migdir, slow_version=None, extra=0):
    files = {}
    for v in (1, 2, 3):
        files[f"{v}_m{v}.up.json"] = body(v, extra if v == slow_version else 0)
        files[f"{v}_m{v}.down.json"] = []
    write_migrations(migdir, files)


def check_once(db):
    """No command ran twice: every counter is 1 (marks have unique _ids, so
    a second insert would have failed the run instead)."""
    for d in db["counters"].find():
        assert d["n"] == 1, f"migration {d['_id']} ran {d['n']} times"


def complete(db, extra_in=None, extra=0):
    marks = {d["_id"] for d in db["marks"].find()}
    want = {f"v{v}-{s}" for v in (1, 2, 3) for s in "ab"}
    if extra_in:
        want |= {f"v{extra_in}-x{i}" for i in range(extra)}
    return marks == want and {d["_id"]: d["n"] for d in db["counters"].find()} == {1: 1, 2: 1, 3: 1}


def error_records(res):
    return [r for r in res.logs if str(r.get("level", "")).upper() == "ERROR"]


def assert_says(res, msg, networkish=True):
    """An error (or, for a failed release after the work is done, warning)
    record with this msg, whose error text names the fault."""
    recs = [r for r in res.logs if r.get("msg") == msg and
            str(r.get("level", "")).upper() in ("ERROR", "WARN")]
    assert recs, f"no error record {msg!r}: {res!r}"
    if networkish:
        assert any(NETWORKISH.search(str(r.get("error", ""))) for r in recs), (
            f"{msg!r} does not say the connection failed: {recs}")


def report(tag, res, elapsed=None):
    """One line for -s runs: what happened (diagnostics only)."""
    errs = [(r.get("msg"), r.get("error")) for r in error_records(res)]
    print(f"\n[{tag}] exit {res.returncode}" + (f" in {elapsed:.2f}s" if elapsed else "") + f": {errs}")


def later_run(url, migdir, **env):
    """The next runner: generous lock timeout, debug logs for waited_ms."""
    e = {"DATABASE_URL": url, "MIGRATION_DIR": migdir, "LOCK_TIMEOUT": "60s",
         "LOG_LEVEL": "debug"}
    e.update(env)
    settled()
    t0 = time.monotonic()
    res = run_mi(["up"], env=e, timeout=HANG)
    wall = (time.monotonic() - t0) * 1000
    acq = [r for r in res.logs if r.get("msg") == "lock acquired"]
    assert len(acq) == 1, res
    assert acq[0]["waited_ms"] <= LEASE_MS + WAIT_MARGIN_MS, (
        f"the later run waited {acq[0]['waited_ms']} ms for the lock: {res!r}")
    assert wall <= LEASE_MS + WAIT_MARGIN_MS + 20000, (wall, res)
    return res


def leftover_lock_run(url, migdir, db):
    """All the work is done but our lock document was left (its release was
    cut): a later run answers "no change" from one read without waiting
    for the live lease, and once the lease is over a run takes the expired
    lock over and removes it."""
    e = {"DATABASE_URL": url, "MIGRATION_DIR": migdir, "LOCK_TIMEOUT": "60s"}
    settled()
    deadline = time.monotonic() + (LEASE_MS + WAIT_MARGIN_MS) / 1000 + 20
    while True:
        res = run_mi(["up"], env=e, timeout=HANG)
        assert res.returncode == 0 and applied_logs(res) == [], res
        if lock_free(db):
            return res
        assert time.monotonic() < deadline, f"expired lock never removed: {res!r}"
        time.sleep(0.1)


# --------------------------------------------------------------------------
# The relay


def decode(msg):
    """OP_MSG -> (command name, collection or value, body dict, {ident: [docs]}); None otherwise."""
    try:
        sections = op_msg_sections(msg) if len(msg) >= 21 else None
        if sections is None:
            return None
        body = bson.decode(sections[0])
        seqs = {k: [bson.decode(d) for d in v] for k, v in sections[1].items()}
    except Exception:
        return None
    if not body:
        return None
    name = next(iter(body))
    return name, body[name], body, seqs


def items_of(cmd, field):
    _, _, body, seqs = cmd
    return list(seqs.get(field, [])) + list(body.get(field, []) or [])


def is_insert(coll, _id=None):
    def pred(cmd):
        if cmd[0] != "insert" or cmd[1] != coll:
            return False
        return _id is None or any(d.get("_id") == _id for d in items_of(cmd, "documents"))
    return pred


def is_version_write(version, dirty):
    def pred(cmd):
        if cmd[0] != "update" or cmd[1] != "schema_migrations":
            return False
        return any(written_state(u) == (version, dirty) for u in items_of(cmd, "updates"))
    return pred


def is_lock_delete(cmd):
    return cmd[0] == "delete" and cmd[1] == LOCK


class FaultConn(Conn):
    def __init__(self, relay, client, upstream):
        super().__init__(client, upstream)
        self.relay = relay
        self.cut_reply_next = False
        self.hanging = False
        self.replies = 0


class FaultRelay(Listener):
    """127.0.0.1:port -> FerretDB, message by message, with at most one fault:

    cut_request(pred): the first client command matching pred is forwarded
        only up to half its bytes, then both sides of that connection close;
    cut_reply(pred): the first matching command is forwarded whole, and its
        reply only up to half, then both sides close (the server did the work,
        the client cannot know);
    delay(seconds): every reply is held that long before it is forwarded;
    hang(pred, everywhere): once a matching command was forwarded, no reply
        is forwarded any more on its connection (or on every connection).
    """

    def __init__(self, upstream):
        self.upstream = upstream
        self.mu = threading.Lock()
        self.conns = []
        self.commands = []  # (conn index, name, value)
        self.fault = None
        self.fired = threading.Event()
        self.delay_s = 0.0
        self.hang_all = False
        self.closed = False
        self._listen(64)

    def cut_request(self, pred):
        self.fault = ("cut_request", pred)

    def cut_reply(self, pred):
        self.fault = ("cut_reply", pred)

    def hang(self, pred, everywhere=False):
        self.fault = ("hang", pred, everywhere)

    def delay(self, seconds):
        self.delay_s = seconds

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.mu:
            conns = list(self.conns)
        for c in conns:
            c.close()

    def _serve(self, c, u):
        conn = FaultConn(self, c, u)
        with self.mu:
            conn.index = len(self.conns)
            self.conns.append(conn)
        threading.Thread(target=self._to_server, args=(conn,), daemon=True).start()
        threading.Thread(target=self._to_client, args=(conn,), daemon=True).start()

    def _take_fault(self, cmd):
        """The armed fault if cmd triggers it (one-shot), else None."""
        with self.mu:
            f = self.fault
            if f is None or cmd is None or self.fired.is_set() or not f[1](cmd):
                return None
            self.fired.set()
            return f

    def _to_server(self, conn):
        buf = b""
        try:
            while True:
                msg, buf = read_msg(conn.c, buf)
                if msg is None:
                    break
                cmd = decode(msg)
                if cmd is not None:
                    with self.mu:
                        self.commands.append((conn.index, cmd[0], cmd[1]))
                f = self._take_fault(cmd)
                if f and f[0] == "cut_request":
                    conn.u.sendall(msg[: len(msg) // 2])
                    break
                if f and f[0] == "cut_reply":
                    conn.cut_reply_next = True
                conn.u.sendall(msg)
                if f and f[0] == "hang":
                    if f[2]:
                        self.hang_all = True
                    conn.hanging = True
        except OSError:
            pass
        conn.close()

    def _to_client(self, conn):
        buf = b""
        try:
            while True:
                msg, buf = read_msg(conn.u, buf)
                if msg is None:
                    break
                if conn.hanging or self.hang_all:
                    continue  # swallowed: the client waits for it forever
                if self.delay_s:
                    time.sleep(self.delay_s)
                if conn.cut_reply_next:
                    conn.c.sendall(msg[: len(msg) // 2])
                    break
                conn.c.sendall(msg)
                conn.replies += 1
        except OSError:
            pass
        conn.close()


@pytest.fixture
def relay(ferretdb):
    yield from relay_factory_of(FaultRelay, ferretdb)


# --------------------------------------------------------------------------
# (a) FerretDB killed mid-migration, restarted on the same port and data


def _pid_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"  # a zombie is dead
    except OSError:
        return True


@pytest.fixture
def own_ferretdb(tmp_path_factory, ferretdb_stopper):
    """A FerretDB of this test's own: (directory, port); stopped after the test."""
    d = tmp_path_factory.mktemp("ferretdb_killed")
    port = start_ferretdb(d)
    try:
        yield d, port
    finally:
        ferretdb_stopper(d)


def kill_ferretdb(directory):
    pid = int((directory / "pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _pid_gone(pid), "the killed FerretDB to be gone", timeout=20)
    # A reaped-late zombie would look alive to ferretdb.sh; it is dead.
    (directory / "pid").unlink()


@pytest.mark.parametrize("restart", ["at-once", "after-the-run"])
def test_ferretdb_killed_mid_migration(restart, own_ferretdb, migdir, dbname):
    d, port = own_ferretdb
    extra = 3000  # migration 2 is 3003 commands: slow enough to be caught mid-body
    write_set(migdir, slow_version=2, extra=extra)
    url = f"mongodb://127.0.0.1:{port}/{dbname}?serverSelectionTimeoutMS=3000"
    client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=20000)
    db = client[dbname]
    try:
        settled()
        p = popen_mi(["up"], env={"DATABASE_URL": url, "MIGRATION_DIR": migdir,
                                  "LOCK_LEASE": f"{LEASE_MS}ms", "MAX_RETRIES": 3,
                                  "RETRY_INTERVAL": "200ms", "POD_NAME": "victim"})
        try:
            # Mid-body: migration 2 is marked dirty and has started its inserts.
            wait_for(lambda: db["marks"].count_documents({"_id": {"$regex": "^v2-x"}}) >= 20,
                     "migration 2 to be under way")
            kill_ferretdb(d)
            if restart == "at-once":
                assert start_ferretdb(d, port=port) == port
            res = finish(p, timeout=HANG, check_mi=True)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        if restart == "after-the-run":
            assert start_ferretdb(d, port=port) == port

        report(f"killed/{restart}", res)
        assert res.returncode in (4, 7, 9), res
        if res.returncode == 7:
            assert_says(res, "migration failed")
            failed = [r for r in error_records(res) if r.get("msg") == "migration failed"]
            assert failed[0]["version"] == 2, res
        elif res.returncode == 4:
            assert any(NETWORKISH.search(str(r.get("error", ""))) for r in error_records(res)), res
        else:
            assert any("lock" in r.get("msg", "") for r in error_records(res)), res
        assert [r["version"] for r in applied_logs(res)] == [1], res
        last = res.logs[-1]
        assert last.get("exit_code") == res.returncode, res

        st = version_of(db)
        assert st == (2, True), f"killed mid-body of 2, the state must say so: {st}"
        check_once(db)
        before = sorted(x["_id"] for x in db["marks"].find())
        assert "v2-a" in before and "v2-b" not in before

        # The lock is released, or expires: the next run gets it within the
        # lease and refuses the dirty database, changing nothing.
        nxt = later_run(url, migdir)
        assert nxt.returncode == 8, nxt
        assert DIRTY_MSG.format(2) in nxt.stderr, nxt
        assert sorted(x["_id"] for x in db["marks"].find()) == before
        check_once(db)
        assert lock_free(db)

        # Repair (undo 2's partial body), force 1, up: each migration once.
        db["marks"].delete_many({"_id": {"$regex": "^v2-"}})
        db["counters"].delete_many({"_id": 2})
        base = {"DATABASE_URL": url, "MIGRATION_DIR": migdir}
        assert mi(["force", "1"], base).returncode == 0
        up = mi(["up"], base, timeout=HANG * 2)
        assert up.returncode == 0, up
        assert [r["version"] for r in applied_logs(up)] == [2, 3], up
        assert complete(db, extra_in=2, extra=extra)
        assert version_of(db) == (3, False)
    finally:
        client.close()


# --------------------------------------------------------------------------
# (b) The connection cut in the middle of a command


# name -> (how, predicate, expected exit, error msg, state after, v2-a present, later exit)
CUTS = {
    # The lock insert never reaches the server whole.
    "lock-insert-request": ("cut_request", is_insert(LOCK), 4, "cannot take the lock", None,
                            False, 0),
    # Migration 2's dirty mark never reaches the server whole.
    "dirty-mark-request": ("cut_request", is_version_write(2, True), 4,
                           "cannot write the migration version", (1, False), False, 0),
    # Migration 2's first command never reaches the server whole.
    "command-request": ("cut_request", is_insert("marks", "v2-a"), 7, "migration failed",
                        (2, True), False, 8),
    # Migration 2's first command runs, its reply is cut.
    "command-reply": ("cut_reply", is_insert("marks", "v2-a"), 7, "migration failed",
                      (2, True), True, 8),
    # Migration 2's clean mark is written, its reply is cut.
    "clean-mark-reply": ("cut_reply", is_version_write(2, False), 4,
                         "cannot write the migration version", (2, False), True, 0),
    # The lock release never reaches the server whole (everything applied):
    # a warning and exit 0, since the lock expires after its lease.
    "release-request": ("cut_request", is_lock_delete, 0,
                        "cannot release the lock; it expires after the lease", (3, False), True, 0),
}


@pytest.mark.parametrize("case", list(CUTS))
def test_connection_cut_mid_command(case, relay, migdir, dbname, db, db_url):
    how, pred, want_rc, msg, after, v2a, later_rc = CUTS[case]
    write_set(migdir)
    r = relay()
    getattr(r, how)(pred)
    env = {"DATABASE_URL": r.url(dbname), "MIGRATION_DIR": migdir, "LOCK_LEASE": f"{LEASE_MS}ms",
           "MAX_RETRIES": 3, "RETRY_INTERVAL": "200ms", "POD_NAME": "cut-runner"}
    t0 = time.monotonic()
    res = mi(["up"], env, timeout=HANG)
    elapsed = time.monotonic() - t0
    report(f"cut/{case}", res, elapsed)
    assert r.fired.is_set(), f"the cut never happened: {res!r}"
    if want_rc is None:
        assert res.returncode in (0, 4), res
    else:
        assert res.returncode == want_rc, res
    assert res.returncode in (0, 4, 7, 9), res
    assert elapsed < 20, f"a cut connection took {elapsed:.1f} s to end the run: {res!r}"
    assert_says(res, msg)
    assert res.logs[-1].get("exit_code") == res.returncode, res
    assert version_of(db) == after, res
    marks = {d["_id"] for d in db["marks"].find()}
    assert ("v2-a" in marks) == v2a, marks
    check_once(db)

    if after == (3, False):
        nxt = leftover_lock_run(db_url, migdir, db)
    else:
        nxt = later_run(db_url, migdir)
    assert nxt.returncode == later_rc, nxt
    check_once(db)
    assert lock_free(db)
    if later_rc == 8:
        assert DIRTY_MSG.format(2) in nxt.stderr, nxt
    else:
        assert complete(db)
        assert version_of(db) == (3, False)
        start = after[0] + 1 if after else 1  # after a clean version: the rest
        assert [x["version"] for x in applied_logs(nxt)] == list(range(start, 4)), nxt


# --------------------------------------------------------------------------
# (c) A slow database, and a hung one


def test_slow_database_succeeds_slower(relay, migdir, dbname, db):
    """Every reply 200 ms late: the run still succeeds, every migration once,
    and it took at least 200 ms per reply on its main connection."""
    write_set(migdir)
    r = relay()
    r.delay(0.2)
    t0 = time.monotonic()
    res = mi(["up"], {"DATABASE_URL": r.url(dbname), "MIGRATION_DIR": migdir}, timeout=HANG * 2)
    elapsed = time.monotonic() - t0
    assert res.returncode == 0, res
    assert complete(db) and version_of(db) == (3, False) and lock_free(db)
    main = max(r.conns, key=lambda c: c.replies)
    assert main.replies >= 10, [c.replies for c in r.conns]
    assert elapsed >= 0.2 * main.replies, (elapsed, main.replies)
    assert [x["version"] for x in applied_logs(res)] == [1, 2, 3], res


def test_slow_database_with_short_lease_keeps_the_lock(relay, migdir, dbname, db):
    """A renewal takes two 200 ms round trips; a 1 s lease (renewed every
    333 ms) must still hold through a slow run: no lock lost (9)."""
    write_set(migdir)
    r = relay()
    r.delay(0.2)
    res = mi(["up"], {"DATABASE_URL": r.url(dbname), "MIGRATION_DIR": migdir,
                      "LOCK_LEASE": "1s"}, timeout=HANG * 2)
    assert res.returncode == 0, res
    assert complete(db)


HANG_CASES = {
    # Only the connection that sent migration 2's first command stops getting
    # replies; socketTimeoutMS ends that command, the rest goes over a new
    # connection (the lock is released at once).
    "one-connection": (False, {"socketTimeoutMS": 2000}),
    # The whole server stops answering after that command: socketTimeoutMS
    # ends the command; new connections' handshakes are bounded by
    # connectTimeoutMS; the lock is left to expire after its lease.
    "whole-server": (True, {"socketTimeoutMS": 2000, "connectTimeoutMS": 2000}),
}


@pytest.mark.parametrize("case", list(HANG_CASES))
def test_hung_database_is_bounded_by_socket_timeout(case, relay, migdir, dbname, db, db_url):
    everywhere, query = HANG_CASES[case]
    write_set(migdir)
    r = relay()
    r.hang(is_insert("marks", "v2-a"), everywhere=everywhere)
    env = {"DATABASE_URL": r.url(dbname, **query), "MIGRATION_DIR": migdir,
           "LOCK_LEASE": f"{LEASE_MS}ms", "MAX_RETRIES": 2, "RETRY_INTERVAL": "200ms"}
    t0 = time.monotonic()
    res = mi(["up"], env, timeout=HANG)
    elapsed = time.monotonic() - t0
    report(f"hang/{case}", res, elapsed)
    assert r.fired.is_set(), res
    assert res.returncode in (4, 7, 9), res
    assert res.returncode == 7, res
    assert_says(res, "migration failed")
    # At least the socket timeout (the command really waited), at most a
    # bounded number of them.
    assert elapsed >= 1.9, (elapsed, res)
    assert elapsed < 20, f"a hung server kept the run {elapsed:.1f} s: {res!r}"
    r.close()  # the server "recovers"

    wait_for(lambda: db["marks"].find_one({"_id": "v2-a"}) is not None,
             "the hung insert to have been applied by the server", timeout=20)
    assert version_of(db) == (2, True)
    if not everywhere:
        assert lock_free(db), "the release over a fresh connection must have worked"
    nxt = later_run(db_url, migdir)
    assert nxt.returncode == 8, nxt
    check_once(db)
    assert lock_free(db)


def test_unanswered_handshake_is_bounded_by_connect_timeout(relay, migdir, dbname, db):
    """Nothing is ever answered: each connection attempt ends after
    connectTimeoutMS, MAX_RETRIES attempts, exit 4; nothing written."""
    write_set(migdir)
    r = relay()
    r.hang(lambda cmd: True, everywhere=True)
    r.hang_all = True  # from the very first byte, handshake included
    env = {"DATABASE_URL": r.url(dbname, connectTimeoutMS=1000), "MIGRATION_DIR": migdir,
           "MAX_RETRIES": 3, "RETRY_INTERVAL": "100ms", "RETRY_MAX_INTERVAL": "100ms"}
    t0 = time.monotonic()
    res = mi(["up"], env, timeout=HANG)
    elapsed = time.monotonic() - t0
    report("handshake", res, elapsed)
    assert res.returncode == 4, res
    assert elapsed < 20, (elapsed, res)
    waits = [x for x in res.logs if x.get("msg") == "database not ready"]
    assert len(waits) == 2, res
    assert all(NETWORKISH.search(str(x.get("error", ""))) for x in waits), res
    assert db.client[dbname].list_collection_names() == []
