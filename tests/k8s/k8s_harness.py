"""Harness of the Kubernetes scenarios (issue #16), run by `make test-k8s`
(/usr/bin/python3 -m pytest tests/k8s).

One cluster for the whole session (scripts/k8s.sh up, in a network namespace
of its own), one FerretDB inside that namespace (listening on the node IP for
the pods, and on a Unix socket in the session's directory for the tests'
own pymongo: a socket file is no network address). Every scenario gets a
namespace and a database of its own.

The manifests are the shipped ones: each scenario applies a kustomization
generated in a temporary directory whose only resource is tests/k8s/overlay
(k8s/ with the Secret and images pointed at the test cluster), plus the
scenario's own namespace, Secret URL, image tag and patches. `kubectl apply
-l` picks the objects a scenario needs (the Secret always).

What the assertions read is what Kubernetes reports: Job conditions, pod
phases and readiness, container exit codes and termination messages
(`state.terminated.message`), `kubectl logs`; and the database itself.
"""

import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pymongo
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
K8S_SH = SCRIPTS / "k8s.sh"
OVERLAY = REPO / "tests" / "k8s" / "overlay"
EXAMPLE = REPO / "migrations-example"

# The image docker/ builds, as the artifact tests build it (same tag: a run
# after `make test-artifact` reuses it, Docker's layer cache does the rest).
IMAGE_TAG = os.environ.get("MI_ARTIFACT_IMAGE", "migrate-init:artifact-test")
BARE_TAG = IMAGE_TAG + "-bare"
# The names tests/k8s/overlay gives the images.
TEST_IMAGE = "localhost/migrate-init/test"
TEST_IMAGE_TAG = "1"

NODE_IP = "198.18.0.1"
DB_PORT = 27017
AUTH_DB = "authdb"
AUTH_USER = "migrator"
# The canary: in every URL the pods get; it must never show in a
# termination message or a pod's log. Random per run, so that no file of the
# repository can contain it by chance.
CANARY = "canarySECRET" + secrets.token_hex(6)

JOB = "orders-migrate"
API = "orders-api"
WORKER = "orders-worker"
SECRET = "orders-db"


def _versions():
    text = (SCRIPTS / "versions.sh").read_text()
    fv = re.search(r"^FERRETDB_VERSION=(\S+)", text, re.M).group(1)
    kv = re.search(r"^K8S_VERSION=\$\{K8S_VERSION:-(\S+)\}", text, re.M).group(1)
    cache = os.environ.get("MI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "migrate-init")
    return fv, os.environ.get("K8S_VERSION", kv), Path(cache)


FERRETDB_VERSION, K8S_VERSION, MI_CACHE = _versions()
FERRETDB_BIN = MI_CACHE / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"
K8S_CACHE = MI_CACHE / f"k8s-{K8S_VERSION}"


def newest_example_version():
    pat = re.compile(r"^([0-9]+)_.*\.up\.[^.]+$")
    return max(int(m.group(1)) for p in EXAMPLE.iterdir() if (m := pat.match(p.name)))


def log(msg):
    print(f"k8s: {msg}", flush=True)


def run(argv, *, timeout=120, check=True, input=None, env=None):
    try:
        p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL,
                           env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(map(str, argv[:4]))} ... timed out after {timeout}s:\n{e.stderr}",
                    pytrace=False)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} failed ({p.returncode}):\n{p.stderr}{p.stdout}",
                    pytrace=False)
    return p


def script(argv, what, timeout, logfile, env=None):
    """A long build step: output to logfile, its tail in the failure."""
    t0 = time.monotonic()
    with open(logfile, "w") as f:
        try:
            p = subprocess.run([str(a) for a in argv], stdout=subprocess.PIPE, stderr=f, text=True,
                               timeout=timeout, env={**os.environ, **(env or {})},
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{what} took longer than {timeout}s (log: {logfile})", pytrace=False)
    if p.returncode != 0:
        tail = "".join(Path(logfile).read_text().splitlines(True)[-40:])
        pytest.fail(f"{what} failed ({p.returncode}); end of {logfile}:\n{tail}", pytrace=False)
    log(f"{what}: {time.monotonic() - t0:.1f} s")
    return p.stdout.strip()


# --------------------------------------------------------------------------
# Migration sets of the scenarios' extra images (FROM the bare image + COPY,
# as docker/README.md tells teams to build theirs)


def _cmds(*docs):
    return json.dumps(list(docs)) + "\n"


def migration_sets(canary):
    """tag -> {file name: text}. The default image (tag 1) carries the demo set."""
    slow_n = int(os.environ.get("MI_K8S_SLOW_COMMANDS", "8000"))
    return {
        # Exit 3: a name that is not a migration's (a version but no
        # direction) beside a valid file.
        "invalid": {
            "000001_ok.up.json": _cmds({"create": "a"}),
            "000001_ok.down.json": _cmds({"drop": "a"}),
            "000002_broken.up.json": "[{\"create\": \n",
            "000002_broken.down.json": _cmds({"drop": "b"}),
        },
        # Exit 7: migration 2 sends a command the server does not know, whose
        # name carries the canary: the server's error quotes it back, and
        # the redaction must catch it there too.
        "failing": {
            "000001_ok.up.json": _cmds({"create": "a"}),
            "000001_ok.down.json": _cmds({"drop": "a"}),
            "000002_fails.up.json": _cmds({f"noSuchCommand_{canary}": 1}),
            "000002_fails.down.json": _cmds({"drop": "b"}),
        },
        # Slow: migration 1 is thousands of one-document inserts (FerretDB
        # has no sleep), 4-11 s on the 2-core machine (idle, loaded): long enough to be
        # caught running, short enough to end within STOP_GRACE_PERIOD (20 s)
        # after the SIGTERM even at twice that; migration 2 is quick.
        "slow": {
            "000001_slow.up.json": _cmds(*({"insert": "slow", "documents": [{"_id": i, "pad": "x" * 16}]}
                                           for i in range(slow_n))),
            "000001_slow.down.json": _cmds({"drop": "slow"}),
            "000002_after.up.json": _cmds({"create": "after"}),
            "000002_after.down.json": _cmds({"drop": "after"}),
        },
    }


def build_images(workdir, canary):
    """Tags the shipped image as the overlay names it and builds the scenario
    images on the bare one; returns the list of references (to save)."""
    refs = [f"{TEST_IMAGE}:{TEST_IMAGE_TAG}"]
    run(["docker", "tag", IMAGE_TAG, refs[0]])
    for tag, files in migration_sets(canary).items():
        ctx = Path(workdir) / f"ctx-{tag}"
        (ctx / "migrations").mkdir(parents=True)
        for name, text in files.items():
            (ctx / "migrations" / name).write_text(text)
        (ctx / "Dockerfile").write_text(f"FROM {BARE_TAG}\nCOPY migrations/ /migrations/\n")
        ref = f"{TEST_IMAGE}:{tag}"
        run(["docker", "build", "--force-rm", "-q", "-t", ref, str(ctx)], timeout=300)
        refs.append(ref)
    return refs


# --------------------------------------------------------------------------
# The cluster


class Cluster:
    def __init__(self, dir_, workdir):
        self.dir = Path(dir_)
        self.work = Path(workdir)
        self.ferretdb = None
        self.sock = self.work / "fdb.sock"
        self._overlays = 0

    # -- scripts/k8s.sh
    def k8s(self, *args, timeout=120, check=True, input=None):
        return run(["bash", K8S_SH, *args], timeout=timeout, check=check, input=input)

    def up(self):
        t0 = time.monotonic()
        self.k8s("up", self.dir, timeout=300)
        log(f"cluster up: {time.monotonic() - t0:.1f} s")

    def down(self):
        if (self.dir / "cluster.env").exists():
            p = subprocess.run(["bash", str(K8S_SH), "down", str(self.dir)], capture_output=True,
                               text=True, timeout=300)
            log("down: " + (p.stderr.strip().splitlines() or ["?"])[-1])
            return p.returncode == 0
        return True

    def kubectl(self, *args, timeout=60, check=True, input=None):
        return self.k8s("kubectl", self.dir, *args, timeout=timeout, check=check, input=input)

    def kjson(self, *args, timeout=60):
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    # -- the database, inside the netns
    def start_ferretdb(self):
        data = self.work / "fdb"
        data.mkdir()
        logf = open(self.work / "ferretdb.log", "w")
        self.ferretdb = subprocess.Popen(
            ["bash", str(K8S_SH), "exec", str(self.dir), str(FERRETDB_BIN),
             "--handler=sqlite", f"--sqlite-url=file:{data}/", f"--state-dir={data}",
             f"--listen-addr={NODE_IP}:{DB_PORT}", f"--listen-unix={self.sock}",
             "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
             "--test-enable-new-auth", f"--setup-database={AUTH_DB}",
             f"--setup-username={AUTH_USER}", f"--setup-password={CANARY}"],
            stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.ferretdb.poll() is not None:
                pytest.fail("FerretDB exited during start-up:\n" + (self.work / "ferretdb.log").read_text(),
                            pytrace=False)
            try:
                with self.mongo(timeout_ms=500) as c:
                    c.admin.command("ping")
                return
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    pytest.fail("FerretDB did not answer within 30 s", pytrace=False)
                time.sleep(0.2)

    def stop_ferretdb(self):
        if self.ferretdb and self.ferretdb.poll() is None:
            os.kill(self.ferretdb.pid, signal.SIGTERM)
            try:
                self.ferretdb.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.ferretdb.pid, signal.SIGKILL)
                self.ferretdb.wait(10)

    def mongo(self, timeout_ms=5000):
        return pymongo.MongoClient(f"mongodb://{quote(str(self.sock), safe='')}", username=AUTH_USER,
                                   password=CANARY, authSource=AUTH_DB,
                                   serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms)

    # -- scenarios
    def overlay(self, namespace, db, *, image_tag=None, url=None, patches=()):
        """A kustomization over tests/k8s/overlay: namespace, the Secret's URL
        (a database of the scenario's own), optionally another image tag and
        strategic-merge patches (YAML texts). Returns its directory."""
        self._overlays += 1
        d = self.work / f"overlay-{self._overlays}-{namespace}"
        d.mkdir()
        url = url or db_url(db)
        k = {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "namespace": namespace,
            "resources": [os.path.relpath(OVERLAY, d)],
            "patches": [{"patch": yaml.safe_dump({
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": SECRET},
                "stringData": {"DATABASE_URL": url}})}] + [{"patch": p} for p in patches],
        }
        if image_tag:
            k["images"] = [{"name": TEST_IMAGE, "newTag": image_tag}]
        (d / "kustomization.yaml").write_text(yaml.safe_dump(k, sort_keys=False))
        return d

    def apply(self, overlay_dir, *names):
        """kubectl apply -k of the overlay, only the Secret and the named objects."""
        sel = f"app.kubernetes.io/name in ({','.join((SECRET,) + names)})"
        p = self.kubectl("apply", "-k", overlay_dir, "-l", sel)
        applied = [line.split()[0] for line in p.stdout.splitlines() if line.strip()]
        assert len(applied) == 1 + len(names), f"applied {applied}, wanted the Secret and {names}"
        return applied

    def namespace(self, name):
        self.kubectl("create", "namespace", name)
        return name

    def drop_namespace(self, name):
        self.kubectl("delete", "namespace", name, "--wait=false", check=False)

    def pods(self, ns, selector):
        return self.kjson("-n", ns, "get", "pods", "-l", selector)["items"]

    def job(self, ns, name=JOB):
        return self.kjson("-n", ns, "get", "job", name)

    def wait_job_finished(self, ns, timeout, name=JOB):
        """Polls until the Job has a Complete or Failed condition; returns the Job."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(ns, name)
            conds = {c["type"]: c for c in job.get("status", {}).get("conditions", [])
                     if c.get("status") == "True"}
            if "Complete" in conds or "Failed" in conds:
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"Job {ns}/{name} did not finish within {timeout} s:\n"
                            + json.dumps(job.get("status"), indent=1) + "\n" + self.describe(ns),
                            pytrace=False)
            time.sleep(1)

    def wait_for(self, what, fn, timeout, interval=1.0, diag=None):
        deadline = time.monotonic() + timeout
        while True:
            v = fn()
            if v:
                return v
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: not within {timeout} s\n" + (diag() if diag else ""), pytrace=False)
            time.sleep(interval)

    def describe(self, ns):
        return self.kubectl("-n", ns, "describe", "pods", check=False, timeout=30).stdout[-6000:]

    def logs(self, ns, pod, container):
        return self.kubectl("-n", ns, "logs", pod, "-c", container, timeout=30).stdout


def db_url(db, host=NODE_IP, port=DB_PORT, password=CANARY):
    return (f"mongodb://{AUTH_USER}:{quote(password, safe='')}@{host}:{port}/{db}"
            f"?authSource={AUTH_DB}")


def conditions(job):
    return {c["type"]: c for c in job.get("status", {}).get("conditions", []) if c.get("status") == "True"}


def terminated(status):
    """The terminated state of a container status (current, else last)."""
    return (status.get("state", {}).get("terminated")
            or status.get("lastState", {}).get("terminated"))


def container_status(pod, name, init=False):
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in pod.get("status", {}).get(key, []):
        if s["name"] == name:
            return s
    return None


def pod_ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def assert_no_canary(*texts):
    for t in texts:
        assert CANARY not in (t or ""), f"the canary password appears in:\n{t}"


class Watch:
    """`kubectl get KIND [-l SELECTOR] -w -o json` in the background: every
    object version seen, with the time it arrived (time.monotonic()), and
    the last version of each object by name, deleted objects included."""

    def __init__(self, cluster, ns, kind, selector=None):
        self.seen, self.last, self.order = [], {}, []
        self.proc = subprocess.Popen(
            ["bash", str(K8S_SH), "kubectl", str(cluster.dir), "-n", ns, "get", kind,
             *(["-l", selector] if selector else []), "-w", "-o", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        dec, buf = json.JSONDecoder(), ""
        for line in self.proc.stdout:
            buf += line
            while (s := buf.lstrip()):
                try:
                    obj, end = dec.raw_decode(s)
                except ValueError:
                    break
                buf = s[end:]
                self.seen.append((time.monotonic(), obj))
                name = obj.get("metadata", {}).get("name")
                if name:
                    if name not in self.last:
                        self.order.append(name)
                    self.last[name] = obj
            else:
                buf = ""

    def first(self, pred):
        """When the first object version matching pred arrived, or None."""
        return next((t for t, o in self.seen if pred(o)), None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.thread.join(5)


def container_pids(container_id):
    """The host pids of a container's processes, found through their cgroup
    (the kubelet's cgroupfs paths end in the container id)."""
    cid = container_id.split("://", 1)[-1]
    pids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            if cid in (p / "cgroup").read_text():
                pids.append(int(p.name))
        except OSError:
            continue
    return pids


def proc_status(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def proc_mounts(pid):
    """mountinfo of the process: [(mount point, options)]."""
    out = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        f = line.split()
        out.append((f[4], f[5]))
    return out
