//! Topics a device publishes on, and the filters it subscribes to (docs/c-api.md, "Topics").

use core::ffi::c_char;

use iothub_proto::properties::{PropertyWriter, SystemProperty};
use iothub_proto::topic::{
    C2dFilter, MethodResponseTopic, ReportedPatchTopic, TelemetryTopic, TwinGetTopic,
};
use iothub_proto::{BufferTooSmall, RequestId};

use crate::client::{fields, iothub_client};
use crate::result::*;
use crate::span::{self, Output, display_into, iothub_span};

/// Subscribe filter for twin responses (answers to GET and reported PATCH).
pub const IOTHUB_TWIN_RESPONSE_SUBSCRIBE_TOPIC: &str = "$iothub/twin/res/#";
/// Subscribe filter for desired-property patches.
pub const IOTHUB_TWIN_PATCH_SUBSCRIBE_TOPIC: &str = "$iothub/twin/PATCH/properties/desired/#";
/// Subscribe filter for direct-method requests.
pub const IOTHUB_METHODS_SUBSCRIBE_TOPIC: &str = "$iothub/methods/POST/#";
/// Subscribe filter for cloud-to-device messages of any device (the hub only sends a
/// device its own); [`iothub_client_c2d_get_subscribe_topic`] writes the device's own filter.
pub const IOTHUB_C2D_SUBSCRIBE_TOPIC: &str = "devices/+/messages/devicebound/#";
/// Subscribe filter for DPS responses.
pub const IOTHUB_DPS_SUBSCRIBE_TOPIC: &str = "$dps/registrations/res/#";

/// Most application properties one telemetry topic can carry (they are gathered on the stack).
pub const IOTHUB_MAX_APPLICATION_PROPERTIES: usize = 16;

/// One name/value pair of a property bag.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct iothub_property {
    /// The name.
    pub name: iothub_span,
    /// The value (may be empty).
    pub value: iothub_span,
}

/// The properties of a telemetry message: system properties (empty span = absent) and
/// application properties. Start from [`iothub_message_properties_default`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_message_properties {
    /// `$.mid`.
    pub message_id: iothub_span,
    /// `$.cid`.
    pub correlation_id: iothub_span,
    /// `$.uid`.
    pub user_id: iothub_span,
    /// `$.ct`, e.g. `application/json` (needed for routing on the body).
    pub content_type: iothub_span,
    /// `$.ce`, e.g. `utf-8`.
    pub content_encoding: iothub_span,
    /// `$.sub`: the Plug and Play component that sends the telemetry.
    pub component_name: iothub_span,
    /// `iothub-creation-time-utc` (ISO 8601).
    pub creation_time_utc: iothub_span,
    /// Application properties, `application_count` of them (NULL when 0).
    pub application: *const iothub_property,
    /// How many application properties; at most `IOTHUB_MAX_APPLICATION_PROPERTIES`.
    pub application_count: usize,
}

/// No properties.
#[unsafe(no_mangle)]
pub extern "C" fn iothub_message_properties_default() -> iothub_message_properties {
    iothub_message_properties {
        message_id: iothub_span::EMPTY,
        correlation_id: iothub_span::EMPTY,
        user_id: iothub_span::EMPTY,
        content_type: iothub_span::EMPTY,
        content_encoding: iothub_span::EMPTY,
        component_name: iothub_span::EMPTY,
        creation_time_utc: iothub_span::EMPTY,
        application: core::ptr::null(),
        application_count: 0,
    }
}

/// Writes the telemetry topic of the client's device (or module), with the property bag of
/// `properties` (NULL for none) percent-encoded onto it, into `buf`, NUL-terminated.
///
/// # Safety
///
/// `client` NULL or initialised; `properties` NULL or readable with valid spans and an
/// `application` array of `application_count` readable entries; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_client_telemetry_get_publish_topic(
    client: *const iothub_client,
    properties: *const iothub_message_properties,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (f, out) = unsafe { (fields(client)?, Output::new(buf, size, out_len)?) };
        let mut pairs = [("", ""); IOTHUB_MAX_APPLICATION_PROPERTIES];
        let mut writer = PropertyWriter::new();
        // SAFETY: NULL or readable, as the caller guarantees.
        if let Some(p) = unsafe { properties.as_ref() } {
            // SAFETY: the caller guarantees every span and the array.
            unsafe { add_properties(&mut writer, p, &mut pairs) }?;
        }
        let mut topic = TelemetryTopic::new(f.device_id);
        if let Some(module) = f.module_id {
            topic = topic.module(module);
        }
        out.write(|b| topic.properties(writer).encode_to(b))
    })())
}

/// The system properties of [`iothub_message_properties`] in field order.
const SYSTEM_PROPERTIES: [SystemProperty; 6] = [
    SystemProperty::MessageId,
    SystemProperty::CorrelationId,
    SystemProperty::UserId,
    SystemProperty::ContentType,
    SystemProperty::ContentEncoding,
    SystemProperty::ComponentName,
];

/// Adds the C description's properties to the core's property writer through `&mut`: the
/// writer is a few hundred bytes, and building one to return and then moving it into the
/// topic cost more code than filling the caller's (measured with `scripts/c-size.sh`).
///
/// # Safety
///
/// As [`iothub_client_telemetry_get_publish_topic`]'s `properties`.
unsafe fn add_properties<'a>(
    w: &mut PropertyWriter<'a>,
    p: &iothub_message_properties,
    pairs: &'a mut [(&'a str, &'a str); IOTHUB_MAX_APPLICATION_PROPERTIES],
) -> Result<(), iothub_result> {
    // One loop over a table instead of a call per property keeps the firmware build small.
    let values = [
        p.message_id,
        p.correlation_id,
        p.user_id,
        p.content_type,
        p.content_encoding,
        p.component_name,
    ];
    for (property, value) in SYSTEM_PROPERTIES.into_iter().zip(values) {
        // SAFETY: the caller guarantees every span.
        if let Some(value) = unsafe { span::optional_text(value) }? {
            *w = w.system(property, value);
        }
    }
    // SAFETY: as above.
    if let Some(value) = unsafe { span::optional_text(p.creation_time_utc) }? {
        *w = w.creation_time_utc(value);
    }
    let count = p.application_count;
    if count == 0 {
        return Ok(());
    }
    if count > IOTHUB_MAX_APPLICATION_PROPERTIES {
        return Err(IOTHUB_ERROR_INVALID_ARGUMENT);
    }
    if p.application.is_null() {
        return Err(IOTHUB_ERROR_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL with `count` readable entries, as the caller guarantees.
    let application = unsafe { core::slice::from_raw_parts(p.application, count) };
    for (slot, property) in pairs.iter_mut().zip(application) {
        // SAFETY: the caller guarantees the spans.
        *slot = unsafe {
            (
                span::required_text(property.name)?,
                span::text(property.value)?,
            )
        };
    }
    let pairs: &'a [(&'a str, &'a str)] = pairs;
    *w = w.application(pairs.get(..count).unwrap_or_default());
    Ok(())
}

/// Writes the device's own C2D subscribe filter (`devices/{device}/messages/devicebound/#`,
/// or the module's) into `buf`, NUL-terminated.
///
/// # Safety
///
/// As [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_client_c2d_get_subscribe_topic(
    client: *const iothub_client,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (f, out) = unsafe { (fields(client)?, Output::new(buf, size, out_len)?) };
        let mut filter = C2dFilter::new(f.device_id);
        if let Some(module) = f.module_id {
            filter = filter.module(module);
        }
        out.write(|b| display_into(&filter, b))
    })())
}

/// A request id from C: required and non-empty.
///
/// # Safety
///
/// `request_id` is a valid span for `'a`.
unsafe fn request_id<'a>(request_id: iothub_span) -> Result<RequestId<'a>, iothub_result> {
    // SAFETY: forwarded contract.
    Ok(RequestId::new(unsafe { span::required_text(request_id) }?))
}

/// Writes a topic named by a request id into a buffer.
type RequestTopicEncoder<'e> =
    &'e dyn Fn(RequestId<'_>, &mut [u8]) -> Result<usize, BufferTooSmall>;

/// The topics named by a request id share one body (one copy of the checks in firmware).
///
/// # Safety
///
/// `request_id` valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[inline(never)]
unsafe fn write_request_topic(
    request_id: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
    encode: RequestTopicEncoder<'_>,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (rid, out) = unsafe {
            (
                self::request_id(request_id)?,
                Output::new(buf, size, out_len)?,
            )
        };
        out.write(|b| encode(rid, b))
    })())
}

/// Writes the twin GET topic `$iothub/twin/GET/?$rid={request_id}` into `buf`. The answer
/// arrives on `$iothub/twin/res/…` with the same request id.
///
/// # Safety
///
/// `request_id` valid; `buf`/`size`/`out_len` as
/// [`iothub_client_get_client_id`](crate::client::iothub_client_get_client_id).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_twin_document_get_publish_topic(
    request_id: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    // SAFETY: forwarded contracts.
    unsafe {
        write_request_topic(request_id, buf, size, out_len, &|rid, b| {
            display_into(&TwinGetTopic::new(rid), b)
        })
    }
}

/// Writes the reported-properties PATCH topic
/// `$iothub/twin/PATCH/properties/reported/?$rid={request_id}` into `buf`; the payload is
/// the JSON patch.
///
/// # Safety
///
/// As [`iothub_twin_document_get_publish_topic`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_twin_patch_get_publish_topic(
    request_id: iothub_span,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    // SAFETY: forwarded contracts.
    unsafe {
        write_request_topic(request_id, buf, size, out_len, &|rid, b| {
            display_into(&ReportedPatchTopic::new(rid), b)
        })
    }
}

/// Writes the direct-method response topic `$iothub/methods/res/{status}/?$rid={request_id}`
/// into `buf`; `request_id` is the one of the request being answered.
///
/// # Safety
///
/// As [`iothub_twin_document_get_publish_topic`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_methods_response_get_publish_topic(
    request_id: iothub_span,
    status_code: u16,
    buf: *mut c_char,
    size: usize,
    out_len: *mut usize,
) -> iothub_result {
    // SAFETY: forwarded contracts.
    unsafe {
        write_request_topic(request_id, buf, size, out_len, &|rid, b| {
            display_into(&MethodResponseTopic::new(rid, status_code), b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_proto::topic;

    /// The header's `#define`s (cbindgen does not export `&str` constants) match the core.
    #[test]
    fn subscribe_filters_match_the_core_and_the_header() {
        let pairs = [
            (
                "IOTHUB_TWIN_RESPONSE_SUBSCRIBE_TOPIC",
                IOTHUB_TWIN_RESPONSE_SUBSCRIBE_TOPIC,
                topic::TWIN_RESPONSE_FILTER,
            ),
            (
                "IOTHUB_TWIN_PATCH_SUBSCRIBE_TOPIC",
                IOTHUB_TWIN_PATCH_SUBSCRIBE_TOPIC,
                topic::DESIRED_PATCH_FILTER,
            ),
            (
                "IOTHUB_METHODS_SUBSCRIBE_TOPIC",
                IOTHUB_METHODS_SUBSCRIBE_TOPIC,
                topic::METHODS_FILTER,
            ),
            (
                "IOTHUB_C2D_SUBSCRIBE_TOPIC",
                IOTHUB_C2D_SUBSCRIBE_TOPIC,
                topic::C2D_FILTER_ANY_DEVICE,
            ),
            (
                "IOTHUB_DPS_SUBSCRIBE_TOPIC",
                IOTHUB_DPS_SUBSCRIBE_TOPIC,
                topic::DPS_RESPONSE_FILTER,
            ),
        ];
        let header = include_str!("../../../include/iothub.h");
        for (name, ours, core) in pairs {
            assert_eq!(ours, core, "{name}");
            let define = std::format!("#define {name} \"{ours}\"");
            assert!(header.contains(&define), "header lacks {define}");
        }
    }
}
