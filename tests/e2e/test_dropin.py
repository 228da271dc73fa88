"""Drop-in at the edges real users hit: each case runs golang-migrate v4.20.1
and migrate-init side by side, on two fresh databases of one FerretDB, and
compares what they leave (exit status, state, data). Where we differ on
purpose, the README's "Deliberate differences" says so and the test says
what we do instead.
"""

import os

import pytest

from conftest import (
    items,
    run_gm,
    run_mi,
    state,
    write_migrations,
)

UP_ONLY = {"1_first.up.json": [{"insert": "items", "documents": [{"_id": 1}]}],
           "2_second.up.json": [{"insert": "items", "documents": [{"_id": 2}]}]}


def both(new_db, source_args, *cmd, query="", cwd=None):
    """Runs cmd with each tool on its own fresh database: [(result, db)] for gm, mi."""
    out = []
    for run in (run_gm, run_mi):
        name, url, db = new_db()
        if query:
            url += "?" + query
        out.append((run([*source_args, "-database", url, *cmd], cwd=cwd), db))
    return out


def same_outcome(runs, rc=0):
    (g, gdb), (m, mdb) = runs
    assert g.returncode == rc, g
    assert m.returncode == rc, m
    assert state(gdb) == state(mdb), (state(gdb), state(mdb))
    assert items(gdb) == items(mdb)
    return mdb


# --------------------------------------------------------------------------
# 1. create, fill in the up file only, up


def test_empty_down_files_from_create_do_not_block_up(new_db, tmp_path):
    d = tmp_path / "m"
    for name in ("first", "second"):
        assert run_gm(["create", "-ext", "json", "-dir", d, "-seq", name]).returncode == 0
    (d / "000001_first.up.json").write_text('[{"insert": "items", "documents": [{"_id": 1}]}]')
    (d / "000002_second.up.json").write_text('[{"insert": "items", "documents": [{"_id": 2}]}]')
    assert (d / "000001_first.down.json").read_text() == ""
    runs = both(new_db, ["-path", d], "up")
    mdb = same_outcome(runs)
    assert state(mdb) == [{"version": 2, "dirty": False}]
    m = runs[1][0]
    warned = [r for r in m.logs if r["msg"].startswith("a migration file this run does not need is broken")]
    assert len(warned) == 2 and all("down.json" in r["file"] for r in warned), m

    # down needs the empty file: refused before anything is written (golang-migrate
    # fails on it after marking the version dirty).
    down = run_mi(["-path", d, "-database", _url(mdb), "down", "1"])
    assert down.returncode == 3, down
    assert "the file is empty" in down.stderr, down
    assert state(mdb) == [{"version": 2, "dirty": False}]
    assert run_mi(["-path", d, "validate"]).returncode == 3


def _url(db):
    host, port = db.client.address
    return f"mongodb://{host}:{port}/{db.name}"


def test_broken_file_the_run_needs_still_fails_before_writing(new_db, tmp_path):
    d = write_migrations(tmp_path / "m", {**UP_ONLY, "3_third.up.json": "[not json"})
    name, url, db = new_db()
    res = run_mi(["-path", d, "-database", url, "up"])
    assert res.returncode == 3, res
    assert "3_third.up.json" in res.stderr
    assert db.list_collection_names() == []
    # up 2 does not need it
    res = run_mi(["-path", d, "-database", url, "up", "2"])
    assert res.returncode == 0, res
    assert state(db) == [{"version": 2, "dirty": False}]


# --------------------------------------------------------------------------
# 2, 3. URL options the Go driver takes


GO_OPTIONS = ["connect=direct", "connect=automatic", "timeoutMS=5000", "maxConnecting=2",
              "slaveOk=true", "uuidRepresentation=standard", "sslInsecure=false",
              # Alone, these do not mean "use TLS" to the Go driver: plain text.
              "tlsInsecure=false", "tlsAllowInvalidCertificates=true", "tlsAllowInvalidHostnames=true"]


@pytest.mark.parametrize("option", GO_OPTIONS)
def test_url_options_golang_migrate_takes(option, new_db, tmp_path):
    d = write_migrations(tmp_path / "m", UP_ONLY)
    runs = both(new_db, ["-path", d], "up", query=option)
    same_outcome(runs)
    m = runs[1][0]
    dropped = [r for r in m.logs if r["msg"].startswith("ignoring a URL option")]
    key = option.split("=")[0]
    if key in ("timeoutMS", "maxConnecting", "slaveOk", "uuidRepresentation"):
        assert [r["option"] for r in dropped] == [key], m
    else:
        assert not dropped, m


# --------------------------------------------------------------------------
# 4. State documents written by hand or by other tools


@pytest.mark.parametrize("doc", [{"version": 1}, {"version": 1, "dirty": None}, {"version": 1, "dirty": 0}],
                         ids=["dirty-missing", "dirty-null", "dirty-0"])
def test_state_without_a_real_dirty_flag_is_clean(doc, new_db, tmp_path):
    d = write_migrations(tmp_path / "m", UP_ONLY)
    dbs = []
    for run in (run_gm, run_mi):
        name, url, db = new_db()
        db.schema_migrations.insert_one(dict(doc))
        res = run(["-path", d, "-database", url, "up"])
        assert res.returncode == 0, res
        dbs.append(db)
    assert state(dbs[0]) == state(dbs[1]) == [{"version": 2, "dirty": False}]
    assert items(dbs[0]) == items(dbs[1]) == [2]


def test_two_state_documents_leave_one(new_db, tmp_path):
    d = write_migrations(tmp_path / "m", UP_ONLY)
    dbs = []
    for run in (run_gm, run_mi):
        name, url, db = new_db()
        db.schema_migrations.insert_many([{"version": 1, "dirty": False}, {"version": 7, "dirty": True}])
        res = run(["-path", d, "-database", url, "up"])
        assert res.returncode == 0, res
        dbs.append(db)
    assert state(dbs[0]) == state(dbs[1]) == [{"version": 2, "dirty": False}]


# --------------------------------------------------------------------------
# 5. -source file:// URLs


def test_source_url_is_percent_decoded(new_db, tmp_path):
    d = write_migrations(tmp_path / "my migrations", UP_ONLY)
    src = "file://" + str(d).replace(" ", "%20")
    same_outcome(both(new_db, ["-source", src], "up"))


def test_source_url_without_a_path_is_the_working_directory(new_db, tmp_path):
    d = write_migrations(tmp_path / "here", UP_ONLY)
    same_outcome(both(new_db, ["-source", "file://"], "up", cwd=d))
