//! One event of the Event Hub-compatible endpoint as `iothub hub monitor` prints it: the shape
//! of `az iot hub monitor-events`,
//! `{"event":{"origin","module","interface","component","properties":{"system","application"},"payload"}}`.
//!
//! The hub stamps the sender into message annotations (`iothub-connection-device-id`,
//! `iothub-connection-module-id`, docs/amqp.md "Receiving events"); the system properties are
//! the message's properties plus the hub's annotations (the Event Hubs bookkeeping `x-opt-*`
//! ones left out); the application properties are the device's property bag.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{Body, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::Value;
use iothub_emulator::timestamp::{from_unix_millis, iso8601_millis};
use serde_json::{Map, Value as Json, json};

/// Who sent an event, for `--device`/`--module` filtering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// `iothub-connection-device-id`.
    pub(crate) device: Option<String>,
    /// `iothub-connection-module-id`.
    pub(crate) module: Option<String>,
}

impl Origin {
    /// Whether the event passes `--device` and `--module`.
    pub(crate) fn matches(&self, device: Option<&str>, module: Option<&str>) -> bool {
        device.is_none_or(|d| self.device.as_deref() == Some(d))
            && module.is_none_or(|m| self.module.as_deref() == Some(m))
    }
}

/// The sender of an event, from its annotations.
pub(crate) fn origin(message: &Message<Body<Value>>) -> Origin {
    Origin {
        device: annotation_text(message, "iothub-connection-device-id"),
        module: annotation_text(message, "iothub-connection-module-id"),
    }
}

fn annotation_text(message: &Message<Body<Value>>, key: &str) -> Option<String> {
    let annotations = message.message_annotations.as_ref()?;
    annotations.0.iter().find_map(|(k, v)| match (k, v) {
        (OwnedKey::Symbol(s), Value::String(text)) if s.as_str() == key => Some(text.clone()),
        (OwnedKey::Symbol(s), Value::Symbol(text)) if s.as_str() == key => {
            Some(text.as_str().to_owned())
        }
        _ => None,
    })
}

/// Converts an event into the `az iot hub monitor-events` shape.
pub(crate) fn monitor_event(message: &Message<Body<Value>>, with_properties: bool) -> Json {
    let system = system_properties(message);
    let text = |key: &str| {
        system
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let from = origin(message);
    let mut event = Map::new();
    event.insert("origin".into(), json!(from.device));
    event.insert("module".into(), json!(from.module.unwrap_or_default()));
    event.insert("interface".into(), json!(text("dt-dataschema")));
    event.insert("component".into(), json!(text("dt-subject")));
    if with_properties {
        let application: Map<String, Json> = message
            .application_properties
            .as_ref()
            .map(|p| {
                p.0.iter()
                    .map(|(k, v)| (k.clone(), to_json(&Value::from(v.clone()))))
                    .collect()
            })
            .unwrap_or_default();
        event.insert(
            "properties".into(),
            json!({ "system": system, "application": application }),
        );
    }
    event.insert("payload".into(), payload(&message.body));
    json!({ "event": event })
}

/// The message's properties and the hub's annotations, as JSON.
fn system_properties(message: &Message<Body<Value>>) -> Map<String, Json> {
    let mut system = Map::new();
    if let Some(p) = &message.properties {
        properties_into(p, &mut system);
    }
    if let Some(annotations) = &message.message_annotations {
        for (key, value) in annotations.0.iter() {
            let key = match key {
                OwnedKey::Symbol(s) => s.as_str().to_owned(),
                OwnedKey::Ulong(n) => n.to_string(),
            };
            if !key.starts_with("x-opt-") {
                system.insert(key, to_json(value));
            }
        }
    }
    system
}

fn properties_into(p: &Properties, out: &mut Map<String, Json>) {
    let id = |m: &MessageId| match m {
        MessageId::String(s) => json!(s),
        MessageId::Ulong(n) => json!(n),
        MessageId::Uuid(u) => json!(uuid_text(u.as_inner())),
        MessageId::Binary(b) => json!(bytes_text(b)),
    };
    if let Some(m) = &p.message_id {
        out.insert("message-id".into(), id(m));
    }
    if let Some(c) = &p.correlation_id {
        out.insert("correlation-id".into(), id(c));
    }
    if let Some(u) = &p.user_id {
        out.insert("user-id".into(), json!(bytes_text(u)));
    }
    if let Some(to) = &p.to {
        out.insert("to".into(), json!(to));
    }
    if let Some(t) = &p.content_type {
        out.insert("content-type".into(), json!(t.as_str()));
    }
    if let Some(e) = &p.content_encoding {
        out.insert("content-encoding".into(), json!(e.as_str()));
    }
    if let Some(t) = &p.absolute_expiry_time {
        out.insert(
            "absolute-expiry-time".into(),
            json!(time_text(t.milliseconds())),
        );
    }
    if let Some(t) = &p.creation_time {
        out.insert("creation-time".into(), json!(time_text(t.milliseconds())));
    }
}

/// The body: JSON when it parses, else text; bytes that are not UTF-8 as base64 (the
/// emulator's REST event shape, docs/rest-api.md).
fn payload(body: &Body<Value>) -> Json {
    let bytes: Vec<u8> = match body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(v) => return to_json(&v.0),
        Body::Sequence(batch) => {
            return Json::Array(batch.iter().flat_map(|s| s.0.iter().map(to_json)).collect());
        }
        Body::Empty => Vec::new(),
    };
    if let Ok(v) = serde_json::from_slice::<Json>(&bytes) {
        return v;
    }
    match String::from_utf8(bytes) {
        Ok(text) => Json::String(text),
        Err(e) => Json::String(STANDARD.encode(e.as_bytes())),
    }
}

/// An AMQP value as JSON: timestamps as ISO 8601 UTC, binaries as text when UTF-8 (else
/// base64), map keys as their text.
pub(crate) fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Ubyte(n) => json!(n),
        Value::Ushort(n) => json!(n),
        Value::Uint(n) => json!(n),
        Value::Ulong(n) => json!(n),
        Value::Byte(n) => json!(n),
        Value::Short(n) => json!(n),
        Value::Int(n) => json!(n),
        Value::Long(n) => json!(n),
        Value::Float(f) => json!(f.0),
        Value::Double(f) => json!(f.0),
        Value::Char(c) => json!(c.to_string()),
        Value::Timestamp(t) => json!(time_text(t.milliseconds())),
        Value::Uuid(u) => json!(uuid_text(u.as_inner())),
        Value::Binary(b) => json!(bytes_text(b)),
        Value::String(s) => json!(s),
        Value::Symbol(s) => json!(s.as_str()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Array(items) => Json::Array(items.0.iter().map(to_json).collect()),
        Value::Map(map) => Json::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match to_json(k) {
                        Json::String(s) => s,
                        other => other.to_string(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Value::Described(d) => to_json(&d.value),
        other => json!(format!("{other:?}")),
    }
}

fn time_text(ms: i64) -> String {
    iso8601_millis(from_unix_millis(ms))
}

fn bytes_text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => STANDARD.encode(bytes),
    }
}

fn uuid_text(b: &[u8; 16]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::messaging::{ApplicationProperties, Data, MessageAnnotations};
    use fe2o3_amqp::types::primitives::{Binary, Symbol, Timestamp};
    use proptest::prelude::*;
    use serde_amqp::primitives::OrderedMap;

    use super::*;

    fn telemetry(body: &[u8]) -> Message<Body<Value>> {
        let annotations = MessageAnnotations::builder()
            .insert("iothub-connection-device-id", Value::String("d1".into()))
            .insert(
                "iothub-enqueuedtime",
                Value::Timestamp(Timestamp::from_milliseconds(0)),
            )
            .insert("dt-dataschema", Value::String("dtmi:x;1".into()))
            .insert("dt-subject", Value::String("thermostat1".into()))
            .insert("x-opt-sequence-number", Value::Long(4))
            .build();
        let properties = Properties::builder()
            .message_id(String::from("m1"))
            .content_type(Symbol::from("application/json"))
            .build();
        let application = ApplicationProperties::builder()
            .insert("alert", "true")
            .build();
        Message::builder()
            .message_annotations(annotations)
            .properties(properties)
            .application_properties(application)
            .body(Body::Data(vec![Data(Binary::from(body.to_vec()))].into()))
            .build()
    }

    #[test]
    fn events_take_the_az_monitor_shape() {
        let m = telemetry(br#"{"t":1}"#);
        assert_eq!(
            monitor_event(&m, false),
            json!({"event": {"origin": "d1", "module": "", "interface": "dtmi:x;1", "component": "thermostat1", "payload": {"t": 1}}})
        );
        let with = monitor_event(&m, true);
        let props = &with["event"]["properties"];
        assert_eq!(props["system"]["message-id"], "m1");
        assert_eq!(props["system"]["content-type"], "application/json");
        assert_eq!(props["system"]["iothub-connection-device-id"], "d1");
        assert_eq!(
            props["system"]["iothub-enqueuedtime"],
            "1970-01-01T00:00:00.000Z"
        );
        assert!(props["system"].get("x-opt-sequence-number").is_none());
        assert_eq!(props["application"]["alert"], "true");
    }

    #[test]
    fn bodies_are_json_then_text_then_base64() {
        assert_eq!(
            monitor_event(&telemetry(b"hello"), false)["event"]["payload"],
            "hello"
        );
        assert_eq!(
            monitor_event(&telemetry(&[0xff, 0x00]), false)["event"]["payload"],
            "/wA="
        );
        assert_eq!(
            monitor_event(&telemetry(b""), false)["event"]["payload"],
            ""
        );
    }

    #[test]
    fn origins_filter_by_device_and_module() {
        let o = origin(&telemetry(b"x"));
        assert_eq!(o.device.as_deref(), Some("d1"));
        assert!(o.matches(None, None));
        assert!(o.matches(Some("d1"), None));
        assert!(!o.matches(Some("d2"), None));
        assert!(!o.matches(Some("d1"), Some("m1")));
    }

    #[test]
    fn values_convert_to_json() {
        let mut map = OrderedMap::new();
        map.insert(
            Value::Symbol(Symbol::from("k")),
            Value::List(vec![Value::Int(1), Value::Null]),
        );
        assert_eq!(to_json(&Value::Map(map)), json!({"k": [1, null]}));
        assert_eq!(to_json(&Value::Binary(vec![0xff].into())), json!("/w=="));
    }

    proptest! {
        #[test]
        fn any_body_converts(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let out = monitor_event(&telemetry(&body), true);
            prop_assert!(out["event"].get("payload").is_some());
        }
    }
}
