"""Golden pcap replay tests for the MySQL parser (net/proto/mysql.c).

Each case checks what Packetbeat's own system tests assert for the capture
(../shared/docs/reference/packetbeat.md §5.4, test_0001/0017/0020/0027/0028/0064),
then diffs the whole event contract against tests/pcap/expected/mysql_*.ndjson.
Protocol index 3 in golden.yml is mysql.
"""
import pytest

from hbreplay import flatten, of_type, run_case, shared

P = "packetbeat.protocols.3."


def check_whitespaces(ev):
    # test_0001_mysql_spaces: 7 events (the 5 COM_PINGs are not published by default,
    # as in Packetbeat), all on port 3306.
    objs = [flatten(e) for e in of_type(ev, "mysql")]
    assert len(objs) == 7
    assert all(o["server.port"] == 3306 for o in objs)
    assert objs[0]["method"] == "SET" and objs[0]["status"] == "OK"
    assert objs[2]["method"] == "DROP" and objs[2]["status"] == "OK"
    assert objs[3]["method"] == "CREATE" and objs[3]["status"] == "OK"
    assert objs[5]["method"] == "SELECT"
    assert objs[5]["path"] == "test.test"
    assert objs[5]["status"] == "OK"
    assert objs[5]["destination.bytes"] == 118
    assert all("source.bytes" in o and "destination.bytes" in o for o in objs)
    # Packetbeat trims the query; the comments-aware verb is the first word
    assert objs[2]["query"] == "drop \n    table \n        if exists  test"


def long_result(rows, length):
    def check(ev):
        objs = [flatten(e) for e in of_type(ev, "mysql")]
        assert len(objs) == 1
        res = objs[0]
        assert res["mysql.num_rows"] == 15
        lines = res["response"].strip().split("\n")
        assert len(lines) == rows + 1  # rows plus the header
        for line in lines[3:]:
            assert len(line) == length
    return check


def check_long_result_no_send(ev):
    # request / response only with the send options
    objs = [flatten(e) for e in of_type(ev, "mysql")]
    assert len(objs) == 1
    assert "response" not in objs[0] and "request" not in objs[0]
    assert objs[0]["mysql.num_rows"] == 15


def check_affected_rows(ev):
    objs = [flatten(e) for e in of_type(ev, "mysql")]
    assert len(objs) == 1
    assert objs[0]["method"] == "UPDATE"
    assert objs[0]["mysql.affected_rows"] == 316
    assert objs[0]["status"] == "OK"


def check_err_database(ev):
    objs = [flatten(e) for e in of_type(ev, "mysql")]
    assert len(objs) == 1
    assert objs[0]["method"] == "SELECT"
    assert objs[0]["status"] == "Error"
    assert objs[0]["mysql.error_code"] == 1046
    assert objs[0]["mysql.error_message"] == "3D000: No database selected"


def check_prepare(ev):
    # test_0064_mysql_prepare_statement (port 3307): the PREPARE and the EXECUTE.
    # Deviation: Packetbeat replaces the PREPARE's query with "Request Prepare
    # Statement" and puts the SQL into error.message; we keep the SQL as query.
    objs = [flatten(e) for e in of_type(ev, "mysql")]
    assert len(objs) == 2
    assert all(o["server.port"] == 3307 for o in objs)
    assert objs[1]["method"] == "SELECT"
    assert objs[1]["status"] == "OK"
    assert objs[1]["params"][0] == "A1224638"
    assert objs[1]["params"] == ["A1224638", "2017/7/28 0:0:0", "2017/10/28 23:59:59"]
    assert objs[1]["mysql.num_rows"] == 1
    assert objs[1]["query"] == objs[0]["query"]
    assert all("source.bytes" in o and "destination.bytes" in o for o in objs)


CASES = [
    ("mysql_with_whitespaces", shared("mysql_with_whitespaces.pcap"), [], check_whitespaces),
    ("mysql_long_result", shared("mysql_long_result.pcap"), [P + "send_response=true"],
     long_result(10, 261)),
    ("mysql_long_result_row_length", shared("mysql_long_result.pcap"),
     [P + "send_response=true", P + "max_row_length=79"], long_result(10, 81)),
    ("mysql_long_result_max_rows", shared("mysql_long_result.pcap"),
     [P + "send_response=true", P + "max_row_length=79", P + "max_rows=5"],
     long_result(5, 81)),
    ("mysql_long_result_larger_max_rows", shared("mysql_long_result.pcap"),
     [P + "send_response=true", P + "send_request=true", P + "max_rows=2000"],
     long_result(15, 261)),
    ("mysql_long_result_no_send", shared("mysql_long_result.pcap"), [],
     check_long_result_no_send),
    ("mysql_affected_rows", shared("mysql_affected_rows.pcap"), [], check_affected_rows),
    ("mysql_err_database_not_selected", shared("mysql_err_database_not_selected.pcap"), [],
     check_err_database),
    ("mysql_prepare_statement", shared("mysql_prepare_statement.pcap"), [], check_prepare),
    ("mysql_prepare_statement_send", shared("mysql_prepare_statement.pcap"),
     [P + "send_request=true", P + "send_response=true"], check_prepare),
]


@pytest.mark.parametrize("name,pcap,overrides,check", CASES, ids=[c[0] for c in CASES])
def test_golden_mysql(name, pcap, overrides, check):
    run_case(name, pcap, overrides, check)
