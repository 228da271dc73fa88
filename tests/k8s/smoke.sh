#!/usr/bin/env bash
# Smoke test of scripts/k8s.sh, the real single-node Kubernetes of issue #16:
#
#   1. build (or reuse) the Kubernetes binaries and the pause image
#   2. up a cluster in a temporary directory
#   3. run a pod from a FROM-scratch image holding one static binary
#      (tests/k8s/hello.c), restricted like the pods of k8s/ (uid 65532, no
#      capabilities, read-only root, RuntimeDefault seccomp); it reads a line
#      from a listener on the node IP, where the tests' database will be; the
#      pod must end Completed and `kubectl logs` must show both lines
#   4. start a pod that keeps running (the pause image), then down, and
#      check that the host has no process, mount, network namespace, link,
#      cgroup or file of the cluster left
#
# Prints the times of each step and the cluster's memory (RSS, and the sum of
# each process's peak). Not part of `make test`: `make test-k8s` (tests/k8s/,
# the scenarios of issue #16) runs k8s.sh the same way. Needs root.
#
#   bash tests/k8s/smoke.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
k8s=$root/scripts/k8s.sh
work=$(mktemp -d /tmp/mik8s-smoke.XXXXXX)
dir=$work/cluster
image_ref=localhost/migrate-init/k8s-smoke:1
port=27999

say() { printf 'smoke: %s\n' "$*" >&2; }
fail() {
	say "FAIL: $*"
	exit 1
}
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((t / 1000))
}
secs() { # ms
	printf '%d.%01d' $(($1 / 1000)) $(($1 % 1000 / 100))
}

# What a cluster could leave on the host. Docker's own links and mounts come
# and go with other people's work on this machine, and /run/netns is
# iproute2's (mounted once, by the first `ip netns add` ever): left out.
host_snapshot() {
	echo "# links"
	ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep -Ev '^(veth|br-|docker)' | sort
	echo "# network namespaces"
	ip netns list | awk '{ print $1 }' | sort
	echo "# mounts"
	findmnt -rn -o TARGET | grep -Ev '^(/run/netns$|/var/lib/docker/|/run/docker/)' | sort
	echo "# files"
	ls -d /etc/netns /var/lib/cni /run/containerd /opt/containerd /var/log/containers /var/log/pods 2>/dev/null || true
	ls /run/containerd/s 2>/dev/null || true
	echo "# cgroups"
	find /sys/fs/cgroup -maxdepth 2 -name 'mik8s-*' 2>/dev/null || true
	echo "# sysctls the kubelet would change"
	sysctl vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
}

cleanup() {
	local rc=$?
	if [ -f "$dir/cluster.env" ]; then
		bash "$k8s" down "$dir" || rc=1
	fi
	if [ $rc -eq 0 ]; then
		rm -rf "$work"
	else
		say "logs kept in $dir/logs"
	fi
	exit $rc
}
trap cleanup EXIT

[ "$(id -u)" -eq 0 ] || fail "needs root"
before=$(host_snapshot)

t=$(now_ms)
bash "$k8s" build
build_ms=$(($(now_ms) - t))

# The pod's image: one static binary, nothing else.
mkdir -p "$work/rootfs"
gcc -Os -Wall -Werror -static -o "$work/rootfs/hello" "$root/tests/k8s/hello.c"
strip "$work/rootfs/hello"
bash "$k8s" image "$image_ref" "$work/rootfs" "$work/hello.tar" 65532:65532 /hello

t=$(now_ms)
bash "$k8s" up "$dir" >"$work/up.env"
up_ms=$(($(now_ms) - t))
# shellcheck disable=SC1091
. "$work/up.env"
say "cluster: netns $NETNS, node $NODE_NAME at $NODE_IP, kubeconfig $KUBECONFIG"
kubectl() { bash "$k8s" kubectl "$dir" "$@"; }

t=$(now_ms)
bash "$k8s" import "$dir" "$work/hello.tar"

# The listener on the node IP, inside the cluster's netns: answers one
# connection, gives up after 120 s.
bash "$k8s" exec "$dir" python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
open(sys.argv[3], "w").close()
s.settimeout(120)
c, _ = s.accept()
c.sendall(b"pong\n")
c.close()
' "$NODE_IP" "$port" "$work/listening" &
listener=$!
for _ in $(seq 50); do [ -f "$work/listening" ] && break; sleep 0.1; done
[ -f "$work/listening" ] || fail "the listener on $NODE_IP:$port did not start"

kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: hello
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: hello
      image: $image_ref
      imagePullPolicy: Never
      args: ["$NODE_IP", "$port"]
      securityContext:
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: ["ALL"]
EOF
if ! kubectl wait --for=jsonpath='{.status.phase}'=Succeeded pod/hello --timeout=90s; then
	kubectl describe pod hello >&2 || true
	fail "pod hello did not succeed"
fi
pod_ms=$(($(now_ms) - t))
reason=$(kubectl get pod hello -o 'jsonpath={.status.containerStatuses[0].state.terminated.reason}')
[ "$reason" = Completed ] || fail "pod hello terminated with reason '$reason', not Completed"
logs=$(kubectl logs hello)
printf '%s\n' "$logs" | sed 's/^/smoke: pod log: /' >&2
grep -q '^hello from a FROM-scratch pod, uid 65532$' <<<"$logs" || fail "the pod's log lacks its hello"
grep -q "says: pong$" <<<"$logs" || fail "the pod did not reach the listener on $NODE_IP:$port"
wait "$listener" || fail "the listener failed"

# A pod still running when the cluster goes down, as the real tests will
# leave them: the pause image, which sleeps until killed.
pause_ref=$(cat "$(bash -c '. "$1"; echo "$K8S_CACHE"' _ "$root/scripts/versions.sh")/pause-image.ref")
kubectl run sleeper --image="$pause_ref" --image-pull-policy=Never --restart=Never \
	--overrides='{"spec": {"automountServiceAccountToken": false}}' >/dev/null
kubectl wait --for=condition=Ready pod/sleeper --timeout=60s >/dev/null || fail "pod sleeper is not Running"

bash "$k8s" stats "$dir" >"$work/stats.txt"
sed 's/^/smoke: /' "$work/stats.txt" >&2
rss=$(tail -n1 "$work/stats.txt")

t=$(now_ms)
bash "$k8s" down "$dir"
down_ms=$(($(now_ms) - t))

after=$(host_snapshot)
if [ "$before" != "$after" ]; then
	diff <(printf '%s\n' "$before") <(printf '%s\n' "$after") >&2 || true
	fail "the host is not as it was before up (diff above: < before, > after)"
fi
say "times: build $(secs $build_ms) s, up $(secs $up_ms) s, import + pod to Completed $(secs $pod_ms) s, down $(secs $down_ms) s"
say "memory: $rss"
say "ok: the host is as it was"
