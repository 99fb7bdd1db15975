#!/usr/bin/env bash
# Code size of the C API (BENCHMARKS.md "C API code size"): links freestanding C programs
# (bench/c-size: no libc, -nostdlib -static, --gc-sections) against libiothub_c.a built for
# firmware (`--profile firmware`: opt-level z, LTO, one codegen unit, panic = abort;
# `--features panic-handler`: no std), runs each (it checks every result and exits 0), and
# prints two figures per scenario:
#  - the library's share: the `.text` input sections the linker placed from libiothub_c.a,
#    summed from its map file (what the issue's target is about: the C caller's own code
#    and the platform's mem* stay out of it);
#  - the whole program's `.text` minus the empty baseline's, caller included (the method of
#    the Rust no_std figures, scripts/nostd-check.sh: same sha2 backend, target and flags).
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
# Sums the `.text` input sections of a GNU ld map that came from the archive named `lib`
# (placed ones only: the map lists what --gc-sections discarded before its memory map).
library_share() {
  awk -v lib="$(basename "$lib")" '
    function hex(s,   i, v) {
      v = 0; s = tolower(substr(s, 3))
      for (i = 1; i <= length(s); i++) v = v * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
      return v
    }
    /^Linker script and memory map/ { placed = 1; next }
    !placed { next }
    /^\.text([ \t]|$)/ { in_text = 1; next }
    /^\.[^ \t]/ { in_text = 0 }
    !in_text { next }
    /^ \.text/ && NF == 1 { pending = 1; next }
    (/^ \.text/ && NF >= 4) || (pending && /^[ \t]+0x/) {
      if (index($NF, lib) > 0) ours += hex($(NF - 1))
      pending = 0
    }
    END { print ours + 0 }' "$1"
}

declare -A sizes shares
for scenario in baseline telemetry full; do
  gcc "${cflags[@]}" "bench/c-size/$scenario.c" bench/c-size/rt.c "${ldflags[@]}" -Wl,-Map="$out/$scenario.map" "$lib" -o "$out/$scenario"
  set +e; "$out/$scenario"; code=$?; set -e
  [ "$code" -eq 0 ] || { echo "c-size: FAIL: $scenario exited $code (a self-check inside failed)"; exit 1; }
  sizes[$scenario]=$(size -A "$out/$scenario" | awk '$1 == ".text" { print $2 }')
  shares[$scenario]=$(library_share "$out/$scenario.map")
  echo "c-size: ok   $scenario links and runs (.text ${sizes[$scenario]} B, library ${shares[$scenario]} B)"
done
base=${sizes[baseline]}
echo
[ "${shares[baseline]}" -eq 0 ] || { echo "c-size: FAIL: the empty program links library code"; exit 1; }
echo "| scenario (x86_64, opt-level z, LTO, C caller) | signer | .text total | library's share (link map) | program minus baseline |"
echo "|---|---|---|---|---|"
for scenario in telemetry full; do
  echo "| $scenario | platform (HMAC callback) | ${sizes[$scenario]} B | ${shares[$scenario]} B | $(( ${sizes[$scenario]} - base )) B |"
done
