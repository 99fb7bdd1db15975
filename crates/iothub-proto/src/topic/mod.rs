//! MQTT topic names and filters of IoT Hub and DPS: builders and parsers for both sides.
//!
//! Builders are small [`Display`](core::fmt::Display) types written into caller storage
//! with [`encode_into`](crate::encode_into). Parsers return borrowed views and tell "not a
//! topic of this kind" ([`TopicError::Unrecognized`]) apart from "one of ours, but broken"
//! ([`TopicError::Malformed`]), like azure-sdk-for-c's `AZ_ERROR_IOT_TOPIC_NO_MATCH`.
//!
//! | feature | device publishes | device receives |
//! |---|---|---|
//! | telemetry (§4) | [`TelemetryTopic`] | |
//! | C2D (§5) | | [`C2dMessage`] on [`C2dFilter`] |
//! | twin (§6) | [`TwinGetTopic`], [`ReportedPatchTopic`] | [`TwinResponse`], [`DesiredPatch`] |
//! | methods (§7) | [`MethodResponseTopic`] | [`MethodRequest`] |
//! | DPS (§9) | [`DpsRegisterTopic`], [`DpsPollTopic`] | [`DpsResponse`] |
//!
//! [`Incoming::parse`] classifies anything a device receives; [`HubIncoming::parse`] anything
//! a hub (or the emulator) receives, whose answers are built with [`C2dTopic`],
//! [`TwinResponseTopic`], [`DesiredPatchTopic`], [`MethodRequestTopic`] and [`DpsResponseTopic`].
//!
//! ```
//! use iothub_proto::encode_into;
//! use iothub_proto::topic::{HubIncoming, Incoming, TwinGetTopic, TwinResponseTopic};
//! use iothub_proto::{RequestId, Status};
//!
//! let mut buf = [0u8; 64];
//! // device -> hub
//! let get = encode_into(&TwinGetTopic::new(RequestId::Number(3)), &mut buf).unwrap();
//! let Ok(HubIncoming::TwinGet(request)) = HubIncoming::parse(get) else { panic!() };
//! // hub -> device
//! let mut out = [0u8; 64];
//! let res = TwinResponseTopic::new(Status::OK, request.request_id());
//! let res = encode_into(&res, &mut out).unwrap();
//! assert_eq!(res, "$iothub/twin/res/200/?$rid=3");
//! let Ok(Incoming::TwinResponse(response)) = Incoming::parse(res) else { panic!() };
//! assert_eq!(response.request_id(), RequestId::Number(3));
//! ```

use core::fmt;

use crate::percent::Decoded;
use crate::properties::PropertyBag;
use crate::request_id::RequestId;
use crate::status::Status;
use crate::text::split_once_byte;

mod c2d;
mod methods;
mod provisioning;
mod telemetry;
mod twin;

pub(crate) use c2d::write_address_bytes;
pub use c2d::{C2dFilter, C2dMessage, C2dTopic};
pub use methods::{MethodRequest, MethodRequestTopic, MethodResponse, MethodResponseTopic};
pub use provisioning::{
    DpsPoll, DpsPollTopic, DpsRegister, DpsRegisterTopic, DpsResponse, DpsResponseTopic,
};
pub use telemetry::{TelemetryMessage, TelemetryTopic};
pub use twin::{
    DesiredPatch, DesiredPatchTopic, ReportedPatchTopic, TwinGetTopic, TwinRequest, TwinResponse,
    TwinResponseTopic,
};

/// Subscribe filter for C2D messages of any device, as azure-sdk-for-c uses (docs/protocol.md §5).
/// [`C2dFilter`] writes the device-scoped filter the other SDKs use.
pub const C2D_FILTER_ANY_DEVICE: &str = "devices/+/messages/devicebound/#";
/// Subscribe filter for twin responses (docs/protocol.md §6).
pub const TWIN_RESPONSE_FILTER: &str = "$iothub/twin/res/#";
/// Subscribe filter for desired-property patches (docs/protocol.md §6).
pub const DESIRED_PATCH_FILTER: &str = "$iothub/twin/PATCH/properties/desired/#";
/// Subscribe filter for direct-method requests (docs/protocol.md §7).
pub const METHODS_FILTER: &str = "$iothub/methods/POST/#";
/// Subscribe filter for DPS responses (docs/protocol.md §9).
pub const DPS_RESPONSE_FILTER: &str = "$dps/registrations/res/#";

/// Why a topic could not be parsed.
///
/// ```
/// use iothub_proto::topic::{Incoming, Malformed, TopicError};
///
/// assert_eq!(Incoming::parse("sensors/temp").unwrap_err(), TopicError::Unrecognized);
/// assert_eq!(
///     Incoming::parse("$iothub/twin/res/abc/?$rid=1").unwrap_err(),
///     TopicError::Malformed(Malformed::InvalidStatus)
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicError {
    /// The topic has the shape of this kind but a part of it is invalid.
    Malformed(Malformed),
    /// The topic is not of this kind (nothing to see: try another parser).
    Unrecognized,
}

/// Which part of a recognised topic is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Malformed {
    /// A device id, module id, method name or operation id segment is empty.
    EmptySegment,
    /// `retry-after` is not a non-negative integer.
    InvalidRetryAfter,
    /// The status segment is not an integer from 0 to 65535.
    InvalidStatus,
    /// `$version` is not a non-negative integer.
    InvalidVersion,
    /// `operationId` is absent or empty.
    MissingOperationId,
    /// The `/?` before the query is absent.
    MissingQuery,
    /// `$rid` is absent or empty.
    MissingRequestId,
    /// `$version` is absent.
    MissingVersion,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => {
                f.write_str("malformed topic: ")?;
                fmt::Display::fmt(reason, f)
            }
            Self::Unrecognized => f.write_str("unrecognized topic"),
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EmptySegment => "empty segment",
            Self::InvalidRetryAfter => "invalid retry-after",
            Self::InvalidStatus => "invalid status",
            Self::InvalidVersion => "invalid $version",
            Self::MissingOperationId => "missing operationId",
            Self::MissingQuery => "missing query",
            Self::MissingRequestId => "missing $rid",
            Self::MissingVersion => "missing $version",
        })
    }
}

impl core::error::Error for TopicError {}
impl core::error::Error for Malformed {}

impl From<Malformed> for TopicError {
    fn from(reason: Malformed) -> Self {
        Self::Malformed(reason)
    }
}

/// Anything a device receives, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming<'a> {
    /// A cloud-to-device message (docs/protocol.md §5).
    C2d(C2dMessage<'a>),
    /// A desired-properties patch (docs/protocol.md §6).
    DesiredPatch(DesiredPatch),
    /// A DPS response (docs/protocol.md §9).
    DpsResponse(DpsResponse<'a>),
    /// A direct-method request (docs/protocol.md §7).
    MethodRequest(MethodRequest<'a>),
    /// A response to a twin GET or reported patch (docs/protocol.md §6).
    TwinResponse(TwinResponse<'a>),
}

impl<'a> Incoming<'a> {
    /// Classifies a topic received by a device.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] when no device-side topic matches, and
    /// [`TopicError::Malformed`] when one matches but is invalid.
    ///
    /// ```
    /// use iothub_proto::topic::Incoming;
    ///
    /// let Ok(Incoming::MethodRequest(request)) = Incoming::parse("$iothub/methods/POST/reboot/?$rid=1a")
    /// else {
    ///     panic!("not a method request")
    /// };
    /// assert_eq!(request.name(), "reboot");
    /// assert_eq!(request.request_id().as_str(), Some("1a"));
    /// ```
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        first_match(
            &[
                |t| MethodRequest::parse(t).map(Incoming::MethodRequest),
                |t| TwinResponse::parse(t).map(Incoming::TwinResponse),
                |t| DesiredPatch::parse(t).map(Incoming::DesiredPatch),
                |t| C2dMessage::parse(t).map(Incoming::C2d),
                |t| DpsResponse::parse(t).map(Incoming::DpsResponse),
            ],
            topic,
        )
    }
}

/// Anything a hub (or DPS) receives from a device, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HubIncoming<'a> {
    /// A DPS operation-status poll (docs/protocol.md §9).
    DpsPoll(DpsPoll<'a>),
    /// A DPS registration request (docs/protocol.md §9).
    DpsRegister(DpsRegister<'a>),
    /// A direct-method response (docs/protocol.md §7).
    MethodResponse(MethodResponse<'a>),
    /// A reported-properties patch (docs/protocol.md §6).
    ReportedPatch(TwinRequest<'a>),
    /// Device-to-cloud telemetry (docs/protocol.md §4).
    Telemetry(TelemetryMessage<'a>),
    /// A twin GET (docs/protocol.md §6).
    TwinGet(TwinRequest<'a>),
}

impl<'a> HubIncoming<'a> {
    /// Classifies a topic published by a device.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] when no device-to-hub topic matches, and
    /// [`TopicError::Malformed`] when one matches but is invalid.
    ///
    /// ```
    /// use iothub_proto::topic::HubIncoming;
    ///
    /// let topic = "devices/dev3/messages/events/%24.mid=mid-1&alert=true";
    /// let Ok(HubIncoming::Telemetry(message)) = HubIncoming::parse(topic) else { panic!() };
    /// assert!(message.device_id().eq_str("dev3"));
    /// assert!(message.properties().get("alert").is_some());
    /// ```
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        first_match(
            &[
                |t| TelemetryMessage::parse(t).map(HubIncoming::Telemetry),
                |t| TwinRequest::parse_get(t).map(HubIncoming::TwinGet),
                |t| TwinRequest::parse_reported_patch(t).map(HubIncoming::ReportedPatch),
                |t| MethodResponse::parse(t).map(HubIncoming::MethodResponse),
                |t| DpsRegister::parse(t).map(HubIncoming::DpsRegister),
                |t| DpsPoll::parse(t).map(HubIncoming::DpsPoll),
            ],
            topic,
        )
    }
}

type Parser<'a, T> = fn(&'a str) -> Result<T, TopicError>;

fn first_match<'a, T>(parsers: &[Parser<'a, T>], topic: &'a str) -> Result<T, TopicError> {
    for parse in parsers {
        match parse(topic) {
            Err(TopicError::Unrecognized) => continue,
            other => return other,
        }
    }
    Err(TopicError::Unrecognized)
}

/// A device (and optional module) addressed by a `devices/{d}[/modules/{m}]/messages/{kind}`
/// topic, with what follows the kind.
struct Addressed<'a> {
    device_id: Decoded<'a>,
    module_id: Option<Decoded<'a>>,
    properties: PropertyBag<'a>,
}

/// Parses `devices/{d}[/modules/{m}]/messages/{kind}[/{bag}]`.
///
/// Ids are percent-decoded lazily: the Python SDK percent-encodes them in topics.
fn parse_addressed<'a>(topic: &'a str, kind: &str) -> Result<Addressed<'a>, TopicError> {
    let rest = topic
        .strip_prefix("devices/")
        .ok_or(TopicError::Unrecognized)?;
    let (device_id, rest) = split_once_byte(rest, b'/').ok_or(TopicError::Unrecognized)?;
    let (module_id, rest) = match rest.strip_prefix("modules/") {
        Some(rest) => {
            let (module_id, rest) = split_once_byte(rest, b'/').ok_or(TopicError::Unrecognized)?;
            (Some(module_id), rest)
        }
        None => (None, rest),
    };
    let rest = rest
        .strip_prefix("messages/")
        .and_then(|r| r.strip_prefix(kind))
        .ok_or(TopicError::Unrecognized)?;
    let bag = match rest {
        "" => "",
        _ => rest.strip_prefix('/').ok_or(TopicError::Unrecognized)?,
    };
    if device_id.is_empty() || module_id.is_some_and(str::is_empty) {
        return Err(Malformed::EmptySegment.into());
    }
    Ok(Addressed {
        device_id: Decoded::new(device_id),
        module_id: module_id.map(Decoded::new),
        properties: PropertyBag::parse(bag),
    })
}

/// Writes `{prefix}{status}/?$rid={rid}`, the shape of every response topic.
fn write_response(
    out: &mut dyn crate::encode::Sink,
    prefix: &str,
    status: Status,
    request_id: RequestId<'_>,
) {
    use crate::encode::WriteTo;
    out.put(prefix);
    crate::text::Decimal(u64::from(status.0)).write_to(out);
    out.put("/?$rid=");
    request_id.write_to(out);
}

/// Splits `{segment}/?{query}` into the segment and the query bag.
fn segment_then_query(rest: &str) -> Result<(&str, PropertyBag<'_>), Malformed> {
    let (segment, query) = split_once_byte(rest, b'/').ok_or(Malformed::MissingQuery)?;
    Ok((segment, query_of(query)?))
}

/// The bag after the `?` that must start `query`.
fn query_of(query: &str) -> Result<PropertyBag<'_>, Malformed> {
    query
        .strip_prefix('?')
        .map(PropertyBag::parse)
        .ok_or(Malformed::MissingQuery)
}

/// The raw value of query parameter `key` (never decoded: ids are echoed verbatim).
fn raw_param<'a>(query: PropertyBag<'a>, key: &str) -> Option<&'a str> {
    query.get(key).flatten().map(|v| v.raw())
}

fn request_id(query: PropertyBag<'_>) -> Result<RequestId<'_>, Malformed> {
    match raw_param(query, "$rid") {
        Some(rid) if !rid.is_empty() => Ok(RequestId::new(rid)),
        _ => Err(Malformed::MissingRequestId),
    }
}

fn parse_status(segment: &str) -> Result<Status, Malformed> {
    parse_decimal(segment)
        .and_then(|n| u16::try_from(n).ok())
        .map(Status)
        .ok_or(Malformed::InvalidStatus)
}

/// Strict unsigned decimal: digits only, no sign, at most `u64::MAX`.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    // A plain loop rather than `str::parse`, whose sign and radix handling is not needed.
    text.bytes().try_fold(0u64, |n, b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

#[cfg(test)]
mod tests;
