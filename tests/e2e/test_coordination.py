"""Coordination, end to end on the session's real FerretDB.

* `wait [V]`: for app pods while a Job migrates. Reached (0), dirty with no
  live lock (8), deadline passed (10), and a dirty version under a live lock
  (a migration in progress) waited out instead of refused.
* `.migration-registry.yaml`: a version that depends on another service's
  version waits for it (and gives up after DEPENDENCY_TIMEOUT with 11); a
  breaking version needs ALLOW_BREAKING / -allow-breaking, else 11 before
  anything runs; validate checks the registry.

Nothing here sleeps blindly: every test polls the database or the live log
of a running process; the timeouts are only hang guards. A migration is held
"in progress" deterministically by the conftest relay (it stalls the first
insert into a named collection until released) or by a registry dependency
on a database the test controls.
"""

import json
import time

import pytest
import yaml

from conftest import (
    MI_BIN,
    Proc,
    lock_free,
    mi_binary_problem,
    run_mi,
    version_of,
    wait_for,
    write_migrations,
)

HANG = 30  # seconds: only a guard against hangs, never a pace

# Fast polling for every process here, with deadlines that are hang guards.
FAST = {
    "RETRY_INTERVAL": "50ms",
    "RETRY_MAX_INTERVAL": "200ms",
    "MAX_RETRIES": "100000",
    "WAIT_TIMEOUT": f"{HANG}s",
    "DEPENDENCY_TIMEOUT": f"{HANG}s",
}


@pytest.fixture
def live():
    """live(args, env) -> conftest.Proc of migrate-init; killed at teardown if still running."""
    procs = []

    def start(args, env):
        problem = mi_binary_problem()
        if problem:
            pytest.fail(problem, pytrace=False)
        p = Proc([MI_BIN, *args], env, True)
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.running():
            p.kill()
            p.p.wait()


def msgs(res):
    return [r.get("msg") for r in res.logs]


def one(res, msg):
    recs = [r for r in res.logs if r.get("msg") == msg]
    assert recs, f"no {msg!r} in:\n{res!r}"
    return recs[0]


def ins(coll, *ids):
    return {"insert": coll, "documents": [{"_id": i} for i in ids]}


def numbered_set(n, per=1, slow=None):
    """n migrations; version v inserts `per` documents into items (v*1000+k);
    version `slow` also inserts into the collection "slow" (the relay holds it)."""
    files = {}
    for v in range(1, n + 1):
        body = [ins("items", *[v * 1000 + k for k in range(per)])]
        if v == slow:
            body.insert(0, ins("slow", v))
        files[f"{v}_v{v}.up.json"] = body
        files[f"{v}_v{v}.down.json"] = [{"delete": "items", "deletes": [
            {"q": {"_id": {"$gte": v * 1000, "$lt": (v + 1) * 1000}}, "limit": 0}]}]
    return files


def registry(directory, doc):
    (directory / ".migration-registry.yaml").write_text(
        doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))


# --------------------------------------------------------------------------
# wait


def test_wait_until_a_parallel_job_reaches_the_newest_version(tmp_path, live, db_url, db):
    d = write_migrations(tmp_path / "m", numbered_set(5, per=200))
    env = dict(FAST, DATABASE_URL=db_url, MIGRATION_DIR=d)
    w = live(["wait"], env)
    w.wait_logs("waiting for the target version", count=2)
    assert w.running() and version_of(db) is None
    job = live(["up"], dict(env, POD_NAME="job"))
    rj = job.finish()
    assert rj.returncode == 0, rj
    rw = w.finish()
    assert rw.returncode == 0, rw
    reached = one(rw, "target version reached")
    assert reached["version"] == 5 and reached["target"] == 5, reached
    assert version_of(db) == (5, False)
    # Every earlier check saw less than the newest version, clean or not.
    waits = [r for r in rw.logs if r.get("msg", "").startswith("waiting")]
    assert waits and all(r["version"] < 5 or r["msg"] == "waiting: a migration is in progress"
                         for r in waits), waits


def test_wait_V_returns_as_soon_as_V_is_reached(tmp_path, live, new_db):
    """wait 2 exits 0 while the runner, past version 2, is still busy (held
    before version 3 by a registry dependency on a database this test owns)."""
    name_b, url_b, db_b = new_db()
    name_g, url_g, db_g = new_db()
    d = write_migrations(tmp_path / "m", numbered_set(4))
    registry(d, {"service": "svc-b", "database": name_b, "migrations": [
        {"version": 3, "dependencies": [{"service": "gate", "min-version": 1, "database": name_g}]}]})
    env = dict(FAST, DATABASE_URL=url_b, MIGRATION_DIR=d)
    w2 = live(["wait", "2"], env)
    w2.wait_log("waiting for the target version")
    runner = live(["up"], env)
    runner.wait_log("waiting for a dependency")
    r2 = w2.finish()
    assert r2.returncode == 0, r2
    assert one(r2, "target version reached")["version"] == 2
    assert runner.running(), "the runner should still be waiting before version 3"
    assert version_of(db_b) == (2, False)

    # Let the runner go on.
    db_g["schema_migrations"].insert_one({"version": 1, "dirty": False})
    rr = runner.finish()
    assert rr.returncode == 0, rr
    assert version_of(db_b) == (4, False)


def test_wait_dirty_without_live_lock_exits_8(tmp_path, db_url, db):
    files = numbered_set(3)
    files["2_v2.up.json"] = [ins("items", 1000)]  # duplicate _id: fails
    d = write_migrations(tmp_path / "m", files)
    r = run_mi(["-path", d, "-database", db_url, "up"])
    assert r.returncode == 7, r
    assert version_of(db) == (2, True) and lock_free(db)
    for args in (["wait"], ["wait", "1"], ["wait", "3"]):
        t0 = time.monotonic()
        r = run_mi(["-path", d, "-database", db_url] + args, env=FAST)
        assert r.returncode == 8, r
        assert time.monotonic() - t0 < 10
        assert "Dirty database version 2. Fix and force version." in msgs(r), r
    assert version_of(db) == (2, True)


def test_wait_deadline_passes_exits_10(tmp_path, db_url, db):
    d = write_migrations(tmp_path / "m", numbered_set(2))
    env = dict(FAST, WAIT_TIMEOUT="1s")
    t0 = time.monotonic()
    r = run_mi(["-path", d, "-database", db_url, "wait"], env=env)
    took = time.monotonic() - t0
    assert r.returncode == 10, r
    assert 0.9 <= took < 10, took
    rec = one(r, "target version not reached in time")
    assert rec["target"] == 2 and rec["version"] == -1, rec
    # Also when the database is behind rather than empty, and for wait V.
    assert run_mi(["-path", d, "-database", db_url, "up", "1"]).returncode == 0
    r = run_mi(["-path", d, "-database", db_url, "wait", "2"], env=env)
    assert r.returncode == 10, r
    assert one(r, "target version not reached in time")["version"] == 1
    # Nothing was written by waiting.
    assert version_of(db) == (1, False)


def test_wait_keeps_waiting_while_a_migration_is_in_progress(tmp_path, live, relay_factory,
                                                             dbname, db_url, db):
    """Dirty under a live lock is a migration in progress: wait goes on
    waiting (not 8), and exits 0 once the runner finishes."""
    d = write_migrations(tmp_path / "m", numbered_set(3, slow=2))
    relay = relay_factory(stall_insert_into="slow")
    runner = live(["up"], dict(FAST, DATABASE_URL=relay.url(dbname), MIGRATION_DIR=d,
                               POD_NAME="job-1"))
    assert relay.stalled.wait(HANG), "the runner never reached version 2's body"
    wait_for(lambda: version_of(db) == (2, True), "version 2 dirty")
    assert not lock_free(db)

    w = live(["wait"], dict(FAST, DATABASE_URL=db_url, MIGRATION_DIR=d))
    recs = w.wait_logs("waiting: a migration is in progress", count=3)
    assert all(r["version"] == 2 for r in recs), recs
    assert w.running() and runner.running()
    assert version_of(db) == (2, True)

    relay.release.set()
    rr = runner.finish()
    assert rr.returncode == 0, rr
    rw = w.finish()
    assert rw.returncode == 0, rw
    assert one(rw, "target version reached")["version"] == 3
    assert "Dirty database version 2. Fix and force version." not in msgs(rw)
    assert version_of(db) == (3, False) and lock_free(db)


# --------------------------------------------------------------------------
# registry: dependencies


def two_services(tmp_path, new_db, dep_extra=None, a_versions=3):
    """Service A (3 migrations) and service B (2 migrations; B's version 2
    needs A at version 3). Returns (A, B) as dicts of name, url, db, dir."""
    name_a, url_a, db_a = new_db()
    name_b, url_b, db_b = new_db()
    da = write_migrations(tmp_path / "a", numbered_set(a_versions))
    db_dir = write_migrations(tmp_path / "b", numbered_set(2))
    dep = {"service": "svc-a", "min-version": 3}
    dep.update(dep_extra if dep_extra is not None else {"database": name_a})
    registry(db_dir, {"service": "svc-b", "database": name_b, "migrations": [
        {"version": 2, "description": "reads what A's version 3 writes", "dependencies": [dep]}]})
    a = {"name": name_a, "url": url_a, "db": db_a, "dir": da}
    b = {"name": name_b, "url": url_b, "db": db_b, "dir": db_dir}
    return a, b


def test_dependency_waits_for_the_other_service_then_proceeds(tmp_path, live, new_db):
    a, b = two_services(tmp_path, new_db)
    rb = live(["up"], dict(FAST, DATABASE_URL=b["url"], MIGRATION_DIR=b["dir"], POD_NAME="b-0"))
    first = rb.wait_log("waiting for a dependency")
    assert first["service"] == "svc-a" and first["min_version"] == 3 and first["version"] == 2
    assert version_of(b["db"]) == (1, False)  # B's version 1 has no dependency

    # A at 2 is not enough: B keeps waiting, and says A is at 2.
    assert run_mi(["-path", a["dir"], "-database", a["url"], "up", "2"]).returncode == 0
    rb.wait_logs("waiting for a dependency", pred=lambda r: "at version 2" in r.get("state", ""))
    assert rb.running() and version_of(b["db"]) == (1, False)

    assert run_mi(["-path", a["dir"], "-database", a["url"], "up"]).returncode == 0
    res = rb.finish()
    assert res.returncode == 0, res
    assert version_of(b["db"]) == (2, False)
    m = msgs(res)
    assert "waiting for a dependency" in m and "dependency met" in m
    assert m.index("waiting for a dependency") < m.index("dependency met")
    met = one(res, "dependency met")
    assert met["service"] == "svc-a" and met["version"] == 2, met
    assert version_of(a["db"]) == (3, False)  # B only read A's state


def test_dependency_met_already_runs_straight_through(tmp_path, new_db):
    a, b = two_services(tmp_path, new_db)
    assert run_mi(["-path", a["dir"], "-database", a["url"], "up"]).returncode == 0
    r = run_mi(["-path", b["dir"], "-database", b["url"], "up"], env=FAST)
    assert r.returncode == 0, r
    assert "waiting for a dependency" not in msgs(r)
    assert one(r, "dependency met")["service"] == "svc-a"
    assert version_of(b["db"]) == (2, False)


def test_dependency_timeout_exits_11_and_b_stays_clean(tmp_path, new_db):
    a, b = two_services(tmp_path, new_db)
    assert run_mi(["-path", a["dir"], "-database", a["url"], "up", "2"]).returncode == 0
    env = dict(FAST, DEPENDENCY_TIMEOUT="1s")
    t0 = time.monotonic()
    r = run_mi(["-path", b["dir"], "-database", b["url"], "up"], env=env)
    took = time.monotonic() - t0
    assert r.returncode == 11, r
    assert 0.9 <= took < 10, took
    err = [x for x in r.logs if x["level"] == "ERROR" and x.get("service") == "svc-a"]
    assert err and err[0]["min_version"] == 3, r
    assert "svc-a" in json.dumps(err[0])
    assert version_of(b["db"]) == (1, False)
    assert lock_free(b["db"])
    # A dirty dependency does not count either.
    a["db"]["schema_migrations"].update_one({}, {"$set": {"version": 3, "dirty": True}})
    r = run_mi(["-path", b["dir"], "-database", b["url"], "up"], env=env)
    assert r.returncode == 11, r
    assert version_of(b["db"]) == (1, False)


def test_dependency_by_url_env(tmp_path, new_db):
    a, b = two_services(tmp_path, new_db, dep_extra={"url-env": "SVC_A_DATABASE_URL"})
    assert run_mi(["-path", a["dir"], "-database", a["url"], "up"]).returncode == 0
    # B's own database is at 1 < 3 when version 2 is checked: met means A's URL was used.
    r = run_mi(["-path", b["dir"], "-database", b["url"], "up"],
               env=dict(FAST, SVC_A_DATABASE_URL=a["url"]))
    assert r.returncode == 0, r
    assert one(r, "dependency met")["service"] == "svc-a"
    assert version_of(b["db"]) == (2, False)


def test_dependency_url_env_unset_exits_11(tmp_path, new_db):
    a, b = two_services(tmp_path, new_db, dep_extra={"url-env": "SVC_A_DATABASE_URL"})
    r = run_mi(["-path", b["dir"], "-database", b["url"], "up"], env=FAST)
    assert r.returncode == 11, r
    assert any(x.get("variable") == "SVC_A_DATABASE_URL" for x in r.logs), r
    assert version_of(b["db"]) == (1, False)


# --------------------------------------------------------------------------
# registry: breaking versions


def breaking_set(tmp_path):
    d = write_migrations(tmp_path / "m", numbered_set(3))
    registry(d, """# version 3 changes what old pods read
service: svc-b
migrations:
  - version: 3
    description: drop the old shape
    breaking: true
""")
    return d


def test_breaking_version_needs_the_flag(tmp_path, new_db):
    d = breaking_set(tmp_path)
    _, url, db = new_db()
    r = run_mi(["-path", d, "-database", url, "up"], env=FAST)
    assert r.returncode == 11, r
    rec = one(r, "refusing a breaking migration: set ALLOW_BREAKING=true or pass "
                 "-allow-breaking; nothing was run")
    assert rec["version"] == 3
    # Nothing ran, not even versions 1 and 2 of the same run. Taking the lock
    # on a fresh database claimed the state: golang-migrate's "no version".
    assert version_of(db) == (-1, False)
    assert "items" not in db.list_collection_names()
    assert lock_free(db)
    # Entrypoint mode and goto refuse the same way.
    assert run_mi(["-path", d, "-database", url], env=FAST).returncode == 11
    assert run_mi(["-path", d, "-database", url, "goto", "3"], env=FAST).returncode == 11
    assert version_of(db) == (-1, False)
    # Runs that stop before it are fine.
    assert run_mi(["-path", d, "-database", url, "up", "2"], env=FAST).returncode == 0
    assert version_of(db) == (2, False)
    assert run_mi(["-path", d, "-database", url, "up"], env=FAST).returncode == 11
    assert version_of(db) == (2, False)
    # With ALLOW_BREAKING=true: applied, with a warning.
    r = run_mi(["-path", d, "-database", url, "up"], env=dict(FAST, ALLOW_BREAKING="true"))
    assert r.returncode == 0, r
    assert one(r, "applying a breaking migration (allowed)")["version"] == 3
    assert version_of(db) == (3, False)


def test_breaking_version_with_allow_breaking_flag(tmp_path, new_db):
    d = breaking_set(tmp_path)
    _, url, db = new_db()
    r = run_mi(["-path", d, "-database", url, "-allow-breaking", "up"], env=FAST)
    assert r.returncode == 0, r
    assert version_of(db) == (3, False)
    assert sorted(x["_id"] for x in db["items"].find()) == [1000, 2000, 3000]
    # Going down past a breaking version needs no flag.
    assert run_mi(["-path", d, "-database", url, "down", "1"], env=FAST).returncode == 0
    assert version_of(db) == (2, False)


# --------------------------------------------------------------------------
# registry: validate


def validate(d):
    res = run_mi(["-path", d, "validate"], check_json=False)
    for line in res.stderr.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            raise AssertionError(f"stderr line is not JSON: {line!r}\n{res!r}")
        assert {"time", "level", "msg"} <= rec.keys(), line
    return res


BAD_REGISTRIES = {
    "version_without_files": {"service": "svc-b", "migrations": [{"version": 9}]},
    "depends_on_itself": {"service": "svc-b", "migrations": [
        {"version": 2, "dependencies": [{"service": "svc-b", "min-version": 1, "database": "x"}]}]},
    "dependency_without_min_version": {"service": "svc-b", "migrations": [
        {"version": 2, "dependencies": [{"service": "svc-a", "database": "a"}]}]},
    "unknown_top_level_key": {"service": "svc-b", "owner": "team-x", "migrations": []},
    "unknown_key_in_entry": {"service": "svc-b", "migrations": [{"version": 2, "braking": True}]},
    "unknown_key_in_dependency": {"service": "svc-b", "migrations": [
        {"version": 2, "dependencies": [
            {"service": "svc-a", "min-version": 1, "database": "a", "min_versoin": 2}]}]},
    "min_version_not_a_number": {"service": "svc-b", "migrations": [
        {"version": 2, "dependencies": [{"service": "svc-a", "min-version": "3", "database": "a"}]}]},
    "not_yaml": "service: svc-b\nmigrations: [{version: 2\n",
}


@pytest.mark.parametrize("case", sorted(BAD_REGISTRIES))
def test_validate_refuses_bad_registry(case, tmp_path):
    d = write_migrations(tmp_path / "m", numbered_set(3))
    registry(d, BAD_REGISTRIES[case])
    r = validate(d)
    assert r.returncode == 3, r
    errs = [x for x in r.logs if x["level"] == "ERROR" and x["msg"] != "run finished"]
    assert errs, r


def test_validate_accepts_good_registry(tmp_path):
    d = write_migrations(tmp_path / "m", numbered_set(3))
    registry(d, {"service": "svc-b", "database": "b", "migrations": [
        {"version": 2, "description": "x", "breaking": False, "dependencies": [
            {"service": "svc-a", "min-version": 3, "database": "a", "collection": "schema_migrations"},
            {"service": "svc-c", "min-version": 1, "url-env": "SVC_C_URL"}]},
        {"version": 3, "breaking": True}]})
    r = validate(d)
    assert r.returncode == 0, r
    assert "ok: registry for svc-b, 2 versions described" in r.stdout, r
