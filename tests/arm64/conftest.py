"""Fixtures for the arm64 tests (`make test-arm64`): a FerretDB on 127.0.0.1
(scripts/ferretdb.sh), a registry on 127.0.0.1 (scripts/registry.sh), and
Docker for the multi-platform image. Nothing is skipped: a missing tool is a
failure that says what to run."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pymongo
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared hook
from noskip import pytest_runtest_makereport  # noqa: E402,F401  (a skipped test fails)

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
ARM64_BIN = REPO / "bin" / "static" / "arm64" / "migrate-init"
AMD64_BIN = REPO / "bin" / "static" / "migrate-init"
QEMU = "/usr/bin/qemu-aarch64-static"


@pytest.fixture(scope="session")
def arm64_bin():
    if not ARM64_BIN.exists():
        pytest.fail(f"{ARM64_BIN} missing: run `make static ARCH=arm64`", pytrace=False)
    if not os.access(QEMU, os.X_OK):
        pytest.fail(f"{QEMU} missing: apt-get install qemu-user-static", pytrace=False)
    return ARM64_BIN


@pytest.fixture(scope="session")
def ferretdb(tmp_path_factory):
    d = tmp_path_factory.mktemp("ferretdb")
    p = subprocess.run([str(SCRIPTS / "ferretdb.sh"), "start", str(d)], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        pytest.fail(f"scripts/ferretdb.sh start failed (run scripts/deps.sh?):\n{p.stderr}",
                    pytrace=False)
    port = int(p.stdout.strip())
    try:
        yield port
    finally:
        subprocess.run([str(SCRIPTS / "ferretdb.sh"), "stop", str(d)], timeout=60)


@pytest.fixture
def dbname(ferretdb):
    name = "arm64_" + uuid.uuid4().hex[:10]
    yield name
    with pymongo.MongoClient(f"mongodb://127.0.0.1:{ferretdb}/", serverSelectionTimeoutMS=5000) as c:
        c.drop_database(name)


@pytest.fixture(scope="session")
def docker_ok():
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed (apt-get install docker.io)", pytrace=False)
    p = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        pytest.fail(f"Docker is unreachable: {p.stderr.strip()}", pytrace=False)
    return p.stdout.strip()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """Port of a registry on 127.0.0.1, stopped at session end."""
    d = tmp_path_factory.mktemp("registry")
    p = subprocess.run([str(SCRIPTS / "registry.sh"), "start", str(d)], capture_output=True,
                       text=True, timeout=900)
    if p.returncode != 0:
        pytest.fail(f"scripts/registry.sh start failed:\n{p.stderr}", pytrace=False)
    try:
        yield int(p.stdout.strip())
    finally:
        subprocess.run([str(SCRIPTS / "registry.sh"), "stop", str(d)], timeout=60)
