#!/usr/bin/env bash
# `make test`: every test but the `solo` ones in parallel (pytest-xdist, TEST_WORKERS workers; 0 runs
# serially), then the `solo` tests alone: they measure throughput on the real machine (the capacity
# ramp), which the parallel phase's own load would distort. Usage: run-tests.sh PYTHON WORKERS [PYTEST ARGS...]
set -uo pipefail
py=$1 workers=$2
shift 2
if [[ $workers == 0 ]]; then parallel=(-p no:xdist); else parallel=(-n "$workers" --dist loadscope); fi
codes=()
for phase in parallel solo; do
  if [[ $phase == parallel ]]; then
    "$py" -m pytest "${parallel[@]}" -m "not solo" "$@"
  else
    echo "== the solo tests, alone (they measure throughput on this machine)"
    "$py" -m pytest -p no:xdist -m solo "$@"
  fi
  codes+=($?)
done
# 5 (no test selected) is fine for one phase (e.g. -k picks only solo tests), not for both
if [[ ${codes[0]} == 5 && ${codes[1]} == 5 ]]; then exit 5; fi
for c in "${codes[@]}"; do
  [[ $c == 0 || $c == 5 ]] || exit "$c"
done
exit 0
