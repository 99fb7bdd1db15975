//! Device-to-cloud telemetry topics (docs/protocol.md §4).

use core::fmt;

use super::{TopicError, parse_addressed};
use crate::encode::{Sink, WriteTo};
use crate::error::BufferTooSmall;
use crate::percent::Decoded;
use crate::properties::{PropertyBag, PropertyWriter};

/// The topic a device or module publishes telemetry on:
/// `devices/{d}[/modules/{m}]/messages/events/[{property bag}]`.
///
/// Ids are percent-encoded as the Python SDK does (plain ids are unchanged).
///
/// ```
/// use iothub_proto::properties::PropertyWriter;
/// use iothub_proto::topic::TelemetryTopic;
///
/// let app = [("alert", "true")];
/// let bag = PropertyWriter::new()
///     .message_id("mid-1")
///     .correlation_id("cid-1")
///     .content_type("application/json")
///     .content_encoding("utf-8")
///     .application(&app);
/// // docs/protocol.md §4 (Python SDK byte for byte)
/// assert_eq!(
///     TelemetryTopic::new("dev3").properties(bag).to_string(),
///     "devices/dev3/messages/events/%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true"
/// );
/// assert_eq!(
///     TelemetryTopic::new("d").module("m").to_string(),
///     "devices/d/modules/m/messages/events/"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelemetryTopic<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
    properties: PropertyWriter<'a>,
}

impl<'a> TelemetryTopic<'a> {
    /// Telemetry of device `device_id`, without properties.
    pub const fn new(device_id: &'a str) -> Self {
        Self {
            device_id,
            module_id: None,
            properties: PropertyWriter::new(),
        }
    }

    /// Sends as module `module_id` of the device.
    pub const fn module(mut self, module_id: &'a str) -> Self {
        self.module_id = Some(module_id);
        self
    }

    /// Appends this property bag.
    pub const fn properties(mut self, properties: PropertyWriter<'a>) -> Self {
        self.properties = properties;
        self
    }

    /// Writes the topic into `buf` without `core::fmt` and returns its length in bytes (the
    /// same text as [`Display`](fmt::Display)).
    ///
    /// # Errors
    ///
    /// [`BufferTooSmall`] with the full length needed when `buf` is too short.
    ///
    /// ```
    /// use iothub_proto::properties::PropertyWriter;
    /// use iothub_proto::topic::TelemetryTopic;
    ///
    /// let topic = TelemetryTopic::new("dev3").properties(PropertyWriter::new().content_encoding("utf-8"));
    /// let mut buf = [0u8; 64];
    /// let len = topic.encode_to(&mut buf)?;
    /// assert_eq!(&buf[..len], b"devices/dev3/messages/events/%24.ce=utf-8");
    /// assert_eq!(topic.encode_to(&mut buf[..10]), Err(iothub_proto::BufferTooSmall { required: len }));
    /// # Ok::<(), iothub_proto::BufferTooSmall>(())
    /// ```
    pub fn encode_to(&self, buf: &mut [u8]) -> Result<usize, BufferTooSmall> {
        crate::encode::encode_to(self, buf)
    }
}

impl fmt::Display for TelemetryTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for TelemetryTopic<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        super::c2d::write_address(out, self.device_id, self.module_id);
        out.put("messages/events/");
        self.properties.write_to(out)
    }
}

/// Telemetry received by the hub: the sender and the property bag.
///
/// ```
/// use iothub_proto::topic::TelemetryMessage;
///
/// let message = TelemetryMessage::parse("devices/my%20dev/modules/m1/messages/events/%24.ct=text%2Fplain")?;
/// assert!(message.device_id().eq_str("my dev"));
/// assert!(message.module_id().is_some_and(|m| m.eq_str("m1")));
/// assert_eq!(message.properties().raw(), "%24.ct=text%2Fplain");
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelemetryMessage<'a> {
    device_id: Decoded<'a>,
    module_id: Option<Decoded<'a>>,
    properties: PropertyBag<'a>,
}

impl<'a> TelemetryMessage<'a> {
    /// Parses `devices/{d}[/modules/{m}]/messages/events[/{bag}]`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for any other topic;
    /// [`Malformed::EmptySegment`](super::Malformed::EmptySegment) for an empty id.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let addressed = parse_addressed(topic, "events")?;
        Ok(Self {
            device_id: addressed.device_id,
            module_id: addressed.module_id,
            properties: addressed.properties,
        })
    }

    /// The sending device id (compare with [`Decoded::eq_str`]).
    pub const fn device_id(&self) -> Decoded<'a> {
        self.device_id
    }

    /// The sending module id, if a module sent it.
    pub const fn module_id(&self) -> Option<Decoded<'a>> {
        self.module_id
    }

    /// The message properties.
    pub const fn properties(&self) -> PropertyBag<'a> {
        self.properties
    }
}
