"""shipper/kibana.c against the Kibana API double, through tests/tools/kibana_probe.

Run: make BUILD=build tools && /usr/bin/python3 -m pytest -q tests/kbdouble/test_kibana_client.py
(BUILD selects the build directory, as in tests/run_all.sh; KIBANA_PROBE overrides the binary;
DASHBOARDS points at a directory with kibana-7/ and kibana-8/ bundles, default: the repository's
dashboards/ when both bundles are there, else tests/kbdouble/fixtures/dashboards.)

Covers the bundle picked per version (8.15, 7.17, 9.1; 7.16 refused), the request on the wire
(kbn-xsrf, multipart exactly as Beats send it, auth), waiting while Kibana boots / is unavailable /
degraded, the readiness timeout, 401 and 403, partial import errors reported object by object,
missing references, 5xx and dropped connections retried, idempotent second loads, spaces, a base
path, ApiKey auth, a missing bundle, and TLS (CA bundle, wrong CA, verification none).
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
from kbdouble import KbDouble, parse_multipart  # noqa: E402

PROBE = Path(os.environ.get("KIBANA_PROBE") or REPO / os.environ.get("BUILD", "build") / "tools" / "kibana_probe")
FIXTURES = HERE / "fixtures" / "dashboards"


def _bundles_dir():
    if os.environ.get("DASHBOARDS"):
        return Path(os.environ["DASHBOARDS"])
    real = REPO / "dashboards"
    if all((real / k / "hostbeat.ndjson").is_file() for k in ("kibana-7", "kibana-8")):
        return real
    return FIXTURES


DASHBOARDS = _bundles_dir()
IMPORT = "/api/saved_objects/_import?overwrite=true"

pytestmark = pytest.mark.skipif(not PROBE.exists(), reason=f"{PROBE} not built (make BUILD=... tools)")


def bundle_objects(major):
    """(type, id) of every object in the bundle the loader should pick for that major."""
    path = DASHBOARDS / ("kibana-8" if major >= 8 else "kibana-7") / "hostbeat.ndjson"
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            o = json.loads(line)
            if not o.get("exportedCount"):
                out.append((o["type"], o["id"]))
    return out


class Result:
    def __init__(self, proc, elapsed):
        self.rc, self.stdout, self.stderr, self.elapsed = proc.returncode, proc.stdout, proc.stderr, elapsed
        self.fields, self.failures = {}, []
        for ln in self.stdout.splitlines():
            key, _, val = ln.partition(" ")
            if key == "failure":
                t, oid, etype, *detail = val.split(" ")
                self.failures.append({"type": t, "id": oid, "error_type": etype, "detail": " ".join(detail)})
            else:
                self.fields[key] = val
        self.metrics = {}
        for ln in self.stderr.splitlines():
            if ln.startswith("metrics "):
                self.metrics = {k: int(v) for k, v in (kv.split("=") for kv in ln.split()[1:])}

    def int(self, key):
        return int(self.fields[key])


def load(d, *overrides, timeout_s="20s", directory=None, host=None, run_timeout=60):
    cmd = [str(PROBE), "-E", f"setup.kibana.host={host or d.url}",
           "-E", f"setup.dashboards.directory={directory or DASHBOARDS}",
           "-E", f"setup.dashboards.timeout={timeout_s}"]
    for ov in overrides:
        cmd += ["-E", ov]
    cmd += ["--agent-version", "8.99.1", "load"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=run_timeout)
    assert "Sanitizer" not in p.stderr and "runtime error" not in p.stderr, p.stderr
    return Result(p, time.monotonic() - t0)


@pytest.fixture
def double():
    started = []

    def make(**kw):
        d = KbDouble(**kw).start()
        started.append(d)
        return d
    yield make
    for d in started:
        d.stop()


def imports(d):
    return [r for r in d.requests if r["method"] == "POST"]


def statuses(d):
    return [r for r in d.requests if r["path"].endswith("/api/status")]


def assert_loaded(r, d, major, space="default"):
    assert r.rc == 0, r.stdout + r.stderr
    want = bundle_objects(major)
    assert r.int("objects") == len(want)
    assert r.int("success_count") == len(want) and r.int("error_count") == 0
    assert r.fields["imported"] == "true"
    assert sorted(d.objects(space)) == sorted(want)


# ----------------------------------------------------------------------------- happy paths

@pytest.mark.parametrize("version,major,bundle", [
    ("8.15.0", 8, "kibana-8"), ("7.17.20", 7, "kibana-7"), ("9.1.0", 9, "kibana-8"),
])
def test_load_picks_bundle_by_version(double, version, major, bundle):
    d = double(version=version)
    r = load(d)
    assert_loaded(r, d, major)
    assert r.fields["version"] == version
    assert r.fields["bundle"] == str(DASHBOARDS / bundle / "hostbeat.ndjson")
    assert r.int("polls") == 1 and r.int("attempts") == 1
    assert r.metrics == {"loaded": len(bundle_objects(major)), "failed": 0, "retries": 0, "requests": 2}
    assert [q["path"] for q in d.requests] == ["/api/status", IMPORT]
    assert d.violations == []
    # the objects are the bundle's, byte for byte the same JSON
    sent = [json.loads(x) for x in (DASHBOARDS / bundle / "hostbeat.ndjson").read_text().splitlines() if x.strip()]
    sent = {(o["type"], o["id"]): o for o in sent if not o.get("exportedCount")}
    for key, obj in d.objects().items():
        assert obj["attributes"] == sent[key]["attributes"]
        assert obj.get("coreMigrationVersion") == sent[key].get("coreMigrationVersion")


def test_request_on_the_wire(double):
    d = double(version="8.15.0", user="elastic:changeme")
    r = load(d, "setup.kibana.username=elastic", "setup.kibana.password=changeme")
    assert r.rc == 0, r.stderr
    st, imp = d.requests
    auth = "Basic " + base64.b64encode(b"elastic:changeme").decode()
    assert st["headers"]["Authorization"] == auth and imp["headers"]["Authorization"] == auth
    assert "kbn-xsrf" not in st["headers"]
    h = imp["headers"]
    assert h["kbn-xsrf"] == "true"
    assert h["Accept"] == "application/json"
    assert h["User-Agent"] == "hostbeat/8.99.1"
    assert "Expect" not in h
    ctype = h["Content-Type"]
    assert ctype.startswith("multipart/form-data; boundary=hostbeat-")
    boundary = ctype.split("boundary=", 1)[1]
    assert len(boundary) == len("hostbeat-") + 32
    assert int(h["Content-Length"]) == len(imp["body"])
    parts = parse_multipart(imp["body"], boundary)
    assert len(parts) == 1
    headers, content = parts[0]
    assert headers == {"content-disposition": 'form-data; name="file"; filename="hostbeat.ndjson"',
                       "content-type": "application/ndjson"}
    assert content == (DASHBOARDS / "kibana-8" / "hostbeat.ndjson").read_bytes()
    assert imp["body"].endswith(f"\r\n--{boundary}--\r\n".encode())


def test_idempotent_second_load(double):
    d = double(version="8.15.0")
    first = load(d)
    assert_loaded(first, d, 8)
    before = d.objects()
    second = load(d)
    assert_loaded(second, d, 8)
    after = d.objects()
    assert set(after) == set(before)
    for key in before:
        assert after[key]["attributes"] == before[key]["attributes"]
    assert d.import_count == 2
    assert d.violations == []


def test_bundle_without_trailing_newline(double, tmp_path):
    for k in ("kibana-7", "kibana-8"):
        (tmp_path / k).mkdir()
        (tmp_path / k / "hostbeat.ndjson").write_bytes((FIXTURES / k / "hostbeat.ndjson").read_bytes().rstrip(b"\n"))
    d = double()
    r = load(d, directory=tmp_path)
    assert r.rc == 0, r.stderr
    assert r.int("objects") == 5 and r.int("success_count") == 5


# ----------------------------------------------------------------------------- waiting for Kibana

@pytest.mark.parametrize("version,mode", [("8.15.0", "unavailable"), ("7.17.20", "unavailable"),
                                          ("8.15.0", "booting"), ("7.17.20", "booting"),
                                          ("8.15.0", "degraded")])
def test_waits_while_not_ready(double, version, mode):
    d = double(version=version)
    d.set_faults(not_ready={"mode": mode, "seconds": 1.5})
    r = load(d)
    assert_loaded(r, d, int(version[0]))
    assert 1.4 < r.elapsed < 6
    assert r.int("polls") >= 3                                  # 0, .25, .75, 1.75 s
    assert [q["status"] for q in statuses(d)][-1] == 200
    assert len(imports(d)) == 1                                 # nothing sent before it was ready
    assert "waiting for Kibana" in r.stderr


def test_backoff_is_capped(double):
    d = double()
    d.set_faults(not_ready={"seconds": 9})
    r = load(d, run_timeout=30)
    assert r.rc == 0, r.stderr
    t = [q["t"] for q in statuses(d)]
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert max(gaps) < 4.5                                      # 0.25, 0.5, 1, 2, 4, 4 ... not 8
    assert gaps[0] < 0.5


def test_not_ready_timeout(double):
    d = double(version="7.17.20")
    d.set_faults(not_ready={"seconds": 60})
    r = load(d, timeout_s="2s")
    assert r.rc == 1 and r.fields["error"] == "ETIMEDOUT", r.stdout
    assert 1.9 < r.elapsed < 4
    assert "not ready after 2 s" in r.stderr and "HTTP 503, Kibana 7.17.20, state red" in r.stderr
    assert imports(d) == []


def test_unreachable_kibana_times_out(double):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    d = double()
    r = load(d, host=f"127.0.0.1:{port}", timeout_s="1s")
    assert r.rc == 1 and r.fields["error"] == "ETIMEDOUT"
    assert r.int("polls") >= 3


# ----------------------------------------------------------------------------- refusals

def test_401_stops_at_once(double):
    d = double(user="elastic:changeme")
    r = load(d, "setup.kibana.username=elastic", "setup.kibana.password=wrong")
    assert r.rc == 1 and r.fields["error"] == "EACCES", r.stdout
    assert r.int("polls") == 1 and r.int("attempts") == 0
    assert "HTTP 401" in r.stderr and "username/password" in r.stderr
    assert "\n\t" not in r.stderr.split("kibana_probe: ", 1)[1]      # Kibana's message on one line
    assert len(d.requests) == 1


def test_no_credentials(double):
    d = double(user="elastic:changeme")
    r = load(d)
    assert r.rc == 1 and r.fields["error"] == "EACCES"
    assert "Authorization" not in d.requests[0]["headers"]


def test_api_key(double):
    d = double(api_key="kid:ksecret")
    r = load(d, "setup.kibana.api_key=kid:ksecret")
    assert_loaded(r, d, 8)
    assert d.requests[-1]["headers"]["Authorization"] == "ApiKey " + base64.b64encode(b"kid:ksecret").decode()


def test_403_on_import(double):
    d = double()
    d.set_faults(forbidden={"count": 5})
    r = load(d)
    assert r.rc == 1 and r.fields["error"] == "EACCES"
    assert r.int("attempts") == 1                               # not retried
    assert "Unable to bulk_create" in r.stderr
    assert d.objects() == {}


def test_old_kibana_refused(double):
    d = double(version="7.16.3")
    r = load(d)
    assert r.rc == 1 and r.fields["error"] == "EOPNOTSUPP"
    assert "Kibana 7.16 is not supported" in r.stderr and "7.17 or later" in r.stderr
    assert imports(d) == []
    d = double(version="7.10.2")
    r = load(d)
    assert r.fields["error"] == "EOPNOTSUPP" and "7.14" in r.stderr


def test_missing_bundle(double, tmp_path):
    d = double()
    r = load(d, directory=tmp_path)
    assert r.rc == 1 and r.fields["error"] == "ENOENT"
    assert str(tmp_path / "kibana-8" / "hostbeat.ndjson") in r.stderr
    assert imports(d) == []


def test_wrong_base_path_is_404(double):
    d = double(base_path="/kibana")
    r = load(d, host=f"127.0.0.1:{d.port}")
    assert r.rc == 1 and r.fields["error"] == "ENOENT"
    assert "setup.kibana.path" in r.stderr


# ----------------------------------------------------------------------------- partial failures

def test_partial_errors_reported(double):
    d = double()
    d.set_faults(partial={"objects": 2, "count": 1})
    r = load(d)
    n = len(bundle_objects(8))
    assert r.rc == 1 and r.fields["error"] == "EIO", r.stdout
    assert r.int("success_count") == n - 2 and r.int("error_count") == 2
    assert r.fields["imported"] == "false"
    assert [(f["error_type"], f["detail"]) for f in r.failures] == [("unknown", "kbdouble injected failure")] * 2
    assert [(f["type"], f["id"]) for f in r.failures] == [k for k in bundle_objects(8)][:2]
    assert len(d.objects()) == n - 2
    assert r.metrics["loaded"] == n - 2 and r.metrics["failed"] == 2
    assert r.int("attempts") == 1                               # an answer with errors is not retried
    assert "not imported" in r.stderr
    # the next run completes it
    assert_loaded(load(d), d, 8)


def test_missing_references_reported(double, tmp_path):
    (tmp_path / "kibana-8").mkdir()
    objs = [{"type": "visualization", "id": "v-orphan", "attributes": {
        "title": "Orphan", "visState": json.dumps({"title": "o", "type": "metric", "aggs": [], "params": {}}),
        "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"indexRefName": "ix"})}},
        "references": [{"name": "ix", "type": "index-pattern", "id": "nope-*"}],
        "coreMigrationVersion": "8.0.0"},
        {"type": "index-pattern", "id": "ok-*", "attributes": {"title": "ok-*"}, "references": []}]
    (tmp_path / "kibana-8" / "hostbeat.ndjson").write_text("".join(json.dumps(o) + "\n" for o in objs))
    d = double()
    r = load(d, directory=tmp_path)
    assert r.rc == 1 and r.fields["error"] == "EIO"
    assert r.failures == [{"type": "visualization", "id": "v-orphan", "error_type": "missing_references",
                           "detail": "missing index-pattern:nope-*"}]
    assert "v-orphan" in r.stderr and "missing_references" in r.stderr
    assert list(d.objects()) == [("index-pattern", "ok-*")]


def test_many_failures_are_counted_beyond_the_kept_ones(double, tmp_path):
    (tmp_path / "kibana-8").mkdir()
    objs = [{"type": "widget", "id": f"w{i}", "attributes": {"title": f"W{i}"}} for i in range(40)]
    (tmp_path / "kibana-8" / "hostbeat.ndjson").write_text("".join(json.dumps(o) + "\n" for o in objs))
    d = double()
    r = load(d, directory=tmp_path)
    assert r.fields["error"] == "EIO"
    assert r.int("error_count") == 40 and len(r.failures) == 16
    assert {f["error_type"] for f in r.failures} == {"unsupported_type"}


def test_bad_request_is_not_retried(double, tmp_path):
    (tmp_path / "kibana-8").mkdir()
    (tmp_path / "kibana-8" / "hostbeat.ndjson").write_text('{"type":"index-pattern",\n')
    d = double()
    r = load(d, directory=tmp_path)
    assert r.rc == 1 and r.fields["error"] == "EIO"
    assert "HTTP 400" in r.stderr and "Unexpected" in r.stderr
    assert r.int("attempts") == 1


# ----------------------------------------------------------------------------- retries

@pytest.mark.parametrize("code", [500, 502, 503])
def test_5xx_retried(double, code):
    d = double()
    d.set_faults(import_status={"code": code, "count": 2})
    r = load(d)
    assert_loaded(r, d, 8)
    assert r.int("attempts") == 3
    assert r.metrics["retries"] == 2
    assert [q["status"] for q in imports(d)] == [code, code, 200]
    assert 1.4 < r.elapsed < 5                                  # 0.5 s + 1 s of backoff


def test_5xx_gives_up(double):
    d = double()
    d.set_faults(import_status={"code": 503, "count": 100})
    r = load(d)
    assert r.rc == 1 and r.fields["error"] == "EIO"
    assert r.int("attempts") == 4 and r.metrics["retries"] == 3
    assert "HTTP 503" in r.stderr
    assert d.objects() == {}


def test_dropped_connection_retried(double):
    d = double()
    # libcurl itself sends once more when a kept-alive connection closes unanswered; the
    # second drop (on a fresh connection) is ours to retry
    d.set_faults(drop={"count": 2, "path": "/api/saved_objects/_import"})
    r = load(d)
    assert_loaded(r, d, 8)
    assert r.int("attempts") == 2 and r.metrics["retries"] == 1
    assert [q["status"] for q in imports(d)] == [0, 0, 200]


# ----------------------------------------------------------------------------- spaces, paths

def test_space(double):
    d = double(spaces=["ops"])
    r = load(d, "setup.kibana.space.id=ops")
    assert_loaded(r, d, 8, space="ops")
    assert d.objects() == {}
    assert imports(d)[0]["path"] == "/s/ops" + IMPORT
    assert statuses(d)[0]["path"] == "/api/status"              # the status is not per space


def test_unknown_space(double):
    d = double()
    r = load(d, "setup.kibana.space.id=ops")
    assert r.rc == 1 and r.fields["error"] == "EIO"
    assert "HTTP 404" in r.stderr


def test_bad_space_id_refused_before_any_request(double):
    d = double()
    r = load(d, "setup.kibana.space.id=Ops Team")
    assert r.rc == 2 and r.fields["error"] == "EINVAL"
    assert d.requests == []


@pytest.mark.parametrize("how", ["path", "url"])
def test_base_path(double, how):
    d = double(base_path="/kibana")
    if how == "path":
        r = load(d, "setup.kibana.path=/kibana", host=f"127.0.0.1:{d.port}")
    else:
        r = load(d, host=f"http://127.0.0.1:{d.port}/kibana/")
    assert_loaded(r, d, 8)
    assert [q["path"] for q in d.requests] == ["/kibana/api/status", "/kibana" + IMPORT]


# ----------------------------------------------------------------------------- TLS

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("pki")
    for name in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
                 "-days", "2", "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
             "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "srv.crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return d


def _tls_double(double, pki, host="127.0.0.1"):
    return double(host=host, tls_cert=str(pki / "srv.crt"), tls_key=str(pki / "srv.key"))


def _cas(pki, *names):
    return "setup.kibana.ssl.certificate_authorities=" + json.dumps([str(pki / n) for n in names])


def test_tls_ca_bundle(double, pki):
    d = _tls_double(double, pki)
    r = load(d, _cas(pki, "other-ca.crt", "ca.crt"))
    assert_loaded(r, d, 8)
    # protocol: https for a host without a scheme
    r = load(d, _cas(pki, "ca.crt"), "setup.kibana.protocol=https", host=f"localhost:{d.port}")
    assert r.rc == 0, r.stderr


def test_tls_wrong_ca_fails_at_once(double, pki):
    d = _tls_double(double, pki)
    r = load(d, _cas(pki, "other-ca.crt"), timeout_s="30s")
    assert r.rc == 1 and r.fields["error"] == "EPROTO", r.stdout
    assert r.elapsed < 5                                        # no waiting for a certificate to change
    assert d.requests == []


def test_tls_verification_modes(double, pki):
    d = _tls_double(double, pki, host="127.0.0.2")               # not in the certificate's SANs
    r = load(d, _cas(pki, "ca.crt"))
    assert r.fields["error"] == "EPROTO"
    r = load(d, _cas(pki, "ca.crt"), "setup.kibana.ssl.verification_mode=certificate")
    assert r.rc == 0, r.stderr
    r = load(d, "setup.kibana.ssl.verification_mode=none")
    assert r.rc == 0, r.stderr
