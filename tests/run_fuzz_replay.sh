#!/usr/bin/env bash
# run_fuzz_replay.sh — replay every committed seed through its libFuzzer harness once
# (a regression run, not a fuzzing campaign). One test per harness.
set -uo pipefail
pass=0 fail=0
for name in "$@"; do
	dir=tests/fuzz/corpus/$name
	bin=build-fuzz/fuzz_$name
	if [[ ! -d $dir ]]; then
		echo "  fuzz_$name: no seed corpus at $dir"
		fail=$((fail + 1))
		continue
	fi
	n=$(find "$dir" -type f | wc -l)
	if out=$("$bin" -runs=0 "$dir" 2>&1); then
		printf '  fuzz_%-22s %d seeds replayed\n' "$name" "$n"
		pass=$((pass + 1))
	else
		echo "$out" | tail -n 30
		printf '  fuzz_%-22s FAILED\n' "$name"
		fail=$((fail + 1))
	fi
done
echo "fuzz: $pass passed, $fail failed"
((fail == 0))
