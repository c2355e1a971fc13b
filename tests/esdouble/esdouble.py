#!/usr/bin/env python3
"""esdouble: a strict Elasticsearch API double for hostbeat's tests (Python 3 stdlib only).

Run:     python3 tests/esdouble/esdouble.py --port 0 [--state-file F] [--tls-cert C --tls-key K]
                 [--user u:p] [--api-key id:key] [--version 8.15.0|7.17.0|9.1.0|opensearch-2.11.0]
                 [--realtime]
         prints one line "listening on PORT" (port 0 = ephemeral) and serves until SIGTERM/SIGINT.
Import:  d = EsDouble(version="8.15.0"); d.start(); ... d.docs("packetbeat-2024.05.01"); d.stop()

Shapes follow docs/reference/ecosystem.md §2-§3, checked against elastic/elasticsearch-specification
(file named at each handler) and rest-api-spec/api/*.json of elastic/elasticsearch (paths, methods,
params).  `reason` strings imitate ES' style; clients must match on `status` and `error.type`.

Elasticsearch endpoints (everything else: 400 "no handler found", wrong method: 405)
  GET|HEAD /                            info per --version          GET /_license (ES only)
  GET /_cluster/health[/{index}]        wait_for_status answers 408 at once when not met
  POST|PUT /_bulk, /{index}/_bulk       index/create/delete/update; filter_path; refresh
  GET /_cat/indices[/{index}]           v, h=, s=, format=json, bytes=, health=
  GET|POST [/{index}]/_search           match_all, term, terms, match, exists, range, ids, bool;
                                        size, from, sort, _source, track_total_hits, q=field:value
  GET|POST [/{index}]/_count            same queries
  POST|GET [/{index}]/_refresh          GET [/{index}]/_mapping
  PUT|GET|HEAD|DELETE /{index}          explicit create (settings/mappings), exists, delete
  PUT|POST|GET|HEAD|DELETE /_index_template/{name}, /_component_template/{name}, /_template/{name}
  PUT|GET|DELETE /_ilm/policy/{name}    (not in opensearch mode)
  Common params: pretty, human, error_trace, filter_path.  Unknown params: 400 like ES.

Strictness (each breach is appended to `violations`; mapping rejections go to `doc_errors`)
  method/path/params; Content-Type (406); body on a body-less endpoint; _bulk: body ends with "\\n",
  one-key action lines (index|create|delete|update) with known metadata, source lines are JSON
  objects (UTF-8, no NaN, no duplicate keys); Content-Encoding gzip|deflate (bad data: 400);
  Authorization when --user/--api-key is set (401 + WWW-Authenticate); index names; templates
  (known keys, known field types and parameters, component templates exist, priority clash).
  Documents are mapped like ES: template (composable beats legacy) + dynamic mapping with
  dynamic_templates, date detection, strict/false dynamic, total_fields.limit; values are
  validated per type (long ranges + numeric strings, double, date formats, ip, boolean, ...).
  Documents become searchable on refresh (explicit, ?refresh=, or index.refresh_interval
  elapsed, default 1s) unless --realtime.  Responses carry X-Elastic-Product: Elasticsearch
  except 401s (ES adds it "on all requests except unauthenticated ones", elastic/elasticsearch#73434),
  the Netty-made 413, the proxy-style 502 fault, and in opensearch mode.

Control API (not under an ES path, no auth, never faulted)
  GET    /_double/stats                 counts per index/status/item status, violations, faults
  GET    /_double/requests[?limit=N]    request log (no bodies)
  GET    /_double/docs/{index}          all stored docs, refreshed or not
  GET|DELETE /_double/violations        read / clear violations and doc_errors
  POST   /_double/reset                 drop indices, templates, policies, logs, faults
  POST   /_double/config                {"realtime": bool}
  GET|POST|DELETE /_double/faults       POST merges {"name": spec|null}; DELETE clears all
Faults ("count": N = next N matching requests; "seconds": S = for S seconds; "path": glob on the
request path, default every ES path):
  refuse     {"ms": M}                  close the listener (+ open connections), reopen SAME port after M ms
  hang       {"count","path"}           read the request, never answer (held until cleared/stop)
  slow       {"ms": M, "count","path"}  process the request, answer M ms late
  reject     {"seconds"|"count","path"} whole-request 429 es_rejected_execution_exception
  status     {"code": 502|503|500, "seconds"|"count","path"}
  items      {"every": k, "status": 400|429|503} or {"match": {"source.port": 53}, "status": 400};
             a list of such rules is accepted; faulted items are not stored
  max_content_length {"bytes": N}       413 (no body, connection closed) when the body exceeds N
  malformed  {"mode": "truncated"|"short"|"content_type"|"html"|"close", "count","path"}
Python API: EsDouble(...).start()/stop()/port/url, docs(index), ids(index), indices(), mapping(index),
  requests, violations, doc_errors, set_faults(**faults), clear_faults(), refuse(ms=None), resume(),
  stats(), reset(), realtime.

Not imitated: data streams, aliases, aggregations, scoring, routing/shards, ingest pipelines,
security APIs, versioned concurrency (if_seq_no), search_after/scroll/PIT.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import fnmatch
import gzip
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# ----------------------------------------------------------------------------- errors


class EsError(Exception):
    """An ES error response.  `simple` bodies are {"error": "text", "status": N} (405/406/no handler)."""

    def __init__(self, status, etype, reason, *, kind=None, simple=False, caused_by=None,
                 headers=None, **extra):
        super().__init__(reason)
        self.status, self.etype, self.reason = status, etype, reason
        self.kind, self.simple, self.caused_by = kind, simple, caused_by
        self.headers, self.extra = headers or [], extra

    def body(self):
        if self.simple:
            return {"error": self.reason, "status": self.status}
        cause = {"type": self.etype, "reason": self.reason, **self.extra}
        err = {"root_cause": [cause], **cause}
        if self.caused_by:
            err["caused_by"] = self.caused_by
        return {"error": err, "status": self.status}


def _not_found(name):
    return EsError(404, "index_not_found_exception", f"no such index [{name}]",
                   **{"resource.type": "index_or_alias", "resource.id": name,
                      "index_uuid": "_na_", "index": name})


def _bad(reason, kind=None, etype="illegal_argument_exception"):
    return EsError(400, etype, reason, kind=kind)


class DocError(Exception):
    """A per-document (bulk item) failure: status + error object."""

    def __init__(self, status, error):
        super().__init__(error.get("reason"))
        self.status, self.error = status, error


# ----------------------------------------------------------------------------- small helpers

def _uid(nbytes=15):
    return base64.urlsafe_b64encode(secrets.token_bytes(nbytes)).decode().rstrip("=")


def _simple_match(pattern, name):
    """ES Regex.simpleMatch: only '*' is special."""
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), name) is not None


def _as_list(v):
    return v if isinstance(v, list) else [v]


def _java_str(v):
    """How ES prints a value in error previews (Java toString)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_java_str(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_java_str(x) for x in v) + "]"
    return str(v)


def _kw(v):
    """The keyword term ES indexes for a JSON scalar."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _byte_size(n):
    """ByteSizeValue.toString: largest unit, one decimal truncated, '.0' dropped."""
    for unit, mult in (("pb", 1 << 50), ("tb", 1 << 40), ("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)):
        if n >= mult:
            v = int(n * 10 / mult) / 10
            return (f"{v:.1f}".rstrip("0").rstrip(".")) + unit
    return f"{n}b"


def _values_at(obj, parts):
    """Leaf values at a dotted path in a document, following dotted keys and arrays."""
    if isinstance(obj, list):
        return [x for e in obj for x in _values_at(e, parts)]
    if not parts:
        return [obj] if obj is not None else []
    if not isinstance(obj, dict):
        return []
    out = []
    for k, v in obj.items():
        kp = k.split(".")
        if parts[:len(kp)] == kp:
            out.extend(_values_at(v, parts[len(kp):]))
    return out


def _filter_paths(obj, paths):
    """filter_path / _source includes: paths are lists of segments, '*' globs, '**' any depth."""
    if not paths:
        return None
    if isinstance(obj, list):
        out = [r for r in (_filter_paths(e, paths) for e in obj) if r is not None]
        return out or None
    if not isinstance(obj, dict):
        return None
    out = {}
    for k, v in obj.items():
        tails, whole = [], False
        for p in paths:
            if p[0] == "**":
                tails.append(p)
                if len(p) > 1 and fnmatch.fnmatchcase(k, p[1]):
                    if len(p) == 2:
                        whole = True
                    else:
                        tails.append(p[2:])
            elif fnmatch.fnmatchcase(k, p[0]):
                if len(p) == 1:
                    whole = True
                else:
                    tails.append(p[1:])
        if whole:
            out[k] = v
        elif tails:
            r = _filter_paths(v, tails)
            if r is not None:
                out[k] = r
    return out or None


_dec = json.JSONDecoder()


def _value_col(text, parts):
    """Best-effort 1-based column where the value at `parts` starts (for ES' "[1:N]" prefix)."""
    def ws(i):
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        return i

    def find(i, parts):
        i = ws(i)
        if not parts:
            return i
        if text[i] == "{":
            i = ws(i + 1)
            while text[i] != "}":
                key, i = json.decoder.scanstring(text, i + 1)
                i = ws(ws(i) + 1)
                kp = key.split(".")
                if parts[:len(kp)] == kp:
                    r = find(i, parts[len(kp):])
                    if r is not None:
                        return r
                i = ws(_dec.raw_decode(text, i)[1])
                if text[i] == ",":
                    i = ws(i + 1)
        elif text[i] == "[":
            i = ws(i + 1)
            while text[i] != "]":
                r = find(i, parts)
                if r is not None:
                    return r
                i = ws(_dec.raw_decode(text, i)[1])
                if text[i] == ",":
                    i = ws(i + 1)
        return None
    try:
        r = find(0, parts)
    except (ValueError, IndexError):
        r = None
    return (r or 0) + 1


def _strict_json(text):
    """json.loads the way ES' Jackson does: no NaN/Infinity, no duplicate keys."""
    def pairs(kv):
        d = {}
        for k, v in kv:
            if k in d:
                raise ValueError(f"Duplicate field '{k}'")
            d[k] = v
        return d

    def const(name):
        raise ValueError(f"Non-standard token '{name}': enable JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS")
    return json.loads(text, object_pairs_hook=pairs, parse_constant=const)


# ----------------------------------------------------------------------------- dates

_ZONE = r"(?P<z>Z|[+-]\d{2}(?::?\d{2})?)"
_TIME = r"(?P<H>\d{2})(?::(?P<m>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
_NAMED_DATES = {
    "strict_date_optional_time": rf"(?P<y>\d{{4}})(?:-(?P<M>\d{{2}})(?:-(?P<d>\d{{2}})(?:T{_TIME}{_ZONE}?)?)?)?",
    "date_optional_time": r"(?P<y>\d{1,9})(?:-(?P<M>\d{1,2})(?:-(?P<d>\d{1,2})(?:T(?P<H>\d{1,2})(?::(?P<m>\d{1,2})"
                          rf"(?::(?P<s>\d{{1,2}})(?:[.,](?P<f>\d{{1,9}}))?)?)?{_ZONE}?)?)?)?",
    "strict_date_time": rf"(?P<y>\d{{4}})-(?P<M>\d{{2}})-(?P<d>\d{{2}})T(?P<H>\d{{2}}):(?P<m>\d{{2}}):(?P<s>\d{{2}})"
                        rf"\.(?P<f>\d{{1,9}}){_ZONE}",
    "strict_date_time_no_millis": rf"(?P<y>\d{{4}})-(?P<M>\d{{2}})-(?P<d>\d{{2}})T(?P<H>\d{{2}}):(?P<m>\d{{2}})"
                                  rf":(?P<s>\d{{2}}){_ZONE}",
    "strict_date": r"(?P<y>\d{4})-(?P<M>\d{2})-(?P<d>\d{2})",
    "basic_date": r"(?P<y>\d{4})(?P<M>\d{2})(?P<d>\d{2})",
}
for _a, _b in (("strict_date_optional_time_nanos", "strict_date_optional_time"),
               ("date_time", "strict_date_time"), ("date_time_no_millis", "strict_date_time_no_millis"),
               ("date", "strict_date"), ("year_month_day", "strict_date")):
    _NAMED_DATES[_a] = _NAMED_DATES[_b]


def _java_pattern(fmt):
    """Java DateTimeFormatter pattern -> regex with named groups; None when not understood."""
    out, groups = [], {"y": r"\d{4}", "u": r"\d{4}", "M": r"\d{1,2}", "d": r"\d{1,2}", "H": r"\d{1,2}",
                       "m": r"\d{1,2}", "s": r"\d{1,2}"}
    for tok in re.finditer(r"'[^']*'|([a-zA-Z])\1*|.", fmt):
        t = tok.group(0)
        if t.startswith("'"):
            out.append(re.escape(t[1:-1]))
        elif t[0] in groups:
            g = "y" if t[0] == "u" else t[0]
            width = rf"\d{{{len(t)}}}" if len(t) > 1 and t[0] != "y" else groups[t[0]]
            out.append(f"(?P<{g}>{width})")
        elif t[0] == "S":
            out.append(rf"(?P<f>\d{{{len(t)}}})")
        elif t[0] in "XZx":
            out.append(_ZONE)
        elif t[0].isalpha():
            return None
        else:
            out.append(re.escape(t))
    return "".join(out)


def _parse_date(value, fmt):
    """Epoch millis for a date value under an ES `format` ("a||b"); raises ValueError."""
    s = _kw(value) if not isinstance(value, float) else repr(value)
    for f in fmt.split("||"):
        f = f.strip()
        if f in ("epoch_millis", "epoch_second"):
            if re.fullmatch(r"-?\d+(\.\d+)?", s):
                return int(float(s) * (1000 if f == "epoch_second" else 1))
            continue
        rx = _NAMED_DATES.get(f) or _java_pattern(f)
        if rx is None:          # a pattern letter we do not model: accept any non-empty string
            if s:
                return 0
            continue
        m = re.fullmatch(rx, s)
        if not m:
            continue
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        try:
            frac = (g.get("f", "") + "000000")[:6]
            t = dt.datetime(int(g["y"]), int(g.get("M", 1)), int(g.get("d", 1)), int(g.get("H", 0)),
                            int(g.get("m", 0)), int(g.get("s", 0)), int(frac), tzinfo=dt.timezone.utc)
        except (ValueError, KeyError):
            continue
        z = g.get("z", "Z")
        if z != "Z":
            hh, mm = int(z[1:3]), int(z.replace(":", "")[3:5] or 0)
            t -= (1 if z[0] == "+" else -1) * dt.timedelta(hours=hh, minutes=mm)
        return int(t.timestamp() * 1000)
    raise ValueError(f"failed to parse date field [{s}] with format [{fmt}]")


# ----------------------------------------------------------------------------- mappings

_DEFAULT_DATE_FORMAT = "strict_date_optional_time||epoch_millis"
_INT_RANGES = {"long": 63, "integer": 31, "short": 15, "byte": 7}
_FLOATS = {"double", "float", "half_float", "scaled_float"}
_STRINGS = {"keyword", "text", "match_only_text", "wildcard", "constant_keyword"}
_COMMON = {"type", "meta", "fields", "index", "store", "doc_values", "copy_to", "null_value", "boost",
           "script", "on_script_error"}
_NUM = _COMMON | {"coerce", "ignore_malformed", "time_series_dimension", "time_series_metric"}
_FIELD_PARAMS = {
    "keyword": _COMMON | {"ignore_above", "normalizer", "eager_global_ordinals", "index_options", "norms",
                          "similarity", "split_queries_on_whitespace", "time_series_dimension"},
    "text": _COMMON | {"analyzer", "search_analyzer", "search_quote_analyzer", "fielddata", "index_options",
                       "fielddata_frequency_filter", "index_prefixes", "index_phrases", "norms",
                       "position_increment_gap", "similarity", "term_vector", "eager_global_ordinals"},
    "match_only_text": {"type", "meta", "fields"},
    "wildcard": {"type", "meta", "fields", "ignore_above", "null_value"},
    "constant_keyword": {"type", "meta", "value"},
    "scaled_float": _NUM | {"scaling_factor"},
    "date": _COMMON | {"format", "locale", "ignore_malformed"},
    "boolean": _COMMON,
    "ip": _COMMON | {"ignore_malformed", "time_series_dimension"},
    "object": {"type", "properties", "dynamic", "enabled", "subobjects"},
    "nested": {"type", "properties", "dynamic", "enabled", "include_in_parent", "include_in_root"},
}
for _t in list(_INT_RANGES) + ["double", "float", "half_float"]:
    _FIELD_PARAMS[_t] = _NUM
# known to ES but neither parameter-checked nor value-validated here
_UNCHECKED_TYPES = {"unsigned_long", "date_nanos", "flattened", "geo_point", "geo_shape", "binary", "alias",
                    "token_count", "version", "histogram", "dense_vector", "sparse_vector", "search_as_you_type",
                    "integer_range", "long_range", "float_range", "double_range", "date_range", "ip_range",
                    "completion", "rank_feature", "rank_features", "percolator", "join", "point", "shape",
                    "semantic_text", "aggregate_metric_double", "counted_keyword"}
_ROOT_PARAMS = {"properties", "dynamic_templates", "date_detection", "numeric_detection", "dynamic",
                "dynamic_date_formats", "_meta", "_source", "_routing", "runtime", "enabled", "subobjects",
                "_data_stream_timestamp", "_field_names"}
_ES_ONLY_TYPES = {"match_only_text", "wildcard", "constant_keyword", "flattened", "unsigned_long",
                  "counted_keyword", "semantic_text"}


def _is_object(m):
    return m.get("type", "object") in ("object", "nested")


def _normalize_props(props, where, opensearch):
    """Validate a `properties` block and expand dotted names ("a.b": x -> a: {properties: {b: x}})."""
    if not isinstance(props, dict):
        raise EsError(400, "mapper_parsing_exception", f"Failed to parse mapping: [{where}] must be an object")
    out = {}
    for name, m in props.items():
        if not isinstance(m, dict):
            raise EsError(400, "mapper_parsing_exception",
                          f"Failed to parse mapping: Expected map for property [fields] on field [{name}] "
                          f"but got a class {type(m).__name__}")
        parts = name.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {"properties": {}}).setdefault("properties", {})
        node[parts[-1]] = _normalize_field(parts[-1], m, opensearch)
    return out


def _normalize_field(name, m, opensearch, multi=False):
    m = dict(m)
    t = m.get("type", "object" if not multi else None)
    if t is None:
        raise EsError(400, "mapper_parsing_exception", f"Failed to parse mapping: No type specified for field [{name}]")
    if t not in _FIELD_PARAMS and t not in _UNCHECKED_TYPES or (opensearch and t in _ES_ONLY_TYPES):
        raise EsError(400, "mapper_parsing_exception",
                      f"Failed to parse mapping: No handler for type [{t}] declared on field [{name}]")
    for k in m:
        if t in _FIELD_PARAMS and k not in _FIELD_PARAMS[t]:
            raise EsError(400, "mapper_parsing_exception",
                          f"Failed to parse mapping: unknown parameter [{k}] on mapper [{name}] of type [{t}]")
    if t == "scaled_float" and "scaling_factor" not in m:
        raise EsError(400, "mapper_parsing_exception",
                      "Failed to parse mapping: Field [scaling_factor] is required")
    if _is_object(m):
        if multi:
            raise EsError(400, "mapper_parsing_exception",
                          f"Failed to parse mapping: Type [{t}] cannot be used in multi field")
        m["properties"] = _normalize_props(m.get("properties", {}), name, opensearch)
    if "fields" in m:
        m["fields"] = {k: _normalize_field(k, v, opensearch, multi=True) for k, v in m["fields"].items()}
    return m


def _normalize_mappings(mappings, opensearch):
    if not mappings:
        return {}
    if not isinstance(mappings, dict):
        raise EsError(400, "mapper_parsing_exception", "Failed to parse mapping: mappings must be an object")
    if "_doc" in mappings and len(mappings) == 1:      # 7.x include_type_name style
        mappings = mappings["_doc"]
    bad = [k for k in mappings if k not in _ROOT_PARAMS]
    if bad:
        raise EsError(400, "mapper_parsing_exception",
                      "Failed to parse mapping: Root mapping definition has unsupported parameters:  "
                      + " ".join(f"[{k} : {json.dumps(mappings[k])}]" for k in bad))
    out = dict(mappings)
    if "properties" in out:
        out["properties"] = _normalize_props(out["properties"], "_doc", opensearch)
    for tpl in out.get("dynamic_templates", []):
        if not (isinstance(tpl, dict) and len(tpl) == 1 and isinstance(next(iter(tpl.values())), dict)):
            raise EsError(400, "mapper_parsing_exception",
                          "Failed to parse mapping: Dynamic template syntax error. An array of named objects is expected.")
    return out


def _merge_mappings(base, over):
    """Deep merge of two root mappings; `over` wins on conflicts (component order, then template)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "properties":
            out["properties"] = _merge_props(out.get("properties", {}), v)
        elif k == "dynamic_templates":
            names = {next(iter(t)) for t in v}
            out[k] = [t for t in out.get(k, []) if next(iter(t)) not in names] + copy.deepcopy(v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _merge_props(a, b):
    out = copy.deepcopy(a)
    for name, m in b.items():
        if name in out and _is_object(out[name]) and _is_object(m):
            merged = {**out[name], **{k: v for k, v in m.items() if k != "properties"}}
            merged["properties"] = _merge_props(out[name].get("properties", {}), m.get("properties", {}))
            out[name] = merged
        else:
            out[name] = copy.deepcopy(m)
    return out


def _flatten_settings(s, prefix=""):
    """{"index": {"number_of_shards": 1}} / {"number_of_shards": 1} -> {"index.number_of_shards": "1"}."""
    out = {}
    for k, v in (s or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten_settings(v, key + "."))
        else:
            if not key.startswith("index."):
                key = "index." + key
            out[key] = [_kw(x) for x in v] if isinstance(v, list) else _kw(v)
    return out


def _nest_settings(flat):
    out = {}
    for k, v in sorted(flat.items()):
        node, parts = out, k.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return out


_KNOWN_SETTINGS = {"number_of_shards", "number_of_replicas", "refresh_interval", "auto_expand_replicas",
                   "codec", "hidden", "default_pipeline", "final_pipeline", "priority", "number_of_routing_shards",
                   "max_result_window", "max_inner_result_window", "max_docvalue_fields_search", "mode",
                   "max_script_fields", "max_terms_count", "max_regex_length", "gc_deletes",
                   "load_fixed_bitset_filters_eagerly",
                   "shard.check_on_startup", "soft_deletes.enabled", "soft_deletes.retention_lease.period",
                   "query.default_field", "format", "uuid", "version.created", "creation_date", "provided_name"}
_KNOWN_SETTING_PREFIXES = ("analysis.", "routing.", "blocks.", "translog.", "merge.", "sort.", "search.",
                           "indexing.", "similarity.", "store.", "unassigned.", "write.", "mapping.", "highlight.",
                           "lifecycle.", "time_series.", "routing_partition_size")


def _check_settings(flat, opensearch):
    for k in flat:
        short = k[len("index."):]
        ok = short in _KNOWN_SETTINGS or short.startswith(_KNOWN_SETTING_PREFIXES)
        if opensearch and short.startswith("lifecycle."):
            ok = False
        if opensearch and short.startswith("plugins."):
            ok = True
        if not ok:
            raise _bad(f"unknown setting [{k}] please check that any required plugins are installed, or check "
                       "the breaking changes documentation for removed settings", kind="settings")


def _duration_s(v, default):
    m = re.fullmatch(r"(-?\d+)(ms|s|m|h|d)?", str(v or "").strip())
    if not m:
        return default
    n = int(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "ms"] if n >= 0 else -1


_DYN_DEFAULT_TYPE = {"string": "text", "long": "long", "double": "float", "boolean": "boolean", "date": "date",
                     "object": "object"}
_DEFAULT_DYNAMIC_DATE_FORMATS = ["strict_date_optional_time", "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd"]


def _index_fields(mappings):
    """Flat path -> field mapping dict (the same dict objects as in the tree)."""
    flat = {}

    def walk(props, prefix):
        for name, m in props.items():
            flat[prefix + name] = m
            if _is_object(m):
                walk(m.setdefault("properties", {}), prefix + name + ".")
    walk(mappings.setdefault("properties", {}), "")
    return flat


class Index:
    """One concrete index: settings (flat, strings), root mapping, documents, refresh point."""

    def __init__(self, name, settings, mappings, template=None):
        self.name, self.uuid = name, _uid(16)[:22]
        self.created = int(time.time() * 1000)
        self.settings = {"index.number_of_shards": "1", "index.number_of_replicas": "1", **settings}
        self.mappings = mappings
        self.template = template
        self.docs = {}              # _id -> {"_source", "_version", "_seq_no", "t", "size"}
        self.seq = 0                # next _seq_no
        self.refreshed_seq = -1     # docs with _seq_no <= this are searchable
        self.deleted = 0
        self.fields = _index_fields(self.mappings)

    @property
    def pri(self):
        return int(self.settings.get("index.number_of_shards", "1"))

    @property
    def rep(self):
        return int(self.settings.get("index.number_of_replicas", "1"))

    def field_count(self):
        return len(self.fields) + sum(len(m.get("fields", {})) for m in self.fields.values())

    def field_mapping(self, path):
        """(mapping, path of the value in _source) for a field name, multi-fields included."""
        m = self.fields.get(path)
        if m is None and "." in path:
            parent, _, sub = path.rpartition(".")
            pm = self.fields.get(parent)
            if pm and sub in pm.get("fields", {}):
                return pm["fields"][sub], parent
        return m, path

    def refresh(self):
        self.refreshed_seq = self.seq - 1

    def visible(self, realtime):
        interval = _duration_s(self.settings.get("index.refresh_interval", "1s"), 1)
        now = time.time()
        return [(i, d) for i, d in self.docs.items()
                if realtime or d["_seq_no"] <= self.refreshed_seq or (interval >= 0 and now - d["t"] >= interval)]

    def store_size(self):
        return 225 + sum(d["size"] for d in self.docs.values())      # 225b: an empty index on ES 8

    def to_json(self):
        return {k: getattr(self, k) for k in ("name", "uuid", "created", "settings", "mappings", "template",
                                              "docs", "seq", "refreshed_seq", "deleted")}

    @classmethod
    def from_json(cls, j):
        idx = cls(j["name"], j["settings"], j["mappings"], j.get("template"))
        for k in ("uuid", "created", "docs", "seq", "refreshed_seq", "deleted"):
            setattr(idx, k, j[k])
        return idx


class _DocMapper:
    """Maps one document onto an index like ES' DocumentParser (much simplified).

    New dynamic fields collect in `added` (path -> mapping) and are committed only when the whole
    document parsed, so a rejected document leaves the mapping unchanged."""

    def __init__(self, idx, flags, doc_id, raw):
        self.idx, self.flags, self.doc_id, self.raw = idx, flags, doc_id, raw
        self.root = idx.mappings
        self.added = {}

    # -- errors -----------------------------------------------------------------------------
    def fail(self, path, reason, caused=None, etype=None):
        if self.flags["es8"]:
            reason = f"[1:{_value_col(self.raw, path.split('.')) if path else 1}] {reason}"
        err = {"type": etype or self.flags["parse_exc"], "reason": reason}
        if caused:
            err["caused_by"] = {"type": caused[0], "reason": caused[1]}
        raise DocError(400, err)

    def field_fail(self, path, ftype, val, caused):
        self.fail(path, f"failed to parse field [{path}] of type [{ftype}] in document with id '{self.doc_id}'. "
                        f"Preview of field's value: '{_java_str(val)}'", caused)

    def bad_value(self, path, ftype, val, reason):
        self.field_fail(path, ftype, val, ("illegal_argument_exception", reason))

    # -- walking ----------------------------------------------------------------------------
    def lookup(self, path):
        return self.added.get(path) or self.idx.fields.get(path)

    def run(self, src):
        self.walk(src, "", self.root.get("dynamic", True))
        new = [p for p in self.added if p not in self.idx.fields]
        if new:
            limit = int(self.idx.settings.get("index.mapping.total_fields.limit", "1000"))
            n = len(new) + sum(len(self.added[p].get("fields", {})) for p in new)
            if self.idx.field_count() + n > limit:
                msg = (f"Limit of total fields [{limit}] has been exceeded while adding new fields [{n}]"
                       if self.flags["es8"] else
                       f"Limit of total fields [{limit}] in index [{self.idx.name}] has been exceeded")
                raise DocError(400, {"type": "illegal_argument_exception", "reason": msg})
        return self.added

    def commit(self):
        for path, m in self.added.items():
            parent, _, name = path.rpartition(".")
            container = self.idx.fields[parent]["properties"] if parent else self.root["properties"]
            container[name] = m
            self.idx.fields[path] = m

    def _dynamic(self, dyn, path, name, parent):
        """None: ignore the field; True: map it; strict: raise."""
        if str(dyn).lower() == "strict":
            self.fail(path, f"mapping set to strict, dynamic introduction of [{name}] within [{parent or '_doc'}] "
                            "is not allowed", etype="strict_dynamic_mapping_exception")
        return str(dyn).lower() == "true"

    def walk(self, obj, prefix, dyn):
        for key, val in obj.items():
            parts = key.split(".")
            if key == "" or "" in parts:
                self.fail(prefix + key, "field name cannot be an empty string" if key == "" else
                          f"object field starting or ending with a [.] makes object resolution ambiguous: [{key}]")
            cur, cur_dyn = prefix.rstrip("."), dyn
            skip = False
            for p in parts[:-1]:
                path = f"{cur}.{p}" if cur else p
                m = self.lookup(path)
                if m is None:
                    if not self._dynamic(cur_dyn, path, p, cur):
                        skip = True
                        break
                    m = self.from_template(path, p, "object") or {"properties": {}}
                    self.added[path] = m
                elif not _is_object(m):
                    self.fail(path, f"Could not dynamically add mapping for field [{path}.{parts[-1]}]. Existing "
                                    f"mapping for [{path}] must be of type object but found [{m.get('type')}].")
                cur, cur_dyn = path, m.get("dynamic", cur_dyn)
                if m.get("enabled") is False:
                    skip = True
                    break
            if not skip:
                self.value(f"{cur}.{parts[-1]}" if cur else parts[-1], parts[-1], val, cur_dyn, cur)

    def value(self, path, name, val, dyn, parent):
        if val is None:
            return
        if isinstance(val, list):
            for v in val:
                self.value(path, name, v, dyn, parent)
            return
        m = self.lookup(path)
        if isinstance(val, dict):
            if m is None:
                if not self._dynamic(dyn, path, name, parent):
                    return
                m = self.from_template(path, name, "object") or {"properties": {}}
                self.added[path] = m
            if _is_object(m):
                if m.get("enabled") is not False:
                    self.walk(val, path + ".", m.get("dynamic", dyn))
                return
            if m.get("type") in _UNCHECKED_TYPES:
                return
            col = _value_col(self.raw, path.split("."))
            self.field_fail(path, m.get("type"), val, ("illegal_state_exception", f"Can't get text on a START_OBJECT at 1:{col}"))
        if m is None:
            if not self._dynamic(dyn, path, name, parent):
                return
            detected, fmt = self.detect(val)
            m = self.from_template(path, name, detected)
            if m is None:
                m = {"string": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                     "double": {"type": "float"}}.get(detected, {"type": detected})
                if fmt:
                    m["format"] = fmt
            self.added[path] = m
        if _is_object(m):
            self.fail(path, f"object mapping for [{path}] tried to parse field [{name}] as object, but found a "
                            "concrete value")
        self.check(path, m, val)
        for sub, sm in m.get("fields", {}).items():
            self.check(f"{path}.{sub}", sm, val)

    def detect(self, val):
        """(match_mapping_type, date format or None) of an unmapped JSON scalar."""
        if isinstance(val, bool):
            return "boolean", None
        if isinstance(val, int):
            return ("long" if -2 ** 63 <= val < 2 ** 63 else "double"), None
        if isinstance(val, float):
            return "double", None
        is_long = re.fullmatch(r"[+-]?\d+", val) is not None
        is_double = is_long or re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(NaN|Infinity)", val) is not None
        if self.root.get("numeric_detection") is True and is_double:
            return ("long" if is_long else "double"), None
        # ES (DynamicFieldsBuilder) never date-detects pure numbers: too likely to be false positives
        if self.root.get("date_detection", True) is not False and not is_double:
            for f in self.root.get("dynamic_date_formats", _DEFAULT_DYNAMIC_DATE_FORMATS):
                try:
                    _parse_date(val, f)
                except ValueError:
                    continue
                return "date", (None if f == "strict_date_optional_time" else f + "||epoch_millis")
        return "string", None

    def from_template(self, path, name, detected):
        for tpl in self.root.get("dynamic_templates", []):
            tname, spec = next(iter(tpl.items()))
            mmt = spec.get("match_mapping_type")
            if mmt is not None and "*" not in _as_list(mmt) and detected not in _as_list(mmt):
                continue
            if detected in _as_list(spec.get("unmatch_mapping_type", [])):
                continue
            regex = spec.get("match_pattern") == "regex"

            def hit(pats, s):
                return any(re.fullmatch(p, s) if regex else _simple_match(p, s) for p in _as_list(pats))
            if "match" in spec and not hit(spec["match"], name) or "unmatch" in spec and hit(spec["unmatch"], name):
                continue
            if ("path_match" in spec and not hit(spec["path_match"], path)
                    or "path_unmatch" in spec and hit(spec["path_unmatch"], path)):
                continue
            dtype = _DYN_DEFAULT_TYPE[detected]
            m = json.loads(json.dumps(spec.get("mapping", {})).replace("{name}", name).replace("{dynamic_type}", dtype))
            m.setdefault("type", dtype)
            if (detected == "object") != _is_object(m):
                continue
            try:
                m = _normalize_field(name, m, self.flags["opensearch"])
            except EsError as e:
                raise DocError(400, {"type": "mapper_parsing_exception", "reason": e.reason})
            return m
        return None

    # -- value validation -------------------------------------------------------------------
    def check(self, path, m, val):
        t = m.get("type")
        if t in _INT_RANGES or t in _FLOATS:
            self.number(path, t, m, val)
        elif t == "date":
            if isinstance(val, bool):
                fmt = m.get("format", _DEFAULT_DATE_FORMAT)
                self.bad_value(path, t, val, f"failed to parse date field [{_kw(val)}] with format [{fmt}]")
            try:
                _parse_date(val, m.get("format", _DEFAULT_DATE_FORMAT))
            except ValueError as e:
                self.bad_value(path, t, val, str(e))
        elif t == "ip":
            ok = isinstance(val, str) and "%" not in val
            try:
                ok = ok and ipaddress.ip_address(val) is not None
            except ValueError:
                ok = False
            if not ok:
                self.bad_value(path, t, val, f"'{_java_str(val)}' is not an IP string literal.")
        elif t == "boolean":
            if val not in (True, False, "true", "false", "") or isinstance(val, (int, float)) and not isinstance(val, bool):
                self.bad_value(path, t, val, f"Failed to parse value [{_java_str(val)}] as only [true] or [false] "
                                             "are allowed.")
        elif t == "constant_keyword":
            if "value" not in m:
                self.added[path] = {**m, "value": _kw(val)}
            elif _kw(val) != m["value"]:
                self.fail(path, f"[constant_keyword] field [{path}] only accepts values that are equal to the value "
                                f"defined in the mappings [{m['value']}], but got [{_kw(val)}]",
                          etype="illegal_argument_exception")

    def number(self, path, t, m, val):
        coerce = m.get("coerce", self.idx.settings.get("index.mapping.coerce", "true")) not in (False, "false")
        if isinstance(val, bool):
            self.bad_value(path, t, val, f"Current token (VALUE_{_kw(val).upper()}) not numeric, can not use numeric "
                                         "value accessors")
        num = val
        if isinstance(val, str):
            s = val
            if not coerce:
                self.bad_value(path, t, val, f"Value [{val}] is not a number (coerce is false)")
            if re.fullmatch(r"[+-]?\d+", s):
                num = int(s)
            elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", s):
                num = float(s)
            else:
                self.bad_value(path, t, val, f'For input string: "{val}"')
        if t in _FLOATS:
            f = float(num)
            if not math.isfinite(f) or (t == "float" and abs(f) > 3.4028235e38) or (t == "half_float" and abs(f) > 65504):
                self.bad_value(path, t, val, f"[{t}] supports only finite values, but got [{val}]")
            return
        if isinstance(num, float):
            if not math.isfinite(num):
                self.bad_value(path, t, val, f"Value [{val}] is out of range for a {t}")
            if not coerce and not num.is_integer():
                self.bad_value(path, t, val, f"Value [{val}] has a decimal part")
            num = int(num)
        bits = _INT_RANGES[t]
        if not -2 ** bits <= num < 2 ** bits:
            article = "an" if t == "integer" else "a"
            self.bad_value(path, t, val, f"Value [{val}] is out of range for {article} {t}")


# ----------------------------------------------------------------------------- versions

def _version_flags(spec):
    opensearch = spec.startswith("opensearch-")
    number = spec[len("opensearch-"):] if opensearch else spec
    if not re.fullmatch(r"\d+\.\d+\.\d+", number):
        raise ValueError(f"bad --version {spec!r}")
    major = int(number.split(".")[0])
    es8 = not opensearch and major >= 8
    return {"number": number, "major": major, "opensearch": opensearch, "es8": es8,
            "parse_exc": "document_parsing_exception" if es8 else "mapper_parsing_exception",
            "type_in_resp": not opensearch and major == 7,
            "ctype": "application/json" if es8 else "application/json; charset=UTF-8"}


def _root_info(flags, cluster_uuid):
    """GET / — elastic/elasticsearch-specification specification/_global/info/RootNodeInfoResponse.ts
    (+ examples/200_response); lucene/wire versions per ecosystem.md §3."""
    n, major = flags["number"], flags["major"]
    if flags["opensearch"]:
        version = {"distribution": "opensearch", "number": n, "build_type": "tar", "build_hash": "0" * 40,
                   "build_date": "2023-10-13T02:55:55.511945994Z", "build_snapshot": False,
                   "lucene_version": "9.7.0", "minimum_wire_compatibility_version": "7.10.0",
                   "minimum_index_compatibility_version": "7.0.0"}
        tagline = "The OpenSearch Project: https://opensearch.org/"
    else:
        lucene, wire, idx = {7: ("8.11.1", "6.8.0", "6.0.0-beta1"), 8: ("9.11.1", "7.17.0", "7.0.0"),
                             9: ("10.2.2", "8.19.0", "8.0.0")}.get(major, ("9.11.1", "7.17.0", "7.0.0"))
        version = {"number": n, "build_flavor": "default", "build_type": "docker", "build_hash": "0" * 40,
                   "build_date": "2024-08-05T10:05:34.233336849Z", "build_snapshot": False,
                   "lucene_version": lucene, "minimum_wire_compatibility_version": wire,
                   "minimum_index_compatibility_version": idx}
        tagline = "You Know, for Search"
    return {"name": "esdouble", "cluster_name": "docker-cluster", "cluster_uuid": cluster_uuid,
            "version": version, "tagline": tagline}


# ----------------------------------------------------------------------------- routes and params

_COMMON_PARAMS = {"pretty", "human", "error_trace", "filter_path"}
_P = {
    "bulk": {"wait_for_active_shards", "refresh", "routing", "timeout", "type", "_source", "_source_excludes",
             "_source_includes", "pipeline", "require_alias", "require_data_stream", "list_executed_pipelines",
             "include_source_on_error"},
    "search": {"q", "df", "analyzer", "analyze_wildcard", "default_operator", "lenient", "from", "size", "sort",
               "_source", "_source_includes", "_source_excludes", "track_total_hits", "rest_total_hits_as_int",
               "timeout", "terminate_after", "ignore_unavailable", "allow_no_indices", "expand_wildcards",
               "preference", "routing", "request_cache", "search_type", "batched_reduce_size",
               "ccs_minimize_roundtrips", "typed_keys", "seq_no_primary_term", "version", "explain",
               "stored_fields", "docvalue_fields", "stats", "track_scores", "allow_partial_search_results",
               "max_concurrent_shard_requests", "pre_filter_shard_size", "ignore_throttled",
               "include_named_queries_score", "force_synthetic_source"},
    "count": {"q", "df", "analyzer", "analyze_wildcard", "default_operator", "lenient", "ignore_unavailable",
              "allow_no_indices", "expand_wildcards", "min_score", "preference", "routing", "terminate_after",
              "ignore_throttled"},
    "cat": {"format", "h", "help", "s", "v", "bytes", "health", "pri", "time", "expand_wildcards",
            "master_timeout", "local", "include_unloaded_segments"},
    "health": {"level", "local", "master_timeout", "timeout", "wait_for_active_shards", "wait_for_nodes",
               "wait_for_events", "wait_for_no_relocating_shards", "wait_for_no_initializing_shards",
               "wait_for_status", "expand_wildcards"},
    "tpl": {"create", "master_timeout", "cause", "timeout", "order", "flat_settings", "include_defaults", "local"},
    "idx": {"ignore_unavailable", "allow_no_indices", "expand_wildcards", "master_timeout", "timeout", "local",
            "wait_for_active_shards", "include_defaults", "flat_settings", "features"},
    "ilm": {"master_timeout", "timeout"},
    "none": set(),
}
# (path, {method: (handler, param set, body: None | "opt" | "req")}); first matching path wins, like
# ES' path trie (literal segments before {index}).  Paths/methods from rest-api-spec/api/*.json.
_ROUTES = [
    ("/", {"GET": ("info", "none", None), "HEAD": ("ping", "none", None)}),
    ("/_license", {"GET": ("license", {"local", "accept_enterprise"}, None)}),
    ("/_cluster/health", {"GET": ("health", "health", None)}),
    ("/_cluster/health/{index}", {"GET": ("health", "health", None)}),
    ("/_bulk", {"POST": ("bulk", "bulk", "req"), "PUT": ("bulk", "bulk", "req")}),
    ("/_cat/indices", {"GET": ("cat_indices", "cat", None)}),
    ("/_cat/indices/{index}", {"GET": ("cat_indices", "cat", None)}),
    ("/_refresh", {"POST": ("refresh", "idx", None), "GET": ("refresh", "idx", None)}),
    ("/_search", {"GET": ("search", "search", "opt"), "POST": ("search", "search", "opt")}),
    ("/_count", {"GET": ("count", "count", "opt"), "POST": ("count", "count", "opt")}),
    ("/_mapping", {"GET": ("get_mapping", "idx", None)}),
    ("/_index_template", {"GET": ("get_itpl", "tpl", None)}),
    ("/_index_template/{name}", {"PUT": ("put_itpl", "tpl", "req"), "POST": ("put_itpl", "tpl", "req"),
                                 "GET": ("get_itpl", "tpl", None), "HEAD": ("get_itpl", "tpl", None),
                                 "DELETE": ("del_itpl", "tpl", None)}),
    ("/_component_template", {"GET": ("get_ctpl", "tpl", None)}),
    ("/_component_template/{name}", {"PUT": ("put_ctpl", "tpl", "req"), "POST": ("put_ctpl", "tpl", "req"),
                                     "GET": ("get_ctpl", "tpl", None), "HEAD": ("get_ctpl", "tpl", None),
                                     "DELETE": ("del_ctpl", "tpl", None)}),
    ("/_template", {"GET": ("get_ltpl", "tpl", None)}),
    ("/_template/{name}", {"PUT": ("put_ltpl", "tpl", "req"), "POST": ("put_ltpl", "tpl", "req"),
                           "GET": ("get_ltpl", "tpl", None), "HEAD": ("get_ltpl", "tpl", None),
                           "DELETE": ("del_ltpl", "tpl", None)}),
    ("/_ilm/policy", {"GET": ("get_ilm", "ilm", None)}),
    ("/_ilm/policy/{name}", {"PUT": ("put_ilm", "ilm", "req"), "GET": ("get_ilm", "ilm", None),
                             "DELETE": ("del_ilm", "ilm", None)}),
    ("/{index}/_bulk", {"POST": ("bulk", "bulk", "req"), "PUT": ("bulk", "bulk", "req")}),
    ("/{index}/_search", {"GET": ("search", "search", "opt"), "POST": ("search", "search", "opt")}),
    ("/{index}/_count", {"GET": ("count", "count", "opt"), "POST": ("count", "count", "opt")}),
    ("/{index}/_refresh", {"POST": ("refresh", "idx", None), "GET": ("refresh", "idx", None)}),
    ("/{index}/_mapping", {"GET": ("get_mapping", "idx", None)}),
    ("/{index}", {"PUT": ("create_index", "idx", "opt"), "GET": ("get_index", "idx", None),
                  "HEAD": ("get_index", "idx", None), "DELETE": ("delete_index", "idx", None)}),
]
_ROUTE_RX = [(re.compile(p.replace("{index}", r"(?P<index>_all|[^/_][^/]*)").replace("{name}", r"(?P<name>[^/]+)")), m)
             for p, m in _ROUTES]
_JSON_MIMES = {"application/json", "application/x-ndjson", "application/vnd.elasticsearch+json",
               "application/vnd.elasticsearch+x-ndjson"}
_BAD_INDEX_CHARS = '\\/*?"<>| ,#:'


def _token(v):
    return ("START_OBJECT" if isinstance(v, dict) else "START_ARRAY" if isinstance(v, list) else
            "VALUE_STRING" if isinstance(v, str) else "VALUE_BOOLEAN" if isinstance(v, bool) else
            "VALUE_NULL" if v is None else "VALUE_NUMBER")


def _index_name_error(name):
    if not name:
        return "must not be empty"
    if name != name.lower():
        return "must be lowercase"
    bad = [c for c in _BAD_INDEX_CHARS if c in name]
    if bad:
        return "must not contain the following characters [' ','\"','*',',','/','<','>','?','\\\\','|']" \
            if ":" not in bad else "must not contain ':'"
    if name[0] in "_-+":
        return "must not start with '_', '-', or '+'"
    if name in (".", ".."):
        return "must not be '.' or '..'"
    if len(name.encode()) > 255:
        return "index name is too long, (%d > 255)" % len(name.encode())
    return None


def _bool_param(params, name, default=False):
    v = params.get(name)
    if v is None:
        return default
    if v in ("", "true"):
        return True
    if v == "false":
        return False
    raise _bad(f"Failed to parse value [{v}] as only [true] or [false] are allowed.", kind="param")


class _Req:
    def __init__(self, method, raw_path, path, params, headers, body):
        self.method, self.raw_path, self.path, self.params = method, raw_path, path, params
        self.headers, self.body = headers, body
        self.groups, self.json, self.compat = {}, None, None


class _Resp:
    def __init__(self, status, body=b"", ctype=None, headers=None):
        self.status, self.body, self.ctype, self.headers = status, body, ctype, headers or []


# ----------------------------------------------------------------------------- the double

class EsDouble:
    """The API double.  Thread-safe; one lock guards all ES state."""

    def __init__(self, port=0, host="127.0.0.1", version="8.15.0", state_file=None, tls_cert=None,
                 tls_key=None, user=None, api_key=None, realtime=False):
        self.flags = _version_flags(version)
        self.host, self.port = host, port
        self.state_file, self.user, self.api_key = state_file, user, api_key
        self.realtime = realtime
        self.ssl_ctx = None
        if tls_cert:
            self.ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_ctx.load_cert_chain(tls_cert, tls_key)
        self.lock = threading.RLock()
        self.cluster_uuid = _uid(16)[:22]
        self._server = self._thread = None
        self._conns = set()
        self._release = threading.Event()      # set: hung requests give up
        self._reset_state()
        self._reset_logs()
        self.faults = {}
        self._item_counter = 0
        if state_file and os.path.exists(state_file):
            self._load()

    # -- Python API -------------------------------------------------------------------------
    @property
    def url(self):
        return f"{'https' if self.ssl_ctx else 'http'}://{self.host}:{self.port}"

    def start(self):
        self._release.clear()
        self._server = _Server((self.host, self.port), _Handler)
        self._server.double = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="esdouble", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._release.set()
        self._close_listener()

    def _close_listener(self):
        srv, self._server = self._server, None
        if srv:
            srv.shutdown()
            srv.server_close()
        for c in list(self._conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def refuse(self, ms=None):
        """Stop listening (connections are refused); reopen the same port after `ms` or on resume()."""
        self._close_listener()
        if ms is not None:
            threading.Timer(ms / 1000, self.resume).start()

    def resume(self):
        if self._server is None:
            self.start()

    def docs(self, index):
        """All stored _source objects of an index, refreshed or not, in write order."""
        with self.lock:
            idx = self.indices_.get(index)
            return [copy.deepcopy(d["_source"]) for d in idx.docs.values()] if idx else []

    def ids(self, index):
        with self.lock:
            idx = self.indices_.get(index)
            return list(idx.docs) if idx else []

    def indices(self):
        with self.lock:
            return sorted(self.indices_)

    def mapping(self, index):
        with self.lock:
            return copy.deepcopy(self.indices_[index].mappings)

    def set_faults(self, faults=None, **kw):
        """Merge fault specs ({"name": spec or None}); see the module docstring."""
        faults = {**(faults or {}), **kw}
        with self.lock:
            for name, spec in faults.items():
                if name not in ("refuse", "hang", "slow", "reject", "status", "items", "max_content_length",
                                "malformed"):
                    raise ValueError(f"unknown fault {name!r}")
                if spec is None or spec is False:
                    self.faults.pop(name, None)
                    continue
                spec = {} if spec is True else copy.deepcopy(spec)
                for s in _as_list(spec):
                    if "seconds" in s:
                        s["until"] = time.monotonic() + float(s["seconds"])
                if name == "items":
                    self._item_counter = 0
                if name == "refuse":
                    threading.Timer(0.05, self.refuse, kwargs={"ms": spec.get("ms")}).start()
                    continue
                self.faults[name] = spec
            if "hang" not in self.faults:
                self._release.set()
            else:
                self._release.clear()

    def clear_faults(self):
        with self.lock:
            self.faults = {}
            self._release.set()

    def stats(self):
        with self.lock:
            return {"requests": len(self.requests), "by_status": dict(self._by_status),
                    "items_by_status": dict(self._items_by_status),
                    "indices": {n: {"docs": len(i.docs), "searchable": len(i.visible(self.realtime)),
                                    "deleted": i.deleted} for n, i in sorted(self.indices_.items())},
                    "violations": list(self.violations), "doc_errors": len(self.doc_errors),
                    "faults": {k: v for k, v in self.faults.items()}}

    def reset(self):
        with self.lock:
            self._reset_state()
            self._reset_logs()
            self.clear_faults()
            self._save()

    # -- state ------------------------------------------------------------------------------
    def _reset_state(self):
        self.indices_ = {}
        self.itpl, self.ctpl, self.ltpl, self.ilm = {}, {}, {}, {}

    def _reset_logs(self):
        self.requests, self.violations, self.doc_errors = [], [], []
        self._by_status, self._items_by_status = {}, {}

    def _save(self):
        if not self.state_file:
            return
        state = {"indices": {n: i.to_json() for n, i in self.indices_.items()}, "itpl": self.itpl,
                 "ctpl": self.ctpl, "ltpl": self.ltpl, "ilm": self.ilm, "cluster_uuid": self.cluster_uuid}
        tmp = f"{self.state_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, self.state_file)

    def _load(self):
        with open(self.state_file) as f:
            s = json.load(f)
        self.indices_ = {n: Index.from_json(j) for n, j in s["indices"].items()}
        self.itpl, self.ctpl, self.ltpl, self.ilm = s["itpl"], s["ctpl"], s["ltpl"], s["ilm"]
        self.cluster_uuid = s.get("cluster_uuid", self.cluster_uuid)

    def _violation(self, kind, req, status, detail):
        self.violations.append({"kind": kind, "method": req.method if req else None,
                                "path": req.raw_path if req else None, "status": status, "detail": detail})

    # -- index resolution ---------------------------------------------------------------------
    def _resolve(self, expr, params=None, *, wildcards_ok=True):
        """Names matched by "a,b*,-c" (ES IndexNameExpressionResolver, simplified)."""
        params = params or {}
        ignore_unavailable = _bool_param(params, "ignore_unavailable")
        allow_no = _bool_param(params, "allow_no_indices", True)
        hidden = params.get("expand_wildcards", "open") in ("all", "hidden")
        names = []
        for part in (expr or "_all").split(","):
            neg = part.startswith("-") and bool(names)
            part = part[1:] if neg else part
            if part in ("_all", "*") or "*" in part:
                if not wildcards_ok:
                    raise _bad("Wildcard expressions or all indices are not allowed")
                pat = "*" if part == "_all" else part
                hits = [n for n in sorted(self.indices_) if _simple_match(pat, n)
                        and (hidden or not n.startswith(".") or pat.startswith("."))]
            elif part in self.indices_:
                hits = [part]
            elif ignore_unavailable or neg:
                hits = []
            else:
                raise _not_found(part)
            names = [n for n in names if n not in hits] if neg else names + [n for n in hits if n not in names]
        if not names and not allow_no:
            raise _not_found(expr)
        return names

    def _template_for(self, name):
        """(settings, mappings, template name) for a new index: the highest-priority composable
        template (merging its component templates in order), else all legacy templates by order."""
        cands = [(t.get("priority", 0), n) for n, t in self.itpl.items()
                 if any(_simple_match(p, name) for p in _as_list(t["index_patterns"]))]
        settings, mappings = {}, {}
        if cands:
            tname = max(cands)[1]
            t = self.itpl[tname]
            for part in [self.ctpl[c]["template"] for c in t.get("composed_of", []) if c in self.ctpl] + \
                    [t.get("template", {})]:
                settings.update(_flatten_settings(part.get("settings")))
                mappings = _merge_mappings(mappings, part.get("mappings", {}))
            return settings, mappings, tname
        legacy = sorted((t.get("order", 0), n) for n, t in self.ltpl.items()
                        if any(_simple_match(p, name) for p in _as_list(t["index_patterns"])))
        for _, n in legacy:
            settings.update(_flatten_settings(self.ltpl[n].get("settings")))
            mappings = _merge_mappings(mappings, self.ltpl[n].get("mappings", {}))
        return settings, mappings, (legacy[-1][1] if legacy else None)

    def _create_index(self, name, settings=None, mappings=None):
        err = _index_name_error(name)
        if err:
            raise EsError(400, "invalid_index_name_exception", f"Invalid index name [{name}], {err}",
                          index_uuid="_na_", index=name)
        tset, tmap, tname = self._template_for(name)
        extra = _flatten_settings(settings)
        _check_settings(extra, self.flags["opensearch"])
        tmap = _merge_mappings(tmap, _normalize_mappings(mappings, self.flags["opensearch"]))
        idx = Index(name, {**tset, **extra}, tmap, tname)
        self.indices_[name] = idx
        return idx

    # -- handlers: info, license, health ------------------------------------------------------
    def h_info(self, req):
        return 200, _root_info(self.flags, self.cluster_uuid)

    def h_ping(self, req):
        return 200, None

    def h_license(self, req):
        """specification/license/get/GetLicenseResponse.ts + examples/response/GetLicenseResponseExample1.yaml"""
        if self.flags["opensearch"]:
            raise EsError(400, "", f"no handler found for uri [{req.raw_path}] and method [GET]", simple=True,
                          kind="no_handler")
        issued = self.cluster_uuid
        return 200, {"license": {"status": "active", "uid": f"{issued[:8]}-0000-4000-8000-{issued[8:20]}",
                                 "type": "basic", "issue_date": "2024-05-01T00:00:00.000Z",
                                 "issue_date_in_millis": 1714521600000, "max_nodes": 1000,
                                 "max_resource_units": None, "issued_to": "docker-cluster",
                                 "issuer": "elasticsearch", "start_date_in_millis": -1}}

    def h_health(self, req):
        """specification/cluster/health/ClusterHealthResponse.ts (+ example in ecosystem.md §3)."""
        names = list(self.indices_) if "index" not in req.groups else \
            self._resolve(req.groups["index"], req.params)
        pri = sum(self.indices_[n].pri for n in names)
        unassigned = sum(self.indices_[n].pri * self.indices_[n].rep for n in names)
        status = "yellow" if unassigned else "green"
        want = req.params.get("wait_for_status")
        rank = {"green": 0, "yellow": 1, "red": 2}
        if want is not None and want not in rank:
            raise _bad(f"unknown cluster health status [{want}]", kind="param")
        timed_out = want is not None and rank[status] > rank[want]
        body = {"cluster_name": "docker-cluster", "status": status, "timed_out": timed_out, "number_of_nodes": 1,
                "number_of_data_nodes": 1, "active_primary_shards": pri, "active_shards": pri,
                "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": unassigned,
                "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0, "number_of_in_flight_fetch": 0,
                "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number": 100.0 * pri / (pri + unassigned) if pri + unassigned else 100.0}
        return (408 if timed_out else 200), body

    # -- handlers: bulk ---------------------------------------------------------------------
    def h_bulk(self, req):
        """POST /_bulk — request: specification/_global/bulk/BulkRequest.ts, rest-api-spec api/bulk.json;
        response: BulkResponse.ts, types.ts (ResponseItem) and examples/response/BulkResponseExample{1,2}.yaml;
        error strings from ES' BulkRequestParser."""
        t0 = time.monotonic()
        body = req.body
        if not body:
            raise EsError(400, "parse_exception", "request body is required", kind="bulk_body")
        if not body.endswith(b"\n"):
            raise _bad("The bulk request must be terminated by a newline [\\n]", kind="bulk_newline")
        if req.params.get("refresh") not in (None, "", "true", "false", "wait_for"):
            raise _bad(f"Unknown value for refresh: [{req.params['refresh']}].", kind="param")
        lines = body.split(b"\n")[:-1]
        allow_type = self.flags["major"] == 7 or req.compat == 7
        ops, problems, i = [], [], 0
        while i < len(lines):
            ln, raw = i + 1, lines[i].rstrip(b"\r")
            i += 1
            if not raw.strip():
                continue                                    # ES skips empty action lines
            try:
                action = _strict_json(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise EsError(400, "x_content_parse_exception", f"[{ln}:1] Malformed action/metadata line [{ln}]: {e}",
                              kind="bulk_action")
            where = f"Malformed action/metadata line [{ln}]"
            if not isinstance(action, dict):
                raise _bad(f"{where}, expected START_OBJECT but found [{_token(action)}]", kind="bulk_action")
            if not action:
                raise _bad(f"{where}, expected FIELD_NAME but found [END_OBJECT]", kind="bulk_action")
            op, meta = next(iter(action.items()))
            if op not in ("index", "create", "delete", "update"):
                raise _bad(f"{where}, expected field [create], [delete], [index] or [update] but found [{op}]",
                           kind="bulk_action")
            if not isinstance(meta, dict):
                raise _bad(f"{where}, expected START_OBJECT but found [{_token(meta)}]", kind="bulk_action")
            for k, v in meta.items():
                simple = k in ("_index", "_id", "routing", "pipeline", "op_type", "version_type", "version",
                               "if_seq_no", "if_primary_term", "retry_on_conflict", "require_alias",
                               "require_data_stream", "list_executed_pipelines") or (k == "_type" and allow_type)
                if not simple and k not in ("dynamic_templates", "_source"):
                    raise _bad(f"Action/metadata line [{ln}] contains an unknown parameter [{k}]", kind="bulk_action")
                if simple and isinstance(v, (dict, list)):
                    raise _bad(f"{where}, expected a simple value for field [{k}] but found [{_token(v)}]",
                               kind="bulk_action")
            if len(action) > 1:
                raise _bad(f"{where}, expected END_OBJECT but found [FIELD_NAME]", kind="bulk_action")
            if op == "index" and meta.get("op_type") == "create":
                op = "create"
            src = None
            if op != "delete":
                if i >= len(lines):
                    raise _bad(f"esdouble: action/metadata line [{ln}] has no source line (ES would silently "
                               "drop this action)", kind="bulk_action")
                src, i = (ln + 1, lines[i].rstrip(b"\r")), i + 1
            index = meta.get("_index", req.groups.get("index"))
            doc_id = None if meta.get("_id") is None else _kw(meta["_id"])
            if index is None:
                problems.append("index is missing")
            if op in ("update", "delete") and doc_id is None:
                problems.append("id is missing")
            if doc_id == "":
                problems.append("if _id is specified it must not be empty")
            elif doc_id is not None and len(doc_id.encode()) > 512:
                problems.append(f"id [{doc_id}] is too long, must be no longer than 512 bytes but was: "
                                f"{len(doc_id.encode())}")
            ops.append((op, meta, index, doc_id, src))
        if not ops:
            problems.append("no requests added")
        if problems:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: " +
                          "".join(f"{n}: {p};" for n, p in enumerate(problems, 1)), kind="bulk_validation")

        items, touched = [], set()
        for op, meta, index, doc_id, src in ops:
            try:
                res = self._bulk_item_fault(op, index, src) or self._bulk_apply(req, op, meta, index, doc_id, src)
                touched.add(index)
            except DocError as e:
                res = {"_index": index, "_id": e.error.pop("_id", doc_id), "status": e.status, "error": e.error}
                if e.status == 400 and e.error["type"] in ("document_parsing_exception", "mapper_parsing_exception",
                                                           "strict_dynamic_mapping_exception"):
                    self.doc_errors.append({"index": index, "op": op, "error": e.error})
            if self.flags["type_in_resp"]:
                res = {"_index": res["_index"], "_type": "_doc", **res}
            self._items_by_status[str(res["status"])] = self._items_by_status.get(str(res["status"]), 0) + 1
            items.append({op: res})
        if req.params.get("refresh") in ("", "true", "wait_for"):
            for n in touched:
                if n in self.indices_:
                    self.indices_[n].refresh()
        self._save()
        return 200, {"took": int((time.monotonic() - t0) * 1000), "errors": any("error" in next(iter(it.values()))
                                                                              for it in items), "items": items}

    def _bulk_item_fault(self, op, index, src):
        rules = self.faults.get("items")
        if not rules:
            return None
        self._item_counter += 1
        for r in _as_list(rules):
            if "until" in r and time.monotonic() > r["until"] or r.get("count", 1) <= 0:
                continue
            hit = "every" in r and self._item_counter % int(r["every"]) == 0
            if "match" in r and src is not None:
                try:
                    doc = json.loads(src[1])
                except ValueError:
                    doc = {}
                hit = all(v in _values_at(doc, k.split(".")) for k, v in r["match"].items())
            if hit:
                if "count" in r:
                    r["count"] -= 1
                status = int(r.get("status", 429))
                etype, reason = {400: (self.flags["parse_exc"], "[1:1] failed to parse: esdouble injected fault"),
                                 409: ("version_conflict_engine_exception", "[x]: version conflict (injected)"),
                                 429: ("es_rejected_execution_exception", "rejected execution of coordinating "
                                       "operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, "
                                       "coordinating_operation_bytes=1, max_coordinating_and_primary_bytes=0]"),
                                 503: ("unavailable_shards_exception", f"[{index}][0] primary shard is not active "
                                       "Timeout: [1m], request: [BulkShardRequest] (injected)")
                                 }.get(status, ("exception", "esdouble injected fault"))
                raise DocError(status, {"type": etype, "reason": reason})
        return None

    def _bulk_apply(self, req, op, meta, index, doc_id, src):
        err = _index_name_error(index)
        if err:
            raise DocError(400, {"type": "invalid_index_name_exception", "reason": f"Invalid index name [{index}], {err}",
                                 "index_uuid": "_na_", "index": index})
        idx = self.indices_.get(index)
        if idx is None:
            try:
                idx = self._create_index(index)
            except EsError as e:
                raise DocError(e.status, {"type": e.etype, "reason": e.reason})
        shards = {"total": 1 + idx.rep, "successful": 1, "failed": 0}
        cur = idx.docs.get(doc_id) if doc_id is not None else None
        if op == "delete":
            if cur is None:
                return {"_index": index, "_id": doc_id, "_version": 1, "result": "not_found", "_shards": shards,
                        "_seq_no": self._next_seq(idx), "_primary_term": 1, "status": 404}
            del idx.docs[doc_id]
            idx.deleted += 1
            return {"_index": index, "_id": doc_id, "_version": cur["_version"] + 1, "result": "deleted",
                    "_shards": shards, "_seq_no": self._next_seq(idx), "_primary_term": 1, "status": 200}
        gen_id = doc_id if doc_id is not None else _uid()
        ln, raw = src
        try:
            text = raw.decode("utf-8")
            doc = _strict_json(text) if text.strip() else None
        except (ValueError, UnicodeDecodeError) as e:
            self._violation("bulk_source", req, 400, f"line {ln}: {e}")
            raise DocError(400, {"type": self.flags["parse_exc"], "_id": gen_id,
                                 "reason": ("[1:1] " if self.flags["es8"] else "") + "failed to parse",
                                 "caused_by": {"type": "json_parse_exception" if not self.flags["es8"]
                                               else "x_content_parse_exception", "reason": str(e)}})
        if not isinstance(doc, dict):
            self._violation("bulk_source", req, 400, f"line {ln}: source is not a JSON object")
            raise DocError(400, {"type": self.flags["parse_exc"], "_id": gen_id,
                                 "reason": ("[1:1] " if self.flags["es8"] else "") + "failed to parse",
                                 "caused_by": {"type": "not_x_content_exception",
                                               "reason": "Compressor detection can only be called on some xcontent "
                                                         "bytes or compressed xcontent bytes"}})
        if op == "update":
            bad = [k for k in doc if k not in ("doc", "upsert", "doc_as_upsert", "detect_noop", "_source",
                                                "script", "scripted_upsert")]
            if bad:
                self._violation("bulk_source", req, 400, f"line {ln}: unknown update field {bad[0]}")
                raise DocError(400, {"type": "x_content_parse_exception",
                                     "reason": f"[1:2] [UpdateRequest] unknown field [{bad[0]}]"})
            if "script" in doc:
                raise DocError(400, {"type": "illegal_argument_exception", "reason": "esdouble: scripts not supported"})
            if cur is None:
                if doc.get("doc_as_upsert"):
                    new = doc.get("doc", {})
                elif "upsert" in doc:
                    new = doc["upsert"]
                else:
                    raise DocError(404, {"type": "document_missing_exception", "reason": f"[{doc_id}]: document missing",
                                         "index_uuid": idx.uuid, "shard": "0", "index": index})
            else:
                new = _deep_update(copy.deepcopy(cur["_source"]), doc.get("doc", {}))
                if new == cur["_source"] and doc.get("detect_noop", True):
                    return {"_index": index, "_id": doc_id, "_version": cur["_version"], "result": "noop",
                            "_shards": {"total": 0, "successful": 0, "failed": 0}, "_seq_no": cur["_seq_no"],
                            "_primary_term": 1, "status": 200}
            doc, text = new, json.dumps(new)
        if op == "create" and cur is not None:
            raise DocError(409, {"type": "version_conflict_engine_exception",
                                 "reason": f"[{doc_id}]: version conflict, document already exists (current version "
                                           f"[{cur['_version']}])", "index_uuid": idx.uuid, "shard": "0", "index": index})
        mapper = _DocMapper(idx, self.flags, gen_id, text)
        try:
            mapper.run(doc)
        except DocError as e:
            e.error["_id"] = gen_id
            raise
        mapper.commit()
        seq = self._next_seq(idx)
        version = cur["_version"] + 1 if cur else 1
        idx.docs.pop(gen_id, None)
        idx.docs[gen_id] = {"_source": doc, "_version": version, "_seq_no": seq, "t": time.time(),
                            "size": len(raw)}
        if cur:
            idx.deleted += 1
        return {"_index": index, "_id": gen_id, "_version": version, "result": "updated" if cur else "created",
                "_shards": shards, "_seq_no": seq, "_primary_term": 1, "status": 200 if cur else 201}

    @staticmethod
    def _next_seq(idx):
        idx.seq += 1
        return idx.seq - 1

    # -- handlers: search, count --------------------------------------------------------------
    _SEARCH_KEYS = {"query", "size", "from", "sort", "_source", "track_total_hits", "timeout", "terminate_after",
                    "version", "seq_no_primary_term", "explain", "stored_fields", "docvalue_fields", "fields",
                    "min_score", "track_scores", "highlight", "stats", "profile"}
    _UNSUPPORTED_KEYS = {"aggs", "aggregations", "search_after", "collapse", "script_fields", "suggest", "rescore",
                         "knn", "pit", "slice", "indices_boost", "rank", "retriever", "post_filter",
                         "runtime_mappings"}

    def _query_from(self, req, allowed):
        body = req.json or {}
        for k, v in body.items():
            if k in self._UNSUPPORTED_KEYS:
                raise EsError(400, "esdouble_unsupported_exception", f"esdouble: [{k}] is not supported",
                              kind="unsupported")
            if k not in allowed:
                raise EsError(400, "parsing_exception", f"Unknown key for a {_token(v)} in [{k}].", kind="json_body",
                              line=1, col=1)
        query = body.get("query")
        q = req.params.get("q")
        if q is not None:
            field, sep, value = q.partition(":")
            query = {"match_all": {}} if q in ("*", "*:*") else \
                {"term": {field: value}} if sep else {"match": {"*": q}}
        return body, query

    def _search_hits(self, req, body_keys):
        names = self._resolve(req.groups.get("index", "_all"), req.params)
        body, query = self._query_from(req, body_keys)
        hits = []
        for n in names:
            idx = self.indices_[n]
            for doc_id, d in idx.visible(self.realtime):
                if self._matches(idx, doc_id, d["_source"], query):
                    hits.append((idx, doc_id, d))
        return names, body, hits

    def h_search(self, req):
        """specification/_global/search/SearchRequest.ts, SearchResponse.ts, _types/hits.ts (HitsMetadata, Hit,
        TotalHits); 7.x hits add _type (ecosystem.md §3)."""
        t0 = time.monotonic()
        names, body, hits = self._search_hits(req, self._SEARCH_KEYS)
        size = int(req.params.get("size", body.get("size", 10)))
        frm = int(req.params.get("from", body.get("from", 0)))
        if size < 0 or frm < 0:
            raise _bad(f"[{'size' if size < 0 else 'from'}] parameter cannot be negative", kind="param")
        if frm + size > 10000:
            raise _bad(f"Result window is too large, from + size must be less than or equal to: [10000] but was "
                       f"[{frm + size}]. See the scroll api for a more efficient way to request large data sets. "
                       "This limit can be set by changing the [index.max_result_window] index level setting.")
        sort = body.get("sort")
        if "sort" in req.params:
            sort = [{f.partition(":")[0]: f.partition(":")[2] or "asc"} for f in req.params["sort"].split(",")]
        keys = self._sort_keys(sort, names)
        for field, order in reversed(keys):
            hits.sort(key=lambda h: self._sort_value(h, field, order), reverse=(order == "desc"))
        total = len(hits)
        tth = req.params.get("track_total_hits", body.get("track_total_hits", 10000))
        cap = total if tth in (True, "true") else 0 if tth in (False, "false") else int(tth)
        out = []
        for idx, doc_id, d in hits[frm:frm + size]:
            h = {"_index": idx.name}
            if self.flags["type_in_resp"]:
                h["_type"] = "_doc"
            h.update({"_id": doc_id, "_score": None if keys else 1.0})
            src = self._source_filter(d["_source"], req.params, body)
            if src is not None:
                h["_source"] = src
            if keys:
                h["sort"] = [_json_scalar(self._sort_value((idx, doc_id, d), f, o)) for f, o in keys]
            out.append(h)
        shards = sum(self.indices_[n].pri for n in names)
        hm = {}
        if tth not in (False, "false"):
            hm["total"] = {"value": min(total, cap), "relation": "eq" if total <= cap else "gte"}
            if _bool_param(req.params, "rest_total_hits_as_int"):
                hm["total"] = total
        hm["max_score"] = None if keys or not out else 1.0
        hm["hits"] = out
        return 200, {"took": int((time.monotonic() - t0) * 1000), "timed_out": False,
                     "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0}, "hits": hm}

    def h_count(self, req):
        """specification/_global/count/CountRequest.ts, CountResponse.ts."""
        names, _, hits = self._search_hits(req, {"query"})
        shards = sum(self.indices_[n].pri for n in names)
        return 200, {"count": len(hits), "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0}}

    @staticmethod
    def _source_filter(src, params, body):
        spec = body.get("_source", True)
        if params.get("_source") in ("false", "true"):
            spec = params["_source"] == "true"
        elif params.get("_source") or params.get("_source_includes"):
            spec = (params.get("_source") or params.get("_source_includes")).split(",")
        if spec is False:
            return None
        if spec is True:
            return src
        inc = spec.get("includes", ["*"]) if isinstance(spec, dict) else _as_list(spec)
        return _filter_paths(src, [p.split(".") for p in inc]) or {}

    def _sort_keys(self, sort, names):
        keys = []
        for s in _as_list(sort) if sort is not None else []:
            if isinstance(s, str):
                field, order = s, "desc" if s == "_score" else "asc"
            else:
                field, spec = next(iter(s.items()))
                order = spec.get("order", "asc") if isinstance(spec, dict) else spec
            if order not in ("asc", "desc"):
                raise EsError(400, "parsing_exception", f"[{field}] unknown order [{order}]", kind="json_body")
            if field not in ("_score", "_doc"):
                ms = [self.indices_[n].field_mapping(field)[0] for n in names]
                if names and all(m is None for m in ms):
                    raise EsError(400, "query_shard_exception", f"No mapping found for [{field}] in order to sort on",
                                  index=names[0])
                if any(m and m.get("type") in ("text", "match_only_text") for m in ms):
                    raise _bad(f"Fielddata is disabled on [{field}] in [{names[0]}]. Text fields are not optimised "
                               "for operations that require per-document field data like aggregations and sorting, "
                               "so these operations are disabled by default. Please use a keyword field instead.")
            keys.append((field, order))
        return keys

    def _sort_value(self, hit, field, order):
        idx, doc_id, d = hit
        if field in ("_score", "_doc"):
            return (0, d["_seq_no"] if field == "_doc" else 1.0)
        m, path = idx.field_mapping(field)
        vals = [self._typed(m, v) for v in _values_at(d["_source"], path.split("."))] if m else []
        vals = [v for v in vals if v is not None]
        if not vals:                                      # missing values sort last either way
            return (1 if order == "asc" else -1, 0)
        return (0, min(vals) if order == "asc" else max(vals))

    @staticmethod
    def _typed(m, v):
        """The comparable value ES would index for `v` under mapping `m` (None: not comparable)."""
        t = (m or {}).get("type")
        try:
            if t in _INT_RANGES:
                return int(float(v)) if not isinstance(v, bool) else None
            if t in _FLOATS:
                return float(v) if not isinstance(v, bool) else None
            if t == "date":
                return _parse_date(v, m.get("format", _DEFAULT_DATE_FORMAT))
            if t == "ip":
                return ipaddress.ip_address(v)
            if t == "boolean":
                return v in (True, "true")
        except (ValueError, TypeError):
            return None
        return _kw(v) if not isinstance(v, (dict, list)) else None

    def _matches(self, idx, doc_id, src, q):
        if not q or "match_all" in q:
            return True
        if not isinstance(q, dict) or len(q) != 1:
            raise EsError(400, "parsing_exception", "[_na] query malformed, must start with start_object",
                          kind="json_body")
        kind, spec = next(iter(q.items()))
        if kind == "match_none":
            return False
        if kind == "bool":
            must = [c for k in ("must", "filter") for c in _as_list(spec.get(k, []))]
            should = _as_list(spec.get("should", []))
            msm = int(spec.get("minimum_should_match", 0 if must else 1 if should else 0))
            return (all(self._matches(idx, doc_id, src, c) for c in must)
                    and not any(self._matches(idx, doc_id, src, c) for c in _as_list(spec.get("must_not", [])))
                    and sum(self._matches(idx, doc_id, src, c) for c in should) >= msm)
        if kind == "ids":
            return doc_id in _as_list(spec.get("values", []))
        if kind == "exists":
            m, path = idx.field_mapping(spec["field"])
            return m is not None and bool(_values_at(src, path.split(".")))
        if kind not in ("term", "terms", "match", "range"):
            raise EsError(400, "parsing_exception", f"unknown query [{kind}]", kind="unsupported")
        field, want = next(iter(spec.items()))
        if kind == "match" and field == "*":
            return str(want).lower() in json.dumps(src).lower()
        m, path = idx.field_mapping(field)
        if m is None:
            return False
        vals = _values_at(src, path.split("."))
        t = m.get("type")
        if kind == "range":
            bounds = {k: self._typed(m, v) for k, v in want.items() if k in ("gt", "gte", "lt", "lte")}
            ops = {"gt": lambda a, b: a > b, "gte": lambda a, b: a >= b, "lt": lambda a, b: a < b,
                   "lte": lambda a, b: a <= b}
            return any(all(ops[k](self._typed(m, v), b) for k, b in bounds.items())
                       for v in vals if self._typed(m, v) is not None)
        if kind == "term" and isinstance(want, dict):
            want = want.get("value")
        if kind == "match" and isinstance(want, dict):
            want = want.get("query")
        wants = _as_list(want) if kind == "terms" else [want]
        for v in vals:
            for w in wants:
                if t in ("text", "match_only_text"):
                    tokens = re.findall(r"\w+", _kw(v).lower())
                    qtok = re.findall(r"\w+", _kw(w).lower()) if kind == "match" else [_kw(w)]
                    if any(x in tokens for x in qtok):
                        return True
                elif t == "keyword" and "ignore_above" in m and len(_kw(v)) > int(m["ignore_above"]):
                    continue
                elif t == "ip" and "/" in _kw(w):
                    try:
                        if ipaddress.ip_address(v) in ipaddress.ip_network(_kw(w), strict=False):
                            return True
                    except ValueError:
                        pass
                else:
                    a, b = self._typed(m, v), self._typed(m, w)
                    if a is not None and a == b:
                        return True
        return False

    # -- handlers: _cat/indices, refresh, mapping, index CRUD ---------------------------------
    # (name, aliases, right-aligned) — ES RestIndicesAction table (text-align:right on numbers)
    _CAT_COLS = [("health", ("h",), False), ("status", ("s",), False), ("index", ("i", "idx"), False),
                 ("uuid", ("id",), False), ("pri", ("p", "shards.primary"), True),
                 ("rep", ("r", "shards.replica"), True), ("docs.count", ("dc", "docsCount"), True),
                 ("docs.deleted", ("dd", "docsDeleted"), True), ("creation.date", ("cd",), True),
                 ("creation.date.string", ("cds",), False), ("store.size", ("ss", "storeSize"), True),
                 ("pri.store.size", (), True), ("dataset.size", (), True)]

    def h_cat_indices(self, req):
        """GET /_cat/indices — specification/cat/indices/CatIndicesRequest.ts, types.ts and
        examples/200_response/CatIndicesResponseExample1.yaml; text layout as ES' RestTable."""
        p = req.params
        names = self._resolve(req.groups.get("index", "_all"), {"expand_wildcards": "all", **p})
        fmt = p.get("format", "txt")
        if fmt not in ("txt", "json"):
            raise EsError(400, "esdouble_unsupported_exception", f"esdouble: format [{fmt}] is not supported",
                          kind="unsupported")
        unit = p.get("bytes")
        units = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}
        if unit is not None and unit not in units:
            raise _bad(f"failed to parse setting [bytes] with value [{unit}] as a size in bytes", kind="param")
        cols = {c: (c, right) for c, _, right in self._CAT_COLS}
        for c, aliases, right in self._CAT_COLS:
            for a in aliases:
                cols[a] = (c, right)
        default = [c for c, _, _ in self._CAT_COLS if c not in ("creation.date", "creation.date.string")
                   and (c != "dataset.size" or self.flags["es8"])]
        wanted = []
        for h in (p["h"].split(",") if p.get("h") else default):
            for c in ([cols[h][0]] if h in cols else [c for c, _, _ in self._CAT_COLS if fnmatch.fnmatchcase(c, h)]):
                if c not in wanted:
                    wanted.append(c)
        rows = []
        for n in names:
            idx = self.indices_[n]
            size = idx.store_size()
            health = "yellow" if idx.rep else "green"
            if p.get("health") not in (None, health):
                continue
            created = dt.datetime.fromtimestamp(idx.created / 1000, dt.timezone.utc)
            raw = {"health": health, "status": "open", "index": n, "uuid": idx.uuid, "pri": idx.pri, "rep": idx.rep,
                   "docs.count": len(idx.visible(self.realtime)), "docs.deleted": idx.deleted,
                   "creation.date": idx.created,
                   "creation.date.string": created.strftime("%Y-%m-%dT%H:%M:%S.") + f"{idx.created % 1000:03d}Z",
                   "store.size": size, "pri.store.size": size, "dataset.size": size}
            rows.append(raw)
        for spec in reversed(p.get("s", "").split(",") if p.get("s") else []):
            col, _, order = spec.partition(":")
            col = cols.get(col, (col,))[0]
            if col not in {c for c, _, _ in self._CAT_COLS}:
                raise _bad(f"Unable to sort by unknown sort key `{col}`", kind="param")
            rows.sort(key=lambda r: r[col], reverse=(order == "desc"))

        def render(c, v):
            if c.endswith("size"):
                return str(v // units[unit]) if unit else _byte_size(v)
            return str(v)
        table = [[render(c, r[c]) for c in wanted] for r in rows]
        if fmt == "json":
            return 200, [dict(zip(wanted, t)) for t in table]
        verbose = _bool_param(p, "v")
        lines = ([wanted] if verbose else []) + table
        widths = [max([len(line[i]) for line in lines] or [0]) for i in range(len(wanted))]
        right = [cols[c][1] for c in wanted]
        out = []
        for li, line in enumerate(lines):
            cells = []
            for i, cell in enumerate(line):
                last = i == len(line) - 1
                if right[i]:           # header cells share the column's alignment, as in RestTable
                    cells.append(cell.rjust(widths[i]))
                else:
                    cells.append(cell if last else cell.ljust(widths[i]))
            out.append(" ".join(cells) + "\n")
        return _Resp(200, "".join(out).encode(), "text/plain; charset=UTF-8")

    def h_refresh(self, req):
        """specification/indices/refresh/IndicesRefreshResponse.ts (ShardsOperationResponseBase)."""
        names = self._resolve(req.groups.get("index", "_all"), req.params)
        for n in names:
            self.indices_[n].refresh()
        total = sum(self.indices_[n].pri * (1 + self.indices_[n].rep) for n in names)
        ok = sum(self.indices_[n].pri for n in names)
        return 200, {"_shards": {"total": total, "successful": ok, "failed": 0}}

    def h_get_mapping(self, req):
        """specification/indices/get_mapping/IndicesGetMappingResponse.ts: {index: {mappings: TypeMapping}}."""
        names = self._resolve(req.groups.get("index", "_all"), req.params)
        return 200, {n: {"mappings": _render_mapping(self.indices_[n].mappings)} for n in names}

    def h_get_index(self, req):
        """specification/indices/get/IndicesGetResponse.ts: {index: {aliases, mappings, settings}}."""
        names = self._resolve(req.groups["index"], req.params)
        if req.method == "HEAD":
            return 200, None
        out = {}
        for n in names:
            idx = self.indices_[n]
            settings = {**idx.settings, "index.creation_date": str(idx.created), "index.uuid": idx.uuid,
                        "index.provided_name": n, "index.version.created": "8512000"}
            out[n] = {"aliases": {}, "mappings": _render_mapping(idx.mappings), "settings": _nest_settings(settings)}
        return 200, out

    def h_create_index(self, req):
        """specification/indices/create/IndicesCreateRequest.ts / IndicesCreateResponse.ts."""
        name = req.groups["index"]
        body = req.json or {}
        bad = [k for k in body if k not in ("settings", "mappings", "aliases")]
        if bad:
            raise EsError(400, "parse_exception", f"unknown key [{bad[0]}] for create index", kind="json_body")
        if name in self.indices_:
            idx = self.indices_[name]
            raise EsError(400, "resource_already_exists_exception", f"index [{name}/{idx.uuid}] already exists",
                          index_uuid=idx.uuid, index=name)
        self._create_index(name, body.get("settings"), body.get("mappings"))
        self._save()
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def h_delete_index(self, req):
        """specification/indices/delete/IndicesDeleteResponse.ts; ES 8 defaults
        action.destructive_requires_name=true (wildcards rejected)."""
        names = self._resolve(req.groups["index"], req.params, wildcards_ok=not self.flags["es8"])
        for n in names:
            del self.indices_[n]
        self._save()
        return 200, {"acknowledged": True}

    # -- handlers: templates, ILM -------------------------------------------------------------
    def _check_keys(self, body, allowed, what):
        for k in body:
            if k not in allowed:
                raise EsError(400, "x_content_parse_exception", f"[1:2] [{what}] unknown field [{k}]", kind="json_body")

    def _check_template_part(self, part, what):
        """Validate {settings, mappings, aliases, lifecycle}; returns it with normalized mappings/settings."""
        self._check_keys(part, {"settings", "mappings", "aliases", "lifecycle", "data_stream_options"}, what)
        out = dict(part)
        try:
            if "settings" in part:
                flat = _flatten_settings(part["settings"])
                _check_settings(flat, self.flags["opensearch"])
                out["settings"] = _nest_settings(flat)
            if "mappings" in part:
                out["mappings"] = _normalize_mappings(part["mappings"], self.flags["opensearch"])
        except EsError as e:
            e.kind = e.kind or "template"
            raise
        return out

    def _named(self, store, req, key, missing):
        """GET/HEAD of templates: name may be a comma list with wildcards."""
        name = req.groups.get("name", "*")
        names = [n for n in sorted(store) if any(_simple_match(p, n) for p in name.split(","))]
        if not names and "*" not in name:
            raise EsError(404, "resource_not_found_exception", missing.format(name))
        if req.method == "HEAD":
            return 200, None
        return names

    def h_put_itpl(self, req):
        """PUT /_index_template — specification/indices/put_index_template/IndicesPutIndexTemplateRequest.ts."""
        name, body = req.groups["name"], req.json
        self._check_keys(body, {"index_patterns", "template", "composed_of", "priority", "version", "_meta",
                                "data_stream", "allow_auto_create", "deprecated", "ignore_missing_component_templates"},
                         "index_template")
        if not body.get("index_patterns"):
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;",
                          kind="template")
        if _bool_param(req.params, "create") and name in self.itpl:
            raise _bad(f"index template [{name}] already exists", kind="template")
        prio = body.get("priority", 0)
        if not isinstance(prio, int) or prio < 0:
            raise _bad("priority must be a non-negative integer", kind="template")
        missing = [c for c in body.get("composed_of", []) if c not in self.ctpl
                   and c not in body.get("ignore_missing_component_templates", [])]
        if missing:
            raise EsError(400, "invalid_index_template_exception", f"index_template [{name}] invalid, cause [index "
                          f"template [{name}] specifies component templates {missing} that do not exist]",
                          kind="template")
        pats = _as_list(body["index_patterns"])
        for other, t in self.itpl.items():
            op = _as_list(t["index_patterns"])
            if other != name and t.get("priority", 0) == prio and any(_patterns_overlap(a, b) for a in pats for b in op):
                raise _bad(f"index template [{name}] has index patterns {pats} matching patterns from existing templates "
                           f"[{other}] with patterns ({other} => {op}) that have the same priority [{prio}], multiple "
                           "index templates may not match during index creation, please use a different priority",
                           kind="template")
        stored = dict(body)
        stored["index_patterns"] = pats
        if "template" in body:
            stored["template"] = self._check_template_part(body["template"], "template")
        merged = {}                                   # the composed mapping must be valid as a whole
        for c in body.get("composed_of", []):
            merged = _merge_mappings(merged, self.ctpl.get(c, {}).get("template", {}).get("mappings", {}))
        _normalize_mappings(_merge_mappings(merged, stored.get("template", {}).get("mappings", {})),
                            self.flags["opensearch"])
        self.itpl[name] = stored
        self._save()
        return 200, {"acknowledged": True}

    def h_get_itpl(self, req):
        """specification/indices/get_index_template/IndicesGetIndexTemplateResponse.ts + examples/200_response."""
        r = self._named(self.itpl, req, "index_template", "index template matching [{}] not found")
        if isinstance(r, tuple):
            return r
        return 200, {"index_templates": [{"name": n, "index_template": self.itpl[n]} for n in r]}

    def h_del_itpl(self, req):
        name = req.groups["name"]
        if name not in self.itpl:
            raise EsError(404, "resource_not_found_exception", f"index_template matching [{name}] not found")
        del self.itpl[name]
        self._save()
        return 200, {"acknowledged": True}

    def h_put_ctpl(self, req):
        """PUT /_component_template — specification/cluster/put_component_template/ClusterPutComponentTemplateRequest.ts."""
        name, body = req.groups["name"], req.json
        self._check_keys(body, {"template", "version", "_meta", "deprecated"}, "component_template")
        if "template" not in body:
            raise EsError(400, "x_content_parse_exception", "[1:2] Required [template]", kind="template")
        if _bool_param(req.params, "create") and name in self.ctpl:
            raise _bad(f"component template [{name}] already exists", kind="template")
        self.ctpl[name] = {**body, "template": self._check_template_part(body["template"], "template")}
        self._save()
        return 200, {"acknowledged": True}

    def h_get_ctpl(self, req):
        """specification/cluster/get_component_template/ClusterGetComponentTemplateResponse.ts + example."""
        r = self._named(self.ctpl, req, "component_template", "component template matching [{}] not found")
        if isinstance(r, tuple):
            return r
        return 200, {"component_templates": [{"name": n, "component_template": self.ctpl[n]} for n in r]}

    def h_del_ctpl(self, req):
        name = req.groups["name"]
        if name not in self.ctpl:
            raise EsError(404, "resource_not_found_exception", f"component template matching [{name}] not found")
        users = sorted(n for n, t in self.itpl.items() if name in t.get("composed_of", []))
        if users:
            raise _bad(f"component templates [{name}] cannot be removed as they are still in use by index templates "
                       f"[{', '.join(users)}]", kind="template")
        del self.ctpl[name]
        self._save()
        return 200, {"acknowledged": True}

    def h_put_ltpl(self, req):
        """PUT /_template (legacy) — specification/indices/put_template/IndicesPutTemplateRequest.ts."""
        name, body = req.groups["name"], req.json
        self._check_keys(body, {"index_patterns", "order", "settings", "mappings", "aliases", "version"}, "template")
        if not body.get("index_patterns"):
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;",
                          kind="template")
        if _bool_param(req.params, "create") and name in self.ltpl:
            raise _bad(f"index_template [{name}] already exists", kind="template")
        part = self._check_template_part({k: v for k, v in body.items() if k in ("settings", "mappings", "aliases")},
                                         "template")
        self.ltpl[name] = {"order": body.get("order", 0), "index_patterns": _as_list(body["index_patterns"]),
                           "settings": part.get("settings", {}), "mappings": part.get("mappings", {}),
                           "aliases": part.get("aliases", {}), **({"version": body["version"]} if "version" in body else {})}
        self._save()
        hdr = []
        if not self.flags["opensearch"]:
            hdr = [("Warning", f'299 Elasticsearch-{self.flags["number"]}-{"0" * 40} "Legacy index templates are '
                               'deprecated in favor of composable templates."')]
        return _Resp(200, {"acknowledged": True}, headers=hdr)

    def h_get_ltpl(self, req):
        """specification/indices/get_template/IndicesGetTemplateResponse.ts: {name: TemplateMapping}; a missing
        legacy template answers 404 with {} like ES."""
        name = req.groups.get("name", "*")
        names = [n for n in sorted(self.ltpl) if any(_simple_match(p, n) for p in name.split(","))]
        if not names and "*" not in name:
            return 404, {} if req.method == "GET" else None
        return 200, (None if req.method == "HEAD" else {n: self.ltpl[n] for n in names})

    def h_del_ltpl(self, req):
        name = req.groups["name"]
        if name not in self.ltpl:
            raise EsError(404, "index_template_missing_exception", f"index_template [{name}] missing")
        del self.ltpl[name]
        self._save()
        return 200, {"acknowledged": True}

    def _no_ilm(self, req):
        if self.flags["opensearch"]:
            raise EsError(400, "", f"no handler found for uri [{req.raw_path}] and method [{req.method}]",
                          simple=True, kind="no_handler")

    def h_put_ilm(self, req):
        """PUT /_ilm/policy — specification/ilm/put_lifecycle/PutLifecycleRequest.ts (+ _types/Policy.ts, Phase.ts)."""
        self._no_ilm(req)
        name, body = req.groups["name"], req.json
        self._check_keys(body, {"policy"}, "put_lifecycle_request")
        policy = body.get("policy")
        if not isinstance(policy, dict):
            raise EsError(400, "x_content_parse_exception", "[1:2] Required [policy]", kind="json_body")
        self._check_keys(policy, {"phases", "_meta", "deprecated"}, "lifecycle_policy")
        for ph in policy.get("phases", {}):
            if ph not in ("hot", "warm", "cold", "frozen", "delete"):
                raise _bad(f"Timeseries lifecycle does not support phase [{ph}]", kind="ilm")
        prev = self.ilm.get(name, {"version": 0})
        self.ilm[name] = {"version": prev["version"] + 1, "modified_date": dt.datetime.now(dt.timezone.utc)
                          .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", "policy": policy}
        self._save()
        return 200, {"acknowledged": True}

    def h_get_ilm(self, req):
        """specification/ilm/get_lifecycle/GetLifecycleResponse.ts: {name: {version, modified_date, policy, in_use_by}}."""
        self._no_ilm(req)
        name = req.groups.get("name")
        names = sorted(self.ilm) if name is None else [n for n in name.split(",") if n in self.ilm]
        if name is not None and not names:
            raise EsError(404, "resource_not_found_exception", f"Lifecycle policy not found: [{name}]")
        def users(n):
            return sorted(i for i, x in self.indices_.items() if x.settings.get("index.lifecycle.name") == n)
        return 200, {n: {**self.ilm[n], "in_use_by": {"indices": users(n), "data_streams": [],
                                                       "composable_templates": []}} for n in names}

    def h_del_ilm(self, req):
        self._no_ilm(req)
        name = req.groups["name"]
        if name not in self.ilm:
            raise EsError(404, "resource_not_found_exception", f"Lifecycle policy not found: [{name}]")
        del self.ilm[name]
        self._save()
        return 200, {"acknowledged": True}

    # -- HTTP plumbing ------------------------------------------------------------------------
    def _fault(self, name, path, consume=True):
        """The active spec of fault `name` for `path` (None if none); counts are consumed here."""
        with self.lock:
            spec = self.faults.get(name)
            if not spec or isinstance(spec, list):
                return spec or None
            if "until" in spec and time.monotonic() > spec["until"]:
                del self.faults[name]
                return None
            if "path" in spec and not fnmatch.fnmatchcase(path, spec["path"]):
                return None
            if consume and "count" in spec:
                spec["count"] -= 1
                if spec["count"] <= 0:
                    del self.faults[name]
            return spec

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

    def _log(self, req, status, body):
        with self.lock:
            self.requests.append({"method": req.method, "path": req.raw_path, "status": status,
                                  "headers": dict(req.headers.items()), "body_len": len(body), "body": body,
                                  "t": time.time()})
            del self.requests[:-5000]
            self._by_status[str(status)] = self._by_status.get(str(status), 0) + 1

    def _serve(self, h):
        split = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(split.path) or "/"
        path = path.rstrip("/") or "/"
        params = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
        if path == "/_double" or path.startswith("/_double/"):
            return self._control(h, path, params, self._read_body(h))
        req = _Req(h.command, h.path, path, params, h.headers, b"")
        mcl = self._fault("max_content_length", path, consume=False)
        if mcl and int(h.headers.get("Content-Length") or 0) > int(mcl["bytes"]):
            return self._send_413(h, req)
        req.body = self._read_body(h)
        if mcl and len(req.body) > int(mcl["bytes"]):
            return self._send_413(h, req)
        if self._fault("hang", path):
            self._log(req, 0, req.body)
            while not self._release.wait(0.1):
                pass
            h.close_connection = True
            return
        bad = self._fault("malformed", path)
        if bad and bad.get("mode") == "close":
            self._log(req, 0, req.body)
            h.close_connection = True
            return
        resp = self._injected(path) or self._process(h, req)
        slow = self._fault("slow", path)
        if slow:
            time.sleep(float(slow.get("ms", 1000)) / 1000)
        self._send(h, req, resp, bad)

    def _injected(self, path):
        if self._fault("reject", path):
            reason = ("rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
                      "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1048576, "
                      "max_coordinating_and_primary_bytes=107374182]")
            return _Resp(429, EsError(429, "es_rejected_execution_exception", reason).body())
        st = self._fault("status", path)
        if st:
            code = int(st.get("code", 503))
            if code == 502:     # what a proxy in front of ES sends: HTML, no ES headers
                return _Resp(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>\n", "text/html",
                             [("X-No-Product", "")])
            return _Resp(code, EsError(code, "cluster_block_exception" if code == 503 else "exception",
                                       "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];"
                                       if code == 503 else "esdouble injected failure").body())
        return None

    def _auth(self, req):
        hdr = req.headers.get("Authorization")
        if not (self.user or self.api_key):
            return
        scheme, _, cred = (hdr or "").partition(" ")
        try:
            decoded = base64.b64decode(cred, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            decoded = None
        if scheme.lower() == "basic" and self.user and decoded == self.user:
            return
        if scheme.lower() == "apikey" and self.api_key and decoded == self.api_key and not self.flags["opensearch"]:
            return
        uri = req.raw_path
        if hdr is None:
            reason = f"missing authentication credentials for REST request [{uri}]"
        elif scheme.lower() == "basic":
            reason = f"unable to authenticate user [{(decoded or '').partition(':')[0]}] for REST request [{uri}]"
        else:
            reason = "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
        challenges = (['Basic realm="OpenSearch Security"'] if self.flags["opensearch"] else
                      ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"])
        raise EsError(401, "security_exception", reason, kind="auth", headers=[("WWW-Authenticate", c) for c in challenges],
                      header={"WWW-Authenticate": challenges})

    def _process(self, h, req):
        try:
            enc = req.headers.get("Content-Encoding", "").strip().lower()
            if req.body and enc:
                try:
                    if enc in ("gzip", "x-gzip"):
                        req.body = gzip.decompress(req.body)
                    elif enc == "deflate":
                        req.body = zlib.decompress(req.body)
                    else:
                        raise ValueError(f"unsupported Content-Encoding [{enc}]")
                except (OSError, EOFError, zlib.error, ValueError) as e:
                    raise _bad(f"esdouble: cannot decode {enc} request body: {e}", kind="content_encoding")
            self._auth(req)
            for rx, methods in _ROUTE_RX:
                m = rx.fullmatch(req.path)
                if m:
                    break
            else:
                raise EsError(400, "", f"no handler found for uri [{req.raw_path}] and method [{req.method}]",
                              simple=True, kind="no_handler")
            if req.method not in methods:
                allowed = ", ".join(sorted(methods))
                raise EsError(405, "", f"Incorrect HTTP method for uri [{req.raw_path}] and method [{req.method}], "
                              f"allowed: [{allowed}]", simple=True, kind="method", headers=[("Allow", allowed)])
            name, pset, body_mode = methods[req.method]
            req.groups = {k: v for k, v in m.groupdict().items() if v is not None}
            ct = req.headers.get("Content-Type")
            if req.body:
                mime, _, rest = (ct or "").partition(";")
                if ct is None:
                    raise EsError(406, "", "Content-Type header is missing", simple=True, kind="content_type")
                if mime.strip().lower() not in _JSON_MIMES:
                    raise EsError(406, "", f"Content-Type header [{ct}] is not supported", simple=True,
                                  kind="content_type")
                cm = re.search(r"compatible-with=(\d+)", rest)
                req.compat = int(cm.group(1)) if cm else None
            allowed_params = (_P[pset] if isinstance(pset, str) else pset) | _COMMON_PARAMS
            unknown = [p for p in req.params if p not in allowed_params]
            if unknown:
                raise _bad(f"request [{req.path}] contains unrecognized parameter{'s' if len(unknown) > 1 else ''}: "
                           + ", ".join(f"[{p}]" for p in unknown), kind="param")
            if req.body and body_mode is None:
                raise _bad(f"request [{req.method} {req.path}] does not support having a body", kind="body_not_allowed")
            if not req.body and body_mode == "req":
                raise EsError(400, "parse_exception", "request body is required", kind="missing_body")
            if req.body and name != "bulk":
                try:
                    req.json = _strict_json(req.body.decode("utf-8"))
                except (ValueError, UnicodeDecodeError) as e:
                    raise EsError(400, "x_content_parse_exception", f"[1:1] {e}", kind="json_body")
                if not isinstance(req.json, dict):
                    raise EsError(400, "parse_exception", "request body must be a JSON object", kind="json_body")
            with self.lock:
                r = getattr(self, "h_" + name)(req)
            return r if isinstance(r, _Resp) else _Resp(r[0], r[1])
        except EsError as e:
            if e.kind:
                with self.lock:
                    self._violation(e.kind, req, e.status, e.reason)
            return _Resp(e.status, e.body(), headers=e.headers)

    def _send(self, h, req, resp, bad=None):
        status, body, ctype = resp.status, resp.body, resp.ctype
        if body is None:
            body = b""
        elif not isinstance(body, bytes):
            obj = body
            fp = req.params.get("filter_path")
            if fp and status < 300:
                obj = _filter_paths(obj, [p.split(".") for p in fp.split(",")]) or {}
            if req.params.get("pretty") in ("", "true"):
                body = (json.dumps(obj, indent=2, separators=(",", " : ")) + "\n").encode()
            else:
                body = json.dumps(obj, separators=(",", ":")).encode()
            ctype = ctype or (f"application/vnd.elasticsearch+json;compatible-with={req.compat}" if req.compat
                              else self.flags["ctype"])
        headers = list(resp.headers)
        product = not self.flags["opensearch"] and status != 401 and not any(k == "X-No-Product" for k, _ in headers)
        headers = [(k, v) for k, v in headers if k != "X-No-Product"]
        if product:
            headers.append(("X-Elastic-Product", "Elasticsearch"))
        if bad and bad.get("mode") == "content_type":
            ctype = "text/html; charset=utf-8"
        if bad and bad.get("mode") == "html":
            body, ctype = b"<html><head><title>Error</title></head><body>Service Unavailable</body></html>\n", "text/html"
        full = len(body)
        if bad and bad.get("mode") in ("truncated", "short"):
            body = body[:len(body) // 2]
        if ctype:
            headers.append(("Content-Type", ctype))
        if "gzip" in h.headers.get("Accept-Encoding", "") and body and not self.ssl_ctx and not bad:
            body = gzip.compress(body)
            full = len(body)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(full if bad and bad.get("mode") == "short" else len(body))))
        self._log(req, status, req.body)
        h.send_response_only(status)
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if req.method != "HEAD":
            h.wfile.write(body)
        if bad and bad.get("mode") == "short":
            h.close_connection = True

    def _send_413(self, h, req):
        self._log(req, 413, b"")
        h.send_response_only(413)
        h.send_header("Content-Length", "0")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True

    def _control(self, h, path, params, body):
        """The /_double/* control API (plain JSON, no ES behaviour)."""
        method, parts = h.command, path.split("/")[2:]
        status, out = 200, {"ok": True}
        try:
            arg = json.loads(body) if body.strip() else {}
            if parts == ["stats"] and method == "GET":
                out = self.stats()
            elif parts == ["requests"] and method == "GET":
                with self.lock:
                    reqs = self.requests[-int(params.get("limit", 1000)):]
                    out = [{k: v for k, v in r.items() if k != "body"} for r in reqs]
            elif parts[:1] == ["docs"] and len(parts) == 2 and method == "GET":
                with self.lock:
                    idx = self.indices_.get(parts[1])
                    out = {"index": parts[1], "docs": [{"_id": i, "_source": d["_source"]}
                                                       for i, d in (idx.docs.items() if idx else [])]}
            elif parts == ["violations"] and method in ("GET", "DELETE"):
                with self.lock:
                    out = {"violations": list(self.violations), "doc_errors": list(self.doc_errors)}
                    if method == "DELETE":
                        self.violations.clear()
                        self.doc_errors.clear()
            elif parts == ["reset"] and method == "POST":
                self.reset()
            elif parts == ["config"] and method == "POST":
                self.realtime = bool(arg.get("realtime", self.realtime))
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
        h.send_response_only(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stalls
    timeout = 300                       # idle keep-alive connections are dropped after this

    def log_message(self, *args):
        pass

    def handle_expect_100(self):
        """ES (Netty's aggregator) answers an oversize `Expect: 100-continue` with 413 instead of 100."""
        d = self.server.double
        mcl = d._fault("max_content_length", urllib.parse.urlsplit(self.path).path, consume=False)
        if mcl and int(self.headers.get("Content-Length") or 0) > int(mcl["bytes"]):
            d._send_413(self, _Req(self.command, self.path, self.path, {}, self.headers, b""))
            return False
        return super().handle_expect_100()

    def do_GET(self):
        self.server.double._serve(self)

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def finish_request(self, request, client_address):
        d = self.double
        if d.ssl_ctx:                   # handshake in the worker thread, not in the accept loop
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


# ----------------------------------------------------------------------------- more helpers

def _deep_update(dst, src):
    """Partial-document merge of the update API: objects merge recursively, anything else replaces."""
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def _json_scalar(sort_value):
    missing, v = sort_value
    if missing:
        return None
    return str(v) if isinstance(v, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else v


def _render_mapping(m):
    """A stored mapping as GET _mapping shows it: objects without "type" unless they have no properties."""
    def field(f):
        if not _is_object(f):
            return f
        out = {k: v for k, v in f.items() if k not in ("properties", "type")}
        if f.get("type") == "nested" or not f.get("properties"):
            out = {"type": f.get("type", "object"), **out}
        if f.get("properties"):
            out["properties"] = {k: field(v) for k, v in f["properties"].items()}
        return out
    out = {k: v for k, v in m.items() if k != "properties"}
    if m.get("properties"):
        out["properties"] = {k: field(v) for k, v in m["properties"].items()}
    return out


def _patterns_overlap(a, b):
    """Could some index name match both glob patterns?  (ES uses automata; prefixes/suffixes suffice here.)"""
    if "*" not in a or "*" not in b:
        return _simple_match(b, a) if "*" not in a else _simple_match(a, b)
    pa, pb = a.split("*")[0], b.split("*")[0]
    sa, sb = a.split("*")[-1], b.split("*")[-1]
    return (pa.startswith(pb) or pb.startswith(pa)) and (sa.endswith(sb) or sb.endswith(sa))


# ----------------------------------------------------------------------------- CLI

def main(argv=None):
    ap = argparse.ArgumentParser(description="Strict Elasticsearch API double (see module docstring).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9200)
    ap.add_argument("--state-file")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--user", help="u:p for Basic auth")
    ap.add_argument("--api-key", help="id:key for ApiKey auth")
    ap.add_argument("--version", default="8.15.0", help="8.15.0 | 7.17.0 | 9.1.0 | opensearch-2.11.0")
    ap.add_argument("--realtime", action="store_true", help="documents are searchable at once (no refresh)")
    a = ap.parse_args(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    d = EsDouble(port=a.port, host=a.host, version=a.version, state_file=a.state_file, tls_cert=a.tls_cert,
                 tls_key=a.tls_key, user=a.user, api_key=a.api_key, realtime=a.realtime).start()
    print(f"listening on {d.port}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    while not done.wait(0.5):
        pass
    d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
