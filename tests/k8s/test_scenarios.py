"""The scenarios of issue #16 on a real single-node Kubernetes (conftest.py):
the shipped manifests of k8s/, applied through tests/k8s/overlay, each
scenario in a namespace and a database of its own. Asserted: what Kubernetes
reports (Job conditions and their reasons, pod counts, exit codes,
termination messages, readiness, `kubectl logs`), what the runtime shows of
a container process (/proc), and the database."""

import time

import pytest

from .k8s_harness import (
    API, JOB, OVERLAY, REPO, WORKER, Watch, assert_no_canary, conditions, container_pids,
    container_status, db_url, newest_example_version, pod_ready, proc_mounts, proc_status, terminated,
)

NEWEST = newest_example_version()
JOB_PODS = f"job-name={JOB}"


def state(cluster, db):
    with cluster.mongo() as c:
        docs = list(c[db]["schema_migrations"].find({}, {"_id": 0, "version": 1, "dirty": 1}))
        lock = list(c[db]["migrate_advisory_lock"].find())
        hist = list(c[db]["schema_migrations_history"].find({}, {"_id": 0, "version": 1, "outcome": 1,
                                                                  "owner": 1, "direction": 1,
                                                                  "duration_ms": 1}))
    assert len(docs) <= 1, f"more than one state document: {docs}"
    return (docs[0] if docs else None), lock, hist


def job_pod_report(cluster, ns, pod):
    """(exit code, termination message, log) of a Job pod's migrate container; no canary in either."""
    s = container_status(pod, "migrate")
    t = terminated(s) if s else None
    assert t, f"pod {pod['metadata']['name']} has no terminated migrate container: {s}"
    logs = cluster.logs(ns, pod["metadata"]["name"], "migrate")
    print(f"{ns}/{pod['metadata']['name']}: exit {t['exitCode']}: {t.get('message', '').strip()}")
    assert_no_canary(t.get("message"), logs)
    return t["exitCode"], t.get("message", ""), logs


def test_shipped_manifests_pass_server_side_dry_run(cluster):
    """k8s/ as users apply it, and the test overlay, pass the API server's own validation."""
    for target in (REPO / "k8s", OVERLAY):
        p = cluster.kubectl("apply", "--dry-run=server", "-k", target)
        kinds = sorted(line.split()[0].split("/")[0] for line in p.stdout.splitlines() if line.strip())
        assert kinds == ["deployment.apps", "deployment.apps", "job.batch", "secret"], p.stdout


def test_1_job_migrates_empty_database(cluster):
    ns = cluster.namespace("s1-job")
    cluster.apply(cluster.overlay(ns, "s1"), JOB)
    job = cluster.wait_job_finished(ns, 120)
    assert "Complete" in conditions(job), job["status"]
    assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), job["status"]
    pods = cluster.pods(ns, JOB_PODS)
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    code, msg, _ = job_pod_report(cluster, ns, pods[0])
    assert code == 0 and "(exit 0" in msg and f"{NEWEST} migration(s) applied" in msg, msg
    doc, lock, hist = state(cluster, "s1")
    assert doc == {"version": NEWEST, "dirty": False}, doc
    assert lock == [], f"lock still held after the Job: {lock}"
    assert sorted(h["version"] for h in hist if h["outcome"] == "applied") == list(range(1, NEWEST + 1)), hist
    cluster.drop_namespace(ns)


def test_2_deployment_three_replicas_one_migrates(cluster):
    ns = cluster.namespace("s2-deploy")
    cluster.apply(cluster.overlay(ns, "s2"), API)
    sel = f"app.kubernetes.io/name={API}"
    cluster.wait_for(
        "3 orders-api pods Ready",
        lambda: (lambda ps: len(ps) == 3 and all(pod_ready(p) for p in ps))(cluster.pods(ns, sel)),
        120, diag=lambda: cluster.describe(ns))
    dep = cluster.kjson("-n", ns, "get", "deployment", API)
    assert dep["status"].get("readyReplicas") == 3 and dep["status"].get("availableReplicas") == 3, dep["status"]
    pods = cluster.pods(ns, sel)
    applied_by = {}
    for p in pods:
        name = p["metadata"]["name"]
        s = container_status(p, "migrate", init=True)
        t = s["state"].get("terminated")
        assert t and t["exitCode"] == 0 and t["reason"] == "Completed", (name, s)
        assert s["restartCount"] == 0, (name, s)
        assert "(exit 0" in t["message"], t["message"]
        assert_no_canary(t["message"], cluster.logs(ns, name, "migrate"))
        applied_by[name] = int(t["message"].split(" migration(s) applied")[0].rsplit(None, 1)[-1])
    assert sorted(applied_by.values()) == [0, 0, NEWEST], applied_by
    migrator = next(n for n, k in applied_by.items() if k == NEWEST)
    doc, lock, hist = state(cluster, "s2")
    assert doc == {"version": NEWEST, "dirty": False}, doc
    assert lock == [], lock
    applied = [h for h in hist if h["outcome"] == "applied"]
    assert sorted(h["version"] for h in applied) == list(range(1, NEWEST + 1)), hist
    assert {h["owner"] for h in applied} == {migrator}, hist
    cluster.drop_namespace(ns)


def test_3_wait_init_container_holds_app_until_job(cluster):
    ns = cluster.namespace("s3-wait")
    ov = cluster.overlay(ns, "s3")
    cluster.apply(ov, WORKER)
    sel = f"app.kubernetes.io/name={WORKER}"

    def waiting():
        ps = cluster.pods(ns, sel)
        return len(ps) == 2 and all(
            (container_status(p, "wait-for-schema", init=True) or {}).get("state", {}).get("running") for p in ps)

    cluster.wait_for("both workers' wait-for-schema running", waiting, 60, diag=lambda: cluster.describe(ns))
    time.sleep(8)  # a few of its polls: it must still be waiting
    for p in cluster.pods(ns, sel):
        s = container_status(p, "wait-for-schema", init=True)
        assert s["state"].get("running") and s["restartCount"] == 0, s
        assert not pod_ready(p) and p["status"]["phase"] == "Pending", p["status"]
    dep = cluster.kjson("-n", ns, "get", "deployment", WORKER)
    assert not dep["status"].get("readyReplicas"), dep["status"]

    cluster.apply(ov, JOB)
    job = cluster.wait_job_finished(ns, 120)
    assert "Complete" in conditions(job), job["status"]
    t_job = time.monotonic()
    cluster.wait_for(
        "2 orders-worker pods Ready after the Job",
        lambda: (lambda ps: len(ps) == 2 and all(pod_ready(p) for p in ps))(cluster.pods(ns, sel)),
        60, diag=lambda: cluster.describe(ns))
    print(f"workers Ready {time.monotonic() - t_job:.1f} s after the Job completed")
    for p in cluster.pods(ns, sel):
        s = container_status(p, "wait-for-schema", init=True)
        t = s["state"].get("terminated")
        assert t and t["exitCode"] == 0 and s["restartCount"] == 0, s
        assert "migrate-init wait" in t["message"] and "(exit 0" in t["message"], t["message"]
        assert_no_canary(t["message"], cluster.logs(ns, p["metadata"]["name"], "wait-for-schema"))
    cluster.drop_namespace(ns)


# ----------------------------------------------------------------------------
# 4. podFailurePolicy: three Jobs at once, each asserted by its own test.

UNREACHABLE_PATCH = f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: {JOB}
spec:
  backoffLimit: 1
  template:
    spec:
      containers:
        - name: migrate
          env:
            - name: WAIT_TIMEOUT
              value: 3s
"""


@pytest.fixture(scope="module")
def failing_jobs(cluster):
    jobs = {
        "invalid": dict(ns="s4-invalid", db="s4i", image_tag="invalid"),
        "unreachable": dict(ns="s4-unreachable", db="s4u", url=db_url("s4u", port=1),
                            patches=[UNREACHABLE_PATCH]),
        "dirty": dict(ns="s4-dirty", db="s4d"),
        "failing": dict(ns="s5-failing", db="s5", image_tag="failing"),
    }
    with cluster.mongo() as c:
        c["s4d"]["schema_migrations"].insert_one({"version": 3, "dirty": True})
    for spec in jobs.values():
        cluster.namespace(spec["ns"])
        cluster.apply(cluster.overlay(spec["ns"], spec["db"], image_tag=spec.get("image_tag"),
                                      url=spec.get("url"), patches=spec.get("patches", ())), JOB)
    yield jobs
    for spec in jobs.values():
        cluster.drop_namespace(spec["ns"])


def failed_job(cluster, ns):
    job = cluster.wait_job_finished(ns, 120)
    conds = conditions(job)
    assert "Failed" in conds and "Complete" not in conds, job["status"]
    pods = cluster.pods(ns, JOB_PODS)
    return job, conds["Failed"], pods


@pytest.mark.parametrize("which,code", [("invalid", 3), ("dirty", 8)])
def test_4_fail_job_at_once(cluster, failing_jobs, which, code):
    ns = failing_jobs[which]["ns"]
    job, failed, pods = failed_job(cluster, ns)
    assert failed["reason"] == "PodFailurePolicy", failed
    assert len(pods) == 1 and job["status"].get("failed") == 1, ([p["metadata"]["name"] for p in pods], job["status"])
    got, msg, _ = job_pod_report(cluster, ns, pods[0])
    assert got == code, msg
    assert f"(exit {code}, retry can help: no)" in msg, msg
    if which == "dirty":
        doc, _, _ = state(cluster, failing_jobs[which]["db"])
        assert doc == {"version": 3, "dirty": True}, doc


def test_4_unreachable_database_is_retried_per_count_rule(cluster, failing_jobs):
    ns = failing_jobs["unreachable"]["ns"]
    job, failed, pods = failed_job(cluster, ns)
    assert failed["reason"] == "BackoffLimitExceeded", failed
    # backoffLimit 1 (patched): the first failure was counted and retried.
    assert len(pods) == 2 and job["status"].get("failed") == 2, ([p["metadata"]["name"] for p in pods], job["status"])
    for p in pods:
        got, msg, _ = job_pod_report(cluster, ns, p)
        assert got == 4 and "(exit 4, retry can help: yes)" in msg, msg


def test_5_failed_migration_termination_message_redacted(cluster, failing_jobs):
    ns = failing_jobs["failing"]["ns"]
    job, failed, pods = failed_job(cluster, ns)
    assert failed["reason"] == "PodFailurePolicy", failed
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    code, msg, logs = job_pod_report(cluster, ns, pods[0])  # asserts: no canary in either
    assert code == 7, msg
    assert "(exit 7, retry can help: no)" in msg and "noSuchCommand_" in msg, msg
    # The server quoted the command's name, canary included: redacted, not absent.
    assert "noSuchCommand_***" in msg, msg
    assert "noSuchCommand_***" in logs, logs
    describe = cluster.kubectl("-n", ns, "describe", "pod", pods[0]["metadata"]["name"]).stdout
    assert_no_canary(describe)
    doc, _, _ = state(cluster, "s5")
    assert doc == {"version": 2, "dirty": True}, doc


# ----------------------------------------------------------------------------
# 6. The security context, as the runtime enforces it


EROFS_PATCH = f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: {JOB}
spec:
  backoffLimit: 0
  template:
    spec:
      containers:
        - name: migrate
          args: ["create", "-dir", "/migrations", "-ext", "json", "-seq", "probe"]
"""


def test_6_security_context_enforced(cluster):
    # (a) A process of ours in a running container: the wait initContainer
    # of deployment-wait.yaml against a database nobody migrates.
    ns = cluster.namespace("s6-security")
    cluster.apply(cluster.overlay(ns, "s6"), WORKER)
    sel = f"app.kubernetes.io/name={WORKER}"

    def running():
        for p in cluster.pods(ns, sel):
            s = container_status(p, "wait-for-schema", init=True) or {}
            if s.get("state", {}).get("running") and s.get("containerID"):
                return s["containerID"]
        return None

    cid = cluster.wait_for("a running wait-for-schema container", running, 60, diag=lambda: cluster.describe(ns))
    pids = cluster.wait_for("its process on the host", lambda: container_pids(cid), 10, interval=0.2)
    assert len(pids) == 1, pids
    pid = pids[0]
    st = proc_status(pid)
    assert st["Name"] == "migrate-init", st
    assert st["Uid"].split() == ["65532"] * 4 and st["Gid"].split() == ["65532"] * 4, st
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, (cap, st[cap])
    assert st["NoNewPrivs"] == "1", st
    assert st["Seccomp"] == "2", st  # RuntimeDefault: a filter
    mounts = dict(proc_mounts(pid))
    assert "ro" in mounts["/"].split(","), mounts["/"]
    assert "ro" in mounts["/var/run/secrets/orders-db"].split(","), mounts
    writable = sorted(m for m, o in mounts.items() if "rw" in o.split(","))
    print("writable mounts in the container:", writable)
    for m in writable:
        assert m.startswith(("/dev", "/proc", "/sys", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf")), writable
    cluster.drop_namespace(ns)

    # (b) The binary itself meets the read-only root: `create` into the
    # image's /migrations fails with EROFS, and the pod says so.
    ns = cluster.namespace("s6-erofs")
    cluster.apply(cluster.overlay(ns, "s6e", patches=[EROFS_PATCH]), JOB)
    job = cluster.wait_job_finished(ns, 90)
    assert "Failed" in conditions(job), job["status"]
    pods = cluster.pods(ns, JOB_PODS)
    assert len(pods) == 1
    code, msg, logs = job_pod_report(cluster, ns, pods[0])
    assert code != 0 and "Read-only file system" in msg + logs, (code, msg, logs)
    cluster.drop_namespace(ns)


# ----------------------------------------------------------------------------
# 7. The migrating pod deleted mid-migration


def test_7_pod_deleted_mid_migration(cluster):
    ns = cluster.namespace("s7-delete")
    watch = Watch(cluster, ns, "pods", JOB_PODS)
    try:
        cluster.apply(cluster.overlay(ns, "s7", image_tag="slow"), JOB)

        def migrating():
            doc, lock, _ = state(cluster, "s7")
            return doc == {"version": 1, "dirty": True} and lock

        t0 = time.monotonic()
        cluster.wait_for("pod migrating version 1 (dirty at 1, lock held)", migrating, 90, interval=0.2,
                         diag=lambda: cluster.describe(ns))
        first = cluster.pods(ns, JOB_PODS)
        assert len(first) == 1
        started = (container_status(first[0], "migrate") or {}).get("state", {}).get("running", {}).get("startedAt")
        first = first[0]["metadata"]["name"]
        print(f"migrating {time.monotonic() - t0:.1f} s after apply (container started {started}, "
              f"now {time.strftime('%H:%M:%S', time.gmtime())}); deleting {first}")
        cluster.kubectl("-n", ns, "delete", "pod", first, "--wait=false")
        t_del = time.monotonic()

        job = cluster.wait_job_finished(ns, 180)
        print(f"Job finished {time.monotonic() - t_del:.1f} s after the delete")
        time.sleep(1)
    finally:
        watch.stop()
    assert "Complete" in conditions(job), job["status"]
    # The deleted pod's exit (143, SIGTERM) is counted, not ignored (no
    # DisruptionTarget for a plain delete), and a replacement finished.
    assert job["status"].get("succeeded") == 1 and job["status"].get("failed") == 1, job["status"]
    assert watch.order[0] == first and len(watch.order) == 2, watch.order
    gone = watch.last[first]
    s = container_status(gone, "migrate")
    t = terminated(s)
    assert t and t["exitCode"] == 143, s
    assert "stopped by signal 15" in t.get("message", "") or "exit 143" in t.get("message", ""), t
    assert_no_canary(t.get("message"))
    second = watch.order[1]
    pods = cluster.pods(ns, JOB_PODS)
    assert [p["metadata"]["name"] for p in pods] == [second]
    code, msg, _ = job_pod_report(cluster, ns, pods[0])
    assert code == 0 and "(exit 0" in msg, msg
    doc, lock, hist = state(cluster, "s7")
    assert doc == {"version": 2, "dirty": False}, doc
    assert lock == [], lock
    applied = sorted((h["version"], h["owner"]) for h in hist if h["outcome"] == "applied")
    # Migration 1 finished within the grace period by the deleted pod; 2 by
    # its replacement; each exactly once.
    assert applied == [(1, first), (2, second)], hist
    print("migration 1 took", [h["duration_ms"] for h in hist if h["version"] == 1], "ms")
    assert "1 migration(s) applied" in msg, msg
    cluster.drop_namespace(ns)
