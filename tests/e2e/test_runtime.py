"""Init-container runtime, end to end against real FerretDB servers.

Waiting for the database (backoff, deadline), unreachable databases, wrong
passwords and wrong CAs (permanent: not retried), SIGTERM/SIGINT during a
migration (grace period, abort path), the Kubernetes termination message,
configuration errors, where the URL and the migrations come from, logging,
and one test at least for every exit code this part owns:
0, 2, 3, 4, 5, 7, 8, 128+n.

Every run gets TERMINATION_MESSAGE_PATH in its own tmp dir, so nothing is
written to /dev/termination-log. Timeouts are hang guards only.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pymongo
import pytest

from conftest import (
    CANARY_PASSWORD,
    MI_BIN,
    clean_env,
    finish,
    free_port,
    items,
    lock_free,
    popen_mi,
    run_mi,
    user_collections,
    version_of,
    write_migrations,
    write_standard,
)

HANG_GUARD = 20  # seconds; a run that takes longer than this is hung


@pytest.fixture
def term_path(tmp_path):
    return tmp_path / "termination-log"


def env_with(term_path, **kw):
    env = {"TERMINATION_MESSAGE_PATH": str(term_path)}
    env.update({k: str(v) for k, v in kw.items()})
    return env


def termination(term_path):
    assert term_path.exists(), f"no termination message written at {term_path}"
    data = term_path.read_bytes()
    assert CANARY_PASSWORD.encode() not in data, f"canary password in the termination message: {data!r}"
    return data.decode("utf-8")


def records(res, msg=None, level=None):
    out = []
    for rec in res.logs:
        if msg is not None and rec.get("msg") != msg:
            continue
        if level is not None and str(rec.get("level", "")).upper() != level:
            continue
        out.append(rec)
    return out


def not_ready(res):
    return records(res, msg="database not ready")


def assert_no_leak(res, term_path, *secrets):
    for s in (CANARY_PASSWORD,) + secrets:
        assert s not in res.stdout, f"secret {s!r} on stdout: {res!r}"
        assert s not in res.stderr, f"secret {s!r} on stderr: {res!r}"
        if term_path.exists():
            assert s.encode() not in term_path.read_bytes(), f"secret {s!r} in the termination message"


def mongo_at(port):
    return pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=5000, connectTimeoutMS=5000
    )


# --------------------------------------------------------------------------
# 1. Waiting for a database that is not up yet


def test_waits_for_database_started_later(migdir, dbname, term_path, ferretdb_factory):
    """Nothing listens at first; FerretDB comes up on that port 5 s later: the
    run keeps retrying with backoff, then applies everything and exits 0."""
    write_standard(migdir)
    port = free_port()
    env = env_with(
        term_path,
        DATABASE_URL=f"mongodb://127.0.0.1:{port}/{dbname}",
        RETRY_INTERVAL="200ms",
        RETRY_MAX_INTERVAL="1s",
        MAX_RETRIES=60,
    )
    p = popen_mi(["-path", migdir], env=env)
    try:
        time.sleep(5)  # setup delay: the database is "not scheduled yet"
        assert p.poll() is None, f"migrate-init gave up before the database came up: {finish(p)!r}"
        started = ferretdb_factory(port=port)
        assert started == port
    except BaseException:
        p.kill()
        p.communicate()
        raise
    res = finish(p, timeout=90, check_mi=True)
    assert res.returncode == 0, res

    waits = not_ready(res)
    assert waits, f"no 'database not ready' warnings while the database was down: {res!r}"
    for rec in waits:
        assert str(rec["level"]).upper() == "WARN", rec
        for field in ("attempt", "max_attempts", "delay_ms", "error"):
            assert field in rec, f"'database not ready' lacks {field!r}: {rec}"
        assert rec["max_attempts"] == 60, rec
        assert isinstance(rec["attempt"], int) and 1 <= rec["attempt"] < 60, rec
        assert isinstance(rec["delay_ms"], int) and 0 <= rec["delay_ms"] <= 1000, rec
        assert isinstance(rec["error"], str) and rec["error"], rec
    attempts = [r["attempt"] for r in waits]
    assert attempts == list(range(1, len(attempts) + 1)), attempts

    with mongo_at(port) as c:
        assert version_of(c[dbname]) == (4, False)
        assert items(c[dbname]) == [1, 2, 3, 4]
        assert lock_free(c[dbname])
    assert "exit 0" in termination(term_path)


# --------------------------------------------------------------------------
# 2. Unreachable database


@pytest.mark.parametrize(
    "knobs",
    [
        {"MAX_RETRIES": 3, "RETRY_INTERVAL": "100ms"},
        {"MAX_RETRIES": 1000, "RETRY_INTERVAL": "100ms", "WAIT_TIMEOUT": "1s"},
    ],
    ids=["max-retries", "wait-timeout"],
)
def test_unreachable_database_exits_4(migdir, dbname, term_path, knobs):
    write_standard(migdir)
    port = free_port()
    env = env_with(term_path, DATABASE_URL=f"mongodb://127.0.0.1:{port}/{dbname}", **knobs)
    t0 = time.monotonic()
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    elapsed = time.monotonic() - t0
    assert res.returncode == 4, res
    assert elapsed < HANG_GUARD, elapsed
    waits = not_ready(res)
    if "WAIT_TIMEOUT" in knobs:
        # The deadline ended it, not the attempts, and not before the deadline.
        assert elapsed >= 0.9, (elapsed, res)
        assert waits and max(r["attempt"] for r in waits) < 1000, res
    else:
        # MAX_RETRIES attempts: all but the last are followed by a wait.
        assert [r["attempt"] for r in waits] == [1, 2], res
        assert all(r["max_attempts"] == 3 for r in waits), res
    last = res.logs[-1]
    assert last["msg"] == "run finished" and last["exit_code"] == 4, res
    msg = termination(term_path)
    assert "exit 4" in msg, msg


def test_wait_timeout_bounds_an_attempt_that_hangs(migdir, dbname, term_path):
    """A server that fails fast for a second (accepts and closes), then
    accepts and never answers: the attempt that starts near the end of
    WAIT_TIMEOUT would wait out a whole connect timeout. It may only have
    what is left of WAIT_TIMEOUT."""
    write_standard(migdir)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    held = []
    stop = threading.Event()

    started = time.monotonic()

    def accept():
        silent.settimeout(0.05)
        while not stop.is_set():
            try:
                c = silent.accept()[0]
            except OSError:
                continue
            if time.monotonic() - started < 1.0:
                c.close()
            else:
                held.append(c)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        port = silent.getsockname()[1]
        env = env_with(term_path, DATABASE_URL=f"mongodb://127.0.0.1:{port}/{dbname}", MAX_RETRIES=1000,
                       RETRY_INTERVAL="100ms", WAIT_TIMEOUT="1500ms")
        t0 = time.monotonic()
        res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
        elapsed = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        silent.close()
    assert res.returncode == 4, res
    assert held, "no attempt reached the silent phase"
    # 1.5 s, plus the last attempt's own rounding; without the bound the
    # last attempt alone could take 1.5 s from about 1.1 s. Measured by the
    # run itself ("run finished"), not by the wall: under TSan the process
    # then sleeps a second at exit (atexit_sleep_ms) while a thread lives.
    took = res.logs[-1]["duration_ms"] / 1000
    assert res.logs[-1]["msg"] == "run finished", res
    assert 1.4 <= took < 2.1, (took, res)
    assert elapsed >= took, (elapsed, took)


def test_every_attempt_really_reaches_for_the_database(migdir, dbname, term_path):
    """Each counted attempt must be a real connection attempt: with nothing
    listening, every one of them fails with "connection refused", not with a
    client-side "not yet eligible for rescan" that never left the process
    (libmongoc's single-threaded client skips servers it checked less than
    500 ms ago; MAX_RETRIES=4 with 100 ms delays would then make one real
    attempt instead of four)."""
    write_standard(migdir)
    port = free_port()
    env = env_with(
        term_path,
        DATABASE_URL=f"mongodb://127.0.0.1:{port}/{dbname}",
        MAX_RETRIES=4,
        RETRY_INTERVAL="100ms",
        RETRY_MAX_INTERVAL="100ms",
    )
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert res.returncode == 4, res
    errors = [r["error"] for r in res.logs if "error" in r and r.get("msg") != "run finished"]
    assert len(errors) == 4, res
    fake = [e for e in errors if "refused" not in e.lower()]
    assert not fake, f"attempts that did not try to connect: {fake}\n{res!r}"


# --------------------------------------------------------------------------
# 3. Authentication


def test_right_password_succeeds_without_leaking(migdir, ferretdb_auth, dbname, term_path):
    write_standard(migdir)
    env = env_with(term_path, DATABASE_URL=ferretdb_auth.url(dbname))
    res = run_mi(["-verbose", "-path", migdir], env=env, timeout=HANG_GUARD)
    assert res.returncode == 0, res
    assert not not_ready(res), res
    assert_no_leak(res, term_path)
    assert "exit 0" in termination(term_path)
    with ferretdb_auth.client() as c:
        assert version_of(c[dbname]) == (4, False)
        assert items(c[dbname]) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "password",
    ["not-the-password", CANARY_PASSWORD + "-but-longer", "x" + CANARY_PASSWORD],
    ids=["wrong", "canary-prefix", "canary-inside"],
)
@pytest.mark.parametrize("via", ["DATABASE_URL", "DATABASE_URL_FILE", "-database"])
def test_wrong_password_exits_5_after_one_attempt(
    migdir, ferretdb_auth, dbname, term_path, tmp_path, password, via
):
    write_standard(migdir)
    url = ferretdb_auth.url(dbname, password=password)
    # Retries would be cheap and many if it wrongly retried.
    env = env_with(term_path, MAX_RETRIES=5, RETRY_INTERVAL="100ms")
    args = ["-path", migdir]
    if via == "DATABASE_URL":
        env["DATABASE_URL"] = url
    elif via == "DATABASE_URL_FILE":
        f = tmp_path / "url"
        f.write_text(url + "\n")
        env["DATABASE_URL_FILE"] = str(f)
    else:
        args = ["-database", url] + args
    res = run_mi(args, env=env, timeout=HANG_GUARD)
    assert res.returncode == 5, res
    assert not not_ready(res), f"an authentication failure was retried: {res!r}"
    assert_no_leak(res, term_path, password)
    msg = termination(term_path)
    assert "exit 5" in msg, msg
    assert password not in msg, msg
    with ferretdb_auth.client() as c:
        assert user_collections(c[dbname]) == []


def test_url_file_with_password_and_trailing_newline(migdir, ferretdb_auth, dbname, term_path, tmp_path):
    write_standard(migdir)
    f = tmp_path / "database-url"
    f.write_text(ferretdb_auth.url(dbname) + "\n")
    env = env_with(term_path, DATABASE_URL_FILE=f)
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert res.returncode == 0, res
    assert_no_leak(res, term_path)
    assert "exit 0" in termination(term_path)
    with ferretdb_auth.client() as c:
        assert version_of(c[dbname]) == (4, False)


# --------------------------------------------------------------------------
# 4. TLS


def test_tls_with_right_ca(migdir, ferretdb_tls, dbname, term_path):
    write_standard(migdir)
    env = env_with(term_path, DATABASE_URL=ferretdb_tls.url(dbname))
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert res.returncode == 0, res
    with mongo_at(ferretdb_tls.port) as c:
        assert version_of(c[dbname]) == (4, False)
        assert items(c[dbname]) == [1, 2, 3, 4]


def test_tls_with_wrong_ca_exits_5_without_retries(migdir, ferretdb_tls, dbname, term_path):
    write_standard(migdir)
    env = env_with(
        term_path,
        DATABASE_URL=ferretdb_tls.url(dbname, ca=ferretdb_tls.certs.other_ca),
        MAX_RETRIES=5,
        RETRY_INTERVAL="100ms",
    )
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert res.returncode == 5, res
    assert not not_ready(res), f"a TLS failure was retried: {res!r}"
    assert "exit 5" in termination(term_path)
    with mongo_at(ferretdb_tls.port) as c:
        assert user_collections(c[dbname]) == []


# --------------------------------------------------------------------------
# 5. SIGTERM / SIGINT during a slow migration
#
# Migration 1: 200 inserts of 1000 small documents (about 2 s on FerretDB/SQLite);
# migration 2: one insert. A relay in front of the real FerretDB holds the
# first insert of migration 1, so the signal lands while migration 1 is
# running, deterministically; then (graceful case) lets it go on.

SLOW_BATCHES = 200


def write_slow(migdir):
    slow = [{"create": "bulk"}] + [
        {"insert": "bulk", "documents": [{"b": b, "i": i} for i in range(1000)]}
        for b in range(SLOW_BATCHES)
    ]
    write_migrations(
        migdir,
        {
            "1_slow.up.json": json.dumps(slow),
            "1_slow.down.json": [{"drop": "bulk"}],
            "2_quick.up.json": [{"insert": "quick", "documents": [{"_id": 1}]}],
            "2_quick.down.json": [{"drop": "quick"}],
        },
    )


def start_slow_run(migdir, db, dbname, relay_factory, term_path, **extra_env):
    write_slow(migdir)
    relay = relay_factory(stall_insert_into="bulk")
    env = env_with(term_path, DATABASE_URL=relay.url(dbname), **extra_env)
    p = popen_mi(["-path", migdir], env=env)
    if not relay.stalled.wait(HANG_GUARD):
        relay.release.set()
        pytest.fail(f"migration 1 never started: {finish(p)!r}")
    # Migration 1 is running: recorded dirty, lock held.
    assert version_of(db) == (1, True)
    assert not lock_free(db)
    return p, relay


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_lets_running_migration_finish(migdir, db, dbname, relay_factory, term_path, sig):
    """Default grace period: migration 1 completes and is recorded clean,
    migration 2 does not start, the lock is released, exit 128+n."""
    p, relay = start_slow_run(migdir, db, dbname, relay_factory, term_path)
    p.send_signal(sig)
    relay.release.set()
    res = finish(p, timeout=60, check_mi=True)
    assert res.returncode == 128 + sig, res
    assert version_of(db) == (1, False), res
    # All of migration 1 ran (collStats: counting 200000 documents is slow on FerretDB).
    assert db.command("collStats", "bulk")["count"] == SLOW_BATCHES * 1000
    assert "quick" not in user_collections(db), res
    assert lock_free(db), res
    last = res.logs[-1]
    assert last["msg"] == "run finished" and last["exit_code"] == 128 + sig, res
    msg = termination(term_path)
    assert f"exit {128 + sig}" in msg, msg


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_after_grace_period_aborts(migdir, db, dbname, relay_factory, term_path, sig):
    """STOP_GRACE_PERIOD=300ms with migration 1 still running: exit 128+n,
    the state says version 1 dirty, the abort path released the lock, and the
    termination message says which signal stopped it and that it is dirty."""
    p, relay = start_slow_run(migdir, db, dbname, relay_factory, term_path, STOP_GRACE_PERIOD="300ms")
    p.send_signal(sig)
    # Migration 1 stays held at the relay: it is still running when the grace period ends.
    try:
        res = finish(p, timeout=HANG_GUARD, check_mi=True)
    finally:
        relay.close()
        remove_shm_counters(p.pid)  # see test_abort_leaves_no_shared_memory_behind
    assert res.returncode == 128 + sig, res
    assert version_of(db) == (1, True), res
    assert "quick" not in user_collections(db), res
    assert lock_free(db), f"the abort path left the lock: {list(db['migrate_advisory_lock'].find())}"
    msg = termination(term_path)
    assert f"signal {int(sig)}" in msg, msg
    assert "dirty" in msg, msg
    assert f"exit {128 + sig}" in msg, msg


class Silent:
    """A listener that accepts connections and never answers: a blackholed
    server as a client sees it (the handshake waits for connectTimeoutMS)."""

    def __init__(self):
        import socket
        import threading

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = threading.Event()
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            self.accepted.set()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_while_connecting_stops_at_once(migdir, term_path, sig):
    """No migration is running, so there is nothing to let finish: a stop
    while the connection attempt hangs (connectTimeoutMS is 10 s) ends the
    run at once, not when the attempt gives up, with the signal's code and
    a termination message."""
    write_standard(migdir)
    silent = Silent()
    try:
        env = env_with(term_path, DATABASE_URL=f"mongodb://127.0.0.1:{silent.port}/db")
        p = popen_mi(["-path", migdir], env=env)
        assert silent.accepted.wait(HANG_GUARD), "never connected"
        time.sleep(0.2)  # inside the handshake now, waiting for a reply
        t0 = time.monotonic()
        p.send_signal(sig)
        res = finish(p, timeout=HANG_GUARD, check_mi=True)
        took = time.monotonic() - t0
    finally:
        silent.close()
    assert res.returncode == 128 + sig, res
    assert took < 2, f"the stop took {took:.1f} s"
    msg = termination(term_path)
    assert f"signal {int(sig)}" in msg and "no migration was running" in msg, msg


def test_tls_against_a_plain_listener_says_so(migdir, ferretdb, dbname, term_path):
    """A TLS client sees a plain listener only as a timeout (the server waits
    for the rest of the "message" the TLS hello seemed to announce): that is
    exit 4, like a hung server, with a hint in the log."""
    write_standard(migdir)
    env = env_with(term_path, DATABASE_URL=f"mongodb://127.0.0.1:{ferretdb}/{dbname}?tls=true&connectTimeoutMS=500",
                   MAX_RETRIES=2, RETRY_INTERVAL="50ms")
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert res.returncode == 4, res
    gave_up = records(res, msg="database unreachable: giving up")
    assert gave_up and "does not speak TLS" in gave_up[0]["hint"], res


def shm_counters(pid):
    """libmongoc's shared-memory counters of process pid (shm_open("/mongoc-PID"))."""
    return f"/dev/shm/mongoc-{pid}"


def remove_shm_counters(pid):
    try:
        os.unlink(shm_counters(pid))
    except FileNotFoundError:
        pass


def test_abort_leaves_no_shared_memory_behind(migdir, db, dbname, relay_factory, term_path):
    """The abort path exits without mongoc_cleanup(); libmongoc's counters
    segment /dev/shm/mongoc-PID must not be left behind: a later process that
    gets the same PID finds it, and libmongoc then prints a plain-text
    "Falling back to malloc for counters." warning (see the next test)."""
    p, relay = start_slow_run(migdir, db, dbname, relay_factory, term_path, STOP_GRACE_PERIOD="300ms")
    p.send_signal(signal.SIGTERM)
    try:
        res = finish(p, timeout=HANG_GUARD, check_mi=True)
        assert res.returncode == 143, res
        assert not os.path.exists(shm_counters(p.pid)), f"left behind: {shm_counters(p.pid)}"
    finally:
        relay.close()
        remove_shm_counters(p.pid)


def test_sigkill_leaves_no_shared_memory_behind(migdir, db, dbname, relay_factory, term_path):
    """Debian's libmongoc creates /dev/shm/mongoc-PID in its load-time
    constructor, before main(); a file left by a killed run makes the next
    process with that PID (PID 1 in every container) print a plain-text
    warning we cannot capture. migrate-init unlinks the file at start, so
    even SIGKILL leaves nothing behind."""
    p, relay = start_slow_run(migdir, db, dbname, relay_factory, term_path)
    try:
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=HANG_GUARD)
        assert p.returncode == -signal.SIGKILL
        assert not os.path.exists(shm_counters(p.pid)), f"left behind: {shm_counters(p.pid)}"
    finally:
        relay.close()
        remove_shm_counters(p.pid)


# --------------------------------------------------------------------------
# 6. Termination message


def test_termination_message_after_success(migdir, db_url, db, term_path):
    write_standard(migdir)
    res = run_mi(["-path", migdir, "up"], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 0, res
    msg = termination(term_path)
    assert "up" in msg.split(":")[0], msg  # the command
    assert "success" in msg, msg
    assert "exit 0" in msg, msg
    assert "version 4" in msg, msg
    assert len(term_path.read_bytes()) <= 4096


def test_termination_message_after_failed_migration(migdir, db_url, db, term_path):
    write_standard(migdir, {"003_third.up.json": [{"insert": "items", "documents": [{"_id": 1}]}]})
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 7, res
    assert version_of(db) == (3, True)
    msg = termination(term_path)
    assert "exit 7" in msg, msg
    assert "003_third.up.json" in msg, msg  # the file
    assert "insert" in msg, msg  # the command
    assert "dirty" in msg, msg
    last = res.logs[-1]
    assert last["msg"] == "run finished" and last["exit_code"] == 7, res
    assert str(last["level"]).upper() == "ERROR", last


def test_termination_message_is_capped(migdir, db_url, db, term_path):
    """A huge error (a 20000-character command name, echoed back by the
    server and in our log) still gives at most 4096 bytes, exit 7 named."""
    huge = "noSuchCommand" + "x" * 20000
    write_migrations(migdir, {"1_huge.up.json": [{huge: 1}]})
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 7, res
    data = term_path.read_bytes()
    assert 0 < len(data) <= 4096, len(data)
    data.decode("utf-8")  # cut at a character boundary
    assert b"exit 7" in data, data[:300]


@pytest.mark.parametrize("where", ["missing-dir", "parent-is-a-file", "proc-file", "dev-full"])
def test_unwritable_termination_path_is_not_an_error(migdir, db_url, db, tmp_path, where):
    f = tmp_path / "plain-file"
    f.write_text("x")
    path = {
        "missing-dir": tmp_path / "no" / "such" / "dir" / "termination-log",
        "parent-is-a-file": f / "termination-log",
        "proc-file": "/proc/version",
        "dev-full": "/dev/full",
    }[where]
    write_standard(migdir)
    res = run_mi(["-path", migdir], env={"DATABASE_URL": db_url, "TERMINATION_MESSAGE_PATH": path})
    assert res.returncode == 0, res
    assert version_of(db) == (4, False)


# --------------------------------------------------------------------------
# 7. Configuration errors: exit 2, name the variable (or option) and the
# value, touch nothing.


CONFIG_ERRORS = [
    # (id, env, words that must appear in the error output; values as JSON strings)
    ("MAX_RETRIES=abc", {"MAX_RETRIES": "abc"}, ["MAX_RETRIES", '"abc"']),
    ("MAX_RETRIES=-1", {"MAX_RETRIES": "-1"}, ["MAX_RETRIES", '"-1"']),
    ("MAX_RETRIES=1e99", {"MAX_RETRIES": "1e99"}, ["MAX_RETRIES", '"1e99"']),
    ("MAX_RETRIES=0", {"MAX_RETRIES": "0"}, ["MAX_RETRIES", '"0"']),
    ("RETRY_INTERVAL=0", {"RETRY_INTERVAL": "0"}, ["RETRY_INTERVAL", '"0"']),
    ("RETRY_INTERVAL=garbage", {"RETRY_INTERVAL": "garbage"}, ["RETRY_INTERVAL", '"garbage"']),
    ("TARGET_VERSION=x", {"TARGET_VERSION": "x"}, ["TARGET_VERSION", '"x"']),
    ("LOG_FORMAT=xml", {"LOG_FORMAT": "xml"}, ["LOG_FORMAT", '"xml"']),
    ("LOG_LEVEL=loud", {"LOG_LEVEL": "loud"}, ["LOG_LEVEL", '"loud"']),
]


def _error_text(res):
    """The error output, without the closing summary line."""
    return "\n".join(l for l in res.stderr.splitlines() if '"run finished"' not in l)


def assert_usage_error(res, db, words, nocase=()):
    assert res.returncode == 2, res
    text = _error_text(res)
    for w in words:
        assert w in text, f"the error does not name {w!r}: {res!r}"
    for w in nocase:
        assert w.lower() in text.lower(), f"the error does not name {w!r}: {res!r}"
    assert user_collections(db) == [], "a configuration error touched the database"


@pytest.mark.parametrize("bad_env,words", [c[1:] for c in CONFIG_ERRORS], ids=[c[0] for c in CONFIG_ERRORS])
def test_bad_setting_exits_2(migdir, db_url, db, term_path, bad_env, words):
    write_standard(migdir)
    env = env_with(term_path, DATABASE_URL=db_url, **bad_env)
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert_usage_error(res, db, words)


def test_url_and_url_file_both_set(migdir, db_url, db, term_path, tmp_path):
    write_standard(migdir)
    f = tmp_path / "url"
    f.write_text(db_url + "\n")
    env = env_with(term_path, DATABASE_URL=db_url, DATABASE_URL_FILE=f)
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert_usage_error(res, db, ["DATABASE_URL", "DATABASE_URL_FILE"])


def test_url_file_missing(migdir, db, term_path, tmp_path):
    write_standard(migdir)
    missing = tmp_path / "no-such-secret"
    env = env_with(term_path, DATABASE_URL_FILE=missing)
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert_usage_error(res, db, ["DATABASE_URL_FILE", str(missing)])


def test_unknown_url_option(migdir, db_url, db, term_path):
    write_standard(migdir)
    env = env_with(term_path, DATABASE_URL=db_url + "?tlsCAfle=x")
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert_usage_error(res, db, [], nocase=["tlsCAfle"])


def test_unsupported_scheme(migdir, db, dbname, ferretdb, term_path):
    write_standard(migdir)
    env = env_with(
        term_path, DATABASE_URL=f"postgres://migrator:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/{dbname}"
    )
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert_usage_error(res, db, ["DATABASE_URL", "postgres"])
    termination(term_path)  # no canary there either


@pytest.mark.parametrize("tail", ["", "/", "/?appname=x"], ids=["no-slash", "slash", "options-only"])
def test_url_without_database_name(migdir, db, ferretdb, term_path, tail):
    write_standard(migdir)
    env = env_with(term_path, DATABASE_URL=f"mongodb://127.0.0.1:{ferretdb}{tail}")
    res = run_mi(["-path", migdir], env=env, timeout=HANG_GUARD)
    assert_usage_error(res, db, ["DATABASE_URL"])


# --------------------------------------------------------------------------
# 8. Where the URL and the migrations come from


def test_url_file_with_trailing_newline(migdir, db_url, db, term_path, tmp_path):
    write_standard(migdir)
    f = tmp_path / "url"
    f.write_text(db_url + "\n")
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL_FILE=f))
    assert res.returncode == 0, res
    assert version_of(db) == (4, False)


def test_database_flag_wins_over_environment(migdir, db_url, db, new_db, term_path):
    write_standard(migdir)
    _, other_url, other = new_db()
    res = run_mi(
        ["-database", db_url, "-path", migdir], env=env_with(term_path, DATABASE_URL=other_url)
    )
    assert res.returncode == 0, res
    assert version_of(db) == (4, False)
    assert user_collections(other) == []


def test_path_flag_wins_over_environment(migdir, db_url, db, tmp_path, term_path):
    write_standard(migdir)
    env_dir = write_migrations(
        tmp_path / "from-env", {"1_other.up.json": [{"insert": "other", "documents": [{"_id": 1}]}]}
    )
    res = run_mi(
        ["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url, MIGRATION_DIR=env_dir)
    )
    assert res.returncode == 0, res
    assert version_of(db) == (4, False)
    assert items(db) == [1, 2, 3, 4]
    assert "other" not in user_collections(db)


# --------------------------------------------------------------------------
# 9. Logs


def test_run_finished_summary(migdir, db_url, db, term_path):
    write_standard(migdir)
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 0, res
    finished = records(res, msg="run finished")
    assert len(finished) == 1, res
    last = res.logs[-1]
    assert last["msg"] == "run finished", res
    for field in ("from_version", "to_version", "applied", "duration_ms", "result", "exit_code"):
        assert field in last, f"run finished lacks {field!r}: {last}"
    assert last["from_version"] == -1 and last["to_version"] == 4, last
    assert last["applied"] == 4 and last["exit_code"] == 0, last
    assert isinstance(last["duration_ms"], int) and last["duration_ms"] >= 0, last
    assert last["result"] == "ok", last

    # Again: nothing to do.
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 0, res
    last = res.logs[-1]
    assert last["msg"] == "run finished", res
    assert (last["from_version"], last["to_version"], last["applied"]) == (4, 4, 0), last


def test_text_log_format(migdir, db_url, db, term_path):
    write_standard(migdir)
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url, LOG_FORMAT="text"))
    assert res.returncode == 0, res
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert lines, res
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            continue
        raise AssertionError(f"LOG_FORMAT=text gave a JSON line: {line!r}")
    assert any("run finished" in l for l in lines), res


def test_log_level_error_suppresses_info(migdir, db_url, db, term_path):
    write_standard(migdir)
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url, LOG_LEVEL="error"))
    assert res.returncode == 0, res
    assert version_of(db) == (4, False)
    levels = {str(r["level"]).upper() for r in res.logs}
    assert levels <= {"ERROR"}, res


def test_verbose_shows_debug(migdir, db_url, db, term_path):
    write_standard(migdir)
    res = run_mi(["-verbose", "-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 0, res
    assert records(res, level="DEBUG"), res
    quiet = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert not records(quiet, level="DEBUG"), quiet


def test_version_goes_to_stdout_only(migdir, db_url, db, term_path):
    write_standard(migdir)
    env = env_with(term_path, DATABASE_URL=db_url)
    assert run_mi(["-path", migdir, "up", "2"], env=env).returncode == 0
    res = run_mi(["-path", migdir, "version"], env=env)
    assert res.returncode == 0, res
    assert res.stdout == "2\n", res
    # stderr is all JSON (checked by run_mi) and does not repeat the result.
    assert all(l.strip() != "2" for l in res.stderr.splitlines()), res


# --------------------------------------------------------------------------
# 10. The rest of the exit codes this part owns: 3 and 8 (0, 2, 4, 5, 7 and
# 128+n are above).


def test_invalid_source_exits_3(migdir, db_url, db, term_path):
    write_standard(migdir, {"2_again.up.json": [{"insert": "items", "documents": [{"_id": 22}]}]})
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 3, res
    assert user_collections(db) == []
    assert "exit 3" in termination(term_path)


def test_dirty_database_exits_8(migdir, db_url, db, term_path):
    write_standard(migdir)
    db["schema_migrations"].insert_one({"version": 2, "dirty": True})
    res = run_mi(["-path", migdir], env=env_with(term_path, DATABASE_URL=db_url))
    assert res.returncode == 8, res
    assert version_of(db) == (2, True)
    assert "items" not in user_collections(db)
    msg = termination(term_path)
    assert "exit 8" in msg and "dirty" in msg, msg
