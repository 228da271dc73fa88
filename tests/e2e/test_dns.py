"""Name resolution failures are the database not being there yet (issue #20).

A mongodb+srv URL makes libmongoc look up the SRV record while the client is
created; a failed lookup (NXDOMAIN: the Service does not exist yet) used to
end the run at once with exit 2, as if the URL were wrong. It is transient:
retried with the backoff, exit 4 when the attempts run out, like a plain
host name that does not resolve.

Each run is inside a network and mount namespace of its own (unshare), whose
/etc/resolv.conf names a tiny DNS server on its own loopback that answers
NXDOMAIN to everything: no query reaches the host's resolver. Needs root.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import MI_BIN, write_standard

DNS_SERVER = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
open(sys.argv[1], "w").close()
while True:
    q, addr = s.recvfrom(512)
    if len(q) < 12:
        continue
    # Same id and question; QR, RD copied, RA; rcode 3 (NXDOMAIN); no records.
    flags = bytes([0x80 | (q[2] & 0x01), 0x80 | 3])
    s.sendto(q[:2] + flags + q[4:6] + b"\0\0\0\0\0\0" + q[12:], addr)
'''

WRAPPER = r'''
set -e
ip link set lo up
mount --bind "$MI_RESOLV" "$(readlink -f /etc/resolv.conf)"
python3 -c "$MI_DNS_SERVER" "$MI_READY" </dev/null >/dev/null 2>&1 &
srv=$!
for i in $(seq 100); do [ -f "$MI_READY" ] && break; sleep 0.05; done
set +e
"$@"
rc=$?
kill $srv
exit $rc
'''


def run_isolated(tmp_path, args, env):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("these tests need root and unshare (a network namespace of their own)")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\nsearch ns.svc.cluster.local svc.cluster.local cluster.local\n"
                      "options ndots:5 timeout:1 attempts:1\n")
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MI_RESOLV": str(resolv),
                "MI_DNS_SERVER": DNS_SERVER, "MI_READY": str(tmp_path / "dns.ready"),
                "TERMINATION_MESSAGE_PATH": str(tmp_path / "term"), **env}
    return subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", WRAPPER,
                           "wrapper", str(MI_BIN), *args], env=full_env, capture_output=True, text=True,
                          timeout=60)


def logs(p):
    return [json.loads(line) for line in p.stderr.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("url", [
    "mongodb+srv://mongo.ns.svc.cluster.local/app?tls=false",
    "mongodb://mongo.ns.svc.cluster.local:27017/app",
])
def test_nxdomain_is_retried_then_exit_4(tmp_path, migdir, url):
    write_standard(migdir)
    p = run_isolated(tmp_path, ["-path", str(migdir), "up"],
                     {"DATABASE_URL": url, "MAX_RETRIES": "3", "RETRY_INTERVAL": "100ms",
                      "RETRY_MAX_INTERVAL": "100ms"})
    sys.stderr.write(p.stderr[-3000:])
    assert p.returncode == 4, p
    lines = logs(p)
    retried = [entry for entry in lines if entry["msg"] == "database not ready"]
    assert len(retried) == 2, lines
    # The error names the name that did not resolve.
    assert "mongo.ns.svc.cluster.local" in retried[0]["error"], retried[0]
    assert any(entry["msg"] == "database unreachable: giving up" and entry["attempts"] == 3 for entry in lines), lines
