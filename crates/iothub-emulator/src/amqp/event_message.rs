//! A telemetry event as the Event Hub-compatible endpoint delivers it (docs/amqp.md
//! "Events").
//!
//! The event log keeps a message's system properties by their Event Hubs names as text
//! (docs/protocol.md §4); here each goes to the section and AMQP type a real hub uses:
//!
//! | property | section | type |
//! |---|---|---|
//! | `x-opt-sequence-number` | message annotations | long |
//! | `x-opt-offset` | message annotations | string |
//! | `x-opt-enqueued-time`, `iothub-enqueuedtime` | message annotations | timestamp |
//! | `iothub-connection-device-id`, `-module-id`, `-auth-method`, `-auth-generation-id`, `iothub-message-source`, `dt-dataschema`, `dt-subject`, and every other stored system property | message annotations | string |
//! | `message-id`, `correlation-id` | properties | string message id |
//! | `user-id` | properties | binary (the UTF-8 bytes) |
//! | `content-type`, `content-encoding` | properties | symbol |
//! | `absolute-expiry-time` | properties | timestamp (dropped when the stored text is not ISO 8601) |
//! | the device's property bag | application properties | string (null for a key sent without `=`) |
//!
//! The body is one data section with the bytes the device sent.

use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, DeliveryAnnotations, Message, MessageAnnotations, MessageId,
    Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Timestamp, Value};

use crate::store::events::TelemetryEvent;
use crate::timestamp::{parse_iso8601, unix_millis};

/// System properties that become message properties, not annotations.
const PROPERTY_KEYS: [&str; 6] = [
    "message-id",
    "correlation-id",
    "user-id",
    "content-type",
    "content-encoding",
    "absolute-expiry-time",
];

/// `iothub-message-source` when the event does not say (device telemetry).
const TELEMETRY_SOURCE: &str = "Telemetry";

/// The AMQP message for `event`: its partition sequence number is `x-opt-sequence-number`,
/// its place in the event log (`seq`) is `x-opt-offset` (docs/amqp.md).
///
/// # Example
/// ```
/// use iothub_emulator::amqp::event_message::event_message;
/// use iothub_emulator::store::events::TelemetryEvent;
/// let event = TelemetryEvent {
///     seq: 1,
///     device_id: "d1".into(),
///     module_id: None,
///     enqueued_ms: 1_700_000_000_000,
///     system_properties: [("content-type".to_owned(), "application/json".to_owned())].into(),
///     application_properties: [("alert".to_owned(), Some("true".to_owned()))].into(),
///     body: bytes::Bytes::from_static(b"{\"t\":21}"),
///     partition: 0,
///     partition_seq: 0,
/// };
/// let msg = event_message(&event);
/// assert_eq!(msg.body.0.as_slice(), b"{\"t\":21}");
/// let props = msg.properties.unwrap();
/// assert_eq!(props.content_type.unwrap().as_str(), "application/json");
/// ```
#[must_use]
pub fn event_message(event: &TelemetryEvent) -> Message<Data> {
    let system = &event.system_properties;
    let mut annotations = MessageAnnotations::default();
    let mut put = |key: &str, value: Value| {
        annotations.insert(OwnedKey::Symbol(Symbol::from(key)), value);
    };
    put("x-opt-sequence-number", Value::Long(event.partition_seq));
    put("x-opt-offset", Value::String(event.seq.to_string()));
    put(
        "x-opt-enqueued-time",
        Value::Timestamp(Timestamp::from_milliseconds(event.enqueued_ms)),
    );
    put(
        "iothub-connection-device-id",
        Value::String(event.device_id.clone()),
    );
    if let Some(module) = &event.module_id {
        put("iothub-connection-module-id", Value::String(module.clone()));
    }
    put(
        "iothub-enqueuedtime",
        Value::Timestamp(Timestamp::from_milliseconds(event.enqueued_ms)),
    );
    put(
        "iothub-message-source",
        Value::String(
            system
                .get("iothub-message-source")
                .map_or(TELEMETRY_SOURCE, String::as_str)
                .to_owned(),
        ),
    );
    for (key, value) in system {
        let derived = matches!(
            key.as_str(),
            "iothub-connection-device-id"
                | "iothub-connection-module-id"
                | "iothub-enqueuedtime"
                | "iothub-message-source"
        );
        if derived || PROPERTY_KEYS.contains(&key.as_str()) {
            continue;
        }
        put(key, Value::String(value.clone()));
    }

    let text = |key: &str| system.get(key).cloned();
    let properties = Properties {
        message_id: text("message-id").map(MessageId::String),
        correlation_id: text("correlation-id").map(MessageId::String),
        user_id: text("user-id").map(|u| Binary::from(u.into_bytes())),
        content_type: text("content-type").map(Symbol::from),
        content_encoding: text("content-encoding").map(Symbol::from),
        absolute_expiry_time: system
            .get("absolute-expiry-time")
            .and_then(|t| parse_iso8601(t))
            .map(|t| Timestamp::from_milliseconds(unix_millis(t))),
        ..Properties::default()
    };

    let mut application = ApplicationProperties::default();
    for (key, value) in &event.application_properties {
        let value = value
            .as_ref()
            .map_or(SimpleValue::Null, |v| SimpleValue::String(v.clone()));
        application.insert(key.clone(), value);
    }

    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: Some(annotations),
        properties: Some(properties),
        application_properties: (!application.is_empty()).then_some(application),
        body: Data(Binary::from(event.body.to_vec())),
        footer: None,
    }
}

/// The delivery annotations a receiver that asked for the capability
/// `com.microsoft:enable-receiver-runtime-metric` gets on each event: where the partition's
/// newest event is, and when that was read (`now_ms`).
///
/// # Example
/// ```
/// use iothub_emulator::amqp::event_message::runtime_metric;
/// let annotations = runtime_metric(41, 41, 1_700_000_000_000, 1_700_000_000_500);
/// assert_eq!(annotations.len(), 4);
/// ```
#[must_use]
pub fn runtime_metric(
    last_sequence_number: i64,
    last_offset: i64,
    last_enqueued_ms: i64,
    now_ms: i64,
) -> DeliveryAnnotations {
    let mut annotations = DeliveryAnnotations::default();
    let mut put = |key: &str, value: Value| {
        annotations.insert(OwnedKey::Symbol(Symbol::from(key)), value);
    };
    put(
        "last_enqueued_sequence_number",
        Value::Long(last_sequence_number),
    );
    put(
        "last_enqueued_offset",
        Value::String(last_offset.to_string()),
    );
    put(
        "last_enqueued_time_utc",
        Value::Timestamp(Timestamp::from_milliseconds(last_enqueued_ms)),
    );
    put(
        "runtime_info_retrieval_time_utc",
        Value::Timestamp(Timestamp::from_milliseconds(now_ms)),
    );
    annotations
}

#[cfg(test)]
mod tests;
