#!/usr/bin/python3
"""A tiny MongoDB OP_MSG server and client for hostbeat's live tests (stdlib only).

    mongo_wire.py server --host IP --port PORT
    mongo_wire.py client --host IP --port PORT --client-ip CLIENT_IP
    mongo_wire.py selftest                 (server + client on 127.0.0.1, random port)

MongoDB has no Debian package, so the live topology runs this instead of mongod: it
speaks the real wire protocol (https://www.mongodb.com/docs/manual/reference/
mongodb-wire-protocol/, BSON 1.1 https://bsonspec.org/spec.html) — OP_MSG with kind-0
body and kind-1 document sequences, moreToCome (no reply), checksumPresent (CRC-32C).
The server keeps collections in memory and answers hello/isMaster, ping, find (with a
cursor), getMore, insert (duplicate _id -> writeErrors), update, delete, aggregate,
count and anything else with ok: 0 ("no such command").

The client runs a fixed workload over one TCP connection and prints one ledger line
per operation (tests/integration/hbledger.py format):

    mongodb METHOD DB.COLL STATUS CLIENT_IP SERVER_IP tcp

where DB.COLL is what hostbeat reports as `resource` ("admin.$cmd" for commands
without a collection) and STATUS is what the client saw: Error for ok: 0 or
writeErrors, OK otherwise (a moreToCome message has no reply and is OK).  Exit 1 if
a reply differs from what the workload expects.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import os
import socket
import socketserver
import struct
import sys
import threading
import time

OP_MSG = 2013
CHECKSUM_PRESENT = 1
MORE_TO_COME = 2
GAP = float(os.environ.get("TRAFFIC_GAP", "0.05"))


# ---- BSON --------------------------------------------------------------------------

class ObjectId:
    _counter = itertools.count(1)

    def __init__(self, raw=None):
        if raw is None:
            raw = struct.pack(">I", int(time.time())) + os.urandom(5) + \
                struct.pack(">I", next(ObjectId._counter))[1:]
        assert len(raw) == 12
        self.raw = raw

    def __eq__(self, other):
        return isinstance(other, ObjectId) and other.raw == self.raw

    def __hash__(self):
        return hash(self.raw)

    def __repr__(self):
        return "ObjectId(%s)" % self.raw.hex()


class Int64(int):
    """An int always encoded as BSON int64 (cursor ids)."""


class Timestamp:
    def __init__(self, t, i):
        self.t, self.i = t, i


def _cstring(s):
    b = s.encode()
    if b"\x00" in b:
        raise ValueError("NUL in key")
    return b + b"\x00"


def _element(key, v):
    k = _cstring(key)
    if isinstance(v, bool):
        return b"\x08" + k + (b"\x01" if v else b"\x00")
    if isinstance(v, Int64):
        return b"\x12" + k + struct.pack("<q", v)
    if isinstance(v, int):
        if -2**31 <= v < 2**31:
            return b"\x10" + k + struct.pack("<i", v)
        return b"\x12" + k + struct.pack("<q", v)
    if isinstance(v, float):
        return b"\x01" + k + struct.pack("<d", v)
    if isinstance(v, str):
        b = v.encode() + b"\x00"
        return b"\x02" + k + struct.pack("<i", len(b)) + b
    if isinstance(v, dict):
        return b"\x03" + k + encode(v)
    if isinstance(v, (list, tuple)):
        return b"\x04" + k + encode({str(i): x for i, x in enumerate(v)})
    if isinstance(v, (bytes, bytearray)):
        return b"\x05" + k + struct.pack("<i", len(v)) + b"\x00" + bytes(v)
    if isinstance(v, ObjectId):
        return b"\x07" + k + v.raw
    if isinstance(v, datetime.datetime):
        ms = int(v.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
        return b"\x09" + k + struct.pack("<q", ms)
    if v is None:
        return b"\x0a" + k
    if isinstance(v, Timestamp):
        return b"\x11" + k + struct.pack("<II", v.i, v.t)
    raise TypeError("cannot encode %r" % (v,))


def encode(doc):
    body = b"".join(_element(k, v) for k, v in doc.items())
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _read_cstring(b, i):
    j = b.index(b"\x00", i)
    return b[i:j].decode("utf-8", "replace"), j + 1


def decode(b, i=0, as_list=False):
    """Decode the document at b[i:]; returns (value, end offset)."""
    (n,) = struct.unpack_from("<i", b, i)
    if n < 5 or i + n > len(b) or b[i + n - 1] != 0:
        raise ValueError("bad document length")
    end = i + n - 1
    i += 4
    out = {}
    while i < end:
        t = b[i]
        key, i = _read_cstring(b, i + 1)
        if t == 0x01:
            (v,) = struct.unpack_from("<d", b, i); i += 8
        elif t in (0x02, 0x0d, 0x0e):
            (ln,) = struct.unpack_from("<i", b, i)
            v = b[i + 4:i + 4 + ln - 1].decode("utf-8", "replace"); i += 4 + ln
        elif t in (0x03, 0x04):
            v, i = decode(b, i, t == 0x04)
        elif t == 0x05:
            (ln,) = struct.unpack_from("<i", b, i)
            v = bytes(b[i + 5:i + 5 + ln]); i += 5 + ln
        elif t == 0x07:
            v = ObjectId(bytes(b[i:i + 12])); i += 12
        elif t == 0x08:
            v = b[i] == 1; i += 1
        elif t == 0x09:
            (ms,) = struct.unpack_from("<q", b, i); i += 8
            v = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        elif t in (0x06, 0x0a, 0x7f, 0xff):
            v = None
        elif t == 0x10:
            (v,) = struct.unpack_from("<i", b, i); i += 4
        elif t == 0x11:
            inc, sec = struct.unpack_from("<II", b, i); v = Timestamp(sec, inc); i += 8
        elif t == 0x12:
            (v,) = struct.unpack_from("<q", b, i); v = Int64(v); i += 8
        elif t == 0x13:
            v = bytes(b[i:i + 16]); i += 16
        else:
            raise ValueError("BSON type 0x%02x not supported" % t)
        out[key] = v
    if i != end:
        raise ValueError("document overrun")
    if as_list:
        return list(out.values()), end + 1
    return out, end + 1


# ---- CRC-32C (Castagnoli), for checksumPresent --------------------------------------

def _crc32c_table():
    tab = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        tab.append(c)
    return tab


_CRC_TAB = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for byte in data:
        c = _CRC_TAB[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# ---- OP_MSG framing -------------------------------------------------------------------

def op_msg(request_id, response_to, body, sequences=(), flags=0):
    """sequences: [(identifier, [docs])] sent as kind-1 sections before the body."""
    payload = struct.pack("<I", flags)
    for ident, docs in sequences:
        blob = _cstring(ident) + b"".join(encode(d) for d in docs)
        payload += b"\x01" + struct.pack("<i", len(blob) + 4) + blob
    payload += b"\x00" + encode(body)
    length = 16 + len(payload) + (4 if flags & CHECKSUM_PRESENT else 0)
    msg = struct.pack("<iiii", length, request_id, response_to, OP_MSG) + payload
    if flags & CHECKSUM_PRESENT:
        msg += struct.pack("<I", crc32c(msg))
    return msg


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    return bytes(buf)


def read_msg(sock, max_len=48000000):
    """Returns (request_id, response_to, flags, body, {identifier: [docs]})."""
    hdr = recv_exact(sock, 16)
    length, rid, rto, op = struct.unpack("<iiii", hdr)
    if length < 21 or length > max_len:
        raise ValueError("bad messageLength %d" % length)
    rest = recv_exact(sock, length - 16)
    if op != OP_MSG:
        raise ValueError("opcode %d not supported" % op)
    (flags,) = struct.unpack_from("<I", rest, 0)
    end = len(rest)
    if flags & CHECKSUM_PRESENT:
        end -= 4
        (want,) = struct.unpack_from("<I", rest, end)
        if crc32c(hdr + rest[:end]) != want:
            raise ValueError("checksum mismatch")
    i, body, seqs = 4, None, {}
    while i < end:
        kind = rest[i]
        i += 1
        if kind == 0:
            body, i = decode(rest, i)
        elif kind == 1:
            (size,) = struct.unpack_from("<i", rest, i)
            stop = i + size
            ident, j = _read_cstring(rest, i + 4)
            docs = []
            while j < stop:
                d, j = decode(rest, j)
                docs.append(d)
            seqs[ident] = docs
            i = stop
        else:
            raise ValueError("section kind %d" % kind)
    if body is None:
        raise ValueError("no body section")
    return rid, rto, flags, body, seqs


# ---- server ---------------------------------------------------------------------------

class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.colls = {}      # "db.coll" -> [docs]
        self.cursors = {}    # id -> (ns, remaining docs)
        self.next_cursor = 1000

    def coll(self, ns):
        return self.colls.setdefault(ns, [])


def _matches(doc, flt):
    for k, v in flt.items():
        if k.startswith("$"):
            raise KeyError("unknown top level operator: %s" % k)
        if doc.get(k) != v:
            return False
    return True


def handle(store, body, seqs):
    """One command -> reply body."""
    cmd = next(iter(body))
    db = body.get("$db", "test")
    now = datetime.datetime.now(datetime.timezone.utc)
    with store.lock:
        if cmd.lower() in ("hello", "ismaster"):
            return {"isWritablePrimary": True, "ismaster": True, "maxBsonObjectSize": 16777216,
                    "maxMessageSizeBytes": 48000000, "maxWriteBatchSize": 100000,
                    "localTime": now, "logicalSessionTimeoutMinutes": 30,
                    "minWireVersion": 0, "maxWireVersion": 17, "readOnly": False, "ok": 1.0}
        if cmd == "ping":
            return {"ok": 1.0}
        ns = "%s.%s" % (db, body.get(cmd) if isinstance(body.get(cmd), str)
                        else body.get("collection", ""))
        if cmd == "insert":
            docs = list(body.get("documents", [])) + seqs.get("documents", [])
            coll, n, errs = store.coll(ns), 0, []
            for i, d in enumerate(docs):
                d.setdefault("_id", ObjectId())
                if any(x.get("_id") == d["_id"] for x in coll):
                    errs.append({"index": i, "code": 11000,
                                 "errmsg": "E11000 duplicate key error collection: %s index: "
                                           "_id_ dup key: { _id: %r }" % (ns, d["_id"])})
                    continue
                coll.append(d)
                n += 1
            reply = {"n": n, "ok": 1.0}
            if errs:
                reply["writeErrors"] = errs
            return reply
        if cmd == "find":
            try:
                hits = [d for d in store.coll(ns) if _matches(d, body.get("filter", {}))]
            except KeyError as e:
                return {"ok": 0.0, "errmsg": str(e).strip("'\""), "code": 2,
                        "codeName": "BadValue"}
            first = int(body.get("batchSize", 101))
            cid = 0
            if len(hits) > first:
                store.next_cursor += 1
                cid = store.next_cursor
                store.cursors[cid] = (ns, hits[first:])
            return {"cursor": {"firstBatch": hits[:first], "id": Int64(cid), "ns": ns},
                    "ok": 1.0}
        if cmd == "getMore":
            cid = int(body["getMore"])
            if cid not in store.cursors:
                return {"ok": 0.0, "errmsg": "cursor id %d not found" % cid, "code": 43,
                        "codeName": "CursorNotFound"}
            cns, rest = store.cursors.pop(cid)
            return {"cursor": {"nextBatch": rest, "id": Int64(0), "ns": cns}, "ok": 1.0}
        if cmd == "update":
            ups = list(body.get("updates", [])) + seqs.get("updates", [])
            n = mod = 0
            for u in ups:
                for d in store.coll(ns):
                    if _matches(d, u.get("q", {})):
                        n += 1
                        d.update(u.get("u", {}).get("$set", {}))
                        mod += 1
            return {"n": n, "nModified": mod, "ok": 1.0}
        if cmd == "delete":
            dels = list(body.get("deletes", [])) + seqs.get("deletes", [])
            coll, n = store.coll(ns), 0
            for dl in dels:
                keep = [d for d in coll if not _matches(d, dl.get("q", {}))]
                n += len(coll) - len(keep)
                coll[:] = keep
            return {"n": n, "ok": 1.0}
        if cmd == "count":
            return {"n": len(store.coll(ns)), "ok": 1.0}
        if cmd == "aggregate":
            docs = store.coll(ns)
            return {"cursor": {"firstBatch": [{"_id": None, "count": len(docs)}],
                               "id": Int64(0), "ns": ns}, "ok": 1.0}
        return {"ok": 0.0, "errmsg": "no such command: '%s'" % cmd, "code": 59,
                "codeName": "CommandNotFound"}


def serve(host, port, ready=None):
    store = Store()
    ids = itertools.count(1)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            while True:
                try:
                    rid, _, flags, body, seqs = read_msg(sock)
                except (EOFError, ConnectionError):
                    return
                except ValueError as e:
                    print("mongo_wire server: %s" % e, file=sys.stderr, flush=True)
                    return
                reply = handle(store, body, seqs)
                if flags & MORE_TO_COME:
                    continue  # the client expects no reply
                sock.sendall(op_msg(next(ids), rid, reply))

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    srv = Server((host, port), Handler)
    if ready is not None:
        ready.append(srv)
    srv.serve_forever()


# ---- client -----------------------------------------------------------------------------

class Client:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.ids = itertools.count(1)

    def call(self, body, sequences=(), flags=0):
        rid = next(self.ids)
        self.sock.sendall(op_msg(rid, 0, body, sequences, flags))
        if flags & MORE_TO_COME:
            return None
        got_rid, rto, _, reply, _ = read_msg(self.sock)
        if rto != rid:
            raise ValueError("reply to %d, expected %d" % (rto, rid))
        return reply

    def close(self):
        self.sock.close()


def status_of(reply):
    if reply is None:
        return "OK"
    if reply.get("ok") in (0, 0.0, False) or reply.get("writeErrors"):
        return "Error"
    return "OK"


def workload(host, port, client_ip):
    """Returns (ledger lines, problems)."""
    c = Client(host, port)
    lines, bad = [], []

    def op(method, resource, body, want, sequences=(), flags=0, check=None):
        reply = c.call(body, sequences, flags)
        st = status_of(reply)
        lines.append("mongodb %s %s %s %s %s tcp" % (method, resource, st, client_ip, host))
        print(lines[-1], flush=True)
        if st != want:
            bad.append("%s: status %s, expected %s (%r)" % (method, st, want, reply))
        elif check and not check(reply):
            bad.append("%s: unexpected reply %r" % (method, reply))
        time.sleep(GAP)
        return reply

    docs = [{"_id": i, "name": "doc%d" % i, "tags": ["a", "b"], "score": i * 1.5,
             "at": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)}
            for i in range(1, 4)]
    try:
        op("hello", "admin.$cmd", {"hello": 1, "$db": "admin"}, "OK",
           check=lambda r: r.get("isWritablePrimary") is True)
        op("ping", "admin.$cmd", {"ping": 1, "$db": "admin"}, "OK",
           flags=CHECKSUM_PRESENT)
        op("insert", "test.coll", {"insert": "coll", "ordered": True, "$db": "test"}, "OK",
           sequences=[("documents", docs)], check=lambda r: r.get("n") == 3)
        r = op("find", "test.coll", {"find": "coll", "filter": {}, "batchSize": 2,
                                     "$db": "test"}, "OK",
               check=lambda r: len(r["cursor"]["firstBatch"]) == 2 and r["cursor"]["id"])
        cid = Int64(r["cursor"]["id"]) if r and "cursor" in r else Int64(0)
        op("getMore", "test.coll", {"getMore": cid, "collection": "coll", "$db": "test"},
           "OK", check=lambda r: len(r["cursor"]["nextBatch"]) == 1)
        op("update", "test.coll", {"update": "coll", "$db": "test"}, "OK",
           sequences=[("updates", [{"q": {"_id": 2}, "u": {"$set": {"name": "two"}}}])],
           check=lambda r: r.get("nModified") == 1)
        op("aggregate", "test.coll", {"aggregate": "coll", "pipeline": [
            {"$group": {"_id": None, "count": {"$sum": 1}}}], "cursor": {}, "$db": "test"},
           "OK", check=lambda r: r["cursor"]["firstBatch"][0]["count"] == 3)
        op("count", "test.coll", {"count": "coll", "query": {}, "$db": "test"}, "OK",
           check=lambda r: r.get("n") == 3)
        op("find", "test.coll", {"find": "coll", "filter": {"$bogus": 1}, "$db": "test"},
           "Error", check=lambda r: r.get("code") == 2)
        op("insert", "test.coll", {"insert": "coll", "documents": [{"_id": 1, "name": "dup"}],
                                   "$db": "test"}, "Error",
           check=lambda r: r["writeErrors"][0]["code"] == 11000)
        op("insert", "test.logs", {"insert": "logs", "writeConcern": {"w": 0}, "$db": "test"},
           "OK", sequences=[("documents", [{"msg": "fire and forget"}])],
           flags=MORE_TO_COME)
        op("delete", "test.coll", {"delete": "coll", "deletes": [{"q": {"_id": 3}, "limit": 1}],
                                   "$db": "test"}, "OK", check=lambda r: r.get("n") == 1)
        op("find", "test.coll", {"find": "coll", "filter": {"name": "two"}, "$db": "test"},
           "OK", check=lambda r: len(r["cursor"]["firstBatch"]) == 1)
        op("frobnicate", "test.$cmd", {"frobnicate": 1, "$db": "test"}, "Error")
    finally:
        c.close()
    return lines, bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("--host", required=True)
    s.add_argument("--port", type=int, default=27017)
    cl = sub.add_parser("client")
    cl.add_argument("--host", required=True)
    cl.add_argument("--port", type=int, default=27017)
    cl.add_argument("--client-ip", required=True)
    sub.add_parser("selftest")
    args = ap.parse_args(argv)
    if args.mode == "server":
        serve(args.host, args.port)
        return 0
    if args.mode == "client":
        _, bad = workload(args.host, args.port, args.client_ip)
    else:
        ready = []
        t = threading.Thread(target=serve, args=("127.0.0.1", 0, ready), daemon=True)
        t.start()
        while not ready:
            time.sleep(0.01)
        port = ready[0].server_address[1]
        _, bad = workload("127.0.0.1", port, "127.0.0.1")
        ready[0].shutdown()
    for b in bad:
        print("mongo_wire client: %s" % b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
