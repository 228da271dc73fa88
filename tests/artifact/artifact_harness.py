"""Harness for the tests of the shipped artifact (docker/, k8s/).

Run by `make test-artifact` (/usr/bin/python3 -m pytest tests/artifact).

What is built, and cached so that a second run is fast:
  * bin/static/migrate-init       by `make static` (the Makefile target's prerequisite)
  * migrate-init-base:bookworm-*  a Debian base image: debootstrap tarball cached in
                                  $MI_CACHE/debootstrap/, `docker import`ed once
                                  (scripts/debootstrap-base.sh)
  * migrate-init:artifact-test    docker/Dockerfile built with BASE= that image
    (and ...-bare, --target bare) (docker/build.sh); Docker's layer cache keeps the
                                  slow builder layer (the static prefix)
  * migrate-init-ferretdb:VERSION FerretDB's static binary in a FROM-scratch image
                                  (scripts/ferretdb-image.sh)
  * the manifest checker          Go modules in Go's module cache

Rules:
  * Docker must be reachable: tests that need it fail (never skip) with a
    clear message when it is not; a skipped test counts as a failure.
  * Every container and network created here carries the label
    org.migrate-init.test-artifact=<run id> and a name starting with the run
    id; they are removed when the test (containers) or the session
    (networks, FerretDB) ends, failing or not. Leftovers of an earlier run
    whose process is gone are removed at session start.
  * Everything listens on 127.0.0.1 only: the host FerretDB via
    scripts/ferretdb.sh, the container FerretDB publishes 127.0.0.1:PORT only;
    the "pods" talk to it over an --internal Docker network.
"""

import json
import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pymongo
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
K8S = REPO / "k8s"
STATIC_BIN = REPO / "bin" / "static" / "migrate-init"
EXAMPLE = REPO / "migrations-example"
# Every container and network of a run carries LABEL=RUN_ID and a name
# starting with RUN_ID (the pid lets a later run tell a dead run's leftovers).
LABEL = "org.migrate-init.test-artifact"
RUN_ID = f"mi-art-{os.getpid()}-{uuid.uuid4().hex[:6]}"
IMAGE_TAG = os.environ.get("MI_ARTIFACT_IMAGE", "migrate-init:artifact-test")
BARE_TAG = IMAGE_TAG + "-bare"
NONROOT = "65532:65532"
# What a restricted pod gets (the securityContext of k8s/): read-only root,
# uid 65532, no capabilities, no privilege gain.
HARDENED = ["--read-only", "--user", NONROOT, "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges"]

# FerretDB's SCRAM user. The password looks like one, is not, and must never
# show in any output.
AUTH_DB = "authdb"
AUTH_USER = "migrator"
PASSWORD = "Fake-Artifact-Pa55"


def _versions():
    text = (SCRIPTS / "versions.sh").read_text()
    fv = re.search(r"^FERRETDB_VERSION=(\S+)", text, re.M).group(1)
    cache = os.environ.get("MI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "migrate-init")
    return fv, Path(cache)


FERRETDB_VERSION, MI_CACHE = _versions()
FERRETDB_BIN = MI_CACHE / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"


def example_migrations():
    """The demo set's migration files (top level of migrations-example/): name -> bytes."""
    pat = re.compile(r"^[0-9]+_.*\.(up|down)\.[^.]+$")
    return {p.name: p.read_bytes() for p in sorted(EXAMPLE.iterdir())
            if p.is_file() and pat.match(p.name)}


def newest_example_version():
    return max(int(n.split("_", 1)[0]) for n in example_migrations())


# --------------------------------------------------------------------------
# Docker


def docker(*args, check=True, timeout=120, env=None, input=None):
    """Runs the docker CLI; returns CompletedProcess (text). check: fail the
    test with the command's stderr when it exits non-zero."""
    full_env = dict(os.environ)
    if env:
        full_env.update({k: str(v) for k, v in env.items()})
    try:
        p = subprocess.run(["docker", *map(str, args)], capture_output=True, text=True,
                           timeout=timeout, env=full_env, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"docker {' '.join(map(str, args[:3]))} ... timed out after {timeout}s:\n{e.stderr}",
                    pytrace=False)
    if check and p.returncode != 0:
        pytest.fail(f"docker {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stderr}{p.stdout}",
                    pytrace=False)
    return p


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _remove_leftovers():
    """Containers and networks of earlier runs of this suite whose pytest is gone."""
    for kind, ls, rm in (("container", ["ps", "-a"], ["rm", "-f"]),
                         ("network", ["network", "ls"], ["network", "rm"])):
        p = docker(*ls, "--filter", f"label={LABEL}", "--format",
                   f'{{{{.ID}}}} {{{{.Label "{LABEL}"}}}}', check=False)
        for line in p.stdout.split("\n"):
            if not line.strip():
                continue
            ident, _, run = line.partition(" ")
            m = re.match(r"mi-art-(\d+)-", run)
            if m and not _pid_alive(int(m.group(1))):
                docker(*rm, ident, check=False)


class Resources:
    """Containers and networks created by the tests; removed in reverse order."""

    def __init__(self):
        self.containers = []
        self.networks = []

    def cleanup(self):
        if self.containers:
            docker("rm", "-f", "-v", *self.containers, check=False, timeout=120)
            self.containers.clear()
        for n in reversed(self.networks):
            docker("network", "rm", n, check=False)
        self.networks.clear()


def run_argv(res, name, image, args=(), *, network=None, env=None, mounts=(), hardened=True,
             detach=False, extra=()):
    """docker run/create argv for a container of this run (named RUN_ID-name).
    Environment values are passed through the docker CLI's environment
    (`-e NAME`), so they are not on any command line."""
    cname = f"{RUN_ID}-{name}"
    res.containers.append(cname)
    argv = ["--name", cname, "--label", f"{LABEL}={RUN_ID}"]
    if network:
        argv += ["--network", network]
    if hardened:
        argv += HARDENED
    for k in (env or {}):
        argv += ["-e", k]
    for src, dst, mode in mounts:
        argv += ["-v", f"{src}:{dst}:{mode}"]
    argv += list(extra)
    return cname, argv + [image, *args]


def docker_run(res, name, image, args=(), *, env=None, timeout=120, **kw):
    """Runs a container to completion; returns (CompletedProcess, container name).
    The container is kept (for inspect) until the test's cleanup."""
    cname, argv = run_argv(res, name, image, args, env=env, **kw)
    p = docker("run", *argv, check=False, timeout=timeout, env=env)
    return p, cname


def inspect(name):
    return json.loads(docker("inspect", name).stdout)[0]


def docker_time(s):
    """Docker's RFC 3339 timestamps (nanoseconds) -> seconds since the epoch, as a float."""
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$", s)
    assert m, f"unexpected time format {s!r}"
    base = time.mktime(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return base + float("0." + (m.group(2) or "0"))


def exported_paths(image):
    """Every path in the root file system of a container made from image
    (docker create + export): {path: type}, type in f (file), d, l, c/b, ..."""
    cid = docker("create", "--label", f"{LABEL}={RUN_ID}", image).stdout.strip()
    try:
        p = subprocess.run(f"docker export {cid} | tar -tvf -", shell=True, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
    finally:
        docker("rm", "-f", cid, check=False)
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        kind = line[0]
        path = parts[5]  # perms owner size date time path [-> target]
        out[path.rstrip("/")] = "f" if kind == "-" else kind
    return out
# What Docker itself puts in every container's root (mount points and
# placeholders for the files it bind-mounts at run time).
DOCKER_SKELETON = {
    ".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc", "etc/hostname",
    "etc/hosts", "etc/mtab", "etc/resolv.conf", "proc", "sys",
}


def build_context_image(tag, files, dockerfile):
    """docker build of a small context: files {relative path: bytes}; returns tag."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="mi-art-ctx-") as d:
        for rel, data in files.items():
            p = Path(d) / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
            p.chmod(0o755 if rel.endswith("migrate-init") else 0o644)
        (Path(d) / "Dockerfile").write_text(dockerfile)
        p = subprocess.run(["docker", "build", "--force-rm", "-q", "-t", tag, d], capture_output=True,
                           text=True, timeout=300)
        if p.returncode != 0:
            pytest.fail(f"docker build of {tag} failed:\n{p.stderr}", pytrace=False)
    return tag


# --------------------------------------------------------------------------
# Files, scripts


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} failed:\n{p.stderr}", pytrace=False)


class Certs:
    def __init__(self, d):
        self.dir = d
        self.ca = d / "ca.pem"
        self.server_cert = d / "server.pem"
        self.server_key = d / "server.key"


def _script(cmd, what, timeout, log, env=None):
    start = time.monotonic()
    with open(log, "w") as f:
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout,
                               env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired:
            pytest.fail(f"{what} took longer than {timeout}s (log: {log})", pytrace=False)
    if p.returncode != 0:
        tail = "".join(Path(log).read_text().splitlines(True)[-40:])
        pytest.fail(f"{what} failed ({p.returncode}); end of {log}:\n{tail}", pytrace=False)
    print(f"{what}: {time.monotonic() - start:.1f}s -> {p.stdout.strip()}")
    return p.stdout.strip()


# --------------------------------------------------------------------------
# FerretDB: on the host (for the scratch-rootfs tests), in a container on a
# private network (for the image tests)


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def mongo_client(port, **kw):
    opts = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000, **kw}
    return pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/", username=AUTH_USER, password=PASSWORD,
                               authSource=AUTH_DB, **opts)


def wait_ping(port, timeout=30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        c = mongo_client(port, serverSelectionTimeoutMS=1000)
        try:
            c.admin.command("ping")
            return
        except pymongo.errors.PyMongoError as e:
            last = e
            time.sleep(0.2)
        finally:
            c.close()
    pytest.fail(f"FerretDB on 127.0.0.1:{port} did not answer within {timeout}s: {last}", pytrace=False)


class HostFerretDB:
    """FerretDB on 127.0.0.1 (scripts/ferretdb.sh) with authentication and a TLS listener."""

    def __init__(self, port, tls_port):
        self.port = port
        self.tls_port = tls_port

    def tls_url(self, dbname, host="localhost", **query):
        q = {"authSource": AUTH_DB, "tls": "true", **query}
        return (f"mongodb://{AUTH_USER}:{quote(PASSWORD, safe='')}@{host}:{self.tls_port}/{dbname}?"
                + "&".join(f"{k}={v}" for k, v in q.items()))

    def client(self):
        return mongo_client(self.port)


class NetFerretDB:
    """FerretDB in a container (FROM scratch) with TLS and authentication,
    reachable as ferretdb:27017 (plain) and ferretdb:27018 (TLS) on the
    --internal network `network`, and from the host on 127.0.0.1:port."""

    alias = "ferretdb"

    def __init__(self, network, port, container):
        self.network = network
        self.port = port
        self.container = container

    def url(self, dbname, ca="/certs/ca.pem"):
        return (f"mongodb://{AUTH_USER}:{quote(PASSWORD, safe='')}@{self.alias}:27018/{dbname}"
                f"?authSource={AUTH_DB}&tls=true&tlsCAFile={ca}")

    def client(self):
        return mongo_client(self.port)


def assert_migrated(db, owners=None):
    """The demo set is applied: state version = newest, clean; one history
    record per version, up, each applied once; returns the owners."""
    newest = newest_example_version()
    # lock_token: the fence (src/db.h), which golang-migrate ignores
    state = list(db["schema_migrations"].find({}, {"_id": 0, "lock_token": 0}))
    assert state == [{"version": newest, "dirty": False}], state
    hist = list(db["schema_migrations_history"].find({}, {"_id": 0}))
    ups = sorted(h["version"] for h in hist if h.get("direction") == "up")
    assert ups == list(range(1, newest + 1)), hist
    assert all(h.get("outcome") == "applied" for h in hist), hist
    applied_by = {h.get("owner") for h in hist}
    if owners is not None:
        assert applied_by <= set(owners), (applied_by, owners)
    return applied_by


def assert_no_secret(*texts):
    for t in texts:
        assert PASSWORD not in (t or ""), f"the password leaked: {t!r}"

