#!/usr/bin/env bash
# run_all.sh — every test layer, in pyramid order, then one closing line
# "N passed, N failed" that sums them all. Exit 1 when anything failed.
#   --no-deps   skip the package check (make asan calls it after building)
# Environment: BUILD (build dir, default build), HOSTBEAT (binary, default ./hostbeat),
#              ASAN=1 (sanitizer build: the fuzz replay is skipped, it is ASan-built anyway)
set -uo pipefail
cd "$(dirname "$0")/.."

export BUILD=${BUILD:-build}
export HOSTBEAT=${HOSTBEAT:-./hostbeat}
export PYTHON=/usr/bin/python3
if [[ ${1:-} != --no-deps ]]; then
	tests/deps.sh || exit 1
fi

total_pass=0 total_fail=0 total_skip=0 failed_layers=()
log=$(mktemp -d /tmp/hostbeat-test.XXXXXX)

layer() { # name, command...
	local name=$1
	shift
	echo "== $name"
	"$@" 2>&1 | tee "$log/$name.out"
	local rc=${PIPESTATUS[0]}
	local line
	line=$(grep -E '(^|: )[0-9]+ passed, [0-9]+ failed' "$log/$name.out" | tail -n 1)
	local p f s
	p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+')
	f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+')
	s=$(grep -oE '[0-9]+ skipped' <<<"$line" | grep -oE '[0-9]+')
	p=${p:-0} f=${f:-0} s=${s:-0}
	if ((rc != 0 && f == 0)); then
		f=1
	fi
	((f > 0)) && failed_layers+=("$name")
	total_pass=$((total_pass + p)) total_fail=$((total_fail + f)) total_skip=$((total_skip + s))
}

# pytest prints "3 passed, 1 skipped in 0.2s" (no "failed" when none failed): restate it.
pytest_layer() { # name, paths...
	local name=$1
	shift
	local out rc
	out=$("$PYTHON" -m pytest -q -rs -p no:cacheprovider "$@" 2>&1)
	rc=$?
	echo "$out" | tail -n 40
	local summary p f e s
	summary=$(tail -n 1 <<<"$out")
	p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+')
	f=$(grep -oE '[0-9]+ failed' <<<"$summary" | grep -oE '[0-9]+')
	e=$(grep -oE '[0-9]+ errors?' <<<"$summary" | grep -oE '[0-9]+')
	s=$(grep -oE '[0-9]+ skipped' <<<"$summary" | grep -oE '[0-9]+')
	p=${p:-0} f=$((${f:-0} + ${e:-0})) s=${s:-0}
	# exit 5 = no tests collected: that is a failure of the layer, not a pass
	if ((rc != 0 && f == 0)); then f=1; fi
	echo "$name: $p passed, $f failed, $s skipped"
	((f == 0))
}

make_flags=()
[[ ${CI:-} == true ]] && make_flags+=(CI=true)

echo "== build"
targets=(all unit-bins tools)
[[ ${ASAN:-} == 1 ]] && targets=("$BUILD/hostbeat" unit-bins tools)
if ! make --no-print-directory -j2 "${make_flags[@]}" BUILD="$BUILD" "${targets[@]}" >"$log/build.out" 2>&1; then
	cat "$log/build.out"
	echo "build failed"
	echo "0 passed, 1 failed"
	exit 1
fi

layer unit tests/run_unit.sh "$BUILD"/tests/test_*
layer stream tests/stream/run.sh "$BUILD"
layer golden pytest_layer golden tests/pcap
layer dashboards pytest_layer dashboards tests/dashboards
if [[ ${ASAN:-} != 1 ]]; then
	layer fuzz make --no-print-directory -j2 fuzz-replay
fi
layer esdouble pytest_layer esdouble tests/esdouble
layer kbdouble pytest_layer kbdouble tests/kbdouble
layer docker pytest_layer docker tests/docker
layer integration pytest_layer integration tests/integration

echo
if ((${#failed_layers[@]})); then
	echo "failed layers: ${failed_layers[*]} (logs in $log)"
fi
echo "$total_pass passed, $total_fail failed, $total_skip skipped"
((total_fail == 0))
