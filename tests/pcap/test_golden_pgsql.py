"""Golden pcap replay tests for the PostgreSQL parser (net/proto/pgsql.c).

Packetbeat's own assertions for its pgsql captures (packetbeat.md §5.4, system test
0009_pgsql) are encoded exactly; then the whole event contract is diffed against
tests/pcap/expected/pgsql_*.ndjson. golden.yml has pgsql at protocol index 4.
"""
import os

import pytest

from hbreplay import of_type, one, run_case, run_replay, shared

SEND = ["packetbeat.protocols.4.send_request=true", "packetbeat.protocols.4.send_response=true"]


def check_request_response(ev):
    e = one(ev, "pgsql")
    assert e["method"] == "SELECT"
    assert e["query"] == "select * from test"
    assert e["request"] == "select * from test"
    assert e["response"] == ("a,b,c\nmea,meb,mec\nmea1,meb1,mec1\nmea2,meb2,mec2\n"
                             "mea3,meb3,mec3\n")
    assert e["destination.bytes"] == 202  # legacy bytes_out: RowDescription..CommandComplete
    assert e["source.bytes"] == 25
    assert e["status"] == "OK"
    assert e["pgsql.num_rows"] == 4
    assert e["pgsql.num_fields"] == 3
    assert e["server.port"] == 5432
    assert e["network.protocol"] == "pgsql"


def check_insert(ev):
    e = one(ev, "pgsql")
    assert e["method"] == "INSERT"
    assert e["destination.bytes"] == 16
    assert e["source.bytes"] == 63
    assert e["status"] == "OK"
    # Packetbeat reports num_rows 0 here (it counts DataRows only); we take the
    # count from the "INSERT 0 1" command tag, as the issue asks.
    assert e["pgsql.num_rows"] == 1
    assert "request" not in e and "response" not in e


def check_insert_error(ev):
    e = one(ev, "pgsql")
    assert e["method"] == "INSERT"
    assert e["status"] == "Error"
    assert e["pgsql.error_code"] == "23505"  # a string, as Packetbeat 8 asserts
    assert e["pgsql.error_severity"] == "ERROR"
    assert e["pgsql.error_message"] == \
        'duplicate key value violates unique constraint "unique_a"'
    assert "error.message" not in e


def check_tls_session(ev):
    # http_10_connection_close.pcap also holds a psql session on 5432 that answers
    # SSLRequest with 'S': it is TLS from there on, so no pgsql transaction (and no
    # parse error); the session is counted in pgsql.tls_sessions (test below).
    assert of_type(ev, "pgsql") == []


CASES = [
    ("pgsql_request_response", shared("pgsql_request_response.pcap"), SEND,
     check_request_response),
    ("pgsql_insert", shared("pgsql_insert.pcap"), [], check_insert),
    ("pgsql_insert_error", shared("pgsql_insert_error.pcap"), [], check_insert_error),
    ("pgsql_tls_session", shared("http_10_connection_close.pcap"),
     ["packetbeat.protocols.0.enabled=false"], check_tls_session),
]


@pytest.mark.parametrize("name,pcap,overrides,check", CASES, ids=[c[0] for c in CASES])
def test_golden_pgsql(name, pcap, overrides, check):
    run_case(name, pcap, overrides, check)


def test_tls_session_counted():
    pcap = shared("http_10_connection_close.pcap")
    if not os.path.exists(pcap):
        pytest.skip("capture absent: %s" % pcap)
    _, err = run_replay(pcap, ["logging.level=info"])
    assert "pgsql.tls_sessions=1" in err
    assert "pgsql.parse_errors" not in err
