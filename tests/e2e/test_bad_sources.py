"""Invalid migration sources: exit 3, a clear message, and the database untouched.

Everything a run needs is read and parsed before the database is touched, so
a bad migration 3 stops `up` from an empty database before 1 and 2 are
applied (golang-migrate would apply 1 and 2 first: a deliberate difference).
"Untouched" means not a single collection created (no state, no lock).
"""

import pytest

from conftest import CANARY_PASSWORD, items, run_gm, run_mi, state, user_collections, write_migrations, write_standard

BAD_BODIES = {
    "malformed_json": '[{"insert": "items", "documents": [{"_id": 3}]}',
    "trailing_garbage": '[{"insert": "items", "documents": [{"_id": 3}]}] xyz',
    "object_not_array": '{"insert": "items", "documents": [{"_id": 3}]}',
    "array_of_numbers": "[1, 2, 3]",
    "array_of_strings": '["insert"]',
    "nested_array_element": '[[{"insert": "items"}]]',
    "empty_file": "",
    "whitespace_only": " \n\t\n",
    "bad_oid": '[{"insert": "items", "documents": [{"_id": {"$oid": "xyz"}}]}]',
    "bad_numberlong": '[{"insert": "items", "documents": [{"_id": 3, "v": {"$numberLong": "12a"}}]}]',
    "bad_binary_base64": '[{"insert": "items", "documents": [{"_id": 3, "v": {"$binary": {"base64": "!!", "subType": "00"}}}]}]',
    "invalid_utf8": b'[{"insert": "items", "documents": [{"_id": 3, "v": "\xff\xfe"}]}]',
}


def assert_untouched(db):
    assert user_collections(db) == [], "the database must not be touched at all"


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_body_in_migration_3_applies_nothing(case, db_url, db, migdir):
    write_standard(migdir, {"003_third.up.json": BAD_BODIES[case]})
    res = run_mi(["-path", migdir, "-database", db_url, "up"])
    assert res.returncode == 3, res
    assert "003_third.up.json" in res.stderr, f"message must name the file: {res.stderr}"
    assert_untouched(db)


def test_bad_body_in_entrypoint_mode(db_url, db, migdir):
    write_standard(migdir, {"003_third.up.json": "[1, 2]"})
    res = run_mi([], env={"DATABASE_URL": db_url, "MIGRATION_DIR": migdir})
    assert res.returncode == 3, res
    assert_untouched(db)


def test_bad_body_with_existing_state_changes_nothing(db_url, db, migdir):
    """Already at 2 (applied by golang-migrate): a bad 3 leaves data and state as they were."""
    write_standard(migdir)
    assert run_gm(["-path", migdir, "-database", db_url, "up", "2"]).returncode == 0
    before = (items(db), state(db), user_collections(db))
    write_standard(migdir, {"003_third.up.json": '{"not": "an array"}'})
    res = run_mi(["-path", migdir, "-database", db_url, "up"])
    assert res.returncode == 3, res
    assert (items(db), state(db), user_collections(db)) == before


def test_bad_down_body_blocks_down(db_url, db, migdir):
    write_standard(migdir)
    assert run_mi(["-path", migdir, "-database", db_url, "up"]).returncode == 0
    write_standard(migdir, {"003_third.down.json": "[1]"})
    res = run_mi(["-path", migdir, "-database", db_url, "down", "2"])
    assert res.returncode == 3, res
    assert "003_third.down.json" in res.stderr
    assert items(db) == [1, 2, 3, 4]  # 4.down was not run either
    assert state(db) == [{"version": 4, "dirty": False}]


def test_duplicate_versions_name_both_files(db_url, db, migdir):
    write_migrations(
        migdir,
        {
            "1_x.up.json": [{"insert": "items", "documents": [{"_id": 1}]}],
            "01_y.up.json": [{"insert": "items", "documents": [{"_id": 2}]}],
        },
    )
    res = run_mi(["-path", migdir, "-database", db_url, "up"])
    assert res.returncode == 3, res
    assert "1_x.up.json" in res.stderr and "01_y.up.json" in res.stderr, res.stderr
    assert_untouched(db)


def test_duplicate_down_versions(db_url, db, migdir):
    write_standard(migdir, {"0004_other.down.json": "[]"})
    res = run_mi(["-path", migdir, "-database", db_url, "up"])
    assert res.returncode == 3, res
    assert "4_fourth.down.json" in res.stderr and "0004_other.down.json" in res.stderr, res.stderr
    assert_untouched(db)


def test_golang_migrate_also_rejects_duplicates(db_url, migdir):
    """Baseline: duplicates are an error in golang-migrate too."""
    write_migrations(migdir, {"1_x.up.json": "[]", "01_y.up.json": "[]"})
    res = run_gm(["-path", migdir, "-database", db_url, "up"])
    assert res.returncode != 0, res


def test_missing_directory(db_url, db, tmp_path):
    missing = tmp_path / "does-not-exist"
    res = run_mi(["-path", missing, "-database", db_url, "up"])
    assert res.returncode == 3, res
    assert "does-not-exist" in res.stderr, res.stderr
    assert_untouched(db)


def test_missing_directory_via_env(ferretdb, dbname, db, tmp_path):
    """Entrypoint mode, password in DATABASE_URL (run_mi checks it never shows up)."""
    url = f"mongodb://u:{CANARY_PASSWORD}@127.0.0.1:{ferretdb}/{dbname}?authMechanism=PLAIN"
    res = run_mi([], env={"DATABASE_URL": url, "MIGRATION_DIR": tmp_path / "nope"})
    assert res.returncode == 3, res
    assert "nope" in res.stderr, res
    assert_untouched(db)


def test_path_is_a_file(db_url, db, tmp_path):
    f = tmp_path / "plainfile"
    f.write_text("[]")
    res = run_mi(["-path", f, "-database", db_url, "up"])
    assert res.returncode == 3, res
    assert_untouched(db)


def test_non_matching_files_are_ignored_and_empty_array_is_valid(db_url, db, migdir):
    """Not bad: golang-migrate ignores names outside its pattern, and [] is a valid body."""
    write_migrations(
        migdir,
        {
            "1_a.up.json": "[]",
            "2_b.up.json": [{"insert": "items", "documents": [{"_id": 2}]}],
            "notes.txt": "hello",
            "x_3.up.json": "garbage",
            "3.up.json": "garbage",
            "3_c.sideways.json": "garbage",
            ".hidden": "garbage",
        },
    )
    (migdir / "subdir").mkdir()
    res = run_mi(["-path", migdir, "-database", db_url, "up"])
    assert res.returncode == 0, res
    assert items(db) == [2]
    assert state(db) == [{"version": 2, "dirty": False}]
