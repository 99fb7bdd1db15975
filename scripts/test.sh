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

scripts/install-deps.sh
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
scripts/feature-matrix.sh
scripts/nostd-check.sh
scripts/fuzz-smoke.sh
if [ -x scripts/interop.sh ]; then scripts/interop.sh; fi
scripts/c-samples.sh
echo "test.sh: all suites passed"
