//! Topics a device publishes on, and the filters it subscribes to (docs/c-api.md, "Topics").

use core::ffi::c_char;

use iothub_proto::RequestId;
use iothub_proto::topic::{MethodResponseTopic, ReportedPatchTopic, TwinGetTopic};

use crate::client::{fields, iothub_client};
use crate::result::*;
use crate::span::{self, Output, iothub_span};

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

/// `$.mid`: message id (the decoded name; [`iothub_message_properties_append`] writes it
/// `%24.mid`).
pub const IOTHUB_PROPERTY_MESSAGE_ID: &str = "$.mid";
/// `$.cid`: correlation id.
pub const IOTHUB_PROPERTY_CORRELATION_ID: &str = "$.cid";
/// `$.uid`: user id.
pub const IOTHUB_PROPERTY_USER_ID: &str = "$.uid";
/// `$.ct`: content type, e.g. `application/json` (needed for routing on the body).
pub const IOTHUB_PROPERTY_CONTENT_TYPE: &str = "$.ct";
/// `$.ce`: content encoding, e.g. `utf-8`.
pub const IOTHUB_PROPERTY_CONTENT_ENCODING: &str = "$.ce";
/// `$.sub`: the Plug and Play component that sends the telemetry.
pub const IOTHUB_PROPERTY_COMPONENT_NAME: &str = "$.sub";
/// `iothub-creation-time-utc` (ISO 8601, UTC).
pub const IOTHUB_PROPERTY_CREATION_TIME_UTC: &str = "iothub-creation-time-utc";

/// One name/value pair of a property bag.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct iothub_property {
    /// The name.
    pub name: iothub_span,
    /// The value (may be empty).
    pub value: iothub_span,
}

/// The property bag of a telemetry message, built by the caller in a buffer of its own: set
/// up with [`iothub_message_properties_init`], add one pair at a time with
/// [`iothub_message_properties_append`], hand it to
/// [`iothub_client_telemetry_get_publish_topic`], which copies it. The fields are internal:
/// touch the bag only through these functions.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct iothub_message_properties {
    /// The caller's buffer.
    pub _internal_buf: *mut c_char,
    /// Its size in bytes.
    pub _internal_size: usize,
    /// How many bytes of it the bag holds (percent-encoded, not NUL-terminated).
    pub _internal_len: usize,
}

/// Sets up `properties` over the caller's `buf` of `size` bytes, which already holds
/// `written_len` bytes of an encoded bag (0 to start empty; a bag written earlier, e.g.
/// `%24.ct=application%2Fjson`, to start from it). The bag keeps `buf`: it must outlive it.
///
/// `IOTHUB_ERROR_NULL_ARGUMENT` for a NULL `properties`, or a NULL `buf` with a size;
/// `IOTHUB_ERROR_INVALID_ARGUMENT` when `written_len` exceeds `size`.
///
/// # Safety
///
/// `properties` NULL or writable; `buf` NULL (with `size` 0) or `size` writable bytes that
/// stay valid while `properties` is used.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_message_properties_init(
    properties: *mut iothub_message_properties,
    buf: *mut c_char,
    size: usize,
    written_len: usize,
) -> iothub_result {
    if properties.is_null() || (buf.is_null() && size != 0) {
        return IOTHUB_ERROR_NULL_ARGUMENT;
    }
    if written_len > size {
        return IOTHUB_ERROR_INVALID_ARGUMENT;
    }
    let value = iothub_message_properties {
        _internal_buf: buf,
        _internal_size: size,
        _internal_len: written_len,
    };
    // SAFETY: non-NULL and writable, as the caller guarantees.
    unsafe { properties.write(value) };
    IOTHUB_OK
}

/// The bag's buffer and length, as [`iothub_message_properties_init`] set them up. Init
/// checked them (a buffer for a non-zero size, the length within it) and only the bag's
/// functions change them, so they are trusted here, as the client's spans are; a bag that is
/// all zeros reads as empty.
///
/// # Safety
///
/// `properties` NULL or set up by init, its buffer still valid and not accessed elsewhere.
#[inline(always)]
unsafe fn bag<'a>(
    properties: *const iothub_message_properties,
) -> Result<(&'a mut [u8], usize), Failure> {
    // SAFETY: NULL or readable, as the caller guarantees.
    let p = unsafe { properties.as_ref() }.ok_or(Failure::NullArgument)?;
    let bytes: &'a mut [u8] = if p._internal_size == 0 {
        &mut []
    } else {
        // SAFETY: init stored a non-NULL buffer of `size` writable bytes, as its caller
        // guarantees.
        unsafe { core::slice::from_raw_parts_mut(p._internal_buf.cast::<u8>(), p._internal_size) }
    };
    Ok((bytes, p._internal_len))
}

/// Appends the property `name=value` to the bag, both percent-encoded (RFC 3986: everything
/// but `A-Z a-z 0-9 - . _ ~` becomes `%XX`, so any bytes are fine: they need not be UTF-8).
/// System properties use the decoded names, `IOTHUB_PROPERTY_MESSAGE_ID` (`$.mid`) and the
/// like; anything else is an application property. `value` may be empty.
///
/// `*out_len` (if not NULL) receives the bag's length after the append, or on
/// `IOTHUB_ERROR_BUFFER_TOO_SMALL` the buffer size the bag would need (the bag is then
/// unchanged). `IOTHUB_ERROR_INVALID_ARGUMENT` for an empty name.
///
/// # Safety
///
/// `properties` NULL or set up by [`iothub_message_properties_init`] (its buffer still
/// valid); spans valid; `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn iothub_message_properties_append(
    properties: *mut iothub_message_properties,
    name: iothub_span,
    value: iothub_span,
    out_len: *mut usize,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let ((buf, len), name, value) =
            unsafe { (bag(properties)?, span::bytes(name)?, span::bytes(value)?) };
        if name.is_empty() {
            return Err(Failure::InvalidArgument);
        }
        let written = iothub_proto::bytes::append_property(buf, len, name, value);
        let (result, reported) = match written {
            Ok(len) => {
                // SAFETY: `bag` checked `properties` is non-NULL; writable as the caller
                // guarantees.
                unsafe { (*properties)._internal_len = len };
                (Ok(()), len)
            }
            Err(too_small) => (Err(Failure::BufferTooSmall), too_small.required),
        };
        // SAFETY: NULL or writable, as the caller guarantees.
        if let Some(out) = unsafe { out_len.as_mut() } {
            *out = reported;
        }
        result
    })())
}

/// Writes the telemetry topic of the client's device (or module),
/// `devices/{device}[/modules/{module}]/messages/events/{bag}`, into `buf`, NUL-terminated:
/// the ids percent-encoded, then the bag of `properties` (NULL for none) copied.
///
/// # Safety
///
/// `client` NULL or initialised; `properties` NULL or set up by
/// [`iothub_message_properties_init`] (its buffer still valid); `buf`/`size`/`out_len` as
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
        let bag: &[u8] = if properties.is_null() {
            &[]
        } else {
            // SAFETY: forwarded contract; the bag is only read here.
            let (bag, len) = unsafe { bag(properties)? };
            bag.get(..len).unwrap_or_default()
        };
        out.write(|b| iothub_proto::bytes::telemetry_topic(f.device_id(), f.module(), bag, b))
    })())
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
        out.write(|b| iothub_proto::bytes::c2d_subscribe_filter(f.device_id(), f.module(), b))
    })())
}

/// A request id from C: required and non-empty.
///
/// # Safety
///
/// `request_id` is a valid span for `'a`.
unsafe fn request_id<'a>(request_id: iothub_span) -> Result<RequestId<'a>, Failure> {
    // SAFETY: forwarded contract.
    Ok(RequestId::new(unsafe { span::required_text(request_id) }?))
}

/// Which topic named by a request id to write.
#[derive(Clone, Copy)]
enum RequestTopic {
    /// `$iothub/twin/GET/?$rid=…`
    TwinGet,
    /// `$iothub/twin/PATCH/properties/reported/?$rid=…`
    ReportedPatch,
    /// `$iothub/methods/res/{status}/?$rid=…`
    MethodResponse(u16),
}

/// The topics named by a request id share one body (one copy of the checks in firmware;
/// a `match` rather than a closure per topic, which measured smaller).
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
    topic: RequestTopic,
) -> iothub_result {
    status((|| {
        // SAFETY: forwarded contracts.
        let (rid, out) = unsafe {
            (
                self::request_id(request_id)?,
                Output::new(buf, size, out_len)?,
            )
        };
        out.write(|b| match topic {
            RequestTopic::TwinGet => TwinGetTopic::new(rid).encode_to(b),
            RequestTopic::ReportedPatch => ReportedPatchTopic::new(rid).encode_to(b),
            RequestTopic::MethodResponse(status_code) => {
                MethodResponseTopic::new(rid, status_code).encode_to(b)
            }
        })
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
    unsafe { write_request_topic(request_id, buf, size, out_len, RequestTopic::TwinGet) }
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
    unsafe { write_request_topic(request_id, buf, size, out_len, RequestTopic::ReportedPatch) }
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
        write_request_topic(
            request_id,
            buf,
            size,
            out_len,
            RequestTopic::MethodResponse(status_code),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub_proto::properties::SystemProperty;
    use iothub_proto::topic;

    /// The bag built pair by pair gives the core's `PropertyWriter` text, with bytes that are
    /// not UTF-8 percent-encoded; a pair that does not fit leaves the bag whole.
    #[test]
    fn caller_built_bag_and_topic() {
        use crate::client::iothub_client_init;
        let mut client = core::mem::MaybeUninit::<iothub_client>::uninit();
        // SAFETY: a writable client and spans over live literals.
        let rc = unsafe {
            iothub_client_init(
                client.as_mut_ptr(),
                iothub_span::from_str("h"),
                iothub_span::from_bytes(b"d\xff"),
                iothub_span::EMPTY,
                core::ptr::null(),
            )
        };
        assert_eq!(rc, IOTHUB_OK);
        // SAFETY: init returned `IOTHUB_OK`, so it wrote the whole client.
        let client = unsafe { client.assume_init() };
        assert!(!client.module_id.ptr.is_null() && client.module_id.len == 0);

        let mut bag = [0 as c_char; 40];
        let mut props = core::mem::MaybeUninit::<iothub_message_properties>::uninit();
        let mut len = 0;
        // SAFETY: every pointer is a live local of the size passed; the bag is read only
        // after init returned `IOTHUB_OK`.
        unsafe {
            assert_eq!(
                iothub_message_properties_init(props.as_mut_ptr(), bag.as_mut_ptr(), 40, 0),
                IOTHUB_OK
            );
            let props = props.assume_init_mut();
            let pairs: [(&[u8], &[u8]); 2] = [(b"$.ct", b"application/json"), (b"u", b"\xb0C")];
            for (name, value) in pairs {
                let rc = iothub_message_properties_append(
                    props,
                    iothub_span::from_bytes(name),
                    iothub_span::from_bytes(value),
                    &mut len,
                );
                assert_eq!(rc, IOTHUB_OK);
            }
            assert_eq!(len, "%24.ct=application%2Fjson&u=%B0C".len());
            let rc = iothub_message_properties_append(
                props,
                iothub_span::from_str("long"),
                iothub_span::from_str("value"),
                &mut len,
            );
            assert_eq!(rc, IOTHUB_ERROR_BUFFER_TOO_SMALL);
            assert_eq!(len, "%24.ct=application%2Fjson&u=%B0C&long=value".len());

            let mut topic = [0 as c_char; 96];
            let rc = iothub_client_telemetry_get_publish_topic(
                &client,
                props,
                topic.as_mut_ptr(),
                topic.len(),
                &mut len,
            );
            assert_eq!(rc, IOTHUB_OK);
            let topic = core::ffi::CStr::from_ptr(topic.as_ptr());
            assert_eq!(
                topic.to_bytes(),
                b"devices/d%FF/messages/events/%24.ct=application%2Fjson&u=%B0C"
            );
            assert_eq!(len, topic.to_bytes().len());
        }
    }

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
        let properties = [
            (
                "IOTHUB_PROPERTY_MESSAGE_ID",
                IOTHUB_PROPERTY_MESSAGE_ID,
                SystemProperty::MessageId.key(),
            ),
            (
                "IOTHUB_PROPERTY_CORRELATION_ID",
                IOTHUB_PROPERTY_CORRELATION_ID,
                SystemProperty::CorrelationId.key(),
            ),
            (
                "IOTHUB_PROPERTY_USER_ID",
                IOTHUB_PROPERTY_USER_ID,
                SystemProperty::UserId.key(),
            ),
            (
                "IOTHUB_PROPERTY_CONTENT_TYPE",
                IOTHUB_PROPERTY_CONTENT_TYPE,
                SystemProperty::ContentType.key(),
            ),
            (
                "IOTHUB_PROPERTY_CONTENT_ENCODING",
                IOTHUB_PROPERTY_CONTENT_ENCODING,
                SystemProperty::ContentEncoding.key(),
            ),
            (
                "IOTHUB_PROPERTY_COMPONENT_NAME",
                IOTHUB_PROPERTY_COMPONENT_NAME,
                SystemProperty::ComponentName.key(),
            ),
            (
                "IOTHUB_PROPERTY_CREATION_TIME_UTC",
                IOTHUB_PROPERTY_CREATION_TIME_UTC,
                iothub_proto::properties::CREATION_TIME_UTC,
            ),
        ];
        let header = include_str!("../../../include/iothub.h");
        for (name, ours, core) in pairs.into_iter().chain(properties) {
            assert_eq!(ours, core, "{name}");
            let define = std::format!("#define {name} \"{ours}\"");
            assert!(header.contains(&define), "header lacks {define}");
        }
    }
}
