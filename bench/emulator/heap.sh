#!/usr/bin/env bash
# Heap held per idle TLS connection, by allocation site: runs one emulator build under
# heaptrack, connects IDLE devices (valid SAS, created in the registry first) with the
# benchmark's load client, and while they are held stops the server with SIGKILL, so that
# heaptrack's "leaked" figures are exactly what was live with every connection open (the
# start-up heap included; heap_sites.py lists it by site, so per-connection sites stand out).
#
# Usage: bench/emulator/heap.sh OUT_DIR [IOTHUB_BIN]
# Env: IDLE (2000), CONCURRENCY (100).
# Writes OUT_DIR/heaptrack.zst, OUT_DIR/summary.txt (the server's RSS before and after
# connecting, heaptrack_print's live sites) and OUT_DIR/leaked.txt (live bytes by stack, read by
# bench/emulator/heap_sites.py).
# Needs: heaptrack, openssl, python3; run.sh's load client (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common/lib.sh
out=$(realpath -m "$1")
iothub=${2:-target/release/iothub}
idle_n=${IDLE:-2000}
concurrency=${CONCURRENCY:-100}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
work=$(mktemp -d -p /var/tmp bench-heap.XXXXXX)
emu=
cleanup() {
  [[ -n "$emu" ]] && kill -9 "$emu" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
load=${LOAD_BIN:-target/release/emulator-load}
[[ -x "$load" ]] || (cd bench/emulator/load && CARGO_TARGET_DIR=../../../target cargo build --release -q)

bench_tls "$work"
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }
mkdir -p "$work/emu"
heaptrack -o "$out/heaptrack" "$iothub" --json emulator --data-dir "$work/emu" \
  --cert "$work/server.pem" --key "$work/server.key" --ca "$work/ca.pem" \
  --mqtt-port 0 --https-port 0 --no-plain --http-port 0 $(bench_amqp_flags "$iothub") \
  > "$work/banner" 2>"$work/log" &
for _ in $(seq 1 300); do [[ -s "$work/banner" ]] && grep -q mqttTls "$work/banner" && break; sleep 0.1; done
banner=$(grep -m1 '^{' "$work/banner")
echo "$banner" > "$work/banner.json"
emu=$(pgrep -f -n -- "--data-dir $work/emu" || true)
python3 bench/emulator/devices.py "$(field "$work/banner.json" http)" \
  "$(field "$work/banner.json" serviceConnectionString)" d "$idle_n" "$work/creds"
sleep 1
before=$(bench_rss_kib "$emu")
coproc LOAD { "$load" idle "$(field "$work/banner.json" mqttTls)" "$work/ca.pem" "$work/creds" "$idle_n" "$concurrency"; }
read -r line <&"${LOAD[0]}"
sleep 2
after=$(bench_rss_kib "$emu")
kill -9 "$emu"
emu=
exec {LOAD[1]}>&-
wait "$LOAD_PID" || true
wait || true
file=$(ls -t "$out"/heaptrack*.zst | head -1)
{
  echo "$line"
  echo "rss $before -> $after KiB; per connection $(( (after - before) / idle_n )) KiB"
  heaptrack_print -f "$file" --print-leaks 1 --print-peaks 0 --print-allocators 0 \
    --print-temporary 0 -n 40 -s 8
} > "$out/summary.txt" 2>&1
# Live bytes by stack, for heap_sites.py.
heaptrack_print -f "$file" --print-leaks 0 --print-peaks 0 --print-allocators 0 \
  --print-temporary 0 --flamegraph-cost-type leaked -F "$out/leaked.txt" > /dev/null 2>&1
echo "$out/summary.txt; compare: bench/emulator/heap_sites.py $idle_n new=$out/leaked.txt [old=…/leaked.txt]"
