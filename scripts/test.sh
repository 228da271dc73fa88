#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, then unit
# tests, the end-to-end suite (plain and ASan+UBSan builds), valgrind, the
# artifact tests and the Kubernetes scenarios.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -s format-check

# On a cold machine the Kubernetes and Helm compiles take about 15 minutes;
# nothing needs them before `make test-k8s`, at the end (`make test` is
# test-local, then test-k8s). So they start now, at nice 19:
# under CFS that gives it the CPU the suites leave idle (they mostly wait on
# the database) and about 1.5 % of a core they want. When cached,
# this is a no-op. test-k8s starts only once the job has ended (its own
# builds then find everything cached, or build what the job could not).
# Its apt and Go module downloads (`fetch`, cheap) happen here first, so that
# nothing in the background touches apt while the suites might.
bash scripts/k8s.sh fetch
mkdir -p build
setsid nice -n 19 bash -c 'bash scripts/k8s.sh build && bash scripts/helm.sh build' \
	>build/k8s-build.log 2>&1 &
k8s_build=$!
trap 'kill -- -"$k8s_build" 2>/dev/null || true' EXIT
make test-local
wait "$k8s_build" || echo "test.sh: the background build failed (build/k8s-build.log); test-k8s builds again" >&2
make test-k8s
