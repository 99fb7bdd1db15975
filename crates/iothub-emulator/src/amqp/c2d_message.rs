//! A cloud-to-device message sent by the service on `messages/devicebound` (docs/amqp.md
//! "C2D"), and the AMQP errors a refused one is rejected with.
//!
//! The message names its device in `properties.to`: `/devices/{id}/messages/devicebound` or
//! `/devices/{id}/modules/{m}/messages/devicebound`, ids percent-decoded as the REST API
//! decodes path segments (a stray `%` stays literal; decoded bytes must be UTF-8). The fixed
//! segments match case-insensitively and the leading `/` is optional.
//!
//! | AMQP | hub |
//! |---|---|
//! | `message-id`, `correlation-id` (any id type) | text: strings as they are, ulongs in decimal, UUIDs hyphenated lower-case, binary as UTF-8 or else hex |
//! | `content-type`, `content-encoding` | as they are |
//! | `absolute-expiry-time` | the expiry |
//! | `user-id` (binary) | UTF-8 text (invalid sequences replaced) |
//! | application property `iothub-ack` | `none`, `positive`, `negative`, `full` (any case) |
//! | other application properties | the property bag; strings and symbols as they are, numbers and booleans in decimal / `true` / `false`, timestamps in ms, null as empty |
//! | body: data sections (concatenated), or an amqp-value binary or string, or none | the bytes |
//!
//! The receiver should take the link's messages as `Message<Body<Value>>`
//! (`receiver.recv::<Body<Value>>()`), which decodes every body kind.

use fe2o3_amqp::types::definitions::{self, AmqpError, ErrorCondition, LinkError};
use fe2o3_amqp::types::messaging::{AmqpValue, Body, Message};
use fe2o3_amqp::types::primitives::{SimpleValue, Symbol, Value};
use iothub_proto::percent::Decoded;

use super::values::{message_id_text, text_of, uuid_text};
use crate::hub::HubError;
use crate::hub::auth::Identity;
use crate::hub::c2d::{AckMode, C2dError, OutgoingMessage};
use crate::timestamp::from_unix_millis;

/// Condition the IoT Hub service SDKs map to an argument error (the Node SDK's
/// `ArgumentError`); used for a malformed `to`, `iothub-ack` or body.
pub const ARGUMENT_ERROR: &str = "com.microsoft:argument-error";

/// Why a C2D message was refused before it reached the hub.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum C2dRefusal {
    /// No `to` property.
    #[error("the message has no `to` property (/devices/{{id}}/messages/devicebound)")]
    MissingTo,
    /// `to` is not a device or module devicebound address.
    #[error("`to` is not /devices/{{id}}[/modules/{{module}}]/messages/devicebound: {0:?}")]
    MalformedTo(String),
    /// Body plus properties over the limit.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Body plus property sizes, as the hub counts them.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// `iothub-ack` is not one of `none`, `positive`, `negative`, `full`.
    #[error("iothub-ack must be none, positive, negative or full, got {0:?}")]
    BadAck(String),
    /// The body is an amqp-sequence or an amqp-value that is neither binary nor a string.
    #[error("the body must be data sections or an amqp-value binary or string")]
    BadBody,
}

impl C2dRefusal {
    /// The error condition and description to reject the delivery with (docs/amqp.md "C2D").
    #[must_use]
    pub fn condition(&self) -> (ErrorCondition, String) {
        let condition = match self {
            Self::TooLarge { .. } => ErrorCondition::LinkError(LinkError::MessageSizeExceeded),
            Self::MissingTo | Self::MalformedTo(_) | Self::BadAck(_) | Self::BadBody => {
                ErrorCondition::Custom(Symbol::from(ARGUMENT_ERROR))
            }
        };
        (condition, self.to_string())
    }

    /// The whole AMQP error (condition and description, no info).
    #[must_use]
    pub fn to_error(&self) -> definitions::Error {
        let (condition, description) = self.condition();
        definitions::Error::new(condition, Some(description), None)
    }
}

/// Turns a service's C2D message into the hub's addressee and message.
///
/// `max_size` is the hub's C2D limit (`C2dLimits::max_message_bytes`), counted as the hub
/// counts it: body plus property names and values plus the id and type strings.
///
/// # Errors
/// [`C2dRefusal`] for a missing or malformed `to`, a bad `iothub-ack`, an unsupported body or
/// an oversized message.
///
/// # Example
/// ```
/// use fe2o3_amqp::types::messaging::{ApplicationProperties, Body, Message, Properties};
/// use fe2o3_amqp::types::primitives::{Binary, Value};
/// use iothub_emulator::amqp::c2d_message::c2d_from_message;
/// use iothub_emulator::hub::c2d::AckMode;
/// let msg: Message<Body<Value>> = Message::builder()
///     .properties(Properties::builder().to("/devices/dev%231/messages/devicebound").build())
///     .application_properties(
///         ApplicationProperties::builder().insert("iothub-ack", "full").insert("color", "red").build(),
///     )
///     .body(Body::Value(fe2o3_amqp::types::messaging::AmqpValue(Value::Binary(Binary::from(b"hi".to_vec())))))
///     .build();
/// let (who, out) = c2d_from_message(msg, 65_536).unwrap();
/// assert_eq!(who.device_id, "dev#1");
/// assert_eq!(out.ack, AckMode::Full);
/// assert_eq!(out.properties, vec![("color".to_owned(), "red".to_owned())]);
/// assert_eq!(out.body, b"hi");
/// ```
pub fn c2d_from_message(
    msg: Message<Body<Value>>,
    max_size: usize,
) -> Result<(Identity, OutgoingMessage), C2dRefusal> {
    let Message {
        properties,
        application_properties,
        body,
        ..
    } = msg;
    let properties = properties.unwrap_or_default();
    let to = properties.to.as_deref().ok_or(C2dRefusal::MissingTo)?;
    let identity = parse_to(to)?;

    let mut ack = AckMode::None;
    let mut bag = Vec::new();
    for (key, value) in application_properties.map(|a| a.0).unwrap_or_default() {
        if key == "iothub-ack" {
            let text = text_of(&value).unwrap_or_default();
            ack = AckMode::parse(text).ok_or_else(|| C2dRefusal::BadAck(property_text(&value)))?;
        } else {
            bag.push((key, property_text(&value)));
        }
    }

    let body = match body {
        Body::Data(sections) => sections.into_iter().flat_map(|d| d.0.into_vec()).collect(),
        Body::Value(AmqpValue(Value::Binary(bytes))) => bytes.into_vec(),
        Body::Value(AmqpValue(Value::String(text))) => text.into_bytes(),
        Body::Empty => Vec::new(),
        Body::Value(_) | Body::Sequence(_) => return Err(C2dRefusal::BadBody),
    };

    let message = OutgoingMessage {
        body,
        message_id: properties.message_id.as_ref().map(message_id_text),
        correlation_id: properties.correlation_id.as_ref().map(message_id_text),
        user_id: properties
            .user_id
            .as_ref()
            .map(|u| String::from_utf8_lossy(u).into_owned()),
        content_type: properties.content_type.map(Symbol::into_inner),
        content_encoding: properties.content_encoding.map(Symbol::into_inner),
        ack,
        expiry: properties
            .absolute_expiry_time
            .map(|t| from_unix_millis(t.milliseconds())),
        properties: bag,
    };
    let size = message_size(&message);
    if size > max_size {
        return Err(C2dRefusal::TooLarge {
            size,
            limit: max_size,
        });
    }
    Ok((identity, message))
}

/// The addressee of `/devices/{id}[/modules/{m}]/messages/devicebound`.
fn parse_to(to: &str) -> Result<Identity, C2dRefusal> {
    let malformed = || C2dRefusal::MalformedTo(to.to_owned());
    let path = to.strip_prefix('/').unwrap_or(to);
    let segments: Vec<&str> = path.split('/').collect();
    let is = |i: usize, fixed: &str| {
        segments
            .get(i)
            .is_some_and(|s| s.eq_ignore_ascii_case(fixed))
    };
    let (device, module) = match segments.len() {
        4 if is(0, "devices") && is(2, "messages") && is(3, "devicebound") => (segments[1], None),
        6 if is(0, "devices") && is(2, "modules") && is(4, "messages") && is(5, "devicebound") => {
            (segments[1], Some(segments[3]))
        }
        _ => return Err(malformed()),
    };
    let decode = |raw: &str| {
        Decoded::new(raw)
            .decode()
            .ok()
            .filter(|id| !id.is_empty())
            .ok_or_else(malformed)
    };
    Ok(Identity {
        device_id: decode(device)?,
        module_id: module.map(decode).transpose()?,
    })
}

/// An application property's value as property-bag text.
fn property_text(value: &SimpleValue) -> String {
    match value {
        SimpleValue::Null => String::new(),
        SimpleValue::Bool(b) => b.to_string(),
        SimpleValue::Ubyte(n) => n.to_string(),
        SimpleValue::Ushort(n) => n.to_string(),
        SimpleValue::Uint(n) => n.to_string(),
        SimpleValue::Ulong(n) => n.to_string(),
        SimpleValue::Byte(n) => n.to_string(),
        SimpleValue::Short(n) => n.to_string(),
        SimpleValue::Int(n) => n.to_string(),
        SimpleValue::Long(n) => n.to_string(),
        SimpleValue::Float(f) => f.to_string(),
        SimpleValue::Double(f) => f.to_string(),
        SimpleValue::Char(c) => c.to_string(),
        SimpleValue::Timestamp(t) => t.milliseconds().to_string(),
        SimpleValue::Uuid(u) => uuid_text(u.as_inner()),
        SimpleValue::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        SimpleValue::String(s) => s.clone(),
        SimpleValue::Symbol(s) => s.as_str().to_owned(),
        // Decimals have no text form in the codec: their debug form (no SDK sends them).
        other => format!("{other:?}"),
    }
}

/// The size the hub counts against its C2D limit (the same sum as `hub/c2d.rs` makes:
/// body, property names and values, and the id and type strings).
fn message_size(m: &OutgoingMessage) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    m.body.len()
        + m.properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + opt(&m.message_id)
        + opt(&m.correlation_id)
        + opt(&m.user_id)
        + opt(&m.content_type)
        + opt(&m.content_encoding)
}

/// The AMQP error to reject a delivery with when the hub refused the message:
///
/// | hub | condition | description |
/// |---|---|---|
/// | unknown device or module | `amqp:not-found` | `404001 DeviceNotFound: …` |
/// | queue full (50) | `amqp:resource-limit-exceeded` (the SDKs' DeviceMaximumQueueDepthExceeded) | `403004 DeviceMaximumQueueDepthExceeded: …` |
/// | over 64 KB | `amqp:link:message-size-exceeded` | `413001 MessageTooLarge: …` |
/// | anything else | `amqp:internal-error` | `500001 ServerError: …` |
///
/// # Example
/// ```
/// use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition};
/// use iothub_emulator::amqp::c2d_message::c2d_error;
/// use iothub_emulator::hub::HubError;
/// use iothub_emulator::hub::c2d::C2dError;
/// let error = c2d_error(&HubError::C2d(C2dError::QueueFull));
/// assert_eq!(error.condition, ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded));
/// assert!(error.description.unwrap().starts_with("403004"));
/// ```
#[must_use]
pub fn c2d_error(hub_error: &HubError) -> definitions::Error {
    let (condition, code) = match hub_error {
        HubError::NotFound(_) => (
            ErrorCondition::AmqpError(AmqpError::NotFound),
            "404001 DeviceNotFound",
        ),
        HubError::C2d(C2dError::QueueFull) => (
            ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded),
            "403004 DeviceMaximumQueueDepthExceeded",
        ),
        HubError::C2d(C2dError::MessageTooLarge { .. }) => (
            ErrorCondition::LinkError(LinkError::MessageSizeExceeded),
            "413001 MessageTooLarge",
        ),
        _ => (
            ErrorCondition::AmqpError(AmqpError::InternalError),
            "500001 ServerError",
        ),
    };
    definitions::Error::new(condition, Some(format!("{code}: {hub_error}")), None)
}

#[cfg(test)]
mod tests;
