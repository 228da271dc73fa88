#!/usr/bin/env bash
# A throwaway OCI registry on 127.0.0.1 (the distribution project's
# registry, github.com/distribution/distribution/v3/cmd/registry at
# REGISTRY_VERSION), for the multi-platform image test.
#
#   scripts/registry.sh build       builds it once from the Go module proxy into
#                                   $REGISTRY_BIN (cached by version); prints the path
#   scripts/registry.sh start DIR   storage, config, log and pid in DIR; prints
#                                   the port once /v2/ answers
#   scripts/registry.sh stop DIR    TERM, then KILL after a few seconds
#
# Only ever listens on 127.0.0.1, which Docker treats as an insecure (plain
# HTTP) registry by default: no TLS, no auth.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

die() {
	echo "registry.sh: $*" >&2
	exit 1
}

build() {
	if [ ! -x "$REGISTRY_BIN" ]; then
		local dir
		dir=$(dirname "$REGISTRY_BIN")
		echo "registry.sh: building the registry $REGISTRY_VERSION (cached in $dir)" >&2
		export PATH="$PATH:/usr/local/go/bin"
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		GOBIN="$dir.tmp" CGO_ENABLED=0 nice -n 19 go install -trimpath \
			"github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" >&2
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
	fi
	echo "$REGISTRY_BIN"
}

start() { # dir
	local d=$1 port i
	build >/dev/null
	mkdir -p "$d/storage"
	port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
	cat >"$d/config.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $d/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
YML
	"$REGISTRY_BIN" serve "$d/config.yml" >"$d/registry.log" 2>&1 &
	echo $! >"$d/pid"
	for i in $(seq 1 100); do
		if python3 -c 'import sys, urllib.request
urllib.request.urlopen("http://127.0.0.1:%s/v2/" % sys.argv[1], timeout=1)' "$port" 2>/dev/null; then
			echo "$port"
			return 0
		fi
		kill -0 "$(cat "$d/pid")" 2>/dev/null || die "the registry exited: $(tail -5 "$d/registry.log")"
		sleep 0.1
	done
	stop "$d"
	die "the registry did not answer on 127.0.0.1:$port"
}

stop() { # dir
	local d=$1 pid i
	[ -f "$d/pid" ] || return 0
	pid=$(cat "$d/pid")
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	rm -f "$d/pid"
}

case ${1:-} in
build) build ;;
start) [ $# -eq 2 ] || die "usage: $0 start DIR"; start "$2" ;;
stop) [ $# -eq 2 ] || die "usage: $0 stop DIR"; stop "$2" ;;
*)
	echo "usage: $0 build | start DIR | stop DIR" >&2
	exit 2
	;;
esac
