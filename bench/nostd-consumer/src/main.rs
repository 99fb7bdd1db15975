//! A freestanding consumer of iothub-proto: no std, no alloc, no main, abort on panic.
//!
//! Each scenario does real protocol work and checks the result against a known answer; the
//! process exits 0 only when every check passed (scripts/nostd-check.sh runs it). The
//! `baseline` build does none of it, so `.text(scenario) - .text(baseline)` is the core's share.
#![no_std]
#![no_main]

#[cfg(not(feature = "rustcrypto-hmac"))]
mod platform_signer;
mod rt;
#[cfg(feature = "scenario-full")]
mod scenario_full;
#[cfg(feature = "scenario-telemetry")]
mod scenario_telemetry;

use core::panic::PanicInfo;

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    exit(101)
}

// The kernel enters `_start` with a 16-byte aligned stack and no return address; Rust code
// expects the alignment of a call, so a two-instruction entry point calls into Rust.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
core::arch::global_asm!(
    ".globl _start",
    "_start:",
    "and rsp, -16",
    "call {main}",
    main = sym consumer_main,
);

extern "C" fn consumer_main() -> ! {
    #[cfg(feature = "scenario-telemetry")]
    if let Err(step) = scenario_telemetry::run() {
        exit(step);
    }
    #[cfg(feature = "scenario-full")]
    if let Err(step) = scenario_full::run() {
        exit(step);
    }
    exit(0)
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn exit(code: i32) -> ! {
    // Linux x86_64 exit_group(2) without libc: the binary stands alone.
    unsafe {
        core::arch::asm!("syscall", in("rax") 231, in("rdi") code, options(noreturn));
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn exit(_code: i32) -> ! {
    loop {}
}
