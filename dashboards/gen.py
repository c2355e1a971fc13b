#!/usr/bin/env python3
"""gen.py - generate hostbeat's Kibana saved-object bundles (issue 6).

    dashboards/gen.py [--out DIR]

writes, under DIR (default: the directory of this script):

    kibana-7/hostbeat.ndjson   for Kibana 7.17      (coreMigrationVersion "7.17.0")
    kibana-8/hostbeat.ndjson   for Kibana 8.x/9.x   (coreMigrationVersion "8.0.0",
                                                     as Beats 8 ship theirs)
    README.md                  the dashboards, their panels and what each answers

Both bundles hold the same objects with the same ids: the data views packetbeat-* and
topbeat-* (id = the pattern, as Beats do), agg-based visualizations (visState as a
JSON string, the data view reached through searchSourceJSON.indexRefName + a
reference, never a baked-in index string as TSVB has), one markdown navigation
visualization per dashboard, and the dashboards. They differ only in the version
labels and in the form of the navigation links (docs/reference/ecosystem.md §4.1):

    Kibana 7.17   [HTTP](#/view/hostbeat-http)                 relative to the app
    Kibana 8/9    [HTTP](/app/dashboards#/view/hostbeat-http)   the form Kibana's
                  own copy-to-space / import rewrites when it regenerates ids

Every field a panel uses must be in the field table (shipper/fields.c) with a type
the aggregation accepts; tests/dashboards/test_bundles.py checks that against
tests/tools/fields_dump, checks the references and the versions, and checks that
this script regenerates the committed files byte for byte. So: edit the specs below,
run the script, commit its outputs.

Output is deterministic: objects in spec order, JSON with sorted keys and no
whitespace, embedded JSON strings encoded the same way, ASCII only.
"""
import argparse
import json
import os
import sys

PB = "packetbeat-*"
TB = "topbeat-*"

TARGETS = {
    # directory: (coreMigrationVersion, panel version, navigation link prefix)
    "kibana-7": ("7.17.0", "7.17.0", "#/view/"),
    "kibana-8": ("8.0.0", "8.0.0", "/app/dashboards#/view/"),
}

# Per-type schema versions: what Beats 7.14+ export, below both targets, so Kibana
# migrates the objects up on import (an object newer than the Kibana is refused).
MIGRATION = {"index-pattern": "7.11.0", "visualization": "7.14.0", "dashboard": "7.14.0"}

INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"

# Field formats of the data views: durations are nanoseconds, fractions are 0..1.
DURATION_FMT = {"id": "duration",
                "params": {"inputFormat": "nanoseconds", "outputFormat": "asMilliseconds",
                           "outputPrecision": 2, "showSuffix": True}}
PERCENT_FMT = {"id": "percent", "params": {"pattern": "0.[00]%"}}
BYTES_FMT = {"id": "bytes", "params": {}}

FIELD_FORMATS = {
    PB: {
        "event.duration": DURATION_FMT,
        "network.bytes": BYTES_FMT,
        "client.bytes": BYTES_FMT,
        "server.bytes": BYTES_FMT,
        "source.bytes": BYTES_FMT,
        "destination.bytes": BYTES_FMT,
    },
    TB: {
        "system.cpu.total.norm.pct": PERCENT_FMT,
        "system.cpu.user.norm.pct": PERCENT_FMT,
        "system.cpu.system.norm.pct": PERCENT_FMT,
        "system.cpu.iowait.norm.pct": PERCENT_FMT,
        "system.cpu.nice.norm.pct": PERCENT_FMT,
        "system.cpu.irq.norm.pct": PERCENT_FMT,
        "system.cpu.softirq.norm.pct": PERCENT_FMT,
        "system.cpu.steal.norm.pct": PERCENT_FMT,
        "system.memory.used.pct": PERCENT_FMT,
        "system.memory.actual.used.pct": PERCENT_FMT,
        "system.memory.swap.used.pct": PERCENT_FMT,
        "system.filesystem.used.pct": PERCENT_FMT,
        "system.filesystem.used.bytes": BYTES_FMT,
        "system.filesystem.total": BYTES_FMT,
        "system.process.cpu.total.pct": PERCENT_FMT,
        "system.process.memory.rss.bytes": BYTES_FMT,
        "system.process.memory.rss.pct": PERCENT_FMT,
        "container.cpu.usage": PERCENT_FMT,
        "container.memory.usage": PERCENT_FMT,
        "system.container.memory.usage.bytes": BYTES_FMT,
    },
}


def js(obj):
    """The one JSON encoding used everywhere (lines and embedded strings)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# ---- aggregations ----------------------------------------------------------------------
# A metric is (type, params); a bucket is (type, params). Ids are given when the
# visState is assembled: metrics "1".."m", buckets after them.

def count(label=None):
    return ("count", {"customLabel": label} if label else {})


def agg(kind, field, label=None):
    """avg / sum / max / min / cardinality / median of one field."""
    p = {"field": field}
    if label:
        p["customLabel"] = label
    return (kind, p)


def pctl(field, percents, label=None):
    p = {"field": field, "percents": list(percents)}
    if label:
        p["customLabel"] = label
    return ("percentiles", p)


def date_hist():
    return ("date_histogram", {"field": "@timestamp", "interval": "auto", "min_doc_count": 1,
                               "extended_bounds": {}, "drop_partials": False,
                               "useNormalizedEsInterval": True, "scaleMetricValues": False})


def terms(field, size=10, order_by=1, missing=None, label=None):
    """Top `size` values of field, ordered by metric number `order_by` (1-based),
    descending, or by document count when order_by is None (the form for a chart whose
    metric is multi-valued, percentiles: a terms order cannot name it plainly).
    `missing`: label of a bucket for documents without the field."""
    p = {"field": field, "size": size, "order": "desc", "orderBy": str(order_by),
         "otherBucket": False, "otherBucketLabel": "Other",
         "missingBucket": missing is not None, "missingBucketLabel": missing or "Missing"}
    if order_by is None:
        p["orderBy"] = "custom"
        p["orderAgg"] = {"id": "", "enabled": True, "type": "count",
                         "schema": "orderAgg", "params": {}}
    if label:
        p["customLabel"] = label
    return ("terms", p)


def histogram(field, interval):
    return ("histogram", {"field": field, "interval": interval, "min_doc_count": False,
                          "has_extended_bounds": False, "extended_bounds": {}})


def filters(*pairs):
    """(label, KQL) pairs."""
    return ("filters", {"filters": [{"input": {"query": q, "language": "kuery"}, "label": lbl}
                                    for lbl, q in pairs]})


def assemble(metrics, buckets):
    """[(schema, bucket)] after the metrics → the aggs array."""
    out = []
    n = 0
    for kind, params in metrics:
        n += 1
        out.append({"id": str(n), "enabled": True, "type": kind, "schema": "metric",
                    "params": params})
    for schema, (kind, params) in buckets:
        n += 1
        if "orderAgg" in params:
            params = dict(params, orderAgg=dict(params["orderAgg"], id="%d-orderAgg" % n))
        out.append({"id": str(n), "enabled": True, "type": kind, "schema": schema,
                    "params": params})
    return out


def metric_label(m):
    kind, p = m
    if p.get("customLabel"):
        return p["customLabel"]
    if kind == "count":
        return "Count"
    return "%s of %s" % (kind.capitalize(), p["field"])


# ---- visualization types ---------------------------------------------------------------

PALETTE = {"type": "palette", "name": "kibana_palette"}


def xy(chart, metrics, x, split=None, mode="normal", y_title=None, percentage=False):
    """line / area / histogram (vertical bars): metrics over bucket x, one series per
    value of `split` (a bucket) when given."""
    series_mode = "stacked" if mode == "stacked" else "normal"
    buckets = [("segment", x)] + ([("group", split)] if split else [])
    series = []
    for i, m in enumerate(metrics):
        series.append({"data": {"id": str(i + 1), "label": metric_label(m)},
                       "drawLinesBetweenPoints": True, "interpolate": "linear",
                       "lineWidth": 2, "mode": series_mode, "show": True, "showCircles": True,
                       "type": chart, "valueAxis": "ValueAxis-1"})
    params = {
        "type": chart, "addLegend": True, "addTimeMarker": False, "addTooltip": True,
        "legendPosition": "right", "times": [], "thresholdLine": {
            "show": False, "value": 10, "width": 1, "style": "full", "color": "#E7664C"},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "bottom",
                          "show": True, "style": {}, "scale": {"type": "linear"},
                          "labels": {"show": True, "filter": True, "truncate": 100},
                          "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "LeftAxis-1", "type": "value",
                       "position": "left", "show": True, "style": {},
                       "scale": {"type": "linear",
                                 "mode": "percentage" if percentage else "normal"},
                       "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 100},
                       "title": {"text": y_title or metric_label(metrics[0])}}],
        "seriesParams": series,
        "grid": {"categoryLines": False},
        "palette": PALETTE, "isVislibVis": True, "detailedTooltip": True,
        "fittingFunction": "linear", "radiusRatio": 9,
    }
    return chart, params, assemble(metrics, buckets)


def table(metrics, rows, per_page=10):
    params = {"perPage": per_page, "showPartialRows": False, "showMetricsAtAllLevels": False,
              "showTotal": False, "totalFunc": "sum", "percentageCol": "", "showToolbar": True,
              "sort": {"columnIndex": None, "direction": None}}
    return "table", params, assemble(metrics, [("bucket", r) for r in rows])


def pie(metric, slices, donut=True):
    params = {"type": "pie", "addTooltip": True, "addLegend": True, "legendPosition": "right",
              "isDonut": donut, "distinctColors": True, "palette": PALETTE,
              "labels": {"show": False, "values": True, "last_level": True, "truncate": 100}}
    return "pie", params, assemble([metric], [("segment", s) for s in slices])


def metric_vis(metrics):
    params = {"addTooltip": True, "addLegend": False, "type": "metric",
              "metric": {"percentageMode": False, "useRanges": False,
                         "colorSchema": "Green to Red", "metricColorMode": "None",
                         "colorsRange": [{"from": 0, "to": 10000}], "labels": {"show": True},
                         "invertColors": False,
                         "style": {"bgFill": "#000", "bgColor": False, "labelColor": False,
                                   "subText": "", "fontSize": 36}}}
    return "metric", params, assemble(metrics, [])


# ---- the dashboards --------------------------------------------------------------------
# A panel: (suffix, title, width, height, index, KQL, vis, question). Its visualization
# id is hostbeat-<dashboard>-<suffix>. Panels flow left to right on the 48-column grid,
# under the navigation bar.

def P(suffix, title, w, h, index, kql, vis, question):
    return {"suffix": suffix, "title": title, "w": w, "h": h, "index": index, "kql": kql,
            "vis": vis, "question": question}


NET = "network.protocol:*"
HTTP = "network.protocol:http"
DNS = "network.protocol:dns"
DBS = "network.protocol:(mysql or pgsql or mongodb)"
CACHE = "network.protocol:(redis or memcache or thrift)"

READS = ("method:(SELECT or SHOW or DESCRIBE or DESC or EXPLAIN or find or getMore or count "
         "or aggregate or distinct)")
WRITES = ("method:(INSERT or UPDATE or DELETE or REPLACE or MERGE or COPY or insert or update "
          "or delete or findAndModify)")
DDL = "method:(CREATE or ALTER or DROP or TRUNCATE or RENAME or create or drop)"

MC_LOAD = "network.protocol:memcache and memcache.request.type:\"Load\""
MC_MISS = ("(memcache.response.status:\"Key not found\" or (memcache.response.command:\"END\" "
           "and not memcache.response.count_values >= 1))")

DUR = "event.duration"
BYTES = "network.bytes"


def overview():
    return [
        P("txn-by-protocol", "Transactions by protocol", 24, 15, PB, NET,
          xy("area", [count("Transactions")], date_hist(), terms("network.protocol"),
             mode="stacked"),
          "How many transactions of each protocol, over time?"),
        P("errors-vs-ok", "Errors vs successful transactions", 24, 15, PB, NET,
          xy("histogram", [count("Transactions")], date_hist(), terms("status", 5),
             mode="stacked", percentage=True),
          "Which share of the transactions failed (status Error vs OK), over time?"),
        P("latency-percentiles", "Response time percentiles", 24, 15, PB, NET,
          xy("line", [pctl(DUR, [50, 75, 95, 99], "Response time")], date_hist()),
          "How slow are the typical and the worst transactions (50/75/95/99th of "
          "event.duration), over time?"),
        P("latency-histogram", "Response time histogram (10 ms buckets)", 24, 15, PB, NET,
          xy("histogram", [count("Transactions")], histogram(DUR, 10000000),
             y_title="Transactions"),
          "How are the response times distributed?"),
        P("bytes-by-protocol", "Traffic by protocol", 16, 15, PB, NET,
          pie(agg("sum", BYTES, "Bytes"), [terms("network.protocol")]),
          "Which protocols carry the bytes?"),
        P("top-sources", "Top sources", 16, 15, PB, NET,
          table([agg("sum", BYTES, "Bytes"), count("Transactions")],
                [terms("source.ip", 10, label="Source")]),
          "Which hosts send the most (by bytes; transactions alongside)?"),
        P("top-destinations", "Top destinations", 16, 15, PB, NET,
          table([agg("sum", BYTES, "Bytes"), count("Transactions")],
                [terms("destination.ip", 10, label="Destination")]),
          "Which hosts receive the most (by bytes; transactions alongside)?"),
        P("top-conversations", "Top conversations by transactions", 48, 15, PB, NET,
          table([count("Transactions"), agg("sum", BYTES, "Bytes"), agg("avg", DUR, "Avg time")],
                [terms("source.ip", 10, label="Source"),
                 terms("destination.ip", 5, label="Destination"),
                 terms("network.protocol", 3, label="Protocol")]),
          "Who talks to whom, with which protocol, how often?"),
    ]


def http():
    return [
        P("status-over-time", "HTTP status codes over time", 32, 15, PB, HTTP,
          xy("histogram", [count("Responses")], date_hist(),
             terms("http.response.status_code", 10), mode="stacked"),
          "Which status codes are answered, over time?"),
        P("summary", "HTTP summary", 16, 15, PB, HTTP,
          metric_vis([count("Transactions"), agg("avg", DUR, "Avg response time"),
                      agg("sum", BYTES, "Bytes")]),
          "How much HTTP traffic, and how fast on average?"),
        P("top-urls", "Top URLs", 24, 15, PB, HTTP,
          table([count("Requests"), agg("avg", DUR, "Avg time"), agg("sum", BYTES, "Bytes")],
                [terms("url.path", 20, label="URL path")]),
          "Which URLs are requested most?"),
        P("slowest-urls", "Slowest URLs", 24, 15, PB, HTTP,
          table([agg("avg", DUR, "Avg time"), agg("max", DUR, "Max time"), count("Requests")],
                [terms("url.path", 20, label="URL path")]),
          "Which URLs are slowest (by average, max alongside)?"),
        P("error-codes", "HTTP error codes (>= 400)", 16, 15, PB,
          HTTP + " and http.response.status_code >= 400",
          pie(count("Responses"), [terms("http.response.status_code", 10)]),
          "Which error codes (4xx, 5xx) are answered?"),
        P("error-urls", "URLs answered with errors", 32, 15, PB,
          HTTP + " and http.response.status_code >= 400",
          table([count("Responses")], [terms("url.path", 20, label="URL path"),
                                       terms("http.response.status_code", 5, label="Code")]),
          "Which URLs fail, with which codes?"),
        P("methods", "HTTP methods", 16, 15, PB, HTTP,
          pie(count("Requests"), [terms("http.request.method", 10)]),
          "Which request methods are used?"),
        P("latency-percentiles", "HTTP response time percentiles", 32, 15, PB, HTTP,
          xy("line", [pctl(DUR, [50, 95, 99], "Response time")], date_hist()),
          "How slow are HTTP responses, over time?"),
    ]


def dns():
    return [
        P("summary", "DNS summary", 16, 15, PB, DNS,
          metric_vis([count("Queries"), agg("avg", DUR, "Avg response time"),
                      agg("sum", "client.bytes", "Bytes sent"),
                      agg("sum", "server.bytes", "Bytes received")]),
          "How many DNS queries, how fast, how many bytes?"),
        P("question-types", "DNS question types", 16, 15, PB, DNS,
          pie(count("Queries"), [terms("dns.question.type", 10)]),
          "Which record types are asked for (A, AAAA, PTR, ...)?"),
        P("response-codes", "DNS response codes", 16, 15, PB, DNS,
          pie(count("Responses"), [terms("dns.response_code", 10)]),
          "Which share of the answers is NOERROR, NXDOMAIN, SERVFAIL, ...?"),
        P("rcodes-over-time", "DNS response codes over time", 24, 15, PB, DNS,
          xy("histogram", [count("Responses")], date_hist(), terms("dns.response_code", 10),
             mode="stacked"),
          "When do failing answers (NXDOMAIN, SERVFAIL) appear?"),
        P("response-time", "DNS response time", 24, 15, PB, DNS,
          xy("line", [agg("min", DUR, "Min"), agg("avg", DUR, "Avg"), agg("max", DUR, "Max")],
             date_hist(), y_title="Response time"),
          "How fast do the DNS servers answer (min/avg/max), over time?"),
        P("top-names", "Top DNS names", 16, 15, PB, DNS,
          table([count("Queries")], [terms("dns.question.name", 20, label="Name")]),
          "Which names are resolved most?"),
        P("nxdomain-names", "Names not found (NXDOMAIN)", 16, 15, PB,
          DNS + " and dns.response_code:NXDOMAIN",
          table([count("Queries")], [terms("dns.question.name", 20, label="Name")]),
          "Which names fail to resolve (typos, stale config, malware)?"),
        P("clients-servers", "DNS clients and servers", 16, 15, PB, DNS,
          table([count("Queries"), agg("avg", DUR, "Avg time")],
                [terms("server.ip", 10, label="Server"), terms("client.ip", 10, label="Client")]),
          "Which clients ask which DNS servers, and how fast each server is?"),
    ]


def databases():
    return [
        P("throughput", "Database transactions by type", 24, 15, PB, DBS,
          xy("area", [count("Transactions")], date_hist(), terms("network.protocol", 3),
             mode="stacked"),
          "How many MySQL, PostgreSQL and MongoDB transactions, over time?"),
        P("errors", "Database errors", 24, 15, PB, DBS + " and status:Error",
          xy("histogram", [count("Errors")], date_hist(), terms("network.protocol", 3),
             mode="stacked"),
          "When do database requests fail, on which server type?"),
        P("reads-writes", "Reads vs writes", 24, 15, PB, DBS,
          xy("area", [count("Transactions")], date_hist(),
             filters(("Reads", READS), ("Writes", WRITES), ("DDL", DDL),
                     ("Other", "not %s and not %s and not %s" % (READS, WRITES, DDL))),
             mode="stacked"),
          "What is the read/write mix (by method), over time?"),
        P("bytes", "Database throughput (bytes)", 24, 15, PB, DBS,
          xy("line", [agg("sum", "client.bytes", "Sent to servers"),
                      agg("sum", "server.bytes", "Received from servers")], date_hist(),
             y_title="Bytes"),
          "How many bytes go to and come from the databases?"),
        P("slowest-queries", "Slowest queries", 48, 15, PB, DBS,
          table([agg("avg", DUR, "Avg time"), agg("max", DUR, "Max time"), count("Calls")],
                [terms("network.protocol", 3, label="Type"), terms("query", 10, label="Query")]),
          "Which queries take longest (by average)?"),
        P("frequent-queries", "Most frequent queries", 24, 15, PB, DBS,
          table([count("Calls"), agg("avg", DUR, "Avg time")],
                [terms("network.protocol", 3, label="Type"), terms("query", 10, label="Query")]),
          "Which queries run most often?"),
        P("top-errors", "Failing queries", 24, 15, PB, DBS + " and status:Error",
          table([count("Errors")],
                [terms("network.protocol", 3, label="Type"), terms("query", 10, label="Query")]),
          "Which queries fail?"),
        P("methods", "Methods by type", 16, 15, PB, DBS,
          pie(count("Transactions"), [terms("network.protocol", 3), terms("method", 10)]),
          "Which statements / commands are used on each server type?"),
        P("latency-by-type", "95th percentile response time by type", 32, 15, PB, DBS,
          xy("line", [pctl(DUR, [95], "Response time")], date_hist(),
             terms("network.protocol", 3, order_by=None)),
          "Which database type got slower, and when?"),
    ]


def cache_rpc():
    return [
        P("throughput", "Cache and RPC transactions by type", 24, 15, PB, CACHE,
          xy("area", [count("Transactions")], date_hist(), terms("network.protocol", 3),
             mode="stacked"),
          "How many Redis, Memcache and Thrift transactions, over time?"),
        P("errors", "Cache and RPC errors", 24, 15, PB, CACHE + " and status:Error",
          xy("histogram", [count("Errors")], date_hist(), terms("network.protocol", 3),
             mode="stacked"),
          "When do cache / RPC calls fail, on which protocol?"),
        P("misses", "Cache hits and misses", 24, 15, PB, "network.protocol:(redis or memcache)",
          xy("histogram", [count("Reads")], date_hist(),
             filters(("Memcache hits", MC_LOAD + " and memcache.response.count_values >= 1"),
                     ("Memcache misses", MC_LOAD + " and " + MC_MISS),
                     ("Redis nil replies",
                      "network.protocol:redis and redis.return_value:\"nil\"")),
             mode="stacked"),
          "How often does a cache read find nothing (memcache misses, redis nil)?"),
        P("latency-by-type", "95th percentile response time by type", 24, 15, PB, CACHE,
          xy("line", [pctl(DUR, [95], "Response time")], date_hist(),
             terms("network.protocol", 3, order_by=None)),
          "Which protocol got slower, and when?"),
        P("commands", "Redis and Thrift: top commands", 24, 15, PB,
          "network.protocol:(redis or thrift)",
          table([count("Calls"), agg("avg", DUR, "Avg time"), agg("max", DUR, "Max time")],
                [terms("network.protocol", 2, label="Type"),
                 terms("method", 20, label="Command / method")]),
          "Which Redis commands and Thrift methods are called, and how fast?"),
        P("memcache-commands", "Memcache: top commands", 24, 15, PB, "network.protocol:memcache",
          table([count("Calls"), agg("avg", DUR, "Avg time"), agg("max", DUR, "Max time")],
                [terms("memcache.request.command", 20, label="Command")]),
          "Which Memcache commands are sent, and how fast?"),
        P("redis-errors", "Redis error replies", 16, 15, PB,
          "network.protocol:redis and status:Error",
          table([count("Errors")], [terms("method", 10, label="Command"),
                                    terms("redis.error", 5, label="Error")]),
          "Which Redis commands fail, with which error?"),
        P("thrift-exceptions", "Thrift exceptions", 16, 15, PB,
          "network.protocol:thrift and status:Error",
          table([count("Errors")], [terms("method", 10, label="Method"),
                                    terms("thrift.exceptions", 5, label="Exception")]),
          "Which Thrift methods raise which exceptions?"),
        P("memcache-failures", "Memcache failures", 16, 15, PB,
          "network.protocol:memcache and status:Error",
          table([count("Errors")], [terms("memcache.request.command", 10, label="Command"),
                                    terms("memcache.response.status", 5, missing="(text)",
                                          label="Status")]),
          "Which Memcache commands fail, with which status?"),
    ]


CPU = "event.dataset:\"system.cpu\""
LOAD = "event.dataset:\"system.load\""
MEM = "event.dataset:\"system.memory\""
FS = "event.dataset:\"system.filesystem\""
PROC = "event.dataset:\"system.process\""
CONT = "event.dataset:\"system.container\""


def host():
    states = ["user", "system", "nice", "iowait", "irq", "softirq", "steal"]
    return [
        P("cpu", "CPU usage by state", 24, 15, TB, CPU,
          xy("area", [agg("avg", "system.cpu.%s.norm.pct" % s, s) for s in states],
             date_hist(), mode="stacked", y_title="CPU (of all cores)"),
          "Where does CPU time go (user, system, iowait, steal, ...), over time?"),
        P("cpu-per-host", "CPU usage per host", 24, 15, TB, CPU,
          xy("line", [agg("avg", "system.cpu.total.norm.pct", "CPU")], date_hist(),
             terms("host.name", 10)),
          "Which host is busy?"),
        P("load", "System load", 24, 15, TB, LOAD,
          xy("line", [agg("avg", "system.load.1", "1m"), agg("avg", "system.load.5", "5m"),
                      agg("avg", "system.load.15", "15m")], date_hist(), y_title="Load"),
          "Is the run queue growing (load 1/5/15 min)?"),
        P("load-per-core", "Load per core", 24, 15, TB, LOAD,
          xy("line", [agg("avg", "system.load.norm.5", "5m per core")], date_hist(),
             terms("host.name", 10)),
          "Which host is overloaded for its core count (load 5 / cores)?"),
        P("memory", "Memory and swap usage", 24, 15, TB, MEM,
          xy("line", [agg("avg", "system.memory.actual.used.pct", "Memory (actual)"),
                      agg("avg", "system.memory.used.pct", "Memory (incl. cache)"),
                      agg("avg", "system.memory.swap.used.pct", "Swap")], date_hist(),
             y_title="Used"),
          "Is memory or swap running out?"),
        P("disk-usage", "Disk usage per mount point", 24, 15, TB, FS,
          table([agg("max", "system.filesystem.used.pct", "Used"),
                 agg("max", "system.filesystem.used.bytes", "Used bytes"),
                 agg("max", "system.filesystem.total", "Size")],
                [terms("host.name", 10, label="Host"),
                 terms("system.filesystem.mount_point", 20, label="Mount point")]),
          "Which file system is filling up?"),
        P("disk-over-time", "Disk usage over time", 24, 15, TB, FS,
          xy("line", [agg("max", "system.filesystem.used.pct", "Used")], date_hist(),
             terms("system.filesystem.mount_point", 10)),
          "How fast does each file system fill?"),
        P("process-states", "Process states", 24, 15, TB, PROC,
          pie(count("Samples"), [terms("system.process.state", 10)]),
          "Are processes stuck (zombie, disk sleep) rather than running/sleeping?"),
        P("top-cpu", "Top processes by CPU", 24, 15, TB, PROC,
          table([agg("avg", "system.process.cpu.total.pct", "Avg CPU"),
                 agg("max", "system.process.cpu.total.pct", "Max CPU")],
                [terms("process.name", 15, label="Process")]),
          "Which processes use the CPU?"),
        P("top-memory", "Top processes by memory", 24, 15, TB, PROC,
          table([agg("avg", "system.process.memory.rss.bytes", "Avg RSS"),
                 agg("max", "system.process.memory.rss.bytes", "Max RSS"),
                 agg("max", "system.process.memory.rss.pct", "Max RSS %")],
                [terms("process.name", 15, label="Process")]),
          "Which processes hold the memory?"),
    ]


def containers():
    by_name = terms("container.name", 10, missing="(no name)", label="Container")
    return [
        P("running", "Containers seen", 16, 12, TB, CONT,
          metric_vis([agg("cardinality", "container.id", "Containers")]),
          "How many containers ran in the period?"),
        P("top-traffic", "Top containers by traffic", 32, 12, PB,
          NET + " and (container.name:* or container.id:*)",
          table([agg("sum", BYTES, "Bytes"), count("Transactions")],
                [by_name, terms("container.id", 10, missing="-", label="Id")]),
          "Which containers send and receive the most bytes (network events that carry "
          "container metadata)?"),
        P("top-transactions", "Top containers by transactions", 24, 15, PB,
          NET + " and (container.name:* or container.id:*)",
          table([count("Transactions"), agg("avg", DUR, "Avg time")],
                [by_name, terms("container.id", 10, missing="-", label="Id"),
                 terms("network.protocol", 5, label="Protocol")]),
          "Which containers make or serve the most transactions, with which protocol?"),
        # Series per id, not per name: only Docker containers have names, and one
        # "(no name)" series would average unrelated containers. The table below
        # maps ids to names.
        P("cpu", "Container CPU usage", 24, 15, TB, CONT,
          xy("line", [agg("avg", "container.cpu.usage", "CPU")], date_hist(),
             terms("container.id", 10)),
          "Which container uses the CPU (share of all cores), over time?"),
        P("memory", "Container memory usage (of its limit)", 24, 15, TB, CONT,
          xy("line", [agg("avg", "container.memory.usage", "Memory")], date_hist(),
             terms("container.id", 10)),
          "Which container approaches its memory limit, over time (containers with a "
          "limit)?"),
        P("top-cpu", "Top containers by CPU and memory", 24, 15, TB, CONT,
          table([agg("avg", "container.cpu.usage", "Avg CPU"),
                 agg("max", "container.cpu.usage", "Max CPU"),
                 agg("max", "container.memory.usage", "Max memory %"),
                 agg("max", "system.container.memory.usage.bytes", "Max memory")],
                [by_name, terms("container.id", 10, missing="-", label="Id")]),
          "Which containers are the heaviest, and which id is which name?"),
    ]


# (id suffix, title, description, panels)
DASHBOARDS = [
    ("overview", "Network overview",
     "All captured transactions: protocols, errors, latency, top talkers.", overview),
    ("http", "HTTP", "HTTP status codes, URLs, slow and failing requests.", http),
    ("dns", "DNS", "DNS question types, response codes, names, response times, clients "
     "and servers.", dns),
    ("databases", "Databases",
     "MySQL, PostgreSQL and MongoDB: throughput, errors, slow and frequent queries, reads "
     "vs writes.", databases),
    ("cache-rpc", "Cache and RPC",
     "Redis, Memcache and Thrift: commands, misses, errors, latency.", cache_rpc),
    ("host", "Host", "CPU, load, memory, swap, disks and processes of the monitored hosts.",
     host),
    ("containers", "Containers", "Container traffic, CPU and memory.", containers),
]


def dash_id(suffix):
    return "hostbeat-" + suffix


# ---- saved objects ---------------------------------------------------------------------

def saved(otype, oid, attributes, references, core):
    return {"type": otype, "id": oid, "attributes": attributes, "references": references,
            "coreMigrationVersion": core, "migrationVersion": {otype: MIGRATION[otype]}}


def index_pattern(pattern, core):
    attrs = {"title": pattern, "timeFieldName": "@timestamp",
             "fieldFormatMap": js(FIELD_FORMATS[pattern])}
    return saved("index-pattern", pattern, attrs, [], core)


def visualization(vid, title, vis, index, kql, core, description=""):
    kind, params, aggs = vis
    vis_state = {"title": title, "type": kind, "params": params, "aggs": aggs}
    search = {"query": {"query": kql, "language": "kuery"}, "filter": []}
    refs = []
    if index:
        search["indexRefName"] = INDEX_REF
        refs.append({"name": INDEX_REF, "type": "index-pattern", "id": index})
    attrs = {"title": title, "description": description, "version": 1, "uiStateJSON": "{}",
             "visState": js(vis_state),
             "kibanaSavedObjectMeta": {"searchSourceJSON": js(search)}}
    return saved("visualization", vid, attrs, refs, core)


def navigation(current, prefix):
    parts = []
    for suffix, title, _, _ in DASHBOARDS:
        if suffix == current:
            parts.append("**%s**" % title)
        else:
            parts.append("[%s](%s%s)" % (title, prefix, dash_id(suffix)))
    return "**hostbeat:** " + " | ".join(parts)


def nav_vis(current, prefix):
    return ("markdown", {"fontSize": 12, "openLinksInNewTab": False,
                         "markdown": navigation(current, prefix)}, [])


def layout(panels):
    """Flow layout on the 48-column grid below the navigation row (height 4)."""
    x, y, row_h = 0, 4, 0
    out = []
    for p in panels:
        if x + p["w"] > 48:
            x, y, row_h = 0, y + row_h, 0
        out.append((x, y))
        x += p["w"]
        row_h = max(row_h, p["h"])
    return out


def dashboard(suffix, title, description, panels, core, panel_version):
    entries = [(dash_id(suffix) + "-nav", 0, 0, 48, 4)]
    for p, (x, y) in zip(panels, layout(panels)):
        entries.append((dash_id(suffix) + "-" + p["suffix"], x, y, p["w"], p["h"]))
    panels_json = []
    refs = []
    for n, (vid, x, y, w, h) in enumerate(entries):
        idx = str(n + 1)
        panels_json.append({"version": panel_version, "type": "visualization",
                            "gridData": {"x": x, "y": y, "w": w, "h": h, "i": idx},
                            "panelIndex": idx, "embeddableConfig": {"enhancements": {}},
                            "panelRefName": "panel_%d" % n})
        refs.append({"name": "panel_%d" % n, "type": "visualization", "id": vid})
    attrs = {"title": "[hostbeat] " + title, "description": description, "version": 1,
             "timeRestore": False, "panelsJSON": js(panels_json),
             "optionsJSON": js({"useMargins": True, "hidePanelTitles": False,
                                "syncColors": False}),
             "kibanaSavedObjectMeta": {"searchSourceJSON": js(
                 {"query": {"query": "", "language": "kuery"}, "filter": []})}}
    return saved("dashboard", dash_id(suffix), attrs, refs, core)


def bundle(target):
    core, panel_version, prefix = TARGETS[target]
    objs = [index_pattern(PB, core), index_pattern(TB, core)]
    dashes = []
    for suffix, title, description, fn in DASHBOARDS:
        panels = fn()
        objs.append(visualization(dash_id(suffix) + "-nav", "[hostbeat] Navigation: " + title,
                                  nav_vis(suffix, prefix), None, "", core))
        for p in panels:
            objs.append(visualization(dash_id(suffix) + "-" + p["suffix"],
                                      "[hostbeat] " + p["title"], p["vis"], p["index"],
                                      p["kql"], core, p["question"]))
        dashes.append(dashboard(suffix, title, description, panels, core, panel_version))
    return "".join(js(o) + "\n" for o in objs + dashes)


# ---- README ----------------------------------------------------------------------------

README_HEAD = """\
# hostbeat Kibana dashboards

Generated by `dashboards/gen.py` (do not edit the outputs by hand: edit the specs in
gen.py, run `python3 dashboards/gen.py`, commit what it writes;
`tests/dashboards/test_bundles.py` fails when the committed files differ from what
the script writes).

| File | For | Version labels |
|------|-----|----------------|
| `kibana-7/hostbeat.ndjson` | Kibana 7.17 | `coreMigrationVersion` 7.17.0, panels 7.17.0, links `#/view/<id>` |
| `kibana-8/hostbeat.ndjson` | Kibana 8.x and 9.x | `coreMigrationVersion` 8.0.0 (as Beats 8), panels 8.0.0, links `/app/dashboards#/view/<id>` |

Both hold the same objects with the same ids: the data views `packetbeat-*` and
`topbeat-*` (id = pattern, time field `@timestamp`, duration/bytes/percent field
formats), agg-based visualizations `hostbeat-<dashboard>-<panel>` (no TSVB, no Lens:
every panel reaches its data view through a reference, so renaming the indices means
editing the two data views only), one markdown navigation panel per dashboard
(`hostbeat-<dashboard>-nav`) and the dashboards `hostbeat-<dashboard>`.
Per-type `migrationVersion`s are 7.11.0 (index-pattern) and 7.14.0 (visualization,
dashboard), below both targets: Kibana migrates the objects up on import.

Import (Kibana answers HTTP 200 with `"success":true` when every object went in):

    curl -s -X POST 'http://localhost:5601/api/saved_objects/_import?overwrite=true' \\
         -H 'kbn-xsrf: true' --form file=@dashboards/kibana-8/hostbeat.ndjson

(`/s/<space>/api/saved_objects/_import` for another space.) The 8.x navigation links
are absolute (`/app/dashboards#/view/<id>`) and carry no space or `server.basePath`
prefix: in another space, or behind a base path, open the dashboards from the
dashboard list. Import with `overwrite=true`, not `createNewCopies`: new copies get
new ids, and the links (and the ids the tests pin) no longer match.

Durations (`event.duration`) are nanoseconds in the documents; the data view formats
them as milliseconds. Fractions (`*.pct`, `container.cpu.usage`,
`container.memory.usage`) are 0..1 and shown as percentages.

## Dashboards
"""


def md_escape(s):
    return s.replace("|", "\\|")


def readme():
    out = [README_HEAD, "\n| Dashboard | Id | Data view | Panels |\n|---|---|---|---|\n"]
    for suffix, title, description, fn in DASHBOARDS:
        panels = fn()
        views = sorted({p["index"] for p in panels})
        out.append("| %s | `%s` | %s | %d + navigation |\n" % (
            title, dash_id(suffix), ", ".join("`%s`" % v for v in views), len(panels)))
    for suffix, title, description, fn in DASHBOARDS:
        out.append("\n### %s (`%s`)\n\n%s\n\n" % (title, dash_id(suffix), description))
        out.append("| Panel | Chart | Query | Question it answers |\n|---|---|---|---|\n")
        for p in fn():
            out.append("| %s | %s | `%s` | %s |\n" % (
                md_escape(p["title"]), p["vis"][0], md_escape(p["kql"]),
                md_escape(p["question"])))
    out.append("\nEvery dashboard also has the navigation bar (`hostbeat-<dashboard>-nav`) "
               "linking the others.\n")
    return "".join(out)


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(text)


def main(argv):
    ap = argparse.ArgumentParser(description="Generate hostbeat's Kibana bundles.")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                    help="output directory (default: this script's directory)")
    args = ap.parse_args(argv)
    for target in sorted(TARGETS):
        write(os.path.join(args.out, target, "hostbeat.ndjson"), bundle(target))
    write(os.path.join(args.out, "README.md"), readme())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
