#!/usr/bin/env bash
# Service-side latency of the emulator, release build:
#   - direct-method round trip through the REST API to one of 100 connected MQTT devices
#     (sequential, then 10 concurrent callers);
#   - delay from a telemetry PUBACK at the device to the message on the SSE stream.
# The benchmarks are ignored tests in crates/iothub-emulator/tests/it/service_bench.rs; each
# prints a `BENCH …` line with n, p50, p90, p99 and max.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo test --release --locked -p iothub-emulator --test it service_bench -- --ignored --nocapture --test-threads=1 2>&1 |
  grep -o 'BENCH .*'
