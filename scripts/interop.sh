#!/usr/bin/env bash
# Interop suite (tests/interop, pytest): official SDKs and third-party clients against a real
# emulator process on its real ports (8883, 443, 1883, 8080; as root in CI — without root the
# emulator serves HTTPS on 8443 and the tests read the port from endpoints.json).
# Starts `iothub emulator` on a fresh data dir, runs the suite with .venv/bin/python -m pytest
# (scripts/install-deps.sh creates .venv), stops the emulator. Arguments replace the default
# pytest selection (tests/interop), e.g. `scripts/interop.sh tests/interop/test_service_sdk.py -k twin`.
# tests/interop/test_file_upload.py also starts Azurite (installed by scripts/install-deps.sh)
# on 127.0.0.1 and a second emulator on 127.0.0.2 with `--storage-connection-string` for it;
# both are stopped by the test.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --quiet -p iothub-cli
dir="$(mktemp -d)"
target/debug/iothub emulator --data-dir "$dir" >"$dir/emulator.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

for _ in $(seq 1 300); do
  [ -s "$dir/endpoints.json" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "interop: the emulator exited:" >&2
    cat "$dir/emulator.log" >&2
    exit 1
  fi
  sleep 0.1
done
[ -s "$dir/endpoints.json" ] || { echo "interop: no endpoints.json after 30 s" >&2; cat "$dir/emulator.log" >&2; exit 1; }

status=0
if [ "$#" -eq 0 ]; then set -- tests/interop; fi
IOTHUB_EMULATOR_DIR="$dir" .venv/bin/python -m pytest -q --timeout 300 "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "interop: emulator log:" >&2
  tail -n 50 "$dir/emulator.log" >&2
fi
exit "$status"
