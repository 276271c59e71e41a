#!/usr/bin/env bash
# npm test: every tier in turn, each with its own per-test timeout, so a hang
# in a unit test costs seconds, not minutes. Every tier runs even when an
# earlier one fails; the exit status is non-zero when any failed.
# One tier: `npm run test:unit` (or test:integration, test:e2e).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# Tests never reach a cluster they did not start: a developer's KUBECONFIG is
# dropped here, and a real cluster is opted into by BERTH_TEST_KUBECONFIG only.
unset KUBECONFIG
tiers=("${@:-unit integration e2e}")
read -r -a tiers <<<"${tiers[*]}"
declare -A timeout_ms=([unit]=10000 [integration]=60000 [e2e]=120000)
failed=()
for tier in "${tiers[@]}"; do
  [ -n "${timeout_ms[$tier]:-}" ] || { echo "test.sh: unknown tier $tier (unit, integration, e2e)" >&2; exit 2; }
  echo "── $tier tests (per-test timeout $((timeout_ms[$tier] / 1000)) s) ──"
  bash scripts/node.sh --test --test-concurrency=2 --test-timeout="${timeout_ms[$tier]}" "test/$tier/**/*.test.ts" || failed+=("$tier")
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "── failed tiers: ${failed[*]} ──"
  exit 1
fi
echo "── all tiers passed: ${tiers[*]} ──"
