#!/usr/bin/env bash
# Starts or stops a throwaway FerretDB (SQLite backend) on 127.0.0.1.
#
#   scripts/ferretdb.sh start DIR   data, log, port and pid go in DIR;
#                                   prints the port on stdout once it answers a ping
#   scripts/ferretdb.sh stop DIR    TERM, then KILL after a few seconds
#
# Environment (all optional):
#   FERRETDB_PORT   listen on this port of 127.0.0.1 instead of a free one
#                   (the end-to-end tests start a server on a port that a
#                   client is already waiting for)
#   FERRETDB_ARGS   extra FerretDB flags, split on whitespace, e.g.
#                   "--listen-tls=127.0.0.1:PORT --listen-tls-cert-file=F ..."
#                   or "--test-enable-new-auth --setup-database=DB ...";
#                   the plain listener stays on, for the readiness ping
#
# Used by the README demo and by CI. Only ever listens on 127.0.0.1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

START_TIMEOUT=${FERRETDB_START_TIMEOUT:-20}

die() {
	echo "ferretdb.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: $0 start DIR | stop DIR" >&2
	exit 2
}

# Asks the kernel for a free port on 127.0.0.1.
free_port() {
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Sends a MongoDB OP_MSG {ping: 1, $db: "admin"} and checks the reply says ok: 1.
# Plain Python (no pymongo needed), so it works with any python3.
ping() { # port
	python3 - "$1" <<'PY' >/dev/null 2>&1
import socket, struct, sys
port = int(sys.argv[1])
def cstr(s): return s.encode() + b"\0"
body = b"\x10" + cstr("ping") + struct.pack("<i", 1) + b"\x02" + cstr("$db") + struct.pack("<i", 6) + cstr("admin")
doc = struct.pack("<i", len(body) + 5) + body + b"\0"
msg = struct.pack("<I", 0) + b"\0" + doc
hdr = struct.pack("<iiii", 16 + len(msg), 1, 0, 2013)
s = socket.create_connection(("127.0.0.1", port), timeout=2)
s.settimeout(2)
s.sendall(hdr + msg)
data = b""
while len(data) < 4:
    chunk = s.recv(4096)
    if not chunk: sys.exit(1)
    data += chunk
total = struct.unpack("<i", data[:4])[0]
while len(data) < total:
    chunk = s.recv(4096)
    if not chunk: sys.exit(1)
    data += chunk
# ok field: double 1.0 (type 0x01) or int32 1 (0x10)
ok = (b"\x01ok\x00" + struct.pack("<d", 1.0)) in data or (b"\x10ok\x00" + struct.pack("<i", 1)) in data
sys.exit(0 if ok else 1)
PY
}

alive() { # pid
	kill -0 "$1" 2>/dev/null
}

start() {
	local dir=$1
	[ -x "$FERRETDB_BIN" ] || die "FerretDB binary not found at $FERRETDB_BIN (run scripts/deps.sh)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pid" ] && alive "$(cat "$dir/pid")"; then
		die "already running in $dir (pid $(cat "$dir/pid"), port $(cat "$dir/port" 2>/dev/null || echo '?'))"
	fi
	local log="$dir/ferretdb.log" port pid deadline extra=()
	if [ -n "${FERRETDB_PORT:-}" ]; then
		[[ "$FERRETDB_PORT" =~ ^[0-9]+$ ]] && [ "$FERRETDB_PORT" -ge 1 ] && [ "$FERRETDB_PORT" -le 65535 ] ||
			die "FERRETDB_PORT must be a port number, not '$FERRETDB_PORT'"
		port=$FERRETDB_PORT
	else
		port=$(free_port)
	fi
	if [ -n "${FERRETDB_ARGS:-}" ]; then
		read -r -a extra <<<"$FERRETDB_ARGS"
	fi
	: >"$log"
	# setsid: own process group, so the caller's Ctrl-C does not reach it
	# half-way and "stop" can signal it cleanly.
	setsid "$FERRETDB_BIN" \
		--handler=sqlite \
		--sqlite-url="file:$dir/" \
		--state-dir="$dir" \
		--listen-addr="127.0.0.1:$port" \
		--debug-addr=- \
		--telemetry=disable \
		--log-level=warn \
		"${extra[@]}" \
		</dev/null >>"$log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/pid"
	echo "$port" >"$dir/port"

	deadline=$((SECONDS + START_TIMEOUT))
	until ping "$port"; do
		if ! alive "$pid"; then
			echo "ferretdb.sh: FerretDB exited during start-up; last lines of $log:" >&2
			tail -n 20 "$log" >&2 || true
			rm -f "$dir/pid" "$dir/port"
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "ferretdb.sh: FerretDB did not answer a ping on 127.0.0.1:$port within ${START_TIMEOUT}s; last lines of $log:" >&2
			tail -n 20 "$log" >&2 || true
			stop "$dir" || true
			exit 1
		fi
		sleep 0.1
	done
	echo "$port"
}

stop() {
	local dir=$1 pid i
	[ -f "$dir/pid" ] || { echo "ferretdb.sh: no pid file in $dir, nothing to stop" >&2; return 0; }
	pid=$(cat "$dir/pid")
	[[ "$pid" =~ ^[0-9]+$ ]] || die "bad pid file $dir/pid"
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 50); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			echo "ferretdb.sh: pid $pid ignored TERM, sending KILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
			for i in $(seq 20); do
				alive "$pid" || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$dir/pid" "$dir/port"
}

[ $# -eq 2 ] || usage
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac
