#!/usr/bin/env bash
# Builds the migrate-init images (docker/Dockerfile) from this repository.
#
#   bash docker/build.sh [TAG]     default TAG: migrate-init:<VERSION in the Makefile>
#
# Two images, one build (the second is all cache):
#   TAG         the default target: the binary with the demo migrations in /migrations
#   TAG-bare    --target bare: the same with an empty /migrations, to build on
#               (FROM migrate-init:0.1.0-bare + COPY migrations/ /migrations/)
#
# The builder stage's base: $BASE when set (e.g. BASE=debian:bookworm-slim on
# a machine that can pull it), else debian:bookworm-slim when it is already
# in the local image store, else a local Debian bookworm image made with
# debootstrap (scripts/debootstrap-base.sh; cached). Nothing is pulled.
# The build runs with --network host (the builder uses apt). Build output
# goes to stderr; the two tags are printed on stdout, one a line.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^VERSION[[:space:]]*?=[[:space:]]*//p' "$root/Makefile" | head -n1)
tag=${1:-migrate-init:${version:-dev}}
case ${tag##*/} in
*:*) bare=$tag-bare ;;
*) bare=$tag:bare ;;
esac

if [ -z "${BASE:-}" ]; then
	if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
		BASE=debian:bookworm-slim
	else
		BASE=$(bash "$root/scripts/debootstrap-base.sh" bookworm)
	fi
fi
# The context has no .git: the commit (-version, the SBOM) and its time
# (the SBOM's, and every file's in the image) come from here.
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD -- 2>/dev/null || commit=$commit-dirty
epoch=$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)
build() { # tag [docker build options]
	local t=$1
	shift
	echo "build.sh: building $t (builder base: $BASE)" >&2
	docker build --force-rm --network host --build-arg "BASE=$BASE" \
		--build-arg "MI_COMMIT_ID=$commit" --build-arg "SOURCE_DATE_EPOCH=$epoch" \
		${MI_BUILD_NONCE:+--build-arg "BUILD_NONCE=$MI_BUILD_NONCE"} "$@" \
		-f "$root/docker/Dockerfile" -t "$t" "$root" >&2
}
build "$tag"
build "$bare" --target bare
echo "$tag"
echo "$bare"
