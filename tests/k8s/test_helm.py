"""The Helm chart (charts/migrate-init, issue #20) in the session's cluster.

Without the cluster: the chart's README values table against values.yaml,
`helm lint`, and what `helm template` renders (the Job's podFailurePolicy
and security context equal to k8s/'s, the Argo CD hook annotations when
asked, a parent chart including the wait initContainer). With it: the
rendered chart through the API server's dry run, then one release through
install, an upgrade with one more migration, and an upgrade whose migration
fails. Helm runs inside the cluster's network namespace (scripts/helm.sh
DIR ..., as `k8s.sh kubectl DIR` runs kubectl); helm itself is built from
the Go module proxy and cached (scripts/helm.sh build)."""

import calendar
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .k8s_harness import (
    BARE_TAG, EXAMPLE, K8S_SH, REPO, SCRIPTS, TEST_IMAGE, TEST_IMAGE_TAG, conditions, container_status, db_url,
    Watch, log, newest_example_version, pod_ready, run, terminated,
)

CHART = REPO / "charts" / "migrate-init"
HELM_SH = SCRIPTS / "helm.sh"
NEWEST = newest_example_version()
PAUSE = ("localhost/migrate-init/pause", "3.10.1")
RELEASE = "orders"
JOB = f"{RELEASE}-migrate-init"
APP = f"{JOB}-example-app"
APP_PODS = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component=example-app"
# The extra images: the demo set plus one good migration, and plus a good
# and a failing one (exit 7, dirty at NEWEST + 2).
TAG_NEXT = "helm-next"
TAG_FAIL = "helm-fail"


@pytest.fixture(scope="module")
def helm():
    t0 = time.monotonic()
    path = run(["bash", HELM_SH, "build"], timeout=40 * 60).stdout.strip()
    log(f"helm ({path}): {time.monotonic() - t0:.1f} s")
    return path


def helm_local(helm, *args, check=True):
    """helm with no cluster (lint, template), its state in a scratch HOME."""
    return run([helm, *args], check=check, env={"HELM_CACHE_HOME": "/tmp/mi-helm-test/cache",
                                                 "HELM_CONFIG_HOME": "/tmp/mi-helm-test/config",
                                                 "HELM_DATA_HOME": "/tmp/mi-helm-test/data"})


def render(helm, *sets, chart=CHART):
    args = ["template", RELEASE, chart, "--set", "database.url=mongodb://db.example:27017/orders"]
    for s in sets:
        args += ["--set", s]
    docs = [d for d in yaml.safe_load_all(helm_local(helm, *args).stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


# --------------------------------------------------------------------------
# Without the cluster


def _leaves(d, prefix=""):
    out = set()
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= _leaves(v, key + ".")
        else:
            out.add(key)
    return out


def test_helm_readme_values_table_matches_values_yaml():
    """Every leaf key of values.yaml (a non-empty map is not a leaf) is a row
    of the chart README's values table, and every row is a key, with the
    default the table shows equal to values.yaml's."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    rows = {}
    for line in (CHART / "README.md").read_text().splitlines():
        m = re.match(r"^\| `([A-Za-z0-9_.]+)` \| `(.*?)` \|", line)
        if m:
            rows[m.group(1)] = m.group(2)
    keys = _leaves(values)
    assert sorted(keys - rows.keys()) == [], "values.yaml keys missing from the README table"
    assert sorted(rows.keys() - keys) == [], "README table rows that are not values.yaml keys"
    for k, shown in rows.items():
        v = values
        for part in k.split("."):
            v = v[part]
        assert yaml.safe_load(shown) == v, f"{k}: README says {shown}, values.yaml has {v!r}"


def test_helm_lint(helm):
    for sets in (["database.url=mongodb://db.example:27017/orders"],
                 ["database.existingSecret=orders-db", "exampleApp.enabled=true", "argocd.enabled=true"]):
        args = ["lint", "--strict", CHART]
        for s in sets:
            args += ["--set", s]
        p = helm_local(helm, *args)
        assert "0 chart(s) failed" in p.stdout, p.stdout
    # Neither a Secret nor a URL: a clear failure, not a Job that cannot start.
    p = helm_local(helm, "template", RELEASE, CHART, check=False)
    assert p.returncode != 0 and "set database.existingSecret" in p.stderr, p.stderr


def test_helm_job_is_k8s_job(helm):
    """The hook Job: k8s/job.yaml's podFailurePolicy and security context,
    the hook annotations, the values in the environment."""
    shipped = yaml.safe_load((REPO / "k8s" / "job.yaml").read_text())
    objs = render(helm, "targetVersion=5", "backup=touched", "onFailure=rollback", "job.runTimeout=7m")
    job = objs[("Job", JOB)]
    assert job["spec"]["podFailurePolicy"] == shipped["spec"]["podFailurePolicy"]
    for k in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "podReplacementPolicy"):
        assert job["spec"][k] == shipped["spec"][k], k
    pod, spod = job["spec"]["template"]["spec"], shipped["spec"]["template"]["spec"]
    for k in ("securityContext", "restartPolicy", "automountServiceAccountToken", "terminationGracePeriodSeconds"):
        assert pod[k] == spod[k], k
    (c,), (sc,) = pod["containers"], spod["containers"]
    for k in ("name", "securityContext", "resources", "terminationMessagePolicy", "imagePullPolicy"):
        assert c[k] == sc[k], k
    assert c["image"] == f"migrate-init:{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": f"{JOB}-db", "key": "DATABASE_URL"}}
    assert {k: env[k] for k in ("TARGET_VERSION", "BACKUP", "ON_FAILURE", "RUN_TIMEOUT", "LOCK_TIMEOUT")} == {
        "TARGET_VERSION": "5", "BACKUP": "touched", "ON_FAILURE": "rollback", "RUN_TIMEOUT": "7m",
        "LOCK_TIMEOUT": "10m"}
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade" and ann["helm.sh/hook-delete-policy"], ann
    assert not any(k.startswith("argocd.argoproj.io/") for k in ann), ann
    # The created Secret is a hook too, and runs first.
    sec = objs[("Secret", f"{JOB}-db")]["metadata"]["annotations"]
    assert sec["helm.sh/hook"] == "pre-install,pre-upgrade" and int(sec["helm.sh/hook-weight"]) < int(
        ann["helm.sh/hook-weight"]), sec
    # An existing Secret: none created, the Job reads the named one.
    objs = render(helm, "database.existingSecret=orders-db", "database.secretKey=URL")
    assert [k for k in objs if k[0] == "Secret"] == []
    env = {e["name"]: e.get("valueFrom") for e in objs[("Job", JOB)]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DATABASE_URL"] == {"secretKeyRef": {"name": "orders-db", "key": "URL"}}


def test_helm_argocd_presync_annotations(helm):
    objs = render(helm, "argocd.enabled=true")
    ann = objs[("Job", JOB)]["metadata"]["annotations"]
    assert ann["argocd.argoproj.io/hook"] == "PreSync", ann
    assert ann["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation", ann
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade", ann
    sec = objs[("Secret", f"{JOB}-db")]["metadata"]["annotations"]
    assert sec["argocd.argoproj.io/hook"] == "PreSync" and sec["argocd.argoproj.io/sync-wave"] == "-1", sec
    ann = render(helm, "argocd.enabled=true", "argocd.hookDeletePolicy=HookSucceeded")[("Job", JOB)]
    assert ann["metadata"]["annotations"]["argocd.argoproj.io/hook-delete-policy"] == "HookSucceeded"


def test_helm_parent_chart_includes_wait_init_container(helm, tmp_path):
    """A team's chart that depends on ours and includes the documented
    templates in its own Deployment: the initContainer and its volume come
    out with the subchart's values (image, Secret)."""
    parent = tmp_path / "orders"
    (parent / "templates").mkdir(parents=True)
    (parent / "charts").mkdir()
    shutil.copytree(CHART, parent / "charts" / "migrate-init")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: orders\nversion: 1.2.3\nappVersion: '9.9.9'\n"
        "dependencies:\n  - name: migrate-init\n    version: 0.1.0\n")
    (parent / "values.yaml").write_text(yaml.safe_dump({"migrate-init": {
        "image": {"repository": "registry.example.com/orders/migrations", "tag": "1.4.0"},
        "database": {"existingSecret": "orders-db"}}}))
    (parent / "templates" / "deployment.yaml").write_text("""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders-api
spec:
  selector: {matchLabels: {app: orders-api}}
  template:
    metadata: {labels: {app: orders-api}}
    spec:
      securityContext:
        fsGroup: 65532
      initContainers:
        {{- include "migrate-init.waitInitContainer" . | nindent 8 }}
      containers:
        - name: api
          image: registry.example.com/orders/api:1.4.0
      volumes:
        {{- include "migrate-init.waitVolume" . | nindent 8 }}
""")
    docs = [d for d in yaml.safe_load_all(helm_local(helm, "template", RELEASE, parent).stdout) if d]
    objs = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    spec = objs[("Deployment", "orders-api")]["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["args"] == ["wait"] and init["image"] == "registry.example.com/orders/migrations:1.4.0", init
    assert init["volumeMounts"][0]["name"] == spec["volumes"][0]["name"]
    assert spec["volumes"][0]["secret"]["secretName"] == "orders-db", spec["volumes"]
    job = objs[("Job", JOB)]["spec"]["template"]["spec"]["containers"][0]
    assert job["image"] == init["image"], "the Job and the wait initContainer use one image"


# --------------------------------------------------------------------------
# In the cluster


@pytest.fixture(scope="module")
def helm_images(cluster, tmp_path_factory):
    """Two images on the bare one, as docker/README.md tells teams to build
    theirs: the demo set plus migration NEWEST+1 (good), and plus NEWEST+1
    and a failing NEWEST+2; imported into the cluster."""
    work = tmp_path_factory.mktemp("helm-images")
    demo = {p.name: p.read_text() for p in EXAMPLE.iterdir() if p.is_file() and p.name.endswith(".json")}
    n1, n2 = NEWEST + 1, NEWEST + 2
    good = {f"{n1:06d}_helm_added.up.json": json.dumps([{"create": "helm_added"}]) + "\n",
            f"{n1:06d}_helm_added.down.json": json.dumps([{"drop": "helm_added"}]) + "\n"}
    bad = {f"{n2:06d}_helm_fails.up.json": json.dumps([{"noSuchCommandHelm": 1}]) + "\n",
           f"{n2:06d}_helm_fails.down.json": json.dumps([{"drop": "nothing"}]) + "\n"}
    refs = []
    t0 = time.monotonic()
    for tag, files in ((TAG_NEXT, {**demo, **good}), (TAG_FAIL, {**demo, **good, **bad})):
        ctx = work / tag
        (ctx / "migrations").mkdir(parents=True)
        for name, text in files.items():
            (ctx / "migrations" / name).write_text(text)
        (ctx / "Dockerfile").write_text(f"FROM {BARE_TAG}\nCOPY migrations/ /migrations/\n")
        ref = f"{TEST_IMAGE}:{tag}"
        run(["docker", "build", "--force-rm", "-q", "-t", ref, ctx], timeout=300)
        refs.append(ref)
    tar = work / "helm-images.tar"
    run(["docker", "save", "-o", tar, *refs], timeout=300)
    cluster.k8s("import", cluster.dir, tar, timeout=300)
    tar.unlink()
    log(f"helm images built and imported: {time.monotonic() - t0:.1f} s")
    yield refs
    subprocess.run(["docker", "rmi", *refs], capture_output=True, timeout=120)


def helm_in(cluster, *args, timeout=300, check=True):
    return run(["bash", HELM_SH, cluster.dir, *args], timeout=timeout, check=check)


def values_file(cluster, db, tag):
    path = cluster.work / f"helm-values-{db}-{tag}.yaml"
    path.write_text(yaml.safe_dump({
        "image": {"repository": TEST_IMAGE, "tag": tag},
        "database": {"url": db_url(db)},
        "exampleApp": {"enabled": True, "replicas": 2,
                       "image": {"repository": PAUSE[0], "tag": PAUSE[1]}},
        # Seconds, not minutes, where a test waits for a failure.
        "job": {"waitTimeout": "30s", "lockTimeout": "30s", "activeDeadlineSeconds": 240},
        "wait": {"timeout": "2m"},
    }))
    return path


def db_state(cluster, db):
    with cluster.mongo() as c:
        docs = list(c[db]["schema_migrations"].find({}, {"_id": 0, "version": 1, "dirty": 1}))
        hist = list(c[db]["schema_migrations_history"].find({}, {"_id": 0, "version": 1, "outcome": 1}))
    return docs, hist


def job_complete(o):
    return "Complete" in conditions(o)


def rfc3339(s):
    return calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))


def test_helm_template_server_dry_run(cluster, helm):
    ns = cluster.namespace("helm-dry")
    out = helm_local(helm, "template", RELEASE, CHART, "--namespace", ns, "--set", "database.url=" + db_url("x"),
                     "--set", "exampleApp.enabled=true", "--set", "argocd.enabled=true").stdout
    p = cluster.kubectl("apply", "--dry-run=server", "-n", ns, "-f", "-", input=out)
    kinds = sorted(line.split()[0].split("/")[0] for line in p.stdout.splitlines() if line.strip())
    assert kinds == ["deployment.apps", "job.batch", "secret"], p.stdout
    cluster.drop_namespace(ns)


_release = {}


def test_helm_install_migrates_before_the_app(cluster, helm, helm_images):
    """helm install: the hook Job completes (NEWEST migrations applied)
    before the release's Deployment exists; then the app's pods pass the
    wait initContainer at once and are Ready."""
    ns = _release["ns"] = cluster.namespace("helm-rel")
    db = _release["db"] = "helm1"
    jobs, deps = Watch(cluster, ns, "jobs"), Watch(cluster, ns, "deployments")
    try:
        time.sleep(1)  # the watches are established
        t0 = time.monotonic()
        helm_in(cluster, "install", RELEASE, CHART, "-n", ns, "-f", values_file(cluster, db, TEST_IMAGE_TAG),
                "--wait", "--timeout", "4m")
        log(f"helm install: {time.monotonic() - t0:.1f} s")
    finally:
        time.sleep(1)
        jobs.stop()
        deps.stop()
    t_done = jobs.first(lambda o: o["metadata"]["name"] == JOB and job_complete(o))
    t_dep = deps.first(lambda o: o["metadata"]["name"] == APP)
    assert t_done is not None and t_dep is not None, (len(jobs.seen), len(deps.seen))
    assert t_done < t_dep, f"the Deployment appeared {t_done - t_dep:.2f} s before the Job completed"
    job = cluster.job(ns, JOB)
    dep = cluster.kjson("-n", ns, "get", "deployment", APP)
    assert rfc3339(job["status"]["completionTime"]) <= rfc3339(dep["metadata"]["creationTimestamp"])
    assert job["status"].get("succeeded") == 1 and not job["status"].get("failed"), job["status"]
    docs, hist = db_state(cluster, db)
    assert docs == [{"version": NEWEST, "dirty": False}], docs
    assert sorted(h["version"] for h in hist if h["outcome"] == "applied") == list(range(1, NEWEST + 1))
    pods = cluster.pods(ns, APP_PODS)
    assert len(pods) == 2 and all(pod_ready(p) for p in pods), cluster.describe(ns)
    for p in pods:
        s = container_status(p, "wait-for-schema", init=True)
        assert s["restartCount"] == 0 and terminated(s)["exitCode"] == 0, s
    status = json.loads(helm_in(cluster, "status", RELEASE, "-n", ns, "-o", "json").stdout)
    assert status["info"]["status"] == "deployed" and status["version"] == 1, status["info"]


def test_helm_upgrade_runs_new_migration_before_new_replicaset(cluster, helm):
    """helm upgrade to an image with one more migration: the new hook Job
    applies it, and only then does the Deployment get its new ReplicaSet."""
    assert _release, "the install test did not run"
    ns, db = _release["ns"], _release["db"]
    old_rs = {r["metadata"]["name"] for r in cluster.kjson("-n", ns, "get", "replicasets")["items"]}
    jobs, rss = Watch(cluster, ns, "jobs"), Watch(cluster, ns, "replicasets")
    try:
        time.sleep(1)
        t0 = time.monotonic()
        helm_in(cluster, "upgrade", RELEASE, CHART, "-n", ns, "-f", values_file(cluster, db, TAG_NEXT),
                "--wait", "--timeout", "4m")
        log(f"helm upgrade: {time.monotonic() - t0:.1f} s")
    finally:
        time.sleep(1)
        jobs.stop()
        rss.stop()
    docs, hist = db_state(cluster, db)
    assert docs == [{"version": NEWEST + 1, "dirty": False}], docs
    assert [h["outcome"] for h in hist if h["version"] == NEWEST + 1] == ["applied"], hist
    job = cluster.job(ns, JOB)
    assert job["status"].get("succeeded") == 1, job["status"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"{TEST_IMAGE}:{TAG_NEXT}"
    # The new Job's run: its Complete event, then the new ReplicaSet.
    t_done = jobs.first(lambda o: o["metadata"]["uid"] == job["metadata"]["uid"] and job_complete(o))
    new_rs = [r for r in cluster.kjson("-n", ns, "get", "replicasets")["items"]
              if r["metadata"]["name"] not in old_rs]
    assert len(new_rs) == 1, [r["metadata"]["name"] for r in new_rs]
    t_rs = rss.first(lambda o: o["metadata"]["name"] == new_rs[0]["metadata"]["name"])
    assert t_done is not None and t_rs is not None and t_done < t_rs, (t_done, t_rs)
    assert rfc3339(job["status"]["completionTime"]) <= rfc3339(new_rs[0]["metadata"]["creationTimestamp"])
    pods = [p for p in cluster.pods(ns, APP_PODS) if p["metadata"].get("deletionTimestamp") is None]
    assert len(pods) == 2 and all(pod_ready(p) for p in pods)
    assert all(p["spec"]["initContainers"][0]["image"] == f"{TEST_IMAGE}:{TAG_NEXT}" for p in pods)
    _release["pods"] = sorted(p["metadata"]["name"] for p in pods)
    _release["rs"] = {r["metadata"]["name"] for r in cluster.kjson("-n", ns, "get", "replicasets")["items"]}


def test_helm_failed_migration_fails_upgrade_old_pods_serve(cluster, helm):
    """An upgrade whose migration fails: the hook Job fails at once by its
    podFailurePolicy (exit 7), `helm upgrade` fails, the release's
    Deployment is not touched (same pods, Ready, no new ReplicaSet), and the
    database is dirty at the failed version, as the exit-code table says."""
    assert "pods" in _release, "the upgrade test did not pass"
    ns, db = _release["ns"], _release["db"]
    t0 = time.monotonic()
    p = helm_in(cluster, "upgrade", RELEASE, CHART, "-n", ns, "-f", values_file(cluster, db, TAG_FAIL),
                "--wait", "--timeout", "4m", check=False)
    log(f"helm upgrade (failing): {time.monotonic() - t0:.1f} s: {p.stderr.strip()}")
    assert p.returncode != 0, p.stdout
    assert "pre-upgrade hooks failed" in p.stderr, p.stderr
    job = cluster.job(ns, JOB)
    failed = conditions(job).get("Failed")
    assert failed and failed["reason"] == "PodFailurePolicy", job["status"]
    pods = cluster.pods(ns, f"job-name={JOB}")
    assert len(pods) == 1, [q["metadata"]["name"] for q in pods]
    t = terminated(container_status(pods[0], "migrate"))
    assert t["exitCode"] == 7, t
    print(f"{ns}/{pods[0]['metadata']['name']}: exit 7: {t.get('message', '').strip()}")
    docs, _ = db_state(cluster, db)
    assert docs == [{"version": NEWEST + 2, "dirty": True}], docs
    app = [q for q in cluster.pods(ns, APP_PODS) if q["metadata"].get("deletionTimestamp") is None]
    assert sorted(q["metadata"]["name"] for q in app) == _release["pods"], "the app's pods changed"
    assert all(pod_ready(q) for q in app)
    rs = {r["metadata"]["name"] for r in cluster.kjson("-n", ns, "get", "replicasets")["items"]}
    assert rs == _release["rs"], f"new ReplicaSets: {rs - _release['rs']}"
    dep = cluster.kjson("-n", ns, "get", "deployment", APP)
    assert dep["spec"]["template"]["spec"]["initContainers"][0]["image"] == f"{TEST_IMAGE}:{TAG_NEXT}"
    hist = json.loads(helm_in(cluster, "history", RELEASE, "-n", ns, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in hist] == [(1, "superseded"), (2, "deployed"), (3, "failed")], hist
    cluster.drop_namespace(ns)
