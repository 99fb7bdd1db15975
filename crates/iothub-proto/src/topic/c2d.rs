//! Cloud-to-device message topics (docs/protocol.md §5).

use core::fmt;

use super::{TopicError, parse_addressed};
use crate::encode::{Sink, WriteTo};
use crate::percent::{self, Decoded};
use crate::properties::{PropertyBag, PropertyWriter};

/// The device-scoped C2D subscribe filter, `devices/{d}/messages/devicebound/#`.
///
/// ```
/// use iothub_proto::topic::C2dFilter;
///
/// assert_eq!(C2dFilter::new("dev3").to_string(), "devices/dev3/messages/devicebound/#");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct C2dFilter<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
}

impl<'a> C2dFilter<'a> {
    /// The filter for device `device_id`.
    pub const fn new(device_id: &'a str) -> Self {
        Self {
            device_id,
            module_id: None,
        }
    }

    /// The filter for a module of the device (delivery to modules is UNCONFIRMED, §5).
    pub const fn module(mut self, module_id: &'a str) -> Self {
        self.module_id = Some(module_id);
        self
    }
}

impl fmt::Display for C2dFilter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for C2dFilter<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_address(out, self.device_id, self.module_id);
        out.put("messages/devicebound/#");
    }
}

/// The topic the hub delivers a C2D message on (hub side):
/// `devices/{d}[/modules/{m}]/messages/devicebound/[{property bag}]`.
///
/// ```
/// use iothub_proto::properties::PropertyWriter;
/// use iothub_proto::topic::C2dTopic;
///
/// let app = [("property1", "value 1")];
/// let bag = PropertyWriter::new()
///     .message_id("m1")
///     .system(iothub_proto::properties::SystemProperty::To, "/devices/dev3/messages/devicebound")
///     .ack("full")
///     .application(&app);
/// assert_eq!(
///     C2dTopic::new("dev3").properties(bag).to_string(),
///     "devices/dev3/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Fdev3%2Fmessages%2Fdevicebound\
///      &iothub-ack=full&property1=value%201"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct C2dTopic<'a> {
    device_id: &'a str,
    module_id: Option<&'a str>,
    properties: PropertyWriter<'a>,
}

impl<'a> C2dTopic<'a> {
    /// A delivery to device `device_id` without properties.
    pub const fn new(device_id: &'a str) -> Self {
        Self {
            device_id,
            module_id: None,
            properties: PropertyWriter::new(),
        }
    }

    /// Delivers to module `module_id` of the device.
    pub const fn module(mut self, module_id: &'a str) -> Self {
        self.module_id = Some(module_id);
        self
    }

    /// Appends this property bag.
    pub const fn properties(mut self, properties: PropertyWriter<'a>) -> Self {
        self.properties = properties;
        self
    }
}

impl fmt::Display for C2dTopic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::encode::display(self, f)
    }
}

impl WriteTo for C2dTopic<'_> {
    fn write_to(&self, out: &mut dyn Sink) {
        write_address(out, self.device_id, self.module_id);
        out.put("messages/devicebound/");
        self.properties.write_to(out);
    }
}

/// A C2D message as received by a device: the addressee and the property bag.
///
/// ```
/// use iothub_proto::properties::SystemProperty;
/// use iothub_proto::topic::C2dMessage;
///
/// // docs/protocol.md §5, C SDK sample log
/// let topic = "devices/my-device-1/messages/devicebound/%24.mid=84c08717-2be1-404c-9e5d-62f4565ca58b\
///              &%24.to=%2Fdevices%2Fmy-device-1%2Fmessages%2FdeviceBound&iothub-ack=full";
/// let message = C2dMessage::parse(topic)?;
/// assert!(message.device_id().eq_str("my-device-1"));
/// let bag = message.properties();
/// assert!(bag.system(SystemProperty::To).is_some_and(|v| v.eq_str("/devices/my-device-1/messages/deviceBound")));
/// assert!(bag.get("iothub-ack").is_some_and(|v| v.is_some_and(|v| v.eq_str("full"))));
/// # Ok::<(), iothub_proto::topic::TopicError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct C2dMessage<'a> {
    device_id: Decoded<'a>,
    module_id: Option<Decoded<'a>>,
    properties: PropertyBag<'a>,
}

impl<'a> C2dMessage<'a> {
    /// Parses `devices/{d}[/modules/{m}]/messages/devicebound[/[?]{bag}]`.
    ///
    /// # Errors
    ///
    /// [`TopicError::Unrecognized`] for any other topic;
    /// [`Malformed::EmptySegment`](super::Malformed::EmptySegment) for an empty id.
    pub fn parse(topic: &'a str) -> Result<Self, TopicError> {
        let addressed = parse_addressed(topic, "devicebound")?;
        Ok(Self {
            device_id: addressed.device_id,
            module_id: addressed.module_id,
            properties: addressed.properties,
        })
    }

    /// The device the message is for.
    pub const fn device_id(&self) -> Decoded<'a> {
        self.device_id
    }

    /// The module the message is for, if any.
    pub const fn module_id(&self) -> Option<Decoded<'a>> {
        self.module_id
    }

    /// The message properties (a leading `?` is already skipped).
    pub const fn properties(&self) -> PropertyBag<'a> {
        self.properties
    }
}

/// Writes `devices/{d}/[modules/{m}/]` with percent-encoded ids.
pub(super) fn write_address(f: &mut dyn Sink, device_id: &str, module_id: Option<&str>) {
    write_address_bytes(f, device_id.as_bytes(), module_id.map(str::as_bytes));
}

/// [`write_address`] over bytes (the ids need not be UTF-8: they are percent-encoded).
pub(crate) fn write_address_bytes(f: &mut dyn Sink, device_id: &[u8], module_id: Option<&[u8]>) {
    f.put("devices/");
    percent::write_encoded_bytes(f, device_id);
    f.put("/");
    if let Some(module_id) = module_id {
        f.put("modules/");
        percent::write_encoded_bytes(f, module_id);
        f.put("/");
    }
}
