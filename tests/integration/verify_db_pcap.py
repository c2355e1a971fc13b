#!/usr/bin/python3
"""Check a recorded database/cache/RPC capture against the ledger of traffic_db.py.

    /usr/bin/python3 tests/integration/verify_db_pcap.py FILE.pcap FILE.ledger

Uses tshark's own dissectors (mysql, pgsql, resp, memcache, thrift, mongo) as an
independent oracle.  For the protocol(s) in the ledger it verifies that
  * the requests in the capture are exactly the ledger's operations (as a multiset:
    verb + resource/keys, and the listener for thrift) - nothing missing, nothing extra;
  * the number of error responses equals the number of ledger lines with an error status;
  * every packet is IPv4 inside 172.17.0.0/16 between the ledger's client and servers.
Prints a summary; exit status 0 = OK, 1 = mismatch.  stdlib only.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hbledger import read_ledger  # noqa: E402

THRIFT_PORTS = (9090, 9091, 9092, 9093)
MONGO_PORT = 27017
DECODE_AS = [a for p in THRIFT_PORTS for a in ("-d", "tcp.port==%d,thrift" % p)] + \
    ["-d", "tcp.port==%d,mongo" % MONGO_PORT]


def tshark(pcap, display_filter, fields, occurrence="f", aggregator="\x1f"):
    cmd = ["tshark", "-n", "-r", pcap, *DECODE_AS, "-Y", display_filter, "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=" + occurrence,
           "-E", "aggregator=" + aggregator]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def split(val, sep="\x1f"):
    return [v for v in val.split(sep)] if val else []


# ---- per protocol: (seen requests multiset, number of error responses) -----------------

def seen_mysql(pcap, ledger):
    want = collections.Counter()
    for tx in ledger:
        kind = tx.ann.get("stmt", "query")
        want[(kind, tx.verb)] += 1
    seen = collections.Counter()
    for src, cmd, query in tshark(pcap, "mysql.command", ["ip.src", "mysql.command",
                                                          "mysql.query"]):
        if cmd == "3":
            seen[("query", query.split()[0].upper())] += 1
        elif cmd == "22":
            seen[("prepare", query.split()[0].upper())] += 1
        elif cmd == "23":
            seen[("execute", "SELECT")] += 1  # the only statement the workload prepares
    errors = len(tshark(pcap, "mysql.error_code", ["frame.number"]))
    return want, seen, errors


def seen_pgsql(pcap, ledger):
    want = collections.Counter(("ext" if tx.ann.get("ext") else "simple", tx.verb)
                               for tx in ledger)
    seen = collections.Counter()
    rows = tshark(pcap, "pgsql.type", ["pgsql.type", "pgsql.query"], occurrence="a")
    for types, queries in rows:
        types, queries = split(types), split(queries)
        if "Simple query" in types:
            for q in queries:
                for stmt in q.split(";"):
                    if stmt.strip():
                        seen[("simple", stmt.split()[0].upper())] += 1
        elif "Parse" in types:
            for q in queries:
                seen[("ext", q.split()[0].upper())] += types.count("Execute") // max(
                    types.count("Parse"), 1)
    errors = sum(split(t).count("Error") for t, _ in
                 tshark(pcap, "pgsql.type", ["pgsql.type", "frame.number"], occurrence="a"))
    return want, seen, errors


def seen_redis(pcap, ledger):
    want = collections.Counter((tx.verb, tx.target) for tx in ledger)
    seen = collections.Counter()
    servers = {tx.server for tx in ledger}
    rows = tshark(pcap, "resp && ip.dst in {%s}" % ", ".join(servers),
                  ["resp.array.length", "resp.bulk_string.value"], occurrence="a")
    for lens, vals in rows:
        vals = [bytes.fromhex(v.replace(":", "")).decode("utf-8", "replace")
                for v in split(vals)]
        i = 0
        for n in split(lens):
            args = vals[i:i + int(n)]
            i += int(n)
            if args:
                seen[(args[0].upper(), args[1] if len(args) > 1 else "-")] += 1
    errors = sum(len(split(e)) for (e,) in
                 tshark(pcap, "resp.error", ["resp.error"], occurrence="a"))
    return want, seen, errors


def seen_memcache(pcap, ledger):
    want = collections.Counter((tx.verb, tx.target, tx.transport, bool(tx.ann.get("binary")))
                               for tx in ledger)
    seen = collections.Counter()
    servers = {tx.server for tx in ledger}
    ops = {"0": "get", "1": "set", "4": "delete", "5": "incr", "6": "decr"}
    rows = tshark(pcap, "memcache && ip.dst in {%s}" % ", ".join(servers),
                  ["ip.proto", "memcache.magic", "memcache.opcode", "memcache.command",
                   "memcache.key"], occurrence="a")
    for proto, magic, opcode, command, keys in rows:
        transport = {"6": "tcp", "17": "udp"}[proto]
        if transport == "udp":
            continue  # below: tshark 4.0 does not strip the 8-byte UDP frame header
        if magic:
            for op, key in zip(split(opcode), split(keys)):
                seen[(ops.get(op, op), key, transport, True)] += 1
        else:
            for cmd in split(command):
                seen[(cmd, ",".join(split(keys)), transport, False)] += 1
    # UDP: [request id][seq][count][reserved] + one text command (tshark's memcache
    # dissector parses the frame header as command text, so decode udp.payload here)
    for (payload,) in tshark(pcap, "udp && ip.dst in {%s}" % ", ".join(servers),
                             ["udp.payload"]):
        line = bytes.fromhex(payload.replace(":", ""))[8:].split(b"\r\n")[0].decode()
        words = line.split()
        if words[0] in ("get", "gets"):
            seen[(words[0], ",".join(words[1:]), "udp", False)] += 1
        elif words:
            seen[(words[0], words[1] if len(words) > 1 else "-", "udp", False)] += 1
    errors = len(tshark(pcap, "memcache.magic == 0x81 && memcache.status != 0",
                        ["frame.number"]))
    errors += sum(r.count("NOT_FOUND") + r.count("ERROR") for (r,) in
                  tshark(pcap, "memcache.response", ["memcache.response"], occurrence="a"))
    return want, seen, errors


def seen_thrift(pcap, ledger):
    want = collections.Counter((tx.verb, tx.ann.get("port")) for tx in ledger)
    seen = collections.Counter()
    rows = tshark(pcap, "thrift.mtype == 1 || thrift.mtype == 4",
                  ["frame.number", "tcp.stream", "tcp.dstport", "thrift.method"],
                  occurrence="a")
    last = {}
    for frame, stream, port, methods in rows:
        last[stream] = max(last.get(stream, 0), int(frame))
        for m in split(methods):
            seen[(m, port)] += 1
    # tshark 4.0 reports a message in the frame where its reassembly ends, and never
    # dissects a lone trailing 8-byte compact oneway message (zip() on an unframed
    # connection): decode the header of client segments after its last dissected call
    for frame, stream, port, payload in tshark(
            pcap, "tcp.len > 0 && !thrift.method && tcp.dstport in {%s}"
            % ", ".join(map(str, THRIFT_PORTS)),
            ["frame.number", "tcp.stream", "tcp.dstport", "tcp.payload"]):
        if int(frame) > last.get(stream, 0):
            m = thrift_call_name(bytes.fromhex(payload.replace(":", "")))
            seen[(m or "undecoded", port)] += 1
    # a reply whose result struct carries field 1 = the declared exception
    errors = 0
    for (fids,) in tshark(pcap, "thrift.mtype == 2", ["thrift.fid"], occurrence="a"):
        f = split(fids)
        errors += 1 if f and f[0] == "1" else 0
    return want, seen, errors


def op_msg_command(b):
    """The command name of an OP_MSG: the first key of its kind-0 body section
    (tshark shows the element names of all sections flattened, in wire order, and a
    kind-1 document sequence may come first)."""
    if len(b) < 21 or int.from_bytes(b[12:16], "little") != 2013:
        return None
    end = int.from_bytes(b[:4], "little")
    flags = int.from_bytes(b[16:20], "little")
    if flags & 1:
        end -= 4  # CRC-32C
    i = 20
    while i < min(end, len(b)):
        kind = b[i]
        i += 1
        if kind == 0:
            # document: int32 length, then type byte + cstring key
            key = b[i + 5:b.index(b"\0", i + 5)]
            return key.decode("utf-8", "replace")
        size = int.from_bytes(b[i:i + 4], "little")
        i += size
    return None


def seen_mongodb(pcap, ledger):
    want = collections.Counter(tx.verb for tx in ledger)
    seen = collections.Counter()
    rows = tshark(pcap, "mongo.opcode && tcp.dstport == %d" % MONGO_PORT,
                  ["mongo.opcode", "tcp.payload"])
    for opcode, payload in rows:
        if opcode == "2013":
            seen[op_msg_command(bytes.fromhex(payload.replace(":", ""))) or "?"] += 1
        else:
            seen["opcode%s" % opcode] += 1
    # error replies: ok: 0 (a double 0.0 or int 0) or writeErrors, decoded by tshark as
    # element names; count replies that carry "writeErrors" or "errmsg"
    errors = 0
    for (names,) in tshark(pcap, "mongo.opcode == 2013 && tcp.srcport == %d" % MONGO_PORT,
                           ["mongo.element.name"], occurrence="a"):
        n = split(names)
        errors += 1 if ("writeErrors" in n or "errmsg" in n) else 0
    return want, seen, errors


def thrift_call_name(b):
    """Method name of a CALL/ONEWAY message (binary or compact, framed or not)."""
    if len(b) > 4 and b[0] not in (0x80, 0x82) and int.from_bytes(b[:4], "big") == len(b) - 4:
        b = b[4:]
    if len(b) >= 8 and b[0] == 0x80 and b[1] == 0x01 and b[3] in (1, 4):
        n = int.from_bytes(b[4:8], "big")
        return b[8:8 + n].decode("utf-8", "replace")
    if len(b) >= 4 and b[0] == 0x82 and (b[1] >> 5) in (1, 4):
        i = 2
        while i < len(b) and b[i] & 0x80:  # seqid varint
            i += 1
        i += 1
        n, shift = 0, 0
        while i < len(b):
            n |= (b[i] & 0x7F) << shift
            shift += 7
            i += 1
            if not b[i - 1] & 0x80:
                break
        return b[i:i + n].decode("utf-8", "replace")
    return None


SEEN = {"mysql": seen_mysql, "pgsql": seen_pgsql, "redis": seen_redis,
        "memcache": seen_memcache, "thrift": seen_thrift, "mongodb": seen_mongodb}


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    pcap, ledger_path = argv[1], argv[2]
    ledger = read_ledger(ledger_path)
    errors = []
    protos = sorted({tx.proto for tx in ledger})
    hosts = {tx.client for tx in ledger} | {tx.server for tx in ledger}

    td = subprocess.run(["tcpdump", "-nn", "-r", pcap], capture_output=True, text=True)
    if td.returncode != 0:
        errors.append("tcpdump -r failed: %s" % td.stderr.strip())
    packets = len(td.stdout.splitlines())
    outside = tshark(pcap, "!(ip.src in {%s} && ip.dst in {%s})" % (", ".join(hosts),
                                                                  ", ".join(hosts)),
                     ["frame.number", "frame.protocols"])
    if outside:
        errors.append("%d packet(s) not between the ledger's hosts: %s" % (len(outside),
                                                                          outside[:5]))
    summary = []
    for proto in protos:
        lines = [tx for tx in ledger if tx.proto == proto]
        if proto not in SEEN:
            errors.append("no verifier for protocol %s" % proto)
            continue
        want, seen, nerr = SEEN[proto](pcap, lines)
        for k in sorted(set(want) | set(seen), key=str):
            if want[k] != seen[k]:
                errors.append("%s %s: ledger has %d, capture has %d" % (proto, k, want[k],
                                                                        seen[k]))
        want_err = sum(1 for tx in lines if tx.status != "OK")
        if nerr != want_err:
            errors.append("%s: %d error responses in the capture, %d Error lines in the "
                          "ledger" % (proto, nerr, want_err))
        summary.append("%s %d ops/%d errors" % (proto, sum(seen.values()), nerr))
    print("%s: %d bytes, %d packets, %s, %d ledger lines" % (
        pcap, os.path.getsize(pcap), packets, ", ".join(summary), len(ledger)))
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    print("OK" if not errors else "FAILED (%d problems)" % len(errors))
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
