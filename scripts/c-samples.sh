#!/usr/bin/env bash
# The C API's C-side suite (docs/c-api.md): builds libiothub_c and examples/c with CMake
# (plain, and with AddressSanitizer + UndefinedBehaviorSanitizer), then runs
#   - the C unit tests (examples/c/tests/test_iothub.c),
#   - every C sample as a process against a real emulator (fresh data dir, free
#     ports), asserting what the hub saw through the CLI,
# (The emulator runs on a data dir on disk: with --in-memory, identities created through the
# CLI are refused at MQTT CONNECT with CONNACK 5 on this version.)
# three times: plain, under ASan+UBSan, and under valgrind memcheck (--error-exitcode=1).
# Needs cmake, pkg-config, libmosquitto-dev and valgrind (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
deadline=$(( $(date +%s) + ${C_SAMPLES_TIMEOUT:-400} ))

cargo build --locked --quiet -p iothub-cli
cargo build --locked --quiet -p iothub-c --release
out="$root/target/c-samples"
for flavour in plain asan; do
  sanitize=OFF; [ "$flavour" = asan ] && sanitize=ON
  cmake -S examples/c -B "$out/$flavour" -DIOTHUB_SANITIZE=$sanitize -DCMAKE_BUILD_TYPE=Debug >/dev/null
  cmake --build "$out/$flavour" -j2 >/dev/null
done

iothub="$root/target/debug/iothub"
dir="$(mktemp -d)"
"$iothub" emulator --data-dir "$dir" --mqtt-port 0 --https-port 0 --plain-port 0 --http-port 0 >"$dir/emulator.log" 2>&1 &
emulator=$!
cleanup() {
  kill "$emulator" 2>/dev/null || true
  wait "$emulator" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  [ -s "$dir/endpoints.json" ] && break
  kill -0 "$emulator" 2>/dev/null || { echo "c-samples: the emulator exited" >&2; cat "$dir/emulator.log" >&2; exit 1; }
  sleep 0.1
done
endpoint() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$dir/endpoints.json" "$1"; }
export IOTHUB_CA_FILE="$dir/ca.pem"
export IOTHUB_MQTT_PORT="$(endpoint mqttTls | sed 's/.*://')"
hub() { "$iothub" hub --data-dir "$dir" "$@"; }
# rest PATH: GET on the emulator's REST API as iothubowner (docs/rest-api.md).
rest() {
  local token
  token=$("$iothub" sas --connection-string "$(endpoint serviceConnectionString)" --duration 300)
  curl -sf -H "Authorization: $token" "http://$(endpoint http)$1"
}

fail() { echo "c-samples: FAIL: $*" >&2; exit 1; }
check_time() { [ "$(date +%s)" -lt "$deadline" ] || fail "over the time budget"; }
# json_check FILE PYTHON-EXPR: the expression (over `d`, the parsed JSON, or `lines`) must hold.
json_check() { python3 - "$1" "$2" <<'PY' || fail "$2 does not hold for $(cat "$1")"
import json, sys
text = open(sys.argv[1]).read()
try:
    d = json.loads(text)
except ValueError:
    d = [json.loads(l) for l in text.splitlines() if l.strip()]
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
}

# run FLAVOUR LOG PROGRAM: runs a sample or test binary as FLAVOUR, output in LOG.
run() {
  local flavour=$1 log=$2 program=$3
  case "$flavour" in
    plain) "$out/plain/$program" >"$log" 2>&1 ;;
    asan) ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
            "$out/asan/$program" >"$log" 2>&1 ;;
    valgrind) valgrind --quiet --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
                "$out/plain/$program" >"$log" 2>&1 ;;
  esac
}
run_ok() { run "$@" || { cat "$2" >&2; fail "$3 ($1) exited non-zero"; }; }
wait_for_line() { # LOG PATTERN SECONDS
  for _ in $(seq 1 $(( $3 * 10 ))); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  cat "$1" >&2; fail "no '$2' in $1"
}

for flavour in plain asan valgrind; do
  check_time
  logs="$dir/logs-$flavour"; mkdir -p "$logs"
  run_ok "$flavour" "$logs/unit.log" test_iothub
  echo "c-samples: $flavour: $(tail -1 "$logs/unit.log")"

  # Telemetry with properties.
  dev="tel-$flavour"
  IOTHUB_DEVICE_CONNECTION_STRING="$(hub identity create "$dev")" IOTHUB_MESSAGE_COUNT=2 run_ok "$flavour" "$logs/telemetry.log" telemetry
  hub monitor --json --since 0 --device "$dev" --properties --count 2 --timeout 10 >"$logs/telemetry.json" || fail "monitor $dev"
  json_check "$logs/telemetry.json" 'len(d) == 2 and all(m["event"]["payload"] == "Bonjour MQTT from Mosquitto" and m["event"]["properties"]["application"]["sample"] == "telemetry.c" and m["event"]["properties"]["system"]["content-type"] == "text/plain" and m["event"]["properties"]["system"]["message-id"] == "msg-%d" % i for i, m in enumerate(d))'
  echo "c-samples: $flavour: telemetry ok"

  # Cloud-to-device: received with its properties, completed (nothing left queued).
  dev="c2d-$flavour"
  cs="$(hub identity create "$dev")"
  IOTHUB_DEVICE_CONNECTION_STRING="$cs" IOTHUB_RUN_SECONDS=60 run "$flavour" "$logs/c2d.log" c2d &
  sample=$!
  wait_for_line "$logs/c2d.log" "subscribed to" 30
  hub c2d "$dev" "hello from the cloud" -p colour=blue --ack full --message-id "c2d-$flavour" >/dev/null
  wait "$sample" || { cat "$logs/c2d.log" >&2; fail "c2d ($flavour) exited non-zero"; }
  grep -q "C2D message: hello from the cloud" "$logs/c2d.log" || fail "c2d body not printed"
  grep -q "property colour = blue" "$logs/c2d.log" || fail "c2d property not printed"
  # The PUBACK completes the message: the hub records positive feedback and the queue is empty.
  for _ in $(seq 1 50); do
    rest "/messages/serviceBound/feedback?max=64" >"$logs/c2d-feedback.json" || true
    grep -q "c2d-$flavour" "$logs/c2d-feedback.json" && break
    sleep 0.1
  done
  json_check "$logs/c2d-feedback.json" 'any(f["originalMessageId"] == "c2d-'"$flavour"'" and f["statusCode"] == "Success" for f in d)'
  rest "/devices/$dev" >"$logs/c2d-device.json"
  json_check "$logs/c2d-device.json" 'd["cloudToDeviceMessageCount"] == 0'
  echo "c-samples: $flavour: c2d ok"

  # Twin: PATCH reported, then GET.
  dev="twin-$flavour"
  IOTHUB_DEVICE_CONNECTION_STRING="$(hub identity create "$dev")" run_ok "$flavour" "$logs/twin.log" twin
  grep -q '"temperature":32' "$logs/twin.log" || fail "twin GET did not show the reported temperature"
  hub --json twin show "$dev" >"$logs/twin.json"
  json_check "$logs/twin.json" 'd["properties"]["reported"]["temperature"] == 32'
  echo "c-samples: $flavour: twin ok"

  # Plug and Play thermostat: model id, writable ack, command answer, telemetry, token renewal.
  dev="pnp-$flavour"
  cs="$(hub identity create "$dev")"
  IOTHUB_DEVICE_CONNECTION_STRING="$cs" IOTHUB_RUN_SECONDS=20 IOTHUB_SAS_TTL_SECS=6 run "$flavour" "$logs/pnp.log" pnp_thermostat &
  sample=$!
  wait_for_line "$logs/pnp.log" "telemetry" 30
  hub --json twin update "$dev" --desired '{"targetTemperature":25.5}' >/dev/null
  wait_for_line "$logs/pnp.log" "targetTemperature 25.5" 20
  # The thermostat reconnects every few seconds to renew its 6 s token: a call may find it
  # between two connections (it waits for the device: --connect-timeout) or go out on the
  # connection that is just closing (no answer comes: try again).
  invoked=
  for _ in 1 2 3; do
    if hub --json invoke "$dev" getMaxMinReport --payload '"2026-01-01T00:00:00Z"' \
      --connect-timeout 10 --timeout 5 >"$logs/invoke.json"; then invoked=1; break; fi
  done
  [ -n "$invoked" ] || fail "invoke getMaxMinReport"
  wait "$sample" || { cat "$logs/pnp.log" >&2; fail "pnp_thermostat ($flavour) exited non-zero"; }
  json_check "$logs/invoke.json" 'd["status"] == 200 and d["payload"]["maxTemp"] == 25.5'
  hub --json twin show "$dev" >"$logs/pnp-twin.json"
  json_check "$logs/pnp-twin.json" 'd["properties"]["reported"]["targetTemperature"]["ac"] == 200 and d["properties"]["reported"]["targetTemperature"]["value"] == 25.5 and d["properties"]["reported"]["targetTemperature"]["av"] == d["properties"]["desired"]["$version"] and d["properties"]["reported"]["maxTempSinceLastReboot"] == 25.5'
  hub monitor --json --since 0 --device "$dev" --properties --count 3 --timeout 10 >"$logs/pnp-telemetry.json" || fail "monitor $dev"
  # The hub stamps the model id from the username on each message (dt-dataschema).
  json_check "$logs/pnp-telemetry.json" 'len(d) == 3 and all(m["event"]["properties"]["system"]["dt-dataschema"] == "dtmi:com:example:Thermostat;1" and "temperature" in (json.loads(m["event"]["payload"]) if isinstance(m["event"]["payload"], str) else m["event"]["payload"]) for m in d)'
  grep -q "reconnecting with a new one" "$logs/pnp.log" || fail "the thermostat did not renew its SAS token"
  echo "c-samples: $flavour: pnp_thermostat ok"

  # DPS: register (individual enrollment), then telemetry as the assigned device.
  reg="dps-$flavour"
  hub --json enrollment create "$reg" >"$logs/enrollment.json"
  scope=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['idScope'])" "$logs/enrollment.json")
  key=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['attestation']['symmetricKey']['primaryKey'])" "$logs/enrollment.json")
  IOTHUB_DPS_ID_SCOPE="$scope" IOTHUB_DPS_REGISTRATION_ID="$reg" IOTHUB_DPS_KEY="$key" IOTHUB_DPS_HOST="$(endpoint hostName)" \
    run_ok "$flavour" "$logs/dps.log" dps_telemetry
  hub --json identity show "$reg" >"$logs/dps-identity.json" || fail "DPS did not create $reg"
  hub monitor --json --since 0 --device "$reg" --count 1 --timeout 10 >"$logs/dps-telemetry.json" || fail "monitor $reg"
  echo "c-samples: $flavour: dps_telemetry ok"
done
echo "c-samples: all C tests and samples passed (plain, ASan+UBSan, valgrind) in $(( $(date +%s) - deadline + ${C_SAMPLES_TIMEOUT:-400} )) s"
