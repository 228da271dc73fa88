"""The cluster-wide lock, end to end: real FerretDB, real golang-migrate CLI.

What is proved here (src/lock.h is the contract):
  * many runners started at once: every migration runs exactly once;
  * a holder killed mid-migration or between migrations: the next runner takes
    over only after the dead holder's lease ran out (server clock), then
    refuses a dirty database (8) or finishes the work (0);
  * a takeover revokes the expired holder's claim on the state first, and
    removes exactly the document it judged expired (a renewal that lands
    first keeps it; the revoked holder is still refused by the server);
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
    GM_BIN,
    MI_BIN,
    Result,
    applied_logs,
    check_mi_output,
    FENCE,
    clean_env,
    lock_free,
    mi_binary_problem,
    state,
    write_migrations,
    written_state,
)

LOCK = "migrate_advisory_lock"
HANG = 30  # seconds: hang guard for anything expected to happen much sooner
DIRTY_MSG = "Dirty database version {}. Fix and force version."
WAITING = "lock held by another runner; waiting"
TOOK_OVER = "took over an expired lock"
NO_CHANGE_WAITED = "no change: another runner applied the migrations while we waited for the lock"


# --------------------------------------------------------------------------
# Clocks


def dt_ms(dt):
    """Naive-UTC datetime (as pymongo returns BSON dates) -> epoch ms."""
    return calendar.timegm(dt.timetuple()) * 1000 + dt.microsecond // 1000


def log_ms(rec):
    """A migrate-init log record's time ("...T..:..:..mmmZ", CLOCK_REALTIME) -> epoch ms."""
    return dt_ms(datetime.datetime.strptime(rec["time"], "%Y-%m-%dT%H:%M:%S.%fZ"))


def server_ms(db):
    """The database server's clock (hello.localTime), the one leases are judged by."""
    return dt_ms(db.client.admin.command("hello")["localTime"])


def wait_for(pred, what, timeout=HANG, interval=0.01):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# Database helpers


def lock_doc(db):
    docs = list(db[LOCK].find({"locking_key": 0}))
    assert len(docs) <= 1, docs
    return docs[0] if docs else None


def counters(db):
    """{version: how many times its body ran}, from the $inc counter documents."""
    return {d["_id"]: d["n"] for d in db["counters"].find()}


def item_ids(db):
    return sorted(d["_id"] for d in db["items"].find())


def counted(v, extra=()):
    """A migration body that can run only once: it counts its runs with $inc
    and inserts a fixed _id (a second run fails with a duplicate key)."""
    return [
        {"update": "counters", "updates": [{"q": {"_id": v}, "u": {"$inc": {"n": 1}}, "upsert": True}]},
        {"insert": "items", "documents": [{"_id": v}]},
        *extra,
    ]


def counted_set(n, slow=None):
    """Migrations 1..n built with counted(); slow: {version: extra commands}."""
    files = {}
    for v in range(1, n + 1):
        files[f"{v}_m{v}.up.json"] = counted(v, (slow or {}).get(v, ()))
        files[f"{v}_m{v}.down.json"] = [{"delete": "items", "deletes": [{"q": {"_id": v}, "limit": 1}]}]
    return files


def bulk_inserts(coll, commands, docs):
    """`commands` insert commands of `docs` small documents each, as compact JSON."""
    one = json.dumps({"insert": coll, "documents": [{"i": i} for i in range(docs)]}, separators=(",", ":"))
    return [json.loads(one)] * commands if commands <= 50 else "[" + ",".join([one] * commands) + "]"


def settled_count(coll, pause=0.1):
    """Document count once it stops changing (a killed client's last command may still be running)."""
    last = coll.count_documents({})
    while True:
        time.sleep(pause)
        now = coll.count_documents({})
        if now == last:
            return now
        last = now


def settled_lock(db):
    """The lock document once a killed holder's last renewal (if in flight) has landed."""
    time.sleep(0.1)
    return lock_doc(db)


# --------------------------------------------------------------------------
# Processes whose logs we can watch while they run


class Proc:
    """A background run of migrate-init (json logs) or golang-migrate; stderr read as it comes."""

    def __init__(self, argv, env, is_mi):
        self.argv = [str(a) for a in argv]
        self.env = env
        self.is_mi = is_mi
        self.killed = False
        self.lines = []
        self.out = []
        self.cv = threading.Condition()
        self.p = subprocess.Popen(
            self.argv,
            env=clean_env(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.pid = self.p.pid
        self.readers = [
            threading.Thread(target=self._read, args=(self.p.stderr, self.lines), daemon=True),
            threading.Thread(target=self._read, args=(self.p.stdout, self.out), daemon=True),
        ]
        for t in self.readers:
            t.start()

    def _read(self, f, sink):
        for line in f:
            with self.cv:
                sink.append(line)
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def records(self):
        with self.cv:
            lines = list(self.lines)
        out = []
        for l in lines:
            try:
                out.append(json.loads(l))
            except ValueError:
                pass
        return out

    def stderr(self):
        with self.cv:
            return "".join(self.lines)

    def find(self, msg):
        return [r for r in self.records() if r.get("msg") == msg]

    def wait_log(self, msg, timeout=HANG):
        """The first log record with this msg; fails if the process exits without it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(msg)
            if found:
                return found[0]
            if self.p.poll() is not None:
                for t in self.readers:
                    t.join(5)
                found = self.find(msg)
                if found:
                    return found[0]
                pytest.fail(f"{self.argv[0]} exited {self.p.returncode} without logging {msg!r}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {msg!r} from {self.argv[0]} within {timeout}s:\n{self.stderr()}")
            with self.cv:
                self.cv.wait(0.05)

    def kill(self, sig=signal.SIGKILL):
        if sig == signal.SIGKILL:
            self.killed = True
        self.p.send_signal(sig)

    def finish(self, timeout=HANG):
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            pytest.fail(f"{self.argv} did not exit within {timeout}s:\n{self.stderr()}")
        for t in self.readers:
            t.join(10)
        res = Result(self.argv, self.p.returncode, "".join(self.out), "".join(self.lines))
        if self.is_mi and not self.killed:
            check_mi_output(res, self.env)
        return res


@pytest.fixture
def procs():
    """spawn_mi / spawn_gm; anything still running at the end is killed (by pid)."""
    started = []

    class Spawner:
        @staticmethod
        def mi(migdir, url, *args, **env):
            problem = mi_binary_problem()
            if problem:
                pytest.fail(problem, pytrace=False)
            p = Proc([MI_BIN, "-path", migdir, "-database", url, *args], env, True)
            started.append(p)
            return p

        @staticmethod
        def gm(migdir, url, *args):
            if not GM_BIN.exists():
                pytest.fail(f"golang-migrate CLI not found at {GM_BIN}: run scripts/deps.sh", pytrace=False)
            p = Proc([GM_BIN, "-path", migdir, "-database", url, *args], None, False)
            started.append(p)
            return p

    yield Spawner
    for p in started:
        if p.p.poll() is None:
            p.p.kill()
            p.p.wait()


# --------------------------------------------------------------------------
# A pausing relay in front of the real FerretDB.
#
# Not a mock: every byte goes to FerretDB and back unchanged. h = hold(rule)
# holds the first client command for which rule(conn, cmd) is true (cmd: the
# OP_MSG body with its document sequences merged in, plus "_name" and
# "_coll") until h.resume() forwards it, or h.drop() discards it and closes
# that connection (what a SIGKILLed client's unsent command amounts to).
# Several holds can be pending at once. cut() closes every connection and
# refuses new ones (the database is gone for whoever uses the relay);
# cut(keep=h) spares the connection of h's held command.


class Conn:
    _ids = iter(range(1, 1 << 30))

    def __init__(self, client, upstream):
        self.id = next(Conn._ids)
        self.c = client
        self.u = upstream
        self.closed = False
        self.sent = 0  # client commands seen so far

    def close(self):
        self.closed = True
        for s in (self.c, self.u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class Hold:
    def __init__(self, rule):
        self.rule = rule
        self.held = threading.Event()
        self.gate = threading.Event()
        self.dropping = False
        self.cmd = None
        self.conn = None
        self.seq = 0

    def wait(self, proc, timeout=HANG):
        """Until proc's command is held; fails if proc ends first."""
        deadline = time.monotonic() + timeout
        while not self.held.wait(0.05):
            if proc.p.poll() is not None:
                pytest.fail(f"the run ended ({proc.p.returncode}) before reaching the held command:\n{proc.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the run never reached the held command:\n{proc.stderr()}")
        return self.cmd

    def resume(self):
        self.gate.set()

    def drop(self):
        self.dropping = True
        self.gate.set()

    def wait_answered(self, proc, timeout=HANG):
        """After resume(): until the client sent its next command on that
        connection (so it has the reply to the held one), or ended."""
        wait_for(
            lambda: self.conn.sent > self.seq or self.conn.closed or proc.p.poll() is not None,
            "the client to get the reply to the released command",
            timeout,
        )


class PauseRelay:
    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.mu = threading.Lock()
        self.conns = set()
        self.holds = []
        self.refusing = False
        self.closed = False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, dbname, **query):
        u = f"mongodb://127.0.0.1:{self.port}/{dbname}"
        if query:
            u += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return u

    # -- control

    def hold(self, rule):
        h = Hold(rule)
        with self.mu:
            self.holds.append(h)
        return h

    def cut(self, keep=None):
        with self.mu:
            self.refusing = True
            victims = [c for c in self.conns if keep is None or c is not keep.conn]
            holds = [h for h in self.holds if h is not keep]
        for h in holds:
            h.drop()
        for c in victims:
            c.close()

    def close(self):
        self.closed = True
        with self.mu:
            holds = list(self.holds)
            conns = list(self.conns)
        for h in holds:
            h.drop()
        try:
            self.sock.close()
        except OSError:
            pass
        for c in conns:
            c.close()

    # -- plumbing

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.refusing:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                c.close()
                continue
            conn = Conn(c, u)
            with self.mu:
                self.conns.add(conn)
            threading.Thread(target=self._to_server, args=(conn,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(conn,), daemon=True).start()

    def _to_client(self, conn):
        try:
            while True:
                data = conn.u.recv(65536)
                if not data:
                    break
                conn.c.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()

    def _to_server(self, conn):
        buf = b""
        try:
            while True:
                data = conn.c.recv(65536)
                if not data:
                    break
                buf += data
                while len(buf) >= 4 and len(buf) >= struct.unpack("<i", buf[:4])[0]:
                    n = struct.unpack("<i", buf[:4])[0]
                    msg, buf = buf[:n], buf[n:]
                    h = self._should_hold(conn, msg)
                    conn.sent += 1
                    if h:
                        h.gate.wait(120)
                        if h.dropping or conn.closed:
                            return
                    conn.u.sendall(msg)
        except OSError:
            pass
        finally:
            conn.close()
            with self.mu:
                self.conns.discard(conn)

    def _should_hold(self, conn, msg):
        with self.mu:
            pending = [h for h in self.holds if not h.held.is_set()]
        if not pending:
            return None
        cmd = decode_op_msg(msg)
        if cmd is None:
            return None
        with self.mu:
            for h in self.holds:
                if not h.held.is_set() and h.rule(conn, cmd):
                    h.cmd, h.conn, h.seq = cmd, conn, conn.sent + 1
                    h.held.set()
                    return h
        return None


def decode_op_msg(msg):
    """An OP_MSG's body with its kind-1 sequences merged in, plus _name and _coll; else None."""
    if struct.unpack("<i", msg[12:16])[0] != 2013:
        return None
    flags = struct.unpack("<I", msg[16:20])[0]
    end = len(msg) - (4 if flags & 1 else 0)
    pos, body, seqs = 20, None, {}
    opts = CodecOptions()
    while pos < end:
        kind = msg[pos]
        pos += 1
        if kind == 0:
            n = struct.unpack("<i", msg[pos : pos + 4])[0]
            body = bson.decode(msg[pos : pos + n], opts)
            pos += n
        elif kind == 1:
            size = struct.unpack("<i", msg[pos : pos + 4])[0]
            sec_end = pos + size
            z = msg.index(b"\0", pos + 4)
            ident = msg[pos + 4 : z].decode()
            p, docs = z + 1, []
            while p < sec_end:
                n = struct.unpack("<i", msg[p : p + 4])[0]
                docs.append(bson.decode(msg[p : p + n], opts))
                p += n
            seqs[ident] = docs
            pos = sec_end
        else:
            return None
    if not body:
        return None
    cmd = dict(body)
    cmd.update(seqs)
    name = next(iter(body))
    cmd["_name"] = name
    cmd["_coll"] = body[name] if isinstance(body[name], str) else None
    return cmd


# Rules for PauseRelay.hold


def on_command(name, coll):
    return lambda conn, cmd: cmd["_name"] == name and cmd["_coll"] == coll


def _is_version_write(cmd, version, dirty):
    if cmd["_name"] != "update" or cmd["_coll"] != "schema_migrations":
        return False
    return any(written_state(u) == (version, dirty) for u in cmd.get("updates", []))


def on_version_write(version, dirty):
    """migrate-init's write of {version, dirty} itself."""
    return lambda conn, cmd: _is_version_write(cmd, version, dirty)


def after_version_write(version, dirty):
    """The next command on the connection that wrote {version, dirty}: that write is
    done (its reply came back), and the next migration has not begun."""
    marked = set()

    def rule(conn, cmd):
        if conn.id in marked:
            return True
        if _is_version_write(cmd, version, dirty):
            marked.add(conn.id)
        return False

    return rule


@pytest.fixture
def relays(ferretdb):
    made = []

    def make():
        r = PauseRelay(ferretdb)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# --------------------------------------------------------------------------
# Assertions on runs


def msgs(res):
    return [r.get("msg") for r in res.logs]


def one_log(res, msg):
    found = [r for r in res.logs if r.get("msg") == msg]
    assert len(found) == 1, f"expected one {msg!r} record:\n{res!r}"
    return found[0]


def applied_versions(res):
    return [r["version"] for r in applied_logs(res, "up")]


def assert_took_over_after_expiry(res, expires_at_ms, db):
    """The takeover happened after the dead holder's lease ran out (server clock),
    and the runner had waited for it first. The log's time is this host's
    CLOCK_REALTIME, FerretDB's clock is this host's too: checked, not assumed."""
    before = time.time() * 1000
    server = server_ms(db)
    after = time.time() * 1000
    assert before - 5 <= server <= after + 5, "FerretDB's clock is not this host's"
    m = msgs(res)
    assert WAITING in m, f"the runner did not wait for the holder's lease:\n{res!r}"
    assert TOOK_OVER in m and m.index(WAITING) < m.index(TOOK_OVER), res
    took = one_log(res, TOOK_OVER)
    assert log_ms(took) >= expires_at_ms, (
        f"took over at {took['time']}, before the holder's lease ran out at "
        f"{datetime.datetime.utcfromtimestamp(expires_at_ms / 1000).isoformat()}Z:\n{res!r}"
    )
    return took


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


def test_takeover_revokes_first_and_a_late_renewal_keeps_the_document(procs, relays, dbname, db, migdir):
    """The holder's renewal is delayed past its lease; a waiter sees the lease
    expired, revokes the holder's claim on the state, and sends its removal
    of the lock document; the renewal lands first. The removal must then fail
    (it names the renewal it saw), so the lock document never has two owners,
    and the waiter keeps waiting. The holder, revoked, must not write the
    state again: its next version write is refused by the server (9), and
    then the waiter takes the lock and does the work, each migration once."""
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
    # The revocation came first: no state write of the holder can land now.
    assert db["schema_migrations"].find_one()[FENCE] == "revoked"

    beat.resume()
    wait_for(lambda: (d := lock_doc(db)) and d["renewed_at"] > seen["renewed_at"], "the late renewal to land")
    grab.resume()
    grab.wait_answered(waiter)
    now = lock_doc(db)
    assert now is not None and now["token"] == seen["token"] and now["owner"] == "slow-renewer", f"the waiter removed a renewed lock: {now}"
    assert waiter.p.poll() is None and TOOK_OVER not in [r.get("msg") for r in waiter.records()], waiter.stderr()

    main.resume()
    res1 = holder.finish()
    assert res1.returncode == 9, res1
    assert applied_versions(res1) == [1]
    res2 = waiter.finish()
    assert res2.returncode == 0, res2
    assert TOOK_OVER not in msgs(res2), res2
    assert applied_versions(res2) == [2]
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
