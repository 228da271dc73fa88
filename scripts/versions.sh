# Versions of the external components, and where their builds are cached.
# Sourced by the other scripts; the cache lives outside the repository so a
# fresh clone reuses it.
FERRETDB_VERSION=v1.24.2
MIGRATE_VERSION=v4.20.1
MI_CACHE=${MI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migrate-init}
FERRETDB_BIN="$MI_CACHE/ferretdb-$FERRETDB_VERSION/ferretdb"
MIGRATE_BIN="$MI_CACHE/migrate-$MIGRATE_VERSION/migrate"
