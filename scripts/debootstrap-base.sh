#!/usr/bin/env bash
# A Debian base image for the Dockerfile's builder stage, made locally with
# debootstrap, for machines that cannot pull debian:bookworm-slim.
#
#   bash scripts/debootstrap-base.sh [SUITE]   (default: bookworm)
#
# Prints the image reference on stdout (migrate-init-base:SUITE-YYYYMMDD,
# also tagged migrate-init-base:SUITE), for
#   docker build --build-arg BASE=$(bash scripts/debootstrap-base.sh) ...
#
# 1. The root filesystem: `debootstrap --variant=minbase SUITE` from the
#    Debian mirror that apt on this machine uses (DEBOOTSTRAP_MIRROR
#    overrides), packed as a tarball cached outside the repository, keyed by
#    suite and date: $MI_CACHE/debootstrap/SUITE-minbase-ARCH-YYYYMMDD.tar.
#    A tarball younger than DEBOOTSTRAP_MAX_AGE_DAYS (default 30) is reused;
#    an older one is replaced (the builder runs apt-get update anyway, so a
#    month-old base costs only a few upgrades).
# 2. The apt sources inside are laid out as in debian:SUITE-slim: one
#    deb822 file /etc/apt/sources.list.d/debian.sources with SUITE,
#    SUITE-updates and SUITE-security ("deb" only; build-static.sh adds the
#    deb-src twin itself), the package lists and .deb cache emptied.
# 3. `docker import` of the tarball, only when no image carries that
#    tarball's sha256 yet (label org.migrate-init.rootfs-sha256).
#
# One run at a time (flock on $MI_CACHE/debootstrap.lock). Needs root (for
# debootstrap) and Docker.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

SUITE=${1:-bookworm}
ARCH=$(dpkg --print-architecture)
MAX_AGE_DAYS=${DEBOOTSTRAP_MAX_AGE_DAYS:-30}
IMAGE=${MI_BASE_IMAGE:-migrate-init-base}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
DIR=$MI_CACHE/debootstrap

say() { printf 'debootstrap-base: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}

[[ $SUITE =~ ^[a-z]+$ ]] || die "suite must be a Debian code name such as bookworm, not '$SUITE'"
[[ $MAX_AGE_DAYS =~ ^[0-9]+$ ]] || die "DEBOOTSTRAP_MAX_AGE_DAYS must be a number of days"
docker info >/dev/null 2>&1 || die "Docker is not reachable (docker info failed)"

# The first URI apt uses for a suite ("bookworm" or "bookworm-security"):
# deb822 .sources files first, then one-line sources.list entries.
apt_uri() { # suite
	local want=$1 f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# Paragraphs separated by blank lines; print URIs of a "deb" paragraph
		# whose Suites contain the wanted suite.
		awk -v want="$want" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "") {
					split(uris, u, " "); print u[1]; found = 1; exit
				}
				types = suites = uris = ""
			}
			/^[[:space:]]*$/ { flush(); next }
			/^#/ { next }
			tolower($1) == "types:" { $1 = ""; types = $0; sub(/^ +/, "", types) }
			tolower($1) == "suites:" { $1 = ""; suites = $0; sub(/^ +/, "", suites) }
			tolower($1) == "uris:" { $1 = ""; uris = $0; sub(/^ +/, "", uris) }
			END { if (!found) flush() }
		' "$f" | head -n1 | grep . && return 0
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		# deb [options] URI SUITE COMPONENTS...
		sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$want" '$1 == "deb" && $3 == want { print $2; exit }' | grep . && return 0
	done
	return 1
}

MIRROR=${DEBOOTSTRAP_MIRROR:-$(apt_uri "$SUITE" || echo http://deb.debian.org/debian)}
SECURITY_MIRROR=${DEBOOTSTRAP_SECURITY_MIRROR:-$(apt_uri "$SUITE-security" || echo http://deb.debian.org/debian-security)}
MIRROR=${MIRROR%/}
SECURITY_MIRROR=${SECURITY_MIRROR%/}

# The newest cached tarball for this suite and architecture, if young enough.
fresh_tarball() {
	local t
	t=$(find "$DIR" -maxdepth 1 -name "$SUITE-minbase-$ARCH-[0-9]*.tar" -mtime -"$MAX_AGE_DAYS" 2>/dev/null | sort | tail -n1)
	[ -n "$t" ] && [ -f "$t.sha256" ] && echo "$t"
}

build_tarball() {
	local date root tarball
	date=$(date -u +%Y%m%d)
	tarball=$DIR/$SUITE-minbase-$ARCH-$date.tar
	if ! command -v debootstrap >/dev/null; then
		say "installing debootstrap"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
	fi
	[ -f "$KEYRING" ] || die "$KEYRING missing (debian-archive-keyring)"
	root=$(mktemp -d "$DIR/rootfs.XXXXXX")
	# shellcheck disable=SC2064
	trap "rm -rf '$root' '$tarball.tmp'" EXIT
	say "debootstrap --variant=minbase $SUITE from $MIRROR (first time only: a few minutes; log: $DIR/debootstrap.log)"
	if ! debootstrap --variant=minbase --arch="$ARCH" --keyring="$KEYRING" \
		"$SUITE" "$root" "$MIRROR" >"$DIR/debootstrap.log" 2>&1; then
		tail -n 30 "$DIR/debootstrap.log" >&2
		die "debootstrap failed (whole log: $DIR/debootstrap.log)"
	fi

	# apt sources as in debian:SUITE-slim, with the mirrors apt uses here.
	rm -f "$root/etc/apt/sources.list"
	mkdir -p "$root/etc/apt/sources.list.d"
	cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	[ -f "$root/usr/share/keyrings/debian-archive-keyring.gpg" ] ||
		cp "$KEYRING" "$root/usr/share/keyrings/debian-archive-keyring.gpg"
	# Nothing of this machine's identity or caches in the image: Docker
	# provides hostname, hosts and resolv.conf at run time.
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
		"$root"/var/log/* "$root"/tmp/* "$root"/dev/*
	: >"$root/etc/hostname"
	: >"$root/etc/resolv.conf"
	# As in the official images: no recommends, no daemons started by
	# package scripts during builds.
	printf 'APT::Install-Recommends "false";\n' >"$root/etc/apt/apt.conf.d/90migrate-init-norecommends"
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"

	tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
	sha256sum "$tarball.tmp" | cut -d' ' -f1 >"$tarball.sha256"
	mv "$tarball.tmp" "$tarball"
	rm -rf "$root"
	trap - EXIT
	say "cached $tarball ($(du -h "$tarball" | cut -f1))"
	echo "$tarball"
}

mkdir -p "$DIR"
exec 9>"$MI_CACHE/debootstrap.lock"
flock -n 9 || {
	say "waiting for another run ($MI_CACHE/debootstrap.lock)"
	flock 9
}

tarball=$(fresh_tarball || true)
[ -n "$tarball" ] || tarball=$(build_tarball)
sha=$(cat "$tarball.sha256")
date=${tarball##*-}
date=${date%.tar}
ref=$IMAGE:$SUITE-$date

have=$(docker image inspect -f '{{index .Config.Labels "org.migrate-init.rootfs-sha256"}}' "$ref" 2>/dev/null || true)
if [ "$have" != "$sha" ]; then
	say "docker import $tarball as $ref"
	docker import \
		--change "LABEL org.migrate-init.rootfs-sha256=$sha" \
		--change "LABEL org.migrate-init.debootstrap-mirror=$MIRROR" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		"$tarball" "$ref" >/dev/null
fi
docker tag "$ref" "$IMAGE:$SUITE"
# Older imports of this suite are left for `docker image prune`; old
# tarballs are removed (only the newest is ever used).
find "$DIR" -maxdepth 1 -name "$SUITE-minbase-$ARCH-[0-9]*.tar" ! -path "$tarball" -exec rm -f {} {}.sha256 \;
echo "$ref"
