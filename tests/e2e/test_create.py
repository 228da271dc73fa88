"""`create` writes the same file names as golang-migrate's create.

Both tools run into two directories and the file name sets are compared.
Timestamps can straddle a second / minute / day boundary between the two
runs, so timestamp cases run golang-migrate before AND after migrate-init and
accept a match with either (or check the value lies between them).
"""

import os
import re

import pytest

from conftest import run_gm, run_mi


def names(d):
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def mi_create(d, *args, name="add_users"):
    res = run_mi(["create", *args, "-dir", d, name])
    assert res.returncode == 0, res
    return res


def gm_create(d, *args, name="add_users"):
    res = run_gm(["create", *args, "-dir", d, name])
    assert res.returncode == 0, res
    return res


def assert_printed(res, new_files):
    for f in new_files:
        assert f in res.stdout, f"create must print the created path {f}: {res!r}"


def created(before, d):
    return sorted(set(names(d)) - set(before))


@pytest.mark.parametrize(
    "args",
    [
        ["-ext", "json", "-seq", "-digits", "4"],
        ["-ext", "json", "-seq"],  # default 6 digits
        ["-ext", ".json", "-seq", "-digits", "2"],
        ["-seq", "-digits", "4", "-ext", "json"],
    ],
    ids=["digits4", "digits-default", "dot-ext", "flag-order"],
)
def test_seq_names_match(tmp_path, args):
    d_gm, d_mi = tmp_path / "gm", tmp_path / "mi"
    for n in ("create_users", "add_index", "seed"):
        gm_create(d_gm, *args, name=n)
        before = names(d_mi)
        res = mi_create(d_mi, *args, name=n)
        assert_printed(res, created(before, d_mi))
    assert names(d_gm) and names(d_mi) == names(d_gm)
    assert len(names(d_mi)) == 6


def test_seq_continues_after_golang_migrate_files(tmp_path):
    """In a directory golang-migrate already wrote to, the next number is the same."""
    d_gm, d_mi = tmp_path / "gm", tmp_path / "mi"
    args = ["-ext", "json", "-seq", "-digits", "4"]
    for d in (d_gm, d_mi):
        gm_create(d, *args, name="one")
        gm_create(d, *args, name="two")
    gm_create(d_gm, *args, name="three")
    mi_create(d_mi, *args, name="three")
    assert names(d_mi) == names(d_gm)
    assert "0003_three.up.json" in names(d_mi) and "0003_three.down.json" in names(d_mi)


def _sandwich(tmp_path, args, name="init"):
    """gm before, mi, gm after; returns (before_names, mi_names, after_names)."""
    d1, d2, d3 = tmp_path / "gm1", tmp_path / "mi", tmp_path / "gm2"
    gm_create(d1, *args, name=name)
    res = mi_create(d2, *args, name=name)
    gm_create(d3, *args, name=name)
    assert_printed(res, names(d2))
    return names(d1), names(d2), names(d3)


@pytest.mark.parametrize(
    "args",
    [
        ["-ext", "json", "-format", "20060102", "-tz", "UTC"],
        ["-ext", "json", "-format", "2006010215", "-tz", "Asia/Tokyo"],
        ["-ext", "json", "-format", "200601021504", "-tz", "America/New_York"],
        ["-ext", "json", "-format", "2006-01-02", "-tz", "UTC"],
        ["-ext", "json", "-format", "20060102"],  # default tz (UTC)
    ],
    ids=["day-utc", "hour-tokyo", "minute-newyork", "dashes", "default-tz"],
)
def test_timestamp_names_match(tmp_path, args):
    before, mine, after = _sandwich(tmp_path, args)
    assert len(mine) == 2
    assert mine in (before, after), f"golang-migrate: {before} / {after}, migrate-init: {mine}"


def _version(fnames):
    versions = {f.split("_", 1)[0] for f in fnames}
    assert len(versions) == 1, fnames
    return versions.pop()


@pytest.mark.parametrize(
    "args",
    [
        ["-ext", "json"],  # default format 20060102150405
        ["-ext", "json", "-tz", "Asia/Tokyo"],
        ["-ext", "json", "-format", "unix"],
    ],
    ids=["default-format", "default-format-tokyo", "unix"],
)
def test_second_resolution_timestamps(tmp_path, args):
    before, mine, after = _sandwich(tmp_path, args)
    vb, vm, va = _version(before), _version(mine), _version(after)
    assert len(vm) == len(vb), (vb, vm)
    assert int(vb) <= int(vm) <= int(va), (vb, vm, va)
    assert [re.sub(r"^\d+", "V", f) for f in mine] == [re.sub(r"^\d+", "V", f) for f in before]


def test_creates_missing_nested_dir(tmp_path):
    d_gm, d_mi = tmp_path / "gm" / "a" / "b", tmp_path / "mi" / "a" / "b"
    gm_create(d_gm, "-ext", "json", "-seq", name="x")
    mi_create(d_mi, "-ext", "json", "-seq", name="x")
    assert names(d_mi) == names(d_gm) == ["000001_x.down.json", "000001_x.up.json"]


def test_duplicate_timestamp_version_is_refused(tmp_path):
    """Same version twice (day format): golang-migrate refuses the second; so must we."""
    d_gm, d_mi = tmp_path / "gm", tmp_path / "mi"
    args = ["-ext", "json", "-format", "20060102", "-tz", "UTC"]
    gm_create(d_gm, *args, name="first")
    mi_create(d_mi, *args, name="first")
    gm_second = run_gm(["create", *args, "-dir", d_gm, "second"])
    mi_second = run_mi(["create", *args, "-dir", d_mi, "second"])
    assert names(d_gm) == names(d_mi)
    assert gm_second.returncode != 0, gm_second
    assert mi_second.returncode != 0, mi_second
    assert len(names(d_mi)) == 2


def test_create_needs_no_database(tmp_path):
    res = run_mi(["create", "-ext", "json", "-dir", tmp_path / "m", "-seq", "x"])
    assert res.returncode == 0, res
    assert names(tmp_path / "m") == ["000001_x.down.json", "000001_x.up.json"]


def test_create_without_name_is_usage_error(tmp_path):
    res = run_mi(["create", "-ext", "json", "-dir", tmp_path / "m", "-seq"])
    assert res.returncode == 2, res
    assert names(tmp_path / "m") == []


def _zone_with_local_hour(target):
    """An Etc/GMT zone in which the local hour is `target` right now (padding checks)."""
    import datetime

    h = datetime.datetime.utcnow().hour
    off = ((target - h + 12) % 24) - 12  # -12..11 hours east of UTC
    if off == 0:
        return "UTC"
    return f"Etc/GMT-{off}" if off > 0 else f"Etc/GMT+{-off}"  # POSIX sign is inverted


@pytest.mark.parametrize(
    "layout,local_hour,expect_suffix",
    [
        ("2006010215", 3, ("03", "04")),  # 24-hour, zero padded
        ("2006010203", 15, ("03", "04")),  # 12-hour, zero padded
        ("06010215", 9, ("09", "10")),  # two-digit year
    ],
    ids=["hour24-padded", "hour12-padded", "two-digit-year"],
)
def test_timestamp_layout_padding(tmp_path, layout, local_hour, expect_suffix):
    """Deterministic: the zone is picked so that the hour needs zero padding now."""
    tz = _zone_with_local_hour(local_hour)
    before, mine, after = _sandwich(tmp_path, ["-ext", "json", "-format", layout, "-tz", tz])
    assert mine in (before, after), f"-tz {tz}: golang-migrate {before} / {after}, migrate-init {mine}"
    assert _version(mine).endswith(expect_suffix), (tz, mine)
    assert len(_version(mine)) == len(layout)
