"""Fixtures and hooks of the Kubernetes scenarios (helpers in k8s_harness.py).

The session fixture `cluster` builds (or reuses) what the run needs, brings
one cluster up, imports the images, starts FerretDB inside the cluster's
network namespace, and always takes it all down: on failure, on Ctrl-C and
on SIGTERM/SIGHUP (turned into KeyboardInterrupt, so pytest runs the
finalizers), and at interpreter exit as a last resort. Nothing here skips:
a suite that cannot run (not root, no Docker, no Kubernetes build) fails.
tests/k8s is a package so that this conftest does not collide with the
other suites'.
"""

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .k8s_harness import (
    BARE_TAG, CANARY, FERRETDB_BIN, IMAGE_TAG, K8S_CACHE, K8S_SH, REPO, SCRIPTS, Cluster, build_images, log, run,
    script,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared hook
from noskip import pytest_runtest_makereport  # noqa: E402,F401  (a skipped test fails)

_results = {"passed": 0, "failed": 0, "collected": 0}


def pytest_collection_finish(session):
    _results["collected"] = len(session.items)


def pytest_runtest_logreport(report):
    if report.when == "call" or (report.when == "setup" and not report.passed):
        _results["passed" if report.passed else "failed"] += 1
    elif report.when == "teardown" and report.failed:
        _results["failed"] += 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # A test that never ran (Ctrl-C, SIGTERM, -x) did not pass: it counts as failed.
    not_run = max(0, _results["collected"] - _results["passed"] - _results["failed"])
    note = f" ({not_run} not run)" if not_run else ""
    terminalreporter.write_line(
        f"k8s scenarios: {_results['passed']} passed, {_results['failed'] + not_run} failed{note}")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the Kubernetes scenarios need root (network namespaces, mounts, cgroups): "
                    "run make test-k8s as root", pytrace=False)
    for tool in ("docker", "ip", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; the Kubernetes scenarios need it", pytrace=False)
    if not (K8S_CACHE / "bin" / "kubectl").exists():
        pytest.fail(f"Kubernetes is not built in {K8S_CACHE}: run `bash scripts/k8s.sh build` "
                    "(make test-k8s does)", pytrace=False)
    if not FERRETDB_BIN.exists():
        pytest.fail(f"FerretDB not found at {FERRETDB_BIN}: run scripts/deps.sh", pytrace=False)
    logs = tmp_path_factory.mktemp("logs")

    # The image docker/ builds, exactly as tests/artifact builds it.
    base = script(["bash", SCRIPTS / "debootstrap-base.sh", "bookworm"], "scripts/debootstrap-base.sh",
                  20 * 60, logs / "debootstrap-base.log")
    out = script(["bash", REPO / "docker" / "build.sh", IMAGE_TAG], "docker/build.sh", 25 * 60,
                 logs / "docker-build.log", env={"BASE": base})
    assert out.splitlines() == [IMAGE_TAG, BARE_TAG], out

    # Short: k8s.sh refuses cluster directories longer than 60 characters.
    work = tempfile.mkdtemp(prefix="mik8s-test.", dir="/tmp")
    c = Cluster(os.path.join(work, "cluster"), work)
    os.makedirs(c.dir)
    refs = []

    def teardown():
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the teardown
        try:
            c.stop_ferretdb()
            ok = c.down()
            if refs:
                subprocess.run(["docker", "rmi", *refs], capture_output=True, timeout=120)
            if ok:
                shutil.rmtree(work, ignore_errors=True)
            else:
                log(f"down failed; logs kept in {c.dir}/logs")
            return ok
        finally:
            signal.signal(signal.SIGINT, old)

    atexit.register(teardown)
    old_handlers = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        t0 = time.monotonic()
        refs.extend(build_images(work, CANARY))
        tar = os.path.join(work, "images.tar")
        run(["docker", "save", "-o", tar, *refs], timeout=300)
        log(f"scenario images built and saved: {time.monotonic() - t0:.1f} s")
        c.up()
        t0 = time.monotonic()
        c.k8s("import", c.dir, tar, timeout=300)
        os.unlink(tar)
        c.start_ferretdb()
        log(f"images imported, FerretDB up in the cluster's netns: {time.monotonic() - t0:.1f} s")
        yield c
        stats = c.k8s("stats", c.dir, check=False).stdout.strip().splitlines()
        log("memory at the end: " + (stats[-1] if stats else "?"))
    finally:
        ok = teardown()
        atexit.unregister(teardown)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        assert ok, "scripts/k8s.sh down could not remove everything"


__all__ = ["cluster", "K8S_SH"]
