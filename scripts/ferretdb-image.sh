#!/usr/bin/env bash
# A FROM-scratch container image of the FerretDB that scripts/deps.sh builds
# (CGO_ENABLED=0: one static binary), for tests that need a database on a
# private Docker network (tests/artifact/).
#
#   bash scripts/ferretdb-image.sh    prints the image reference on stdout:
#                                     migrate-init-ferretdb:<FERRETDB_VERSION>
#
# The image holds only /ferretdb, runs as 65532:65532 with the SQLite
# backend in /state (mount a tmpfs or a volume there, writable by 65532),
# listens on :27017 inside its network namespace, and takes extra flags as
# arguments (TLS listener, authentication). Rebuilt only when the binary
# changes (label org.migrate-init.ferretdb-sha256).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

IMAGE=${MI_FERRETDB_IMAGE:-migrate-init-ferretdb}:$FERRETDB_VERSION

die() {
	echo "ferretdb-image: error: $*" >&2
	exit 1
}

[ -x "$FERRETDB_BIN" ] || die "FerretDB binary not found at $FERRETDB_BIN (run scripts/deps.sh)"
docker info >/dev/null 2>&1 || die "Docker is not reachable (docker info failed)"
# A scratch image has no dynamic loader: the binary must be static.
if LC_ALL=C readelf -l "$FERRETDB_BIN" | grep -q INTERP; then
	die "$FERRETDB_BIN is dynamically linked (build it with CGO_ENABLED=0)"
fi

sha=$(sha256sum "$FERRETDB_BIN" | cut -d' ' -f1)
have=$(docker image inspect -f '{{index .Config.Labels "org.migrate-init.ferretdb-sha256"}}' "$IMAGE" 2>/dev/null || true)
if [ "$have" != "$sha" ]; then
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' EXIT
	cp "$FERRETDB_BIN" "$ctx/ferretdb"
	cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY ferretdb /ferretdb
USER 65532:65532
ENTRYPOINT ["/ferretdb", "--handler=sqlite", "--sqlite-url=file:/state/", "--state-dir=/state", \
 "--listen-addr=:27017", "--debug-addr=-", "--telemetry=disable", "--log-level=warn"]
LABEL org.migrate-init.ferretdb-sha256="$sha" org.migrate-init.ferretdb-version="$FERRETDB_VERSION"
EOF
	echo "ferretdb-image: building $IMAGE" >&2
	docker build -q -t "$IMAGE" "$ctx" >/dev/null 2>"$ctx/build.log" || {
		cat "$ctx/build.log" >&2
		die "docker build failed"
	}
fi
echo "$IMAGE"
