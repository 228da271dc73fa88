"""The image built from docker/Dockerfile, for real, on this machine.

The builder's base is a Debian bookworm minbase made with debootstrap and
`docker import`ed (scripts/debootstrap-base.sh), passed as --build-arg BASE=;
the build is docker/build.sh (--network host: the builder uses apt). The
image then runs hardened (`--read-only --user 65532:65532 --cap-drop ALL
--security-opt no-new-privileges`) on an --internal Docker network against
FerretDB in its own FROM-scratch image (SQLite in a tmpfs) with TLS and
authentication on.

The pods test plays what the kubelet does for four pods of a Deployment
whose initContainer is migrate-init: all four initContainers are created,
then started at the same moment; each pod's app container is started only
after its initContainer exited 0, as the kubelet does. The app is the image
again, running `version`. Three pods use the shipped image; the fourth
uses an image built FROM it with one broken migration COPY'd in, and must
exit 3 with a termination message (written to the file bind-mounted at
/dev/termination-log, as the kubelet mounts it) that says why.
"""

import datetime
import json
import os
import re
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from .artifact_harness import (
    DOCKER_SKELETON,
    K8S,
    LABEL,
    REPO,
    RUN_ID,
    assert_migrated,
    assert_no_secret,
    build_context_image,
    docker,
    docker_run,
    docker_time,
    example_migrations,
    exported_paths,
    inspect,
    newest_example_version,
    run_argv,
    _script,
)

BINARY = "/usr/local/bin/migrate-init"


def makefile_version():
    m = re.search(r"^VERSION\s*\?=\s*(\S+)", (REPO / "Makefile").read_text(), re.M)
    return m.group(1)


def elf_interpreter(data):
    """The PT_INTERP of an ELF64 little-endian file, or None (static)."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not an ELF64 LE file"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", data, phoff + i * phentsize)
        if p_type == 3:  # PT_INTERP
            off, = struct.unpack_from("<Q", data, phoff + i * phentsize + 8)
            size, = struct.unpack_from("<Q", data, phoff + i * phentsize + 32)
            return data[off:off + size].rstrip(b"\0").decode()
    return None


def file_from_image(image, path, tmp_path):
    cid = docker("create", "--label", f"{LABEL}={RUN_ID}", image).stdout.strip()
    try:
        out = tmp_path / Path(path).name
        docker("cp", f"{cid}:{path}", str(out))
        return out.read_bytes()
    finally:
        docker("rm", "-f", cid, check=False)


def k8s_limits():
    """cpu and memory limits of the migrate initContainer in k8s/deployment.yaml,
    as docker run flags: the pods below run under the same limits."""
    d = yaml.safe_load((K8S / "deployment.yaml").read_text())
    c = next(c for c in d["spec"]["template"]["spec"]["initContainers"] if c["name"] == "migrate")
    lim = c["resources"]["limits"]
    cpu, mem = str(lim["cpu"]), str(lim["memory"])
    cpus = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    units = {"Ki": "k", "Mi": "m", "Gi": "g"}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", mem)
    assert m, f"memory limit {mem!r}: use Ki/Mi/Gi"
    return ["--cpus", str(cpus), "--memory", m.group(1) + units[m.group(2)], "--memory-swap",
            m.group(1) + units[m.group(2)]]


# --------------------------------------------------------------------------


def failjob_codes():
    j = yaml.safe_load((K8S / "job.yaml").read_text())
    return {v for r in j["spec"]["podFailurePolicy"]["rules"] if r["action"] == "FailJob"
            for v in r.get("onExitCodes", {}).get("values", [])}


@pytest.mark.parametrize("which", ["default", "bare"])
def test_image_config(which, shipped_image, bare_image):
    cfg = inspect(shipped_image if which == "default" else bare_image)["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == [BINARY]
    assert not cfg.get("Cmd"), "no CMD: no arguments means entrypoint mode (up)"
    assert "MIGRATION_DIR=/migrations" in cfg["Env"]
    assert not cfg.get("Shell") and not cfg.get("Healthcheck")


# The SBOM and the licence texts of what the binary links in (issue #19):
# plain files, readable with docker cp or any image tool, no shell needed.
DOC = "usr/share/doc/migrate-init"
DOCS = {"usr/share", "usr/share/doc", DOC, f"{DOC}/sbom.spdx.json", f"{DOC}/licenses",
        f"{DOC}/licenses/Apache-2.0"} | {f"{DOC}/licenses/{s}.copyright"
                                          for s in ("musl", "openssl", "mongo-c-driver", "libyaml", "ca-certificates")}


def test_image_carries_its_sbom_and_licences(shipped_image, tmp_path):
    import hashlib
    import json
    binary = file_from_image(shipped_image, BINARY, tmp_path)
    sbom = json.loads(file_from_image(shipped_image, "/" + DOC + "/sbom.spdx.json", tmp_path))
    me = next(p for p in sbom["packages"] if p["name"] == "migrate-init")
    assert me["checksums"] == [{"algorithm": "SHA256", "checksumValue": hashlib.sha256(binary).hexdigest()}], me
    assert sorted(p["name"] for p in sbom["packages"]) == sorted(
        ["migrate-init", "musl", "openssl", "libmongoc", "libbson", "libyaml"])
    assert b"Apache License" in file_from_image(shipped_image, "/" + DOC + "/licenses/Apache-2.0", tmp_path)


def test_image_layers_are_reproducible(shipped_image, base_image, tmp_path):
    """docker/build.sh again with only BUILD_NONCE changed: the binary is
    compiled again and the file systems assembled again (the log shows the
    build's size report: not the cache), yet the layers are the same bytes:
    every file carries the commit's time, the binary is reproducible."""
    tag = f"migrate-init:repro-{RUN_ID}"
    log = tmp_path / "rebuild.log"
    try:
        _script(["bash", str(REPO / "docker" / "build.sh"), tag], "docker/build.sh (rebuild)", 15 * 60, log,
                env={"BASE": base_image, "MI_BUILD_NONCE": RUN_ID})
        assert "static: size:" in log.read_text(), "the rebuild came from the cache: it proves nothing"
        layers = lambda t: inspect(t)["RootFS"]["Layers"]
        assert layers(tag) == layers(shipped_image)
        assert layers(tag + "-bare") == layers(shipped_image + "-bare")
    finally:
        docker("rmi", "-f", tag, tag + "-bare", check=False)


def test_image_filesystem(shipped_image, tmp_path):
    paths = exported_paths(shipped_image)
    migrations = example_migrations()
    ours = {"usr", "usr/local", "usr/local/bin", "usr/local/bin/migrate-init", "etc/ssl", "etc/ssl/cert.pem",
            "etc/passwd", "etc/group", "migrations"} | {f"migrations/{n}" for n in migrations} | DOCS
    assert set(paths) == ours | DOCKER_SKELETON, sorted(set(paths) ^ (ours | DOCKER_SKELETON))

    binary = file_from_image(shipped_image, BINARY, tmp_path)
    assert elf_interpreter(binary) is None, "the binary has a program interpreter: not static"
    bundle = file_from_image(shipped_image, "/etc/ssl/cert.pem", tmp_path).decode()
    assert bundle.count("-----BEGIN CERTIFICATE-----") > 100, "CA bundle looks empty"
    passwd = file_from_image(shipped_image, "/etc/passwd", tmp_path).decode()
    assert "nonroot:x:65532:65532:" in passwd
    assert "nonroot:x:65532:" in file_from_image(shipped_image, "/etc/group", tmp_path).decode()
    for name, data in migrations.items():
        assert file_from_image(shipped_image, f"/migrations/{name}", tmp_path) == data, name


def test_bare_image_filesystem(bare_image):
    """The bare image: the same minus the demo set; /migrations exists, empty."""
    paths = exported_paths(bare_image)
    ours = {"usr", "usr/local", "usr/local/bin", "usr/local/bin/migrate-init", "etc/ssl", "etc/ssl/cert.pem",
            "etc/passwd", "etc/group", "migrations"} | DOCS
    assert set(paths) == ours | DOCKER_SKELETON, sorted(set(paths) ^ (ours | DOCKER_SKELETON))
    assert paths["migrations"] == "d"


TEAM_MIGRATIONS = {
    "001_create_invoices.up.json": b'[{"create": "invoices"}]\n',
    "001_create_invoices.down.json": b'[{"drop": "invoices"}]\n',
    "002_index_invoices.up.yaml": b"- createIndexes: invoices\n  indexes:\n    - key: {number: 1}\n"
                                  b"      name: number_1\n      unique: true\n",
    "002_index_invoices.down.yaml": b"- dropIndexes: invoices\n  index: number_1\n",
}


@pytest.fixture(scope="module")
def team_image(bare_image, scratch_images):
    """docker/README.md's recipe: FROM the bare image, COPY migrations/ /migrations/."""
    tag = f"mi-art-team:{RUN_ID}"
    scratch_images.append(tag)
    files = {f"migrations/{n}": b for n, b in TEAM_MIGRATIONS.items()}
    return build_context_image(tag, files, f"FROM {bare_image}\nCOPY migrations/ /migrations/\n")


def test_team_image_recipe(team_image, net_ferretdb, certs, dbname, containers):
    """A team's image holds its migrations only (none of the demo set) and applies them."""
    paths = exported_paths(team_image)
    assert {p for p in paths if p.startswith("migrations/")} == {f"migrations/{n}" for n in TEAM_MIGRATIONS}
    p, _ = docker_run(containers, "team-validate", team_image, ["validate"])
    assert p.returncode == 0 and "ok: 2 migrations" in p.stdout, p
    env = {"DATABASE_URL": net_ferretdb.url(dbname), "POD_NAME": "team-pod"}
    p, _ = docker_run(containers, "team-migrate", team_image, network=net_ferretdb.network, env=env,
                      mounts=[(certs.ca, "/certs/ca.pem", "ro")])
    assert p.returncode == 0, p.stderr
    with net_ferretdb.client() as c:
        assert list(c[dbname]["schema_migrations"].find({}, {"_id": 0, "lock_token": 0})) == \
            [{"version": 2, "dirty": False}]
        assert "number_1" in c[dbname]["invoices"].index_information()
        assert "users" not in c[dbname].list_collection_names()  # nothing of the demo set


def test_image_has_no_shell(shipped_image, containers):
    p, _ = docker_run(containers, "no-shell", shipped_image, ["-c", "true"],
                      extra=["--entrypoint", "/bin/sh"])
    assert p.returncode != 0
    assert "no such file" in p.stderr.lower() or "not found" in p.stderr.lower(), p.stderr


def test_image_version_and_validate(shipped_image, containers):
    p, _ = docker_run(containers, "version", shipped_image, ["-version"])
    assert p.returncode == 0 and p.stdout.splitlines()[0] == makefile_version(), p
    p, _ = docker_run(containers, "validate", shipped_image, ["validate"])
    assert p.returncode == 0, p.stderr
    assert f"ok: {newest_example_version()} migrations" in p.stdout, p.stdout


def test_image_migrates_on_a_private_network(shipped_image, net_ferretdb, certs, dbname, containers,
                                             termination_log, tmp_path):
    """Entrypoint mode (no arguments), the URL from a file as from a mounted
    Secret (DATABASE_URL_FILE), the CA from a mounted file (tlsCAFile)."""
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o755)
    secret.chmod(0o755)
    (secret / "DATABASE_URL").write_text(net_ferretdb.url(dbname) + "\n")
    (secret / "DATABASE_URL").chmod(0o444)
    term = termination_log()
    p, _ = docker_run(
        containers, "image-migrate", shipped_image, network=net_ferretdb.network,
        env={"DATABASE_URL_FILE": "/var/run/secrets/db/DATABASE_URL", "POD_NAME": "image-pod"},
        mounts=[(secret, "/var/run/secrets/db", "ro"), (certs.ca, "/certs/ca.pem", "ro"),
                (term, "/dev/termination-log", "rw")],
        extra=k8s_limits())
    assert_no_secret(p.stdout, p.stderr, term.read_text())
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr}"
    with net_ferretdb.client() as c:
        assert assert_migrated(c[dbname]) == {"image-pod"}
    assert "(exit 0," in term.read_text()


BROKEN = "000007_add_broken_index.up.json"
LOCK_WAIT = "lock held by another runner; waiting"


@pytest.fixture(scope="module")
def broken_image(shipped_image, scratch_images):
    """A team's image: FROM ours, with one more migration (a broken one)."""
    tag = f"mi-art-broken:{RUN_ID}"
    scratch_images.append(tag)
    body = b'[{"createIndexes": "users", "indexes": [{"key": {"email": 1}, "name": "email_1"}]\n'
    return build_context_image(tag, {f"migrations/{BROKEN}": body},
                               f"FROM {shipped_image}\nCOPY migrations/ /migrations/\n")


def test_three_pods_one_migrates_and_a_broken_one_fails(shipped_image, broken_image, net_ferretdb, certs,
                                                        dbname, containers, termination_log):
    newest = newest_example_version()
    limits = k8s_limits()
    pods = {"pod-a": shipped_image, "pod-b": shipped_image, "pod-c": shipped_image, "pod-d": broken_image}
    url = net_ferretdb.url(dbname)
    terms, inits = {}, {}
    for pod, image in pods.items():
        terms[pod] = termination_log(f"{pod}-termination-log")
        env = {"DATABASE_URL": url, "POD_NAME": pod, "LOCK_TIMEOUT": "60s"}
        name, argv = run_argv(containers, f"{pod}-init", image, network=net_ferretdb.network, env=env,
                              mounts=[(certs.ca, "/certs/ca.pem", "ro"),
                                      (terms[pod], "/dev/termination-log", "rw")],
                              extra=limits)
        docker("create", *argv, env=env)
        inits[pod] = name

    # The kubelet of each pod: start the initContainer, wait for it, start
    # the app container only if it exited 0.
    results, errors = {}, []
    barrier = threading.Barrier(len(pods))

    def kubelet(pod):
        try:
            barrier.wait(timeout=30)
            subprocess.run(["docker", "start", inits[pod]], check=True, capture_output=True, timeout=60)
            code = int(subprocess.run(["docker", "wait", inits[pod]], check=True, capture_output=True,
                                      text=True, timeout=120).stdout.strip())
            r = {"init_exit": code}
            if code == 0:
                env = {"DATABASE_URL": url}
                app, argv = run_argv(containers, f"{pod}-app", pods[pod], ["version"],
                                     network=net_ferretdb.network, env=env,
                                     mounts=[(certs.ca, "/certs/ca.pem", "ro")])
                p = subprocess.run(["docker", "run", *argv], capture_output=True, text=True, timeout=120,
                                   env={**os.environ, **env})
                r.update(app=app, app_exit=p.returncode, app_stdout=p.stdout, app_stderr=p.stderr)
            results[pod] = r
        except Exception as e:  # reported below, with the pod
            errors.append(f"{pod}: {e!r}")

    # A previous rollout's runner (golang-migrate's lock document, fresh)
    # holds the lock when the pods start, so that all three really contend:
    # each must see it and wait; it is released once all three are waiting.
    with net_ferretdb.client() as c:
        lock = c[dbname]["migrate_advisory_lock"]
        lock.create_index([("locking_key", -1)], unique=True, name="lock_unique_key")  # as golang-migrate
        lock.insert_one({"locking_key": 0, "pid": 4242, "hostname": "previous-rollout",
                         "created_at": datetime.datetime.now(datetime.timezone.utc)})
    good = ("pod-a", "pod-b", "pod-c")
    threads = [threading.Thread(target=kubelet, args=(pod,)) for pod in pods]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 60
        waiting = set()
        while waiting != set(good) and time.monotonic() < deadline and not errors:
            for pod in set(good) - waiting:
                if LOCK_WAIT in docker("logs", inits[pod], check=False).stderr:
                    waiting.add(pod)
            time.sleep(0.2)
    finally:
        with net_ferretdb.client() as c:
            c[dbname]["migrate_advisory_lock"].delete_one({"hostname": "previous-rollout"})
        for t in threads:
            t.join(timeout=300)
    assert not errors, errors
    logs = {pod: docker("logs", inits[pod]).stderr for pod in pods}
    assert waiting == set(good), f"not all pods waited for the held lock: {waiting}\n{logs}"

    logs = {pod: docker("logs", inits[pod]).stderr for pod in pods}
    state = {pod: inspect(inits[pod])["State"] for pod in pods}
    for pod in pods:
        assert_no_secret(logs[pod], terms[pod].read_text(), results[pod].get("app_stderr"))
    starts = [docker_time(state[p]["StartedAt"]) for p in pods]
    print(f"initContainers started within {max(starts) - min(starts):.2f}s of each other")

    # Pods a, b, c: init 0, then the app, which sees the newest version.
    for pod in good:
        r = results[pod]
        assert r["init_exit"] == 0, f"{pod}: exit {r['init_exit']}\n{logs[pod]}"
        assert not state[pod]["OOMKilled"]
        assert r["app_exit"] == 0 and r["app_stdout"].strip() == str(newest), r
        app_started = docker_time(inspect(r["app"])["State"]["StartedAt"])
        assert app_started >= docker_time(state[pod]["FinishedAt"]), f"{pod}: app started before init finished"
        msg = terms[pod].read_text()
        assert "(exit 0," in msg and f"database at version {newest} (clean)" in msg, msg

    # Exactly one of them migrated: per the history, and per the logs.
    with net_ferretdb.client() as c:
        owners = assert_migrated(c[dbname], owners={"pod-a", "pod-b", "pod-c"})
    assert len(owners) == 1, owners
    migrator = owners.pop()
    applied = {pod: logs[pod].count('"msg":"migration applied"') for pod in ("pod-a", "pod-b", "pod-c")}
    assert applied == {p: (newest if p == migrator else 0) for p in applied}, applied
    for pod in set(good) - {migrator}:
        assert "another runner applied the migrations while we waited" in logs[pod], logs[pod]
    for pod in ("pod-a", "pod-b", "pod-c"):
        msgs = sorted({json.loads(l).get("msg") for l in logs[pod].splitlines() if l.startswith("{")})
        print(f"{pod}{' (migrated)' if pod == migrator else ''}: {msgs}")

    # Pod d: exit 3 (invalid migration source, no retry), its app never started,
    # and the termination message names the file.
    r = results["pod-d"]
    assert r["init_exit"] == 3, f"pod-d: exit {r['init_exit']}\n{logs['pod-d']}"
    assert "app" not in r
    assert docker("inspect", f"{RUN_ID}-pod-d-app", check=False).returncode != 0
    msg = terms["pod-d"].read_text()
    assert "invalid migration source" in msg and "(exit 3, retry can help: no)" in msg, msg
    assert BROKEN in msg, msg
    # ... and k8s/job.yaml's podFailurePolicy fails the Job at once on it.
    assert 3 in failjob_codes()
    assert len(msg.encode()) <= 4096, "the kubelet keeps at most 4096 bytes"


def test_wait_init_blocks_until_the_job_has_migrated(shipped_image, net_ferretdb, certs, dbname, containers):
    """k8s/job.yaml + deployment-wait.yaml: an app pod's initContainer runs
    `wait` before the Job has run; it blocks (the app does not start), and
    exits 0 once the Job's container has applied the migrations."""
    env = {"DATABASE_URL": net_ferretdb.url(dbname), "WAIT_TIMEOUT": "90s", "MAX_RETRIES": "1000",
           "RETRY_INTERVAL": "200ms", "RETRY_MAX_INTERVAL": "500ms"}
    mounts = [(certs.ca, "/certs/ca.pem", "ro")]
    waiter, argv = run_argv(containers, "worker-wait", shipped_image, ["wait"], network=net_ferretdb.network,
                            env={**env, "POD_NAME": "worker-0"}, mounts=mounts)
    docker("run", "-d", *argv, env={**env, "POD_NAME": "worker-0"})
    time.sleep(3)
    st = inspect(waiter)["State"]
    assert st["Running"], f"wait did not block before the migrations ran: {st}\n{docker('logs', waiter).stderr}"
    p, job = docker_run(containers, "job-migrate", shipped_image, network=net_ferretdb.network,
                        env={**env, "POD_NAME": "orders-migrate-x1"}, mounts=mounts)
    assert p.returncode == 0, p.stderr
    code = int(docker("wait", waiter, timeout=60).stdout.strip())
    logs = docker("logs", waiter).stderr
    assert code == 0, logs
    assert docker_time(inspect(waiter)["State"]["FinishedAt"]) >= docker_time(inspect(job)["State"]["FinishedAt"])
    with net_ferretdb.client() as c:
        assert assert_migrated(c[dbname]) == {"orders-migrate-x1"}
