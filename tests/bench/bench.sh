#!/usr/bin/env bash
# bench.sh — `make bench`: replay the generated multi-protocol capture through hostbeat,
# `tcpdump -r` (the read floor) and `tshark -T ek` (the peer), one core each, and print
# wall s, CPU s, max RSS, packets/s and transactions/s side by side with ratios.
# Not a test: nothing here passes or fails on a number.
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-build}
HB=${HOSTBEAT:-./hostbeat} # the binary under test
RUNS=${RUNS:-3}
PCAP=${BENCH_PCAP:-$BUILD/bench/bench.pcap}
out=$(mktemp -d /tmp/hostbeat-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT

mkdir -p "$(dirname "$PCAP")"
if [[ ! -s $PCAP || ! -s $PCAP.truth ]]; then
	echo "generating $PCAP ..."
	"$BUILD"/tools/pcapgen -o "$PCAP" >"$PCAP.truth"
fi
packets=$(awk '$1=="packets"{print $2}' "$PCAP.truth")
txns=$(awk '$1!="packets"{s+=$2} END{print s}' "$PCAP.truth")
protos_with_traffic=$(awk '$1!="packets"{printf "%s ", $1}' "$PCAP.truth")
echo "capture: $PCAP, $packets packets, $txns transactions (ground truth: $protos_with_traffic)"

# Every protocol hostbeat decodes, on the generator's ports.
cat >"$out/bench.yml" <<YML
name: bench
packetbeat.interfaces.device: any
packetbeat.protocols:
- {type: http, ports: [80]}
- {type: dns, ports: [53]}
- {type: mysql, ports: [3306]}
- {type: pgsql, ports: [5432]}
- {type: redis, ports: [6379]}
- {type: memcache, ports: [11211]}
- {type: thrift, ports: [9090]}
- {type: mongodb, ports: [27017]}
output.file:
  path: $out/data
  rotate_every_kb: 1048576
logging.level: warning
YML

# median of RUNS runs of "$@" under /usr/bin/time: prints "wall cpu rss_kb"
measure() {
	local i
	for ((i = 0; i < RUNS; i++)); do
		rm -rf "$out/data"
		/usr/bin/time -f '%e %U %S %M' -o "$out/time" taskset -c 0 "$@" >/dev/null 2>"$out/err" ||
			{ cat "$out/err"; return 1; }
		awk '{printf "%.3f %.3f %d\n", $1, $2 + $3, $4}' "$out/time"
	done | sort -n -k1 | sed -n "$(((RUNS + 1) / 2))p"
}

tshark_protos="http or dns or mysql or pgsql or resp or memcache or thrift or mongo"
tshark_decode=(-d tcp.port==27017,mongo -d tcp.port==9090,thrift -d tcp.port==6379,resp)

echo "running (median of $RUNS, pinned to one core) ..."
read -r hb_wall hb_cpu hb_rss < <(measure "$HB" -c "$out/bench.yml" -t -I "$PCAP")
hb_events=$(cat "$out"/data/*.ndjson 2>/dev/null | wc -l || true)
"$HB" -c "$out/bench.yml" -t -I "$PCAP" -e -E logging.level=info 2>"$out/hb.log" >/dev/null
# The foundation issue's configuration: HTTP and DNS only (the other packets are
# read and filtered out).
sed -n '1,5p' "$out/bench.yml" >"$out/httpdns.yml"
sed -n '/^output.file:/,$p' "$out/bench.yml" >>"$out/httpdns.yml"
read -r hd_wall hd_cpu hd_rss < <(measure "$HB" -c "$out/httpdns.yml" -t -I "$PCAP")
read -r td_wall td_cpu td_rss < <(measure tcpdump -r "$PCAP" -w /dev/null)
read -r ts_wall ts_cpu ts_rss < <(RUNS=1 measure tshark -n -r "$PCAP" -T ek -Y "$tshark_protos" \
	-j "$tshark_protos" "${tshark_decode[@]}")

hb_txn=$(grep "\[summary\]" "$out/hb.log" | grep -oE " transactions=[0-9]+" | tail -n 1 | cut -d= -f2)
echo
printf '%-34s %8s %8s %9s %12s %12s\n' tool wall_s cpu_s rss_MiB packets/s txn/s
row() { # name wall cpu rss_kb txn
	awk -v n="$1" -v w="$2" -v c="$3" -v r="$4" -v p="$packets" -v t="$5" 'BEGIN{
		printf "%-34s %8.2f %8.2f %9.1f %12.0f %12s\n", n, w, c, r/1024, p/w,
		       (t == "-" ? "-" : sprintf("%.0f", t/w)) }'
}
row "tcpdump -r -w /dev/null (floor)" "$td_wall" "$td_cpu" "$td_rss" -
row "tshark -T ek (8 protocols)" "$ts_wall" "$ts_cpu" "$ts_rss" "$txns"
row "hostbeat -I -t (file output)" "$hb_wall" "$hb_cpu" "$hb_rss" "${hb_txn:-0}"
row "hostbeat, HTTP+DNS only" "$hd_wall" "$hd_cpu" "$hd_rss" \
	"$(awk '$1=="http"||$1=="dns"{s+=$2} END{print s}' "$PCAP.truth")"
echo
awk -v hw="$hb_wall" -v tw="$ts_wall" -v dw="$td_wall" -v hc="$hb_cpu" -v p="$packets" \
	-v hdw="$hd_wall" 'BEGIN{
	printf "hostbeat vs tshark: %.1fx packets/s (wall); HTTP+DNS only: %.1fx\n", tw/hw, tw/hdw
	printf "hostbeat vs tcpdump floor: %.2fx of its packets/s\n", dw/hw
	printf "hostbeat packets per CPU-second: %.0f\n", p/hc }'
echo "hostbeat events written: $hb_events, transactions decoded: ${hb_txn:-0} (ground truth: $txns)"
echo
echo "per protocol: hostbeat with only that protocol enabled (same file, one core)"
printf '  %-9s %9s %9s %8s %12s\n' protocol decoded truth cpu_s txn/s
while read -r proto n; do
	[[ $proto == packets ]] && continue
	sed -n '1,3p' "$out/bench.yml" >"$out/one.yml"
	grep -F -- "- {type: $proto," "$out/bench.yml" >>"$out/one.yml"
	sed -n '/^output.file:/,$p' "$out/bench.yml" >>"$out/one.yml"
	read -r w c _ < <(RUNS=1 measure "$HB" -c "$out/one.yml" -t -I "$PCAP")
	"$HB" -c "$out/one.yml" -t -N -I "$PCAP" -e -E logging.level=info 2>"$out/one.log" >/dev/null
	got=$(grep "\[summary\]" "$out/one.log" | grep -oE " $proto=[0-9]+" | tail -n 1 | cut -d= -f2)
	awk -v p="$proto" -v g="${got:-0}" -v n="$n" -v w="$w" -v c="$c" \
		'BEGIN{printf "  %-9s %9d %9d %8.2f %12.0f\n", p, g, n, c, g/w}'
done <"$PCAP.truth"

echo
BUILD="$BUILD" BENCH_PCAP="$PCAP" tests/bench/es_bench.sh
echo
BUILD="$BUILD" tests/bench/sys_bench.sh
