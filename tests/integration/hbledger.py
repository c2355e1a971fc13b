"""Parser for the transaction ledger printed by tests/integration/traffic.sh.

Line format (whitespace separated, one transaction per line):

    http METHOD PATH  STATUS CLIENT_IP SERVER_IP tcp
    dns  QTYPE  QNAME RCODE  CLIENT_IP SERVER_IP udp|tcp

and, printed by traffic_db.sh for the other protocols (Packetbeat's `method`,
`resource`/`path` and `status` fields; "-" = the event has none):

    mysql    VERB    TABLE|-    OK|Error CLIENT_IP SERVER_IP tcp
    pgsql    VERB    -          OK|Error ...
    redis    COMMAND KEY|-      OK|Error ...
    memcache command KEY[,KEY]  OK|Error|Client Error... tcp|udp   (status spaces -> "_")
    thrift   METHOD  -          OK|Error ... tcp port=9090 proto=binary transport=buffered
    mongodb  METHOD  DB.COLL|-  OK|Error ...

Optional trailing KEY=VALUE annotations (Tx.extra) qualify a line (thrift: which
listener).  Lines need not be unique for the new protocols (a repeated identical
operation is listed twice and must be reported twice); http/dns lines must be.

stdlib only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Dict, List

SUBNET = ipaddress.ip_network("172.17.0.0/16")
PROTOCOLS = ("http", "dns", "mysql", "pgsql", "redis", "memcache", "thrift", "mongodb")


@dataclass(frozen=True)
class Tx:
    proto: str       # "http" | "dns"
    verb: str        # HTTP method, or DNS qtype ("A", "AAAA", ...)
    target: str      # URL path, or DNS question name (no trailing dot)
    status: str      # HTTP status code ("200"), or DNS rcode name ("NOERROR")
    client: str      # client IP
    server: str      # server IP
    transport: str   # "tcp" | "udp"
    line: str        # the raw ledger line
    extra: tuple = ()  # trailing KEY=VALUE annotations, as (key, value) pairs

    @property
    def ann(self) -> Dict[str, str]:
        return dict(self.extra)

    @property
    def status_code(self) -> int:
        return int(self.status)

    @property
    def status_text(self) -> str:
        """The status as Packetbeat spells it ("Client_Error" -> "Client Error")."""
        return self.status.replace("_", " ")


def parse_ledger(text: str) -> List[Tx]:
    txs: List[Tx] = []
    seen = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        f = line.split()
        extra = []
        while len(f) > 7 and "=" in f[-1]:
            k, v = f.pop().split("=", 1)
            extra.insert(0, (k, v))
        if len(f) != 7:
            raise ValueError(f"ledger line {n}: want 7 fields, got {len(f)}: {line!r}")
        tx = Tx(*f, line=line, extra=tuple(extra))
        if tx.proto not in PROTOCOLS:
            raise ValueError(f"ledger line {n}: unknown protocol {tx.proto!r}")
        if tx.transport not in ("tcp", "udp"):
            raise ValueError(f"ledger line {n}: bad transport {tx.transport!r}")
        if tx.proto == "http" and not (tx.status.isdigit() and len(tx.status) == 3):
            raise ValueError(f"ledger line {n}: bad HTTP status {tx.status!r}")
        for ip in (tx.client, tx.server):
            if ipaddress.ip_address(ip) not in SUBNET:
                raise ValueError(f"ledger line {n}: {ip} outside {SUBNET}")
        if line in seen and tx.proto in ("http", "dns"):
            raise ValueError(f"ledger line {n}: duplicate line {line!r}")
        seen.add(line)
        txs.append(tx)
    if not txs:
        raise ValueError("empty ledger")
    return txs


def read_ledger(path) -> List[Tx]:
    with open(path, encoding="utf-8") as fh:
        return parse_ledger(fh.read())


# ---- matching agent events against the ledger (golden replay and live tests) --------

def flatten(doc, prefix=""):
    """{"a": {"b": 1}} -> {"a.b": 1}; dotted keys already flat stay as they are."""
    flat = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            flat.update(flatten(v, prefix + k + "."))
        else:
            flat[prefix + k] = v
    return flat


ANY = "*"


def tx_key(tx: Tx):
    """What an event must show for this ledger line (ANY = not compared)."""
    a = tx.ann
    target = tx.target
    extra = ()
    if tx.proto == "mysql" and a.get("stmt") == "prepare":
        target = ANY  # Packetbeat's path for a COM_STMT_PREPARE response is not defined
    if tx.proto == "memcache":
        extra = ("binary" if a.get("binary") else "text",)
    if tx.proto == "thrift":
        extra = (int(a["port"]),)
    return (tx.proto, tx.verb, target, tx.status_text, tx.client, tx.server, tx.transport,
            extra)


def event_key(ev: dict):
    """The same tuple, read from one (flattened) event of the new protocols."""
    t = ev.get("type")
    if t == "memcache":
        keys = ev.get("memcache.request.keys") or []
        verb, target = ev.get("memcache.request.command"), ",".join(keys) or "-"
        extra = (ev.get("memcache.protocol_type"),)
    else:
        verb = ev.get("method")
        target = ev.get("resource") if t in ("redis", "mongodb") else ev.get("path")
        target = target if target not in (None, "") else "-"
        extra = (ev.get("server.port"),) if t == "thrift" else ()
    return (t, verb, target, ev.get("status"), ev.get("client.ip"), ev.get("server.ip"),
            ev.get("network.transport"), extra)


def _same(want, got):
    return all(w == ANY or w == g for w, g in zip(want, got))


def match_events(ledger: List[Tx], events, protos=None):
    """Every ledger line reported exactly once, nothing else of `protos` (default: the
    ledger's protocols).  events: dicts (nested or flat).  Returns a list of problems."""
    protos = set(protos or {tx.proto for tx in ledger})
    evs = [flatten(e) for e in events]
    evs = [e for e in evs if e.get("type") in protos]
    got = [event_key(e) for e in evs]
    claimed = [False] * len(got)
    problems = []
    # exact lines first, then the ones with wildcards
    for tx in sorted(ledger, key=lambda t: ANY in tx_key(t)):
        want = tx_key(tx)
        for i, g in enumerate(got):
            if not claimed[i] and _same(want, g):
                claimed[i] = True
                break
        else:
            near = [g for i, g in enumerate(got) if not claimed[i] and g[:3] == want[:3]]
            problems.append("ledger line not reported: %r (want %s%s)" % (
                tx.line, want, "; unclaimed events with that verb/target: %s" % near[:3]
                if near else ""))
    for i, g in enumerate(got):
        if not claimed[i]:
            e = evs[i]
            problems.append("event not in the ledger: %s%s" % (
                g, " error.message=%r" % e["error.message"] if "error.message" in e else ""))
    return problems
