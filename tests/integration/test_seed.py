"""The seed scenario, end to end, in the namespace "Docker host":

  nginx "container" (web, 172.17.0.2) serves a static site; a second "container"
  (cli) runs curl against nginx's 172.17.0.x address; a client "outside" fetches the
  site through the host (source 172.17.0.1 on docker0). hostbeat sniffs docker0 in the
  host namespace and ships to the Elasticsearch API double running in that namespace
  (so localhost:PORT is the double, as localhost:9200 is on a real host).

Asserts: one GET / event per fetch (client 172.17.0.1 and the cli container's
address → nginx's address, status 200, response body bytes = the page size);
`curl 'localhost:PORT/packetbeat-*/_search?pretty'` returns them and
`_cat/indices?v` lists packetbeat-* and topbeat-*; topbeat-* holds the host metrics
(cpu, memory, processes); and, when the Kibana double and client are present, that
the Kibana double received the dashboards. stdlib only; needs root.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ESDOUBLE = REPO / "tests" / "esdouble" / "esdouble.py"
KBDOUBLE = REPO / "tests" / "kbdouble" / "kbdouble.py"
FETCHES = 3


def start_double(t, script, tmp, name, extra=()):
    """A double inside the host namespace; returns (process, port)."""
    log = open(tmp / f"{name}.log", "w+")
    p = subprocess.Popen(["ip", "netns", "exec", t.ns("host"), "/usr/bin/python3", str(script),
                          "--port", "0", *extra], stdout=subprocess.PIPE, stderr=log,
                         text=True, env=t.proc_env)
    line = p.stdout.readline()
    assert "listening on" in line, f"{name} did not start: {line!r}"
    return p, int(line.split()[-1])


def curl_host(t, url):
    r = t.run("host", ["curl", "-s", "-f", url], timeout=30)
    assert r.returncode == 0, (url, r.stderr)
    return r.stdout


def test_seed(hostbeat_bin, topology, tmp_path):
    t = topology
    es, es_port = start_double(t, ESDOUBLE, tmp_path, "esdouble", ["--realtime"])
    kb = kb_port = None
    if KBDOUBLE.exists():
        kb, kb_port = start_double(t, KBDOUBLE, tmp_path, "kbdouble")
    cfg = tmp_path / "beats.yml"
    cfg.write_text(
        "packetbeat.interfaces.device: docker0\n"
        "packetbeat.protocols:\n- {type: http, ports: [80]}\n- {type: dns, ports: [53]}\n"
        "topbeat.period: 1s\n"
        "output.elasticsearch:\n"
        f"  hosts: ['localhost:{es_port}']\n"
        "  backoff.init: 100ms\n"
        f"queue.spool.path: {tmp_path}/spool\n"
        + (f"setup.dashboards.enabled: true\nsetup.dashboards.directory: {REPO}/dashboards\n"
           f"setup.kibana.host: 'localhost:{kb_port}'\n" if kb else ""))
    log = open(tmp_path / "hostbeat.log", "w+")
    hb = subprocess.Popen(["ip", "netns", "exec", t.ns("host"), str(hostbeat_bin), "-c", str(cfg),
                           "-e"], stdout=subprocess.DEVNULL, stderr=log, cwd=str(tmp_path),
                          env=t.proc_env)
    try:
        deadline = time.time() + 15
        while time.time() < deadline and "capturing on docker0" not in \
                (tmp_path / "hostbeat.log").read_text():
            time.sleep(0.2)
        sizes = []
        for _ in range(FETCHES):
            for role in ("cli", "host"):
                r = t.run(role, ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                                 f"http://{t.web_ip}/"], timeout=30)
                assert r.returncode == 0, r.stderr
                sizes.append(int(r.stdout))
        assert set(sizes) == {t.index_size}
        time.sleep(3)  # a few samples, and the last transactions shipped
        hb.send_signal(signal.SIGTERM)
        assert hb.wait(timeout=60) == 0, (tmp_path / "hostbeat.log").read_text()[-3000:]

        curl_host(t, f"http://localhost:{es_port}/_refresh")
        cat = curl_host(t, f"http://localhost:{es_port}/_cat/indices?v")
        assert "packetbeat-" in cat and "topbeat-" in cat, cat
        res = json.loads(curl_host(t, f"http://localhost:{es_port}/packetbeat-*/_search?"
                                      "pretty&size=1000"))
        gets = [h["_source"] for h in res["hits"]["hits"]
                if h["_source"].get("type") == "http"
                and h["_source"].get("url", {}).get("path") == "/"]
        by_client = {}
        for ev in gets:
            assert ev["method"] == "GET" and ev["http"]["response"]["status_code"] == 200
            assert ev["destination"]["ip"] == t.web_ip and ev["destination"]["port"] == 80
            assert ev["http"]["response"]["body"]["bytes"] == t.index_size
            by_client[ev["source"]["ip"]] = by_client.get(ev["source"]["ip"], 0) + 1
        assert by_client == {t.host_ip: FETCHES, t.cli_ip: FETCHES}, by_client

        sysres = json.loads(curl_host(t, f"http://localhost:{es_port}/topbeat-*/_search?size=1000"))
        datasets = {h["_source"]["event"]["dataset"] for h in sysres["hits"]["hits"]}
        assert {"system.cpu", "system.memory", "system.process"} <= datasets, datasets
        stats = json.loads(curl_host(t, f"http://localhost:{es_port}/_double/stats"))
        assert stats["violations"] == [] and stats["doc_errors"] == 0, stats

        if kb:
            objs = json.loads(curl_host(t, f"http://localhost:{kb_port}/_double/objects"))
            types = {o["type"] for o in objs["objects"]}
            assert {"index-pattern", "visualization", "dashboard"} <= types, types
    finally:
        for p in (hb, es, kb):
            if p and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        log.close()
