#!/usr/bin/env bash
# Code size of the C API (BENCHMARKS.md "C API code size"): links freestanding C programs
# (bench/c-size: no libc, -nostdlib -static, --gc-sections) against libiothub_c.a built for
# firmware (`--profile firmware`: opt-level z, LTO, one codegen unit, panic = abort;
# `--features panic-handler`: no std), runs each (it checks every result and exits 0), and
# prints `.text` minus the empty baseline's, beside the Rust no_std consumer's figures
# (scripts/nostd-check.sh uses the same sha2 backend, target and method).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=$(rustc -vV | awk '/^host:/ { print $2 }')
RUSTFLAGS="--cfg sha2_backend=\"soft\" --cfg sha2_backend_soft=\"compact\" -C relocation-model=static" \
  cargo rustc --locked --quiet -p iothub-c --lib --crate-type staticlib --profile firmware --features panic-handler --target "$target"
lib="$root/target/$target/firmware/libiothub_c.a"
out="$root/target/c-size"; mkdir -p "$out"
cflags=(-Os -std=c11 -ffreestanding -fno-builtin -fno-stack-protector -fno-asynchronous-unwind-tables
        -fno-pie -no-pie -ffunction-sections -fdata-sections -I"$root/include")
ldflags=(-nostdlib -nostartfiles -static -Wl,--gc-sections)
declare -A sizes
for scenario in baseline telemetry full; do
  gcc "${cflags[@]}" "bench/c-size/$scenario.c" bench/c-size/rt.c "${ldflags[@]}" "$lib" -o "$out/$scenario"
  set +e; "$out/$scenario"; code=$?; set -e
  [ "$code" -eq 0 ] || { echo "c-size: FAIL: $scenario exited $code (a self-check inside failed)"; exit 1; }
  sizes[$scenario]=$(size -A "$out/$scenario" | awk '$1 == ".text" { print $2 }')
  echo "c-size: ok   $scenario links and runs (.text ${sizes[$scenario]} B)"
done
base=${sizes[baseline]}
echo
echo "| scenario (x86_64, opt-level z, LTO, C caller) | signer | .text total | library's share (minus baseline) |"
echo "|---|---|---|---|"
for scenario in telemetry full; do
  echo "| $scenario | platform (HMAC callback) | ${sizes[$scenario]} B | $(( ${sizes[$scenario]} - base )) B |"
done
