"""Golden replay of our own docker0 recordings of real servers (one per protocol).

tests/integration/record_db.sh captured docker0 while real clients (mariadb, perl
DBD::MariaDB, psql, pgbench, redis-cli, python sockets, python3-thrift, mongo_wire.py)
talked to real servers (MariaDB 10.11, PostgreSQL 15, Redis 7, memcached 1.6, a
python3-thrift service, mongo_wire.py) and wrote a ledger of what the clients did
(tests/pcap/recorded/docker0_<proto>.ledger, format in tests/integration/hbledger.py).

Each check asserts that every ledger line is reported exactly once with the right
method / resource-or-path / status / client / server / transport (and, for thrift, the
listener port; for memcache, text vs binary) and that nothing else of that protocol is
reported; then run_case diffs the whole event contract against the golden file.
"""
import os
import sys

import pytest

from hbreplay import RECORDED, flatten, of_type, run_case

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from hbledger import match_events, read_ledger  # noqa: E402

PROTOS = ("mysql", "pgsql", "redis", "memcache", "thrift", "mongodb")


def ledger_check(proto, extra=None):
    def check(events):
        ledger = read_ledger(os.path.join(RECORDED, "docker0_%s.ledger" % proto))
        others = sorted({e.get("type") for e in events} - {proto})
        assert not others, "events of other types: %s" % others
        problems = match_events(ledger, events, [proto])
        assert not problems, "%d problem(s) against %d ledger lines:\n  %s" % (
            len(problems), len(ledger), "\n  ".join(problems))
        if extra:
            extra([flatten(e) for e in of_type(events, proto)])
    return check


def mysql_details(evs):
    err = [e for e in evs if e["status"] == "Error"]
    assert sorted(e["mysql.error_code"] for e in err) == [1064, 1146]
    sel = [e for e in evs if e.get("query") == "SELECT id, name, qty FROM items ORDER BY id"]
    assert sel and sel[0]["mysql.num_rows"] == 3 and sel[0]["mysql.num_fields"] == 3
    # the binary-protocol executes (DBD::MariaDB server-side prepare) carry the prepared
    # text and their bound parameter, and return one row each
    exe = [e for e in evs if e.get("query") == "SELECT name, qty FROM items WHERE id = ?"
           and e.get("path") == "hbtest.items"]
    assert len(exe) == 2, exe
    assert sorted(str(e.get("params")) for e in exe) == ["['1']", "['2']"]
    assert all(e["mysql.num_rows"] == 1 for e in exe)


def pgsql_details(evs):
    err = [e for e in evs if e["status"] == "Error"]
    assert len(err) == 1 and err[0]["pgsql.error_code"] == "23505"
    ext = [e for e in evs if e.get("query", "").endswith("WHERE id = $1;")]
    assert len(ext) == 3 and all(e["pgsql.num_rows"] == 1 for e in ext)


def redis_details(evs):
    by_q = {e["query"]: e for e in evs}
    assert by_q["GET list1"]["redis.error"].startswith("WRONGTYPE ")
    assert by_q["LRANGE list1 0 -1"]["redis.return_value"] == "[c, b, a]"
    assert by_q["HELLO 3"]["status"] == "OK"
    assert by_q["HGETALL hash1"]["status"] == "OK"


def memcache_details(evs):
    mget = [e for e in evs if e["memcache.request.keys"] == ["k1", "k2", "k3"]]
    assert len(mget) == 1 and mget[0]["memcache.response.count_values"] == 2
    assert sorted(e["memcache.request.opaque"] for e in evs
                  if e["memcache.protocol_type"] == "binary") == list(range(4097, 4103))


def thrift_details(evs):
    exc = [e for e in evs if e["status"] == "Error"]
    assert len(exc) == 4
    assert all(e["thrift.exceptions"] == '(1: (1: 4, 2: "Cannot divide by 0"))' for e in exc)
    zips = [e for e in evs if e["method"] == "zip"]
    assert len(zips) == 4 and all("thrift.return_value" not in e for e in zips)


def mongodb_details(evs):
    err = {e["method"] for e in evs if e["status"] == "Error"}
    assert err == {"find", "insert", "frobnicate"}


DETAILS = {"mysql": mysql_details, "pgsql": pgsql_details, "redis": redis_details,
           "memcache": memcache_details, "thrift": thrift_details,
           "mongodb": mongodb_details}

# -E overrides per recording (golden.yml: 2 memcache, 3 mysql, 4 pgsql, 5 redis,
# 6 thrift, 7 mongodb); the thrift service listens on four ports (binary/compact x
# buffered/framed, detected per connection)
OVERRIDES = {"thrift": ["packetbeat.protocols.6.ports=[9090, 9091, 9092, 9093]"]}

CASES = [("docker0_" + p, os.path.join(RECORDED, "docker0_%s.pcap" % p), OVERRIDES.get(p, []),
          ledger_check(p, DETAILS[p])) for p in PROTOS]


@pytest.mark.parametrize("name,pcap,overrides,check", CASES, ids=[c[0] for c in CASES])
def test_golden_recorded(name, pcap, overrides, check):
    run_case(name, pcap, overrides, check)
