"""The Elasticsearch output end to end against the strict API double: every
scenario compares the multiset of documents hostbeat produced (the same capture
replayed into output.file) with the multiset the double indexed, so "0 lost, 0
duplicates" is checked exactly, document by document.

  test_normal_flow          all documents, both the template and the index name right
  test_outage_two_minutes   ES refuses connections for HB_OUTAGE_S (default 120) s while
                            ~2,000 events/s arrive; everything arrives once afterwards
  test_429_storm            whole-request 429s for a while: delivered once, retried > 0
  test_item_400s            every 7th item refused with 400: exactly those dead-lettered,
                            the rest indexed, the dead-letter file holds the errors
  test_413_split            a body cap below one batch: requests split, all delivered
  test_slow_answers         answers later than the client timeout: retried with the same
                            _id, so 409s and no document twice
  test_kill9_mid_outage     kill -9 while ES is down, restart: what reached the spool
                            arrives, nothing twice
  test_spool_full           a small spool and ES down: indexed + dropped == produced,
                            the drops counted exactly in spool.full_drops
  test_auth_and_tls         basic auth, API key and TLS with a test CA
  test_user_curl_checks     the README's curl checks against the double

Uses: the EsDouble class (tests/esdouble/esdouble.py), $HOSTBEAT (default ./hostbeat),
$BUILD/tools/pcapgen (default build). stdlib only; run with /usr/bin/python3.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from esdouble import EsDouble  # noqa: E402

OUTAGE_S = float(os.environ.get("HB_OUTAGE_S", "120"))
RATE = 2000.0  # events/s during the outage scenario
MASK = ("agent",)  # per-run values (ephemeral ids)


def bin_path(env, default):
    p = Path(os.environ.get(env, default))
    return p if p.is_absolute() else (REPO / p).resolve()


HOSTBEAT = bin_path("HOSTBEAT", "hostbeat")
PCAPGEN = Path(os.environ.get("BUILD", "build"))
PCAPGEN = (PCAPGEN if PCAPGEN.is_absolute() else REPO / PCAPGEN) / "tools" / "pcapgen"


@pytest.fixture(scope="module", autouse=True)
def need_binaries():
    for p in (HOSTBEAT, PCAPGEN):
        if not os.access(p, os.X_OK):
            pytest.skip(f"{p} not built (make all tools)")


# --------------------------------------------------------------------------- captures

def retime(src, dst, factor):
    """Copy a classic pcap stretching its packet times by `factor` (the replay pace)."""
    with open(src, "rb") as f:
        data = f.read()
    magic = struct.unpack_from("<I", data, 0)[0]
    assert magic in (0xA1B2C3D4, 0xA1B23C4D), "little-endian classic pcap expected"
    div = 1_000_000 if magic == 0xA1B2C3D4 else 1_000_000_000
    out = bytearray(data[:24])
    off, t0 = 24, None
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack_from("<IIII", data, off)
        t = sec * div + frac
        t0 = t if t0 is None else t0
        t = t0 + int((t - t0) * factor)
        out += struct.pack("<IIII", t // div, t % div, incl, orig)
        out += data[off + 16: off + 16 + incl]
        off += 16 + incl
    with open(dst, "wb") as f:
        f.write(out)


def make_pcap(tmp, name, conns, reqs, pace_rate=None):
    """A generated capture; with pace_rate, retimed to about that many events/s."""
    raw = Path(tmp, name + ".raw.pcap")
    truth = subprocess.run([str(PCAPGEN), "-n", str(conns), "-r", str(reqs), "-o", str(raw)],
                           capture_output=True, text=True, check=True).stdout
    txns = sum(int(l.split()[1]) for l in truth.splitlines() if not l.startswith("packets"))
    if pace_rate is None:
        return raw, txns
    out = Path(tmp, name + ".pcap")
    with open(raw, "rb") as f:
        f.seek(24)
        first = struct.unpack("<II", f.read(8))
    last = None
    with open(raw, "rb") as f:
        data = f.read()
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack_from("<IIII", data, off)
        last = (sec, usec)
        off += 16 + incl
    span = (last[0] - first[0]) + (last[1] - first[1]) / 1e6
    retime(raw, out, (txns / pace_rate) / span)
    return out, txns


# --------------------------------------------------------------------------- documents

def canon(doc):
    d = {k: v for k, v in doc.items() if k not in MASK}
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def produced(tmp, pcap, extra=()):
    """The documents hostbeat writes for this capture (file output, top speed)."""
    out = Path(tmp, "produced")
    shutil.rmtree(out, ignore_errors=True)
    cfg = Path(tmp, "file.yml")
    cfg.write_text(PROTOCOLS)
    run_hb(tmp, ["-t", "-I", str(pcap)], cfg=cfg, file_out=out, extra=extra, wait=True)
    docs = []
    for f in sorted(out.glob("packetbeat-*.ndjson")):
        docs += [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
    return docs


def spool_docs(path):
    """Documents in the spool's segment files (shipper/spool.c record layout: 20-byte
    header magic "\\xF8HBS", u32 len, u16 type, u16 flags, u32 dcrc, u32 hcrc; the
    payload is "index\\nid\\njson"). A torn last record (kill -9 mid-write) is skipped."""
    docs = []
    for seg in sorted(path.glob("spool-*.seg")):
        data = seg.read_bytes()
        off = 0
        while off + 20 <= len(data) and data[off:off + 4] == b"\xf8HBS":
            n = struct.unpack_from("<I", data, off + 4)[0]
            if off + 20 + n > len(data):
                break
            payload = data[off + 20: off + 20 + n].split(b"\n", 2)
            docs.append(json.loads(payload[2]))
            off += 20 + n
    return docs


def indexed(double, pattern="packetbeat-"):
    docs = []
    for name in sorted(double.indices()):
        if name.startswith(pattern):
            docs += [d for d in double.docs(name)]
    return docs


def assert_same(prod, got):
    want = collections.Counter(canon(d) for d in prod)
    have = collections.Counter(canon(d) for d in got)
    dups = sum(n - 1 for n in have.values() if n > 1)
    lost = sum((want - have).values())
    extra = sum((have - want).values())
    assert (lost, dups, extra) == (0, 0, 0), \
        f"lost {lost}, duplicates {dups}, unexpected {extra} (produced {len(prod)}, indexed {len(got)})"


# --------------------------------------------------------------------------- hostbeat

def es_config(tmp, port, *, scheme="http", extra_yaml=""):
    p = Path(tmp, "es.yml")
    p.write_text(
        "output.elasticsearch:\n"
        f"  hosts: ['{scheme}://127.0.0.1:{port}']\n"
        "  backoff.init: 100ms\n"
        "  backoff.max: 1s\n"
        "  timeout: 5s\n"
        f"  dead_letter.path: {tmp}/dead.ndjson\n"
        f"queue.spool.path: {tmp}/spool\n"
        "metrics.period: 1s\n"
        "logging.level: info\n" + PROTOCOLS + extra_yaml)
    return p


# Every protocol, on the generator's ports (tests/bench/pcapgen.c).
PROTOCOLS = "packetbeat.protocols:\n" + "".join(
    f"- {{type: {t}, ports: [{p}]}}\n" for t, p in (
        ("http", 80), ("dns", 53), ("mysql", 3306), ("pgsql", 5432), ("redis", 6379),
        ("memcache", 11211), ("thrift", 9090), ("mongodb", 27017)))


def run_hb(tmp, args, *, cfg=None, file_out=None, extra=(), wait=False, timeout=600):
    argv = [str(HOSTBEAT), "-e"]
    if cfg:
        argv += ["-c", str(cfg)]
    if file_out:
        argv += ["-E", f"output.file.path={file_out}", "-E", "output.file.rotate_every_kb=1048576"]
    for e in extra:
        argv += ["-E", e]
    argv += args
    log = open(Path(tmp, "hb.%d.log" % time.monotonic_ns()), "w+")
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
    p.log = log
    if wait:
        rc = p.wait(timeout=timeout)
        log.seek(0)
        assert rc == 0, log.read()[-3000:]
    return p


def log_text(p):
    p.log.flush()
    p.log.seek(0)
    return p.log.read()


def metric_total(text, name):
    """Sum of one counter over the periodic 'Non-zero metrics' lines (deltas)."""
    return sum(int(m) for m in re.findall(r"\b%s=(\d+)" % re.escape(name), text))


@pytest.fixture
def tmp():
    d = tempfile.mkdtemp(prefix="hb-es.")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def double():
    d = EsDouble(version="8.15.0", realtime=True).start()
    yield d
    d.stop()


def finish(double):
    assert double.violations == [], double.violations[:5]


# --------------------------------------------------------------------------- scenarios

def test_normal_flow(tmp, double):
    pcap, txns = make_pcap(tmp, "n", 40, 3)
    prod = produced(tmp, pcap)
    assert len(prod) >= txns
    run_hb(tmp, ["-t", "-I", str(pcap)], cfg=es_config(tmp, double.port), wait=True)
    assert_same(prod, indexed(double))
    assert double.doc_errors == []
    names = double.indices()
    assert any(re.fullmatch(r"packetbeat-\d{4}\.\d{2}\.\d{2}", n) for n in names), names
    tmpl = json.loads(urllib.request.urlopen(double.url + "/_index_template").read())
    assert any("packetbeat-*" in t["index_template"]["index_patterns"]
               for t in tmpl["index_templates"])
    finish(double)


def test_outage_two_minutes(tmp, double):
    pcap, txns = make_pcap(tmp, "o", max(50, int(RATE * (OUTAGE_S + 30) / 8 / 4)), 4,
                           pace_rate=RATE)
    prod = produced(tmp, pcap)
    hb = run_hb(tmp, ["-I", str(pcap)], cfg=es_config(tmp, double.port))
    time.sleep(5)
    double.refuse(ms=int(OUTAGE_S * 1000))
    rc = hb.wait(timeout=OUTAGE_S + 600)
    text = log_text(hb)
    assert rc == 0, text[-3000:]
    assert_same(prod, indexed(double))
    assert metric_total(text, "spool.spooled") > 0, "the outage should have gone through the spool"
    assert metric_total(text, "spool.full_drops") == 0
    finish(double)


def test_429_storm(tmp, double):
    pcap, _ = make_pcap(tmp, "r", 40, 3, pace_rate=2000)
    prod = produced(tmp, pcap)
    double.set_faults(reject={"seconds": 3, "path": "/_bulk"})
    hb = run_hb(tmp, ["-I", str(pcap)], cfg=es_config(tmp, double.port))
    assert hb.wait(timeout=300) == 0
    text = log_text(hb)
    assert_same(prod, indexed(double))
    assert double.stats()["by_status"].get("429", 0) > 0
    assert metric_total(text, "output.es.retried") > 0
    finish(double)


def test_item_400s(tmp, double):
    pcap, _ = make_pcap(tmp, "i", 40, 3)
    prod = produced(tmp, pcap)
    double.set_faults(items={"every": 7, "status": 400})
    hb = run_hb(tmp, ["-t", "-I", str(pcap)], cfg=es_config(tmp, double.port), wait=True)
    text = log_text(hb)
    got = indexed(double)
    dead = [json.loads(l) for l in Path(tmp, "dead.ndjson").read_text().splitlines()]
    assert len(dead) == metric_total(text, "output.es.dead_lettered") > 0
    assert len(got) + len(dead) == len(prod)
    assert_same(prod, got + [d["document"] for d in dead])
    assert all(d["status"] == 400 and d["error"]["type"] for d in dead)
    finish(double)


def test_413_split(tmp, double):
    pcap, _ = make_pcap(tmp, "s", 40, 3)
    prod = produced(tmp, pcap)
    double.set_faults(max_content_length={"bytes": 20000, "path": "/_bulk"})
    run_hb(tmp, ["-t", "-I", str(pcap)], cfg=es_config(tmp, double.port),
           extra=["output.elasticsearch.compression_level=0"], wait=True)
    assert_same(prod, indexed(double))
    assert double.stats()["by_status"].get("413", 0) > 0
    finish(double)


def test_slow_answers(tmp, double):
    pcap, _ = make_pcap(tmp, "w", 30, 3)
    prod = produced(tmp, pcap)
    double.set_faults(slow={"ms": 3000, "count": 2, "path": "/_bulk"})
    hb = run_hb(tmp, ["-t", "-I", str(pcap)], cfg=es_config(tmp, double.port),
                extra=["output.elasticsearch.timeout=1s"], wait=True)
    text = log_text(hb)
    assert_same(prod, indexed(double))
    assert metric_total(text, "output.es.duplicates") > 0, "a timed-out batch was stored: 409s"
    finish(double)


def test_kill9_mid_outage(tmp, double):
    pcap, _ = make_pcap(tmp, "k", 200, 4, pace_rate=1000)
    prod = produced(tmp, pcap)
    double.refuse()  # down until resume()
    hb = run_hb(tmp, ["-I", str(pcap)], cfg=es_config(tmp, double.port))
    time.sleep(4)
    hb.send_signal(signal.SIGKILL)
    hb.wait()
    in_spool = spool_docs(Path(tmp, "spool"))
    spooled = len(in_spool)
    assert spooled > 0, "nothing reached the spool before the kill"
    double.resume()
    # restart: no capture, only drain the spool (the sampler is off, so nothing new)
    cfg = es_config(tmp, double.port, extra_yaml="packetbeat.enabled: false\n"
                    "topbeat.period: 1h\ntopbeat.stats.process: false\n"
                    "topbeat.stats.filesystem: false\ntopbeat.stats.container: false\n")
    hb2 = run_hb(tmp, [], cfg=cfg)
    deadline = time.time() + 120
    while time.time() < deadline and len(indexed(double)) < spooled:
        time.sleep(0.5)
    time.sleep(2)
    hb2.send_signal(signal.SIGTERM)
    assert hb2.wait(timeout=60) == 0
    got = indexed(double)
    assert len(got) >= spooled, (len(got), spooled)
    have = collections.Counter(canon(d) for d in got)
    missing = collections.Counter(canon(d) for d in in_spool) - have
    assert not missing, f"{sum(missing.values())} documents that reached the spool were lost"
    assert max(have.values()) == 1, "a document indexed twice"
    want = collections.Counter(canon(d) for d in prod)
    assert not (have - want), "a document that was never produced"
    finish(double)


def test_spool_full(tmp, double):
    pcap, _ = make_pcap(tmp, "f", 200, 4)
    prod = produced(tmp, pcap)
    double.refuse()
    cfg = es_config(tmp, double.port, extra_yaml="queue.spool.max_bytes: 1MiB\n"
                    "queue.spool.segment_bytes: 256KiB\n")
    hb = run_hb(tmp, ["-t", "-I", str(pcap)], cfg=cfg)
    time.sleep(6)
    double.resume()
    assert hb.wait(timeout=300) == 0
    text = log_text(hb)
    drops = metric_total(text, "spool.full_drops")
    got = indexed(double)
    assert drops > 0
    assert len(got) + drops == len(prod), (len(got), drops, len(prod))
    have = collections.Counter(canon(d) for d in got)
    assert max(have.values()) == 1
    assert not (have - collections.Counter(canon(d) for d in prod))
    finish(double)


def openssl_ca(tmp):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    ca_key, ca, key, csr, crt = (Path(tmp, n) for n in
                                 ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt"))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=hostbeat test CA", "-keyout", ca_key, "-out", ca)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", key, "-out", csr)
    ext = Path(tmp, "ext.cnf")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-days", "2", "-extfile", ext, "-out", crt)
    return ca, crt, key


def test_auth_and_tls(tmp):
    pcap, _ = make_pcap(tmp, "a", 10, 2)
    prod = produced(tmp, pcap)
    ca, crt, key = openssl_ca(tmp)
    d = EsDouble(version="8.15.0", realtime=True, user="elastic:changeme",
                 tls_cert=str(crt), tls_key=str(key)).start()
    try:
        cfg = es_config(tmp, d.port, scheme="https", extra_yaml=(
            "output.elasticsearch.username: elastic\n"
            "output.elasticsearch.password: changeme\n"
            f"output.elasticsearch.ssl.certificate_authorities: ['{ca}']\n"))
        run_hb(tmp, ["-t", "-I", str(pcap)], cfg=cfg, wait=True)
        assert_same(prod, indexed(d))
        finish(d)
    finally:
        d.stop()
    d = EsDouble(version="8.15.0", realtime=True, api_key="kid:ksecret").start()
    try:
        shutil.rmtree(Path(tmp, "spool"), ignore_errors=True)
        cfg = es_config(tmp, d.port, extra_yaml="output.elasticsearch.api_key: kid:ksecret\n"
                        "output.elasticsearch.headers.X-Test: yes\n")
        run_hb(tmp, ["-t", "-I", str(pcap)], cfg=cfg, wait=True)
        assert_same(prod, indexed(d))
        finish(d)
    finally:
        d.stop()


def test_user_curl_checks(tmp, double):
    pcap, _ = make_pcap(tmp, "u", 10, 2)
    run_hb(tmp, ["-t", "-I", str(pcap)], cfg=es_config(tmp, double.port), wait=True)
    cfg = es_config(tmp, double.port, extra_yaml="packetbeat.enabled: false\n"
                    "topbeat.period: 1s\n")
    hb = run_hb(tmp, [], cfg=cfg)
    time.sleep(3)
    hb.send_signal(signal.SIGTERM)
    assert hb.wait(timeout=60) == 0
    urllib.request.urlopen(double.url + "/_refresh", data=b"").read()
    cat = urllib.request.urlopen(double.url + "/_cat/indices?v").read().decode()
    assert re.search(r"\bpacketbeat-\d{4}\.\d{2}\.\d{2}\b", cat), cat
    assert re.search(r"\btopbeat-\d{4}\.\d{2}\.\d{2}\b", cat), cat
    res = json.loads(urllib.request.urlopen(double.url + "/packetbeat-*/_search?pretty").read())
    assert res["hits"]["total"]["value"] > 0
    assert res["hits"]["hits"][0]["_source"]["type"] in (
        "http", "dns", "mysql", "pgsql", "redis", "memcache", "thrift", "mongodb")
    finish(double)
