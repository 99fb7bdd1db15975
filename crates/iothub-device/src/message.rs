//! Telemetry messages the device sends and cloud-to-device messages it receives.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use iothub_proto::percent::Decoded;
use iothub_proto::properties::{IOTHUB_ACK, PropertyBag, PropertyWriter, SystemProperty};
use iothub_proto::topic::TelemetryTopic;

/// Largest telemetry message IoT Hub accepts: 256 KiB counting the body and every property
/// name and value (docs/protocol.md §4, "Size"). The hub silently disconnects on larger ones, so
/// the client refuses them up front.
pub const MAX_TELEMETRY_SIZE: usize = 256 * 1024;

/// A device-to-cloud telemetry message.
///
/// ```
/// use iothub_device::Message;
///
/// let message = Message::new(r#"{"temperature":21.5}"#)
///     .content_type("application/json")
///     .content_encoding("utf-8")
///     .message_id("mid-1")
///     .property("alert", "true");
/// assert_eq!(message.body(), br#"{"temperature":21.5}"#);
/// assert_eq!(message.properties(), [("alert".to_string(), "true".to_string())]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    body: Bytes,
    message_id: Option<String>,
    correlation_id: Option<String>,
    content_type: Option<String>,
    content_encoding: Option<String>,
    component: Option<String>,
    creation_time: Option<String>,
    properties: Vec<(String, String)>,
    at_most_once: bool,
}

impl Message {
    /// A message with this body and no properties.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// A JSON message: `$.ct=application/json` and `$.ce=utf-8`, as IoT Hub message routing
    /// needs to query the body (docs/protocol.md §4).
    ///
    /// ```
    /// let m = iothub_device::Message::json(&serde_json::json!({"t": 1}));
    /// assert_eq!(m.body(), br#"{"t":1}"#);
    /// ```
    pub fn json(value: &serde_json::Value) -> Self {
        Self::new(value.to_string())
            .content_type("application/json")
            .content_encoding("utf-8")
    }

    /// Sets `$.mid`, the message id (at most 128 ASCII characters).
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets `$.cid`, the correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// Sets `$.ct`, the content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets `$.ce`, the content encoding.
    pub fn content_encoding(mut self, encoding: impl Into<String>) -> Self {
        self.content_encoding = Some(encoding.into());
        self
    }

    /// Sets `$.sub`, the Plug and Play component the telemetry belongs to (docs/protocol.md §8).
    pub fn component(mut self, component: impl Into<String>) -> Self {
        self.component = Some(component.into());
        self
    }

    /// Sets `iothub-creation-time-utc` (UTC, `YYYY-MM-DDTHH:MM:SSZ`, docs/protocol.md §4).
    ///
    /// ```
    /// use std::time::{Duration, UNIX_EPOCH};
    /// let m = iothub_device::Message::new("x")
    ///     .creation_time(UNIX_EPOCH + Duration::from_secs(1_619_004_616));
    /// assert_eq!(m.creation_time_utc(), Some("2021-04-21T11:30:16Z"));
    /// ```
    pub fn creation_time(mut self, time: SystemTime) -> Self {
        self.creation_time = Some(format_utc(time));
        self
    }

    /// Sends at QoS 0: no PUBACK, no re-send, never stored in the durable outbox; the send
    /// resolves once the message is handed to the connection. For load tests and data that
    /// is worthless when late; the default (QoS 1) is at least once.
    ///
    /// ```
    /// let m = iothub_device::Message::new("x").at_most_once();
    /// assert!(m.is_at_most_once());
    /// ```
    pub fn at_most_once(mut self) -> Self {
        self.at_most_once = true;
        self
    }

    /// Whether the message is sent at QoS 0.
    pub fn is_at_most_once(&self) -> bool {
        self.at_most_once
    }

    /// Adds an application property.
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The application properties, in insertion order.
    pub fn properties(&self) -> &[(String, String)] {
        &self.properties
    }

    /// The creation time as sent.
    pub fn creation_time_utc(&self) -> Option<&str> {
        self.creation_time.as_deref()
    }

    /// Size as IoT Hub counts it: body, system property values, application property names
    /// and values (docs/protocol.md §4).
    pub fn size(&self) -> usize {
        let system = [
            &self.message_id,
            &self.correlation_id,
            &self.content_type,
            &self.content_encoding,
            &self.component,
            &self.creation_time,
        ]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum::<usize>();
        let application = self
            .properties
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
        self.body.len() + system + application
    }

    pub(crate) fn payload(&self) -> Bytes {
        self.body.clone()
    }

    /// The telemetry topic with this message's property bag.
    pub(crate) fn topic(&self, device_id: &str, module_id: Option<&str>) -> String {
        let application: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut bag = PropertyWriter::new();
        if let Some(v) = &self.message_id {
            bag = bag.message_id(v);
        }
        if let Some(v) = &self.correlation_id {
            bag = bag.correlation_id(v);
        }
        if let Some(v) = &self.content_type {
            bag = bag.content_type(v);
        }
        if let Some(v) = &self.content_encoding {
            bag = bag.content_encoding(v);
        }
        if let Some(v) = &self.component {
            bag = bag.component_name(v);
        }
        if let Some(v) = &self.creation_time {
            bag = bag.creation_time_utc(v);
        }
        bag = bag.application(&application);
        let mut topic = TelemetryTopic::new(device_id).properties(bag);
        if let Some(module_id) = module_id {
            topic = topic.module(module_id);
        }
        topic.to_string()
    }
}

/// A cloud-to-device message (docs/protocol.md §5). Receiving it from
/// [`C2dReceiver`](crate::C2dReceiver) completes it at the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct C2dMessage {
    /// The body.
    pub body: Bytes,
    /// `$.mid`.
    pub message_id: Option<String>,
    /// `$.cid`.
    pub correlation_id: Option<String>,
    /// `$.ct`.
    pub content_type: Option<String>,
    /// `$.ce`.
    pub content_encoding: Option<String>,
    /// `$.uid`.
    pub user_id: Option<String>,
    /// `$.exp`.
    pub expiry_time: Option<String>,
    /// `iothub-ack`: the feedback the sender asked for (`none`, `positive`, `negative`, `full`).
    pub ack: Option<String>,
    /// Application properties, percent-decoded; a key without `=` has no value.
    pub properties: Vec<(String, Option<String>)>,
}

impl C2dMessage {
    /// Builds the message from the property bag of its topic and its body.
    pub(crate) fn from_parts(bag: PropertyBag<'_>, body: Bytes) -> Self {
        let system = |p| bag.system(p).map(|d| decode(&d));
        let mut properties = Vec::new();
        let mut ack = None;
        for (key, value) in bag.application() {
            let key = decode(&key);
            let value = value.map(|v| decode(&v));
            if key == IOTHUB_ACK {
                ack = value;
            } else {
                properties.push((key, value));
            }
        }
        Self {
            body,
            message_id: system(SystemProperty::MessageId),
            correlation_id: system(SystemProperty::CorrelationId),
            content_type: system(SystemProperty::ContentType),
            content_encoding: system(SystemProperty::ContentEncoding),
            user_id: system(SystemProperty::UserId),
            expiry_time: system(SystemProperty::ExpiryTime),
            ack,
            properties,
        }
    }

    /// The value of application property `name`.
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Percent-decodes, keeping the raw text when it is not valid UTF-8 after decoding.
fn decode(text: &Decoded<'_>) -> String {
    text.decode().unwrap_or_else(|_| text.raw().to_owned())
}

/// Formats `time` as `YYYY-MM-DDTHH:MM:SSZ`, the precision `$.ctime` is written with
/// (times before 1970 are written as the epoch).
pub(crate) fn format_utc(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    iothub_proto::Iso8601::seconds(secs).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matches_the_python_sdk_wire_format() {
        // docs/protocol.md §4 (Python SDK byte for byte)
        let m = Message::new("{}")
            .message_id("mid-1")
            .correlation_id("cid-1")
            .content_type("application/json")
            .content_encoding("utf-8")
            .property("alert", "true");
        assert_eq!(
            m.topic("dev3", None),
            "devices/dev3/messages/events/%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true"
        );
    }

    #[test]
    fn module_component_telemetry_carries_sub_property() {
        let m = Message::new("{}").component("thermostat1");
        let topic = m.topic("d", Some("m"));
        assert!(topic.starts_with("devices/d/modules/m/messages/events/"));
        assert!(topic.contains("%24.sub=thermostat1"), "{topic}");
    }

    #[test]
    fn size_counts_body_and_properties() {
        let m = Message::new("12345").message_id("ab").property("k", "vv");
        assert_eq!(m.size(), 5 + 2 + 3);
    }

    #[test]
    fn formats_leap_day_and_epoch() {
        assert_eq!(format_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400);
        assert_eq!(format_utc(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parses_c2d_properties_like_the_python_sdk() {
        // docs/protocol.md §5 (as the Python SDK receives it)
        let topic = "devices/dev3/messages/devicebound/%24.mid=84c0&%24.to=%2Fdevices%2Fdev3%2Fmessages%2Fdevicebound&%24.ce=utf-8&%24.ct=text%2Fplain&%24.cid=c-9&iothub-ack=full&property1=value%201";
        let Ok(iothub_proto::topic::Incoming::C2d(parsed)) =
            iothub_proto::topic::Incoming::parse(topic)
        else {
            panic!("not C2D");
        };
        let m = C2dMessage::from_parts(parsed.properties(), Bytes::from_static(b"hello world"));
        assert_eq!(m.message_id.as_deref(), Some("84c0"));
        assert_eq!(m.correlation_id.as_deref(), Some("c-9"));
        assert_eq!(m.content_type.as_deref(), Some("text/plain"));
        assert_eq!(m.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(m.ack.as_deref(), Some("full"));
        assert_eq!(m.property("property1"), Some("value 1"));
        assert_eq!(m.properties.len(), 1, "{:?}", m.properties);
    }
}
