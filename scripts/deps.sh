#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine.
# Idempotent: packages already present and Go binaries already cached are
# left alone, so a second run costs a few seconds.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

apt_packages=(
	build-essential pkg-config clang clang-format valgrind libclang-rt-14-dev libfuzzer-14-dev
	libmongoc-dev libbson-dev libyaml-dev libssl-dev libcmocka-dev
	python3-pytest python3-pymongo python3-yaml
	musl-tools dpkg-dev
)

missing=()
for p in "${apt_packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Go binaries are slow to build: cache them outside the repo, keyed by
# version, so that a fresh clone only rebuilds what is missing.
go_install() { # name module@version [build flags...]
	local name=$1 mod=$2
	shift 2
	local dir="$MI_CACHE/${name}-${mod##*@}"
	if [ -x "$dir/$name" ]; then
		return 0
	fi
	echo "deps: building $mod (cached in $dir)" >&2
	mkdir -p "$dir.tmp"
	GOBIN="$dir.tmp" CGO_ENABLED=0 go install "$@" "$mod"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
}

# FerretDB's main package panics at start unless build/version/version.txt
# exists, and the module as served has none (its release builds generate it).
# So: download the module, copy it, add the file, build the copy.
ferretdb_build() {
	local dir="$MI_CACHE/ferretdb-$FERRETDB_VERSION"
	[ -x "$dir/ferretdb" ] && return 0
	echo "deps: building FerretDB $FERRETDB_VERSION (cached in $dir)" >&2
	local modsrc tmp
	modsrc=$(cd "$(mktemp -d)" && go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$modsrc" ] || { echo "deps: FerretDB module not found" >&2; return 1; }
	tmp=$(mktemp -d)
	cp -r "$modsrc/." "$tmp/src"
	chmod -R u+w "$tmp/src"
	echo "$FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
	mkdir -p "$dir.tmp"
	(cd "$tmp/src" && CGO_ENABLED=0 go build -buildvcs=false -trimpath -o "$dir.tmp/ferretdb" ./cmd/ferretdb)
	rm -rf "$tmp" "$dir"
	mv "$dir.tmp" "$dir"
}

export PATH="$PATH:/usr/local/go/bin"
ferretdb_build
go_install migrate "github.com/golang-migrate/migrate/v4/cmd/migrate@$MIGRATE_VERSION" -tags mongodb
echo "deps: ok ($MI_CACHE)" >&2
