"""The data-loss lint (src/lint.h), through the real binary.

validate reports every file's findings (warnings; -strict: exit 3), up warns
about the files its plan runs before the first of them, and a rule is
silenced per file by a YAML comment or the registry's lint key. The seed
article's own migrations (migrations-example/mongodb/) are flagged: each
pipeline $matches, then $outs into the collection it read. The README's fix
($merge with whenMatched replace) is not. The per-rule positive and negative
cases are in tests/unit/test_lint.c.
"""

import json
import shutil

from conftest import REPO, applied_logs, applied_versions, msgs, run_mi, write_migrations

SEED = REPO / "migrations-example" / "mongodb"
LOSES = "this migration may lose data"


def findings(res):
    return sorted((r["file"].rsplit("/", 1)[-1], r["command"], r["rule"]) for r in res.logs if r.get("msg") == LOSES)


def test_the_seed_examples_are_flagged(tmp_path):
    res = run_mi(["-path", SEED, "validate"])
    assert res.returncode == 0, res
    assert findings(res) == [
        ("000001_add_user_preferences.down.json", 0, "out-replaces-collection"),
        ("000001_add_user_preferences.up.json", 0, "out-replaces-collection"),
        ("000002_restructure_order_items.down.json", 0, "out-replaces-collection"),
        ("000002_restructure_order_items.up.json", 0, "out-replaces-collection"),
    ], res
    assert all(r["detail"] == "$match" and "$out" in r["why"] for r in res.logs if r.get("msg") == LOSES)
    assert "lint: 4 warnings" in res.stdout, res
    strict = run_mi(["-path", SEED, "validate", "-strict"])
    assert strict.returncode == 3, strict
    assert "validate -strict: lint warnings fail validation" in msgs(strict)


def test_the_seed_examples_fixed_are_not(tmp_path):
    """The README's fix: $merge into the same collection, whenMatched replace,
    in place of $out (documents the $match leaves out are kept)."""
    fixed = tmp_path / "fixed"
    shutil.copytree(SEED, fixed)
    for f in fixed.glob("*.json"):
        body = json.loads(f.read_text())
        for cmd in body:
            for stage in cmd.get("pipeline", []):
                if "$out" in stage:
                    stage["$merge"] = {"into": stage.pop("$out"), "on": "_id", "whenMatched": "replace"}
        f.write_text(json.dumps(body))
    res = run_mi(["-path", fixed, "validate", "-strict"])
    assert res.returncode == 0, res
    assert findings(res) == [] and "lint:" not in res.stdout, res


def test_the_demo_sets_are_clean():
    for d in (REPO / "migrations-example", REPO / "migrations-example" / "yaml"):
        res = run_mi(["-path", d, "validate", "-strict"])
        assert res.returncode == 0 and findings(res) == [], res


DROPS = {
    "1_users.up.json": [{"insert": "users", "documents": [{"_id": 1}]}],
    "1_users.down.json": [{"drop": "users"}],
    "2_drop_legacy.up.json": [{"insert": "audit", "documents": [{"_id": 1}]}, {"drop": "legacy"}],
}


def test_up_warns_about_the_files_it_runs_before_the_first(tmp_path, db_url, db):
    d = tmp_path / "m"
    write_migrations(d, DROPS)
    db["legacy"].insert_one({"_id": 1})
    # up 1 runs only the harmless file: no warning about file 2.
    one = run_mi(["-path", d, "-database", db_url, "up", "1"])
    assert one.returncode == 0 and findings(one) == [], one
    res = run_mi(["-path", d, "-database", db_url, "up"], env={"LOG_LEVEL": "debug"})
    assert res.returncode == 0, res
    assert msgs(res).index(LOSES) < msgs(res).index("lock acquired"), "warned after writing"
    assert findings(res) == [("2_drop_legacy.up.json", 0, "destructive-without-down"),
                             ("2_drop_legacy.up.json", 1, "drop-collection")], res
    first_applied = next(i for i, r in enumerate(res.logs) if r in applied_logs(res, "up"))
    assert msgs(res).index(LOSES) < first_applied, res
    assert applied_versions(res) == [2]  # a warning, not a refusal
    assert "legacy" not in db.list_collection_names()


def test_a_yaml_comment_silences_a_rule_for_its_file(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "1_a.up.yaml").write_text("- drop: legacy   # migrate-init: allow drop-collection\n")
    (d / "1_a.down.yaml").write_text("- create: legacy\n")
    (d / "2_b.up.yaml").write_text("- drop: other\n")
    (d / "2_b.down.yaml").write_text("- create: other\n")
    res = run_mi(["-path", d, "validate", "-strict"])
    assert res.returncode == 3, res
    assert findings(res) == [("2_b.up.yaml", 0, "drop-collection")], res


def test_the_registry_lint_key_silences_json_files(tmp_path):
    d = tmp_path / "m"
    write_migrations(d, {
        "1_a.up.json": [{"delete": "sessions", "deletes": [{"q": {}, "limit": 0}]}],
        "1_a.down.json": [],
        "2_b.up.json": [{"renameCollection": "app.tmp", "to": "app.users", "dropTarget": True}],
        "2_b.down.json": [],
    })
    (d / ".migration-registry.yaml").write_text(
        "service: app\nlint:\n  1_a.up.json: [delete-all]\n")
    res = run_mi(["-path", d, "validate"])
    assert res.returncode == 0, res
    assert findings(res) == [("2_b.up.json", 0, "rename-drop-target")], res
    (d / ".migration-registry.yaml").write_text(
        "service: app\nlint:\n  1_a.up.json: [delete-all]\n  2_b.up.json: [rename-drop-target]\n")
    res = run_mi(["-path", d, "validate", "-strict"])
    assert res.returncode == 0 and findings(res) == [], res


def test_a_malformed_lint_key_is_a_source_error(tmp_path):
    d = tmp_path / "m"
    write_migrations(d, {"1_a.up.json": [], "1_a.down.json": []})
    (d / ".migration-registry.yaml").write_text("service: app\nlint:\n  1_a.up.json: delete-all\n")
    res = run_mi(["-path", d, "validate"])
    assert res.returncode == 3, res
    assert any(r.get("msg") == "invalid migration registry" and "list" in r.get("error", "") for r in res.logs), res
