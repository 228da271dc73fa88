"""What a security team needs of the static binary (issue #19): an SBOM they
can feed a scanner, versions the binary itself confirms, licences shipped,
and a build anyone can repeat byte for byte.

  * bin/static/migrate-init.spdx.json validates against the official SPDX
    2.3 JSON schema, then parses and validates with the SPDX project's own
    Go library (tests/artifact/sbom/), and lists
    exactly musl, OpenSSL, libmongoc, libbson and libyaml, each statically
    linked, with the binary's sha256;
  * every listed version is what was built: the library's own answer at run
    time (-version -json: OpenSSL_version, mongoc_get_version, ...), the
    prefix's pkg-config files, and the Debian source versions pinned in
    scripts/versions.sh;
  * the licence texts are beside the binary, and image and SBOM go
    together (test_image.py checks the copy inside the image);
  * two static builds from two clean clones, in different directories, at
    different times, give the same bytes (binary and SBOM).

The official SPDX 2.3 JSON schema lives in the spdx-spec repository, which
no registry this CI reaches serves; syft's Go module carries a copy
(schema/spdx-json/spdx-schema-2.3.json), so the test takes it from the Go
module proxy at a pinned version and checks its sha256 before trusting it.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .artifact_harness import MI_CACHE, REPO, SCRIPTS

SBOM_SRC = REPO / "tests" / "artifact" / "sbom"
SPDX = Path(str(REPO / "bin" / "static" / "migrate-init") + ".spdx.json")
LICENCES = Path(str(REPO / "bin" / "static" / "migrate-init") + ".licenses")
EXPECTED = {"musl": "MIT", "openssl": "Apache-2.0", "libmongoc": "Apache-2.0", "libbson": "Apache-2.0",
            "libyaml": "MIT"}
SOURCE = {"musl": "musl", "openssl": "openssl", "libmongoc": "mongo-c-driver", "libbson": "mongo-c-driver",
          "libyaml": "libyaml"}


def pinned():
    text = (SCRIPTS / "versions.sh").read_text()
    get = lambda k: re.search(rf"^{k}=\$\{{{k}:-(\S+?)\}}", text, re.M).group(1)
    return {"openssl": get("STATIC_OPENSSL_VERSION"), "mongo-c-driver": get("STATIC_MONGOC_VERSION"),
            "libyaml": get("STATIC_YAML_VERSION")}


def prefix():
    text = (SCRIPTS / "versions.sh").read_text()
    rev = re.search(r"^STATIC_BUILD_REV=(\S+)", text, re.M).group(1)
    p = pinned()
    return MI_CACHE / f"static-openssl_{p['openssl']}-mongoc_{p['mongo-c-driver']}-yaml_{p['libyaml']}-r{rev}"


def go_env():
    env = dict(os.environ)
    env["PATH"] = env.get("PATH", "") + ":/usr/local/go/bin"
    env.setdefault("GOFLAGS", "-mod=readonly")
    return env


@pytest.fixture(scope="session")
def sbomcheck(tmp_path_factory):
    out = tmp_path_factory.mktemp("sbomcheck") / "sbomcheck"
    p = subprocess.run(["go", "build", "-o", str(out), "."], cwd=SBOM_SRC, capture_output=True, text=True,
                       timeout=900, env=go_env())
    if p.returncode != 0:
        pytest.fail(f"building the SBOM checker failed:\n{p.stderr}", pytrace=False)
    return out


# spdx-spec's schemas/spdx-schema.json for 2.3, as syft ships it.
SCHEMA_MODULE = "github.com/anchore/syft@v1.57.1"
SCHEMA_FILE = "schema/spdx-json/spdx-schema-2.3.json"
SCHEMA_SHA256 = "c2e139546ef93597d3b1214d1d452369d0b536af6c6d6500dbd25c582034aa7c"


@pytest.fixture(scope="session")
def spdx_schema():
    p = subprocess.run(["go", "mod", "download", "-json", SCHEMA_MODULE], capture_output=True, text=True,
                       timeout=600, env=go_env(), cwd="/")
    if p.returncode != 0:
        pytest.fail(f"downloading {SCHEMA_MODULE} for the SPDX schema failed:\n{p.stdout}{p.stderr}",
                    pytrace=False)
    path = Path(json.loads(p.stdout)["Dir"]) / SCHEMA_FILE
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == SCHEMA_SHA256, f"{path} is not the pinned SPDX 2.3 schema ({digest})"
    assert json.loads(path.read_text())["$id"] == "http://spdx.org/rdf/terms/2.3"
    return path


@pytest.fixture(scope="session")
def check(sbomcheck, spdx_schema):
    def run(path):
        p = subprocess.run([str(sbomcheck), str(spdx_schema), str(path)], capture_output=True, text=True,
                           timeout=60)
        return p, (json.loads(p.stdout) if p.returncode == 0 else None)

    return run


def test_sbom_is_spdx_2_3_and_lists_what_is_linked_in(static_binary, check):
    assert SPDX.is_file(), "make static writes the SBOM beside the binary"
    p, pkgs = check(SPDX)
    assert p.returncode == 0, p.stderr
    by = {x["Name"]: x for x in pkgs}
    assert sorted(by) == sorted(["migrate-init", *EXPECTED]), pkgs
    assert by["migrate-init"]["Sha256"] == hashlib.sha256(static_binary.read_bytes()).hexdigest()
    for name, licence in EXPECTED.items():
        assert by[name]["License"] == licence, by[name]
        assert by[name]["Purl"].startswith(f"pkg:deb/debian/{SOURCE[name]}@"), by[name]


def test_the_checker_rejects_a_broken_sbom(check, tmp_path):
    """The checker can fail: a relationship to nothing, a missing version,
    and what only the schema catches (a field SPDX does not define, which
    the Go library's reader ignores; a checksum algorithm it does not name)."""
    def broken(name, change, why):
        doc = json.loads(SPDX.read_text())
        change(doc)
        (tmp_path / name).write_text(json.dumps(doc))
        p = check(tmp_path / name)[0]
        assert p.returncode != 0 and why in p.stderr, (name, p.stderr)

    broken("a.json", lambda d: d["relationships"].append(
        {"spdxElementId": "SPDXRef-Package-migrate-init", "relationshipType": "STATIC_LINK",
         "relatedSpdxElement": "SPDXRef-Package-nothing"}), "invalid")
    broken("b.json", lambda d: d["packages"][1].pop("versionInfo"), "mandatory")
    broken("c.json", lambda d: d.update(scanner="yes"), "SPDX 2.3 schema")
    broken("d.json", lambda d: d["packages"][0]["checksums"][0].update(algorithm="SHA-256"), "SPDX 2.3 schema")


def pc_version(name):
    text = (prefix() / "lib" / "pkgconfig" / f"{name}.pc").read_text()
    return re.search(r"^Version:\s*(\S+)", text, re.M).group(1)


def test_every_listed_version_is_what_was_built(static_binary, check):
    _, pkgs = check(SPDX)
    listed = {x["Name"]: x for x in pkgs}
    p = subprocess.run([str(static_binary), "-version", "-json"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    me = json.loads(p.stdout)
    runtime = {c["name"]: c for c in me["components"]}
    assert sorted(runtime) == sorted(EXPECTED), me
    for name in EXPECTED:
        # What the library says of itself in the running binary.
        assert listed[name]["Version"] == runtime[name]["version"], (name, listed[name], runtime[name])
        # The Debian source version: the build's, the binary's and the purl's.
        deb = listed[name]["Purl"].split("@", 1)[1].split("?", 1)[0]
        assert runtime[name]["debian_version"] == deb, (name, runtime[name], deb)
        if SOURCE[name] in pinned():
            assert deb == pinned()[SOURCE[name]], (name, deb)
    assert listed["openssl"]["Version"] == pc_version("libcrypto")
    assert listed["libmongoc"]["Version"] == pc_version("libmongoc-static-1.0")
    assert listed["libbson"]["Version"] == pc_version("libbson-static-1.0")
    assert listed["libyaml"]["Version"] == pc_version("yaml-0.1")
    assert listed["migrate-init"]["Version"] == me["version"]
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert me["commit"].split("-")[0] == commit, me


def test_the_licences_are_beside_the_binary(static_binary):
    for source in sorted(set(SOURCE.values())):
        text = (LICENCES / f"{source}.copyright").read_text()
        assert "Copyright" in text or "copyright" in text, source
    assert "Apache License" in (LICENCES / "Apache-2.0").read_text()


def test_two_builds_from_two_clones_are_identical(static_binary, tmp_path):
    """Clean clones of this commit in two directories, built a few seconds
    apart, each with `make static` (the prefix is the shared cached one):
    the same binary and the same SBOM, byte for byte."""
    out = []
    for name in ("first-clone", "second/clone-elsewhere"):
        d = tmp_path / name
        d.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "clone", "-q", str(REPO), str(d)], check=True, timeout=120)
        p = subprocess.run(["make", "-s", "static"], cwd=d, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-3000:]
        b = d / "bin" / "static" / "migrate-init"
        out.append((b.read_bytes(), Path(str(b) + ".spdx.json").read_bytes()))
        time.sleep(1.1)  # another second on the clock: no time may leak in
    assert out[0][0] == out[1][0], "the two binaries differ"
    assert out[0][1] == out[1][1], "the two SBOMs differ"
    # ... and both are this checkout's build when it is clean.
    clean = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip() == ""
    if clean:
        assert out[0][0] == static_binary.read_bytes(), "a clean checkout's make static differs from a clone's"
