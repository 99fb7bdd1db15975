//! A freestanding consumer of iothub-proto: no std, no alloc, no main, abort on panic.
#![no_std]
#![no_main]

mod rt;

use core::panic::PanicInfo;

use iothub_proto::encode_into;

#[panic_handler]
fn panic(_info: &PanicInfo<'_>) -> ! {
    loop {}
}

/// Stand-in for the firmware's MQTT client: the side effect keeps the work from being optimised away.
fn emit(bytes: &[u8]) -> usize {
    bytes.iter().map(|b| usize::from(*b)).sum()
}

#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    let mut buf = [0u8; 256];
    let mut acc = 0usize;
    if let Ok(text) = encode_into(&iothub_proto::percent::encode("myhub.azure-devices.net/devices/dev1"), &mut buf) {
        acc += emit(text.as_bytes());
    }
    exit(acc as i32)
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
