#!/usr/bin/env bash
# tests/integration/record_db.sh [PROTO...] -- record the reference captures of the
# database / cache / RPC workload, one per protocol.
#
# Brings up the namespace topology with the real servers (topology.sh up --with-db; torn
# down on exit, whatever happens), and for each protocol (default: mysql pgsql redis
# memcache thrift mongodb) captures docker0 inside the host namespace with tcpdump while
# `traffic_db.py PREFIX PROTO` runs, verifies the capture against the ledger with
# tshark (verify_db_pcap.py), and only then writes
#
#   tests/pcap/recorded/docker0_<proto>.pcap
#   tests/pcap/recorded/docker0_<proto>.ledger
#
# (override the directory with RECORD_OUT_DIR).  Needs root.  Each capture must stay
# below 300 KB.

set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT_DIR=${RECORD_OUT_DIR:-$REPO/tests/pcap/recorded}
PREFIX=hbd$$
TOPO=$HERE/topology.sh
PY=/usr/bin/python3
MAX_BYTES=300000

PROTOS=("$@")
((${#PROTOS[@]})) || PROTOS=(mysql pgsql redis memcache thrift mongodb)

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

log() { echo "record_db: $*" >&2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/hostbeat-record-db.$$.XXXXXX")
TOPO_TMP=$("$TOPO" up "$PREFIX" --with-db)
log "topology $PREFIX up with servers (tmp $TOPO_TMP)"
# shellcheck disable=SC1091
. "$TOPO_TMP/servers.env"

server_ip() {
    case $1 in
    mysql) echo "$SRV_MYSQL_IP" ;;
    pgsql) echo "$SRV_PG_IP" ;;
    redis) echo "$SRV_REDIS_IP" ;;
    memcache) echo "$SRV_MC_IP" ;;
    thrift) echo "$SRV_THRIFT_IP" ;;
    mongodb) echo "$SRV_MONGO_IP" ;;
    esac
}

for proto in "${PROTOS[@]}"; do
    ip=$(server_ip "$proto")
    [[ -n "$ip" ]] || { log "unknown protocol $proto"; exit 2; }
    if [[ $proto == mongodb && "$SRV_MONGO" != 1 ]]; then
        log "mongodb: tests/integration/mongo_wire.py absent, not recorded"
        continue
    fi
    name=docker0_$proto
    pcap=$WORK/$name.pcap
    ledger=$WORK/$name.ledger
    # only IPv4 to/from this server (keeps ARP out); --immediate-mode: no packet is
    # left in the kernel ring buffer when tcpdump is stopped
    ip netns exec "${PREFIX}host" \
        tcpdump -i docker0 --immediate-mode -w "$pcap" -U -s 0 -Z root "ip and host $ip" \
        2>"$WORK/tcpdump.err" &
    TCPDUMP_PID=$!
    for ((i = 0; i < 100; i++)); do
        grep -q 'listening on' "$WORK/tcpdump.err" 2>/dev/null && break
        kill -0 "$TCPDUMP_PID" 2>/dev/null || { log "tcpdump died:"; cat "$WORK/tcpdump.err" >&2; exit 1; }
        sleep 0.1
    done
    grep -q 'listening on' "$WORK/tcpdump.err" || { log "tcpdump never started listening"; exit 1; }

    if ! "$PY" "$HERE/traffic_db.py" "$PREFIX" "$proto" >"$ledger"; then
        log "$proto: traffic_db.py reported a problem; ledger:"
        cat "$ledger" >&2
        exit 1
    fi
    sleep 1
    kill -INT "$TCPDUMP_PID"
    wait "$TCPDUMP_PID" || true
    TCPDUMP_PID=""
    if ! grep -q '^0 packets dropped by kernel' "$WORK/tcpdump.err"; then
        cat "$WORK/tcpdump.err" >&2
        log "$proto: tcpdump reports kernel drops"
        exit 1
    fi
    "$PY" "$HERE/verify_db_pcap.py" "$pcap" "$ledger"
    size=$(stat -c %s "$pcap")
    if ((size >= MAX_BYTES)); then
        log "$proto: capture is $size bytes (limit $MAX_BYTES)"
        exit 1
    fi
    mkdir -p "$OUT_DIR"
    cp -- "$pcap" "$OUT_DIR/$name.pcap"
    cp -- "$ledger" "$OUT_DIR/$name.ledger"
    chmod 0644 "$OUT_DIR/$name.pcap" "$OUT_DIR/$name.ledger"
    log "wrote $OUT_DIR/$name.pcap ($size bytes, $(grep -c . "$ledger") ledger lines)"
done
