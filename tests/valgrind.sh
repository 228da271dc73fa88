#!/usr/bin/env bash
# valgrind memcheck over a full up / down / up cycle against a real FerretDB:
# any memory error or definite leak fails the run.
set -euo pipefail

cd "$(dirname "$0")/.."
state=$(mktemp -d)
trap 'bash scripts/ferretdb.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
port=$(bash scripts/ferretdb.sh start "$state")

vg() {
	valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
		--show-leak-kinds=definite --track-origins=yes bin/migrate-init "$@"
}
url="mongodb://127.0.0.1:$port/valgrind"
export LOG_LEVEL=warn
for cmd in "up" "version" "down 2" "goto 5" "down -all" "up 2" "force 1" "drop -f"; do
	# shellcheck disable=SC2086
	if ! vg -path migrations-example -database "$url" $cmd >/dev/null; then
		echo "valgrind: '$cmd' failed" >&2
		exit 1
	fi
done
# Error paths too: a bad source, and an unreachable database.
bad=$(mktemp -d)
echo '{"not": "an array"}' >"$bad/1_bad.up.json"
rc=0; vg -path "$bad" -database "$url" up 2>/dev/null || rc=$?
[ "$rc" = 3 ] || { echo "valgrind: bad source exited $rc, want 3" >&2; exit 1; }
rc=0; MAX_RETRIES=2 RETRY_INTERVAL=10ms vg -path migrations-example \
	-database "mongodb://127.0.0.1:1/x?serverSelectionTimeoutMS=200&connectTimeoutMS=200" up 2>/dev/null || rc=$?
[ "$rc" = 4 ] || { echo "valgrind: unreachable database exited $rc, want 4" >&2; exit 1; }
rm -rf "$bad"
echo "valgrind: 10 passed, 0 failed"
