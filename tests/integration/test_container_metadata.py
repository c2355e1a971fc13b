"""container.* on live transactions, from Docker's state files under topbeat.hostfs.

The namespace "Docker host" has no Docker engine (none can run here), so the test
writes what Docker would: var/lib/docker/containers/<id>/config.v2.json under a
hostfs directory, one per namespace "container", with the namespace's real IP.
The agent captures live on docker0 and must name the container that served each
transaction (the server; the client when the server is not a container), follow a
container stopping and another starting while it runs, and add nothing for
addresses no running container has.
stdlib only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from test_live_capture import LogReader, get, read_events

CAPTURE_READY = "capturing on docker0"
REFRESH_WAIT = 3.0  # the agent re-reads Docker's state every second

IDS = {role: (f"{n:x}" * 64)[:64] for n, role in ((0xa, "web"), (0xb, "dns"), (0xc, "cli"))}


def write_container(hostfs: Path, role: str, ip: str, running: bool):
    d = hostfs / "var/lib/docker/containers" / IDS[role]
    d.mkdir(parents=True, exist_ok=True)
    doc = {
        "ID": IDS[role],
        "Name": f"/{role}",
        "Config": {"Image": f"example/{role}:1.0", "Hostname": IDS[role][:12]},
        "State": {"Running": running, "Pid": 4242 if running else 0},
        "NetworkSettings": {"Networks": {"bridge": {
            "IPAddress": ip if running else "", "GlobalIPv6Address": "",
            "MacAddress": "02:42:ac:11:00:02"}}},
    }
    tmp = d / "config.v2.json.tmp"
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, d / "config.v2.json")  # as Docker does: never a half-written file


class LiveAgent:
    """The agent capturing on docker0 in the host namespace, Docker's state under
    `hostfs`, file output into out_dir; extra = more config lines."""

    def __init__(self, binary, t, tmp_path: Path, hostfs: Path, extra: str = ""):
        self.out_dir = tmp_path / "out"
        self.out_dir.mkdir()
        cfg = tmp_path / "beats.yml"
        cfg.write_text(f"""\
packetbeat.interfaces.device: docker0
packetbeat.protocols:
- {{type: http, ports: [80]}}
- {{type: dns, ports: [53]}}
topbeat.enabled: false
topbeat.hostfs: {hostfs}
output.file:
  path: {self.out_dir}
""" + extra)
        cmd = ["ip", "netns", "exec", t.ns("host"), str(binary), "-c", str(cfg), "-e"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=str(tmp_path), env=t.proc_env)
        self.reader = LogReader(self.proc.stderr, tmp_path / "hostbeat.log")
        self.reader.start()

    def ready(self):
        assert self.reader.wait_for(CAPTURE_READY, 10, self.proc), self.reader.tail()
        time.sleep(REFRESH_WAIT)

    def stop(self):
        """SIGTERM after the last packets settled; the events written."""
        time.sleep(1.5)
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=20) == 0, self.reader.tail()
        _, events, bad = read_events(self.out_dir)
        assert not bad, bad
        return events

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.reader.join(timeout=5)


def test_container_metadata_live(hostbeat_bin, topology, tmp_path):
    t = topology
    hostfs = tmp_path / "hostfs"
    write_container(hostfs, "web", t.web_ip, True)
    write_container(hostfs, "dns", t.dns_ip, True)
    agent = LiveAgent(hostbeat_bin, t, tmp_path, hostfs)

    def curl(path):
        r = t.run("cli", ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                          f"http://{t.web_ip}{path}"])
        assert r.returncode == 0, r.stderr

    def dig(qtype):
        r = t.run("cli", ["dig", f"@{t.dns_ip}", "+notcp", "+tries=1", "+time=2",
                          qtype, f"www.{t.zone}"])
        assert r.returncode == 0, r.stderr

    try:
        agent.ready()
        curl("/index.html?phase=1")
        dig("A")
        # web stops, cli starts: the map follows while the agent runs
        write_container(hostfs, "web", t.web_ip, False)
        write_container(hostfs, "cli", t.cli_ip, True)
        time.sleep(REFRESH_WAIT)
        curl("/index.html?phase=2")
        dig("TXT")
        events = agent.stop()
    finally:
        agent.kill()

    def one(pred, what):
        hits = [ev for ev in events if pred(ev)]
        assert len(hits) == 1, f"{what}: {len(hits)} events\n{agent.reader.tail()}"
        return hits[0]

    def container(ev):
        return (get(ev, "container", "id"), get(ev, "container", "name"),
                get(ev, "container", "image", "name"))

    web1 = one(lambda e: e.get("type") == "http" and get(e, "url", "query") == "phase=1",
               "http phase 1")
    web2 = one(lambda e: e.get("type") == "http" and get(e, "url", "query") == "phase=2",
               "http phase 2")
    dns1 = one(lambda e: e.get("type") == "dns" and get(e, "dns", "question", "type") == "A",
               "dns A")
    dns2 = one(lambda e: e.get("type") == "dns" and get(e, "dns", "question", "type") == "TXT",
               "dns TXT")
    # the server's container while it runs
    assert container(web1) == (IDS["web"], "web", "example/web:1.0")
    assert container(dns1) == (IDS["dns"], "dns", "example/dns:1.0")
    # web stopped: its address belongs to no container; the client's container instead
    assert container(web2) == (IDS["cli"], "cli", "example/cli:1.0")
    assert container(dns2) == (IDS["dns"], "dns", "example/dns:1.0")
    assert get(web1, "client", "ip") == t.cli_ip == get(web2, "client", "ip")


def test_container_metadata_off(hostbeat_bin, topology, tmp_path):
    """packetbeat.container_metadata.enabled: false adds nothing."""
    t = topology
    hostfs = tmp_path / "hostfs"
    write_container(hostfs, "web", t.web_ip, True)
    agent = LiveAgent(hostbeat_bin, t, tmp_path, hostfs,
                      "packetbeat.container_metadata.enabled: false\n")
    try:
        agent.ready()
        r = t.run("cli", ["curl", "-s", "-o", "/dev/null", f"http://{t.web_ip}/index.html"])
        assert r.returncode == 0, r.stderr
        events = agent.stop()
    finally:
        agent.kill()
    http = [e for e in events if e.get("type") == "http"]
    assert len(http) == 1, agent.reader.tail()
    assert "container" not in http[0]
