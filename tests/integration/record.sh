#!/usr/bin/env bash
# tests/integration/record.sh -- record the reference capture of the workload.
#
# Brings up the namespace topology (torn down on exit, whatever happens),
# captures docker0 inside the host namespace with tcpdump while traffic.sh runs,
# verifies the capture against the ledger, and only then writes
#
#   tests/pcap/recorded/docker0_http_dns.pcap
#   tests/pcap/recorded/docker0_http_dns.ledger
#
# (override the directory with RECORD_OUT_DIR).  Needs root.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT_DIR=${RECORD_OUT_DIR:-$REPO/tests/pcap/recorded}
NAME=docker0_http_dns
PREFIX=hbr$$
TOPO=$HERE/topology.sh
PY=/usr/bin/python3

WORK=""
TCPDUMP_PID=""

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$TCPDUMP_PID" ]] && kill -0 "$TCPDUMP_PID" 2>/dev/null; then
        kill -INT "$TCPDUMP_PID" 2>/dev/null
        wait "$TCPDUMP_PID" 2>/dev/null
    fi
    "$TOPO" down "$PREFIX"
    [[ -n "$WORK" ]] && rm -rf -- "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { echo "record: $*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hostbeat-record.$$.XXXXXX")
TOPO_TMP=$("$TOPO" up "$PREFIX")
log "topology $PREFIX up (tmp $TOPO_TMP)"

PCAP=$WORK/$NAME.pcap
LEDGER=$WORK/$NAME.ledger

# -Z root: Debian's tcpdump would otherwise drop to user "tcpdump" and fail to
# write into the root-owned work dir.  The filter keeps ARP / IPv6 ND out.
ip netns exec "${PREFIX}host" \
    tcpdump -i docker0 -w "$PCAP" -U -s 0 -Z root 'tcp port 80 or port 53' \
    2>"$WORK/tcpdump.err" &
TCPDUMP_PID=$!

for ((i = 0; i < 100; i++)); do
    grep -q 'listening on' "$WORK/tcpdump.err" 2>/dev/null && break
    kill -0 "$TCPDUMP_PID" 2>/dev/null || { log "tcpdump died:"; cat "$WORK/tcpdump.err" >&2; exit 1; }
    sleep 0.1
done
grep -q 'listening on' "$WORK/tcpdump.err" || { log "tcpdump never started listening"; exit 1; }

if ! "$HERE/traffic.sh" "$PREFIX" >"$LEDGER"; then
    log "traffic.sh reported a problem; ledger:"
    cat "$LEDGER" >&2
    exit 1
fi
sleep 1

kill -INT "$TCPDUMP_PID"
wait "$TCPDUMP_PID" || true
TCPDUMP_PID=""
cat "$WORK/tcpdump.err" >&2
if ! grep -q '^0 packets dropped by kernel' "$WORK/tcpdump.err"; then
    log "tcpdump reports kernel drops"
    exit 1
fi

"$PY" "$HERE/verify_pcap.py" "$PCAP" "$LEDGER"

mkdir -p "$OUT_DIR"
cp -- "$PCAP" "$OUT_DIR/$NAME.pcap"
cp -- "$LEDGER" "$OUT_DIR/$NAME.ledger"
chmod 0644 "$OUT_DIR/$NAME.pcap" "$OUT_DIR/$NAME.ledger"
log "wrote $OUT_DIR/$NAME.pcap ($(stat -c %s "$OUT_DIR/$NAME.pcap") bytes) and $OUT_DIR/$NAME.ledger"
