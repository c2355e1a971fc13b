"""hostbeat's index templates (shipper/template.c) against the Elasticsearch double.

For Elasticsearch 8.15 / 7.17 / 7.7 (legacy _template) / 9.1 and OpenSearch 2.11: install
every request tests/tools/template_dump lists (ILM on), in order, as the output would;
then bulk-index every golden document (tests/pcap/expected/*.ndjson) into
packetbeat-2024.01.01 and require that none is refused by the mapping
(document_parsing_exception / mapper_parsing_exception), and that the index took its
mapping from our template (client.ip is an ip, dns.answers.ttl a long, ...), not from
dynamic mapping. A control document with a bad IP must be refused, so the check can fail.

template_dump: $TEMPLATE_DUMP, else $BUILD/tools/template_dump (BUILD default "build"),
built with make when missing. The double is tests/esdouble/esdouble.py, in-process.
"""
from __future__ import annotations

import glob
import http.client
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from esdouble import EsDouble  # noqa: E402

INDEX = "packetbeat-2024.01.01"
TARGETS = [  # (double --version, template_dump distribution, number)
    ("8.15.0", "es", "8.15.0"),
    ("9.1.0", "es", "9.1.0"),
    ("7.17.0", "es", "7.17.0"),
    ("7.7.0", "es", "7.7.0"),
    ("opensearch-2.11.0", "opensearch", "2.11.0"),
]


def template_dump_bin():
    env = os.environ.get("TEMPLATE_DUMP")
    if env:
        return env if os.path.isabs(env) else os.path.join(os.getcwd(), env)
    build = os.environ.get("BUILD", "build")
    path = ROOT / build / "tools" / "template_dump"
    if not os.access(path, os.X_OK):
        r = subprocess.run(["make", f"BUILD={build}", f"{build}/tools/template_dump"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.fail(f"cannot build {path}: {r.stderr[-2000:]}")
    return str(path)


def requests_for(dist, number, *overrides):
    cmd = [template_dump_bin(), dist, number, "-E", "setup.ilm.enabled=true"]
    for o in overrides:
        cmd += ["-E", o]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def call(d, method, path, body=None, ctype="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=30)
    headers = {}
    if body is not None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        headers["Content-Type"] = ctype
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


def golden_docs():
    docs = []
    for path in sorted(glob.glob(str(ROOT / "tests" / "pcap" / "expected" / "*.ndjson"))):
        with open(path, encoding="utf-8") as f:
            docs += [line.rstrip("\n") for line in f if line.strip()]
    return docs


def bulk(d, docs):
    body = "".join('{"create":{"_index":"%s"}}\n%s\n' % (INDEX, doc) for doc in docs)
    status, resp = call(d, "POST", "/_bulk?refresh=true", body, "application/x-ndjson")
    assert status == 200, resp
    return resp


def mapping_type(mappings, dotted):
    node = mappings
    for part in dotted.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return None
    return node.get("type", "object")


@pytest.mark.parametrize("spec,dist,number", TARGETS, ids=[t[0] for t in TARGETS])
def test_golden_documents_fit_the_templates(spec, dist, number):
    docs = golden_docs()
    assert len(docs) > 100, "golden documents missing"
    reqs = requests_for(dist, number)
    d = EsDouble(version=spec).start()
    try:
        for r in reqs:
            # what an installer does: GET (absent), then PUT
            status, _ = call(d, "GET", r["path"])
            assert status == 404, (r["path"], status)
            status, resp = call(d, r["method"], r["path"], r["body"])
            assert status == 200, (r["path"], resp)
        assert not d.violations, d.violations
        kinds = [r["path"].split("/")[1] for r in reqs]
        if dist == "opensearch":
            assert "_ilm" not in kinds
        else:
            assert kinds[0] == "_ilm"
        assert ("_template" in kinds) == (number == "7.7.0")

        resp = bulk(d, docs)
        refused = [(i, it) for i, it in enumerate(resp["items"]) if it["create"]["status"] >= 300]
        assert not d.doc_errors, ("%d golden document(s) refused by the mapping, first: %s"
                                  % (len(d.doc_errors), d.doc_errors[0]))
        assert not refused, refused[:3]

        status, m = call(d, "GET", "/" + INDEX + "/_mapping")
        assert status == 200
        mappings = m[INDEX]["mappings"]
        for path, want in [("client.ip", "ip"), ("related.ip", "ip"), ("dns.answers.ttl", "long"),
                           ("@timestamp", "date"), ("event.end", "date"), ("query", "keyword"),
                           ("request", "text"), ("http.request.headers.content-type", "keyword"),
                           ("network.forwarded_ip", "ip"), ("dns.flags.authoritative", "boolean")]:
            assert mapping_type(mappings, path) == want, (path, mapping_type(mappings, path))
        if dist != "opensearch":
            status, s = call(d, "GET", "/_cat/indices/" + INDEX + "?format=json")
            assert status == 200

        # the control: a value our template refuses is refused
        resp = bulk(d, ['{"@timestamp":"2024-01-01T00:00:00Z","client":{"ip":"not-an-ip"}}'])
        assert resp["errors"] is True
        assert d.doc_errors, "a bad IP was accepted: the check could not fail"
    finally:
        d.stop()


def test_installed_templates_read_back():
    """GET of each installed resource shows our _meta fingerprint (what
    template_installed_state() looks for)."""
    reqs = requests_for("es", "8.15.0")
    d = EsDouble(version="8.15.0").start()
    try:
        for r in reqs:
            assert call(d, r["method"], r["path"], r["body"])[0] == 200
        for r in reqs:
            status, got = call(d, "GET", r["path"])
            assert status == 200
            kind = r["path"].split("/")[1]
            if kind == "_ilm":
                meta = next(iter(got.values()))["policy"]["_meta"]
            elif kind == "_component_template":
                meta = got["component_templates"][0]["component_template"]["_meta"]
            else:
                meta = got["index_templates"][0]["index_template"]["_meta"]
            assert meta["fingerprint"] == r["fingerprint"]
    finally:
        d.stop()


def live_sample_docs(tmp_path):
    """~2.5 s of the system side with everything on (cpu_per_core, cpu_ticks, legacy
    names, tags, self-metrics each second): {file prefix: [documents]}."""
    import signal
    import time

    binary = ROOT / os.environ.get("HOSTBEAT", "hostbeat")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"binary {binary} not built")
    cmd = [str(binary), "-c", str(ROOT / "tests" / "pcap" / "golden.yml"), "-e",
           "-E", "packetbeat.enabled=false", "-E", "topbeat.period=1s",
           "-E", "output.file.path=" + str(tmp_path), "-E", "logging.level=error",
           "-E", "topbeat.stats.cpu_per_core=true", "-E", "topbeat.stats.cpu_ticks=true",
           "-E", "legacy_fields=true", "-E", "tags=[a, b]", "-E", "metrics.period=1s"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-1000:]
    out = {}
    for path in sorted(tmp_path.glob("*.ndjson")):
        prefix = path.name.rsplit("-", 1)[0]  # topbeat, hostbeat-metrics
        out.setdefault(prefix, []).extend(line.rstrip("\n") for line in path.open() if line.strip())
    return out


@pytest.mark.parametrize("spec,dist,number", [TARGETS[0], TARGETS[3], TARGETS[4]],
                         ids=[TARGETS[0][0], TARGETS[3][0], TARGETS[4][0]])
def test_live_system_documents_fit_the_templates(spec, dist, number, tmp_path):
    groups = live_sample_docs(tmp_path)
    assert "topbeat" in groups and "hostbeat-metrics" in groups, sorted(groups)
    d = EsDouble(version=spec).start()
    try:
        for r in requests_for(dist, number):
            assert call(d, r["method"], r["path"], r["body"])[0] == 200, r["path"]
        for prefix, docs in groups.items():
            index = prefix + "-2024.01.01"
            body = "".join('{"create":{"_index":"%s"}}\n%s\n' % (index, doc) for doc in docs)
            status, resp = call(d, "POST", "/_bulk?refresh=true", body, "application/x-ndjson")
            assert status == 200, resp
            assert not d.doc_errors, ("%s: %d document(s) refused, first: %s"
                                      % (index, len(d.doc_errors), d.doc_errors[0]))
            assert not resp["errors"], [it for it in resp["items"] if it["create"]["status"] >= 300][:3]
        status, m = call(d, "GET", "/topbeat-2024.01.01/_mapping")
        mappings = m["topbeat-2024.01.01"]["mappings"]
        for path, want in [("system.cpu.user.pct", "scaled_float"), ("cpu.user", "long"),
                           ("process.start", "date"), ("proc.cpu.start_time", "keyword"),
                           ("system.load.1", "double"), ("process.command_line", "keyword")]:
            assert mapping_type(mappings, path) == want, (path, mapping_type(mappings, path))
        status, m = call(d, "GET", "/hostbeat-metrics-2024.01.01/_mapping")
        mappings = m["hostbeat-metrics-2024.01.01"]["mappings"]
        assert mapping_type(mappings, "hostbeat.queue.published") == "long"
    finally:
        d.stop()


def test_coexists_with_a_beats_8_packetbeat_template():
    """A real Packetbeat 8 installs "packetbeat-8.15.0*" at priority 150: ours
    ("packetbeat-*") must not clash with it, and each index gets its own template."""
    reqs = requests_for("es", "8.15.0")
    d = EsDouble(version="8.15.0").start()
    try:
        beats = {"index_patterns": ["packetbeat-8.15.0*"], "priority": 150,
                 "template": {"mappings": {"properties": {"client": {"properties": {
                     "ip": {"type": "keyword"}}}}}}}
        assert call(d, "PUT", "/_index_template/packetbeat-8.15.0", beats)[0] == 200
        for r in reqs:
            status, resp = call(d, r["method"], r["path"], r["body"])
            assert status == 200, (r["path"], resp)
        bulk(d, ['{"@timestamp":"2024-01-01T00:00:00Z","client":{"ip":"10.0.0.1"}}'])
        status, m = call(d, "GET", "/" + INDEX + "/_mapping")
        assert mapping_type(m[INDEX]["mappings"], "client.ip") == "ip"
    finally:
        d.stop()
