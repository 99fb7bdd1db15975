#!/usr/bin/env bash
# Emulator benchmark, side by side with mosquitto 2.0 in the same run:
#  1. durable QoS 1 telemetry ingest over TLS from 1 and from 100 connections (msg/s);
#  2. N idle TLS devices (valid SAS, created in the registry first): time to connect them all
#     and server RSS per connection ((RSS after - RSS before) / N).
# Both servers serve the same throwaway ECDSA P-256 certificate; the same client
# (bench/emulator/load, one core) drives both. The emulator's data dir is on disk, not tmpfs.
#
# With BASELINE_BIN=path/to/an/older/iothub, that build runs as a third server in the same
# run (its own data dir and devices, rounds alternating), and the report adds new / baseline
# ratios: how a change moved the emulator, side by side on the same machine state.
#
# Usage: bench/emulator/run.sh
# Env: IDLE (10000), CONCURRENCY (100 connects in progress), MESSAGES_1 (200000),
#      MESSAGES_100 (300000), WINDOW_1 (100 in flight), WINDOW_100 (10 in flight per connection),
#      BODY (100 bytes), ROUNDS (5; medians and every round's ratio are reported),
#      IOTHUB_BIN (skip the build).
# Runs last about 2 s each: at 0.3 s (the old 30,000 messages) a single scheduling hiccup on
# this 2-core VM moved a result by 30 %.
# Needs: mosquitto, openssl, python3; builds iothub and the load generator in release mode.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common/lib.sh
idle_n=${IDLE:-10000}
concurrency=${CONCURRENCY:-100}
messages_1=${MESSAGES_1:-200000}
messages_100=${MESSAGES_100:-300000}
window_1=${WINDOW_1:-100}
window_100=${WINDOW_100:-10}
body=${BODY:-100}
rounds=${ROUNDS:-5}
(( idle_n >= 100 )) || { echo "IDLE must be at least 100" >&2; exit 2; }

# Each process (server, client) holds IDLE sockets: raise the soft limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(( $(ulimit -n) > idle_n + 200 )) || { echo "ulimit -n $(ulimit -n) is too low for IDLE=$idle_n" >&2; exit 2; }
work=$(mktemp -d -p /var/tmp bench-emulator.XXXXXX)
emu=
base=
BENCH_MOSQUITTO_PID=
baseline=${BASELINE_BIN:-}
cleanup() {
  for p in "$emu" "$base" "$BENCH_MOSQUITTO_PID"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${IOTHUB_BIN:-}" ]]; then cargo build --release -q -p iothub-cli; fi
iothub=${IOTHUB_BIN:-target/release/iothub}
(cd bench/emulator/load && CARGO_TARGET_DIR=../../../target cargo build --release -q)
load=target/release/emulator-load

bench_tls "$work"
mosq_port=$(bench_free_port)
bench_mosquitto "$work" "$mosq_port"
# Starts an emulator build ($1) on data dir $2, banner in $2.banner; prints its pid.
start_emulator() {
  "$1" --json emulator --data-dir "$2" --cert "$work/server.pem" --key "$work/server.key" \
    --ca "$work/ca.pem" --mqtt-port 0 --https-port 0 --no-plain --http-port 0 $(bench_amqp_flags "$1") \
    > "$2.banner" 2>"$2.log" &
  echo $!
}
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }
wait_banner() { for _ in $(seq 1 100); do [[ -s "$1" ]] && break; sleep 0.1; done; }
emu=$(start_emulator "$iothub" "$work/emu")
wait_banner "$work/emu.banner"
emu_addr=$(field "$work/emu.banner" mqttTls)
echo "creating $idle_n devices in the emulator's registry..." >&2
python3 bench/emulator/devices.py "$(field "$work/emu.banner" http)" "$(field "$work/emu.banner" serviceConnectionString)" d "$idle_n" "$work/creds.emu"
if [[ -n "$baseline" ]]; then
  base=$(start_emulator "$baseline" "$work/base")
  wait_banner "$work/base.banner"
  base_addr=$(field "$work/base.banner" mqttTls)
  echo "creating $idle_n devices in the baseline's registry..." >&2
  python3 bench/emulator/devices.py "$(field "$work/base.banner" http)" "$(field "$work/base.banner" serviceConnectionString)" d "$idle_n" "$work/creds.base"
fi
# mosquitto allows anonymous clients: same client ids, no credentials.
cut -f1 "$work/creds.emu" | sed 's/$/\t\t/' > "$work/creds.mosq"

results=$work/results.jsonl
: > "$results"
record() { python3 -c 'import json,sys; d=json.loads(sys.argv[3]); d["server"]=sys.argv[1]; d["test"]=sys.argv[2]; print(json.dumps(d))' "$@" >> "$results"; }

# 2. Idle connections first, on fresh servers.
idle_run() {
  local server=$1 addr=$2 creds=$3 pid=$4 before after
  sleep 1
  before=$(bench_rss_kib "$pid")
  coproc LOAD { "$load" idle "$addr" "$work/ca.pem" "$creds" "$idle_n" "$concurrency"; }
  local line
  read -r line <&"${LOAD[0]}"
  sleep 2
  after=$(bench_rss_kib "$pid")
  exec {LOAD[1]}>&-
  local held
  read -r held <&"${LOAD[0]}"
  wait "$LOAD_PID" || true
  record "$server" idle "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(json.loads(sys.argv[2])); d["rssBeforeKib"]=int(sys.argv[3]); d["rssAfterKib"]=int(sys.argv[4]); print(json.dumps(d))' "$line" "$held" "$before" "$after")"
  echo "$server idle: $line $held rss $before -> $after KiB" >&2
  sleep 2 # let the server tear the connections down
}
idle_run mosquitto "127.0.0.1:$mosq_port" "$work/creds.mosq" "$BENCH_MOSQUITTO_PID"
idle_run emulator "$emu_addr" "$work/creds.emu" "$emu"
if [[ -n "$baseline" ]]; then idle_run baseline "$base_addr" "$work/creds.base" "$base"; fi

# 1. Ingest, alternating the servers in every round.
ingest_run() {
  local server=$1 addr=$2 creds=$3 conns=$4 messages=$5 window=$6 line
  line=$("$load" ingest "$addr" "$work/ca.pem" "$creds" "$conns" "$messages" "$window" "$body")
  record "$server" "ingest$conns" "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["round"]=int(sys.argv[2]); print(json.dumps(d))' "$line" "$round")"
  echo "$server ingest: $line" >&2
}
for round in $(seq 1 "$rounds"); do
  for conns in 1 100; do
    if [[ $conns == 1 ]]; then m=$messages_1; w=$window_1; else m=$messages_100; w=$window_100; fi
    if (( round % 2 )); then
      ingest_run mosquitto "127.0.0.1:$mosq_port" "$work/creds.mosq" "$conns" "$m" "$w"
      ingest_run emulator "$emu_addr" "$work/creds.emu" "$conns" "$m" "$w"
      if [[ -n "$baseline" ]]; then ingest_run baseline "$base_addr" "$work/creds.base" "$conns" "$m" "$w"; fi
    else
      if [[ -n "$baseline" ]]; then ingest_run baseline "$base_addr" "$work/creds.base" "$conns" "$m" "$w"; fi
      ingest_run emulator "$emu_addr" "$work/creds.emu" "$conns" "$m" "$w"
      ingest_run mosquitto "127.0.0.1:$mosq_port" "$work/creds.mosq" "$conns" "$m" "$w"
    fi
  done
done

# Every acknowledged message is in the emulator's event log (the PUBACK promised it).
kill "$emu"; wait "$emu" 2>/dev/null || true; emu=
stored=$(python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("select count(*) from events").fetchone()[0])' "$work/emu/hub.db")

python3 - "$results" "$stored" "$(uptime)" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
stored, load = int(sys.argv[2]), sys.argv[3].strip()
def pick(server, test):
    return [r for r in rows if r["server"] == server and r["test"] == test]
print(f"machine: {load}")
print()
print("| ingest, QoS 1 over TLS, 100 B bodies | in flight | mosquitto 2.0 (not durable) msg/s | emulator (durable: WAL synced before the PUBACK) msg/s | emulator / mosquitto |")
print("|---|---:|---:|---:|---:|")
acked = 0
for conns in (1, 100):
    m, e = pick("mosquitto", f"ingest{conns}"), pick("emulator", f"ingest{conns}")
    acked += sum(r["messages"] for r in e)
    mm = statistics.median(r["msgPerSec"] for r in m)
    em = statistics.median(r["msgPerSec"] for r in e)
    runs = lambda rs: "/".join(f"{r['msgPerSec']:,.0f}" for r in rs)
    by_round = {r["round"]: r["msgPerSec"] for r in m}
    ratios = [r["msgPerSec"] / by_round[r["round"]] for r in e]
    rr = "/".join(f"{x:.2f}" for x in ratios)
    print(f"| {conns} connection{'s' if conns > 1 else ''} ({e[0]['messages']:,} messages, median of {len(e)}: {runs(e)} vs {runs(m)}) | {e[0]['window']} per connection | {mm:,.0f} | {em:,.0f} | {em/mm:.2f}x (per round {rr}; median {statistics.median(ratios):.2f}x, lowest {min(ratios):.2f}x) |")
print()
print(f"event log after the runs: {stored:,} rows for {acked:,} PUBACKs the emulator sent")
print()
print("| idle TLS connections | connected | time to connect all | connections/s | RSS before → after | RSS per connection | closed by server while held |")
print("|---|---:|---:|---:|---:|---:|---:|")
per = {}
for server in ("mosquitto", "emulator"):
    (r,) = pick(server, "idle")
    per[server] = (r["rssAfterKib"] - r["rssBeforeKib"]) / max(r["connected"], 1)
    per[server + "rate"] = r["connPerSec"]
    print(f"| {server} | {r['connected']:,} of {r['connections']:,} ({r['concurrency']} at once) | {r['seconds']:.2f} s | {r['connPerSec']:,.0f} | {r['rssBeforeKib']/1024:.1f} → {r['rssAfterKib']/1024:.1f} MiB | {per[server]:.1f} KiB | {r['closedByServerWhileHeld']} |")
print()
print(f"RSS per idle connection, emulator / mosquitto: {per['emulator']/max(per['mosquitto'],1e-9):.2f}x (target at most 2x); "
      f"set-up rate, emulator / mosquitto: {per['emulatorrate']/per['mosquittorate']:.2f}x (target at least 1x)")
if pick("baseline", "idle"):
    print()
    print("| this build / BASELINE_BIN, same run | median | per round |")
    print("|---|---:|---|")
    for conns in (1, 100):
        e, b = pick("emulator", f"ingest{conns}"), pick("baseline", f"ingest{conns}")
        by_round = {r["round"]: r["msgPerSec"] for r in b}
        ratios = [r["msgPerSec"] / by_round[r["round"]] for r in e]
        em, bm = (statistics.median(r["msgPerSec"] for r in x) for x in (e, b))
        print(f"| ingest, {conns} connection{'s' if conns > 1 else ''}: {em:,.0f} / {bm:,.0f} msg/s | {em/bm:.2f}x | {'/'.join(f'{x:.2f}' for x in ratios)} |")
    (r,) = pick("baseline", "idle")
    base_per = (r["rssAfterKib"] - r["rssBeforeKib"]) / max(r["connected"], 1)
    print(f"| RSS per idle TLS connection: {per['emulator']:.1f} / {base_per:.1f} KiB | {per['emulator']/max(base_per,1e-9):.2f}x | |")
    print(f"| idle connection set-up: {per['emulatorrate']:,.0f} / {r['connPerSec']:,.0f} per s | {per['emulatorrate']/r['connPerSec']:.2f}x | |")
PY
