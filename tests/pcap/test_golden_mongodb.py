"""Golden pcap replay tests for the MongoDB parser (net/proto/mongodb.c).

Packetbeat's assertions for its captures (../shared/docs/reference/packetbeat.md §5.4,
system test test_0025_mongodb_basic), then an exact diff against
tests/pcap/expected/mongodb_*.ndjson (GOLDEN_UPDATE=1 rewrites them).

mongodb_{find,inserts,use_db}.pcap were captured on docker0 (172.17.42.1, the old
default gateway, <-> a container 172.17.0.7:27017) with a 2015 shell that sends every
command as an OP_QUERY on "<db>.$cmd"; mongodb_op_msg_opcode.pcap (port 9991) is a
3.6+ replica-set member talking OP_MSG.
"""
import pytest

from hbreplay import flatten, of_type, run_case, shared

SEND = ["packetbeat.protocols.7.send_request=true", "packetbeat.protocols.7.send_response=true"]
PORT_9991 = ["packetbeat.protocols.7.ports=[9991]"]
DOCKER0 = ("172.17.42.1", "172.17.0.7")


def mongo_events(ev):
    got = [flatten(e) for e in of_type(ev, "mongodb")]
    assert len(got) == len(ev), "only mongodb events expected"
    for e in got:
        assert e["event.dataset"] == "mongodb"
        assert e["network.transport"] == "tcp"
        assert isinstance(e["source.bytes"], int) and e["source.bytes"] > 0
    return got


def check_one_row(ev):
    # Packetbeat: 1 event, method=find (test_mongodb_basic_one_row)
    got = mongo_events(ev)
    assert len(got) == 1
    e = got[0]
    assert e["method"] == "find"
    assert e["status"] == "OK"
    assert e["resource"] == "test.restaurants"
    assert e["query"] == "test.restaurants.find().limit(1)"
    assert e["mongodb.numberToReturn"] == 1
    assert e["mongodb.numberReturned"] == 1
    assert "request" not in e and "response" not in e


def check_one_row_send(ev):
    # Packetbeat with send_request/send_response: 1 response line (one document),
    # source.bytes=50, destination.bytes=514 (legacy bytes_in/bytes_out).
    got = mongo_events(ev)
    assert len(got) == 1
    e = got[0]
    assert e["method"] == "find"
    assert len(e["response"].splitlines()) == 1
    assert e["source.bytes"] == 50
    assert e["destination.bytes"] == 514
    assert e["request"] == "test.restaurants.find().limit(1)"  # empty query document
    assert e["response"].startswith('{"_id":"558bebb45f075665d2ae8627","address":')
    assert '"name":"Morris Park Bake Shop"' in e["response"]


def check_docker0(e):
    assert (e["client.ip"], e["server.ip"]) == DOCKER0
    assert e["server.port"] == 27017
    assert e["status"] == "OK"


def check_find(ev):
    got = mongo_events(ev)
    assert [(e["method"], e["resource"]) for e in got] == [
        ("find", "testDB.testCollection"), ("isMaster", "testDB.$cmd")]
    for e in got:
        check_docker0(e)
    e = got[0]
    assert e["mongodb.query"] == '{"testKey":"value1"}'
    assert e["mongodb.numberReturned"] == 1
    assert (e["source.bytes"], e["destination.bytes"]) == (75, 78)


def check_find_send(ev):
    got = mongo_events(ev)
    assert got[0]["request"] == 'testDB.testCollection.find({"testKey":"value1"})'
    assert got[0]["response"] == '{"_id":"554769b19370af252b761fe4","testKey":"value1"}'
    assert got[1]["request"] == 'testDB.$cmd.isMaster({"forShell":1})'


def check_inserts(ev):
    # commands as OP_QUERY on $cmd are reported by command name (packetbeat.md §1.8);
    # `query` drops the inserted documents, `request` keeps them
    got = mongo_events(ev)
    assert [(e["method"], e["resource"]) for e in got] == [
        ("isMaster", "admin.$cmd"), ("insert", "testDB.testCollection"),
        ("isMaster", "testDB.$cmd"), ("insert", "testDB.testCollection"),
        ("isMaster", "testDB.$cmd")]
    for e in got:
        check_docker0(e)
    assert got[1]["query"] == 'testDB.testCollection.insert({"ordered":true})'
    assert got[1]["mongodb.fullCollectionName"] == "testDB.$cmd"


def check_use_db(ev):
    got = mongo_events(ev)
    assert len(got) == 1
    check_docker0(got[0])
    assert got[0]["method"] == "isMaster"
    assert (got[0]["source.bytes"], got[0]["destination.bytes"]) == (81, 194)


def check_op_msg(ev):
    # Packetbeat only asserts that OP_MSG is decoded without an "Unknown operation code"
    # log. It reports each OP_MSG as a lone method "msg" event (no pairing); hostbeat
    # pairs by responseTo and names the command: 202 packets = 101 transactions. The
    # heartbeats are answered ok: 0 ("replica set configuration is invalid"): Error.
    got = mongo_events(ev)
    assert len(got) == 101
    beats = [e for e in got if e["method"] == "replSetHeartbeat"]
    hello = [e for e in got if e["method"] == "ismaster"]
    assert (len(beats), len(hello)) == (78, 23)
    for e in beats:
        assert e["status"] == "Error"
        assert e["mongodb.error"] == ("Our replica set configuration is invalid or does not "
                                      "include us")
        assert e["resource"] == "admin.$cmd"
        assert e["server.port"] == 9991
    for e in hello:
        assert e["status"] == "OK"
        assert e["resource"] == "admin.$cmd"
    for e in got:
        assert "error.message" not in e  # every request was answered
        assert e["destination.bytes"] > 0


def check_op_msg_default_port(ev):
    # on its default port (27017) hostbeat does not see port 9991 traffic at all
    assert of_type(ev, "mongodb") == []


CASES = [
    ("mongodb_one_row", shared("mongo_one_row.pcap"), [], check_one_row),
    ("mongodb_one_row_send", shared("mongo_one_row.pcap"), SEND, check_one_row_send),
    ("mongodb_find", shared("mongodb_find.pcap"), [], check_find),
    ("mongodb_find_send", shared("mongodb_find.pcap"), SEND, check_find_send),
    ("mongodb_inserts", shared("mongodb_inserts.pcap"), [], check_inserts),
    ("mongodb_use_db", shared("mongodb_use_db.pcap"), [], check_use_db),
    ("mongodb_op_msg", shared("mongodb_op_msg_opcode.pcap"), PORT_9991, check_op_msg),
    ("mongodb_op_msg_default_port", shared("mongodb_op_msg_opcode.pcap"), [],
     check_op_msg_default_port),
]


@pytest.mark.parametrize("name,pcap,overrides,check", CASES, ids=[c[0] for c in CASES])
def test_golden_mongodb(name, pcap, overrides, check):
    run_case(name, pcap, overrides, check)
