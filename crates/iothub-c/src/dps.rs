//! The DPS registration state machine for C: start, hand it received publishes and the
//! clock, send what it asks for, read the outcome (docs/c-api.md, "DPS").

use core::ffi::c_char;
use core::mem::{align_of, size_of};

use iothub_proto::provisioning::{Registration, RegistrationError, RegistrationEvent};
use iothub_proto::{Instant, credentials::DpsUsername};

use crate::result::*;
use crate::span::{self, Output, display_into, iothub_span};

/// Size of the registration's state in 8-byte words.
pub const IOTHUB_DPS_REGISTRATION_WORDS: usize = 128;

/// Marks a registration that `iothub_dps_registration_init` has set up.
const MAGIC: u64 = 0x696f_7468_7562_6470; // "iothubdp"

// The state must fit the storage C reserves for it.
const _: () = assert!(size_of::<Registration<'static>>() <= IOTHUB_DPS_REGISTRATION_WORDS * 8);
const _: () = assert!(align_of::<Registration<'static>>() <= align_of::<u64>());

/// One device registration with DPS. Caller-owned storage (a global, the stack); opaque: set
/// up with [`iothub_dps_registration_init`] and touch it only through these functions. It
/// keeps pointers to the `registration_id` and `payload_json` given at init, which must
/// outlive it. Not thread-safe: one thread drives it.
#[repr(C)]
pub struct iothub_dps_registration {
    /// Set by init; checked by every call.
    pub _internal_magic: u64,
    /// The state machine.
    pub _internal_state: [u64; IOTHUB_DPS_REGISTRATION_WORDS],
}

/// The outcome of a registration.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum iothub_dps_status {
    /// Not finished yet.
    IOTHUB_DPS_PENDING = 0,
    /// Assigned: connect to `assigned_hub` as `device_id`.
    IOTHUB_DPS_ASSIGNED = 1,
    /// The enrollment is disabled.
    IOTHUB_DPS_DISABLED = 2,
    /// DPS refused or failed the registration, or retries ran out: see `error_status`,
    /// `error_code` and `message`.
    IOTHUB_DPS_FAILED = 3,
    /// No outcome within the overall timeout (120 s).
    IOTHUB_DPS_TIMED_OUT = 4,
}

/// Where a registration stands. Spans point into the registration's state: valid until the
/// next call that changes it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_dps_outcome {
    /// The outcome.
    pub status: iothub_dps_status,
    /// Assigned hub host name (`IOTHUB_DPS_ASSIGNED`).
    pub assigned_hub: iothub_span,
    /// Device id at that hub (`IOTHUB_DPS_ASSIGNED`).
    pub device_id: iothub_span,
    /// Response status of a failure (`IOTHUB_DPS_FAILED`).
    pub error_status: u16,
    /// DPS error code of a failure, e.g. 401002; 0 when none.
    pub error_code: u32,
    /// Error message of a failure (possibly truncated, may be empty).
    pub message: iothub_span,
}

/// One publish the registration wants sent. Both spans point into the caller's buffer; the
/// topic is NUL-terminated there.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_dps_transmit {
    /// Whether there is anything to send (if false the spans are empty).
    pub ready: bool,
    /// Topic to publish on.
    pub topic: iothub_span,
    /// Payload (the register request's JSON; empty for a status poll).
    pub payload: iothub_span,
}

/// The state machine behind a checked pointer.
///
/// # Safety
///
/// `reg` is NULL or points to an `iothub_dps_registration` (initialised or not) that is not
/// accessed elsewhere during `'r`; the strings given at init are still valid.
unsafe fn state<'r>(
    reg: *mut iothub_dps_registration,
) -> Result<&'r mut Registration<'static>, Failure> {
    // SAFETY: NULL or valid and exclusive, as the caller guarantees.
    let reg = unsafe { reg.as_mut() }.ok_or(Failure::NullArgument)?;
    if reg._internal_magic != MAGIC {
        return Err(Failure::NotInitialized);
    }
    // SAFETY: the magic says init wrote a `Registration` at the start of the (8-aligned,
    // large enough: asserted above) state array, and only these functions change it.
    Ok(unsafe {
        &mut *reg
            ._internal_state
            .as_mut_ptr()
            .cast::<Registration<'static>>()
    })
}

/// Sets up `reg` to register `registration_id` (the DPS client id too), with an optional
/// custom payload (`payload_json`, e.g. `{"modelId":"dtmi:…;1"}`; empty for none), using the
/// default timings (3 s between polls without `retry-after`, 30 s response timeout, 120 s in
/// all, 8 retries). Then call [`iothub_dps_registration_start`].
///
/// # Safety
///
/// `reg` NULL or writable; the spans valid for as long as `reg` is used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_registration_init(
    reg: *mut iothub_dps_registration,
    registration_id: iothub_span,
    payload_json: iothub_span,
) -> iothub_result {
    status((|| {
        // SAFETY: NULL or writable, as the caller guarantees.
        let reg = unsafe { reg.as_mut() }.ok_or(Failure::NullArgument)?;
        // SAFETY: the caller keeps both strings valid while `reg` is used, which is what the
        // 'static stands for here.
        let (id, payload): (&'static str, Option<&'static str>) = unsafe {
            (
                span::required_text(registration_id)?,
                span::optional_text(payload_json)?,
            )
        };
        let value = Registration::new(id, payload);
        // SAFETY: the array is 8-aligned and large enough (asserted above); writing without
        // reading the old bytes is right for uninitialised storage, and `Registration` has
        // no drop glue to skip.
        unsafe {
            reg._internal_state
                .as_mut_ptr()
                .cast::<Registration<'static>>()
                .write(value)
        };
        reg._internal_magic = MAGIC;
        Ok(())
    })())
}

/// Starts (or restarts) the registration at `now_ms` (any monotonic millisecond clock): the
/// register request becomes ready to send.
///
/// # Safety
///
/// `reg` NULL or initialised, not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_registration_start(
    reg: *mut iothub_dps_registration,
    now_ms: u64,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contract.
        unsafe { state(reg) }?.start(Instant::from_millis(now_ms));
        Ok(())
    })())
}

/// Writes the next publish to make into `buf` and describes it in `out` (`out->ready` false
/// when there is nothing to send now). On `IOTHUB_ERROR_BUFFER_TOO_SMALL` the publish stays
/// pending and `*out_needed` (if not NULL) is the size needed.
///
/// # Safety
///
/// `reg` NULL or initialised; `buf` NULL (with `size` 0) or `size` writable bytes; `out`
/// NULL or writable; `out_needed` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_registration_poll_transmit(
    reg: *mut iothub_dps_registration,
    buf: *mut c_char,
    size: usize,
    out: *mut iothub_dps_transmit,
    out_needed: *mut usize,
) -> iothub_result {
    status((|| {
        if out.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: forwarded contracts.
        let (reg, output) = unsafe { (state(reg)?, Output::new(buf, size, out_needed)?) };
        let (buf, needed) = output.into_parts();
        // One byte is kept back for the NUL after the topic.
        let room = buf.len().saturating_sub(1);
        let transmit = match reg.poll_transmit(buf.get_mut(..room).unwrap_or_default()) {
            Ok(Some(tx)) => Some((tx.topic.len(), tx.payload.len())),
            Ok(None) => None,
            Err(too_small) => {
                if let Some(needed) = needed {
                    *needed = too_small.required.saturating_add(1);
                }
                return Err(Failure::BufferTooSmall);
            }
        };
        let value = match transmit {
            None => iothub_dps_transmit {
                ready: false,
                topic: iothub_span::EMPTY,
                payload: iothub_span::EMPTY,
            },
            Some((topic_len, payload_len)) => {
                // The core wrote topic then payload at the start of the buffer; move the
                // payload up one byte to make room for the topic's NUL.
                // Byte by byte from the end (a `copy_within` links its panics): the core wrote
                // `topic_len + payload_len <= room < buf.len()` bytes, so every index is in
                // `buf` and `get` never says no.
                let mut at = topic_len + payload_len;
                while at > topic_len {
                    if let Some([from, to]) = buf.get_mut(at - 1..=at) {
                        *to = *from;
                    }
                    at -= 1;
                }
                if let Some(nul) = buf.get_mut(topic_len) {
                    *nul = 0;
                }
                let (topic, rest) = buf.split_at(topic_len);
                iothub_dps_transmit {
                    ready: true,
                    topic: iothub_span::from_bytes(topic),
                    payload: iothub_span::from_bytes(
                        rest.get(1..1 + payload_len).unwrap_or_default(),
                    ),
                }
            }
        };
        // SAFETY: non-NULL and writable, as the caller guarantees.
        unsafe { span::put(out, value) }
    })())
}

/// Hands the registration a publish received on the DPS connection. `*out_consumed` (if not
/// NULL) says whether it was a DPS answer to the request in flight (otherwise it was ignored).
/// `IOTHUB_ERROR_MALFORMED` for a broken DPS topic or body (the request is retried later).
///
/// # Safety
///
/// `reg` NULL or initialised; spans valid; `out_consumed` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_registration_handle_publish(
    reg: *mut iothub_dps_registration,
    topic: iothub_span,
    payload: iothub_span,
    now_ms: u64,
    out_consumed: *mut bool,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (reg, topic, payload) =
            unsafe { (state(reg)?, span::text(topic)?, span::bytes(payload)?) };
        let consumed = reg
            .handle_publish(topic, payload, Instant::from_millis(now_ms))
            .map_err(|e| match e {
                RegistrationError::Topic(t) => Failure::from(t),
                _ => Failure::Malformed,
            })?;
        if !out_consumed.is_null() {
            // SAFETY: non-NULL and writable, as the caller guarantees.
            unsafe { span::put(out_consumed, consumed) }?;
        }
        Ok(())
    })())
}

/// Lets the registration act on the clock (send a poll or a retry when due, give up at the
/// timeout). Call it when [`iothub_dps_registration_poll_timeout`] says.
///
/// # Safety
///
/// `reg` NULL or initialised, not used concurrently.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_registration_handle_timeout(
    reg: *mut iothub_dps_registration,
    now_ms: u64,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contract.
        unsafe { state(reg) }?.handle_timeout(Instant::from_millis(now_ms));
        Ok(())
    })())
}

/// When (same clock as `now_ms`) [`iothub_dps_registration_handle_timeout`] should next be
/// called; `UINT64_MAX` when nothing is scheduled (finished, or a publish is ready to send).
///
/// # Safety
///
/// `reg` NULL or initialised; `out_at_ms` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_registration_poll_timeout(
    reg: *mut iothub_dps_registration,
    out_at_ms: *mut u64,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contract.
        let at = unsafe { state(reg) }?
            .poll_timeout()
            .map_or(u64::MAX, Instant::as_millis);
        // SAFETY: NULL or writable, as the caller guarantees.
        unsafe { span::put(out_at_ms, at) }
    })())
}

/// Reads where the registration stands into `out`.
///
/// # Safety
///
/// `reg` NULL or initialised; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_registration_get_outcome(
    reg: *mut iothub_dps_registration,
    out: *mut iothub_dps_outcome,
) -> iothub_result {
    status((|| {
        if out.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: forwarded contract.
        let reg = unsafe { state(reg) }?;
        // Filled in place (building the struct and copying it out cost more code).
        // SAFETY: non-NULL and writable, as the caller guarantees; written whole first.
        let value = unsafe {
            out.write(iothub_dps_outcome {
                status: iothub_dps_status::IOTHUB_DPS_PENDING,
                assigned_hub: iothub_span::EMPTY,
                device_id: iothub_span::EMPTY,
                error_status: 0,
                error_code: 0,
                message: iothub_span::EMPTY,
            });
            &mut *out
        };
        match reg.outcome() {
            None => {}
            Some(RegistrationEvent::Assigned {
                assigned_hub,
                device_id,
            }) => {
                value.status = iothub_dps_status::IOTHUB_DPS_ASSIGNED;
                value.assigned_hub = iothub_span::from_str(assigned_hub);
                value.device_id = iothub_span::from_str(device_id);
            }
            Some(RegistrationEvent::Disabled) => {
                value.status = iothub_dps_status::IOTHUB_DPS_DISABLED
            }
            Some(RegistrationEvent::Failed {
                status,
                error_code,
                message,
            }) => {
                value.status = iothub_dps_status::IOTHUB_DPS_FAILED;
                value.error_status = status.code();
                value.error_code = error_code.unwrap_or(0);
                value.message = iothub_span::from_str(message);
            }
            Some(RegistrationEvent::TimedOut) => {
                value.status = iothub_dps_status::IOTHUB_DPS_TIMED_OUT
            }
            // An outcome added to the core later: reported as a failure without details.
            Some(_) => value.status = iothub_dps_status::IOTHUB_DPS_FAILED,
        }
        Ok(())
    })())
}

/// Writes the DPS MQTT username (`{id_scope}/registrations/{registration_id}/api-version=…`)
/// into `buf`, NUL-terminated. The client id is the registration id itself.
///
/// # Safety
///
/// Spans valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_dps_get_username(
    id_scope: iothub_span,
    registration_id: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (scope, id, out) = unsafe {
            (
                span::required_text(id_scope)?,
                span::required_text(registration_id)?,
                Output::new(buf, size, out_len)?,
            )
        };
        out.write(|b| display_into(&DpsUsername::new(scope, id), b))
    })())
}
