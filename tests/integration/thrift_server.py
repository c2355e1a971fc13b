#!/usr/bin/python3
"""A small Thrift RPC service for hostbeat's live tests (python3-thrift, no generated code).

    thrift_server.py --host IP --ports "9090:binary:buffered 9091:binary:framed ..."

Service "Calculator" (what `thrift --gen py` would produce from this IDL, written by hand
with the library's TProtocol calls):

    exception InvalidOperation { 1: i32 whatOp, 2: string why }
    service Calculator {
        void   ping(),
        i32    add(1: i32 num1, 2: i32 num2),
        string echo_string(1: string s),
        i32    divide(1: i32 num1, 2: i32 num2) throws (1: InvalidOperation ouch),
        oneway void zip()
    }

One listener per "port:protocol:transport" (protocol binary|compact, transport
buffered|framed), each a TThreadedServer.  The client side (CalculatorClient) is here too
and is used by thrift_client.py.
"""

from __future__ import annotations

import argparse
import sys
import threading

from thrift.protocol import TBinaryProtocol, TCompactProtocol
from thrift.server import TServer
from thrift.Thrift import TApplicationException, TException, TMessageType, TType
from thrift.transport import TSocket, TTransport

SERVICE = "Calculator"
PROTOCOLS = {"binary": TBinaryProtocol.TBinaryProtocolFactory,
             "compact": TCompactProtocol.TCompactProtocolFactory}
TRANSPORTS = {"buffered": TTransport.TBufferedTransportFactory,
              "framed": TTransport.TFramedTransportFactory}


class InvalidOperation(TException):
    def __init__(self, what_op=0, why=""):
        super().__init__(why)
        self.what_op = what_op
        self.why = why

    def write(self, oprot):
        oprot.writeStructBegin("InvalidOperation")
        oprot.writeFieldBegin("whatOp", TType.I32, 1)
        oprot.writeI32(self.what_op)
        oprot.writeFieldEnd()
        oprot.writeFieldBegin("why", TType.STRING, 2)
        oprot.writeString(self.why)
        oprot.writeFieldEnd()
        oprot.writeFieldStop()
        oprot.writeStructEnd()

    @classmethod
    def read(cls, iprot):
        ex = cls()
        iprot.readStructBegin()
        while True:
            _, ftype, fid = iprot.readFieldBegin()
            if ftype == TType.STOP:
                break
            if fid == 1 and ftype == TType.I32:
                ex.what_op = iprot.readI32()
            elif fid == 2 and ftype == TType.STRING:
                ex.why = iprot.readString()
            else:
                iprot.skip(ftype)
            iprot.readFieldEnd()
        iprot.readStructEnd()
        return ex


# argument / result layouts: method -> ([(id, name, ttype)], result ttype or None)
METHODS = {
    "ping": ([], TType.VOID),
    "add": ([(1, "num1", TType.I32), (2, "num2", TType.I32)], TType.I32),
    "echo_string": ([(1, "s", TType.STRING)], TType.STRING),
    "divide": ([(1, "num1", TType.I32), (2, "num2", TType.I32)], TType.I32),
    "zip": ([], None),  # oneway
}
_WRITE = {TType.I32: "writeI32", TType.STRING: "writeString"}
_READ = {TType.I32: "readI32", TType.STRING: "readString"}


def write_struct(oprot, name, fields):
    """fields: [(id, name, ttype, value)]; value None = absent."""
    oprot.writeStructBegin(name)
    for fid, fname, ftype, value in fields:
        if value is None:
            continue
        oprot.writeFieldBegin(fname, ftype, fid)
        if ftype == TType.STRUCT:
            value.write(oprot)
        else:
            getattr(oprot, _WRITE[ftype])(value)
        oprot.writeFieldEnd()
    oprot.writeFieldStop()
    oprot.writeStructEnd()


def read_struct(iprot, layout):
    """layout: {id: (ttype, reader or None)} -> {id: value}; unknown fields skipped."""
    out = {}
    iprot.readStructBegin()
    while True:
        _, ftype, fid = iprot.readFieldBegin()
        if ftype == TType.STOP:
            break
        want = layout.get(fid)
        if want and want[0] == ftype:
            out[fid] = want[1](iprot) if want[1] else getattr(iprot, _READ[ftype])()
        else:
            iprot.skip(ftype)
        iprot.readFieldEnd()
    iprot.readStructEnd()
    return out


class Handler:
    def ping(self):
        return None

    def add(self, num1, num2):
        return num1 + num2

    def echo_string(self, s):
        return s

    def divide(self, num1, num2):
        if num2 == 0:
            raise InvalidOperation(4, "Cannot divide by 0")
        return num1 // num2

    def zip(self):
        return None


class Processor:
    """Hand-written TProcessor for Calculator."""

    def __init__(self, handler):
        self.handler = handler

    def on_message_begin(self, func):  # TThreadedServer may call this
        pass

    def process(self, iprot, oprot):
        name, mtype, seqid = iprot.readMessageBegin()
        if name not in METHODS or mtype not in (TMessageType.CALL, TMessageType.ONEWAY):
            iprot.skip(TType.STRUCT)
            iprot.readMessageEnd()
            exc = TApplicationException(TApplicationException.UNKNOWN_METHOD,
                                        "Unknown function %s" % name)
            oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
            exc.write(oprot)
            oprot.writeMessageEnd()
            oprot.trans.flush()
            return True
        params, rtype = METHODS[name]
        args = read_struct(iprot, {fid: (ft, None) for fid, _, ft in params})
        iprot.readMessageEnd()
        values = [args.get(fid) for fid, _, _ in params]
        try:
            result, ouch = getattr(self.handler, name)(*values), None
        except InvalidOperation as e:
            result, ouch = None, e
        if rtype is None:  # oneway: no reply at all
            return True
        oprot.writeMessageBegin(name, TMessageType.REPLY, seqid)
        fields = []
        if rtype != TType.VOID:
            fields.append((0, "success", rtype, result))
        if name == "divide":
            fields.append((1, "ouch", TType.STRUCT, ouch))
        write_struct(oprot, name + "_result", fields)
        oprot.writeMessageEnd()
        oprot.trans.flush()
        return True


class CalculatorClient:
    def __init__(self, iprot, oprot=None):
        self.iprot = iprot
        self.oprot = oprot or iprot
        self.seqid = 0

    def _call(self, name, values):
        params, rtype = METHODS[name]
        self.seqid += 1
        mtype = TMessageType.ONEWAY if rtype is None else TMessageType.CALL
        self.oprot.writeMessageBegin(name, mtype, self.seqid)
        write_struct(self.oprot, name + "_args",
                     [(fid, fname, ft, v) for (fid, fname, ft), v in zip(params, values)])
        self.oprot.writeMessageEnd()
        self.oprot.trans.flush()
        if rtype is None:
            return None
        rname, rmtype, rseqid = self.iprot.readMessageBegin()
        if rmtype == TMessageType.EXCEPTION:
            x = TApplicationException()
            x.read(self.iprot)
            self.iprot.readMessageEnd()
            raise x
        if rname != name or rseqid != self.seqid:
            raise TApplicationException(TApplicationException.BAD_SEQUENCE_ID,
                                        "reply %s/%d for %s/%d" % (rname, rseqid, name,
                                                                   self.seqid))
        layout = {1: (TType.STRUCT, InvalidOperation.read)}
        if rtype != TType.VOID:
            layout[0] = (rtype, None)
        res = read_struct(self.iprot, layout)
        self.iprot.readMessageEnd()
        if 1 in res:
            raise res[1]
        return res.get(0)

    def ping(self):
        return self._call("ping", [])

    def add(self, num1, num2):
        return self._call("add", [num1, num2])

    def echo_string(self, s):
        return self._call("echo_string", [s])

    def divide(self, num1, num2):
        return self._call("divide", [num1, num2])

    def zip(self):
        return self._call("zip", [])


def parse_specs(text):
    specs = []
    for item in text.split():
        port, proto, trans = item.split(":")
        if proto not in PROTOCOLS or trans not in TRANSPORTS:
            raise SystemExit("bad listener spec %r" % item)
        specs.append((int(port), proto, trans))
    return specs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", required=True, help="address to listen on (never 0.0.0.0)")
    ap.add_argument("--ports", required=True, help='"PORT:binary|compact:buffered|framed ..."')
    args = ap.parse_args(argv)
    if args.host in ("0.0.0.0", "", "::"):
        raise SystemExit("refusing to listen on a wildcard address")
    listeners = []
    for port, proto, trans in parse_specs(args.ports):
        sock = TSocket.TServerSocket(host=args.host, port=port)
        srv = TServer.TThreadedServer(Processor(Handler()), sock, TRANSPORTS[trans](),
                                      PROTOCOLS[proto](), daemon=True)
        sock.listen()  # all ports listen before we say so
        listeners.append((sock, srv))

    def accept_loop(sock, srv):
        while True:
            client = sock.accept()
            if client:
                threading.Thread(target=srv.handle, args=(client,), daemon=True).start()

    threads = [threading.Thread(target=accept_loop, args=l, daemon=True) for l in listeners]
    for t in threads:
        t.start()
    print("thrift: serving %s on %s" % (args.ports, args.host), flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
