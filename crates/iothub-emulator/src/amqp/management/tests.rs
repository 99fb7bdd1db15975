use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Properties};
use fe2o3_amqp::types::primitives::SimpleValue;

use super::*;

fn request(props: &[(&str, &str)]) -> Message<Value> {
    let mut app = ApplicationProperties::default();
    for (k, v) in props {
        app.insert((*k).to_owned(), SimpleValue::String((*v).to_owned()));
    }
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(
            Properties::builder()
                .message_id(MessageId::Ulong(3))
                .build(),
        ),
        application_properties: Some(app),
        body: Value::Null,
        footer: None,
    }
}

/// Encodes and decodes a reply as a client would receive it.
fn wire(reply: &Message<AmqpValue<Value>>) -> Message<Value> {
    let bytes = serde_amqp::to_vec(&Serializable(reply)).unwrap();
    let back: Deserializable<Message<Value>> = serde_amqp::from_slice(&bytes).unwrap();
    back.0
}

fn field<'a>(body: &'a Value, key: &str) -> &'a Value {
    let Value::Map(map) = body else {
        panic!("not a map: {body:?}")
    };
    map.get(&Value::String(key.to_owned()))
        .unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn both_request_types_parse() {
    assert_eq!(
        parse_management_request(&request(&[
            ("operation", "READ"),
            ("type", EVENTHUB_TYPE),
            ("name", "iothub-ehub-h"),
            (
                "security_token",
                "SharedAccessSignature sr=x&sig=y&se=1&skn=z"
            ),
        ])),
        Ok(ManagementRequest::EventHub {
            name: "iothub-ehub-h".into()
        })
    );
    assert_eq!(
        parse_management_request(&request(&[
            ("operation", "READ"),
            ("type", PARTITION_TYPE),
            ("name", "eh"),
            ("partition", "3"),
        ])),
        Ok(ManagementRequest::Partition {
            name: "eh".into(),
            partition: "3".into()
        })
    );
    assert_eq!(correlation_of(&request(&[])), Some(MessageId::Ulong(3)));
}

#[test]
fn malformed_requests_name_their_fault() {
    let cases = [
        (vec![], ManagementError::MissingProperty("operation")),
        (
            vec![("operation", "DELETE")],
            ManagementError::UnsupportedOperation("DELETE".into()),
        ),
        (
            vec![("operation", "READ")],
            ManagementError::MissingProperty("type"),
        ),
        (
            vec![("operation", "READ"), ("type", EVENTHUB_TYPE)],
            ManagementError::MissingProperty("name"),
        ),
        (
            vec![
                ("operation", "READ"),
                ("type", PARTITION_TYPE),
                ("name", "eh"),
            ],
            ManagementError::MissingProperty("partition"),
        ),
        (
            vec![
                ("operation", "READ"),
                ("type", "com.microsoft:consumergroup"),
                ("name", "eh"),
            ],
            ManagementError::UnsupportedType("com.microsoft:consumergroup".into()),
        ),
    ];
    for (props, want) in cases {
        assert_eq!(
            parse_management_request(&request(&props)),
            Err(want.clone())
        );
        assert_eq!(want.status(), 400);
    }
    let mut numeric = request(&[("operation", "READ"), ("type", EVENTHUB_TYPE)]);
    numeric
        .application_properties
        .as_mut()
        .unwrap()
        .insert("name".into(), SimpleValue::Long(1));
    assert_eq!(
        parse_management_request(&numeric),
        Err(ManagementError::NotAString("name"))
    );
}

#[test]
fn the_eventhub_reply_has_the_types_clients_decode() {
    let reply = wire(&eventhub_reply(
        Some(MessageId::Ulong(3)),
        &EventHubProperties {
            name: "iothub-ehub-h".into(),
            created_at_ms: 1_700_000_000_123,
            partition_ids: vec!["0".into(), "1".into(), "2".into(), "3".into()],
        },
    ));
    assert_eq!(
        reply.properties.unwrap().correlation_id,
        Some(MessageId::Ulong(3))
    );
    let app = reply.application_properties.unwrap();
    assert_eq!(app.get("status-code"), Some(&SimpleValue::Int(200)));
    assert_eq!(
        app.get("status-description"),
        Some(&SimpleValue::String("OK".into()))
    );
    let body = &reply.body;
    assert_eq!(field(body, "name"), &Value::String("iothub-ehub-h".into()));
    assert_eq!(
        field(body, "created_at"),
        &Value::Timestamp(Timestamp::from_milliseconds(1_700_000_000_123))
    );
    let Value::Array(ids) = field(body, "partition_ids") else {
        panic!("partition_ids is not an array")
    };
    let ids: Vec<_> = ids.iter().cloned().collect();
    assert_eq!(
        ids,
        ["0", "1", "2", "3"]
            .map(|s| Value::String(s.into()))
            .to_vec()
    );
    assert_eq!(field(body, "partition_count"), &Value::Int(4));
    assert_eq!(field(body, "type"), &Value::String(EVENTHUB_TYPE.into()));
}

#[test]
fn the_partition_reply_has_the_types_clients_decode() {
    let reply = wire(&partition_reply(
        None,
        &PartitionProperties {
            name: "eh".into(),
            partition: "1".into(),
            begin_sequence_number: 5,
            last_enqueued_sequence_number: 41,
            last_enqueued_offset: "41".into(),
            last_enqueued_time_ms: 1_700_000_000_999,
            is_partition_empty: false,
        },
    ));
    let body = &reply.body;
    assert_eq!(field(body, "name"), &Value::String("eh".into()));
    assert_eq!(field(body, "partition"), &Value::String("1".into()));
    assert_eq!(field(body, "begin_sequence_number"), &Value::Long(5));
    assert_eq!(
        field(body, "last_enqueued_sequence_number"),
        &Value::Long(41)
    );
    assert_eq!(
        field(body, "last_enqueued_offset"),
        &Value::String("41".into())
    );
    assert_eq!(
        field(body, "last_enqueued_time_utc"),
        &Value::Timestamp(Timestamp::from_milliseconds(1_700_000_000_999))
    );
    assert_eq!(field(body, "is_partition_empty"), &Value::Bool(false));
}

#[test]
fn an_error_reply_carries_status_and_description() {
    let reply = wire(&error_reply(
        Some(MessageId::String("r".into())),
        404,
        "no partition 9",
    ));
    let app = reply.application_properties.unwrap();
    assert_eq!(app.get("status-code"), Some(&SimpleValue::Int(404)));
    assert_eq!(
        app.get("status-description"),
        Some(&SimpleValue::String("no partition 9".into()))
    );
    assert_eq!(reply.body, Value::Null);
}
