"""What the lock and the fencing assume of the server, checked on the test server.

README ("What the lock assumes of the server") lists these; each is tried
here against the FerretDB the suite runs, directly with pymongo, so that an
upgrade that changes one is caught here and not in production. What is NOT
assumed: that a conditional update is atomic under concurrency. FerretDB v1
evaluates an update's filter and then writes the document by _id, as two
steps, so several racing updates with the same filter can all report a
match; nothing in the design depends on such a race having one winner.
"""

import datetime
import threading
import time

import pymongo
import pytest
from pymongo.errors import DuplicateKeyError

THREADS = 12
ROUNDS = 20


def race(n, fn):
    """Runs fn(i) on n threads released at once; returns their results."""
    start = threading.Barrier(n)
    out = [None] * n

    def run(i):
        start.wait()
        out[i] = fn(i)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return out


@pytest.fixture
def clients(ferretdb):
    """One client per racing thread: separate connections, as separate pods have."""
    cs = [pymongo.MongoClient(f"mongodb://127.0.0.1:{ferretdb}/", serverSelectionTimeoutMS=5000)
          for _ in range(THREADS)]
    yield cs
    for c in cs:
        c.close()


def test_unique_index_insert_has_exactly_one_winner(clients, dbname, db):
    """Taking the lock, and so taking over: the insert under lock_unique_key."""
    for rnd in range(ROUNDS):
        coll = f"lock_{rnd}"
        db[coll].create_index([("locking_key", -1)], unique=True, name="lock_unique_key")

        def insert(i):
            try:
                clients[i][db.name][coll].insert_one({"locking_key": 0, "who": i})
                return True
            except DuplicateKeyError:
                return False

        wins = race(THREADS, insert)
        assert wins.count(True) == 1, f"round {rnd}: {wins.count(True)} inserts won"
        assert db[coll].count_documents({}) == 1


def test_racing_deletes_of_one_document_count_one_deletion(clients, dbname, db):
    """Removing an expired lock: of racing waiters at most one is told it deleted
    it (only that one logs the takeover)."""
    for rnd in range(ROUNDS):
        db.lock.insert_one({"_id": rnd, "locking_key": 0, "token": "old"})

        def delete(i):
            return clients[i][db.name].lock.delete_one({"_id": rnd, "locking_key": 0, "token": "old"}).deleted_count

        counts = race(THREADS, delete)
        assert sum(counts) == 1, f"round {rnd}: deleted counts {counts}"


def test_duplicate_id_insert_fails(db):
    """The claim of a fresh database inserts the state under a fixed _id: a stale
    runner's late claim must fail."""
    db.schema_migrations.insert_one({"_id": "migrate-init", "version": -1, "dirty": False, "lock_token": "b"})
    with pytest.raises(DuplicateKeyError):
        db.schema_migrations.insert_one({"_id": "migrate-init", "version": -1, "dirty": False, "lock_token": "a"})
    assert db.schema_migrations.find_one()["lock_token"] == "b"


def test_an_update_whose_filter_no_longer_matches_changes_nothing(db):
    """The fence: a write filtered on a revoked token is refused, however late."""
    db.s.insert_one({"_id": 1, "version": 1, "dirty": False, "lock_token": "a"})
    db.s.update_one({"lock_token": "a"}, {"$set": {"lock_token": "revoked"}})
    r = db.s.update_one({"_id": 1, "lock_token": "a"}, {"$set": {"version": 2, "dirty": True}})
    assert (r.matched_count, r.modified_count) == (0, 0)
    assert db.s.find_one({}, {"_id": 0}) == {"version": 1, "dirty": False, "lock_token": "revoked"}
    # the claim of a document golang-migrate wrote (no token yet)
    db.g.insert_one({"version": 3, "dirty": False})
    r = db.g.update_one({"lock_token": {"$exists": False}}, {"$set": {"lock_token": "b"}})
    assert r.matched_count == 1
    r = db.g.update_one({"lock_token": {"$exists": False}}, {"$set": {"lock_token": "c"}})
    assert r.matched_count == 0
    # an update with upsert inserts when nothing matches (no lock: x-advisory-locking=false)
    r = db.n.update_one({"_id": "migrate-init"}, {"$set": {"version": 1, "dirty": True}}, upsert=True)
    assert r.upserted_id == "migrate-init"


def test_hello_local_time_is_a_clock(db):
    """Leases are judged on the server's clock: hello.localTime, in ms, moving
    forward at the rate of ours (FerretDB runs on this host)."""
    a = db.client.admin.command("hello")["localTime"]
    t0 = time.monotonic()
    time.sleep(0.3)
    b = db.client.admin.command("hello")["localTime"]
    elapsed = time.monotonic() - t0
    assert isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime)
    assert abs((b - a).total_seconds() - elapsed) < 0.1, (a, b, elapsed)
