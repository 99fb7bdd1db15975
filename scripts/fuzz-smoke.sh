#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/fuzz_targets for a short smoke time (default 8 s each,
# FUZZ_SECONDS overrides). Fails if any target crashes or does not build.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${FUZZ_SECONDS:-8}
targets=$(cargo +nightly fuzz list)
[ -n "$targets" ] || { echo "fuzz-smoke: no fuzz targets found"; exit 1; }
cargo +nightly fuzz build -O
for t in $targets; do
  echo "fuzz-smoke: $t for ${seconds}s"
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$seconds" -print_final_stats=0 >"/tmp/fuzz-$t.log" 2>&1 || {
    echo "fuzz-smoke: $t FAILED"; tail -40 "/tmp/fuzz-$t.log"; exit 1;
  }
  grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "/tmp/fuzz-$t.log" | sed "s/^/fuzz-smoke: $t: /" || true
done
echo "fuzz-smoke: all targets clean"
