"""mongodb+srv with the static musl binary when the SRV answer does not fit
in 512 bytes (issue #20; src/dns.h).

musl 1.2.3 asks over UDP only and hands a truncated answer (TC) to libmongoc
as it is; glibc asks again over TCP. The binary's own res_search does what
glibc does. Shown here without Kubernetes: inside a network and mount
namespace of the test's own (unshare: only its loopback exists, and its
/etc/resolv.conf names a DNS server of the test's on 127.0.0.1), with
FerretDB there as the primary of a replica set (so that any seed leads to
it). The SRV record has 40 targets; over UDP only the first few fit, and
only the last target (never among those) has an address. So the run
migrates only if the TCP answer was used, and the DNS server's log says
which queries came over TCP. Needs root.
"""

import os
import shutil
import subprocess

import pytest

from .artifact_harness import FERRETDB_BIN

N = 40
PORT = 27019
DOMAIN = "rs.test.example"

DNS_SERVER = r'''
import socket, struct, sys, threading
N, PORT, DOMAIN, LOG, READY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
SRV_NAME = "_mongodb._tcp." + DOMAIN

def name(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"

def parse(q):
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode())
        i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    return ".".join(labels).lower(), qtype, i + 5

def answer(q, limit):
    qname, qtype, end = parse(q)
    rrs, rcode = [], 0
    if qname == SRV_NAME and qtype == 33:
        for k in range(N):
            rdata = struct.pack(">HHH", 0, 0, PORT) + name(f"m{k:02d}.{DOMAIN}")
            rrs.append(b"\xc0\x0c" + struct.pack(">HHIH", 33, 1, 5, len(rdata)) + rdata)
    elif qname == SRV_NAME or qname == DOMAIN:
        pass  # NODATA: no TXT record, as for a Kubernetes Service
    elif qname == f"m{N - 1:02d}.{DOMAIN}" and qtype == 1:
        rrs.append(b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton("127.0.0.1"))
    elif qname.startswith("m") and qname.endswith("." + DOMAIN):
        pass  # the other targets exist, with no address
    else:
        rcode = 3
    head = q[:2] + bytes([0x84 | (q[2] & 1), 0x80 | rcode]) + q[4:6]
    body, n, tc = q[12:end], 0, 0
    for rr in rrs:
        if len(head) + 6 + len(body) + len(rr) > limit:
            tc = 1
            break
        body += rr
        n += 1
    if tc:
        head = head[:2] + bytes([head[2] | 2]) + head[3:]
    return head + struct.pack(">HHH", n, 0, 0) + body, qname, qtype, n, tc

def log(proto, qname, qtype, n, tc):
    with open(LOG, "a") as f:
        f.write(f"{proto} {qname} {qtype} {n} {tc}\n")

def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    ready.set()
    while True:
        q, addr = s.recvfrom(512)
        a, *rest = answer(q, 512)
        log("udp", *rest)
        s.sendto(a, addr)

def tcp_conn(c):
    with c:
        while True:
            h = c.recv(2)
            if len(h) < 2:
                return
            q = b""
            while len(q) < struct.unpack(">H", h)[0]:
                q += c.recv(65535)
            a, *rest = answer(q, 65535)
            log("tcp", *rest)
            c.sendall(struct.pack(">H", len(a)) + a)

def tcp():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 53))
    s.listen(8)
    ready.set()
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()

ready = threading.Event()
threading.Thread(target=tcp, daemon=True).start()
ready.wait()
ready.clear()
threading.Thread(target=udp, daemon=True).start()
ready.wait()
open(READY, "w").close()
threading.Event().wait()
'''

WRAPPER = r'''
set -e
ip link set lo up
mount --bind "$MI_RESOLV" "$(readlink -f /etc/resolv.conf)"
python3 -c "$MI_DNS_SERVER" "$MI_N" "$MI_PORT" "$MI_DOMAIN" "$MI_DNS_LOG" "$MI_READY" </dev/null >"$MI_DNS_OUT" 2>&1 &
dns=$!
"$MI_FERRETDB" --handler=sqlite --sqlite-url="file:$MI_DATA/" --state-dir="$MI_DATA" \
	--listen-addr="127.0.0.1:$MI_PORT" --repl-set-name=rs0 --debug-addr=- --telemetry=disable \
	--log-level=warn </dev/null >"$MI_FDB_OUT" 2>&1 &
fdb=$!
for i in $(seq 200); do
	[ -f "$MI_READY" ] && python3 -c "import socket; socket.create_connection(('127.0.0.1', $MI_PORT), 1)" 2>/dev/null && break
	sleep 0.1
done
set +e
"$@"
rc=$?
kill $dns $fdb
wait $fdb
exit $rc
'''


def test_srv_answer_larger_than_udp_is_asked_again_over_tcp(static_binary, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test needs root and unshare (a network namespace of its own)", pytrace=False)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    (tmp_path / "data").mkdir()
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "1_a.up.json").write_text('[{"create": "a"}]\n')
    (migrations / "1_a.down.json").write_text('[{"drop": "a"}]\n')
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MI_RESOLV": str(resolv),
           "MI_DNS_SERVER": DNS_SERVER, "MI_N": str(N), "MI_PORT": str(PORT), "MI_DOMAIN": DOMAIN,
           "MI_DNS_LOG": str(tmp_path / "dns.log"), "MI_READY": str(tmp_path / "dns.ready"),
           "MI_DNS_OUT": str(tmp_path / "dns.out"), "MI_FDB_OUT": str(tmp_path / "ferretdb.out"),
           "MI_FERRETDB": str(FERRETDB_BIN), "MI_DATA": str(tmp_path / "data"),
           "TERMINATION_MESSAGE_PATH": str(tmp_path / "term"),
           "DATABASE_URL": f"mongodb+srv://{DOMAIN}/app?tls=false&serverSelectionTimeoutMS=3000",
           "MAX_RETRIES": "2", "RETRY_INTERVAL": "100ms"}
    p = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", WRAPPER,
                        "wrapper", str(static_binary), "-path", str(migrations), "up"],
                       env=env, capture_output=True, text=True, timeout=120)
    dns_log = (tmp_path / "dns.log").read_text() if (tmp_path / "dns.log").exists() else ""
    diag = (f"exit {p.returncode}\n{p.stderr[-4000:]}\nDNS queries:\n{dns_log}\n"
            + (tmp_path / "dns.out").read_text()[-2000:] + (tmp_path / "ferretdb.out").read_text()[-2000:])
    srv = f"_mongodb._tcp.{DOMAIN} 33"
    udp = [line.split() for line in dns_log.splitlines() if line.startswith(f"udp {srv}")]
    tcp = [line.split() for line in dns_log.splitlines() if line.startswith(f"tcp {srv}")]
    # Over UDP: truncated, the last target not among what fit.
    assert udp and all(int(u[3]) < N - 1 and u[4] == "1" for u in udp), diag
    # Then over TCP: all of them, untruncated.
    assert tcp and all(int(t[3]) == N and t[4] == "0" for t in tcp), diag
    assert p.returncode == 0, diag
    assert "1 migration(s) applied" in (tmp_path / "term").read_text(), diag
