#!/usr/bin/env bash
# The whole test suite, as the README's second quick-start command runs it on a fresh clone:
# installs what the tests need (scripts/install-deps.sh), then runs
#   - cargo test for the whole workspace (unit, integration, doc tests, CLI tests)
#   - the iothub-proto feature matrix and the no_std / allocation-free proof
#   - a short smoke run of every fuzz target
#   - the interop suite (mosquitto, paho-mqtt, azure-iot-device against the emulator), if present
#   - the C API's C tests and C samples against the emulator, plain / ASan+UBSan / valgrind
set -euo pipefail
cd "$(dirname "$0")/.."

# Each suite prints how long it took, so CI's time budget can be kept.
timed() {
    local start=$SECONDS
    "$@"
    echo "test.sh: '$*' took $((SECONDS - start)) s"
}

timed scripts/install-deps.sh
timed cargo test --workspace --all-targets --locked
timed cargo test --workspace --doc --locked
timed scripts/feature-matrix.sh
timed scripts/nostd-check.sh
timed scripts/fuzz-smoke.sh
if [ -x scripts/interop.sh ]; then timed scripts/interop.sh; fi
timed scripts/c-samples.sh
echo "test.sh: all suites passed"
