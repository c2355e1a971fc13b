#!/usr/bin/env python3
"""kbdouble: a strict Kibana API double for hostbeat's dashboard loader (Python 3 stdlib only).

Run:     python3 tests/kbdouble/kbdouble.py --port 0 [--version 8.15.0|7.17.20|9.1.0] [--user u:p]
                 [--api-key id:key] [--base-path /kibana] [--space NAME]... [--tls-cert C --tls-key K]
         prints one line "listening on PORT" (port 0 = ephemeral) and serves until SIGTERM/SIGINT.
Import:  d = KbDouble(version="8.15.0").start(); ... d.objects(); d.requests; d.violations; d.stop()

Shapes follow docs/reference/ecosystem.md §4.1-4.2, checked against elastic/kibana (the saved objects
import route: src/core/server/saved_objects/routes/import.ts, import/import_saved_objects.ts,
collect_saved_objects.ts, validate_references.ts, document_migrator.ts; the status route
src/core/server/status/routes/status.ts) and hapi's multipart parser (subtext/pez).  Error bodies are
Kibana's {"statusCode":N,"error":"<HTTP reason>","message":"..."}; clients must match on the status.

Kibana endpoints (under --base-path; space-aware ones also under /s/<space>; anything else: 404)
  GET  /api/status                  8.x/9.x format: status.overall.level (available|degraded|
                                    unavailable|critical; 503 when unavailable/critical);
                                    7.x default format: status.overall.state (green|yellow|red; 503 when
                                    red).  ?v8format=true on 7.x, ?v7format=true on 8.x (9.x: 400).
  POST /api/saved_objects/_import   ?overwrite ?createNewCopies (exclusive) ?compatibilityMode (8.x)
  GET  /api/saved_objects/{type}/{id}

Import request checks, in hapi/Kibana order (each failure is appended to `violations`)
  auth (401) -> Content-Type multipart/form-data (415) and boundary (400) -> payload size
  (413, --max-payload, default 26214400) -> multipart syntax exactly: first delimiter at the start
  or after CRLF, CRLF after every delimiter, header lines ended by CRLF (a bare LF is an error),
  "\\r\\n--B" ends a part, "--B--" closes (400 "Invalid multipart payload format"; no close:
  "Incomplete multipart payload") -> kbn-xsrf header (400) -> query params (400) -> body: exactly
  one part "file" with a filename (400 as config-schema words it) -> extension .ndjson
  (400 "Invalid file extension .json") -> each line JSON (400 with the parse error) -> at most
  10000 objects -> no duplicate type:id (400 "Non-unique import objects detected").
  The file part should say Content-Type: application/ndjson (Kibana does not care; a violation of
  kind "part_content_type" is recorded so clients can be held to what Beats send).
Per object (the object is not created; the answer lists it in errors[]):
  unsupported_type   type not one of index-pattern, visualization, dashboard, search, lens, config
  missing_references a reference {type,id} that is neither in the import nor stored in the space
  conflict           exists already and neither overwrite nor createNewCopies
  unknown (400)      id not a non-empty string; attributes not an object; references not an array of
                     {name,type,id} strings; no string title (all but config); coreMigrationVersion,
                     migrationVersion.* or typeMigrationVersion newer than the double's version
                     ("... belongs to a more recent version of Kibana ..."; model versions 10.N.0 are
                     accepted from 8.10 on); an embedded JSON string that does not parse (visState,
                     uiStateJSON, panelsJSON, optionsJSON, searchSourceJSON, index-pattern's fields,
                     fieldFormatMap, runtimeFieldMap, sourceFilters, fieldAttrs, typeMeta); a
                     panelRefName / indexRefName / savedSearchRefName / Lens layer without its
                     reference ('Could not find reference "panel_0"')
Answer (HTTP 200): {"successCount","success","warnings":[], "successResults"?, "errors"?} as §4.2;
  successResults carry "overwrite": true when an object was replaced (8.8+: "managed": false).

Faults (Python set_faults(name=spec) or POST /_double/faults {"name": spec|null}); "count": N = the next
N matching requests, "seconds": S = for S seconds, neither = until cleared:
  not_ready  {"mode": "booting"|"unavailable"|"degraded", "seconds"|"count"}
             booting: every route 503 "Kibana server is not ready yet" (7.x: plain text);
             unavailable: status 503 with level unavailable / state red, import 503;
             degraded: status 200 with level degraded / state yellow (imports work)
  unauthorized {"seconds"|"count"}   401 on every route whatever the credentials
  forbidden  {"seconds"|"count"}     403 on the import (the user lacks saved object privileges)
  import_status {"code": 500|502|503, "count"|"seconds"}  the import answers that (502: proxy HTML)
  partial    {"objects": k, "count"|"seconds"}  the first k objects of an import fail with unknown/500
  drop       {"count", "path": glob}  close the connection without an answer
Control API (outside the base path, no auth, never faulted): GET /_double/objects[?space=],
  GET /_double/requests, GET|DELETE /_double/violations, POST /_double/reset, GET|POST|DELETE
  /_double/faults.
Python API: KbDouble(...).start()/stop()/port/url, objects(space), requests, violations,
  set_faults(**spec), clear_faults(), reset(), import_count.

Not imitated: the export API, spaces management, compatibilityMode effects, reference remapping of
ambiguous conflicts, retries on version conflicts, Lens/TSVB attribute schemas beyond the checks above.
Message texts are Kibana's where known, paraphrased (same wording style) where the source was not at hand.
"""

from __future__ import annotations

import argparse
import base64
import copy
import fnmatch
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTTP_REASON = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               413: "Request Entity Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error",
               502: "Bad Gateway", 503: "Service Unavailable"}
KNOWN_TYPES = ("index-pattern", "visualization", "dashboard", "search", "lens", "config")
ICONS = {"index-pattern": "indexPatternApp", "visualization": "visualizeApp", "dashboard": "dashboardApp",
         "search": "discoverApp", "lens": "lensApp", "config": "settingsApp"}
EMBEDDED_JSON = {
    "visualization": ("visState", "uiStateJSON"),
    "dashboard": ("panelsJSON", "optionsJSON"),
    "index-pattern": ("fields", "fieldFormatMap", "runtimeFieldMap", "sourceFilters", "fieldAttrs", "typeMeta"),
}
REQUIRED_JSON = {"visualization": ("visState",), "dashboard": ("panelsJSON",)}
MAX_IMPORT_OBJECTS = 10000
DEFAULT_MAX_PAYLOAD = 26214400
FAULTS = ("not_ready", "unauthorized", "forbidden", "import_status", "partial", "drop")


class KbError(Exception):
    """A Kibana error answer: {"statusCode","error","message"} (or plain text)."""

    def __init__(self, status, message, *, kind=None, headers=None, text=None, error=None):
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.headers, self.text = headers or [], text
        self.error = error or HTTP_REASON.get(status, "Error")

    def body(self):
        return {"statusCode": self.status, "error": self.error, "message": self.message}


class ObjectError(Exception):
    """One saved object refused: the `error` member of its errors[] entry."""

    def __init__(self, error):
        super().__init__(error.get("message") or error.get("type"))
        self.error = error


def _unknown(message, status=400):
    return ObjectError({"type": "unknown", "message": message, "statusCode": status})


# ----------------------------------------------------------------------------- helpers

def _version(s):
    """'8.15.0', '7.17.20-SNAPSHOT' -> (8, 15, 0); ValueError on anything else (semver.valid)."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?", s) if isinstance(s, str) else None
    if not m:
        raise ValueError(f"Invalid Version: {s}")
    return tuple(int(x) for x in m.groups())


def _js_type(v):
    """How config-schema names a JS value's type in its messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "Array"
    return "Object"


def _js_truthy(v):
    if v is None or v is False or v == "" or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0):
        return False
    return True


def _json_parse(text):
    """JSON.parse: no NaN/Infinity; the error message in V8's style."""
    def const(name):
        raise ValueError(f"Unexpected token {name[0]} in JSON")
    try:
        return json.loads(text, parse_constant=const)
    except json.JSONDecodeError as e:
        tok = text[e.pos] if e.pos < len(text) else None
        if tok is None:
            raise ValueError("Unexpected end of JSON input") from None
        raise ValueError(f"Unexpected token {tok} in JSON at position {e.pos}") from None


def _header_params(value):
    """'form-data; name="file"; filename="a.ndjson"' -> ('form-data', {name: file, filename: a.ndjson})."""
    head, _, rest = value.partition(";")
    params = {}
    for m in re.finditer(r';?\s*([^=\s;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)', ";" + rest):
        k, v = m.group(1).lower(), m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[k] = v
    return head.strip().lower(), params


class MultipartError(Exception):
    pass


def parse_multipart(body, boundary):
    """Parts [(headers {lower-name: value}, content bytes)] of a multipart body, strictly (hapi pez)."""
    delim = b"--" + boundary.encode("latin-1")
    if body.startswith(delim):
        pos = len(delim)
    else:
        i = body.find(b"\r\n" + delim)
        if i < 0:
            raise MultipartError("Invalid multipart payload format")
        pos = i + 2 + len(delim)
    parts = []
    while True:
        if body[pos:pos + 2] == b"--":
            return parts                                    # the epilogue is ignored
        if body[pos:pos + 2] != b"\r\n":
            if pos >= len(body):
                raise MultipartError("Incomplete multipart payload")
            raise MultipartError("Invalid multipart payload format")
        pos += 2
        headers = {}
        if body[pos:pos + 2] == b"\r\n":
            cstart = pos + 2
        else:
            hend = body.find(b"\r\n\r\n", pos)
            if hend < 0:
                raise MultipartError("Incomplete multipart payload")
            raw = body[pos:hend]
            if re.search(rb"(?<!\r)\n|\r(?!\n)", raw):
                raise MultipartError("Invalid multipart payload format")
            for line in raw.split(b"\r\n"):
                name, sep, value = line.partition(b":")
                if not sep or not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):    # RFC 7230 token
                    raise MultipartError("Invalid multipart payload format")
                headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()
            cstart = hend + 4
        nxt = body.find(b"\r\n" + delim, cstart)
        if nxt < 0:
            raise MultipartError("Incomplete multipart payload")
        parts.append((headers, body[cstart:nxt]))
        pos = nxt + 2 + len(delim)


class _Req:
    def __init__(self, method, raw_path, path, params, headers, body):
        self.method, self.raw_path, self.path, self.params = method, raw_path, path, params
        self.headers, self.body = headers, body
        self.space = "default"


class _Resp:
    def __init__(self, status, body=None, ctype="application/json; charset=utf-8", headers=None):
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or []


# ----------------------------------------------------------------------------- the double

class KbDouble:
    """The Kibana API double.  Thread-safe; one lock guards all state."""

    def __init__(self, port=0, host="127.0.0.1", version="8.15.0", user=None, api_key=None, base_path="",
                 spaces=("default",), tls_cert=None, tls_key=None, max_payload=DEFAULT_MAX_PAYLOAD):
        self.version = version
        self.v = _version(version)
        self.host, self.port = host, port
        self.user, self.api_key = user, api_key
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.spaces = set(spaces) | {"default"}
        self.max_payload = max_payload
        self.ssl_ctx = None
        if tls_cert:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.load_cert_chain(tls_cert, tls_key)
        self.lock = threading.RLock()
        self.uuid = str(uuid.uuid4())
        self._server = self._thread = None
        self._conns = set()
        self.faults = {}
        self.store = {}                 # space -> {(type, id): object}
        self.requests, self.violations = [], []
        self.import_count = 0

    @property
    def v8_format(self):
        return self.v[0] >= 8

    # -- Python API -------------------------------------------------------------------------
    @property
    def url(self):
        return f"{'https' if self.ssl_ctx else 'http'}://{self.host}:{self.port}{self.base_path}"

    def start(self):
        self._server = _Server((self.host, self.port), _Handler)
        self._server.double = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="kbdouble", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        srv, self._server = self._server, None
        if srv:
            srv.shutdown()
            srv.server_close()
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def objects(self, space="default"):
        """Stored saved objects of a space: {(type, id): object} (deep copies)."""
        with self.lock:
            return copy.deepcopy(self.store.get(space, {}))

    def set_faults(self, faults=None, **kw):
        faults = {**(faults or {}), **kw}
        with self.lock:
            for name, spec in faults.items():
                if name not in FAULTS:
                    raise ValueError(f"unknown fault {name!r}")
                if spec is None or spec is False:
                    self.faults.pop(name, None)
                    continue
                spec = {} if spec is True else copy.deepcopy(spec)
                if "seconds" in spec:
                    spec["until"] = time.monotonic() + float(spec["seconds"])
                self.faults[name] = spec

    def clear_faults(self):
        with self.lock:
            self.faults = {}

    def reset(self):
        with self.lock:
            self.store, self.requests, self.violations = {}, [], []
            self.faults, self.import_count = {}, 0

    # -- internals ------------------------------------------------------------------------------
    def _violation(self, kind, req, status, detail):
        with self.lock:
            self.violations.append({"kind": kind, "method": req.method if req else None,
                                    "path": req.raw_path if req else None, "status": status, "detail": detail})

    def _fault(self, name, path=None, consume=True):
        with self.lock:
            spec = self.faults.get(name)
            if spec is None:
                return None
            if "until" in spec and time.monotonic() > spec["until"]:
                del self.faults[name]
                return None
            if path is not None and "path" in spec and not fnmatch.fnmatchcase(path, spec["path"]):
                return None
            if consume and "count" in spec:
                spec["count"] -= 1
                if spec["count"] <= 0:
                    del self.faults[name]
            return spec

    def _auth(self, req):
        if self._fault("unauthorized"):
            raise KbError(401, "Unauthorized", kind="auth", headers=self._challenges())
        if not (self.user or self.api_key):
            return
        hdr = req.headers.get("Authorization")
        scheme, _, cred = (hdr or "").partition(" ")
        try:
            decoded = base64.b64decode(cred, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = None
        if scheme.lower() == "basic" and self.user and decoded == self.user:
            return
        if scheme.lower() == "apikey" and self.api_key and decoded == self.api_key:
            return
        if hdr is None:
            msg = "Unauthorized"
        elif scheme.lower() == "basic":
            msg = (f"[security_exception\n\tRoot causes:\n\t\tsecurity_exception: unable to authenticate user "
                   f"[{(decoded or '').partition(':')[0]}] for REST request [/_security/_authenticate]]: "
                   f"unable to authenticate user [{(decoded or '').partition(':')[0]}] for REST request "
                   f"[/_security/_authenticate]")
        else:
            msg = "[security_exception]: unable to authenticate with provided credentials"
        raise KbError(401, msg, kind="auth", headers=self._challenges())

    @staticmethod
    def _challenges():
        return [("WWW-Authenticate", 'Basic realm="kibana", charset="UTF-8"'), ("WWW-Authenticate", "ApiKey")]

    @staticmethod
    def _bool_query(req, name):
        """config-schema: query keys must be declared; booleans accept true/false."""
        v = req.params.get(name)
        if v is None:
            return False
        if v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise KbError(400, f"[request query.{name}]: expected value of type [boolean] but got [string]",
                      kind="query")

    @staticmethod
    def _check_query(req, allowed):
        for k in req.params:
            if k not in allowed:
                raise KbError(400, f"[request query.{k}]: definition for this key is missing", kind="query")

    # -- /api/status ------------------------------------------------------------------------------
    def h_status(self, req):
        allowed = {"v8format", "v7format"} if self.v[0] < 9 else {"v8format"}
        self._check_query(req, allowed)
        v7 = self._bool_query(req, "v7format")
        v8 = self._bool_query(req, "v8format")
        if v7 and v8:
            raise KbError(400, "Cannot use both v7format and v8format", kind="query")
        fmt8 = v8 or (self.v8_format and not v7)
        nr = self._fault("not_ready", consume=True)
        mode = nr.get("mode", "unavailable") if nr else None
        level = {"unavailable": "unavailable", "degraded": "degraded"}.get(mode, "available")
        state = {"available": "green", "degraded": "yellow", "unavailable": "red"}[level]
        ver = {"number": self.version, "build_hash": "0" * 40, "build_number": 70000, "build_snapshot": False}
        if self.v8_format:
            ver.update({"build_flavor": "traditional", "build_date": "2024-08-05T10:05:02.000Z"})
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        metrics = {"last_updated": now, "collection_interval_in_millis": 5000}
        if fmt8:
            summary = {"available": "All services and plugins are available",
                       "degraded": "1 service is degraded: savedObjects",
                       "unavailable": "1 service is unavailable: elasticsearch"}[level]
            status = {"overall": {"level": level, "summary": summary},
                      "core": {"elasticsearch": {"level": level, "summary": summary},
                               "savedObjects": {"level": level, "summary": summary}},
                      "plugins": {}}
        else:
            ui = {"green": ("Green", "Looking good", "success", "secondary"),
                  "yellow": ("Yellow", "I'll be back", "warning", "warning"),
                  "red": ("Red", "Danger Will Robinson! Danger!", "danger", "danger")}[state]
            status = {"overall": {"since": now, "state": state, "title": ui[0], "nickname": ui[1], "icon": ui[2],
                                  "uiColor": ui[3]},
                      "statuses": [{"id": f"core:elasticsearch@{self.version}", "message": ui[1], "since": now,
                                    "state": state, "icon": ui[2], "uiColor": ui[3]}]}
        body = {"name": "kbdouble", "uuid": self.uuid, "version": ver, "status": status, "metrics": metrics}
        return _Resp(503 if level == "unavailable" else 200, body)

    # -- GET /api/saved_objects/{type}/{id} -------------------------------------------------------
    def h_get_object(self, req, otype, oid):
        self._check_query(req, set())
        with self.lock:
            obj = self.store.get(req.space, {}).get((otype, oid))
        if obj is None:
            raise KbError(404, f"Saved object [{otype}/{oid}] not found")
        return _Resp(200, obj)

    # -- POST /api/saved_objects/_import ----------------------------------------------------------
    def h_import(self, req):
        ctype = req.headers.get("Content-Type") or "application/json"
        mime, params = _header_params(ctype)
        if mime != "multipart/form-data":
            raise KbError(415, "Unsupported Media Type", kind="content_type")
        boundary = params.get("boundary")
        if not boundary:
            raise KbError(400, "Invalid content-type header: multipart missing boundary", kind="multipart")
        if len(req.body) > self.max_payload:
            raise KbError(413, f"Payload content length greater than maximum allowed: {self.max_payload}",
                          kind="too_large")
        try:
            parts = parse_multipart(req.body, boundary)
        except MultipartError as e:
            raise KbError(400, str(e), kind="multipart")
        fields = {}
        for headers, content in parts:
            disp = headers.get("content-disposition")
            if disp is None:
                raise KbError(400, "Missing content-disposition header", kind="multipart")
            dtype, dparams = _header_params(disp)
            if dtype != "form-data" or "name" not in dparams:
                raise KbError(400, "Invalid content-disposition header format", kind="multipart")
            fields.setdefault(dparams["name"], []).append((dparams.get("filename"), headers, content))
        if req.headers.get("kbn-xsrf") is None:
            raise KbError(400, "Request must contain a kbn-xsrf header.", kind="xsrf")
        allowed = {"overwrite", "createNewCopies"} | ({"compatibilityMode"} if self.v >= (8, 0, 0) else set())
        self._check_query(req, allowed)
        overwrite = self._bool_query(req, "overwrite")
        new_copies = self._bool_query(req, "createNewCopies")
        self._bool_query(req, "compatibilityMode")
        if overwrite and new_copies:
            raise KbError(400, "[request query]: cannot use [overwrite] with [createNewCopies]", kind="query")
        for name in fields:
            if name != "file":
                raise KbError(400, f"[request body.{name}]: definition for this key is missing", kind="body")
        files = fields.get("file")
        if not files:
            raise KbError(400, "[request body.file]: expected value of type [Stream] but got [undefined]",
                          kind="body")
        if len(files) > 1:
            raise KbError(400, "[request body.file]: expected value of type [Stream] but got [Array]", kind="body")
        filename, headers, content = files[0]
        if filename is None:
            raise KbError(400, "[request body.file]: expected value of type [Stream] but got [string]", kind="body")
        if headers.get("content-type", "").lower() != "application/ndjson":
            self._violation("part_content_type", req, 200,
                            f"file part Content-Type {headers.get('content-type')!r}, Beats send application/ndjson")
        ext = os.path.splitext(filename)[1].lower()
        if ext != ".ndjson":
            raise KbError(400, f"Invalid file extension {ext}", kind="extension")
        objs = self._read_ndjson(content)

        st = self._fault("import_status")
        if st:
            code = int(st.get("code", 503))
            if code == 502:
                return _Resp(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", "text/html")
            raise KbError(code, "kbdouble injected failure" if code != 503 else "Service Unavailable")
        if self._fault("forbidden"):
            types = ",".join(sorted({o.get("type") for o in objs if isinstance(o, dict)
                                     and isinstance(o.get("type"), str)}))
            raise KbError(403, f"Unable to bulk_create {types}", kind="forbidden")
        with self.lock:
            self.import_count += 1
            return _Resp(200, self._import(req, objs, overwrite, new_copies))

    def _read_ndjson(self, content):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as e:
            raise KbError(400, f"Unexpected token in JSON at position {e.start}", kind="ndjson")
        objs = []
        for line in text.split("\n"):
            if not line.strip():
                continue
            try:
                obj = _json_parse(line)
            except ValueError as e:
                raise KbError(400, str(e), kind="ndjson")
            if not _js_truthy(obj) or (isinstance(obj, dict) and _js_truthy(obj.get("exportedCount"))):
                continue
            objs.append(obj)
        if len(objs) > MAX_IMPORT_OBJECTS:
            raise KbError(400, f"Can't import more than {MAX_IMPORT_OBJECTS} objects", kind="limit")
        seen, dups = set(), []
        for o in objs:
            if isinstance(o, dict) and o.get("type") in KNOWN_TYPES and isinstance(o.get("id"), str):
                key = (o["type"], o["id"])
                if key in seen and f"{key[0]}:{key[1]}" not in dups:
                    dups.append(f"{key[0]}:{key[1]}")
                seen.add(key)
        if dups:
            raise KbError(400, f"Non-unique import objects detected: [{','.join(dups)}]", kind="duplicates")
        return objs

    def _import(self, req, objs, overwrite, new_copies):
        space = self.store.setdefault(req.space, {})
        errors, results = [], []

        def title_of(o):
            a = o.get("attributes") if isinstance(o, dict) else None
            t = a.get("title") if isinstance(a, dict) else None
            return t if isinstance(t, str) else (a.get("name") if isinstance(a, dict) and
                                                 isinstance(a.get("name"), str) else None)

        def fail(o, error):
            oid = o.get("id") if isinstance(o, dict) else None
            otype = o.get("type") if isinstance(o, dict) else None
            entry = {"id": oid, "type": otype, "title": title_of(o),
                     "meta": {"title": title_of(o), "icon": ICONS.get(otype)}, "error": error}
            if overwrite and isinstance(otype, str) and isinstance(oid, str) and (otype, oid) in space:
                entry["overwrite"] = True
            errors.append(entry)
            self._violation("object_" + error["type"], req, 200,
                            f"{otype}:{oid}: {error.get('message') or error.get('references') or ''}")

        # 1. collect: supported types; the shape of each object
        candidates = []
        for o in objs:
            if not isinstance(o, dict) or o.get("type") not in KNOWN_TYPES:
                fail(o, {"type": "unsupported_type"})
                continue
            try:
                self._check_shape(o)
            except ObjectError as e:
                fail(o, e.error)
                continue
            candidates.append(o)
        in_import = {(o["type"], o["id"]) for o in objs if isinstance(o, dict) and o.get("type") in KNOWN_TYPES
                     and isinstance(o.get("id"), str)}
        # 2. references
        valid = []
        for o in candidates:
            missing = []
            for r in o.get("references", []):
                key = (r["type"], r["id"])
                if key not in in_import and key not in space and {"type": r["type"], "id": r["id"]} not in missing:
                    missing.append({"type": r["type"], "id": r["id"]})
            if missing:
                fail(o, {"type": "missing_references", "references": missing})
            else:
                valid.append(o)
        # 3. conflicts
        creatable = []
        for o in valid:
            if not overwrite and not new_copies and (o["type"], o["id"]) in space:
                fail(o, {"type": "conflict"})
            else:
                creatable.append(o)
        # 4. create (bulkCreate: migrations, embedded JSON, reference names)
        partial = self._fault("partial")
        nfail = int(partial.get("objects", 1)) if partial else 0
        new_ids = {(o["type"], o["id"]): str(uuid.uuid4()) for o in creatable} if new_copies else {}
        for o in creatable:
            try:
                if nfail > 0:
                    nfail -= 1
                    raise _unknown("kbdouble injected failure", 500)
                self._check_versions(o)
                self._check_embedded(o)
            except ObjectError as e:
                fail(o, e.error)
                continue
            key = (o["type"], o["id"])
            replaced = key in space and not new_copies
            stored = copy.deepcopy(o)
            if new_copies:
                stored["id"] = new_ids[key]
                for r in stored.get("references", []):
                    r["id"] = new_ids.get((r["type"], r["id"]), r["id"])
            stored.setdefault("references", [])
            stored["namespaces"] = [req.space]
            stored["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            space[(stored["type"], stored["id"])] = stored
            res = {"type": o["type"], "id": o["id"], "meta": {"title": title_of(o), "icon": ICONS[o["type"]]}}
            if replaced and overwrite:
                res["overwrite"] = True
            if new_copies:
                res["destinationId"] = new_ids[key]
            if self.v >= (8, 8, 0):
                res["managed"] = False
            results.append(res)
        out = {"successCount": len(results), "success": not errors, "warnings": []}
        if results:
            out["successResults"] = results
        if errors:
            out["errors"] = errors
        return out

    @staticmethod
    def _check_shape(o):
        oid = o.get("id")
        if not isinstance(oid, str) or not oid:
            raise _unknown(f"[id]: expected value of type [string] but got [{_js_type(oid) if oid != '' else 'empty'}]")
        attrs = o.get("attributes")
        if not isinstance(attrs, dict):
            raise _unknown(f"[attributes]: expected value of type [object] but got [{_js_type(attrs)}]")
        refs = o.get("references", [])
        if not isinstance(refs, list):
            raise _unknown(f"[references]: expected value of type [array] but got [{_js_type(refs)}]")
        for i, r in enumerate(refs):
            if not isinstance(r, dict):
                raise _unknown(f"[references.{i}]: expected value of type [object] but got [{_js_type(r)}]")
            for k in ("name", "type", "id"):
                if not isinstance(r.get(k), str):
                    raise _unknown(f"[references.{i}.{k}]: expected value of type [string] but got "
                                   f"[{_js_type(r.get(k)) if k in r else 'undefined'}]")
        if o["type"] != "config" and not isinstance(attrs.get("title"), str):
            raise _unknown(f"[attributes.title]: expected value of type [string] but got "
                           f"[{_js_type(attrs['title']) if 'title' in attrs else 'undefined'}]")

    def _check_versions(self, o):
        kv, oid = self.v, o["id"]
        try:
            core = o.get("coreMigrationVersion")
            if core is not None and _version(core) > kv:
                raise _unknown(f'Document "{oid}" has property "coreMigrationVersion" which belongs to a more '
                               f"recent version of Kibana [{core}]. The last known version is [{self.version}]")
            mv = o.get("migrationVersion")
            if mv is not None:
                if not isinstance(mv, dict):
                    raise _unknown(f"[migrationVersion]: expected value of type [object] but got [{_js_type(mv)}]")
                for prop, ver in mv.items():
                    if _version(ver) > kv:
                        raise _unknown(f'Document "{oid}" has property "{prop}" which belongs to a more recent '
                                       f"version of Kibana [{ver}]. The last known version is [{self.version}]")
            tv = o.get("typeMigrationVersion")
            if tv is not None:
                t = _version(tv)
                model = t[0] == 10 and kv >= (8, 10, 0) and t[1] <= 10    # model versions "10.N.0"
                if t > kv and not model:
                    raise _unknown(f'Document "{oid}" belongs to a more recent version of Kibana [{tv}] when the '
                                   f"last known version is [{self.version}].")
        except ValueError as e:
            raise _unknown(str(e))

    def _check_embedded(self, o):
        attrs, otype = o["attributes"], o["type"]
        names = {r["name"] for r in o.get("references", [])}

        def need_ref(name):
            if name not in names:
                raise _unknown(f'Could not find reference "{name}"')

        def parse(where, text, required=False):
            if text is None and not required:
                return None
            if not isinstance(text, str):
                raise _unknown(f"[attributes.{where}]: expected value of type [string] but got [{_js_type(text)}]")
            try:
                return _json_parse(text)
            except ValueError as e:
                raise _unknown(f"{e} ([attributes.{where}])")

        parsed = {f: parse(f, attrs.get(f), f in REQUIRED_JSON.get(otype, ())) for f in EMBEDDED_JSON.get(otype, ())}
        meta = attrs.get("kibanaSavedObjectMeta")
        if meta is not None:
            if not isinstance(meta, dict):
                raise _unknown("[attributes.kibanaSavedObjectMeta]: expected value of type [object] but got "
                               f"[{_js_type(meta)}]")
            ss = parse("kibanaSavedObjectMeta.searchSourceJSON", meta.get("searchSourceJSON"))
            if ss is not None:
                if not isinstance(ss, dict):
                    raise _unknown("[attributes.kibanaSavedObjectMeta.searchSourceJSON]: not an object")
                if "indexRefName" in ss:
                    need_ref(ss["indexRefName"])
                for f in ss.get("filter") or []:
                    m = f.get("meta") if isinstance(f, dict) else None
                    if isinstance(m, dict) and "indexRefName" in m:
                        need_ref(m["indexRefName"])
        if otype == "visualization":
            if not isinstance(parsed["visState"], dict):
                raise _unknown("[attributes.visState]: not an object")
            if attrs.get("savedSearchRefName"):
                need_ref(attrs["savedSearchRefName"])
        if otype == "dashboard":
            panels = parsed["panelsJSON"]
            if not isinstance(panels, list):
                raise _unknown("[attributes.panelsJSON]: expected an array of panels")
            for i, p in enumerate(panels):
                if not isinstance(p, dict):
                    raise _unknown(f"[attributes.panelsJSON.{i}]: expected an object")
                if "panelRefName" in p:
                    prefixed = f"{p.get('panelIndex')}:{p['panelRefName']}"
                    if p["panelRefName"] not in names and prefixed not in names:
                        raise _unknown(f'Could not find reference "{p["panelRefName"]}"')
                g = p.get("gridData")
                if not (isinstance(g, dict) and all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h"))):
                    raise _unknown(f"[attributes.panelsJSON.{i}.gridData]: expected x, y, w, h numbers")
                if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 48:
                    self._violation("grid", None, 200, f"dashboard {o['id']} panel {i}: outside the 48-column grid")
        if otype == "lens":
            state = attrs.get("state")
            if not isinstance(state, dict):
                raise _unknown(f"[attributes.state]: expected value of type [object] but got [{_js_type(state)}]")
            ds = state.get("datasourceStates") or {}
            for key in ("formBased", "indexpattern"):
                layers = (ds.get(key) or {}).get("layers") if isinstance(ds.get(key), dict) else None
                for layer_id in (layers or {}):
                    need_ref(f"indexpattern-datasource-layer-{layer_id}")

    # -- serving ------------------------------------------------------------------------------------
    @staticmethod
    def _read_body(h):
        if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(h.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(h.rfile.read(size))
                h.rfile.readline(1024)
        n = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(n) if n > 0 else b""

    def _log(self, req, status):
        with self.lock:
            self.requests.append({"method": req.method, "path": req.raw_path, "status": status,
                                  "headers": dict(req.headers.items()), "body": req.body, "t": time.time()})
            del self.requests[:-2000]

    def _serve(self, h):
        split = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(split.path) or "/"
        params = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        body = self._read_body(h)
        if path == "/_double" or path.startswith("/_double/"):
            return self._control(h, path, params, body)
        req = _Req(h.command, h.path, path, params, h.headers, body)
        if self._fault("drop", path):
            self._log(req, 0)
            h.close_connection = True
            return
        self._send(h, req, self._process(req))

    def _process(self, req):
        try:
            nr = self._fault("not_ready", consume=False)
            if nr and nr.get("mode") == "booting":
                self._fault("not_ready")
                if self.v8_format:
                    raise KbError(503, "Kibana server is not ready yet")
                raise KbError(503, "", text="Kibana server is not ready yet")
            path = req.path
            if self.base_path:
                if path != self.base_path and not path.startswith(self.base_path + "/"):
                    raise KbError(404, "Not Found", kind="base_path")
                path = path[len(self.base_path):] or "/"
            m = re.match(r"/s/([^/]+)(/.*)", path)
            if m:
                if not re.fullmatch(r"[a-z0-9_-]+", m.group(1)) or m.group(1) not in self.spaces:
                    raise KbError(404, f"Saved object [space/{m.group(1)}] not found", kind="space")
                req.space, path = m.group(1), m.group(2)
            path = path.rstrip("/") or "/"
            if path == "/api/status" and req.method == "GET":
                self._auth(req)
                return self.h_status(req)
            if path == "/api/saved_objects/_import" and req.method == "POST":
                self._auth(req)
                if self._fault("not_ready", consume=False) and \
                        self._fault("not_ready", consume=False).get("mode", "unavailable") == "unavailable":
                    raise KbError(503, "Service Unavailable")
                return self.h_import(req)
            g = re.fullmatch(r"/api/saved_objects/([^/_][^/]*)/([^/]+)", path)
            if g and req.method == "GET":
                self._auth(req)
                return self.h_get_object(req, g.group(1), g.group(2))
            raise KbError(404, "Not Found", kind="no_route")
        except KbError as e:
            if e.kind:
                self._violation(e.kind, req, e.status, e.message)
            if e.text is not None:
                return _Resp(e.status, e.text.encode(), "text/plain; charset=utf-8", e.headers)
            return _Resp(e.status, e.body(), headers=e.headers)

    def _send(self, h, req, resp):
        body = resp.body
        if body is None:
            body = b""
        elif not isinstance(body, bytes):
            body = json.dumps(body, separators=(",", ":")).encode()
        self._log(req, resp.status)
        h.send_response(resp.status)
        for k, v in resp.headers:
            h.send_header(k, v)
        h.send_header("kbn-name", "kbdouble")
        h.send_header("cache-control", "private, no-cache, no-store, must-revalidate")
        if resp.ctype:
            h.send_header("Content-Type", resp.ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if req.method != "HEAD":
            h.wfile.write(body)

    def _control(self, h, path, params, body):
        method, parts = h.command, path.split("/")[2:]
        status, out = 200, {"ok": True}
        try:
            arg = json.loads(body) if body.strip() else {}
            if parts == ["objects"] and method == "GET":
                objs = self.objects(params.get("space", "default"))
                out = {"objects": list(objs.values())}
            elif parts == ["requests"] and method == "GET":
                with self.lock:
                    out = [{k: v for k, v in r.items() if k != "body"} for r in self.requests]
            elif parts == ["violations"] and method in ("GET", "DELETE"):
                with self.lock:
                    out = {"violations": list(self.violations)}
                    if method == "DELETE":
                        self.violations.clear()
            elif parts == ["reset"] and method == "POST":
                self.reset()
            elif parts == ["faults"] and method in ("GET", "POST", "DELETE"):
                if method == "POST":
                    self.set_faults(arg)
                elif method == "DELETE":
                    self.clear_faults()
                with self.lock:
                    out = {"faults": copy.deepcopy(self.faults)}
            else:
                status, out = 404, {"error": f"unknown control endpoint {method} {path}"}
        except (ValueError, TypeError, KeyError) as e:
            status, out = 400, {"error": str(e)}
        data = json.dumps(out, default=str).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 300

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.double._serve(self)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        d = self.double
        if d.ssl_ctx:
            request.settimeout(10)
            try:
                request = d.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            request.settimeout(None)
        d._conns.add(request)
        try:
            _Handler(request, client_address, self)
        except OSError:
            pass
        finally:
            d._conns.discard(request)
            if d.ssl_ctx:
                request.close()

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Strict Kibana API double (see module docstring).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5601)
    ap.add_argument("--version", default="8.15.0", help="8.15.0 | 7.17.20 | 9.1.0 | any X.Y.Z")
    ap.add_argument("--user", help="u:p for Basic auth")
    ap.add_argument("--api-key", help="id:key for ApiKey auth")
    ap.add_argument("--base-path", default="", help="server.basePath, e.g. /kibana")
    ap.add_argument("--space", action="append", default=[], help="an extra space id (repeatable)")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--max-payload", type=int, default=DEFAULT_MAX_PAYLOAD)
    a = ap.parse_args(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):        # before the port is announced: no race
        signal.signal(sig, lambda *_: done.set())
    d = KbDouble(port=a.port, host=a.host, version=a.version, user=a.user, api_key=a.api_key,
                 base_path=a.base_path, spaces=["default", *a.space], tls_cert=a.tls_cert, tls_key=a.tls_key,
                 max_payload=a.max_payload).start()
    print(f"listening on {d.port}", flush=True)
    while not done.wait(0.5):
        pass
    d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
