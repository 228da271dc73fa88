"""Core commands of migrate-init against a real FerretDB.

Every test checks the data (collection "items") AND the state document in
schema_migrations with pymongo after each step, so nothing passes on exit
codes alone.
"""

import json
import re
import socket

from conftest import (
    CANARY_PASSWORD,
    STANDARD_NAMES,
    applied_logs,
    index_names,
    items,
    lock_free,
    raw_collection,
    run_gm,
    run_mi,
    state,
    user_collections,
    write_standard,
)

DIRTY_MSG = "Dirty database version {}. Fix and force version."


def mi(migdir, url, *args, **kw):
    return run_mi(["-path", migdir, "-database", url, *args], **kw)


def ok(res):
    assert res.returncode == 0, res
    return res


# --------------------------------------------------------------------------
# up / down / goto / force / version / drop


def test_up_applies_everything_and_logs_each_migration(db_url, db, migdir):
    write_standard(migdir)
    res = ok(mi(migdir, db_url, "up"))
    assert res.stdout == "", "up must print nothing on stdout"
    assert items(db) == [1, 2, 3, 4]
    assert "by_name" in index_names(db)
    assert state(db) == [{"version": 4, "dirty": False}]
    assert lock_free(db)

    logs = applied_logs(res)
    assert [r["version"] for r in logs] == [1, 2, 3, 4], res.stderr
    for r in logs:
        assert r["direction"] == "up"
        assert STANDARD_NAMES[r["version"]] in str(r["name"])
        assert isinstance(r["version"], int)
        assert isinstance(r["duration_ms"], (int, float)) and r["duration_ms"] >= 0


def test_up_again_is_no_change_exit_0(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up"))
    res = ok(mi(migdir, db_url, "up"))
    assert applied_logs(res) == []
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]


def test_up_n(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "2"))
    assert items(db) == [1, 2]
    assert state(db) == [{"version": 2, "dirty": False}]
    res = ok(mi(migdir, db_url, "up", "1"))
    assert [r["version"] for r in applied_logs(res)] == [3]
    assert items(db) == [1, 2, 3]
    assert state(db) == [{"version": 3, "dirty": False}]
    ok(mi(migdir, db_url, "up", "1"))
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]


def test_down_n(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up"))
    res = ok(mi(migdir, db_url, "down", "2"))
    logs = applied_logs(res)
    assert [(r["version"], r["direction"]) for r in logs] == [(4, "down"), (3, "down")], res.stderr
    assert items(db) == [1, 2]
    assert state(db) == [{"version": 2, "dirty": False}]
    res = ok(mi(migdir, db_url, "down", "1"))
    assert items(db) == [1]
    assert "by_name" not in index_names(db)
    assert state(db) == [{"version": 1, "dirty": False}]
    assert lock_free(db)


def test_down_all(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up"))
    res = ok(mi(migdir, db_url, "down", "-all"))
    assert [r["version"] for r in applied_logs(res, "down")] == [4, 3, 2, 1]
    assert "items" not in db.list_collection_names()  # 1.down drops it
    # golang-migrate leaves {version: -1, dirty: false} after down -all
    # (test_interop checks that baseline); exactly one document.
    assert state(db) == [{"version": -1, "dirty": False}]
    res = ok(mi(migdir, db_url, "version"))
    assert res.stdout == "no migration\n"


def test_goto_forward_and_back(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "goto", "3"))
    assert items(db) == [1, 2, 3]
    assert state(db) == [{"version": 3, "dirty": False}]
    res = ok(mi(migdir, db_url, "goto", "1"))
    assert [(r["version"], r["direction"]) for r in applied_logs(res)] == [(3, "down"), (2, "down")]
    assert items(db) == [1]
    assert state(db) == [{"version": 1, "dirty": False}]
    ok(mi(migdir, db_url, "goto", "4"))
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]
    res = ok(mi(migdir, db_url, "goto", "4"))  # no change
    assert applied_logs(res) == []
    assert state(db) == [{"version": 4, "dirty": False}]


def test_goto_unknown_version_fails_and_changes_nothing(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "2"))
    res = mi(migdir, db_url, "goto", "7")
    assert res.returncode != 0, res
    assert items(db) == [1, 2]
    assert state(db) == [{"version": 2, "dirty": False}]


def test_force_sets_version_without_running_anything(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "2"))
    res = ok(mi(migdir, db_url, "force", "4"))
    assert applied_logs(res) == []
    assert items(db) == [1, 2]
    assert state(db) == [{"version": 4, "dirty": False}]
    ok(mi(migdir, db_url, "force", "--", "-1"))  # golang-migrate's spelling
    assert items(db) == [1, 2]
    assert state(db) == [{"version": -1, "dirty": False}]
    assert ok(mi(migdir, db_url, "version")).stdout == "no migration\n"


def test_force_minus_one_without_double_dash(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "1"))
    ok(mi(migdir, db_url, "force", "-1"))
    assert state(db) == [{"version": -1, "dirty": False}]
    assert items(db) == [1]


def test_force_below_minus_one_is_usage_error(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "1"))
    res = mi(migdir, db_url, "force", "--", "-2")
    assert res.returncode == 2, res
    assert state(db) == [{"version": 1, "dirty": False}]


def test_version_output(db_url, db, migdir):
    write_standard(migdir)
    res = ok(mi(migdir, db_url, "version"))
    assert res.stdout == "no migration\n"
    assert state(db) == [], "version must not write a state document"
    ok(mi(migdir, db_url, "up", "2"))
    res = ok(mi(migdir, db_url, "version"))
    assert res.stdout == "2\n"
    db["schema_migrations"].update_one({}, {"$set": {"dirty": True}})
    res = ok(mi(migdir, db_url, "version"))
    assert res.stdout == "2 (dirty)\n"


def test_drop_f_drops_everything(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up"))
    db["other"].insert_one({"_id": "unrelated"})
    assert "items" in user_collections(db)
    ok(mi(migdir, db_url, "drop", "-f"))
    assert user_collections(db) == []
    assert ok(mi(migdir, db_url, "version")).stdout == "no migration\n"
    ok(mi(migdir, db_url, "up"))  # and it can start over
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]


def test_state_document_types_match_golang_migrate(db_url, db, migdir):
    """version is int32 when it fits (else int64), dirty a boolean, as golang-migrate writes."""
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "1"))
    docs = list(raw_collection(db, "schema_migrations").find())
    assert len(docs) == 1
    raw = bytes(docs[0].raw)
    assert b"\x10version\x00\x01\x00\x00\x00" in raw, raw.hex()
    assert b"\x08dirty\x00\x00" in raw, raw.hex()


# --------------------------------------------------------------------------
# Failing migration -> dirty


def failing_set(migdir):
    """1, 2 good; 3's up fails at command index 4 (0-based) after inserting 3."""
    write_standard(
        migdir,
        {
            "003_third.up.json": [
                {"insert": "items", "documents": [{"_id": 3}]},
                {"insert": "items", "documents": [{"_id": 31}]},
                {"insert": "items", "documents": [{"_id": 32}]},
                {"insert": "items", "documents": [{"_id": 33}]},
                {"bogusCommand": 1},
                {"insert": "items", "documents": [{"_id": 34}]},
            ]
        },
    )


def test_failing_migration_leaves_dirty_then_force_clears(db_url, db, migdir):
    failing_set(migdir)
    res = mi(migdir, db_url, "up")
    assert res.returncode == 7, res
    assert state(db) == [{"version": 3, "dirty": True}]
    assert items(db) == [1, 2, 3, 31, 32, 33]  # no transactions: earlier commands stay
    assert lock_free(db)

    # The error names the file, the command (index and name), the server's code/message.
    errors = [r for r in res.logs if str(r.get("level", "")).lower() in ("error", "fatal")]
    assert errors, res.stderr
    text = " ".join(json.dumps({k: v for k, v in r.items() if k != "time"}) for r in errors)
    assert "003_third.up.json" in text, text
    assert "bogusCommand" in text, text
    assert re.search(r"\b[45]\b", text), f"command index (4, or 5 counted from 1) missing: {text}"
    assert "59" in text or "CommandNotFound" in text, text
    assert "no such command" in text, text

    assert ok(mi(migdir, db_url, "version")).stdout == "3 (dirty)\n"

    for args in (["up"], ["down", "1"], ["goto", "1"], ["up", "1"], ["down", "-all"], ["goto", "4"]):
        res = mi(migdir, db_url, *args)
        assert res.returncode == 8, (args, res)
        assert DIRTY_MSG.format(3) in res.stderr, (args, res)
        assert applied_logs(res) == []
        assert state(db) == [{"version": 3, "dirty": True}]
        assert items(db) == [1, 2, 3, 31, 32, 33]
        assert lock_free(db)

    ok(mi(migdir, db_url, "force", "3"))
    assert state(db) == [{"version": 3, "dirty": False}]
    ok(mi(migdir, db_url, "down", "1"))  # 3.down deletes _id 3
    assert items(db) == [1, 2, 31, 32, 33]
    assert state(db) == [{"version": 2, "dirty": False}]


def test_failing_down_migration_leaves_dirty_at_target(db_url, db, migdir):
    write_standard(migdir, {"4_fourth.down.json": [{"bogusCommand": 1}]})
    ok(mi(migdir, db_url, "up"))
    res = mi(migdir, db_url, "down", "1")
    assert res.returncode == 7, res
    # a down migration's target is the previous version
    assert state(db) == [{"version": 3, "dirty": True}]
    assert items(db) == [1, 2, 3, 4]


# --------------------------------------------------------------------------
# Non-tty refusals


def test_plain_down_refused_without_tty(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up"))
    res = mi(migdir, db_url, "down", input="y\n")
    assert res.returncode == 2, res
    assert re.search(r"(?<![\w-])-all\b", res.stderr), res
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]


def test_drop_without_f_refused_without_tty(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up"))
    before = user_collections(db)
    res = mi(migdir, db_url, "drop", input="y\n")
    assert res.returncode == 2, res
    assert re.search(r"(?<![\w-])-f\b", res.stderr), res
    assert user_collections(db) == before
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]


# --------------------------------------------------------------------------
# Entrypoint mode (no command)


def test_entrypoint_applies_everything(db_url, db, migdir):
    write_standard(migdir)
    res = run_mi([], env={"DATABASE_URL": db_url, "MIGRATION_DIR": migdir})
    assert res.returncode == 0, res
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]
    res = run_mi([], env={"DATABASE_URL": db_url, "MIGRATION_DIR": migdir})
    assert res.returncode == 0, res  # second start of the pod: no change
    assert state(db) == [{"version": 4, "dirty": False}]


def test_entrypoint_target_version(db_url, db, migdir):
    write_standard(migdir)
    env = {"DATABASE_URL": db_url, "MIGRATION_DIR": migdir, "TARGET_VERSION": "2"}
    ok(run_mi([], env=env))
    assert items(db) == [1, 2]
    assert state(db) == [{"version": 2, "dirty": False}]
    ok(run_mi([], env={"DATABASE_URL": db_url, "MIGRATION_DIR": migdir}))
    assert items(db) == [1, 2, 3, 4]
    assert state(db) == [{"version": 4, "dirty": False}]
    ok(run_mi([], env=env))  # back down to 2
    assert items(db) == [1, 2]
    assert state(db) == [{"version": 2, "dirty": False}]


def test_entrypoint_dirty_database_exits_8(db_url, db, migdir):
    write_standard(migdir)
    db["schema_migrations"].insert_one({"version": 2, "dirty": True})
    res = run_mi([], env={"DATABASE_URL": db_url, "MIGRATION_DIR": migdir})
    assert res.returncode == 8, res
    assert DIRTY_MSG.format(2) in res.stderr
    assert "items" not in db.list_collection_names()
    assert state(db) == [{"version": 2, "dirty": True}]


# --------------------------------------------------------------------------
# Flags and configuration


def test_flag_spellings(db_url, db, migdir):
    write_standard(migdir)
    ok(run_mi([f"-path={migdir}", f"-database={db_url}", "up", "1"]))
    assert state(db) == [{"version": 1, "dirty": False}]
    ok(run_mi(["--path", migdir, "--database", db_url, "up", "1"]))
    assert state(db) == [{"version": 2, "dirty": False}]
    ok(run_mi(["-source", f"file://{migdir}", "-database", db_url, "up", "1"]))
    assert state(db) == [{"version": 3, "dirty": False}]
    ok(run_mi([f"--source=file://{migdir}", "-verbose", "-prefetch", "3", "-lock-timeout", "5",
               "-database", db_url, "up", "1"]))
    assert state(db) == [{"version": 4, "dirty": False}]
    assert items(db) == [1, 2, 3, 4]


def test_env_database_url_and_flag_precedence(db_url, db, migdir, new_db):
    write_standard(migdir)
    ok(run_mi(["-path", migdir, "up", "1"], env={"DATABASE_URL": db_url}))
    assert state(db) == [{"version": 1, "dirty": False}]
    _, other_url, other = new_db()
    ok(run_mi(["-path", migdir, "-database", other_url, "up", "2"], env={"DATABASE_URL": db_url}))
    assert state(other) == [{"version": 2, "dirty": False}]
    assert state(db) == [{"version": 1, "dirty": False}]


def test_migration_dir_env(db_url, db, migdir):
    write_standard(migdir)
    ok(run_mi(["-database", db_url, "up"], env={"MIGRATION_DIR": migdir}))
    assert state(db) == [{"version": 4, "dirty": False}]


def test_text_log_format(db_url, db, migdir):
    write_standard(migdir)
    res = ok(run_mi(["-path", migdir, "-database", db_url, "up"], env={"LOG_FORMAT": "text"}))
    assert res.stdout == ""
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert lines, "text mode logged nothing"
    not_json = 0
    for l in lines:
        try:
            json.loads(l)
        except ValueError:
            not_json += 1
    assert not_json == len(lines), f"LOG_FORMAT=text still printed JSON: {res.stderr}"
    assert state(db) == [{"version": 4, "dirty": False}]


def test_version_and_help_flags():
    for flag in ("-version", "--version"):
        res = run_mi([flag])
        assert res.returncode == 0, res
        assert res.stdout.strip() != ""
    # The version alone first (what golang-migrate prints), then the build.
    lines = run_mi(["-version"]).stdout.splitlines()
    assert re.fullmatch(r"\d+\.\d+\.\d+", lines[0]), lines
    assert re.fullmatch(r"commit [0-9a-f]{40}(-dirty)?|commit unknown", lines[1]), lines
    names = [l.split()[0] for l in lines[2:]]
    assert sorted(names) == sorted([names[0], "openssl", "libmongoc", "libbson", "libyaml"]) and names[0] in ("glibc", "musl"), lines
    assert all(re.fullmatch(r"\S+ \d[\w.]* \(Debian source \S+ \S+\)", l) for l in lines[2:]), lines
    j = json.loads(run_mi(["-version", "-json"]).stdout)
    assert j["version"] == lines[0] and j["commit"] == lines[1].split()[1], j
    assert [c["name"] for c in j["components"]] == names
    assert all(c["debian_version"] and c["version"] for c in j["components"]), j
    bad = run_mi(["-json"])
    assert bad.returncode == 2 and "-json goes with -version" in bad.stderr, bad
    res = run_mi(["-help"])
    assert res.returncode == 0, res
    assert "force" in res.stdout + res.stderr


def test_explicit_json_log_format(db_url, db, migdir):
    write_standard(migdir)
    res = ok(run_mi(["-path", migdir, "-database", db_url, "up", "1"], env={"LOG_FORMAT": "json"}))
    assert [r["version"] for r in applied_logs(res)] == [1]  # run_mi checked every line is JSON


def test_custom_migrations_collection(ferret_url, dbname, db, migdir):
    write_standard(migdir)
    url = ferret_url(dbname, **{"x-migrations-collection": "my_versions"})
    ok(mi(migdir, url, "up", "3"))
    assert "schema_migrations" not in db.list_collection_names()
    assert state(db, "my_versions") == [{"version": 3, "dirty": False}]
    assert ok(mi(migdir, url, "version")).stdout == "3\n"


def test_custom_lock_collection(ferret_url, dbname, db, migdir):
    write_standard(migdir)
    url = ferret_url(dbname, **{"x-advisory-lock-collection": "my_lock"})
    ok(mi(migdir, url, "up"))
    assert "my_lock" in db.list_collection_names()
    assert "migrate_advisory_lock" not in db.list_collection_names()
    assert lock_free(db, "my_lock")


def test_lock_document_and_index_are_golang_migrate_compatible(db_url, db, migdir):
    write_standard(migdir)
    ok(mi(migdir, db_url, "up", "1"))
    ixs = {ix["name"]: ix for ix in db["migrate_advisory_lock"].list_indexes()}
    assert "lock_unique_key" in ixs, ixs
    assert dict(ixs["lock_unique_key"]["key"]) == {"locking_key": -1}
    assert ixs["lock_unique_key"].get("unique") is True
    assert lock_free(db)


def test_held_lock_times_out_with_exit_6(ferret_url, dbname, db, migdir):
    """A golang-migrate lock document (as a running golang-migrate writes it) excludes us."""
    write_standard(migdir)
    import datetime

    db["migrate_advisory_lock"].insert_one(
        {"locking_key": 0, "pid": 4242, "hostname": "other-pod", "created_at": datetime.datetime.utcnow()}
    )
    url = ferret_url(dbname, **{"x-advisory-lock-timeout": "1", "x-advisory-lock-timeout-interval": "1"})
    res = run_mi(["-path", migdir, "-database", url, "-lock-timeout", "1", "up"], timeout=40)
    assert res.returncode == 6, res
    assert "items" not in db.list_collection_names()
    assert state(db) == []
    # the other holder's lock is still there: we must not delete a lock we do not own
    assert db["migrate_advisory_lock"].count_documents({"locking_key": 0, "pid": 4242}) == 1


def test_advisory_locking_false_ignores_lock(ferret_url, dbname, db, migdir):
    write_standard(migdir)
    db["migrate_advisory_lock"].insert_one({"locking_key": 0, "pid": 4242})
    url = ferret_url(dbname, **{"x-advisory-locking": "false"})
    ok(mi(migdir, url, "up"))
    assert state(db) == [{"version": 4, "dirty": False}]


def test_transaction_mode_on_ferretdb_fails_cleanly(ferret_url, dbname, db, migdir):
    write_standard(migdir)
    url = ferret_url(dbname, **{"x-transaction-mode": "true"})
    res = mi(migdir, url, "up")
    assert res.returncode != 0, res
    assert "transaction" in res.stderr.lower(), res
    assert items(db) == []
    assert {"version": 1, "dirty": False} not in state(db)
    assert len(state(db)) <= 1


# --------------------------------------------------------------------------
# Usage / configuration errors (exit 2), unreachable (4), auth (5)
# Each also carries the canary password in the URL (run_mi checks it never leaks).


def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_missing_database_url_is_exit_2(migdir):
    write_standard(migdir)
    res = run_mi(["-path", migdir, "up"])
    assert res.returncode == 2, res


def test_unknown_flag_and_command_are_exit_2(migdir, db_url, db):
    write_standard(migdir)
    for args in (["-bogus-flag", "up"], ["frobnicate"], ["up", "abc"], ["goto"], ["down", "x"]):
        res = run_mi(["-path", migdir, "-database", db_url, *args])
        assert res.returncode == 2, (args, res)
    assert user_collections(db) == []


def test_url_without_database_name_is_exit_2(ferretdb, migdir):
    write_standard(migdir)
    for url in (
        f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/",
        f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}",
        f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/?x-migrations-collection=a",
    ):
        res = run_mi(["-path", migdir, "-database", url, "up"])
        assert res.returncode == 2, (url, res)


def test_bad_x_options_are_exit_2(ferretdb, dbname, db, migdir):
    write_standard(migdir)
    base = f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/{dbname}?"
    for q in (
        "x-advisory-locking=maybe",
        "x-transaction-mode=perhaps",
        "x-advisory-lock-timeout=abc",
        "x-advisory-lock-timeout-interval=abc",
        "x-advisory-lock-timeout-interval=1&x-advisory-lock-timout-interval=1",
    ):
        res = run_mi(["-path", migdir, "-database", base + q, "up"])
        assert res.returncode == 2, (q, res)
    assert user_collections(db) == []


def test_unreachable_database_is_exit_4(migdir):
    write_standard(migdir)
    url = f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{_closed_port()}/e2e_unreachable?connectTimeoutMS=2000&serverSelectionTimeoutMS=3000"
    # migrate-init waits for the database (MAX_RETRIES x RETRY_INTERVAL, default 30 x 2s):
    # keep that short here; the run must still end with "unreachable", not hang.
    res = run_mi(["-path", migdir, "-database", url, "up"],
                 env={"MAX_RETRIES": "2", "RETRY_INTERVAL": "1s"}, timeout=30)
    assert res.returncode == 4, res


def test_auth_failure_is_exit_5(ferretdb, dbname, db, migdir):
    """FerretDB's SQLite backend rejects SCRAM: an authentication failure."""
    write_standard(migdir)
    url = f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/{dbname}"
    res = run_mi(["-path", migdir, "-database", url, "up"], timeout=45)
    assert res.returncode == 5, res
    assert "items" not in db.list_collection_names()
    assert state(db) == []


def test_canary_password_not_logged_on_success(ferretdb, dbname, db, migdir):
    """PLAIN is accepted (not checked) by FerretDB/SQLite: a full verbose run with a password in the URL."""
    write_standard(migdir)
    url = f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/{dbname}?authMechanism=PLAIN"
    res = run_mi(["-verbose", "-path", migdir, "-database", url, "up"], env={"LOG_LEVEL": "debug"})
    assert res.returncode == 0, res
    assert state(db) == [{"version": 4, "dirty": False}]


def test_golang_migrate_accepts_plain_auth_url(ferretdb, dbname, db, migdir):
    """Baseline for the test above: the PLAIN URL really works against this FerretDB."""
    write_standard(migdir)
    url = f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/{dbname}?authMechanism=PLAIN"
    res = run_gm(["-path", migdir, "-database", url, "up"])
    assert res.returncode == 0, res
    assert state(db) == [{"version": 4, "dirty": False}]
