"""Authoring and visibility, end to end on the session's real FerretDB.

* YAML migrations mean exactly what their JSON twins mean: the documents they
  leave behind are compared as raw BSON (every element's type and bytes),
  against the twin applied by migrate-init and, where it can parse the twin,
  by golang-migrate; malformed YAML is refused with line:column and the
  database is not touched.
* History: one record per applied/failed migration, with the file's sha256,
  times, outcome and owner; golang-migrate keeps working beside it.
* validate (offline and -db drift), status (table and -json), plan.
"""

import datetime
import hashlib
import json
import re
import signal
import struct
import time
from pathlib import Path

import bson
import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from conftest import (
    CANARY_PASSWORD,
    REPO,
    on_command,
    on_version_write,
    raw_collection,
    run_gm,
    run_mi,
    version_of,
    write_migrations,
    write_standard,
)

EXAMPLES = REPO / "migrations-example"
YAML_EXAMPLES = EXAMPLES / "yaml"
RAW = CodecOptions(document_class=RawBSONDocument)
HISTORY = "schema_migrations_history"
LOCK = "migrate_advisory_lock"


# --------------------------------------------------------------------------
# Helpers (this file's own; conftest is shared and edited by others)


def mi(args, env=None, timeout=60):
    """migrate-init for commands that print on stdout (validate, status, plan):
    the canary must not leak, and every stderr line must be a JSON log record."""
    res = run_mi(args, env=env, timeout=timeout, check_json=False)
    assert CANARY_PASSWORD not in res.output
    for line in res.stderr.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            raise AssertionError(f"stderr line is not JSON: {line!r}\n{res!r}")
        assert isinstance(rec, dict) and {"time", "level", "msg"} <= rec.keys(), line
    return res


def sha256_of(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# Raw BSON surgery: remove named fields (server times) from a document
# without decoding anything else, so that everything left is compared byte
# for byte, types included.

_FIXED = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x06: 0, 0x10: 4, 0x11: 8,
          0x12: 8, 0x13: 16, 0x7F: 0, 0xFF: 0}


def _value_len(t, raw, pos):
    if t in _FIXED:
        return _FIXED[t]
    n = struct.unpack_from("<i", raw, pos)[0]
    if t in (0x02, 0x0D, 0x0E):
        return 4 + n
    if t in (0x03, 0x04, 0x0F):
        return n
    if t == 0x05:
        return 5 + n
    if t == 0x0C:
        return 4 + n + 12
    if t == 0x0B:
        end = raw.index(b"\0", pos)
        return raw.index(b"\0", end + 1) + 1 - pos
    raise AssertionError(f"unexpected BSON type 0x{t:02x}")


def strip_raw(raw, paths, prefix=(), removed=None):
    """raw without the fields at paths (tuples of keys); removed collects (path, type)."""
    raw = bytes(raw)
    out, pos = [], 4
    while raw[pos] != 0:
        t = raw[pos]
        end = raw.index(b"\0", pos + 1)
        key = raw[pos + 1:end]
        vpos = end + 1
        vlen = _value_len(t, raw, vpos)
        value = raw[vpos:vpos + vlen]
        pos = vpos + vlen
        path = prefix + (key.decode(),)
        if path in paths:
            if removed is not None:
                removed.append((path, t))
            continue
        if t == 0x03 and any(p[: len(path)] == path for p in paths):
            value = strip_raw(value, paths, path, removed)
        out.append(bytes([t]) + key + b"\0" + value)
    body = b"".join(out)
    return struct.pack("<i", len(body) + 5) + body + b"\0"


def raw_docs(db, coll, strip=()):
    docs = []
    for d in raw_collection(db, coll).find():
        removed = []
        raw = strip_raw(d.raw, set(strip), removed=removed) if strip else bytes(d.raw)
        for path, t in removed:
            assert t == 0x09, f"{coll}.{'.'.join(path)} is type 0x{t:02x}, not a date"
        docs.append(raw)
    return sorted(docs, key=lambda r: repr(bson.decode(r)["_id"]))


def index_specs(db, coll):
    return sorted(
        (ix["name"], bson.encode(ix["key"]), bool(ix.get("unique", False)))
        for ix in db[coll].list_indexes()
    )


# Collections that are bookkeeping, not migrated data (the state document's
# _id is generated; its version and dirty flag are compared by the tests).
BOOKKEEPING = {"schema_migrations", HISTORY, LOCK}


def snapshot(db, strip=None):
    """Every data collection's documents (raw BSON, server-time fields cut out)
    and indexes, plus the migration state."""
    strip = strip or {}
    snap = {}
    for coll in sorted(db.list_collection_names()):
        if coll in BOOKKEEPING:
            continue
        snap[coll] = (raw_docs(db, coll, strip.get(coll, ())), index_specs(db, coll))
    return snap


def describe(raw):
    return repr(bson.decode(raw, CodecOptions(document_class=dict)))


def assert_same_snapshot(a, b, what=""):
    assert sorted(a) == sorted(b), f"{what}: collections differ: {sorted(a)} vs {sorted(b)}"
    for coll in a:
        da, ia = a[coll]
        db_, ib = b[coll]
        assert ia == ib, f"{what}: indexes of {coll} differ:\n {ia}\n {ib}"
        assert len(da) == len(db_), f"{what}: {coll} holds {len(da)} vs {len(db_)} documents"
        for x, y in zip(da, db_):
            assert x == y, (
                f"{what}: a document of {coll} differs\n A: {x.hex()}\n    {describe(x)}"
                f"\n B: {y.hex()}\n    {describe(y)}"
            )


MIGRATION_COMMANDS = {"create", "createIndexes", "insert", "update", "delete", "drop",
                      "dropIndexes"}
SESSION_FIELDS = {("$db",), ("lsid",), ("$clusterTime",), ("txnNumber",),
                  ("$readPreference",)}


def migration_commands(relay):
    """The migration commands a run sent through relay, as raw BSON without
    the per-connection fields ($db, lsid, ...), in the order sent. Lock,
    state and history traffic is left out."""
    out = []
    with relay.lock:
        cmds = list(relay.commands)
    for body, seqs in cmds:
        doc = bson.decode(body, RAW)
        keys = list(doc.keys())
        if not keys or keys[0] not in MIGRATION_COMMANDS:
            continue
        if doc[keys[0]] in BOOKKEEPING:
            continue
        out.append((strip_raw(body, SESSION_FIELDS),
                    {k: [bytes(x) for x in v] for k, v in sorted(seqs.items())}))
    return out


def assert_same_commands(a, b, what):
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)} migration commands"
    for (xa, sa), (xb, sb) in zip(a, b):
        assert xa == xb, f"{what}: commands differ\n {describe(xa)}\n {describe(xb)}"
        assert sa == sb, f"{what}: document sequences differ\n {sa}\n {sb}"


def whole_db(db):
    """Every collection (bookkeeping too) as raw BSON, for "nothing was written"."""
    return {c: sorted(bytes(d.raw) for d in raw_collection(db, c).find())
            for c in sorted(db.list_collection_names())}


# --------------------------------------------------------------------------
# 1. YAML: the example set


DEMO_STRIP = {"users": (("preferences", "createdAt"), ("preferences", "updatedAt"))}


def test_yaml_example_set_is_the_json_set(tmp_path, new_db, relay_factory):
    """migrations-example/yaml, applied by migrate-init, sends byte-identical
    commands and leaves byte-identical documents and the same indexes as
    migrations-example/*.json, after every step up and down (the only fields
    cut out of the documents are $currentDate's server times)."""
    json_files = sorted(p.name for p in EXAMPLES.glob("0*.json"))
    yaml_files = sorted(p.name for p in YAML_EXAMPLES.glob("0*.y*ml"))
    assert len(json_files) == 12
    assert yaml_files == [n[: -len(".json")] + ".yaml" for n in json_files]

    name_j, _, db_j = new_db()
    name_y, _, db_y = new_db()
    relay_j, relay_y = relay_factory(), relay_factory()
    url_j, url_y = relay_j.url(name_j), relay_y.url(name_y)
    steps = [["up", "3"], ["up"], ["down", "2"], ["down", "-all"]]
    expected = [(3, False), (6, False), (4, False), (-1, False)]
    for step, want in zip(steps, expected):
        rj = run_mi(["-path", EXAMPLES, "-database", url_j] + step)
        ry = run_mi(["-path", YAML_EXAMPLES, "-database", url_y] + step)
        assert rj.returncode == 0, rj
        assert ry.returncode == 0, ry
        assert version_of(db_j) == want
        assert version_of(db_y) == want
        sj, sy = snapshot(db_j, DEMO_STRIP), snapshot(db_y, DEMO_STRIP)
        assert_same_snapshot(sj, sy, " ".join(step))
        if step == ["up"]:
            assert {c: len(v[0]) for c, v in sy.items()} == {
                "users": 4, "orders": 4, "products": 4}
    assert sorted(db_y.list_collection_names()) == sorted(db_j.list_collection_names())
    cj, cy = migration_commands(relay_j), migration_commands(relay_y)
    assert len(cj) > 30
    assert_same_commands(cj, cy, "JSON vs YAML example set")


# --------------------------------------------------------------------------
# 1b. YAML: every typing rule, against JSON twins


FEATURES_YAML = r"""# Every YAML feature a migration may use, and its typing.
%YAML 1.1
---
- create: t          # a comment after a value
# a comment line between commands
- insert: t
  documents:
    - &base                     # an anchor on a mapping ...
      _id: anchors
      kind: base
      tags: &tags [a, b]        # ... and on a sequence
    - _id: aliases
      copy: *base               # aliases copy the anchored node
      tags: *tags
      again: *tags
    - _id: quoted
      s_int: "42"
      s_float: '3.5'
      s_true: "true"
      s_null: 'null'
      s_empty: ""
      s_tagged: !!str 12
      s_escape: "tab\there \"q\" \u263a"
    - _id: yes_no_on_off
      y: yes
      n: no
      on: on
      off: off
      Y: Y
      N: NO
    - _id: ints
      small: 1
      zero: 0
      neg: -7
      plus: +5
      max32: 2147483647
      over32: 2147483648
      min32: -2147483648
      under32: -2147483649
      big: 9007199254740993
      max64: 9223372036854775807
    - _id: doubles
      a: 1.5
      b: 1e3
      c: 2.0
      d: -0.25
      e: .5
      f: 0.1
      g: 12345678.875
      h: -1.5e300
      i: 1.
    - _id: plain_strings
      leading_zero: 007
      hex: 0x1F
      underscore: 1_000
      date: 2024-01-01
      word: hello world
      colon_inside: a:b
    - _id: nulls
      a: null
      b: ~
      c:
      d: NULL
    - _id: booleans
      t: true
      f: false
      T: True
      F: FALSE
    - _id: wrappers
      oid: {$oid: "5f1d7e0b9d3c4a2b1c0d0e0f"}
      date: {$date: {$numberLong: "1593000000123"}}
      relaxed_date: {$date: "2024-01-01T00:00:00Z"}
      long: {$numberLong: "42"}
      long_big: {$numberLong: "-9223372036854775808"}
      int: {$numberInt: "-7"}
      double: {$numberDouble: "3.25"}
    - _id: flow
      list: [1, 2.5, "3", {x: {$numberLong: "1"}}]
      empty_map: {}
      empty_list: []
      block_text: |
        two
        lines
- update: t
  updates:
    - q: {_id: wrappers}
      u: {$currentDate: {at: {$type: date}}}   # the $type operator
- createIndexes: t
  indexes:
    - {key: {kind: 1}, name: kind_1}
"""

# The JSON that FEATURES_YAML stands for, written by hand (as text, so that
# number spellings reach the tools verbatim). RELAXED is replaced for
# golang-migrate, whose canonical-mode parser refuses relaxed $date strings.
RELAXED = '{"$date": "2024-01-01T00:00:00Z"}'
CANONICAL = '{"$date": {"$numberLong": "1704067200000"}}'
FEATURES_JSON = r"""[
 {"create": "t"},
 {"insert": "t", "documents": [
  {"_id": "anchors", "kind": "base", "tags": ["a", "b"]},
  {"_id": "aliases", "copy": {"_id": "anchors", "kind": "base", "tags": ["a", "b"]},
   "tags": ["a", "b"], "again": ["a", "b"]},
  {"_id": "quoted", "s_int": "42", "s_float": "3.5", "s_true": "true", "s_null": "null",
   "s_empty": "", "s_tagged": "12", "s_escape": "tab\there \"q\" \u263a"},
  {"_id": "yes_no_on_off", "y": "yes", "n": "no", "on": "on", "off": "off", "Y": "Y", "N": "NO"},
  {"_id": "ints", "small": 1, "zero": 0, "neg": -7, "plus": 5, "max32": 2147483647,
   "over32": 2147483648, "min32": -2147483648, "under32": -2147483649,
   "big": 9007199254740993, "max64": 9223372036854775807},
  {"_id": "doubles", "a": 1.5, "b": 1e3, "c": 2.0, "d": -0.25, "e": 0.5, "f": 0.1,
   "g": 12345678.875, "h": -1.5e300, "i": 1.0},
  {"_id": "plain_strings", "leading_zero": "007", "hex": "0x1F", "underscore": "1_000",
   "date": "2024-01-01", "word": "hello world", "colon_inside": "a:b"},
  {"_id": "nulls", "a": null, "b": null, "c": null, "d": null},
  {"_id": "booleans", "t": true, "f": false, "T": true, "F": false},
  {"_id": "wrappers", "oid": {"$oid": "5f1d7e0b9d3c4a2b1c0d0e0f"},
   "date": {"$date": {"$numberLong": "1593000000123"}},
   "relaxed_date": RELAXED,
   "long": {"$numberLong": "42"}, "long_big": {"$numberLong": "-9223372036854775808"},
   "int": {"$numberInt": "-7"}, "double": {"$numberDouble": "3.25"}},
  {"_id": "flow", "list": [1, 2.5, "3", {"x": {"$numberLong": "1"}}], "empty_map": {},
   "empty_list": [], "block_text": "two\nlines\n"}
 ]},
 {"update": "t", "updates": [
  {"q": {"_id": "wrappers"}, "u": {"$currentDate": {"at": {"$type": "date"}}}}
 ]},
 {"createIndexes": "t", "indexes": [{"key": {"kind": 1}, "name": "kind_1"}]}
]
"""

FEATURES_STRIP = {"t": (("at",),)}


def test_yaml_features_same_bson_as_json_twin(tmp_path, new_db, relay_factory):
    """Comments, anchors/aliases, quoted numbers, yes/no/on strings, ints past
    2^31, doubles, Extended JSON wrappers and the $type operator: the YAML file
    gives the same stored BSON as its JSON twin (migrate-init) and as the
    canonical twin applied by golang-migrate."""
    d_yaml = write_migrations(tmp_path / "yaml", {"1_features.up.yaml": FEATURES_YAML})
    d_json = write_migrations(tmp_path / "json",
                              {"1_features.up.json": FEATURES_JSON.replace("RELAXED", RELAXED)})
    d_gm = write_migrations(tmp_path / "gm",
                            {"1_features.up.json": FEATURES_JSON.replace("RELAXED", CANONICAL)})
    d_gm_relaxed = write_migrations(tmp_path / "gm_relaxed",
                                    {"1_features.up.json": FEATURES_JSON.replace("RELAXED", RELAXED)})
    name_y, _, db_y = new_db()
    name_j, _, db_j = new_db()
    _, url_g, db_g = new_db()
    relay_y, relay_j = relay_factory(), relay_factory()
    url_y, url_j = relay_y.url(name_y), relay_j.url(name_j)
    _, url_gr, db_gr = new_db()

    ry = run_mi(["-path", d_yaml, "-database", url_y, "up"])
    assert ry.returncode == 0, ry
    rj = run_mi(["-path", d_json, "-database", url_j, "up"])
    assert rj.returncode == 0, rj
    rg = run_gm(["-path", d_gm, "-database", url_g, "up"])
    assert rg.returncode == 0, rg
    # golang-migrate's canonical-mode parser refuses the relaxed $date.
    rgr = run_gm(["-path", d_gm_relaxed, "-database", url_gr, "up"])
    assert rgr.returncode != 0, rgr

    assert version_of(db_y) == version_of(db_j) == version_of(db_g) == (1, False)
    assert_same_commands(migration_commands(relay_j), migration_commands(relay_y),
                         "JSON vs YAML features")
    sy = snapshot(db_y, FEATURES_STRIP)
    assert_same_snapshot(snapshot(db_j, FEATURES_STRIP), sy, "YAML vs JSON (migrate-init)")
    assert_same_snapshot(snapshot(db_g, FEATURES_STRIP), sy, "YAML vs JSON (golang-migrate)")

    # The twins could be wrong the same way: check the types themselves too.
    docs = {d["_id"]: d for d in db_y["t"].find()}
    assert docs["aliases"]["copy"] == {"_id": "anchors", "kind": "base", "tags": ["a", "b"]}
    assert docs["quoted"] == {"_id": "quoted", "s_int": "42", "s_float": "3.5", "s_true": "true",
                              "s_null": "null", "s_empty": "", "s_tagged": "12",
                              "s_escape": 'tab\there "q" \u263a'}
    assert {k: v for k, v in docs["yes_no_on_off"].items() if k != "_id"} == {
        "y": "yes", "n": "no", "on": "on", "off": "off", "Y": "Y", "N": "NO"}
    ints = docs["ints"]
    for k in ("small", "zero", "neg", "plus", "max32", "min32"):
        assert type(ints[k]) is int, (k, type(ints[k]))
    for k in ("over32", "under32", "big", "max64"):
        assert type(ints[k]) is bson.int64.Int64, (k, type(ints[k]))
    assert ints["big"] == 9007199254740993 and ints["max64"] == 2**63 - 1
    for k, v in docs["doubles"].items():
        if k != "_id":
            assert type(v) is float, (k, v)
    assert docs["doubles"]["e"] == 0.5 and docs["doubles"]["i"] == 1.0
    assert {k: v for k, v in docs["plain_strings"].items() if k != "_id"} == {
        "leading_zero": "007", "hex": "0x1F", "underscore": "1_000", "date": "2024-01-01",
        "word": "hello world", "colon_inside": "a:b"}
    assert docs["nulls"] == {"_id": "nulls", "a": None, "b": None, "c": None, "d": None}
    assert docs["booleans"] == {"_id": "booleans", "t": True, "f": False, "T": True, "F": False}
    w = docs["wrappers"]
    assert w["oid"] == bson.ObjectId("5f1d7e0b9d3c4a2b1c0d0e0f")
    assert w["date"] == datetime.datetime(2020, 6, 24, 12, 0, 0, 123000)
    assert w["relaxed_date"] == datetime.datetime(2024, 1, 1)
    assert type(w["long"]) is bson.int64.Int64 and w["long"] == 42
    assert type(w["int"]) is int and w["int"] == -7
    assert type(w["double"]) is float and w["double"] == 3.25
    assert isinstance(w["at"], datetime.datetime)  # $currentDate ran with {$type: date}
    assert type(docs["flow"]["list"][3]["x"]) is bson.int64.Int64
    assert docs["flow"]["block_text"] == "two\nlines\n"


def test_yaml_and_yml_and_json_mix_up_and_down(tmp_path, db_url, db):
    """.yaml, .yml and .json files mix in one directory, both directions."""
    d = write_migrations(tmp_path / "m", {
        "1_a.up.yaml": "- create: items\n- insert: items\n  documents: [{_id: 1}]\n",
        "1_a.down.yml": "- drop: items   # all gone\n",
        "2_b.up.yml": "- {insert: items, documents: [{_id: 2, n: 2.0}]}\n",
        "2_b.down.json": '[{"delete": "items", "deletes": [{"q": {"_id": 2}, "limit": 1}]}]',
        "3_c.up.json": '[{"insert": "items", "documents": [{"_id": 3}]}]',
        "3_c.down.yaml": "- delete: items\n  deletes:\n    - {q: {_id: 3}, limit: 1}\n",
    })
    assert run_mi(["-path", d, "-database", db_url, "up"]).returncode == 0
    assert version_of(db) == (3, False)
    assert sorted(x["_id"] for x in db["items"].find()) == [1, 2, 3]
    assert type(db["items"].find_one({"_id": 2})["n"]) is float
    r = run_mi(["-path", d, "-database", db_url, "down", "-all"])
    assert r.returncode == 0, r
    assert version_of(db) == (-1, False)
    assert "items" not in db.list_collection_names()


BAD_YAML = {
    # name: (body, line of the problem, words of the message)
    "bad_indentation": ("- insert: t\n  documents:\n    - _id: 1\n   x: 2\n", 4, "expected key"),
    "unclosed_flow": ("- {insert: t, documents: [{_id: 1}]\n- create: u\n", 2, "flow mapping"),
    "mapping_at_top": ("# one command, not a list\ncreate: t\n", 2, "mapping"),
    "two_documents": ("- create: a\n---\n- create: b\n", 3, "one YAML document"),
    "unsupported_tag": ("- insert: t\n  documents:\n    - {_id: !!int 1}\n", 3, "tag"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_yaml_errors_exit_3_with_line_column_and_nothing_runs(case, tmp_path, db_url, db):
    body, line, words = BAD_YAML[case]
    d = write_migrations(tmp_path / "m", {
        "1_good.up.json": '[{"create": "first"}]',
        "2_bad.up.yaml": body,
    })
    r = run_mi(["-path", d, "-database", db_url, "up"])
    assert r.returncode == 3, r
    errs = [rec for rec in r.logs if str(rec.get("file", "")).endswith("2_bad.up.yaml")]
    assert errs, r
    msg = str(errs[0].get("error", ""))
    m = re.search(r"\b(\d+):(\d+)\b", msg)
    assert m, f"no line:column in {msg!r}"
    assert int(m.group(1)) == line, msg
    assert words.lower() in msg.lower(), msg
    # The source is read before the database is touched: not even version 1 ran.
    assert db.list_collection_names() == []
    # validate says the same, offline.
    v = mi(["-path", d, "validate"])
    assert v.returncode == 3, v


# --------------------------------------------------------------------------
# 2. History


def history(db, coll=HISTORY):
    """Records in the order they were written (one process: ObjectId order)."""
    recs = list(db[coll].find().sort([("started_at", 1), ("_id", 1)]))
    return [{k: v for k, v in r.items() if k != "_id"} for r in recs]


def check_record(rec, version, name, direction, path, outcome, owner, t0, t1):
    assert rec["version"] == version and rec["name"] == name, rec
    assert rec["direction"] == direction, rec
    assert rec["sha256"] == sha256_of(path), rec
    assert rec["outcome"] == outcome, rec
    assert rec["owner"] == owner, rec
    assert rec["tool"] == "migrate-init", rec
    assert rec["tool_version"] == TOOL_VERSION, rec
    s, f = rec["started_at"], rec["finished_at"]
    assert isinstance(s, datetime.datetime) and isinstance(f, datetime.datetime), rec
    slack = datetime.timedelta(seconds=1)
    assert t0 - slack <= s <= f <= t1 + slack, (t0, rec, t1)
    assert rec["duration_ms"] == round((f - s).total_seconds() * 1000), rec
    if outcome == "applied":
        assert "error" not in rec, rec
    else:
        assert isinstance(rec.get("error"), str) and rec["error"], rec


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


TOOL_VERSION = None


@pytest.fixture(autouse=True, scope="module")
def _tool_version():
    global TOOL_VERSION
    r = run_mi(["-version"])
    assert r.returncode == 0, r
    TOOL_VERSION = r.stdout.splitlines()[0]
    assert TOOL_VERSION


STD_FILES = {1: ("1_first", "first"), 2: ("2_second", "second"),
             3: ("003_third", "third"), 4: ("4_fourth", "fourth")}


def test_history_records_up_down_and_failure(tmp_path, db_url, db):
    d = write_standard(tmp_path / "m")
    env = {"POD_NAME": "pod-hist-1"}
    t0 = utcnow()
    r = run_mi(["-path", d, "-database", db_url, "up"], env=env)
    t1 = utcnow()
    assert r.returncode == 0, r
    h = history(db)
    assert len(h) == 4, h
    for rec, v in zip(h, (1, 2, 3, 4)):
        stem, name = STD_FILES[v]
        check_record(rec, v, name, "up", d / f"{stem}.up.json", "applied", "pod-hist-1", t0, t1)

    # down 2: two "down" records, with the down files' checksums.
    t0 = utcnow()
    r = run_mi(["-path", d, "-database", db_url, "down", "2"], env={"POD_NAME": "pod-hist-2"})
    t1 = utcnow()
    assert r.returncode == 0, r
    h = history(db)
    assert len(h) == 6, h
    downs = [x for x in h if x["direction"] == "down"]
    assert [x["version"] for x in downs] == [4, 3]
    for rec in downs:
        stem, name = STD_FILES[rec["version"]]
        check_record(rec, rec["version"], name, "down", d / f"{stem}.down.json", "applied",
                     "pod-hist-2", t0, t1)

    # A failing migration: an outcome "failed" record with the error.
    write_migrations(d, {"003_third.up.json": [{"insert": "items", "documents": [{"_id": 1}]}]})
    t0 = utcnow()
    r = run_mi(["-path", d, "-database", db_url, "up"], env={"POD_NAME": "pod-hist-3"})
    t1 = utcnow()
    assert r.returncode == 7, r
    assert version_of(db) == (3, True)
    h = history(db)
    assert len(h) == 7, h
    check_record(h[-1], 3, "third", "up", d / "003_third.up.json", "failed", "pod-hist-3", t0, t1)
    assert "duplicate" in h[-1]["error"].lower() or "11000" in h[-1]["error"], h[-1]


def test_history_owner_defaults_to_hostname(tmp_path, db_url, db):
    import socket
    d = write_standard(tmp_path / "m")
    assert run_mi(["-path", d, "-database", db_url, "up", "1"]).returncode == 0
    (rec,) = history(db)
    assert rec["owner"] == socket.gethostname()


def test_history_off_and_renamed(tmp_path, new_db):
    d = write_standard(tmp_path / "m")
    _, url_off, db_off = new_db()
    _, url_ren, db_ren = new_db()
    r = run_mi(["-path", d, "-database", url_off + "?x-history=false", "up"])
    assert r.returncode == 0, r
    assert version_of(db_off) == (4, False)
    assert HISTORY not in db_off.list_collection_names()
    url_ren += "?x-history-collection=audit_trail"
    r = run_mi(["-path", d, "-database", url_ren, "up"], env={"POD_NAME": "pod-ren"})
    assert r.returncode == 0, r
    assert HISTORY not in db_ren.list_collection_names()
    assert [x["version"] for x in history(db_ren, "audit_trail")] == [1, 2, 3, 4]
    # status reads the renamed collection.
    s = mi(["-path", d, "-database", url_ren, "status", "-json"])
    assert s.returncode == 0, s
    assert [m["applied_by"] for m in json.loads(s.stdout)["migrations"]] == ["pod-ren"] * 4


# Records are buffered and sent together (src/history.h): when the oldest is
# HISTORY_FLUSH_INTERVAL old, with a failure, at the end of every run. Each
# test holds migration 3 at the relay, so migrations 1 and 2 are applied and
# their records either buffered or written, and looks.

HIST3 = {
    "1_one.up.json": [{"insert": "items", "documents": [{"_id": 1}]}],
    "2_two.up.json": [{"insert": "items", "documents": [{"_id": 2}]}],
    "3_three.up.json": [{"insert": "slow", "documents": [{"_id": 3}]}],
}


def outcomes(db):
    return [(x["version"], x["outcome"]) for x in history(db)]


APPLIED3 = [(1, "applied"), (2, "applied"), (3, "applied")]


def held_run(procs, relays, dbname, migdir, rule, **env):
    """HIST3 applied through a relay that holds the first command rule matches."""
    write_migrations(migdir, HIST3)
    relay = relays()
    held = relay.hold(rule)
    p = procs.mi(migdir, relay.url(dbname), "up", **env)
    held.wait(p)
    return p, held, relay


def test_history_buffered_then_written_by_a_stopped_run(procs, relays, dbname, db, migdir):
    p, held, _ = held_run(procs, relays, dbname, migdir, on_version_write(3, True), HISTORY_FLUSH_INTERVAL="1h")
    assert version_of(db) == (2, False)
    assert outcomes(db) == [], "records were written one by one"
    p.kill(signal.SIGTERM)  # migration 3 is under way: it finishes, then the run stops
    held.resume()
    res = p.finish()
    assert res.returncode == 143, res
    assert version_of(db) == (3, False)
    assert outcomes(db) == APPLIED3


def test_history_flush_interval_0_writes_each_record_at_once(procs, relays, dbname, db, migdir):
    p, held, _ = held_run(procs, relays, dbname, migdir, on_version_write(3, True), HISTORY_FLUSH_INTERVAL="0")
    assert outcomes(db) == APPLIED3[:2]
    held.resume()
    assert p.finish().returncode == 0
    assert outcomes(db) == APPLIED3


def test_history_goes_out_once_the_oldest_record_is_an_interval_old(procs, relays, dbname, db, migdir):
    p, at2, relay = held_run(procs, relays, dbname, migdir, on_version_write(2, True),
                             HISTORY_FLUSH_INTERVAL="300ms")
    assert outcomes(db) == [], "record 1 was written alone"
    # Record 1 is now older than the interval however fast the rest goes
    # (a lower bound, not a race): record 2 takes both out.
    time.sleep(0.4)
    at3 = relay.hold(on_version_write(3, True))
    at2.resume()
    at3.wait(p)
    assert outcomes(db) == APPLIED3[:2]
    at3.resume()
    assert p.finish().returncode == 0
    assert outcomes(db) == APPLIED3


def test_history_written_by_the_abort_path(procs, relays, dbname, db, migdir):
    """The grace period runs out with migration 3's body held: the watchdog
    releases the lock and sends the buffered records over its own
    connection."""
    p, held, _ = held_run(procs, relays, dbname, migdir, on_command("insert", "slow"),
                          HISTORY_FLUSH_INTERVAL="1h", STOP_GRACE_PERIOD="300ms")
    assert outcomes(db) == []
    p.kill(signal.SIGTERM)
    res = p.finish()
    assert res.returncode == 143, res
    assert version_of(db) == (3, True)
    assert outcomes(db) == APPLIED3[:2]
    assert db[LOCK].count_documents({}) == 0


def test_history_sigkill_loses_the_buffered_records(procs, relays, dbname, db_url, db, migdir):
    """What README says it costs: a SIGKILL takes the buffer with it; the
    state is untouched by that and the next run goes on from it."""
    p, held, _ = held_run(procs, relays, dbname, migdir, on_version_write(3, True),
                          HISTORY_FLUSH_INTERVAL="1h", LOCK_LEASE="1s")
    p.kill(signal.SIGKILL)
    p.finish()
    held.drop()
    assert outcomes(db) == []
    assert version_of(db) == (2, False)
    r = run_mi(["-path", migdir, "-database", db_url, "up"], env={"LOCK_TIMEOUT": "10s"})
    assert r.returncode == 0, r
    assert outcomes(db) == [(3, "applied")]


def test_golang_migrate_works_beside_the_history(tmp_path, db_url, db):
    d = write_standard(tmp_path / "m")
    assert run_mi(["-path", d, "-database", db_url, "up", "2"], env={"POD_NAME": "p"}).returncode == 0
    assert len(history(db)) == 2
    g = run_gm(["-path", d, "-database", db_url, "up"])
    assert g.returncode == 0, g
    assert version_of(db) == (4, False)
    g = run_gm(["-path", d, "-database", db_url, "version"])
    assert g.returncode == 0 and g.output.strip() == "4", g
    g = run_gm(["-path", d, "-database", db_url, "down", "1"])
    assert g.returncode == 0, g
    assert version_of(db) == (3, False)
    assert len(history(db)) == 2  # golang-migrate writes none
    r = run_mi(["-path", d, "-database", db_url, "up"], env={"POD_NAME": "p"})
    assert r.returncode == 0, r
    assert [(x["version"], x["direction"]) for x in history(db)] == [(1, "up"), (2, "up"), (4, "up")]
    assert sorted(x["_id"] for x in db["items"].find()) == [1, 2, 3, 4]
    # status: versions 3 applied by golang-migrate, without history.
    s = json.loads(mi(["-path", d, "-database", db_url, "status", "-json"]).stdout)
    by = {m["version"]: m for m in s["migrations"]}
    assert by[3]["state"] == "applied" and "applied_by" not in by[3]
    assert by[4]["applied_by"] == "p"


# --------------------------------------------------------------------------
# 3. validate


def test_validate_offline_examples_ok():
    for d, n in ((EXAMPLES, 6), (YAML_EXAMPLES, 6)):
        r = mi(["-path", d, "validate"])  # no DATABASE_URL anywhere
        assert r.returncode == 0, r
        assert r.stdout.startswith(f"ok: {n} migrations ({n} up, {n} down files)"), r
        assert not [x for x in r.logs if x["level"] in ("WARN", "ERROR")
                    and x["msg"] != "run finished"], r


def test_validate_offline_with_source_flag_and_env(tmp_path):
    r = mi(["-source", f"file://{EXAMPLES}", "validate"])
    assert r.returncode == 0, r
    r = mi(["validate"], env={"MIGRATION_DIR": str(YAML_EXAMPLES)})
    assert r.returncode == 0, r


@pytest.mark.parametrize("case", ["duplicate_version", "bad_json", "bad_yaml"])
def test_validate_offline_refuses(case, tmp_path):
    files = {"1_a.up.json": "[]", "1_a.down.json": "[]"}
    if case == "duplicate_version":
        files["01_b.up.json"] = "[]"
    elif case == "bad_json":
        files["2_b.up.json"] = '[{"insert": "t", "documents": [}]'
    else:
        files["2_b.up.yaml"] = "- insert: t\n  documents: [{_id: 1}\n"
    d = write_migrations(tmp_path / "m", files)
    r = mi(["-path", d, "validate"])
    assert r.returncode == 3, r
    errs = [x for x in r.logs if x["level"] == "ERROR" and x["msg"] != "run finished"]
    assert errs, r
    text = json.dumps(errs)
    if case == "duplicate_version":
        assert "1_a.up.json" in text and "01_b.up.json" in text, text
    else:
        assert "2_b.up." in text, text
    if case == "bad_yaml":
        bad = [x for x in errs if str(x.get("file", "")).endswith("2_b.up.yaml")]
        assert bad and re.search(r"\b\d+:\d+\b", str(bad[0].get("error"))), errs


def test_validate_offline_warnings(tmp_path):
    d = write_migrations(tmp_path / "m", {
        "1_init.up.json": "[]", "1_init.down.json": "[]",
        "2_nodown.up.json": "[]",
        "1-init.up.json": "[]",       # golang-migrate ignores it; we warn
        "3_x.UP.json": "[]",
        "notes.txt": "not a migration, no warning",
    })
    r = mi(["-path", d, "validate"])
    assert r.returncode == 0, r
    assert r.stdout.startswith("ok: 2 migrations (2 up, 1 down files)"), r
    warns = [x for x in r.logs if x["level"] == "WARN"]
    nodown = [x for x in warns if x.get("version") == 2]
    assert nodown and "down" in nodown[0]["msg"], warns
    ignored = sorted(x.get("file") for x in warns if "ignoring" in x["msg"])
    assert ignored == ["1-init.up.json", "3_x.UP.json"], warns


def test_validate_db_drift(tmp_path, db_url, db):
    d = write_standard(tmp_path / "m")
    assert run_mi(["-path", d, "-database", db_url, "up", "3"]).returncode == 0
    r = mi(["-path", d, "-database", db_url, "validate", "-db"])
    assert r.returncode == 0, r
    assert "ok" in r.stdout and "3 applied migrations checked, 0 changed" in r.stdout, r

    # Editing a pending file is not drift; editing an applied one is.
    (d / "4_fourth.up.json").write_text('[{"insert": "items", "documents": [{"_id": 44}]}]')
    assert mi(["-path", d, "-database", db_url, "validate", "-db"]).returncode == 0
    path = d / "2_second.up.json"
    old = sha256_of(path)
    path.write_bytes(path.read_bytes() + b"\n")
    new = sha256_of(path)
    r = mi(["-path", d, "-database", db_url, "validate", "-db"])
    assert r.returncode == 3, r
    assert "drift: 3 applied migrations checked, 1 changed since" in r.stdout, r
    drift = [x for x in r.logs if x["msg"].startswith("drift")]
    assert len(drift) == 1, r
    assert drift[0]["file"].endswith("2_second.up.json")
    assert drift[0]["applied_sha256"] == old and drift[0]["file_sha256"] == new
    # The database was only read.
    assert version_of(db) == (3, False)
    # status flags it too.
    s = json.loads(mi(["-path", d, "-database", db_url, "status", "-json"]).stdout)
    assert [m["version"] for m in s["migrations"] if m["drift"]] == [2]


def test_validate_db_and_status_without_history(tmp_path, db_url, db):
    """A database migrated by golang-migrate has no history: validate -db
    checks nothing and passes, status shows the versions applied, by nobody."""
    d = write_standard(tmp_path / "m")
    g = run_gm(["-path", d, "-database", db_url, "up", "3"])
    assert g.returncode == 0, g
    r = mi(["-path", d, "-database", db_url, "validate", "-db"])
    assert r.returncode == 0, r
    assert "ok: 0 applied migrations checked, 0 changed since, 3 without checksum" in r.stdout, r
    s = mi(["-path", d, "-database", db_url, "status", "-json"])
    assert s.returncode == 0, s
    s = json.loads(s.stdout)
    assert s["version"] == 3 and s["pending"] == 1
    assert [m["state"] for m in s["migrations"]] == ["applied"] * 3 + ["pending"]
    assert not any(m.get("applied_by") for m in s["migrations"])


# --------------------------------------------------------------------------
# 4. status


def test_status_table_and_json(tmp_path, db_url, db):
    d = write_standard(tmp_path / "m")
    r = mi(["-path", d, "-database", db_url, "status"])
    assert r.returncode == 0, r
    assert "database version: none; 4 pending" in r.stdout, r

    assert run_mi(["-path", d, "-database", db_url, "up", "2"], env={"POD_NAME": "pod-s"}).returncode == 0
    h = {x["version"]: x for x in history(db)}
    iso = {v: h[v]["finished_at"].strftime("%Y-%m-%dT%H:%M:%SZ") for v in (1, 2)}

    r = mi(["-path", d, "-database", db_url, "status"])
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0].split()[:2] == ["VERSION", "STATE"], r
    rows = {int(l.split()[0]): l.split() for l in lines[1:] if l and l.split()[0].isdigit()}
    assert rows[1] == ["1", "applied", "first", iso[1], "pod-s"], r
    assert rows[2] == ["2", "applied", "second", iso[2], "pod-s"], r
    assert rows[3] == ["3", "pending", "third", "-", "-"], r
    assert rows[4] == ["4", "pending", "fourth", "-", "-"], r
    assert "database version: 2; 2 pending" in r.stdout, r

    r = mi(["-path", d, "-database", db_url, "status", "-json"])
    assert r.returncode == 0, r
    s = json.loads(r.stdout)
    assert s["version"] == 2 and s["dirty"] is False and s["pending"] == 2, s
    ms = s["migrations"]
    assert [m["version"] for m in ms] == [1, 2, 3, 4]
    for m in ms:
        stem, name = STD_FILES[m["version"]]
        assert m["name"] == name
        assert m["sha256"] == sha256_of(d / f"{stem}.up.json")
        assert m["drift"] is False
        if m["version"] <= 2:
            assert m["state"] == "applied"
            assert m["applied_at"] == iso[m["version"]]
            assert m["applied_by"] == "pod-s"
        else:
            assert m["state"] == "pending"
            assert "applied_at" not in m or m["applied_at"] in (None, "")

    # A failed migration: the database is dirty, and status says so.
    write_migrations(d, {"003_third.up.json": [{"insert": "items", "documents": [{"_id": 1}]}]})
    assert run_mi(["-path", d, "-database", db_url, "up"]).returncode == 7
    r = mi(["-path", d, "-database", db_url, "status"])
    assert r.returncode == 0, r
    rows = {int(l.split()[0]): l.split() for l in r.stdout.splitlines()[1:] if l.split() and l.split()[0].isdigit()}
    assert rows[3][1] == "dirty", r
    assert "(dirty)" in r.stdout
    s = json.loads(mi(["-path", d, "-database", db_url, "status", "-json"]).stdout)
    assert s["version"] == 3 and s["dirty"] is True
    assert [m["state"] for m in s["migrations"]] == ["applied", "applied", "dirty", "pending"]


# --------------------------------------------------------------------------
# 5. plan


def plan_lines(res):
    return [l.split() for l in res.stdout.splitlines() if l.strip()]


def test_plan_pending_goto_target_and_nothing_written(tmp_path, db_url, db):
    d = write_standard(tmp_path / "m")

    # A fresh database: plan reads only; no collection appears.
    r = mi(["-path", d, "-database", db_url, "plan"])
    assert r.returncode == 10, r
    assert plan_lines(r) == [["up", "1", "first"], ["up", "2", "second"], ["up", "3", "third"],
                             ["up", "4", "fourth"]]
    assert db.list_collection_names() == []

    assert run_mi(["-path", d, "-database", db_url, "up", "2"]).returncode == 0
    before = whole_db(db)
    assert db[LOCK].count_documents({}) == 0

    r = mi(["-path", d, "-database", db_url, "plan"])
    assert r.returncode == 10, r
    assert plan_lines(r) == [["up", "3", "third"], ["up", "4", "fourth"]]

    r = mi(["-path", d, "-database", db_url, "plan", "3"])
    assert r.returncode == 10, r
    assert plan_lines(r) == [["up", "3", "third"]]

    r = mi(["-path", d, "-database", db_url, "plan", "1"])
    assert r.returncode == 10, r
    assert plan_lines(r) == [["down", "2", "second"]]

    r = mi(["-path", d, "-database", db_url, "plan", "2"])
    assert r.returncode == 0, r
    assert r.stdout.strip() == "nothing to do"

    r = mi(["-path", d, "-database", db_url, "plan"], env={"TARGET_VERSION": "4"})
    assert r.returncode == 10, r
    assert plan_lines(r) == [["up", "3", "third"], ["up", "4", "fourth"]]
    r = mi(["-path", d, "-database", db_url, "plan"], env={"TARGET_VERSION": "1"})
    assert r.returncode == 10, r
    assert plan_lines(r) == [["down", "2", "second"]]

    assert whole_db(db) == before  # nothing written, no lock left
    assert version_of(db) == (2, False)

    assert run_mi(["-path", d, "-database", db_url, "up"]).returncode == 0
    before = whole_db(db)
    r = mi(["-path", d, "-database", db_url, "plan"])
    assert r.returncode == 0, r
    assert r.stdout.strip() == "nothing to do"
    r = mi(["-path", d, "-database", db_url, "plan", "1"])
    assert r.returncode == 10, r
    assert plan_lines(r) == [["down", "4", "fourth"], ["down", "3", "third"], ["down", "2", "second"]]
    assert whole_db(db) == before


def test_plan_refuses_dirty_database(tmp_path, db_url, db):
    d = write_standard(tmp_path / "m", {
        "003_third.up.json": [{"insert": "items", "documents": [{"_id": 1}]}]})
    assert run_mi(["-path", d, "-database", db_url, "up"]).returncode == 7
    assert version_of(db) == (3, True)
    before = whole_db(db)
    for args in (["plan"], ["plan", "1"]):
        r = mi(["-path", d, "-database", db_url] + args)
        assert r.returncode == 8, r
        assert r.stdout == "", r
        assert any("Dirty database version 3" in x["msg"] for x in r.logs), r
    assert whole_db(db) == before
