//! One parser for every topic a device receives, and the property-bag reader
//! (docs/c-api.md, "Receiving").

use core::ffi::c_char;

use iothub_proto::percent::Decoded;
use iothub_proto::properties::PropertyBag;
use iothub_proto::topic::Incoming;

use crate::result::*;
use crate::span::{self, Output, iothub_span};
use crate::topics::iothub_property;

/// What a received topic is.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum iothub_incoming_kind {
    /// A cloud-to-device message: `device_id`, `module_id`, `properties`.
    IOTHUB_INCOMING_C2D = 0,
    /// An answer to a twin GET or reported PATCH: `status`, `request_id`, `version`
    /// (when `has_version`).
    IOTHUB_INCOMING_TWIN_RESPONSE = 1,
    /// A desired-properties patch: `version`.
    IOTHUB_INCOMING_DESIRED_PATCH = 2,
    /// A direct-method request: `method_name`, `request_id`.
    IOTHUB_INCOMING_METHOD_REQUEST = 3,
    /// A DPS response: `status`, `request_id`, `retry_after` (when `has_retry_after`); hand it
    /// to `iothub_dps_registration_handle_publish`.
    IOTHUB_INCOMING_DPS_RESPONSE = 4,
}

/// A received topic, classified. Spans point into the topic; fields not listed for the
/// `kind` are zero / empty.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_incoming {
    /// Which kind of topic this is.
    pub kind: iothub_incoming_kind,
    /// Status code (twin and DPS responses).
    pub status: u16,
    /// Request id (twin and DPS responses, method requests), to match or echo.
    pub request_id: iothub_span,
    /// Whether `version` is set.
    pub has_version: bool,
    /// `$version` (desired patch always; twin response after a PATCH).
    pub version: u64,
    /// Method name (method requests); `component*command` for a Plug and Play component.
    pub method_name: iothub_span,
    /// The property bag, still percent-encoded (C2D); read it with
    /// [`iothub_properties_next`] or [`iothub_properties_find`].
    pub properties: iothub_span,
    /// Device id as it appears in the topic (C2D).
    pub device_id: iothub_span,
    /// Module id as it appears in the topic (C2D to a module); empty otherwise.
    pub module_id: iothub_span,
    /// Whether `retry_after` is set.
    pub has_retry_after: bool,
    /// `retry-after` in seconds (DPS responses).
    pub retry_after: u32,
}

impl iothub_incoming {
    const fn empty(kind: iothub_incoming_kind) -> Self {
        Self {
            kind,
            status: 0,
            request_id: iothub_span::EMPTY,
            has_version: false,
            version: 0,
            method_name: iothub_span::EMPTY,
            properties: iothub_span::EMPTY,
            device_id: iothub_span::EMPTY,
            module_id: iothub_span::EMPTY,
            has_retry_after: false,
            retry_after: 0,
        }
    }
}

fn rid(id: iothub_proto::RequestId<'_>) -> iothub_span {
    id.as_str()
        .map_or(iothub_span::EMPTY, iothub_span::from_str)
}

/// Classifies a topic received by a device (C2D, twin response, desired patch, method
/// request, DPS response) into `out`, whose spans point into `topic`.
///
/// Returns `IOTHUB_ERROR_TOPIC_NO_MATCH` for a topic of none of these kinds and
/// `IOTHUB_ERROR_MALFORMED` for one that matches a kind but is invalid (no `$rid`, a bad
/// status); `out` is untouched then.
///
/// # Safety
///
/// `topic` valid; `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_parse_received_topic(
    topic: iothub_span,
    out: *mut iothub_incoming,
) -> iothub_result {
    status((|| {
        if out.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: forwarded contract.
        let topic = unsafe { span::text(topic) }?;
        let parsed = Incoming::parse(topic)?;
        // Filled in place (the struct is large; building it and copying it out cost more
        // code), only once the topic parsed, so `out` is untouched on an error.
        let kind = match parsed {
            Incoming::C2d(_) => iothub_incoming_kind::IOTHUB_INCOMING_C2D,
            Incoming::TwinResponse(_) => iothub_incoming_kind::IOTHUB_INCOMING_TWIN_RESPONSE,
            Incoming::DesiredPatch(_) => iothub_incoming_kind::IOTHUB_INCOMING_DESIRED_PATCH,
            Incoming::MethodRequest(_) => iothub_incoming_kind::IOTHUB_INCOMING_METHOD_REQUEST,
            Incoming::DpsResponse(_) => iothub_incoming_kind::IOTHUB_INCOMING_DPS_RESPONSE,
            // A kind added to the core later: not one this API describes yet.
            _ => return Err(Failure::TopicNoMatch),
        };
        // SAFETY: non-NULL and writable, as the caller guarantees; written whole first.
        let o = unsafe {
            out.write(iothub_incoming::empty(kind));
            &mut *out
        };
        let (status, request_id) = match parsed {
            Incoming::C2d(message) => {
                o.properties = iothub_span::from_str(message.properties().raw());
                o.device_id = iothub_span::from_str(message.device_id().raw());
                if let Some(module) = message.module_id() {
                    o.module_id = iothub_span::from_str(module.raw());
                }
                return Ok(());
            }
            Incoming::TwinResponse(response) => {
                o.has_version = response.version().is_some();
                o.version = response.version().unwrap_or(0);
                (response.status(), response.request_id())
            }
            Incoming::DesiredPatch(patch) => {
                o.has_version = true;
                o.version = patch.version();
                return Ok(());
            }
            Incoming::MethodRequest(request) => {
                o.method_name = iothub_span::from_str(request.name());
                o.request_id = rid(request.request_id());
                return Ok(());
            }
            Incoming::DpsResponse(response) => {
                o.has_retry_after = response.retry_after().is_some();
                o.retry_after = response.retry_after().unwrap_or(0);
                (response.status(), response.request_id())
            }
            _ => return Ok(()),
        };
        // The two responses: a status and a request id.
        o.status = status.code();
        o.request_id = rid(request_id);
        Ok(())
    })())
}

/// A position in a property bag; start it with [`iothub_properties_iterator_init`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_properties_iterator {
    /// The bag being read (still percent-encoded).
    pub bag: iothub_span,
    /// How many properties were returned so far.
    pub index: usize,
}

/// Starts iterating over `bag` (e.g. `iothub_incoming.properties`).
///
/// # Safety
///
/// `iterator` NULL or writable; `bag` stays valid while iterating.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_properties_iterator_init(
    iterator: *mut iothub_properties_iterator,
    bag: iothub_span,
) -> iothub_result {
    // SAFETY: NULL or writable, as the caller guarantees.
    status(unsafe { span::put(iterator, iothub_properties_iterator { bag, index: 0 }) })
}

/// The next property of the bag in `out` (name and value still percent-encoded; decode
/// them with [`iothub_property_decode`]). `IOTHUB_ERROR_NOT_FOUND` when there are no more.
/// A property without `=` has an empty value.
///
/// # Safety
///
/// `iterator` NULL or initialised (its bag valid); `out` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_properties_next(
    iterator: *mut iothub_properties_iterator,
    out: *mut iothub_property,
) -> iothub_result {
    status((|| {
        // SAFETY: NULL or valid, as the caller guarantees.
        let iterator = unsafe { iterator.as_mut() }.ok_or(Failure::NullArgument)?;
        if out.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: the bag span is valid, as the caller guarantees.
        let bag = PropertyBag::parse(unsafe { span::text(iterator.bag) }?);
        let (name, value) = bag.iter().nth(iterator.index).ok_or(Failure::NotFound)?;
        iterator.index = iterator.index.saturating_add(1);
        let property = iothub_property {
            name: iothub_span::from_str(name.raw()),
            value: value.map_or(iothub_span::EMPTY, |v| iothub_span::from_str(v.raw())),
        };
        // SAFETY: non-NULL and writable, as the caller guarantees.
        unsafe { span::put(out, property) }
    })())
}

/// Finds property `name` (compared after percent-decoding, e.g. `$.mid`, `$.ct` or an
/// application property) in `bag`; its raw value goes to `out_value`.
/// `IOTHUB_ERROR_NOT_FOUND` when absent.
///
/// # Safety
///
/// Spans valid; `out_value` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_properties_find(
    bag: iothub_span,
    name: iothub_span,
    out_value: *mut iothub_span,
) -> iothub_result {
    status((|| {
        if out_value.is_null() {
            return Err(Failure::NullArgument);
        }
        // SAFETY: forwarded contracts.
        let (bag, name) = unsafe { (span::text(bag)?, span::required_text(name)?) };
        let value = PropertyBag::parse(bag).get(name).ok_or(Failure::NotFound)?;
        let value = value.map_or(iothub_span::EMPTY, |v| iothub_span::from_str(v.raw()));
        // SAFETY: non-NULL and writable, as the caller guarantees.
        unsafe { span::put(out_value, value) }
    })())
}

/// Percent-decodes a raw property name or value into `buf`, NUL-terminated.
/// `IOTHUB_ERROR_MALFORMED` when the decoded bytes are not UTF-8.
///
/// # Safety
///
/// `raw` valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_property_decode(
    raw: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (raw, out) = unsafe { (span::text(raw)?, Output::new(buf, size, out_len)?) };
        let decoded = Decoded::new(raw);
        let needed = decoded.bytes().count();
        let (buf, out_len) = out.into_parts();
        let room = buf.len().saturating_sub(1);
        if needed > room {
            if let Some(out_len) = out_len {
                *out_len = needed.saturating_add(1);
            }
            return Err(Failure::BufferTooSmall);
        }
        let (body, _) = buf.split_at_mut(room);
        let text = decoded.decode_into(body).map_err(|_| Failure::Malformed)?;
        let len = text.len();
        if let Some(terminator) = buf.get_mut(len) {
            *terminator = 0;
        }
        if let Some(out_len) = out_len {
            *out_len = len;
        }
        Ok(())
    })())
}
