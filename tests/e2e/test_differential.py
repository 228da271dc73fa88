"""Differential testing against golang-migrate v4.20.1.

For each seed: a generated migration set (sequential or timestamp versions,
gaps, missing and no-op downs, every Extended JSON type FerretDB stores,
indexes, and commands that fail midway) and a random sequence of commands
(up, up N, down N, down -all, goto V, force V, version, and hand-edited
state). The sequence runs on two fresh databases: the reference one always
with golang-migrate, the other with migrate-init, or, in the interleaved
mode, with either tool chosen at random per step. After every step both
databases must agree: success or failure, version and dirty flag, every
collection's documents as raw BSON (so types too), indexes.

Deliberate differences (README) are encoded, not skipped:
  * exit codes: golang-migrate exits 1 for every failure, we use the table;
    only success and failure are compared;
  * `version` with no version: golang-migrate fails ("error: no migration"),
    we print "no migration" and exit 0; the text is compared;
  * we keep a history collection and a lock_token field in the state
    document; neither is compared (golang-migrate ignores both);
  * a run that took the lock on a fresh database may leave
    {version: -1, dirty: false}, which golang-migrate reads as no version:
    "no document" and that document compare equal.
The generator writes no broken bodies (where we refuse up front and
golang-migrate fails half way, on purpose) and no empty down files.

MI_DIFF_SEEDS=N runs N seeds (CI: the fixed ones below); a divergence prints
a reproducer shrunk to the fewest steps that still diverge.
"""

import json
import os
import random

import pytest
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument

from conftest import run_gm, run_mi, write_migrations

RAW = CodecOptions(document_class=RawBSONDocument)
OURS = {"schema_migrations", "schema_migrations_history", "migrate_advisory_lock"}
CI_SEEDS = list(range(1, 7))
SEEDS = list(range(1, int(os.environ["MI_DIFF_SEEDS"]) + 1)) if os.environ.get("MI_DIFF_SEEDS") else CI_SEEDS
STEPS = int(os.environ.get("MI_DIFF_STEPS", "40"))

# Values of every Extended JSON type FerretDB v1 stores (tests/e2e/test_extjson.py
# compares them byte for byte one by one; here they go through whole runs).
VALUES = [
    '{"$oid": "5f1d7e0b9d3c4a2b1c0d0e0f"}', '{"$date": {"$numberLong": "1593000000123"}}',
    '{"$numberLong": "42"}', '{"$numberLong": "-9223372036854775808"}', '{"$numberInt": "-7"}',
    '{"$numberDouble": "3.25"}', '{"$binary": {"base64": "AQIDBA==", "subType": "00"}}',
    '{"$binary": {"base64": "AQIDBA==", "subType": "80"}}',
    '{"$regularExpression": {"pattern": "^ab+c$", "options": "im"}}',
    '{"$timestamp": {"t": 1593000000, "i": 7}}', "2147483648", "-2147483649", "1.5", "1e3", "2.0",
    "-0.25", "null", "true", "false", '"h\\u00e9llo \\"q\\""', '{"x": [1, 2.5, {"z": "s"}]}', "[]", "{}",
]


# --------------------------------------------------------------------------
# The generator


def gen_set(rnd):
    """{file name: body text}, and the versions in order."""
    n = rnd.randint(3, 6)
    if rnd.random() < 0.5:
        versions, v = [], 0
        for _ in range(n):
            v += rnd.choice([1, 1, 1, 2, 5])
            versions.append(v)
        width = rnd.choice([0, 0, 3, 6])
    else:
        base = 20240101120000
        versions = sorted(base + rnd.randint(0, 10 ** 8) for _ in range(n))
        width = 0
    files = {}
    colls = ["alpha", "beta", "gamma"]
    for i, v in enumerate(versions):
        name = f"{v:0{width}d}_step{i}"
        coll = rnd.choice(colls)
        ids = [f"v{v}-{k}" for k in range(rnd.randint(1, 3))]
        docs = ", ".join(f'{{"_id": "{i_}", "val": {rnd.choice(VALUES)}, "n": {k}}}' for k, i_ in enumerate(ids))
        up = [f'{{"insert": "{coll}", "documents": [{docs}]}}']
        down = [f'{{"delete": "{coll}", "deletes": [{{"q": {{"_id": {{"$in": {json.dumps(ids)}}}}}, "limit": 0}}]}}']
        if rnd.random() < 0.4:
            ix = f"ix_{v}"
            up.append(f'{{"createIndexes": "{coll}", "indexes": [{{"key": {{"n": 1, "v{v}": -1}}, "name": "{ix}"}}]}}')
            down.insert(0, f'{{"dropIndexes": "{coll}", "index": "{ix}"}}')
        if rnd.random() < 0.3:
            up.append(f'{{"update": "{coll}", "updates": [{{"q": {{"_id": "{ids[0]}"}}, "u": {{"$set": {{"touched": {v}}}}}}}]}}')
        if rnd.random() < 0.12:
            # fails midway: the commands before it have run
            up.append(f'{{"insert": "{coll}", "documents": [{{"_id": "{ids[0]}"}}]}}')
        files[f"{name}.up.json"] = "[" + ",\n ".join(up) + "]\n"
        r = rnd.random()
        if r < 0.7:
            files[f"{name}.down.json"] = "[" + ",\n ".join(down) + "]\n"
        elif r < 0.85:
            files[f"{name}.down.json"] = "[]\n"
        # else: no down file
    return files, versions


def gen_steps(rnd, versions, count, interleave):
    steps = []
    for _ in range(count):
        k = rnd.random()
        if k < 0.25:
            step = ["up"]
        elif k < 0.40:
            step = ["up", str(rnd.randint(1, 3))]
        elif k < 0.55:
            step = ["down", str(rnd.randint(1, 3))]
        elif k < 0.60:
            step = ["down", "-all"]
        elif k < 0.72:
            step = ["goto", str(rnd.choice(versions))]
        elif k < 0.82:
            # golang-migrate's flag parser takes a bare -1 for a flag: "--" first
            # (we accept both spellings; README).
            step = ["force", "--", str(rnd.choice(versions + [-1]))]
        elif k < 0.92:
            step = ["version"]
        else:
            step = ["@state", str(rnd.choice(versions + [-1])), rnd.choice(["false", "true"])]
        tool = rnd.choice(["gm", "mi"]) if interleave else "mi"
        steps.append((tool, step))
    return steps


# --------------------------------------------------------------------------
# Running and observing


def set_state(db, version, dirty):
    """A hand edit, as golang-migrate's own write leaves it."""
    db["schema_migrations"].drop()
    db["schema_migrations"].insert_one({"version": int(version), "dirty": dirty == "true"})


def apply(tool, step, d, url, db):
    """(ok, text): whether the step succeeded, and what version printed."""
    if step[0] == "@state":
        set_state(db, step[1], step[2])
        return True, ""
    run = run_gm if tool == "gm" else run_mi
    res = run(["-path", d, "-database", url, *step], timeout=60)
    text = ""
    if step[0] == "version":
        text = (res.stdout + res.stderr).strip().splitlines()
        text = [t for t in text if not t.startswith("{")]
        text = text[-1].replace("error: ", "") if text else ""
        return True, text  # compared by text: see the module doc
    return res.returncode == 0, text


def observe(db):
    docs = db["schema_migrations"].find_one() if "schema_migrations" in db.list_collection_names() else None
    state = (int(docs["version"]), bool(docs.get("dirty"))) if docs else (-1, False)
    colls = {}
    for name in sorted(db.list_collection_names()):
        if name in OURS:
            continue
        c = db.get_collection(name, codec_options=RAW)
        rows = sorted(bytes(x.raw) for x in c.find())
        ixs = sorted(json.dumps({k: v for k, v in ix.items() if k not in ("ns", "v")}, sort_keys=True, default=str)
                     for ix in db[name].list_indexes())
        colls[name] = (rows, ixs)
    return state, colls


def run_sequence(files, steps, new_db, tmp_path, tag):
    """The first step (index) at which the two databases disagree, and how; or None."""
    d = write_migrations(tmp_path / f"set-{tag}", files)
    _, ref_url, ref = new_db()
    _, url, db = new_db()
    try:
        for i, (tool, step) in enumerate(steps):
            a = apply("gm", step, d, ref_url, ref)
            b = apply(tool, step, d, url, db)
            if a != b:
                return i, f"outcome: golang-migrate {a}, {tool} {b}"
            oa, ob = observe(ref), observe(db)
            if oa[0] != ob[0]:
                return i, f"state: golang-migrate {oa[0]}, {tool} {ob[0]}"
            if oa[1] != ob[1]:
                diff = sorted(k for k in set(oa[1]) | set(ob[1]) if oa[1].get(k) != ob[1].get(k))
                return i, f"collections differ: {diff}"
        return None
    finally:
        ref.client.drop_database(ref.name)
        db.client.drop_database(db.name)


def shrink(files, steps, new_db, tmp_path, found):
    """Greedily drops steps while the sequence still diverges (bounded)."""
    best, (at, why) = steps[: found[0] + 1], found
    for attempt in range(40):
        changed = False
        for j in range(len(best) - 1):
            trial = best[:j] + best[j + 1:]
            r = run_sequence(files, trial, new_db, tmp_path, f"shrink{attempt}-{j}")
            if r:
                best, (at, why), changed = trial[: r[0] + 1], r, True
                break
        if not changed:
            break
    return best, why


@pytest.mark.parametrize("interleave", [False, True], ids=["migrate-init", "interleaved"])
@pytest.mark.parametrize("seed", SEEDS)
def test_same_as_golang_migrate(seed, interleave, new_db, tmp_path):
    rnd = random.Random(seed * 2 + interleave)
    files, versions = gen_set(rnd)
    steps = gen_steps(rnd, versions, STEPS, interleave)
    found = run_sequence(files, steps, new_db, tmp_path, "full")
    if found:
        best, why = shrink(files, steps, new_db, tmp_path, found)
        repro = "\n".join(f"  {t}: {' '.join(s)}" for t, s in best)
        body = "\n".join(f"--- {n}\n{b}" for n, b in sorted(files.items()))
        pytest.fail(f"seed {seed} (interleave={interleave}) diverges at its last step: {why}\n"
                    f"steps:\n{repro}\nmigrations:\n{body}", pytrace=False)
