"""The Kibana API double itself: every rejection it promises, the answer shapes, the faults.

Run: /usr/bin/python3 -m pytest -q tests/kbdouble/test_kbdouble.py

The requests are written by hand (http.client) so that each breach of the import protocol can be
sent on purpose; tests/kbdouble/test_kibana_client.py drives the real client.
"""

from __future__ import annotations

import base64
import http.client
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from kbdouble import KbDouble, parse_multipart, MultipartError  # noqa: E402

FIXTURES = HERE / "fixtures" / "dashboards"
BUNDLE8 = (FIXTURES / "kibana-8" / "hostbeat.ndjson").read_bytes()
BUNDLE7 = (FIXTURES / "kibana-7" / "hostbeat.ndjson").read_bytes()
IMPORT = "/api/saved_objects/_import"


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


@pytest.fixture
def kb(double):
    return double(version="8.15.0")


class Answer:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.raw = status, headers, body

    def json(self):
        return json.loads(self.raw)

    @property
    def message(self):
        return self.json()["message"]


def request(d, method, path, body=b"", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    a = Answer(r.status, r.headers, r.read())
    c.close()
    return a


def multipart(payload, boundary="XYZ", filename="hostbeat.ndjson", name="file", part_ctype="application/ndjson"):
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"--{boundary}\r\nContent-Disposition: {disp}\r\n"
    if part_ctype:
        head += f"Content-Type: {part_ctype}\r\n"
    return head.encode() + b"\r\n" + payload + f"\r\n--{boundary}--\r\n".encode()


def post_import(d, body, query="?overwrite=true", boundary="XYZ", ctype=None, xsrf=True, headers=None):
    h = {"Content-Type": ctype or f"multipart/form-data; boundary={boundary}"}
    if xsrf:
        h["kbn-xsrf"] = "true"
    h.update(headers or {})
    return request(d, "POST", IMPORT + query, body, h)


def ndjson(*objs):
    return "".join(json.dumps(o) + "\n" for o in objs).encode()


def pattern(pid="p-*", **extra):
    return {"type": "index-pattern", "id": pid, "attributes": {"title": pid, "timeFieldName": "@timestamp"},
            "references": [], "coreMigrationVersion": "8.0.0", "migrationVersion": {"index-pattern": "7.11.0"},
            **extra}


def vis(vid="v1", refs=None, **attrs):
    a = {"title": f"vis {vid}", "visState": json.dumps({"title": vid, "type": "metric", "aggs": [], "params": {}}),
         "uiStateJSON": "{}", "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(
             {"query": {"query": "", "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"})}}
    a.update(attrs)
    return {"type": "visualization", "id": vid, "attributes": a,
            "references": refs if refs is not None else
            [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern", "id": "p-*"}],
            "coreMigrationVersion": "8.0.0", "migrationVersion": {"visualization": "7.14.0"}}


def dashboard(did="d1", panels=None, refs=None):
    panels = panels if panels is not None else [
        {"version": "8.0.0", "type": "visualization", "gridData": {"x": 0, "y": 0, "w": 24, "h": 15, "i": "1"},
         "panelIndex": "1", "embeddableConfig": {}, "panelRefName": "panel_0"}]
    return {"type": "dashboard", "id": did,
            "attributes": {"title": f"dash {did}", "panelsJSON": json.dumps(panels), "optionsJSON": "{}",
                           "timeRestore": False, "kibanaSavedObjectMeta": {"searchSourceJSON": "{}"}},
            "references": refs if refs is not None else [{"name": "panel_0", "type": "visualization", "id": "v1"}],
            "coreMigrationVersion": "8.0.0", "migrationVersion": {"dashboard": "7.14.0"}}


def import_objects(d, *objs, query="?overwrite=true"):
    a = post_import(d, multipart(ndjson(*objs)), query=query)
    assert a.status == 200, a.raw
    return a.json()


def error_of(answer, oid):
    return next(e for e in answer["errors"] if e["id"] == oid)


# ----------------------------------------------------------------------------- /api/status

def test_status_8x_format(kb):
    a = request(kb, "GET", "/api/status")
    assert a.status == 200
    assert a.headers["Content-Type"].startswith("application/json")
    j = a.json()
    assert j["version"]["number"] == "8.15.0"
    assert j["status"]["overall"]["level"] == "available"
    assert "state" not in j["status"]["overall"]
    j7 = request(kb, "GET", "/api/status?v7format=true").json()
    assert j7["status"]["overall"]["state"] == "green"
    assert "level" not in j7["status"]["overall"]


def test_status_7x_format(double):
    d = double(version="7.17.20")
    j = request(d, "GET", "/api/status").json()
    assert j["version"]["number"] == "7.17.20"
    assert j["status"]["overall"]["state"] == "green"
    assert "level" not in j["status"]["overall"]
    assert isinstance(j["status"]["statuses"], list)
    assert request(d, "GET", "/api/status?v8format=true").json()["status"]["overall"]["level"] == "available"


def test_status_query_checks(double):
    d9 = double(version="9.1.0")
    a = request(d9, "GET", "/api/status?v7format=true")
    assert a.status == 400 and a.message == "[request query.v7format]: definition for this key is missing"
    a = request(d9, "GET", "/api/status?v8format=maybe")
    assert a.status == 400 and "expected value of type [boolean]" in a.message
    assert request(d9, "GET", "/api/status?pretty=true").status == 400
    assert request(d9, "GET", "/api/status?v8format=true").status == 200


@pytest.mark.parametrize("version,key,value", [("8.15.0", "level", "unavailable"), ("7.17.20", "state", "red")])
def test_not_ready_unavailable(double, version, key, value):
    d = double(version=version)
    d.set_faults(not_ready={"seconds": 0.6})
    a = request(d, "GET", "/api/status")
    assert a.status == 503
    assert a.json()["status"]["overall"][key] == value
    assert post_import(d, multipart(BUNDLE8)).status == 503
    time.sleep(0.7)
    a = request(d, "GET", "/api/status")
    assert a.status == 200 and a.json()["status"]["overall"][key] in ("available", "green")


@pytest.mark.parametrize("version,key,value", [("8.15.0", "level", "degraded"), ("7.17.20", "state", "yellow")])
def test_not_ready_degraded(double, version, key, value):
    d = double(version=version)
    d.set_faults(not_ready={"mode": "degraded", "count": 1})
    a = request(d, "GET", "/api/status")
    assert a.status == 200 and a.json()["status"]["overall"][key] == value
    assert request(d, "GET", "/api/status").json()["status"]["overall"][key] in ("available", "green")


def test_not_ready_booting(double):
    d8, d7 = double(version="8.15.0"), double(version="7.17.20")
    for d in (d8, d7):
        d.set_faults(not_ready={"mode": "booting", "count": 2})
    a = request(d8, "GET", "/api/status")
    assert a.status == 503 and a.json() == {"statusCode": 503, "error": "Service Unavailable",
                                            "message": "Kibana server is not ready yet"}
    a = request(d7, "GET", "/api/status")
    assert a.status == 503 and a.raw == b"Kibana server is not ready yet"
    assert a.headers["Content-Type"].startswith("text/plain")
    assert post_import(d7, multipart(BUNDLE7)).status == 503           # every route
    assert request(d7, "GET", "/api/status").status == 200


# ----------------------------------------------------------------------------- auth

def test_auth(double):
    d = double(user="elastic:changeme", api_key="kid:ksecret")
    a = request(d, "GET", "/api/status")
    assert a.status == 401 and a.headers.get_all("WWW-Authenticate")
    bad = base64.b64encode(b"elastic:wrong").decode()
    a = request(d, "GET", "/api/status", headers={"Authorization": "Basic " + bad})
    assert a.status == 401 and "unable to authenticate user [elastic]" in a.message
    good = base64.b64encode(b"elastic:changeme").decode()
    assert request(d, "GET", "/api/status", headers={"Authorization": "Basic " + good}).status == 200
    key = base64.b64encode(b"kid:ksecret").decode()
    assert request(d, "GET", "/api/status", headers={"Authorization": "ApiKey " + key}).status == 200
    # imports are authenticated first: no xsrf header, but the answer is 401
    a = post_import(d, multipart(BUNDLE8), xsrf=False)
    assert a.status == 401
    d.set_faults(unauthorized={"count": 1})
    assert request(d, "GET", "/api/status", headers={"Authorization": "Basic " + good}).status == 401
    assert request(d, "GET", "/api/status", headers={"Authorization": "Basic " + good}).status == 200


# ----------------------------------------------------------------------------- import: the happy path

def test_import_bundle_answer_shape(kb):
    j = import_objects(kb, *[json.loads(x) for x in BUNDLE8.splitlines()[:-1]])
    assert j["success"] is True and j["successCount"] == 5 and j["warnings"] == []
    assert "errors" not in j
    res = {(r["type"], r["id"]): r for r in j["successResults"]}
    assert res[("dashboard", "hostbeat-overview")]["meta"] == {"title": "[hostbeat] Overview", "icon": "dashboardApp"}
    assert res[("index-pattern", "packetbeat-*")]["meta"]["icon"] == "indexPatternApp"
    assert all(r["managed"] is False and "overwrite" not in r for r in j["successResults"])
    assert set(kb.objects()) == set(res)
    assert kb.import_count == 1
    assert kb.violations == []
    # the stored object is served back
    a = request(kb, "GET", "/api/saved_objects/dashboard/hostbeat-overview")
    assert a.status == 200 and a.json()["attributes"]["title"] == "[hostbeat] Overview"
    assert request(kb, "GET", "/api/saved_objects/dashboard/nope").status == 404


def test_import_summary_line_and_blank_lines_skipped(kb):
    body = b"\n" + BUNDLE8 + b"\n  \n"
    a = post_import(kb, multipart(body))
    assert a.status == 200 and a.json()["successCount"] == 5


def test_overwrite_reported_and_conflict_without_it(kb):
    first = import_objects(kb, pattern())
    assert first["success"] and "overwrite" not in first["successResults"][0]
    again = import_objects(kb, pattern())
    assert again["successResults"][0]["overwrite"] is True
    j = import_objects(kb, pattern(), query="")
    assert j["success"] is False and j["successCount"] == 0
    assert error_of(j, "p-*")["error"] == {"type": "conflict"}


def test_create_new_copies(kb):
    import_objects(kb, pattern())
    j = import_objects(kb, pattern(), vis(), query="?createNewCopies=true")
    assert j["success"] is True
    dest = {r["id"]: r["destinationId"] for r in j["successResults"]}
    objs = kb.objects()
    assert ("index-pattern", dest["p-*"]) in objs
    # the copy of the visualization points at the copy of the pattern
    assert objs[("visualization", dest["v1"])]["references"][0]["id"] == dest["p-*"]


def test_multipart_preamble_epilogue_and_quoted_boundary(kb):
    body = b"preamble text\r\n" + multipart(BUNDLE8, boundary="a'b(c)") + b"epilogue"
    a = post_import(kb, body, ctype='multipart/form-data; boundary="a\'b(c)"')
    assert a.status == 200 and a.json()["successCount"] == 5


# ----------------------------------------------------------------------------- import: request rejections

def test_xsrf_required(kb):
    a = post_import(kb, multipart(BUNDLE8), xsrf=False)
    assert a.status == 400
    assert a.json() == {"statusCode": 400, "error": "Bad Request", "message": "Request must contain a kbn-xsrf header."}
    assert kb.violations[-1]["kind"] == "xsrf"
    assert kb.objects() == {}


@pytest.mark.parametrize("ctype,status,message", [
    ("application/json", 415, "Unsupported Media Type"),
    ("application/x-ndjson", 415, "Unsupported Media Type"),
    ("multipart/form-data", 400, "Invalid content-type header: multipart missing boundary"),
    ("multipart/form-data; boundary=OTHER", 400, "Invalid multipart payload format"),
])
def test_content_type(kb, ctype, status, message):
    a = post_import(kb, multipart(BUNDLE8), ctype=ctype)
    assert a.status == status and a.message == message


@pytest.mark.parametrize("mangle,message", [
    (lambda b: b.replace(b"\r\n", b"\n"), "Invalid multipart payload format"),           # bare LF everywhere
    (lambda b: b.replace(b'"\r\nContent-Type', b'"\nContent-Type', 1), "Invalid multipart payload format"),
    (lambda b: b.replace(b"--XYZ\r\n", b"--XYZ ", 1), "Invalid multipart payload format"),  # no CRLF after it
    (lambda b: b[:-len(b"\r\n--XYZ--\r\n")], "Incomplete multipart payload"),           # never closed
    (lambda b: b.replace(b"\r\n\r\n", b"\r\n", 1), "Incomplete multipart payload"),       # headers never end
    (lambda b: b.replace(b"Content-Disposition", b"Content-Dispo sition", 1), "Invalid multipart payload format"),
])
def test_multipart_syntax(kb, mangle, message):
    a = post_import(kb, mangle(multipart(BUNDLE8)))
    assert a.status == 400 and a.message == message, a.raw
    assert kb.violations[-1]["kind"] == "multipart"


def test_multipart_parts(kb):
    no_disp = b"--XYZ\r\nContent-Type: application/ndjson\r\n\r\n" + BUNDLE8 + b"\r\n--XYZ--\r\n"
    assert post_import(kb, no_disp).message == "Missing content-disposition header"
    extra = multipart(BUNDLE8)[:-len(b"--XYZ--\r\n")] + \
        b'--XYZ\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n--XYZ--\r\n'
    assert post_import(kb, extra).message == "[request body.overwrite]: definition for this key is missing"
    assert post_import(kb, multipart(BUNDLE8, filename=None)).message == \
        "[request body.file]: expected value of type [Stream] but got [string]"
    assert post_import(kb, multipart(BUNDLE8, name="upload")).message == \
        "[request body.upload]: definition for this key is missing"
    assert post_import(kb, b"--XYZ--\r\n").message == \
        "[request body.file]: expected value of type [Stream] but got [undefined]"
    two = multipart(BUNDLE8)[:-len(b"--XYZ--\r\n")] + multipart(BUNDLE8)
    assert post_import(kb, two).message == "[request body.file]: expected value of type [Stream] but got [Array]"
    assert kb.objects() == {}


@pytest.mark.parametrize("filename,ext", [("hostbeat.json", ".json"), ("hostbeat", ""), ("x.ndjson.gz", ".gz")])
def test_file_extension(kb, filename, ext):
    a = post_import(kb, multipart(BUNDLE8, filename=filename))
    assert a.status == 400 and a.message == f"Invalid file extension {ext}"


def test_file_extension_case_insensitive(kb):
    assert post_import(kb, multipart(BUNDLE8, filename="HOSTBEAT.NDJSON")).status == 200


def test_part_content_type_noted(kb):
    a = post_import(kb, multipart(BUNDLE8, part_ctype=None))
    assert a.status == 200                                              # Kibana does not mind ...
    assert [v["kind"] for v in kb.violations] == ["part_content_type"]  # ... but Beats send it


@pytest.mark.parametrize("query,message", [
    ("?overwrite=true&createNewCopies=true", "[request query]: cannot use [overwrite] with [createNewCopies]"),
    ("?overwrite=yes", "[request query.overwrite]: expected value of type [boolean] but got [string]"),
    ("?overwrite=true&pretty=true", "[request query.pretty]: definition for this key is missing"),
])
def test_query(kb, query, message):
    a = post_import(kb, multipart(BUNDLE8), query=query)
    assert a.status == 400 and a.message == message


def test_compatibility_mode_is_8x_only(double):
    assert post_import(double(version="8.15.0"), multipart(BUNDLE8), query="?compatibilityMode=true").status == 200
    a = post_import(double(version="7.17.20"), multipart(BUNDLE7), query="?compatibilityMode=true")
    assert a.status == 400 and "compatibilityMode" in a.message


@pytest.mark.parametrize("line,message", [
    (b'{"type":"index-pattern",}', "Unexpected token } in JSON at position 24"),
    (b'{"type":"index-pattern"', "Unexpected end of JSON input"),
    (b'{"a":NaN}', "Unexpected token N in JSON"),
])
def test_ndjson_lines_parse(kb, line, message):
    a = post_import(kb, multipart(ndjson(pattern()) + line + b"\n"))
    assert a.status == 400 and a.message == message
    assert kb.objects() == {}                                          # nothing of the file went in


def test_duplicates_refused(kb):
    a = post_import(kb, multipart(ndjson(pattern(), pattern(), vis(), vis())))
    assert a.status == 400 and a.message == "Non-unique import objects detected: [index-pattern:p-*,visualization:v1]"


def test_payload_limit(double):
    d = double(max_payload=1000)
    a = post_import(d, multipart(BUNDLE8))
    assert a.status == 413 and a.message == "Payload content length greater than maximum allowed: 1000"


# ----------------------------------------------------------------------------- import: per-object errors

def test_unsupported_type(kb):
    j = import_objects(kb, pattern(), {"type": "widget", "id": "w", "attributes": {"title": "W"}})
    assert j["success"] is False and j["successCount"] == 1
    e = error_of(j, "w")
    assert e["error"] == {"type": "unsupported_type"} and e["type"] == "widget"
    assert e["title"] == "W" and e["meta"]["title"] == "W"
    assert list(kb.objects()) == [("index-pattern", "p-*")]


@pytest.mark.parametrize("obj,message", [
    ({"type": "index-pattern", "attributes": {"title": "x"}}, "[id]: expected value of type [string] but got [null]"),
    ({"type": "index-pattern", "id": 5, "attributes": {"title": "x"}},
     "[id]: expected value of type [string] but got [number]"),
    ({"type": "index-pattern", "id": "x", "attributes": "title"},
     "[attributes]: expected value of type [object] but got [string]"),
    ({"type": "index-pattern", "id": "x", "attributes": {"title": "x"}, "references": {}},
     "[references]: expected value of type [array] but got [Object]"),
    ({"type": "index-pattern", "id": "x", "attributes": {"title": "x"}, "references": [{"name": "a", "type": "b"}]},
     "[references.0.id]: expected value of type [string] but got [undefined]"),
    ({"type": "dashboard", "id": "x", "attributes": {"panelsJSON": "[]"}},
     "[attributes.title]: expected value of type [string] but got [undefined]"),
])
def test_object_shape(kb, obj, message):
    j = import_objects(kb, pattern(), obj)
    assert j["success"] is False and j["successCount"] == 1
    (e,) = j["errors"]
    assert e["error"] == {"type": "unknown", "message": message, "statusCode": 400}


def test_missing_references(kb):
    j = import_objects(kb, vis())
    assert j["success"] is False and j["successCount"] == 0
    assert error_of(j, "v1")["error"] == {"type": "missing_references",
                                          "references": [{"type": "index-pattern", "id": "p-*"}]}
    assert kb.objects() == {}
    # in the same import: fine; or already stored: fine
    assert import_objects(kb, pattern(), vis())["success"] is True
    assert import_objects(kb, vis("v2"))["success"] is True


def test_missing_references_per_space(double):
    d = double(spaces=["ops"])
    import_objects(d, pattern())                                       # default space only
    a = request(d, "POST", "/s/ops" + IMPORT + "?overwrite=true", multipart(ndjson(vis())),
                {"Content-Type": "multipart/form-data; boundary=XYZ", "kbn-xsrf": "1"})
    assert a.json()["errors"][0]["error"]["type"] == "missing_references"
    a = request(d, "POST", "/s/ops" + IMPORT + "?overwrite=true", multipart(ndjson(pattern(), vis())),
                {"Content-Type": "multipart/form-data; boundary=XYZ", "kbn-xsrf": "1"})
    assert a.json()["success"] is True
    assert set(d.objects("ops")) == {("index-pattern", "p-*"), ("visualization", "v1")}
    assert request(d, "POST", "/s/nope" + IMPORT, multipart(BUNDLE8),
                   {"Content-Type": "multipart/form-data; boundary=XYZ", "kbn-xsrf": "1"}).status == 404


@pytest.mark.parametrize("version,field,value,needle", [
    ("7.17.20", "coreMigrationVersion", "8.0.0", 'has property "coreMigrationVersion" which belongs to a more '
                                                 "recent version of Kibana [8.0.0]. The last known version is [7.17.20]"),
    ("8.15.0", "migrationVersion", {"visualization": "8.16.0"}, 'has property "visualization" which belongs to a more '
                                                                "recent version of Kibana [8.16.0]"),
    ("8.9.0", "typeMigrationVersion", "10.2.0", "belongs to a more recent version of Kibana [10.2.0] when the last "
                                                "known version is [8.9.0]."),
    ("8.15.0", "typeMigrationVersion", "8.16.0", "more recent version of Kibana [8.16.0]"),
    ("8.15.0", "coreMigrationVersion", "8.x", "Invalid Version: 8.x"),
])
def test_versions_newer_than_kibana(double, version, field, value, needle):
    d = double(version=version)
    p = pattern()
    p.pop("coreMigrationVersion")
    v = vis(**{})
    v[field] = value
    j = import_objects(d, p, v)
    assert j["success"] is False and j["successCount"] == 1
    e = error_of(j, "v1")["error"]
    assert e["type"] == "unknown" and e["statusCode"] == 400 and needle in e["message"], e
    assert ("visualization", "v1") not in d.objects()


def test_versions_accepted(double):
    d = double(version="8.15.0")
    v = vis()
    v.pop("migrationVersion")
    v["typeMigrationVersion"] = "10.2.0"                               # a model version, 8.10+
    assert import_objects(d, pattern(), v)["success"] is True
    d7 = double(version="7.17.20")
    assert post_import(d7, multipart(BUNDLE7)).json()["success"] is True
    j = post_import(d7, multipart(BUNDLE8)).json()                     # the 8.x bundle cannot go into 7.17
    assert j["success"] is False and j["successCount"] == 0 and len(j["errors"]) == 5


@pytest.mark.parametrize("make,message", [
    (lambda: vis(visState="{not json"), "Unexpected token n in JSON at position 1 ([attributes.visState])"),
    (lambda: vis(visState=None), "[attributes.visState]: expected value of type [string] but got [null]"),
    (lambda: vis(uiStateJSON="{"), "Unexpected end of JSON input ([attributes.uiStateJSON])"),
    (lambda: vis(kibanaSavedObjectMeta={"searchSourceJSON": "{]"}),
     "Unexpected token ] in JSON at position 1 ([attributes.kibanaSavedObjectMeta.searchSourceJSON])"),
    (lambda: vis(refs=[{"name": "other", "type": "index-pattern", "id": "p-*"}]),
     'Could not find reference "kibanaSavedObjectMeta.searchSourceJSON.index"'),
    (lambda: vis(savedSearchRefName="search_0"), 'Could not find reference "search_0"'),
    (lambda: dashboard(refs=[]), 'Could not find reference "panel_0"'),
    (lambda: dashboard(panels={"a": 1}), "[attributes.panelsJSON]: expected an array of panels"),
    (lambda: dashboard(panels=[{"panelRefName": "panel_0", "panelIndex": "1"}]),
     "[attributes.panelsJSON.0.gridData]: expected x, y, w, h numbers"),
])
def test_embedded_json_and_reference_names(kb, make, message):
    obj = make()
    j = import_objects(kb, pattern(), vis("v1") if obj["id"] != "v1" else obj, *([obj] if obj["id"] != "v1" else []))
    e = error_of(j, obj["id"])["error"]
    assert e == {"type": "unknown", "message": message, "statusCode": 400}


def test_filter_index_ref_and_prefixed_panel_ref(kb):
    ss = {"query": {"query": "", "language": "kuery"},
          "filter": [{"meta": {"indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.filter[0].meta.index"}}]}
    v = vis(kibanaSavedObjectMeta={"searchSourceJSON": json.dumps(ss)}, refs=[])
    j = import_objects(kb, pattern(), v)
    assert "filter[0].meta.index" in error_of(j, "v1")["error"]["message"]
    d = dashboard(refs=[{"name": "1:panel_0", "type": "visualization", "id": "v1"}])   # Metricbeat's form
    assert import_objects(kb, pattern(), vis(), d)["success"] is True


def test_lens_layers_need_references(kb):
    lens = {"type": "lens", "id": "l1", "attributes": {
        "title": "L", "visualizationType": "lnsMetric",
        "state": {"datasourceStates": {"formBased": {"layers": {"layer1": {"columns": {}, "columnOrder": []}}}},
                  "visualization": {}, "query": {"query": "", "language": "kuery"}, "filters": []}},
        "references": []}
    j = import_objects(kb, lens)
    assert error_of(j, "l1")["error"]["message"] == 'Could not find reference "indexpattern-datasource-layer-layer1"'
    lens["references"] = [{"name": "indexpattern-datasource-layer-layer1", "type": "index-pattern", "id": "p-*"}]
    assert import_objects(kb, pattern(), lens)["success"] is True


def test_grid_outside_48_columns_is_noted(kb):
    d = dashboard(panels=[{"gridData": {"x": 30, "y": 0, "w": 24, "h": 5, "i": "1"}, "panelIndex": "1",
                           "panelRefName": "panel_0"}])
    assert import_objects(kb, pattern(), vis(), d)["success"] is True
    assert [v["kind"] for v in kb.violations] == ["grid"]


# ----------------------------------------------------------------------------- faults

def test_fault_partial(kb):
    kb.set_faults(partial={"objects": 2, "count": 1})
    j = post_import(kb, multipart(BUNDLE8)).json()
    assert j["success"] is False and j["successCount"] == 3
    assert [e["error"] for e in j["errors"]] == [{"type": "unknown", "message": "kbdouble injected failure",
                                                  "statusCode": 500}] * 2
    assert [e["id"] for e in j["errors"]] == ["packetbeat-*", "topbeat-*"]
    assert len(kb.objects()) == 3
    assert post_import(kb, multipart(BUNDLE8)).json()["success"] is True   # count 1: one import only


def test_fault_import_status(kb):
    kb.set_faults(import_status={"code": 503, "count": 2})
    assert post_import(kb, multipart(BUNDLE8)).status == 503
    a = post_import(kb, multipart(BUNDLE8))
    assert a.status == 503 and a.json()["error"] == "Service Unavailable"
    assert post_import(kb, multipart(BUNDLE8)).status == 200
    kb.set_faults(import_status={"code": 502, "count": 1})
    a = post_import(kb, multipart(BUNDLE8))
    assert a.status == 502 and a.headers["Content-Type"] == "text/html"
    assert request(kb, "GET", "/api/status").status == 200              # the status is untouched


def test_fault_import_status_checks_request_first(kb):
    kb.set_faults(import_status={"code": 500, "count": 1})
    assert post_import(kb, multipart(BUNDLE8), xsrf=False).status == 400  # a bad request is still bad
    assert post_import(kb, multipart(BUNDLE8)).status == 500


def test_fault_forbidden(kb):
    kb.set_faults(forbidden={"count": 1})
    a = post_import(kb, multipart(BUNDLE8))
    assert a.status == 403 and a.message == "Unable to bulk_create dashboard,index-pattern,visualization"
    assert kb.objects() == {}


def test_fault_drop(kb):
    kb.set_faults(drop={"count": 1, "path": IMPORT})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        post_import(kb, multipart(BUNDLE8))
    assert post_import(kb, multipart(BUNDLE8)).status == 200


def test_set_faults_rejects_unknown(kb):
    with pytest.raises(ValueError):
        kb.set_faults(explode=True)


# ----------------------------------------------------------------------------- paths, control API, CLI

def test_base_path(double):
    d = double(base_path="/kibana/")
    assert d.url.endswith("/kibana")
    assert request(d, "GET", "/api/status").status == 404
    assert request(d, "GET", "/kibana/api/status").status == 200
    a = request(d, "POST", "/kibana" + IMPORT + "?overwrite=true", multipart(BUNDLE8),
                {"Content-Type": "multipart/form-data; boundary=XYZ", "kbn-xsrf": "1"})
    assert a.status == 200 and a.json()["successCount"] == 5


def test_unknown_routes_404(kb):
    assert request(kb, "GET", IMPORT).status == 404                     # hapi: wrong method = no route
    assert request(kb, "GET", "/api/kibana/dashboards/import").status == 404
    assert request(kb, "POST", "/api/status").status == 404


def test_control_api(kb):
    post_import(kb, multipart(BUNDLE8))
    objs = json.loads(request(kb, "GET", "/_double/objects").raw)["objects"]
    assert len(objs) == 5
    reqs = json.loads(request(kb, "GET", "/_double/requests").raw)
    assert [r["path"] for r in reqs] == [IMPORT + "?overwrite=true"]
    request(kb, "POST", "/_double/faults", json.dumps({"forbidden": {"count": 1}}).encode())
    assert post_import(kb, multipart(BUNDLE8)).status == 403
    request(kb, "POST", "/_double/reset")
    assert kb.objects() == {} and kb.requests == []


def test_parse_multipart_unit():
    assert parse_multipart(b"--B\r\nA: 1\r\n\r\nxy\r\n--B\r\n\r\nz\r\n--B--", "B") == [({"a": "1"}, b"xy"), ({}, b"z")]
    with pytest.raises(MultipartError):
        parse_multipart(b"--B\r\nA 1\r\n\r\nxy\r\n--B--", "B")           # header without a colon
    with pytest.raises(MultipartError):
        parse_multipart(b"no delimiter", "B")


def test_cli_prints_port_and_stops():
    p = subprocess.Popen([sys.executable, str(HERE / "kbdouble.py"), "--port", "0", "--version", "7.17.20"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("listening on ")
        port = int(line.split()[2])
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/api/status")
        assert json.loads(c.getresponse().read())["status"]["overall"]["state"] == "green"
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=5) == 0
