//! `iothub-c`: the C API of `iothub-proto`, for C firmware that brings its own MQTT and TLS
//! stack. The header is `include/iothub.h` (generated from this crate by cbindgen); the
//! guide is `docs/c-api.md`.
//!
//! The shape follows the embedded C SDKs: every function returns an [`iothub_result`];
//! output goes to caller-owned buffers with explicit sizes (`char *buf, size_t size,
//! size_t *out_len`), NUL-terminated, with the size needed reported on
//! `IOTHUB_ERROR_BUFFER_TOO_SMALL`; input text is an [`iothub_span`] (pointer + length);
//! parsers return spans into their input. There is no allocation, no global state, no
//! clock and no RNG: time, randomness and (optionally) HMAC-SHA256 come from the caller.
//! Every pointer is checked: NULL gives `IOTHUB_ERROR_NULL_ARGUMENT`, never a crash.
//!
//! The same `extern "C"` functions are callable from Rust (the fuzz target and the tests do):
//!
//! ```
//! use iothub_c::*;
//!
//! let mut client = core::mem::MaybeUninit::<iothub_client>::uninit();
//! let rc = unsafe {
//!     iothub_client_init(
//!         client.as_mut_ptr(),
//!         iothub_span::from_str("myhub.azure-devices.net"),
//!         iothub_span::from_str("dev1"),
//!         iothub_span::EMPTY,
//!         core::ptr::null(),
//!     )
//! };
//! assert_eq!(rc, iothub_result::IOTHUB_OK);
//! let mut topic = [0 as core::ffi::c_char; 64];
//! let mut len = 0;
//! let rc = unsafe {
//!     iothub_client_telemetry_get_publish_topic(
//!         client.as_ptr(), core::ptr::null(), topic.as_mut_ptr(), topic.len(), &mut len)
//! };
//! assert_eq!(rc, iothub_result::IOTHUB_OK);
//! let topic = unsafe { core::ffi::CStr::from_ptr(topic.as_ptr()) };
//! assert_eq!(topic.to_bytes(), b"devices/dev1/messages/events/");
//! assert_eq!(len, topic.to_bytes().len());
//! ```
#![no_std]
// The C names are the API: `iothub_result`, `IOTHUB_OK`, … as a C programmer reads them.
#![allow(non_camel_case_types)]

// Hosted builds (the shared library, tests, the fuzz target) use std's panic machinery;
// firmware builds bring their own handler below.
#[cfg(any(test, not(feature = "panic-handler")))]
extern crate std;

mod client;
mod connection_string;
mod dps;
mod incoming;
mod pnp;
mod result;
mod retry;
mod sas;
mod span;
mod topics;

pub use client::*;
pub use connection_string::*;
pub use dps::*;
pub use incoming::*;
pub use pnp::*;
pub use result::iothub_result;
pub use result::iothub_result_name;
pub use retry::*;
pub use sas::*;
pub use span::{iothub_span, iothub_span_from_str};
pub use topics::*;

/// Firmware builds: a panic cannot happen by design (no `unwrap`, no indexing that can fail),
/// but if one did, stop the device through the platform's `abort()` rather than continue.
#[cfg(all(feature = "panic-handler", not(test)))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    unsafe extern "C" {
        fn abort() -> !;
    }
    // SAFETY: `abort` is the C library's (or the firmware's) and takes no arguments.
    unsafe { abort() }
}
