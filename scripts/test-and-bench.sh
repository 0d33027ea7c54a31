#!/usr/bin/env bash
# `make test`'s last stage: the test suite and every benchmark at --quick, side by side (the suite
# mostly waits on chains, nodes and browsers; the benchmarks mostly compute). The suite prints as
# it runs; the benchmarks' figures are printed when both are done, then the suite's summary line
# again, so that the run still ends with it. Fails if either fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BENCH_PY=${BENCH_PY:-.venv-bench/bin/python}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

(
  for b in benchmarks/[a-z]*.py; do
    echo "== $b --quick"
    start=$SECONDS
    "$BENCH_PY" "$b" --quick || { echo "== $b --quick FAILED"; exit 1; }
    echo "== $b --quick took $((SECONDS - start)) s"  # where CI's time goes, next to the suite's
  done
) > "$logs/bench.log" 2>&1 &
bench_pid=$!

# shellcheck disable=SC2086 # word splitting of the pytest options is wanted
"$PY" -m pytest ${PYTEST_WORKERS:-} ${PYTEST_ARGS:-} 2>&1 | tee "$logs/pytest.log"
tests=${PIPESTATUS[0]}
wait "$bench_pid"
benches=$?

echo
echo "== every benchmark at --quick (run beside the suite; figures printed, never asserted)"
cat "$logs/bench.log"
echo
[ "$benches" -eq 0 ] || echo "bench-quick FAILED (exit $benches): see its output above"
tail -n 1 "$logs/pytest.log"
[ "$tests" -eq 0 ] && [ "$benches" -eq 0 ]
