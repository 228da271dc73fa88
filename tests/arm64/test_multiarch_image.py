"""One image reference for linux/amd64 and linux/arm64: docker/multiarch.sh
builds the FROM-scratch image for both platforms (no RUN step, no
emulation), pushes it to a registry on 127.0.0.1 as one manifest list, and
each platform pulled back by reference + --platform is the right
architecture and migrates: amd64 with `docker run`, arm64 (Docker here has
no binfmt emulation) from its exported file system under qemu-aarch64-static."""

import io
import json
import subprocess
import tarfile
import urllib.request
import uuid

import pymongo

from conftest import QEMU, REPO

NEWEST = max(int(p.name.split("_")[0]) for p in (REPO / "migrations-example").glob("*.up.json"))
LIST_TYPES = ("application/vnd.docker.distribution.manifest.list.v2+json",
              "application/vnd.oci.image.index.v1+json")


def sh(*argv, timeout=900, check=True):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{argv} exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def registry_manifest(port, repo, ref):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/{repo}/manifests/{ref}",
                                 headers={"Accept": ", ".join(LIST_TYPES)})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def test_one_reference_two_platforms(docker_ok, registry, ferretdb, dbname, arm64_bin, tmp_path):
    tag = "t" + uuid.uuid4().hex[:8]
    ref = f"127.0.0.1:{registry}/migrate-init:{tag}"
    local = [f"{ref}{v}-{a}" for v in ("", "-bare") for a in ("amd64", "arm64")] + [ref]
    pulled = []  # image ids: the second pull of ref leaves the first untagged
    try:
        out = sh("bash", REPO / "docker" / "multiarch.sh", ref, "--push").stdout.split()
        assert out == [ref, ref + "-bare"], out

        # The registry holds one list per reference, with exactly the two platforms.
        for t in (tag, tag + "-bare"):
            idx = registry_manifest(registry, "migrate-init", t)
            assert idx["mediaType"] in LIST_TYPES, idx
            plats = sorted((m["platform"]["os"], m["platform"]["architecture"])
                           for m in idx["manifests"])
            assert plats == [("linux", "amd64"), ("linux", "arm64")], idx

        # Pulled back by platform, with no local copy left to satisfy it.
        sh("docker", "rmi", *local, check=False)
        url = f"mongodb://127.0.0.1:{ferretdb}/{dbname}"

        sh("docker", "pull", "-q", "--platform", "linux/amd64", ref)
        cfg = json.loads(sh("docker", "image", "inspect", ref).stdout)[0]
        pulled.append(cfg["Id"])
        assert (cfg["Os"], cfg["Architecture"]) == ("linux", "amd64")
        assert cfg["Config"]["User"] == "65532:65532"
        assert cfg["Config"]["Entrypoint"] == ["/usr/local/bin/migrate-init"]
        r = sh("docker", "run", "--rm", "--network", "host", "--read-only", "--cap-drop", "ALL",
               "-e", "TERMINATION_MESSAGE_PATH=/dev/null", ref, "-database", url, "up",
               timeout=120)
        with pymongo.MongoClient(f"mongodb://127.0.0.1:{ferretdb}/") as c:
            doc = c[dbname]["schema_migrations"].find_one()
            assert (doc["version"], doc["dirty"]) == (NEWEST, False), (doc, r.stderr)
            c.drop_database(dbname)

        sh("docker", "pull", "-q", "--platform", "linux/arm64", ref)
        cfg = json.loads(sh("docker", "image", "inspect", ref).stdout)[0]
        pulled.append(cfg["Id"])
        assert (cfg["Os"], cfg["Architecture"]) == ("linux", "arm64")
        assert cfg["Config"]["User"] == "65532:65532"
        cid = sh("docker", "create", "--platform", "linux/arm64", ref).stdout.strip()
        try:
            tar = sh_bytes("docker", "export", cid)
        finally:
            sh("docker", "rm", "-f", cid, check=False)
        root = tmp_path / "arm64-rootfs"
        with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
            tf.extractall(root, filter="data") if hasattr(tarfile, "data_filter") else tf.extractall(root)
        binp = root / "usr" / "local" / "bin" / "migrate-init"
        assert "ARM aarch64" in sh("file", "-b", binp).stdout
        assert binp.read_bytes() == arm64_bin.read_bytes()
        r = sh(QEMU, binp, "-path", root / "migrations", "-database", url, "up", timeout=120)
        with pymongo.MongoClient(f"mongodb://127.0.0.1:{ferretdb}/") as c:
            doc = c[dbname]["schema_migrations"].find_one()
            assert (doc["version"], doc["dirty"]) == (NEWEST, False), (doc, r.stderr)
    finally:
        sh("docker", "rmi", *local, check=False)
        if pulled:
            sh("docker", "rmi", *pulled, check=False)


def sh_bytes(*argv):
    p = subprocess.run([str(a) for a in argv], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return p.stdout
