#!/usr/bin/env bash
# Helm for the chart (charts/migrate-init) and its tests.
#
#   scripts/helm.sh build          build helm $HELM_VERSION from the Go module
#                                  proxy into $HELM_DIR (once per version; then
#                                  nothing); prints the binary's path
#   scripts/helm.sh path           the binary's path (fails if not built)
#   scripts/helm.sh DIR ARGS...    helm against the cluster of scripts/k8s.sh
#                                  DIR, inside its network namespace (as
#                                  `k8s.sh kubectl DIR` runs kubectl), with
#                                  helm's caches and config under DIR/helm
#
# helm's module has no replace directives, so a plain `go install
# module/cmd/helm@version` builds it; the ldflags are the ones helm's own
# Makefile sets for a release (the version `helm version` reports).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"
export PATH="$PATH:/usr/local/go/bin"

build() {
	if [ -x "$HELM_BIN" ]; then
		echo "$HELM_BIN"
		return 0
	fi
	echo "helm: building helm.sh/helm/v3/cmd/helm@$HELM_VERSION (cached in $HELM_DIR)" >&2
	local t0=$SECONDS gomod minor flags
	# The Kubernetes version `helm template` and `helm lint` assume (without
	# it: 1.20, which a chart's kubeVersion >=1.29 refuses) is the client-go
	# minor helm was built with, as its Makefile sets it.
	gomod=$(cd "$(mktemp -d)" && go mod download -json "helm.sh/helm/v3@$HELM_VERSION" |
		sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
	[ -n "$minor" ] || { echo "helm: no k8s.io/client-go version in $gomod" >&2; return 1; }
	flags="-w -s -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
	flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	for v in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
		flags+=" -X $v.k8sVersionMajor=1 -X $v.k8sVersionMinor=$minor"
	done
	rm -rf "$HELM_DIR.tmp"
	mkdir -p "$HELM_DIR.tmp"
	GOBIN="$HELM_DIR.tmp" CGO_ENABLED=0 nice -n 19 go install -trimpath -ldflags "$flags" \
		"helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
	rm -rf "$HELM_DIR"
	mv "$HELM_DIR.tmp" "$HELM_DIR"
	echo "helm: built in $((SECONDS - t0)) s" >&2
	echo "$HELM_BIN"
}

in_cluster() {
	local dir=$1
	shift
	[ -x "$HELM_BIN" ] || { echo "helm: not built; run scripts/helm.sh build" >&2; exit 2; }
	dir=$(cd "$dir" && pwd)
	mkdir -p "$dir/helm"
	# k8s.sh exec sets KUBECONFIG and runs inside the cluster's netns.
	exec bash "$here/k8s.sh" exec "$dir" env \
		HELM_CACHE_HOME="$dir/helm/cache" HELM_CONFIG_HOME="$dir/helm/config" \
		HELM_DATA_HOME="$dir/helm/data" "$HELM_BIN" "$@"
}

case "${1:-}" in
build) build ;;
path) [ -x "$HELM_BIN" ] && echo "$HELM_BIN" || { echo "helm: not built" >&2; exit 1; } ;;
"" | -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d' >&2; exit 2 ;;
*) in_cluster "$@" ;;
esac
