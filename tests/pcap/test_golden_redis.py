"""Golden pcap replay tests for the Redis parser (net/proto/redis.c).

Packetbeat's assertions for its captures (../shared/docs/reference/packetbeat.md §5.4,
system test test_0013_redis_basic), then an exact diff against
tests/pcap/expected/redis_*.ndjson (GOLDEN_UPDATE=1 rewrites them).
Packetbeat's redis captures use port 6380, not the default 6379.
"""

import pytest

from hbreplay import flatten, of_type, run_case, shared

REDIS_6380 = ["packetbeat.protocols.5.ports=[6380]"]


def check_redis_session(ev):
    got = [flatten(e) for e in of_type(ev, "redis")]
    assert len(ev) == len(got) == 11
    for e in got:
        assert e["type"] == "redis"
        assert e["event.dataset"] == "redis"
        assert isinstance(e["source.bytes"], int) and e["source.bytes"] > 0
        assert isinstance(e["destination.bytes"], int) and e["destination.bytes"] > 0
    e = got[0]
    assert e["method"] == "SET"
    assert e["resource"] == "key3"
    assert e["query"] == "set key3 me"
    assert e["status"] == "OK"
    assert e["redis.return_value"] == "OK"
    e = got[1]
    assert e["method"] == "GET"
    assert e["query"] == "get key3"
    assert e["status"] == "OK"
    assert e["redis.return_value"] == "me"
    e = got[2]
    assert e["method"] == "LLEN"
    assert e["status"] == "Error"
    assert e["redis.error"] == "ERR Operation against a key holding the wrong kind of value"
    assert "redis.return_value" not in e
    for e in got[3:]:
        assert e["status"] == "OK"
        assert "redis.return_value" in e
    # the rest of the session, as Packetbeat renders it
    assert [(e["query"], e["redis.return_value"]) for e in got[3:]] == [
        ("lpush test hello", "1"), ("lpush test hello1", "2"), ("lpush test hello2", "3"),
        ("llen test", "3"), ("lindex test 2", "hello"), ("lindex test 3", "nil"),
        ("lindex test 1", "hello1"), ("lindex test 0", "hello2")]
    # source.bytes/destination.bytes are the RESP bytes of the command / reply
    assert (got[0]["source.bytes"], got[0]["destination.bytes"]) == (31, 5)
    assert (got[2]["source.bytes"], got[2]["destination.bytes"]) == (24, 62)


def check_redis_session_send(ev):
    # send_request/send_response: request = query text, response = reply text
    # (packetbeat.md §2.4; test_0022_redis_send_options does this on
    # redis_one_transaction.pcap, which is not in the shared set).
    got = [flatten(e) for e in of_type(ev, "redis")]
    assert len(got) == 11
    for e in got:
        assert e["request"] == e["query"]
    assert got[0]["response"] == "OK"
    assert got[2]["response"] == "ERR Operation against a key holding the wrong kind of value"
    assert got[8]["response"] == "nil"


def check_redis_default_port(ev):
    # Without the port override the capture's port 6380 is not followed at all.
    assert of_type(ev, "redis") == []


CASES = [
    ("redis_session", shared("redis_session.pcap"), REDIS_6380, check_redis_session),
    ("redis_session_send", shared("redis_session.pcap"),
     REDIS_6380 + ["packetbeat.protocols.5.send_request=true",
                   "packetbeat.protocols.5.send_response=true"], check_redis_session_send),
    ("redis_default_port", shared("redis_session.pcap"), [], check_redis_default_port),
]


@pytest.mark.parametrize("name,pcap,overrides,check", CASES, ids=[c[0] for c in CASES])
def test_golden_redis(name, pcap, overrides, check):
    run_case(name, pcap, overrides, check)
