#!/usr/bin/python3
"""Thrift client workload for hostbeat's live tests; prints the ledger.

    thrift_client.py --host SERVER_IP --client-ip CLIENT_IP --ports "9090:binary:buffered ..."

For every listener, one TCP connection that calls, in order:
    ping()  add(1, 1)  echo_string("hello")  divide(10, 2)  divide(1, 0) -> InvalidOperation
    zip()  (oneway; no reply)
and prints one ledger line per call:
    thrift METHOD - OK|Error CLIENT_IP SERVER_IP tcp port=PORT proto=binary|compact transport=buffered|framed
The status is what the client saw (Error = the declared exception came back).  Exit 1 if any
result differs from what the service must return.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from thrift.transport import TSocket, TTransport  # noqa: E402

from thrift_server import PROTOCOLS, CalculatorClient, InvalidOperation, parse_specs  # noqa: E402

GAP = float(os.environ.get("TRAFFIC_GAP", "0.05"))


def run_one(host, client_ip, port, proto, trans):
    sock = TSocket.TSocket(host, port)
    sock.setTimeout(5000)
    transport = (TTransport.TFramedTransport(sock) if trans == "framed"
                 else TTransport.TBufferedTransport(sock))
    prot = PROTOCOLS[proto]().getProtocol(transport)
    client = CalculatorClient(prot)
    transport.open()
    tag = "port=%d proto=%s transport=%s" % (port, proto, trans)
    bad = []

    def line(method, status):
        print("thrift %s - %s %s %s tcp %s" % (method, status, client_ip, host, tag), flush=True)
        time.sleep(GAP)

    try:
        client.ping()
        line("ping", "OK")
        got = client.add(1, 1)
        line("add", "OK")
        if got != 2:
            bad.append("add(1,1)=%r" % got)
        got = client.echo_string("hello")
        line("echo_string", "OK")
        if got != "hello":
            bad.append("echo_string=%r" % got)
        got = client.divide(10, 2)
        line("divide", "OK")
        if got != 5:
            bad.append("divide(10,2)=%r" % got)
        try:
            got = client.divide(1, 0)
            line("divide", "OK")
            bad.append("divide(1,0) returned %r" % got)
        except InvalidOperation as e:
            line("divide", "Error")
            if e.what_op != 4:
                bad.append("InvalidOperation.whatOp=%r" % e.what_op)
        client.zip()
        line("zip", "OK")
    finally:
        transport.close()
    for b in bad:
        print("thrift_client: %s: %s" % (tag, b), file=sys.stderr)
    return not bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True)
    ap.add_argument("--client-ip", required=True)
    ap.add_argument("--ports", required=True)
    args = ap.parse_args(argv)
    ok = True
    for port, proto, trans in parse_specs(args.ports):
        ok &= run_one(args.host, args.client_ip, port, proto, trans)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
