#!/usr/bin/env bash
# The main job on an embedded default: install what is missing, build,
# start a throwaway FerretDB on 127.0.0.1, apply migrations-example with
# migrate-init as an initContainer would (entrypoint mode, configured from
# the environment), print the version; then, as a second step, the central
# layout migrations-example/central (three services, each in its own
# database, in dependency order); and stop FerretDB again.
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

# Step 2: one repository, many services. The URL names no database: each
# service's registry says which one is its own.
export DATABASE_URL="mongodb://127.0.0.1:$port/"
export MIGRATION_DIR="$PWD/migrations-example/central"
bin/migrate-init
echo "demo: central layout:" >&2
bin/migrate-init status >&2
