"""The arm64 static binary (bin/static/arm64/migrate-init) is what it
claims to be, and does the job under qemu-aarch64-static: applies
migrations-example to FerretDB on 127.0.0.1 and brings it back down."""

import json
import subprocess

import pymongo

from conftest import QEMU, REPO

EXAMPLE = REPO / "migrations-example"
NEWEST = max(int(p.name.split("_")[0]) for p in EXAMPLE.glob("*.up.json"))


def run(bin_, *args, timeout=120):
    env = {"PATH": "/usr/bin:/bin", "LOG_FORMAT": "json",
           "TERMINATION_MESSAGE_PATH": "/dev/null"}
    return subprocess.run([QEMU, str(bin_), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def test_static_aarch64_elf(arm64_bin):
    desc = subprocess.run(["file", "-b", str(arm64_bin)], capture_output=True, text=True,
                          check=True).stdout
    assert "ARM aarch64" in desc and "statically linked" in desc, desc
    hdr = subprocess.run(["readelf", "-l", str(arm64_bin)], capture_output=True, text=True,
                         check=True).stdout
    assert "INTERP" not in hdr
    r = run(arm64_bin, "-version")
    assert r.returncode == 0, r


def test_up_down_migrations_example(arm64_bin, ferretdb, dbname):
    url = f"mongodb://127.0.0.1:{ferretdb}/{dbname}"
    r = run(arm64_bin, "-path", EXAMPLE, "-database", url, "up")
    assert r.returncode == 0, r
    for line in r.stderr.splitlines():
        json.loads(line)  # JSON logs, as on amd64
    r = run(arm64_bin, "-path", EXAMPLE, "-database", url, "version")
    assert (r.returncode, r.stdout.strip()) == (0, str(NEWEST)), r
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{ferretdb}/") as c:
        doc = c[dbname]["schema_migrations"].find_one()
        assert doc["version"] == NEWEST and doc["dirty"] is False
        assert {"users", "orders"} <= set(c[dbname].list_collection_names())
    r = run(arm64_bin, "-path", EXAMPLE, "-database", url, "down", "-all")
    assert r.returncode == 0, r
    r = run(arm64_bin, "-path", EXAMPLE, "-database", url, "version")
    assert r.returncode == 0 and "no migration" in r.stdout + r.stderr, r
