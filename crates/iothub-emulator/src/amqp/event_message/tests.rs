use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};

use super::*;
use crate::hub::auth::{AuthMethod, Identity};
use crate::hub::telemetry::{ConnectionStamp, Origin, Sender};

const ENQUEUED_MS: i64 = 1_765_000_000_123;

/// A module's message as the hub stamps it (every system property a device can set).
fn stamped() -> TelemetryEvent {
    let identity = Identity {
        device_id: "thermostat".into(),
        module_id: Some("sensor".into()),
    };
    let connection = ConnectionStamp::new(&Sender {
        identity: &identity,
        method: &AuthMethod::IdentityKey,
        model_id: Some("dtmi:com:example:Thermostat;1"),
        generation_id: "638",
    });
    let bag = "%24.mid=m1&%24.cid=c1&%24.uid=alice&%24.ct=application%2Fjson&%24.ce=utf-8\
               &%24.exp=2030-01-01T00%3A00%3A00.000Z&%24.sub=comp1&%24.ifid=x&alert=true&flag";
    let message = connection.message(
        bag,
        Bytes::from_static(b"{\"t\":21}"),
        Origin::Publish { retain: false },
        UNIX_EPOCH + Duration::from_millis(ENQUEUED_MS.unsigned_abs()),
    );
    connection.event(message)
}

fn wire(msg: &Message<Data>) -> Message<Data> {
    let bytes = serde_amqp::to_vec(&Serializable(msg)).unwrap();
    let back: Deserializable<Message<Data>> = serde_amqp::from_slice(&bytes).unwrap();
    back.0
}

fn annotation(msg: &Message<Data>, key: &str) -> Option<Value> {
    msg.message_annotations
        .as_ref()
        .unwrap()
        .get(&OwnedKey::Symbol(Symbol::from(key)))
        .cloned()
}

#[test]
fn annotations_properties_and_body_have_the_event_hubs_types() {
    let mut event = stamped();
    event.partition_seq = 7;
    event.seq = 4096;
    let msg = wire(&event_message(&event));
    let s = |t: &str| Some(Value::String(t.to_owned()));
    let ts = Some(Value::Timestamp(Timestamp::from_milliseconds(ENQUEUED_MS)));
    assert_eq!(
        annotation(&msg, "x-opt-sequence-number"),
        Some(Value::Long(7))
    );
    assert_eq!(annotation(&msg, "x-opt-offset"), s("4096"));
    assert_eq!(annotation(&msg, "x-opt-enqueued-time"), ts);
    assert_eq!(annotation(&msg, "iothub-enqueuedtime"), ts);
    assert_eq!(
        annotation(&msg, "iothub-connection-device-id"),
        s("thermostat")
    );
    assert_eq!(annotation(&msg, "iothub-connection-module-id"), s("sensor"));
    assert_eq!(
        annotation(&msg, "iothub-connection-auth-generation-id"),
        s("638")
    );
    assert_eq!(
        annotation(&msg, "iothub-connection-auth-method"),
        s(r#"{"scope":"module","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}"#)
    );
    assert_eq!(annotation(&msg, "iothub-message-source"), s("Telemetry"));
    assert_eq!(
        annotation(&msg, "dt-dataschema"),
        s("dtmi:com:example:Thermostat;1")
    );
    assert_eq!(annotation(&msg, "dt-subject"), s("comp1"));
    assert_eq!(annotation(&msg, "$.ifid"), s("x"));
    // Message properties are not repeated as annotations.
    assert_eq!(annotation(&msg, "message-id"), None);
    assert_eq!(annotation(&msg, "user-id"), None);

    let p = msg.properties.clone().unwrap();
    assert_eq!(p.message_id, Some(MessageId::String("m1".into())));
    assert_eq!(p.correlation_id, Some(MessageId::String("c1".into())));
    assert_eq!(p.user_id, Some(Binary::from(b"alice".to_vec())));
    assert_eq!(p.content_type, Some(Symbol::from("application/json")));
    assert_eq!(p.content_encoding, Some(Symbol::from("utf-8")));
    assert_eq!(
        p.absolute_expiry_time,
        Some(Timestamp::from_milliseconds(1_893_456_000_000))
    );

    let app = msg.application_properties.clone().unwrap();
    assert_eq!(app.get("alert"), Some(&SimpleValue::String("true".into())));
    assert_eq!(app.get("flag"), Some(&SimpleValue::Null));
    assert_eq!(msg.body.0.as_slice(), b"{\"t\":21}");
}

#[test]
fn a_bare_device_event_has_no_optional_parts() {
    let event = TelemetryEvent {
        seq: 1,
        device_id: "d1".into(),
        module_id: None,
        enqueued_ms: 5,
        system_properties: Default::default(),
        application_properties: Default::default(),
        body: Bytes::new(),
        partition: 0,
        partition_seq: 0,
    };
    let msg = wire(&event_message(&event));
    assert_eq!(annotation(&msg, "iothub-connection-module-id"), None);
    assert_eq!(
        annotation(&msg, "iothub-message-source"),
        Some(Value::String("Telemetry".into()))
    );
    assert!(msg.application_properties.is_none());
    let p = msg.properties.unwrap();
    assert_eq!(p.message_id, None);
    assert_eq!(p.absolute_expiry_time, None);
    assert!(msg.body.0.is_empty());
}

#[test]
fn an_unparsable_expiry_is_dropped_and_other_sources_are_kept() {
    let mut event = stamped();
    event
        .system_properties
        .insert("absolute-expiry-time".into(), "tomorrow".into());
    event
        .system_properties
        .insert("iothub-message-source".into(), "twinChangeEvents".into());
    let msg = event_message(&event);
    assert_eq!(msg.properties.unwrap().absolute_expiry_time, None);
    assert_eq!(
        msg.message_annotations
            .unwrap()
            .get(&OwnedKey::Symbol(Symbol::from("iothub-message-source"))),
        Some(&Value::String("twinChangeEvents".into()))
    );
}

#[test]
fn runtime_metrics_have_the_names_and_types_clients_read() {
    let annotations = runtime_metric(41, 8192, 1_700_000_000_000, 1_700_000_000_500);
    let get = |k: &str| annotations.get(&OwnedKey::Symbol(Symbol::from(k))).cloned();
    assert_eq!(get("last_enqueued_sequence_number"), Some(Value::Long(41)));
    assert_eq!(
        get("last_enqueued_offset"),
        Some(Value::String("8192".into()))
    );
    assert_eq!(
        get("last_enqueued_time_utc"),
        Some(Value::Timestamp(Timestamp::from_milliseconds(
            1_700_000_000_000
        )))
    );
    assert_eq!(
        get("runtime_info_retrieval_time_utc"),
        Some(Value::Timestamp(Timestamp::from_milliseconds(
            1_700_000_000_500
        )))
    );
    // On the wire with an event.
    let mut msg = event_message(&stamped());
    msg.delivery_annotations = Some(annotations.clone());
    assert_eq!(wire(&msg).delivery_annotations, Some(annotations));
}
