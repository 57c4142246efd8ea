#!/usr/bin/env bash
# `make test-stress`: the harness's own tests (`make test`) while a docker chaos run from a clean clone
# of this commit runs beside them, one run after another until the tests end. A test that holds only on
# an idle machine (a request count, a sleep, a deadline standing in for a state) fails here; one that
# waits for the state the code reports does not. The chaos runs' own outcomes are printed, not judged
# (the seed's known defects make them end 10). STRESS_ROUNDS=N runs make test N times in a row (stops at
# the first failure).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
here=$(pwd)
beside="$(dirname "$here")/$(basename "$here")-stress-$$"   # a sibling, so ../shared is found the same way
log="$beside.chaos.log"
loop_pid=""

# shellcheck disable=SC2329  # invoked by the EXIT trap
cleanup() {
  if [[ -n "$loop_pid" ]] && kill -0 "$loop_pid" 2>/dev/null; then
    # SIGTERM to the loop's process group: the harness tears its run down and exits 130
    kill -TERM -- "-$loop_pid" 2>/dev/null || true
    # the whole group: the harness under the loop's shell tears its run down (and writes its report) after
    # the shell is gone; removing the clone before that left a reports/ folder behind
    for _ in $(seq 1 180); do kill -0 -- "-$loop_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$loop_pid" 2>/dev/null || true
  fi
  rm -rf "$beside"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== stress: a clean clone of $(git rev-parse --short HEAD) in $beside runs make chaos PLATFORM=docker in a loop"
git clone -q "$here" "$beside"
make -C "$beside" venv >/dev/null
tools/docker-ready.sh
# its own process group (set -m), so the whole loop and its harness runs can be stopped together
set -m
(
  n=0
  while :; do
    n=$((n + 1))
    code=0
    make -C "$beside" chaos PLATFORM=docker >>"$log" 2>&1 || code=$?
    echo "chaos run $n beside the tests: make exit $code, harness exit $(cat "$beside/reports/exit-code" 2>/dev/null || echo '?')" >&2
  done
) &
loop_pid=$!
set +m
rounds=${STRESS_ROUNDS:-1}
for round in $(seq 1 "$rounds"); do
  echo "== make test, round $round of $rounds, with the chaos loop beside it (log: $log)"
  code=0 t0=$(date +%s)
  make test PYTEST_ARGS="${PYTEST_ARGS:-}" || code=$?
  echo "== stress: round $round of $rounds: make test exit $code in $(( $(date +%s) - t0 ))s"
  [[ $code == 0 ]] || exit "$code"
done
exit 0
