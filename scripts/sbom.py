#!/usr/bin/python3
"""The SBOM of a static migrate-init binary: SPDX 2.3 JSON, beside it.

    scripts/sbom.py BINARY [ARCH]

writes BINARY.spdx.json and BINARY.licenses/ (Debian's copyright file of
each source package linked in, and the Apache-2.0 text they refer to). What it lists comes from the build's inputs, never
from the binary: the Debian source packages and versions pinned in
scripts/versions.sh (passed in the environment by build-static.sh as
STATIC_OPENSSL_VERSION, STATIC_MONGOC_VERSION, STATIC_YAML_VERSION) and the
musl that musl-gcc belongs to (dpkg). The artifact tests hold it to what the
binary reports of itself (-version -json) and to the prefix's pkg-config
files, so a listing that drifts from the build fails there.

Reproducible: the document's only time is the commit's (SOURCE_DATE_EPOCH
when set), its namespace is derived from the binary's sha256, and keys are
written in a fixed order; two builds of one commit give the same bytes.
"""

import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name, Debian source package, env var of its pinned version (None: musl,
# STATIC_MUSL_VERSION, else the musl-dev that musl-gcc belongs to), SPDX
# licence of what is linked in.
# Debian's copyright file of each source package (build-static.sh puts it in
# $STATIC_PREFIX/share/licenses/SOURCE/) is copied beside the binary.
COMPONENTS = [
    ("musl", "musl", None, "MIT"),
    ("openssl", "openssl", "STATIC_OPENSSL_VERSION", "Apache-2.0"),
    ("libmongoc", "mongo-c-driver", "STATIC_MONGOC_VERSION", "Apache-2.0"),
    ("libbson", "mongo-c-driver", "STATIC_MONGOC_VERSION", "Apache-2.0"),
    ("libyaml", "libyaml", "STATIC_YAML_VERSION", "MIT"),
]
APACHE = "/usr/share/common-licenses/Apache-2.0"


def upstream(debian_version):
    """3.0.20-1~deb12u2 -> 3.0.20; 1:2.3-4 -> 2.3."""
    v = debian_version.split(":", 1)[-1]
    return v.rsplit("-", 1)[0] if "-" in v else v


def dpkg_version(pkg):
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                          check=True).stdout.strip()


def git(*args):
    r = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else ""


def makefile_version():
    m = re.search(r"^VERSION \?= (\S+)", (ROOT / "Makefile").read_text(), re.M)
    return m.group(1)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    binary = Path(sys.argv[1])
    arch = sys.argv[2] if len(sys.argv) == 3 else os.uname().machine
    data = binary.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    commit = os.environ.get("MI_COMMIT_ID") or git("rev-parse", "HEAD") or "unknown"
    epoch = os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct") or "0"
    created = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    version = makefile_version()

    me = "SPDXRef-Package-migrate-init"
    packages = [{
        "SPDXID": me,
        "name": "migrate-init",
        "versionInfo": version,
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": "SHA256", "checksumValue": sha}],
        "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION",
        "copyrightText": "NOASSERTION",
        "primaryPackagePurpose": "APPLICATION",
        "sourceInfo": f"built from git commit {commit}, statically linked with musl for linux/{arch}",
    }]
    rels = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": me}]
    lic_dir = Path(str(binary) + ".licenses")
    shutil.rmtree(lic_dir, ignore_errors=True)
    lic_dir.mkdir()
    licences = Path(os.environ["STATIC_PREFIX"]) / "share" / "licenses"
    for name, source, var, licence in COMPONENTS:
        deb = os.environ.get(var or "STATIC_MUSL_VERSION") or (dpkg_version("musl-dev") if not var else None)
        if not deb:
            sys.exit(f"sbom: {var} is not set (run through scripts/build-static.sh)")
        spdx_id = f"SPDXRef-Package-{name}"
        packages.append({
            "SPDXID": spdx_id,
            "name": name,
            "versionInfo": upstream(deb),
            "supplier": "Organization: Debian",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": licence,
            "licenseDeclared": licence,
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "sourceInfo": f"built from Debian source package {source} {deb} with musl-gcc",
            "externalRefs": [{
                "referenceCategory": "PACKAGE-MANAGER",
                "referenceType": "purl",
                "referenceLocator": f"pkg:deb/debian/{source}@{deb}?arch=source&distro=debian-12",
            }],
        })
        rels.append({"spdxElementId": me, "relationshipType": "STATIC_LINK", "relatedSpdxElement": spdx_id})
        shutil.copyfile(licences / source / "copyright", lic_dir / f"{source}.copyright")
    shutil.copyfile(APACHE, lic_dir / "Apache-2.0")
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"migrate-init-{version}-linux-{arch}",
        "documentNamespace": f"https://spdx.org/spdxdocs/migrate-init-{version}-{sha}",
        "creationInfo": {"created": created, "creators": ["Tool: migrate-init-scripts/sbom.py"]},
        "packages": packages,
        "relationships": rels,
    }
    out = Path(str(binary) + ".spdx.json")
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
