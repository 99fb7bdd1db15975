#!/usr/bin/env bash
# QoS 1 telemetry throughput and peak RSS of one connection, over TLS to a local mosquitto 2.0:
# `iothub device send --stdin` versus `mosquitto_pub -l`: the device client's send
# throughput and memory against mosquitto's.
#
# Usage: bench/device-send/run.sh [MESSAGES] [BODY_BYTES]
# Needs: mosquitto, mosquitto_pub, openssl, /usr/bin/time; builds iothub in release mode.
set -euo pipefail
cd "$(dirname "$0")/../.."
messages=${1:-20000}
body_bytes=${2:-100}
work=$(mktemp -d)
broker=
trap 'kill "$broker" 2>/dev/null || true; rm -rf "$work"' EXIT

if [[ -z "${IOTHUB_BIN:-}" ]]; then cargo build --release -q -p iothub-cli; fi
iothub=${IOTHUB_BIN:-target/release/iothub}

# A local CA and a localhost server certificate.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench-ca \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$work/server.key" \
  -out "$work/server.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -days 1 -extfile "$work/san.ext" -out "$work/server.pem" 2>/dev/null

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
cafile $work/ca.pem
certfile $work/server.pem
keyfile $work/server.key
allow_anonymous true
# Running as root, mosquitto would switch to user mosquitto and lose access to the keys.
user root
persistence false
max_inflight_messages 0
max_queued_messages 0
CONF
mosquitto -c "$work/mosquitto.conf" >"$work/broker.log" 2>&1 &
broker=$!
sleep 0.5

body=$(head -c "$body_bytes" /dev/zero | tr '\0' 'x')
for i in $(seq 1 "$messages"); do printf '%s\n' "$body"; done > "$work/lines"

# Prints "seconds max_rss_kib" for a command reading $work/lines on stdin.
measure() {
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" < "$work/lines" > /dev/null
  cat "$work/time"
}

key=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
export IOTHUB_DEVICE_CONNECTION_STRING="HostName=localhost;DeviceId=dev1;SharedAccessKey=$key"
read -r ours_s ours_kib < <(measure "$iothub" device send --stdin --port "$port" --ca-file "$work/ca.pem")
read -r mosq_s mosq_kib < <(measure mosquitto_pub -h localhost -p "$port" --cafile "$work/ca.pem" \
  -i dev1 -q 1 -t devices/dev1/messages/events/ -l)

report() {
python3 - "$messages" "$body_bytes" "$@" <<'PY'
import sys
n, size, target, os_, ok, ms, mk = sys.argv[1:]
n, os_, ms = int(n), float(os_), float(ms)
ours, mosq = n / max(os_, 1e-3), n / max(ms, 1e-3)
print(f"{n} QoS 1 messages of {size} B over TLS to {target}, one connection")
print(f"| client | msg/s | peak RSS |")
print(f"|---|---:|---:|")
print(f"| iothub device send --stdin | {ours:,.0f} | {int(ok)/1024:.1f} MiB |")
print(f"| mosquitto_pub -l | {mosq:,.0f} | {int(mk)/1024:.1f} MiB |")
print(f"ratio (iothub / mosquitto_pub): {ours/mosq:.2f}x throughput")
PY
}
report "mosquitto 2.0" "$ours_s" "$ours_kib" "$mosq_s" "$mosq_kib"
kill "$broker"; wait "$broker" 2>/dev/null || true; broker=

# The same against the emulator (durable: each PUBACK waits for the SQLite commit).
# With BENCH_PYTHON (a python with azure-iot-device and paho-mqtt), the emulator takes port 8883
# because the SDK cannot dial another one.
emu_mqtt_port=0
if [[ -n "${BENCH_PYTHON:-}" ]]; then emu_mqtt_port=8883; fi
"$iothub" --json emulator --data-dir "$work/emu" --mqtt-port "$emu_mqtt_port" --https-port 0 --plain-port 0 \
  --http-port 0 --amqp-port 0 --amqp-plain-port 0 > "$work/banner" 2>/dev/null &
broker=$!
for _ in $(seq 1 100); do [[ -s "$work/banner" ]] && break; sleep 0.1; done
emu_port=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["mqttTls"].rsplit(":",1)[1])' "$work/banner")
cs=$("$iothub" hub identity create dev1 --data-dir "$work/emu")
token=$("$iothub" sas --connection-string "$cs")
export IOTHUB_DEVICE_CONNECTION_STRING="$cs"
read -r ours_s ours_kib < <(measure "$iothub" device send --stdin --port "$emu_port" --ca-file "$work/emu/ca.pem")
read -r mosq_s mosq_kib < <(measure mosquitto_pub -h localhost -p "$emu_port" --cafile "$work/emu/ca.pem" \
  -i dev1 -u "localhost/dev1/?api-version=2021-04-12" -P "$token" -q 1 -t devices/dev1/messages/events/ -l)
report "the iothub emulator" "$ours_s" "$ours_kib" "$mosq_s" "$mosq_kib"

if [[ -n "${BENCH_PYTHON:-}" ]]; then
  here=bench/device-send
  read -r paho_s paho_kib < <(measure "$BENCH_PYTHON" "$here/paho_send.py" localhost "$emu_port" \
    "$work/emu/ca.pem" dev1 "localhost/dev1/?api-version=2021-04-12" "$token")
  sdk_messages=${SDK_MESSAGES:-2000}
  head -n "$sdk_messages" "$work/lines" > "$work/sdk_lines"
  /usr/bin/time -f '%e %M' -o "$work/time" "$BENCH_PYTHON" "$here/sdk_send.py" "$cs" "$work/emu/ca.pem" \
    < "$work/sdk_lines" > /dev/null
  read -r sdk_s sdk_kib < "$work/time"
  python3 - "$messages" "$ours_s" "$paho_s" "$paho_kib" "$sdk_messages" "$sdk_s" "$sdk_kib" <<'PY'
import sys
n, ours_s, paho_s, paho_kib, sdk_n, sdk_s, sdk_kib = sys.argv[1:]
ours = int(n) / max(float(ours_s), 1e-3)
paho = int(n) / max(float(paho_s), 1e-3)
sdk = int(sdk_n) / max(float(sdk_s), 1e-3)
print(f"| paho-mqtt 1.6 (Python, 100 in flight) | {paho:,.0f} | {int(paho_kib)/1024:.1f} MiB |")
print(f"| azure-iot-device SDK ({sdk_n} messages, 100 concurrent sends) | {sdk:,.0f} | {int(sdk_kib)/1024:.1f} MiB |")
print(f"ratio (iothub / paho): {ours/paho:.2f}x; (iothub / azure-iot-device): {ours/sdk:.1f}x")
PY
fi
