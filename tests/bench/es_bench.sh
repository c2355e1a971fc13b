#!/usr/bin/env bash
# es_bench.sh — the shipping path of `make bench`: the generated capture replayed at
# top speed into output.elasticsearch on loopback (a minimal sink, tests/bench/
# bulk_sink.py, not the strict double), gzip level 1 and off; hostbeat's CPU per
# event beyond decoding alone (-N); then the disk spool's write and replay MB/s.
# Not a test: nothing passes or fails on a number.
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-build}
HB=${HOSTBEAT:-./hostbeat}
PCAP=${BENCH_PCAP:-$BUILD/bench/bench.pcap}
out=$(mktemp -d /tmp/hostbeat-esbench.XXXXXX)
sink=
cleanup() {
	[[ -n $sink ]] && kill "$sink" 2>/dev/null || true
	rm -rf "$out"
}
trap cleanup EXIT

/usr/bin/python3 tests/bench/bulk_sink.py 0 >"$out/sink.out" &
sink=$!
for _ in $(seq 50); do grep -q listening "$out/sink.out" && break; sleep 0.1; done
port=$(awk '/listening/{print $3}' "$out/sink.out")

protos=""
for p in http:80 dns:53 mysql:3306 pgsql:5432 redis:6379 memcache:11211 thrift:9090 mongodb:27017; do
	protos+="- {type: ${p%%:*}, ports: [${p##*:}]}"$'\n'
done
run() { # level → "wall cpu events"
	cat >"$out/es.yml" <<YML
packetbeat.protocols:
$protos
output.elasticsearch:
  hosts: ['127.0.0.1:$port']
  compression_level: $1
  bulk_max_size: 1600
queue.spool.path: $out/spool
logging.level: warning
YML
	rm -rf "$out/spool"
	/usr/bin/time -f '%e %U %S' -o "$out/t" taskset -c 0 "$HB" -c "$out/es.yml" -t -I "$PCAP" \
		>/dev/null 2>"$out/err" || { cat "$out/err"; return 1; }
	awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$out/t"
}
cat >"$out/dec.yml" <<YML
packetbeat.protocols:
$protos
logging.level: warning
YML
/usr/bin/time -f '%e %U %S' -o "$out/t" taskset -c 0 "$HB" -c "$out/dec.yml" -t -N -I "$PCAP" >/dev/null 2>&1
read -r dw dc < <(awk '{printf "%.3f %.3f\n", $1, $2 + $3}' "$out/t")

echo "shipping to Elasticsearch on loopback (bulk_sink.py), one core, same capture"
printf '  %-22s %8s %8s %10s %12s %14s\n' run wall_s cpu_s events events/s cpu_us/event
before=$(curl -s "127.0.0.1:$port/_sink/count")
read -r w1 c1 < <(run 1)
mid=$(curl -s "127.0.0.1:$port/_sink/count")
read -r w0 c0 < <(run 0)
after=$(curl -s "127.0.0.1:$port/_sink/count")
e1=$((mid - before)) e0=$((after - mid))
awk -v w="$dw" -v c="$dc" 'BEGIN{printf "  %-22s %8.2f %8.2f %10s %12s %14s\n", "decode only (-N)", w, c, "-", "-", "-"}'
for r in "gzip level 1:$w1:$c1:$e1" "no compression:$w0:$c0:$e0"; do
	IFS=: read -r name w c e <<<"$r"
	awk -v n="$name" -v w="$w" -v c="$c" -v e="$e" -v dc="$dc" 'BEGIN{
		printf "  %-22s %8.2f %8.2f %10d %12.0f %14.2f\n", n, w, c, e, e/w, (c-dc)*1e6/e }'
done
echo "  (cpu_us/event = hostbeat's CPU beyond decoding alone: encode + bulk + gzip + HTTP)"
echo
echo "disk spool (1 KiB documents, fsync batch):"
"$BUILD"/tools/spool_bench "$out" 256 1024 batch | sed 's/^/  /'
