#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, then unit
# tests, the end-to-end suite (plain and ASan+UBSan builds), valgrind, the
# artifact tests and the Kubernetes scenarios.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -s format-check

# On a cold machine the Kubernetes compile takes about 10 minutes; nothing
# needs it before `make test-k8s`, at the end. So it starts now, at nice 19:
# under CFS that gives it the CPU the suites leave idle (they mostly wait on
# the database) and about 1.5 % of a core they want. test-k8s's own
# `k8s.sh build` then waits for it (a lock) or finds it done; when cached,
# this is a no-op.
# Its apt and Go module downloads (`fetch`, cheap) happen here first, so that
# nothing in the background touches apt while the suites might.
bash scripts/k8s.sh fetch
mkdir -p build
setsid nice -n 19 bash scripts/k8s.sh build >build/k8s-build.log 2>&1 &
k8s_build=$!
trap 'kill -- -"$k8s_build" 2>/dev/null || true' EXIT
make test
