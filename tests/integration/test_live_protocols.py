"""Live capture of real database / cache / RPC traffic on docker0.

The `db_servers` session fixture starts the servers of servers.sh (MariaDB 10.11,
PostgreSQL 15, Redis 7, memcached, a python3-thrift service, mongo_wire.py) as extra
"containers" on the session topology, once; the `live_run` fixture runs $HOSTBEAT on
docker0 with all 8 protocols configured while traffic_db.py drives real clients, once.
Then, per protocol, every ledger line must be reported exactly once with the right
method / resource-or-path / status / client / server / transport, and nothing else
of that protocol; and the agent must have seen zero kernel drops and written its
self-metrics.  stdlib only.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import HERE, run
from hbledger import match_events, parse_ledger
from test_live_capture import (CAPTURE_READY, EXIT_TIMEOUT, READY_TIMEOUT, LogReader,
                               event_ips, get, read_events)

SERVERS_SH = HERE / "servers.sh"
TRAFFIC_DB = HERE / "traffic_db.py"
PROTOS = ("mysql", "pgsql", "redis", "memcache", "thrift", "mongodb")
SETTLE_AFTER_TRAFFIC = 1.5

CONFIG_TEMPLATE = """\
packetbeat.interfaces.device: docker0
packetbeat.protocols:
- type: http
  ports: [80]
- type: dns
  ports: [53]
- type: memcache
  ports: [11211]
- type: mysql
  ports: [3306]
- type: pgsql
  ports: [5432]
- type: redis
  ports: [6379]
- type: thrift
  ports: [9090, 9091, 9092, 9093]
- type: mongodb
  ports: [27017]
output.file:
  path: {out}
metrics.period: 1s
"""


@pytest.fixture(scope="session")
def db_servers(topology, request):
    r = run([SERVERS_SH, "missing"], timeout=30)
    missing = r.stdout.strip()
    if missing:
        pytest.skip("database servers need missing package(s)/tool(s): %s "
                    "(run tests/deps.sh)" % missing)
    state = {"down": False}

    def down():
        if state["down"]:
            return
        state["down"] = True
        rr = run([SERVERS_SH, "down", topology.prefix], timeout=60)
        if rr.returncode != 0:
            sys.stderr.write("servers.sh down %s failed:\n%s\n" % (topology.prefix, rr.stderr))

    request.addfinalizer(down)  # before `up`: a partial start is cleaned up too
    t0 = time.monotonic()
    r = run([SERVERS_SH, "up", topology.prefix], timeout=180)
    if r.returncode == 3:
        pytest.skip("servers.sh: %s" % r.stderr.strip())
    if r.returncode != 0:
        pytest.fail("servers.sh up %s failed (rc=%d):\n%s" % (topology.prefix, r.returncode,
                                                            r.stderr), pytrace=False)
    env = {}
    for line in (topology.tmp / "servers.env").read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            env[k] = v.strip('"')
    env["startup_seconds"] = "%.1f" % (time.monotonic() - t0)
    return env


class LiveRun:
    def __init__(self, events, ledger, log_text, out_dir, traffic_stderr):
        self.events = events
        self.ledger = ledger
        self.log_text = log_text
        self.out_dir = out_dir
        self.traffic_stderr = traffic_stderr


@pytest.fixture(scope="session")
def live_run(hostbeat_bin, topology, db_servers, tmp_path_factory):
    t = topology
    tmp = tmp_path_factory.mktemp("live-protocols")
    out_dir = tmp / "out"
    out_dir.mkdir()
    cfg = tmp / "beats.yml"
    cfg.write_text(CONFIG_TEMPLATE.format(out=out_dir))
    logfile = tmp / "hostbeat.log"
    cmd = ["ip", "netns", "exec", t.ns("host"), str(hostbeat_bin), "-c", str(cfg), "-e"]
    stdout_fh = open(tmp / "hostbeat.stdout", "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout_fh,
                            stderr=subprocess.PIPE, cwd=str(tmp), env=t.proc_env)
    reader = LogReader(proc.stderr, logfile)
    reader.start()
    try:
        if not reader.wait_for(CAPTURE_READY, READY_TIMEOUT, proc):
            pytest.fail("agent did not log %r within %ss (exit status %s); log:\n%s"
                        % (CAPTURE_READY, READY_TIMEOUT, proc.poll(), reader.tail()),
                        pytrace=False)
        traffic = run(["/usr/bin/python3", TRAFFIC_DB, t.prefix], timeout=180)
        assert traffic.returncode == 0, (
            "traffic_db.py failed (rc=%d):\n%s\n%s" % (traffic.returncode, traffic.stderr,
                                                     traffic.stdout))
        ledger = parse_ledger(traffic.stdout)
        time.sleep(SETTLE_AFTER_TRAFFIC)
        assert proc.poll() is None, "agent died during traffic; log:\n%s" % reader.tail()
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail("agent did not exit within %ss of SIGTERM; log:\n%s"
                        % (EXIT_TIMEOUT, reader.tail()), pytrace=False)
        reader.join(timeout=5)
        assert rc == 0, "agent exit status %s after SIGTERM; log:\n%s" % (rc, reader.tail())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=5)
        stdout_fh.close()
    files, events, bad = read_events(out_dir)
    assert files, "no packetbeat*.ndjson file in %s; log:\n%s" % (out_dir, reader.tail())
    assert not bad, "malformed NDJSON lines:\n" + "\n".join(bad[:20])
    return LiveRun(events, ledger, logfile.read_text(encoding="utf-8", errors="replace"),
                   out_dir, traffic.stderr)


@pytest.mark.parametrize("proto", PROTOS)
def test_live_protocol(live_run, topology, db_servers, proto):
    lines = [tx for tx in live_run.ledger if tx.proto == proto]
    if proto == "mongodb" and db_servers.get("SRV_MONGO") != "1":
        pytest.skip("tests/integration/mongo_wire.py absent: no MongoDB server")
    assert lines, "traffic_db.py wrote no %s ledger line" % proto
    problems = match_events(lines, live_run.events, [proto])
    subnet = ipaddress.ip_network(topology.subnet)
    for ev in live_run.events:
        if ev.get("type") != proto:
            continue
        for field, ip in event_ips(ev):
            if ipaddress.ip_address(ip) not in subnet:
                problems.append("event with %s=%r outside %s" % (field, ip, subnet))
        iface = get(ev, "observer", "ingress", "interface", "name")
        if iface != topology.bridge:
            problems.append("observer.ingress.interface.name=%r" % iface)
    assert not problems, "%d problem(s) against %d %s ledger lines:\n  %s" % (
        len(problems), len(lines), proto, "\n  ".join(problems))


def test_live_protocols_capture_health(live_run):
    drops = [int(n) for n in re.findall(r"pcap_drops=(\d+)", live_run.log_text)]
    assert all(n == 0 for n in drops), "agent reports kernel drops %s" % drops
    docs = []
    for path in glob.glob(os.path.join(live_run.out_dir, "hostbeat-metrics-*.ndjson")):
        with open(path, encoding="utf-8") as f:
            docs += [json.loads(line) for line in f if line.strip()]
    assert docs, "no hostbeat-metrics event written (metrics.period is 1s)"
    last = docs[-1]["hostbeat"]
    assert last["capture"]["packets"] > 0
    assert last["capture"]["kernel_drops"] == 0
    # nothing but the six protocols (the session topology's nginx/dnsmasq are idle here)
    types = {e.get("type") for e in live_run.events}
    assert types <= set(PROTOS), "unexpected event types %s" % (types - set(PROTOS))
