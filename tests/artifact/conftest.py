"""Fixtures and hooks of the artifact tests. The helpers, and what is built
and cached, are in artifact_harness.py. tests/artifact is a package so that
this conftest and tests/e2e's (which its tests import as `conftest`) do not
collide when both run in one pytest session."""

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from .artifact_harness import (
    AUTH_DB, AUTH_USER, BARE_TAG, FERRETDB_BIN, IMAGE_TAG, LABEL, PASSWORD, REPO, RUN_ID, SCRIPTS, STATIC_BIN,
    Certs, HostFerretDB, NetFerretDB, Resources, _openssl, _remove_leftovers, _script, docker, free_port,
    run_argv, wait_ping,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared hook
from noskip import pytest_runtest_makereport  # noqa: E402,F401  (a skipped test fails)


@pytest.fixture(scope="session")
def docker_ok():
    """Docker must answer; otherwise every test that needs it fails with this message."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed: the artifact tests need Docker Engine "
                    "(apt-get install docker.io)", pytrace=False)
    p = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        pytest.fail("Docker is unreachable, and the artifact tests need it (they build and run "
                    f"images): `docker info` failed:\n{p.stderr.strip()}", pytrace=False)
    _remove_leftovers()
    return p.stdout.strip()


@pytest.fixture(scope="session")
def session_resources(docker_ok):
    res = Resources()
    try:
        yield res
    finally:
        res.cleanup()


@pytest.fixture
def containers(docker_ok):
    """Per-test containers: removed when the test ends."""
    res = Resources()
    try:
        yield res
    finally:
        res.cleanup()


@pytest.fixture(scope="session")
def scratch_images(docker_ok):
    """Tags of small images this session built; removed at the end."""
    tags = []
    try:
        yield tags
    finally:
        if tags:
            docker("rmi", "-f", *tags, check=False)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A test CA and a server certificate for localhost, 127.0.0.1 and the
    container name ferretdb. World-readable (uid 65532 reads them in the
    containers; the key is a throwaway)."""
    d = tmp_path_factory.mktemp("certs")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=migrate-init artifact test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=ferretdb", cwd=d)
    (d / "server.ext").write_text(
        "subjectAltName=DNS:ferretdb,DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext", cwd=d)
    (d / "ca.key").unlink()
    d.chmod(0o755)
    for f in d.iterdir():
        f.chmod(0o644)
    return Certs(d)


@pytest.fixture
def termination_log(tmp_path):
    """termination_log(name) -> a host file, writable by uid 65532, to bind-mount
    at /dev/termination-log (as the kubelet does)."""

    def make(name="termination-log"):
        p = tmp_path / name
        p.write_text("")
        p.chmod(0o666)
        tmp_path.chmod(0o755)
        return p

    return make


@pytest.fixture(scope="session")
def static_binary():
    if not (STATIC_BIN.is_file() and os.access(STATIC_BIN, os.X_OK)):
        pytest.fail(f"{STATIC_BIN} not found: run `make static` (make test-artifact does)", pytrace=False)
    return STATIC_BIN


@pytest.fixture(scope="session")
def base_image(docker_ok, tmp_path_factory):
    """The builder's base: Debian bookworm minbase via debootstrap, imported once."""
    log = tmp_path_factory.mktemp("logs") / "debootstrap-base.log"
    return _script(["bash", str(SCRIPTS / "debootstrap-base.sh"), "bookworm"],
                   "scripts/debootstrap-base.sh", 20 * 60, log)


@pytest.fixture(scope="session")
def shipped_image(base_image, tmp_path_factory):
    """docker/Dockerfile built for real (docker/build.sh with BASE=the debootstrap image)."""
    log = tmp_path_factory.mktemp("logs") / "docker-build.log"
    out = _script(["bash", str(REPO / "docker" / "build.sh"), IMAGE_TAG], "docker/build.sh", 25 * 60, log,
                  env={"BASE": base_image})
    assert out.splitlines() == [IMAGE_TAG, BARE_TAG], out
    return IMAGE_TAG


@pytest.fixture(scope="session")
def bare_image(shipped_image):
    """The --target bare image (empty /migrations), built along with shipped_image."""
    return BARE_TAG


@pytest.fixture(scope="session")
def ferretdb_image(docker_ok):
    if not FERRETDB_BIN.exists():
        pytest.fail(f"FerretDB not found at {FERRETDB_BIN}: run scripts/deps.sh", pytrace=False)
    p = subprocess.run(["bash", str(SCRIPTS / "ferretdb-image.sh")], capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0:
        pytest.fail(f"scripts/ferretdb-image.sh failed:\n{p.stderr}", pytrace=False)
    return p.stdout.strip()


@pytest.fixture(scope="session")
def host_ferretdb(tmp_path_factory, certs):
    if not FERRETDB_BIN.exists():
        pytest.fail(f"FerretDB not found at {FERRETDB_BIN}: run scripts/deps.sh", pytrace=False)
    d = tmp_path_factory.mktemp("ferretdb-host")
    tls_port = free_port()
    env = dict(os.environ)
    env.pop("FERRETDB_PORT", None)
    env["FERRETDB_ARGS"] = " ".join([
        f"--listen-tls=127.0.0.1:{tls_port}",
        f"--listen-tls-cert-file={certs.server_cert}",
        f"--listen-tls-key-file={certs.server_key}",
        "--test-enable-new-auth",
        f"--setup-database={AUTH_DB}", f"--setup-username={AUTH_USER}", f"--setup-password={PASSWORD}",
    ])
    p = subprocess.run([str(SCRIPTS / "ferretdb.sh"), "start", str(d)], capture_output=True, text=True,
                       timeout=60, env=env)
    if p.returncode != 0:
        pytest.fail(f"could not start FerretDB:\n{p.stderr}", pytrace=False)
    try:
        port = int(p.stdout.strip())
        wait_ping(port)
        yield HostFerretDB(port, tls_port)
    finally:
        subprocess.run([str(SCRIPTS / "ferretdb.sh"), "stop", str(d)], timeout=60)


@pytest.fixture(scope="session")
def net_ferretdb(ferretdb_image, certs, session_resources):
    """Two networks: an --internal one, the pods' (no route anywhere), and
    one that only carries FerretDB's published port (127.0.0.1 only) for the
    test's own inspection with pymongo."""
    internal, pub = f"{RUN_ID}-pods", f"{RUN_ID}-pub"
    for name, opts in ((internal, ["--internal"]), (pub, [])):
        docker("network", "create", *opts, "--label", f"{LABEL}={RUN_ID}", name)
        session_resources.networks.append(name)
    port = free_port()
    cname, argv = run_argv(
        session_resources, "ferretdb", ferretdb_image,
        [
            "--listen-tls=:27018", "--listen-tls-cert-file=/certs/server.pem",
            "--listen-tls-key-file=/certs/server.key", "--test-enable-new-auth",
            f"--setup-database={AUTH_DB}", f"--setup-username={AUTH_USER}", f"--setup-password={PASSWORD}",
        ],
        network=pub, mounts=[(certs.dir, "/certs", "ro")],
        extra=["-p", f"127.0.0.1:{port}:27017",
               "--tmpfs", "/state:rw,uid=65532,gid=65532,mode=0700",
               "--tmpfs", "/tmp:rw,uid=65532,gid=65532,mode=0700"],
    )
    docker("run", "-d", *argv)
    docker("network", "connect", "--alias", NetFerretDB.alias, internal, cname)
    wait_ping(port)
    return NetFerretDB(internal, port, cname)


@pytest.fixture
def dbname(request):
    base = re.sub(r"[^A-Za-z0-9]", "_", request.node.name)[:24]
    return f"art_{base}_{uuid.uuid4().hex[:6]}"

