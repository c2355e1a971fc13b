#!/usr/bin/env bash
# tests/integration/traffic.sh PREFIX -- run a fixed workload with real clients
# against a topology built by `topology.sh up PREFIX`.
#
# stdout: nothing but the ledger, one line per transaction, in execution order:
#
#   http METHOD PATH   STATUS CLIENT_IP SERVER_IP tcp
#   dns  QTYPE  QNAME  RCODE  CLIENT_IP SERVER_IP udp|tcp
#
# e.g.  http GET /index.html 200 172.17.0.4 172.17.0.2 tcp
#       dns A www.hb.test NOERROR 172.17.0.4 172.17.0.3 udp
#
# Every line is unique.  The status/rcode columns are what the client actually
# saw; if that differs from what the workload expects, a diagnostic goes to
# stderr and the exit status is 1 (the ledger still tells the truth).
# All traffic stays inside the PREFIX namespaces (172.17.0.0/16).

set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=topology.sh
. "$HERE/topology.sh"

PREFIX=${1:-}
_topo_check_prefix "$PREFIX" || { echo "usage: $0 PREFIX" >&2; exit 2; }
for r in host web dns cli; do
    _topo_ns_exists "$PREFIX$r" || { echo "traffic: netns $PREFIX$r missing (topology not up?)" >&2; exit 2; }
done

CLI_NS=${PREFIX}cli
HOST_NS=${PREFIX}host
WEB=$TOPO_WEB_IP
DNS=$TOPO_DNS_IP
Z=$TOPO_ZONE
GAP=${TRAFFIC_GAP:-0.05}   # pause between transactions, keeps them apart in time
FAIL=0

# never let a proxy setting leak in
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

CURL=(curl --noproxy '*' -sS --http1.1 --max-time 10)

_check() {  # expected actual description
    if [[ "$1" != "$2" ]]; then
        echo "traffic: $3: expected $1, got $2" >&2
        FAIL=1
    fi
}

# http NS CLIENT_IP METHOD PATH EXPECTED_STATUS [extra curl args...]
http_tx() {
    local ns=$1 cip=$2 method=$3 path=$4 want=$5
    shift 5
    local code
    code=$(ip netns exec "$ns" "${CURL[@]}" -o /dev/null -w '%{http_code}' "$@" "http://$WEB$path")
    [[ "$code" =~ ^[0-9]{3}$ ]] || code=000
    echo "http $method $path $code $cip $WEB tcp"
    _check "$want" "$code" "$method $path from $cip"
    sleep "$GAP"
}

# dns TRANSPORT QTYPE QNAME EXPECTED_RCODE
dns_tx() {
    local transport=$1 qtype=$2 qname=$3 want=$4 out rcode flag=+notcp
    [[ $transport == tcp ]] && flag=+tcp
    out=$(ip netns exec "$CLI_NS" dig "@$DNS" "$flag" +tries=1 +time=2 "$qtype" "$qname" 2>&1)
    rcode=$(sed -n 's/.*status: \([A-Z]*\),.*/\1/p' <<<"$out" | head -n1)
    [[ -n "$rcode" ]] || rcode=TIMEOUT
    echo "dns $qtype $qname $rcode $TOPO_CLI_IP $DNS $transport"
    _check "$want" "$rcode" "dig $flag $qtype $qname"
    sleep "$GAP"
}

# ---------------------------------------------------------------- HTTP, from cli
http_tx "$CLI_NS" "$TOPO_CLI_IP" GET /           200
http_tx "$CLI_NS" "$TOPO_CLI_IP" GET /index.html 200
http_tx "$CLI_NS" "$TOPO_CLI_IP" GET /missing    404
http_tx "$CLI_NS" "$TOPO_CLI_IP" GET /big.bin    200

# keep-alive: three requests on one TCP connection (one curl invocation)
ka_out=$(ip netns exec "$CLI_NS" "${CURL[@]}" -w '%{http_code} %{num_connects}\n' \
    -o /dev/null -o /dev/null -o /dev/null \
    "http://$WEB/ka1.txt" "http://$WEB/ka2.txt" "http://$WEB/ka3.txt")
i=0
connects=""
while read -r code nc; do
    i=$((i + 1))
    [[ "$code" =~ ^[0-9]{3}$ ]] || code=000
    echo "http GET /ka$i.txt $code $TOPO_CLI_IP $WEB tcp"
    _check 200 "$code" "keep-alive GET /ka$i.txt"
    connects+="$nc"
done <<<"$ka_out"
_check 3 "$i" "keep-alive response count"
_check 100 "$connects" "keep-alive connection reuse (num_connects per request)"
sleep "$GAP"

http_tx "$CLI_NS" "$TOPO_CLI_IP" POST /submit     200 -d 'name=hostbeat&value=42'
http_tx "$CLI_NS" "$TOPO_CLI_IP" HEAD /index.html 200 -I
http_tx "$CLI_NS" "$TOPO_CLI_IP" GET  /nocontent  204

# ---------------------------------------------------- HTTP, from the host itself
http_tx "$HOST_NS" "$TOPO_HOST_IP" GET / 200

# ------------------------------------------------------------------ DNS, from cli
dns_tx udp A     "www.$Z"     NOERROR
dns_tx udp AAAA  "www.$Z"     NOERROR
dns_tx udp MX    "$Z"         NOERROR
dns_tx udp TXT   "$Z"         NOERROR
dns_tx udp CNAME "alias.$Z"   NOERROR
dns_tx udp A     "nothere.$Z" NXDOMAIN
dns_tx tcp A     "tcp.$Z"     NOERROR

exit "$FAIL"
