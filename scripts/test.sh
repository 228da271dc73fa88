#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, then unit
# tests, the end-to-end suite (plain and ASan+UBSan builds) and valgrind.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -s format-check
make test
