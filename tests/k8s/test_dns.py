"""Service names and mongodb+srv through the cluster DNS (issue #20), with the
shipped image (static musl binary) in pods of the session cluster.

scripts/k8s.sh runs CoreDNS on the node IP as the cluster DNS (kubernetes
plugin for cluster.local, every other name NXDOMAIN); the kubelet gives pods
a resolv.conf with `nameserver 198.18.0.1`, the search list
NS.svc.cluster.local svc.cluster.local cluster.local and `options ndots:5`.
The database stays FerretDB on the node IP: each Service here has no
selector, its EndpointSlice points at it, and is headless: this cluster has
no kube-proxy, so a ClusterIP would resolve but lead nowhere (the name is
the same A record lookup either way). Each Job runs in a namespace of
its own (the overlay's Job name is fixed), all started together and then
awaited: the scenarios cost about one Job's time.

What musl 1.2.3 does (README, "Service names and mongodb+srv"):
  * getaddrinfo applies the search list with ndots (a short `mongo` works);
  * res_search is res_query: no search list (libmongoc's SRV lookup), so a
    mongodb+srv name must be the full NAME.NS.svc.cluster.local;
  * no TCP: a truncated UDP answer (TC) would be used as it is, with the
    records that fit; our binary's res_search asks again over TCP (src/dns.h).
"""

import json
import os
import signal
import struct
import subprocess
import time

import pytest

from .k8s_harness import (
    AUTH_DB, AUTH_USER, CANARY, FERRETDB_BIN, JOB, K8S_SH, NODE_IP, assert_no_canary, conditions,
    container_status, log, newest_example_version, terminated,
)

NEWEST = newest_example_version()
RS_PORT = 27018  # a second FerretDB, as a replica set member (rs0)
MANY = 40  # endpoints of the big headless Service: its SRV answer is > 512 bytes


def url(scheme, host, db, **extra):
    q = "&".join([f"authSource={AUTH_DB}"] + [f"{k}={v}" for k, v in extra.items()])
    return f"{scheme}://{AUTH_USER}:{CANARY}@{host}/{db}?{q}"


def service(ns, name, port, *, headless, endpoints):
    """A Service without selector and the EndpointSlice the user (or an
    operator) would manage: endpoints is [(hostname or None, ip)]."""
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
           "spec": {"ports": [{"name": "mongodb", "port": port, "targetPort": port, "protocol": "TCP"}]}}
    if headless:
        svc["spec"]["clusterIP"] = "None"
    eps = []
    for host, ip in endpoints:
        e = {"addresses": [ip], "conditions": {"ready": True}}
        if host:
            e["hostname"] = host
        eps.append(e)
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": f"{name}-1", "namespace": ns,
                           "labels": {"kubernetes.io/service-name": name}},
              "addressType": "IPv4", "endpoints": eps,
              "ports": [{"name": "mongodb", "port": port, "protocol": "TCP"}]}
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [svc, slice_]})


def create_service(cluster, ns, name, port=27017, *, headless=True, endpoints=((None, NODE_IP),)):
    cluster.kubectl("apply", "-f", "-", input=service(ns, name, port, headless=headless, endpoints=endpoints))


# -- DNS as CoreDNS serves it, asked from inside the netns (raw queries:
# the evidence for what the pods' resolver gets)

def dns_query(name, qtype):
    q = struct.pack(">HHHHHH", 0x4d49, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", qtype, 1)
    return q


def ask(cluster, name, qtype, tcp=False):
    """(rcode, tc, answer count, size) of CoreDNS's answer, no EDNS0 (as musl asks)."""
    code = f"""
import socket, struct, sys
q = bytes.fromhex(sys.argv[1])
if {tcp!r}:
    s = socket.create_connection(("{NODE_IP}", 53), timeout=3)
    s.sendall(struct.pack(">H", len(q)) + q)
    buf = b""
    while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    a = buf[2:]
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    s.sendto(q, ("{NODE_IP}", 53))
    a = s.recv(65536)
print(a[3] & 15, (a[2] >> 1) & 1, struct.unpack(">H", a[6:8])[0], len(a))
"""
    p = cluster.k8s("exec", cluster.dir, "python3", "-c", code, dns_query(name, qtype).hex())
    return tuple(int(x) for x in p.stdout.split())


SRV, A, TXT = 33, 1, 16


@pytest.fixture(scope="module")
def rs_ferretdb(cluster):
    """A second FerretDB on NODE_IP:RS_PORT that says it is the primary of
    replica set rs0 (hello: setName, hosts [NODE_IP:RS_PORT]): many SRV
    targets then lead the driver to the one member, as a real replica set's
    hello would. A standalone behind several seeds would be dropped by the
    driver (server discovery: a standalone among several seeds is removed)."""
    data = cluster.work / "fdb-rs"
    data.mkdir()
    logf = open(cluster.work / "ferretdb-rs.log", "w")
    p = subprocess.Popen(
        ["bash", str(K8S_SH), "exec", str(cluster.dir), str(FERRETDB_BIN),
         "--handler=sqlite", f"--sqlite-url=file:{data}/", f"--state-dir={data}",
         f"--listen-addr={NODE_IP}:{RS_PORT}", "--repl-set-name=rs0",
         "--debug-addr=-", "--telemetry=disable", "--log-level=warn",
         "--test-enable-new-auth", f"--setup-database={AUTH_DB}",
         f"--setup-username={AUTH_USER}", f"--setup-password={CANARY}"],
        stdin=subprocess.DEVNULL, stdout=logf, stderr=logf, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while cluster.k8s("exec", cluster.dir, "python3", "-c",
                          f"import socket; socket.create_connection(('{NODE_IP}', {RS_PORT}), 1)",
                          check=False).returncode != 0:
            assert p.poll() is None, (cluster.work / "ferretdb-rs.log").read_text()
            assert time.monotonic() < deadline, "the replica-set FerretDB did not listen within 30 s"
            time.sleep(0.3)
        yield p
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


def start_job(cluster, ns, db, job_url):
    cluster.namespace(ns)
    cluster.apply(cluster.overlay(ns, db, url=job_url), JOB)


def job_result(cluster, ns, timeout=150):
    """(Job, [(exit code, termination message, log)] of its pods); on a
    timeout, fails with the pods' logs (what the binary was waiting for)."""
    deadline = time.monotonic() + timeout
    while True:
        job = cluster.job(ns)
        if {"Complete", "Failed"} & set(conditions(job)):
            break
        if time.monotonic() > deadline:
            logs = [cluster.kubectl("-n", ns, "logs", p["metadata"]["name"], "-c", "migrate",
                                    check=False).stdout[-4000:] for p in cluster.pods(ns, f"job-name={JOB}")]
            assert_no_canary(*logs)
            pytest.fail(f"Job {ns}/{JOB} did not finish within {timeout} s: {job.get('status')}\n"
                        + "\n".join(logs), pytrace=False)
        time.sleep(1)
    out = []
    for pod in cluster.pods(ns, f"job-name={JOB}"):
        s = container_status(pod, "migrate")
        t = terminated(s) if s else None
        logs = cluster.logs(ns, pod["metadata"]["name"], "migrate")
        assert_no_canary(t and t.get("message"), logs)
        out.append((t and t["exitCode"], (t or {}).get("message", ""), logs))
    return job, out


def assert_migrated(cluster, ns, *, retried=False):
    job, pods = job_result(cluster, ns)
    diag = f"{ns}: {job['status']}\n" + "\n".join(f"exit {c}: {m}\n{lg[-3000:]}" for c, m, lg in pods)
    assert "Complete" in conditions(job), diag
    assert len(pods) == 1 and pods[0][0] == 0, diag
    assert f"{NEWEST} migration(s) applied" in pods[0][1], diag
    if retried:
        # The pod started before the name existed: NXDOMAIN was retried.
        waits = [json.loads(line) for line in pods[0][2].splitlines()
                 if line.startswith("{") and '"database not ready"' in line]
        assert waits, diag
        return waits
    return None


def test_dns_service_names_and_srv(cluster, rs_ferretdb):
    """Every form a user writes, each in a Job of its own, all at once."""
    t0 = time.monotonic()
    ns_svc = cluster.namespace("dns-svc")
    create_service(cluster, ns_svc, "mongo")
    create_service(cluster, ns_svc, "mongo-srv", headless=True, endpoints=[("m0", NODE_IP)])
    create_service(cluster, ns_svc, "mongo-many", RS_PORT, headless=True,
                   endpoints=[(f"member-{i:02d}", NODE_IP) for i in range(MANY)])
    fq = f"{ns_svc}.svc.cluster.local"
    jobs = {
        # A Service in another namespace, by its full name.
        "dns-full": url("mongodb", f"mongo.{fq}:27017", "dnsfull"),
        # The short name, in the Service's own namespace: the search list.
        ns_svc: url("mongodb", "mongo:27017", "dnsshort"),
        # The headless Service's SRV record (port named mongodb), one target.
        "dns-srv": url("mongodb+srv", f"mongo-srv.{fq}", "dnssrv", tls="false"),
        # 40 targets: the UDP answer is truncated (TC), asked again over TCP.
        "dns-many": url("mongodb+srv", f"mongo-many.{fq}", "dnsmany", tls="false"),
        # Names that do not exist yet: their Services come 10 s later.
        "dns-late": url("mongodb", f"late.{fq}:27017", "dnslate"),
        "dns-late-srv": url("mongodb+srv", f"late-srv.{fq}", "dnslatesrv", tls="false"),
    }
    for ns, u in jobs.items():
        if ns != ns_svc:
            cluster.namespace(ns)
        cluster.apply(cluster.overlay(ns, ns.replace("-", ""), url=u), JOB)
    started = time.monotonic()

    # What CoreDNS serves, asked as musl asks (UDP, no EDNS0), and over TCP.
    rcode, tc, n, size = ask(cluster, f"_mongodb._tcp.mongo-srv.{fq}", SRV)
    assert (rcode, tc, n) == (0, 0, 1), (rcode, tc, n, size)
    rcode, tc, n_udp, size = ask(cluster, f"_mongodb._tcp.mongo-many.{fq}", SRV)
    assert rcode == 0 and tc == 1 and 0 < n_udp < MANY and size <= 512, (rcode, tc, n_udp, size)
    rcode, tc, n_tcp, size_tcp = ask(cluster, f"_mongodb._tcp.mongo-many.{fq}", SRV, tcp=True)
    assert (rcode, tc, n_tcp) == (0, 0, MANY), (rcode, tc, n_tcp, size_tcp)
    log(f"SRV of {MANY} endpoints: UDP {size} bytes, TC, {n_udp} records; TCP {size_tcp} bytes, {n_tcp}")
    rcode, _, n, _ = ask(cluster, f"_mongodb._tcp.late.{fq}", SRV)
    assert (rcode, n) == (3, 0), "a name that does not exist is NXDOMAIN, at once"
    rcode, _, n, _ = ask(cluster, "mongo.example.com", A)
    assert (rcode, n) == (3, 0), "nothing is forwarded: names outside the cluster are NXDOMAIN"

    time.sleep(max(0.0, 10 - (time.monotonic() - started)))
    create_service(cluster, ns_svc, "late")
    create_service(cluster, ns_svc, "late-srv", headless=True, endpoints=[("m0", NODE_IP)])

    assert_migrated(cluster, "dns-full")
    assert_migrated(cluster, ns_svc)
    assert_migrated(cluster, "dns-srv")
    assert_migrated(cluster, "dns-many")
    # The pod got the UDP answer truncated and asked again over TCP (src/dns.c):
    # CoreDNS logs each query with its protocol.
    queries = [line for line in (cluster.dir / "logs" / "coredns.log").read_text().splitlines()
               if f'"SRV IN _mongodb._tcp.mongo-many.{fq}.' in line
               and f"] {NODE_IP}:" not in line]  # not the test's own queries (ask())
    assert any(" udp " in q for q in queries) and any(" tcp " in q for q in queries), queries
    waits = assert_migrated(cluster, "dns-late", retried=True)
    assert any("late." in w.get("error", "") for w in waits), waits
    waits = assert_migrated(cluster, "dns-late-srv", retried=True)
    assert any("Failed to look up SRV record" in w.get("error", "") for w in waits), waits
    with cluster.mongo() as c:
        for db in ("dnsfull", "dnsshort", "dnssrv", "dnslate", "dnslatesrv"):
            doc = c[db]["schema_migrations"].find_one({}, {"_id": 0, "version": 1, "dirty": 1})
            assert doc == {"version": NEWEST, "dirty": False}, (db, doc)
    for ns in jobs:
        cluster.drop_namespace(ns)
    log(f"DNS scenarios: {time.monotonic() - t0:.1f} s")
