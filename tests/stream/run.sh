#!/bin/sh
# run.sh — every stream script under tests/stream/<proto>/*.t through stream_run,
# split at every byte, compared with <name>.expected next to it.
#   STREAM_RUN=path/to/stream_run (default: ${BUILD:-build}/tools/stream_run)
#   UPDATE=1 rewrites the .expected files from the unsplit run (review the diff).
# Last line: "stream: N passed, N failed"; exit 1 when anything failed.
dir=$(cd "$(dirname "$0")" && pwd)
bin=${STREAM_RUN:-${BUILD:-build}/tools/stream_run}
if [ ! -x "$bin" ]; then
	echo "stream: $bin not built (make tools)" >&2
	echo "stream: 0 passed, 1 failed"
	exit 1
fi
pass=0
fail=0
for t in "$dir"/*/*.t; do
	[ -e "$t" ] || continue
	proto=$(basename "$(dirname "$t")")
	exp=${t%.t}.expected
	name=$proto/$(basename "$t")
	if [ -n "$UPDATE" ]; then
		"$bin" "$proto" "$t" > "$exp" || { echo "FAIL $name (update)"; fail=$((fail + 1)); continue; }
	fi
	if "$bin" "$proto" "$t" --split-every-byte --expect "$exp"; then
		pass=$((pass + 1))
	else
		echo "FAIL $name"
		fail=$((fail + 1))
	fi
done
echo "stream: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
