"""Golden replay of Packetbeat's memcache captures (packetbeat.md §5.4, Memcache rows).

Each check encodes the assertions of Packetbeat's test_0040_memcache_tcp_{bin,text}_basic.py
and test_0041_memcache_udp_{bin,text}_basic.py for that capture, in 8.x field names
(legacy `client_ip`/`ip`/`port`/`transport` → client.ip/server.ip/server.port/
network.transport). Captures of those tests that are not in ../shared/pcaps/beats
(counter_ops over TCP, bin_tcp_stats, udp multi_store binary) are skipped by run_case.
Then the whole event contract is diffed against tests/pcap/expected/memcache_*.ndjson.
"""

import pytest

from hbreplay import flatten, of_type, run_case, shared


def mc(ev):
    return [flatten(e) for e in of_type(ev, "memcache")]


def common(objs, transport, ptype):
    assert objs, "no memcache events"
    for o in objs:
        assert o["client.ip"] == "192.168.188.37"
        assert o["server.ip"] == "192.168.188.38"
        assert o["server.port"] == 11211
        assert o["type"] == "memcache"
        assert o["network.transport"] == transport
        assert o["memcache.protocol_type"] == ptype


# ---- binary over TCP (test_0040_memcache_tcp_bin_basic.py) -------------------------

def check_bin_tcp_single_load_store(ev):
    objs = mc(ev)
    common(objs, "tcp", "binary")
    assert all(o["status"] == "OK" for o in objs)
    s = objs[0]
    assert s["memcache.request.opcode"] == "Set"
    assert s["memcache.request.command"] == "set"
    assert s["memcache.request.type"] == "Store"
    assert s["memcache.request.keys"] == ["test_key"]
    assert s["memcache.request.exptime"] == 0
    assert s["memcache.request.bytes"] == 2046
    assert s["memcache.request.count_values"] == 1
    assert s["memcache.response.opcode"] == "Set"
    assert s["memcache.response.status"] == "Success"
    assert "memcache.response.cas_unique" in s
    assert s["memcache.request.opaque"] == s["memcache.response.opaque"]
    g = objs[1]
    assert g["memcache.request.opcode"] == "GetK"
    assert g["memcache.request.command"] == "get"
    assert g["memcache.request.keys"] == ["test_key"]
    assert g["memcache.request.type"] == "Load"
    assert g["memcache.response.type"] == "Load"
    assert g["memcache.response.count_values"] == 1
    assert g["memcache.response.bytes"] == 2046
    assert g["memcache.response.keys"] == ["test_key"]
    assert "memcache.response.cas_unique" in g
    assert g["memcache.request.opaque"] == g["memcache.response.opaque"]


def check_bin_tcp_multi_store_load(ev):
    objs = mc(ev)
    common(objs, "tcp", "binary")
    assert all(o["status"] == "OK" for o in objs)
    sets = {o["memcache.request.keys"][0]: o for o in objs[0:3]}
    assert sorted(sets) == ["k1", "k2", "k3"]
    assert sets["k1"]["memcache.request.bytes"] == 100
    assert sets["k2"]["memcache.request.bytes"] == 20
    assert sets["k3"]["memcache.request.bytes"] == 10
    for o in sets.values():
        assert o["memcache.request.opcode"] == "Set"
        assert "memcache.response.cas_unique" in o
        assert o["memcache.response.status"] == "Success"
        assert o["memcache.request.opaque"] == o["memcache.response.opaque"]
    gets = {o["memcache.request.keys"][0]: o for o in objs[3:8]}
    assert sorted(gets) == ["k1", "k2", "k3", "x", "y"]
    for o in gets.values():
        assert o["memcache.request.opcode"] == "GetKQ"
        assert o["memcache.request.command"] == "get"
        assert o["memcache.request.quiet"] is True
    assert "memcache.response.opcode" not in gets["x"]
    assert "memcache.response.opcode" not in gets["y"]
    for k in ("k1", "k2", "k3"):
        o = gets[k]
        assert "memcache.response.cas_unique" in o
        assert o["memcache.response.status"] == "Success"
        assert o["memcache.request.opaque"] == o["memcache.response.opaque"]
    noop = objs[8]
    assert noop["memcache.request.command"] == "noop"
    assert noop["memcache.request.opaque"] == noop["memcache.response.opaque"]


def check_bin_tcp_delete(ev):
    objs = mc(ev)
    common(objs, "tcp", "binary")
    assert len(objs) == 4
    st, delete, get, _ = objs
    assert st["status"] == "OK"
    assert st["memcache.request.opcode"] == "Set"
    assert st["memcache.request.command"] == "set"
    assert st["memcache.request.type"] == "Store"
    assert st["memcache.request.keys"] == ["key"]
    assert st["memcache.request.opaque"] == st["memcache.response.opaque"]
    assert delete["status"] == "OK"
    assert delete["memcache.request.opcode"] == "Delete"
    assert delete["memcache.request.command"] == "delete"
    assert delete["memcache.request.type"] == "Delete"
    assert delete["memcache.request.keys"] == ["key"]
    assert delete["memcache.response.status"] == "Success"
    # get of the deleted key: binary status 1 (Key not found) → Error
    assert get["status"] == "Error"
    assert get["memcache.request.command"] == "get"
    assert get["memcache.request.type"] == "Load"
    assert get["memcache.request.keys"] == ["key"]


# ---- text over TCP (test_0040_memcache_tcp_text_basic.py) ----------------------------

def check_text_tcp_single_load_store(ev):
    objs = mc(ev)
    common(objs, "tcp", "text")
    assert all(o["status"] == "OK" for o in objs)
    s = objs[0]
    assert s["memcache.request.command"] == "set"
    assert s["memcache.request.type"] == "Store"
    assert s["memcache.request.keys"] == ["test_key"]
    assert s["memcache.request.exptime"] == 0
    assert s["memcache.request.bytes"] == 2046
    assert s["memcache.request.count_values"] == 1
    assert s["memcache.request.noreply"] is False
    assert s["memcache.response.type"] == "Success"
    g = objs[1]
    assert g["memcache.request.command"] == "get"
    assert g["memcache.request.keys"] == ["test_key"]
    assert g["memcache.request.type"] == "Load"
    assert g["memcache.response.type"] == "Load"
    assert g["memcache.response.count_values"] == 1
    assert g["memcache.response.keys"] == ["test_key"]


def check_text_tcp_multi_store_load(ev):
    objs = mc(ev)
    common(objs, "tcp", "text")
    assert all(o["status"] == "OK" for o in objs)
    sets = {o["memcache.request.keys"][0]: o for o in objs[0:3]}
    assert sorted(sets) == ["k1", "k2", "k3"]
    assert sets["k1"]["memcache.request.bytes"] == 100
    assert sets["k2"]["memcache.request.bytes"] == 20
    assert sets["k3"]["memcache.request.bytes"] == 10
    assert all(o["memcache.response.type"] == "Success" for o in sets.values())
    g = objs[3]
    assert g["memcache.request.keys"] == ["x", "k1", "k2", "k3", "y"]
    assert g["memcache.response.keys"] == ["k1", "k2", "k3"]
    assert g["memcache.response.bytes"] == 130
    assert g["memcache.response.count_values"] == 3


def check_text_tcp_delete(ev):
    objs = mc(ev)
    common(objs, "tcp", "text")
    assert all(o["status"] == "OK" for o in objs)
    assert len(objs) == 4
    st, delete, get, _ = objs
    assert st["memcache.request.command"] == "set"
    assert st["memcache.request.type"] == "Store"
    assert st["memcache.request.keys"] == ["key"]
    assert delete["memcache.request.command"] == "delete"
    assert delete["memcache.request.type"] == "Delete"
    assert delete["memcache.request.keys"] == ["key"]
    assert delete["memcache.response.type"] == "Success"
    assert get["memcache.request.command"] == "get"
    assert get["memcache.request.type"] == "Load"
    assert get["memcache.request.keys"] == ["key"]
    assert get["memcache.response.command"] == "END"


def check_text_tcp_stats(ev):
    objs = mc(ev)
    common(objs, "tcp", "text")
    assert all(o["status"] == "OK" for o in objs)
    t = objs[2]
    assert t["memcache.request.command"] == "stats"
    assert "memcache.request.raw_args" in t
    assert t["memcache.request.type"] == "Stats"
    assert t["memcache.response.command"] == "STAT"
    assert t["memcache.response.type"] == "Stats"
    entries = t["memcache.response.stats"]
    assert entries and all(e["name"] and e["value"] for e in entries)


# ---- UDP (test_0041_memcache_udp_{bin,text}_basic.py) ---------------------------------
# Packetbeat publishes the quiet/noreply requests when udptransactiontimeout fires; we
# publish noreply at once and quiet ones at expiry (end of capture) — same events.

def check_bin_udp_single_store(ev):
    objs = mc(ev)
    common(objs, "udp", "binary")
    assert all(o["status"] == "OK" for o in objs)
    assert len(objs) == 1
    s = objs[0]
    assert s["memcache.request.opcode"] == "SetQ"
    assert s["memcache.request.command"] == "set"
    assert s["memcache.request.type"] == "Store"
    assert s["memcache.request.keys"] == ["test_key"]
    assert s["memcache.request.exptime"] == 0
    assert s["memcache.request.bytes"] == 1024
    assert s["memcache.request.count_values"] == 1
    assert s["memcache.request.quiet"] is True


def check_bin_udp_delete(ev):
    objs = mc(ev)
    common(objs, "udp", "binary")
    assert all(o["status"] == "OK" for o in objs)
    assert len(objs) == 2
    delete, st = sorted(objs, key=lambda x: x["memcache.request.command"])
    assert st["memcache.request.opcode"] == "SetQ"
    assert st["memcache.request.command"] == "set"
    assert st["memcache.request.type"] == "Store"
    assert st["memcache.request.keys"] == ["key"]
    assert st["memcache.request.quiet"] is True
    assert delete["memcache.request.opcode"] == "DeleteQ"
    assert delete["memcache.request.command"] == "delete"
    assert delete["memcache.request.type"] == "Delete"
    assert delete["memcache.request.keys"] == ["key"]
    assert delete["memcache.request.quiet"] is True


def check_bin_udp_counter_ops(ev):
    objs = mc(ev)
    common(objs, "udp", "binary")
    assert all(o["status"] == "OK" for o in objs)
    assert len(objs) == 3
    dec, inc, st = sorted(objs, key=lambda x: x["memcache.request.command"])
    assert st["memcache.request.opcode"] == "SetQ"
    assert st["memcache.request.command"] == "set"
    assert st["memcache.request.type"] == "Store"
    assert st["memcache.request.keys"] == ["cnt"]
    assert st["memcache.request.quiet"] is True
    assert inc["memcache.request.opcode"] == "IncrementQ"
    assert inc["memcache.request.command"] == "incr"
    assert inc["memcache.request.delta"] == 2
    assert inc["memcache.request.keys"] == ["cnt"]
    assert inc["memcache.request.quiet"] is True
    assert dec["memcache.request.opcode"] == "DecrementQ"
    assert dec["memcache.request.command"] == "decr"
    assert dec["memcache.request.delta"] == 5
    assert dec["memcache.request.keys"] == ["cnt"]
    assert dec["memcache.request.quiet"] is True


def check_text_udp_single_store(ev):
    objs = mc(ev)
    common(objs, "udp", "text")
    assert all(o["status"] == "OK" for o in objs)
    assert len(objs) == 1
    s = objs[0]
    assert s["memcache.request.command"] == "set"
    assert s["memcache.request.type"] == "Store"
    assert s["memcache.request.keys"] == ["test_key"]
    assert s["memcache.request.exptime"] == 0
    assert s["memcache.request.bytes"] == 1024
    assert s["memcache.request.count_values"] == 1
    assert s["memcache.request.noreply"] is True


def check_text_udp_multi_store(ev):
    objs = mc(ev)
    common(objs, "udp", "text")
    assert all(o["status"] == "OK" for o in objs)
    assert len(objs) == 3
    sets = {o["memcache.request.keys"][0]: o for o in objs[0:3]}
    assert sorted(sets) == ["k1", "k2", "k3"]
    assert sets["k1"]["memcache.request.bytes"] == 100
    assert sets["k2"]["memcache.request.bytes"] == 20
    assert sets["k3"]["memcache.request.bytes"] == 10
    assert all(o["memcache.request.noreply"] is True for o in sets.values())


def check_text_udp_counter_ops(ev):
    objs = mc(ev)
    common(objs, "udp", "text")
    assert all(o["status"] == "OK" for o in objs)
    assert len(objs) == 3
    dec, inc, st = sorted(objs, key=lambda x: x["memcache.request.command"])
    assert st["memcache.request.command"] == "set"
    assert st["memcache.request.type"] == "Store"
    assert st["memcache.request.keys"] == ["cnt"]
    assert st["memcache.request.noreply"] is True
    assert inc["memcache.request.command"] == "incr"
    assert inc["memcache.request.delta"] == 2
    assert inc["memcache.request.keys"] == ["cnt"]
    assert inc["memcache.request.noreply"] is True
    assert dec["memcache.request.command"] == "decr"
    assert dec["memcache.request.delta"] == 5
    assert dec["memcache.request.keys"] == ["cnt"]
    assert dec["memcache.request.noreply"] is True


def check_send_options(ev):
    objs = mc(ev)
    g = objs[3]
    assert g["request"] == "get x k1 k2 k3 y"
    assert g["response"].startswith("VALUE k1 0 100\r\nVALUE k2 0 20\r\n")
    assert g["response"].endswith("END\r\n")
    assert "aaaa" not in g["response"]  # values are never exported


def p(name):
    return shared("memcache/" + name + ".pcap")


# name, capture, -E overrides, Packetbeat assertion
CASES = [
    ("memcache_bin_tcp_single_load_store", p("memcache_bin_tcp_single_load_store"), [],
     check_bin_tcp_single_load_store),
    ("memcache_bin_tcp_multi_store_load", p("memcache_bin_tcp_multi_store_load"), [],
     check_bin_tcp_multi_store_load),
    ("memcache_bin_tcp_delete", p("memcache_bin_tcp_delete"), [], check_bin_tcp_delete),
    ("memcache_text_tcp_single_load_store", p("memcache_text_tcp_single_load_store"), [],
     check_text_tcp_single_load_store),
    ("memcache_text_tcp_multi_store_load", p("memcache_text_tcp_multi_store_load"), [],
     check_text_tcp_multi_store_load),
    ("memcache_text_tcp_delete", p("memcache_text_tcp_delete"), [], check_text_tcp_delete),
    ("memcache_text_tcp_stats", p("memcache_text_tcp_stats"), [], check_text_tcp_stats),
    ("memcache_bin_udp_single_store", p("memcache_bin_udp_single_store"), [],
     check_bin_udp_single_store),
    ("memcache_bin_udp_delete", p("memcache_bin_udp_delete"), [], check_bin_udp_delete),
    ("memcache_bin_udp_counter_ops", p("memcache_bin_udp_counter_ops"), [],
     check_bin_udp_counter_ops),
    ("memcache_text_udp_single_store", p("memcache_text_udp_single_store"), [],
     check_text_udp_single_store),
    ("memcache_text_udp_multi_store", p("memcache_text_udp_multi_store"), [],
     check_text_udp_multi_store),
    ("memcache_text_udp_counter_ops", p("memcache_text_udp_counter_ops"), [],
     check_text_udp_counter_ops),
    ("memcache_text_tcp_send_options", p("memcache_text_tcp_multi_store_load"),
     ["packetbeat.protocols.2.send_request=true", "packetbeat.protocols.2.send_response=true"],
     check_send_options),
    # Captures of Packetbeat's tests that are not in ../shared/pcaps/beats: run_case skips.
    ("memcache_bin_tcp_counter_ops", p("memcache_bin_tcp_counter_ops"), [], None),
    ("memcache_bin_tcp_stats", p("memcache_bin_tcp_stats"), [], None),
    ("memcache_text_tcp_counter_ops", p("memcache_text_tcp_counter_ops"), [], None),
    ("memcache_bin_udp_multi_store", p("memcache_bin_udp_multi_store"), [], None),
]


@pytest.mark.parametrize("name,pcap,overrides,check", CASES, ids=[c[0] for c in CASES])
def test_golden_memcache(name, pcap, overrides, check):
    run_case(name, pcap, overrides, check)
