"""A central repository (README "Central repository"): one migration directory
of service directories, each with its .migration-registry.yaml, run against
the real FerretDB, each service in its own database.

* order: dependencies first, whatever the directory names say;
* -service / SERVICES restrict the run; an unknown name is 2, nothing written;
* a failing service stops its dependents (directly or not) and no others,
  with the worst exit code and a termination message naming it;
* a cycle or an unknown dependency is 3 from up and validate, nothing written;
* status, plan, validate and wait on the layout;
* each service's schema_migrations is what golang-migrate reads.
"""

import json

import pytest

from conftest import CANARY_PASSWORD, free_port, run_gm, run_mi, version_of, write_migrations

FAST = {
    "RETRY_INTERVAL": "50ms",
    "RETRY_MAX_INTERVAL": "200ms",
    "MAX_RETRIES": "3",
    "DEPENDENCY_TIMEOUT": "1s",
    "LOCK_TIMEOUT": "5s",
}


def ins(coll, _id):
    return {"insert": coll, "documents": [{"_id": _id}]}


def registry(service, database=None, url_env=None, deps=None):
    """deps: {version: [(service, min_version), ...]}; every version of the
    service is listed, so validate can check them."""
    lines = [f"service: {service}"]
    if database:
        lines.append(f"database: {database}")
    if url_env:
        lines.append(f"url-env: {url_env}")
    deps = deps or {}
    if deps:
        lines.append("migrations:")
        for v, ds in sorted(deps.items()):
            lines.append(f"  - version: {v}")
            if ds:
                lines.append("    dependencies:")
                for name, minv in ds:
                    lines.append(f"      - service: {name}")
                    lines.append(f"        min-version: {minv}")
    return "\n".join(lines) + "\n"


def service_dir(root, dirname, service, versions, **reg):
    """A service directory with versions 1..versions, each inserting {_id: v}
    into the collection named after the service."""
    files = {}
    for v in range(1, versions + 1):
        files[f"{v}_step{v}.up.json"] = [ins(service, v)]
        files[f"{v}_step{v}.down.json"] = [{"delete": service, "deletes": [{"q": {"_id": v}, "limit": 1}]}]
    files[".migration-registry.yaml"] = registry(service, **reg)
    return write_migrations(root / dirname, files)


@pytest.fixture
def layout(tmp_path, new_db):
    """Three services whose directory names sort against their order:
    a_billing needs orders 1, b_orders 2 needs users 2, c_users needs no one.
    Returns (root, {service: (name, url, db)})."""
    root = tmp_path / "central"
    dbs = {s: new_db() for s in ("users", "orders", "billing")}
    service_dir(root, "c_users", "users", 2, database=dbs["users"][0])
    service_dir(root, "b_orders", "orders", 2, database=dbs["orders"][0],
                deps={1: [], 2: [("users", 2)]})
    service_dir(root, "a_billing", "billing", 1, database=dbs["billing"][0],
                deps={1: [("orders", 1)]})
    return root, dbs


def cluster(ferret_url):
    return ferret_url("").rstrip("/") + "/"


def env_for(root, ferret_url, tmp_path, **extra):
    return dict(FAST, DATABASE_URL=cluster(ferret_url), MIGRATION_DIR=root,
                TERMINATION_MESSAGE_PATH=tmp_path / "termination", **extra)


def started(res):
    return [r["service"] for r in res.logs if r["msg"] == "service starting"]


def ids(db, coll):
    return sorted(d["_id"] for d in db[coll].find())


def untouched(db):
    return db.list_collection_names() == []


def test_dependencies_first_each_in_its_own_database(layout, ferret_url, tmp_path):
    root, dbs = layout
    res = run_mi(["up"], env_for(root, ferret_url, tmp_path))
    assert res.returncode == 0, res
    # Directory order would be billing, orders, users: dependencies win.
    assert started(res) == ["users", "orders", "billing"], res
    applied = [(r["version"]) for r in res.logs if r["msg"] == "migration applied"]
    assert applied == [1, 2, 1, 2, 1], res
    for name, versions in (("users", [1, 2]), ("orders", [1, 2]), ("billing", [1])):
        db = dbs[name][2]
        assert version_of(db) == (versions[-1], False), name
        assert ids(db, name) == versions
        # Its own lock, released; its own history.
        assert db["migrate_advisory_lock"].count_documents({}) == 0
        assert sorted(h["version"] for h in db["schema_migrations_history"].find()) == versions
        # No other service's collections in its database.
        assert set(db.list_collection_names()) <= {
            name, "schema_migrations", "migrate_advisory_lock", "schema_migrations_history"}
    met = [r for r in res.logs if r["msg"] == "dependency met"]
    assert [(r["service"], r["version"]) for r in met] == [("users", 2), ("orders", 1)]
    final = [r for r in res.logs if r["msg"] == "run finished"]
    assert len(final) == 1 and final[0]["services"] == 3 and final[0]["exit_code"] == 0
    assert len([r for r in res.logs if r["msg"] == "service finished"]) == 3
    # Again: nothing to do, everywhere.
    again = run_mi([], env_for(root, ferret_url, tmp_path))
    assert again.returncode == 0, again
    assert not [r for r in again.logs if r["msg"] == "migration applied"]


def test_golang_migrate_reads_each_services_state(layout, ferret_url, tmp_path):
    root, dbs = layout
    assert run_mi(["up"], env_for(root, ferret_url, tmp_path)).returncode == 0
    for svc, d, want in (("users", "c_users", "2"), ("orders", "b_orders", "2"),
                         ("billing", "a_billing", "1")):
        g = run_gm(["-path", root / d, "-database", dbs[svc][1], "version"])
        assert g.returncode == 0 and g.output.strip().splitlines()[-1] == want, g
    # And golang-migrate can take one service on from there.
    g = run_gm(["-path", root / "c_users", "-database", dbs["users"][1], "down", "1"])
    assert g.returncode == 0, g
    assert version_of(dbs["users"][2]) == (1, False)
    assert version_of(dbs["orders"][2]) == (2, False)


def test_service_restriction(layout, ferret_url, tmp_path):
    root, dbs = layout
    env = env_for(root, ferret_url, tmp_path)
    res = run_mi(["-service", "users", "up"], env)
    assert res.returncode == 0, res
    assert started(res) == ["users"]
    assert version_of(dbs["users"][2]) == (2, False)
    assert untouched(dbs["orders"][2]) and untouched(dbs["billing"][2])
    # By directory name too, and repeated: still dependency order.
    res = run_mi(["-service", "a_billing", "-service", "orders", "up"], env)
    assert res.returncode == 0, res
    assert started(res) == ["orders", "billing"]
    assert version_of(dbs["billing"][2]) == (1, False)


def test_services_variable_and_unknown_name(layout, ferret_url, tmp_path):
    root, dbs = layout
    res = run_mi(["up"], env_for(root, ferret_url, tmp_path, SERVICES="users,nosuch"))
    assert res.returncode == 2, res
    assert any(r.get("service") == "nosuch" and r["level"] == "ERROR" for r in res.logs), res
    assert all(untouched(d[2]) for d in dbs.values())
    term = (tmp_path / "termination").read_text()
    assert "nosuch" in term and "exit 2" in term
    # A dependency on a service not chosen is waited for in its database:
    # orders is not there, so billing times out (11), having written nothing.
    res = run_mi(["up"], env_for(root, ferret_url, tmp_path, SERVICES="billing"))
    assert res.returncode == 11, res
    assert ids(dbs["billing"][2], "billing") == []
    res = run_mi(["up"], env_for(root, ferret_url, tmp_path, SERVICES="users"))
    assert res.returncode == 0 and started(res) == ["users"], res


def test_failure_stops_dependents_and_no_others(tmp_path, new_db, ferret_url):
    root = tmp_path / "central"
    dbs = {s: new_db() for s in ("users", "orders", "billing", "audit")}
    # users fails at its version 2; orders needs users, billing needs orders;
    # audit needs nobody.
    service_dir(root, "users", "users", 1, database=dbs["users"][0])
    write_migrations(root / "users", {"2_broken.up.json": [{"noSuchCommand": 1}]})
    service_dir(root, "orders", "orders", 1, database=dbs["orders"][0], deps={1: [("users", 2)]})
    service_dir(root, "billing", "billing", 1, database=dbs["billing"][0],
                deps={1: [("orders", 1)]})
    service_dir(root, "zz_audit", "audit", 2, database=dbs["audit"][0])
    res = run_mi(["up"], env_for(root, ferret_url, tmp_path))
    assert res.returncode == 7, res
    assert version_of(dbs["users"][2]) == (2, True)
    assert untouched(dbs["orders"][2]) and untouched(dbs["billing"][2])
    assert version_of(dbs["audit"][2]) == (2, False)
    assert ids(dbs["audit"][2], "audit") == [1, 2]
    skipped = {r["service"]: r for r in res.logs if r["msg"] == "service not run"}
    assert set(skipped) == {"orders", "billing"}, res
    assert skipped["orders"]["failed_dependency"] == "users"
    assert skipped["billing"]["exit_code"] == 11
    final = [r for r in res.logs if r["msg"] == "run finished"][0]
    assert final["exit_code"] == 7 and final["failed"] == 3
    term = (tmp_path / "termination").read_text()
    assert term.startswith("migrate-init up: a migration failed"), term
    assert "(exit 7, retry can help: no)" in term, term
    assert "service users (exit 7)" in term, term
    assert "billing: not run" in term and "audit: 2 migration(s) applied" in term, term


def test_worst_exit_code_and_url_env_secret(tmp_path, new_db, ferret_url):
    """A service on its own URL (url-env) that cannot be reached: 4 for it,
    its password never printed; a dirty one elsewhere: 8 ranks above."""
    root = tmp_path / "central"
    a, b = new_db(), new_db()
    service_dir(root, "remote", "remote", 1, url_env="REMOTE_URL", database="remote_db")
    service_dir(root, "local", "local", 1, database=a[0])
    service_dir(root, "other", "other", 1, database=b[0])
    b[2]["schema_migrations"].insert_one({"version": 1, "dirty": True})
    url = f"mongodb://app:{CANARY_PASSWORD}@127.0.0.1:{free_port()}/x?connectTimeoutMS=300"
    res = run_mi(["up"], env_for(root, ferret_url, tmp_path, REMOTE_URL=url, MAX_RETRIES="1"))
    assert res.returncode == 8, res  # 8 ranks above 4
    codes = {r["service"]: r["exit_code"] for r in res.logs if r["msg"] == "service finished"}
    assert codes == {"local": 0, "other": 8, "remote": 4}, res
    term = (tmp_path / "termination").read_text()
    assert CANARY_PASSWORD not in term
    assert "other (exit 8)" in term and "remote (exit 4)" in term, term
    assert version_of(a[2]) == (1, False)


def test_url_env_unset_is_refused_before_anything(layout, ferret_url, tmp_path):
    root, dbs = layout
    (root / "c_users" / ".migration-registry.yaml").write_text(
        registry("users", url_env="USERS_URL"))
    res = run_mi(["up"], env_for(root, ferret_url, tmp_path))
    assert res.returncode == 2, res
    assert any(r.get("variable") == "USERS_URL" for r in res.logs), res
    assert all(untouched(d[2]) for d in dbs.values())


@pytest.mark.parametrize("command", [["up"], ["validate"]])
def test_cycle_is_named(layout, ferret_url, tmp_path, command):
    root, dbs = layout
    (root / "c_users" / ".migration-registry.yaml").write_text(
        registry("users", database=dbs["users"][0], deps={1: [("billing", 1)], 2: []}))
    res = run_mi(command, env_for(root, ferret_url, tmp_path))
    assert res.returncode == 3, res
    cycles = [r["cycle"] for r in res.logs if "cycle" in r]
    assert cycles == ["billing -> orders -> users -> billing"], res
    assert "billing -> orders -> users -> billing" in (tmp_path / "termination").read_text()
    assert all(untouched(d[2]) for d in dbs.values())


@pytest.mark.parametrize("command", [["up"], ["validate"]])
def test_unknown_dependency_and_bad_database(layout, ferret_url, tmp_path, command):
    root, dbs = layout
    (root / "a_billing" / ".migration-registry.yaml").write_text(
        registry("billing", database=dbs["billing"][0], deps={1: [("payments", 1)]}))
    res = run_mi(command, env_for(root, ferret_url, tmp_path))
    assert res.returncode == 3, res
    assert any(r.get("dependency") == "payments" for r in res.logs), res
    (root / "a_billing" / ".migration-registry.yaml").write_text(
        registry("billing", database="bad.name", deps={1: [("orders", 1)]}))
    res = run_mi(command, env_for(root, ferret_url, tmp_path))
    assert res.returncode == 3, res
    assert any("bad.name" in json.dumps(r) for r in res.logs if r["level"] == "ERROR"), res
    assert all(untouched(d[2]) for d in dbs.values())


@pytest.mark.parametrize("command", [["up"], ["validate"]])
def test_a_min_version_the_service_does_not_have(layout, ferret_url, tmp_path, command):
    """orders has versions 1 and 2: billing needing orders 3 would wait out
    DEPENDENCY_TIMEOUT for a version that cannot come; refused at once."""
    root, dbs = layout
    (root / "a_billing" / ".migration-registry.yaml").write_text(
        registry("billing", database=dbs["billing"][0], deps={1: [("orders", 3)]}))
    res = run_mi(command, env_for(root, ferret_url, tmp_path))
    assert res.returncode == 3, res
    bad = [r for r in res.logs if r["msg"] == "a dependency's min-version is past the newest migration of that service"]
    assert [(r["service"], r["depends_on"], r["min_version"], r["newest"]) for r in bad] == [("billing", "orders", 3, 2)], res
    assert all(untouched(d[2]) for d in dbs.values())


def test_status_plan_validate_wait(layout, ferret_url, tmp_path):
    root, dbs = layout
    env = env_for(root, ferret_url, tmp_path)
    res = run_mi(["validate"], env)
    assert res.returncode == 0, res
    assert res.stdout.count("== service ") == 3
    assert "ok: registry for orders, 2 versions described" in res.stdout

    assert run_mi(["-service", "users", "up"], env).returncode == 0
    res = run_mi(["plan"], env)
    assert res.returncode == 10, res
    sections = res.stdout.split("== service ")[1:]
    assert [s.split()[0] for s in sections] == ["users", "orders", "billing"]
    assert "nothing to do" in sections[0]
    assert "up 1 step1" in sections[1] and "up 2 step2" in sections[1]

    res = run_mi(["status", "-json"], env)
    assert res.returncode == 0, res
    docs = [json.loads(l) for l in res.stdout.splitlines()]
    assert [(d["service"], d["version"], d["pending"]) for d in docs] == [
        ("users", 2, 0), ("orders", None, 2), ("billing", None, 1)]

    # wait: users is there, orders is not: 10 after the retries.
    res = run_mi(["wait"], dict(env, MAX_RETRIES="2"))
    assert res.returncode == 10, res
    res = run_mi(["-service", "users", "wait"], env)
    assert res.returncode == 0, res
    assert run_mi(["up"], env).returncode == 0
    res = run_mi(["wait"], env)
    assert res.returncode == 0, res
    assert len([r for r in res.logs if r["msg"] == "target version reached"]) == 3


def test_one_service_commands_need_one_service(layout, ferret_url, tmp_path):
    root, dbs = layout
    env = env_for(root, ferret_url, tmp_path)
    for args in (["version"], ["goto", "1"], ["down", "-all"], ["force", "1"]):
        res = run_mi(args, env)
        assert res.returncode == 2, res
    res = run_mi([], dict(env, TARGET_VERSION="1"))  # entrypoint: goto, one service's
    assert res.returncode == 2, res
    assert all(untouched(d[2]) for d in dbs.values())
    assert run_mi(["up"], env).returncode == 0
    res = run_mi(["-service", "users", "version"], env)
    assert res.returncode == 0 and res.stdout.strip() == "2", res
    res = run_mi(["-service", "users", "down", "-all"], env)
    assert res.returncode == 0, res
    assert version_of(dbs["users"][2]) == (-1, False)
    assert version_of(dbs["orders"][2]) == (2, False)


def test_service_flag_without_central_layout(migdir, db_url, tmp_path):
    write_migrations(migdir, {"1_a.up.json": [ins("a", 1)]})
    res = run_mi(["-service", "users", "up"], {"DATABASE_URL": db_url, "MIGRATION_DIR": migdir})
    assert res.returncode == 2, res
