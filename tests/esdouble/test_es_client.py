"""shipper/es.c against the Elasticsearch API double, through tests/tools/es_probe.

Run: make BUILD=build tools && /usr/bin/python3 -m pytest -q tests/esdouble/test_es_client.py
(BUILD selects the build directory, as in tests/run_all.sh; ES_PROBE overrides the binary.)

Covers GET / per version, Basic and ApiKey auth (401 surfaced as a status), extra headers and
the fixed ones as the double logged them, TLS with a throw-away CA (full / certificate / none,
wrong CA, ca_trusted_fingerprint), failover from a refused host, the timeout against a hung
request, a gzip request body, the path prefix, HEAD/PUT/DELETE, and the response body cap.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
from esdouble import EsDouble  # noqa: E402

PROBE = Path(os.environ.get("ES_PROBE") or REPO / os.environ.get("BUILD", "build") / "tools" / "es_probe")

pytestmark = pytest.mark.skipif(not PROBE.exists(), reason=f"{PROBE} not built (make BUILD=... tools)")


# ----------------------------------------------------------------------------- helpers

class Result:
    def __init__(self, proc, elapsed):
        self.rc, self.stdout, self.stderr, self.elapsed = proc.returncode, proc.stdout, proc.stderr, elapsed
        lines = self.stdout.split("\n")
        self.fields = {}
        for ln in lines:
            key, _, val = ln.partition(" ")
            if key in ("host", "status", "error", "number", "version", "distribution", "build_flavor",
                       "cluster_name", "serverless", "product_missing") and key not in self.fields:
                self.fields[key] = val
        # get/post: the body follows the "status" line
        self.body = "\n".join(lines[2:]) if self.fields.get("status") else ""
        self.metrics = {}
        for ln in self.stderr.splitlines():
            if ln.startswith("metrics "):
                self.metrics = {k: int(v) for k, v in (kv.split("=") for kv in ln.split()[1:])}

    @property
    def status(self):
        return int(self.fields["status"]) if "status" in self.fields else None

    def json(self):
        return json.loads(self.body)


def probe(hosts, *args, overrides=(), timeout=30, stdin=None):
    cmd = [str(PROBE), "-E", "output.elasticsearch.hosts=" + json.dumps(list(hosts))]
    for ov in overrides:
        cmd += ["-E", ov]
    cmd += [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=stdin)
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    return Result(p, time.monotonic() - t0)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def double():
    started = []

    def make(**kw):
        d = EsDouble(**kw).start()
        started.append(d)
        return d
    yield make
    for d in started:
        d.clear_faults()
        d.stop()


@pytest.fixture
def es(double):
    return double(version="8.15.0")


def last_request(d, path=None):
    reqs = [r for r in d.requests if path is None or r["path"] == path]
    assert reqs, f"the double saw no request {path or ''}"
    return reqs[-1]


# ----------------------------------------------------------------------------- GET /

@pytest.mark.parametrize("version,major,minor,dist,flavor", [
    ("7.17.0", 7, 17, "elasticsearch", "default"),
    ("8.15.0", 8, 15, "elasticsearch", "default"),
    ("9.1.0", 9, 1, "elasticsearch", "default"),
    ("opensearch-2.11.0", 2, 11, "opensearch", ""),
])
def test_info(double, version, major, minor, dist, flavor):
    d = double(version=version)
    r = probe([d.url], "info")
    assert r.rc == 0, r.stderr
    assert r.fields["host"] == d.url
    assert r.fields["version"] == f"{major} {minor} 0"
    assert r.fields["distribution"] == dist
    assert r.fields["build_flavor"] == flavor
    assert r.fields["cluster_name"] == "docker-cluster"
    assert r.fields["product_missing"] == "false"
    assert r.metrics["requests"] == 1
    req = last_request(d, "/")
    assert req["method"] == "GET" and req["status"] == 200


def test_head_put_delete_and_prefix(es):
    r = probe([es.url], "head", "/")
    assert (r.rc, r.status, r.body) == (0, 200, ""), r.stderr
    assert last_request(es)["method"] == "HEAD"

    r = probe([es.url], "put", "/probe-index", "/dev/null")     # a PUT without a body
    assert (r.rc, r.status) == (0, 200), r.stdout
    assert r.json()["acknowledged"] is True
    assert "probe-index" in es.indices()
    r = probe([es.url], "delete", "/probe-index")
    assert (r.rc, r.status) == (0, 200), r.stdout
    assert "probe-index" not in es.indices()

    # output.elasticsearch.path and a path in the host URL go in front of every request
    r = probe([f"127.0.0.1:{es.port}"], "get", "/_cat/indices?format=json",
              overrides=["output.elasticsearch.path=/proxy/es/"])
    assert r.status == 400 and "no handler found" in r.body      # the double has no prefix
    assert last_request(es)["path"] == "/proxy/es/_cat/indices?format=json"
    probe([f"http://127.0.0.1:{es.port}/other"], "get", "/_count",
          overrides=["output.elasticsearch.path=/proxy"])
    assert last_request(es)["path"] == "/other/_count"


def test_one_connection_many_methods(es, tmp_path):
    """One client: every method in turn on one kept-alive connection, no option left over."""
    accepted = []
    srv = es._server
    orig = srv.finish_request

    def counting(request, addr):
        accepted.append(addr)
        return orig(request, addr)
    srv.finish_request = counting
    q = tmp_path / "q.json"
    q.write_text('{"query":{"match_all":{}}}')
    script = [("GET", "/", None), ("HEAD", "/", None), ("POST", "/_search", q), ("GET", "/_cat/indices", None),
              ("PUT", "/b-idx", None), ("HEAD", "/b-idx", None), ("DELETE", "/b-idx", None), ("GET", "/", None),
              ("POST", "/_refresh", None), ("GET", "/_count", None)]
    r = probe([es.url], "batch", stdin="".join(f"{m} {p} {f or ''}\n" for m, p, f in script))
    assert r.rc == 0, r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert [ln.split()[:4] for ln in out] == [[m, p, "status", "200"] for m, p, _ in script]
    assert out[1].endswith("len 0")                           # HEAD: no body read
    log = es.requests[-len(script):]
    assert [(q["method"], q["path"]) for q in log] == [(m, p) for m, p, _ in script]
    for (m, _, f), q in zip(script, log):
        h = q["headers"]
        if f:
            assert int(h["Content-Length"]) == f.stat().st_size and h["Content-Type"] == "application/json"
        elif m in ("GET", "HEAD", "DELETE"):
            assert "Content-Length" not in h and "Content-Type" not in h, (m, h)
        else:
            assert h.get("Content-Length") == "0" and "Content-Type" not in h, (m, h)
    assert len(accepted) == 1, accepted                       # HTTP/1.1 keep-alive
    assert r.metrics["requests"] == len(script)


def test_old_and_foreign_answers_refused(double):
    d = double(version="8.15.0")
    d.set_faults(status={"code": 502, "count": 1, "path": "/"})
    r = probe([d.url], "info")
    assert r.rc == 3 and r.fields["error"] == "EIO", r.stdout
    assert "502" in r.stderr


# ----------------------------------------------------------------------------- auth and headers

def test_basic_auth(double):
    d = double(user="elastic:changeme")
    ok = ["output.elasticsearch.username=elastic", "output.elasticsearch.password=changeme"]
    r = probe([d.url], "get", "/", overrides=ok)
    assert (r.rc, r.status) == (0, 200), r.stdout
    assert last_request(d)["headers"]["Authorization"] == "Basic " + base64.b64encode(b"elastic:changeme").decode()

    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.username=elastic",
                                               "output.elasticsearch.password=wrong"])
    assert (r.rc, r.status) == (0, 401), r.stdout                   # an answer, not a transport error
    assert r.json()["error"]["type"] == "security_exception"
    assert r.metrics["transport_errors"] == 0

    r = probe([d.url], "info")
    assert r.rc == 3 and r.fields["error"] == "EACCES"
    assert "401" in r.stderr


def test_api_key(double):
    d = double(api_key="VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw")
    encoded = "VnVhQ2ZHY0JDZGJrUW0tZTVhT3g6dWkybHAyYXhUTm1zeWFrdzl0dk5udw=="
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.api_key=VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw"])
    assert r.status == 200, r.stdout
    assert last_request(d)["headers"]["Authorization"] == "ApiKey " + encoded
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.api_key=" + encoded])
    assert r.status == 200, r.stdout
    assert last_request(d)["headers"]["Authorization"] == "ApiKey " + encoded
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.api_key=VuaCfGcBCdbkQm-e5aOx:wrong"])
    assert r.status == 401


def test_headers_sent(es):
    r = probe([es.url], "get", "/_cluster/health",
              overrides=["output.elasticsearch.headers.X-Opaque-Id=hb-42",
                         "output.elasticsearch.headers.X-Found-Cluster=c1"])
    assert r.status == 200, r.stdout
    h = last_request(es)["headers"]
    assert h["X-Opaque-Id"] == "hb-42"
    assert h["X-Found-Cluster"] == "c1"
    assert h["Accept"] == "application/json"
    assert h["User-Agent"].startswith("hostbeat/")
    assert "Expect" not in h and "Authorization" not in h and "Content-Type" not in h


def test_config_errors_reported(es):
    r = probe([f"127.0.0.1:{es.port}", "es2:99999"], "info")
    assert r.rc == 2 and "es2:99999" in r.stderr
    r = probe([es.url], "info", overrides=["output.elasticsearch.ssl.ca_trusted_fingerprint=xyz"])
    assert r.rc == 2 and "ca_trusted_fingerprint" in r.stderr


# ----------------------------------------------------------------------------- bodies

def test_gzip_request_body(es, tmp_path):
    docs = [{"@timestamp": "2024-05-01T12:00:00Z", "n": i, "msg": "x" * 200} for i in range(50)]
    nd = "".join(json.dumps({"create": {"_index": "gz-test"}}) + "\n" + json.dumps(doc) + "\n" for doc in docs)
    f = tmp_path / "bulk.ndjson"
    f.write_text(nd)
    r = probe([es.url], "post", "/_bulk?refresh=true", f, "--gzip", "--ctype", "application/x-ndjson")
    assert r.status == 200, r.stdout
    assert r.json()["errors"] is False
    h = last_request(es, "/_bulk?refresh=true")["headers"]
    assert h["Content-Encoding"] == "gzip"
    assert h["Content-Type"] == "application/x-ndjson"
    assert int(h["Content-Length"]) < len(nd) / 4        # compressed on the wire
    assert sorted(d["n"] for d in es.docs("gz-test")) == list(range(50))
    assert es.violations == []


def test_plain_body_default_content_type(es, tmp_path):
    f = tmp_path / "q.json"
    f.write_text('{"query":{"match_all":{}}}')
    r = probe([es.url], "post", "/_search", f)
    assert r.status == 200, r.stdout
    h = last_request(es)["headers"]
    assert h["Content-Type"] == "application/json" and "Content-Encoding" not in h


def test_response_cap(es):
    r = probe([es.url], "get", "/", "--max-body", "100")
    assert r.rc == 1 and r.fields["error"] == "EFBIG", r.stdout
    assert r.metrics["transport_errors"] == 0             # not the host's fault: no failover


# ----------------------------------------------------------------------------- failover and timeouts

def test_failover_to_second_host(es):
    dead = f"http://127.0.0.1:{closed_port()}"
    r = probe([dead, es.url], "get", "/", "--tries", "2")
    assert (r.rc, r.status) == (0, 200), r.stderr
    assert r.fields["host"] == es.url
    assert "Connection refused" in r.stderr or "Couldn't connect" in r.stderr
    assert r.metrics == {"requests": 2, "transport_errors": 1, "failovers": 1,
                         "latency_us": r.metrics["latency_us"]}

    r = probe([dead], "get", "/")                         # one host: no failover, errno surfaced
    assert r.rc == 1 and r.fields["error"] == "ECONNREFUSED"
    assert r.metrics["transport_errors"] == 1 and r.metrics["failovers"] == 0


def test_timeout_on_hang(es):
    es.set_faults(hang={"count": 1})
    r = probe([es.url], "get", "/_cluster/health", overrides=["output.elasticsearch.timeout=1s"])
    assert r.rc == 1 and r.fields["error"] == "ETIMEDOUT", r.stdout + r.stderr
    assert 0.9 < r.elapsed < 2.0
    assert r.metrics["transport_errors"] == 1
    assert 900_000 <= r.metrics["latency_us"] < 2_000_000
    assert last_request(es)["status"] == 0                 # the double read it and held it


# ----------------------------------------------------------------------------- TLS

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(dirpath, name):
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
             "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=dirpath)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
             "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "srv.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    (d / "chain.crt").write_text((d / "srv.crt").read_text() + (d / "ca.crt").read_text())
    fp = subprocess.run(["openssl", "x509", "-in", d / "ca.crt", "-noout", "-fingerprint", "-sha256"],
                        check=True, capture_output=True, text=True).stdout.strip().split("=", 1)[1]
    return {"dir": d, "fingerprint": fp}


def _tls_double(double, pki, host="127.0.0.1", chain=True):
    return double(host=host, tls_cert=str(pki["dir"] / ("chain.crt" if chain else "srv.crt")),
                  tls_key=str(pki["dir"] / "srv.key"))


def _cas(pki, *names):
    return "output.elasticsearch.ssl.certificate_authorities=" + json.dumps([str(pki["dir"] / n) for n in names])


def test_tls_full_verification(double, pki):
    d = _tls_double(double, pki)
    r = probe([d.url], "info", overrides=[_cas(pki, "ca.crt")])
    assert r.rc == 0, r.stderr
    assert r.fields["host"].startswith("https://")
    # protocol: https applies to hosts without a scheme
    r = probe([f"localhost:{d.port}"], "get", "/", overrides=[_cas(pki, "ca.crt"), "output.elasticsearch.protocol=https"])
    assert r.status == 200, r.stderr
    # several CA files: one bundle
    r = probe([d.url], "get", "/", overrides=[_cas(pki, "other-ca.crt", "ca.crt")])
    assert r.status == 200, r.stderr


def test_tls_wrong_ca_is_transport_error(double, pki):
    d = _tls_double(double, pki)
    r = probe([d.url], "get", "/", overrides=[_cas(pki, "other-ca.crt")])
    assert r.rc == 1 and r.fields["error"] == "EPROTO", r.stdout
    assert "certificate" in r.stderr
    assert r.metrics["transport_errors"] == 1
    assert not [q for q in d.requests if q["path"] == "/"]       # nothing reached HTTP


def test_tls_verification_none(double, pki):
    d = _tls_double(double, pki)
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.ssl.verification_mode=none"])
    assert r.status == 200, r.stderr


def test_tls_certificate_mode_skips_host_name(double, pki):
    d = _tls_double(double, pki, host="127.0.0.2")               # not in the certificate's SANs
    r = probe([d.url], "get", "/", overrides=[_cas(pki, "ca.crt")])
    assert r.fields.get("error") == "EPROTO", r.stdout
    r = probe([d.url], "get", "/", overrides=[_cas(pki, "ca.crt"),
                                              "output.elasticsearch.ssl.verification_mode=certificate"])
    assert r.status == 200, r.stderr
    r = probe([d.url], "get", "/", overrides=[_cas(pki, "other-ca.crt"),
                                              "output.elasticsearch.ssl.verification_mode=certificate"])
    assert r.fields.get("error") == "EPROTO", r.stdout           # the chain is still checked


def test_tls_ca_trusted_fingerprint(double, pki):
    d = _tls_double(double, pki)
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.ssl.ca_trusted_fingerprint=" + pki["fingerprint"]])
    assert r.status == 200, r.stderr
    assert len(d.requests) == 1                                  # the probe handshake sent no request
    lower = pki["fingerprint"].replace(":", "").lower()
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.ssl.ca_trusted_fingerprint=" + lower])
    assert r.status == 200, r.stderr

    wrong = ("0" if lower[0] != "0" else "1") + lower[1:]
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.ssl.ca_trusted_fingerprint=" + wrong])
    assert r.fields.get("error") == "EPROTO", r.stdout
    assert "ca_trusted_fingerprint" in r.stderr                  # the warning says why


def test_tls_fingerprint_needs_ca_in_chain(double, pki):
    d = _tls_double(double, pki, chain=False)                    # leaf only: nothing to pin
    r = probe([d.url], "get", "/", overrides=["output.elasticsearch.ssl.ca_trusted_fingerprint=" + pki["fingerprint"]])
    assert r.fields.get("error") == "EPROTO", r.stdout
