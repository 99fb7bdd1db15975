use fe2o3_amqp::types::messaging::message::__private::{Deserializable, Serializable};
use fe2o3_amqp::types::messaging::{ApplicationProperties, Properties};
use fe2o3_amqp::types::primitives::{SimpleValue, Uuid};

use super::*;

const SAS: &str =
    "SharedAccessSignature sr=localhost%2Fdevices&sig=abc%3D&se=2000000000&skn=iothubowner";

fn request(props: &[(&str, SimpleValue)], body: Value, id: Option<MessageId>) -> Message<Value> {
    let mut app = ApplicationProperties::default();
    for (k, v) in props {
        app.insert((*k).to_owned(), v.clone());
    }
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: id.map(|id| Properties::builder().message_id(id).build()),
        application_properties: Some(app),
        body,
        footer: None,
    }
}

fn put_token(kind: &str, token: &str, id: Option<MessageId>) -> Message<Value> {
    request(
        &[
            ("operation", SimpleValue::String("put-token".into())),
            ("type", SimpleValue::String(kind.into())),
            (
                "name",
                SimpleValue::String("sb://localhost/iothub-ehub-h".into()),
            ),
            (
                "expiration",
                SimpleValue::Timestamp(
                    fe2o3_amqp::types::primitives::Timestamp::from_milliseconds(0),
                ),
            ),
        ],
        Value::String(token.into()),
        id,
    )
}

#[test]
fn the_token_type_is_decided_by_content() {
    // pyamqp declares `jwt` for a SAS token; uamqp declares the SAS type.
    for declared in [JWT_TOKEN_TYPE, SAS_TOKEN_TYPE] {
        let parsed = parse_cbs_request(&put_token(declared, SAS, None)).unwrap();
        assert_eq!(parsed.token_type, SAS_TOKEN_TYPE);
        assert!(parsed.is_sas());
        assert_eq!(parsed.token, SAS);
        assert_eq!(parsed.audience, "sb://localhost/iothub-ehub-h");
    }
    let jwt = parse_cbs_request(&put_token(JWT_TOKEN_TYPE, "eyJhbGciOi.x.y", None)).unwrap();
    assert_eq!(jwt.token_type, JWT_TOKEN_TYPE);
}

#[test]
fn the_message_id_keeps_its_amqp_type() {
    let uuid = MessageId::Uuid(Uuid::from([7u8; 16]));
    for id in [MessageId::Ulong(0), uuid, MessageId::String("req-1".into())] {
        let parsed = parse_cbs_request(&put_token(SAS_TOKEN_TYPE, SAS, Some(id.clone()))).unwrap();
        assert_eq!(parsed.message_id, Some(id.clone()));
        let reply = cbs_reply(parsed.message_id, 202, "Accepted");
        // Through the wire codec: the correlation id comes back with the same type.
        let bytes = serde_amqp::to_vec(&Serializable(&reply)).unwrap();
        let back: Deserializable<Message<Value>> = serde_amqp::from_slice(&bytes).unwrap();
        let back = back.0;
        assert_eq!(back.properties.unwrap().correlation_id, Some(id));
        let app = back.application_properties.unwrap();
        assert_eq!(app.get("status-code"), Some(&SimpleValue::Int(202)));
        assert_eq!(
            app.get("status-description"),
            Some(&SimpleValue::String("Accepted".into()))
        );
    }
}

#[test]
fn malformed_requests_are_refused_without_the_token() {
    let string = |s: &str| SimpleValue::String(s.into());
    let op = ("operation", string("put-token"));
    let ty = ("type", string(JWT_TOKEN_TYPE));
    let name = ("name", string("h"));
    let body = || Value::String(SAS.into());
    let cases = [
        (
            request(&[ty.clone(), name.clone()], body(), None),
            CbsError::MissingProperty("operation"),
        ),
        (
            request(&[op.clone(), name.clone()], body(), None),
            CbsError::MissingProperty("type"),
        ),
        (
            request(&[op.clone(), ty.clone()], body(), None),
            CbsError::MissingProperty("name"),
        ),
        (
            request(
                &[
                    ("operation", string("delete-token")),
                    ty.clone(),
                    name.clone(),
                ],
                body(),
                None,
            ),
            CbsError::UnsupportedOperation("delete-token".into()),
        ),
        (
            request(
                &[op.clone(), ("type", string("x509")), name.clone()],
                body(),
                None,
            ),
            CbsError::UnsupportedTokenType("x509".into()),
        ),
        (
            request(
                &[op.clone(), ty.clone(), ("name", SimpleValue::Int(1))],
                body(),
                None,
            ),
            CbsError::NotAString("name"),
        ),
        (
            request(
                &[op.clone(), ty.clone(), name.clone()],
                Value::Binary(vec![0xff, 0xfe].into()),
                None,
            ),
            CbsError::BodyNotAString,
        ),
        (
            request(
                &[op.clone(), ty.clone(), name.clone()],
                Value::Long(5),
                None,
            ),
            CbsError::BodyNotAString,
        ),
        (
            request(&[op.clone(), ty.clone(), name.clone()], Value::Null, None),
            CbsError::BodyNotAString,
        ),
        (
            request(&[op, ty, name], Value::String("  ".into()), None),
            CbsError::EmptyToken,
        ),
    ];
    for (msg, want) in cases {
        let err = parse_cbs_request(&msg).unwrap_err();
        assert_eq!(err, want);
        assert_eq!(err.status(), 400);
        assert!(!err.to_string().contains("sig="), "{err}");
    }
    let no_props = Message {
        application_properties: None,
        ..put_token(SAS_TOKEN_TYPE, SAS, None)
    };
    assert_eq!(
        parse_cbs_request(&no_props),
        Err(CbsError::MissingProperty("operation"))
    );
}

#[test]
fn pyamqp_bytes_are_read_as_text() {
    let msg = request(
        &[
            (
                "operation",
                SimpleValue::Binary(b"put-token".to_vec().into()),
            ),
            ("type", SimpleValue::String(JWT_TOKEN_TYPE.into())),
            ("name", SimpleValue::Symbol("sb://h/eh".into())),
        ],
        Value::Binary(SAS.as_bytes().to_vec().into()),
        Some(MessageId::Ulong(1)),
    );
    let parsed = parse_cbs_request(&msg).unwrap();
    assert_eq!(parsed.token, SAS);
    assert_eq!(parsed.audience, "sb://h/eh");
}

#[test]
fn debug_output_hides_the_token() {
    let parsed = parse_cbs_request(&put_token(SAS_TOKEN_TYPE, SAS, None)).unwrap();
    let shown = format!("{parsed:?}");
    assert!(!shown.contains("sig="), "{shown}");
    assert!(shown.contains("iothub-ehub-h"));
}
