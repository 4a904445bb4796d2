#!/usr/bin/env bash
# The test command (`npm test`): prepares the machine, runs vitest, and ends with one plain line
# `N passed, N failed` (plus `, N skipped` when some were) taken from vitest's JSON totals.
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh test/support    # vitest filters and flags pass through
# Exits with vitest's exit code.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh || exit $?

# vitest only collects test/**/*.test.ts: say so when a test file sits elsewhere.
stray="$(find . \( -path ./node_modules -o -path ./.git -o -path ./gen -o -path ./test \) -prune \
  -o -name '*.test.ts' -print 2>/dev/null | head -n 5)"
if [ -n "$stray" ]; then
  printf 'test: warning: not collected (tests belong under test/): %s\n' "${stray//$'\n'/ }" >&2
fi

results="$(mktemp "${TMPDIR:-/tmp}/agentainer-vitest.XXXXXX.json")"
rm -f "$results" # vitest writes it; its absence afterwards means vitest crashed
trap 'rm -f "$results"' EXIT

npx --no-install vitest run --reporter=default --reporter=json --outputFile.json="$results" "$@"
code=$?

summary=""
if [ -s "$results" ]; then
  summary="$(node -e '
    const r = JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"));
    const n = (k) => (Number.isInteger(r[k]) ? r[k] : 0);
    const skipped = n("numPendingTests") + n("numTodoTests");
    let failed = n("numFailedTests");
    // A red run with no failed test (a file that cannot load, an unhandled error) still fails.
    if (failed === 0 && process.argv[2] !== "0") failed = Math.max(n("numFailedTestSuites"), 1);
    let line = `${n("numPassedTests")} passed, ${failed} failed`;
    if (skipped > 0) line += `, ${skipped} skipped`;
    console.log(line);
  ' "$results" "$code" 2>/dev/null)" || summary=""
  cp "$results" .vitest-results.json 2>/dev/null || true
fi

if [ -z "$summary" ]; then
  # vitest stopped before reporting (config error, global setup failure, crash).
  echo "0 passed, 1 failed"
  [ "$code" -eq 0 ] && code=1
  exit "$code"
fi

echo "$summary"
exit "$code"
