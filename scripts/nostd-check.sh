#!/usr/bin/env bash
# Proves iothub-proto is #![no_std] and allocation-free, and measures its code size.
#  1. bench/nostd-consumer (#![no_std], #![no_main], panic = "abort") links for the host target
#     and runs (it exits through a raw syscall; no libc, no std).
#  2. Negative controls: the same consumer with the core's `std` or `alloc` feature switched on
#     must FAIL to link (duplicate panic handler / no global allocator), so step 1 means something.
#  3. Size: `.text` of each scenario binary minus `.text` of the empty baseline = the core's share.
# Usage: scripts/nostd-check.sh [--sizes]   (--sizes prints a Markdown table for BENCHMARKS.md)
set -euo pipefail
cd "$(dirname "$0")/../bench/nostd-consumer"
# `$bin` below is this crate's own target dir: an inherited CARGO_TARGET_DIR would build
# elsewhere and leave a stale binary to be measured.
unset CARGO_TARGET_DIR

# An explicit --target keeps these flags away from host build scripts (serde's proc macros).
target=$(rustc -vV | awk '/^host:/ { print $2 }')
# sha2: the portable, compact SHA-256 backend, as a microcontroller build uses (no SHA-NI
# detection, no unrolled rounds); see the sha2 README, "Configuration flags".
export RUSTFLAGS="--cfg sha2_backend=\"soft\" --cfg sha2_backend_soft=\"compact\" -C link-arg=-nostartfiles -C link-arg=-nostdlib -C link-arg=-static -C relocation-model=static"
bin="target/$target/release/nostd-consumer"
build() { cargo build --release --quiet --target "$target" "$@"; }
text_size() { size -A "$bin" | awk '$1 == ".text" { print $2 }'; }

for neg in pull-std pull-alloc; do
  if build --features "$neg,scenario-full" 2>/tmp/nostd-$neg.err; then
    echo "nostd-check: FAIL: building with iothub-proto/${neg#pull-} should not link in a no_std binary"; exit 1
  fi
  grep -Eq 'duplicate lang item|no global memory allocator' /tmp/nostd-$neg.err || {
    echo "nostd-check: FAIL: negative control $neg failed for an unexpected reason"; cat /tmp/nostd-$neg.err; exit 1; }
  echo "nostd-check: ok   negative control: $neg does not link"
done

declare -A sizes
scenarios=(baseline scenario-telemetry scenario-full scenario-telemetry,rustcrypto-hmac scenario-full,rustcrypto-hmac)
for scenario in "${scenarios[@]}"; do
  if [ "$scenario" = baseline ]; then build; else build --features "$scenario"; fi
  set +e; "./$bin"; code=$?; set -e
  [ "$code" -eq 0 ] || { echo "nostd-check: FAIL: $scenario exited $code (a self-check inside failed)"; exit 1; }
  sizes[$scenario]=$(text_size)
  echo "nostd-check: ok   $scenario links and runs (.text ${sizes[$scenario]} B)"
done

if [ "${1:-}" = "--sizes" ]; then
  base=${sizes[baseline]}
  echo
  echo "| scenario (x86_64, opt-level z, LTO) | signer | .text total | core's share (minus baseline) |"
  echo "|---|---|---|---|"
  for scenario in "${scenarios[@]:1}"; do
    name=${scenario%%,*}; signer="platform (as azure-sdk-for-c)"
    [[ "$scenario" == *rustcrypto-hmac* ]] && signer="RustCrypto HMAC-SHA256 (feature hmac)"
    echo "| ${name#scenario-} | $signer | ${sizes[$scenario]} B | $(( ${sizes[$scenario]} - base )) B |"
  done
fi
