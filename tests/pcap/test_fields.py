"""The drift check: every field hostbeat really writes is in the field table the index
templates are built from (shipper/fields.c), with a value Elasticsearch accepts for the
table's type, and every table entry is written by some document (or marked rare).

Documents come from
  - every golden case of tests/pcap/test_golden*.py (their CASES lists: capture + -E
    overrides), replayed twice: legacy_fields false and true;
  - a live system sample: ./hostbeat -E packetbeat.enabled=false -E topbeat.period=1s
    with cpu_per_core, cpu_ticks, legacy_fields and tags on, file output to a temp
    dir, SIGTERM after ~2.5 s (system, core, process, filesystem, self-metrics events);
  - the container metricset over the cgroup v1 and v2 fixture trees
    (tests/fixtures/proc/cgroup_v*, as topbeat.hostfs).
Also every key the C sources write as a literal (ev_set_*(ev, "key", ...), found by
tests/tools/fields_scan.py) must have an entry, for code paths no capture reaches.
The table is read from tests/tools/fields_dump ($FIELDS_DUMP, else
$BUILD/tools/fields_dump, BUILD default "build"; built with make when missing). The
binary is $HOSTBEAT (default ./hostbeat), as for the golden tests.

How values are judged (what Elasticsearch does with a JSON value in a field of that
type): keyword/text take any scalar (a number is indexed as its text); long takes an
integer or an integer string ("300", as dns.answers.ttl is written) within 64 bits,
not a fraction; double/scaled_float a number; boolean true/false (or "true"/"false");
ip an IPv4/IPv6 literal; date an RFC 3339 / strict_date_optional_time string or epoch
millis; an object field an object. null is always fine (ES skips it). Arrays are
judged element by element; arrays of objects are walked (dns.answers[*].ttl →
dns.answers.ttl).
"""
import concurrent.futures
import datetime
import glob
import importlib
import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from hbreplay import GOLDEN_CFG, HOSTBEAT, ROOT, run_replay

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "proc")
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
INT_RE = re.compile(r"-?[0-9]+")
DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
                     r"(Z|[+-]\d{2}(?::?\d{2})?)?)?")


# ---- the table ------------------------------------------------------------------------

def fields_dump_bin():
    env = os.environ.get("FIELDS_DUMP")
    if env:
        return env if os.path.isabs(env) else os.path.join(os.getcwd(), env)
    build = os.environ.get("BUILD", "build")
    path = os.path.join(ROOT, build, "tools", "fields_dump")
    if not os.access(path, os.X_OK):
        r = subprocess.run(["make", "BUILD=" + build, build + "/tools/fields_dump"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            pytest.fail("cannot build %s:\n%s" % (path, r.stderr[-2000:]))
    return path


class Table:
    """The field table: exact entries and wildcards ("a.b.*")."""

    def __init__(self, entries):
        self.entries = entries
        self.exact = {e["path"]: e for e in entries if not e["wildcard"]}
        # longest prefix first
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
    out = subprocess.run([fields_dump_bin()], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, "fields_dump failed: " + out.stderr
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    assert entries, "fields_dump printed no field"
    return Table(entries)


# ---- judging one document ------------------------------------------------------------

def _date_ok(v):
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return True  # epoch_millis
    if not isinstance(v, str):
        return False
    m = DATE_RE.fullmatch(v)
    if not m:
        return False
    y, mo, d, h, mi, s = (int(x) if x else 0 for x in m.groups()[:6])
    try:
        datetime.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return False
    return True


def value_error(es_type, v):
    """None when ES indexes v into a field of es_type, else why not."""
    if v is None:
        return None
    if isinstance(v, dict):
        return "an object where a %s is mapped" % es_type
    if es_type in ("keyword", "text"):
        return None
    if es_type == "long":
        if isinstance(v, bool):
            return "a boolean in a long"
        if isinstance(v, float):
            return "a fraction in a long" if v != int(v) else None
        if isinstance(v, str):
            if not INT_RE.fullmatch(v.strip()):
                return "a non-integer string in a long"
            v = int(v)
        if not LONG_MIN <= v <= LONG_MAX:
            return "out of the long range"
        return None
    if es_type in ("double", "scaled_float"):
        return None if isinstance(v, (int, float)) and not isinstance(v, bool) else \
            "a %s in a %s" % (type(v).__name__, es_type)
    if es_type == "boolean":
        return None if isinstance(v, bool) or v in ("true", "false") else "not a boolean"
    if es_type == "ip":
        if not isinstance(v, str):
            return "a %s in an ip" % type(v).__name__
        try:
            ipaddress.ip_address(v)
        except ValueError:
            return "not an IP literal"
        return None
    if es_type == "date":
        return None if _date_ok(v) else "not a strict_date_optional_time date"
    if es_type == "object":
        return "a scalar where an object is mapped"
    return "unknown type " + es_type


class Findings:
    """What the documents showed, against the table."""

    def __init__(self, table):
        self.table = table
        self.unmapped = {}    # path -> source
        self.mismatch = {}    # (path, why) -> (value, source)
        self.leaf_paths = {}  # path -> source
        self.obj_paths = {}   # path -> source
        self.reached = set()  # table paths
        self.legacy_leaks = {}  # legacy path seen with legacy_fields false -> source
        self.docs = 0

    def leaf(self, path, v, src, legacy):
        self.leaf_paths.setdefault(path, src)
        e = self.table.lookup(path)
        if e is None:
            self.unmapped.setdefault(path, src)
            return
        self.reached.add(e["path"])
        if e["legacy"] and not legacy:
            self.legacy_leaks.setdefault(path, src)
        why = value_error(e["type"], v)
        if why:
            self.mismatch.setdefault((path, why), (v, src))

    def obj(self, path, src):
        self.obj_paths.setdefault(path, src)
        e = self.table.exact.get(path)
        if e is None:
            return  # an implicit parent, or an object under a wildcard
        self.reached.add(path)
        if e["type"] != "object":
            self.mismatch.setdefault((path, "an object where a %s is mapped" % e["type"]),
                                     ("{...}", src))

    def walk(self, v, path, src, legacy):
        if isinstance(v, dict):
            if path:
                self.obj(path, src)
            for k, x in v.items():
                self.walk(x, path + "." + k if path else k, src, legacy)
        elif isinstance(v, list):
            for x in v:
                self.walk(x, path, src, legacy)
        else:
            self.leaf(path, v, src, legacy)

    def add(self, doc, src, legacy):
        self.docs += 1
        self.walk(doc, "", src, legacy)


def _short(v):
    t = json.dumps(v)
    return t if len(t) <= 60 else t[:57] + "..."


# ---- collecting documents --------------------------------------------------------------

def golden_cases():
    """(name, pcap, overrides) of every CASES list of tests/pcap/test_golden*.py."""
    cases = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "pcap", "test_golden*.py"))):
        mod = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
        for c in getattr(mod, "CASES", []):
            cases.append((c[0], c[1], list(c[2])))
    return cases


def run_sampler(overrides, seconds=2.5):
    """hostbeat with the capture off for `seconds`, then SIGTERM: its documents."""
    with tempfile.TemporaryDirectory(prefix="hb-fields-") as out:
        cmd = [HOSTBEAT, "-c", GOLDEN_CFG, "-e", "-E", "packetbeat.enabled=false",
               "-E", "topbeat.period=1s", "-E", "output.file.path=" + out,
               "-E", "logging.level=error"]
        for o in overrides:
            cmd += ["-E", o]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(seconds)
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail("hostbeat did not stop on SIGTERM: " + err[-1000:])
        assert proc.returncode == 0, "hostbeat exited %d: %s" % (proc.returncode, err[-1000:])
        docs = []
        for path in sorted(glob.glob(os.path.join(out, "*.ndjson"))):
            with open(path, encoding="utf-8") as f:
                docs += [json.loads(line) for line in f]
        return docs


LIVE = ["topbeat.stats.cpu_per_core=true", "topbeat.stats.cpu_ticks=true",
        "legacy_fields=true", "tags=[drift, check]", "metrics.period=1s"]


def container_overrides(fixture):
    return ["topbeat.hostfs=" + os.path.join(FIXTURES, fixture), "topbeat.stats.container=true",
            "topbeat.stats.system=false", "topbeat.stats.process=false",
            "topbeat.stats.filesystem=false", "legacy_fields=true"]


@pytest.fixture(scope="module")
def findings(table):
    if not os.path.exists(HOSTBEAT):
        pytest.fail("binary %s not built" % HOSTBEAT)
    f = Findings(table)
    f.absent = []  # golden captures not on this machine (../shared/pcaps is optional)
    jobs = []
    for name, pcap, overrides in golden_cases():
        if not os.path.exists(pcap):
            f.absent.append(pcap)
            continue  # the golden test reports the missing capture
        for legacy in (False, True):
            jobs.append((name, pcap, overrides + ["legacy_fields=%s" % str(legacy).lower()], legacy))
    assert jobs, "no golden capture found"
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 4) as pool:
        futs = {pool.submit(run_replay, pcap, ov): (name, legacy) for name, pcap, ov, legacy in jobs}
        live = pool.submit(run_sampler, LIVE)
        cont = {fx: pool.submit(run_sampler, container_overrides(fx))
                for fx in ("cgroup_v1", "cgroup_v2") if os.path.isdir(os.path.join(FIXTURES, fx))}
        for fut, (name, legacy) in futs.items():
            events, _ = fut.result()
            for ev in events:
                f.add(ev, "%s (legacy_fields %s)" % (name, str(legacy).lower()), legacy)
        docs = live.result()
        assert any(d.get("event", {}).get("dataset") == "system.process" for d in docs), \
            "the live sample wrote no process event"
        for d in docs:
            f.add(d, "live sample", True)
        for fx, fut in cont.items():
            docs = fut.result()
            assert docs, "no container event from the %s fixture" % fx
            for d in docs:
                f.add(d, "container fixture " + fx, True)
    return f


# ---- the checks ---------------------------------------------------------------------

def test_every_written_path_is_mapped(findings):
    bad = ["%s  (first in %s)" % (p, s) for p, s in sorted(findings.unmapped.items())]
    assert not bad, "%d field(s) written but absent from shipper/fields.c:\n  %s" % (
        len(bad), "\n  ".join(bad))


def test_every_value_fits_its_type(findings, table):
    bad = ["%s: %s, e.g. %s  (table: %s; first in %s)"
           % (p, why, _short(v), (table.lookup(p) or {}).get("type"), s)
           for (p, why), (v, s) in sorted(findings.mismatch.items())]
    assert not bad, "%d type mismatch(es):\n  %s" % (len(bad), "\n  ".join(bad))


def test_no_path_is_both_leaf_and_object(findings):
    both = sorted(set(findings.leaf_paths) & set(findings.obj_paths))
    bad = ["%s: a value in %s, an object in %s" % (p, findings.leaf_paths[p], findings.obj_paths[p])
           for p in both]
    assert not bad, "leaf/object conflicts:\n  " + "\n  ".join(bad)


def test_legacy_names_only_with_legacy_fields(findings):
    bad = ["%s  (in %s)" % (p, s) for p, s in sorted(findings.legacy_leaks.items())]
    assert not bad, "FF_LEGACY fields written with legacy_fields false:\n  " + "\n  ".join(bad)


def test_every_entry_is_reached_or_rare(findings, table):
    assert findings.docs > 0
    gone = [p for p in findings.absent if not os.path.isdir(os.path.dirname(p))]
    if gone:
        # Some entries are only reached by Packetbeat's captures (DNSSEC answers, raw
        # request/response text): without their directory (../shared/pcaps, optional)
        # judging the table would blame it wrongly. Single missing files still count.
        pytest.skip("%d golden capture(s) absent with their directory (e.g. %s): table "
                    "reachability is checked only with them" % (len(gone), gone[0]))
    rare_hit = sorted(e["path"] for e in table.entries if e["rare"] and e["path"] in findings.reached)
    print("\n%d documents, %d leaf paths, %d/%d table entries reached; rare entries reached: %s"
          % (findings.docs, len(findings.leaf_paths), len(findings.reached), len(table.entries),
             ", ".join(rare_hit) or "none"))
    stale = [e["path"] for e in table.entries
             if not e["rare"] and e["path"] not in findings.reached]
    assert not stale, ("%d table entr(ies) no document reached; mark them FF_RARE or remove "
                       "them:\n  %s" % (len(stale), "\n  ".join(stale)))


def test_literal_keys_in_the_sources_are_mapped(table):
    """Keys on code paths no capture reaches: the ev_set_*("key") literals of the C
    sources (tests/tools/fields_scan.py) must have a table entry too."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
    import fields_scan  # noqa: E402
    keys = fields_scan.scan(ROOT)
    assert len(keys) > 100, "fields_scan found almost nothing: is its pattern stale?"
    bad = ["%s  (%s)" % (k, where[0]) for k, where in sorted(keys.items()) if not table.lookup(k)]
    assert not bad, "keys in the sources without a table entry:\n  " + "\n  ".join(bad)


# ---- the checker itself can fail ------------------------------------------------------

def test_checker_catches_drift(table):
    f = Findings(table)
    f.add({"client": {"ip": "not-an-ip", "port": "80x"}, "no_such_field": 1,
           "event": {"start": "yesterday"}, "dns": {"answers": [{"ttl": 1.5}]},
           "system": {"cpu": {"user": {"pct": "high"}}}, "http": {"version": {"x": 1}},
           "cpu": {"user": 5}}, "synthetic", False)
    assert "no_such_field" in f.unmapped
    whys = {p: why for p, why in f.mismatch}
    assert whys["client.ip"] == "not an IP literal"
    assert whys["client.port"] == "a non-integer string in a long"
    assert whys["event.start"].startswith("not a strict_date")
    assert whys["dns.answers.ttl"] == "a fraction in a long"
    assert whys["system.cpu.user.pct"] == "a str in a scaled_float"
    assert "http.version" in f.obj_paths and "http.version" in whys
    assert "cpu.user" in f.legacy_leaks
    ok = Findings(table)
    ok.add({"@timestamp": "2024-01-01T00:00:00.123456Z", "dns": {"id": 4660, "answers": [
        {"ttl": "300", "name": "a."}]}, "related": {"ip": ["10.0.0.1", "::1"]},
        "http": {"request": {"headers": {"x-custom": "v"}}}, "hostbeat": {"tcp": {"gaps": 3}}},
        "synthetic", False)
    assert not ok.unmapped and not ok.mismatch, (ok.unmapped, ok.mismatch)
    assert {"http.request.headers.*", "hostbeat.*", "dns.answers.ttl"} <= ok.reached
