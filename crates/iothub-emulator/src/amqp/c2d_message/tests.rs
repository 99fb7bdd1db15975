use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::messaging::{
    AmqpSequence, ApplicationProperties, Batch, Data, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, Timestamp, Uuid};
use proptest::prelude::*;

use super::*;
use crate::hub::c2d::C2dLimits;

const LIMIT: usize = C2dLimits::DEFAULT.max_message_bytes;

fn message(
    to: Option<&str>,
    props: &[(&str, SimpleValue)],
    body: Body<Value>,
) -> Message<Body<Value>> {
    let mut app = ApplicationProperties::default();
    for (k, v) in props {
        app.insert((*k).to_owned(), v.clone());
    }
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(Properties {
            to: to.map(str::to_owned),
            ..Properties::default()
        }),
        application_properties: Some(app),
        body,
        footer: None,
    }
}

fn data(bytes: &[u8]) -> Body<Value> {
    Body::Data(Batch::new(vec![Data(Binary::from(bytes.to_vec()))]))
}

fn device(id: &str) -> Identity {
    Identity {
        device_id: id.into(),
        module_id: None,
    }
}

#[test]
fn what_azure_iot_hub_sends_maps_onto_the_hub_message() {
    // The shape of azure-iot-hub's send_c2d_message (uamqp): uuid message id, data body.
    let mut msg = message(
        Some("/devices/dev1/messages/devicebound"),
        &[
            ("iothub-ack", SimpleValue::String("Positive".into())),
            ("color", SimpleValue::String("red".into())),
            ("count", SimpleValue::Int(3)),
            ("flag", SimpleValue::Bool(true)),
            ("none", SimpleValue::Null),
        ],
        data(b"hello"),
    );
    let props = msg.properties.as_mut().unwrap();
    props.message_id = Some(MessageId::Uuid(Uuid::from([0xab; 16])));
    props.correlation_id = Some(MessageId::Ulong(9));
    props.user_id = Some(Binary::from(b"svc".to_vec()));
    props.content_type = Some(Symbol::from("application/json"));
    props.content_encoding = Some(Symbol::from("utf-8"));
    props.absolute_expiry_time = Some(Timestamp::from_milliseconds(1_900_000_000_000));
    let (who, out) = c2d_from_message(msg, LIMIT).unwrap();
    assert_eq!(who, device("dev1"));
    assert_eq!(
        out,
        OutgoingMessage {
            body: b"hello".to_vec(),
            message_id: Some("abababab-abab-abab-abab-abababababab".into()),
            correlation_id: Some("9".into()),
            user_id: Some("svc".into()),
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            ack: AckMode::Positive,
            expiry: Some(from_unix_millis(1_900_000_000_000)),
            properties: vec![
                ("color".into(), "red".into()),
                ("count".into(), "3".into()),
                ("flag".into(), "true".into()),
                ("none".into(), String::new()),
            ],
        }
    );
}

#[test]
fn to_forms_decode_as_the_rest_api_does() {
    let cases = [
        ("/devices/dev1/messages/devicebound", device("dev1")),
        ("devices/dev1/messages/deviceBound", device("dev1")),
        ("/Devices/a%20b/Messages/DeviceBound", device("a b")),
        ("/devices/a+b/messages/devicebound", device("a+b")),
        ("/devices/100%/messages/devicebound", device("100%")),
        (
            "/devices/d/modules/m%2F1/messages/devicebound",
            Identity {
                device_id: "d".into(),
                module_id: Some("m/1".into()),
            },
        ),
    ];
    for (to, want) in cases {
        let (who, _) = c2d_from_message(message(Some(to), &[], data(b"")), LIMIT).unwrap();
        assert_eq!(who, want, "{to}");
    }
    for bad in [
        "",
        "/",
        "/devices/dev1",
        "/devices//messages/devicebound",
        "/devices/dev1/messages/events",
        "/devices/dev1/modules/messages/devicebound",
        "/devices/d/modules//messages/devicebound",
        "/devices/%ff/messages/devicebound",
        "/devices/dev1/messages/devicebound/x",
        "amqps://h/devices/dev1/messages/devicebound",
    ] {
        assert_eq!(
            c2d_from_message(message(Some(bad), &[], data(b"")), LIMIT).unwrap_err(),
            C2dRefusal::MalformedTo(bad.to_owned()),
            "{bad}"
        );
    }
    assert_eq!(
        c2d_from_message(message(None, &[], data(b"")), LIMIT).unwrap_err(),
        C2dRefusal::MissingTo
    );
}

#[test]
fn every_body_kind_is_read_or_refused() {
    let to = Some("/devices/d/messages/devicebound");
    let body_of = |body: Body<Value>| c2d_from_message(message(to, &[], body), LIMIT);
    let two = Body::Data(Batch::new(vec![
        Data(Binary::from(b"ab".to_vec())),
        Data(Binary::from(b"cd".to_vec())),
    ]));
    assert_eq!(body_of(two).unwrap().1.body, b"abcd");
    assert_eq!(
        body_of(Body::Value(AmqpValue(Value::String("text".into()))))
            .unwrap()
            .1
            .body,
        b"text"
    );
    assert_eq!(
        body_of(Body::Value(AmqpValue(Value::Binary(Binary::from(vec![
            0, 1
        ])))))
        .unwrap()
        .1
        .body,
        vec![0, 1]
    );
    assert!(body_of(Body::Empty).unwrap().1.body.is_empty());
    assert_eq!(
        body_of(Body::Value(AmqpValue(Value::Long(1)))).unwrap_err(),
        C2dRefusal::BadBody
    );
    assert_eq!(
        body_of(Body::Sequence(Batch::new(vec![AmqpSequence(vec![
            Value::Null
        ])])))
        .unwrap_err(),
        C2dRefusal::BadBody
    );
}

#[test]
fn ack_and_size_are_checked() {
    let to = Some("/devices/d/messages/devicebound");
    assert_eq!(
        c2d_from_message(
            message(
                to,
                &[("iothub-ack", SimpleValue::String("sometimes".into()))],
                data(b"")
            ),
            LIMIT
        )
        .unwrap_err(),
        C2dRefusal::BadAck("sometimes".into())
    );
    assert_eq!(
        c2d_from_message(
            message(to, &[("iothub-ack", SimpleValue::Int(1))], data(b"")),
            LIMIT
        )
        .unwrap_err(),
        C2dRefusal::BadAck("1".into())
    );
    // The hub's count: body plus property names and values.
    let at_limit = message(to, &[("k", SimpleValue::String("v".into()))], data(&[0; 8]));
    assert!(c2d_from_message(at_limit.clone(), 10).is_ok());
    assert_eq!(
        c2d_from_message(at_limit, 9).unwrap_err(),
        C2dRefusal::TooLarge { size: 10, limit: 9 }
    );
}

#[test]
fn refusals_and_hub_errors_have_the_documented_conditions() {
    let argument = ErrorCondition::Custom(Symbol::from(ARGUMENT_ERROR));
    assert_eq!(C2dRefusal::MissingTo.condition().0, argument);
    assert_eq!(C2dRefusal::MalformedTo("x".into()).condition().0, argument);
    assert_eq!(C2dRefusal::BadAck("x".into()).condition().0, argument);
    assert_eq!(C2dRefusal::BadBody.condition().0, argument);
    let too_large = C2dRefusal::TooLarge {
        size: 70_000,
        limit: 65_536,
    };
    assert_eq!(
        too_large.to_error().condition,
        ErrorCondition::LinkError(LinkError::MessageSizeExceeded)
    );
    assert!(too_large.condition().1.contains("70000"));

    let not_found = c2d_error(&HubError::NotFound(device("ghost")));
    assert_eq!(
        not_found.condition,
        ErrorCondition::AmqpError(AmqpError::NotFound)
    );
    assert!(not_found.description.unwrap().contains("ghost"));
    let full = c2d_error(&HubError::C2d(C2dError::QueueFull));
    assert_eq!(
        full.condition,
        ErrorCondition::AmqpError(AmqpError::ResourceLimitExceeded)
    );
    assert!(
        full.description
            .unwrap()
            .starts_with("403004 DeviceMaximumQueueDepthExceeded")
    );
    let large = c2d_error(&HubError::C2d(C2dError::MessageTooLarge {
        size: 70_000,
        limit: 65_536,
    }));
    assert_eq!(
        large.condition,
        ErrorCondition::LinkError(LinkError::MessageSizeExceeded)
    );
    let other = c2d_error(&HubError::PreconditionFailed);
    assert_eq!(
        other.condition,
        ErrorCondition::AmqpError(AmqpError::InternalError)
    );
    // The custom condition goes on the wire as the symbol the SDKs match.
    let bytes = serde_amqp::to_vec(&C2dRefusal::BadBody.to_error()).unwrap();
    let back: definitions::Error = serde_amqp::from_slice(&bytes).unwrap();
    assert_eq!(back.condition, argument);
}

#[test]
fn a_message_decoded_from_the_wire_maps_the_same() {
    let mut msg = message(
        Some("/devices/d/modules/m/messages/devicebound"),
        &[("k", SimpleValue::String("v".into()))],
        data(b"payload"),
    );
    msg.properties.as_mut().unwrap().message_id = Some(MessageId::String("m1".into()));
    let bytes = serde_amqp::to_vec(&Serializable(&msg)).unwrap();
    let back: Deserializable<Message<Body<Value>>> = serde_amqp::from_slice(&bytes).unwrap();
    assert_eq!(
        c2d_from_message(back.0, LIMIT),
        c2d_from_message(msg, LIMIT)
    );
}

proptest! {
    #[test]
    fn device_and_module_ids_round_trip_through_percent_encoding(
        id in "[a-zA-Z0-9\\-.%_*?!(),:=@$' #/]{1,40}",
        module in proptest::option::of("[a-zA-Z0-9\\-.%_*?!(),:=@$' #/]{1,20}"),
    ) {
        let enc = |s: &str| iothub_proto::percent::encode(s).to_string();
        let to = match &module {
            None => format!("/devices/{}/messages/devicebound", enc(&id)),
            Some(m) => format!("/devices/{}/modules/{}/messages/devicebound", enc(&id), enc(m)),
        };
        let (who, _) = c2d_from_message(message(Some(&to), &[], data(b"")), LIMIT).unwrap();
        prop_assert_eq!(who, Identity { device_id: id, module_id: module });
    }

    #[test]
    fn any_to_never_panics(to in "\\PC{0,80}") {
        let _ = c2d_from_message(message(Some(&to), &[], data(b"")), LIMIT);
    }
}
