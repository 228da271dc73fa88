#!/usr/bin/env bash
# The main job on an embedded default: install what is missing, build,
# start a throwaway FerretDB on 127.0.0.1, apply migrations-example with
# migrate-init as an initContainer would (entrypoint mode, configured from
# the environment), print the version, and stop FerretDB again.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -s

state=$(mktemp -d)
trap 'bash scripts/ferretdb.sh stop "$state" >/dev/null 2>&1 || true; rm -rf "$state"' EXIT
port=$(bash scripts/ferretdb.sh start "$state")
echo "demo: FerretDB listening on 127.0.0.1:$port" >&2

export DATABASE_URL="mongodb://127.0.0.1:$port/demo"
export MIGRATION_DIR="$PWD/migrations-example"
export TERMINATION_MESSAGE_PATH="$state/termination-log"
export LOG_FORMAT=${LOG_FORMAT:-text}

bin/migrate-init
echo "demo: version now: $(bin/migrate-init version)" >&2
