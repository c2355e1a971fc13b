#!/usr/bin/python3
"""Check a recorded pcap against the ledger written by traffic.sh.

    /usr/bin/python3 tests/integration/verify_pcap.py FILE.pcap FILE.ledger

Uses tshark (and tcpdump for a readability/packet-count check).  Verifies:
  * every ledger transaction appears exactly once as a request (HTTP: method,
    URI, client->server IPs; DNS: qname, qtype, client->server IPs, transport)
    and its response carries the ledger's status / rcode;
  * there are no HTTP requests / DNS queries that are not in the ledger;
  * no packet has an address outside 172.17.0.0/16, and no non-IPv4 packet
    (ARP, IPv6 ND, ...) was captured.
Prints a short summary; exit status 0 = OK, 1 = mismatch.  stdlib only.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hbledger import read_ledger  # noqa: E402

QTYPES = {"1": "A", "2": "NS", "5": "CNAME", "6": "SOA", "12": "PTR", "15": "MX",
          "16": "TXT", "28": "AAAA", "33": "SRV", "255": "ANY"}
RCODES = {"0": "NOERROR", "1": "FORMERR", "2": "SERVFAIL", "3": "NXDOMAIN",
          "4": "NOTIMP", "5": "REFUSED"}


def tshark_fields(pcap, display_filter, fields):
    cmd = ["tshark", "-n", "-r", pcap, "-Y", display_filter, "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    pcap, ledger_path = argv[1], argv[2]
    ledger = read_ledger(ledger_path)
    errors = []

    # --- tcpdump can read it; packet count
    td = subprocess.run(["tcpdump", "-nn", "-r", pcap], capture_output=True, text=True)
    if td.returncode != 0:
        errors.append(f"tcpdump -r failed: {td.stderr.strip()}")
    packets = len(td.stdout.splitlines())

    # --- nothing outside 172.17.0.0/16, nothing that is not IPv4
    outside = tshark_fields(pcap, "!(ip.src==172.17.0.0/16 && ip.dst==172.17.0.0/16)",
                            ["frame.number", "frame.protocols"])
    if outside:
        errors.append(f"{len(outside)} packet(s) outside 172.17.0.0/16 or non-IPv4: "
                      f"{outside[:5]}")

    # --- HTTP
    reqs = tshark_fields(pcap, "http.request",
                         ["frame.number", "ip.src", "ip.dst",
                          "http.request.method", "http.request.uri"])
    resps = tshark_fields(pcap, "http.response",
                          ["frame.number", "http.request_in", "http.response.code"])
    resp_for = {r[1]: r[2] for r in resps}
    http_seen = collections.Counter()
    http_frame = {}
    for frame, src, dst, method, uri in reqs:
        key = (method, uri, src, dst)
        http_seen[key] += 1
        http_frame[key] = frame

    # --- DNS
    dns_rows = tshark_fields(pcap, "dns",
                             ["frame.number", "ip.src", "ip.dst", "ip.proto",
                              "dns.flags.response", "dns.qry.name", "dns.qry.type",
                              "dns.flags.rcode", "dns.response_to"])
    dns_seen = collections.Counter()
    dns_frame = {}
    dns_rcode = {}
    for frame, src, dst, proto, is_resp, name, qtype, rcode, resp_to in dns_rows:
        transport = {"6": "tcp", "17": "udp"}.get(proto, proto)
        if is_resp in ("0", "False"):
            key = (QTYPES.get(qtype, qtype), name.rstrip("."), src, dst, transport)
            dns_seen[key] += 1
            dns_frame[key] = frame
        else:
            dns_rcode[resp_to] = RCODES.get(rcode, rcode)

    # --- compare
    want_http, want_dns = set(), set()
    for tx in ledger:
        if tx.proto == "http":
            key = (tx.verb, tx.target, tx.client, tx.server)
            want_http.add(key)
            n = http_seen.get(key, 0)
            if n != 1:
                errors.append(f"{tx.line!r}: request seen {n} times (want 1)")
                continue
            got = resp_for.get(http_frame[key])
            if got != tx.status:
                errors.append(f"{tx.line!r}: response status {got} (want {tx.status})")
        else:
            key = (tx.verb, tx.target, tx.client, tx.server, tx.transport)
            want_dns.add(key)
            n = dns_seen.get(key, 0)
            if n != 1:
                errors.append(f"{tx.line!r}: query seen {n} times (want 1)")
                continue
            got = dns_rcode.get(dns_frame[key])
            if got != tx.status:
                errors.append(f"{tx.line!r}: rcode {got} (want {tx.status})")
    for key in set(http_seen) - want_http:
        errors.append(f"unexpected HTTP request in capture: {key}")
    for key in set(dns_seen) - want_dns:
        errors.append(f"unexpected DNS query in capture: {key}")

    size = os.path.getsize(pcap)
    print(f"{pcap}: {size} bytes, {packets} packets, "
          f"{sum(http_seen.values())} HTTP requests, {sum(dns_seen.values())} DNS queries, "
          f"{len(ledger)} ledger lines")
    for e in errors:
        print("ERROR:", e, file=sys.stderr)
    print("OK" if not errors else f"FAILED ({len(errors)} problems)")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
