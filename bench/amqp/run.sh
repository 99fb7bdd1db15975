#!/usr/bin/env bash
# Back-end reading over AMQP (issue 12; docs/amqp.md "Receiving events"), release builds, the
# emulator's data dir on disk (not tmpfs), every listener on port 0:
#  drain    a fresh emulator is filled with EVENTS telemetry events by durable QoS 1 ingest
#           over TLS from 100 connections (bench/emulator/load, 10 in flight each; its rate is
#           the ingest rate), then one consumer (bench/amqp, fe2o3-amqp as a client) reads
#           every partition from the start: events/s and drain / ingest, for each consumer
#           variant in DRAIN_VARIANTS. DRAIN_ROUNDS rounds, a fresh emulator each.
#  latency  DEVICES MQTT devices over TLS sending RATE msg/s in all for SECONDS, one receiver
#           on every partition (one consumer connection): PUBACK at the device -> event at the
#           receiver, n / p50 / p90 / p99 / max. LATENCY_ROUNDS runs on one emulator.
#  live     bench/emulator/run.sh's ingest (1 connection with 100 in flight, 100 connections
#           with 10 each; MESSAGES_1 / MESSAGES_100) with and without a consumer holding a live
#           receiver on each of the 4 partitions, alternating which goes first in each of
#           ROUNDS rounds, on one emulator; the consumer must receive every message.
#
# Usage: bench/amqp/run.sh [drain] [latency] [live]   (none: all three)
# Env: EVENTS (1000000), DRAIN_ROUNDS (3), DRAIN_VARIANTS ("plain/accept plain/settled
#      tls/accept": transport/settlement of the consumer, see bench/amqp/src/main.rs),
#      CREDIT (300), DEVICES (100), RATE (5000), LATENCY_SECONDS (20), WARMUP (2), LATENCY_ROUNDS (3),
#      LATENCY_VARIANT (plain/accept), MESSAGES_1 (200000), MESSAGES_100 (300000), ROUNDS (5),
#      LIVE_VARIANT (plain/accept), IOTHUB_BIN (skip the build).
# Needs: openssl, python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/common/lib.sh
parts=("$@")
(( ${#parts[@]} )) || parts=(drain latency live)
events=${EVENTS:-1000000}
drain_rounds=${DRAIN_ROUNDS:-3}
drain_variants=${DRAIN_VARIANTS:-plain/accept plain/settled tls/accept}
devices=${DEVICES:-100}
rate=${RATE:-5000}
seconds=${LATENCY_SECONDS:-20} # not SECONDS: bash's own
warmup=${WARMUP:-2}
latency_rounds=${LATENCY_ROUNDS:-3}
latency_variant=${LATENCY_VARIANT:-plain/accept}
messages_1=${MESSAGES_1:-200000}
messages_100=${MESSAGES_100:-300000}
rounds=${ROUNDS:-5}
live_variant=${LIVE_VARIANT:-plain/accept}
export CREDIT=${CREDIT:-300}

work=$(mktemp -d -p /var/tmp bench-amqp.XXXXXX)
emu=
live_pid=
cleanup() {
  for p in "$emu" "$live_pid"; do [[ -n "$p" ]] && kill "$p" 2>/dev/null; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -z "${IOTHUB_BIN:-}" ]]; then cargo build --release -q -p iothub-cli; fi
iothub=${IOTHUB_BIN:-target/release/iothub}
(cd bench/emulator/load && CARGO_TARGET_DIR=../../../target cargo build --release -q)
(cd bench/amqp && CARGO_TARGET_DIR=../../target cargo build --release -q)
load=target/release/emulator-load
bench=target/release/amqp-bench
bench_tls "$work"
ticks=$(getconf CLK_TCK)

# Starts a fresh emulator on data dir $1 (banner in $1.banner); sets emu, emu_* and the
# consumer's environment (SASL PLAIN with an iothubowner token for the whole hub).
start() {
  local dir=$1
  "$iothub" --json emulator --data-dir "$dir" --cert "$work/server.pem" --key "$work/server.key" \
    --ca "$work/ca.pem" --mqtt-port 0 --https-port 0 --no-plain --http-port 0 \
    --amqp-port 0 --amqp-plain-port 0 > "$dir.banner" 2>"$dir.log" &
  emu=$!
  for _ in $(seq 1 100); do [[ -s "$dir.banner" ]] && break; sleep 0.1; done
  emu_mqtt=$(field "$dir.banner" mqttTls)
  emu_http=$(field "$dir.banner" http)
  emu_cs=$(field "$dir.banner" serviceConnectionString)
  read -r emu_amqps emu_amqp eh_name hub_host < <(python3 - "$dir/endpoints.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
a = e["amqp"]
print(f"127.0.0.1:{a['port']}", f"127.0.0.1:{a['plainPort']}", a["eventHubName"], e.get("hostName", "localhost"))
PY
)
  export EVENTHUB=$eh_name PARTITIONS=4
  export AMQP_USER="iothubowner@sas.root.${hub_host%%.*}"
  AMQP_TOKEN=$(python3 - "$emu_cs" <<'PY'
import sys
sys.path.insert(0, "bench/emulator")
from devices import sas
parts = dict(p.split("=", 1) for p in sys.argv[1].split(";"))
print(sas(parts["HostName"], parts["SharedAccessKey"], parts["SharedAccessKeyName"]))
PY
)
  export AMQP_TOKEN
  python3 bench/emulator/devices.py "$emu_http" "$emu_cs" d 100 "$dir.creds"
}
stop() { kill "$emu"; wait "$emu" 2>/dev/null || true; emu=; }
field() { python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$1" "$2"; }
# The consumer's transport and settlement: "plain/accept" -> AMQP_ADDR, AMQP_CA, SETTLE.
variant() {
  local transport=${1%/*}
  export SETTLE=${1#*/}
  if [[ $transport == tls ]]; then export AMQP_ADDR=$emu_amqps AMQP_CA=$work/ca.pem
  else export AMQP_ADDR=$emu_amqp AMQP_CA=; fi
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
results=$work/results.jsonl
: > "$results"
record() { python3 -c 'import json,sys; d=json.loads(sys.argv[2]); d.update(json.loads(sys.argv[3])); d["part"]=sys.argv[1]; print(json.dumps(d))' "$@" >> "$results"; }

if [[ " ${parts[*]} " == *" drain "* ]]; then
  for round in $(seq 1 "$drain_rounds"); do
    start "$work/drain$round"
    line=$("$load" ingest "$emu_mqtt" "$work/ca.pem" "$work/drain$round.creds" 100 "$events" 10 100)
    echo "round $round fill: $line" >&2
    record fill "$line" "{\"round\":$round}"
    for v in $drain_variants; do
      variant "$v"
      sleep 1
      rss0=$(bench_rss_kib "$emu"); c0=$(cpu "$emu")
      out=$("$bench" drain "$events")
      c1=$(cpu "$emu"); rss1=$(bench_rss_kib "$emu")
      echo "round $round drain $v: $out (emulator cpu $(( c1 - c0 )) ticks, rss $rss0 -> $rss1 KiB)" >&2
      record drain "$out" "{\"round\":$round,\"variant\":\"$v\",\"emuCpuTicks\":$(( c1 - c0 )),\"rssBeforeKib\":$rss0,\"rssAfterKib\":$rss1}"
    done
    stop
  done
fi

if [[ " ${parts[*]} " == *" latency "* ]]; then
  start "$work/latency"
  variant "$latency_variant"
  for round in $(seq 1 "$latency_rounds"); do
    c0=$(cpu "$emu")
    out=$("$bench" latency "$emu_mqtt" "$work/ca.pem" "$work/latency.creds" "$devices" "$rate" "$seconds" "$warmup")
    c1=$(cpu "$emu")
    echo "latency round $round: $out (emulator cpu $(( c1 - c0 )) ticks)" >&2
    record latency "$out" "{\"round\":$round,\"variant\":\"$latency_variant\",\"emuCpuTicks\":$(( c1 - c0 ))}"
  done
  stop
fi

if [[ " ${parts[*]} " == *" live "* ]]; then
  start "$work/live"
  variant "$live_variant"
  ingest_run() { # $1: with|without, $2: connections, $3: messages, $4: window
    local mode=$1 conns=$2 m=$3 w=$4 line got='{}' c0 c1
    if [[ $mode == with ]]; then
      coproc LIVE { exec "$bench" live; } # exec: LIVE_PID is the consumer itself
      live_pid=$LIVE_PID
      read -r _ <&"${LIVE[0]}" # {"attached":true}
    fi
    c0=$(cpu "$emu")
    line=$("$load" ingest "$emu_mqtt" "$work/ca.pem" "$work/live.creds" "$conns" "$m" "$w" 100)
    c1=$(cpu "$emu")
    if [[ $mode == with ]]; then
      local lc
      lc=$(cpu "$live_pid")
      echo "$m" >&"${LIVE[1]}"
      read -r got <&"${LIVE[0]}"
      wait "$live_pid" || true
      live_pid=
      got=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d["consumerCpuTicks"]=int(sys.argv[2]); print(json.dumps(d))' "$got" "$lc")
    fi
    echo "round $round $mode consumers, $conns connections: $line $got (emulator cpu $(( c1 - c0 )) ticks)" >&2
    record "live-$mode" "$line" "$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(round=int(sys.argv[2]), emuCpuTicks=int(sys.argv[3])); print(json.dumps(d))' "$got" "$round" "$(( c1 - c0 ))")"
  }
  for round in $(seq 1 "$rounds"); do
    for conns in 1 100; do
      if [[ $conns == 1 ]]; then m=$messages_1; w=100; else m=$messages_100; w=10; fi
      if (( round % 2 )); then order=(without with); else order=(with without); fi
      for mode in "${order[@]}"; do ingest_run "$mode" "$conns" "$m" "$w"; done
    done
  done
  rss=$(bench_rss_kib "$emu")
  echo "emulator RSS after the live rounds: $rss KiB" >&2
  stop
fi

python3 - "$results" "$(uptime)" "$ticks" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
load, ticks = sys.argv[2].strip(), int(sys.argv[3])
print(f"machine: {load}")
med = statistics.median
fills = {r["round"]: r for r in rows if r["part"] == "fill"}
drains = [r for r in rows if r["part"] == "drain"]
if drains:
    print()
    print("| consumer (transport / settlement) | drain events/s, median (per round) | fill (ingest) msg/s, median (per round) | drain / ingest, median (per round) | emulator CPU s per 1M events read | consumer CPU s |")
    print("|---|---:|---:|---:|---:|---:|")
    for v in dict.fromkeys(r["variant"] for r in drains):
        rs = [r for r in drains if r["variant"] == v]
        ratios = [r["eventsPerSec"] / fills[r["round"]]["msgPerSec"] for r in rs]
        per = "/".join(f"{r['eventsPerSec']:,.0f}" for r in rs)
        fper = "/".join(f"{fills[r['round']]['msgPerSec']:,.0f}" for r in rs)
        cpu = med(r["emuCpuTicks"] / ticks * 1e6 / r["events"] for r in rs)
        ccpu = med(r.get("cpuSeconds", float("nan")) for r in rs)
        print(f"| {v} | {med(r['eventsPerSec'] for r in rs):,.0f} ({per}) | {med(fills[r['round']]['msgPerSec'] for r in rs):,.0f} ({fper}) | "
              f"{med(ratios):.2f}x ({'/'.join(f'{x:.2f}' for x in ratios)}) | {cpu:.2f} | {ccpu:.2f} |")
    print()
    print("RSS of the emulator before -> after each drain (KiB): " + ", ".join(f"{r['rssBeforeKib']}->{r['rssAfterKib']}" for r in drains))
lat = [r for r in rows if r["part"] == "latency"]
if lat:
    print()
    print("| PUBACK at the device -> event at the receiver | n | lost | duplicated | p50 | p90 | p99 | p99.9 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in lat:
        print(f"| round {r['round']}: {r['devices']} devices, {r['ratePerSec']:,.0f} msg/s, {r['seconds']} s ({r['variant']}) | {r['n']:,} | {r['lost']} | {r['duplicated']} | "
              f"{r['p50Ms']:.3f} ms | {r['p90Ms']:.3f} ms | {r['p99Ms']:.3f} ms | {r['p999Ms']:.3f} ms | {r['maxMs']:.3f} ms |")
live = [r for r in rows if r["part"].startswith("live-")]
if live:
    print()
    print("| ingest over TLS, QoS 1, 100 B bodies | without consumers msg/s, median (per round) | with 4 live consumers msg/s, median (per round) | with / without, median (per round) | consumers received / sent | emulator CPU µs per message without / with |")
    print("|---|---:|---:|---:|---:|---:|")
    for conns in (1, 100):
        wo = sorted((r for r in live if r["part"] == "live-without" and r["connections"] == conns), key=lambda r: r["round"])
        wi = sorted((r for r in live if r["part"] == "live-with" and r["connections"] == conns), key=lambda r: r["round"])
        ratios = [a["msgPerSec"] / b["msgPerSec"] for a, b in zip(wi, wo)]
        got = sum(r["received"] for r in wi); sent = sum(r["messages"] for r in wi)
        cpu = lambda rs: med(r["emuCpuTicks"] / ticks * 1e6 / r["messages"] for r in rs)
        runs = lambda rs: "/".join(f"{r['msgPerSec']:,.0f}" for r in rs)
        print(f"| {conns} connection{'s' if conns > 1 else ''} ({wo[0]['messages']:,} messages) | {med(r['msgPerSec'] for r in wo):,.0f} ({runs(wo)}) | "
              f"{med(r['msgPerSec'] for r in wi):,.0f} ({runs(wi)}) | {med(ratios):.2f}x ({'/'.join(f'{x:.2f}' for x in ratios)}) | {got:,} / {sent:,} | {cpu(wo):.2f} / {cpu(wi):.2f} |")
    print()
    print("consumer process CPU per round (s): " + ", ".join(f"{r['consumerCpuTicks']/ticks:.2f}" for r in live if r["part"] == "live-with"))
PY
