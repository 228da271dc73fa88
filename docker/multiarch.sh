#!/usr/bin/env bash
# One image reference for linux/amd64 and linux/arm64.
#
#   bash docker/multiarch.sh REPO:TAG [--push]
#
# Builds bin/static/migrate-init and bin/static/arm64/migrate-init (`make
# static`, `make static ARCH=arm64`; cached prefixes, so seconds after the
# first time), lays out each one's root file system as docker/Dockerfile does
# (binary, CA bundle as /etc/ssl/cert.pem, passwd/group, /migrations) and
# builds docker/Dockerfile.prebuilt for each platform: REPO:TAG-amd64,
# REPO:TAG-arm64, and the same with -bare. No RUN step, so no emulation.
#
# With --push: pushes the four per-platform tags, then combines each pair
# into one multi-platform manifest list (`docker manifest create`; pulled by
# platform like an OCI index) and pushes REPO:TAG and REPO:TAG-bare. A
# registry on 127.0.0.0/8 is insecure by default for Docker; for it the
# manifest commands get --insecure. The references pushed are printed on
# stdout, one a line; build output goes to stderr.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -ge 1 ] || {
	echo "usage: $0 REPO:TAG [--push]" >&2
	exit 2
}
ref=$1
push=${2:-}
case ${ref##*/} in
*:*) ;;
*)
	echo "multiarch.sh: $ref: give a tag (REPO:TAG)" >&2
	exit 2
	;;
esac
archs=(amd64 arm64)

make -C "$root" -s static >&2
make -C "$root" -s static ARCH=arm64 >&2

ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || {
	echo "multiarch.sh: $ca missing (Debian package ca-certificates)" >&2
	exit 1
}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
for arch in "${archs[@]}"; do
	c=$ctx/$arch
	r=$c/rootfs
	bin=$root/bin/static/migrate-init
	[ "$arch" = amd64 ] || bin=$root/bin/static/$arch/migrate-init
	mkdir -p "$r/usr/local/bin" "$r/etc/ssl" "$r/migrations" "$c/demo"
	install -m 0755 "$bin" "$r/usr/local/bin/migrate-init"
	install -m 0644 "$ca" "$r/etc/ssl/cert.pem"
	printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$r/etc/passwd"
	printf 'root:x:0:\nnonroot:x:65532:\n' >"$r/etc/group"
	chmod 0644 "$r/etc/passwd" "$r/etc/group"
	find "$root/migrations-example" -maxdepth 1 -type f \
		\( -regextype posix-extended -regex '.*/[0-9]+_[^/]*\.(up|down)\.[^/]+' -o -name .migration-registry.yaml \) \
		-exec install -m 0644 -t "$c/demo" {} +
	echo "multiarch.sh: building $ref-$arch and $ref-bare-$arch (linux/$arch)" >&2
	docker build --platform "linux/$arch" -f "$root/docker/Dockerfile.prebuilt" -t "$ref-$arch" "$c" >&2
	docker build --platform "linux/$arch" -f "$root/docker/Dockerfile.prebuilt" --target bare \
		-t "$ref-bare-$arch" "$c" >&2
	got=$(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$ref-$arch")
	[ "$got" = "linux/$arch" ] || {
		echo "multiarch.sh: $ref-$arch is $got, not linux/$arch" >&2
		exit 1
	}
done

if [ "$push" != --push ]; then
	for arch in "${archs[@]}"; do printf '%s\n%s\n' "$ref-$arch" "$ref-bare-$arch"; done
	exit 0
fi
insecure=()
case $ref in
127.* | localhost:* | localhost/*) insecure=(--insecure) ;;
esac
for name in "$ref" "$ref-bare"; do
	members=()
	for arch in "${archs[@]}"; do
		docker push -q "$name-$arch" >&2
		members+=("$name-$arch")
	done
	docker manifest rm "$name" >/dev/null 2>&1 || true # a stale local list
	docker manifest create "${insecure[@]}" "$name" "${members[@]}" >&2
	docker manifest annotate "$name" "$name-arm64" --os linux --arch arm64 --variant v8
	docker manifest push "${insecure[@]}" --purge "$name" >&2
	echo "$name"
done
