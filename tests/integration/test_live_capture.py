"""Live capture tests: the agent sniffs docker0 in a namespace "Docker host".

test_topology_sanity  - the topology itself works (no agent needed).
test_live_capture     - runs $HOSTBEAT inside the host namespace on docker0,
                        drives traffic.sh, and checks that every ledger
                        transaction is reported exactly once, correctly.
stdlib only.
"""

from __future__ import annotations

import glob
import ipaddress
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from hbledger import parse_ledger

CAPTURE_READY = "capturing on docker0"
READY_TIMEOUT = 10.0
SETTLE_AFTER_TRAFFIC = 1.5
EXIT_TIMEOUT = 20.0
NDJSON_NAME = re.compile(r"^packetbeat-\d{4}\.\d{2}\.\d{2}\.ndjson$")

CONFIG_TEMPLATE = """\
packetbeat.interfaces.device: docker0
packetbeat.protocols:
- type: http
  ports: [80]
- type: dns
  ports: [53]
output.file:
  path: {out}
metrics.period: 1s
"""


# --------------------------------------------------------------------------- helpers

def get(obj, *keys):
    """Nested lookup: get(ev, "http", "response", "status_code"); None if absent.
    Also accepts dotted flat keys ("url.path") at any level."""
    cur = obj
    for i, k in enumerate(keys):
        if not isinstance(cur, dict):
            return None
        if k in cur:
            cur = cur[k]
            continue
        flat = ".".join(keys[i:])
        return cur.get(flat)
    return cur


def http_method(ev):
    m = ev.get("method")
    if m is not None:
        return m
    m = get(ev, "http", "request", "method")
    return m.upper() if isinstance(m, str) else m


def matches_http(ev, tx):
    return (ev.get("type") == "http"
            and http_method(ev) == tx.verb
            and get(ev, "url", "path") == tx.target
            and get(ev, "client", "ip") == tx.client
            and get(ev, "server", "ip") == tx.server)


def matches_dns(ev, tx):
    return (ev.get("type") == "dns"
            and get(ev, "dns", "question", "name") == tx.target
            and get(ev, "dns", "question", "type") == tx.verb
            and get(ev, "client", "ip") == tx.client
            and get(ev, "server", "ip") == tx.server)


def event_ips(ev):
    """All packet-endpoint IPs an event claims (not DNS answer data)."""
    ips = []
    for k in ("client", "server", "source", "destination"):
        ip = get(ev, k, "ip")
        if ip is not None:
            ips.append((f"{k}.ip", ip))
    for k in ("client_ip", "ip"):  # legacy Packetbeat top-level fields
        if isinstance(ev.get(k), str):
            ips.append((k, ev[k]))
    return ips


def brief(ev):
    keys = ("type", "status", "method", "query", "url", "client", "server", "dns", "http")
    return json.dumps({k: ev[k] for k in keys if k in ev}, sort_keys=True)[:600]


class LogReader(threading.Thread):
    """Drains the agent's stderr so it can never block on a full pipe."""

    def __init__(self, stream, logfile: Path):
        super().__init__(daemon=True)
        self.stream = stream
        self.logfile = logfile
        self.lines = []
        self.cond = threading.Condition()

    def run(self):
        with open(self.logfile, "w", encoding="utf-8") as fh:
            for raw in iter(self.stream.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip("\n")
                fh.write(line + "\n")
                fh.flush()
                with self.cond:
                    self.lines.append(line)
                    self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, needle, timeout, proc):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if any(needle in l for l in self.lines):
                    return True
                if proc.poll() is not None and not self.is_alive():
                    return False
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))

    def tail(self, n=60):
        with self.cond:
            return "\n".join(self.lines[-n:])


def read_events(out_dir: Path):
    files = sorted(glob.glob(str(out_dir / "packetbeat*.ndjson*")))
    events, bad = [], []
    for f in files:
        with open(f, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError as e:
                    bad.append(f"{os.path.basename(f)}:{n}: {e}")
                    continue
                if not isinstance(ev, dict):
                    bad.append(f"{os.path.basename(f)}:{n}: not a JSON object")
                    continue
                events.append(ev)
    return files, events, bad


# ----------------------------------------------------------------------------- tests

def test_topology_sanity(topology):
    t = topology
    r = t.run("host", ["ip", "-br", "addr", "show", "dev", t.bridge])
    assert r.returncode == 0 and f"{t.host_ip}/16" in r.stdout, r.stdout + r.stderr

    r = t.run("cli", ["curl", "--noproxy", "*", "-sS", "--http1.1", "--max-time", "10",
                      "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                      f"http://{t.web_ip}/index.html"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["200", str(t.index_size)]

    r = t.run("cli", ["dig", f"@{t.dns_ip}", "+notcp", "+tries=1", "+time=2", "+short",
                      "A", f"www.{t.zone}"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [t.web_ip]

    r = t.run("cli", ["dig", f"@{t.dns_ip}", "+notcp", "+tries=1", "+time=2",
                      "A", f"nothere.{t.zone}"])
    assert "status: NXDOMAIN" in r.stdout, r.stdout


def test_live_capture(hostbeat_bin, topology, tmp_path):
    t = topology
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    cfg = tmp_path / "beats.yml"
    cfg.write_text(CONFIG_TEMPLATE.format(out=out_dir))
    logfile = tmp_path / "hostbeat.log"

    cmd = ["ip", "netns", "exec", t.ns("host"), str(hostbeat_bin), "-c", str(cfg), "-e"]
    stdout_fh = open(tmp_path / "hostbeat.stdout", "wb")
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout_fh,
                            stderr=subprocess.PIPE, cwd=str(tmp_path), env=t.proc_env)
    reader = LogReader(proc.stderr, logfile)
    reader.start()
    try:
        if not reader.wait_for(CAPTURE_READY, READY_TIMEOUT, proc):
            pytest.fail(f"agent did not log {CAPTURE_READY!r} within {READY_TIMEOUT}s "
                        f"(exit status {proc.poll()}); log:\n{reader.tail()}", pytrace=False)

        traffic = t.traffic()
        assert traffic.returncode == 0, (
            f"traffic.sh failed (rc={traffic.returncode}):\n{traffic.stderr}\n{traffic.stdout}")
        ledger = parse_ledger(traffic.stdout)

        time.sleep(SETTLE_AFTER_TRAFFIC)
        assert proc.poll() is None, f"agent died during traffic; log:\n{reader.tail()}"
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"agent did not exit within {EXIT_TIMEOUT}s of SIGTERM; log:\n"
                        f"{reader.tail()}", pytrace=False)
        reader.join(timeout=5)
        assert rc == 0, f"agent exit status {rc} after SIGTERM; log:\n{reader.tail()}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=5)
        stdout_fh.close()

    log_text = logfile.read_text(encoding="utf-8", errors="replace")

    # --- kernel drops: every pcap_drops=N the agent logs must be 0
    drops = [int(n) for n in re.findall(r"pcap_drops=(\d+)", log_text)]
    assert all(n == 0 for n in drops), f"agent reports kernel drops {drops}; log:\n{reader.tail()}"

    # --- output files
    files, events, bad = read_events(out_dir)
    assert files, f"no packetbeat*.ndjson file in {out_dir}; log:\n{reader.tail()}"
    assert any(NDJSON_NAME.match(os.path.basename(f)) for f in files), (
        f"no file named packetbeat-YYYY.MM.DD.ndjson among {[os.path.basename(f) for f in files]}")
    assert not bad, "malformed NDJSON lines:\n" + "\n".join(bad[:20])

    problems = []

    # --- nothing outside the docker subnet
    subnet = ipaddress.ip_network(t.subnet)
    for ev in events:
        for field, ip in event_ips(ev):
            try:
                ok = ipaddress.ip_address(ip) in subnet
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"event with {field}={ip!r} outside {subnet}: {brief(ev)}")

    # --- every ledger transaction exactly once, with the right content
    tx_events = [ev for ev in events if ev.get("type") in ("http", "dns")]
    claimed = set()
    for tx in ledger:
        match = matches_http if tx.proto == "http" else matches_dns
        hits = [i for i, ev in enumerate(tx_events) if match(ev, tx)]
        if len(hits) != 1:
            problems.append(f"{tx.line!r}: reported {len(hits)} times (want exactly 1)")
            continue
        claimed.add(hits[0])
        ev = tx_events[hits[0]]
        where = f"{tx.line!r}: "

        if get(ev, "network", "transport") != tx.transport:
            problems.append(where + f"network.transport={get(ev, 'network', 'transport')!r}")
        if get(ev, "observer", "ingress", "interface", "name") != t.bridge:
            problems.append(where + "observer.ingress.interface.name="
                            f"{get(ev, 'observer', 'ingress', 'interface', 'name')!r}")

        if tx.proto == "http":
            code = get(ev, "http", "response", "status_code")
            if code != tx.status_code or isinstance(code, bool):
                problems.append(where + f"http.response.status_code={code!r}")
            want_status = "OK" if tx.status_code < 400 else "Error"
            if ev.get("status") != want_status:
                problems.append(where + f"status={ev.get('status')!r} (want {want_status!r})")
            if get(ev, "server", "port") != 80:
                problems.append(where + f"server.port={get(ev, 'server', 'port')!r}")
            if tx.verb == "GET" and tx.target in ("/index.html", "/big.bin"):
                want = t.index_size if tx.target == "/index.html" else t.big_size
                got = get(ev, "http", "response", "body", "bytes")
                if got != want:
                    problems.append(where + f"http.response.body.bytes={got!r} (want {want})")
        else:
            rcode = get(ev, "dns", "response_code")
            if rcode != tx.status:
                problems.append(where + f"dns.response_code={rcode!r}")
            want_status = "OK" if tx.status == "NOERROR" else "Error"
            if ev.get("status") != want_status:
                problems.append(where + f"status={ev.get('status')!r} (want {want_status!r})")
            if get(ev, "server", "port") != 53:
                problems.append(where + f"server.port={get(ev, 'server', 'port')!r}")

    # --- and nothing that was not in the workload
    for i, ev in enumerate(tx_events):
        if i not in claimed and not any(
                (matches_http if tx.proto == "http" else matches_dns)(ev, tx) for tx in ledger):
            problems.append(f"unexpected {ev.get('type')} event: {brief(ev)}")

    # --- the self-metrics events (hostbeat-metrics-*.ndjson, one per metrics.period)
    metric_docs = []
    for path in glob.glob(os.path.join(out_dir, "hostbeat-metrics-*.ndjson")):
        with open(path, encoding="utf-8") as f:
            metric_docs += [json.loads(line) for line in f if line.strip()]
    if not metric_docs:
        problems.append("no hostbeat-metrics event written (metrics.period is 1s)")
    else:
        last = metric_docs[-1]["hostbeat"]
        if last["capture"]["packets"] <= 0:
            problems.append(f"hostbeat-metrics: capture.packets={last['capture']['packets']}")
        if last["capture"]["kernel_drops"] != 0:
            problems.append(f"hostbeat-metrics: capture.kernel_drops={last['capture']['kernel_drops']}")

    assert not problems, (
        f"{len(problems)} problem(s) with {len(events)} events from {len(files)} file(s) "
        f"against {len(ledger)} ledger lines:\n  " + "\n  ".join(problems)
        + f"\n--- agent log tail:\n{reader.tail(30)}")
