#!/usr/bin/env bash
# sys_bench.sh — the system side of `make bench`: CPU time of one full sample with
# N processes running (N = 1,000 and 10,000 `sleep`s started here), next to
# `top -b -n 1` and `ps aux` at the same moment, and the agent's idle CPU with a
# 10 s period. Not a test: nothing passes or fails on a number.
set -euo pipefail
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-build}
HOSTBEAT=${HOSTBEAT:-./hostbeat}
IDLE_SECONDS=${IDLE_SECONDS:-60}
out=$(mktemp -d /tmp/hostbeat-sysbench.XXXXXX)
pids=()
cleanup() {
	((${#pids[@]})) && kill "${pids[@]}" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$out"
}
trap cleanup EXIT

# CPU seconds (user+sys) of one run of "$@", median of 3
cpu_of() {
	local i
	for i in 1 2 3; do
		/usr/bin/time -f '%U %S' -o "$out/t" "$@" >/dev/null 2>&1
		awk '{printf "%.4f\n", $1 + $2}' "$out/t"
	done | sort -n | sed -n 2p
}

echo "system sample: CPU per full sample (median), same machine, same moment"
printf '  %-8s %10s %12s %10s %10s %14s %12s\n' procs hostbeat_ms ms_per_1000 top_ms ps_aux_ms \
	hostbeat/top events
for n in 1000 10000; do
	need=$((n - $(ls /proc | grep -c '^[0-9]')))
	for ((i = 0; i < need; i++)); do
		sleep 3600 &
		pids+=($!)
	done
	sleep 1
	read -r _ hb_ms _ events _ procs _ < <("$BUILD"/tools/sys_bench / 5 2>/dev/null)
	top_s=$(cpu_of top -b -n 1)
	ps_s=$(cpu_of ps aux)
	awk -v n="$procs" -v h="$hb_ms" -v t="$top_s" -v p="$ps_s" -v e="$events" 'BEGIN{
		printf "  %-8d %10.1f %12.2f %10.1f %10.1f %13.2fx %12d\n",
		       n, h, h * 1000 / n, t * 1000, p * 1000, h / (t * 1000), e }'
done
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()

echo "idle: the agent (sampler only, topbeat.period 10s) over ${IDLE_SECONDS}s"
cat >"$out/idle.yml" <<YML
packetbeat.enabled: false
topbeat.period: 10s
output.file.path: $out/data
logging.level: warning
YML
"$HOSTBEAT" -c "$out/idle.yml" &
hb=$!
pids+=($hb)
sleep 2 # start-up and the first sample are not idling
t0=$(awk '{print $14 + $15}' /proc/$hb/stat)
sleep "$IDLE_SECONDS"
t1=$(awk '{print $14 + $15}' /proc/$hb/stat)
rss=$(awk '/VmHWM/{print $2}' /proc/$hb/status)
hz=$(getconf CLK_TCK)
awk -v a="$t0" -v b="$t1" -v s="$IDLE_SECONDS" -v hz="$hz" -v r="$rss" 'BEGIN{
	printf "  %.3f %% of one core (%.2f CPU s in %d s), max RSS %.1f MiB\n",
	       (b - a) / hz / s * 100, (b - a) / hz, s, r / 1024 }'
