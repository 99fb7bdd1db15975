#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, idempotently:
#   - Debian: mosquitto + mosquitto-clients (interop clients and the benchmark baseline),
#     chromium + chromium-driver (the dashboard's browser test), cmake + pkg-config +
#     libmosquitto-dev + libssl-dev + valgrind + curl (scripts/c-samples.sh)
#   - cargo-fuzz (fuzz smoke runs; built with the installed nightly toolchain)
#   - a Python virtualenv in .venv with the interop clients (paho-mqtt, azure-iot-device,
#     azure-storage-blob)
#   - Azurite, the Azure Storage emulator of the file upload interop tests (npm, pinned by
#     tests/interop/azurite/package-lock.json), and openssl for its test certificate
#   - @azure/event-hubs, the Node consumer of tests/interop/test_eventhubs_node.py (npm, pinned
#     by tests/interop/eventhubs-node/package-lock.json)
# Runs apt-get as root, or through sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
for pkg in mosquitto mosquitto-clients chromium chromium-driver cmake pkg-config libmosquitto-dev libssl-dev valgrind curl openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian package starts a system broker on 1883; the emulator and the tests need that port free.
  $SUDO systemctl stop mosquitto >/dev/null 2>&1 || $SUDO service mosquitto stop >/dev/null 2>&1 || true
  $SUDO pkill -x mosquitto >/dev/null 2>&1 || true
fi

# playwright-core (pinned by tests/dashboard/package-lock.json) drives Debian's Chromium in the
# dashboard test; it never downloads a browser of its own.
if [ ! -d tests/dashboard/node_modules/playwright-core ]; then
  echo "install-deps: npm ci in tests/dashboard"
  (cd tests/dashboard && npm ci --no-audit --no-fund --silent)
fi

if [ ! -x tests/interop/azurite/node_modules/.bin/azurite-blob ]; then
  echo "install-deps: npm ci in tests/interop/azurite"
  (cd tests/interop/azurite && npm ci --no-audit --no-fund --silent)
fi

if [ ! -d tests/interop/eventhubs-node/node_modules/@azure/event-hubs ]; then
  echo "install-deps: npm ci in tests/interop/eventhubs-node"
  (cd tests/interop/eventhubs-node && npm ci --no-audit --no-fund --silent)
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "install-deps: cargo install cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi

if [ ! -x .venv/bin/python ]; then
  echo "install-deps: python venv .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import paho.mqtt, azure.iot.device, azure.iot.hub, azure.eventhub, azure.storage.blob, pytest_timeout, websocket" >/dev/null 2>&1; then
  echo "install-deps: pip install -r scripts/requirements-interop.txt"
  .venv/bin/pip install --quiet --disable-pip-version-check -r scripts/requirements-interop.txt
fi
echo "install-deps: ok"
