//! Small conversions shared by the request/reply nodes and the message mappings.

use std::fmt::Write as _;

use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};

/// A reply on a request/response node (`$cbs`, `$management`): `status-code` (AMQP int)
/// and `status-description` in the application properties, `correlation-id` = the
/// request's `message-id` with its AMQP type unchanged (docs/amqp.md "CBS").
pub(crate) fn status_reply(
    correlation: Option<MessageId>,
    status: i32,
    description: &str,
    body: Value,
) -> Message<AmqpValue<Value>> {
    let mut application = ApplicationProperties::default();
    application.insert("status-code".to_owned(), SimpleValue::Int(status));
    application.insert(
        "status-description".to_owned(),
        SimpleValue::String(description.to_owned()),
    );
    let properties = Properties {
        correlation_id: correlation,
        ..Properties::default()
    };
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties: Some(application),
        body: AmqpValue(body),
        footer: None,
    }
}

/// The text of a string, symbol or UTF-8 binary application property (pyamqp sends Python
/// `bytes` values as binary); `None` for any other type.
pub(crate) fn text_of(value: &SimpleValue) -> Option<&str> {
    match value {
        SimpleValue::String(s) => Some(s),
        SimpleValue::Symbol(s) => Some(s.as_str()),
        SimpleValue::Binary(b) => std::str::from_utf8(b).ok(),
        _ => None,
    }
}

/// The application property `key` as text: `Ok(None)` when absent, `Err(())` when it has
/// another type.
pub(crate) fn text_property<'a>(
    application: Option<&'a ApplicationProperties>,
    key: &str,
) -> Result<Option<&'a str>, ()> {
    match application.and_then(|a| a.get(key)) {
        None | Some(SimpleValue::Null) => Ok(None),
        Some(value) => text_of(value).map(Some).ok_or(()),
    }
}

/// A message id of any AMQP type as the hub's string id: strings as they are, ulongs in
/// decimal, UUIDs in the hyphenated lower-case form, binary ids as UTF-8 when they are
/// text, else lower-case hex (**Choice**, docs/amqp.md "C2D").
pub(crate) fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid_text(u.as_inner()),
        MessageId::Binary(b) => match std::str::from_utf8(b) {
            Ok(text) => text.to_owned(),
            Err(_) => hex(b),
        },
    }
}

/// `8-4-4-4-12` lower-case hex.
pub(crate) fn uuid_text(bytes: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        // invariant: writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::primitives::{Binary, Uuid};

    use super::*;

    #[test]
    fn every_id_type_has_a_text() {
        assert_eq!(message_id_text(&MessageId::String("m1".into())), "m1");
        assert_eq!(message_id_text(&MessageId::Ulong(42)), "42");
        let uuid = Uuid::from([
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ]);
        assert_eq!(
            message_id_text(&MessageId::Uuid(uuid)),
            "12345678-9abc-def0-0123-456789abcdef"
        );
        assert_eq!(
            message_id_text(&MessageId::Binary(Binary::from(b"abc".to_vec()))),
            "abc"
        );
        assert_eq!(
            message_id_text(&MessageId::Binary(Binary::from(vec![0xff, 0x00]))),
            "ff00"
        );
    }
}
