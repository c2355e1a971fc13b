"""Parser for the transaction ledger printed by tests/integration/traffic.sh.

Line format (whitespace separated, one transaction per line):

    http METHOD PATH  STATUS CLIENT_IP SERVER_IP tcp
    dns  QTYPE  QNAME RCODE  CLIENT_IP SERVER_IP udp|tcp

stdlib only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import List

SUBNET = ipaddress.ip_network("172.17.0.0/16")


@dataclass(frozen=True)
class Tx:
    proto: str       # "http" | "dns"
    verb: str        # HTTP method, or DNS qtype ("A", "AAAA", ...)
    target: str      # URL path, or DNS question name (no trailing dot)
    status: str      # HTTP status code ("200"), or DNS rcode name ("NOERROR")
    client: str      # client IP
    server: str      # server IP
    transport: str   # "tcp" | "udp"
    line: str        # the raw ledger line

    @property
    def status_code(self) -> int:
        return int(self.status)


def parse_ledger(text: str) -> List[Tx]:
    txs: List[Tx] = []
    seen = set()
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        f = line.split()
        if len(f) != 7:
            raise ValueError(f"ledger line {n}: want 7 fields, got {len(f)}: {line!r}")
        tx = Tx(*f, line=line)
        if tx.proto not in ("http", "dns"):
            raise ValueError(f"ledger line {n}: unknown protocol {tx.proto!r}")
        if tx.transport not in ("tcp", "udp"):
            raise ValueError(f"ledger line {n}: bad transport {tx.transport!r}")
        if tx.proto == "http" and not (tx.status.isdigit() and len(tx.status) == 3):
            raise ValueError(f"ledger line {n}: bad HTTP status {tx.status!r}")
        for ip in (tx.client, tx.server):
            if ipaddress.ip_address(ip) not in SUBNET:
                raise ValueError(f"ledger line {n}: {ip} outside {SUBNET}")
        if line in seen:
            raise ValueError(f"ledger line {n}: duplicate line {line!r}")
        seen.add(line)
        txs.append(tx)
    if not txs:
        raise ValueError("empty ledger")
    return txs


def read_ledger(path) -> List[Tx]:
    with open(path, encoding="utf-8") as fh:
        return parse_ledger(fh.read())
