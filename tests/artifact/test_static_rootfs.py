"""bin/static/migrate-init alone in an empty root file system.

How: a FROM-scratch image built from just these files (a fast docker build
of a tiny context, no Dockerfile of ours involved):

    /usr/local/bin/migrate-init   bin/static/migrate-init (`make static`)
    /migrations/*                 the demo set (top-level migration files)
    /etc/ssl/cert.pem             Debian's CA bundle (+ the test CA, in the
                                  "trusting" variant)

and nothing else: Docker adds only its mount points and, at run time,
/etc/hosts, /etc/resolv.conf and /etc/hostname. It runs as
`docker run --read-only --user 65532:65532 --cap-drop ALL
--security-opt no-new-privileges` (what k8s/'s securityContext asks of a
pod) with --network host, against a FerretDB on 127.0.0.1 with
authentication (SCRAM) and TLS on, and the URL names `localhost` (resolved
through /etc/hosts) with `tls=true` and no tlsCAFile: the certificate is
verified against /etc/ssl/cert.pem, the path compiled into the static
OpenSSL (--openssldir=/etc/ssl).
"""

import os
import time

import pytest

from .artifact_harness import (
    DOCKER_SKELETON,
    PASSWORD,
    RUN_ID,
    assert_migrated,
    assert_no_secret,
    build_context_image,
    docker,
    docker_run,
    example_migrations,
    exported_paths,
    free_port,
    inspect,
    run_argv,
)

DEBIAN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def _rootfs_files(static_binary, bundle):
    files = {"usr/local/bin/migrate-init": static_binary.read_bytes(), "etc/ssl/cert.pem": bundle}
    for name, data in example_migrations().items():
        files[f"migrations/{name}"] = data
    return files


SCRATCH_DOCKERFILE = """FROM scratch
COPY usr/ /usr/
COPY etc/ /etc/
COPY migrations/ /migrations/
ENTRYPOINT ["/usr/local/bin/migrate-init"]
"""


@pytest.fixture(scope="module")
def debian_bundle():
    if not os.path.exists(DEBIAN_BUNDLE):
        pytest.fail(f"{DEBIAN_BUNDLE} missing: apt-get install ca-certificates", pytrace=False)
    with open(DEBIAN_BUNDLE, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def rootfs_image(static_binary, certs, debian_bundle, scratch_images):
    """The empty root file system whose CA bundle also trusts the test CA."""
    tag = f"mi-art-rootfs:trusting-{RUN_ID}"
    scratch_images.append(tag)
    bundle = debian_bundle + b"\n" + certs.ca.read_bytes()
    return build_context_image(tag, _rootfs_files(static_binary, bundle), SCRATCH_DOCKERFILE)


@pytest.fixture(scope="module")
def public_rootfs_image(static_binary, debian_bundle, scratch_images):
    """The same with Debian's public CA bundle only (as the shipped image has)."""
    tag = f"mi-art-rootfs:public-{RUN_ID}"
    scratch_images.append(tag)
    return build_context_image(tag, _rootfs_files(static_binary, debian_bundle), SCRATCH_DOCKERFILE)


def test_root_filesystem_holds_only_these_files(rootfs_image, static_binary):
    paths = exported_paths(rootfs_image)
    ours = {"usr", "usr/local", "usr/local/bin", "usr/local/bin/migrate-init", "etc/ssl",
            "etc/ssl/cert.pem", "migrations"} | {f"migrations/{n}" for n in example_migrations()}
    assert set(paths) == ours | DOCKER_SKELETON, sorted(set(paths) ^ (ours | DOCKER_SKELETON))
    # No dynamic loader, no libc, no shell: the binary is all there is.
    for p in ("bin/sh", "lib", "lib64", "usr/lib"):
        assert p not in paths


def test_migrates_with_tls_and_auth_read_only_nonroot(rootfs_image, host_ferretdb, dbname, containers,
                                                      termination_log):
    term = termination_log()
    url = host_ferretdb.tls_url(dbname)  # host localhost, tls=true, no tlsCAFile
    assert "tlsCAFile" not in url and "@localhost:" in url
    p, name = docker_run(
        containers, "rootfs-migrate", rootfs_image, network="host",
        env={"DATABASE_URL": url, "POD_NAME": "rootfs-pod", "MAX_RETRIES": "5", "RETRY_INTERVAL": "500ms"},
        mounts=[(term, "/dev/termination-log", "rw")])
    assert_no_secret(p.stdout, p.stderr, term.read_text())
    assert p.returncode == 0, f"exit {p.returncode}\n{p.stderr}"
    cfg = inspect(name)["HostConfig"]
    assert cfg["ReadonlyRootfs"] and cfg["CapDrop"] == ["ALL"] and "no-new-privileges" in cfg["SecurityOpt"]
    assert inspect(name)["Config"]["User"] == "65532:65532"
    with host_ferretdb.client() as c:
        assert assert_migrated(c[dbname]) == {"rootfs-pod"}
        assert c[dbname]["users"].count_documents({}) >= 3
    msg = term.read_text()
    assert "(exit 0," in msg and "database at version 6 (clean)" in msg, msg


def test_public_bundle_does_not_trust_the_test_ca(public_rootfs_image, host_ferretdb, dbname, containers,
                                                  termination_log):
    """The positive test above is not luck: with only the public bundle in
    /etc/ssl/cert.pem the same server is refused (exit 5, no retry)."""
    term = termination_log()
    p, _ = docker_run(
        containers, "rootfs-untrusted", public_rootfs_image, network="host",
        env={"DATABASE_URL": host_ferretdb.tls_url(dbname), "MAX_RETRIES": "2", "RETRY_INTERVAL": "200ms"},
        mounts=[(term, "/dev/termination-log", "rw")], timeout=60)
    assert_no_secret(p.stdout, p.stderr, term.read_text())
    assert p.returncode == 5, f"exit {p.returncode}\n{p.stderr}"
    msg = term.read_text()
    assert "authentication or TLS failure (exit 5, retry can help: no)" in msg, msg
    with host_ferretdb.client() as c:
        assert dbname not in c.list_database_names()


def _proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def test_process_is_confined_and_stops_on_sigterm(rootfs_image, containers, termination_log):
    """While it waits for a database that is not there, look at the process
    from the host: uid/gid 65532, no capabilities in any set, no_new_privs,
    seccomp filtering, a read-only root holding only our files. Then
    SIGTERM (docker stop, as the kubelet does): as PID 1 it must handle the
    signal itself and exit 143 at once, not be SIGKILLed after the grace
    period."""
    term = termination_log()
    port = free_port()  # nothing listens there
    env = {"DATABASE_URL": f"mongodb://127.0.0.1:{port}/confined", "MAX_RETRIES": "100",
           "RETRY_INTERVAL": "1s", "RETRY_MAX_INTERVAL": "1s"}
    name, argv = run_argv(containers, "rootfs-confined", rootfs_image, network="host", env=env,
                          mounts=[(term, "/dev/termination-log", "rw")])
    docker("run", "-d", *argv, env=env)
    deadline = time.monotonic() + 20
    while True:
        st = inspect(name)["State"]
        if st["Running"] and st["Pid"]:
            break
        assert time.monotonic() < deadline and st["Status"] in ("created", "running"), st
        time.sleep(0.1)
    pid = st["Pid"]
    s = _proc_status(pid)
    assert s["Uid"].split() == ["65532"] * 4, s["Uid"]
    assert s["Gid"].split() == ["65532"] * 4, s["Gid"]
    assert set(s["Groups"].split()) <= {"65532"}, s["Groups"]  # no supplementary root group
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(s[cap], 16) == 0, (cap, s[cap])
    assert s["NoNewPrivs"] == "1"
    assert s["Seccomp"] == "2", "seccomp filter mode expected (Docker's default profile)"
    with open(f"/proc/{pid}/mountinfo") as f:
        root = [l.split() for l in f if l.split()[4] == "/"]
    assert root and root[0][5].split(",")[0] == "ro", root
    top = set(os.listdir(f"/proc/{pid}/root"))
    assert top == {".dockerenv", "dev", "etc", "migrations", "proc", "sys", "usr"}, top

    start = time.monotonic()
    docker("stop", "-t", "15", name, timeout=60)
    took = time.monotonic() - start
    st = inspect(name)["State"]
    assert st["ExitCode"] == 143, st
    assert took < 10, f"docker stop took {took:.1f}s: SIGTERM not handled by PID 1?"
    msg = term.read_text()
    assert "(exit 143, retry can help: yes)" in msg, msg
    assert PASSWORD not in msg
