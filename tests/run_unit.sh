#!/usr/bin/env bash
# run_unit.sh — run the cmocka binaries given as arguments (TAP output), print
# "unit: N passed, N failed" last; exit 1 on any failure.
set -uo pipefail
pass=0 fail=0
for t in "$@"; do
	out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1)
	rc=$?
	p=$(grep -c '^ok ' <<<"$out")
	f=$(grep -c '^not ok ' <<<"$out")
	if ((rc != 0 && f == 0)); then
		f=1 # crashed or failed outside a test
		echo "$out" | tail -n 20
	fi
	((f > 0)) && grep -A6 '^not ok ' <<<"$out"
	printf '  %-28s %3d passed, %d failed\n' "$(basename "$t")" "$p" "$f"
	pass=$((pass + p)) fail=$((fail + f))
done
echo "unit: $pass passed, $fail failed"
((fail == 0))
