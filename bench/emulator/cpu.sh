#!/usr/bin/env bash
# CPU time per acknowledged message, by server thread, for durable QoS 1 ingest over TLS:
# less noisy on a shared machine than msg/s, because it counts the work done, not how long
# the scheduler let it run. Each build runs on its own data dir and devices; the builds
# alternate in every round. Threads are grouped by name (tokio workers, the store's writer
# `iothub-db`, its WAL syncer `iothub-db-sync`, the rest).
#
# Usage: bench/emulator/cpu.sh IOTHUB_BIN [BASELINE_BIN]
# Env: CONNS (100), MESSAGES (300000), WINDOW (10 in flight per connection), BODY (100),
#      ROUNDS (3).
# Needs: openssl, python3; run.sh's load client (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common/lib.sh
conns=${CONNS:-100}
messages=${MESSAGES:-300000}
window=${WINDOW:-10}
body=${BODY:-100}
rounds=${ROUNDS:-3}
bins=("$@")
(( ${#bins[@]} >= 1 )) || { echo "usage: $0 IOTHUB_BIN [BASELINE_BIN]" >&2; exit 2; }
work=$(mktemp -d -p /var/tmp bench-cpu.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
load=${LOAD_BIN:-target/release/emulator-load}
[[ -x "$load" ]] || (cd bench/emulator/load && CARGO_TARGET_DIR=../../../target cargo build --release -q)
bench_tls "$work"
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }
# Per-thread-group CPU seconds of process $1, as JSON {group: seconds}.
cpu() {
  python3 - "$1" <<'PY'
import json, os, sys
pid, hz, groups = sys.argv[1], os.sysconf("SC_CLK_TCK"), {}
for tid in os.listdir(f"/proc/{pid}/task"):
    try:
        stat = open(f"/proc/{pid}/task/{tid}/stat").read()
    except OSError:
        continue
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    f = stat[stat.rindex(")") + 2:].split()
    g = "tokio" if name.startswith("tokio") else name if name.startswith("iothub-db") else "other"
    groups[g] = groups.get(g, 0) + (int(f[11]) + int(f[12])) / hz
print(json.dumps(groups))
PY
}
addrs=()
for i in "${!bins[@]}"; do
  d="$work/s$i"
  "${bins[$i]}" --json emulator --data-dir "$d" --cert "$work/server.pem" --key "$work/server.key" \
    --ca "$work/ca.pem" --mqtt-port 0 --https-port 0 --no-plain --http-port 0 \
    $(bench_amqp_flags "${bins[$i]}") > "$d.banner" 2>"$d.log" &
  pids+=($!)
  for _ in $(seq 1 100); do [[ -s "$d.banner" ]] && break; sleep 0.1; done
  addrs+=("$(field "$d.banner" mqttTls)")
  python3 bench/emulator/devices.py "$(field "$d.banner" http)" "$(field "$d.banner" serviceConnectionString)" d "$conns" "$d.creds"
done
results=$work/results.jsonl
: > "$results"
for round in $(seq 1 "$rounds"); do
  order=("${!bins[@]}")
  if (( round % 2 == 0 )); then order=($(printf '%s\n' "${order[@]}" | tac)); fi
  for i in "${order[@]}"; do
    before=$(cpu "${pids[$i]}")
    line=$("$load" ingest "${addrs[$i]}" "$work/ca.pem" "$work/s$i.creds" "$conns" "$messages" "$window" "$body")
    after=$(cpu "${pids[$i]}")
    python3 -c 'import json,sys; print(json.dumps({"bin": int(sys.argv[1]), "round": int(sys.argv[2]), "run": json.loads(sys.argv[3]), "before": json.loads(sys.argv[4]), "after": json.loads(sys.argv[5])}))' \
      "$i" "$round" "$line" "$before" "$after" >> "$results"
    echo "build $i round $round: $line" >&2
  done
done
python3 - "$results" "${bins[@]}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
bins = sys.argv[2:]
print(f"| build | round | msg/s | tokio µs/msg | writer µs/msg | syncer µs/msg | other µs/msg | total µs/msg |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
totals = {}
for r in sorted(rows, key=lambda r: (r["bin"], r["round"])):
    n = r["run"]["messages"]
    d = {g: (r["after"].get(g, 0) - r["before"].get(g, 0)) * 1e6 / n for g in set(r["after"]) | set(r["before"])}
    total = sum(d.values())
    totals.setdefault(r["bin"], []).append((r["run"]["msgPerSec"], total))
    print(f"| {bins[r['bin']]} | {r['round']} | {r['run']['msgPerSec']:,.0f} | {d.get('tokio',0):.2f} | {d.get('iothub-db',0):.2f} | {d.get('iothub-db-sync',0):.2f} | {d.get('other',0):.2f} | {total:.2f} |")
print()
for b, t in totals.items():
    print(f"{bins[b]}: median {statistics.median(x for x, _ in t):,.0f} msg/s, {statistics.median(y for _, y in t):.2f} µs CPU per message")
PY
