"""Tests of the Elasticsearch API double (run: /usr/bin/python3 -m pytest -q tests/esdouble).

Shapes are compared with the examples of elastic/elasticsearch-specification (file named at each
test) and with docs/reference/ecosystem.md §2-§3.  Clients: http.client, urllib, curl.
"""

from __future__ import annotations

import gzip
import http.client
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from base64 import b64encode
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from esdouble import EsDouble  # noqa: E402

ND = "application/x-ndjson"


# ----------------------------------------------------------------------------- helpers

@pytest.fixture
def es():
    d = EsDouble(version="8.15.0").start()
    yield d
    d.stop()


@pytest.fixture
def es7():
    d = EsDouble(version="7.17.0").start()
    yield d
    d.stop()


def call(d, method, path, body=None, ctype="application/json", headers=None, timeout=5):
    """(status, headers, raw body bytes) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=timeout)
    h = dict(headers or {})
    if body is not None:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        if ctype:
            h["Content-Type"] = ctype
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, r, data


def jcall(d, method, path, body=None, **kw):
    st, r, data = call(d, method, path, body, **kw)
    return st, (json.loads(data) if data else None)


def ndjson(*objs):
    return "".join(json.dumps(o) + "\n" for o in objs)


def bulk(d, *objs, path="/_bulk", **kw):
    return jcall(d, "POST", path, ndjson(*objs), ctype=ND, **kw)


def item(resp, n):
    return next(iter(resp["items"][n].values()))


# The recommended templates of ecosystem.md §2.5, reduced to the fields the tests touch.
BASE_COMPONENT = {"template": {"mappings": {
    "date_detection": False,
    "dynamic_templates": [
        {"ips": {"match": "ip", "match_mapping_type": "string", "mapping": {"type": "ip"}}},
        {"pct": {"path_match": "*.pct", "mapping": {"type": "scaled_float", "scaling_factor": 1000}}},
        {"strings_as_keyword": {"match_mapping_type": "string", "mapping": {"type": "keyword", "ignore_above": 1024}}}],
    "properties": {"@timestamp": {"type": "date"}, "message": {"type": "match_only_text"},
                   "host": {"properties": {"name": {"type": "keyword"}, "ip": {"type": "ip"},
                                           "containerized": {"type": "boolean"}}},
                   "event": {"properties": {"duration": {"type": "long"}}}}}}}
PB_COMPONENT = {"template": {"mappings": {"properties": {
    "type": {"type": "keyword"},
    "source": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}, "bytes": {"type": "long"}}},
    "destination": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}}},
    "url": {"properties": {"full": {"type": "keyword", "ignore_above": 2048,
                                    "fields": {"text": {"type": "match_only_text"}}}}}}}}}
PB_TEMPLATE = {"index_patterns": ["packetbeat-*"], "priority": 200, "version": 1,
               "composed_of": ["agent-ecs-base", "packetbeat-fields"],
               "template": {"settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0,
                                                   "refresh_interval": "5s",
                                                   "mapping": {"total_fields": {"limit": 10000}}}}},
               "_meta": {"managed_by": "hostbeat"}}


def install_templates(d):
    assert jcall(d, "PUT", "/_component_template/agent-ecs-base", BASE_COMPONENT) == (200, {"acknowledged": True})
    assert jcall(d, "PUT", "/_component_template/packetbeat-fields", PB_COMPONENT)[0] == 200
    assert jcall(d, "PUT", "/_index_template/packetbeat", PB_TEMPLATE)[0] == 200


# ----------------------------------------------------------------------------- process / info

def test_cli_prints_port_and_serves():
    p = subprocess.Popen([sys.executable, str(HERE / "esdouble.py"), "--port", "0", "--version", "7.17.0"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("listening on ")
        port = int(line.split()[2])
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            info = json.load(r)
            assert r.headers["X-Elastic-Product"] == "Elasticsearch"
            assert r.headers["Content-Type"] == "application/json; charset=UTF-8"
        assert info["version"]["number"] == "7.17.0"
        assert info["version"]["minimum_wire_compatibility_version"] == "6.8.0"
    finally:
        p.terminate()
        assert p.wait(5) == 0


@pytest.mark.parametrize("version,lucene,product", [("8.15.0", "9.11.1", True), ("7.17.0", "8.11.1", True),
                                                    ("9.1.0", "10.2.2", True), ("opensearch-2.11.0", "9.7.0", False)])
def test_root_info_per_version(version, lucene, product):
    # specification/_global/info/examples: name, cluster_name, cluster_uuid, version{...}, tagline
    d = EsDouble(version=version).start()
    try:
        st, r, data = call(d, "GET", "/")
        info = json.loads(data)
        assert st == 200 and set(info) == {"name", "cluster_name", "cluster_uuid", "version", "tagline"}
        assert info["version"]["number"] == version.replace("opensearch-", "")
        assert info["version"]["lucene_version"] == lucene
        assert (r.getheader("X-Elastic-Product") == "Elasticsearch") is product
        assert ("distribution" in info["version"]) is (not product)
        assert call(d, "HEAD", "/")[0] == 200
    finally:
        d.stop()


def test_health_and_license_shapes(es):
    # ecosystem.md §3 example of GET /_cluster/health (spec ClusterHealthResponse.ts)
    keys = {"cluster_name", "status", "timed_out", "number_of_nodes", "number_of_data_nodes", "active_primary_shards",
            "active_shards", "relocating_shards", "initializing_shards", "unassigned_shards",
            "delayed_unassigned_shards", "number_of_pending_tasks", "number_of_in_flight_fetch",
            "task_max_waiting_in_queue_millis", "active_shards_percent_as_number"}
    st, h = jcall(es, "GET", "/_cluster/health?wait_for_status=yellow&timeout=60s")
    assert st == 200 and set(h) == keys and h["status"] == "green"
    bulk(es, {"index": {"_index": "a"}}, {"x": 1})            # default 1 replica on 1 node: yellow
    st, h = jcall(es, "GET", "/_cluster/health")
    assert (h["status"], h["unassigned_shards"], h["active_shards_percent_as_number"]) == ("yellow", 1, 50.0)
    st, h = jcall(es, "GET", "/_cluster/health?wait_for_status=green&timeout=1s")
    assert st == 408 and h["timed_out"] is True
    # specification/license/get/examples/response/GetLicenseResponseExample1.yaml
    st, lic = jcall(es, "GET", "/_license")
    assert st == 200 and lic["license"]["type"] == "basic" and lic["license"]["status"] == "active"
    assert {"uid", "issue_date", "issue_date_in_millis", "max_nodes", "issued_to", "issuer"} <= set(lic["license"])


# ----------------------------------------------------------------------------- bulk shapes

def test_bulk_response_shape_matches_spec(es):
    # specification/_global/bulk/examples/response/BulkResponseExample1.yaml (index/delete/create/update)
    st, r = bulk(es, {"index": {"_index": "test", "_id": "1"}}, {"field1": "value1"},
                 {"delete": {"_index": "test", "_id": "2"}},
                 {"create": {"_index": "test", "_id": "3"}}, {"field1": "value3"},
                 {"update": {"_id": "1", "_index": "test"}}, {"doc": {"field2": "value2"}})
    assert st == 200 and set(r) == {"took", "errors", "items"} and r["errors"] is False
    assert [next(iter(i)) for i in r["items"]] == ["index", "delete", "create", "update"]
    full = {"_index", "_id", "_version", "result", "_shards", "_seq_no", "_primary_term", "status"}
    for n, (result, status, version) in enumerate([("created", 201, 1), ("not_found", 404, 1),
                                                   ("created", 201, 1), ("updated", 200, 2)]):
        it = item(r, n)
        assert set(it) == full and (it["result"], it["status"], it["_version"]) == (result, status, version)
        assert it["_shards"] == {"total": 2, "successful": 1, "failed": 0}
    assert [item(r, n)["_seq_no"] for n in (0, 1, 2, 3)] == [0, 1, 2, 3]
    assert es.docs("test") == [{"field1": "value3"}, {"field1": "value1", "field2": "value2"}]
    st, r = bulk(es, {"index": {"_index": "test", "_id": "1"}}, {"f": 1}, {"delete": {"_index": "test", "_id": "3"}})
    assert (item(r, 0)["result"], item(r, 0)["status"], item(r, 0)["_version"]) == ("updated", 200, 3)
    assert (item(r, 1)["result"], item(r, 1)["status"]) == ("deleted", 200)
    # BulkResponseExample2.yaml: update of a missing doc -> 404 document_missing_exception, errors true
    st, r = bulk(es, {"update": {"_index": "test", "_id": "5"}}, {"doc": {"a": 1}})
    assert r["errors"] is True and item(r, 0)["status"] == 404
    assert item(r, 0)["error"]["type"] == "document_missing_exception"
    assert item(r, 0)["error"]["reason"] == "[5]: document missing"
    assert es.violations == []


def test_bulk_7x_items_carry_type(es7):
    st, r = bulk(es7, {"index": {"_index": "x", "_type": "_doc"}}, {"a": 1})
    assert item(r, 0)["_type"] == "_doc" and item(r, 0)["status"] == 201
    assert es7.violations == []


def test_bulk_default_index_generated_ids_and_create_conflict(es):
    st, r = bulk(es, *[x for n in range(5) for x in ({"create": {}}, {"n": n})], path="/packetbeat-2024.05.01/_bulk")
    ids = [item(r, n)["_id"] for n in range(5)]
    assert len(set(ids)) == 5 and all(len(i) == 20 for i in ids)
    assert {item(r, n)["_index"] for n in range(5)} == {"packetbeat-2024.05.01"}
    st, r = bulk(es, {"create": {"_index": "c", "_id": "k"}}, {"a": 1}, {"create": {"_index": "c", "_id": "k"}}, {"a": 2})
    assert [item(r, n)["status"] for n in (0, 1)] == [201, 409]
    err = item(r, 1)["error"]
    assert err["type"] == "version_conflict_engine_exception"
    assert err["reason"] == "[k]: version conflict, document already exists (current version [1])"
    assert es.docs("c") == [{"a": 1}]


def test_bulk_filter_path_like_beats(es):
    install_templates(es)
    st, r = bulk(es, {"create": {"_index": "packetbeat-2024.05.01"}}, {"source": {"port": 53}},
                 {"create": {"_index": "packetbeat-2024.05.01"}}, {"source": {"port": "http"}},
                 path="/_bulk?filter_path=errors,items.*.status,items.*.error")
    assert set(r) == {"errors", "items"} and r["errors"] is True
    assert r["items"][0] == {"create": {"status": 201}}
    assert set(r["items"][1]["create"]) == {"status", "error"}
    assert r["items"][1]["create"]["error"]["type"] == "document_parsing_exception"
    st, r = bulk(es, {"create": {"_index": "packetbeat-2024.05.01"}}, {"a": 1}, path="/_bulk?filter_path=errors")
    assert r == {"errors": False}


# ----------------------------------------------------------------------------- bulk strictness

@pytest.mark.parametrize("ctype,status", [(None, 406), ("application/x-www-form-urlencoded", 406), ("text/plain", 406),
                                          (ND, 200), ("application/json; charset=UTF-8", 200),
                                          ("application/vnd.elasticsearch+x-ndjson; compatible-with=8", 200)])
def test_bulk_content_type(es, ctype, status):
    st, r, data = call(es, "POST", "/_bulk", ndjson({"index": {"_index": "a"}}, {"x": 1}), ctype=ctype)
    assert st == status
    body = json.loads(data)
    if status == 406:
        want = "Content-Type header is missing" if ctype is None else f"Content-Type header [{ctype}] is not supported"
        assert body == {"error": want, "status": 406}
        assert [v["kind"] for v in es.violations] == ["content_type"]
    else:
        assert body["errors"] is False and es.violations == []
        if ctype.startswith("application/vnd"):
            assert r.getheader("Content-Type") == "application/vnd.elasticsearch+json;compatible-with=8"


def test_bulk_requires_trailing_newline(es):
    st, r = jcall(es, "POST", "/_bulk", '{"index":{"_index":"a"}}\n{"x":1}', ctype=ND)
    assert st == 400
    assert r == {"error": {"root_cause": [{"type": "illegal_argument_exception",
                                           "reason": "The bulk request must be terminated by a newline [\\n]"}],
                           "type": "illegal_argument_exception",
                           "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400}
    assert es.indices() == [] and es.violations[0]["kind"] == "bulk_newline"
    st, r = jcall(es, "POST", "/_bulk", '{"index":{"_index":"a"}}\r\n{"x":1}\r\n', ctype=ND)   # \r\n tolerated
    assert st == 200 and r["errors"] is False


@pytest.mark.parametrize("action,reason", [
    ({"index": {"_index": "a"}, "create": {}}, "Malformed action/metadata line [1], expected END_OBJECT but found [FIELD_NAME]"),
    ({"upsert": {"_index": "a"}}, "expected field [create], [delete], [index] or [update] but found [upsert]"),
    ({"index": {"_index": "a", "foo": 1}}, "Action/metadata line [1] contains an unknown parameter [foo]"),
    ({"index": {"_index": "a", "_type": "_doc"}}, "Action/metadata line [1] contains an unknown parameter [_type]"),
    ({"index": {"_index": "a", "_id": {"x": 1}}}, "expected a simple value for field [_id] but found [START_OBJECT]"),
    ({"index": "a"}, "Malformed action/metadata line [1], expected START_OBJECT but found [VALUE_STRING]"),
    ({}, "Malformed action/metadata line [1], expected FIELD_NAME but found [END_OBJECT]"),
])
def test_bulk_malformed_action_lines(es, action, reason):
    st, r = bulk(es, action, {"x": 1})
    assert st == 400 and r["error"]["type"] == "illegal_argument_exception" and reason in r["error"]["reason"]
    assert es.indices() == [] and es.violations[0]["kind"] == "bulk_action"


def test_bulk_validation_and_missing_source(es):
    st, r = bulk(es, {"index": {}}, {"x": 1}, {"delete": {"_index": "a"}})
    assert st == 400 and r["error"]["type"] == "action_request_validation_exception"
    assert r["error"]["reason"] == "Validation Failed: 1: index is missing;2: id is missing;"
    st, r = jcall(es, "POST", "/_bulk", '{"index":{"_index":"a"}}\n', ctype=ND)
    assert st == 400 and "no source line" in r["error"]["reason"]
    st, r = jcall(es, "POST", "/_bulk", b"", ctype=ND)
    assert st == 400 and r["error"]["type"] == "parse_exception"
    assert [v["kind"] for v in es.violations] == ["bulk_validation", "bulk_action", "missing_body"]


def test_bulk_bad_source_lines_fail_per_item(es):
    body = (b'{"index":{"_index":"s"}}\n{"v":NaN}\n'
            b'{"index":{"_index":"s"}}\n{"a":1,"a":2}\n'
            b'{"index":{"_index":"s"}}\n{"t":"\xff\xfe"}\n'
            b'{"index":{"_index":"s"}}\n[1,2]\n'
            b'{"index":{"_index":"s"}}\n{"ok":true}\n')
    st, r = jcall(es, "POST", "/_bulk", body, ctype=ND)
    assert st == 200 and r["errors"] is True
    assert [item(r, n)["status"] for n in range(5)] == [400, 400, 400, 400, 201]
    assert {item(r, n)["error"]["type"] for n in range(4)} == {"document_parsing_exception"}
    assert "Duplicate field 'a'" in item(r, 1)["error"]["caused_by"]["reason"]
    assert es.docs("s") == [{"ok": True}]
    assert [v["kind"] for v in es.violations] == ["bulk_source"] * 4


def test_gzip_and_deflate_bodies(es):
    raw = ndjson({"index": {"_index": "z"}}, {"x": 1}).encode()
    st, r = jcall(es, "POST", "/_bulk", gzip.compress(raw), ctype=ND, headers={"Content-Encoding": "gzip"})
    assert st == 200 and r["errors"] is False
    st, r = jcall(es, "POST", "/_bulk", zlib.compress(raw), ctype=ND, headers={"Content-Encoding": "deflate"})
    assert st == 200 and r["errors"] is False
    assert es.violations == [] and len(es.docs("z")) == 2
    st, r = jcall(es, "POST", "/_bulk", gzip.compress(raw)[:-6], ctype=ND, headers={"Content-Encoding": "gzip"})
    assert st == 400 and es.violations[-1]["kind"] == "content_encoding"
    st, r = jcall(es, "POST", "/_bulk", raw, ctype=ND, headers={"Content-Encoding": "gzip"})
    assert st == 400 and len(es.docs("z")) == 2
    # response compression on request
    st, resp, data = call(es, "GET", "/", headers={"Accept-Encoding": "gzip"})
    assert resp.getheader("Content-Encoding") == "gzip" and json.loads(gzip.decompress(data))["tagline"]


def test_chunked_request_body(es):
    conn = http.client.HTTPConnection("127.0.0.1", es.port, timeout=5)
    lines = [json.dumps({"index": {"_index": "ch"}}).encode() + b"\n", b'{"x":1}\n']
    conn.request("POST", "/_bulk", body=iter(lines), headers={"Content-Type": ND}, encode_chunked=True)
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["errors"] is False
    assert es.requests[-1]["headers"].get("Transfer-Encoding") == "chunked"


def test_routing_params_methods_bodies(es):
    st, r = jcall(es, "GET", "/_bulk")
    assert st == 405 and r == {"error": "Incorrect HTTP method for uri [/_bulk] and method [GET], allowed: [POST, PUT]",
                               "status": 405}
    st, r = jcall(es, "GET", "/_nodes/x/y")
    assert st == 400 and r == {"error": "no handler found for uri [/_nodes/x/y] and method [GET]", "status": 400}
    st, r = jcall(es, "GET", "/_cat/indices?foo=1")
    assert st == 400 and r["error"]["reason"] == "request [/_cat/indices] contains unrecognized parameter: [foo]"
    st, r = jcall(es, "POST", "/_refresh", {"a": 1})
    assert st == 400 and r["error"]["reason"] == "request [POST /_refresh] does not support having a body"
    st, r = jcall(es, "PUT", "/_index_template/t")
    assert st == 400 and r["error"]["type"] == "parse_exception"
    assert [v["kind"] for v in es.violations] == ["method", "no_handler", "param", "body_not_allowed", "missing_body"]


# ----------------------------------------------------------------------------- auth and TLS

def test_basic_auth():
    d = EsDouble(user="elastic:changeme").start()
    try:
        st, r, data = call(d, "GET", "/")
        assert st == 401 and r.getheader("X-Elastic-Product") is None
        assert r.headers.get_all("WWW-Authenticate") == ['Basic realm="security", charset="UTF-8"',
                                                         'Bearer realm="security"', "ApiKey"]
        body = json.loads(data)
        assert body["error"]["type"] == "security_exception" and body["status"] == 401
        assert body["error"]["reason"] == "missing authentication credentials for REST request [/]"
        bad = {"Authorization": "Basic " + b64encode(b"elastic:wrong").decode()}
        st, r = jcall(d, "GET", "/", headers=bad)
        assert st == 401 and r["error"]["reason"] == "unable to authenticate user [elastic] for REST request [/]"
        good = {"Authorization": "Basic " + b64encode(b"elastic:changeme").decode()}
        st, r, _ = call(d, "GET", "/", headers=good)
        assert st == 200 and r.getheader("X-Elastic-Product") == "Elasticsearch"
        assert [v["kind"] for v in d.violations] == ["auth"] * 2
    finally:
        d.stop()


def test_api_key_auth():
    d = EsDouble(api_key="VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").start()
    try:
        enc = b64encode(b"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").decode()
        st, r = bulk(d, {"create": {"_index": "k"}}, {"a": 1}, headers={"Authorization": "ApiKey " + enc})
        assert st == 200 and r["errors"] is False
        st, r = jcall(d, "GET", "/", headers={"Authorization": "ApiKey " + b64encode(b"id:nope").decode()})
        assert st == 401 and r["error"]["type"] == "security_exception"
        st, r = jcall(d, "GET", "/", headers={"Authorization": "Basic " + enc})     # right secret, wrong scheme
        assert st == 401
    finally:
        d.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed (Debian package: openssl)")
    t = tmp_path_factory.mktemp("tls")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=t, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=esdouble test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost")
    (t / "ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.crt",
        "-days", "2", "-extfile", "ext")
    return t


def test_tls_with_curl_and_urllib(certs):
    if not shutil.which("curl"):
        pytest.skip("curl not installed")
    d = EsDouble(tls_cert=str(certs / "srv.crt"), tls_key=str(certs / "srv.key"), user="u:p").start()
    try:
        assert d.url.startswith("https://")
        out = subprocess.run(["curl", "-sS", "--cacert", str(certs / "ca.crt"), "-u", "u:p", f"{d.url}/"],
                             capture_output=True, text=True, timeout=20)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["tagline"] == "You Know, for Search"
        out = subprocess.run(["curl", "-sS", f"{d.url}/"], capture_output=True, text=True, timeout=20)
        assert out.returncode == 60                                # untrusted issuer without --cacert
        out = subprocess.run(["curl", "-sS", "--cacert", str(certs / "ca.crt"), "-u", "u:p", "-H", f"Content-Type: {ND}",
                              "--data-binary", ndjson({"create": {"_index": "tls"}}, {"a": 1}), f"{d.url}/_bulk"],
                             capture_output=True, text=True, timeout=20)
        assert json.loads(out.stdout)["errors"] is False
        import ssl
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        req = urllib.request.Request(f"{d.url}/_cat/indices?h=index", headers={"Authorization": "Basic dTpw"})
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            assert r.read() == b"tls\n"
    finally:
        d.stop()


# ----------------------------------------------------------------------------- templates and mappings

def test_templates_apply_mappings_to_auto_created_index(es):
    install_templates(es)
    st, r = bulk(es,
                 {"create": {"_index": "packetbeat-2024.05.01"}},
                 {"@timestamp": "2024-05-01T12:00:00.123Z", "type": "dns", "source": {"ip": "172.17.0.2", "port": 40000},
                  "destination": {"ip": "8.8.8.8", "port": 53}, "event": {"duration": 20690000},
                  "system": {"cpu": {"pct": 0.25}}, "client": {"ip": "10.0.0.1"}, "labels": {"x": "y"}},
                 {"create": {"_index": "packetbeat-2024.05.01"}},
                 {"@timestamp": "2024-05-01T12:00:00.456Z", "type": "http", "source": {"ip": "172.17.0.3", "port": "http"}},
                 {"create": {"_index": "packetbeat-2024.05.01"}}, {"source": {"ip": "not-an-ip"}},
                 {"create": {"_index": "packetbeat-2024.05.01"}}, {"source": {"port": "8080"}})
    assert [item(r, n)["status"] for n in range(4)] == [201, 400, 400, 201]
    e = item(r, 1)["error"]
    assert e["type"] == "document_parsing_exception"
    assert "failed to parse field [source.port] of type [long]" in e["reason"] and e["reason"].startswith("[1:")
    assert e["caused_by"] == {"type": "illegal_argument_exception", "reason": 'For input string: "http"'}
    assert item(r, 2)["error"]["caused_by"]["reason"] == "'not-an-ip' is not an IP string literal."
    assert len(es.doc_errors) == 2 and es.violations == []
    st, m = jcall(es, "GET", "/packetbeat-2024.05.01/_mapping")
    props = m["packetbeat-2024.05.01"]["mappings"]["properties"]
    assert props["source"]["properties"]["port"] == {"type": "long"}
    assert props["client"]["properties"]["ip"] == {"type": "ip"}                     # dynamic template "ips"
    assert props["system"]["properties"]["cpu"]["properties"]["pct"] == {"type": "scaled_float", "scaling_factor": 1000}
    assert props["labels"]["properties"]["x"] == {"type": "keyword", "ignore_above": 1024}
    assert props["message"] == {"type": "match_only_text"}
    assert m["packetbeat-2024.05.01"]["mappings"]["date_detection"] is False
    st, h = jcall(es, "GET", "/_cluster/health")
    assert h["status"] == "green"                                                    # template: 0 replicas


def test_composable_priority_beats_legacy(es):
    assert jcall(es, "PUT", "/_template/old", {"index_patterns": ["logs*"], "order": 5,
                                               "mappings": {"properties": {"x": {"type": "keyword"}}}})[0] == 200
    st, r, _ = call(es, "PUT", "/_template/old2", {"index_patterns": ["logs*"], "order": 1})
    assert "Legacy index templates are deprecated" in r.getheader("Warning")
    bulk(es, {"index": {"_index": "logsa"}}, {"x": "v"})
    assert es.mapping("logsa")["properties"]["x"] == {"type": "keyword"}
    for name, prio, t in (("low", 1, "keyword"), ("high", 9, "long")):
        st, _ = jcall(es, "PUT", f"/_index_template/{name}", {"index_patterns": ["logs-*"], "priority": prio,
                      "template": {"mappings": {"properties": {"x": {"type": t}}}}})
        assert st == 200
    st, r = bulk(es, {"index": {"_index": "logs-b"}}, {"x": "v"})
    assert item(r, 0)["status"] == 400 and es.mapping("logs-b")["properties"]["x"] == {"type": "long"}
    st, r = jcall(es, "PUT", "/_index_template/clash", {"index_patterns": ["logs-b*"], "priority": 9})
    assert st == 400 and "have the same priority [9]" in r["error"]["reason"]
    st, r = jcall(es, "PUT", "/_index_template/low?create=true", {"index_patterns": ["x-*"]})
    assert st == 400 and "already exists" in r["error"]["reason"]


def test_template_validation(es):
    cases = [
        ({"index_patterns": ["a-*"], "template": {"mappings": {"properties": {"f": {"type": "strang"}}}}},
         "No handler for type [strang] declared on field [f]"),
        ({"index_patterns": ["a-*"], "template": {"mappings": {"properties": {"f": {"type": "long", "ignore_above": 5}}}}},
         "unknown parameter [ignore_above] on mapper [f] of type [long]"),
        ({"index_patterns": ["a-*"], "template": {"mappings": {"properties": {"f": {"type": "scaled_float"}}}}},
         "Field [scaling_factor] is required"),
        ({"index_patterns": ["a-*"], "template": {"settings": {"index": {"refresh_intreval": "5s"}}}},
         "unknown setting [index.refresh_intreval]"),
        ({"index_patterns": ["a-*"], "composed_of": ["nope"]}, "specifies component templates ['nope'] that do not exist"),
        ({"index_patterns": ["a-*"], "bogus": 1}, "[index_template] unknown field [bogus]"),
        ({"template": {}}, "index patterns are missing"),
    ]
    for body, reason in cases:
        st, r = jcall(es, "PUT", "/_index_template/t", body)
        assert st == 400 and reason in r["error"]["reason"], (body, r)
    assert len(es.violations) == len(cases)
    os_ = EsDouble(version="opensearch-2.11.0").start()
    try:
        st, r = jcall(os_, "PUT", "/_index_template/t", {"index_patterns": ["a-*"], "template": {
            "mappings": {"properties": {"m": {"type": "match_only_text"}}}}})
        assert st == 400 and "No handler for type [match_only_text]" in r["error"]["reason"]
        assert jcall(os_, "PUT", "/_ilm/policy/p", {"policy": {"phases": {}}})[0] == 400
    finally:
        os_.stop()


def test_template_get_head_delete_shapes(es):
    install_templates(es)
    # specification/indices/get_index_template/examples/200_response/GetIndexTemplateResponseExample1.yaml
    st, r = jcall(es, "GET", "/_index_template/packetbeat")
    assert st == 200 and list(r) == ["index_templates"] and r["index_templates"][0]["name"] == "packetbeat"
    tpl = r["index_templates"][0]["index_template"]
    assert tpl["index_patterns"] == ["packetbeat-*"] and tpl["priority"] == 200
    assert tpl["composed_of"] == ["agent-ecs-base", "packetbeat-fields"]
    assert tpl["template"]["settings"]["index"]["number_of_replicas"] == "0"           # settings come back as strings
    # specification/cluster/get_component_template/examples/200_response/GetComponentTemplateResponseExample1.yaml
    st, r = jcall(es, "GET", "/_component_template/agent-*")
    assert [c["name"] for c in r["component_templates"]] == ["agent-ecs-base"]
    assert "mappings" in r["component_templates"][0]["component_template"]["template"]
    assert call(es, "HEAD", "/_index_template/packetbeat")[0] == 200
    assert call(es, "HEAD", "/_index_template/nope")[0] == 404
    st, r = jcall(es, "GET", "/_index_template/nope")
    assert st == 404 and r["error"]["type"] == "resource_not_found_exception"
    st, r = jcall(es, "DELETE", "/_component_template/agent-ecs-base")
    assert st == 400 and "still in use by index templates [packetbeat]" in r["error"]["reason"]
    assert jcall(es, "DELETE", "/_index_template/packetbeat") == (200, {"acknowledged": True})
    assert call(es, "HEAD", "/_index_template/packetbeat")[0] == 404
    assert jcall(es, "PUT", "/_template/leg", {"index_patterns": "x*", "order": 2, "settings": {"number_of_shards": 1}})[0] == 200
    st, r = jcall(es, "GET", "/_template/leg")
    assert r == {"leg": {"order": 2, "index_patterns": ["x*"], "settings": {"index": {"number_of_shards": "1"}},
                         "mappings": {}, "aliases": {}}}
    assert jcall(es, "GET", "/_template/none") == (404, {})
    assert jcall(es, "PUT", "/_ilm/policy/agent-7d", {"policy": {"phases": {"hot": {"actions": {}},
                 "delete": {"min_age": "7d", "actions": {"delete": {}}}}}}) == (200, {"acknowledged": True})
    st, r = jcall(es, "GET", "/_ilm/policy/agent-7d")
    assert r["agent-7d"]["version"] == 1 and r["agent-7d"]["policy"]["phases"]["delete"]["min_age"] == "7d"
    st, r = jcall(es, "PUT", "/_ilm/policy/bad", {"policy": {"phases": {"lukewarm": {}}}})
    assert st == 400


def test_dynamic_mapping_and_conflicts(es):
    st, r = bulk(es, {"index": {"_index": "dyn"}}, {"s": "hello world", "n": 1, "f": 1.5, "b": True,
                                                    "d": "2024-05-01T00:00:00Z", "o": {"k": "v"}, "a.b": 3})
    assert item(r, 0)["status"] == 201
    p = es.mapping("dyn")["properties"]
    assert p["s"] == {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
    assert (p["n"], p["f"], p["b"], p["d"]) == ({"type": "long"}, {"type": "float"}, {"type": "boolean"}, {"type": "date"})
    assert p["o"]["properties"]["k"]["type"] == "text" and p["a"]["properties"]["b"] == {"type": "long"}
    docs = [{"n": "12"}, {"n": "abc"}, {"o": "flat"}, {"d": "yesterday"}, {"b": "yes"}, {"n": 2.9}, {"a": {"b": [1, "2"]}},
            {"s": {"x": 1}}]
    st, r = bulk(es, *[x for doc in docs for x in ({"index": {"_index": "dyn"}}, doc)])
    assert [item(r, n)["status"] for n in range(len(docs))] == [201, 400, 400, 400, 400, 201, 201, 400]
    assert "object mapping for [o] tried to parse field [o] as object, but found a concrete value" in item(r, 2)["error"]["reason"]
    assert {item(r, n)["error"]["type"] for n in (1, 2, 3, 4, 7)} == {"document_parsing_exception"}
    assert es.mapping("dyn")["properties"]["n"] == {"type": "long"}        # a rejected doc adds no mapping
    st, r = bulk(es, {"index": {"_index": "dyn2"}}, {"port": "8080", "when": "2024/05/01", "v": "1.5"},
                 {"index": {"_index": "dyn2", "op_type": "create", "_id": "1"}}, {"port": "x"},
                 {"index": {"_index": "dyn2", "op_type": "create", "_id": "1"}}, {"port": "y"})
    p = es.mapping("dyn2")["properties"]                            # pure numbers are never date-detected
    assert p["port"]["type"] == "text" and p["v"]["type"] == "text"
    assert p["when"] == {"type": "date", "format": "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"}
    assert [item(r, n)["status"] for n in range(3)] == [201, 201, 409] and list(r["items"][2]) == ["create"]
    st, r = jcall(es, "GET", "/dyn/_mapping")
    assert r["dyn"]["mappings"]["properties"]["o"] == {"properties": {"k": {"type": "text",
                                                                            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}}}


def test_7x_uses_mapper_parsing_exception(es7):
    bulk(es7, {"index": {"_index": "m"}}, {"n": 1})
    st, r = bulk(es7, {"index": {"_index": "m"}}, {"n": "x"})
    e = item(r, 0)["error"]
    assert e["type"] == "mapper_parsing_exception" and e["reason"].startswith("failed to parse field [n] of type [long]")


def test_dynamic_strict_false_and_limits(es):
    st, r = jcall(es, "PUT", "/strict", {"mappings": {"dynamic": "strict", "properties": {"a": {"type": "keyword"},
                                                        "free": {"type": "object", "dynamic": False}}},
                                         "settings": {"index.mapping.total_fields.limit": 4}})
    assert r == {"acknowledged": True, "shards_acknowledged": True, "index": "strict"}
    st, r = bulk(es, {"index": {"_index": "strict"}}, {"a": "x", "free": {"anything": 1}},
                 {"index": {"_index": "strict"}}, {"a": "x", "b": 1})
    assert [item(r, n)["status"] for n in (0, 1)] == [201, 400]
    assert item(r, 1)["error"]["type"] == "strict_dynamic_mapping_exception"
    assert "mapping set to strict, dynamic introduction of [b] within [_doc] is not allowed" in item(r, 1)["error"]["reason"]
    assert set(es.mapping("strict")["properties"]["free"]["properties"]) == set()
    st, r = jcall(es, "PUT", "/lim", {"settings": {"index": {"mapping": {"total_fields": {"limit": 3}}}}})
    st, r = bulk(es, {"index": {"_index": "lim"}}, {"x": 1, "y": 2, "z": 3}, {"index": {"_index": "lim"}}, {"w": 1})
    assert [item(r, n)["status"] for n in (0, 1)] == [201, 400]
    assert item(r, 1)["error"]["reason"] == "Limit of total fields [3] has been exceeded while adding new fields [1]"
    st, r = jcall(es, "PUT", "/strict", {})
    assert st == 400 and r["error"]["type"] == "resource_already_exists_exception"
    st, r = jcall(es, "PUT", "/Upper")
    assert st == 400 and r["error"]["reason"] == "Invalid index name [Upper], must be lowercase"


@pytest.mark.parametrize("ftype,extra,value,ok", [
    ("long", {}, 2 ** 63 - 1, True), ("long", {}, 2 ** 63, False), ("long", {}, "-42", True), ("long", {}, True, False),
    ("integer", {}, 2 ** 31, False), ("short", {}, 32767, True), ("byte", {}, 128, False),
    ("long", {"coerce": False}, "5", False), ("long", {"coerce": False}, 1.5, False),
    ("double", {}, "1e3", True), ("double", {}, 1e308 * 10, False), ("float", {}, 3.5e38, False),
    ("scaled_float", {"scaling_factor": 100}, 0.123, True),
    ("ip", {}, "2001:db8::1", True), ("ip", {}, "1.2.3", False), ("ip", {}, "fe80::1%eth0", False), ("ip", {}, 16909060, False),
    ("boolean", {}, "true", True), ("boolean", {}, "", True), ("boolean", {}, 1, False), ("boolean", {}, "TRUE", False),
    ("date", {}, 1714564800123, True), ("date", {}, "2024-05-01T12:00:00.123+02:00", True),
    ("date", {}, "2024-05-01", True), ("date", {}, "2024-13-01", False), ("date", {}, "2024-05-01 12:00:00", False),
    ("date", {"format": "yyyy/MM/dd HH:mm:ss"}, "2024/05/01 12:00:00", True),
    ("date", {"format": "epoch_second"}, "1714564800", True), ("date", {"format": "epoch_second"}, "2024-05-01", False),
    ("keyword", {}, 42, True), ("keyword", {}, {"a": 1}, False), ("constant_keyword", {"value": "dns"}, "http", False),
    ("wildcard", {}, "x*y", True), ("match_only_text", {}, "some text", True),
])
def test_value_validation(es, ftype, extra, value, ok):
    jcall(es, "PUT", "/v", {"mappings": {"properties": {"f": {"type": ftype, **extra}}}})
    st, r = bulk(es, {"index": {"_index": "v"}}, {"f": value})
    assert (item(r, 0)["status"] == 201) is ok, item(r, 0)


# ----------------------------------------------------------------------------- _cat/indices

def _columns(line):
    """[(start, end)] of the space-separated cells of a line."""
    out, i = [], 0
    for cell in line.split():
        i = line.index(cell, i)
        out.append((i, i + len(cell)))
        i += len(cell)
    return out


def test_cat_indices_text_layout(es):
    jcall(es, "PUT", "/packetbeat-2024.05.01", {"settings": {"number_of_replicas": 0}})
    bulk(es, *[x for n in range(12) for x in ({"index": {"_index": "packetbeat-2024.05.01"}}, {"n": n, "pad": "x" * 90})],
         {"index": {"_index": "topbeat-2024.05.01"}}, {"n": 1}, path="/_bulk?refresh=true")
    st, r, data = call(es, "GET", "/_cat/indices?v&s=index")
    assert st == 200 and r.getheader("Content-Type") == "text/plain; charset=UTF-8"
    lines = data.decode().split("\n")
    assert lines[-1] == "" and len(lines) == 4                      # header, 2 rows, final newline
    header = lines[0].split()
    assert header == ["health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted", "store.size",
                      "pri.store.size", "dataset.size"]
    rows = [line.split() for line in lines[1:3]]
    assert [r[2] for r in rows] == ["packetbeat-2024.05.01", "topbeat-2024.05.01"]
    assert [(r[0], r[1], r[4], r[5], r[6]) for r in rows] == [("green", "open", "1", "0", "12"), ("yellow", "open", "1", "1", "1")]
    cols = [_columns(line) for line in lines[:3]]
    for i, name in enumerate(header):                               # strings left-, numbers right-aligned
        edge = 1 if name in ("pri", "rep", "docs.count", "docs.deleted", "store.size", "pri.store.size", "dataset.size") else 0
        assert len({c[i][edge] for c in cols}) == 1, name
    assert all(not line.endswith(" ") for line in lines)
    assert lines[2][cols[0][3][0] - 2] == " "                      # index column padded to the longest name
    st, _, data = call(es, "GET", "/_cat/indices?s=index:desc&h=index,docs.count")
    assert data.decode() == "topbeat-2024.05.01     1\npacketbeat-2024.05.01 12\n"
    st, _, data = call(es, "GET", "/_cat/indices/topbeat-*?h=i,dc,ss&bytes=b")
    assert data.decode().split()[:2] == ["topbeat-2024.05.01", "1"] and data.decode().split()[2].isdigit()
    st, _, data = call(es, "GET", "/_cat/indices/nothing-*?v")
    assert data.decode().startswith("health status index")
    assert jcall(es, "GET", "/_cat/indices/nothing")[0] == 404


def test_cat_indices_json_matches_spec_keys(es, es7):
    bulk(es, {"index": {"_index": "my-index-000001"}}, {"a": 1})
    st, r = jcall(es, "GET", "/_cat/indices?format=json")
    # specification/cat/indices examples: all values are strings; 8.x adds dataset.size
    assert list(r[0]) == ["health", "status", "index", "uuid", "pri", "rep", "docs.count", "docs.deleted",
                          "store.size", "pri.store.size", "dataset.size"]
    assert all(isinstance(v, str) for v in r[0].values()) and r[0]["pri"] == "1"
    bulk(es7, {"index": {"_index": "i7"}}, {"a": 1})
    st, r = jcall(es7, "GET", "/_cat/indices?format=json")
    assert "dataset.size" not in r[0]


# ----------------------------------------------------------------------------- search, count, refresh

def seed(d):
    docs = [{"@timestamp": f"2024-05-01T12:00:0{n}.000Z", "type": t, "source": {"ip": f"10.0.0.{n}", "port": 1000 + n},
             "msg": f"hello number {n}"} for n, t in enumerate(["dns", "http", "dns", "mysql"])]
    jcall(d, "PUT", "/_index_template/pb", {"index_patterns": ["pb-*"], "template": {"mappings": {"properties": {
        "type": {"type": "keyword"}, "source": {"properties": {"ip": {"type": "ip"}, "port": {"type": "long"}}}}}}})
    bulk(d, *[x for doc in docs for x in ({"create": {"_index": "pb-2024.05.01" if doc["type"] != "mysql" else "pb-2024.05.02"}}, doc)],
         path="/_bulk?refresh=wait_for")


def test_search_shapes_and_queries(es, es7):
    seed(es)
    st, r = jcall(es, "GET", "/pb-*/_search")
    # ecosystem.md §3 / specification/_global/search/SearchResponse.ts
    assert set(r) == {"took", "timed_out", "_shards", "hits"}
    assert r["_shards"] == {"total": 2, "successful": 2, "skipped": 0, "failed": 0}
    assert r["hits"]["total"] == {"value": 4, "relation": "eq"} and r["hits"]["max_score"] == 1.0
    assert set(r["hits"]["hits"][0]) == {"_index", "_id", "_score", "_source"}
    st, r = jcall(es, "POST", "/pb-*/_search", {"query": {"term": {"type": "dns"}}, "size": 1})
    assert r["hits"]["total"]["value"] == 2 and len(r["hits"]["hits"]) == 1
    st, r = jcall(es, "GET", "/pb-*/_search", {"query": {"match_all": {}},
                                               "sort": [{"@timestamp": {"order": "desc"}}]})
    assert [h["_source"]["type"] for h in r["hits"]["hits"]] == ["mysql", "dns", "http", "dns"]
    assert r["hits"]["hits"][0]["sort"] == [1714564803000] and r["hits"]["max_score"] is None
    st, r = jcall(es, "GET", "/pb-2024.05.01,pb-2024.05.02/_search?q=type:mysql")
    assert [h["_index"] for h in r["hits"]["hits"]] == ["pb-2024.05.02"]
    st, r = jcall(es, "POST", "/pb-*/_search", {"query": {"bool": {"filter": [{"term": {"source.ip": "10.0.0.0/30"}},
                                                                                {"range": {"source.port": {"gte": 1001, "lte": 1002}}}]}}})
    assert [h["_source"]["source"]["port"] for h in r["hits"]["hits"]] == [1001, 1002]
    st, r = jcall(es, "POST", "/pb-*/_search", {"query": {"term": {"msg": "hello number 1"}}})   # text: analysed
    assert r["hits"]["total"]["value"] == 0
    st, r = jcall(es, "POST", "/pb-*/_search", {"query": {"term": {"msg.keyword": "hello number 1"}}})
    assert r["hits"]["total"]["value"] == 1
    st, r = jcall(es, "GET", "/pb-*/_count")
    assert r == {"count": 4, "_shards": {"total": 2, "successful": 2, "skipped": 0, "failed": 0}}
    st, r = jcall(es, "POST", "/pb-*/_count", {"query": {"term": {"type": "dns"}}})
    assert r["count"] == 2
    st, r = jcall(es, "GET", "/nothing-*/_search")
    assert st == 200 and r["hits"]["total"]["value"] == 0 and r["_shards"]["total"] == 0
    st, r = jcall(es, "GET", "/missing/_count")
    # ecosystem.md §2.1 whole-request error shape
    assert st == 404 and r["status"] == 404 and r["error"]["root_cause"][0] == {
        "type": "index_not_found_exception", "reason": "no such index [missing]", "resource.type": "index_or_alias",
        "resource.id": "missing", "index_uuid": "_na_", "index": "missing"}
    st, _, data = call(es, "GET", "/pb-*/_search?pretty&size=0")
    assert data.decode().startswith('{\n  "took" : ') and json.loads(data)["hits"]["hits"] == []
    st, r = jcall(es, "POST", "/pb-*/_search", {"aggs": {}})
    assert st == 400 and es.violations[-1]["kind"] == "unsupported"
    st, r = jcall(es, "POST", "/pb-*/_search", {"sort": ["msg"]})
    assert st == 400 and "Fielddata is disabled" in r["error"]["reason"]
    seed(es7)
    st, r = jcall(es7, "GET", "/pb-*/_search?rest_total_hits_as_int=true")
    assert r["hits"]["total"] == 4 and r["hits"]["hits"][0]["_type"] == "_doc"


def test_refresh_visibility(es):
    jcall(es, "PUT", "/r", {"settings": {"index": {"refresh_interval": "30s"}}})
    bulk(es, {"index": {"_index": "r"}}, {"a": 1})
    assert jcall(es, "GET", "/r/_count")[1]["count"] == 0             # not refreshed yet, like ES
    assert len(es.docs("r")) == 1
    st, r = jcall(es, "POST", "/r/_refresh")
    assert r == {"_shards": {"total": 2, "successful": 1, "failed": 0}}
    assert jcall(es, "GET", "/r/_count")[1]["count"] == 1
    bulk(es, {"index": {"_index": "r"}}, {"a": 2}, path="/_bulk?refresh=wait_for")
    assert jcall(es, "GET", "/r/_count")[1]["count"] == 2
    jcall(es, "PUT", "/fast", {"settings": {"index": {"refresh_interval": "100ms"}}})
    bulk(es, {"index": {"_index": "fast"}}, {"a": 1})
    time.sleep(0.15)
    assert jcall(es, "GET", "/fast/_count")[1]["count"] == 1


def test_get_mapping_and_delete_index(es, es7):
    bulk(es, {"index": {"_index": "a1"}}, {"x": 1}, {"index": {"_index": "a2"}}, {"y": "s"})
    st, r = jcall(es, "GET", "/a*/_mapping")
    assert r == {"a1": {"mappings": {"properties": {"x": {"type": "long"}}}},
                 "a2": {"mappings": {"properties": {"y": {"type": "text", "fields": {"keyword": {"type": "keyword",
                                                                                                 "ignore_above": 256}}}}}}}
    st, r = jcall(es, "DELETE", "/a*")
    assert st == 400 and "Wildcard expressions" in r["error"]["reason"]              # 8.x destructive_requires_name
    assert jcall(es, "DELETE", "/a1") == (200, {"acknowledged": True})
    assert es.indices() == ["a2"] and jcall(es, "DELETE", "/a1")[0] == 404
    assert call(es, "HEAD", "/a2")[0] == 200 and call(es, "HEAD", "/a1")[0] == 404
    bulk(es7, {"index": {"_index": "b1"}}, {"x": 1})
    assert jcall(es7, "DELETE", "/b*") == (200, {"acknowledged": True})


# ----------------------------------------------------------------------------- faults

def control(d, method, path, body=None):
    return jcall(d, method, "/_double" + path, body)


def test_fault_refuse_and_reopen_same_port(es):
    port = es.port
    st, r = control(es, "POST", "/faults", {"refuse": {"ms": 600}})
    assert st == 200
    time.sleep(0.25)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    time.sleep(0.7)
    assert es.port == port and jcall(es, "GET", "/")[0] == 200
    es.refuse()                                                      # Python API: until resume()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    es.resume()
    assert jcall(es, "GET", "/")[0] == 200


def test_fault_hang_and_slow(es):
    es.set_faults(hang={"count": 1, "path": "/_bulk"})
    t0 = time.monotonic()
    with pytest.raises(socket.timeout):
        bulk(es, {"index": {"_index": "h"}}, {"a": 1}, timeout=0.5)
    assert time.monotonic() - t0 >= 0.45 and es.indices() == []      # never processed
    assert jcall(es, "GET", "/")[0] == 200                           # path filter: other paths answer
    assert bulk(es, {"index": {"_index": "h"}}, {"a": 1})[0] == 200   # count consumed
    control(es, "POST", "/faults", {"slow": {"ms": 400, "count": 1}})
    t0 = time.monotonic()
    with pytest.raises(socket.timeout):
        bulk(es, {"index": {"_index": "h"}}, {"a": 2}, timeout=0.2)
    time.sleep(0.3)
    assert len(es.docs("h")) == 2                                    # processed, answered late (client retry -> dup)
    es.clear_faults()


def test_fault_reject_429_for_seconds(es):
    control(es, "POST", "/faults", {"reject": {"seconds": 0.5, "path": "/_bulk"}})
    st, r = bulk(es, {"index": {"_index": "q"}}, {"a": 1})
    assert st == 429 and r["error"]["type"] == "es_rejected_execution_exception" and r["status"] == 429
    assert r["error"]["root_cause"][0]["type"] == "es_rejected_execution_exception"
    assert jcall(es, "GET", "/_cluster/health")[0] == 200
    time.sleep(0.6)
    assert bulk(es, {"index": {"_index": "q"}}, {"a": 1})[0] == 200
    assert es.docs("q") == [{"a": 1}]


@pytest.mark.parametrize("code", [502, 503])
def test_fault_status(es, code):
    es.set_faults(status={"code": code, "count": 2})
    for _ in range(2):
        st, r, data = call(es, "POST", "/_bulk", ndjson({"index": {"_index": "s"}}, {"a": 1}), ctype=ND)
        assert st == code
        assert (r.getheader("Content-Type") == "text/html") is (code == 502)
    assert call(es, "POST", "/_bulk", ndjson({"index": {"_index": "s"}}, {"a": 1}), ctype=ND)[0] == 200
    assert len(es.docs("s")) == 1 and es.stats()["by_status"][str(code)] == 2


def test_fault_items_every_kth_and_match(es):
    control(es, "POST", "/faults", {"items": {"every": 3, "status": 429}})
    st, r = bulk(es, *[x for n in range(7) for x in ({"create": {"_index": "it"}}, {"n": n})])
    assert [item(r, n)["status"] for n in range(7)] == [201, 201, 429, 201, 201, 429, 201]
    assert item(r, 2)["error"]["type"] == "es_rejected_execution_exception" and r["errors"] is True
    assert sorted(d["n"] for d in es.docs("it")) == [0, 1, 3, 4, 6]
    es.set_faults(items=[{"match": {"source.port": 53}, "status": 400}, {"match": {"type": "bad"}, "status": 503}])
    st, r = bulk(es, {"create": {"_index": "it"}}, {"source": {"port": 53}}, {"create": {"_index": "it"}}, {"source": {"port": 54}},
                 {"create": {"_index": "it"}}, {"type": "bad"})
    assert [item(r, n)["status"] for n in range(3)] == [400, 201, 503]
    assert item(r, 2)["error"]["type"] == "unavailable_shards_exception"


def test_fault_max_content_length_413(es):
    es.set_faults(max_content_length={"bytes": 100})
    small = ndjson({"index": {"_index": "m"}}, {"a": 1})
    assert bulk(es, {"index": {"_index": "m"}}, {"a": 1})[0] == 200
    st, r, data = call(es, "POST", "/_bulk", small * 10, ctype=ND)
    assert st == 413 and data == b"" and r.getheader("Connection") == "close"
    if shutil.which("curl"):                                         # Expect: 100-continue gets 413 up front
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"Content-Type: {ND}",
                              "-H", "Expect: 100-continue", "--data-binary", small * 10, f"{es.url}/_bulk"],
                             capture_output=True, text=True, timeout=20)
        assert out.stdout == "413"
    assert len(es.docs("m")) == 1


@pytest.mark.parametrize("mode", ["truncated", "content_type", "html", "close", "short"])
def test_fault_malformed_responses(es, mode):
    es.set_faults(malformed={"mode": mode, "count": 1})
    body = ndjson({"index": {"_index": "mal"}}, {"a": 1})
    if mode in ("close", "short"):
        with pytest.raises((http.client.RemoteDisconnected, http.client.IncompleteRead)):
            call(es, "POST", "/_bulk", body, ctype=ND)
    else:
        st, r, data = call(es, "POST", "/_bulk", body, ctype=ND)
        assert st == 200
        if mode == "truncated":
            with pytest.raises(json.JSONDecodeError):
                json.loads(data)
        else:
            assert r.getheader("Content-Type").startswith("text/html")
    assert jcall(es, "GET", "/")[0] == 200                           # count consumed


def test_control_api_stats_and_requests(es):
    bulk(es, {"index": {"_index": "st"}}, {"a": 1}, {"index": {"_index": "st"}}, {"a": "x"})
    call(es, "GET", "/_bulk")
    st, s = control(es, "GET", "/stats")
    assert s["by_status"] == {"200": 1, "405": 1} and s["items_by_status"] == {"201": 1, "400": 1}
    assert s["indices"]["st"]["docs"] == 1 and s["doc_errors"] == 1 and s["violations"][0]["kind"] == "method"
    st, reqs = control(es, "GET", "/requests")
    assert [(q["method"], q["path"], q["status"]) for q in reqs] == [("POST", "/_bulk", 200), ("GET", "/_bulk", 405)]
    st, d = control(es, "GET", "/docs/st")
    assert d["docs"][0]["_source"] == {"a": 1}
    st, v = control(es, "DELETE", "/violations")
    assert es.violations == [] and es.doc_errors == []
    assert control(es, "POST", "/faults", {"nope": 1})[0] == 400
    control(es, "POST", "/reset")
    assert es.indices() == [] and es.requests == []


def test_state_file_survives_restart(tmp_path):
    f = tmp_path / "state.json"
    d = EsDouble(state_file=str(f)).start()
    install_templates(d)
    bulk(d, {"create": {"_index": "packetbeat-2024.05.01", "_id": "x"}}, {"source": {"port": 1}})
    port = d.port
    d.stop()
    assert json.loads(f.read_text())["indices"]["packetbeat-2024.05.01"]["docs"]["x"]["_source"] == {"source": {"port": 1}}
    d2 = EsDouble(state_file=str(f), port=port).start()
    try:
        assert d2.port == port and d2.docs("packetbeat-2024.05.01") == [{"source": {"port": 1}}]
        st, r = bulk(d2, {"create": {"_index": "packetbeat-2024.05.01", "_id": "x"}}, {"source": {"port": 2}},
                     {"create": {"_index": "packetbeat-2024.05.02"}}, {"source": {"port": "x"}})
        assert [item(r, n)["status"] for n in (0, 1)] == [409, 400]    # doc and template survived
    finally:
        d2.stop()
