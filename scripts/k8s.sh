#!/usr/bin/env bash
# A real single-node Kubernetes for the tests, built and run on this machine
# alone: no registry, no kind/k3s download, no traffic off the machine.
#
#   scripts/k8s.sh fetch            Debian packages, the Go modules, the wrapper
#                                   module and the pause image: everything but
#                                   the compile (cheap)
#   scripts/k8s.sh build            CoreDNS (COREDNS_VERSION, cached on its own;
#                                   ~8 min cold at nice 19 on a loaded 2-core
#                                   machine), fetch, then compile kube-apiserver,
#                                   kube-controller-manager, kube-scheduler,
#                                   kubelet and kubectl (once per version: 5-13
#                                   min on 2 cores at nice 19, 2 GB RAM a link;
#                                   ~25 s with Go's build cache warm; then nothing)
#   scripts/k8s.sh up DIR           start a cluster whose state lives in DIR (~9 s);
#                                   on stdout KUBECONFIG, KUBECTL, NETNS, NODE_IP,
#                                   NODE_NAME, K8S_VERSION as KEY=VALUE lines (also
#                                   in DIR/cluster.info); waits for the node Ready
#   scripts/k8s.sh down DIR         stop it and remove every trace (idempotent,
#                                   also after a failed or interrupted up)
#   scripts/k8s.sh import DIR IMAGE.tar...  load `docker save` tarballs into
#                                   the cluster's containerd (namespace k8s.io)
#   scripts/k8s.sh kubectl DIR ARGS...      kubectl, as cluster admin, inside the netns
#   scripts/k8s.sh exec DIR CMD...          any command inside the netns (a
#                                   database for the pods: listen on $NODE_IP),
#                                   with KUBECONFIG set and kubectl on PATH
#   scripts/k8s.sh stats DIR        RSS and peak RSS (VmHWM) of every process
#                                   of the cluster, and the totals
#   scripts/k8s.sh image REF ROOTFS OUT.tar USER ENTRYPOINT...
#                                   pack directory ROOTFS as a FROM-scratch image
#                                   (docker-archive format, as `docker save`)
#
# Why it looks like this (the facts are in shared/KUBERNETES.md):
#  * Kubernetes comes from the Go module proxy. `go install k8s.io/kubernetes/
#    cmd/...@v` is refused (the module has replace directives), so a wrapper
#    module in $K8S_CACHE/src requires k8s.io/kubernetes and replaces each
#    staging module (the left side of its replace block, read from its .mod
#    file) by that module at the matching v0.x.y version.
#  * containerd (1.6), runc, the CNI plugins and etcd (3.4) are Debian's.
#  * Test traffic may only go to loopback or to addresses inside network
#    namespaces we create. So the whole cluster (etcd, apiserver, containerd,
#    kubelet, controller-manager, scheduler, the pods' bridge) lives in one
#    netns of its own with no link to the host and no default route, and
#    resolv.conf there names no reachable nameserver. A database for the pods
#    runs in the same netns (`exec`) and listens on NODE_IP.
#  * The components share one mount namespace (a slave of the host's), held
#    by an "anchor" process: the kubelet's volume mounts must be visible to
#    containerd, and `ip netns exec` would give each command a namespace of
#    its own (and a /sys without the cgroup mounts). In it, tmpfs hides /run
#    and /var/log, and DIR/cni/var-lib hides /var/lib/cni, so containerd's
#    shim sockets, runc state, pod network namespaces, CNI caches and the
#    kubelet's /var/log/containers links never touch the host, and die with
#    the namespace. The kubelet's wanted kernel sysctls are files bound over
#    /proc/sys there, so it never changes the host's (see make_configs).
#  * The cluster DNS is CoreDNS, a process of the cluster like the API
#    server, on NODE_IP:53 (the kubelet's clusterDNS): cluster.local from the
#    API, every other name NXDOMAIN, nothing forwarded. Pods get the usual
#    resolv.conf (search NS.svc.cluster.local svc.cluster.local
#    cluster.local, ndots:5); the components themselves keep the netns's.
#  * Pods' cgroups go under a cgroup root of the cluster's own (/mik8s-ID), so
#    clusters can run side by side and down can find and remove them.
#
# Environment (optional): MI_K8S_UP_TIMEOUT (s, default 120), MI_K8S_KEEP=1
# (keep a failed up's cluster for inspection), MI_K8S_STOP_GRACE (s between
# SIGTERM and SIGKILL in down, default 2). Needs root.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

export PATH="$PATH:/usr/local/go/bin"
K8S_BIN="$K8S_CACHE/bin"
K8S_SRC="$K8S_CACHE/src"
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
PAUSE_TAR="$K8S_CACHE/pause-image.tar"
PAUSE_REF_FILE="$K8S_CACHE/pause-image.ref"

# Addresses: all of them exist only inside the cluster's netns (198.18.0.0/15
# is the benchmarking range, RFC 2544, never routed). The bridge carries the
# node IP, which is also the pods' gateway, so a pod reaches a database on
# the node IP through the bridge; pods get addresses from .16 up. There is no
# kube-proxy: service IPs (SERVICE_CIDR) exist in the API only.
NODE_IP=198.18.0.1
POD_SUBNET=198.18.0.0/24
POD_RANGE_START=198.18.0.16
SERVICE_CIDR=198.18.1.0/24
SERVICE_IP=198.18.1.1
BRIDGE=mik8s0
NODE_NAME=mik8s-node
CONTAINERD_SOCK=/run/containerd/containerd.sock # inside the private /run

say() { printf 'k8s.sh: %s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
need_root() { [ "$(id -u)" -eq 0 ] || die "$1 needs root (network namespaces, mounts, cgroups)"; }

# ---------------------------------------------------------------- packages

apt_packages=(containerd runc containernetworking-plugins etcd-server iproute2 openssl util-linux curl gcc libc6-dev python3)

deps() {
	local missing=() p
	for p in "${apt_packages[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		need_root "installing ${missing[*]}"
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
	command -v go >/dev/null || die "go not found (expected in /usr/local/go/bin)"
}

# ------------------------------------------------------------ fetch, build

# One field of `go mod download -json`'s output.
json_field() { # field
	sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p"
}

# The wrapper module: requires k8s.io/kubernetes and replaces every module
# that k8s.io/kubernetes replaces by a local path (its staging/ modules,
# which the proxy serves on their own at v0.MINOR.PATCH) with that module at
# the staging version. A replace to another module version is copied as is.
# The go and godebug lines are k8s.io/kubernetes' own, so the binaries get
# the runtime defaults upstream builds get.
write_wrapper() { # kubernetes.mod
	local mod=$1 staging="v0.${K8S_VERSION#v1.}" replaces n
	replaces=$(awk -v staging="$staging" '
		function emit(lhs, rhs) {
			if (rhs ~ /^\.\.?\//) printf "\t%s => %s %s\n", lhs, lhs, staging
			else printf "\t%s => %s\n", lhs, rhs
		}
		/^replace[[:space:]]*\(/ { inblock = 1; next }
		inblock && /^\)/ { inblock = 0; next }
		inblock && $2 == "=>" { rhs = $3; for (i = 4; i <= NF; i++) rhs = rhs " " $i; emit($1, rhs); next }
		/^replace[[:space:]]/ && $3 == "=>" { rhs = $4; for (i = 5; i <= NF; i++) rhs = rhs " " $i; emit($2, rhs) }
	' "$mod")
	n=$(printf '%s\n' "$replaces" | grep -c '=>' || true)
	[ "$n" -gt 0 ] || die "no replace directives found in $mod (has the module layout changed?)"
	mkdir -p "$K8S_SRC"
	{
		echo "// Generated by scripts/k8s.sh from $(basename "$mod"); do not edit."
		echo "module migrate-init.local/k8s-build"
		echo
		grep -E '^(go|godebug|toolchain)[[:space:]]' "$mod"
		echo
		echo "require k8s.io/kubernetes $K8S_VERSION"
		echo
		echo "replace ("
		printf '%s\n' "$replaces"
		echo ")"
	} >"$K8S_SRC/go.mod.new"
	{
		echo "//go:build tools"
		echo
		echo "// Package tools names the commands scripts/k8s.sh builds, so that go mod"
		echo "// tidy records every module they need."
		echo "package tools"
		echo
		echo "import ("
		local c
		for c in "${K8S_COMMANDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
		echo ")"
	} >"$K8S_SRC/tools.go"
	# Keep go.sum and the tidied go.mod when nothing changed (a warm run
	# then needs no network at all).
	if [ -f "$K8S_SRC/go.mod.gen" ] && cmp -s "$K8S_SRC/go.mod.new" "$K8S_SRC/go.mod.gen" && [ -f "$K8S_SRC/go.sum" ]; then
		rm -f "$K8S_SRC/go.mod.new"
		return 0
	fi
	say "wrapper module: k8s.io/kubernetes $K8S_VERSION with $n staging replacements ($staging); go mod tidy"
	cp "$K8S_SRC/go.mod.new" "$K8S_SRC/go.mod"
	rm -f "$K8S_SRC/go.sum"
	(cd "$K8S_SRC" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod tidy) ||
		die "go mod tidy failed in $K8S_SRC"
	mv "$K8S_SRC/go.mod.new" "$K8S_SRC/go.mod.gen"
}

# The pause binary, as upstream builds it (build/pause/Makefile: -Os -static),
# packed as a FROM-scratch image that runs as 65535 like upstream's.
build_pause() { # module dir
	local moddir=$1 tag tmp
	[ -s "$PAUSE_TAR" ] && [ -s "$PAUSE_REF_FILE" ] && return 0
	tag=$(sed -n 's/^TAG[[:space:]]*?=[[:space:]]*//p' "$moddir/build/pause/Makefile" | head -n1)
	[ -n "$tag" ] || die "no TAG in $moddir/build/pause/Makefile"
	tmp=$(mktemp -d)
	mkdir "$tmp/root"
	gcc -Os -Wall -Werror -static -DVERSION="v$tag-migrate-init" \
		-o "$tmp/root/pause" "$moddir/build/pause/linux/pause.c" ||
		die "compiling pause.c failed"
	strip "$tmp/root/pause"
	chmod 0755 "$tmp/root/pause"
	image_pack "localhost/migrate-init/pause:$tag" "$tmp/root" "$PAUSE_TAR.tmp" 65535:65535 /pause
	mv "$PAUSE_TAR.tmp" "$PAUSE_TAR"
	echo "localhost/migrate-init/pause:$tag" >"$PAUSE_REF_FILE"
	rm -rf "$tmp"
	say "pause image localhost/migrate-init/pause:$tag in $PAUSE_TAR"
}

fetch() {
	deps
	mkdir -p "$K8S_CACHE"
	local json moddir gomod tmp
	# Outside any module, so that no go.mod of the caller's takes part.
	tmp=$(mktemp -d)
	json=$(cd "$tmp" && GOTOOLCHAIN=local go mod download -json "k8s.io/kubernetes@$K8S_VERSION") ||
		die "go mod download k8s.io/kubernetes@$K8S_VERSION failed"
	rmdir "$tmp"
	moddir=$(printf '%s\n' "$json" | json_field Dir)
	gomod=$(printf '%s\n' "$json" | json_field GoMod)
	[ -d "$moddir" ] && [ -f "$gomod" ] || die "k8s.io/kubernetes@$K8S_VERSION: module directory or .mod file not found"
	printf '%s\n' "$json" | json_field Info >"$K8S_CACHE/module.info.path"
	write_wrapper "$gomod"
	build_pause "$moddir"
}

built() {
	local c
	for c in "${K8S_COMMANDS[@]}"; do [ -x "$K8S_BIN/$c" ] || return 1; done
	[ "$(cat "$K8S_BIN/BUILD_REV" 2>/dev/null)" = "$K8S_BUILD_REV" ] && [ -s "$PAUSE_TAR" ]
}

# CoreDNS, the cluster DNS the kubelet names in every pod's resolv.conf
# (issue #20). Its go.mod has no replace directives: `go install` builds it.
# The default plugin set includes kubernetes; cached in COREDNS_BIN's
# directory, keyed by version, under a lock of its own.
coredns_build() {
	local dir t0
	dir=$(dirname "$COREDNS_BIN")
	[ -x "$COREDNS_BIN" ] && return 0
	mkdir -p "$MI_CACHE"
	exec 6>"$dir.lock"
	flock 6
	if [ ! -x "$COREDNS_BIN" ]; then
		say "building CoreDNS $COREDNS_VERSION at nice 19 (first time: a few minutes; cached in $dir)"
		t0=$(now_ms)
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		(cd "$dir.tmp" && GOBIN="$dir.tmp" CGO_ENABLED=0 GOTOOLCHAIN=local \
			nice -n 19 go install -p 2 -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION") ||
			die "go install github.com/coredns/coredns@$COREDNS_VERSION failed"
		"$dir.tmp/coredns" -plugins | grep -Eqx '[[:space:]]*(dns\.)?kubernetes' ||
			die "CoreDNS $COREDNS_VERSION was built without the kubernetes plugin"
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
		say "built CoreDNS $COREDNS_VERSION in $(secs_since "$t0") s"
	fi
	exec 6>&-
}

build() {
	coredns_build
	if built; then
		say "reusing $K8S_BIN ($K8S_VERSION)"
		return 0
	fi
	mkdir -p "$MI_CACHE"
	# One build per version at a time; a second caller waits and reuses.
	exec 8>"$MI_CACHE/k8s-$K8S_VERSION.lock"
	flock -n 8 || {
		say "waiting for another build of $K8S_VERSION ($MI_CACHE/k8s-$K8S_VERSION.lock)"
		flock 8
	}
	if built; then
		say "reusing $K8S_BIN ($K8S_VERSION)"
		return 0
	fi
	fetch
	local minor date pkgs=() c ld v
	minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	# The module's publication time as build date: the same inputs give the
	# same binaries.
	date=$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$(cat "$K8S_CACHE/module.info.path")" 2>/dev/null || true)
	ld="-s -w"
	for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
		[ -z "$date" ] || ld+=" -X $v.buildDate=$date"
	done
	for c in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	say "building ${K8S_COMMANDS[*]} $K8S_VERSION at nice 19, -p 2 (first time: ~8-13 min, 2-3 GB RAM; cached in $K8S_BIN)"
	rm -rf "$K8S_BIN.tmp"
	mkdir -p "$K8S_BIN.tmp"
	# CGO_ENABLED=0: static binaries, as upstream ships them. One go build
	# for all five shares the compile of the packages they have in common.
	(cd "$K8S_SRC" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod \
		nice -n 19 go build -p 2 -trimpath -ldflags "$ld" -o "$K8S_BIN.tmp/" "${pkgs[@]}") ||
		die "go build failed (wrapper module: $K8S_SRC)"
	for c in "${K8S_COMMANDS[@]}"; do
		[ -x "$K8S_BIN.tmp/$c" ] || die "go build produced no $c"
	done
	"$K8S_BIN.tmp/kubelet" --version | grep -qF "$K8S_VERSION" ||
		die "kubelet --version does not say $K8S_VERSION: $("$K8S_BIN.tmp/kubelet" --version 2>&1)"
	echo "$K8S_BUILD_REV" >"$K8S_BIN.tmp/BUILD_REV"
	rm -rf "$K8S_BIN"
	mv "$K8S_BIN.tmp" "$K8S_BIN"
	say "built $K8S_VERSION in $K8S_BIN ($(du -sh "$K8S_BIN" | cut -f1))"
}

# ------------------------------------------------------------------- image

# A FROM-scratch image as `docker save` writes it (manifest.json, config,
# one layer), which `ctr images import` understands: no Docker needed.
# Deterministic: files sorted, owned by 0:0, mtime 0.
image_pack() { # ref rootfs out user entrypoint...
	[ $# -ge 5 ] || die "usage: image REF ROOTFS OUT.tar USER ENTRYPOINT..."
	local ref=$1 root=$2 out=$3 user=$4
	shift 4
	[ -d "$root" ] || die "image: $root is not a directory"
	python3 - "$ref" "$root" "$out" "$user" "$@" <<'PY'
import hashlib, io, json, os, sys, tarfile
ref, root, out, user = sys.argv[1:5]
entrypoint = sys.argv[5:]

def clean(ti):
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    ti.mtime = 0
    return ti

paths = []
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        paths.append(os.path.join(dirpath, name))
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for p in sorted(paths):
        ti = clean(tf.gettarinfo(p, os.path.relpath(p, root)))
        if ti.isreg():
            with open(p, "rb") as f:
                tf.addfile(ti, f)
        else:
            tf.addfile(ti)
layer = layer.getvalue()
diff_id = hashlib.sha256(layer).hexdigest()
config = json.dumps({
    "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
    "config": {"User": user, "Entrypoint": entrypoint, "Env": ["PATH=/"]},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "scripts/k8s.sh image"}],
}, sort_keys=True).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": config_name, "RepoTags": [ref], "Layers": [diff_id + "/layer.tar"]}]).encode()
with tarfile.open(out, mode="w", format=tarfile.PAX_FORMAT) as tf:
    for name, data in ((diff_id + "/layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
        ti = clean(tarfile.TarInfo(name))
        ti.size = len(data)
        ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(data))
PY
}


# ------------------------------------------------------------ cluster state

# DIR/cluster.env records, as soon as it exists, everything down must undo,
# and what import, kubectl and exec need; sourced by them.
state_set() { # key value
	printf '%s=%q\n' "$1" "$2" >>"$DIR/cluster.env"
	# ... and in this shell: a failed up takes the cluster down itself.
	printf -v "$1" '%s' "$2"
}

# The cluster directory, absolute; refused where the private mounts would
# hide it or where a path would need quoting in YAML or TOML.
set_dir() { # dir
	[ -d "$1" ] || die "$1 is not a directory"
	DIR=$(cd "$1" && pwd -P)
	[[ $DIR =~ ^/[A-Za-z0-9._/+@-]+$ ]] ||
		die "cluster directory '$DIR': use letters, digits and ._/+@- only (it goes into YAML and TOML files)"
	case $DIR/ in
	/run/* | /var/run/* | /var/log/* | /var/lib/cni/* | /proc/* | /sys/* | /dev/*)
		die "cluster directory '$DIR' is under a path the cluster's mount namespace replaces or hides" ;;
	esac
	[ ${#DIR} -le 60 ] || die "cluster directory '$DIR' is too long (max 60 characters: socket paths are limited)"
}

load_state() { # dir
	set_dir "$1"
	[ -f "$DIR/cluster.env" ] || die "no cluster in $DIR (run: scripts/k8s.sh up $DIR)"
	# shellcheck disable=SC1091
	. "$DIR/cluster.env"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}
secs_since() { # start_ms
	local d=$(($(now_ms) - $1))
	printf '%d.%01d' $((d / 1000)) $((d % 1000 / 100))
}

# Every cgroup hierarchy: the v1 controllers, the hybrid unified one, or the
# one v2 tree.
cgroup_hierarchies() {
	findmnt -rn -t cgroup,cgroup2 -o TARGET
}

# Host directories the clusters need (/etc/netns for `ip netns exec`,
# /var/lib/cni as a mount point) are made by the first cluster that finds
# them missing and removed, when empty, by the last one to go down: their
# names are kept in $MI_CACHE/k8s-host-dirs, and a lock keeps an up and a
# down of two clusters from crossing.
host_lock() {
	mkdir -p "$MI_CACHE"
	exec 7>"$MI_CACHE/k8s-host.lock"
	flock 7
}
host_unlock() { exec 7>&-; }
host_dir() { # dir
	[ -d "$1" ] && return 0
	mkdir -p "$1"
	echo "$1" >>"$MI_CACHE/k8s-host-dirs"
}
release_host_dirs() {
	local d
	host_lock
	if ! compgen -G '/etc/netns/mik8s-*' >/dev/null && [ -f "$MI_CACHE/k8s-host-dirs" ]; then
		sort -ru "$MI_CACHE/k8s-host-dirs" | while read -r d; do rmdir "$d" 2>/dev/null || true; done
		rm -f "$MI_CACHE/k8s-host-dirs"
	fi
	host_unlock
}

# The cluster's processes: everything in its mount namespace (components,
# shims) or network namespace (a database started with exec), and everything
# in its cgroups (the pods' containers). Never our own shell.
cluster_pids() {
	{
		if [ -n "${MNT_NS:-}${NET_NS:-}" ]; then
			find /proc/[0-9]*/ns -maxdepth 1 \( -name mnt -o -name net \) -printf '%p %l\n' 2>/dev/null |
				awk -v m="${MNT_NS:-x}" -v n="${NET_NS:-x}" '$2 == m || $2 == n { split($1, a, "/"); print a[3] }'
		fi
		if [ -n "${CGROUP_NAME:-}" ]; then
			local h
			for h in $(cgroup_hierarchies); do
				[ -d "$h/$CGROUP_NAME" ] && find "$h/$CGROUP_NAME" -name cgroup.procs -exec cat {} + 2>/dev/null
			done
		fi
	} | sort -un | grep -vx "$$" || true
}

# In the cluster's network and mount namespaces, with an environment of our
# own: no proxy variable, no KUBECONFIG of the caller's.
CLEAN_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 NO_PROXY='*' no_proxy='*')
in_ns() { nsenter --target "$ANCHOR_PID" --mount --net -- "${CLEAN_ENV[@]}" "$@"; }
kc() { in_ns "$K8S_BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------------- up

# CA and certificates (ECDSA P-256: fast to make, accepted everywhere),
# service-account key pair, kubeconfigs.
make_pki() {
	local pki=$DIR/pki
	mkdir -p "$pki"
	cat >"$pki/openssl.cnf" <<'EOF2'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = migrate-init-k8s-ca
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
EOF2
	key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null && chmod 600 "$1"; }
	key "$pki/ca.key"
	openssl req -x509 -new -config "$pki/openssl.cnf" -extensions v3_ca -key "$pki/ca.key" \
		-days 30 -sha256 -out "$pki/ca.crt" 2>/dev/null
	cert() { # name subject extendedKeyUsage [subjectAltName]
		key "$pki/$1.key"
		openssl req -new -config "$pki/openssl.cnf" -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr" 2>/dev/null
		{
			echo "basicConstraints = critical, CA:FALSE"
			echo "keyUsage = critical, digitalSignature"
			echo "extendedKeyUsage = $3"
			echo "subjectKeyIdentifier = hash"
			echo "authorityKeyIdentifier = keyid"
			[ -z "${4:-}" ] || echo "subjectAltName = $4"
		} >"$pki/$1.ext"
		openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
			-set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 30 -sha256 \
			-extfile "$pki/$1.ext" -out "$pki/$1.crt" 2>/dev/null
		rm -f "$pki/$1.csr" "$pki/$1.ext"
	}
	cert apiserver "/CN=kube-apiserver" serverAuth \
		"DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_IP"
	cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
	cert admin "/O=system:masters/CN=admin" clientAuth
	cert controller-manager "/CN=system:kube-controller-manager" clientAuth
	cert scheduler "/CN=system:kube-scheduler" clientAuth
	cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
	cert kubelet-serving "/CN=$NODE_NAME" serverAuth "DNS:$NODE_NAME,IP:$NODE_IP"
	key "$pki/sa.key"
	openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
	# The front-proxy CA only fills the API server's requestheader settings:
	# without them the controller-manager and the scheduler log "missing
	# content for CA bundle" every few seconds. It signs nothing.
	key "$pki/front-proxy-ca.key"
	openssl req -x509 -new -config "$pki/openssl.cnf" -extensions v3_ca -key "$pki/front-proxy-ca.key" \
		-subj "/CN=migrate-init-k8s-front-proxy-ca" -days 30 -sha256 -out "$pki/front-proxy-ca.crt" 2>/dev/null
	kubeconfig() { # file user
		cat >"$1" <<EOF2
apiVersion: v1
kind: Config
clusters:
- name: mik8s
  cluster:
    certificate-authority: $pki/ca.crt
    server: https://$NODE_IP:6443
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: mik8s
  context:
    cluster: mik8s
    user: $2
current-context: mik8s
EOF2
	}
	kubeconfig "$DIR/admin.kubeconfig" admin
	kubeconfig "$pki/controller-manager.kubeconfig" controller-manager
	kubeconfig "$pki/scheduler.kubeconfig" scheduler
	kubeconfig "$pki/kubelet.kubeconfig" kubelet
}

make_configs() {
	local c=$DIR/config
	mkdir -p "$c" "$DIR/containerd/root" "$DIR/containerd/state" "$DIR/containerd/opt" \
		"$DIR/cni/net.d" "$DIR/cni/ipam" "$DIR/cni/var-lib" "$DIR/kubelet" "$DIR/pod-logs" "$DIR/etcd" "$DIR/sysctl"
	chmod 700 "$DIR/etcd"
	# containerd: our own instance (root, state, socket in the private /run),
	# never the system's. restrict_oom_score_adj: root here lacks
	# CAP_SYS_RESOURCE, and runc fails every sandbox ("can't get final
	# child's PID from pipe") when it tries to lower oom_score_adj. The opt
	# plugin would otherwise create /opt/containerd on the host.
	cat >"$c/containerd.toml" <<EOF2
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$DIR/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$(cat "$PAUSE_REF_FILE")"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni/net.d"
    max_conf_num = 1
EOF2
	# The pods' network: the bridge that carries the node IP, addresses from
	# host-local (leases in DIR, not /var/lib/cni), no masquerade and no
	# default route: a pod reaches the node IP and the other pods, nothing else.
	cat >"$DIR/cni/net.d/10-mik8s.conflist" <<EOF2
{
  "cniVersion": "1.0.0",
  "name": "$NETNS",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "rangeStart": "$POD_RANGE_START", "gateway": "$NODE_IP"}]]
      }
    }
  ]
}
EOF2
	# The kubelet: cgroupfs (cgroup v1 here; failCgroupV1: false keeps 1.35+
	# running on it), pods under a cgroup of this cluster's own, the netns's
	# resolv.conf for the pods, evictions and image GC effectively off (a
	# nearly full disk must not evict test pods or delete imported images,
	# which cannot be pulled again).
	cat >"$c/kubelet.yaml" <<EOF2
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $DIR/pki/ca.crt
authorization:
  mode: Webhook
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_NAME
failCgroupV1: false
failSwapOn: false
resolvConf: /etc/netns/$NETNS/resolv.conf
podLogsDir: $DIR/pod-logs
clusterDomain: cluster.local
clusterDNS:
- $NODE_IP
rotateCertificates: false
serverTLSBootstrap: false
protectKernelDefaults: false
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 50
EOF2
	# The cluster DNS (issue #20): CoreDNS as a process of the cluster, like
	# the API server, on the node IP, which the kubelet names as clusterDNS
	# in every pod's resolv.conf (with the search list and ndots:5).
	# cluster.local (and reverse lookups) from the API; every other name is
	# NXDOMAIN at once, as an upstream resolver would say of a name that does
	# not exist: nothing is forwarded, nothing leaves the netns. `ready`
	# answers 200 on 127.0.0.1:8181 once the kubernetes plugin has synced.
	# `log`: every cluster.local query in DIR/logs/coredns.log, with its
	# protocol (the tests read it to see a truncated answer asked over TCP).
	cat >"$c/Corefile" <<EOF2
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $NODE_IP
    errors
    log
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $DIR/admin.kubeconfig mik8s
        ttl 5
    }
}
.:53 {
    bind $NODE_IP
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF2
	# The kubelet sets these host-wide sysctls to its liking at start
	# (protectKernelDefaults: false) or refuses to start when they differ
	# (true). Neither is acceptable on a shared machine (kernel.panic_on_oops=1
	# would turn any oops into a reboot), so in the cluster's mount namespace
	# the kubelet reads its wanted values from these files; the host keeps its own.
	printf '1\n' >"$DIR/sysctl/vm.overcommit_memory"
	printf '0\n' >"$DIR/sysctl/vm.panic_on_oom"
	printf '10\n' >"$DIR/sysctl/kernel.panic"
	printf '1\n' >"$DIR/sysctl/kernel.panic_on_oops"
	printf '1000000\n' >"$DIR/sysctl/kernel.keys.root_maxkeys"
	printf '25000000\n' >"$DIR/sysctl/kernel.keys.root_maxbytes"
}

make_netns() {
	host_lock
	host_dir /etc/netns
	host_dir /var/lib/cni
	mkdir -p "/etc/netns/$NETNS"
	host_unlock
	ip netns add "$NETNS" || die "ip netns add $NETNS failed"
	state_set NET_NS "net:[$(stat -L -c %i "/run/netns/$NETNS")]"
	# No nameserver that answers: 127.0.0.1 is the netns's (or the pod's)
	# own loopback, where nothing listens, so a lookup fails at once and no
	# name is ever resolved through the host's resolver.
	printf '# scripts/k8s.sh: nothing resolves names here; use IP addresses\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n' \
		>"/etc/netns/$NETNS/resolv.conf"
	printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n%s %s\n' "$NODE_IP" "$NODE_NAME" \
		>"/etc/netns/$NETNS/hosts"
	ip -n "$NETNS" link set lo up
	ip -n "$NETNS" link add "$BRIDGE" type bridge
	ip -n "$NETNS" addr add "$NODE_IP/24" dev "$BRIDGE"
	ip -n "$NETNS" link set "$BRIDGE" up
}

make_cgroups() {
	local h
	for h in $(cgroup_hierarchies); do
		mkdir -p "$h/$CGROUP_NAME"
		# cgroup v1 cpuset: a new cgroup starts with no CPUs and no memory
		# nodes, and nothing can run in it until they are copied from the parent.
		if [ -f "$h/cpuset.cpus" ] && [ -f "$h/$CGROUP_NAME/cpuset.cpus" ]; then
			cat "$h/cpuset.cpus" >"$h/$CGROUP_NAME/cpuset.cpus"
			cat "$h/cpuset.mems" >"$h/$CGROUP_NAME/cpuset.mems"
		fi
	done
}

# The anchor holds the cluster's mount namespace (see the top of this file).
# unshare, nsenter and setsid exec, so $! is the anchor itself.
ANCHOR_SCRIPT='
set -euo pipefail
dir=$1 netns=$2 resolv=$3
mount -t tmpfs -o mode=0755,size=64m,nosuid,nodev mik8s-run /run
mkdir -p /run/lock
case $resolv in /run/*) mkdir -p "$(dirname "$resolv")"; : >"$resolv" ;; esac
mount --bind "/etc/netns/$netns/resolv.conf" "$resolv"
mount --bind "/etc/netns/$netns/hosts" /etc/hosts
mount -t tmpfs -o mode=0755,size=64m,nosuid,nodev mik8s-log /var/log
mount --bind "$dir/cni/var-lib" /var/lib/cni
for f in "$dir"/sysctl/*; do
	mount --bind "$f" "/proc/sys/$(basename "$f" | tr . /)"
done
: >"$dir/anchor.ready"
exec sleep infinity
'

start_anchor() {
	local resolv deadline
	resolv=$(readlink -f /etc/resolv.conf)
	rm -f "$DIR/anchor.ready"
	nsenter --net="/run/netns/$NETNS" -- unshare --mount --propagation slave -- \
		setsid bash -c "$ANCHOR_SCRIPT" anchor "$DIR" "$NETNS" "$resolv" </dev/null >"$DIR/logs/anchor.log" 2>&1 9>&- &
	ANCHOR_PID=$!
	state_set ANCHOR_PID "$ANCHOR_PID"
	deadline=$((SECONDS + 10))
	until [ -f "$DIR/anchor.ready" ]; do
		alive "$ANCHOR_PID" || { cat "$DIR/logs/anchor.log" >&2; die "the mount namespace could not be set up"; }
		[ $SECONDS -lt $deadline ] || die "the mount namespace was not ready within 10 s"
		sleep 0.05
	done
	state_set MNT_NS "$(readlink "/proc/$ANCHOR_PID/ns/mnt")"
}

start() { # name command...
	local name=$1
	shift
	nsenter --target "$ANCHOR_PID" --mount --net -- "${CLEAN_ENV[@]}" \
		setsid "$@" </dev/null >>"$DIR/logs/$name.log" 2>&1 9>&- &
	echo $! >"$DIR/pids/$name"
}

wait_ready() { # name timeout_s command...
	local name=$1 deadline=$((SECONDS + $2)) pid
	shift 2
	pid=$(cat "$DIR/pids/$name")
	until "$@" >/dev/null 2>&1; do
		if ! alive "$pid"; then
			say "$name exited during start-up; last lines of $DIR/logs/$name.log:"
			tail -n 25 "$DIR/logs/$name.log" >&2
			return 1
		fi
		if [ $SECONDS -ge "$deadline" ]; then
			say "$name not ready within the time allowed; last lines of $DIR/logs/$name.log:"
			tail -n 25 "$DIR/logs/$name.log" >&2
			return 1
		fi
		sleep 0.2
	done
}

node_ready() {
	[ "$(kc get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

print_env() {
	local kv
	for kv in "KUBECONFIG=$DIR/admin.kubeconfig" "KUBECTL=$K8S_BIN/kubectl" "NETNS=$NETNS" \
		"NODE_IP=$NODE_IP" "NODE_NAME=$NODE_NAME" "K8S_VERSION=$K8S_VERSION"; do
		echo "$kv"
	done
}

up_failed() {
	local rc=$?
	trap - EXIT HUP INT TERM
	exec 2>&9
	[ $rc -ne 0 ] || return 0
	if [ "${MI_K8S_KEEP:-}" = 1 ]; then
		say "up failed; the cluster is kept for inspection (MI_K8S_KEEP=1): logs in $DIR/logs, then: scripts/k8s.sh down $DIR"
	else
		say "up failed; taking down what was started (logs stay in $DIR/logs; MI_K8S_KEEP=1 keeps the cluster)"
		down_dir || true
	fi
	exit $rc
}

up() {
	need_root up
	[ $# -eq 1 ] || die "usage: scripts/k8s.sh up DIR"
	built || die "Kubernetes $K8S_VERSION is not built: run scripts/k8s.sh build first"
	[ -x "$COREDNS_BIN" ] || die "CoreDNS $COREDNS_VERSION is not built: run scripts/k8s.sh build first"
	mkdir -p "$1"
	set_dir "$1"
	if [ -f "$DIR/cluster.env" ]; then
		# shellcheck disable=SC1091
		. "$DIR/cluster.env"
		if alive "${ANCHOR_PID:-}" && node_ready; then
			say "a cluster is already up in $DIR"
			print_env
			return 0
		fi
		say "taking down the remains of an earlier cluster in $DIR"
		down_dir
		unset NET_NS MNT_NS ANCHOR_PID
	fi
	local t0 t id
	t0=$(now_ms)
	id=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	NETNS=mik8s-$id
	CGROUP_NAME=mik8s-$id
	mkdir -p "$DIR/logs" "$DIR/pids"
	: >"$DIR/cluster.env"
	state_set NETNS "$NETNS"
	state_set CGROUP_NAME "$CGROUP_NAME"
	state_set K8S_BIN "$K8S_BIN"
	state_set K8S_VERSION "$K8S_VERSION"
	# A signal's trap runs inside whatever redirection is in force (a
	# readiness check's >/dev/null 2>&1): up_failed reports to this copy of
	# stderr, which the cluster's processes do not inherit (9>&-), so that a
	# caller reading our stderr through a pipe sees it close.
	exec 9>&2
	trap up_failed EXIT
	# bash runs no EXIT trap when a signal kills it: turn them into exits.
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	local timeout=${MI_K8S_UP_TIMEOUT:-120}

	make_pki
	make_configs
	make_netns
	make_cgroups
	start_anchor
	say "up: netns $NETNS, certificates and configuration: $(secs_since "$t0") s"

	t=$(now_ms)
	start etcd etcd --name mik8s --data-dir "$DIR/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster mik8s=http://127.0.0.1:2380 --initial-cluster-state new \
		--logger zap --log-outputs stderr --log-level warn
	# containerd meanwhile: it does not need the API.
	start containerd containerd --config "$DIR/config/containerd.toml" --log-level warn
	wait_ready etcd "$timeout" in_ns curl -sf http://127.0.0.1:2379/health
	start kube-apiserver "$K8S_BIN/kube-apiserver" \
		--etcd-servers=http://127.0.0.1:2379 \
		--advertise-address="$NODE_IP" --secure-port=6443 \
		--client-ca-file="$DIR/pki/ca.crt" \
		--requestheader-client-ca-file="$DIR/pki/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--tls-cert-file="$DIR/pki/apiserver.crt" --tls-private-key-file="$DIR/pki/apiserver.key" \
		--kubelet-client-certificate="$DIR/pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key="$DIR/pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority="$DIR/pki/ca.crt" \
		--kubelet-preferred-address-types=InternalIP \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$DIR/pki/sa.pub" \
		--service-account-signing-key-file="$DIR/pki/sa.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--authorization-mode=Node,RBAC \
		--enable-admission-plugins=NodeRestriction \
		--endpoint-reconciler-type=none \
		--allow-privileged=true \
		--profiling=false
	wait_ready containerd "$timeout" in_ns ctr --address "$CONTAINERD_SOCK" version
	in_ns ctr --address "$CONTAINERD_SOCK" -n k8s.io images import - <"$PAUSE_TAR" >>"$DIR/logs/import.log" 2>&1 ||
		die "importing the pause image failed (see $DIR/logs/import.log)"
	# The kubelet can start before the API answers (it retries); the
	# controller-manager and scheduler too, but they log less if it answers.
	start kubelet "$K8S_BIN/kubelet" --config="$DIR/config/kubelet.yaml" \
		--kubeconfig="$DIR/pki/kubelet.kubeconfig" --root-dir="$DIR/kubelet" \
		--hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
	wait_ready kube-apiserver "$timeout" kc get --raw=/readyz
	say "up: etcd, containerd and the API server: $(secs_since "$t") s"
	t=$(now_ms)
	local common=(--leader-elect=false --bind-address=127.0.0.1 --profiling=false)
	start kube-controller-manager "$K8S_BIN/kube-controller-manager" "${common[@]}" \
		--kubeconfig="$DIR/pki/controller-manager.kubeconfig" \
		--authentication-kubeconfig="$DIR/pki/controller-manager.kubeconfig" \
		--authorization-kubeconfig="$DIR/pki/controller-manager.kubeconfig" \
		--service-account-private-key-file="$DIR/pki/sa.key" --root-ca-file="$DIR/pki/ca.crt" \
		--use-service-account-credentials=true \
		--cluster-signing-cert-file="$DIR/pki/ca.crt" --cluster-signing-key-file="$DIR/pki/ca.key"
	start kube-scheduler "$K8S_BIN/kube-scheduler" "${common[@]}" \
		--kubeconfig="$DIR/pki/scheduler.kubeconfig" \
		--authentication-kubeconfig="$DIR/pki/scheduler.kubeconfig" \
		--authorization-kubeconfig="$DIR/pki/scheduler.kubeconfig"
	start coredns "$COREDNS_BIN" -conf "$DIR/config/Corefile"
	wait_ready kubelet "$timeout" node_ready
	wait_ready coredns "$timeout" in_ns curl -sf http://127.0.0.1:8181/ready
	# Pods can be created once the namespace has its service account.
	wait_ready kube-controller-manager "$timeout" kc -n default get serviceaccount default
	local name
	for name in etcd containerd kube-apiserver kubelet kube-controller-manager kube-scheduler coredns; do
		alive "$(cat "$DIR/pids/$name")" || { tail -n 25 "$DIR/logs/$name.log" >&2; die "$name exited"; }
	done
	say "up: node $NODE_NAME Ready: $(secs_since "$t") s; cluster up in $(secs_since "$t0") s"
	trap - EXIT HUP INT TERM
	exec 9>&-
	print_env >"$DIR/cluster.info"
	print_env
}

# -------------------------------------------------------------------- down

stop_processes() {
	local pids grace=${MI_K8S_STOP_GRACE:-2} deadline i
	pids=$(cluster_pids)
	[ -n "$pids" ] || return 0
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	deadline=$(($(now_ms) + grace * 1000))
	while [ -n "$(cluster_pids)" ] && [ "$(now_ms)" -lt "$deadline" ]; do sleep 0.1; done
	# The API server and the kubelet may outlive SIGTERM; the shims and
	# the containers never get it from a dying containerd.
	for i in $(seq 40); do
		pids=$(cluster_pids)
		[ -n "$pids" ] || return 0
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.1
	done
	[ -z "$(cluster_pids)" ]
}

# Mounts under DIR in the host's namespace: none are expected (they live and
# die in the cluster's), but an earlier version or a manual run may leave some.
host_mounts_under_dir() {
	findmnt -rn -o TARGET | awk -v d="$DIR/" 'index($0 "/", d) == 1' | sort -r
}

remove_cgroups() {
	local h i left
	[ -n "${CGROUP_NAME:-}" ] || return 0
	for i in $(seq 20); do
		left=0
		for h in $(cgroup_hierarchies); do
			[ -d "$h/$CGROUP_NAME" ] || continue
			find "$h/$CGROUP_NAME" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[ -d "$h/$CGROUP_NAME" ] && left=1
		done
		[ $left = 0 ] && return 0
		sleep 0.1
	done
}

# What is left of the cluster, one line each; nothing when it is all gone.
leftovers() {
	local pids h m
	pids=$(cluster_pids)
	[ -z "$pids" ] || echo "processes: $(for p in $pids; do printf '%s(%s) ' "$p" "$(cat "/proc/$p/comm" 2>/dev/null)"; done)"
	m=$(host_mounts_under_dir)
	[ -z "$m" ] || echo "mounts: $(echo $m)"
	if [ -n "${NETNS:-}" ]; then
		[ ! -e "/run/netns/$NETNS" ] || echo "network namespace: /run/netns/$NETNS"
		[ ! -e "/etc/netns/$NETNS" ] || echo "directory: /etc/netns/$NETNS"
	fi
	if [ -n "${CGROUP_NAME:-}" ]; then
		for h in $(cgroup_hierarchies); do
			[ ! -d "$h/$CGROUP_NAME" ] || echo "cgroup: $h/$CGROUP_NAME"
		done
	fi
}

down_dir() {
	local t0 m left
	t0=$(now_ms)
	stop_processes || true
	for m in $(host_mounts_under_dir); do umount -l "$m" 2>/dev/null || true; done
	remove_cgroups
	if [ -n "${NETNS:-}" ]; then
		[ ! -e "/run/netns/$NETNS" ] || ip netns del "$NETNS" 2>/dev/null || true
		rm -rf "/etc/netns/${NETNS:?}"
	fi
	release_host_dirs
	left=$(leftovers)
	if [ -n "$left" ]; then
		say "down: could not remove everything of ${NETNS:-the cluster} in $DIR:"
		printf '  %s\n' "$left" >&2
		return 1
	fi
	# The state (images, etcd data, volumes) goes; the logs stay.
	rm -rf --one-file-system "$DIR/containerd" "$DIR/etcd" "$DIR/kubelet" "$DIR/cni" "$DIR/pod-logs" \
		"$DIR/sysctl" "$DIR/pids" "$DIR/config" "$DIR/pki" "$DIR/anchor.ready" "$DIR/admin.kubeconfig" \
		"$DIR/cluster.info"
	rm -f "$DIR/cluster.env"
	say "down: ${NETNS:-cluster} gone, nothing left ($(secs_since "$t0") s)"
}

down() {
	need_root down
	[ $# -eq 1 ] || die "usage: scripts/k8s.sh down DIR"
	if [ ! -d "$1" ] || [ ! -f "$1/cluster.env" ]; then
		say "down: no cluster in $1, nothing to do"
		return 0
	fi
	load_state "$1"
	down_dir
}

# ------------------------------------------------------------ conveniences

import_images() { # dir tar...
	need_root import
	[ $# -ge 2 ] || die "usage: scripts/k8s.sh import DIR IMAGE.tar..."
	load_state "$1"
	shift
	alive "${ANCHOR_PID:-}" || die "the cluster in $DIR is not running"
	local f
	for f in "$@"; do
		[ -f "$f" ] || die "import: $f is not a file"
		# Through stdin: the file may be on a path the cluster's mount
		# namespace hides.
		in_ns ctr --address "$CONTAINERD_SOCK" -n k8s.io images import - <"$f" >&2 ||
			die "import of $f failed"
	done
}

kubectl_cmd() { # dir args...
	[ $# -ge 1 ] || die "usage: scripts/k8s.sh kubectl DIR ARGS..."
	load_state "$1"
	shift
	exec ip netns exec "$NETNS" env NO_PROXY='*' no_proxy='*' "$K8S_BIN/kubectl" --kubeconfig "$DIR/admin.kubeconfig" "$@"
}

exec_cmd() { # dir command...
	[ $# -ge 2 ] || die "usage: scripts/k8s.sh exec DIR COMMAND..."
	load_state "$1"
	shift
	exec ip netns exec "$NETNS" env KUBECONFIG="$DIR/admin.kubeconfig" PATH="$K8S_BIN:$PATH" NO_PROXY='*' no_proxy='*' "$@"
}

stats() { # dir
	[ $# -eq 1 ] || die "usage: scripts/k8s.sh stats DIR"
	load_state "$1"
	local pid comm rss hwm trss=0 thwm=0
	printf '%-8s %-26s %10s %10s\n' pid command rss_kb peak_kb
	for pid in $(cluster_pids); do
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
		[ -n "$rss" ] || continue
		printf '%-8s %-26s %10s %10s\n' "$pid" "$comm" "$rss" "$hwm"
		trss=$((trss + rss))
		thwm=$((thwm + hwm))
	done
	printf 'total: rss %d MB, sum of peaks %d MB\n' $((trss / 1024)) $((thwm / 1024))
}

# ---------------------------------------------------------------- dispatch

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}
[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
fetch) fetch ;;
build) build ;;
up) up "$@" ;;
down) down "$@" ;;
import) import_images "$@" ;;
kubectl) kubectl_cmd "$@" ;;
exec) exec_cmd "$@" ;;
stats) stats "$@" ;;
image) image_pack "$@" ;;
-h | --help | help) usage ;;
*) die "unknown command '$cmd' (fetch, build, up, down, import, kubectl, exec, stats, image)" ;;
esac
