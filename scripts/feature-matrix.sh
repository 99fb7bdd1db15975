#!/usr/bin/env bash
# Builds iothub-proto with every combination of its additive features (2^4 = 16), denying
# warnings, so that no combination is broken or warns.
set -euo pipefail
cd "$(dirname "$0")/.."

features=(alloc std hmac json)
n=${#features[@]}
failed=0
for ((mask = 0; mask < (1 << n); mask++)); do
  combo=()
  for ((i = 0; i < n; i++)); do
    if (( mask & (1 << i) )); then combo+=("${features[$i]}"); fi
  done
  list=$(IFS=,; echo "${combo[*]}")
  if RUSTFLAGS="-D warnings" cargo check -q -p iothub-proto --no-default-features --features "$list" --target-dir target/feature-matrix 2>/tmp/feature-matrix.err; then
    echo "feature-matrix: ok   [${list:-no features}]"
  else
    echo "feature-matrix: FAIL [${list:-no features}]"; cat /tmp/feature-matrix.err; failed=1
  fi
done
exit "$failed"
