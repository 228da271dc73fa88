"""End-to-end harness for migrate-init.

One FerretDB (SQLite backend, 127.0.0.1 only) per pytest session, started by
scripts/ferretdb.sh and stopped at session end even when tests fail; one
uniquely named database per test.

Binaries:
  migrate-init    $MIGRATE_INIT_BIN, else <repo>/bin/migrate-init (built by `make`)
  golang-migrate  $MIGRATE_BIN, else the cache layout of scripts/versions.sh
  FerretDB        the cache layout of scripts/versions.sh (via scripts/ferretdb.sh)

Rules enforced here for every test:
  * a missing migrate-init binary is a test ERROR (never a skip) telling you
    to run `make`;
  * a skipped test is reported as a failure (nothing may pass by not running);
  * every run of migrate-init gets a clean environment (PATH, HOME and what
    the test passes), its stdout+stderr must not contain CANARY_PASSWORD, and
    unless the test sets LOG_FORMAT every stderr line must be a JSON object
    with time, level and msg.
"""

import calendar
import datetime
import glob
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import bson
import pymongo
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"

CANARY_PASSWORD = "Canary-S3cret-Pa55"

# Environment variables the tools read; never inherited from the caller.
TOOL_ENV_VARS = (
    "DATABASE_URL",
    "MIGRATION_DIR",
    "TARGET_VERSION",
    "LOG_FORMAT",
    "LOG_LEVEL",
)


def _versions():
    """Mirror of scripts/versions.sh (keep in sync)."""
    text = (SCRIPTS / "versions.sh").read_text()
    ferretdb_version = re.search(r"^FERRETDB_VERSION=(\S+)", text, re.M).group(1)
    migrate_version = re.search(r"^MIGRATE_VERSION=(\S+)", text, re.M).group(1)
    cache = os.environ.get("MI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "migrate-init",
    )
    return {
        "FERRETDB_BIN": Path(cache) / f"ferretdb-{ferretdb_version}" / "ferretdb",
        "MIGRATE_BIN": Path(cache) / f"migrate-{migrate_version}" / "migrate",
    }


_V = _versions()
MI_BIN = Path(os.environ.get("MIGRATE_INIT_BIN") or REPO / "bin" / "migrate-init")
GM_BIN = Path(os.environ.get("MIGRATE_BIN") or _V["MIGRATE_BIN"])
FERRETDB_BIN = _V["FERRETDB_BIN"]


# --------------------------------------------------------------------------
# No silent skips: a skipped test is turned into a failure.

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared hook
from noskip import pytest_runtest_makereport  # noqa: E402,F401  (a skipped test fails)


# --------------------------------------------------------------------------
# Process helpers


class Result:
    def __init__(self, args, returncode, stdout, stderr):
        self.args = args
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    @property
    def output(self):
        return self.stdout + self.stderr

    @property
    def logs(self):
        """stderr parsed as JSON lines (only meaningful for migrate-init in JSON mode)."""
        return [json.loads(l) for l in self.stderr.splitlines() if l.strip()]

    def __iter__(self):  # allows: rc, out, err = run_mi(...)
        return iter((self.returncode, self.stdout, self.stderr))

    def __repr__(self):
        return (
            f"<{' '.join(map(str, self.args))}\n exit={self.returncode}\n"
            f" stdout={self.stdout!r}\n stderr={self.stderr!r}>"
        )


def clean_env(extra=None):
    """PATH and HOME only, plus what the test gives. Nothing else leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
    }
    # A sanitizer build may need its options; they cannot change behaviour.
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    # Never write the real /dev/termination-log of the machine running the
    # tests; a test that checks the message sets its own path.
    env["TERMINATION_MESSAGE_PATH"] = os.path.join(
        tempfile.gettempdir(), "migrate-init-e2e-termination-log")
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def _run(binary, args, env=None, input=None, timeout=60, cwd=None):
    argv = [str(binary)] + [str(a) for a in args]
    p = subprocess.run(
        argv,
        env=clean_env(env),
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return Result(argv, p.returncode, p.stdout, p.stderr)


# Arguments after which migrate-init legitimately prints on stdout.
OUTPUT_COMMANDS = {"version", "create", "validate", "status", "plan", "backups", "-version", "--version",
                   "-help", "--help", "-h"}


def check_mi_output(res, env):
    """Invariants for every migrate-init run."""
    assert CANARY_PASSWORD not in res.stdout, f"canary password leaked on stdout: {res!r}"
    assert CANARY_PASSWORD not in res.stderr, f"canary password leaked on stderr: {res!r}"
    if not any(a in OUTPUT_COMMANDS for a in res.args[1:]):
        assert res.stdout == "", f"nothing but command output may go to stdout: {res!r}"
    if env and str(env.get("LOG_FORMAT", "json")).lower() != "json":
        return
    for line in res.stderr.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"stderr line is not JSON: {line!r}\n{res!r}")
        assert isinstance(obj, dict), f"stderr line is not a JSON object: {line!r}"
        for field in ("time", "level", "msg"):
            assert field in obj, f"log line lacks {field!r}: {line!r}"


def mi_binary_problem():
    if not MI_BIN.exists():
        return f"migrate-init binary not found at {MI_BIN}: run `make` in {REPO} first (or set MIGRATE_INIT_BIN)"
    if not os.access(MI_BIN, os.X_OK):
        return f"migrate-init binary at {MI_BIN} is not executable: run `make` in {REPO}"
    return None


def run_mi(args, env=None, input=None, timeout=60, check_json=True, cwd=None):
    """Run migrate-init; returns Result(returncode, stdout, stderr)."""
    problem = mi_binary_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    res = _run(MI_BIN, args, env=env, input=input, timeout=timeout, cwd=cwd)
    if check_json:
        check_mi_output(res, env)
    else:
        assert CANARY_PASSWORD not in res.output, f"canary password leaked: {res!r}"
    return res


def run_gm(args, env=None, input=None, timeout=60, cwd=None):
    """Run the golang-migrate CLI; returns Result(returncode, stdout, stderr)."""
    if not GM_BIN.exists():
        pytest.fail(f"golang-migrate CLI not found at {GM_BIN}: run scripts/deps.sh", pytrace=False)
    return _run(GM_BIN, args, env=env, input=input, timeout=timeout, cwd=cwd)


def write_migrations(directory, files):
    """files: {name: body}; a body that is not a str is written as JSON."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        if not isinstance(body, (str, bytes)):
            body = json.dumps(body, indent=1)
        if isinstance(body, bytes):
            (directory / name).write_bytes(body)
        else:
            (directory / name).write_text(body)
    return directory


# --------------------------------------------------------------------------
# Fixtures


def settled(binary=None, timeout=120):
    """Waits until the binary is a complete executable, in case a `make`
    elsewhere is relinking it right now (a guard, not a test)."""
    binary = Path(binary or MI_BIN)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = binary.stat()
            if st.st_size > 0 and os.access(binary, os.X_OK) and time.time() - st.st_mtime > 2:
                return
        except OSError:
            pass
        time.sleep(0.2)


def remove_stale_libmongoc_counters():
    """Debian's libmongoc creates /dev/shm/mongoc-PID in a load-time
    constructor, before main(). A file left by some earlier libmongoc
    process that died (not ours: migrate-init unlinks its own at start)
    makes the next process that happens to get that PID print one plain-text
    warning before main() can route libmongoc's log. That is machine state,
    not a behaviour under test: clear files whose process is gone."""
    for path in glob.glob("/dev/shm/mongoc-*"):
        pid = path.rsplit("-", 1)[-1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            try:
                os.unlink(path)
            except OSError:
                pass


@pytest.fixture(autouse=True)
def _no_stale_libmongoc_counters():
    remove_stale_libmongoc_counters()


@pytest.fixture(scope="session", autouse=True)
def migrate_init_binary():
    """Session-level check: the binary under test must exist. Fails, never skips."""
    problem = mi_binary_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    return MI_BIN


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory):
    """Port of a FerretDB started for this session."""
    if not FERRETDB_BIN.exists():
        pytest.fail(f"FerretDB not found at {FERRETDB_BIN}: run scripts/deps.sh", pytrace=False)
    d = tmp_path_factory.mktemp("ferretdb")
    p = subprocess.run(
        [str(SCRIPTS / "ferretdb.sh"), "start", str(d)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if p.returncode != 0:
        pytest.fail(f"could not start FerretDB:\n{p.stderr}", pytrace=False)
    port = int(p.stdout.strip())
    try:
        yield port
    finally:
        subprocess.run([str(SCRIPTS / "ferretdb.sh"), "stop", str(d)], timeout=60)


@pytest.fixture(scope="session")
def mongo(ferretdb):
    c = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{ferretdb}/",
        serverSelectionTimeoutMS=5000,
        connectTimeoutMS=5000,
    )
    c.admin.command("ping")
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def ferret_url(ferretdb):
    """ferret_url(dbname, **query) -> mongodb://127.0.0.1:PORT/dbname?..."""

    def make(dbname, **query):
        url = f"mongodb://127.0.0.1:{ferretdb}/{dbname}"
        if query:
            url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return url

    return make


def _unique_name(request, suffix=""):
    base = re.sub(r"[^A-Za-z0-9]", "_", request.node.name)[:28]
    return f"e2e_{base}_{uuid.uuid4().hex[:8]}{suffix}"


@pytest.fixture
def dbname(request):
    return _unique_name(request)


@pytest.fixture
def db_url(ferret_url, dbname):
    return ferret_url(dbname)


@pytest.fixture
def db(mongo, dbname):
    """pymongo Database for this test's unique database."""
    return mongo[dbname]


@pytest.fixture
def new_db(request, mongo, ferret_url):
    """Another unique database: new_db() -> (name, url, pymongo Database)."""

    def make():
        name = _unique_name(request)
        return name, ferret_url(name), mongo[name]

    return make


@pytest.fixture
def migdir(tmp_path):
    """Empty migrations directory; fill it with write_migrations(migdir, {...})."""
    d = tmp_path / "migrations"
    d.mkdir()
    return d


# The crash- and pause-injection build (src/fault.h).
FAULTS_BIN = REPO / "bin" / "faults" / "migrate-init"


@pytest.fixture(scope="session")
def faults_bin():
    """bin/faults/migrate-init, built now. Another engineer may be editing
    src/ at this moment: a failing build is retried for a while, then the
    session fails (never skips)."""
    last = None
    for attempt in range(6):
        p = subprocess.run(["make", "-s", "faults"], cwd=REPO, capture_output=True, text=True,
                           timeout=600)
        if p.returncode == 0 and FAULTS_BIN.exists():
            return FAULTS_BIN
        last = p
        time.sleep(10)
    pytest.fail(f"cannot build the crash-injection binary (make -s faults):\n"
                f"exit {last.returncode}\n{last.stdout}\n{last.stderr}", pytrace=False)


# --------------------------------------------------------------------------
# Database inspection helpers


# The state document's fence (src/db.h): the token of the lock that last
# claimed it. golang-migrate ignores it; state() leaves it out so tests compare
# {version, dirty} as golang-migrate reads them.
FENCE = "lock_token"


def written_state(update):
    """(version, dirty) that one update statement ({q, u, ...}) of a state
    write sets, as a replacement or with $set; None for anything else."""
    doc = update.get("u", {})
    doc = doc.get("$set", doc)
    if "version" in doc and "dirty" in doc:
        return doc["version"], doc["dirty"]
    return None


def state(db, collection="schema_migrations"):
    """All documents of the migrations collection, without _id and the fence."""
    return [{k: v for k, v in d.items() if k not in ("_id", FENCE)} for d in db[collection].find()]


def version_of(db, collection="schema_migrations"):
    """(version, dirty) from exactly one state document, or None if none."""
    docs = state(db, collection)
    assert len(docs) <= 1, f"{collection} must hold at most one document, has {docs}"
    if not docs:
        return None
    return docs[0]["version"], docs[0]["dirty"]


def raw_collection(db, name):
    return db.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))


def user_collections(db):
    return sorted(db.list_collection_names())


def lock_free(db, collection="migrate_advisory_lock"):
    """True when no golang-migrate lock document is held."""
    return db[collection].count_documents({"locking_key": 0}) == 0


# --------------------------------------------------------------------------
# A standard set of four migrations, shared by several test files.
#
# Version v inserts {_id: v} into "items" and its down deletes it; version 2
# also creates an index, version 3 has a zero-padded file name. An unrelated
# file that does not match the migration pattern must be ignored.


def _ins(v, name):
    return {"insert": "items", "documents": [{"_id": v, "name": name}]}


def _del(v):
    return {"delete": "items", "deletes": [{"q": {"_id": v}, "limit": 1}]}


STANDARD = {
    "1_first.up.json": [{"create": "items"}, _ins(1, "first")],
    "1_first.down.json": [{"drop": "items"}],
    "2_second.up.json": [
        _ins(2, "second"),
        {"createIndexes": "items", "indexes": [{"key": {"name": 1}, "name": "by_name"}]},
    ],
    "2_second.down.json": [{"dropIndexes": "items", "index": "by_name"}, _del(2)],
    "003_third.up.json": [_ins(3, "third")],
    "003_third.down.json": [_del(3)],
    "4_fourth.up.json": [_ins(4, "fourth")],
    "4_fourth.down.json": [_del(4)],
    "README.md": "not a migration, must be ignored\n",
}
STANDARD_NAMES = {1: "first", 2: "second", 3: "third", 4: "fourth"}


def write_standard(directory, extra=None):
    """Write STANDARD plus extra {name: body}; a body of None leaves that file out."""
    files = dict(STANDARD)
    for name, body in (extra or {}).items():
        if body is None:
            files.pop(name, None)
        else:
            files[name] = body
    return write_migrations(directory, files)


def items(db):
    """Sorted _ids in the items collection."""
    return sorted(d["_id"] for d in db["items"].find())


def index_names(db, coll="items"):
    if coll not in db.list_collection_names():
        return set()
    return {ix["name"] for ix in db[coll].list_indexes()}


def applied_logs(res, direction=None):
    """Log records of applied migrations (non-error records with version, name, direction, duration_ms)."""
    out = []
    for rec in res.logs:
        if str(rec.get("level", "")).lower() in ("error", "fatal"):
            continue
        if all(k in rec for k in ("version", "name", "direction", "duration_ms")):
            if direction is None or rec["direction"] == direction:
                out.append(rec)
    return out


# --------------------------------------------------------------------------
# A recording (and optionally stalling) TCP relay in front of the real FerretDB.
# Not a mock: every byte goes to FerretDB and back unchanged. It lets a test see
# the exact commands a tool sends, or hold one command to look at the database
# (e.g. the lock) while a run is in progress.


def op_msg_sections(msg):
    """An OP_MSG split into (body, {identifier: [documents]}), all raw BSON
    bytes; None for another opcode or a malformed message."""
    if struct.unpack("<i", msg[12:16])[0] != 2013:
        return None
    flags = struct.unpack("<I", msg[16:20])[0]
    end = len(msg) - (4 if flags & 1 else 0)
    pos, body, seqs = 20, None, {}
    while pos < end:
        kind = msg[pos]
        pos += 1
        if kind == 0:
            n = struct.unpack("<i", msg[pos : pos + 4])[0]
            body = msg[pos : pos + n]
            pos += n
        elif kind == 1:
            size = struct.unpack("<i", msg[pos : pos + 4])[0]
            sec_end = pos + size
            z = msg.index(b"\0", pos + 4)
            ident = msg[pos + 4 : z].decode()
            p, docs = z + 1, []
            while p < sec_end:
                n = struct.unpack("<i", msg[p : p + 4])[0]
                docs.append(msg[p : p + n])
                p += n
            seqs[ident] = docs
            pos = sec_end
        else:
            return None
    return None if body is None else (body, seqs)


def read_msg(sock, buf):
    """One wire message from sock (buf: leftover bytes); (msg, buf), or (None, buf) at EOF."""
    while len(buf) < 4 or len(buf) < struct.unpack("<i", buf[:4])[0]:
        data = sock.recv(65536)
        if not data:
            return None, buf
        buf += data
    n = struct.unpack("<i", buf[:4])[0]
    return buf[:n], buf[n:]


class Listener:
    """The part every relay shares: a listener on 127.0.0.1:self.port whose
    accept thread connects each client to FerretDB (self.upstream) and hands
    the pair to self._serve(client, upstream); url() for a database on it.
    Subclasses set self.closed, and may refuse new clients (self.refusing)."""

    refusing = False

    def _listen(self, backlog):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

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
            self._serve(c, u)

    def url(self, dbname, **query):
        u = f"mongodb://127.0.0.1:{self.port}/{dbname}"
        if query:
            u += "?" + "&".join(f"{k}={v}" for k, v in query.items())
        return u


class RecordingRelay(Listener):
    """127.0.0.1:self.port -> FerretDB; records client OP_MSG commands.

    commands: list of (body_raw_bytes, {identifier: [raw docs]}), one per OP_MSG.
    stall_insert_into: a collection name; the first insert into it is held
    (self.stalled is set) until self.release is set.
    """

    def __init__(self, upstream_port, stall_insert_into=None):
        self.upstream = upstream_port
        self.commands = []
        self.lock = threading.Lock()
        self.stall_coll = stall_insert_into
        self.stalled = threading.Event()
        self.release = threading.Event()
        self.closed = False
        self._listen(32)

    def close(self):
        self.closed = True
        self.release.set()
        try:
            self.sock.close()
        except OSError:
            pass

    def _serve(self, c, u):
        threading.Thread(target=self._client_to_server, args=(c, u), daemon=True).start()
        threading.Thread(target=self._copy, args=(u, c), daemon=True).start()

    @staticmethod
    def _close_both(a, b):
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _copy(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close_both(src, dst)

    def _client_to_server(self, src, dst):
        buf = b""
        try:
            while True:
                msg, buf = read_msg(src, buf)
                if msg is None:
                    break
                cmd = self._record(msg)
                if cmd is not None and self._should_stall(cmd):
                    self.stalled.set()
                    self.release.wait(60)
                dst.sendall(msg)
        except OSError:
            pass
        finally:
            self._close_both(src, dst)

    def _should_stall(self, body):
        if not self.stall_coll or self.stalled.is_set():
            return False
        doc = bson.decode(body, CodecOptions(document_class=RawBSONDocument))
        keys = list(doc.keys())
        return bool(keys) and keys[0] == "insert" and doc["insert"] == self.stall_coll

    def _record(self, msg):
        sections = op_msg_sections(msg)
        if sections is None:
            return None
        with self.lock:
            self.commands.append(sections)
        return sections[0]

    def inserted(self, coll):
        """Raw documents of every insert command into coll (body array or kind-1 sequence)."""
        out = []
        with self.lock:
            cmds = list(self.commands)
        for body, seqs in cmds:
            doc = bson.decode(body, CodecOptions(document_class=RawBSONDocument))
            keys = list(doc.keys())
            if not keys or keys[0] != "insert" or doc["insert"] != coll:
                continue
            if "documents" in seqs:
                out.extend(seqs["documents"])
            else:
                out.extend(bytes(d.raw) for d in doc["documents"])
        return out


@pytest.fixture
def relay_factory(ferretdb):
    """relay_factory(stall_insert_into=None) -> RecordingRelay, closed after the test."""
    yield from relay_factory_of(RecordingRelay, ferretdb)


def popen_mi(args, env=None):
    """Start migrate-init in the background (stdin not a tty). Finish with finish_mi()."""
    problem = mi_binary_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    argv = [str(MI_BIN)] + [str(a) for a in args]
    p = subprocess.Popen(argv, env=clean_env(env), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.mi_argv, p.mi_env = argv, env
    return p


def popen_gm(args, env=None):
    argv = [str(GM_BIN)] + [str(a) for a in args]
    p = subprocess.Popen(argv, env=clean_env(env), stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.mi_argv, p.mi_env = argv, env
    return p


def finish(p, timeout=30, check_mi=False):
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    res = Result(p.mi_argv, p.returncode, out, err)
    if check_mi:
        check_mi_output(res, p.mi_env)
    return res


# --------------------------------------------------------------------------
# More FerretDB servers, for the init-container runtime tests
# (tests/e2e/test_runtime.py): one started later on a port a client already
# waits for, one with authentication, one with a TLS listener. All of them
# 127.0.0.1 only, started by scripts/ferretdb.sh (FERRETDB_PORT,
# FERRETDB_ARGS); each one's stop starts when its fixture ends, even when
# tests fail, and the session waits for all of them (in parallel) at its end.

AUTH_DB = "authdb"
AUTH_USER = "migrator"


def free_port():
    """A port of 127.0.0.1 that nothing listens on (at the time of asking)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def start_ferretdb(directory, port=None, args=()):
    """Starts FerretDB in directory via scripts/ferretdb.sh; returns its plain port."""
    if not FERRETDB_BIN.exists():
        pytest.fail(f"FerretDB not found at {FERRETDB_BIN}: run scripts/deps.sh", pytrace=False)
    env = dict(os.environ)
    env.pop("FERRETDB_PORT", None)
    env.pop("FERRETDB_ARGS", None)
    if port is not None:
        env["FERRETDB_PORT"] = str(port)
    if args:
        env["FERRETDB_ARGS"] = " ".join(str(a) for a in args)
    p = subprocess.run(
        [str(SCRIPTS / "ferretdb.sh"), "start", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    if p.returncode != 0:
        pytest.fail(f"could not start FerretDB (port={port}, args={args}):\n{p.stderr}", pytrace=False)
    return int(p.stdout.strip())


def stop_ferretdb(directory):
    subprocess.run([str(SCRIPTS / "ferretdb.sh"), "stop", str(directory)], timeout=60)


@pytest.fixture(scope="session")
def ferretdb_stopper():
    """stop(directory): starts stopping a FerretDB now (it takes a second or
    so) and waits for every one of them at the end of the session, in parallel."""
    procs = []

    def stop(directory):
        procs.append(subprocess.Popen([str(SCRIPTS / "ferretdb.sh"), "stop", str(directory)]))

    try:
        yield stop
    finally:
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_tcp(port, timeout=20.0):
    """Waits until 127.0.0.1:port accepts a TCP connection (a start-up guard, not a test)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail(f"nothing accepts connections on 127.0.0.1:{port}", pytrace=False)
            time.sleep(0.05)


@pytest.fixture
def ferretdb_factory(tmp_path_factory, ferretdb_stopper):
    """ferretdb_factory(port=None, args=()) -> port of a new FerretDB; its stop
    starts after the test (and is waited for at the end of the session)."""
    dirs = []

    def make(port=None, args=()):
        d = tmp_path_factory.mktemp("ferretdb_extra")
        dirs.append(d)
        return start_ferretdb(d, port=port, args=args)

    try:
        yield make
    finally:
        for d in dirs:
            ferretdb_stopper(d)


class AuthServer:
    """A FerretDB with authentication: user AUTH_USER, password CANARY_PASSWORD, in AUTH_DB."""

    def __init__(self, port):
        self.port = port
        self.user = AUTH_USER
        self.password = CANARY_PASSWORD
        self.auth_db = AUTH_DB

    def url(self, dbname, password=None, user=None):
        pw = self.password if password is None else password
        u = self.user if user is None else user
        return (
            f"mongodb://{quote(u, safe='')}:{quote(pw, safe='')}@127.0.0.1:{self.port}/"
            f"{dbname}?authSource={self.auth_db}"
        )

    def client(self):
        return pymongo.MongoClient(
            f"mongodb://127.0.0.1:{self.port}/",
            username=self.user,
            password=self.password,
            authSource=self.auth_db,
            serverSelectionTimeoutMS=5000,
            connectTimeoutMS=5000,
        )


@pytest.fixture(scope="session")
def ferretdb_auth(tmp_path_factory, ferretdb_stopper):
    """AuthServer: a FerretDB with --test-enable-new-auth and one SCRAM user."""
    d = tmp_path_factory.mktemp("ferretdb_auth")
    port = start_ferretdb(
        d,
        args=(
            "--test-enable-new-auth",
            f"--setup-database={AUTH_DB}",
            f"--setup-username={AUTH_USER}",
            f"--setup-password={CANARY_PASSWORD}",
        ),
    )
    try:
        yield AuthServer(port)
    finally:
        ferretdb_stopper(d)


class TLSCerts:
    """ca.pem (signs server.pem: IP:127.0.0.1, DNS:localhost) and an unrelated other_ca.pem."""

    def __init__(self, d):
        self.dir = d
        self.ca = d / "ca.pem"
        self.server_cert = d / "server.pem"
        self.server_key = d / "server.key"
        self.other_ca = d / "other_ca.pem"


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} failed:\n{p.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=migrate-init test CA", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other_ca.key", "-out",
             "other_ca.pem", "-days", "2", "-subj", "/CN=unrelated test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    return TLSCerts(d)


class TLSServer:
    def __init__(self, port, tls_port, certs):
        self.port = port  # plain listener: for inspection with pymongo
        self.tls_port = tls_port
        self.certs = certs

    def url(self, dbname, ca=None):
        ca = self.certs.ca if ca is None else ca
        return f"mongodb://127.0.0.1:{self.tls_port}/{dbname}?tls=true&tlsCAFile={ca}"


@pytest.fixture(scope="session")
def ferretdb_tls(tmp_path_factory, tls_certs, ferretdb_stopper):
    """TLSServer: a FerretDB with a TLS listener (and a plain one for the harness)."""
    d = tmp_path_factory.mktemp("ferretdb_tls")
    tls_port = free_port()
    port = start_ferretdb(
        d,
        args=(
            f"--listen-tls=127.0.0.1:{tls_port}",
            f"--listen-tls-cert-file={tls_certs.server_cert}",
            f"--listen-tls-key-file={tls_certs.server_key}",
        ),
    )
    try:
        wait_tcp(tls_port)
        yield TLSServer(port, tls_port, tls_certs)
    finally:
        ferretdb_stopper(d)


# ==========================================================================
# Runs in progress: processes whose logs are read as they come, and a pausing
# relay in front of the real FerretDB (the lock and fencing suites).

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

    def find(self, msg, pred=None):
        return [r for r in self.records() if r.get("msg") == msg and (pred is None or pred(r))]

    def running(self):
        return self.p.poll() is None

    def wait_logs(self, msg, count=1, pred=None, timeout=HANG):
        """The log records with this msg (and pred true), once there are count
        of them; fails if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.find(msg, pred)
            if len(found) >= count:
                return found
            if self.p.poll() is not None:
                for t in self.readers:
                    t.join(5)
                found = self.find(msg, pred)
                if len(found) >= count:
                    return found
                pytest.fail(f"{self.argv[0]} exited {self.p.returncode} without logging {msg!r} x{count}:\n"
                            f"{self.stderr()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"no {msg!r} x{count} from {self.argv[0]} within {timeout}s:\n{self.stderr()}",
                            pytrace=False)
            with self.cv:
                self.cv.wait(0.05)

    def wait_log(self, msg, timeout=HANG):
        """The first log record with this msg; fails if the process exits without it."""
        return self.wait_logs(msg, timeout=timeout)[0]

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
        def argv(argv, env=None, is_mi=True):
            """Any migrate-init build (the pause-injection one, say) with these arguments."""
            p = Proc(argv, env, is_mi)
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
        if self.closed:
            return
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


class PauseRelay(Listener):
    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.mu = threading.Lock()
        self.conns = set()
        self.holds = []
        self.refusing = False
        self.closed = False
        self._listen(64)

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

    def _serve(self, c, u):
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
                msg, buf = read_msg(conn.c, buf)
                if msg is None:
                    break
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
    sections = op_msg_sections(msg)
    if sections is None:
        return None
    body = bson.decode(sections[0], CodecOptions())
    if not body:
        return None
    cmd = dict(body)
    cmd.update({k: [bson.decode(d, CodecOptions()) for d in v] for k, v in sections[1].items()})
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


def run_faults(binary, args, env, timeout=60):
    """Run the crash-injection build (faults_bin) to its end or its fault."""
    settled(binary)
    argv = [str(binary)] + [str(a) for a in args]
    p = subprocess.run(argv, env=clean_env(env), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    res = Result(argv, p.returncode, p.stdout, p.stderr)
    check_mi_output(res, env)  # no canary, logs are JSON lines even when killed
    return res


def relay_factory_of(cls, upstream):
    """A fixture body: yields make() -> a new cls(upstream); closes them all after."""
    made = []

    def make(*args, **kw):
        r = cls(upstream, *args, **kw)
        made.append(r)
        return r

    try:
        yield make
    finally:
        for r in made:
            r.close()


@pytest.fixture
def relays(ferretdb):
    yield from relay_factory_of(PauseRelay, ferretdb)


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
