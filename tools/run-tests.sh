#!/usr/bin/env bash
# `make test` in three phases, each away from the load of the one before:
#   1. every test but the `timing` and `solo` ones, in parallel (pytest-xdist, TEST_WORKERS workers;
#      0 runs serially): containers, stacks, CLI runs;
#   2. the `timing` tests, in parallel among themselves: they hold real Envoy's detector to fractions of
#      a second, which the docker suites' load starved (an ejection seen 3 s late);
#   3. the `solo` tests, alone: they measure this machine's throughput (a capacity ramp).
# Usage: run-tests.sh PYTHON WORKERS [PYTEST ARGS...]
set -uo pipefail
py=$1 workers=$2
shift 2
# Bytecode is written (to the gitignored __pycache__ folders; images' build contexts exclude them): with
# PYTHONDONTWRITEBYTECODE set, as on many CI images, every pytest worker re-compiled and re-rewrote the
# asserts of all 90 test modules (5 s of CPU each) and every harness subprocess re-compiled the harness.
unset PYTHONDONTWRITEBYTECODE
if [[ $workers == 0 ]]; then
  parallel=(-p no:xdist) timing_parallel=(-p no:xdist)
else
  parallel=(-n "$workers" --dist loadscope)
  # a timing test is one Envoy and a client at a few requests a second, waiting on Envoy's timers
  # (≈ 0.1 core): twice the workers keeps the phase near its longest schedule
  timing_parallel=(-n "$((workers * 2))" --dist loadscope)
fi
codes=()
echo "== 1/3: the tests in parallel"
"$py" -m pytest "${parallel[@]}" -m "not timing and not solo" "$@"; codes+=($?)
echo "== 2/3: the timing tests (real Envoy's detector), in parallel among themselves"
"$py" -m pytest "${timing_parallel[@]}" -m timing "$@"; codes+=($?)
echo "== 3/3: the solo tests, alone (they measure this machine's throughput)"
"$py" -m pytest -p no:xdist -m solo "$@"; codes+=($?)
# 5 (no test selected) is fine for a phase (e.g. -k picks only solo tests), not for all three
if [[ ${codes[*]} == "5 5 5" ]]; then exit 5; fi
for c in "${codes[@]}"; do
  [[ $c == 0 || $c == 5 ]] || exit "$c"
done
exit 0
