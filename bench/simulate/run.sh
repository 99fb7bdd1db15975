#!/usr/bin/env bash
# Fleet-simulator benchmark: `iothub emulator` in one process, `iothub simulate`
# in another, both release builds, on loopback. Prints the simulator's JSON summary and the peak
# memory (RSS) of both processes.
#
#   bench/simulate/run.sh [DEVICES] [RATE] [DURATION] [extra simulate flags, e.g. --plain]
#
# Needs ~2 file descriptors per device in each process (`ulimit -n` is raised to the hard limit).
set -euo pipefail
DEVICES=${1:-10000}
RATE=${2:-2000}
DURATION=${3:-60}
shift $(( $# < 3 ? $# : 3 ))
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${IOTHUB_BIN:-$ROOT/target/release/iothub}
[ -x "$BIN" ] || (cd "$ROOT" && cargo build --release -p iothub-cli)
ulimit -n "$(ulimit -Hn)"
DATA=$(mktemp -d /tmp/iothub-bench-XXXXXX)
"$BIN" emulator --data-dir "$DATA" --mqtt-port 0 --https-port 0 --plain-port 0 --http-port 0 \
  --amqp-port 0 --amqp-plain-port 0 >"$DATA/emulator.log" 2>&1 &
EMU=$!
trap 'kill $EMU 2>/dev/null; wait $EMU 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 300); do [ -f "$DATA/endpoints.json" ] && break; sleep 0.1; done
/usr/bin/time -f '%M %e' -o "$DATA/sim.time" \
  "$BIN" --json simulate --data-dir "$DATA" --devices "$DEVICES" --rate "$RATE" --duration "$DURATION" "$@" \
  >"$DATA/summary.json" || true
EMU_RSS_KB=$(awk '/VmHWM/ {print $2}' "/proc/$EMU/status")
read -r SIM_RSS_KB SIM_WALL <"$DATA/sim.time"
cat "$DATA/summary.json"
echo "simulator peak RSS: $((SIM_RSS_KB / 1024)) MiB ($((SIM_RSS_KB / DEVICES)) KiB/device), wall ${SIM_WALL} s"
echo "emulator peak RSS:  $((EMU_RSS_KB / 1024)) MiB"
