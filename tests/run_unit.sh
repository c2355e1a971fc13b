#!/usr/bin/env bash
# run_unit.sh — run the cmocka binaries given as arguments (TAP output), print
# "unit: N passed, N failed, N skipped" last (cmocka's skip() is TAP "not ok # SKIP"); exit 1 on any failure.
set -uo pipefail
pass=0 fail=0 skip=0
for t in "$@"; do
	[[ $t == *.d ]] && continue # make's dependency files next to the binaries
	out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$t" 2>&1)
	rc=$?
	p=$(grep -c '^ok ' <<<"$out")
	f=$(grep '^not ok ' <<<"$out" | grep -vc '# SKIP')
	s=$(grep '^not ok ' <<<"$out" | grep -c '# SKIP')
	if ((rc != 0 && f == 0)); then
		f=1 # crashed or failed outside a test
		echo "$out" | tail -n 20
	fi
	((f > 0)) && grep -v '# SKIP' <<<"$out" | grep -A6 '^not ok '
	printf '  %-28s %3d passed, %d failed, %d skipped\n' "$(basename "$t")" "$p" "$f" "$s"
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
done
echo "unit: $pass passed, $fail failed, $skip skipped"
((fail == 0))
