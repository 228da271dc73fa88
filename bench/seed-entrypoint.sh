#!/bin/sh
# ---------------------------------------------------------------------------
# bench/seed-entrypoint.sh: the seed article's migrate-entrypoint.sh, copied
# verbatim (everything below this comment block, from "# migrate-entrypoint.sh"
# on) from "Database Schema Migrations with golang-migrate in Kubernetes" by
# Torstein Skulbru, 2025-06-20, section "Creating a Migration Docker Image"
# (/work/shared/seed/golang-migrate-mongodb-kubernetes.md). It is what
# migrate-init replaces; `make bench` (bench/bench.py) runs it around the
# golang-migrate CLI, put on PATH as `migrate`, for the entrypoint-flow
# comparison. Not used by migrate-init itself; do not edit it.
# ---------------------------------------------------------------------------
# migrate-entrypoint.sh

set -e

# Default values
MIGRATION_DIR=${MIGRATION_DIR:-"/root/migrations"}
MAX_RETRIES=${MAX_RETRIES:-30}
RETRY_INTERVAL=${RETRY_INTERVAL:-2}

if [ -z "$DATABASE_URL" ]; then
    echo "ERROR: DATABASE_URL environment variable is required"
    exit 1
fi

echo "Starting MongoDB migration process..."
echo "Migration directory: $MIGRATION_DIR"
echo "Database URL: ${DATABASE_URL%/*}/***"

# Wait for MongoDB to be ready
echo "Waiting for MongoDB to be ready..."
for i in $(seq 1 $MAX_RETRIES); do
    if migrate -path "$MIGRATION_DIR" -database "$DATABASE_URL" version > /dev/null 2>&1; then
        echo "MongoDB is ready"
        break
    fi
    
    if [ $i -eq $MAX_RETRIES ]; then
        echo "ERROR: MongoDB not ready after $MAX_RETRIES attempts"
        exit 1
    fi
    
    echo "Attempt $i/$MAX_RETRIES: MongoDB not ready, waiting ${RETRY_INTERVAL}s..."
    sleep $RETRY_INTERVAL
done

# Get current migration status
echo "Checking current migration status..."
CURRENT_VERSION=$(migrate -path "$MIGRATION_DIR" -database "$DATABASE_URL" version 2>/dev/null || echo "nil")
echo "Current migration version: $CURRENT_VERSION"

# Apply migrations
echo "Applying migrations..."
if migrate -path "$MIGRATION_DIR" -database "$DATABASE_URL" up; then
    echo "Migrations applied successfully"
    
    # Get final version
    FINAL_VERSION=$(migrate -path "$MIGRATION_DIR" -database "$DATABASE_URL" version 2>/dev/null || echo "unknown")
    echo "Final migration version: $FINAL_VERSION"
else
    echo "ERROR: Migration failed"
    exit 1
fi

echo "Migration process completed successfully"
