#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, then unit
# tests, the end-to-end suite (plain and ASan+UBSan builds), valgrind, the
# artifact tests, the arm64 build under qemu and the Kubernetes scenarios.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -s format-check

# On a cold machine the Kubernetes and Helm compiles take about 15 minutes,
# the arm64 prefix and the registry about 8 more; nothing needs them before
# `make test-arm64` and `make test-k8s`, at the end (`make test` is
# test-local, test-arm64, test-k8s). So they start now, at nice 19:
# under CFS that gives it the CPU the suites leave idle (they mostly wait on
# the database) and about 1.5 % of a core they want. When cached,
# this is a no-op. test-arm64 and test-k8s start only once the jobs have
# ended (their own builds then find everything cached, or build what a job
# could not). The apt and Go module downloads (`fetch`, cheap) happen here
# first, so that nothing in the background touches apt while the suites might.
bash scripts/k8s.sh fetch
ARCH=arm64 bash scripts/build-static.sh fetch
mkdir -p build
setsid nice -n 19 bash -c 'bash scripts/k8s.sh build && bash scripts/helm.sh build' \
	>build/k8s-build.log 2>&1 &
k8s_build=$!
setsid nice -n 19 bash -c 'ARCH=arm64 bash scripts/build-static.sh deps && bash scripts/registry.sh build' \
	>build/arm64-build.log 2>&1 &
arm64_build=$!
trap 'kill -- -"$k8s_build" -"$arm64_build" 2>/dev/null || true' EXIT
make test-local
wait "$arm64_build" || echo "test.sh: the background build failed (build/arm64-build.log); test-arm64 builds again" >&2
make test-arm64
wait "$k8s_build" || echo "test.sh: the background build failed (build/k8s-build.log); test-k8s builds again" >&2
make test-k8s
