# Versions of the external components, and where their builds are cached.
# Sourced by the other scripts; the cache lives outside the repository so a
# fresh clone reuses it.
FERRETDB_VERSION=v1.24.2
MIGRATE_VERSION=v4.20.1
MI_CACHE=${MI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/migrate-init}
FERRETDB_BIN="$MI_CACHE/ferretdb-$FERRETDB_VERSION/ferretdb"
MIGRATE_BIN="$MI_CACHE/migrate-$MIGRATE_VERSION/migrate"
# The distribution project's registry, for the multi-platform image test only
# (scripts/registry.sh; built from the Go module proxy, cached by version).
REGISTRY_VERSION=v3.1.2
REGISTRY_BIN="$MI_CACHE/registry-$REGISTRY_VERSION/registry"

# The fully static musl build (`make static`, scripts/build-static.sh): the
# Debian source packages it compiles with musl-gcc, pinned, and the prefix they
# are installed into, keyed by their versions. Bump a version when Debian
# publishes a new one (`apt-cache showsrc openssl | grep ^Version` once the
# deb-src entry exists); bump STATIC_BUILD_REV when the build recipe (configure
# options, flags) in build-static.sh changes. Either gives a new prefix, built
# once on first use; old ones can be deleted by hand.
STATIC_OPENSSL_VERSION=${STATIC_OPENSSL_VERSION:-3.0.20-1~deb12u2}
STATIC_MONGOC_VERSION=${STATIC_MONGOC_VERSION:-1.23.1-1+deb12u3}
STATIC_YAML_VERSION=${STATIC_YAML_VERSION:-0.2.5-1}
STATIC_BUILD_REV=4
STATIC_PREFIX="$MI_CACHE/static-openssl_$STATIC_OPENSSL_VERSION-mongoc_$STATIC_MONGOC_VERSION-yaml_$STATIC_YAML_VERSION-r$STATIC_BUILD_REV"
# `make static ARCH=arm64`: the same libraries cross-compiled for aarch64,
# plus musl itself (Debian packages no musl for aarch64 on amd64; it is built
# from this source package, the version of bookworm's musl-dev), in a prefix
# of its own keyed by the architecture and all four versions.
STATIC_MUSL_VERSION=${STATIC_MUSL_VERSION:-1.2.3-1}
STATIC_PREFIX_ARM64="$MI_CACHE/static-arm64-openssl_$STATIC_OPENSSL_VERSION-mongoc_$STATIC_MONGOC_VERSION-yaml_$STATIC_YAML_VERSION-musl_$STATIC_MUSL_VERSION-r$STATIC_BUILD_REV"

# A real single-node Kubernetes for the tests (scripts/k8s.sh): kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet and kubectl built from the
# Go module proxy (k8s.io/kubernetes at this version, through a wrapper
# module), plus the pause image from the module's build/pause/linux/pause.c;
# containerd, runc, the CNI plugins and etcd come from Debian. 1.34.x pairs
# with bookworm's containerd 1.6 (no CRI RuntimeConfig call: the kubelet falls
# back to its config file, which 1.38 will stop doing). The build (5-13 min
# on 2 cores, depending on load) is cached in K8S_CACHE, keyed by version; bump K8S_BUILD_REV
# when the build recipe in k8s.sh changes (the binaries are then rebuilt in
# place). Old version directories can be deleted by hand.
K8S_VERSION=${K8S_VERSION:-v1.34.4}
K8S_BUILD_REV=1
K8S_CACHE="$MI_CACHE/k8s-$K8S_VERSION"

# Helm for the chart's tests (scripts/helm.sh build): `go install
# helm.sh/helm/v3/cmd/helm@HELM_VERSION` from the Go module proxy, the
# version stamped in as helm's own Makefile does; cached in HELM_DIR, keyed
# by version (a few minutes cold on 2 cores, once).
HELM_VERSION=${HELM_VERSION:-v3.22.0}
HELM_DIR="$MI_CACHE/helm-$HELM_VERSION"
HELM_BIN="$HELM_DIR/helm"

# The test cluster's DNS (scripts/k8s.sh, issue #20): CoreDNS from the Go
# module proxy (its go.mod has no replace directives, so plain `go install`
# works), serving cluster.local from the API and nothing upstream. Built by
# `k8s.sh build` with the Kubernetes binaries, cached here keyed by version.
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
COREDNS_BIN="$MI_CACHE/coredns-$COREDNS_VERSION/coredns"
