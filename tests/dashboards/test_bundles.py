"""The Kibana bundles of dashboards/ (issue 6): well-formed, self-contained, importable
into the Kibana they target, built only on fields hostbeat writes, and exactly what
dashboards/gen.py generates.

    /usr/bin/python3 -m pytest tests/dashboards/test_bundles.py

What is checked, per bundle (kibana-7 → Kibana 7.17, kibana-8 → 8.x/9.x):
  - every line is a JSON object with type, id, attributes, references; only the types
    index-pattern, visualization, dashboard; ids unique;
  - every embedded JSON string (visState, uiStateJSON, panelsJSON, optionsJSON,
    searchSourceJSON, fieldFormatMap) parses; no TSVB / Vega / Timelion / Lens (they
    bake index names in or are not agg-based);
  - every reference resolves to an object of that type in the same bundle, every
    indexRefName / panelRefName has its reference and every reference is used; no
    searchSourceJSON names its index directly;
  - coreMigrationVersion and the panel versions are the target's, every
    migrationVersion is <= the target (Kibana refuses objects newer than itself);
  - every field used (agg params.field, KQL in searchSourceJSON and in filters aggs,
    fieldFormatMap keys) is in the field table (tests/tools/fields_dump), is not a
    legacy-only name, and has a type the aggregation accepts (terms: keyword, ip,
    numbers, boolean, date - never text; avg/sum/percentiles/histogram: numbers;
    date_histogram: date); system fields only on topbeat-*, network ones only on
    packetbeat-*;
  - every packetbeat-* query (and every filter of a filters agg) matches at least one
    real document of tests/pcap/expected/ (a small KQL evaluator), so a misspelt value
    ("error" for "Error") fails too; topbeat-* datasets exist in sys/*.c;
  - every dashboard has a markdown navigation panel linking every other dashboard in
    the target's link form; panels fit the 48-column grid without overlapping;
  - both bundles hold the same ids and, version labels and link prefixes aside, the
    same objects; gen.py regenerates the committed files byte for byte (run twice with
    different hash seeds).
The checkers return lists of problems; test_checkers_catch_* feed them broken copies of
a bundle to show each check can fail.

The field table comes from $FIELDS_DUMP, else $BUILD/tools/fields_dump (BUILD default
"build"), built with make when missing; the field tests skip when it cannot be built.
"""
import copy
import glob
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASH = os.path.join(ROOT, "dashboards")
GEN = os.path.join(DASH, "gen.py")

TARGETS = {
    # bundle: (Kibana version it targets, coreMigrationVersion, panel version, link form)
    "kibana-7": ((7, 17, 0), "7.17.0", "7.17.0", re.compile(r"#/view/([^)\s]+)")),
    "kibana-8": ((8, 0, 0), "8.0.0", "8.0.0", re.compile(r"/app/dashboards#/view/([^)\s]+)")),
}
TYPES = {"index-pattern", "visualization", "dashboard"}
EMBEDDED = ("visState", "uiStateJSON", "panelsJSON", "optionsJSON", "fieldFormatMap")
REQUIRED = {"visualization": ("visState", "uiStateJSON", "searchSourceJSON"),
            "dashboard": ("panelsJSON", "optionsJSON", "searchSourceJSON")}
VIS_TYPES = {"line", "area", "histogram", "horizontal_bar", "pie", "table", "metric",
             "markdown", "gauge", "goal", "heatmap", "tagcloud"}

NUMERIC = {"long", "double", "scaled_float"}
AGG_TYPES = {
    "terms": NUMERIC | {"keyword", "ip", "boolean", "date"},
    "significant_terms": {"keyword", "ip"},
    "cardinality": NUMERIC | {"keyword", "ip", "boolean", "date"},
    "avg": NUMERIC, "sum": NUMERIC, "median": NUMERIC, "std_dev": NUMERIC,
    "percentiles": NUMERIC, "percentile_ranks": NUMERIC, "histogram": NUMERIC, "range": NUMERIC,
    "min": NUMERIC | {"date"}, "max": NUMERIC | {"date"},
    "date_histogram": {"date"}, "date_range": {"date"},
}
# what a KQL query or a field format may name: anything aggregatable, never text/object
QUERYABLE = NUMERIC | {"keyword", "ip", "boolean", "date"}

# Which data view a field can live in (the others are shared: envelope, host, agent,
# event.*, container.id/name - network events may carry container metadata).
TOPBEAT_ONLY = ("system.", "process.", "metricset.", "service.", "host.cpu.", "event.module",
                "container.cpu.", "container.memory.", "container.disk.")
PACKETBEAT_ONLY = ("network.", "source.", "destination.", "client.", "server.", "url.",
                   "http.", "dns.", "mysql.", "pgsql.", "mongodb.", "redis.", "memcache.",
                   "thrift.", "status", "method", "query", "resource")

# Panels whose query no golden capture can match yet: network events do not carry
# container metadata so far (the Containers dashboard shows them once they do).
NO_GOLDEN = {"hostbeat-containers-top-traffic", "hostbeat-containers-top-transactions"}


# ---- loading --------------------------------------------------------------------------

def bundle_path(target, base=DASH):
    return os.path.join(base, target, "hostbeat.ndjson")


def parse_bundle(text):
    """→ (objects, problems)."""
    objs, problems = [], []
    if not text.endswith("\n"):
        problems.append("the file does not end with a newline")
    for n, line in enumerate(text.splitlines(), 1):
        try:
            o = json.loads(line)
        except ValueError as e:
            problems.append("line %d: not JSON (%s)" % (n, e))
            continue
        if not isinstance(o, dict):
            problems.append("line %d: not an object" % n)
            continue
        for k, t in (("type", str), ("id", str), ("attributes", dict), ("references", list)):
            if not isinstance(o.get(k), t):
                problems.append("line %d: %s missing or not a %s" % (n, k, t.__name__))
        objs.append(o)
    return objs, problems


def load(target):
    with open(bundle_path(target), encoding="utf-8") as f:
        objs, problems = parse_bundle(f.read())
    assert not problems, "\n".join(problems)
    return objs


def name(o):
    return "%s %s" % (o.get("type"), o.get("id"))


def embedded(o, key):
    """The parsed embedded JSON string `key` of o's attributes (searchSourceJSON
    under kibanaSavedObjectMeta), or None when absent."""
    a = o["attributes"]
    if key == "searchSourceJSON":
        s = a.get("kibanaSavedObjectMeta", {}).get("searchSourceJSON")
    else:
        s = a.get(key)
    return None if s is None else json.loads(s)


def version(s):
    return tuple(int(x) for x in s.split("."))


# ---- checkers: each returns a list of problems ----------------------------------------

def check_structure(objs):
    problems = []
    seen = set()
    for o in objs:
        if o["type"] not in TYPES:
            problems.append("%s: unexpected type" % name(o))
        if o["id"] in seen:
            problems.append("%s: id used twice" % name(o))
        seen.add(o["id"])
        for key in EMBEDDED + ("searchSourceJSON",):
            try:
                v = embedded(o, key)
            except (ValueError, TypeError) as e:
                problems.append("%s: %s does not parse (%s)" % (name(o), key, e))
                continue
            if v is None and key in REQUIRED.get(o["type"], ()):
                problems.append("%s: no %s" % (name(o), key))
        if o["type"] == "visualization":
            try:
                vs = embedded(o, "visState")
            except ValueError:
                continue
            if vs and vs.get("type") not in VIS_TYPES:
                problems.append("%s: visualization type %r is not agg-based/markdown"
                                % (name(o), vs.get("type")))
            problems += check_aggs(name(o), (vs or {}).get("aggs", []))
        if o["type"] == "index-pattern":
            a = o["attributes"]
            if a.get("title") != o["id"] or a.get("timeFieldName") != "@timestamp":
                problems.append("%s: title must be the id, timeFieldName @timestamp" % name(o))
    return problems


def check_aggs(who, aggs):
    """Agg ids unique; a terms order names a single-valued metric of the same vis (a
    multi-valued one such as percentiles needs "1.95"), "_key" or a custom orderAgg."""
    problems = []
    ids = [a.get("id") for a in aggs]
    if len(set(ids)) != len(ids):
        problems.append("%s: agg ids %s not unique" % (who, ids))
    metrics = {a.get("id"): a.get("type") for a in aggs if a.get("schema") == "metric"}
    for a in aggs:
        if a.get("type") != "terms":
            continue
        ob = a.get("params", {}).get("orderBy")
        if ob == "custom":
            oa = a["params"].get("orderAgg")
            if not isinstance(oa, dict) or not oa.get("type") or not oa.get("id"):
                problems.append("%s: agg %s orders by a custom agg it does not define"
                                % (who, a.get("id")))
        elif ob != "_key" and metrics.get(ob) in (None, "percentiles", "percentile_ranks"):
            problems.append("%s: agg %s orders by %r, not a single-valued metric of the vis"
                            % (who, a.get("id"), ob))
    return problems


def check_references(objs):
    problems = []
    have = {(o["type"], o["id"]) for o in objs}
    for o in objs:
        names = {}
        for r in o["references"]:
            if (r.get("type"), r.get("id")) not in have:
                problems.append("%s: reference %s %s is not in the bundle"
                                % (name(o), r.get("type"), r.get("id")))
            if r.get("name") in names:
                problems.append("%s: reference name %s twice" % (name(o), r.get("name")))
            names[r.get("name")] = r
        used = set()
        try:
            src = embedded(o, "searchSourceJSON")
            panels = embedded(o, "panelsJSON") if o["type"] == "dashboard" else None
            vs = embedded(o, "visState") if o["type"] == "visualization" else None
        except ValueError:
            continue  # check_structure reports it
        if src is not None:
            if "index" in src:
                problems.append("%s: searchSourceJSON names its index directly" % name(o))
            ref = src.get("indexRefName")
            if ref is not None:
                used.add(ref)
                if ref not in names or names[ref].get("type") != "index-pattern":
                    problems.append("%s: indexRefName %s has no index-pattern reference"
                                    % (name(o), ref))
            elif vs and vs.get("type") != "markdown":
                problems.append("%s: a data visualization without indexRefName" % name(o))
            for i, flt in enumerate(src.get("filter", [])):
                ref = flt.get("meta", {}).get("indexRefName")
                if ref is not None:
                    used.add(ref)
                    if ref not in names:
                        problems.append("%s: filter %d indexRefName %s has no reference"
                                        % (name(o), i, ref))
        for p in panels or []:
            ref = p.get("panelRefName")
            if ref is None:
                problems.append("%s: panel %s without panelRefName"
                                % (name(o), p.get("panelIndex")))
                continue
            used.add(ref)
            if ref not in names:
                problems.append("%s: panelRefName %s has no reference" % (name(o), ref))
        for n in names:
            if n not in used:
                problems.append("%s: reference %s is not used" % (name(o), n))
    return problems


def check_versions(objs, target):
    kibana, core, panel_version, _ = TARGETS[target]
    problems = []
    for o in objs:
        if o.get("coreMigrationVersion") != core:
            problems.append("%s: coreMigrationVersion %r, want %s"
                            % (name(o), o.get("coreMigrationVersion"), core))
        if "typeMigrationVersion" in o:
            problems.append("%s: typeMigrationVersion is 8.8+ only" % name(o))
        mv = o.get("migrationVersion")
        if not isinstance(mv, dict) or set(mv) != {o["type"]}:
            problems.append("%s: migrationVersion %r" % (name(o), mv))
            continue
        for t, v in mv.items():
            try:
                ok = version(v) <= kibana
            except ValueError:
                ok = False
            if not ok:
                problems.append("%s: migrationVersion %s %s is newer than Kibana %s"
                                % (name(o), t, v, ".".join(map(str, kibana))))
        if o["type"] == "dashboard":
            try:
                panels = embedded(o, "panelsJSON")
            except ValueError:
                continue
            for p in panels:
                if p.get("version") != panel_version:
                    problems.append("%s: panel %s version %r, want %s"
                                    % (name(o), p.get("panelIndex"), p.get("version"),
                                       panel_version))
    return problems


def check_layout(objs):
    problems = []
    for o in objs:
        if o["type"] != "dashboard":
            continue
        cells = {}
        for p in embedded(o, "panelsJSON"):
            g = p.get("gridData", {})
            x, y, w, h = (g.get(k) for k in "xywh")
            if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or y < 0 \
                    or w <= 0 or h <= 0 or x + w > 48:
                problems.append("%s: panel %s outside the 48-column grid" % (name(o), g))
                continue
            if g.get("i") != p.get("panelIndex"):
                problems.append("%s: gridData.i %r != panelIndex %r"
                                % (name(o), g.get("i"), p.get("panelIndex")))
            for cx in range(x, x + w):
                for cy in range(y, y + h):
                    if (cx, cy) in cells:
                        problems.append("%s: panels %s and %s overlap"
                                        % (name(o), cells[(cx, cy)], p.get("panelIndex")))
                        break
                    cells[(cx, cy)] = p.get("panelIndex")
                else:
                    continue
                break
    return problems


def check_navigation(objs, target):
    """Every dashboard has a markdown panel whose links (in the target's form) reach
    every other dashboard, and link nothing else."""
    link_re = TARGETS[target][3]
    problems = []
    by_id = {o["id"]: o for o in objs}
    dashes = {o["id"] for o in objs if o["type"] == "dashboard"}
    for d in sorted(dashes):
        o = by_id[d]
        refs = {r["name"]: r["id"] for r in o["references"]}
        found = False
        for p in embedded(o, "panelsJSON"):
            v = by_id.get(refs.get(p.get("panelRefName")))
            if not v or v["type"] != "visualization":
                continue
            vs = embedded(v, "visState")
            if vs.get("type") != "markdown":
                continue
            md = vs.get("params", {}).get("markdown", "")
            targets = re.findall(r"\]\(([^)]*)\)", md)
            linked = set()
            for t in targets:
                m = link_re.fullmatch(t)
                if not m:
                    problems.append("%s: link %r is not of the %s form %s"
                                    % (d, t, target, link_re.pattern))
                    continue
                if m.group(1) not in dashes:
                    problems.append("%s: link to unknown dashboard %s" % (d, m.group(1)))
                linked.add(m.group(1))
            if linked:
                found = True
                missing = dashes - {d} - linked
                if missing:
                    problems.append("%s: navigation does not link %s" % (d, sorted(missing)))
        if not found:
            problems.append("%s: no markdown navigation panel" % d)
    return problems


KQL_FIELD = re.compile(r"([A-Za-z_@][\w.@\-]*)\s*(:|<=|>=|<|>)")
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')


def kql_fields(q):
    return [m.group(1) for m in KQL_FIELD.finditer(QUOTED.sub('""', q))]


def uses(objs):
    """→ [(object name, data view id or None, context, field)]: context is an agg type,
    "kql" or "format"."""
    out = []
    for o in objs:
        if o["type"] == "index-pattern":
            for f in embedded(o, "fieldFormatMap") or {}:
                out.append((name(o), o["id"], "format", f))
            continue
        if o["type"] != "visualization":
            continue
        refs = {r["name"]: r["id"] for r in o["references"]}
        src = embedded(o, "searchSourceJSON") or {}
        view = refs.get(src.get("indexRefName"))
        q = src.get("query", {})
        if q.get("language") != "kuery" and q.get("query"):
            out.append((name(o), view, "lucene", q.get("query")))
        for f in kql_fields(q.get("query", "")):
            out.append((name(o), view, "kql", f))
        for a in embedded(o, "visState").get("aggs", []):
            p = a.get("params", {})
            if "field" in p:
                out.append((name(o), view, a["type"], p["field"]))
            for flt in p.get("filters", []):
                for f in kql_fields(flt.get("input", {}).get("query", "")):
                    out.append((name(o), view, "kql", f))
            for key in ("orderAgg", "customMetric"):
                sub = p.get(key)
                if isinstance(sub, dict) and "field" in sub.get("params", {}):
                    out.append((name(o), view, sub["type"], sub["params"]["field"]))
    return out


def check_fields(objs, table):
    problems = []
    for who, view, ctx, field in uses(objs):
        if ctx == "lucene":
            problems.append("%s: query language must be kuery" % who)
            continue
        e = table.lookup(field)
        if e is None:
            problems.append("%s: field %s (%s) is not in the field table" % (who, field, ctx))
            continue
        if e["legacy"]:
            problems.append("%s: field %s is a legacy_fields-only name" % (who, field))
        allowed = AGG_TYPES.get(ctx, QUERYABLE) if ctx not in ("kql", "format") else QUERYABLE
        if ctx not in AGG_TYPES and ctx not in ("kql", "format", "count"):
            problems.append("%s: aggregation %s on %s is not known to this test"
                            % (who, ctx, field))
        elif e["type"] not in allowed:
            problems.append("%s: %s on %s, a field of type %s" % (who, ctx, field, e["type"]))
        if view == "packetbeat-*" and field.startswith(TOPBEAT_ONLY):
            problems.append("%s: %s is a topbeat-* field" % (who, field))
        if view == "topbeat-*" and field.startswith(PACKETBEAT_ONLY):
            problems.append("%s: %s is a packetbeat-* field" % (who, field))
    return problems


# ---- a small KQL evaluator over flat documents ----------------------------------------
# Enough of KQL for the bundles: or / and / not, parentheses, field:value,
# field:"quoted", field:*, field:(a or b), field >= n (and <, <=, >).

TOKEN = re.compile(r'\s*(?:(?P<q>"(?:[^"\\]|\\.)*")|(?P<op><=|>=|<|>|:|\(|\))|(?P<w>[^\s:()<>"]+))')


def kql_tokens(s):
    out, pos = [], 0
    s = s.strip()
    while pos < len(s):
        m = TOKEN.match(s, pos)
        if not m or m.end() == pos:
            raise ValueError("cannot tokenize %r at %d" % (s, pos))
        pos = m.end()
        if m.group("q"):
            out.append(("str", json.loads(m.group("q"))))
        elif m.group("op"):
            out.append(("op", m.group("op")))
        else:
            out.append(("word", m.group("w")))
    return out


def kql_compile(s):
    """→ predicate(doc) for a flat document (dotted keys, arrays as lists)."""
    toks = kql_tokens(s)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else (None, None)

    def take():
        t = peek()
        pos[0] += 1
        return t

    def kw(word):
        t = peek()
        return t[0] == "word" and t[1].lower() == word

    def or_expr(leaf):
        left = and_expr(leaf)
        while kw("or"):
            take()
            right = and_expr(leaf)
            left = (lambda a, b: lambda d: a(d) or b(d))(left, right)
        return left

    def and_expr(leaf):
        left = not_expr(leaf)
        while kw("and"):
            take()
            right = not_expr(leaf)
            left = (lambda a, b: lambda d: a(d) and b(d))(left, right)
        return left

    def not_expr(leaf):
        if kw("not"):
            take()
            inner = not_expr(leaf)
            return lambda d: not inner(d)
        if peek() == ("op", "("):
            take()
            e = or_expr(leaf)
            if take() != ("op", ")"):
                raise ValueError("unbalanced parentheses in %r" % s)
            return e
        return leaf()

    def values(doc, field):
        v = doc.get(field)
        if v is None:
            return []
        return v if isinstance(v, list) else [v]

    def value_leaf(field):
        def leaf():
            t = take()
            if t[0] not in ("word", "str"):
                raise ValueError("value expected in %r" % s)
            want = t[1]
            if t[0] == "word" and want == "*":
                return lambda d: bool(values(d, field))
            return lambda d: any(str(v) == want or (isinstance(v, bool) and
                                                    str(v).lower() == want)
                                 for v in values(d, field))
        return leaf

    def field_leaf():
        t = take()
        if t[0] != "word":
            raise ValueError("field expected in %r, got %r" % (s, t))
        field = t[1]
        op = take()
        if op == ("op", ":"):
            if peek() == ("op", "("):
                take()
                e = or_expr(value_leaf(field))
                if take() != ("op", ")"):
                    raise ValueError("unbalanced parentheses in %r" % s)
                return e
            return value_leaf(field)()
        if op[0] == "op" and op[1] in ("<", "<=", ">", ">="):
            n = float(take()[1])
            cmp = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__,
                   ">=": float.__ge__}[op[1]]
            return lambda d: any(isinstance(v, (int, float)) and not isinstance(v, bool)
                                 and cmp(float(v), n) for v in values(d, field))
        raise ValueError("operator expected after %s in %r" % (field, s))

    if not toks:
        return lambda d: True
    e = or_expr(field_leaf)
    if pos[0] != len(toks):
        raise ValueError("trailing tokens in %r" % s)
    return e


def golden_docs():
    docs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "pcap", "expected", "*.ndjson"))):
        with open(path, encoding="utf-8") as f:
            docs.extend(json.loads(line) for line in f if line.strip())
    return docs


def check_queries_match(objs, docs):
    """Every packetbeat-* query (and each filter of a filters agg, within it) matches a
    golden document."""
    problems = []
    for o in objs:
        if o["type"] != "visualization" or o["id"] in NO_GOLDEN:
            continue
        refs = {r["name"]: r["id"] for r in o["references"]}
        src = embedded(o, "searchSourceJSON") or {}
        if refs.get(src.get("indexRefName")) != "packetbeat-*":
            continue
        try:
            base = kql_compile(src.get("query", {}).get("query", ""))
            hits = [d for d in docs if base(d)]
            if not hits:
                problems.append("%s: query %r matches no golden document"
                                % (name(o), src["query"]["query"]))
            for a in embedded(o, "visState").get("aggs", []):
                for flt in a.get("params", {}).get("filters", []):
                    q = flt["input"]["query"]
                    if not any(kql_compile(q)(d) for d in hits):
                        problems.append("%s: filter %r matches no golden document"
                                        % (name(o), q))
        except ValueError as e:
            problems.append("%s: %s" % (name(o), e))
    return problems


# ---- the field table ------------------------------------------------------------------

class Table:
    def __init__(self, entries):
        self.exact = {e["path"]: e for e in entries if not e["wildcard"]}
        self.wild = sorted((e for e in entries if e["wildcard"]), key=lambda e: -len(e["path"]))

    def lookup(self, path):
        e = self.exact.get(path)
        if e:
            return e
        for w in self.wild:
            if path.startswith(w["path"][:-1]):
                return w
        return None


@pytest.fixture(scope="module")
def table():
    path = os.environ.get("FIELDS_DUMP")
    if not path:
        build = os.environ.get("BUILD", "build")
        path = os.path.join(ROOT, build, "tools", "fields_dump")
        if not os.access(path, os.X_OK):
            try:
                r = subprocess.run(["make", "BUILD=" + build, build + "/tools/fields_dump"],
                                   cwd=ROOT, capture_output=True, text=True, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as e:
                pytest.skip("cannot build fields_dump: %s" % e)
            if r.returncode != 0 or not os.access(path, os.X_OK):
                pytest.skip("cannot build %s (make failed):\n%s" % (path, r.stderr[-1500:]))
    try:
        out = subprocess.run([path], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip("cannot run %s: %s" % (path, e))
    if out.returncode != 0:
        pytest.skip("fields_dump failed: " + out.stderr)
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    assert entries, "fields_dump printed no field"
    return Table(entries)


@pytest.fixture(scope="module")
def docs():
    d = golden_docs()
    assert len(d) > 100, "tests/pcap/expected/ holds too few documents"
    return d


# ---- the tests on the committed bundles -----------------------------------------------

@pytest.mark.parametrize("target", sorted(TARGETS))
def test_lines_parse(target):
    objs = load(target)
    assert {o["type"] for o in objs} == TYPES
    assert {o["id"] for o in objs if o["type"] == "index-pattern"} == {"packetbeat-*", "topbeat-*"}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_structure(target):
    assert check_structure(load(target)) == []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_references(target):
    assert check_references(load(target)) == []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_versions(target):
    assert check_versions(load(target), target) == []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_layout(target):
    assert check_layout(load(target)) == []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_navigation(target):
    objs = load(target)
    assert len([o for o in objs if o["type"] == "dashboard"]) >= 7
    assert check_navigation(objs, target) == []


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fields(target, table):
    objs = load(target)
    assert len(uses(objs)) > 100  # the extraction finds the fields at all
    assert check_fields(objs, table) == []


def test_queries_match_golden_documents(docs):
    assert check_queries_match(load("kibana-8"), docs) == []


def test_topbeat_datasets_exist():
    """event.dataset values the topbeat-* queries name are datasets sys/*.c publish."""
    src = ""
    for path in glob.glob(os.path.join(ROOT, "sys", "*.c")):
        with open(path, encoding="utf-8") as f:
            src += f.read()
    wanted = set()
    for o in load("kibana-8"):
        if o["type"] == "visualization":
            q = (embedded(o, "searchSourceJSON") or {}).get("query", {}).get("query", "")
            wanted.update(re.findall(r'event\.dataset:"([^"]+)"', q))
    assert wanted, "no topbeat-* query names a dataset"
    missing = sorted(d for d in wanted if '"%s"' % d not in src)
    assert missing == [], "datasets no sys/*.c publishes: %s" % missing


def normalized(target):
    """The bundle text with the target's labels and link prefix replaced by
    placeholders: what must be the same across targets."""
    _, core, panel_version, _ = TARGETS[target]
    with open(bundle_path(target), encoding="utf-8") as f:
        text = f.read()
    prefix = {"kibana-7": "](#/view/", "kibana-8": "](/app/dashboards#/view/"}[target]
    text = text.replace(prefix, "](@LINK@")
    text = text.replace('"coreMigrationVersion":"%s"' % core, '"coreMigrationVersion":"@CORE@"')
    text = text.replace('\\"version\\":\\"%s\\"' % panel_version, '\\"version\\":\\"@PANEL@\\"')
    return text


def test_bundles_have_same_objects():
    ids7 = [(o["type"], o["id"]) for o in load("kibana-7")]
    ids8 = [(o["type"], o["id"]) for o in load("kibana-8")]
    assert ids7 == ids8
    assert normalized("kibana-7") == normalized("kibana-8")


def test_generator_is_deterministic_and_committed(tmp_path):
    outs = []
    for seed in ("1", "2"):
        d = str(tmp_path / ("seed" + seed))
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, GEN, "--out", d], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        outs.append(d)
    for rel in [os.path.join(t, "hostbeat.ndjson") for t in sorted(TARGETS)] + ["README.md"]:
        blobs = []
        for base in [DASH] + outs:
            with open(os.path.join(base, rel), "rb") as f:
                blobs.append(f.read())
        assert blobs[1] == blobs[2], "%s: two runs of gen.py differ" % rel
        assert blobs[0] == blobs[1], ("dashboards/%s differs from what gen.py writes: run "
                                      "python3 dashboards/gen.py and commit" % rel)


def test_readme_lists_every_dashboard():
    with open(os.path.join(DASH, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for o in load("kibana-8"):
        if o["type"] == "dashboard":
            assert "`%s`" % o["id"] in readme


# ---- the checkers can fail ------------------------------------------------------------

def find(objs, oid):
    return next(o for o in objs if o["id"] == oid)


def set_embedded(o, key, value):
    s = json.dumps(value)
    if key == "searchSourceJSON":
        o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"] = s
    else:
        o["attributes"][key] = s


def with_field(objs, vid, field, agg_type=None):
    """A copy of objs where the first terms agg of vid (else its first agg on a field)
    uses `field`, as `agg_type` when given."""
    objs = copy.deepcopy(objs)
    o = find(objs, vid)
    vs = embedded(o, "visState")
    with_fields = [a for a in vs["aggs"] if "field" in a["params"]]
    a = next((a for a in with_fields if a["type"] == "terms"), with_fields[0])
    a["params"]["field"] = field
    if agg_type:
        a["type"] = agg_type
    set_embedded(o, "visState", vs)
    return objs


def test_parse_catches_bad_lines():
    assert parse_bundle('{"type":"dashboard"\n')[1]
    assert parse_bundle('[1]\n')[1]
    assert parse_bundle('{"type":"x","id":"y","attributes":{},"references":[]}')[1]


def test_checkers_catch_structure_problems():
    objs = copy.deepcopy(load("kibana-8"))
    find(objs, "hostbeat-http-top-urls")["attributes"]["visState"] = "{not json"
    assert any("does not parse" in p for p in check_structure(objs))
    objs = copy.deepcopy(load("kibana-8"))
    objs.append(copy.deepcopy(find(objs, "hostbeat-dns-summary")))
    assert any("id used twice" in p for p in check_structure(objs))
    objs = copy.deepcopy(load("kibana-8"))
    o = find(objs, "hostbeat-dns-summary")
    vs = embedded(o, "visState")
    vs["type"] = "metrics"
    set_embedded(o, "visState", vs)
    assert any("not agg-based" in p for p in check_structure(objs))


def test_checkers_catch_terms_order_problems():
    objs = copy.deepcopy(load("kibana-8"))
    o = find(objs, "hostbeat-databases-latency-by-type")  # percentiles split by terms
    vs = embedded(o, "visState")
    t = next(a for a in vs["aggs"] if a["type"] == "terms")
    t["params"]["orderBy"] = "1"
    del t["params"]["orderAgg"]
    set_embedded(o, "visState", vs)
    assert any("not a single-valued metric" in p for p in check_structure(objs))


def test_checkers_catch_reference_problems():
    objs = copy.deepcopy(load("kibana-8"))
    find(objs, "hostbeat-http")["references"][1]["id"] = "hostbeat-nope"
    assert any("not in the bundle" in p for p in check_references(objs))
    objs = copy.deepcopy(load("kibana-8"))
    find(objs, "hostbeat-http-top-urls")["references"] = []
    assert any("no index-pattern reference" in p for p in check_references(objs))
    objs = copy.deepcopy(load("kibana-8"))
    d = find(objs, "hostbeat-dns")
    d["references"] = d["references"][:-1]
    assert any("panelRefName" in p for p in check_references(objs))
    objs = copy.deepcopy(load("kibana-8"))
    o = find(objs, "hostbeat-dns-summary")
    src = embedded(o, "searchSourceJSON")
    src["index"] = "packetbeat-*"
    set_embedded(o, "searchSourceJSON", src)
    assert any("names its index directly" in p for p in check_references(objs))
    objs = copy.deepcopy(load("kibana-8"))
    objs = [o for o in objs if o["id"] != "topbeat-*"]
    assert any("topbeat-*" in p for p in check_references(objs))


def test_checkers_catch_version_problems():
    objs = copy.deepcopy(load("kibana-7"))
    find(objs, "hostbeat-host-cpu")["migrationVersion"]["visualization"] = "8.5.0"
    assert any("newer than Kibana 7.17.0" in p for p in check_versions(objs, "kibana-7"))
    objs = copy.deepcopy(load("kibana-8"))
    assert any("coreMigrationVersion" in p for p in check_versions(objs, "kibana-7"))
    assert any("panel" in p for p in check_versions(objs, "kibana-7"))


def test_checkers_catch_navigation_problems():
    objs = copy.deepcopy(load("kibana-7"))
    assert check_navigation(objs, "kibana-8"), "7.17 links accepted as 8.x ones"
    o = find(objs, "hostbeat-host-nav")
    vs = embedded(o, "visState")
    vs["params"]["markdown"] = vs["params"]["markdown"].replace("(#/view/hostbeat-dns)", "")
    set_embedded(o, "visState", vs)
    assert any("does not link" in p and "hostbeat-dns" in p
               for p in check_navigation(objs, "kibana-7"))


def test_checkers_catch_layout_problems():
    objs = copy.deepcopy(load("kibana-8"))
    d = find(objs, "hostbeat-dns")
    panels = embedded(d, "panelsJSON")
    panels[2]["gridData"].update(x=panels[1]["gridData"]["x"], y=panels[1]["gridData"]["y"])
    set_embedded(d, "panelsJSON", panels)
    assert any("overlap" in p for p in check_layout(objs))


def test_checkers_catch_field_problems(table):
    objs = load("kibana-8")
    bad = {
        "no.such.field": "not in the field table",
        "error.message": "terms on error.message, a field of type text",
        "responsetime": "legacy",                 # Packetbeat 1.x name
        "dns.answers": "type object",
        "system.cpu.total.pct": "topbeat-* field",  # on packetbeat-*
    }
    for field, why in bad.items():
        probs = check_fields(with_field(objs, "hostbeat-http-top-urls", field), table)
        assert any(field in p and why in p for p in probs), (field, probs)
    # avg on a keyword
    probs = check_fields(with_field(objs, "hostbeat-http-slowest-urls", "url.path", "avg"), table)
    assert any("avg on url.path, a field of type keyword" in p for p in probs), probs
    # an unknown field in a KQL query
    objs = copy.deepcopy(objs)
    o = find(objs, "hostbeat-http-top-urls")
    src = embedded(o, "searchSourceJSON")
    src["query"]["query"] = 'network.protocol:http and http.status:"x:y"'
    set_embedded(o, "searchSourceJSON", src)
    probs = check_fields(objs, table)
    assert any("http.status" in p for p in probs) and not any("x" == p for p in probs)


def test_checkers_catch_queries_without_documents(docs):
    objs = copy.deepcopy(load("kibana-8"))
    o = find(objs, "hostbeat-databases-errors")
    src = embedded(o, "searchSourceJSON")
    src["query"]["query"] = src["query"]["query"].replace("status:Error", "status:error")
    set_embedded(o, "searchSourceJSON", src)
    assert any("matches no golden document" in p for p in check_queries_match(objs, docs))


def test_kql_evaluator():
    doc = {"a": "x", "n": 5, "l": ["p", "q"], "b": False}
    cases = {
        "a:x": True, "a:y": False, 'a:"x"': True, "a:*": True, "z:*": False,
        "n >= 5": True, "n > 5": False, "not n >= 6": True, "l:q": True,
        "a:(y or x) and l:p": True, "a:y or (n < 6 and not b:true)": True, "": True,
        "not z:* and a:x": True, "b:false": True,
    }
    for q, want in cases.items():
        assert kql_compile(q)(doc) is want, q
    for q in ("a:(x", "a x", "a:"):
        with pytest.raises(ValueError):
            kql_compile(q)
    assert kql_fields('a.b:1 and not c >= 2 and d:"e:f" and g:(h or i)') == ["a.b", "c", "d", "g"]
