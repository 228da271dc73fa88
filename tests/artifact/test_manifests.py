"""k8s/: every manifest decoded strictly into the Kubernetes API types, and
the promises checked, by the Go program in tests/artifact/manifests/
(k8s.io/api v0.37.2, sigs.k8s.io/yaml, sigs.k8s.io/json, kustomize's krusty).

The exit codes of the Job's podFailurePolicy are compared with the
exit-code contract: src/exitcode.h (the numbers), src/exitcode.c (the
"retry can help" column) and the binary's own `migrate-init -help` table,
which must agree with each other; FailJob exactly on the "no" rows.

The checker is also run on broken copies of the manifests, one defect
each, and must reject every one: a checker that passes everything would
prove nothing.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .artifact_harness import K8S, REPO

CHECKER_SRC = REPO / "tests" / "artifact" / "manifests"


@pytest.fixture(scope="session")
def checker(tmp_path_factory):
    if shutil.which("go") is None and not Path("/usr/local/go/bin/go").exists():
        pytest.fail("Go is not installed: the manifest checker is a Go program", pytrace=False)
    out = tmp_path_factory.mktemp("checker") / "manifestcheck"
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":/usr/local/go/bin"
    env.setdefault("GOFLAGS", "-mod=readonly")
    p = subprocess.run(["go", "build", "-o", str(out), "."], cwd=CHECKER_SRC, capture_output=True, text=True,
                       timeout=900, env=env)
    if p.returncode != 0:
        pytest.fail(f"building the manifest checker failed:\n{p.stderr}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def help_output(static_binary, tmp_path_factory):
    p = subprocess.run([str(static_binary), "-help"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    f = tmp_path_factory.mktemp("help") / "help.txt"
    f.write_text(p.stdout + p.stderr)
    return f


def run_checker(checker, k8s_dir, help_output, exitcode_c=None):
    p = subprocess.run(
        [str(checker), "-dir", str(k8s_dir), "-exitcode-h", str(REPO / "src" / "exitcode.h"),
         "-exitcode-c", str(exitcode_c or REPO / "src" / "exitcode.c"), "-help-output", str(help_output)],
        capture_output=True, text=True, timeout=120)
    fails = [l for l in p.stdout.splitlines() if l.startswith("FAIL")]
    return p, fails


def test_manifests_pass(checker, help_output):
    p, fails = run_checker(checker, K8S, help_output)
    assert p.returncode == 0 and not fails, "\n".join(fails) + p.stderr
    out = p.stdout
    # The checks that matter most did run (not just "nothing failed").
    for needle in (
        'retry can help "no": [2 3 5 7 8]',
        "`migrate-init -help` exit-code table equals src/exitcode.c's",
        'job.yaml Job/orders-migrate FailJob exactly on the "retry: no" exit codes [2 3 5 7 8]',
        "job.yaml Job/orders-migrate Ignore on condition DisruptionTarget",
        'deployment.yaml Deployment/orders-api initContainer "migrate" readOnlyRootFilesystem: true',
        'deployment.yaml Deployment/orders-api initContainer "migrate" runAsUser: 65532',
        'deployment.yaml Deployment/orders-api initContainer "migrate" POD_NAME from the downward API',
        'deployment.yaml Deployment/orders-api initContainer "migrate" DATABASE_URL_FILE lies in a Secret volume',
        'job.yaml Job/orders-migrate container "migrate" DATABASE_URL comes from a Secret (secretKeyRef)',
        'deployment-wait.yaml Deployment/orders-worker initContainer "wait-for-schema" seccompProfile: RuntimeDefault',
        "secret.yaml Secret/orders-db DATABASE_URL has an obviously fake password",
        "kustomization.yaml decodes strictly into kustomize's Kustomization",
        "kustomization.yaml builds (kustomize build)",
        "kustomize Job/orders-migrate \"migrate\" image rewritten by images:",
    ):
        assert needle in out, f"check not run: {needle}\n{out}"
    for f in ("secret.yaml", "deployment.yaml", "job.yaml", "deployment-wait.yaml"):
        assert f"ok   {f} document 1 decodes strictly into the API types" in out


# (file, text to find, replacement, a FAIL line must contain this)
DEFECTS = {
    "unknown field": ("deployment.yaml", "          terminationMessagePolicy: FallbackToLogsOnError\n          volumeMounts:",
                      "          terminationMessagePolicy: FallbackToLogsOnError\n          restartPolcy: Always\n          volumeMounts:",
                      'unknown field "spec.template.spec.initContainers[0].restartPolcy"'),
    "field name in the wrong case": ("job.yaml", "readOnlyRootFilesystem: true", "ReadOnlyRootFilesystem: true",
                                     "unknown field"),
    "duplicate key": ("job.yaml", "            allowPrivilegeEscalation: false\n",
                      "            allowPrivilegeEscalation: false\n            allowPrivilegeEscalation: true\n",
                      'key "allowPrivilegeEscalation" already set in map'),
    "bad quantity": ("deployment.yaml", "memory: 64Mi", "memory: 64MB", "decodes strictly"),
    "unknown kind": ("secret.yaml", "kind: Secret", "kind: Secrets", "not a type this checker knows"),
    "FailJob misses 8": ("job.yaml", "values: [2, 3, 5, 7, 8]", "values: [2, 3, 5, 7]", "FailJob exactly"),
    "FailJob on retryable 4": ("job.yaml", "values: [2, 3, 5, 7, 8]", "values: [2, 3, 4, 5, 7, 8]", "FailJob exactly"),
    "values not sorted": ("job.yaml", "values: [2, 3, 5, 7, 8]", "values: [3, 2, 5, 7, 8]", "sorted ascending"),
    "NotIn operator": ("job.yaml", "          operator: In\n          values: [2, 3, 5, 7, 8]",
                       "          operator: NotIn\n          values: [2, 3, 5, 7, 8]", "operator In"),
    "Ignore on exit codes": ("job.yaml", "      - action: Count", "      - action: Ignore", "no Ignore on exit codes"),
    "wrong container name": ("job.yaml", "          containerName: migrate\n          operator: In\n          values: [2",
                             "          containerName: app\n          operator: In\n          values: [2", "containerName"),
    "no DisruptionTarget rule": ("job.yaml", "          - type: DisruptionTarget", "          - type: ConfigIssue",
                                 "DisruptionTarget"),
    "no backoffLimit": ("job.yaml", "  backoffLimit: 4\n", "", "backoffLimit"),
    "restartPolicy OnFailure": ("job.yaml", "restartPolicy: Never", "restartPolicy: OnFailure", "restartPolicy Never"),
    "root user": ("job.yaml", "            runAsUser: 65532", "            runAsUser: 0", "runAsUser: 65532"),
    "runAsNonRoot false": ("deployment.yaml", "          securityContext:\n            runAsNonRoot: true",
                           "          securityContext:\n            runAsNonRoot: false", "runAsNonRoot"),
    "writable root": ("deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false",
                      "readOnlyRootFilesystem"),
    "privilege escalation": ("deployment-wait.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true",
                             "allowPrivilegeEscalation"),
    "capabilities kept": ("deployment.yaml", 'drop: ["ALL"]', 'drop: ["NET_RAW"]', "capabilities"),
    "seccomp unconfined": ("job.yaml", "            seccompProfile:\n              type: RuntimeDefault",
                           "            seccompProfile:\n              type: Unconfined", "seccompProfile"),
    "no limits": ("job.yaml", "            limits:\n              cpu: 500m\n              memory: 64Mi\n", "",
                  "request and limit set"),
    "big limits": ("deployment.yaml", "              cpu: 500m\n              memory: 64Mi",
                   "              cpu: 500m\n              memory: 1Gi", "limits are small"),
    "termination message policy": ("job.yaml", "terminationMessagePolicy: FallbackToLogsOnError",
                                   "terminationMessagePolicy: File", "FallbackToLogsOnError"),
    "literal URL": ("job.yaml", "            - name: DATABASE_URL\n              valueFrom:\n                secretKeyRef:\n"
                                "                  name: orders-db\n                  key: DATABASE_URL\n",
                    "            - name: DATABASE_URL\n              value: mongodb://u:p@db:27017/orders\n",
                    "DATABASE_URL comes from a Secret"),
    "POD_NAME literal": ("job.yaml", "            - name: POD_NAME\n              valueFrom:\n                fieldRef:\n"
                                     "                  fieldPath: metadata.name\n",
                         "            - name: POD_NAME\n              value: migrator\n", "POD_NAME from the downward API"),
    "missing Secret key": ("deployment.yaml", "              - key: DATABASE_URL\n", "              - key: URL\n",
                           'Secret "orders-db" has key "URL": missing'),
    "real-looking password": ("secret.yaml", "FAKE-example-password-change-me", "Tr0ub4dor-3", "obviously fake"),
    "manifest not in kustomization": ("kustomization.yaml", "  - deployment-wait.yaml\n", "",
                                      "lists every manifest"),
    "kustomization unknown field": ("kustomization.yaml", "resources:", "resourcez: []\nresources:",
                                    "decodes strictly into kustomize"),
    "selector mismatch": ("deployment.yaml", "    matchLabels:\n      app.kubernetes.io/name: orders-api",
                          "    matchLabels:\n      app.kubernetes.io/name: orders", "selector matches"),
}


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_checker_rejects(defect, checker, help_output, tmp_path):
    file, old, new, expect = DEFECTS[defect]
    d = tmp_path / "k8s"
    shutil.copytree(K8S, d)
    text = (d / file).read_text()
    assert text.count(old) >= 1, f"the defect's anchor is no longer in k8s/{file}: {old!r}"
    (d / file).write_text(text.replace(old, new, 1))
    p, fails = run_checker(checker, d, help_output)
    assert p.returncode == 1, f"the checker accepted: {defect}\n{p.stdout[-3000:]}{p.stderr}"
    assert any(expect in f for f in fails), f"no FAIL line with {expect!r}:\n" + "\n".join(fails)


def test_checker_reads_the_exit_code_table(checker, help_output, tmp_path):
    """If src/exitcode.c said a lock timeout (6) cannot be helped by a retry,
    the manifests (FailJob without 6) and the binary's -help (6: yes) would
    both disagree with it, and the checker must say so."""
    src = (REPO / "src" / "exitcode.c").read_text()
    old = '{EXIT_LOCK_TIMEOUT, "lock not acquired in time", "yes"}'
    assert old in src, "anchor moved in src/exitcode.c"
    changed = tmp_path / "exitcode.c"
    changed.write_text(src.replace(old, old.replace('"yes"', '"no"')))
    p, fails = run_checker(checker, K8S, help_output, exitcode_c=changed)
    assert p.returncode == 1
    assert any("FailJob exactly on the \"retry: no\" exit codes [2 3 5 6 7 8]" in f for f in fails), fails
    assert any("-help` exit-code table equals" in f for f in fails), fails
