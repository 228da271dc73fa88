"""MongoDB Extended JSON: migrate-init must build the same BSON as golang-migrate.

The same migration file is applied by golang-migrate to database A and by
migrate-init to database B; the stored documents are read back as raw BSON and
compared byte for byte (which also compares every element's type).

Two things cannot go through FerretDB v1 storage and get their own tests:
  * relaxed {"$date": "<ISO-8601>"}: golang-migrate v4.20.1 parses migrations
    in canonical mode and rejects it ("invalid JSON input; expected {"), so
    migrate-init's result is compared with golang-migrate's for the same
    instant written canonically;
  * $numberDecimal (and non-finite doubles): FerretDB v1 cannot store
    Decimal128 (it drops the connection), so a recording TCP relay in front of
    the real FerretDB captures the insert command each tool sends and the
    documents are compared byte for byte on the wire.
"""

import datetime

import bson
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from conftest import raw_collection, run_gm, run_mi, state, write_migrations

RAW = CodecOptions(document_class=RawBSONDocument)

# Explicit _id everywhere so both databases hold identical documents.
# Written as text (not json.dumps) so number spellings (1e3, 2.0, -0.0) reach the tools verbatim.
EXTJSON_DOCS = r"""
 {"_id": "oid", "v": {"$oid": "5f1d7e0b9d3c4a2b1c0d0e0f"}},
 {"_id": "date_canonical", "v": {"$date": {"$numberLong": "1593000000123"}}},
 {"_id": "date_canonical_neg", "v": {"$date": {"$numberLong": "-86400000"}}},
 {"_id": "long", "v": {"$numberLong": "42"}},
 {"_id": "long_big", "v": {"$numberLong": "-9223372036854775808"}},
 {"_id": "int_explicit", "v": {"$numberInt": "-7"}},
 {"_id": "double_explicit", "v": {"$numberDouble": "3.25"}},
 {"_id": "bin00", "v": {"$binary": {"base64": "AQIDBA==", "subType": "00"}}},
 {"_id": "bin80", "v": {"$binary": {"base64": "AQIDBA==", "subType": "80"}}},
 {"_id": "bin_empty", "v": {"$binary": {"base64": "", "subType": "00"}}},
 {"_id": "regex", "v": {"$regularExpression": {"pattern": "^ab+c$", "options": "im"}}},
 {"_id": "regex_noopt", "v": {"$regularExpression": {"pattern": "x.*y", "options": ""}}},
 {"_id": "ts", "v": {"$timestamp": {"t": 1593000000, "i": 7}}},
 {"_id": "ints", "small": 1, "zero": 0, "max32": 2147483647, "over32": 2147483648,
  "neg": -5, "min32": -2147483648, "under32": -2147483649,
  "big": 9007199254740993, "max64": 9223372036854775807},
 {"_id": "doubles", "a": 1.5, "b": 1e3, "c": 2.0, "d": -0.25, "e": 1E-3, "f": 0.1,
  "g": 12345678.875, "h": -1.5e300, "i": 5e-324},
 {"_id": "mixed", "null": null, "t": true, "f": false, "s": "h\u00e9llo \"q\" \\ \n\t\u263a",
  "sub": {"x": {"$numberLong": "1"}, "y": [1, 2.5, {"z": {"$oid": "000000000000000000000001"}}]},
  "empty_obj": {}, "empty_arr": []}
"""


def migration_body(docs_text, coll="t"):
    return '[{"insert": "%s", "documents": [%s]}]\n' % (coll, docs_text)


def raw_docs(db, coll="t"):
    docs = [bytes(d.raw) for d in raw_collection(db, coll).find()]
    return sorted(docs, key=lambda raw: repr(bson.decode(raw, RAW)["_id"]))


def describe(raw):
    try:
        return repr(bson.decode(raw, CodecOptions(uuid_representation=4)))
    except Exception as e:  # pragma: no cover - diagnostics only
        return f"<undecodable: {e}>"


def assert_same_docs(a, b):
    assert len(a) == len(b), (len(a), len(b))
    for x, y in zip(a, b):
        assert x == y, f"\n golang-migrate: {x.hex()}\n   {describe(x)}\n migrate-init:   {y.hex()}\n   {describe(y)}"


def test_extjson_same_bson_as_golang_migrate(tmp_path, new_db):
    migdir = write_migrations(tmp_path / "m", {"1_ext.up.json": migration_body(EXTJSON_DOCS)})
    _, url_a, db_a = new_db()
    _, url_b, db_b = new_db()

    res = run_gm(["-path", migdir, "-database", url_a, "up"])
    assert res.returncode == 0, res
    res = run_mi(["-path", migdir, "-database", url_b, "up"])
    assert res.returncode == 0, res

    a, b = raw_docs(db_a), raw_docs(db_b)
    assert len(a) == EXTJSON_DOCS.count('"_id"')  # nothing silently dropped
    assert_same_docs(a, b)
    assert state(db_a) == state(db_b) == [{"version": 1, "dirty": False}]

    # spot checks on the types, independent of golang-migrate
    d = {bson.decode(r)["_id"]: bson.decode(r, CodecOptions(uuid_representation=4)) for r in b}
    assert isinstance(d["long"]["v"], bson.int64.Int64)
    assert d["date_canonical"]["v"] == datetime.datetime(2020, 6, 24, 12, 0, 0, 123000)
    ints = [r for r in b if bson.decode(r)["_id"] == "ints"][0]
    assert b"\x10small\x00" in ints and b"\x10max32\x00" in ints and b"\x10min32\x00" in ints
    assert b"\x12over32\x00" in ints and b"\x12under32\x00" in ints and b"\x12big\x00" in ints
    assert bson.decode(ints)["big"] == 9007199254740993  # not rounded through a double
    doubles = [r for r in b if bson.decode(r)["_id"] == "doubles"][0]
    for k in "abcdefghi":
        assert b"\x01" + k.encode() + b"\x00" in doubles, k


def test_relaxed_date_matches_canonical(tmp_path, new_db):
    relaxed = r"""
 {"_id": "d1", "v": {"$date": "2020-06-24T12:00:00.123Z"}},
 {"_id": "d2", "v": {"$date": "1970-01-01T00:00:00Z"}},
 {"_id": "d3", "v": {"$date": "2038-01-19T03:14:08.001Z"}}
"""
    ms = lambda dt: int((dt - datetime.datetime(1970, 1, 1)).total_seconds() * 1000)
    canonical = ",".join(
        '{"_id": "%s", "v": {"$date": {"$numberLong": "%d"}}}' % (i, ms(dt))
        for i, dt in (
            ("d1", datetime.datetime(2020, 6, 24, 12, 0, 0, 123000)),
            ("d2", datetime.datetime(1970, 1, 1)),
            ("d3", datetime.datetime(2038, 1, 19, 3, 14, 8, 1000)),
        )
    )
    dir_gm = write_migrations(tmp_path / "gm", {"1_d.up.json": migration_body(canonical)})
    dir_mi = write_migrations(tmp_path / "mi", {"1_d.up.json": migration_body(relaxed)})
    _, url_a, db_a = new_db()
    _, url_b, db_b = new_db()
    res = run_gm(["-path", dir_gm, "-database", url_a, "up"])
    assert res.returncode == 0, res
    res = run_mi(["-path", dir_mi, "-database", url_b, "up"])
    assert res.returncode == 0, res
    a, b = raw_docs(db_a), raw_docs(db_b)
    assert len(a) == 3
    assert_same_docs(a, b)


def test_decimal_and_special_doubles_on_the_wire(tmp_path, relay_factory, new_db):
    docs = r"""
 {"_id": "dec1", "v": {"$numberDecimal": "1.5"}},
 {"_id": "dec2", "v": {"$numberDecimal": "-0.000123E+10"}},
 {"_id": "dec3", "v": {"$numberDecimal": "12345678901234567890123456789012"}},
 {"_id": "dec4", "v": {"$numberDecimal": "Infinity"}},
 {"_id": "dec5", "v": {"$numberDecimal": "-0"}},
 {"_id": "inf", "v": {"$numberDouble": "Infinity"}},
 {"_id": "ninf", "v": {"$numberDouble": "-Infinity"}},
 {"_id": "negzero", "v": {"$numberDouble": "-0.0"}, "w": -0.0}
"""
    migdir = write_migrations(tmp_path / "m", {"1_dec.up.json": migration_body(docs, "dec_t")})
    relay = relay_factory()
    url_a = relay.url(new_db()[0])
    url_b = relay.url(new_db()[0])

    # FerretDB drops the connection on Decimal128: both tools fail, that is expected here.
    run_gm(["-path", migdir, "-database", url_a, "up"], timeout=60)
    sent_gm = relay.inserted("dec_t")
    assert len(sent_gm) == 8, f"relay did not capture golang-migrate's insert: {relay.commands!r}"

    run_mi(["-path", migdir, "-database", url_b, "up"], timeout=60)
    sent_mi = relay.inserted("dec_t")[len(sent_gm) :]
    assert len(sent_mi) == 8, "migrate-init did not send the insert (or split it differently)"
    assert_same_docs(sent_gm, sent_mi)
